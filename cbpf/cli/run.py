"""cbpf run OBJ|SOURCE: boots an object and shows its maps live and typed: hash and array maps as tables sorted by
value, arrays of log2 slots as histograms, ring and perf buffers as event lines, .bss/.data as global values."""

from __future__ import annotations

import argparse
import time
from typing import Any

import cbpf
from cbpf._histogram import Histogram
from cbpf.cli import _typed
from cbpf.cli._common import USAGE, CliError, load, status
from cbpf.cli._term import Screen, Table, Text, height, width
from cbpf.cli.inspect import open_object

_TABLES = {"hash", "array", "percpu_hash", "percpu_array", "lru_hash", "lru_percpu_hash"}


def parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("object", metavar="OBJ|SOURCE", help="a BPF ELF object (.o), or C source (.c)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="set a global variable before load (repeatable)")
    p.add_argument("--map", action="append", default=[], metavar="NAME", help="show only this map (repeatable)")
    p.add_argument("--hist", action="append", default=[], metavar="NAME",
                   help="draw this array map as a log2 histogram (arrays named *hist* or *slot* are, anyway)")
    p.add_argument("--event", action="append", default=[], metavar="MAP=STRUCT",
                   help="decode MAP's events as STRUCT of the object's BTF")
    p.add_argument("-i", "--interval", type=float, default=1.0, metavar="S", help="refresh every S seconds (1)")
    p.add_argument("-d", "--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    p.add_argument("-n", "--top", type=int, default=None, metavar="ROWS", help="rows per table")
    p.add_argument("--json", action="store_true", help="one JSON object per interval or event, for pipes")


def _pairs(items: list[str], option: str) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CliError(f"{option} {item!r}: expected NAME=VALUE", USAGE)
        out[name] = value
    return out


def _kind(m: Any, hist_names: list[str]) -> str | None:
    t = m.map_type.name.lower()
    if t == "ringbuf":
        return "ringbuf"
    if t == "perf_event_array":
        return "perfbuf"
    if m.name.endswith((".bss", ".data")) or ".data." in m.name:
        return "globals"
    if t in ("array", "percpu_array") and m.key_size == 4 and m.value_size == 8 and (
            m.name in hist_names or "hist" in m.name.lower() or "slot" in m.name.lower()):
        return "hist"
    if t in _TABLES and not m.name.endswith(".rodata"):
        return "table"
    return None


def _sort_value(value: Any) -> float:
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, dict):
        for v in value.values():
            if isinstance(v, (int, float)):
                return v
    return 0


def _columns(sample: Any, label: str) -> list[str]:
    return list(sample) if isinstance(sample, dict) else [label]


def _cells(value: Any, names: list[str]) -> list[Any]:
    if isinstance(value, dict):
        return [value.get(n, "") for n in names]
    return [value]


def map_table(m: Any, limit: int) -> tuple[Table, list[dict[str, Any]]]:
    entries = _typed.typed_items(m)
    if m.map_type.name.lower() in ("array", "percpu_array"):
        entries = [(k, v) for k, v in entries if _sort_value(v) != 0 or isinstance(v, dict)]
    entries.sort(key=lambda kv: -_sort_value(kv[1]))
    rows = entries[:limit]
    kcols = _columns(rows[0][0], "KEY") if rows else ["KEY"]
    vcols = _columns(rows[0][1], "VALUE") if rows else ["VALUE"]
    table = Table(f"{m.name} ({m.map_type.name.lower()}, {len(entries)} entries, by value)",
                  [c.upper() for c in kcols + vcols],
                  [[*_cells(k, kcols), *_cells(v, vcols)] for k, v in rows],
                  right=[isinstance(c, (int, float)) for c in (_cells(rows[0][0], kcols) + _cells(rows[0][1], vcols))]
                  if rows else ())
    return table, [{"key": k, "value": v} for k, v in entries]


def _event_struct(obj: cbpf.Object, m: Any, asked: dict[str, str]) -> Any:
    name = asked.get(m.name)
    if name is not None:
        try:
            return obj.btf_struct(name)
        except (KeyError, ValueError, TypeError) as e:
            raise CliError(f"--event {m.name}={name}: {e}", USAGE) from None
    # the struct named after the map: events -> event, calls_log -> calls, call, log
    words = [m.name, *m.name.split("_")]
    guesses = [g for w in words for g in (w, w.removesuffix("s"))] + ["event", f"{m.name}_event"]
    for guess in dict.fromkeys(guesses):
        if obj._btf_find(guess) is not None:
            try:
                return obj.btf_struct(guess)
            except (KeyError, ValueError, TypeError):
                continue
    return None


def run(args: argparse.Namespace) -> int:
    if args.interval <= 0:
        raise CliError("--interval must be > 0", USAGE)
    if args.duration is not None and args.duration <= 0:
        raise CliError("--duration must be > 0", USAGE)
    sets = _pairs(args.set, "--set")
    events_asked = _pairs(args.event, "--event")
    obj = open_object(args.object, "cbpf run")
    try:
        unknown = [n for n in args.map + args.hist + list(events_asked) if n not in obj.maps]
        if unknown:
            raise CliError(f"--map {unknown[0]}: no such map (this object has: {', '.join(obj.maps)})", USAGE)
    except BaseException:
        obj.close()
        raise
    obj = load(obj, "cbpf run", sets=sets)
    header = f"cbpf run {args.object}: {len(obj.links)} program{'' if len(obj.links) == 1 else 's'} attached"
    screen = Screen(args.json, start=False)
    streams: list[Any] = []
    try:
        shown = [m for m in obj.maps.values() if not args.map or m.name in args.map]
        kinds = {m.name: _kind(m, args.hist) for m in shown}
        if args.map:
            for m in shown:
                if kinds[m.name] is None:
                    kinds[m.name] = "table"
        for m in shown:
            kind = kinds[m.name]
            if kind not in ("ringbuf", "perfbuf"):
                continue
            struct = _event_struct(obj, m, events_asked)

            def on_event(data: Any, name: str = m.name, struct: Any = struct) -> None:
                value = _typed.plain(struct.decode(data) if struct is not None else bytes(data).hex())
                if args.json:
                    screen.emit({"time": time.time(), "map": name, "event": value})
                elif isinstance(value, dict):
                    screen.line(f"{name}: " + " ".join(f"{k}={v}" for k, v in value.items()))
                else:
                    screen.line(f"{name}: {value}")

            cls = cbpf.RingBuffer if kind == "ringbuf" else cbpf.PerfBuffer
            streams.append(cls(m, on_event))
        # said once the buffers are open: a perf buffer gets nothing a program emitted before it was opened
        status(header + (f", for {args.duration:g} s" if args.duration else "") + ", Ctrl-C to stop")
        screen.start()
        start = time.monotonic()
        deadline = None if args.duration is None else start + args.duration
        next_tick = start + args.interval

        def tick(final: bool) -> None:
            limit = args.top or (max(3, height() // 2 - 4) if screen.live else 20)
            blocks: list[Any] = []
            record: dict[str, Any] = {"time": time.time(), "maps": {}, "histograms": {}, "globals": {}}
            for m in shown:
                kind = kinds[m.name]
                if kind == "table":
                    table, entries = map_table(m, limit)
                    blocks.append(table)
                    record["maps"][m.name] = entries
                elif kind == "hist":
                    h = Histogram(m, unit="value")
                    bar = max(10, min(40, width() - 40)) if screen.tty else 40
                    blocks.append(Text(f"{m.name} (log2 histogram, {h.total} samples)", h.format(bar)))
                    record["histograms"][m.name] = {"total": h.total, "slots": [b._asdict() for b in h.buckets]}
                elif kind == "globals":
                    names = getattr(m.value_type, "fields", None) or ()
                    values = {n: _typed.plain(obj.globals[n]) for n in names}
                    record["globals"].update(values)
                    if values:
                        blocks.append(Table(f"{m.name} (globals)", ("NAME", "VALUE"), list(values.items())))
            if args.json:
                screen.emit(record)
            elif blocks:
                elapsed = time.monotonic() - start
                screen.show(blocks, f"{header}, {elapsed:.0f} s" + ("" if final or not screen.live else
                                                                     " (Ctrl-C to stop)"))

        try:
            while True:
                now = time.monotonic()
                wake = next_tick if deadline is None else min(next_tick, deadline)
                while now < wake:
                    if streams:
                        for s in streams:
                            s.poll(min(0.1, wake - now) / len(streams))
                    else:
                        time.sleep(wake - now)
                    now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                tick(False)
                next_tick += args.interval
        except KeyboardInterrupt:
            pass
        for s in streams:
            s.poll(0)
        tick(True)
    finally:
        screen.close()
        for s in streams:
            s.close()
        obj.close()
    return 0

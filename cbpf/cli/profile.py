"""cbpf profile: CPU stack sampling through perf events, symbolized (kernel and user), written as folded stacks
and as an SVG flame graph."""

from __future__ import annotations

import argparse
import struct
import sys
import time
from typing import Any

import cbpf
from cbpf._tools import tool_object
from cbpf.cli import _typed
from cbpf.cli._common import CliError, check_btf, load, status
from cbpf.cli.flamegraph import parse_folded, render
from cbpf.cli.symbols import ElfSymbols, KernelSymbols, ProcessSymbols


def parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("-F", "--frequency", type=int, default=99, help="samples per second per CPU (default 99)")
    p.add_argument("-d", "--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    p.add_argument("-p", "--pid", type=int, default=None, help="only this process")
    p.add_argument("-c", "--comm", default=None, help="only processes whose name is this")
    p.add_argument("--idle", action="store_true", help="include the idle task's samples")
    p.add_argument("--folded", metavar="FILE", default=None, help="write folded stacks to FILE ('-': stdout)")
    p.add_argument("--svg", metavar="FILE", default=None, help="write an SVG flame graph to FILE")
    p.add_argument("--json", action="store_true", help="one JSON object at the end: every stack and its count")


def _stack(stacks: Any, stack_id: int) -> list[int]:
    if stack_id < 0:
        return []
    raw = stacks.lookup(stack_id)
    if raw is None:
        return []
    ips = struct.unpack(f"={len(raw) // 8}Q", raw)
    return [ip for ip in ips if ip] if 0 not in ips else list(ips[: ips.index(0)])


def collect(obj: cbpf.Object, comm: str | None) -> list[dict[str, Any]]:
    """Every sampled stack, symbolized: {pid, comm, frames (root first), count}."""
    kernel = KernelSymbols()
    elf_cache: dict[str, ElfSymbols | None] = {}
    processes: dict[int, ProcessSymbols] = {}
    stacks = obj.maps["stacks"]
    out: dict[tuple[int, tuple[str, ...]], dict[str, Any]] = {}
    for key, count in _typed.typed_items(obj.maps["samples"]):
        if comm is not None and key["comm"] != comm:
            continue
        pid = key["pid"]
        if pid not in processes:
            processes[pid] = ProcessSymbols(pid, elf_cache)
        user = _stack(stacks, key["user_stack"])
        # a frame-pointer walk that left the process's mappings (code built without frame pointers, such as
        # _start) has nothing true beyond that point
        for i, ip in enumerate(user):
            if not processes[pid].mapped(ip) and processes[pid].maps:
                user = user[:i]
                break
        # every frame but the leaf is a return address: its call is the byte before
        user_names = [processes[pid].name(ip if i == 0 else ip - 1) for i, ip in enumerate(user)]
        kernel_names = [kernel.name(ip) + "_[k]" for ip in _stack(stacks, key["kernel_stack"])]
        frames = [key["comm"] or "?", *reversed(user_names), *reversed(kernel_names)]
        merged = (pid, tuple(frames))  # stacks that differ only in addresses inside one function are one
        if merged in out:
            out[merged]["count"] += count
        else:
            out[merged] = {"pid": pid, "comm": key["comm"], "frames": frames, "count": count}
    return sorted(out.values(), key=lambda s: (-s["count"], s["frames"]))


def folded(samples: list[dict[str, Any]]) -> str:
    merged: dict[str, int] = {}
    for s in samples:
        line = ";".join(f.replace(";", ":").replace(" ", "_") for f in s["frames"])
        merged[line] = merged.get(line, 0) + s["count"]
    return "".join(f"{line} {n}\n" for line, n in sorted(merged.items()))


def profile(args: argparse.Namespace) -> int:
    import json

    if args.frequency < 1:
        raise CliError("--frequency must be >= 1", 2)
    if args.duration is not None and args.duration <= 0:
        raise CliError("--duration must be > 0", 2)
    check_btf()
    obj = load(tool_object("profile"), "cbpf profile",
               globals_={"targ_tgid": args.pid or 0, "include_idle": 1 if args.idle else 0})
    try:
        try:
            from cbpf._programs import PerfSoftware, PerfType

            software, cpu_clock = PerfType["SOFTWARE"], PerfSoftware["CPU_CLOCK"]  # enums built at run time
            link = obj.programs["sample"].attach_perf_event(software, cpu_clock, sample_freq=args.frequency)
        except OSError as e:
            raise CliError(f"cbpf profile: cannot open a CPU clock perf event: {e}") from None
        status(f"cbpf profile: sampling at {args.frequency} Hz per CPU"
               + (f" for {args.duration:g} s" if args.duration else "") + " ... Ctrl-C to end")
        try:
            time.sleep(args.duration if args.duration is not None else 1e9)
        except KeyboardInterrupt:
            pass
        link.detach()
        samples = collect(obj, args.comm)
    finally:
        obj.close()
    text = folded(samples)
    if args.folded == "-":
        sys.stdout.write(text)
    elif args.folded:
        with open(args.folded, "w") as f:
            f.write(text)
    if args.svg:
        title = f"cbpf profile, {sum(s['count'] for s in samples)} samples at {args.frequency} Hz"
        with open(args.svg, "w") as f:
            f.write(render(parse_folded(text), title))
    if args.json:
        sys.stdout.write(json.dumps({"frequency": args.frequency, "samples": sum(s["count"] for s in samples),
                                     "stacks": samples}) + "\n")
    elif args.folded != "-":
        total = sum(s["count"] for s in samples)
        print(f"{total} samples, {len(samples)} distinct stacks" +
              (f"; folded stacks in {args.folded}" if args.folded else "") +
              (f"; flame graph in {args.svg}" if args.svg else ""))
        for s in samples[:5]:
            print(f"{s['count']:>8}  {s['comm']} ({s['pid']}): " + " <- ".join(reversed(s["frames"][1:]))[:200])
    sys.stdout.flush()
    return 0

"""The ready tools: top, execsnoop, opensnoop, biolatency, runqlat, tcplife (profile is in profile.py). Each loads
its bundled object (cbpf._tools.tool_object), shows what it sees, and closes the object (detaching) at the end."""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import cbpf
from cbpf._histogram import Histogram
from cbpf._tools import tool_object
from cbpf.cli import _typed
from cbpf.cli._common import CliError, check_btf, comm_of, load, run_intervals, status
from cbpf.cli._term import Screen, Table, Text, height, width


def add_common(p: argparse.ArgumentParser, *, interval: bool = False, pid: bool = True, comm: bool = True) -> None:
    p.add_argument("-d", "--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    if interval:
        p.add_argument("-i", "--interval", type=float, default=None, metavar="S",
                       help="print every S seconds (default: once, at the end)")
    if pid:
        p.add_argument("-p", "--pid", type=int, default=None, help="only this process (thread group id)")
    if comm:
        p.add_argument("-c", "--comm", default=None, help="only processes whose name is this")
    p.add_argument("--json", action="store_true", help="one JSON object per line, for pipes")


def _positive(value: float | None, name: str) -> None:
    if value is not None and value <= 0:
        raise CliError(f"--{name} must be > 0", 2)


def _open(tool: str, **globals_: Any) -> cbpf.Object:
    check_btf()
    return load(tool_object(tool), f"cbpf {tool}", globals_=globals_ or None,
                optional=OPTIONAL.get(tool, ()))


OPTIONAL = {"opensnoop": ("open_enter", "open_exit"), "execsnoop": ("execveat_enter", "execveat_exit")}


# ---- top ------------------------------------------------------------------------------------------------------------

def top_parser(p: argparse.ArgumentParser) -> None:
    add_common(p, interval=True)
    p.add_argument("-n", "--top", type=int, default=None, metavar="ROWS",
                   help="rows to show (default: what fits the terminal, 20 in a pipe)")


def top(args: argparse.Namespace) -> int:
    """System calls per process, live."""
    _positive(args.duration, "duration")
    _positive(args.interval, "interval")
    # no --interval: a terminal redraws every second; a pipe or --json gets one report at the end of --duration
    interval = args.interval or (args.duration if args.duration and (args.json or not sys.stdout.isatty()) else 1.0)
    obj = _open("top")
    status(f"cbpf {cbpf.__version__} (libbpf {cbpf.libbpf_version()}): counting system calls"
           + (f" for {args.duration:g} s" if args.duration else "") + " ... (Ctrl-C to stop)")
    screen = Screen(args.json)
    seen: dict[int, int] = {}
    started = last = time.monotonic()
    try:
        def tick(final: bool) -> None:
            nonlocal last
            now = time.monotonic()
            span = max(now - last, 1e-9)
            last = now
            rows = []
            for tgid, value in _typed.typed_items(obj.maps["syscalls"]):
                count = value["count"]
                delta = count - seen.get(tgid, 0)
                seen[tgid] = count
                if delta <= 0:
                    continue
                if args.pid is not None and tgid != args.pid:
                    continue
                if args.comm is not None and value["comm"] != args.comm:
                    continue
                rows.append((delta, tgid, value["comm"]))
            rows.sort(key=lambda r: (-r[0], r[1]))
            total = sum(r[0] for r in rows)
            if args.json:
                screen.emit({"time": time.time(), "interval": round(span, 6), "total": total,
                             "processes": [{"pid": pid, "comm": c, "syscalls": n, "per_sec": round(n / span, 1)}
                                           for n, pid, c in rows]})
                return
            limit = args.top or (max(3, height() - 6) if screen.live else 20)
            table = Table("", ("PID", "COMM", "SYSCALLS", "PER SEC"), right=(True, False, True, True),
                          rows=[(pid, c, n, f"{n / span:.0f}") for n, pid, c in rows[:limit]])
            header = (f"cbpf top: system calls per process, {span:.1f} s (of {now - started:.1f} s): "
                      f"{len(rows)} processes, {total} calls" + ("" if final or not screen.live else
                                                                 " (Ctrl-C to stop)"))
            screen.show([table], header)

        run_intervals(args.duration, interval, tick)
    finally:
        screen.close()
        obj.close()
    return 0


# ---- execsnoop ------------------------------------------------------------------------------------------------------

def execsnoop_parser(p: argparse.ArgumentParser) -> None:
    add_common(p)
    p.add_argument("-x", "--failed", action="store_true", help="include execs that failed")
    p.add_argument("-u", "--uid", type=int, default=None, help="only this user")


def _events(obj: cbpf.Object, struct: str, duration: float | None, handle: Any) -> None:
    ring = cbpf.RingBuffer(obj.maps["events"], handle, event=obj.btf_struct(struct))
    tool = obj.name
    status(f"cbpf {tool}: tracing" + (f" for {duration:g} s" if duration else "") + " ... Ctrl-C to end")
    deadline = None if duration is None else time.monotonic() + duration
    try:
        while True:
            timeout = 0.25 if deadline is None else min(0.25, deadline - time.monotonic())
            if timeout <= 0:
                break
            ring.poll(timeout)
    except KeyboardInterrupt:
        pass
    finally:
        ring.close()


def execsnoop(args: argparse.Namespace) -> int:
    """Every exec: pid, ppid, uid, comm, filename and argv."""
    _positive(args.duration, "duration")
    obj = _open("execsnoop", **({"targ_uid": args.uid} if args.uid is not None else {}))
    screen = Screen(args.json, live=False)
    if not args.json:
        screen.line(f"{'PCOMM':<16} {'PID':>7} {'PPID':>7} {'UID':>5} {'RET':>4} ARGS")

    def handle(e: Any) -> None:
        if e.ret != 0 and not args.failed:
            return
        if args.pid is not None and args.pid not in (e.pid, e.ppid):
            return
        argv = [comm_of(a) for a in e.argv[: e.argc]]
        comm = comm_of(e.comm)
        if args.comm is not None and comm != args.comm:
            return
        if args.json:
            screen.emit({"time": time.time(), "pid": e.pid, "ppid": e.ppid, "uid": e.uid, "comm": comm,
                         "filename": comm_of(e.filename), "argv": argv, "ret": e.ret,
                         "truncated": bool(e.truncated)})
        else:
            shown = " ".join(argv) + (" ..." if e.truncated else "")
            screen.line(f"{comm:<16} {e.pid:>7} {e.ppid:>7} {e.uid:>5} {e.ret:>4} {shown}")

    try:
        _events(obj, "exec_event", args.duration, handle)
    finally:
        obj.close()
    return 0


# ---- opensnoop ------------------------------------------------------------------------------------------------------

_OPEN_FLAGS = [(os.O_WRONLY, "O_WRONLY"), (os.O_RDWR, "O_RDWR"), (os.O_CREAT, "O_CREAT"), (os.O_EXCL, "O_EXCL"),
               (os.O_NOCTTY, "O_NOCTTY"), (os.O_TRUNC, "O_TRUNC"), (os.O_APPEND, "O_APPEND"),
               (os.O_NONBLOCK, "O_NONBLOCK"), (os.O_DSYNC, "O_DSYNC"), (getattr(os, "O_DIRECT", 0), "O_DIRECT"),
               (os.O_DIRECTORY, "O_DIRECTORY"), (os.O_NOFOLLOW, "O_NOFOLLOW"),
               (getattr(os, "O_NOATIME", 0), "O_NOATIME"), (os.O_CLOEXEC, "O_CLOEXEC"),
               (getattr(os, "O_PATH", 0), "O_PATH"), (getattr(os, "O_TMPFILE", 0), "O_TMPFILE")]


def open_flag_names(flags: int) -> list[str]:
    names = [] if flags & (os.O_WRONLY | os.O_RDWR) else ["O_RDONLY"]
    rest = flags
    for bit, name in _OPEN_FLAGS:
        if bit and flags & bit == bit:
            names.append(name)
            rest &= ~bit
    return names


def opensnoop_parser(p: argparse.ArgumentParser) -> None:
    add_common(p)
    p.add_argument("-x", "--failed", action="store_true", help="only opens that failed")


def opensnoop(args: argparse.Namespace) -> int:
    """Every open: pid, comm, path, flags and result."""
    _positive(args.duration, "duration")
    obj = _open("opensnoop", **({"targ_tgid": args.pid} if args.pid is not None else {}))
    screen = Screen(args.json, live=False)
    if not args.json:
        screen.line(f"{'PID':>7} {'COMM':<16} {'FD':>4} {'ERR':>3} {'FLAGS':<24} PATH")

    def handle(e: Any) -> None:
        comm = comm_of(e.comm)
        if args.comm is not None and comm != args.comm:
            return
        if args.failed and e.ret >= 0:
            return
        path = comm_of(e.path)
        if args.json:
            screen.emit({"time": time.time(), "pid": e.pid, "tid": e.tid, "uid": e.uid, "comm": comm, "path": path,
                         "flags": e.flags, "flag_names": open_flag_names(e.flags), "mode": e.mode,
                         "ret": e.ret, "fd": e.ret if e.ret >= 0 else None,
                         "errno": -e.ret if e.ret < 0 else 0})
        else:
            fd, err = (e.ret, 0) if e.ret >= 0 else (-1, -e.ret)
            flags = "|".join(open_flag_names(e.flags))
            screen.line(f"{e.pid:>7} {comm:<16} {fd:>4} {err:>3} {flags:<24} {path}")

    try:
        _events(obj, "open_event", args.duration, handle)
    finally:
        obj.close()
    return 0


# ---- biolatency, runqlat --------------------------------------------------------------------------------------------

def disk_names() -> dict[int, str]:
    """dev_t as the kernel packs it (major << 20 | minor) -> the disk's name, from /sys/dev/block."""
    names = {}
    for entry in Path("/sys/dev/block").glob("*:*"):
        try:
            major, minor = (int(x) for x in entry.name.split(":"))
            uevent = (entry / "uevent").read_text()
        except (OSError, ValueError):
            continue
        for line in uevent.splitlines():
            if line.startswith("DEVNAME="):
                names[(major << 20) | minor] = line.split("=", 1)[1]
    return names


def hist_parser(p: argparse.ArgumentParser, *, disks: bool = False) -> None:
    add_common(p, interval=True, pid=not disks, comm=False)
    if disks:
        p.add_argument("-D", "--disks", action="store_true", help="one histogram per disk")
        p.add_argument("--disk", default=None, help="only this disk (a name in /dev: vda, loop0)")


def _bar_width(screen: Screen) -> int:
    return max(10, min(40, width() - 40)) if screen.tty else 40


def _hist_json(h: Histogram) -> dict[str, Any]:
    return {"unit": h.unit, "total": h.total,
            "slots": [{"low": b.low, "high": b.high, "count": b.count} for b in h.buckets]}


def _histograms(tool: str, args: argparse.Namespace, obj: cbpf.Object, title: str) -> None:
    per_disk = tool == "biolatency" and (args.disks or args.disk)
    names = disk_names() if per_disk else {}
    status(title + (f" for {args.duration:g} s" if args.duration else "") + " ... Ctrl-C to end")
    screen = Screen(args.json)

    def read() -> dict[str, Histogram]:
        if not per_disk:
            return {"": Histogram(obj.maps["hist"], unit="usecs")}
        slots: dict[str, dict[int, int]] = {}
        for key, count in _typed.typed_items(obj.maps["disk_hist"]):
            name = names.get(key["dev"], f"{key['dev'] >> 20}:{key['dev'] & 0xfffff}")
            if args.disk is None or name == args.disk:
                slots.setdefault(name, {})[key["slot"]] = count
        return {name: Histogram(s, unit="usecs") for name, s in sorted(slots.items())}

    previous: dict[str, Histogram] = {}
    interval = args.interval or 0.5
    try:
        def tick(final: bool) -> None:
            nonlocal previous
            if not final and args.interval is None and not screen.live:
                return  # no interval asked: print once, at the end
            now = read()
            if args.interval is not None:  # each print shows what came since the last
                shown = {k: h - previous[k] if k in previous else h for k, h in now.items()}
                previous = now
            else:
                shown = now
            if args.json:
                if per_disk:
                    screen.emit({"time": time.time(), "disks": {k: _hist_json(h) for k, h in shown.items()}})
                else:
                    screen.emit({"time": time.time(), **_hist_json(shown[""])})
                return
            blocks = [Text(f"disk = {name}" if name else "", h.format(_bar_width(screen)))
                      for name, h in shown.items()]
            screen.show(blocks or [Text("", "(no samples)")],
                        title + ("" if final or not screen.live else " (Ctrl-C to stop)"))

        run_intervals(args.duration, interval, tick)
    finally:
        screen.close()


def biolatency(args: argparse.Namespace) -> int:
    """Block I/O latency (issue to completion) as a log2 histogram of microseconds."""
    _positive(args.duration, "duration")
    _positive(args.interval, "interval")
    if args.disk is not None and args.disk not in disk_names().values():
        raise CliError(f"--disk {args.disk}: no such disk (there are: {', '.join(sorted(disk_names().values()))})",
                       2)
    obj = _open("biolatency")
    try:
        _histograms("biolatency", args, obj, "cbpf biolatency: block I/O latency")
    finally:
        obj.close()
    return 0


def runqlat(args: argparse.Namespace) -> int:
    """Run-queue latency (runnable to running) as a log2 histogram of microseconds."""
    _positive(args.duration, "duration")
    _positive(args.interval, "interval")
    obj = _open("runqlat", **({"targ_tgid": args.pid} if args.pid is not None else {}))
    try:
        _histograms("runqlat", args, obj, "cbpf runqlat: run-queue latency")
    finally:
        obj.close()
    return 0


# ---- tcplife --------------------------------------------------------------------------------------------------------

def tcplife_parser(p: argparse.ArgumentParser) -> None:
    add_common(p)
    p.add_argument("-P", "--port", type=int, action="append", default=None,
                   help="only sessions with this local or remote port (repeatable)")


def tcplife(args: argparse.Namespace) -> int:
    """TCP sessions: addresses, ports, bytes each way, duration."""
    _positive(args.duration, "duration")
    obj = _open("tcplife")
    screen = Screen(args.json, live=False)
    if not args.json:
        screen.line(f"{'PID':>7} {'COMM':<16} {'LADDR':<15} {'LPORT':>5} {'RADDR':<15} {'RPORT':>5} "
                    f"{'TX_KB':>8} {'RX_KB':>8} {'MS':>9}")

    def address(family: int, raw: bytes) -> str:
        if family == socket.AF_INET:
            return str(ipaddress.IPv4Address(bytes(raw[:4])))
        return str(ipaddress.IPv6Address(bytes(raw)))

    def handle(e: Any) -> None:
        comm = comm_of(e.comm)
        if args.pid is not None and e.pid != args.pid:
            return
        if args.comm is not None and comm != args.comm:
            return
        if args.port and e.lport not in args.port and e.rport not in args.port:
            return
        laddr, raddr = address(e.family, e.saddr), address(e.family, e.daddr)
        if args.json:
            screen.emit({"time": time.time(), "pid": e.pid, "comm": comm,
                         "family": "ipv4" if e.family == socket.AF_INET else "ipv6",
                         "laddr": laddr, "lport": e.lport, "raddr": raddr, "rport": e.rport,
                         "tx_bytes": e.tx, "rx_bytes": e.rx, "duration_ms": round(e.duration_ns / 1e6, 3)})
        else:
            screen.line(f"{e.pid:>7} {comm:<16} {laddr:<15} {e.lport:>5} {raddr:<15} {e.rport:>5} "
                        f"{e.tx / 1024:>8.1f} {e.rx / 1024:>8.1f} {e.duration_ns / 1e6:>9.2f}")

    try:
        _events(obj, "tcp_event", args.duration, handle)
    finally:
        obj.close()
    return 0

"""What the cbpf commands share: errors that end a command with a message and a status, loading an object with
the environment checked first, and the kernel's refusals translated into what to do about them."""

from __future__ import annotations

import difflib
import os
import re
import time
from pathlib import Path
from typing import Any, Callable

import cbpf

# exit statuses (docs/guide/cli.md lists them)
OK = 0
FAILED = 1        # the kernel or the environment refused: not root, no BTF, a missing tracepoint, a load error
USAGE = 2         # bad arguments: an unknown --map, a bad --set, a file that is not there
INTERRUPTED = 130  # Ctrl-C before anything ran
PIPE_CLOSED = 141  # stdout was closed (| head): 128 + SIGPIPE, as a shell reports a process SIGPIPE killed

TRACEFS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")


class CliError(Exception):
    """Ends a command: the message goes to stderr (no traceback), status is the exit status."""

    def __init__(self, message: str, status: int = FAILED) -> None:
        super().__init__(message)
        self.status = status


def check_privileges() -> None:
    if os.geteuid() != 0:
        raise CliError("loading BPF programs needs privileges: run as root, or grant CAP_BPF and CAP_PERFMON")


def check_btf() -> None:
    if not Path("/sys/kernel/btf/vmlinux").exists():
        raise CliError("this kernel exposes no BTF (/sys/kernel/btf/vmlinux is missing): cbpf's tools read kernel "
                       "structures through CO-RE and need a kernel built with CONFIG_DEBUG_INFO_BTF=y")


def tracepoint_exists(category: str, name: str) -> bool | None:
    """Whether tracefs lists the tracepoint (None when no tracefs is mounted to ask)."""
    for root in TRACEFS:
        events = Path(root) / "events"
        if events.is_dir():
            return (events / category / name).is_dir()
    return None


def _similar_tracepoints(category: str, name: str) -> list[str]:
    for root in TRACEFS:
        directory = Path(root) / "events" / category
        if directory.is_dir():
            names = [p.name for p in directory.iterdir() if p.is_dir()]
            return [f"{category}/{n}" for n in difflib.get_close_matches(name, names, n=3, cutoff=0.6)]
    return []


def explain_kernel_error(error: OSError, what: str) -> CliError:
    """A refusal while loading or attaching, as a message that names what is missing and the alternative."""
    text = str(error)
    if isinstance(error, PermissionError):
        return CliError(f"{what}: permission denied: run it as root (or grant CAP_BPF and CAP_PERFMON)")
    section = re.search(r"to (\S+): no such attach point", text)
    if section:
        target = section.group(1)
        kind, _, rest = target.partition("/")
        if kind in ("tracepoint", "tp") and "/" in rest:
            category, name = rest.split("/", 1)
            similar = _similar_tracepoints(category, name)
            hint = f" (similar ones here: {', '.join(similar)})" if similar else ""
            return CliError(f"{what}: this kernel has no tracepoint {category}:{name}{hint}; "
                            f"`ls /sys/kernel/tracing/events/{category}` lists those it has; a raw_tracepoint/ or "
                            "tp_btf/ program on a nearby event is the alternative")
        return CliError(f"{what}: this kernel has no attach point {target}: {text}")
    if error.errno == 95 and "kprobes" in text:
        return CliError(f"{what}: {text.split(': ', 1)[-1].rsplit(':', 1)[0]}; use a tracepoint "
                        "(tracepoint/<category>/<name>, see /sys/kernel/tracing/events), a raw_tracepoint/ or a "
                        "tp_btf/ program instead")
    missing_btf = re.search(r"failed to find kernel BTF type ID of '([^']+)'", text)
    if missing_btf:
        name = missing_btf.group(1)
        return CliError(f"{what}: the kernel's BTF has no tracepoint or function {name!r} (tp_btf/fentry target); "
                        f"a classic tracepoint (tracepoint/<category>/{name}) or raw_tracepoint/{name} is the "
                        "alternative where the kernel has them")
    if error.errno == 1 and ("fentry" in text or "lsm" in text):
        return CliError(f"{what}: this kernel refuses fentry/fexit/LSM programs: {text}; use tracepoints or "
                        "tp_btf programs instead")
    first, _, log = text.partition("; last lines of the log:")
    return CliError(f"{what}: {first}" + (f"\n{log.strip()}" if log else ""))


def set_global(obj: cbpf.Object, name: str, text: str) -> None:
    """--set NAME=VALUE: VALUE read as the global's own type (int, float, or a string for char arrays)."""
    try:
        current = obj.globals[name]
    except KeyError:
        known = ", ".join(sorted(obj.globals)) or "none"
        raise CliError(f"--set {name}: no global variable {name!r} (this object has: {known})", USAGE) from None
    try:
        value: Any
        if isinstance(current, bool):
            value = text.lower() in ("1", "true", "yes", "on")
        elif isinstance(current, int):
            value = int(text, 0)
        elif isinstance(current, float):
            value = float(text)
        elif isinstance(current, bytes):
            value = text.encode()
        else:
            raise CliError(f"--set {name}: a {type(current).__name__} global cannot be set from the command line",
                           USAGE)
        obj.globals[name] = value
    except ValueError:
        kind = {bool: "a boolean", int: "an integer", float: "a number"}.get(type(current), "a string")
        raise CliError(f"--set {name}={text}: {name} is {kind}, and {text!r} is not one", USAGE) from None
    except OverflowError:
        raise CliError(f"--set {name}={text}: the value does not fit {name}", USAGE) from None
    except TypeError as e:
        raise CliError(f"--set {name}={text}: {e}", USAGE) from None


def load(source: Any, what: str, *, globals_: dict[str, Any] | None = None,
         optional: tuple[str, ...] = (), sets: dict[str, str] | None = None) -> cbpf.Object:
    """Opens (unless source is an Object opened with load=False), loads and attaches an object; globals_ (values)
    and sets (text, from --set) are set before load. Programs named in optional whose tracepoint this kernel lacks
    are left out (open() has no tracepoint on arm64, where the system call does not exist)."""
    check_privileges()
    if isinstance(source, cbpf.Object):
        obj = source
    else:
        try:
            obj = cbpf.Object(source, load=False)
        except FileNotFoundError as e:
            raise CliError(f"{what}: {e.strerror}: {e.filename or source}", USAGE) from None
        except OSError as e:
            raise CliError(f"{what}: {e}", USAGE) from None
    try:
        for name, value in (globals_ or {}).items():
            obj.globals[name] = value
        for name, text in (sets or {}).items():
            set_global(obj, name, text)
        for name in optional:
            section = obj.programs[name].section
            _, category, event = (section.split("/", 2) + ["", ""])[:3]
            if tracepoint_exists(category, event) is False:
                obj.programs[name].autoload = False
        obj.load()
        obj.attach()
    except OSError as e:
        obj.close()
        raise explain_kernel_error(e, what) from None
    except BaseException:
        obj.close()
        raise
    return obj


def run_intervals(duration: float | None, interval: float, tick: Callable[[bool], None]) -> None:
    """Calls tick(last) every interval seconds until duration has passed (forever when None) or Ctrl-C; the last
    call, at the end or on Ctrl-C, has last=True."""
    start = time.monotonic()
    deadline = None if duration is None else start + duration
    next_tick = start + interval
    try:
        while True:
            now = time.monotonic()
            wake = next_tick if deadline is None else min(next_tick, deadline)
            if wake > now:
                time.sleep(wake - now)
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            tick(False)
            next_tick += interval
    except KeyboardInterrupt:
        pass
    tick(True)


def status(message: str) -> None:
    """A line for the person watching, on stderr (stdout stays for the data): said once the programs are attached."""
    import sys

    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def comm_of(raw: Any) -> str:
    if isinstance(raw, bytes):
        return raw.split(b"\0", 1)[0].decode("utf-8", "replace")
    return str(raw)

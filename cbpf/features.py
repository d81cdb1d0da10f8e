"""What the running kernel supports, asked of the kernel itself.

Every probe answers True or False and is cached for the life of the process (the kernel does not change under a
running program). A feature that is absent is False, never an exception; PermissionError only where probing needs
a privilege the process lacks. Decide by these, not by the kernel's version number:

    import cbpf.features as features
    if features.fentry("do_unlinkat"):
        obj.programs["unlink_kprobe"].autoload = False
    else:
        obj.programs["unlink_fentry"].autoload = False
"""

from __future__ import annotations

import functools
import os
import re
from typing import Union

from cbpf import _cbpf
from cbpf._maps import MapType
from cbpf._programs import ProgramType

__all__ = ["bpf_cookie", "bpf_link", "btf_field", "btf_type", "fentry", "helper", "kernel_function", "kprobes",
           "map_type", "program_type", "raw_tracepoint", "ringbuf", "tracepoint"]

TypeArg = Union[int, str]

_TRACEFS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")


def _enum_value(enum: type[ProgramType] | type[MapType], value: TypeArg, what: str) -> int:
    if isinstance(value, str):
        try:
            return int(enum[value.upper()])
        except KeyError:
            raise ValueError(f"unknown {what} {value!r} (see cbpf.{enum.__name__})") from None
    return int(value)


@functools.lru_cache(maxsize=None)
def program_type(t: TypeArg) -> bool:
    """Whether the kernel loads programs of type t (a ProgramType or its name)."""
    return bool(_cbpf._probe_prog_type(_enum_value(ProgramType, t, "program type")))


@functools.lru_cache(maxsize=None)
def map_type(t: TypeArg) -> bool:
    """Whether the kernel creates maps of type t (a MapType or its name)."""
    return bool(_cbpf._probe_map_type(_enum_value(MapType, t, "map type")))


@functools.lru_cache(maxsize=1)
def _helper_ids() -> dict[str, int]:
    """Helper numbers by name, from libbpf's bpf_helper_defs.h that cbpf ships."""
    from cbpf import include_dir

    with open(os.path.join(include_dir(), "bpf", "bpf_helper_defs.h")) as f:
        text = f.read()
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"\(\* const bpf_(\w+)\)\(.*?\) = \(void \*\) (\d+);",
                                                            text, re.S)}


def _helper_id(helper: TypeArg) -> int:
    if isinstance(helper, int):
        return helper
    name = helper[4:] if helper.startswith("bpf_") else helper
    try:
        return _helper_ids()[name]
    except KeyError:
        raise ValueError(f"unknown BPF helper {helper!r}") from None


@functools.lru_cache(maxsize=None)
def helper(program_type: TypeArg, helper: TypeArg) -> bool:
    """Whether programs of program_type may call helper (its number, or its name: "get_attach_cookie" or
    "bpf_get_attach_cookie")."""
    return bool(_cbpf._probe_helper(_enum_value(ProgramType, program_type, "program type"), _helper_id(helper)))


def _tracefs() -> str | None:
    """The tracefs directory, mounted at /sys/kernel/tracing when missing and possible. PermissionError when it is
    there but this process may not look inside (tracefs is root's)."""
    for d in _TRACEFS:
        if os.path.isdir(d) and not os.access(d, os.R_OK | os.X_OK):
            raise PermissionError(f"probing needs {d} (tracefs), which only root may read: run as root")
        if os.path.isdir(os.path.join(d, "events")):
            return d
    if os.geteuid() == 0 and os.path.isdir(_TRACEFS[0]):
        import subprocess

        subprocess.run(["mount", "-t", "tracefs", "tracefs", _TRACEFS[0]], capture_output=True)
        if os.path.isdir(os.path.join(_TRACEFS[0], "events")):
            return _TRACEFS[0]
    return None


@functools.lru_cache(maxsize=1)
def kprobes() -> bool:
    """Whether the kernel has kprobes (CONFIG_KPROBES): its kprobe PMU or tracefs' kprobe_events."""
    if os.path.exists("/sys/bus/event_source/devices/kprobe"):
        return True
    tracefs = _tracefs()
    return tracefs is not None and os.path.exists(os.path.join(tracefs, "kprobe_events"))


@functools.lru_cache(maxsize=1)
def _traceable_functions() -> frozenset[str]:
    tracefs = _tracefs()
    path = os.path.join(tracefs, "available_filter_functions") if tracefs else None
    names: set[str] = set()
    if path and os.path.exists(path):
        try:
            with open(path) as f:
                for line in f:
                    names.add(line.split(None, 1)[0])
            return frozenset(names)
        except PermissionError:  # a kernel that lists it but refuses to read it (this happens under lockdown)
            names.clear()
    with open("/proc/kallsyms") as f:  # without ftrace: the kernel's text symbols
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[1] in ("t", "T"):
                names.add(parts[2])
    return frozenset(names)


@functools.lru_cache(maxsize=None)
def kernel_function(name: str) -> bool:
    """Whether name is a kernel function that can be traced (listed in tracefs' available_filter_functions, or in
    /proc/kallsyms' text symbols where ftrace is missing)."""
    return name in _traceable_functions()


@functools.lru_cache(maxsize=None)
def fentry(name: str) -> bool:
    """Whether an fentry program can attach to the kernel function name: loads one and attaches it for real."""
    return bool(_cbpf._probe_fentry(name))


@functools.lru_cache(maxsize=None)
def tracepoint(category: str, name: str) -> bool:
    """Whether the tracepoint category/name exists (tracefs is mounted when missing)."""
    tracefs = _tracefs()
    return tracefs is not None and os.path.exists(os.path.join(tracefs, "events", category, name, "id"))


@functools.lru_cache(maxsize=None)
def raw_tracepoint(name: str) -> bool:
    """Whether a raw tracepoint program attaches to name: attaches one that returns at once, and detaches it."""
    return bool(_cbpf._probe_raw_tracepoint(name))


@functools.lru_cache(maxsize=None)
def btf_type(name: str) -> bool:
    """Whether the running kernel's BTF has a type (struct, union, enum, typedef, function) called name."""
    return bool(_cbpf._probe_btf(name))


@functools.lru_cache(maxsize=None)
def btf_field(type_name: str, field: str) -> bool:
    """Whether the kernel's struct or union type_name has the member field (or its enum the value field): what a
    CO-RE program checks with bpf_core_field_exists()."""
    return bool(_cbpf._probe_btf(type_name, field))


@functools.lru_cache(maxsize=1)
def ringbuf() -> bool:
    """Whether the kernel has BPF ring buffers (BPF_MAP_TYPE_RINGBUF, 5.8+); else use a PerfBuffer."""
    return map_type(MapType.RINGBUF)


@functools.lru_cache(maxsize=None)
def bpf_link(kind: str) -> bool:
    """Whether the kernel has BPF links of this kind ("xdp", "tcx", "perf_event", "kprobe_multi", "netfilter", ...:
    libbpf's names), as its BTF's enum bpf_link_type says. Where it lacks one, cbpf falls back (a clsact filter for
    tc, an ioctl for perf events) or says so."""
    known = _cbpf._link_types()
    if kind not in known:
        raise ValueError(f"unknown BPF link kind {kind!r}; known: {', '.join(sorted(known))}")
    return btf_field("bpf_link_type", f"BPF_LINK_TYPE_{kind.upper()}")


@functools.lru_cache(maxsize=1)
def bpf_cookie() -> bool:
    """Whether programs can read the cookie given at attach time (bpf_get_attach_cookie, 5.15+)."""
    return helper("tracepoint", "get_attach_cookie")

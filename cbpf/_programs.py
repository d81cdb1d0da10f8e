"""Enums for programs and their attachment, built from the numbers libbpf and the kernel headers give the C core."""

from __future__ import annotations

import enum

from cbpf import _cbpf

ProgramType = enum.IntEnum(  # type: ignore[misc]
    "ProgramType", {name.upper(): num for name, num in _cbpf._prog_types().items()})
ProgramType.__doc__ = "BPF program types, as libbpf names them (ProgramType.XDP == Program.type for XDP programs)."

AttachType = enum.IntEnum(  # type: ignore[misc]
    "AttachType", {name.upper(): num for name, num in _cbpf._attach_types().items()})
AttachType.__doc__ = "BPF attach types, as libbpf names them (for Program.attach_cgroup's attach_type)."

_perf = _cbpf._perf_constants()
PerfType = enum.IntEnum("PerfType", _perf["type"])  # type: ignore[misc]
PerfType.__doc__ = "perf_event_open(2) event types, for Program.attach_perf_event's type."
PerfHardware = enum.IntEnum("PerfHardware", _perf["hardware"])  # type: ignore[misc]
PerfHardware.__doc__ = "Hardware event configs (with PerfType.HARDWARE)."
PerfSoftware = enum.IntEnum("PerfSoftware", _perf["software"])  # type: ignore[misc]
PerfSoftware.__doc__ = "Software event configs (with PerfType.SOFTWARE)."
del _perf

"""cbpf: load eBPF programs into the Linux kernel and read their maps fast.

    import cbpf
    cbpf.boot("counter.bpf.o")     # load every map and program, attach every program by its section name
    cbpf.fetch("counts", 1234)     # -> int, or None when the key is absent
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any, Union

from cbpf._cbpf import BPF_ANY, BPF_EXIST, BPF_F_LOCK, BPF_NOEXIST, Link, LoadError, Program, fetch, libbpf_version
from cbpf._cbpf import num_possible_cpus
from cbpf._boot import registry as _registry
from cbpf._maps import Globals, Map, MapFlag, MapType, Object
from cbpf._btf import Struct, Type
from cbpf._symbols import ksym, usym

if TYPE_CHECKING:
    from cbpf._compile import compile as compile  # noqa: A004 (cbpf.compile, kept out of __all__)
    from cbpf._compile import vmlinux_h
    from cbpf._events import PerfBuffer, RingBuffer
    from cbpf._histogram import Histogram
    from cbpf._toolchain import CompileError
    from cbpf._programs import AttachType, PerfHardware, PerfSoftware, PerfType, ProgramType

# imported on first use: their enums and classes take milliseconds to build, and most programs never touch them
_LAZY = {"Histogram": "_histogram", "PerfBuffer": "_events", "RingBuffer": "_events", "AttachType": "_programs",
         "PerfHardware": "_programs", "PerfSoftware": "_programs", "PerfType": "_programs", "ProgramType": "_programs",
         "compile": "_compile", "vmlinux_h": "_compile", "CompileError": "_toolchain"}


def __getattr__(name: str) -> Any:
    if name == "features":  # a submodule: its probes import the enums
        return importlib.import_module("cbpf.features")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cbpf' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"cbpf.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


# cbpf.compile is left out of __all__: `from cbpf import *` must not hide the builtin compile()
__all__ = [
    "BPF_ANY", "BPF_EXIST", "BPF_F_LOCK", "BPF_NOEXIST", "AttachType", "CompileError", "Globals", "Histogram",
    "Link", "LoadError", "Map", "MapFlag", "MapType", "Object", "PerfBuffer", "PerfHardware", "PerfSoftware",
    "PerfType", "Program", "ProgramType", "RingBuffer", "Struct", "Type", "features",
    "boot", "booted", "fetch", "include_dir", "ksym", "libbpf_version", "num_possible_cpus", "shutdown", "usym",
    "vmlinux_h",
]

__version__ = "0.1.0"

Source = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview]


def boot(source: Source, *, name: str | None = None) -> Object:
    """Loads every map and program of a BPF ELF object and attaches every program by its section name.

    source is an ELF object (a path, or its bytes) or a BPF C file (a path ending in .c), compiled first with
    cbpf.compile() and its cache.

    The object stays loaded for the life of the process (or until its close()). Its maps become reachable by
    name through fetch(); a name that several booted objects share must be read through Object.maps instead.
    """
    obj = Object(source, name=name)
    _registry.add(obj)
    return obj


def booted() -> tuple[Object, ...]:
    """The objects boot() has loaded, oldest first."""
    return tuple(_registry.objects)


def shutdown() -> None:
    """Closes every object boot() loaded (detaching their programs) and forgets their map names."""
    _registry.close_all()


def include_dir() -> str:
    """The directory holding libbpf's headers for BPF C (bpf/bpf_helpers.h, ...): pass it to clang with -I."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "include")

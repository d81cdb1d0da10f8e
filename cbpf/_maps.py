"""The conveniences on top of the C Map and Object: iteration, dicts, numpy, globals, enums."""

from __future__ import annotations

import enum
import os
import sys
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from cbpf import _btf, _cbpf

if TYPE_CHECKING:
    # what type checkers see; at run time the members come from the linked libbpf (a test keeps the two equal)
    class MapType(enum.IntEnum):
        UNSPEC = 0
        HASH = 1
        ARRAY = 2
        PROG_ARRAY = 3
        PERF_EVENT_ARRAY = 4
        PERCPU_HASH = 5
        PERCPU_ARRAY = 6
        STACK_TRACE = 7
        CGROUP_ARRAY = 8
        LRU_HASH = 9
        LRU_PERCPU_HASH = 10
        LPM_TRIE = 11
        ARRAY_OF_MAPS = 12
        HASH_OF_MAPS = 13
        DEVMAP = 14
        SOCKMAP = 15
        CPUMAP = 16
        XSKMAP = 17
        SOCKHASH = 18
        CGROUP_STORAGE = 19
        REUSEPORT_SOCKARRAY = 20
        PERCPU_CGROUP_STORAGE = 21
        QUEUE = 22
        STACK = 23
        SK_STORAGE = 24
        DEVMAP_HASH = 25
        STRUCT_OPS = 26
        RINGBUF = 27
        INODE_STORAGE = 28
        TASK_STORAGE = 29
        BLOOM_FILTER = 30
        USER_RINGBUF = 31
        CGRP_STORAGE = 32
        ARENA = 33
        INSN_ARRAY = 34
else:
    MapType = enum.IntEnum("MapType", {name.upper(): num for name, num in _cbpf._map_types().items()})
MapType.__doc__ = "BPF map types, as libbpf names them (MapType.HASH, MapType.PERCPU_ARRAY, ...)."


class MapFlag(enum.IntFlag):
    """Flags for Map.create()."""

    NO_PREALLOC = _cbpf.BPF_F_NO_PREALLOC
    NO_COMMON_LRU = _cbpf.BPF_F_NO_COMMON_LRU
    RDONLY_PROG = _cbpf.BPF_F_RDONLY_PROG
    WRONLY_PROG = _cbpf.BPF_F_WRONLY_PROG
    MMAPABLE = _cbpf.BPF_F_MMAPABLE


_ARRAYS = (MapType.ARRAY, MapType.PERCPU_ARRAY)
_U32_KEYED = (MapType.ARRAY, MapType.PERCPU_ARRAY, MapType.STACK_TRACE)
_FD_VALUES = (MapType.PROG_ARRAY, MapType.PERF_EVENT_ARRAY, MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS)
_U32: _btf.Desc = ("int", 4, False, False, False)


def _typed(desc: _btf.Desc, name: str | None = None) -> _btf.Type | None:
    """The Type of a map's BTF key or value; None (bytes, as without BTF) for a layout the codec has no rule for
    (a bitfield wider than 64 bits), rather than a map that cannot be read."""
    try:
        return _btf.make_type(name or _btf.type_name(desc), desc)
    except (TypeError, ValueError):
        return None
_CHUNK = 8192  # keys(), values(), items(): entries a system call, as the C batch loop reads



def _map_type(t: int | str) -> int:
    if isinstance(t, str):
        try:
            return MapType[t.upper()]
        except KeyError:
            raise ValueError(f"unknown map type {t!r}; known: {', '.join(m.name.lower() for m in MapType)}") from None
    return int(t)


class Map(_cbpf.Map):
    """A BPF map. Keys and values are ints (packed to the map's sizes) or buffers of exactly their size.

    Reading many entries uses BPF_MAP_LOOKUP_BATCH where the kernel offers it for the map type, and a bounded
    BPF_MAP_GET_NEXT_KEY walk elsewhere.
    """

    __slots__ = ()

    @classmethod
    def create(cls, type: int | str, key_size: int, value_size: int, max_entries: int,  # noqa: A002
               flags: int = 0, name: str | None = None, inner_map: _cbpf.Map | None = None,
               map_extra: int = 0) -> Map:
        """Creates a map of its own (type a MapType or a name such as "hash"); close() frees it."""
        return super().create(_map_type(type), key_size, value_size, max_entries, flags=int(flags), name=name,
                              inner_map=inner_map, map_extra=map_extra)

    @property
    def map_type(self) -> MapType:
        return MapType(self.type)

    def __enter__(self) -> Map:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.object is None:
            self.close()

    # -- values as Python sees them --------------------------------------------------------------------------

    def _decoded(self, what: int) -> Iterator[Any]:
        return self._iter_decoded(what, _CHUNK)

    def keys(self) -> Iterator[Any]:
        """The keys, decoded by key_type (bytes when untyped), read a chunk at a time."""
        return self._decoded(0)

    __iter__ = keys

    def values(self) -> Iterator[Any]:
        """The values, decoded by value_type (bytes when untyped; a list of one per possible CPU on per-CPU maps)."""
        return self._decoded(1)

    def items(self) -> Iterator[tuple[Any, Any]]:
        """(key, value) pairs, decoded as keys() and values() are, read a chunk at a time."""
        return self._decoded(2)

    def to_dict(self) -> dict[Any, Any]:
        """The whole map in one batch pass, decoded by key_type and value_type (per-CPU values as a list of one per
        possible CPU). Untyped keys and values of 1, 2, 4 or 8 bytes become ints (per-CPU values summed, as
        fetch() does); other sizes stay bytes."""
        return self._dump_dict()  # type: ignore[no-any-return]

    # -- types -----------------------------------------------------------------------------------------------

    def set_types(self, key: Any = None, value: Any = None) -> None:
        """Types the keys and values of a map without BTF (a legacy object's, Map.create()'s), or overrides the
        BTF's: each a cbpf.Type or cbpf.Struct, a ctypes type (c_uint32, a Structure...), a numpy dtype, or an
        int format of the struct module ("I", "Q", "i", "?"). None keeps the current type."""
        key_type = self.key_type if key is None else _btf.as_type(key)
        value_type = self.value_type if value is None else _btf.as_type(value)
        self._set_codecs(key_type, value_type)

    def _resolve_types(self) -> None:
        """The key and value types from the map's BTF (called by the C layer on first typed use)."""
        key_type = value_type = None
        key_desc = self._describe(self.btf_key_type_id)
        value_desc = self._describe(self.btf_value_type_id)
        if key_desc is not None:
            key_type = _typed(key_desc)
        elif self.type in _U32_KEYED and (self.type == MapType.STACK_TRACE or "." in self.name):
            key_type = _btf.make_type("u32", _U32)
        if self.type == MapType.STACK_TRACE:
            value_desc = ("stack", self.value_size)
        elif self.type in _FD_VALUES:
            value_desc = None
        if value_desc is not None:
            value_type = _typed(value_desc, self.name if value_desc[0] == "datasec" else None)
        self._set_codecs(key_type, value_type)

    def to_numpy(self) -> tuple[Any, Any]:
        """The whole map in one batch pass as numpy arrays (keys, values), with no per-entry Python objects.

        dtypes come from the map's BTF (structured dtypes for structs) or the sizes; per-CPU values have shape
        (n, ncpus).
        """
        import numpy as np

        keys, values, count = self._dump_raw()
        key_dtype, value_dtype = self.dtypes()
        k = np.frombuffer(keys, dtype=key_dtype, count=count) if self.key_size else np.empty(0, key_dtype)
        if self.ncpus == 1:
            v = np.frombuffer(values, dtype=value_dtype, count=count)
        else:
            per_cpu = np.dtype({"names": ["v"], "formats": [value_dtype], "offsets": [0],
                                "itemsize": self.value_stride})
            v = np.frombuffer(values, dtype=per_cpu, count=count * self.ncpus)["v"]
            v = v.reshape((count, self.ncpus) + value_dtype.shape)  # an array value keeps its own axes
        return k, v

    dump = to_numpy

    def dtypes(self) -> tuple[Any, Any]:
        """numpy dtypes of (key, value), from the BTF where the map has it."""
        return (_btf.dtype(self._describe(self.btf_key_type_id), self.key_size),
                _btf.dtype(self._describe(self.btf_value_type_id), self.value_size))

    def _describe(self, type_id: int) -> _btf.Desc | None:
        obj = self.object
        if obj is None or not type_id or obj.closed:
            return None
        return obj._btf_describe(type_id)

    def as_numpy(self) -> Any:
        """A numpy view (no copy) over an mmapped array's kernel memory: writes by BPF programs show through."""
        import numpy as np

        value_dtype = self.dtypes()[1]
        stride = (self.value_size + 7) & ~7
        if stride != value_dtype.itemsize:
            value_dtype = np.dtype({"names": ["v"], "formats": [value_dtype], "offsets": [0], "itemsize": stride})
            return np.frombuffer(self.memoryview(), dtype=value_dtype)["v"]
        return np.frombuffer(self.memoryview(), dtype=value_dtype)

    def clear(self) -> None:
        """Removes every entry; arrays, which cannot lose entries, are zeroed."""
        if self.type in _ARRAYS:
            n = self.max_entries
            keys = b"".join(i.to_bytes(4, sys.byteorder) for i in range(n))
            self.update_batch(keys, bytes(self.value_stride * self.ncpus * n))
            return
        for _ in range(8):  # entries a BPF program adds meanwhile may need another pass
            keys, _, count = self._dump_raw()
            if count == 0:
                return
            try:
                self.delete_batch(keys)
            except OSError:
                for i in range(count):
                    self.delete(keys[i * self.key_size:(i + 1) * self.key_size])




class Globals(Mapping[str, Any]):
    """An object's global variables (.bss, .data, .rodata, ...) by name, decoded through BTF.

    Reading and writing go straight to the kernel's memory once loaded. .rodata is writable only before load
    (Object(path, load=False)); after load the kernel has frozen it.
    """

    def __init__(self, obj: Object) -> None:
        self._obj = obj
        self._vars: dict[str, tuple[Map, int, _btf.Type]] = {}
        for m in obj.maps.values():
            if not m.btf_value_type_id or "." not in m.name:
                continue
            desc = obj._btf_describe(m.btf_value_type_id)
            if desc is None or desc[0] != "datasec":
                continue
            for name, offset, _size, vtype in desc[2]:
                self._vars[name] = (m, offset, _btf.make_type(name, vtype))

    def _lookup(self, name: str) -> tuple[Map, int, _btf.Type]:
        try:
            return self._vars[name]
        except KeyError:
            raise KeyError(f"no global variable {name!r}; globals: {', '.join(sorted(self._vars)) or '(none)'}") \
                from None

    def type(self, name: str) -> _btf.Type:
        """The cbpf.Type of the global variable called name."""
        return self._lookup(name)[2]

    def __getitem__(self, name: str) -> Any:
        m, offset, vtype = self._lookup(name)
        if m.mmapped:
            return vtype.codec(m.memoryview()[offset:offset + vtype.size])
        return vtype.codec(m._initial_value(offset, vtype.size))

    def __setitem__(self, name: str, value: Any) -> None:
        m, offset, vtype = self._lookup(name)
        raw = vtype.codec.encode(value, f"global {name!r}")
        if self._obj.loaded:
            if not m.mmapped or not m.writable:
                raise ValueError(f"global {name!r} lives in {m.name!r}, which is read-only after load: set it "
                                 "before load (Object(path, load=False), then load())")
            m.memoryview()[offset:offset + len(raw)] = raw
        else:
            m._initial_value(offset, len(raw), raw)

    def __iter__(self) -> Iterator[str]:
        return iter(self._vars)

    def __len__(self) -> int:
        return len(self._vars)


class Object(_cbpf.Object):
    """Object(source, *, name=None, load=True, attach=True, pin_root=None, btf_path=None, kconfig=None)

    A BPF ELF object (a path, or the ELF as bytes), or a BPF C file (a path ending in .c, compiled first with
    cbpf.compile()): opened, loaded and attached by default. close() (or leaving a with block, or garbage
    collection) detaches and frees everything. Object.from_c(text) compiles C text. With load=False, its maps and
    programs can be configured before load(); pin_root, btf_path and kconfig: see docs/guide/before-load.md.
    """

    def __new__(cls, source: _cbpf._Source, *, name: str | None = None, load: bool = True,
                attach: bool = True, pin_root: str | os.PathLike[str] | None = None,
                btf_path: str | os.PathLike[str] | None = None,
                kconfig: str | dict[str, bool | int | str] | None = None) -> Object:
        if isinstance(source, (str, os.PathLike)) and os.fspath(source).endswith(".c"):
            from cbpf import _compile

            name = name if name is not None else _compile.object_name(source)
            source = _compile.compile(source)
        obj = super().__new__(cls, source, name=name, load=load, attach=attach, pin_root=pin_root,
                              btf_path=btf_path, kconfig=kconfig)
        # C makes an object's maps as its own Map type, knowing nothing of this layer; they are handed out here as
        # cbpf.Map, which adds methods and no state (__slots__ = ()), so changing their class is all it takes
        for m in obj.maps.values():
            if type(m) is _cbpf.Map:
                m.__class__ = Map
        return obj

    @classmethod
    def from_c(cls, text: str | bytes, *, name: str | None = None, load: bool = True, attach: bool = True,
               **compile_options: Any) -> Object:
        """An object compiled from BPF C text by cbpf.compile(text, **compile_options) (cflags=, defines=,
        include_dirs=, compiler=, cache=, btf_path=, timeout=), then opened, loaded and attached as Object()."""
        from cbpf import _compile

        return cls(_compile.compile(text, **compile_options), name=name, load=load, attach=attach)

    @property
    def globals(self) -> Globals:
        """Global variables by name (see Globals)."""
        if self.legacy:
            raise ValueError(f"object {self.name!r} is a legacy object (struct bpf_map_def maps): legacy objects have "
                             "no BTF and no global variables")
        found: Globals | None = self.__dict__.get("_globals")
        if found is None:  # the BTF is read once per object
            found = self.__dict__["_globals"] = Globals(self)
        return found

    def btf_struct(self, name: str) -> _btf.Struct:
        """The struct (or union, or a typedef of one) called name in the object's BTF, as a cbpf.Struct: it decodes
        bytes laid out that way (an event of a RingBuffer or PerfBuffer) into a named tuple, and gives the numpy
        dtype."""
        return _btf.struct_of(self, name)

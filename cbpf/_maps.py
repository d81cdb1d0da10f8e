"""The conveniences on top of the C Map and Object: iteration, dicts, numpy, globals, enums."""

from __future__ import annotations

import enum
import sys
from typing import TYPE_CHECKING, Any, Iterator, Literal, Mapping, Union

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
_CHUNK = 4096
_INT_FORMATS: dict[int, Literal["B", "H", "I", "Q"]] = {1: "B", 2: "H", 4: "I", 8: "Q"}

Value = Union[bytes, "list[bytes]"]


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

    def _split_values(self, values: bytes, count: int) -> list[Value]:
        vs, stride, ncpus = self.value_size, self.value_stride, self.ncpus
        if ncpus == 1:
            return [values[i * vs:(i + 1) * vs] for i in range(count)]
        per = stride * ncpus
        return [[values[i * per + c * stride:i * per + c * stride + vs] for c in range(ncpus)]
                for i in range(count)]

    def _chunks(self) -> Iterator[tuple[bytes, bytes, int]]:
        cursor = None
        while True:
            keys, values, count, cursor = self._read_chunk(cursor, _CHUNK)
            if count:
                yield keys, values, count
            if cursor is None:
                return

    def keys(self) -> Iterator[bytes]:
        """The keys as bytes, read a chunk at a time."""
        ks = self.key_size
        for keys, _, count in self._chunks():
            for i in range(count):
                yield keys[i * ks:(i + 1) * ks]

    __iter__ = keys

    def values(self) -> Iterator[Value]:
        """The values as bytes (a list of bytes per CPU on per-CPU maps)."""
        for _, values, count in self._chunks():
            yield from self._split_values(values, count)

    def items(self) -> Iterator[tuple[bytes, Value]]:
        """(key, value) pairs of bytes, read a chunk at a time."""
        ks = self.key_size
        for keys, values, count in self._chunks():
            for i, v in enumerate(self._split_values(values, count)):
                yield keys[i * ks:(i + 1) * ks], v

    def get(self, key: Any, default: Any = None) -> Any:
        value = self.lookup(key)
        return default if value is None else value

    def to_dict(self) -> dict[Any, Any]:
        """The whole map in one batch pass. Keys and values of 1, 2, 4 or 8 bytes become ints (per-CPU values
        summed, as fetch() does); other sizes stay bytes."""
        fast = self._dump_dict()
        if fast is not NotImplemented:
            return fast  # type: ignore[no-any-return]
        keys, values, count = self._dump_raw()
        kf, vf = _INT_FORMATS.get(self.key_size), _INT_FORMATS.get(self.value_size)
        ks = self.key_size
        key_list = (memoryview(keys).cast(kf).tolist() if kf
                    else [keys[i * ks:(i + 1) * ks] for i in range(count)])
        if vf and self.ncpus == 1:
            value_list: list[Any] = memoryview(values).cast(vf).tolist()
        elif vf:  # per-CPU: the sum over CPUs, as fetch() gives
            flat = memoryview(values).cast(vf).tolist()
            step = self.value_stride // self.value_size
            per = self.ncpus * step
            value_list = [sum(flat[i * per:(i + 1) * per:step]) for i in range(count)]
        else:
            value_list = self._split_values(values, count)
        return dict(zip(key_list, value_list))

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
            v = np.frombuffer(values, dtype=per_cpu, count=count * self.ncpus)["v"].reshape(count, self.ncpus)
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


_cbpf._register_map_class(Map)


class Globals(Mapping[str, Any]):
    """An object's global variables (.bss, .data, .rodata, ...) by name, decoded through BTF.

    Reading and writing go straight to the kernel's memory once loaded. .rodata is writable only before load
    (Object(path, load=False)); after load the kernel has frozen it.
    """

    def __init__(self, obj: Object) -> None:
        self._obj = obj
        self._vars: dict[str, tuple[Map, int, _btf.Desc]] = {}
        for m in obj.maps.values():
            if not m.btf_value_type_id or "." not in m.name:
                continue
            desc = obj._btf_describe(m.btf_value_type_id)
            if desc is None or desc[0] != "datasec":
                continue
            for name, offset, _size, vtype in desc[2]:
                self._vars[name] = (m, offset, vtype)

    def _lookup(self, name: str) -> tuple[Map, int, _btf.Desc]:
        try:
            return self._vars[name]
        except KeyError:
            raise KeyError(f"no global variable {name!r}; globals: {', '.join(sorted(self._vars)) or '(none)'}") \
                from None

    def __getitem__(self, name: str) -> Any:
        m, offset, vtype = self._lookup(name)
        size = _btf.size_of(vtype)
        if m.mmapped:
            return _btf.decode(vtype, m.memoryview(), offset)
        return _btf.decode(vtype, m._initial_value(offset, size))

    def __setitem__(self, name: str, value: Any) -> None:
        m, offset, vtype = self._lookup(name)
        try:
            raw = _btf.encode(vtype, value)
        except (TypeError, ValueError, OverflowError, KeyError) as e:
            raise type(e)(f"global {name!r}: {e.args[0] if e.args else e}") from None
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
    __doc__ = _cbpf.Object.__doc__

    @property
    def globals(self) -> Globals:
        """Global variables by name (see Globals)."""
        if self.legacy:
            raise ValueError(f"object {self.name!r} is a legacy object (struct bpf_map_def maps): legacy objects have "
                             "no BTF and no global variables")
        return Globals(self)

    def btf_struct(self, name: str) -> _btf.Struct:
        """The struct (or union, or a typedef of one) called name in the object's BTF, as a cbpf.Struct: it decodes
        bytes laid out that way (an event of a RingBuffer or PerfBuffer) into a named tuple, and gives the numpy
        dtype."""
        return _btf.struct_of(self, name)

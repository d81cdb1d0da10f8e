"""Values laid out as C types: one codec (cbpf._cbpf._Decoder, in C) per type, from BTF, ctypes, numpy or a format.

The C layer describes a BTF type as nested tuples (Object._btf_describe); ctypes types, numpy dtypes and int
formats are turned into the same tuples here; this module turns those into codecs (plans of src/codec.h) and
numpy dtypes. The rules, one per kind: ints as int (with their signedness), bool as bool, enums as int, floats as
float, char[N] as str up to the first NUL, other byte arrays as bytes, other arrays as tuples, structs and unions
as named tuples, 128-bit ints as int, bitfields as int.
"""

from __future__ import annotations

import os
from typing import Any, Tuple

Desc = Tuple[Any, ...]



def size_of(desc: Desc) -> int:
    kind = desc[0]
    if kind == "array":
        return size_of(desc[1]) * int(desc[2])
    return int(desc[1])


def dtype(desc: Desc | None, size: int) -> Any:
    """A numpy dtype for desc (size bytes); raw bytes ('V<size>') without BTF."""
    import numpy as np

    if desc is None:
        return np.dtype({1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}.get(size, f"V{size}"))
    kind = desc[0]
    if kind == "int":
        if desc[1] in (1, 2, 4, 8):
            return np.dtype(("i" if desc[2] else "u") + str(desc[1]))
        return np.dtype(f"V{desc[1]}")
    if kind == "float":
        return np.dtype("f" + str(desc[1]))
    if kind == "array":
        elem = desc[1]
        if elem[0] == "int" and elem[1] == 1 and (not elem[2] or _is_char(elem)):
            return np.dtype(f"S{desc[2]}")
        return np.dtype((dtype(elem, size_of(elem)), (desc[2],)))
    if kind in ("struct", "union"):
        fields = [f for f in desc[2] if not f[2]]  # bitfields have no numpy field
        return np.dtype({
            "names": [f[0] or f"_{i}" for i, f in enumerate(fields)],
            "formats": [dtype(f[3], size_of(f[3])) for f in fields],
            "offsets": [f[1] for f in fields],
            "itemsize": desc[1],
        })
    return np.dtype(f"V{desc[1]}")



# -- the kinds -------------------------------------------------------------------------------------------------------

def _is_char(desc: Desc) -> bool:
    return desc[0] == "int" and desc[1] == 1 and len(desc) > 3 and bool(desc[3])


def _is_bool(desc: Desc) -> bool:
    return desc[0] == "int" and len(desc) > 4 and bool(desc[4])


def _identifier(label: str) -> str:
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in label) or "anonymous"
    return "_" + name if name[0].isdigit() else name


def type_name(desc: Desc) -> str:
    """A C-like name of a described type: u32, s64, bool, char[16], struct (28 bytes)..."""
    kind = desc[0]
    if kind == "int":
        if _is_bool(desc):
            return "bool"
        if _is_char(desc):
            return "char"
        return ("s" if desc[2] else "u") + str(8 * desc[1])
    if kind == "float":
        return {2: "half", 4: "float", 8: "double"}.get(desc[1], f"float{8 * desc[1]}")
    if kind == "array":
        return f"{type_name(desc[1])}[{desc[2]}]"
    if kind == "stack":
        return f"stack trace ({desc[1] // 8} addresses)"
    if len(desc) > 3 and desc[3]:
        return f"{kind} {desc[3]}"
    return f"{kind} ({desc[1]} bytes)"


Member = Tuple[Any, int, int, Desc, int]  # name (None when anonymous), byte offset, bits, type, bit offset


def _members(desc: Desc) -> list[Member]:
    """(name, byte offset, bits, type, bit offset) of a struct, union or datasec."""
    out = []
    for m in desc[2]:
        if desc[0] == "datasec":
            out.append((m[0] or None, m[1], 0, m[3], m[1] * 8))
        else:
            out.append((m[0] or None, m[1], m[2], m[3], m[4] if len(m) > 4 else m[1] * 8))
    return out


def _anonymous_field(i: int, sub: str) -> property:
    return property(lambda self: getattr(self[i], sub))


def _tuple_type(name: str, members: list[Member], codecs: list[Any]) -> Any:
    """The named tuple of a struct. Anonymous struct and union members keep a place of their own (`_3`), and
    their fields are reachable by name as in C (a property each)."""
    from collections import namedtuple

    base = namedtuple(_identifier(name), [m[0] or f"_{i}" for i, m in enumerate(members)],  # type: ignore[misc]
                      rename=True)
    anonymous = [(i, c) for i, (m, c) in enumerate(zip(members, codecs)) if not m[0] and c is not None]
    if not anonymous:
        return base
    props: dict[str, Any] = {"__slots__": ()}
    for i, codec in anonymous:
        for sub in codec.type._fields:
            if sub not in base._fields and sub not in props:
                props[sub] = _anonymous_field(i, sub)
        for sub in getattr(codec.type, "_anonymous_fields", ()):
            props.setdefault(sub, _anonymous_field(i, sub))
    props["_anonymous_fields"] = tuple(k for k in props if k not in ("__slots__",))
    return type(base.__name__, (base,), props)


def codec(desc: Desc, name: str) -> Any:
    """The C codec (cbpf._cbpf._Decoder) of a described type: a struct or union (or datasec) gives named tuples,
    anything else a lone value."""
    from cbpf import _cbpf

    kind = desc[0]
    if kind in ("struct", "union", "datasec"):
        members = _members(desc)
        own = desc[3] if len(desc) > 3 and desc[3] else name
        fields = [_field(mtype, off, mname, bits, bitoff, own) for mname, off, bits, mtype, bitoff in members]
        tuple_type = _tuple_type(own, members, [f[4] if f[0] == "r" and f[5] is None else None for f in fields])
        return _cbpf._Decoder(tuple_type, desc[1], fields, union=kind == "union")
    return _cbpf._Decoder(None, size_of(desc), [_field(desc, 0, name, 0, 0, name)])


def _field(desc: Desc, offset: int, name: str | None, bits: int, bitoff: int, owner: str) -> tuple[Any, ...]:
    """One member's plan (see src/codec.h): (kind, offset, size, count, extra, name, shift, bits)."""
    kind = desc[0]
    label = name or owner
    if bits:
        if kind != "int" or desc[1] > 8:
            raise TypeError(f"bitfield {label!r} of {owner!r}: a bitfield of a {type_name(desc)} is not decoded")
        shift = bitoff % 8
        return ("i" if desc[2] else "u", bitoff // 8, (shift + bits + 7) // 8, 0, None, name, shift, bits)
    if kind == "int":
        if _is_bool(desc) and desc[1] == 1:
            return ("?", offset, 1, 0, None, name)
        if desc[1] in (1, 2, 4, 8):
            return ("i" if desc[2] else "u", offset, desc[1], 0, None, name)
        if desc[1] == 16:
            return ("x" if desc[2] else "X", offset, 16, 0, None, name)
    if kind == "float" and desc[1] in (4, 8):
        return ("f", offset, desc[1], 0, None, name)
    if kind in ("struct", "union"):
        tname = desc[3] if len(desc) > 3 and desc[3] else name or f"{owner}_anonymous"
        return ("r", offset, desc[1], 0, codec(desc, tname), name)
    if kind == "stack":
        return ("k", offset, 8, desc[1] // 8, None, name)
    if kind == "array":
        elem, count = desc[1], desc[2]
        if elem[0] == "int" and elem[1] == 1 and not _is_bool(elem):
            return ("s" if _is_char(elem) else "b", offset, count, 0, None, name)
        if count == 0:
            return ("b", offset, 0, 0, None, name)  # a flexible array member: nothing of its own
        one = _field(elem, 0, name, 0, 0, owner)
        if one[0] in "iuxX?fr" and len(one) < 7:
            return (one[0], offset, one[2], count, one[4], name)
        return ("r", offset, size_of(elem), count, codec(elem, label), name)  # arrays of arrays, of char arrays
    return ("b", offset, size_of(desc), 0, None, name)  # opaque: half floats, odd-sized ints


# -- types -----------------------------------------------------------------------------------------------------------

class Type:
    """A C type as cbpf reads and writes it: decode(bytes) gives the Python value (see the type rules), encode(value)
    the bytes. Map.key_type and Map.value_type are these; structs and unions are the subclass Struct."""

    __slots__ = ("_dtype", "codec", "desc", "name", "size")

    def __init__(self, name: str, desc: Desc) -> None:
        self.name = name
        self.desc = desc
        self.size: int = size_of(desc) if desc[0] != "stack" else int(desc[1])
        self.codec = codec(desc, name)
        self._dtype: Any = None

    @property
    def decoder(self) -> Any:
        return self.codec

    def decode(self, data: bytes | memoryview | bytearray) -> Any:
        """The value of the bytes (a variable-length event may be shorter: fields past its end come out empty)."""
        return self.codec(data)

    __call__ = decode

    def encode(self, value: Any) -> bytes:
        """The bytes of value: what decode() gives, a tuple, a dict of field names, an int, str or bytes. A value
        that does not fit raises TypeError, ValueError or OverflowError naming the field."""
        return self.codec.encode(value)  # type: ignore[no-any-return]

    @property
    def dtype(self) -> Any:
        """The numpy dtype of the type (bitfields left out; `char` arrays as bytes strings 'S<n>')."""
        if self._dtype is None:
            self._dtype = dtype(self.desc if self.desc[0] != "stack" else ("array", ("int", 8, False), self.size // 8),
                                self.size)
        return self._dtype

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Type) and other.desc == self.desc

    def __hash__(self) -> int:
        return hash(repr(self.desc))

    def __repr__(self) -> str:
        return f"<cbpf.Type {self.name!r} ({self.size} bytes)>"


class Struct(Type):
    """A struct or union: decode(data) (or calling it) gives a named tuple, built in C; encode(value) takes a named
    tuple, tuple or dict of field names (absent fields stay zero).

    Made from an object's BTF (Object.btf_struct(name)), a ctypes Structure or Union, or a numpy structured dtype:
    Struct(ctypes_type) / Struct(dtype), or Struct(name, desc) from described BTF. Fields decode by the type rules
    of cbpf.Type: char arrays as str up to the first NUL, other byte arrays as bytes, other arrays as tuples, nested
    structs as named tuples, bitfields as ints; anonymous members' fields are reachable by name. data may be longer
    than the struct (perf samples are padded) or shorter (a variable-length event: the fields present decode, the
    rest come out empty). dtype is the numpy dtype of the same layout, for batches.
    """

    __slots__ = ()

    def __init__(self, name: Any, desc: Desc | None = None) -> None:
        if desc is None:
            desc = describe(name)
            name = getattr(name, "__name__", None) or "struct"
        if desc[0] not in ("struct", "union", "datasec"):
            raise TypeError(f"type {name!r} is a {type_name(desc)}, not a struct or union")
        super().__init__(name, desc)

    @classmethod
    def from_c(cls, text_or_header: str | bytes | os.PathLike[str], name: str, **compile_options: Any) -> Struct:
        """The struct or union (or typedef of one) called name, declared in C: text, or a header's path (a str
        ending in .h, or os.PathLike). For event structs that clang leaves out of a program's BTF. The C is
        compiled by cbpf.compile(**compile_options) as a types-only object (cached like any compile); a name
        that C does not declare raises KeyError."""
        from cbpf import _compile

        return _compile.struct_from_c(text_or_header, name, compile_options)

    @property
    def type(self) -> Any:
        """The named tuple type decode() makes."""
        return self.codec.type

    @property
    def fields(self) -> tuple[str, ...]:
        return self.codec.type._fields  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"<cbpf.Struct {self.name!r} ({self.size} bytes): {', '.join(self.fields)}>"


def make_type(name: str, desc: Desc) -> Type:
    return Struct(name, desc) if desc[0] in ("struct", "union", "datasec") else Type(name, desc)


def struct_of(obj: Any, name: str) -> Struct:
    """The struct, union or typedef of one called name in a cbpf Object's BTF."""
    if obj.legacy:
        raise ValueError(f"object {obj.name!r} is a legacy object (struct bpf_map_def maps): cbpf loads it with no BTF, "
                         f"so it has no type {name!r} to decode with (pass decode= instead)")
    type_id = obj._btf_find(name)
    desc = obj._btf_describe(type_id) if type_id is not None else None
    if desc is None:
        raise KeyError(f"object {obj.name!r} has no struct or union named {name!r} in its BTF (clang leaves out "
                       "types that only local variables use: see Event streams in the README)")
    return Struct(name, desc)


# -- types given by the user: ctypes, numpy, int formats -------------------------------------------------------------

_FORMATS: dict[str, Desc] = {
    "b": ("int", 1, True, False, False), "B": ("int", 1, False, False, False),
    "h": ("int", 2, True, False, False), "H": ("int", 2, False, False, False),
    "i": ("int", 4, True, False, False), "I": ("int", 4, False, False, False),
    "l": ("int", 8, True, False, False), "L": ("int", 8, False, False, False),
    "q": ("int", 8, True, False, False), "Q": ("int", 8, False, False, False),
    "?": ("int", 1, False, False, True), "c": ("int", 1, True, True, False),
    "f": ("float", 4), "d": ("float", 8),
}


def _from_format(fmt: str) -> Desc:
    code = fmt[1:] if fmt[:1] in "@=<" and len(fmt) == 2 else fmt
    desc = _FORMATS.get(code)
    if desc is None:
        raise ValueError(f"unknown int format {fmt!r}: one of the struct module's codes "
                         f"{' '.join(_FORMATS)} (native byte order)")
    return desc


def _from_ctypes(ct: Any) -> Desc:
    import ctypes

    size = ctypes.sizeof(ct)
    if issubclass(ct, ctypes.Array):
        return ("array", _from_ctypes(ct._type_), ct._length_)
    if issubclass(ct, (ctypes.Structure, ctypes.Union)):
        anonymous = set(getattr(ct, "_anonymous_", ()))
        members = []
        for spec in ct._fields_:
            fname, ftype = spec[0], spec[1]
            cfield = getattr(ct, fname)
            mdesc = _from_ctypes(ftype)
            bits = 0
            bitoff = cfield.offset * 8
            if len(spec) > 2:
                if hasattr(cfield, "bit_size"):  # 3.14 and later
                    bits, bitoff = cfield.bit_size, cfield.byte_offset * 8 + cfield.bit_offset
                else:  # size holds (bits << 16) | bit offset in the storage unit
                    bits, bitoff = cfield.size >> 16, cfield.offset * 8 + (cfield.size & 0xFFFF)
            members.append((None if fname in anonymous else fname, bitoff // 8, bits, mdesc, bitoff))
        return ("union" if issubclass(ct, ctypes.Union) else "struct", size, members)
    code = getattr(ct, "_type_", None)
    if isinstance(code, str):
        if code in "bBhHiIlLqQ":
            return ("int", size, code.islower(), False, False)
        if code in "?cfd":
            return _FORMATS[code]
    raise TypeError(f"cannot describe ctypes type {ct.__name__}: ints, bool, c_char, floats, arrays, Structure and "
                    "Union are")


def _from_dtype(dt: Any) -> Desc:
    if dt.fields is not None and dt.names:
        members = []
        for fname in dt.names:
            fdt, off = dt.fields[fname][:2]
            members.append((fname, off, 0, _from_dtype(fdt), off * 8))
        return ("struct", dt.itemsize, members)
    if dt.subdtype is not None:
        base, shape = dt.subdtype
        desc = _from_dtype(base)
        for n in reversed(shape):
            desc = ("array", desc, n)
        return desc
    if dt.kind in "iu":
        return ("int", dt.itemsize, dt.kind == "i", False, False)
    if dt.kind == "b":
        return ("int", 1, False, False, True)
    if dt.kind == "f" and dt.itemsize in (4, 8):
        return ("float", dt.itemsize)
    if dt.kind == "S":
        return ("array", ("int", 1, True, True, False), dt.itemsize)
    if dt.kind == "V":
        return ("bytes", dt.itemsize)
    raise TypeError(f"cannot describe numpy dtype {dt}: ints, bool, floats, S<n>, V<n>, subarrays and structured "
                    "dtypes are")


def describe(spec: Any) -> Desc:
    """The described type of a ctypes type, a numpy dtype, or an int format ("I", "q", "?": the struct module's)."""
    import ctypes

    if isinstance(spec, str):
        return _from_format(spec)
    if isinstance(spec, type) and issubclass(spec, (ctypes._SimpleCData, ctypes.Structure, ctypes.Union,
                                                    ctypes.Array)):
        return _from_ctypes(spec)
    if type(spec).__module__ == "numpy" or type(spec).__module__.startswith("numpy."):
        import numpy as np

        return _from_dtype(np.dtype(spec))
    raise TypeError(f"a type is a cbpf.Type or Struct, a ctypes type, a numpy dtype or an int format, not "
                    f"{type(spec).__name__}")


def as_type(spec: Any) -> Type:
    """spec as a cbpf.Type (see describe)."""
    if isinstance(spec, Type):
        return spec
    desc = describe(spec)
    name = getattr(spec, "__name__", None) or (spec if isinstance(spec, str) else type_name(desc))
    return make_type(str(name), desc)

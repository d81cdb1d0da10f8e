"""Values laid out by BTF: decode to and encode from Python objects, and numpy dtypes.

The C layer describes a BTF type as nested tuples (Object._btf_describe); this module turns those into codecs.
"""

from __future__ import annotations

import struct
import sys
from typing import Any, Tuple

Desc = Tuple[Any, ...]

_INT_CODES = {1: "b", 2: "h", 4: "i", 8: "q"}
_FLOAT_CODES = {2: "e", 4: "f", 8: "d"}


def size_of(desc: Desc) -> int:
    kind = desc[0]
    if kind == "array":
        return size_of(desc[1]) * int(desc[2])
    return int(desc[1])


def _int_code(desc: Desc) -> str | None:
    code = _INT_CODES.get(desc[1])
    if code is None:
        return None
    return code if desc[2] else code.upper()


def decode(desc: Desc, data: bytes | memoryview, offset: int = 0) -> Any:
    """The Python value of the bytes at offset: int, float, bytes (char arrays and opaque types), list, dict."""
    kind = desc[0]
    if kind == "int":
        if _is_bool(desc):
            return data[offset] != 0
        code = _int_code(desc)
        if code is None:
            return int.from_bytes(bytes(data[offset:offset + desc[1]]), sys.byteorder, signed=bool(desc[2]))
        return struct.unpack_from("=" + code, data, offset)[0]
    if kind == "float":
        return struct.unpack_from("=" + _FLOAT_CODES[desc[1]], data, offset)[0]
    if kind == "array":
        elem, count = desc[1], desc[2]
        if elem[0] == "int" and elem[1] == 1:
            return bytes(data[offset:offset + count])  # char[N]: the bytes, NULs included
        step = size_of(elem)
        return [decode(elem, data, offset + i * step) for i in range(count)]
    if kind in ("struct", "union", "datasec"):
        out = {}
        for name, off, bits, ftype in desc[2]:
            if kind != "datasec" and bits:
                raise NotImplementedError(f"bitfield {name!r} is not decoded")
            out[name] = decode(ftype, data, offset + off)
        return out
    return bytes(data[offset:offset + desc[1]])


def _is_bool(desc: Desc) -> bool:
    return len(desc) > 4 and bool(desc[4])


def _encode_int(desc: Desc, value: Any) -> bytes:
    """An integer as C stores it: a signed type takes its range; an unsigned one takes the signed range too, as C
    converts (-1 is all ones); a bool takes only True, False, 0 and 1."""
    size = int(desc[1])
    if _is_bool(desc):
        if not isinstance(value, int) or value not in (0, 1):
            raise TypeError(f"a bool takes True, False, 0 or 1, not {value!r}")
        return int(value).to_bytes(size, sys.byteorder)
    if not isinstance(value, int) and not hasattr(value, "__index__"):
        raise TypeError(f"an integer of {size} bytes takes an int, not {type(value).__name__}")
    number = int(value.__index__())
    bits = 8 * size
    low, high = -(1 << (bits - 1)), (1 << bits) - 1 if not desc[2] else (1 << (bits - 1)) - 1
    if not low <= number <= high:
        raise OverflowError(f"{number} is out of range for a{' signed' if desc[2] else 'n unsigned'} integer of "
                            f"{size} bytes ({low}..{high})")
    return (number & ((1 << bits) - 1)).to_bytes(size, sys.byteorder)


def encode(desc: Desc, value: Any) -> bytes:
    """The bytes of value laid out as desc (the inverse of decode; a dict may omit fields, which stay zero)."""
    kind = desc[0]
    size = size_of(desc)
    if isinstance(value, (bytes, bytearray, memoryview)) and kind != "int":
        raw = bytes(value)
        if len(raw) > size:
            raise ValueError(f"{len(raw)} bytes do not fit {size}")
        return raw.ljust(size, b"\0")
    if kind == "int":
        return _encode_int(desc, value)
    if kind == "float":
        return struct.pack("=" + _FLOAT_CODES[desc[1]], value)
    if kind == "array":
        elem, count = desc[1], desc[2]
        items = list(value)
        if len(items) > count:
            raise ValueError(f"{len(items)} items do not fit an array of {count}")
        return b"".join(encode(elem, v) for v in items).ljust(size, b"\0")
    if kind in ("struct", "union"):
        buf = bytearray(size)
        fields = {f[0]: f for f in desc[2]}
        for name, v in dict(value).items():
            if name not in fields:
                raise KeyError(f"no field {name!r}; fields: {', '.join(fields)}")
            _, off, _, ftype = fields[name]
            raw = encode(ftype, v)
            buf[off:off + len(raw)] = raw
        return bytes(buf)
    raise TypeError(f"cannot encode a value of BTF kind {kind}")


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


# -- structs as named tuples -----------------------------------------------------------------------------------------

def _is_char(desc: Desc) -> bool:
    return desc[0] == "int" and desc[1] == 1 and len(desc) > 3 and bool(desc[3])


def _identifier(label: str) -> str:
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in label) or "anonymous"
    return "_" + name if name[0].isdigit() else name


def _decoder(desc: Desc, name: str) -> Any:
    """A C decoder (cbpf._cbpf._Decoder) of a struct or union into a named tuple: the plan is one field per
    member (see src/decoder.c); members of a union all sit at offset 0."""
    from collections import namedtuple

    from cbpf import _cbpf

    members = desc[2]
    for mname, _off, bits, _mtype in members:
        if bits:
            raise NotImplementedError(f"bitfield {mname!r} of {name!r} is not decoded")
    tuple_type = namedtuple(_identifier(name), [m[0] or f"_{i}" for i, m in enumerate(members)],  # type: ignore[misc]
                            rename=True)
    fields = [_field(mtype, off, mname or name) for mname, off, _bits, mtype in members]
    return _cbpf._Decoder(tuple_type, desc[1], fields)


def _field(desc: Desc, offset: int, name: str) -> tuple[str, int, int, int, Any]:
    kind = desc[0]
    if kind == "int" and desc[1] in (1, 2, 4, 8):
        return ("i" if desc[2] else "u", offset, desc[1], 0, None)
    if kind == "float" and desc[1] in (4, 8):
        return ("f", offset, desc[1], 0, None)
    if kind in ("struct", "union"):
        return ("r", offset, desc[1], 0, _decoder(desc, name))
    if kind == "array":
        elem, count = desc[1], desc[2]
        if elem[0] == "int" and elem[1] == 1:
            return ("s" if _is_char(elem) else "b", offset, count, 0, None)
        one = _field(elem, 0, name)
        if one[0] in "iufr":
            return (one[0], offset, one[2], count, one[4])
    # odd-sized ints, half floats, arrays of arrays, opaque types: decoded in Python
    return ("p", offset, size_of(desc), 0, lambda raw, d=desc: decode(d, raw))


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


class Struct:
    """A struct (or union) of an object's BTF, as Object.btf_struct(name) finds it: decodes bytes laid out that way.

    decode(data) (or calling it) gives a named tuple, built in C: ints, floats, str for `char` arrays (up to the
    first NUL), bytes for other 1-byte arrays, tuples for other arrays, named tuples for nested structs and unions.
    Bitfields are refused. data may be longer than the struct (perf samples are padded), not shorter. dtype is
    the numpy dtype of the same layout, for batches.
    """

    __slots__ = ("_dtype", "decoder", "desc", "name", "size")

    def __init__(self, name: str, desc: Desc) -> None:
        if desc[0] not in ("struct", "union"):
            raise TypeError(f"BTF type {name!r} is a {desc[0]}, not a struct or union")
        self.name = name
        self.size: int = desc[1]
        self.desc = desc
        self.decoder = _decoder(desc, name)
        self._dtype: Any = None

    def decode(self, data: bytes | memoryview | bytearray) -> Any:
        return self.decoder(data)

    __call__ = decode

    @property
    def type(self) -> Any:
        """The named tuple type decode() makes."""
        return self.decoder.type

    @property
    def fields(self) -> tuple[str, ...]:
        return self.decoder.type._fields  # type: ignore[no-any-return]

    @property
    def dtype(self) -> Any:
        """The numpy dtype of the struct (bitfields left out; `char` arrays as bytes strings 'S<n>')."""
        if self._dtype is None:
            self._dtype = dtype(self.desc, self.size)
        return self._dtype

    def __repr__(self) -> str:
        return f"<cbpf.Struct {self.name!r} ({self.size} bytes): {', '.join(self.fields)}>"

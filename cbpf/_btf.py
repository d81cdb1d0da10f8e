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
        return int(value).to_bytes(desc[1], sys.byteorder, signed=bool(desc[2]) and int(value) < 0)
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
        if elem[0] == "int" and elem[1] == 1 and not elem[2]:
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

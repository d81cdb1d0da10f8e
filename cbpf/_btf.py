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
        return size_of(desc[1]) * desc[2]
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

def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _odd_int(raw: bytes, signed: bool) -> int:
    return int.from_bytes(raw, sys.byteorder, signed=signed)


def _scalar_code(desc: Desc) -> str | None:
    """The struct module's code for a plain int or float, or None."""
    if desc[0] == "int":
        return _int_code(desc)
    if desc[0] == "float":
        return _FLOAT_CODES.get(desc[1])
    return None


def _is_char(desc: Desc) -> bool:
    return desc[0] == "int" and desc[1] == 1 and len(desc) > 3 and bool(desc[3])


def _identifier(label: str) -> str:
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in label) or "anonymous"
    return "_" + name if name[0].isdigit() else name


class _Compiler:
    """Writes one Python function per struct layout: a single struct.unpack_from for every member that does not
    overlap another, then the named tuples built from its items. Unions, whose members overlap, get a function per
    member, called at the union's offset."""

    def __init__(self) -> None:
        from collections import namedtuple

        self._namedtuple = namedtuple
        self.env: dict[str, Any] = {"_text": _text, "_odd_int": _odd_int, "_tnew": tuple.__new__}
        self.lines: list[str] = []
        self.types: dict[str, Any] = {}

    def _name(self, prefix: str, value: Any) -> str:
        name = f"{prefix}{len(self.env)}"
        self.env[name] = value
        return name

    def tuple_type(self, label: str, fields: list[Any]) -> Any:
        names = [f[0] or f"_{i}" for i, f in enumerate(fields)]
        return self._namedtuple(_identifier(label), names, rename=True)

    def function(self, desc: Desc, label: str) -> str:
        """The name of a function (buf, base) -> the value of desc at buf[base:]."""
        codes: list[str] = []
        pos = 0
        items = 0

        def leaf(offset: int, code: str, count: int = 1) -> int:
            nonlocal pos, items
            if offset < pos:
                raise ValueError(f"BTF type {label!r}: members overlap at offset {offset}")
            if offset > pos:
                codes.append(f"{offset - pos}x")
            codes.append(code)
            pos = offset + struct.calcsize("=" + code)
            items += count
            return items - count

        def expr(d: Desc, offset: int, name: str) -> str:
            kind = d[0]
            code = _scalar_code(d)
            if code is not None:
                return f"v[{leaf(offset, code)}]"
            if kind == "int":
                return f"_odd_int(v[{leaf(offset, f'{d[1]}s')}], {bool(d[2])})"
            if kind == "array":
                elem, count = d[1], d[2]
                if elem[0] == "int" and elem[1] == 1:
                    i = leaf(offset, f"{count}s")
                    return f"_text(v[{i}])" if _is_char(elem) else f"v[{i}]"
                code = _scalar_code(elem)
                if code is not None:
                    i = leaf(offset, f"{count}{code}", count)
                    return f"v[{i}:{i + count}]"
                step = size_of(elem)
                return "(" + "".join(expr(elem, offset + k * step, name) + ", " for k in range(count)) + ")"
            if kind == "struct":
                cls = self.tuple_type(name, d[2])
                self.types.setdefault(name, cls)
                args = []
                for fname, foff, bits, ftype in d[2]:
                    if bits:
                        raise NotImplementedError(f"bitfield {fname!r} of {name!r} is not decoded")
                    args.append(expr(ftype, offset + foff, fname or name))
                return f"_tnew({self._name('_T', cls)}, ({''.join(a + ', ' for a in args)}))"
            if kind == "union":
                cls = self.tuple_type(name, d[2])
                self.types.setdefault(name, cls)
                args = [f"{self.function(ftype, fname or name)}(buf, base + {offset + foff})"
                        for fname, foff, _bits, ftype in d[2]]
                return f"_tnew({self._name('_T', cls)}, ({''.join(a + ', ' for a in args)}))"
            return f"v[{leaf(offset, f'{size_of(d)}s')}]"  # opaque: the bytes

        body = expr(desc, 0, label)
        unpack = self._name("_unpack", struct.Struct("=" + "".join(codes)).unpack_from)
        fn = f"_f{len(self.env)}"
        self.env[fn] = None
        self.lines += [f"def {fn}(buf, base=0):", f"    v = {unpack}(buf, base)", f"    return {body}", ""]
        return fn

    def build(self, desc: Desc, label: str) -> Any:
        fn = self.function(desc, label)
        exec("\n".join(self.lines), self.env)  # noqa: S102 - code written above from BTF names and numbers only
        return self.env[fn]


class Struct:
    """A struct of an object's BTF (Object.btf_struct(name)): decodes bytes laid out as that struct.

    decode(data) (or calling it) gives a named tuple: ints, floats, str for `char` arrays (up to the first NUL),
    bytes for other 1-byte arrays, tuples for other arrays, named tuples for nested structs and unions. Bitfields
    are not decoded. data may be longer than the struct (perf samples are padded), not shorter. dtype is the
    numpy dtype of the same layout, for batches.
    """

    __slots__ = ("name", "size", "desc", "type", "_decode", "_dtype")

    def __init__(self, name: str, desc: Desc) -> None:
        if desc[0] not in ("struct", "union"):
            raise TypeError(f"BTF type {name!r} is a {desc[0]}, not a struct or union")
        compiler = _Compiler()
        self.name = name
        self.size: int = desc[1]
        self.desc = desc
        self._decode = compiler.build(desc, name)
        self.type = compiler.types[name]
        self._dtype: Any = None

    def decode(self, data: bytes | memoryview | bytearray) -> Any:
        return self._decode(data)

    __call__ = decode

    @property
    def fields(self) -> tuple[str, ...]:
        return self.type._fields  # type: ignore[no-any-return]

    @property
    def dtype(self) -> Any:
        """The numpy dtype of the struct (bitfields left out; `char` arrays as bytes strings 'S<n>')."""
        if self._dtype is None:
            self._dtype = dtype(self.desc, self.size)
        return self._dtype

    def __repr__(self) -> str:
        return f"<cbpf.Struct {self.name!r} ({self.size} bytes): {', '.join(self.fields)}>"

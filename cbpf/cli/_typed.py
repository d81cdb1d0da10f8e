"""Maps read as typed Python values, through the object's BTF. Everything that decodes a map for the commands is
in typed_items(), so that it can move to the typed map model (Map.key_type/value_type) in one place."""

from __future__ import annotations

from typing import Any

from cbpf import _btf


def _clean(value: Any, desc: Any) -> Any:
    """char arrays as str (to the first NUL), nested values cleaned the same way."""
    if desc is None:
        return value
    kind = desc[0]
    if kind == "array" and desc[1][0] == "int" and desc[1][1] == 1 and isinstance(value, bytes):
        if len(desc[1]) > 3 and desc[1][3]:  # char
            return value.split(b"\0", 1)[0].decode("utf-8", "replace")
        return value.hex()
    if kind == "array" and isinstance(value, list):
        return [_clean(v, desc[1]) for v in value]
    if kind in ("struct", "union") and isinstance(value, dict):
        fields = {f[0]: f[3] for f in desc[2]}
        return {k: _clean(v, fields.get(k)) for k, v in value.items()}
    return value


def _add(a: Any, b: Any) -> Any:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a + b
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: _add(v, b.get(k)) for k, v in a.items()}
    return a  # strings, bytes: the first CPU's


def type_name(desc: Any) -> str:
    """A short C-like name of a BTF description: u32, s64, char[16], struct{count: u64, comm: char[16]}."""
    if desc is None:
        return "?"
    kind = desc[0]
    if kind == "int":
        if len(desc) > 3 and desc[3]:
            return "char"
        return f"{'s' if desc[2] else 'u'}{desc[1] * 8}"
    if kind == "float":
        return f"f{desc[1] * 8}"
    if kind == "array":
        return f"{type_name(desc[1])}[{desc[2]}]"
    if kind in ("struct", "union"):
        return str(kind) + "{" + ", ".join(f"{f[0]}: {type_name(f[3])}" for f in desc[2]) + "}"
    return f"{kind}({desc[1]} bytes)"  # enums, pointers: what the description gives


def key_value_descs(m: Any) -> tuple[Any, Any]:
    return m._describe(m.btf_key_type_id), m._describe(m.btf_value_type_id)


def decode(desc: Any, raw: bytes) -> Any:
    if desc is None:
        return int.from_bytes(raw, "little") if len(raw) in (1, 2, 4, 8) else raw.hex()
    return _clean(_btf.decode(desc, raw), desc)


def _as_plain(value: Any) -> Any:
    """A value the map model already decoded (named tuples, bytes), in the shape decode() gives."""
    if hasattr(value, "_asdict"):
        return {k: _as_plain(v) for k, v in value._asdict().items()}
    if isinstance(value, (list, tuple)):
        return [_as_plain(v) for v in value]
    return value


def _decode_any(desc: Any, raw: Any) -> Any:
    if isinstance(raw, (bytes, bytearray, memoryview)):
        return decode(desc, bytes(raw))
    return _as_plain(raw)  # a map model that reads typed values itself


def typed_items(m: Any) -> list[tuple[Any, Any]]:
    """Every entry of a map as (key, value) Python values: ints, str for char arrays, dicts for structs; per-CPU
    values summed over CPUs."""
    kdesc, vdesc = key_value_descs(m)
    out = []
    for k, v in m.items():
        key = _decode_any(kdesc, k)
        if isinstance(v, list):  # per-CPU
            values = [_decode_any(vdesc, x) for x in v]
            value = values[0]
            for x in values[1:]:
                value = _add(value, x)
        else:
            value = _decode_any(vdesc, v)
        out.append((key, value))
    return out

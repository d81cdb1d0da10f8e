"""Maps read as plain Python values for tables and JSON. Everything that reads a map for the commands is here:
the map model decodes keys and values by their BTF types (Map.key_type, Map.value_type); this turns its named
tuples into dicts and sums per-CPU values, and reads maps without types (legacy objects) as ints where they fit."""

from __future__ import annotations

from typing import Any


def plain(value: Any) -> Any:
    """A decoded value as JSON-friendly Python: named tuples as dicts, tuples as lists, bytes as hex."""
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return value


def _untyped(raw: Any) -> Any:
    """A key or value of a map without a type: an int for 1, 2, 4 or 8 bytes (native order), else hex."""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        data = bytes(raw)
        return int.from_bytes(data, "little") if len(data) in (1, 2, 4, 8) else data.hex()
    return plain(raw)


def _add(a: Any, b: Any) -> Any:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return a + b
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: _add(v, b.get(k)) for k, v in a.items()}
    return a  # strings, flags: the first CPU's


def type_label(t: Any) -> str | None:
    """How inspect names a key or value type: u32, struct top_value{count, comm}; None for a map without one."""
    if t is None:
        return None
    fields = getattr(t, "fields", None)
    return f"{t.name}{{{', '.join(fields)}}}" if fields else str(t.name)


def typed_items(m: Any) -> list[tuple[Any, Any]]:
    """Every entry of a map as (key, value): ints, str for char arrays, dicts for structs; per-CPU values summed
    over CPUs."""
    key_of = plain if m.key_type is not None else _untyped
    value_of = plain if m.value_type is not None else _untyped
    out = []
    for k, v in m.items():
        if isinstance(v, list) and m.ncpus > 1:
            values = [value_of(x) for x in v]
            value = values[0]
            for x in values[1:]:
                value = _add(value, x)
        else:
            value = value_of(v)
        out.append((key_of(k), value))
    return out

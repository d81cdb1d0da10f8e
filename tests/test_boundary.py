"""Where C stops and Python starts: C makes its own types and the Python layer hands them out as its classes."""

from __future__ import annotations

import os

import pytest

import cbpf
from cbpf import _cbpf

pytestmark = pytest.mark.kernel


def test_c_knows_no_python_class():
    assert not hasattr(_cbpf, "_register_map_class") and not hasattr(_cbpf, "_booted_maps")


def test_an_objects_maps_are_handed_out_as_cbpf_map(bpf_objects):
    with cbpf.Object(bpf_objects["counter"], attach=False) as obj:
        counts = obj.maps["counts"]
        assert type(counts) is cbpf.Map and isinstance(counts, _cbpf.Map)
        counts[3] = 9
        assert counts[3] == 9 and counts.to_dict() == {3: 9}  # typed by the BTF: ints
        assert obj.maps["counts"] is counts


def test_the_c_types_alone_stay_untyped(bpf_objects):
    obj = _cbpf.Object(bpf_objects["counter"], attach=False)
    try:
        counts = obj.maps["counts"]
        assert type(counts) is _cbpf.Map
        counts.update(3, 9)
        assert counts[3] == (9).to_bytes(8, "little")  # no _resolve_types of cbpf.Map: bytes
    finally:
        obj.close()


class Counted(cbpf.Map):
    __slots__ = ()


def test_create_and_from_pinned_make_the_class_they_are_called_on():
    pinned = f"/sys/fs/bpf/cbpf-test-boundary-{os.getpid()}"
    with Counted.create("array", 4, 8, 2) as m:
        assert type(m) is Counted
        m.update(1, 5)
        m.pin(pinned)
        try:
            with cbpf.Map.from_pinned(pinned) as again, Counted.from_pinned(pinned) as mine:
                assert type(again) is cbpf.Map and type(mine) is Counted
                assert again.fetch(1) == mine.fetch(1) == 5
        finally:
            m.unpin()

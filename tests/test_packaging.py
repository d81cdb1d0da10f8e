"""What an installed cbpf carries: its typing (stubs, py.typed), the bundled program and headers, nothing dynamic
of libbpf's. No kernel needed."""

from __future__ import annotations

import ast
from pathlib import Path

import cbpf
from cbpf import _cbpf

PACKAGE = Path(cbpf.__file__).resolve().parent


def test_package_ships_its_typing_and_data():
    for name in ("py.typed", "_cbpf.pyi", "include/bpf/bpf_helpers.h", "include/cbpf/histogram.h", "bpf/tools.h"):
        assert (PACKAGE / name).is_file(), name
    from cbpf._tools import TOOLS, tool_object

    for tool in TOOLS:
        assert tool_object(tool).is_file(), tool
        assert (PACKAGE / "bpf" / f"{tool}.bpf.c").is_file(), tool


def test_maptype_for_type_checkers_matches_the_runtime_enum():
    """_maps.py spells MapType out for type checkers; at run time it comes from libbpf: the two must agree."""
    tree = ast.parse((PACKAGE / "_maps.py").read_text())
    static = None
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "MapType":
            static = {t.targets[0].id: t.value.value for t in node.body
                      if isinstance(t, ast.Assign) and isinstance(t.value, ast.Constant)}
    assert static, "no `class MapType` for type checkers in cbpf/_maps.py"
    assert static == {name.upper(): num for name, num in _cbpf._map_types().items()}
    assert static == {m.name: m.value for m in cbpf.MapType}

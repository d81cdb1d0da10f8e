"""A griffe extension for the API reference: the C extension's docstrings joined to its stubs.

griffe reads `cbpf._cbpf` from its stubs (`cbpf/_cbpf.pyi`), which carry the signatures and types but no
docstrings; the docstrings are written once, in the C sources, and reach Python as `__doc__`. This extension
imports the built extension and gives each object of the stubs that has no docstring its `__doc__`, so that the
reference is generated from both and retyped from neither. (The docs build needs cbpf built: `make docs` does.)
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import griffe


class CDocstrings(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.path != "cbpf":
            return
        stubs = pkg.members.get("_cbpf")
        if stubs is None:
            return
        self._fill(stubs, importlib.import_module("cbpf._cbpf"))

    def _fill(self, node: griffe.Object | griffe.Alias, runtime: Any) -> None:
        doc = runtime.__doc__ if not isinstance(runtime, (int, str, float, bytes)) else None
        if isinstance(node, griffe.Alias):
            return
        if node.docstring is None and doc and (inspect.isroutine(runtime) or inspect.isclass(runtime)
                                               or inspect.ismodule(runtime) or inspect.isdatadescriptor(runtime)):
            node.docstring = griffe.Docstring(inspect.cleandoc(doc), parent=node)
        if not (node.is_module or node.is_class):
            return
        for name, member in node.members.items():
            if isinstance(member, griffe.Alias):
                continue
            value = inspect.getattr_static(runtime, name, None)
            if value is not None:
                self._fill(member, value)

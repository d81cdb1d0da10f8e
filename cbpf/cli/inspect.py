"""cbpf inspect OBJ|SOURCE: what an object holds, read without loading it (no privilege needed)."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import cbpf
from cbpf.cli import _typed
from cbpf.cli._common import USAGE, CliError
from cbpf.cli._term import Table, plain_table

# sections libbpf (and cbpf's legacy loader) attach by name alone; others need an attach_* call with a target
_AUTO = ("tracepoint/", "tp/", "raw_tracepoint/", "raw_tp/", "tp_btf/", "kprobe/", "kretprobe/", "uprobe/",
         "uretprobe/", "usdt/", "fentry/", "fexit/", "fmod_ret/", "lsm/", "iter/", "ksyscall/", "kretsyscall/",
         "kprobe.multi/", "kretprobe.multi/", "uprobe.multi/", "struct_ops")


def parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("object", metavar="OBJ|SOURCE", help="a BPF ELF object (.o), or C source (.c)")
    p.add_argument("--json", action="store_true", help="everything as one JSON object")


def open_object(path: str, what: str) -> cbpf.Object:
    """The object at path, opened without loading; C source is compiled first by cbpf.compile."""
    source: Any = path
    name = None
    if path.endswith(".c"):
        compile_c = getattr(cbpf, "compile", None)
        if compile_c is None:
            raise CliError(f"{what}: {path} is C source, and this cbpf cannot compile it (no cbpf.compile): compile "
                           "it with clang -O2 -g -target bpf -I $(python -c 'import cbpf; print(cbpf.include_dir())') "
                           "and pass the .o", USAGE)
        if not os.path.exists(path):
            raise CliError(f"{what}: no such file: {path}", USAGE)
        try:
            source = compile_c(path)
        except getattr(cbpf, "CompileError", OSError) as e:
            raise CliError(f"{what}: {path} does not compile:\n{e}", USAGE) from None
        name = os.path.basename(path)[: -len(".c")].removesuffix(".bpf")
    try:
        return cbpf.Object(source, load=False, name=name)
    except FileNotFoundError:
        raise CliError(f"{what}: no such file: {path}", USAGE) from None
    except OSError as e:
        raise CliError(f"{what}: {e}", USAGE) from None


def attach_point(section: str) -> str:
    return section.split("/", 1)[1] if "/" in section else ""


def describe(obj: cbpf.Object) -> dict[str, Any]:
    maps = []
    for m in obj.maps.values():
        maps.append({"name": m.name, "type": m.map_type.name.lower(), "key_size": m.key_size,
                     "value_size": m.value_size, "max_entries": m.max_entries, "flags": m.flags,
                     "key_type": _typed.type_label(m.key_type), "value_type": _typed.type_label(m.value_type)})
    programs = []
    for p in obj.programs.values():
        try:
            ptype = cbpf.ProgramType(p.type).name.lower()
        except ValueError:
            ptype = str(p.type)
        auto = p.autoattach and p.section.startswith(_AUTO) and bool(attach_point(p.section))
        programs.append({"name": p.name, "type": ptype, "section": p.section, "attach_point": attach_point(p.section),
                         "instructions": p.insn_count, "boot_attaches": auto})
    globals_: dict[str, Any] = {}
    if not obj.legacy:
        for name in obj.globals:
            try:
                value = _typed.plain(obj.globals[name])
            except (NotImplementedError, ValueError, TypeError) as e:
                value = f"({e})"
            globals_[name] = value
    return {"file": obj.name, "format": "legacy" if obj.legacy else "modern", "maps": maps, "programs": programs,
            "globals": globals_}


def _count(items: list[Any], noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def inspect(args: argparse.Namespace) -> int:
    obj = open_object(args.object, "cbpf inspect")
    try:
        info = describe(obj)
    finally:
        obj.close()
    if args.json:
        print(json.dumps({"path": args.object, **info}, default=str))
        return 0
    print(f"{args.object}: {info['format']} BPF object '{info['file']}', {_count(info['maps'], 'map')}, "
          f"{_count(info['programs'], 'program')}")
    print()
    print(plain_table(Table("maps", ("NAME", "TYPE", "KEY", "VALUE", "ENTRIES", "FLAGS"), right=(
        False, False, False, False, True, True), rows=[
        (m["name"], m["type"], m["key_type"] or (f"{m['key_size']} bytes" if m["key_size"] else "-"),
         m["value_type"] or (f"{m['value_size']} bytes" if m["value_size"] else "-"), m["max_entries"],
         hex(m["flags"]))
        for m in info["maps"]])))
    print()
    print(plain_table(Table("programs", ("NAME", "TYPE", "SECTION", "ATTACH POINT", "INSNS", "BOOT ATTACHES"),
                            right=(False, False, False, False, True, False), rows=[
        (p["name"], p["type"], p["section"], p["attach_point"] or "-", p["instructions"],
         "yes" if p["boot_attaches"] else "no (attach_* call)") for p in info["programs"]])))
    if info["globals"]:
        print()
        print(plain_table(Table("globals (initial values)", ("NAME", "VALUE"),
                                rows=[(k, v) for k, v in info["globals"].items()])))
    return 0

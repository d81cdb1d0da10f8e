"""Addresses to symbols, for stack traces: ksym() from /proc/kallsyms, usym() from a process's mapped ELF files.

Both give (name, offset, module) or None. The tables are read once and cached: kallsyms for the process's life
(call ksym.cache_clear() after loading a kernel module), an ELF file's symbols per (path, size, mtime).
"""

from __future__ import annotations

import bisect
import functools
import os
import struct
from typing import NamedTuple, Optional, Tuple

Symbol = Tuple[str, int, str]


class _Table(NamedTuple):
    addrs: list[int]
    names: list[str]
    sizes: list[int]  # 0 when unknown
    modules: list[str]


def _lookup(table: _Table, addr: int) -> Symbol | None:
    i = bisect.bisect_right(table.addrs, addr) - 1
    if i < 0:
        return None
    offset = addr - table.addrs[i]
    if table.sizes[i] and offset >= table.sizes[i]:
        return None
    return table.names[i], offset, table.modules[i]


@functools.lru_cache(maxsize=1)
def _kallsyms() -> _Table:
    rows = []
    with open("/proc/kallsyms") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 3 or parts[1] not in "tTwW":
                continue
            addr = int(parts[0], 16)
            if addr:
                rows.append((addr, parts[2], parts[3].strip("[]") if len(parts) > 3 else "kernel"))
    rows.sort()
    return _Table([r[0] for r in rows], [r[1] for r in rows], [0] * len(rows), [r[2] for r in rows])


def ksym(addr: int) -> Optional[Symbol]:
    """The kernel symbol holding addr: (name, offset into it, module), the module "kernel" for the kernel image;
    None when /proc/kallsyms has no symbol before it (or shows no addresses: run as root)."""
    return _lookup(_kallsyms(), addr)


ksym.cache_clear = _kallsyms.cache_clear  # type: ignore[attr-defined]


# -- ELF symbols of user processes -----------------------------------------------------------------------------------

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")
_SHT_SYMTAB, _SHT_DYNSYM, _PT_LOAD = 2, 11, 1
_STT_FUNC, _STT_GNU_IFUNC = 2, 10


class _Elf(NamedTuple):
    loads: list[tuple[int, int, int]]  # (file offset, size in the file, virtual address) of PT_LOAD segments
    table: _Table


def _read_elf(path: str) -> _Elf | None:
    """The load segments and function and object symbols of a 64-bit little-endian ELF file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if len(data) < _EHDR.size or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    (_, _, _, _, _, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum, _) = _EHDR.unpack_from(data)
    loads = []
    for i in range(phnum):
        at = phoff + i * phentsize
        if at + _PHDR.size > len(data):
            break
        p_type, _, p_offset, p_vaddr, _, p_filesz, _, _ = _PHDR.unpack_from(data, at)
        if p_type == _PT_LOAD:
            loads.append((p_offset, p_filesz, p_vaddr))
    sections = []
    for i in range(shnum):
        at = shoff + i * shentsize
        if at + _SHDR.size > len(data):
            break
        sections.append(_SHDR.unpack_from(data, at))
    symbols: dict[int, tuple[str, int]] = {}
    for sh in sections:
        sh_type, sh_offset, sh_size, sh_link, sh_entsize = sh[1], sh[4], sh[5], sh[6], sh[9]
        if sh_type not in (_SHT_SYMTAB, _SHT_DYNSYM) or sh_link >= len(sections) or not sh_entsize:
            continue
        str_off, str_size = sections[sh_link][4], sections[sh_link][5]
        strtab = data[str_off:str_off + str_size]
        for j in range(sh_size // sh_entsize):
            at = sh_offset + j * sh_entsize
            if at + _SYM.size > len(data):
                break
            st_name, st_info, _, st_shndx, st_value, st_size = _SYM.unpack_from(data, at)
            if st_info & 0xF not in (_STT_FUNC, _STT_GNU_IFUNC) or not st_value or not st_shndx:
                continue
            end = strtab.find(b"\0", st_name)
            name = strtab[st_name:end if end >= 0 else len(strtab)].decode("utf-8", "backslashreplace")
            if st_value not in symbols or (not symbols[st_value][1] and st_size):
                symbols[st_value] = (name, st_size)
    addrs = sorted(symbols)
    table = _Table(addrs, [symbols[a][0] for a in addrs], [symbols[a][1] for a in addrs], [path] * len(addrs))
    return _Elf(loads, table)


@functools.lru_cache(maxsize=64)
def _elf(path: str, size: int, mtime: int) -> _Elf | None:
    return _read_elf(path)


def usym(pid: int, addr: int) -> Optional[Symbol]:
    """The symbol of process pid holding addr: (name, offset into it, path of the ELF file mapped there), from the
    file's .symtab or .dynsym; None when addr is in no mapped file or in no symbol (a stripped file's static
    function)."""
    try:
        with open(f"/proc/{int(pid)}/maps") as f:
            lines = f.readlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(None, 5)
        if len(parts) < 6:
            continue
        start, end = (int(x, 16) for x in parts[0].split("-"))
        if not start <= addr < end:
            continue
        path = parts[5].strip()
        if not path.startswith("/"):
            return None
        file_offset = int(parts[2], 16) + addr - start
        mapped = f"/proc/{int(pid)}/map_files/{parts[0]}"  # the file as mapped, even if replaced on disk since
        source = path if os.path.exists(path) else mapped
        try:
            st = os.stat(source)
        except OSError:
            return None
        elf = _elf(source, st.st_size, st.st_mtime_ns)
        if elf is None:
            return None
        for p_offset, p_filesz, p_vaddr in elf.loads:
            if p_offset <= file_offset < p_offset + p_filesz:
                found = _lookup(elf.table, file_offset - p_offset + p_vaddr)
                return None if found is None else (found[0], found[1], path)
        return None
    return None

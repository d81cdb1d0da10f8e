"""Addresses to function names: the kernel's from /proc/kallsyms, a process's from the ELF symbol tables of the
files it maps (/proc/PID/maps) and from a perf map (/tmp/perf-PID.map, which JITs such as `python -X perf` write).
"""

from __future__ import annotations

import bisect
import mmap
import os
import struct
from typing import NamedTuple


class _Table(NamedTuple):
    starts: list[int]
    ends: list[int]
    names: list[str]


def _table(symbols: list[tuple[int, int, str]]) -> _Table:
    symbols.sort()
    starts, ends, names = [], [], []
    for i, (start, size, name) in enumerate(symbols):
        # a symbol without a size reaches to the next one
        end = start + size if size else (symbols[i + 1][0] if i + 1 < len(symbols) else start + 1)
        starts.append(start)
        ends.append(end)
        names.append(name)
    return _Table(starts, ends, names)


def _find(table: _Table, address: int) -> str | None:
    i = bisect.bisect_right(table.starts, address) - 1
    if i >= 0 and address < table.ends[i]:
        return table.names[i]
    return None


class ElfSymbols:
    """Function symbols of one ELF file (.symtab, else .dynsym) and its loadable segments (64-bit only)."""

    def __init__(self, path: str) -> None:
        self.segments: list[tuple[int, int, int]] = []  # (file offset, vaddr, size)
        symbols: list[tuple[int, int, str]] = []
        with open(path, "rb") as f:
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            if data[:4] != b"\x7fELF" or data[4] != 2:
                raise ValueError(f"{path} is not a 64-bit ELF file")
            endian = "<" if data[5] == 1 else ">"
            phoff, shoff = struct.unpack_from(endian + "QQ", data, 0x20)
            phentsize, phnum, shentsize, shnum = struct.unpack_from(endian + "HHHH", data, 0x36)
            for i in range(phnum):
                p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from(endian + "IIQQQQ", data,
                                                                               phoff + i * phentsize)
                if p_type == 1:  # PT_LOAD
                    self.segments.append((p_offset, p_vaddr, p_filesz))
            sections = [struct.unpack_from(endian + "IIQQQQIIQQ", data, shoff + i * shentsize)
                        for i in range(shnum)]
            for wanted in (2, 11):  # SHT_SYMTAB, then SHT_DYNSYM for stripped files
                for sh in sections:
                    if sh[1] != wanted:
                        continue
                    strtab = sections[sh[6]]
                    str_off = strtab[4]
                    for off in range(sh[4], sh[4] + sh[5], 24):
                        st_name, st_info, _, st_shndx, st_value, st_size = struct.unpack_from(
                            endian + "IBBHQQ", data, off)
                        if st_info & 0xF != 2 or st_shndx == 0 or not st_value:  # STT_FUNC, defined
                            continue
                        end = data.find(b"\0", str_off + st_name)
                        symbols.append((st_value, st_size, data[str_off + st_name:end].decode("utf-8", "replace")))
                if symbols:
                    break
        finally:
            data.close()
        self.table = _table(symbols)

    def lookup_offset(self, file_offset: int) -> str | None:
        for p_offset, p_vaddr, size in self.segments:
            if p_offset <= file_offset < p_offset + size:
                return _find(self.table, file_offset - p_offset + p_vaddr)
        return None


class KernelSymbols:
    def __init__(self) -> None:
        symbols = []
        try:
            with open("/proc/kallsyms") as f:
                for line in f:
                    parts = line.split()
                    if len(parts) >= 3 and parts[1] in "tTwW":
                        address = int(parts[0], 16)
                        if address:
                            symbols.append((address, 0, parts[2]))
        except OSError:
            pass
        self.table = _table(symbols)

    def name(self, address: int) -> str:
        return _find(self.table, address) or f"0x{address:x}"


class ProcessSymbols:
    """One process's address space, read when made: make it while the process still runs."""

    def __init__(self, pid: int, elf_cache: dict[str, ElfSymbols | None]) -> None:
        self.pid = pid
        self.maps: list[tuple[int, int, int, str]] = []
        self.elf_cache = elf_cache
        try:
            with open(f"/proc/{pid}/maps") as f:
                for line in f:
                    parts = line.split(maxsplit=5)
                    start, end = (int(x, 16) for x in parts[0].split("-"))
                    self.maps.append((start, end, int(parts[2], 16), parts[5].strip() if len(parts) == 6 else ""))
        except OSError:
            pass  # gone: its frames stay addresses
        self.perf_map: _Table | None = None
        try:
            with open(f"/tmp/perf-{pid}.map") as f:
                entries = []
                for line in f:
                    start_hex, size_hex, name = line.rstrip("\n").split(" ", 2)
                    entries.append((int(start_hex, 16), int(size_hex, 16), name))
            self.perf_map = _table(entries)
        except (OSError, ValueError):
            pass

    def _elf(self, path: str) -> ElfSymbols | None:
        if path not in self.elf_cache:
            try:
                self.elf_cache[path] = ElfSymbols(f"/proc/{self.pid}/root{path}")
            except (OSError, ValueError, struct.error, IndexError):
                try:
                    self.elf_cache[path] = ElfSymbols(path)
                except (OSError, ValueError, struct.error, IndexError):
                    self.elf_cache[path] = None
        return self.elf_cache[path]

    def mapped(self, address: int) -> bool:
        return any(start <= address < end for start, end, _, _ in self.maps)

    def name(self, address: int) -> str:
        if self.perf_map is not None:
            found = _find(self.perf_map, address)
            if found:
                return found
        for start, end, offset, path in self.maps:
            if start <= address < end:
                if not path.startswith("/"):  # [vdso], [heap], an anonymous JIT region
                    return path or f"0x{address:x}"
                file_offset = address - start + offset
                elf = self._elf(path)
                found = elf.lookup_offset(file_offset) if elf else None
                return found or f"{os.path.basename(path)}+0x{file_offset:x}"
        return f"0x{address:x}"

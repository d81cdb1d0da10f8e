"""Where a uprobe's or USDT probe's binary is: a path, an executable in PATH, or a library by name.

attach_uprobe() and attach_usdt() take a path or a name; the C core asks find() for the path and attaches there.
Libraries are looked up as the dynamic loader would find them: LD_LIBRARY_PATH first, then the loader's cache
(`ldconfig -p`), then the libraries this process has mapped (/proc/self/maps), keeping only files of this
process's machine and word size (a 32-bit libc listed beside the 64-bit one is skipped).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from typing import Iterable, Iterator


def _elf_kind(path: str) -> bytes | None:
    """The ELF class, byte order and machine of path (what says which processes can map it), or None when it is
    no readable ELF file."""
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError:
        return None
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    return head[4:6] + head[18:20]


def _is_elf(path: str) -> bool:
    return _elf_kind(path) is not None


@functools.lru_cache(maxsize=None)
def _own_kind() -> bytes | None:
    return _elf_kind("/proc/self/exe")


def _fits(path: str) -> bool:
    """An ELF file this process's machine and word size can map (an executable of it, or a library)."""
    kind = _elf_kind(path)
    return kind is not None and kind == (_own_kind() or kind)


@functools.lru_cache(maxsize=None)
def _loader_cache() -> tuple[tuple[str, str], ...]:
    """(file name, path) of every library the dynamic loader's cache lists, as `ldconfig -p` prints them: read once
    per process (a library installed later is found through LD_LIBRARY_PATH or by its path)."""
    ldconfig = shutil.which("ldconfig") or shutil.which("ldconfig", path="/sbin:/usr/sbin")
    if ldconfig is None:
        return ()
    try:
        out = subprocess.run([ldconfig, "-p"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    found = []
    for line in out.splitlines():
        name, sep, path = line.strip().partition(" => ")
        if sep:
            found.append((name.split(" (", 1)[0], path))
    return tuple(found)


def _mapped() -> Iterator[tuple[str, str]]:
    """(file name, path) of the files this process has mapped: the running libc, at least."""
    try:
        with open("/proc/self/maps") as f:
            lines = f.read().splitlines()
    except OSError:
        return
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].startswith("/"):
            yield os.path.basename(fields[5]), fields[5]


def _in_dirs(dirs: str | None) -> Iterator[tuple[str, str]]:
    """(file name, path) of the files in each directory of a colon-separated list."""
    for d in (dirs or "").split(":"):
        try:
            names = os.listdir(d) if d else []
        except OSError:
            continue
        for name in names:
            yield name, os.path.join(d, name)


def _library(entries: Iterable[tuple[str, str]], wanted: str) -> str | None:
    """Among (file name, path): the file named wanted ("libc.so.6"), or for a base name ("libc"), base.so, else the
    shortest base.so.N (libc -> libc.so.6)."""
    best: tuple[int, str] | None = None
    for name, path in entries:
        if wanted.endswith(".so") or ".so." in wanted:
            rank = 0 if name == wanted else -1
        else:
            rank = 0 if name == wanted + ".so" else len(name) if name.startswith(wanted + ".so.") else -1
        if rank >= 0 and (best is None or rank < best[0]) and _fits(path):
            best = (rank, path)
            if rank == 0:
                break
    return best[1] if best else None


def find(name: str) -> str | None:
    """The path of a binary or library given as a path, a library's file name ("libc.so.6"), a library's name
    ("libc", "c") or an executable in PATH; None when there is none."""
    if "/" in name:
        return name if os.access(name, os.R_OK) else None
    if ".so" not in name:
        found = shutil.which(name)
        if found is not None:
            return found
        name = name if name.startswith("lib") else "lib" + name
    return (_library(_in_dirs(os.environ.get("LD_LIBRARY_PATH")), name)
            or _library(_loader_cache(), name)
            or _library(_mapped(), name))

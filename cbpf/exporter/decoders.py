"""Label decoders: the raw values of a key (or value) field, a column at a time, to label strings.

A column is a list of ints (integer fields) or of bytes (arrays and other fields). Decoders that look things
up (process names, symbols, cgroups, system call names) decode each distinct value once per scrape and keep
what they learnt across scrapes.
"""

from __future__ import annotations

import bisect
import errno
import os
import re
import socket
import sys
import sysconfig
import threading
import time
from pathlib import Path
from typing import Callable, Union

Column = list[Union[int, bytes]]
EXITED = "(exited)"


def _as_int(v: int | bytes) -> int:
    return v if isinstance(v, int) else int.from_bytes(v, sys.byteorder)


def _as_bytes(v: int | bytes, size: int) -> bytes:
    return v if isinstance(v, bytes) else v.to_bytes(size, sys.byteorder)


def _text(v: int | bytes) -> str:
    if isinstance(v, int):
        return str(v)
    return v.split(b"\0", 1)[0].decode("utf-8", "replace")


def _each_distinct(column: Column, one: Callable[[int | bytes], str]) -> list[str]:
    names = {v: one(v) for v in set(column)}
    return [names[v] for v in column]


class Decoder:
    """Turns a column of raw values into label values."""

    def __call__(self, column: Column) -> list[str]:
        return _each_distinct(column, self.one)

    def one(self, v: int | bytes) -> str:
        raise NotImplementedError


class Memoized(Decoder):
    """A decoder of values whose label never changes (an address, an errno): each is decoded once and kept
    across scrapes (up to `limit` values, then forgotten at once), which costs a dict lookup per series."""

    limit = 200_000

    def __init__(self) -> None:
        self.memo: dict[int | bytes, str] = {}

    def __call__(self, column: Column) -> list[str]:
        memo = self.memo
        if len(memo) > self.limit:
            memo.clear()
        return [memo[v] if v in memo else self._learn(v) for v in column]

    def _learn(self, v: int | bytes) -> str:
        self.memo[v] = label = self.one(v)
        return label


class Int(Decoder):
    def __call__(self, column: Column) -> list[str]:
        if column and isinstance(column[0], bytes):
            column = [_as_int(v) for v in column]
        return list(map(str, column))


class String(Memoized):
    def one(self, v: int | bytes) -> str:
        return _text(v)


class Port(Int):
    """A port number held in host order (as the shipped tcplife keeps it)."""


class Enum(Decoder):
    def __init__(self, table: dict[int, str]) -> None:
        self.table = table

    def __call__(self, column: Column) -> list[str]:
        t = self.table
        return [t[v] if v in t else self.one(v) for v in column]

    def one(self, v: int | bytes) -> str:
        n = _as_int(v)
        return self.table.get(n, str(n))


class Errno(Memoized):
    """An errno value, positive or negated as the kernel returns it, to its name (ENOENT)."""

    def one(self, v: int | bytes) -> str:
        n = _as_int(v)
        if n >= 1 << 31:  # a negative errno read as unsigned
            n -= 1 << 32 if n < 1 << 32 else 1 << 64
        return errno.errorcode.get(abs(n), str(n))


class Ipv4(Memoized):
    """An IPv4 address as the kernel keeps it: 4 bytes in network order (an int field read in host order)."""

    def one(self, v: int | bytes) -> str:
        return socket.inet_ntop(socket.AF_INET, _as_bytes(v, 4)[:4])


class Ipv6(Memoized):
    def one(self, v: int | bytes) -> str:
        raw = _as_bytes(v, 16)
        return socket.inet_ntop(socket.AF_INET6, raw.ljust(16, b"\0")[:16])


class Comm(Decoder):
    """A process id to its name (/proc/PID/comm). A name once seen is kept after the process exits (a counter
    of a short-lived process keeps its label); names are read again at most every `refresh` seconds, as pids
    are reused. A char[16] field (bpf_get_current_comm) is taken as the name itself."""

    def __init__(self, refresh: float = 10.0, limit: int = 100_000) -> None:
        self.names: dict[int, tuple[str, float]] = {}
        self.refresh = refresh
        self.limit = limit
        self.lock = threading.Lock()

    def one(self, v: int | bytes) -> str:
        if isinstance(v, bytes):
            return _text(v)
        now = time.monotonic()
        with self.lock:
            known = self.names.get(v)
        if known is not None and now - known[1] < self.refresh:
            return known[0]
        try:
            with open(f"/proc/{v}/comm", "rb") as f:
                name = f.read().rstrip(b"\n").decode("utf-8", "replace")
        except OSError:
            return known[0] if known is not None else EXITED
        with self.lock:
            if len(self.names) >= self.limit:
                self.names.clear()  # a bound on memory; names are read again
            self.names[v] = (name, now)
        return name


def unistd_header() -> Path | None:
    """The C header naming the system calls of this architecture (Debian's linux-libc-dev)."""
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    for d in (f"/usr/include/{multiarch}/asm", "/usr/include/asm"):
        for name in ("unistd_64.h", "unistd.h"):
            p = Path(d) / name
            if p.is_file() and "__NR_" in p.read_text(errors="replace"):
                return p
    generic = Path("/usr/include/asm-generic/unistd.h")
    return generic if generic.is_file() else None


class Syscall(Memoized):
    """A system call number to its name, from the architecture's <asm/unistd.h> (numbers without a name, or
    with no header installed, stay numbers)."""

    def __init__(self, header: Path | None = None) -> None:
        super().__init__()
        self.header = header
        self.table: dict[int, str] | None = None

    def _load(self) -> dict[int, str]:
        table: dict[int, str] = {}
        header = self.header or unistd_header()
        if header is not None:
            text = header.read_text(errors="replace")
            for m in re.finditer(r"^#define\s+__NR_(\w+)\s+(\d+)\s*$", text, re.MULTILINE):
                table.setdefault(int(m.group(2)), m.group(1))
        return table

    def one(self, v: int | bytes) -> str:
        if self.table is None:
            self.table = self._load()
        n = _as_int(v)
        return self.table.get(n, str(n))


class Ksym(Memoized):
    """A kernel address to the name of the function holding it (/proc/kallsyms; root sees the addresses)."""

    def __init__(self, kallsyms: str = "/proc/kallsyms") -> None:
        super().__init__()
        self.path = kallsyms
        self.addresses: list[int] | None = None
        self.names: list[str] = []

    def _load(self) -> None:
        syms = []
        with open(self.path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[1] in "tTwW":
                    syms.append((int(parts[0], 16), parts[2]))
        syms.sort()
        self.addresses = [a for a, _ in syms]
        self.names = [n for _, n in syms]

    def one(self, v: int | bytes) -> str:
        if self.addresses is None:
            self._load()
        assert self.addresses is not None
        addr = _as_int(v)
        i = bisect.bisect_right(self.addresses, addr) - 1
        return self.names[i] if i >= 0 and self.addresses[i] else hex(addr)


def cgroup2_root() -> Path | None:
    """Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid
    systems)."""
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                sep = fields.index("-")
                if fields[sep + 1] == "cgroup2":
                    return Path(fields[4])
    except (OSError, ValueError, IndexError):
        pass
    return None


class Cgroup(Decoder):
    """A cgroup id (bpf_get_current_cgroup_id: the inode number of its cgroup v2 directory) to its path below
    the cgroup2 mount ("/system.slice/ssh.service"). The tree is walked again, at most every `refresh`
    seconds, when an id is not known; paths of removed cgroups are kept."""

    def __init__(self, root: Path | None = None, refresh: float = 5.0) -> None:
        self.root = root
        self.paths: dict[int, str] = {}
        self.refresh = refresh
        self.walked = -1e9

    def _walk(self) -> None:
        root = self.root or cgroup2_root()
        self.walked = time.monotonic()
        if root is None:
            return
        for dirpath, _dirs, _files in os.walk(root):
            try:
                ino = os.stat(dirpath).st_ino
            except OSError:
                continue
            rel = "/" + os.path.relpath(dirpath, root) if dirpath != str(root) else "/"
            self.paths[ino] = rel

    def one(self, v: int | bytes) -> str:
        n = _as_int(v)
        path = self.paths.get(n)
        if path is None and time.monotonic() - self.walked >= self.refresh:
            self._walk()
            path = self.paths.get(n)
        return path if path is not None else str(n)


class Disk(Decoder):
    """A block device number as the kernel's block tracepoints give it (dev_t: major << 20 | minor) to the
    disk's name (sda, nvme0n1, loop3), from /sys/dev/block; MAJOR:MINOR when the device is gone."""

    def __init__(self) -> None:
        self.names: dict[int, str] = {}

    def one(self, v: int | bytes) -> str:
        n = _as_int(v)
        name = self.names.get(n)
        if name is None:
            number = f"{n >> 20}:{n & ((1 << 20) - 1)}"
            try:
                uevent = Path(f"/sys/dev/block/{number}/uevent").read_text()
                name = next(line[len("DEVNAME="):] for line in uevent.splitlines()
                            if line.startswith("DEVNAME="))
            except (OSError, StopIteration):
                return number
            self.names[n] = name
        return name


def make(name: str, enum: dict[int, str] | None = None) -> Decoder:
    """The decoder called name in the configuration."""
    if name == "enum":
        return Enum(enum or {})
    classes: dict[str, type[Decoder]] = {
        "int": Int, "comm": Comm, "syscall": Syscall, "errno": Errno, "ksym": Ksym, "cgroup": Cgroup,
        "ipv4": Ipv4, "ipv6": Ipv6, "port": Port, "string": String, "disk": Disk,
    }
    return classes[name]()


"""cbpf.compile(): BPF C to a BPF object, with libbpf's headers, the running kernel's vmlinux.h and a cache.

The cache ($CBPF_CACHE_DIR, else $XDG_CACHE_HOME/cbpf/compile, else ~/.cache/cbpf/compile) holds what goes into
the kernel, usually as root, so it must not be plantable: its directory is private to the caller (0700, owned by
the caller; a directory, or a parent, that another user can write is refused), and an entry is used only when the
hash of its inputs (source, flags, compiler, kernel BTF, and the content of every header the compiler read, from
its -MD output) and the hash of its object both match. Entries are written to a temporary file and renamed into
place, so concurrent processes see a whole entry or none.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence, Union, overload

from cbpf import _toolchain
from cbpf._toolchain import CompileError, new_hash

if TYPE_CHECKING:
    import logging

    from cbpf._btf import Struct

# a warm start is a cache hit: what only a miss needs (tempfile, logging, the compiler's subprocess) is imported
# when a miss happens, which keeps the hit within a few milliseconds of loading a prebuilt object


def _log() -> logging.Logger:
    import logging

    return logging.getLogger("cbpf")


FORMAT = 2  # of the cache's entries: a change makes every old entry a miss
DEFAULT_BTF = "/sys/kernel/btf/vmlinux"
INLINE_NAME = "inline.bpf.c"

PathArg = Union[str, "os.PathLike[str]"]
CSource = Union[str, "os.PathLike[str]", bytes]
Defines = Union[Mapping[str, object], Sequence[str], None]


# -- the source --------------------------------------------------------------------------------------------------

class _Source:
    __slots__ = ("path", "text")

    def __init__(self, text: bytes, path: str | None) -> None:
        self.text = text
        self.path = path  # absolute, for a file; None for C text

    @property
    def display(self) -> str:
        return self.path if self.path is not None else "C source"


def is_c_path(source: object) -> bool:
    """Whether source names a C file (a .c/.h path) rather than C text or an ELF object's bytes."""
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    return isinstance(source, str) and "\n" not in source and source.endswith((".c", ".h"))


def _read_source(source: CSource) -> _Source:
    if isinstance(source, (bytes, bytearray, memoryview)):
        text, path = bytes(source), None
    elif is_c_path(source) or isinstance(source, os.PathLike) or (
            isinstance(source, str) and "\n" not in source and os.path.isfile(source)):
        path = os.path.abspath(os.fspath(source))
        with open(path, "rb") as f:
            text = f.read()
    elif isinstance(source, str):
        text, path = source.encode(), None
    else:
        raise TypeError(f"source must be a path or C text (str or bytes), not {type(source).__name__}")
    if not text.strip():
        raise ValueError(f"{path or 'the C source'} is empty: there is nothing to compile")
    return _Source(text, path)


# -- the cache directory -----------------------------------------------------------------------------------------

def default_cache_dir() -> str:
    """$CBPF_CACHE_DIR, else $XDG_CACHE_HOME/cbpf/compile, else ~/.cache/cbpf/compile."""
    if os.environ.get("CBPF_CACHE_DIR"):
        return os.path.abspath(os.environ["CBPF_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = xdg if os.path.isabs(xdg) else os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "cbpf", "compile")


class _Unwritable(Exception):
    pass


def _refuse(root: str, why: str) -> PermissionError:
    return PermissionError(f"refusing the compile cache {root}: {why}. What it holds is loaded into the kernel, so "
                           "no other user may be able to change it: use a private directory (CBPF_CACHE_DIR=..., "
                           "or cache=PATH), or cache=False")


def _check_parents(root: str) -> None:
    """Every existing directory above root must be unwritable by other users (or sticky, as /tmp is) and owned by
    root or the caller: otherwise someone else could rename the cache away and put their own in its place."""
    me = os.geteuid()
    path = os.path.dirname(root)
    while True:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        if st is not None:
            if st.st_uid not in (0, me):
                raise _refuse(root, f"{path} above it belongs to uid {st.st_uid}")
            if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
                raise _refuse(root, f"{path} above it is writable by other users (mode {stat.filemode(st.st_mode)})")
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent


def _private_dir(root: str) -> None:
    """Makes root (0700) if missing and checks that it is the caller's alone. _Unwritable when it cannot be
    written (read-only file system, no permission); PermissionError when it is not safe to use."""
    root_real = os.path.realpath(root)
    _check_parents(root_real)
    try:
        os.makedirs(root_real, mode=0o700, exist_ok=True)
    except OSError as e:
        raise _Unwritable(f"{e.strerror}") from e
    st = os.stat(root_real)
    if not stat.S_ISDIR(st.st_mode):
        raise _Unwritable("not a directory")
    if st.st_uid != os.geteuid():
        raise _refuse(root, f"it belongs to uid {st.st_uid}, not to this process's uid {os.geteuid()}")
    if st.st_mode & 0o022:
        raise _refuse(root, f"other users can write it (mode {stat.filemode(st.st_mode)})")
    if not os.access(root_real, os.W_OK | os.X_OK):
        raise _Unwritable("no write permission" if not _read_only(root_real) else "read-only file system")


def _read_only(path: str) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


_fallback: str | None = None
_warned: set[str] = set()


def _fallback_dir(root: str, why: str) -> str:
    """A private temporary cache for this process, removed at exit, for when root cannot be written."""
    import atexit
    import shutil
    import tempfile

    global _fallback
    if _fallback is None or not os.path.isdir(_fallback):
        _fallback = tempfile.mkdtemp(prefix="cbpf-cache-")
        atexit.register(shutil.rmtree, _fallback, True)
    if root not in _warned:
        _warned.add(root)
        _log().warning("compile cache %s cannot be written (%s): caching in %s until this process exits", root, why,
                       _fallback)
    return _fallback


def cache_root(cache: bool | PathArg) -> str | None:
    """The cache directory to use (made and checked), or None for cache=False."""
    if cache is False:
        return None
    root = default_cache_dir() if cache is True else os.path.abspath(os.fspath(cache))
    try:
        _private_dir(root)
    except _Unwritable as e:
        return _fallback_dir(root, str(e))
    return root


def _subdir(root: str, *parts: str) -> str:
    path = root
    for part in parts:  # each 0700 (makedirs gives the mode to the last one only)
        path = os.path.join(path, part)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
    return path


def _atomic_write(path: str, data: bytes, mode: int = 0o600) -> None:
    """Writes a whole file or nothing: a temporary file in the same directory, renamed over path."""
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _hash_file(path: str) -> str:
    h = new_hash()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return str(h.hexdigest())


# -- the kernel's BTF and vmlinux.h ------------------------------------------------------------------------------

class _Btf:
    __slots__ = ("digest", "missing", "path")

    def __init__(self, path: str, digest: str | None, missing: str | None = None) -> None:
        self.path = path
        self.digest = digest    # the file's hash; None when there is none
        self.missing = missing  # why there is no vmlinux.h, once known


_btf_digests: dict[tuple[Any, ...], str] = {}


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _btf(btf_path: PathArg | None, root: str | None) -> _Btf:
    """The BTF file and its hash. Hashing the kernel's 5 MB takes milliseconds: the hash is remembered per file
    identity (inode, size, times) and boot, in this process and in the cache."""
    path = os.path.abspath(os.fspath(btf_path)) if btf_path is not None else DEFAULT_BTF
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if btf_path is not None:
            raise
        return _Btf(path, None, f"the kernel has no BTF ({path} does not exist: CONFIG_DEBUG_INFO_BTF is not set)")
    identity = (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, _boot_id())
    digest = _btf_digests.get(identity)
    memo = None
    if digest is None and root is not None:
        memo = os.path.join(root, "btf", new_hash(repr(identity).encode()).hexdigest())
        try:
            with open(memo) as f:
                text = f.read()
            if re.fullmatch(r"[0-9a-f]{64}", text):
                digest = text
        except OSError:
            pass
    if digest is None:
        digest = _hash_file(path)
        if memo is not None:
            try:
                _subdir(root or "", "btf")
                _atomic_write(memo, digest.encode())
            except OSError as e:
                _log().debug("cannot remember the hash of %s: %s", path, e)
    _btf_digests[identity] = digest
    return _Btf(path, digest)


def _vmlinux_header(btf: _Btf) -> bytes:
    from cbpf import _cbpf

    return _cbpf._btf_c_header(btf.path)


def _write_vmlinux(btf: _Btf, directory: str, record: bool) -> str | None:
    try:
        text = _vmlinux_header(btf)
    except OSError as e:
        btf.missing = e.strerror or str(e)
        return None
    _atomic_write(os.path.join(directory, "vmlinux.h"), text, 0o644)
    if record:
        _atomic_write(os.path.join(directory, "vmlinux.h.hash"), new_hash(text).hexdigest().encode())
    return directory


def _vmlinux_dir(btf: _Btf, root: str | None, work: str | None) -> str | None:
    """A directory holding vmlinux.h for btf (cached under root, checked against its recorded hash, else made in
    work), or None: btf.missing says why."""
    if btf.digest is None:
        return None
    if root is None:
        assert work is not None
        return _write_vmlinux(btf, _subdir(work, "vmlinux"), record=False)
    directory = _subdir(root, "vmlinux", btf.digest)
    try:
        with open(os.path.join(directory, "vmlinux.h.hash")) as f:
            if _hash_file(os.path.join(directory, "vmlinux.h")) == f.read().strip():
                return directory
    except OSError:
        pass
    return _write_vmlinux(btf, directory, record=True)


def vmlinux_h(btf_path: PathArg | None = None, *, output: PathArg | None = None) -> Path:
    """The path of a vmlinux.h for the running kernel (or the BTF file btf_path): every kernel type as C, made
    in-process from /sys/kernel/btf/vmlinux with libbpf's BTF dumper (no bpftool) and kept in the compile cache.
    With output, the header is written there instead. OSError when the file holds no BTF."""
    root = cache_root(True)
    assert root is not None
    btf = _btf(btf_path, root)
    if btf.digest is None:
        raise FileNotFoundError(btf.missing)
    if output is not None:
        out = os.path.abspath(os.fspath(output))
        _atomic_write(out, _vmlinux_header(btf), 0o644)
        return Path(out)
    directory = _vmlinux_dir(btf, root, None)
    if directory is None:
        raise OSError(errno.EINVAL, btf.missing)
    return Path(directory) / "vmlinux.h"


# -- compiling ---------------------------------------------------------------------------------------------------

def _parse_depfile(text: str) -> list[str]:
    """The prerequisites of a make rule as compilers write it (-MD): `out.o: a.c b.h \\`, spaces escaped."""
    text = text.replace("\\\n", " ")
    _, _, prereqs = text.partition(": ")
    paths, current, i = [], [], 0
    while i < len(prereqs):
        c = prereqs[i]
        if c == "\\" and i + 1 < len(prereqs) and prereqs[i + 1] in " #":
            current.append(prereqs[i + 1])
            i += 2
            continue
        if c.isspace():
            if current:
                paths.append("".join(current))
                current = []
        else:
            current.append(c)
        i += 1
    if current:
        paths.append("".join(current))
    return paths


def _lookup(root: str, key: str) -> bytes | None:
    """The object of a cache entry whose recorded inputs and content still hash as recorded, or None.

    An entry is KEY.o and KEY.entry, lines of text: the format, the key (the hash of the inputs), the object's
    hash, then one line per header the compiler read: its hash and its path."""
    base = os.path.join(root, "objects", key[:2], key)
    try:
        with open(base + ".entry", encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().split("\n")
        if lines[:2] != [f"cbpf-compile {FORMAT}", f"key {key}"] or not lines[2].startswith("object "):
            return None
        for line in lines[3:]:
            if not line:
                continue
            kind, digest, path = line.split(" ", 2)
            if kind != "header" or _hash_file(path) != digest:
                return None
        with open(base + ".o", "rb") as f:
            data = f.read()
    except (OSError, ValueError, IndexError):
        return None
    if "object " + new_hash(data).hexdigest() != lines[2]:
        return None
    return data


def _store(root: str, key: str, data: bytes, headers: list[tuple[str, str]]) -> None:
    if any("\n" in path for path, _ in headers):
        return  # a header path with a newline in it does not fit an entry's lines: not cached
    directory = _subdir(root, "objects", key[:2])
    base = os.path.join(directory, key)
    lines = [f"cbpf-compile {FORMAT}", f"key {key}", f"object {new_hash(data).hexdigest()}",
             *(f"header {digest} {path}" for path, digest in headers), ""]
    # the object first: the entry names the object's hash, so a reader never takes half of one
    _atomic_write(base + ".o", data)
    _atomic_write(base + ".entry", "\n".join(lines).encode("utf-8", "surrogateescape"))


def _headers(depfile: str, work: str, skip: Sequence[str]) -> list[tuple[str, str]]:
    """(path, hash) of every file the compiler read, but the source and those under skip (keyed otherwise)."""
    with open(depfile) as f:
        paths = _parse_depfile(f.read())
    out = []
    for p in paths:
        p = os.path.normpath(os.path.join(work, p))
        if any(p == s or p.startswith(s.rstrip("/") + "/") for s in skip):
            continue
        out.append((p, _hash_file(p)))
    return sorted(set(out))


def _command(compiler: _toolchain.Compiler, source: str, output: str, *, vmlinux: str | None,
             include_dirs: Sequence[PathArg], defines: Defines, cflags: Sequence[str],
             depfile: str | None) -> list[str]:
    from cbpf import include_dir

    dirs = [*include_dirs, *([vmlinux] if vmlinux else []), include_dir()]
    return _toolchain.command(compiler, source, output, include_dirs=dirs, defines=defines, cflags=cflags,
                              depfile=depfile)


@overload
def compile(source: CSource, *, output: None = None, cflags: Sequence[str] = (),  # noqa: A001
            include_dirs: Sequence[PathArg] = (), defines: Defines = None, compiler: PathArg | None = None,
            cache: bool | PathArg = True, btf_path: PathArg | None = None, timeout: float | None = 120) -> bytes: ...
@overload
def compile(source: CSource, *, output: PathArg, cflags: Sequence[str] = (),  # noqa: A001
            include_dirs: Sequence[PathArg] = (), defines: Defines = None, compiler: PathArg | None = None,
            cache: bool | PathArg = True, btf_path: PathArg | None = None, timeout: float | None = 120) -> Path: ...


def compile(source: CSource, *, output: PathArg | None = None, cflags: Sequence[str] = (),  # noqa: A001
            include_dirs: Sequence[PathArg] = (), defines: Defines = None, compiler: PathArg | None = None,
            cache: bool | PathArg = True, btf_path: PathArg | None = None,
            timeout: float | None = 120) -> bytes | Path:
    """Compiles BPF C into a BPF ELF object: the object's bytes, or with output= the path it was written to.

    source is a path (os.PathLike, or a str ending in .c or .h) or the C text itself (str or bytes). The compiler
    gets libbpf's headers (cbpf.include_dir()), a vmlinux.h of the running kernel (or of btf_path), -g -O2, the
    BPF target and -D__TARGET_ARCH_<arch>, then include_dirs (-I), defines (-D, {"NAME": value} or ["NAME=v"])
    and cflags, last. compiler: a clang or zig binary; default CBPF_CLANG, else clang on PATH (12 or newer), else
    the ziglang package's zig. cache: True (the default cache directory), a directory, or False. timeout: seconds
    before the compiler is killed. CompileError carries the compiler's diagnostics.
    """
    if isinstance(cflags, str) or isinstance(include_dirs, str):
        raise TypeError("cflags and include_dirs are sequences (a list), not a str")
    src = _read_source(source)
    root = cache_root(cache)
    comp = _toolchain.find_compiler(compiler, memo_dir=os.path.join(root, "compilers") if root else None)
    btf = _btf(btf_path, root)
    dirs = [os.path.abspath(os.fspath(d)) for d in include_dirs]
    key_material = (
        FORMAT, comp.identity, new_hash(src.text).hexdigest(), src.path, btf.digest,
        _command(comp, "SOURCE", "OUTPUT", vmlinux="VMLINUX" if btf.digest else None, include_dirs=dirs,
                 defines=defines, cflags=cflags, depfile=None),
    )
    key = new_hash(repr(key_material).encode("utf-8", "surrogateescape")).hexdigest()
    data = _lookup(root, key) if root is not None else None
    if data is None:
        data = _build(src, comp, root, btf, key, include_dirs=dirs, defines=defines, cflags=cflags,
                      timeout=timeout)
    if output is None:
        return data
    out = os.path.abspath(os.fspath(output))
    _atomic_write(out, data, 0o644)
    return Path(out)


def _build(src: _Source, comp: _toolchain.Compiler, root: str | None, btf: _Btf, key: str, *,
           include_dirs: Sequence[str], defines: Defines, cflags: Sequence[str], timeout: float | None) -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="cbpf-compile-") as work:
        source = src.path
        if source is None:
            source = os.path.join(work, INLINE_NAME)
            with open(source, "wb") as f:
                f.write(src.text)
        vmlinux = _vmlinux_dir(btf, root, work)
        output, depfile = os.path.join(work, "out.o"), os.path.join(work, "out.d")
        cmd = _command(comp, source, output, vmlinux=vmlinux, include_dirs=include_dirs, defines=defines,
                       cflags=cflags, depfile=depfile)
        try:
            _toolchain.run(cmd, what=f"compiling {src.display}", timeout=timeout, cwd=work)
        except CompileError as e:
            raise _explained(e, work, btf if vmlinux is None else None) from None
        with open(output, "rb") as f:
            data = f.read()
        if root is not None:
            skip = [work, *([vmlinux] if vmlinux else []), *([src.path] if src.path else [])]
            try:
                _store(root, key, data, _headers(depfile, work, skip))
            except OSError as e:
                _log().warning("compiled %s, but could not cache it in %s: %s", src.display, root, e)
    return data


def _explained(e: CompileError, work: str, no_btf: _Btf | None) -> CompileError:
    """The error with the temporary directory's path taken out of the diagnostics, and why vmlinux.h is missing
    when that is what failed."""
    message, text = str(e).replace(work + "/", ""), e.log.replace(work + "/", "")
    if no_btf is not None and re.search(r"'vmlinux\.h' file not found", text):
        message += (f"\nno vmlinux.h: {no_btf.missing}. A CO-RE program (one that includes vmlinux.h) needs the "
                    "kernel's BTF; programs that include only <linux/bpf.h> and libbpf's headers compile without it")
    return CompileError(message, log=text, command=e.command, returncode=e.returncode)


# -- what cbpf's types make of C -------------------------------------------------------------------------------

def object_name(path: PathArg) -> str:
    """An object's default name from its file: the base name up to the first dot, as Object() names ELF files."""
    return os.path.basename(os.fspath(path)).split(".", 1)[0]


def _anchored(text: bytes, anchor: str) -> bytes:
    # a global of the type puts it in the object's BTF: clang leaves out types nothing in the object uses
    return text + f"\n{anchor} __cbpf_type_anchor __attribute__((used));\n".encode()


def struct_from_c(text_or_header: CSource, name: str, compile_options: Mapping[str, Any]) -> Struct:
    """The struct, union or typedef of one called name, declared in C text or a header file (a types-only object:
    one global of the type, no program)."""
    from cbpf import _btf
    from cbpf._maps import Object

    if isinstance(text_or_header, os.PathLike) or (isinstance(text_or_header, str) and is_c_path(text_or_header)):
        header = os.path.abspath(os.fspath(text_or_header))
        if not os.path.isfile(header):
            raise FileNotFoundError(f"no such header: {header}")
        text = f'#include "{header}"\n'.encode()
        with open(header, "rb") as f:
            searched = f.read()
    else:
        text = _read_source(text_or_header).text
        searched = text
    bare = re.sub(r"^(struct|union)\s+", "", name.strip())
    if not re.fullmatch(r"[A-Za-z_]\w*", bare):
        raise ValueError(f"{name!r} is not a C type name")
    if bare != name.strip():
        tries = [name.strip()]
    else:
        # which kind of name it is, by the declaration in the text; the others after it, for types from includes
        declared = re.search(rb"\b(struct|union)\s+" + bare.encode() + rb"\s*\{", searched)
        first = f"{declared.group(1).decode()} {bare}" if declared else bare
        tries = [first] + [t for t in (bare, f"struct {bare}", f"union {bare}") if t != first]
    failure: CompileError | None = None
    for anchor in tries:
        try:
            data = compile(_anchored(text, anchor), **compile_options)
        except CompileError as e:
            if bare not in "\n".join(e.errors):
                raise  # the C itself is wrong, not the guess of what kind of type the name is
            failure = failure or e
            continue
        obj = Object(data, name="types", load=False, attach=False)
        try:
            return _btf.struct_of(obj, bare)
        finally:
            obj.close()
    assert failure is not None
    raise KeyError(f"no struct, union or typedef named {bare!r} in the C given:\n{failure}") from failure

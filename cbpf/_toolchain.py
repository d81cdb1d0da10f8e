"""Finding a compiler for BPF C and running it: the part of cbpf.compile() that needs no cbpf extension.

setup.py loads this file by path to compile the bundled programs before the extension exists, so it imports
nothing from cbpf. Compilers, in this order: compiler= (or CBPF_CLANG), clang on PATH if it is new enough to emit
BTF, the zig of the `ziglang` package (pip install cbpf[compile]).
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any, Callable, Mapping, Sequence, Union

# a cache hit never runs a compiler: subprocess, signal and importlib.util are imported when one is needed

# clang emits BTF for -target bpf -g since LLVM 8, and the CO-RE relocations libbpf's headers rely on
# (preserve_access_index, __builtin_preserve_type_info) since LLVM 10/12: 12 is the oldest that builds them all
MIN_CLANG = 12
ARCHES = {"x86_64": "x86", "i686": "x86", "aarch64": "arm64", "armv7l": "arm", "s390x": "s390",
          "ppc64le": "powerpc", "ppc64": "powerpc", "riscv64": "riscv", "loongarch64": "loongarch",
          "mips64": "mips", "mips": "mips", "sparc64": "sparc"}
HOW_TO_GET_ONE = ("pass compiler= (or set CBPF_CLANG) to a clang or zig binary, install clang "
                  f"{MIN_CLANG} or newer on PATH, or `pip install cbpf[compile]` (the ziglang package)")
_ERROR_LINE = re.compile(r"(?:^|: )(?:fatal )?error: ")

PathArg = Union[str, "os.PathLike[str]"]


def _blake2b() -> Callable[..., Any]:
    """BLAKE2b from the interpreter's own _blake2 module, which hashlib imports too: hashlib's own import loads
    OpenSSL, which would cost a warm start several milliseconds (and _blake2 hashes as fast as OpenSSL's SHA-256,
    several times faster than the interpreter's own SHA-256)."""
    try:
        from _blake2 import blake2b
    except ImportError:
        from hashlib import blake2b
    return blake2b


_BLAKE2B = _blake2b()


def new_hash(data: bytes = b"") -> Any:
    """A 256-bit BLAKE2b hash object: what cbpf's compile cache keys and checks its entries with."""
    return _BLAKE2B(data, digest_size=32)


class CompileError(Exception):
    """BPF C did not compile: the message holds the compiler's first errors (file:line:col), .log all it said.

    Also raised when no compiler is found (the message says the ways to get one) and when the compiler crashes
    or runs past its timeout. .command is the command line (or an empty list), .returncode its exit status
    (negative: killed by that signal; None: it did not finish or never ran).
    """

    def __init__(self, message: str, *, log: str = "", command: Sequence[str] = (),
                 returncode: int | None = None) -> None:
        super().__init__(message)
        self.log = log
        self.command = list(command)
        self.returncode = returncode

    @property
    def errors(self) -> list[str]:
        """The diagnostic lines of the log that are errors, in order."""
        return [line for line in self.log.splitlines() if _ERROR_LINE.search(line)]


CompileError.__module__ = "cbpf"  # tracebacks say cbpf.CompileError, the name to catch it by


class Compiler:
    """A compiler for BPF C: argv is what comes before the flags ([clang] or [zig, "cc"])."""

    __slots__ = ("argv", "identity", "kind", "path")

    def __init__(self, argv: tuple[str, ...], kind: str, path: str, identity: str) -> None:
        self.argv = argv
        self.kind = kind          # "clang" or "zig"
        self.path = path          # the binary, absolute
        self.identity = identity  # what a cache entry made by it is keyed on: path, size, modification time

    def __repr__(self) -> str:
        return f"<Compiler {self.kind} {self.path}>"

    @property
    def target(self) -> tuple[str, ...]:
        little = sys.byteorder == "little"
        if self.kind == "zig":
            return ("-target", "bpfel-freestanding" if little else "bpfeb-freestanding")
        return ("-target", "bpfel" if little else "bpfeb")


def target_arch() -> str:
    """The kernel architecture name libbpf's bpf_tracing.h expects in __TARGET_ARCH_<arch>."""
    machine = os.uname().machine
    return ARCHES.get(machine, machine)


def _which(name: str, path: str | None) -> str | None:
    """name looked up in PATH's absolute directories only: an empty or relative entry (the current directory)
    is never searched, unlike shutil.which."""
    for directory in (path or "").split(os.pathsep):
        if not os.path.isabs(directory):
            continue
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _identity(path: str) -> str:
    st = os.stat(path)
    return f"{os.path.realpath(path)}:{st.st_size}:{st.st_mtime_ns}"


def _make(path: str) -> Compiler:
    path = os.path.abspath(path)
    kind = "zig" if os.path.basename(path).startswith("zig") else "clang"
    argv = (path, "cc") if kind == "zig" else (path,)
    return Compiler(argv, kind, path, f"{kind}:{_identity(path)}")


_VERSIONS: dict[str, int | None] = {}


def clang_major(path: str, memo_dir: str | None = None) -> int | None:
    """The major version `clang --version` reports, remembered per binary and its modification time: in this
    process, and in memo_dir when given (running clang takes tens of milliseconds, a cache hit less than one)."""
    key = _identity(path)
    if key in _VERSIONS:
        return _VERSIONS[key]
    memo = None
    if memo_dir is not None:
        memo = os.path.join(memo_dir, new_hash(key.encode()).hexdigest())
        try:
            with open(memo) as f:
                text = f.read()
            _VERSIONS[key] = int(text) if text.isdigit() else None
            return _VERSIONS[key]
        except (OSError, ValueError):
            pass
    import subprocess

    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30,
                             stdin=subprocess.DEVNULL, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    m = re.search(r"clang version (\d+)", out)
    _VERSIONS[key] = int(m.group(1)) if m else None
    if memo is not None:
        try:
            os.makedirs(memo_dir or "", mode=0o700, exist_ok=True)
            tmp = f"{memo}.{os.getpid()}"
            with open(tmp, "w") as f:
                f.write(str(_VERSIONS[key] or ""))
            os.replace(tmp, memo)
        except OSError:
            pass
    return _VERSIONS[key]


def ziglang_binary() -> str | None:
    """The zig binary of the installed `ziglang` package, found without importing it (its import runs zig)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("ziglang")
    except (ImportError, ValueError):
        return None
    for directory in (spec.submodule_search_locations or []) if spec else []:
        candidate = os.path.join(directory, "zig")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def find_compiler(compiler: str | os.PathLike[str] | None = None, environ: Mapping[str, str] = os.environ,
                  memo_dir: str | None = None) -> Compiler:
    """The compiler to use: compiler=, else CBPF_CLANG, else clang on PATH (MIN_CLANG or newer), else ziglang's zig.

    A name without a slash is looked up in PATH (never in the current directory), a path is used as given.
    memo_dir: where clang's version may be remembered across processes (a private directory).
    """
    given = os.fspath(compiler) if compiler is not None else environ.get("CBPF_CLANG") or None
    where = "compiler=" if compiler is not None else "CBPF_CLANG"
    if given is not None:
        path = given if "/" in given else _which(given, environ.get("PATH"))
        if path is None or not os.path.isfile(path) or not os.access(path, os.X_OK):
            raise CompileError(f"{where} names {given!r}, which is not an executable file"
                               + ("" if "/" in given else " in PATH"))
        return _make(path)
    notes = []
    clang = _which("clang", environ.get("PATH"))
    if clang is not None:
        major = clang_major(clang, memo_dir)
        if major is not None and major >= MIN_CLANG:
            return _make(clang)
        notes.append(f"{clang} is {'clang ' + str(major) if major else 'not a clang that says its version'}, "
                     f"too old for BPF CO-RE (clang {MIN_CLANG}+)")
    zig = ziglang_binary()
    if zig is not None:
        return _make(zig)
    raise CompileError("no compiler for BPF C found" + (f" ({'; '.join(notes)})" if notes else "")
                       + f": {HOW_TO_GET_ONE}")


def system_include_flags(compiler: Compiler) -> list[str]:
    """Where <linux/bpf.h> and its asm/ headers live, after every -I: the host's multiarch directory (clang's
    BPF target does not look there), and /usr/include for zig, whose freestanding target has no system headers."""
    flags = []
    multiarch = getattr(sys.implementation, "_multiarch", "")  # sysconfig's MULTIARCH, without loading sysconfig
    if multiarch and os.path.isdir(f"/usr/include/{multiarch}"):
        flags += ["-idirafter", f"/usr/include/{multiarch}"]
    if compiler.kind == "zig" and os.path.isdir("/usr/include"):
        flags += ["-idirafter", "/usr/include"]
    return flags


def define_flags(defines: Mapping[str, object] | Sequence[str] | None) -> list[str]:
    """-D flags: {"NAME": value} (None or True: -DNAME, False: left out), or a list of "NAME" / "NAME=value"."""
    if defines is None:
        return []
    if isinstance(defines, Mapping):
        flags = []
        for name, value in defines.items():
            if value is None or value is True:
                flags.append(f"-D{name}")
            elif value is False:
                continue
            else:
                flags.append(f"-D{name}={value}")
        return flags
    if isinstance(defines, str):
        raise TypeError("defines must be a mapping or a list of strings, not a str")
    return [f"-D{d}" for d in defines]


def command(compiler: Compiler, source: PathArg, output: PathArg, *, include_dirs: Sequence[PathArg] = (),
            defines: Mapping[str, object] | Sequence[str] | None = None, cflags: Sequence[str] = (),
            depfile: PathArg | None = None, debug: bool = True) -> list[str]:
    """The command line that compiles BPF C source into the object output: -O2 -g, the BPF target,
    -D__TARGET_ARCH_<arch>, the include directories (absolute) and then the system's, the defines, cflags last so
    that they override."""
    cmd = [*compiler.argv, *compiler.target, "-O2", *(["-g"] if debug else []), f"-D__TARGET_ARCH_{target_arch()}"]
    for directory in include_dirs:
        cmd += ["-I", os.path.abspath(os.fspath(directory))]
    cmd += system_include_flags(compiler)
    cmd += define_flags(defines)
    cmd += [str(f) for f in cflags]
    if depfile is not None:
        cmd += ["-MD", "-MF", os.fspath(depfile)]
    cmd += ["-c", os.fspath(source), "-o", os.fspath(output)]
    return cmd


def first_errors(log: str, limit: int = 3) -> str:
    """The first error diagnostics of a compiler's output, with the line after each (the source line)."""
    lines = log.splitlines()
    picked: list[str] = []
    count = 0
    for i, line in enumerate(lines):
        if _ERROR_LINE.search(line):
            picked.append(line)
            if i + 1 < len(lines) and not _ERROR_LINE.search(lines[i + 1]) and lines[i + 1].startswith(" "):
                picked.append(lines[i + 1])
            count += 1
            if count == limit:
                break
    if not picked:
        picked = [line for line in lines if line.strip()][-limit:]
    return "\n".join(picked) if picked else "(the compiler said nothing)"


def run(cmd: Sequence[str], *, what: str, timeout: float | None, cwd: str | None = None,
        env: Mapping[str, str] | None = None) -> str:
    """Runs a compiler command; its diagnostics (stderr) back, or CompileError on failure, crash or timeout.

    The compiler runs in a session of its own, so that a timeout kills whatever it started too."""
    import signal
    import subprocess

    try:
        proc = subprocess.Popen(list(cmd), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, cwd=cwd, env=dict(env) if env is not None else None,
                                start_new_session=True)
    except OSError as e:
        raise CompileError(f"{what}: cannot run {cmd[0]}: {e}", command=cmd) from e
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, _ = proc.communicate()
        log = out.decode(errors="replace")
        raise CompileError(f"{what}: the compiler did not finish within {timeout:g} s and was killed", log=log,
                           command=cmd) from None
    finally:
        if proc.poll() is None:  # an exception (KeyboardInterrupt) while waiting: do not leave it running
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    log = out.decode(errors="replace")
    if proc.returncode < 0:
        try:
            name = signal.Signals(-proc.returncode).name
        except ValueError:
            name = f"signal {-proc.returncode}"
        raise CompileError(f"{what}: the compiler crashed ({name})" + (f":\n{first_errors(log)}" if log.strip()
                                                                          else ""),
                           log=log, command=cmd, returncode=proc.returncode)
    if proc.returncode != 0:
        raise CompileError(f"{what} failed (exit status {proc.returncode}):\n{first_errors(log)}", log=log,
                           command=cmd, returncode=proc.returncode)
    return log


def compile_file(source: PathArg, output: PathArg, *, compiler: str | os.PathLike[str] | None = None,
                 include_dirs: Sequence[PathArg] = (), defines: Mapping[str, object] | Sequence[str] | None = None,
                 cflags: Sequence[str] = (), debug: bool = True, timeout: float | None = 300) -> None:
    """Compiles one BPF C file to an object, with no cache and no vmlinux.h: the build's and scripts' way."""
    cmd = command(find_compiler(compiler), source, output, include_dirs=include_dirs, defines=defines,
                  cflags=cflags, debug=debug)
    run(cmd, what=f"compiling {os.fspath(source)}", timeout=timeout)


def main(argv: Sequence[str] | None = None) -> int:
    """python cbpf/_toolchain.py [-I DIR]... [-D NAME[=V]]... [--no-debug] SOURCE OUTPUT [-- CFLAG...]:
    compile_file() from a shell script, before cbpf is built (scripts/fuzz-legacy)."""
    import argparse

    parser = argparse.ArgumentParser(prog="_toolchain", description="compile one BPF C file")
    parser.add_argument("-I", dest="include_dirs", action="append", default=[])
    parser.add_argument("-D", dest="defines", action="append", default=[])
    parser.add_argument("--no-debug", action="store_true", help="no -g (no BTF)")
    parser.add_argument("source")
    parser.add_argument("output")
    parser.add_argument("cflags", nargs="*")
    args = parser.parse_args(argv)
    try:
        compile_file(args.source, args.output, include_dirs=args.include_dirs, defines=args.defines,
                     cflags=args.cflags, debug=not args.no_debug)
    except CompileError as e:
        print(e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

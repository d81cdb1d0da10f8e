"""Build of cbpf: libbpf from source (static, -fPIC, hidden symbols) linked into cbpf._cbpf, and the bundled BPF
programs compiled with clang.

Environment switches:
  CBPF_DEBUG=1     -O0 -g, for debuggers
  CBPF_SANITIZE=1  AddressSanitizer + UndefinedBehaviorSanitizer (libbpf included)
  CBPF_FUZZ=1      clang with libFuzzer coverage and ASan (libbpf included), for atheris (scripts/fuzz)
  CBPF_WERROR=1    warnings are errors
  CBPF_VALGRIND=1  tell valgrind's memcheck what the kernel wrote (scripts/test-valgrind)
  CBPF_CLANG=path  the clang (or zig) that compiles BPF C (default: clang, else the ziglang package's zig)
  CBPF_STATIC_DEPS=1  zlib and libelf linked in statically from build/deps (scripts/build-deps makes them), for
                      wheels that need nothing but the C library; =PREFIX takes PREFIX/{include,lib} instead.
                      Without it, libelf and zlib are the system's shared libraries.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import setuptools
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

# The metadata is in pyproject.toml's [project] table, which older setuptools ignore: they would build and install
# a distribution named UNKNOWN-0.0.0 whose `import cbpf` is an empty namespace. Fail at once instead.
_SETUPTOOLS_NEEDED = (77, 0)  # `license = "BSD-2-Clause"` (an SPDX expression, PEP 639) needs 77
if tuple(int(p) for p in setuptools.__version__.split(".")[:2] if p.isdigit()) < _SETUPTOOLS_NEEDED:
    sys.exit(f"cbpf needs setuptools>={_SETUPTOOLS_NEEDED[0]} to build (this is setuptools {setuptools.__version__}): "
             f"pip install 'setuptools>={_SETUPTOOLS_NEEDED[0]}', or build without --no-build-isolation")

ROOT = Path(__file__).resolve().parent
LIBBPF_SRC = ROOT / "libbpf"
# one libbpf build per flavour, so that a sanitizer build does not replace the everyday one
_FLAVOUR = "-".join(f for f, var in (("asan", "CBPF_SANITIZE"), ("debug", "CBPF_DEBUG"), ("fuzz", "CBPF_FUZZ"),
                                        ("static", "CBPF_STATIC_DEPS"))
                    if os.environ.get(var, "") not in ("", "0"))
if _FLAVOUR and "fuzz" in _FLAVOUR:
    os.environ.setdefault("CC", "clang")  # libFuzzer's coverage instrumentation is clang's
BUILD = ROOT / "build" / ("libbpf-" + _FLAVOUR if _FLAVOUR else "libbpf")


def flag(name):
    return os.environ.get(name, "") not in ("", "0")


def c_flags():
    flags = ["-fPIC", "-fvisibility=hidden"]
    if flag("CBPF_DEBUG"):
        flags += ["-O0", "-g"]
    else:
        flags += ["-O2"]
    if flag("CBPF_SANITIZE"):
        flags += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g"]
    if flag("CBPF_FUZZ"):
        # UBSan too, each report fatal: libFuzzer then keeps the input as a crash (the ASan runtime carries UBSan's)
        flags += ["-fsanitize=fuzzer-no-link,address,undefined", "-fno-sanitize-recover=undefined",
                  "-fno-omit-frame-pointer", "-g"]
    return flags


def static_deps_prefix():
    """Where the static zlib and libelf are (CBPF_STATIC_DEPS), or None for the system's shared ones."""
    value = os.environ.get("CBPF_STATIC_DEPS", "")
    if value in ("", "0"):
        return None
    return ROOT / "build" / "deps" if value == "1" else Path(value).resolve()


def ensure_static_deps():
    prefix = static_deps_prefix()
    if prefix == ROOT / "build" / "deps":
        subprocess.check_call(["bash", str(ROOT / "scripts" / "build-deps")])  # a second run only checks
    if prefix is not None and not all((prefix / "lib" / a).exists() for a in ("libelf.a", "libz.a")):
        sys.exit(f"CBPF_STATIC_DEPS: no libelf.a and libz.a in {prefix / 'lib'}")


def dep_libraries():
    """-l flags for libbpf's dependencies: none when they are linked in statically."""
    return [] if static_deps_prefix() else ["elf", "z"]


def dep_archives():
    """libbpf's dependencies as archives to link in, after libbpf.a (empty for the shared system libraries)."""
    prefix = static_deps_prefix()
    return [str(prefix / "lib" / a) for a in ("libelf.a", "libz.a")] if prefix else []


def ensure_libbpf_source():
    if not (LIBBPF_SRC / "src" / "libbpf.c").exists():
        subprocess.check_call(["bash", str(ROOT / "scripts" / "fetch-libbpf")])


def build_libbpf():
    """Builds libbpf.a with its own Makefile into build/libbpf/{lib,include}."""
    ensure_libbpf_source()
    ensure_static_deps()
    cflags = " ".join(c_flags())
    env = dict(os.environ)
    prefix = static_deps_prefix()
    if prefix:
        # libelf's headers from the static build (a manylinux container has none of its own)
        cflags += f" -I{prefix / 'include'}"
        env["PKG_CONFIG_PATH"] = str(prefix / "lib" / "pkgconfig")
    compiler = os.environ.get("CC", "cc")
    stamp, built_with = BUILD / "cflags", cflags if compiler == "cc" else f"{cflags} CC={compiler}"
    if (BUILD / "lib" / "libbpf.a").exists() and stamp.exists() and stamp.read_text() == built_with:
        return
    if BUILD.exists():
        shutil.rmtree(BUILD)
    BUILD.mkdir(parents=True)
    subprocess.check_call(
        [
            "make", "-C", str(LIBBPF_SRC / "src"), f"-j{os.cpu_count() or 1}",
            "BUILD_STATIC_ONLY=1", f"OBJDIR={BUILD / 'obj'}", f"DESTDIR={BUILD}",
            "INCLUDEDIR=/include", "LIBDIR=/lib", "UAPIDIR=/include", f"EXTRA_CFLAGS={cflags}",
            "install", "install_uapi_headers", f"CC={compiler}",
        ],
        stdout=subprocess.DEVNULL,
        env=env,
    )
    stamp.write_text(built_with)


BPF_SIDE_HEADERS = ["bpf_helpers.h", "bpf_helper_defs.h", "bpf_tracing.h", "bpf_core_read.h", "bpf_endian.h",
                    "usdt.bpf.h"]


def toolchain():
    """cbpf/_toolchain.py, loaded by path (cbpf itself cannot be imported before its extension is built): the same
    compiler choice and BPF command line as cbpf.compile() (CBPF_CLANG, clang, the ziglang package's zig)."""
    name = "_cbpf_build_toolchain"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "cbpf" / "_toolchain.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # before running it: dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules[name]


def compile_bpf(source, output):
    """A bundled program against cbpf's own headers (cbpf/histogram.h) and the libbpf and UAPI headers of the
    libbpf build."""
    tc = toolchain()
    try:
        tc.compile_file(source, output, include_dirs=[ROOT / "cbpf" / "include", BUILD / "include"])
    except tc.CompileError as e:
        sys.exit(f"{e}\n{e.log}")


class BuildExt(build_ext):
    def run(self):
        build_libbpf()
        for ext in self.extensions:
            ext.extra_objects = [str(BUILD / "lib" / "libbpf.a"), *dep_archives()]
        super().run()


class BuildPy(build_py):
    """Compiles the bundled BPF programs (cbpf/bpf/*.bpf.c) into the .bpf.o files shipped with the package."""

    def run(self):
        build_libbpf()
        # libbpf's headers for BPF C ship inside the package (cbpf.include_dir()), so users and the tests
        # compile against the same bpf_helpers.h as the bundled programs.
        include = ROOT / "cbpf" / "include" / "bpf"
        include.mkdir(parents=True, exist_ok=True)
        for header in BPF_SIDE_HEADERS:
            shutil.copy2(BUILD / "include" / "bpf" / header, include / header)
        # the tools' objects (cbpf/_tools.py finds them): rebuilt when their source or a header they share changed
        headers = [*(ROOT / "cbpf" / "bpf").glob("*.h"), *(ROOT / "cbpf" / "include" / "cbpf").glob("*.h")]
        for source in sorted((ROOT / "cbpf" / "bpf").glob("*.bpf.c")):
            output = source.with_suffix(".o")
            newest = max(p.stat().st_mtime for p in [source, *headers])
            if not output.exists() or output.stat().st_mtime < newest:
                compile_bpf(source, output)
        super().run()


class Sdist(sdist):
    """The sdist carries libbpf's source (MANIFEST.in), so that it builds offline: fetch it first if missing."""

    def run(self):
        ensure_libbpf_source()
        super().run()


extra_compile_args = c_flags() + ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                                  "-Wno-missing-field-initializers", "-Wno-cast-function-type"]
if flag("CBPF_WERROR"):
    extra_compile_args.append("-Werror")
if flag("CBPF_VALGRIND"):  # marks what the kernel wrote through bpf() commands valgrind does not know
    extra_compile_args.append("-DCBPF_VALGRIND")
# export PyInit__cbpf only: the version script hides the rest, libbpf's default-visibility API included (GNU ld and
# lld alike; lld, which scripts/build-wheel's glibc-pinned toolchain links with, has no --exclude-libs)
extra_link_args = [f"-Wl,--version-script={ROOT / 'src' / 'cbpf.map'}"]
if flag("CBPF_SANITIZE"):
    extra_link_args.append("-fsanitize=address,undefined")

ext = Extension(
    "cbpf._cbpf",
    # listed, not globbed: a file being written in src/ must not break everyone's build
    sources=[f"src/{name}.c" for name in ("module", "errors", "object", "program", "link", "map", "mapread",
                                          "mapvalues", "pin", "region", "stream", "ringbuf", "perfbuf", "decoder",
                                          "encoder", "legacy", "legacy_load", "elfcheck", "btfdump", "probe")],
    depends=[str(p.relative_to(ROOT)) for p in (ROOT / "src").glob("*.h")] + ["src/cbpf.map"],
    # libbpf's bundled UAPI headers come before the system's: the extension uses what Linux added after the
    # distribution's headers were cut (PERF_COUNT_SW_CGROUP_SWITCHES is not in Linux 5.10's, Debian bullseye's);
    # zlib.h (src/probe.c reads /proc/config.gz) from the static dependencies when they are used
    include_dirs=[str(BUILD / "include"), str(LIBBPF_SRC / "include" / "uapi"), "src"]
    + ([str(static_deps_prefix() / "include")] if static_deps_prefix() else []),
    libraries=dep_libraries(),
    extra_compile_args=extra_compile_args,
    extra_link_args=extra_link_args,
)

setup(
    ext_modules=[ext],
    cmdclass={"build_ext": BuildExt, "build_py": BuildPy, "sdist": Sdist},
    package_data={"cbpf": ["py.typed", "*.pyi", "bpf/*.bpf.c", "bpf/*.h", "bpf/*.bpf.o", "include/bpf/*.h",
                          "include/cbpf/*.h"],
                  "cbpf.exporter": ["examples/*.yaml"]},
)

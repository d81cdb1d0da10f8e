"""Builds benchmarks/_cbench (the benchmarks' C baselines, see _cbench.c) in place, against this tree's src/ and the
libbpf that setup.py built. Not part of cbpf: no wheel or sdist builds it. `make bench` runs this first; a second
run with nothing changed only checks."""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

from setuptools import Extension, setup

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LIBBPF = ROOT / "build" / "libbpf"


def main() -> None:
    if not (LIBBPF / "lib" / "libbpf.a").exists():
        sys.exit(f"no {LIBBPF / 'lib' / 'libbpf.a'}: build cbpf first (make setup)")
    ext = Extension(
        "_cbench",
        sources=[str(HERE / "_cbench.c")],
        depends=[str(p) for p in (ROOT / "src").glob("*.h")],
        include_dirs=[str(LIBBPF / "include"), str(ROOT / "src")],
        extra_compile_args=["-O2", "-fvisibility=hidden", "-Wall", "-Wno-unused-function"],
        extra_objects=[str(LIBBPF / "lib" / "libbpf.a")],
        libraries=["elf", "z"],
    )
    # a free-threaded build shares its cache tag with the same version's GIL build, not its ABI
    abi = sys.implementation.cache_tag + ("t" if sysconfig.get_config_var("Py_GIL_DISABLED") else "")
    build_temp = ROOT / "build" / f"cbench-{sysconfig.get_platform()}-{abi}"
    setup(
        name="cbpf-benchmarks",
        ext_modules=[ext],
        script_args=["-q", "build_ext", "--inplace", "--build-temp", str(build_temp), "--build-lib", str(HERE)],
        package_dir={"": str(HERE)},
    )


if __name__ == "__main__":
    import os

    os.chdir(HERE)
    main()

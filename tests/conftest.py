"""Shared fixtures: BPF test programs compiled from tests/bpf/*.bpf.c, and the kernel-test rule.

A test marked `kernel` needs a live kernel with BPF and root. Outside CI it skips, naming what is missing; with
CI=true a kernel test that would skip fails instead.
"""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import cbpf

TESTS = Path(__file__).resolve().parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def kernel_missing() -> str | None:
    """What keeps kernel tests from running here, or None."""
    if os.geteuid() != 0:
        return "kernel tests need root (CAP_BPF, CAP_PERFMON)"
    if not Path("/sys/kernel/btf/vmlinux").exists():
        return "kernel has no BTF (/sys/kernel/btf/vmlinux)"
    for tool in ("clang", "bpftool"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install clang bpftool)"
    return None


def skip_or_fail(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"kernel test could not run in CI (CI=true): {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _kernel_rule(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("kernel") is not None:
        reason = kernel_missing()
        if reason is not None:
            skip_or_fail(reason)


@pytest.fixture(scope="module", autouse=True)
def _no_fd_leaks_per_module():
    """Every test module must give back every fd it opened (maps, programs, links, perf events...)."""
    gc.collect()
    before = open_fds()
    yield
    cbpf.shutdown()
    gc.collect()
    leaked = {fd: target for fd, target in open_fds().items() if before.get(fd) != target}
    if leaked:
        pytest.fail("fds leaked by this module: " + ", ".join(f"{fd} -> {t}" for fd, t in sorted(leaked.items())),
                    pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def _compile_cache(tmp_path_factory: pytest.TempPathFactory):
    """cbpf.compile()'s cache for this session only: the suite starts from nothing and leaves the user's alone."""
    before = os.environ.get("CBPF_CACHE_DIR")
    os.environ["CBPF_CACHE_DIR"] = str(tmp_path_factory.mktemp("compile-cache"))
    yield
    if before is None:
        del os.environ["CBPF_CACHE_DIR"]
    else:
        os.environ["CBPF_CACHE_DIR"] = before


@pytest.fixture(scope="session")
def bpf_build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for the objects compiled from tests/bpf."""
    reason = kernel_missing()
    if reason is not None:
        skip_or_fail(reason)
    return tmp_path_factory.mktemp("bpf")


def compile_bpf(source: Path, out_dir: Path, extra: tuple[str, ...] = ()) -> Path:
    """tests/bpf/NAME.bpf.c to out_dir/NAME.bpf.o with cbpf.compile() (libbpf's headers, vmlinux.h, -O2 -g)."""
    return cbpf.compile(source, output=out_dir / (source.name[: -len(".c")] + ".o"), cflags=extra)


@pytest.fixture(scope="session")
def bpf_objects(bpf_build_dir: Path) -> dict[str, Path]:
    """Every tests/bpf/NAME.bpf.c compiled once per session, by NAME."""
    return {src.name[: -len(".bpf.c")]: compile_bpf(src, bpf_build_dir)
            for src in sorted((TESTS / "bpf").glob("*.bpf.c"))}


LEGACY = TESTS / "bpf" / "legacy"


def compile_legacy(source: Path, out_dir: Path, debug: bool) -> Path:
    """A program in the seed's legacy format (tests/bpf/legacy/bpf_legacy.h, no kernel or libbpf header), built as
    the seed built them: clang -O2 -target bpf, with -g (BTF, DWARF and their relocations) or without (-g0)."""
    output = out_dir / (source.name[: -len(".bpf.c")] + (".g.o" if debug else ".o"))
    return cbpf.compile(source, output=output, include_dirs=[LEGACY], defines=["LEGACY"],
                        cflags=[] if debug else ["-g0"])


@pytest.fixture(scope="session")
def legacy_objects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every tests/bpf/legacy/NAME.bpf.c compiled once per session without -g (NAME) and with it (NAME.g)."""
    if shutil.which("clang") is None:
        skip_or_fail("clang is not installed (apt-get install clang)")
    out = tmp_path_factory.mktemp("legacy")
    objects = {}
    for src in sorted(LEGACY.glob("*.bpf.c")):
        for debug in (False, True):
            obj = compile_legacy(src, out, debug)
            objects[obj.name[: -len(".o")]] = obj
    return objects


@pytest.fixture
def booted_clean():
    """boot() keeps objects for the life of the process; this gives each test a clean slate."""
    cbpf.shutdown()
    yield
    cbpf.shutdown()


def open_fds() -> dict[int, str]:
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            pass  # the fd of the listing itself
    return fds


@pytest.fixture
def loop_device(tmp_path):
    """A loop device over a 16 MiB file: (its path, its dev_t as the block tracepoints give it)."""
    image = tmp_path / "disk.img"
    with open(image, "wb") as f:
        f.truncate(16 << 20)
    if shutil.which("losetup") is None:
        skip_or_fail("losetup is not installed (util-linux)")
    r = subprocess.run(["losetup", "--find", "--show", str(image)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"losetup could not make a loop device: {r.stderr.strip()}")
    dev = r.stdout.strip()
    try:
        rdev = os.stat(dev).st_rdev
        yield dev, (os.major(rdev) << 20) | os.minor(rdev)
    finally:
        subprocess.run(["losetup", "-d", dev], check=True)

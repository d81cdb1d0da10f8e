"""The bad inputs of the README's table that need a kernel: each gives its clear error and leaves nothing open."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import cbpf
from cbpf import Map

from conftest import open_fds

pytestmark = pytest.mark.kernel


def has_kprobes() -> bool:
    return os.path.exists("/sys/bus/event_source/devices/kprobe")


@pytest.mark.skipif(has_kprobes(), reason="this kernel has kprobes: the error cannot happen here")
def test_kprobe_on_a_kernel_without_kprobes_names_the_config(bpf_objects):
    before = open_fds()
    with pytest.raises(OSError, match=r"no kprobes \(built without CONFIG_KPROBES\)"):
        cbpf.Object(bpf_objects["kprobe"])
    assert open_fds() == before
    # loading without attaching works: only the attachment needs kprobes
    with cbpf.Object(bpf_objects["kprobe"], attach=False) as obj:
        assert obj.maps["calls"].fetch(0) == 0


def test_truncated_objects_fail_cleanly(bpf_objects):
    data = Path(bpf_objects["counter"]).read_bytes()
    before = open_fds()
    for cut in (16, 64, 200, len(data) // 3, len(data) // 2, len(data) - 1):
        with pytest.raises(OSError):
            cbpf.Object(data[:cut])
    assert open_fds() == before


def test_memoryview_of_a_map_that_is_not_mmapped():
    with Map.create("hash", 4, 4, 4) as m:
        with pytest.raises(TypeError, match="not mmapped"):
            m.memoryview()


def test_close_while_another_thread_loads(bpf_objects):
    data = Path(bpf_objects["counter"]).read_bytes()
    refused = 0
    for _ in range(20):
        obj = cbpf.Object(data, load=False)
        loader = threading.Thread(target=obj.load)
        loader.start()
        while loader.is_alive():
            try:
                obj.close()
            except RuntimeError as e:
                assert "being loaded by another thread" in str(e)
                refused += 1
                break
        loader.join()
        if not obj.closed:
            assert obj.loaded  # the load was not disturbed
        obj.close()
        if refused:
            break
    assert refused == 1


def run_in_private_mounts(script: str) -> subprocess.CompletedProcess[str]:
    """Runs python code in a mount namespace of its own where tracefs and bpffs are not mounted."""
    env = {**os.environ, "PYTHONPATH": str(Path(cbpf.__file__).resolve().parent.parent)}
    shell = ("umount -l /sys/kernel/tracing 2>/dev/null; umount -l /sys/kernel/debug 2>/dev/null; "
             "umount -l /sys/fs/bpf 2>/dev/null; "
             f"exec {sys.executable} -c \"$0\"")
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", shell, script],
                          capture_output=True, text=True, env=env, cwd="/")


def test_tracefs_is_mounted_when_missing(bpf_objects):
    r = run_in_private_mounts(
        "import os, cbpf\n"
        "assert not os.path.exists('/sys/kernel/tracing/events'), 'tracefs still mounted'\n"
        f"o = cbpf.Object({str(bpf_objects['counter'])!r})\n"
        "pid = os.getpid()\n"
        "for _ in range(9): os.getpid()\n"
        "print(os.path.exists('/sys/kernel/tracing/events'), o.maps['counts'].fetch(pid))\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "10"]


def test_bpffs_is_mounted_when_missing():
    r = run_in_private_mounts(
        "import os, cbpf\n"
        "assert not os.path.ismount('/sys/fs/bpf'), 'bpffs still mounted'\n"
        "m = cbpf.Map.create('array', 4, 4, 1)\n"
        "m.pin('/sys/fs/bpf/cbpf-mount-test')\n"
        "print(os.path.ismount('/sys/fs/bpf'), cbpf.Map.from_pinned('/sys/fs/bpf/cbpf-mount-test').id == m.id)\n"
        "m.unpin()\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "True"]


REGRESSIONS = sorted((Path(__file__).parent / "fuzz-regressions").iterdir())


@pytest.mark.parametrize("path", REGRESSIONS, ids=[p.name for p in REGRESSIONS])
def test_fuzz_findings_load_or_fail_cleanly(path):
    """Inputs the fuzzer (scripts/fuzz) once crashed on or raised something other than OSError with."""
    before = open_fds()
    try:
        obj = cbpf.Object(path.read_bytes(), attach=False)
    except OSError:
        pass
    else:
        obj.close()
    assert open_fds() == before


def test_names_that_are_not_utf8_are_escaped():
    # the fuzzer's mutation of net.bpf.o: bytes 0xa0... in a section name, which libbpf takes as a program's name
    data = (Path(__file__).parent / "fuzz-regressions" / "non-utf8-program-name.bin").read_bytes()
    with cbpf.Object(data, load=False) as obj:
        assert "cgroup\\xa0\\x9a\\x98\\x8d\\x9a\\x8c\\x8c\\xff.relcgroup_skb/egress" in obj.programs


def test_a_function_ending_in_half_an_ld_imm64_is_refused_before_libbpf_sees_it():
    # the fuzzer's mutation of net.bpf.o: a function symbol shortened so that its last slot opens an ld_imm64 with
    # a relocation on it; libbpf 1.7 would write the second half past its copy of the program (ASan saw it)
    data = (Path(__file__).parent / "fuzz-regressions" / "ld-imm64-cut-off-at-function-end.bin").read_bytes()
    before = open_fds()
    with pytest.raises(OSError, match=r"not a valid BPF ELF object \(function at offset 0 of section 9 ends in the "
                                      r"first half of a 16-byte ld_imm64 instruction\)"):
        cbpf.Object(data)
    assert open_fds() == before

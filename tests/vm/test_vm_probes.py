"""kprobe/kretprobe, fentry/fexit and LSM programs, attached by section name, counting exactly what the test does."""

from __future__ import annotations

import os
import tempfile

import pytest

import cbpf

pytestmark = pytest.mark.vmkernel

from vmutil import require, vm_objects_dir

PID = os.getpid()
N = 250


def has_kprobes() -> bool:
    return os.path.exists("/sys/bus/event_source/devices/kprobe")


def bpf_lsm_active() -> bool:
    try:
        with open("/sys/kernel/security/lsm") as f:
            return "bpf" in f.read().split(",")
    except OSError:
        return False


def load(vm_objects, *programs: str) -> cbpf.Object:
    """The probes object with only the given programs loaded (each kind needs its own kernel feature)."""
    obj = cbpf.Object(vm_objects / "vm_probes.bpf.o", load=False)
    obj._set_autoload(programs)
    obj.load()
    obj.maps["target"].update(0, PID)
    obj.attach()
    return obj


@pytest.fixture
def vm_objects():
    return vm_objects_dir()


@pytest.fixture(autouse=True)
def _fresh_boot():
    cbpf.shutdown()
    yield
    cbpf.shutdown()


def test_kprobe_and_kretprobe_attached_by_section_name(vm_objects):
    require(has_kprobes(), "kprobes (CONFIG_KPROBES)")
    obj = load(vm_objects, "on_kprobe", "on_kretprobe")
    for _ in range(N):
        os.getpid()
    hits = obj.maps["hits"]
    assert (hits.fetch(0), hits.fetch(1)) == (N, N)
    obj.close()


def test_fentry_and_fexit_on_security_file_open_count_exactly(vm_objects):
    require(os.path.exists("/sys/kernel/btf/vmlinux"), "kernel BTF (CONFIG_DEBUG_INFO_BTF)")
    obj = load(vm_objects, "on_fentry", "on_fexit")
    hits = obj.maps["hits"]
    with tempfile.NamedTemporaryFile() as f:
        before = (hits.fetch(2), hits.fetch(3))
        for _ in range(N):
            os.close(os.open(f.name, os.O_RDONLY))
        assert (hits.fetch(2) - before[0], hits.fetch(3) - before[1]) == (N, N)
    obj.close()


def test_lsm_program_fires_on_each_open(vm_objects):
    require(bpf_lsm_active(), "the BPF LSM (CONFIG_BPF_LSM and 'bpf' in lsm=)")
    obj = load(vm_objects, "on_file_open")
    with tempfile.NamedTemporaryFile() as f:
        before = obj.maps["hits"].fetch(4)
        for _ in range(N):
            os.close(os.open(f.name, os.O_RDONLY))
        assert obj.maps["hits"].fetch(4) - before == N
    obj.close()

"""Attach points the development kernel lacks (kprobes, fentry/fexit, BPF LSM), for a VM kernel that has them.

scripts/vmtest runs these inside a guest and sets CBPF_VM_KERNEL there. A feature the kernel refuses fails the test
where cbpf.features says the kernel has it, and inside the VM always; on the host that lacks it the test skips,
naming what is missing. Programs: tests/bpf/vm_{kprobe,fentry,lsm}.bpf.c, and vm_legacy_kprobe.bpf.c in the
seed's legacy format (struct bpf_map_def in "maps").
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import cbpf
import cbpf.features as features
from conftest import TESTS, compile_bpf

pytestmark = pytest.mark.vmkernel

IN_VM = bool(os.environ.get("CBPF_VM_KERNEL"))
# what cbpf.features says of each feature, asked of the kernel itself (never its version number)
HAS = {
    "kprobes": features.kprobes,
    "fentry/fexit": lambda: features.fentry("security_file_open"),
    "BPF LSM": lambda: features.program_type("lsm") and "bpf" in active_lsms().split(","),
}
CALLS = 1000


@pytest.fixture(scope="module")
def bpf_objects(request) -> dict[str, Path]:
    """tests/bpf/vm_*.bpf.c by name. scripts/vmtest-run compiles them on the host into CBPF_VM_OBJECTS before it
    boots the VM (clang under the guest's emulated CPU would take minutes, and the guest's root is read-only)."""
    where = os.environ.get("CBPF_VM_OBJECTS")
    if where:
        return {p.name[: -len(".bpf.o")]: p for p in Path(where).glob("*.bpf.o")}
    if IN_VM:
        pytest.fail("CBPF_VM_OBJECTS is not set: run these tests through scripts/vmtest-run", pytrace=False)
    out = request.getfixturevalue("bpf_build_dir")
    return {src.name[: -len(".bpf.c")]: compile_bpf(src, out) for src in sorted((TESTS / "bpf").glob("vm_*.bpf.c"))}


@pytest.fixture(autouse=True)
def _forget_booted():
    yield
    cbpf.shutdown()


def need(feature: str, missing: str | None) -> None:
    """A feature the kernel refused: a failure where cbpf.features says the kernel has it and in the VM kernels
    (which all have it), a skip on the host that lacks it."""
    if missing is None:
        return
    has = HAS[feature]()
    if has or IN_VM:
        said = "has" if has else "lacks"
        pytest.fail(f"{feature} on {os.uname().release} (cbpf.features says it {said} it): {missing}", pytrace=False)
    pytest.skip(f"needs a kernel with {feature}: {missing} (runs inside scripts/vmtest)")


def load(path, feature: str, hint: str = "", boot: bool = False, **kwargs) -> cbpf.Object:
    """The object loaded and attached, by cbpf.boot() (the seed's call) or cbpf.Object()."""
    try:
        obj = cbpf.boot(path) if boot else cbpf.Object(path, **kwargs)
    except OSError as e:
        need(feature, f"the kernel refused the program ({e}){hint}")
        raise
    obj.globals["target_tgid"] = os.getpid()
    return obj


def getpid_n(n: int) -> None:
    for _ in range(n):
        os.getpid()


def need_kprobes() -> None:
    if not os.path.exists("/sys/bus/event_source/devices/kprobe"):
        need("kprobes", "this kernel has no kprobes (built without CONFIG_KPROBES)")


def test_kprobe_and_kretprobe_by_section_name(bpf_objects):
    need_kprobes()
    with load(bpf_objects["vm_kprobe"], "kprobes", boot=True) as obj:  # attaches the programs whose sections say where
        assert cbpf.booted() == (obj,)
        assert sorted(link.target for link in obj.links) == ["kprobe/__x64_sys_getpid",
                                                             "kretprobe/__x64_sys_getpid"]
        getpid_n(CALLS)
        g = obj.globals
        assert (g["kprobe_calls"], g["kretprobe_calls"], g["kretprobe_right_value"]) == (CALLS, CALLS, CALLS)
        for link in obj.links:
            link.detach()
        getpid_n(10)
        assert (g["kprobe_calls"], g["kretprobe_calls"]) == (CALLS, CALLS)


def test_attach_kprobe_explicitly(bpf_objects):
    need_kprobes()
    with load(bpf_objects["vm_kprobe"], "kprobes", attach=False) as obj:
        entry = obj.programs["any_kprobe"].attach_kprobe("__x64_sys_getpid")
        ret = obj.programs["any_kretprobe"].attach_kprobe("__x64_sys_getpid", retprobe=True)
        assert (entry.target, ret.target) == ("kprobe __x64_sys_getpid", "kretprobe __x64_sys_getpid")
        getpid_n(CALLS)
        assert (obj.globals["explicit_calls"], obj.globals["explicit_ret_calls"]) == (CALLS, CALLS)
        entry.detach()
        getpid_n(10)
        assert (obj.globals["explicit_calls"], obj.globals["explicit_ret_calls"]) == (CALLS, CALLS + 10)
        with pytest.raises(FileNotFoundError, match="kprobe cbpf_no_such_function: no such kernel function"):
            obj.programs["any_kprobe"].attach_kprobe("cbpf_no_such_function")


def test_fentry_and_fexit_count_open_calls(bpf_objects):
    with load(bpf_objects["vm_fentry"], "fentry/fexit") as obj:
        assert sorted(link.target for link in obj.links) == ["fentry/security_file_open",
                                                             "fexit/security_file_open"]
        g = obj.globals
        before = (g["fentry_calls"], g["fexit_calls"], g["fexit_succeeded"])
        for _ in range(CALLS):
            os.close(os.open("/dev/null", os.O_RDONLY))
        after = (g["fentry_calls"], g["fexit_calls"], g["fexit_succeeded"])
        assert tuple(a - b for a, b in zip(after, before)) == (CALLS, CALLS, CALLS)


def active_lsms() -> str:
    """The kernel's active LSMs, for messages (securityfs is mounted for it inside the VM)."""
    lsm = "/sys/kernel/security/lsm"
    if not os.path.exists(lsm) and IN_VM:
        subprocess.run(["mount", "-t", "securityfs", "securityfs", "/sys/kernel/security"], capture_output=True)
    return open(lsm).read().strip() if os.path.exists(lsm) else "unknown (securityfs not mounted)"


def test_lsm_program_fires_on_file_open(bpf_objects):
    lsms = active_lsms()
    hint = "" if "bpf" in lsms.split(",") else f"; active LSMs: {lsms}: boot with lsm=...,bpf and CONFIG_BPF_LSM=y"
    with load(bpf_objects["vm_lsm"], "BPF LSM", hint) as obj:
        assert [link.target for link in obj.links] == ["lsm/file_open"]
        for _ in range(CALLS):
            os.close(os.open("/dev/null", os.O_RDONLY))
        assert obj.globals["file_opens"] == CALLS, f"active LSMs: {lsms}"


def test_legacy_kprobe_and_kretprobe_by_section_name(bpf_objects, booted_clean):
    """The seed's format (struct bpf_map_def in "maps", which libbpf 1.x refuses), loaded by cbpf's own loader and
    attached by boot() from the section names, as libbpf would."""
    need_kprobes()
    obj = cbpf.boot(bpf_objects["vm_legacy_kprobe"])
    assert obj.legacy
    assert sorted(link.target for link in obj.links) == ["kprobe/__x64_sys_getpid", "kretprobe/__x64_sys_getpid"]
    obj.maps["legacy_config"][0] = os.getpid()  # counting starts after this call
    getpid_n(CALLS)
    assert (cbpf.fetch("legacy_kprobe_counts", 0), cbpf.fetch("legacy_kprobe_counts", 1)) == (CALLS, CALLS)
    obj.close()
    assert obj.links == ()


def test_legacy_attach_kprobe_explicitly(bpf_objects):
    need_kprobes()
    with cbpf.Object(bpf_objects["vm_legacy_kprobe"], attach=False) as obj:
        obj.maps["legacy_config"][0] = os.getpid()
        counts = obj.maps["legacy_kprobe_counts"]
        with obj.programs["legacy_kprobe_getpid"].attach_kprobe("__x64_sys_getpid") as entry:
            assert entry.target == "kprobe __x64_sys_getpid"
            getpid_n(CALLS)
        getpid_n(10)  # detached
        assert (counts.fetch(0), counts.fetch(1)) == (CALLS, 0)
        with pytest.raises(FileNotFoundError, match="no kernel function 'cbpf_no_such_function'"):
            obj.programs["legacy_kretprobe_getpid"].attach_kprobe("cbpf_no_such_function", retprobe=True)

"""Real-world shapes that need trampolines, and the feature probes, on whatever kernel runs them: this host (which
refuses fentry and has no kprobes) and the VM kernels of scripts/vmtest (5.10, 6.1, 6.12, newest). Each test decides
by cbpf.features what the kernel should do and asserts that it does it, or that the error says why not: never by a
version number, never by a skip. Programs: tests/bpf/vm_retarget.bpf.c and vm_cookie.bpf.c."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import cbpf
import cbpf.features as features
from test_vm_attach import IN_VM, bpf_objects  # noqa: F401  (the fixture: objects compiled on the host)

pytestmark = pytest.mark.kernel

CALLS = 300
TARGET = "security_file_open"  # in every Debian kernel's BTF (see vm_fentry.bpf.c)


def open_n(n: int) -> None:
    for _ in range(n):
        os.close(os.open("/dev/null", os.O_RDONLY))


def retarget_object(path, **autoload: bool) -> cbpf.Object:
    obj = cbpf.Object(path, load=False)
    for name, prog in obj.programs.items():
        prog.autoload = autoload.get(name, False)
    obj.globals["target_tgid"] = os.getpid()
    return obj


def test_probe_selected_program_pair_counts_exactly(bpf_objects):
    """A tool with an fentry and a tracepoint variant of one probe loads the one the kernel can run."""
    use_fentry = features.fentry(TARGET)
    if IN_VM:
        assert use_fentry  # every VM kernel of the matrix has trampolines
    obj = retarget_object(bpf_objects["vm_retarget"], open_fentry=use_fentry, open_tracepoint=not use_fentry)
    obj.load()
    obj.attach()
    open_n(CALLS)
    g = obj.globals
    assert (g["fentry_opens"], g["tracepoint_opens"]) == ((CALLS, 0) if use_fentry else (0, CALLS))
    obj.close()


def test_fentry_placeholder_retargeted_before_load(bpf_objects):
    obj = retarget_object(bpf_objects["vm_retarget"], retargeted=True)
    prog = obj.programs["retargeted"]
    assert prog.section == "fentry/cbpf_placeholder_function"
    with pytest.raises(FileNotFoundError, match="program 'retargeted' of object 'vm_retarget': attach_target: "
                                                "'cbpf_no_such_function' is not in the running kernel's BTF") as info:
        prog.attach_target = "cbpf_no_such_function"
    assert (info.value.object, info.value.program, info.value.map) == ("vm_retarget", "retargeted", None)
    prog.attach_target = TARGET
    assert prog.attach_target == TARGET
    if not features.fentry(TARGET):
        with pytest.raises(cbpf.LoadError, match="program 'retargeted' was refused: this kernel refuses trampoline "
                                                 "programs .* even to root") as info:
            obj.load()
        assert info.value.program == "retargeted"
        return
    obj.load()
    obj.attach()
    assert [link.target for link in obj.links] == [f"fentry/{TARGET}"]
    open_n(CALLS)
    assert obj.globals["retargeted_opens"] == CALLS
    obj.close()


def test_placeholder_left_as_it_is_names_the_missing_function(bpf_objects):
    obj = retarget_object(bpf_objects["vm_retarget"], retargeted=True)
    with pytest.raises(FileNotFoundError, match="program 'retargeted' attaches to 'cbpf_placeholder_function', which "
                                                "is not a function .* in the running kernel's BTF"):
        obj.load()


# -- cbpf.features: each probe against the kernel doing the thing for real ---------------------------------------


def kernel_config(name: str) -> str | None:
    """CONFIG_<name> of the running kernel from /proc/config.gz, or None when the config cannot be read."""
    import gzip

    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            for line in f:
                if line.startswith(f"CONFIG_{name}="):
                    return line.strip().split("=", 1)[1]
        return ""
    except OSError:
        return None


def test_kprobes_probe():
    has = features.kprobes()
    if IN_VM:
        assert has is True  # Debian's kernels are built with CONFIG_KPROBES
    else:
        config = kernel_config("KPROBES")
        assert config is not None, "the host's kernel config is readable at /proc/config.gz"
        assert has is (config == "y")  # on this project's host: False (CONFIG_KPROBES is not set)
    assert features.kprobes() is has  # cached


def test_fentry_probe_matches_a_real_load(bpf_objects):
    obj = retarget_object(bpf_objects["vm_retarget"], open_fentry=True)
    try:
        obj.load()
        obj.attach()
        loaded = True
    except cbpf.LoadError as e:
        assert "refuses trampoline programs" in str(e) and e.program == "open_fentry"
        loaded = False
    obj.close()
    assert features.fentry(TARGET) is loaded
    assert features.fentry("cbpf_no_such_function") is False
    assert features.program_type("tracing") is loaded  # libbpf's probe of the type meets the same refusal


def test_tracepoint_raw_tracepoint_function_and_btf_probes():
    assert features.tracepoint("syscalls", "sys_enter_getpid") is True
    assert features.tracepoint("syscalls", "cbpf_no_such_tracepoint") is False
    assert features.raw_tracepoint("sys_enter") is True
    assert features.raw_tracepoint("cbpf_no_such_tracepoint") is False
    assert features.kernel_function(TARGET) is True
    assert features.kernel_function("cbpf_no_such_function") is False
    assert features.btf_type("task_struct") is True
    assert features.btf_type("cbpf_no_such_type") is False
    assert features.btf_field("task_struct", "pid") is True
    assert features.btf_field("task_struct", "cbpf_no_such_field") is False
    assert features.btf_field("bpf_link_type", "BPF_LINK_TYPE_RAW_TRACEPOINT") is True  # an enum's value


def test_program_map_and_helper_probes():
    assert features.program_type("socket_filter") is True
    assert features.program_type(cbpf.ProgramType.XDP) is True
    assert features.map_type("hash") is True
    assert features.helper("socket_filter", "map_lookup_elem") is True
    assert features.helper("socket_filter", "bpf_override_return") is False  # kprobe programs' only
    with pytest.raises(ValueError, match="unknown BPF helper 'cbpf_nope'"):
        features.helper("socket_filter", "cbpf_nope")
    with pytest.raises(ValueError, match="unknown program type 'cbpf_nope'"):
        features.program_type("cbpf_nope")


@pytest.mark.parametrize("kind", ["ringbuf", "user_ringbuf", "bloom_filter"])
def test_map_type_probes_match_creating_one(kind):
    sizes = {"ringbuf": (0, 0, 4096), "user_ringbuf": (0, 0, 4096), "bloom_filter": (0, 8, 64)}[kind]
    try:
        cbpf.Map.create(kind, *sizes).close()
        created = True
    except OSError:
        created = False
    assert features.map_type(kind) is created
    if kind == "ringbuf":
        assert features.ringbuf() is created
        assert created is True  # 5.8+: every kernel here; elsewhere cbpf.PerfBuffer is the fallback


def test_bpf_cookie_probe_matches_a_real_load(bpf_objects):
    try:
        cbpf.Object(bpf_objects["vm_cookie"], attach=False).close()
        loads = True
    except cbpf.LoadError as e:
        assert e.program == "read_cookie"
        loads = False
    assert features.bpf_cookie() is loads


TCX_SCRIPT = """
import sys, cbpf
obj = cbpf.Object(sys.argv[1], attach=False)
try:
    obj.programs["tc_count"].attach_tc("lo", tcx=True)
    print("tcx")
except OSError as e:
    print("no tcx:", e)
obj.programs["tc_count"].attach_tc("lo")  # tcx where there is one, else the clsact filter: works either way
print("attached")
"""


def test_bpf_link_probe_matches_attaching_through_tcx(request):
    """tcx links (6.6+): where the probe says there are none, attach_tc falls back to a clsact filter."""
    from conftest import TESTS, compile_bpf

    where = os.environ.get("CBPF_VM_OBJECTS")  # scripts/vmtest-run compiles net.bpf.c on the host for the VM
    net = os.path.join(where, "net.bpf.o") if where else compile_bpf(TESTS / "bpf" / "net.bpf.c",
                                                                      request.getfixturevalue("bpf_build_dir"))
    ns = f"cbpf-tcx-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", TCX_SCRIPT, str(net)],
                           capture_output=True, text=True, timeout=120)
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=True)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[-1] == "attached"
    assert features.bpf_link("tcx") is (lines[0] == "tcx"), lines[0]
    assert features.bpf_link("xdp") is True  # 5.9+
    with pytest.raises(ValueError, match="unknown BPF link kind 'cbpf_nope'"):
        features.bpf_link("cbpf_nope")


def test_freplace_target_program_given_before_load(bpf_objects):
    """A replacement for a global function of a loaded program: its attach_target is that Program."""
    target = cbpf.Object(bpf_objects["vm_freplace"], load=False)
    target.programs["new_decide"].autoload = False
    target.load()
    xdp = target.programs["xdp_target"]
    assert xdp.test_run(b"\0" * 64)[0] == 2  # XDP_PASS, from decide()
    replacement = cbpf.Object(bpf_objects["vm_freplace"], load=False)
    replacement.programs["xdp_target"].autoload = False
    new = replacement.programs["new_decide"]
    assert new.type == cbpf.ProgramType.EXT
    with pytest.raises(FileNotFoundError, match="'cbpf_no_such_function' is not a function of the target program"):
        new.attach_target = (xdp, "cbpf_no_such_function")
    new.attach_target = (xdp, "decide")
    if not features.program_type("ext"):
        with pytest.raises(cbpf.LoadError, match="this kernel refuses trampoline programs") as info:
            replacement.load()
        assert info.value.program == "new_decide"
        target.close()
        return
    replacement.load()
    link = new.attach()
    assert link.target == "freplace/decide of program 'xdp_target'"
    assert xdp.test_run(b"\0" * 64)[0] == 1  # XDP_DROP: decide() is replaced
    link.detach()
    assert xdp.test_run(b"\0" * 64)[0] == 2
    replacement.close()
    target.close()

"""Finishing an object between open and load: map and program setters (both formats), maps shared between objects,
programs run on test input, and the errors on the way. Programs: tests/bpf/{preload,runs,untyped,rejected}.bpf.c and
tests/bpf/legacy/sized.bpf.c."""

from __future__ import annotations

import errno
import gc
import json
import os
import shutil
import struct
import threading
from pathlib import Path

import pytest

import cbpf
from conftest import open_fds as _open_fds

pytestmark = pytest.mark.kernel

CALLS = 500
ETH_HLEN = 14  # a socket filter's skb starts after the Ethernet header BPF_PROG_TEST_RUN pulls


def open_fds() -> dict[int, str]:
    """The open fds once objects of earlier tests that are garbage now are collected (their fds with them)."""
    gc.collect()
    return _open_fds()


def u64(raw: bytes | None) -> int:
    assert raw is not None
    return int.from_bytes(raw[:8], "little")


def u32(raw: bytes | None) -> int:
    assert raw is not None
    return int.from_bytes(raw[:4], "little")


@pytest.fixture
def pin_root():
    """A bpffs directory of this test's own (other engineers' suites pin at the same time)."""
    path = Path(f"/sys/fs/bpf/cbpf-test-preload-{os.getpid()}")
    yield path
    shutil.rmtree(path, ignore_errors=True)


# -- maps sized from Python: the libbpf-tools shape ---------------------------------------------------------------


def test_stack_trace_and_per_thread_maps_sized_before_load(bpf_objects):
    before = open_fds()
    obj = cbpf.Object(bpf_objects["preload"], load=False)
    stacks, calls, stack_calls, slots = (obj.maps[n] for n in ("stacks", "calls", "stack_calls", ".data.slots"))
    assert (stacks.key_size, stacks.value_size, stacks.max_entries) == (4, 0, 0)
    assert calls.max_entries == 0
    stacks.value_size = 127 * 8  # stack depth, as a tool's --max-depth would give it
    stacks.max_entries = 1024
    calls.max_entries = 64
    stack_calls.max_entries = 1024
    slots.value_size = 64 * 8  # .data.slots holds one array: libbpf resizes it
    obj.globals["target_tgid"] = os.getpid()
    obj.globals["nslots"] = 64
    obj.load()
    obj.attach()
    assert (stacks.value_size, stacks.max_entries, calls.max_entries, slots.value_size) == (1016, 1024, 64, 512)
    for _ in range(CALLS):
        os.getpid()
    assert calls.to_dict() == {threading.get_native_id(): CALLS}
    assert sum(stack_calls.to_dict().values()) == CALLS  # every call's user stack was recorded
    assert stacks.lookup(next(iter(stack_calls.keys()))) is not None
    assert len(obj.globals["slots"]) == 64  # the BTF of the section was resized along with it
    assert obj.globals["slots"][63] == CALLS
    obj.close()
    assert open_fds() == before


def test_global_sections_resize_only_through_their_last_array(bpf_objects):
    """libbpf would take any size and drop the section's BTF (and so the globals): cbpf refuses those."""
    obj = cbpf.Object(bpf_objects["preload"], load=False)
    with pytest.raises(ValueError, match="value_size of map 'preload.rodata' cannot change: libbpf resizes a global "
                                         "section through its last variable, an array, and 'trace_stacks' is not one"):
        obj.maps["preload.rodata"].value_size = 64
    with pytest.raises(ValueError, match="value_size of map '.data.slots' must be 0 .where its last variable 'slots' "
                                         "starts. plus a whole number of its 8-byte elements, not 12"):
        obj.maps[".data.slots"].value_size = 12
    assert obj.maps["preload.rodata"].value_size == 9 and "trace_stacks" in obj.globals
    obj.maps[".data.slots"].value_size = 16
    assert obj.maps[".data.slots"].value_size == 16 and len(obj.globals["slots"]) == 2
    obj.close()


def test_a_size_left_at_zero_names_the_map_and_the_attribute(bpf_objects):
    before = open_fds()
    obj = cbpf.Object(bpf_objects["preload"], load=False)
    opened = open_fds()
    obj.maps["stacks"].max_entries = 16
    obj.maps["calls"].max_entries = 16
    obj.maps["stack_calls"].max_entries = 16
    with pytest.raises(ValueError, match=r"map 'stacks' has value_size 0: set Map.value_size before Object.load\(\)"):
        obj.load()
    assert open_fds() == opened  # nothing reached the kernel, and the object can still be finished
    obj.maps["stacks"].value_size = 8 * 8
    obj.load()
    assert obj.maps["stacks"].fd >= 0
    obj.close()
    assert open_fds() == before


def test_setters_refuse_after_load_on_a_closed_object_and_bad_values(bpf_objects):
    obj = cbpf.Object(bpf_objects["runs"], load=False)
    m, p = obj.maps["shared_counts"], obj.programs["bump_shared"]
    with pytest.raises(ValueError, match=r"max_entries of map 'shared_counts' must be within 0\.\.4294967295, not -1"):
        m.max_entries = -1
    with pytest.raises(ValueError, match=r"must be within 0\.\.4294967295, not 4294967296"):
        m.max_entries = 1 << 32
    with pytest.raises(TypeError, match="max_entries of map 'shared_counts' must be an int, not str"):
        m.max_entries = "8"  # type: ignore[assignment]
    with pytest.raises(ValueError, match="type of map 'shared_counts': unknown map type 'hashish'"):
        m.type = "hashish"  # type: ignore[assignment]
    with pytest.raises(ValueError, match="type of program 'bump_shared': unknown program type 'sockett'"):
        p.type = "sockett"  # type: ignore[assignment]
    with pytest.raises(AttributeError, match="cannot delete max_entries of map 'shared_counts'"):
        del m.max_entries
    with pytest.raises(TypeError, match="autocreate of map 'shared_counts' must be True or False"):
        m.autocreate = 1  # type: ignore[assignment]
    m.type = "percpu_array"  # by name; the layout follows
    assert m.type == cbpf.MapType.PERCPU_ARRAY and m.ncpus == cbpf.num_possible_cpus()
    m.type = cbpf.MapType.ARRAY
    obj.maps["by_key"].inner_map = cbpf.Map.create("array", 4, 8, 1)
    obj.load()
    for setter in (lambda: setattr(m, "max_entries", 2), lambda: setattr(m, "type", "hash"),
                   lambda: setattr(m, "flags", 0), lambda: setattr(m, "numa_node", 0),
                   lambda: setattr(m, "map_extra", 0), lambda: setattr(m, "autocreate", False),
                   lambda: setattr(m, "pin_path", "/sys/fs/bpf/x"), lambda: m.reuse(m)):
        with pytest.raises(ValueError, match="of map 'shared_counts' can only be set before Object.load()"):
            setter()
    for name, value in (("type", "xdp"), ("expected_attach_type", 0), ("flags", 0), ("log_level", 1),
                        ("attach_target", "security_file_open")):
        with pytest.raises(ValueError, match=f"{name} of program 'bump_shared' can only be set before Object.load"):
            setattr(p, name, value)
    obj.close()
    with pytest.raises(ValueError, match="map 'shared_counts' is closed"):
        m.max_entries = 2
    with pytest.raises(ValueError, match="program 'bump_shared' is closed"):
        p.type = "xdp"  # type: ignore[assignment]
    own = cbpf.Map.create("array", 4, 8, 1)
    with pytest.raises(ValueError, match="cannot change: the map exists already"):
        own.max_entries = 2
    own.close()


def test_setters_refuse_while_the_object_is_being_loaded(bpf_objects):
    """A load in another thread runs with the GIL released: a setter meanwhile raises RuntimeError, and the load goes
    on with what it was given."""
    obj = cbpf.Object(bpf_objects["preload"], load=False)
    obj.maps["stacks"].max_entries = 1024
    obj.maps["stacks"].value_size = 127 * 8
    for name in ("calls", "stack_calls"):
        obj.maps[name].max_entries = 1 << 19  # preallocated hashes: the load takes a few hundred ms
    flags = obj.maps["calls"].flags
    t = threading.Thread(target=obj.load)
    t.start()
    busy = 0
    while t.is_alive():
        try:
            obj.maps["calls"].flags = flags  # the same value: whether it is taken or not, the load is unchanged
        except RuntimeError as e:
            assert str(e) == "cannot set flags of map 'calls' while its Object is being loaded"
            busy += 1
        except ValueError as e:
            assert "can only be set before Object.load()" in str(e)  # after it
    t.join()
    assert obj.loaded and obj.maps["calls"].max_entries == 1 << 19
    assert busy > 0
    obj.close()


# -- programs: type, test_run, log --------------------------------------------------------------------------------


def test_untyped_section_typed_from_python_runs_on_test_input(bpf_objects):
    obj = cbpf.Object(bpf_objects["untyped"], load=False)
    prog = obj.programs["length_plus_one"]
    assert prog.type == 0 and prog.section == "cbpf_filter"
    with pytest.raises(ValueError, match="program 'length_plus_one' .section 'cbpf_filter'. has no program type"):
        obj.load()
    prog.type = "socket_filter"  # type: ignore[assignment]
    prog.log_level = 1  # keep the verifier's log of a successful load
    obj.load()
    assert prog.type == cbpf.ProgramType.SOCKET_FILTER
    assert prog.log is not None and "processed" in prog.log
    retval, data_out, ctx_out, duration = prog.test_run(b"\x00" * 100)
    assert retval == 100 - ETH_HLEN + 1
    assert len(data_out) == 100 and ctx_out is None and duration >= 0
    obj.close()


def test_test_run_socket_xdp_raw_tracepoint_and_refusals(bpf_objects):
    obj = cbpf.Object(bpf_objects["runs"], load=False)
    obj.maps["by_key"].inner_map = inner = cbpf.Map.create("array", 4, 8, 1)
    obj.load()
    p = obj.programs
    retval, _, _, _ = p["bump_shared"].test_run(b"x" * 60, repeat=7)
    assert retval == 60 - ETH_HLEN
    assert u64(obj.maps["shared_counts"].lookup(0)) == 7  # repeat ran it exactly 7 times
    assert p["drop_odd"].test_run(b"\x01" * 32)[0] == 1  # XDP_DROP
    retval, data_out, _, _ = p["drop_odd"].test_run(b"\x02" * 32)
    assert retval == 2 and data_out == b"\x02\xab" + b"\x02" * 30  # XDP_PASS, the packet as the program left it
    assert p["twice_arg1"].test_run(ctx=struct.pack("=QQ", 0, 21))[0] == 42
    with pytest.raises(ValueError, match="'twice_arg1' is a raw_tracepoint program: it runs on ctx alone"):
        p["twice_arg1"].test_run(b"data")
    with pytest.raises(TypeError, match="program 'tracepoint_only' is a tracepoint program, which the kernel cannot "
                                        "run on test input"):
        p["tracepoint_only"].test_run()
    obj.close()
    inner.close()
    with pytest.raises(ValueError, match="program 'bump_shared' is closed"):
        p["bump_shared"].test_run(b"x" * 60)


def test_program_array_and_map_of_maps_initialised_by_btf(bpf_objects):
    obj = cbpf.Object(bpf_objects["runs"], load=False)
    obj.maps["by_key"].inner_map = inner = cbpf.Map.create("array", 4, 8, 1)
    obj.load()
    assert u32(obj.maps["jumps"].lookup(1)) == obj.programs["tail_target"].id
    assert obj.maps["jumps"].lookup(0) is None
    assert obj.programs["jumper"].test_run(b"x" * 60)[0] == 42  # the tail call reached tail_target
    assert u32(obj.maps["outer"].lookup(0)) == obj.maps["inner_a"].id
    assert u32(obj.maps["outer"].lookup(1)) == obj.maps["inner_b"].id
    # the map of maps whose inner shape came from Python takes maps of that shape
    obj.maps["by_key"][3] = inner
    assert u32(obj.maps["by_key"].lookup(3)) == inner.id
    obj.close()
    inner.close()


def test_map_of_maps_without_an_inner_shape_is_refused_before_load(bpf_objects):
    before = open_fds()
    obj = cbpf.Object(bpf_objects["runs"], load=False)
    with pytest.raises(ValueError, match="map 'by_key' is a map of maps whose inner map's shape is unknown: set "
                                         "Map.inner_map"):
        obj.load()
    with pytest.raises(ValueError, match="inner_map of map 'shared_counts': it is not a map of maps"):
        obj.maps["shared_counts"].inner_map = obj.maps["by_key"]
    obj.close()
    assert open_fds() == before


def test_spin_locked_value_read_with_bpf_f_lock(bpf_objects):
    obj = cbpf.Object(bpf_objects["runs"], load=False)
    obj.maps["by_key"].inner_map = inner = cbpf.Map.create("array", 4, 8, 1)
    obj.load()
    for _ in range(5):
        obj.programs["bump_locked"].test_run(b"\x00" * 64)
    value = obj.maps["locked"].lookup(1, flags=cbpf.BPF_F_LOCK)
    assert value is not None and len(value) == 16
    assert u64(value[8:]) == 5  # the counter after the lock word (which a locked read returns zeroed)
    obj.close()
    inner.close()


def test_kconfig_given_from_python(bpf_objects):
    # a dict of several values, as lines libbpf parses
    obj = cbpf.Object(bpf_objects["runs"], load=False,
                      kconfig={"CONFIG_CBPF_OTHER": True, "CONFIG_CBPF_ANSWER": 42, "CONFIG_CBPF_NAME": '"x"'})
    obj.maps["by_key"].inner_map = inner = cbpf.Map.create("array", 4, 8, 1)
    obj.load()
    assert obj.programs["answer"].test_run(b"x" * 20)[0] == 42
    obj.close()
    obj = cbpf.Object(bpf_objects["runs"], load=False, kconfig="CONFIG_CBPF_ANSWER=7\n")
    obj.maps["by_key"].inner_map = inner
    obj.load()
    assert obj.programs["answer"].test_run(b"x" * 20)[0] == 7
    obj.close()
    inner.close()
    with pytest.raises(TypeError, match="kconfig CONFIG_X: a value must be a bool, an int or a str, not float"):
        cbpf.Object(bpf_objects["runs"], load=False, kconfig={"CONFIG_X": 1.5})


def test_btf_path_relocates_against_a_given_btf_file(bpf_objects, tmp_path):
    btf = tmp_path / "vmlinux.btf"
    shutil.copy("/sys/kernel/btf/vmlinux", btf)
    with cbpf.Object(bpf_objects["preload"], load=False, btf_path=btf) as obj:
        for name in ("stacks", "calls", "stack_calls"):
            obj.maps[name].max_entries = 4
        obj.maps["stacks"].value_size = 8
        obj.load()
        assert obj.programs["count_getpid"].fd >= 0
    with pytest.raises(FileNotFoundError):
        cbpf.Object(bpf_objects["preload"], load=False, btf_path=tmp_path / "missing.btf")


# -- maps shared between objects -------------------------------------------------------------------------------------


def _runs(path: Path, **kwargs: object) -> tuple[cbpf.Object, cbpf.Map]:
    obj = cbpf.Object(path, load=False, **kwargs)  # type: ignore[arg-type]
    inner = cbpf.Map.create("array", 4, 8, 1)
    obj.maps["by_key"].inner_map = inner
    return obj, inner


def test_map_reused_between_two_objects(bpf_objects, tmp_path):
    first, inner1 = _runs(bpf_objects["runs"])
    first.load()
    second, inner2 = _runs(bpf_objects["runs"])
    second.maps["shared_counts"].reuse(first.maps["shared_counts"])
    second.load()
    assert second.maps["shared_counts"].id == first.maps["shared_counts"].id
    first.programs["bump_shared"].test_run(b"x" * 20, repeat=3)
    second.programs["bump_shared"].test_run(b"x" * 20, repeat=4)
    assert u64(first.maps["shared_counts"].lookup(0)) == 7
    # by fd, and by a pinned path
    pinned = f"/sys/fs/bpf/cbpf-test-reuse-{os.getpid()}"
    first.maps["shared_counts"].pin(pinned)
    try:
        third, inner3 = _runs(bpf_objects["runs"])
        third.maps["shared_counts"].reuse(pinned)
        fourth, inner4 = _runs(bpf_objects["runs"])
        fourth.maps["shared_counts"].reuse(first.maps["shared_counts"].fd)
        third.load()
        fourth.load()
        third.programs["bump_shared"].test_run(b"x" * 20, repeat=10)
        fourth.programs["bump_shared"].test_run(b"x" * 20, repeat=20)
        assert u64(first.maps["shared_counts"].lookup(0)) == 37
        with pytest.raises(ValueError, match="can only be set before Object.load"):
            third.maps["shared_counts"].reuse(pinned)
    finally:
        first.maps["shared_counts"].unpin()
    with pytest.raises(FileNotFoundError,
                       match="map 'shared_counts' of object 'runs': reuse..: opening the pinned map"):
        cbpf.Object(bpf_objects["runs"], load=False).maps["shared_counts"].reuse(pinned)
    with pytest.raises(TypeError, match="reuse.. of map 'shared_counts' takes a Map, a file descriptor or a pinned"):
        cbpf.Object(bpf_objects["runs"], load=False).maps["shared_counts"].reuse(1.5)  # type: ignore[arg-type]
    for o in (first, second, third, fourth):
        o.close()
    for m in (inner1, inner2, inner3, inner4):
        m.close()


def test_pin_by_name_shares_maps_across_objects(bpf_objects, pin_root):
    first, inner1 = _runs(bpf_objects["runs"], pin_root=pin_root)
    assert first.maps["pinned_counts"].pin_path == str(pin_root / "pinned_counts")
    first.load()
    assert (pin_root / "pinned_counts").exists()
    second, inner2 = _runs(bpf_objects["runs"], pin_root=pin_root)
    second.load()
    assert second.maps["pinned_counts"].id == first.maps["pinned_counts"].id
    assert second.maps["shared_counts"].id != first.maps["shared_counts"].id  # not pinned: one each
    first.programs["bump_pinned"].test_run(b"x" * 20, repeat=2)
    second.programs["bump_pinned"].test_run(b"x" * 20, repeat=5)
    assert u64(first.maps["pinned_counts"].lookup(0)) == 7
    first.close()
    second.close()
    # the pin outlives both objects: a third object finds the count there
    third, inner3 = _runs(bpf_objects["runs"], pin_root=pin_root)
    third.load()
    assert u64(third.maps["pinned_counts"].lookup(0)) == 7
    third.maps["pinned_counts"].unpin()  # libbpf's pin, removed
    assert not (pin_root / "pinned_counts").exists()
    third.close()
    for m in (inner1, inner2, inner3):
        m.close()


def test_pin_path_set_from_python(bpf_objects, pin_root):
    pin_root.mkdir()
    path = str(pin_root / "shared")
    first, inner1 = _runs(bpf_objects["runs"])
    first.maps["shared_counts"].pin_path = path
    first.load()
    second, inner2 = _runs(bpf_objects["runs"])
    second.maps["shared_counts"].pin_path = path
    second.load()
    assert second.maps["shared_counts"].id == first.maps["shared_counts"].id
    for o in (first, second):
        o.close()
    for m in (inner1, inner2):
        m.close()


def test_autocreate_off(bpf_objects):
    obj, inner = _runs(bpf_objects["runs"])
    obj.maps["spare"].autocreate = False
    obj.load()
    assert obj.maps["spare"].autocreate is False and obj.maps["spare"].fd == -1
    with pytest.raises(ValueError, match="map 'spare' was not created: its autocreate was False"):
        obj.maps["spare"].lookup(0)
    obj.close()
    # a map that a loaded program uses: the load fails naming it
    obj = cbpf.Object(bpf_objects["runs"], load=False)
    obj.maps["by_key"].inner_map = inner
    obj.maps["shared_counts"].autocreate = False
    with pytest.raises(cbpf.LoadError, match="shared_counts") as info:
        obj.load()
    assert info.value.program == "bump_shared"
    inner.close()


# -- legacy objects: the same setters write into the parsed spec -----------------------------------------------------


def test_legacy_maps_and_programs_configured_before_load(legacy_objects, pin_root):
    before = open_fds()
    other = cbpf.Map.create("array", 4, 8, 1)
    obj = cbpf.Object(legacy_objects["sized"], load=False)
    sized, shared, unused = obj.maps["sized"], obj.maps["shared"], obj.maps["unused"]
    assert obj.legacy and sized.max_entries == 1
    sized.max_entries = 0
    with pytest.raises(ValueError, match="map 'sized' has max_entries 0: set Map.max_entries"):
        obj.load()
    sized.max_entries = 16
    unused.autocreate = False
    shared.reuse(other)
    pin_root.mkdir()
    sized.pin_path = str(pin_root / "sized")
    prog = obj.programs["bump"]
    prog.type = "socket_filter"  # type: ignore[assignment]  # what it is already; an untyped section needs this
    with pytest.raises(TypeError, match="log_level of program 'bump' cannot be set: it belongs to a legacy object"):
        prog.log_level = 1
    with pytest.raises(TypeError, match="map 'sized' belongs to a legacy object"):
        sized.inner_map = other
    obj.load()
    assert prog.test_run(b"z" * 30, repeat=4)[0] == 0
    assert u64(sized.lookup(7)) == 4 and sized.max_entries == 16
    assert u64(other.lookup(0)) == 4  # the reused map was bumped
    with pytest.raises(ValueError, match="map 'unused' was not created"):
        unused.lookup(0)
    assert (pin_root / "sized").exists()
    sized_id = sized.id
    obj.close()
    again = cbpf.Object(legacy_objects["sized"], load=False)
    again.maps["sized"].pin_path = str(pin_root / "sized")
    again.maps["sized"].max_entries = 16  # a pinned map is reused only where it matches the definition
    again.load()
    assert again.maps["sized"].id == sized_id  # the pinned map, reused
    again.programs["bump"].test_run(b"z" * 30, repeat=2)
    assert u64(again.maps["sized"].lookup(7)) == 6
    again.close()
    third = cbpf.Object(legacy_objects["sized"], load=False)
    third.maps["shared"].autocreate = False
    with pytest.raises(OSError, match="program 'bump' uses map 'shared', which was not created"):
        third.load()
    other.close()
    assert open_fds() == before


# -- truthful errors -------------------------------------------------------------------------------------------------


def test_verifier_refusal_names_the_program_and_the_object_path(bpf_objects):
    with pytest.raises(cbpf.LoadError) as info:
        cbpf.Object(bpf_objects["rejected"])
    err = info.value
    assert err.errno == errno.EACCES
    assert err.program == "unchecked"
    assert "the verifier refused program 'unchecked'" in str(err)
    assert str(bpf_objects["rejected"]) in str(err)
    assert "map_value_or_null" in err.log


def test_globals_take_c_ranges_and_name_the_variable(bpf_objects):
    obj = cbpf.Object(bpf_objects["preload"], load=False)
    g = obj.globals
    g["target_tgid"] = -1  # unsigned: the signed range too, as C converts
    assert g["target_tgid"] == 0xFFFFFFFF
    assert g["trace_stacks"] is True
    g["trace_stacks"] = False
    assert g["trace_stacks"] is False
    g["trace_stacks"] = 1
    assert g["trace_stacks"] is True
    with pytest.raises(TypeError, match=r"global 'trace_stacks': a bool \(or 0 or 1\) is needed, not 2"):
        g["trace_stacks"] = 2
    with pytest.raises(OverflowError, match=r"global 'target_tgid': 4294967296 does not fit a 32-bit unsigned int"):
        g["target_tgid"] = 1 << 32
    with pytest.raises(OverflowError, match=r"global 'nslots': -2147483649 does not fit a 32-bit unsigned int"):
        g["nslots"] = -(1 << 31) - 1
    with pytest.raises(TypeError, match="global 'nslots': an int is needed, not float"):
        g["nslots"] = 1.5
    obj.close()


def test_map_extra_numa_node_flags_and_program_attributes(bpf_objects):
    obj = cbpf.Object(bpf_objects["bloom"], load=False)
    seen = obj.maps["seen"]
    assert seen.map_extra == 0
    seen.map_extra = 3  # hash functions of the bloom filter
    seen.numa_node = 0
    seen.flags = seen.flags | 4  # BPF_F_NUMA_NODE: numa_node is used
    obj.globals["probe_value"] = 1234
    obj.load()
    assert (seen.map_extra, seen.numa_node, seen.flags & 4) == (3, 0, 4)
    assert obj.programs["contains"].test_run(b"\0" * 20)[0] == 0
    seen.push(struct.pack("=I", 1234))
    assert obj.programs["contains"].test_run(b"\0" * 20)[0] == 1
    obj.close()
    made = cbpf.Map.create("bloom_filter", 0, 8, 64, map_extra=5)  # read back from the kernel's map info
    assert made.map_extra == 5
    made.close()
    # program attributes: read back, and what the kernel makes of a wrong one
    obj = cbpf.Object(bpf_objects["untyped"], load=False)
    prog = obj.programs["length_plus_one"]
    prog.type = cbpf.ProgramType.SOCKET_FILTER
    prog.expected_attach_type = "cgroup_inet_egress"  # type: ignore[assignment]
    assert prog.expected_attach_type == cbpf.AttachType.CGROUP_INET_EGRESS
    prog.expected_attach_type = 0
    with pytest.raises(ValueError, match="unknown attach type 'cbpf_nope'"):
        prog.expected_attach_type = "cbpf_nope"  # type: ignore[assignment]
    prog.flags = 1 << 4  # BPF_F_SLEEPABLE: only some program types may be
    assert prog.flags == 1 << 4
    with pytest.raises(cbpf.LoadError, match="the verifier refused program 'length_plus_one'") as info:
        obj.load()
    assert info.value.program == "length_plus_one" and "sleepable" in info.value.log


PROBES_AS_NOBODY = r"""
import json
import cbpf.features as features

results = {}
for name, call in [("program_type", lambda: features.program_type("socket_filter")),
                   ("map_type", lambda: features.map_type("hash")),
                   ("helper", lambda: features.helper("socket_filter", "map_lookup_elem")),
                   ("tracepoint", lambda: features.tracepoint("syscalls", "sys_enter_getpid")),
                   ("btf_type", lambda: features.btf_type("task_struct")),
                   ("btf_field", lambda: features.btf_field("task_struct", "cbpf_no_such_field"))]:
    try:
        results[name] = ["answer", call()]
    except Exception as e:
        results[name] = [type(e).__name__, str(e)]
print(json.dumps(results))
"""


def test_probes_raise_permission_error_only_where_probing_needs_privilege():
    from test_hardening import run_as_nobody

    r = run_as_nobody("-c", PROBES_AS_NOBODY)
    assert r.returncode == 0, r.stderr
    results = {name: tuple(v) for name, v in json.loads(r.stdout).items()}
    # the kernel's BTF is world-readable: an answer, True or False
    assert results.pop("btf_type") == ("answer", True)
    assert results.pop("btf_field") == ("answer", False)
    # loading a program, creating a map or reading tracefs needs privilege here: never a False that means "absent"
    assert {name: kind for name, (kind, _) in results.items()} == dict.fromkeys(results, "PermissionError")
    assert all("root" in message for _, message in results.values()), results

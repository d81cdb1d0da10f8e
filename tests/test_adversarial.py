"""Regression tests for what adversarial testing broke (issue #14): crashes, teardown across fork, pins, argument
ranges, error messages. A test of a crash runs its code in a child interpreter, so that a regression fails the test
instead of killing the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import cbpf


def run_child(code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Runs code in a fresh interpreter (this one's cbpf on the path); the result, crash or not."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def assert_clean_exit(r: subprocess.CompletedProcess[str]) -> None:
    assert r.returncode == 0, f"child exited with {r.returncode} (negative: killed by that signal)\n{r.stderr[-3000:]}"


# ---- 1. a global written from another thread while load() runs ------------------------------------------------

@pytest.mark.kernel
def test_globals_write_during_load_raises_and_never_crashes(bpf_objects):
    r = run_child(f"""
        import threading, cbpf
        refused = {{"RuntimeError": 0}}
        lost = 0
        for round in range(20):
            obj = cbpf.Object({str(bpf_objects["maps"])!r}, load=False, attach=False)
            g = obj.globals
            stop = threading.Event()
            written = []
            def writer():
                i = 0
                while not stop.is_set():
                    i += 1
                    try:
                        g["target_tgid"] = i
                        g["increment"] = i
                        written.append(i)
                    except RuntimeError as e:
                        assert "being loaded by another thread" in str(e), e
                        refused["RuntimeError"] += 1
                    except ValueError as e:
                        # load() finished between the check of `loaded` and the write: said, never silent
                        assert "read-only after load" in str(e) or "only before load" in str(e), e
            t = threading.Thread(target=writer)
            t.start()
            while not written:
                pass
            obj.load()
            stop.set()
            t.join()
            # every write that returned took effect: the last one is what the kernel holds
            assert g["increment"] == written[-1], (g["increment"], written[-1])
            obj.close()
        print("refused", refused["RuntimeError"])
    """)
    assert_clean_exit(r)
    assert "refused" in r.stdout


@pytest.mark.kernel
def test_libbpf_state_is_refused_while_loading(bpf_objects):
    """Every entry point that reads or writes libbpf's object says RuntimeError while another thread loads it."""
    r = run_child(f"""
        import os, threading, cbpf
        seen = set()
        for round in range(30):
            obj = cbpf.Object({str(bpf_objects["maps"])!r}, load=False, attach=False)
            m = obj.maps["maps.rodata"]
            prog = next(iter(obj.programs.values()))
            done = threading.Event()
            calls = {{"read global": lambda: m._initial_value(0, 4),
                     "write global": lambda: m._initial_value(0, 4, bytes(4)),
                     "btf describe": lambda: obj._btf_describe(m.btf_value_type_id),
                     "btf find": lambda: obj._btf_find("x"),
                     "autoload": lambda: setattr(prog, "autoload", True),
                     "close": obj.close, "attach program": prog.attach, "attach object": obj.attach}}
            def poke():
                # wait for the load to be under way (a read of a global refused), then try each entry point once
                while not done.is_set():
                    try:
                        m._initial_value(0, 4)
                    except RuntimeError:
                        break
                for name, f in calls.items():  # close() last: it ends the object if the load is over already
                    try:
                        f()
                    except RuntimeError as e:
                        assert "being loaded by another thread" in str(e), e
                        seen.add(name)
                    except ValueError:
                        pass  # the load finished meanwhile: loaded already
            t = threading.Thread(target=poke)
            t.start()
            obj.load()
            done.set()
            t.join()
            obj.close()
        print(",".join(sorted(seen)))
    """)
    assert_clean_exit(r)
    # each was tried while the load ran, in at least one of the 30 rounds
    assert set(r.stdout.strip().split(",")) == {"read global", "write global", "btf describe", "btf find",
                                                "autoload", "close", "attach program", "attach object"}


# ---- 2. a decoder field whose end does not fit a Py_ssize_t -------------------------------------------------

@pytest.mark.parametrize("offset,count", [(2**63 - 8, 0), (2**62, 3), (8, 2**62), (2**63 - 1, 0), (1, 2**63 // 8)])
def test_struct_field_end_overflow_is_a_value_error(offset, count):
    elem = ("int", 8, False, False)
    field_type = ("array", elem, count) if count else elem
    r = run_child(f"""
        import cbpf
        try:
            cbpf.Struct("x", ("struct", 8, [("a", {offset}, 0, {field_type!r})])).decode(bytes(8))
        except ValueError as e:
            print("ValueError", e)
    """)
    assert_clean_exit(r)
    assert r.stdout.startswith("ValueError"), r.stdout


def test_decoder_direct_overflow_and_negative_size():
    Point = __import__("collections").namedtuple("Point", "a")
    with pytest.raises(ValueError, match="ends past"):
        cbpf._cbpf._Decoder(Point, 8, [("u", 2**63 - 8, 8, 0, None)])
    with pytest.raises(ValueError, match="ends past"):
        cbpf._cbpf._Decoder(Point, 8, [("u", 8, 8, 2**62, None)])
    with pytest.raises(ValueError, match=">= 0"):
        cbpf._cbpf._Decoder(Point, -8, [])


@pytest.mark.kernel
def test_initial_value_range_overflow(bpf_objects):
    """offset + size past PY_SSIZE_T_MAX must not wrap around the bounds check."""
    with cbpf.Object(bpf_objects["maps"], load=False, attach=False) as obj:
        m = obj.maps["maps.data"]
        with pytest.raises(ValueError, match="outside map"):
            m._initial_value(2**62, 2**62)
        with pytest.raises(ValueError, match="outside map"):
            m._initial_value(2**63 - 1, 1, b"x")


# ---- 4. pins: absolute paths, one pin at a time -------------------------------------------------------------

@pytest.fixture
def bpffs_dir():
    cbpf.Map.create("array", 4, 4, 1).close()  # nothing pinned: only so that bpffs gets mounted by pin() below
    path = Path(f"/sys/fs/bpf/cbpf-adv-{os.getpid()}")
    yield path
    for p in Path("/sys/fs/bpf").glob(f"cbpf-adv-{os.getpid()}*"):
        p.unlink()


@pytest.mark.kernel
def test_relative_pin_is_stored_absolute_and_unpin_after_chdir_removes_it(bpffs_dir, tmp_path, monkeypatch):
    with cbpf.Map.create("array", 4, 4, 1) as m:
        m.pin("/sys/fs/bpf/" + bpffs_dir.name + "-probe")  # mounts bpffs if needed
        m.unpin()
        monkeypatch.chdir("/sys/fs/bpf")
        m.pin("./" + bpffs_dir.name)
        assert m.pin_path == str(bpffs_dir)
        decoy = tmp_path / bpffs_dir.name
        decoy.write_text("not a pin")
        monkeypatch.chdir(tmp_path)
        m.unpin()
        assert not bpffs_dir.exists()
        assert decoy.read_text() == "not a pin"


@pytest.mark.kernel
def test_a_second_pin_is_refused_and_the_first_kept(bpffs_dir):
    with cbpf.Map.create("array", 4, 4, 1) as m:
        m.pin(bpffs_dir)
        with pytest.raises(ValueError, match="pinned already, at " + str(bpffs_dir)):
            m.pin(str(bpffs_dir) + "-2")
        assert not Path(str(bpffs_dir) + "-2").exists()
        assert m.pin_path == str(bpffs_dir)
        m.unpin()
        assert not bpffs_dir.exists()
        m.pin(str(bpffs_dir) + "-2")  # after unpin(), a new pin is fine
        m.unpin()


# ---- 5. from_pinned checks what the pin holds; Link and Program open from pins --------------------------------

@pytest.mark.kernel
def test_from_pinned_checks_the_kind_and_opens_links_and_programs(bpf_objects, bpffs_dir):
    with cbpf.Object(bpf_objects["tracing"], attach=False) as obj:
        obj.globals["target_tgid"] = os.getpid()
        prog = obj.programs["raw_getpid"]
        link = prog.attach_raw_tracepoint("sys_enter")
        link.pin(str(bpffs_dir) + "-link")
        with pytest.raises(TypeError, match="holds a pinned link, not a map: open it with Link.from_pinned"):
            cbpf.Map.from_pinned(str(bpffs_dir) + "-link")
        with pytest.raises(TypeError, match="holds a pinned link, not a program"):
            cbpf.Program.from_pinned(str(bpffs_dir) + "-link")
        obj.maps["tracing.bss"].pin(str(bpffs_dir) + "-map")
        with pytest.raises(TypeError, match="holds a pinned map, not a link: open it with Map.from_pinned"):
            cbpf.Link.from_pinned(str(bpffs_dir) + "-map")

        pinned = cbpf.Link.from_pinned(str(bpffs_dir) + "-link")
        assert pinned.attached and pinned.pin_path == str(bpffs_dir) + "-link"
        assert pinned.program.name == "raw_getpid" and pinned.program.type == cbpf.ProgramType.RAW_TRACEPOINT
        assert pinned.id == link.id
        link.unpin()
        link.detach()  # the pinned Link still holds it: it goes on counting
        before = obj.globals["raw_calls"]
        for _ in range(9):
            os.getpid()
        assert obj.globals["raw_calls"] - before == 9
        pinned.detach()  # the last holder: detached for good, and the pin gone
        assert not Path(str(bpffs_dir) + "-link").exists()
        before = obj.globals["raw_calls"]
        os.getpid()
        assert obj.globals["raw_calls"] == before
        pinned.program.object.close()
        obj.maps["tracing.bss"].unpin()

        prog_path = str(bpffs_dir) + "-prog"
        subprocess.run(["bpftool", "prog", "pin", "id", str(_prog_id(prog.fd)), prog_path], check=True)
        p = cbpf.Program.from_pinned(prog_path)
        assert p.name == "raw_getpid" and p.fd >= 0 and p.insn_count == prog.insn_count
        with pytest.raises(TypeError, match="opened from a pin"):
            p.attach_raw_tracepoint("sys_enter")
        with pytest.raises(TypeError, match="opened from a pin"):
            p.attach()
        p.object.close()
        assert p.fd == -1
        os.unlink(prog_path)


def _prog_id(fd: int) -> int:
    for line in Path(f"/proc/self/fdinfo/{fd}").read_text().splitlines():
        if line.startswith("prog_id:"):
            return int(line.split()[1])
    raise AssertionError("no prog_id in fdinfo")


@pytest.mark.kernel
def test_pinned_socket_program_attaches_and_counts(bpf_objects, bpffs_dir):
    import socket
    with cbpf.Object(bpf_objects["net"], attach=False) as obj:
        path = str(bpffs_dir) + "-sock"
        subprocess.run(["bpftool", "prog", "pin", "id", str(_prog_id(obj.programs["socket_count"].fd)), path],
                       check=True)
        p = cbpf.Program.from_pinned(path)
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        with a, b:
            link = p.attach_socket(b)
            for _ in range(6):
                a.send(b"x")
                b.recv(4)
            assert obj.globals["socket_packets"] == 6
            link.detach()
        with pytest.raises(ValueError, match="pass attach_type"):
            p.attach_cgroup("/sys/fs/cgroup")
        p.object.close()
        os.unlink(path)


# ---- 11. the capability hint only for a process that lacks the capability ------------------------------------

@pytest.mark.kernel
def test_pin_and_from_pinned_outside_bpffs_say_so_without_the_capability_hint(tmp_path):
    with cbpf.Map.create("array", 4, 4, 1) as m:
        with pytest.raises(PermissionError) as e:
            m.pin(tmp_path / "x")
        assert "not on a bpffs" in str(e.value) and "CAP_BPF" not in str(e.value)
    with pytest.raises(OSError) as e:
        cbpf.Map.from_pinned("/etc/passwd")
    assert "not a file on a bpffs" in str(e.value) and "CAP_BPF" not in str(e.value)


@pytest.mark.kernel
def test_capability_hint_when_the_capability_is_missing():
    """A child that dropped every capability (capset) is refused and told which capabilities to grant."""
    r = run_child("""
        import ctypes, cbpf
        libc = ctypes.CDLL(None, use_errno=True)
        header = (ctypes.c_uint32 * 2)(0x20080522, 0)
        data = (ctypes.c_uint32 * 6)()
        assert libc.capset(header, data) == 0, ctypes.get_errno()
        try:
            cbpf.Map.create("array", 4, 4, 1)
        except PermissionError as e:
            print(e)
    """)
    assert_clean_exit(r)
    assert "grant CAP_BPF and CAP_PERFMON" in r.stdout, r.stdout


# ---- 6. unsigned arguments are range-checked, never wrapped ----------------------------------------------------

@pytest.mark.kernel
@pytest.mark.parametrize("field", ["type", "key_size", "value_size", "max_entries", "flags", "map_extra"])
@pytest.mark.parametrize("value", [2**32 + 5, -1, 2**64])
def test_map_create_refuses_out_of_range_numbers(field, value):
    args = {"type": 1, "key_size": 4, "value_size": 4, "max_entries": 1, "flags": 0, "map_extra": 0}
    if field == "map_extra" and value == 2**32 + 5:
        value = 2**64 + 5
    args[field] = value
    with pytest.raises(OverflowError, match="out of range for an unsigned"):
        cbpf._cbpf.Map.create(**args)


@pytest.mark.kernel
def test_attach_perf_event_refuses_out_of_range_type_and_config(bpf_objects):
    with cbpf.Object(bpf_objects["perf"], attach=False) as obj:
        prog = obj.programs["on_sample"]
        for type_, config in ((2**32 + 1, 0), (-1, 0), (1, 2**64), (1, -1)):
            with pytest.raises(OverflowError, match="out of range"):
                prog.attach_perf_event(type_, config, sample_period=1000)
        assert obj.attached_count == 0


# ---- 7. queues, stacks and bloom filters as the kernel defines them; maps that cannot be iterated say so -----

@pytest.mark.kernel
def test_queue_and_stack_semantics():
    with cbpf.Map.create("queue", 0, 4, 3) as q:
        assert q.pop() is None and q.peek() is None
        for v in (10, 20, 30):
            q.push(v)
        with pytest.raises(OSError, match="it is full .*BPF_EXIST"):
            q.push(40)
        q.push(40, flags=cbpf.BPF_EXIST)  # drops the oldest, 10
        assert q.peek() == (20).to_bytes(4, sys.byteorder) and q.peek() == (20).to_bytes(4, sys.byteorder)
        assert [q.pop(), q.pop(), q.pop(), q.pop()] == [v.to_bytes(4, sys.byteorder) for v in (20, 30, 40)] + [None]
    with cbpf.Map.create("stack", 0, 4, 3) as s:
        for v in (1, 2, 3):
            s.push(v)
        s.push(4, flags=cbpf.BPF_EXIST)  # drops the oldest, 1
        assert s.peek() == (4).to_bytes(4, sys.byteorder)
        assert [s.pop(), s.pop(), s.pop(), s.pop()] == [v.to_bytes(4, sys.byteorder) for v in (4, 3, 2)] + [None]


@pytest.mark.kernel
def test_bloom_filter_semantics():
    with cbpf.Map.create("bloom_filter", 0, 8, 1000, map_extra=5) as b:
        assert 7 not in b
        for v in (7, 11, 13):
            b.push(v)
        assert 7 in b and 11 in b and 13 in b
        with pytest.raises(TypeError, match="bloom filter, whose values cannot be read back"):
            b.peek()
        with pytest.raises(TypeError, match="bloom filter, whose values cannot be read back"):
            b.pop()


@pytest.mark.kernel
@pytest.mark.parametrize("kind,key_size,value_size,max_entries,says", [
    ("queue", 0, 4, 4, "a queue: it has no keys.*push\\(\\), pop\\(\\) and peek\\(\\)"),
    ("stack", 0, 4, 4, "a stack: it has no keys"),
    ("bloom_filter", 0, 4, 16, "a bloom filter: .*`value in map`"),
    ("ringbuf", 0, 0, 4096, "a ring buffer: .*cbpf.RingBuffer\\(map\\)"),
])
def test_maps_without_keys_say_what_to_use(kind, key_size, value_size, max_entries, says):
    with cbpf.Map.create(kind, key_size, value_size, max_entries) as m:
        for call in (lambda: list(m.items()), lambda: list(m.keys()), lambda: m.to_dict(), lambda: len(m),
                     lambda: m.lookup(0), lambda: m.update(0, 0), lambda: m.delete(0), lambda: m.fetch(0),
                     lambda: m.update_batch(b"", b""), lambda: m.delete_batch(b""), m._dump_raw):
            with pytest.raises(TypeError, match=says):
                call()


@pytest.mark.kernel
def test_push_pop_peek_on_a_hash_say_what_to_use():
    with cbpf.Map.create("hash", 4, 4, 4) as h:
        for call in (h.pop, h.peek, lambda: h.push(1)):
            with pytest.raises(TypeError, match="for queues and stacks.*a hash map: use lookup"):
                call()


# ---- 8. batches check dtype and itemsize; a float is no key -----------------------------------------------------

@pytest.mark.kernel
def test_batches_check_item_sizes_and_float_keys():
    np = pytest.importorskip("numpy")
    with cbpf.Map.create("hash", 8, 8, 16) as m:
        with pytest.raises(ValueError, match="8 bytes each, got a buffer of 4-byte items"):
            m.update_batch(np.arange(4, dtype=np.uint32), np.zeros(2, dtype=np.uint64))
        with pytest.raises(ValueError, match="4-byte items"):
            m.delete_batch(np.arange(4, dtype=np.uint32))
        with pytest.raises(TypeError, match="not floats"):
            m.update_batch(np.arange(2, dtype=np.float64), np.zeros(2, dtype=np.uint64))
        assert len(m) == 0
        assert m.update_batch(np.arange(3, dtype=np.uint64), np.arange(3, dtype=np.uint64) * 10) == 3
        assert m.update_batch(bytes(8), bytes(8)) == 1  # raw bytes are whole records
        with pytest.raises(TypeError, match="not floats"):
            m.lookup(np.float64(1.0))
        with pytest.raises(TypeError):
            m.lookup(1.0)
        assert m.lookup(np.uint64(1)) == (10).to_bytes(8, sys.byteorder)
        m.update(np.uint64(5), np.float64(2.5))  # a float value is bytes of a double: fine
        assert m.lookup(5) == np.float64(2.5).tobytes()


# ---- 9. an embedded NUL is refused, not cut --------------------------------------------------------------------

@pytest.mark.kernel
def test_embedded_nul_is_a_value_error(bpf_objects, tmp_path):
    with cbpf.Object(bpf_objects["net"], attach=False) as obj:
        with pytest.raises(ValueError, match="NUL"):
            obj.programs["xdp_count"].attach_xdp("lo\0x")
        with pytest.raises(ValueError):
            obj.programs["cgroup_egress"].attach_cgroup("/sys/fs/cgroup\0x")
        with pytest.raises(ValueError, match="NUL"):
            obj.programs["cgroup_egress"].attach_cgroup("/sys/fs/cgroup", attach_type="cgroup_inet_egress\0x")
        with pytest.raises(ValueError, match="NUL"):
            obj._btf_find("xdp_md\0x")
        assert obj.attached_count == 0
    with cbpf.Object(bpf_objects["tracing"], attach=False) as obj:
        prog = obj.programs["tp_getpid"]
        with pytest.raises(ValueError):
            prog.attach_tracepoint("syscalls\0", "sys_enter_getpid")
        with pytest.raises(ValueError):
            obj.programs["raw_getpid"].attach_raw_tracepoint("sys_enter\0x")
    with cbpf.Object(bpf_objects["probes"], attach=False) as obj:
        with pytest.raises(ValueError):
            obj.programs["on_entry"].attach_uprobe("/bin/true\0x", "main")
        with pytest.raises(ValueError):
            obj.programs["on_entry"].attach_uprobe("/bin/true", "main\0x")
    with cbpf.Map.create("array", 4, 4, 1) as m, pytest.raises(ValueError):
        m.pin("/sys/fs/bpf/x\0y")
    with pytest.raises(ValueError, match="NUL"):
        cbpf.Object(bpf_objects["minimal"], name="a\0b", load=False)


# ---- 10, 15. the kernel's internal codes and libbpf's own have real messages ------------------------------------

@pytest.mark.kernel
def test_kernel_internal_enotsupp_has_a_message():
    with cbpf.Map.create("stack_trace", 4, 64, 16) as m:
        with pytest.raises(OSError) as e:
            m.delete_batch(bytes(4))
    assert e.value.errno == 524
    assert "Operation not supported (ENOTSUPP, kernel-internal code 524)" in str(e.value)
    assert "Unknown error" not in str(e.value)


# ---- 12, 14, 16. malformed objects: always OSError EINVAL, with libbpf's reason once --------------------------

def compile_c(tmp_path: Path, name: str, source: str) -> Path:
    return cbpf.compile(textwrap.dedent(source), output=tmp_path / f"{name}.bpf.o")


@pytest.mark.kernel
def test_an_extern_without_btf_is_einval_not_file_not_found(tmp_path):
    obj = compile_c(tmp_path, "fwd", """
        #include <linux/bpf.h>
        #include <bpf/bpf_helpers.h>
        extern int undefined_var;
        SEC("tracepoint/syscalls/sys_enter_getpid")
        int prog(void *ctx) { return undefined_var; }
        char LICENSE[] SEC("license") = "GPL";
    """)
    with pytest.raises(OSError) as e:
        cbpf.Object(obj, load=False)
    assert type(e.value) is OSError and e.value.errno == 22
    msg = str(e.value)
    assert "not a valid BPF ELF object (libbpf: failed to find BTF for extern 'undefined_var'" in msg
    assert msg.count("libbpf:") == 1


@pytest.mark.kernel
def test_eopnotsupp_at_open_keeps_libbpfs_reason(tmp_path):
    obj = compile_c(tmp_path, "static", """
        #include <linux/bpf.h>
        #include <bpf/bpf_helpers.h>
        SEC("tracepoint/syscalls/sys_enter_getpid")
        static int hidden(void *ctx) { return 0; }
        int (*keep)(void *) = hidden;
        char LICENSE[] SEC("license") = "GPL";
    """)
    with pytest.raises(OSError) as e:
        cbpf.Object(obj, load=False)
    assert type(e.value) is OSError and e.value.errno == 22
    assert "program 'hidden' is static and not supported" in str(e.value)
    assert str(e.value).count("libbpf:") == 1


@pytest.mark.kernel
def test_big_endian_objects_are_refused_at_open(tmp_path, bpf_build_dir):
    from conftest import LEGACY, TESTS, compile_bpf
    modern = compile_bpf(TESTS / "bpf" / "maps.bpf.c", tmp_path, ("-I", str(bpf_build_dir), "-target", "bpfeb"))
    legacy_src = sorted(LEGACY.glob("*.bpf.c"))[0]
    legacy = cbpf.compile(legacy_src, output=tmp_path / "legacy-be.o", include_dirs=[LEGACY], defines=["LEGACY"],
                          cflags=["-g0", "-target", "bpfeb"])
    for path in (modern, legacy):
        for source in (path, path.read_bytes()):
            with pytest.raises(OSError) as e:
                cbpf.Object(source, load=False)
            assert type(e.value) is OSError and e.value.errno == 22
            assert "the object is big-endian, this machine is little-endian" in str(e.value)


def test_malformed_elf_bytes_are_always_einval():
    """Structural mutants of a real object that libbpf refuses for reasons of its own errno (ENOENT, ESRCH...)."""
    import struct as st
    elf = bytearray(b"\x7fELF\x02\x01\x01" + bytes(57))  # an ELF64 header and nothing behind it
    st.pack_into("<HHIQQQIHHHHHH", elf, 16, 1, 247, 1, 0, 0, 0, 0, 64, 0, 0, 64, 0, 0)
    for data in (bytes(elf), bytes(elf[:40]), b"\x7fELF", bytes(elf) + bytes(100)):
        with pytest.raises(OSError) as e:
            cbpf.Object(data, load=False)
        assert type(e.value) is OSError and e.value.errno == 22, e.value


# ---- 13. a uprobe target that is no ELF file ----------------------------------------------------------------------

@pytest.mark.kernel
def test_uprobe_target_not_an_elf(bpf_objects, tmp_path):
    (tmp_path / "script").write_text("#!/bin/sh\n")
    with cbpf.Object(bpf_objects["probes"], attach=False) as obj:
        prog = obj.programs["on_entry"]
        with pytest.raises(IsADirectoryError, match="a directory, not an ELF file"):
            prog.attach_uprobe(tmp_path, "main")
        with pytest.raises(OSError, match="not an ELF file") as e:
            prog.attach_uprobe(tmp_path / "script", "main")
        assert e.value.errno == 8
        assert obj.attached_count == 0


# ---- UBSan sites in libbpf: shapes refused before libbpf reads them ------------------------------------------

def _sections(data: bytes) -> dict[str, tuple[int, int, int]]:
    """name -> (header offset, sh_offset, sh_size)"""
    import struct as st
    shoff, shnum, shstrndx = st.unpack_from("<Q", data, 40)[0], *st.unpack_from("<HH", data, 60)
    heads = [st.unpack_from("<IIQQQQIIQQ", data, shoff + i * 64) for i in range(shnum)]
    names = heads[shstrndx][4]
    out = {}
    for i, h in enumerate(heads):
        name = data[names + h[0]:data.index(b"\0", names + h[0])].decode()
        out[name] = (shoff + i * 64, h[4], h[5])
    return out


@pytest.mark.kernel
def test_shapes_libbpf_would_read_misaligned_are_refused(bpf_objects):
    import struct as st
    good = bpf_objects["maps"].read_bytes()
    secs = _sections(good)
    cases = {}
    shoff = st.unpack_from("<Q", good, 40)[0]
    moved = bytearray(good[:shoff] + bytes(4) + good[shoff:])
    st.pack_into("<Q", moved, 40, shoff + 4)
    cases["the section header table at offset %d is not 8-byte aligned" % (shoff + 4)] = moved
    for name in (".BTF", ".BTF.ext"):
        bad = bytearray(good)
        st.pack_into("<I", bad, secs[name][1] + 4, st.unpack_from("<I", good, secs[name][1] + 4)[0] + 2)
        cases[f"section {name} has a header of"] = bad
        empty = bytearray(good)
        st.pack_into("<Q", empty, secs[name][0] + 32, 0)
        cases[f"section {name} is empty"] = empty
    regression = (Path(__file__).parent / "fuzz-regressions" / "btf-ext-header-length-not-a-multiple-of-4.bin")
    cases["section .BTF.ext has a header of 33 bytes, not a multiple of 4"] = regression.read_bytes()
    for says, data in cases.items():
        with pytest.raises(OSError, match="not a valid BPF ELF object") as e:
            cbpf.Object(bytes(data), load=False)
        assert e.value.errno == 22 and says in str(e.value), (says, str(e.value))
    with cbpf.Object(good, load=False) as obj:  # the unmutated object opens
        assert "stats" in obj.maps


def test_a_typedef_of_itself_is_a_value_error_not_a_hang():
    """The structural mutator's input (seed 7, run 29866): a BTF typedef whose type is itself; describing the
    globals looped for ever with the GIL held."""
    data = (Path(__file__).parent / "fuzz-regressions" / "btf-typedef-of-itself.bin").read_bytes()
    r = run_child(f"""
        import cbpf
        obj = cbpf.Object({data!r}, name="m", load=False, attach=False)
        try:
            obj.globals
        except ValueError as e:
            print(e)
        obj.close()
    """, timeout=60)
    assert_clean_exit(r)
    assert "typedefs and modifiers in a cycle" in r.stdout

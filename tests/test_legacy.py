"""Legacy objects (struct bpf_map_def records in a section named "maps", which libbpf 1.x refuses) through the same
boot(), Object, Map, fetch, Program and Link API as modern ones.

Programs: tests/bpf/legacy/*.bpf.c, written the seed's way (bpf_legacy.h), built with and without -g. twin.bpf.c
is one program in both formats, so that the same test body runs over each.
"""

from __future__ import annotations

import errno
import gc
import os
import resource
import socket
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

import cbpf
from conftest import LEGACY, compile_bpf, open_fds

FORMATS = ("modern", "legacy", "legacy.g")
UNDER_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")
HAS_KPROBES = os.path.exists("/sys/bus/event_source/devices/kprobe")
BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PERCPU_ARRAY = 1, 2, 6


def getpid_n(n: int) -> None:
    for _ in range(n):
        os.getpid()  # glibc issues the system call every time


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (resource.getpagesize() // 1024)


@pytest.fixture(scope="module")
def twins(request, legacy_objects) -> dict[str, Path]:
    """twin.bpf.c as a modern object (BTF-defined maps, libbpf loads it) and as a legacy one, without and with -g."""
    modern = compile_bpf(LEGACY / "twin.bpf.c", request.getfixturevalue("bpf_build_dir"), ("-I", str(LEGACY)))
    return {"modern": modern, "legacy": legacy_objects["twin"], "legacy.g": legacy_objects["twin.g"]}


# ---- the same body over both formats ----

@pytest.mark.kernel
@pytest.mark.parametrize("fmt", FORMATS)
def test_boot_counts_getpid_exactly_in_every_format(twins, fmt, booted_clean):
    obj = cbpf.boot(twins[fmt])
    assert obj.legacy == fmt.startswith("legacy")
    assert sorted(link.target for link in obj.links) == ["raw_tracepoint/sys_enter",
                                                          "tracepoint/syscalls/sys_enter_getpid",
                                                          "tracepoint/syscalls/sys_enter_getpid"]
    obj.maps["config"][0] = pid = os.getpid()  # before counting starts: this call is not counted
    getpid_n(1000)
    assert cbpf.fetch("counts", pid) == 1000                 # hash, first program of the section
    assert obj.maps["slots"].to_dict() == {0: 1000, 1: 1000, 2: 1000, 3: 0}   # both programs, the raw tracepoint
    assert cbpf.fetch("percpu", 0) == 1000                   # per-CPU values summed
    assert sum(int.from_bytes(v, "little") for v in obj.maps["percpu"].lookup(0)) == 1000
    getpid_n(234)
    assert cbpf.fetch("counts", pid) == 1234


@pytest.mark.kernel
@pytest.mark.parametrize("fmt", FORMATS)
def test_maps_and_programs_look_the_same_in_every_format(twins, fmt):
    with cbpf.Object(twins[fmt], attach=False) as obj:
        maps = {name: (m.type, m.key_size, m.value_size, m.max_entries) for name, m in obj.maps.items()}
        assert maps == {"config": (BPF_MAP_TYPE_ARRAY, 4, 4, 1), "counts": (BPF_MAP_TYPE_HASH, 4, 8, 64),
                        "slots": (BPF_MAP_TYPE_ARRAY, 4, 8, 4), "percpu": (BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, 1)}
        assert obj.maps["percpu"].ncpus == cbpf.num_possible_cpus()
        assert all(m.fd >= 0 and m.id > 0 for m in obj.maps.values())
        progs = {name: (p.section, p.type) for name, p in obj.programs.items()}
        assert progs == {
            "count_hash": ("tracepoint/syscalls/sys_enter_getpid", cbpf.ProgramType.TRACEPOINT),
            "count_array": ("tracepoint/syscalls/sys_enter_getpid", cbpf.ProgramType.TRACEPOINT),
            "count_raw": ("raw_tracepoint/sys_enter", cbpf.ProgramType.RAW_TRACEPOINT),
            "filter": ("socket", cbpf.ProgramType.SOCKET_FILTER),
        }
        assert all(p.fd >= 0 and p.insn_count > 0 for p in obj.programs.values())
        assert obj.links == ()


@pytest.mark.kernel
@pytest.mark.parametrize("fmt", FORMATS)
def test_explicit_attach_calls_in_every_format(twins, fmt):
    with cbpf.Object(twins[fmt], attach=False) as obj:
        obj.maps["config"][0] = pid = os.getpid()
        progs = obj.programs
        with progs["count_hash"].attach_tracepoint("syscalls", "sys_enter_getpid") as tp, \
             progs["count_raw"].attach_raw_tracepoint("sys_enter") as raw:
            assert tp.target == "tracepoint syscalls/sys_enter_getpid" and tp.attached
            assert raw.target == "raw_tracepoint sys_enter"
            assert len(obj.links) == 2
            getpid_n(500)
        getpid_n(7)  # detached: not counted
        assert obj.maps["counts"].fetch(pid) == 500
        assert obj.maps["slots"].to_dict() == {0: 500, 1: 0, 2: 500, 3: 0}
        assert obj.links == ()

        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        with a, b:
            with progs["filter"].attach_socket(b) as link:
                assert link.fd == -1  # a socket filter is no BPF link
                for i in range(5):
                    a.send(b"x" * i)
                assert [b.recv(16) for _ in range(5)] == [b"x" * i for i in range(5)]
            a.send(b"after")
            assert b.recv(16) == b"after"
        assert obj.maps["slots"].fetch(3) == 5


@pytest.mark.kernel
@pytest.mark.parametrize("fmt", FORMATS)
def test_load_false_autoload_and_autoattach_in_every_format(twins, fmt):
    obj = cbpf.Object(twins[fmt], load=False)
    with obj:
        assert not obj.loaded and obj.programs["filter"].fd == -1
        with pytest.raises(ValueError, match="not loaded yet"):
            obj.maps["slots"].fetch(0)
        obj.programs["filter"].autoload = False
        obj.programs["count_array"].autoattach = False
        obj.load()
        with pytest.raises(ValueError, match="autoload of program 'filter' can only change before"):
            obj.programs["filter"].autoload = True
        assert obj.programs["filter"].fd == -1 and obj.programs["count_array"].fd >= 0
        obj.attach()
        assert sorted(link.program.name for link in obj.links) == ["count_hash", "count_raw"]
        with pytest.raises(ValueError, match="was not loaded"):
            obj.programs["filter"].attach_socket(socket.socket())
        obj.maps["config"][0] = os.getpid()
        getpid_n(300)
        assert obj.maps["slots"].to_dict() == {0: 300, 1: 0, 2: 300, 3: 0}
    assert obj.closed and obj.links == ()
    with pytest.raises(ValueError, match="closed"):
        obj.maps["slots"].fetch(0)
    with pytest.raises(ValueError, match="closed"):
        obj.programs["count_hash"].attach()


# ---- legacy only ----

@pytest.mark.kernel
@pytest.mark.parametrize("variant", ["counter", "counter.g"])
def test_map_in_map_and_calls_into_text(legacy_objects, variant):
    """counter.bpf.c: inner_map_idx, a static and a global function in .text, a wrong version section."""
    with cbpf.Object(legacy_objects[variant], attach=False) as obj:
        assert obj.maps["outer"].type == 12 and obj.maps["inner"].max_entries == 1  # ARRAY_OF_MAPS, its template
        with cbpf.Map.create("array", 4, 8, 1) as inner:
            obj.maps["outer"][0] = inner
            obj.maps["config"][0] = os.getpid()
            with obj.programs["count_raw"].attach():
                getpid_n(400)
            assert inner.fetch(0) == 400  # through bump_global() and the map of maps
            assert obj.maps["array_count"].to_dict() == {0: 0, 1: 400, 2: 400, 3: 0}


@pytest.mark.kernel
def test_old_layouts_five_words_padded_records_no_version(legacy_objects, booted_clean):
    obj = cbpf.boot(legacy_objects["old5"])  # "tp/" section, 5-word and 8-word (trailing zero) records
    assert [link.target for link in obj.links] == ["tp/syscalls/sys_enter_getpid"]
    assert obj.maps["counts"].key_size == 4 and obj.maps["percpu_counts"].type == 5
    pid = os.getpid()  # counted (the program counts every process)
    getpid_n(99)
    assert cbpf.fetch("counts", pid) == 100
    assert cbpf.fetch("percpu_counts", pid) == 100


@pytest.mark.kernel
@pytest.mark.skipif(HAS_KPROBES, reason="this kernel has kprobes: tests/vm/test_vm_attach.py attaches them")
def test_kprobe_on_a_kernel_without_kprobes_names_config_kprobes(legacy_objects, booted_clean):
    before = open_fds()
    with pytest.raises(OSError, match=r"kprobe/__x64_sys_getpid: this kernel has no kprobes \(built without "
                                      r"CONFIG_KPROBES\)") as info:
        cbpf.boot(legacy_objects["counter"])
    assert info.value.errno == errno.EOPNOTSUPP
    with cbpf.Object(legacy_objects["counter"], attach=False) as obj:
        with pytest.raises(OSError, match="CONFIG_KPROBES"):
            obj.programs["kprobe_getpid"].attach_kprobe("__x64_sys_getpid", retprobe=True)
    gc.collect()
    assert open_fds() == before


@pytest.mark.kernel
def test_verifier_rejection_is_a_load_error_with_the_log(legacy_objects):
    before = open_fds()
    with pytest.raises(cbpf.LoadError) as info:
        cbpf.Object(legacy_objects["rejected"])
    err = info.value
    assert err.errno == errno.EACCES
    assert "invalid mem access 'map_value_or_null'" in err.log
    assert "the verifier refused program 'bad'" in str(err) and err.program == "bad"
    assert str(legacy_objects["rejected"]) in str(err)
    assert "last lines of the log" in str(err)
    assert open_fds() == before  # the map and the program loaded before it are closed


UNPRIVILEGED = """
import sys, cbpf
data = sys.stdin.buffer.read()
cbpf.Object(data, load=False).close()  # parsing needs no privilege
try:
    cbpf.Object(data)
except PermissionError as e:
    print(e)
"""


@pytest.mark.kernel
def test_without_capabilities_loading_is_a_permission_error(twins):
    # root without a capability left (bounding set cleared): bpf() refuses the first map
    env = {**os.environ, "PYTHONPATH": str(Path(cbpf.__file__).resolve().parent.parent)}
    r = subprocess.run(["setpriv", "--inh-caps=-all", "--bounding-set=-all", sys.executable, "-c", UNPRIVILEGED],
                       input=twins["legacy"].read_bytes(), capture_output=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode().strip() == (
        "[Errno 1] loading BPF object 'object' (legacy format): map 'config' (type 2, key_size 4, value_size 4, "
        "max_entries 1, map_flags 0x0): creation failed: Operation not permitted (run as root, or grant CAP_BPF and "
        "CAP_PERFMON)")


@pytest.mark.kernel
def test_attach_points_that_do_not_exist(legacy_objects):
    with cbpf.Object(legacy_objects["missing"], attach=False) as obj:
        with pytest.raises(FileNotFoundError, match="no tracepoint 'syscalls/sys_enter_no_such_call'"):
            obj.programs["no_tp"].attach()
        with pytest.raises(FileNotFoundError, match="no raw tracepoint 'no_such_tracepoint'"):
            obj.programs["no_raw_tp"].attach()
        with pytest.raises(OSError, match="no kernel function 'no_such_function'" if HAS_KPROBES else
                           "CONFIG_KPROBES"):
            obj.programs["no_kretprobe"].attach()
        with pytest.raises(OSError, match="not a tracepoint"):
            obj.programs["no_tp"].attach_tracepoint("..", "x")
        assert obj.links == ()


@pytest.mark.kernel
def test_what_legacy_programs_cannot_do_is_said(twins, legacy_objects):
    with cbpf.Object(twins["legacy"], attach=False) as obj:
        with pytest.raises(ValueError, match=r"section 'socket'\) does not say where to attach: use attach_socket"):
            obj.programs["filter"].attach()
        with pytest.raises(TypeError, match=r"legacy object .* attach_uprobe\(\) is not available"):
            obj.programs["count_hash"].attach_uprobe("libc", "getpid")
        with pytest.raises(TypeError, match="is a tracepoint program: attach_xdp"):
            obj.programs["count_hash"].attach_xdp("lo")
        with pytest.raises(ValueError, match="no BTF"):
            obj.globals  # noqa: B018
        with pytest.raises(ValueError, match="no BTF"):
            obj.btf_struct("anything")
    with cbpf.Object(legacy_objects["counter"], attach=False) as obj:
        sample = obj.programs["on_sample"]
        with pytest.raises(ValueError, match=r"section 'perf_event'\) does not say where to attach: use its fd with "
                                             r"perf_event_open\(2\) and PERF_EVENT_IOC_SET_BPF yourself"):
            sample.attach()
        with pytest.raises(TypeError, match=r"attach_perf_event\(\) is not available"):
            sample.attach_perf_event(1, 0, sample_period=1000)


def test_global_data_is_refused_clearly(legacy_objects):
    with pytest.raises(OSError, match="uses global variable 'hits' .*global data is not supported") as info:
        cbpf.Object(legacy_objects["globals"], load=False)
    assert info.value.errno == errno.EOPNOTSUPP


def test_legacy_objects_open_without_privileges_or_kernel(legacy_objects):
    """Parsing makes no system call: load=False works anywhere, and says what the object holds."""
    with cbpf.Object(legacy_objects["twin.g"], load=False) as obj:
        assert obj.legacy and not obj.loaded
        assert sorted(obj.maps) == ["config", "counts", "percpu", "slots"]
        assert obj.programs["count_raw"].insn_count > obj.programs["filter"].insn_count  # bump() appended
        assert obj.maps["counts"].max_entries == 64 and obj.maps["counts"].fd == -1


# ---- leaks ----

@pytest.mark.kernel
def test_a_thousand_legacy_load_close_cycles_leak_nothing(twins):
    data = twins["legacy.g"].read_bytes()
    cbpf.Object(data, attach=False).close()
    before = open_fds()
    rss0 = 0
    for i in range(1000):
        with cbpf.Object(data, attach=False) as obj:
            obj.maps["slots"].fetch(0)
        if i == 100:
            gc.collect()
            rss0 = rss_kib()
    for _ in range(20):  # attached, then closed
        with cbpf.Object(data) as obj:
            assert len(obj.links) == 3
    gc.collect()
    assert open_fds() == before
    if not UNDER_ASAN:
        assert rss_kib() - rss0 < 4 * 1024  # KiB


@pytest.mark.kernel
def test_close_gc_and_shutdown_free_everything(twins):
    before = open_fds()
    cbpf.boot(twins["legacy"])
    obj = cbpf.Object(twins["legacy"])
    link = obj.programs["count_raw"].attach_raw_tracepoint("sys_enter")
    assert open_fds() != before
    cbpf.shutdown()
    del obj, link  # the Link keeps its object alive until it goes
    gc.collect()
    assert open_fds() == before


# ---- malformed objects ----

class Elf:
    """A 64-bit little-endian ELF, edited in place: just what the malformed-object tests need."""

    SHDR = struct.Struct("<IIQQQQIIQQ")  # name type flags addr offset size link info addralign entsize
    SYM = struct.Struct("<IBBHQQ")       # name info other shndx value size
    REL = struct.Struct("<QQ")           # offset info

    def __init__(self, data: bytes) -> None:
        self.data = bytearray(data)
        self.shoff, = struct.unpack_from("<Q", data, 0x28)
        self.shnum, self.shstrndx = struct.unpack_from("<HH", data, 0x3C)

    def shdr(self, i: int) -> list[int]:
        return list(self.SHDR.unpack_from(self.data, self.shoff + i * self.SHDR.size))

    def set_shdr(self, i: int, field: int, value: int) -> None:
        h = self.shdr(i)
        h[field] = value
        self.SHDR.pack_into(self.data, self.shoff + i * self.SHDR.size, *h)

    def _str(self, table: int, off: int) -> str:
        base = self.shdr(table)[4] + off
        return self.data[base:self.data.index(b"\0", base)].decode()

    def section(self, name: str) -> int:
        return next(i for i in range(self.shnum) if self._str(self.shstrndx, self.shdr(i)[0]) == name)

    def symbols(self) -> dict[str, tuple[int, int]]:
        """name -> (index, where its entry is in the file)"""
        symtab = self.shdr(next(i for i in range(self.shnum) if self.shdr(i)[1] == 2))  # SHT_SYMTAB
        entries = range(symtab[5] // self.SYM.size)
        return {self._str(symtab[6], self.SYM.unpack_from(self.data, symtab[4] + k * self.SYM.size)[0]):
                (k, symtab[4] + k * self.SYM.size) for k in entries}

    def set_symbol_size(self, name: str, size: int) -> None:
        at = self.symbols()[name][1]
        self.SYM.pack_into(self.data, at, *self.SYM.unpack_from(self.data, at)[:5], size)

    def map_field(self, name: str, word: int, value: int) -> None:
        """sets word `word` of a map's struct bpf_map_def (0 type, 1 key_size, 2 value_size, 3 max_entries...)"""
        value_in_maps = self.SYM.unpack_from(self.data, self.symbols()[name][1])[4]
        struct.pack_into("<I", self.data, self.shdr(self.section("maps"))[4] + value_in_maps + 4 * word, value)

    def set_rel(self, section: str, k: int, *, offset: int | None = None, sym: int | None = None) -> None:
        at = self.shdr(self.section(".rel" + section))[4] + k * self.REL.size
        r_offset, r_info = self.REL.unpack_from(self.data, at)
        r_offset = r_offset if offset is None else offset
        r_info = r_info if sym is None else (sym << 32) | (r_info & 0xFFFFFFFF)
        self.REL.pack_into(self.data, at, r_offset, r_info)


TP = "tracepoint/syscalls/sys_enter_getpid"


def wrong_machine(e: Elf) -> None:
    struct.pack_into("<H", e.data, 0x12, 62)  # EM_X86_64


def rel_past_section(e: Elf) -> None:
    e.set_rel(TP, 0, offset=e.shdr(e.section(TP))[5])


def rel_to_license(e: Elf) -> None:
    e.set_rel(TP, 0, sym=e.symbols()["_license"][0])


def rel_to_function(e: Elf) -> None:
    e.set_rel(TP, 0, sym=e.symbols()["count_array"][0])


def maps_not_whole_records(e: Elf) -> None:
    maps = e.section("maps")
    e.set_shdr(maps, 5, e.shdr(maps)[5] + 4)


def zero_sized_map_symbol(e: Elf) -> None:
    e.set_symbol_size("counts", 0)


def short_map_record(e: Elf) -> None:
    e.set_symbol_size("percpu", 12)  # the last record: no other map follows it


def case(mutate: Callable[[Elf], None], err: int, message: str, name: str | None = None) -> Any:
    return pytest.param(mutate, err, message, id=name or mutate.__name__)


MALFORMED = [
    case(wrong_machine, errno.EINVAL, r"not a BPF object: e_machine is 62, EM_BPF is 247"),
    case(rel_past_section, errno.EINVAL,
         rf"relocation 0 of '\.rel{TP}': offset \d+ is not an instruction of section '{TP}'"),
    case(rel_to_license, errno.EINVAL,
         r"function 'count_hash', instruction \d+: relocation against '_license' \(section license\), which is not "
         r"a map"),
    case(rel_to_function, errno.EOPNOTSUPP, r"function 'count_hash' takes the address of function 'count_array'"),
    case(maps_not_whole_records, errno.EINVAL, r"maps section is 116 bytes but its map records end at 112"),
    case(zero_sized_map_symbol, errno.EINVAL, r"map 'counts' is 0 bytes"),
    case(short_map_record, errno.EINVAL, r"map 'percpu': a 12-byte record is not a struct bpf_map_def"),
    case(lambda e: e.map_field("counts", 1, 0), errno.EINVAL, r"map 'counts' \(type 1\): key_size is 0",
         "zero_key_size"),
    case(lambda e: e.map_field("slots", 2, 0), errno.EINVAL, r"map 'slots' \(type 2\): value_size is 0",
         "zero_value_size"),
    case(lambda e: e.map_field("config", 3, 0), errno.EINVAL, r"map 'config' \(type 2\): max_entries is 0",
         "zero_max_entries"),
    case(lambda e: e.map_field("config", 0, 0), errno.EINVAL, r"map 'config': type 0", "type_unspec"),
    case(lambda e: e.map_field("config", 5, 3), errno.EINVAL,
         r"map 'config': inner_map_idx is 3 but it is not a map-in-map", "inner_map_idx_of_an_array"),
]


@pytest.mark.parametrize("variant", ["twin", "twin.g"])
@pytest.mark.parametrize(("mutate", "err", "message"), MALFORMED)
def test_malformed_legacy_objects_raise_clearly(legacy_objects, variant, mutate, err, message):
    elf = Elf(legacy_objects[variant].read_bytes())
    mutate(elf)
    before = open_fds()
    for load in (False, True):
        with pytest.raises(OSError, match=r"opening BPF object 'object' \(legacy format\): " + message) as info:
            cbpf.Object(bytes(elf.data), load=load)
        assert info.value.errno == err
    assert open_fds() == before


@pytest.mark.parametrize("variant", ["twin", "twin.g"])
def test_every_truncation_is_refused(legacy_objects, variant):
    data = legacy_objects[variant].read_bytes()
    before = open_fds()
    for n in [*range(0, 128), *range(128, len(data), 7)]:
        with pytest.raises(OSError, match="not a valid BPF ELF object|truncated") as info:
            cbpf.Object(data[:n], load=False)
        assert info.value.errno == errno.EINVAL
    assert open_fds() == before


def test_malformed_objects_leak_no_memory(legacy_objects):
    elf = Elf(legacy_objects["twin.g"].read_bytes())
    rel_to_license(elf)
    bad = bytes(elf.data)
    rss0 = 0
    for i in range(3000):
        with pytest.raises(OSError):
            cbpf.Object(bad, load=False)
        if i == 500:
            gc.collect()
            rss0 = rss_kib()
    gc.collect()
    if not UNDER_ASAN:
        assert rss_kib() - rss0 < 2 * 1024  # KiB

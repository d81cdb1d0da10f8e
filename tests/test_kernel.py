"""boot(), Object, Map and fetch() against the live kernel."""

from __future__ import annotations

import ctypes
import errno
import gc
import logging
import os
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import cbpf

from conftest import open_fds

pytestmark = pytest.mark.kernel

BPF_MAP_TYPE_HASH = 1
BPF_MAP_TYPE_ARRAY = 2
BPF_MAP_TYPE_PERCPU_HASH = 5


def getpid_n(n: int) -> None:
    for _ in range(n):
        os.getpid()  # glibc issues the system call every time


class PidKind(ctypes.Structure):
    _fields_ = [("pid", ctypes.c_uint32), ("kind", ctypes.c_uint32)]


def test_boot_counts_getpid_exactly(bpf_objects, booted_clean):
    obj = cbpf.boot(bpf_objects["counter"])
    pid = os.getpid()  # the first call: counted too
    getpid_n(999)
    assert cbpf.fetch("counts", pid) == 1000
    getpid_n(234)
    assert cbpf.fetch("counts", pid) == 1234
    assert obj in cbpf.booted()
    assert obj.attached_count == 1


def test_fetch_key_kinds(bpf_objects, booted_clean):
    cbpf.boot(bpf_objects["counter"])
    pid = os.getpid()
    getpid_n(99)
    expected = 100
    assert cbpf.fetch("counts", pid) == expected
    assert cbpf.fetch("counts", ctypes.c_uint32(pid)) == expected
    assert cbpf.fetch("counts", struct.pack("=I", pid)) == expected
    assert cbpf.fetch("counts", bytearray(struct.pack("=I", pid))) == expected
    assert cbpf.fetch("counts", memoryview(struct.pack("=I", pid))) == expected
    assert cbpf.fetch("counts", np.uint32(pid)) == expected
    assert cbpf.fetch("counts", np.array([pid], dtype=np.uint32)) == expected
    # struct keys: ctypes structures and packed bytes; this map's value is a u32
    assert cbpf.fetch("by_struct", PidKind(pid, 39)) == expected
    assert cbpf.fetch("by_struct", struct.pack("=II", pid, 39)) == expected
    assert cbpf.fetch("by_struct", PidKind(pid, 40)) is None


def test_fetch_absent_key_is_none(bpf_objects):
    with cbpf.Object(bpf_objects["counter"]) as obj:
        counts = obj.maps["counts"]
        assert counts.fetch(0xFFFFFFFF) is None  # no process has this tgid
        assert cbpf.fetch(counts, 0xFFFFFFFF) is None
        # an array holds every index below max_entries; past it there is no key
        assert obj.maps["small"].fetch(0) == 0
        assert obj.maps["small"].fetch(4) is None


def test_per_cpu_fetch_is_the_sum(bpf_objects):
    with cbpf.Object(bpf_objects["counter"]) as obj:
        pid = os.getpid()
        getpid_n(499)
        percpu = obj.maps["percpu"]
        assert percpu.type == BPF_MAP_TYPE_PERCPU_HASH
        assert percpu.fetch(pid) == 500
        per_cpu_values = percpu.lookup(pid)
        assert len(per_cpu_values) == cbpf._cbpf.num_possible_cpus()
        assert sum(int.from_bytes(v, sys.byteorder) for v in per_cpu_values) == 500


def test_small_values_and_array(bpf_objects):
    with cbpf.Object(bpf_objects["counter"]) as obj:
        obj.maps["target"].update(0, os.getpid())
        getpid_n(300)
        small = obj.maps["small"]
        assert small.type == BPF_MAP_TYPE_ARRAY
        assert (small.key_size, small.value_size, small.max_entries) == (4, 2, 4)
        assert small.fetch(1) == 300  # a 2-byte value
        assert small.fetch(np.uint32(1)) == 300


def test_object_api_and_map_attributes(bpf_objects):
    obj = cbpf.Object(bpf_objects["counter"])
    try:
        assert obj.name == "counter"
        assert obj.loaded and not obj.closed
        assert set(obj.maps) >= {"counts", "by_struct", "percpu", "small", "wide_values"}
        counts = obj.maps["counts"]
        assert (counts.name, counts.type, counts.key_size, counts.value_size, counts.max_entries) == (
            "counts", BPF_MAP_TYPE_HASH, 4, 8, 1024)
        assert counts.fd >= 0
        assert counts.object is obj
        assert os.readlink(f"/proc/self/fd/{counts.fd}") == "anon_inode:bpf-map"
        assert "counts" in repr(counts)
    finally:
        obj.close()
    assert obj.closed and not obj.loaded
    assert counts.fd == -1 and counts.closed


def test_object_from_bytes_and_deferred_load(bpf_objects):
    data = Path(bpf_objects["counter"]).read_bytes()
    obj = cbpf.Object(data, name="from_bytes", load=False)
    try:
        assert obj.name == "from_bytes" and not obj.loaded
        with pytest.raises(ValueError, match="not loaded yet"):
            obj.maps["counts"].fetch(1)
        with pytest.raises(ValueError, match="not loaded"):
            obj.attach()
        obj.load()
        assert obj.attached_count == 0
        pid = os.getpid()
        getpid_n(10)
        assert obj.maps["counts"].fetch(pid) is None  # loaded, not attached: nothing counted
        obj.attach()
        pid = os.getpid()
        getpid_n(9)
        assert obj.maps["counts"].fetch(pid) == 10
        with pytest.raises(ValueError, match="already loaded"):
            obj.load()
    finally:
        obj.close()


def test_lookup_update_delete_and_items(bpf_objects):
    with cbpf.Object(bpf_objects["counter"], attach=False) as obj:
        counts = obj.maps["counts"]
        counts.update(7, 70)
        counts.update(struct.pack("=I", 8), struct.pack("=Q", 80))
        assert counts.fetch(7) == 70
        assert counts.lookup(8) == struct.pack("=Q", 80)
        assert sorted(counts.items()) == [(7, 70), (8, 80)]  # u32 -> u64 by the map's BTF
        assert sorted(counts.keys()) == [7, 8]
        with pytest.raises(FileExistsError):
            counts.update(7, 1, flags=cbpf.BPF_NOEXIST)
        assert counts.delete(7) is True
        assert counts.delete(7) is False
        assert counts.fetch(7) is None
        assert counts.lookup(7) is None


def test_wrong_key_size_and_types(bpf_objects):
    with cbpf.Object(bpf_objects["counter"], attach=False) as obj:
        counts = obj.maps["counts"]
        with pytest.raises(ValueError, match="key of 4 bytes, got a buffer of 8 bytes"):
            counts.fetch(b"12345678")
        with pytest.raises(ValueError, match="4 bytes"):
            cbpf.fetch(counts, ctypes.c_uint64(1))
        with pytest.raises(TypeError, match="int or a buffer of 4 bytes, not str"):
            counts.fetch("1234")
        with pytest.raises(TypeError, match="not float"):
            counts.fetch(1.5)
        with pytest.raises(OverflowError):
            counts.fetch(1 << 32)
        with pytest.raises(OverflowError):
            counts.fetch(-(1 << 31) - 1)
        assert counts.fetch(-1) is None  # -1 packs as 0xffffffff
        with pytest.raises(TypeError, match="12-byte key"):
            obj.maps["triples"].fetch(5)
        assert obj.maps["by_struct"].fetch(5) is None  # an 8-byte struct key takes an int too
        with pytest.raises(TypeError, match="16-byte values.*Map.lookup"):
            obj.maps["wide_values"].fetch(1)
        with pytest.raises(TypeError, match="exactly one argument"):
            counts.fetch()
        with pytest.raises(TypeError, match="takes a Map or a map name"):
            cbpf.fetch(42, 1)
        with pytest.raises(ValueError, match="value of 8 bytes"):
            counts.update(1, b"123")


def test_wide_values_read_through_lookup(bpf_objects):
    with cbpf.Object(bpf_objects["counter"]) as obj:
        pid = os.getpid()
        getpid_n(4)
        raw = obj.maps["wide_values"].lookup(pid)
        calls, last_tid = struct.unpack("=QQ", raw)
        assert calls == 5
        assert last_tid == threading.get_native_id()


def test_unknown_and_ambiguous_map_names(bpf_objects, booted_clean):
    with pytest.raises(KeyError, match="no booted object has a map named 'counts'"):
        cbpf.fetch("counts", 1)
    cbpf.boot(bpf_objects["counter"])
    with pytest.raises(KeyError, match="booted maps: by_struct, counts, percpu, small, target, triples, wide_values"):
        cbpf.fetch("nope", 1)
    cbpf.boot(bpf_objects["counter"], name="again")
    with pytest.raises(KeyError, match="ambiguous: booted objects counter, again"):
        cbpf.fetch("counts", 1)
    obj = cbpf.Object(bpf_objects["counter"], attach=False)
    with pytest.raises(KeyError):
        obj.maps["nope"]
    obj.close()


def test_closed_object_raises(bpf_objects, booted_clean):
    obj = cbpf.boot(bpf_objects["counter"])
    counts = obj.maps["counts"]
    obj.close()
    obj.close()  # twice is fine
    with pytest.raises(ValueError, match="map 'counts' is closed: its Object was closed"):
        counts.fetch(1)
    with pytest.raises(ValueError, match="closed"):
        cbpf.fetch("counts", 1)
    with pytest.raises(ValueError, match="closed"):
        counts.lookup(1)
    with pytest.raises(ValueError, match="closed"):
        list(counts.items())
    with pytest.raises(ValueError, match="closed"):
        len(counts)
    with pytest.raises(ValueError, match="is closed"):
        obj.load()
    with pytest.raises(ValueError, match="is closed"):
        with obj:
            pass


def test_close_detaches_and_releases_every_fd(bpf_objects):
    before = open_fds()
    obj = cbpf.Object(bpf_objects["counter"])
    during = open_fds()
    kinds = sorted(target for fd, target in during.items() if fd not in before)
    assert "anon_inode:bpf-map" in kinds and "anon_inode:bpf-prog" in kinds
    obj.close()
    assert open_fds() == before


def test_garbage_collection_releases_every_fd(bpf_objects):
    before = open_fds()
    obj = cbpf.Object(bpf_objects["counter"])
    counts = obj.maps["counts"]
    del obj
    gc.collect()
    assert counts.fetch(0xFFFFFFFF) is None  # the map keeps its object alive
    del counts
    gc.collect()
    assert open_fds() == before


def test_no_fd_leak_over_many_cycles(bpf_objects):
    data = Path(bpf_objects["counter"]).read_bytes()
    cbpf.Object(data).close()  # warm up: libbpf probes kernel features once
    before = open_fds()
    for _ in range(200):
        with cbpf.Object(data) as obj:
            obj.maps["counts"].fetch(1)
    assert open_fds() == before


def test_verifier_rejection_carries_the_log(bpf_objects):
    before = open_fds()
    with pytest.raises(cbpf.LoadError) as info:
        cbpf.Object(bpf_objects["rejected"])
    err = info.value
    assert err.errno == errno.EACCES
    assert "invalid mem access 'map_value_or_null'" in err.log
    assert "last lines of the log" in str(err) and "map_value_or_null" in str(err)
    assert isinstance(err, OSError)
    assert open_fds() == before


def test_legacy_format_loads_like_any_other(bpf_objects):
    # libbpf 1.x refuses this format; cbpf loads it itself (tests/test_legacy.py has the rest)
    with cbpf.Object(bpf_objects["legacy_maps"]) as obj:
        assert obj.legacy
        os.getpid()
        assert obj.maps["legacy_counts"].fetch(0) == 1


def test_libbpf_log_goes_to_logging(bpf_objects, caplog):
    with caplog.at_level(logging.DEBUG, logger="cbpf.libbpf"):
        cbpf.Object(bpf_objects["counter"]).close()
    records = [r for r in caplog.records if r.name == "cbpf.libbpf"]
    assert any("counts" in r.getMessage() for r in records)
    assert all(not r.getMessage().endswith("\n") for r in records)


def test_main_job_counts_its_own_process():
    """python -m cbpf with options only is `cbpf top` (the monitor's options kept): its own process is in the table,
    under its own name, recorded in BPF."""
    proc = subprocess.Popen([sys.executable, "-m", "cbpf", "--duration", "0.5", "--top", "1000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("cbpf top: system calls per process")
    assert lines[2].split() == ["PID", "COMM", "SYSCALLS", "PER", "SEC"]
    rows = {int(line.split()[0]): line.split()[1] for line in lines[3:] if line.strip()}
    assert rows.get(proc.pid) == os.path.basename(sys.executable)[:15], out

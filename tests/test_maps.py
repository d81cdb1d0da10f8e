"""The map API against the live kernel: every operation, map type, batch reads, numpy, mmap, globals, pinning."""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import sys
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest

import cbpf
from cbpf import Map, MapFlag, MapType

from conftest import open_fds

pytestmark = pytest.mark.kernel

NCPUS = cbpf.num_possible_cpus()
PID = os.getpid()  # asked once: every later getpid() call is counted by the test programs


def u32(v: int) -> bytes:
    return struct.pack("=I", v)


def u64(v: int) -> bytes:
    return struct.pack("=Q", v)


def getpid_n(n: int) -> None:
    for _ in range(n):
        os.getpid()


@pytest.fixture
def maps_obj(bpf_objects):
    """The maps test program, its target set to this process before load."""
    obj = cbpf.Object(bpf_objects["maps"], load=False)
    obj.globals["target_tgid"] = PID
    obj.load()
    obj.attach()
    yield obj
    obj.close()


# -- standalone maps and the basic operations ---------------------------------------------------------------

def test_hash_round_trips_and_mapping_protocol():
    with Map.create("hash", 4, 8, 128, name="rt") as m:
        assert (m.map_type, m.key_size, m.value_size, m.max_entries, m.name) == (MapType.HASH, 4, 8, 128, "rt")
        assert m.object is None and m.id > 0
        assert len(m) == 0 and 5 not in m
        m[5] = 50
        m.update(6, u64(60))
        m.update(u32(7), 70, flags=cbpf.BPF_NOEXIST)
        assert len(m) == 3
        assert 5 in m and u32(6) in m and 8 not in m
        assert m[5] == u64(50) and m.lookup(6) == u64(60) and m.fetch(7) == 70
        assert m.get(8) is None and m.get(8, b"x") == b"x"
        with pytest.raises(KeyError):
            m[8]
        with pytest.raises(FileExistsError):
            m.update(5, 1, flags=cbpf.BPF_NOEXIST)
        with pytest.raises(FileNotFoundError):
            m.update(8, 1, flags=cbpf.BPF_EXIST)
        assert sorted(m.keys()) == [u32(5), u32(6), u32(7)]
        assert sorted(m) == [u32(5), u32(6), u32(7)]
        assert sorted(m.values()) == [u64(50), u64(60), u64(70)]
        assert sorted(m.items()) == [(u32(5), u64(50)), (u32(6), u64(60)), (u32(7), u64(70))]
        assert m.to_dict() == {5: 50, 6: 60, 7: 70}
        del m[5]
        with pytest.raises(KeyError):
            del m[5]
        assert m.delete(6) is True and m.delete(6) is False
        out = bytearray(8)
        assert m.lookup_into(7, out) is True and out == u64(70)
        assert m.lookup_into(6, out) is False
        with pytest.raises(ValueError, match="output buffer of 8 bytes"):
            m.lookup_into(7, bytearray(4))
        m.clear()
        assert len(m) == 0 and list(m.items()) == []
    assert m.closed
    with pytest.raises(ValueError, match="closed"):
        m.fetch(1)


def test_array_clear_zeroes_and_delete_is_refused():
    with Map.create(MapType.ARRAY, 4, 4, 16) as m:
        assert len(m) == 16  # an array has every index
        for i in range(16):
            m[i] = i + 100
        assert m.to_dict() == {i: i + 100 for i in range(16)}
        with pytest.raises(OSError) as info:
            m.delete(3)
        assert info.value.errno == errno.EINVAL
        m.clear()
        assert m.to_dict() == {i: 0 for i in range(16)}
        assert m.fetch(16) is None


def test_wrong_sizes_and_types():
    with Map.create("hash", 8, 16, 4) as m:
        with pytest.raises(ValueError, match="key of 8 bytes, got a buffer of 4 bytes"):
            m.update(u32(1), bytes(16))
        with pytest.raises(ValueError, match="value of 16 bytes, got a buffer of 3 bytes"):
            m.update(1, b"abc")
        with pytest.raises(TypeError, match="16-byte value"):
            m.update(1, 5)
        with pytest.raises(TypeError, match="not str"):
            m.lookup("k")
        with pytest.raises(ValueError, match="whole 8-byte records"):
            m.update_batch(b"123", bytes(16))
        with pytest.raises(ValueError, match="2 keys but 1 values"):
            m.update_batch(bytes(16), bytes(16))
    with pytest.raises(ValueError, match="unknown map type 'nope'"):
        Map.create("nope", 4, 4, 4)
    with pytest.raises(OSError) as info:
        Map.create("hash", 0, 4, 4)
    assert info.value.errno == errno.EINVAL
    with pytest.raises(TypeError):
        Map()


def test_single_key_calls_release_their_buffers_on_every_path():
    """A bytearray cannot grow while a buffer of it is held: after each call, whether it succeeded, found nothing or
    raised (before or after the system call), the key's and the value's buffers were released."""

    def released(*arrays: bytearray) -> bool:
        for a in arrays:
            a.extend(b"x")  # BufferError if an export was left behind
            del a[-1]
        return True

    key, value, short = bytearray(u32(1)), bytearray(u64(10)), bytearray(3)
    with Map.create("hash", 4, 8, 1, name=f"rel{PID % 10000}") as m:
        m.update(key, value)
        assert released(key, value) and m.lookup(key) == u64(10) and released(key)
        assert m[key] == u64(10) and m.get(key) == u64(10) and key in m and released(key)
        out = bytearray(8)
        assert m.lookup_into(key, out) is True and out == u64(10) and released(key)
        with pytest.raises(ValueError, match="value of 8 bytes, got a buffer of 3 bytes"):
            m.update(key, short)  # the key was taken before the value failed
        assert released(key, short)
        with pytest.raises(TypeError, match="not str"):
            m.update(key, "x")
        assert released(key)
        with pytest.raises(OSError) as info:
            m.update(bytearray(u32(2)), value)  # full: the kernel refuses after both were taken
        assert info.value.errno == errno.E2BIG and released(value)
        with pytest.raises(ValueError, match="output buffer of 8 bytes"):
            m.lookup_into(key, short)
        assert released(key, short)
        assert m.delete(key) is True and m.delete(key) is False and released(key)
        assert m.lookup(key) is None and m.get(key, 0) == 0 and key not in m and released(key)
        with pytest.raises(KeyError):
            m[key]
        assert released(key)
        with pytest.raises(ValueError, match="key of 4 bytes, got a buffer of 3 bytes"):
            m.lookup(short)
        assert released(short)
    with Map.create("queue", 0, 8, 1) as q:
        q.push(value)
        assert released(value)
        with pytest.raises(OSError) as info:
            q.push(value)  # full
        assert info.value.errno == errno.E2BIG and released(value)
        assert q.peek() == u64(10) and q.pop() == u64(10) and q.pop() is None
    with Map.create("bloom_filter", 0, 8, 16, map_extra=3) as b:
        b.push(value)
        assert value in b and released(value)
        with pytest.raises(ValueError, match="value of 8 bytes, got a buffer of 3 bytes"):
            short in b
        assert released(short)


def test_iterators_read_lazily_and_fail_cleanly():
    """keys(), values() and items() read a chunk at a time when iterated (not when called), keep the map alive, and
    fail with a clear error when the map is closed between chunks or has no keys."""
    n = 3 * cbpf._maps._CHUNK + 5  # four chunks, each whole (a hash's batch may stop short at a bucket)
    with Map.create("array", 4, 8, n, name=f"it{PID % 10000}") as m:
        m.update_batch(np.arange(n, dtype=np.uint32), np.arange(n, dtype=np.uint64) * 2)
        items = m.items()
        m[n - 1] = 7  # written after items() was called, before it is iterated: seen
        got = dict(items)
        assert len(got) == n and got[u32(n - 1)] == u64(7) and got[u32(5)] == u64(10)
        assert sorted(int.from_bytes(k, sys.byteorder) for k in m.keys()) == list(range(n))
        assert sum(int.from_bytes(v, sys.byteorder) for v in m.values()) == n * (n - 1) - 2 * (n - 1) + 7
        it = m.values()
        first = [next(it) for _ in range(10)]
        assert len(first) == 10
        m.close()
        rest = 0
        with pytest.raises(ValueError, match="closed"):
            for _ in it:  # the rest of the first chunk, then the next read finds the map closed
                rest += 1
        assert rest == cbpf._maps._CHUNK - 10
        assert list(it) == []  # and stays ended
    with Map.create("queue", 0, 4, 4) as q:
        keys = q.keys()  # no error yet: nothing read
        with pytest.raises(TypeError, match="no keys"):
            next(keys)
    orphan = Map.create("array", 4, 4, 3).items()  # the iterator keeps its map alive
    assert list(orphan) == [(u32(i), u32(0)) for i in range(3)]


def test_queue_and_stack_and_bloom_filter():
    with Map.create("queue", 0, 4, 8) as q:
        assert q.pop() is None and q.peek() is None
        for v in (1, 2, 3):
            q.push(v)
        assert q.peek() == u32(1)
        assert [q.pop(), q.pop(), q.pop(), q.pop()] == [u32(1), u32(2), u32(3), None]
        with pytest.raises(TypeError, match="no keys"):
            len(q)
    with Map.create("stack", 0, 4, 8) as s:
        for v in (1, 2, 3):
            s.push(v)
        assert [s.pop(), s.pop(), s.pop()] == [u32(3), u32(2), u32(1)]
    with Map.create("bloom_filter", 0, 8, 1000, map_extra=3) as b:
        for v in range(0, 200, 2):
            b.push(v)
        assert all(v in b for v in range(0, 200, 2))
        assert sum(v in b for v in range(1, 200, 2)) < 20  # false positives are possible, not many


def test_lru_hash_keeps_at_most_its_capacity():
    with Map.create("lru_hash", 4, 4, 64, flags=MapFlag.NO_COMMON_LRU) as m:
        for i in range(1000):
            m[i] = i
        n = len(m)
        assert 0 < n <= 64
        assert 999 in m  # the newest survives
        assert all(int.from_bytes(v, sys.byteorder) == int.from_bytes(k, sys.byteorder) for k, v in m.items())


def test_lpm_trie_struct_keys_and_walk_fallback():
    class Key(ctypes.Structure):
        _fields_ = [("prefixlen", ctypes.c_uint32), ("addr", ctypes.c_uint8 * 4)]

    def key(prefixlen: int, a: str) -> Key:
        return Key(prefixlen, (ctypes.c_uint8 * 4)(*map(int, a.split("."))))

    with Map.create("lpm_trie", 8, 4, 16, flags=MapFlag.NO_PREALLOC) as m:
        m[key(8, "10.0.0.0")] = 1
        m[key(16, "10.1.0.0")] = 2
        m[key(24, "10.1.2.0")] = 3
        assert m.fetch(key(32, "10.1.2.3")) == 3
        assert m.fetch(key(32, "10.1.9.9")) == 2
        assert m.fetch(key(32, "10.9.9.9")) == 1
        assert m.fetch(key(32, "11.0.0.0")) is None
        # an LPM trie has no batch lookups: this is the get_next_key walk
        assert len(m) == 3
        assert sorted(m.to_dict().values()) == [1, 2, 3]


def test_per_cpu_hash_values_sums_and_numpy():
    with Map.create("percpu_hash", 4, 4, 16) as m:
        assert m.ncpus == NCPUS and m.value_stride == 8
        per_cpu = b"".join(u32(c + 1).ljust(8, b"\0") for c in range(NCPUS))
        m.update(1, per_cpu)
        assert m.lookup(1) == [u32(c + 1) for c in range(NCPUS)]
        assert m.fetch(1) == sum(range(1, NCPUS + 1))
        assert m.to_dict() == {1: sum(range(1, NCPUS + 1))}
        keys, values = m.to_numpy()
        assert keys.tolist() == [1]
        assert values.shape == (1, NCPUS) and values[0].tolist() == list(range(1, NCPUS + 1))
        with pytest.raises(ValueError, match="per-CPU value"):
            m.update(2, u32(1))


def test_a_million_entries_round_trip_through_batches():
    n = 1_000_000
    with Map.create("hash", 4, 8, n) as m:
        keys = np.arange(n, dtype=np.uint32)
        values = keys.astype(np.uint64) * 3 + 1
        assert m.update_batch(keys, values) == n
        assert len(m) == n
        k, v = m.to_numpy()
        assert k.dtype == np.uint32 and v.dtype == np.uint64 and len(k) == n
        order = np.argsort(k)
        assert np.array_equal(k[order], keys) and np.array_equal(v[order], values)
        d = m.to_dict()
        assert len(d) == n and d[0] == 1 and d[n - 1] == (n - 1) * 3 + 1
        assert sum(1 for _ in m.items()) == n
        assert m.delete_batch(keys[: n // 2]) == n // 2
        assert m.delete_batch(keys[: 10]) == 0  # already gone: passed over
        assert len(m) == n - n // 2


def test_pin_and_open_pinned():
    path = f"/sys/fs/bpf/cbpf-test-{uuid.uuid4().hex[:8]}"
    with Map.create("hash", 4, 4, 8, name="pinned") as m:
        m[1] = 11
        m.pin(path)
        assert m.pin_path == path and os.path.exists(path)
        with Map.from_pinned(path) as again:
            assert again.id == m.id and again.name == "pinned"
            assert again.fetch(1) == 11
            again[2] = 22
        assert m.fetch(2) == 22
        m.unpin()
        assert not os.path.exists(path) and m.pin_path is None
    with pytest.raises(FileNotFoundError):
        Map.from_pinned(path)


def test_standalone_maps_release_their_fds():
    Map.create("hash", 4, 4, 4).close()
    before = open_fds()
    for _ in range(500):
        with Map.create("hash", 4, 4, 4) as m:
            m[1] = 1
    m2 = Map.create("array", 4, 4, 4, flags=MapFlag.MMAPABLE)
    view = m2.memoryview()
    del m2  # garbage collection closes the fd; the view keeps the memory mapped
    view[0:4] = u32(9)
    del view
    assert open_fds() == before


# -- maps of a loaded object, written by a BPF program ------------------------------------------------------

def test_mmapped_array_reads_kernel_memory(maps_obj):
    mm = maps_obj.maps["mm_counts"]
    assert mm.mmapped and mm.flags & MapFlag.MMAPABLE
    view = mm.as_numpy()
    assert view.shape == (8,) and view[0] == 0
    getpid_n(25)
    assert mm.fetch(0) == 25  # from memory, no system call
    assert view[0] == 25  # the same memory: the view saw the BPF program's writes
    assert mm.lookup(0) == u64(25)  # and the system call agrees
    assert mm.fetch(8) is None
    mv = mm.memoryview()
    mv[8:16] = u64(77)  # user space writes are seen by the kernel too
    assert mm.lookup(1) == u64(77)


def test_globals_read_write_and_rodata(bpf_objects, maps_obj):
    g = maps_obj.globals
    assert set(g) >= {"target_tgid", "hits", "increment", "grow"}
    assert g["target_tgid"] == PID
    getpid_n(10)
    assert g["hits"] == 10
    g["increment"] = 5  # .data, written in kernel memory after load
    getpid_n(3)
    assert g["hits"] == 25
    with pytest.raises(ValueError, match="read-only after load"):
        g["target_tgid"] = 1
    with pytest.raises(KeyError, match="no global variable 'nope'"):
        g["nope"]
    # before load, .rodata is writable, and a process that is not the target is not counted
    other = cbpf.Object(bpf_objects["maps"], load=False)
    try:
        other.globals["target_tgid"] = 1  # init, never calls getpid
        assert other.globals["target_tgid"] == 1
        other.load()
        other.attach()
        getpid_n(5)
        assert other.globals["hits"] == 0
    finally:
        other.close()


def test_per_cpu_array_counts_and_struct_values(maps_obj):
    getpid_n(40)
    tid = threading.get_native_id()
    assert maps_obj.maps["percpu_calls"].fetch(0) == 40
    per_cpu = maps_obj.maps["percpu_calls"].lookup(0)
    assert len(per_cpu) == NCPUS and sum(int.from_bytes(v, sys.byteorder) for v in per_cpu) == 40
    stats = maps_obj.maps["stats"]
    keys, values = stats.to_numpy()
    assert values.dtype.names == ("calls", "last_tid", "flags")  # a structured dtype, from BTF
    assert keys.tolist() == [PID]
    assert (values["calls"][0], values["last_tid"][0], values["flags"][0]) == (40, tid, 0xABCD)
    counts, ncpu = maps_obj.maps["percpu_calls"].to_numpy()
    assert ncpu.shape == (2, NCPUS) and int(ncpu[0].sum()) == 40


def test_queue_written_by_bpf(maps_obj):
    getpid_n(3)
    q = maps_obj.maps["tids"]
    tid = threading.get_native_id()  # a __u32 value by the map's BTF
    assert [q.pop(), q.pop(), q.pop(), q.pop()] == [tid, tid, tid, None]


def test_map_in_map(maps_obj):
    outer = maps_obj.maps["outer"]
    assert outer.map_type == MapType.ARRAY_OF_MAPS
    with Map.create("array", 4, 8, 4, name="inner0") as inner:
        outer[0] = inner  # a map of maps takes the Map itself
        inner_id = int.from_bytes(outer.lookup(0), sys.byteorder)
        assert inner_id == inner.id  # the kernel gives the inner map's id back
        getpid_n(12)
        assert inner.fetch(0) == 12
        del outer[0]
        getpid_n(3)
        assert inner.fetch(0) == 12


def test_iterating_while_a_bpf_program_adds_keys(maps_obj):
    growing = maps_obj.maps["growing"]
    maps_obj.globals["grow"] = 1
    getpid_n(3000)  # keys 1..3000 exist before the iteration starts
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            os.getpid()

    t = threading.Thread(target=writer)
    t.start()
    try:
        seen = list(growing.keys())  # u32 keys by the map's BTF
    finally:
        stop.set()
        t.join()
    assert len(seen) == len(set(seen))  # nothing twice
    assert set(range(1, 3001)) <= set(seen)  # nothing that was there before is missed
    assert len(seen) <= growing.max_entries


def test_program_array_tail_calls_the_program_put_in_it(bpf_objects):
    with cbpf.Object(bpf_objects["tailcall"]) as obj:  # "tracepoint" alone names no target: only entry attaches
        assert [link.target for link in obj.links] == ["tracepoint/syscalls/sys_enter_getpid"]
        g, table = obj.globals, obj.maps["jump_table"]
        pid = os.getpid()
        g["target_tgid"] = pid

        def calls(n: int) -> tuple[int, int, int]:
            before = (g["fell_through"], g["in_first"], g["in_second"])
            for _ in range(n):
                os.getpid()
            return tuple(now - then for now, then in zip((g["fell_through"], g["in_first"], g["in_second"]), before))

        assert calls(10) == (10, 0, 0)  # empty slot: the tail call falls through
        table[0] = obj.programs["first"]  # by the Program (its fd)
        assert calls(20) == (0, 20, 0)
        table.update(0, obj.programs["second"].fd)  # or by the fd, as an int
        assert calls(30) == (0, 0, 30)
        assert table.lookup(0) is not None and 1 not in table  # what the kernel gives back is the program's id
        del table[0]
        assert calls(5) == (5, 0, 0)
        with pytest.raises(TypeError, match="a value of map 'jump_table' is a Program, an fd or a buffer of 4 bytes"):
            table[1] = "not a program"

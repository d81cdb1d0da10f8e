"""RingBuffer and PerfBuffer against the live kernel: tests/bpf/events.bpf.c emits, for every getpid() call of this
process, `burst` events carrying the tgid, the tid and a per-thread sequence number (1, 2, 3...)."""

from __future__ import annotations

import asyncio
import gc
import os
import select
import signal
import struct
import threading
import time
import tracemalloc
from collections import defaultdict

import numpy as np
import pytest
from conftest import open_fds

import cbpf

pytestmark = pytest.mark.kernel

RINGBUF, EVENTS2, PERF = 1, 2, 4
EVENT_SIZE = 64
EVENT = struct.Struct("=IIQIi16s3HHBx2xI4s4x")  # struct event, by hand, to check the BTF decoder against


def load(bpf_objects, outputs: int = RINGBUF, burst: int = 1) -> cbpf.Object:
    obj = cbpf.Object(bpf_objects["events"])
    obj.globals["target_tgid"] = os.getpid()
    obj.globals["outputs"] = outputs
    obj.globals["burst"] = burst
    return obj


def getpid_n(n: int) -> None:
    for _ in range(n):
        os.getpid()  # glibc issues the system call every time


def getpid_in_threads(threads: int, n: int) -> set[int]:
    """n getpid() calls in each of `threads` threads running at once; returns their tids."""
    barrier = threading.Barrier(threads)
    tids: set[int] = set()

    def work() -> None:
        tids.add(threading.get_native_id())
        barrier.wait()
        getpid_n(n)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return tids


def fields(data: bytes) -> tuple:
    return EVENT.unpack_from(data)


def check_sequences(events: list[tuple], tids: set[int], n: int, per_cpu: bool) -> None:
    """Every tid has seq 1..n exactly once; in delivery order per tid (per tid and CPU for perf buffers)."""
    by_tid: dict[int, list[int]] = defaultdict(list)
    order: dict[tuple[int, int], list[int]] = defaultdict(list)
    for tgid, tid, seq, cpu, *_ in events:
        assert tgid == os.getpid()
        by_tid[tid].append(seq)
        order[(tid, cpu if per_cpu else 0)].append(seq)
    assert set(by_tid) == tids
    for tid, seqs in by_tid.items():
        assert sorted(seqs) == list(range(1, n + 1)), tid  # none missing, none twice
    for seqs in order.values():
        assert seqs == sorted(seqs)


def wait_until_in_epoll(thread: threading.Thread) -> None:
    """Returns once the thread sleeps in epoll_wait (a poll waiting, with the GIL released)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with open(f"/proc/self/task/{thread.native_id}/wchan") as f:
            if f.read() == "do_epoll_wait":
                return
        time.sleep(0.005)
    raise AssertionError("the poller never waited in epoll_wait")


def drain(stream, callback_events: list, expected: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while len(callback_events) < expected and time.monotonic() < deadline:
        stream.poll(0.1)


# -- exact counts and contents ---------------------------------------------------------------------------------------

def test_ring_buffer_delivers_every_event_once_in_order(bpf_objects):
    with load(bpf_objects) as obj:
        got: list[tuple] = []
        with cbpf.RingBuffer(obj.maps["events"], lambda data: got.append(fields(data))) as rb:
            tids = getpid_in_threads(4, 500)
            drain(rb, got, 2000)
            assert rb.poll(0) == 0
        assert len(got) == 2000
        check_sequences(got, tids, 500, per_cpu=False)
        assert obj.globals["dropped"] == 0
        first = got[0]
        assert first[5].rstrip(b"\0")  # comm
        assert first[4] == -first[2]
        assert first[6:9] == (first[2], first[2] + 1, first[2] + 2)


def test_perf_buffer_delivers_every_event_once_in_order_per_cpu(bpf_objects):
    with load(bpf_objects, outputs=PERF) as obj:
        got: list[tuple] = []
        lost: list[tuple[int, int]] = []
        with cbpf.PerfBuffer(obj.maps["perf_events"], lambda data: got.append(fields(data)),
                             lost_callback=lambda cpu, n: lost.append((cpu, n))) as pb:
            assert pb.buffer_count == cbpf.num_possible_cpus()
            tids = getpid_in_threads(4, 500)
            drain(pb, got, 2000)
            assert pb.poll(0) == 0
            assert pb.lost == 0 and lost == []
        assert len(got) == 2000
        check_sequences(got, tids, 500, per_cpu=True)


def test_perf_buffer_counts_lost_samples_exactly(bpf_objects):
    """A one-page buffer per CPU overflows: what is not delivered is reported lost, to the sample."""
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(affinity)})  # one CPU, so that the next sample carries the lost count
    try:
        with load(bpf_objects, outputs=PERF) as obj:
            got: list[tuple] = []
            lost: list[tuple[int, int]] = []
            with cbpf.PerfBuffer(obj.maps["perf_events"], lambda data: got.append(fields(data)), page_cnt=1,
                                 lost_callback=lambda cpu, n: lost.append((cpu, n))) as pb:
                getpid_n(1000)
                while pb.poll(0):
                    pass
                os.getpid()  # the kernel writes the lost record before this sample
                while pb.poll(0.2):
                    pass
                dropped = obj.globals["dropped"]
                assert 0 < dropped < 1001
                assert pb.lost == dropped
                assert sum(n for _, n in lost) == dropped
                assert {cpu for cpu, _ in lost} == {min(affinity)}
                assert len(got) == 1001 - dropped
                assert len({e[2] for e in got}) == len(got)
    finally:
        os.sched_setaffinity(0, affinity)


def test_perf_buffer_wakeup_events(bpf_objects):
    """With wakeup_events=64, ten samples wake no one: a waiting poll takes them when its timeout ends."""
    with load(bpf_objects, outputs=PERF) as obj:
        got: list[tuple] = []
        with cbpf.PerfBuffer(obj.maps["perf_events"], lambda data: got.append(fields(data)),
                             wakeup_events=64) as pb:
            assert pb.wakeup_events == 64
            result: list[float] = []

            def poller() -> None:
                t0 = time.monotonic()
                result.append(pb.poll(0.5))
                result.append(time.monotonic() - t0)

            t = threading.Thread(target=poller)
            t.start()
            wait_until_in_epoll(t)
            getpid_n(10)
            t.join()
            assert result[0] == 10 and result[1] >= 0.45
            assert sorted(e[2] for e in got) == list(range(1, 11))
        with pytest.raises(ValueError, match="wakeup_events"):
            cbpf.PerfBuffer(obj.maps["perf_events"], wakeup_events=0)


def test_burst_of_events_per_call(bpf_objects):
    with load(bpf_objects, burst=100) as obj:
        got: list[tuple] = []
        with cbpf.RingBuffer(obj.maps["events"], lambda data: got.append(fields(data))) as rb:
            getpid_n(20)
            drain(rb, got, 2000)
        assert [e[2] for e in got] == list(range(1, 2001))


# -- ways to consume -------------------------------------------------------------------------------------------------

def test_poll_batch_contents_and_limit(bpf_objects):
    with load(bpf_objects) as obj, cbpf.RingBuffer(obj.maps["events"]) as rb:
        getpid_n(100)
        data, offsets = rb.poll_batch(1.0, 30)
        assert offsets.format == "Q" and len(offsets) == 31
        assert list(offsets) == [i * EVENT_SIZE for i in range(31)]
        assert len(data) == 30 * EVENT_SIZE
        seqs = [fields(data[offsets[i]:offsets[i + 1]])[2] for i in range(30)]
        assert seqs == list(range(1, 31))
        data, offsets = rb.poll_batch(0)
        assert len(offsets) == 71
        assert [fields(data[offsets[i]:offsets[i + 1]])[2] for i in range(70)] == list(range(31, 101))
        data, offsets = rb.poll_batch(0)  # nothing left
        assert data == b"" and list(offsets) == [0]


def test_poll_array_with_btf_struct(bpf_objects):
    with load(bpf_objects, outputs=RINGBUF | PERF) as obj, \
            cbpf.RingBuffer(obj.maps["events"], event="event") as rb, \
            cbpf.PerfBuffer(obj.maps["perf_events"], event="event") as pb:
        getpid_n(50)
        arr = rb.poll_array(1.0)
        assert arr.dtype == obj.btf_struct("event").dtype and len(arr) == 50
        assert arr["seq"].tolist() == list(range(1, 51))
        assert (arr["neg"] == -arr["seq"].astype(np.int64)).all()
        assert arr["triple"][:, 2].tolist() == list(range(3, 53))
        assert arr["inner"]["b"].tolist() == [7] * 50
        assert set(arr["raw"].tolist()) == {b"\xde\xad\xbe\xef"}
        perf = np.concatenate([pb.poll_array(0.2) for _ in range(4)])  # perf pads each sample to 68 bytes
        assert sorted(perf["seq"].tolist()) == list(range(1, 51))


def test_poll_array_with_numpy_dtype(bpf_objects):
    dtype = np.dtype({"names": ["tgid", "tid", "seq"], "formats": ["u4", "u4", "u8"], "offsets": [0, 4, 8],
                      "itemsize": EVENT_SIZE})
    with load(bpf_objects) as obj, cbpf.RingBuffer(obj.maps["events"], event=dtype) as rb:
        getpid_n(10)
        arr = rb.poll_array(1.0)
        assert arr["seq"].tolist() == list(range(1, 11))
        assert set(arr["tgid"].tolist()) == {os.getpid()}
        os.getpid()
        record = rb.read(1.0)  # a numpy record with event= a dtype
        assert record["seq"] == 11


def test_read_iteration_and_fileno(bpf_objects):
    with load(bpf_objects) as obj, cbpf.RingBuffer(obj.maps["events"]) as rb:
        assert rb.read(0) is None
        r, _, _ = select.select([rb], [], [], 0)
        assert r == []
        getpid_n(5)
        r, _, _ = select.select([rb], [], [], 1.0)
        assert r == [rb]
        seqs = []
        for data in rb:
            seqs.append(fields(data)[2])
            if len(seqs) == 5:
                break
        assert seqs == [1, 2, 3, 4, 5]
        assert rb.read(0) is None
        t0 = time.monotonic()
        assert rb.read(0.05) is None
        assert time.monotonic() - t0 >= 0.05


def test_callback_exception_stops_poll_and_propagates(bpf_objects):
    with load(bpf_objects, outputs=RINGBUF | PERF) as obj:
        for make in (lambda cb: cbpf.RingBuffer(obj.maps["events"], cb),
                     lambda cb: cbpf.PerfBuffer(obj.maps["perf_events"], cb)):
            seen: list[int] = []

            def callback(data: bytes, seen: list[int] = seen) -> None:
                seen.append(fields(data)[2])
                if len(seen) == 3:
                    raise KeyError("third")

            with make(callback) as stream:
                getpid_n(10)
                time.sleep(0.05)
                with pytest.raises(KeyError, match="third"):
                    stream.poll(1.0)
                assert len(seen) == 3  # the poll stopped at the exception
                while stream.poll(0.1):
                    pass
                assert sorted(seen) == list(range(1, 11))  # the rest came with the next polls, none twice
            obj.maps["seqs"].clear()


def test_decode_exception_propagates(bpf_objects):
    def decode(data: bytes) -> None:
        raise ValueError("bad event")

    with load(bpf_objects) as obj, cbpf.RingBuffer(obj.maps["events"], print, decode=decode) as rb:
        os.getpid()
        with pytest.raises(ValueError, match="bad event"):
            rb.poll(1.0)
        os.getpid()
        with pytest.raises(ValueError, match="bad event"):
            rb.read(1.0)


def test_two_ring_buffers_in_one_consumer(bpf_objects):
    with load(bpf_objects, outputs=RINGBUF | EVENTS2) as obj:
        got: list[tuple] = []
        with cbpf.RingBuffer([obj.maps["events"], obj.maps["events2"]], lambda d: got.append(fields(d))) as rb:
            assert [m.name for m in rb.maps] == ["events", "events2"]
            getpid_n(100)
            drain(rb, got, 200)
        assert sorted(e[2] for e in got) == sorted(list(range(1, 101)) * 2)

        first: list[int] = []
        second: list[int] = []
        obj.maps["seqs"].clear()
        with cbpf.RingBuffer(obj.maps["events"], lambda d: first.append(fields(d)[2])) as rb:
            rb.add(obj.maps["events2"], lambda d: second.append(d.seq), event="event")
            getpid_n(100)
            drain(rb, first, 100)
            drain(rb, second, 100)
        assert first == second == list(range(1, 101))


def test_asyncio_consumer(bpf_objects):
    producer_tid: list[int] = []  # known before its first getpid(), so the consumer can stop at its 200th event

    def produce() -> None:
        producer_tid.append(threading.get_native_id())
        getpid_n(200)

    async def main(rb: cbpf.RingBuffer) -> list[int]:
        loop = asyncio.get_running_loop()
        by_tid: dict[int, list[int]] = defaultdict(list)
        producer = loop.run_in_executor(None, produce)  # another thread, while this loop waits
        async for event in rb.events():
            # asyncio calls getpid() itself (to check the running loop): its thread's events are apart
            by_tid[event.tid].append(event.seq)
            if producer_tid and len(by_tid[producer_tid[0]]) == 200:
                break
        await producer
        return by_tid[producer_tid[0]]

    with load(bpf_objects) as obj, cbpf.RingBuffer(obj.maps["events"], event="event") as rb:
        assert asyncio.run(asyncio.wait_for(main(rb), 30)) == list(range(1, 201))


def test_asyncio_consumer_ends_when_closed(bpf_objects):
    async def main(rb: cbpf.RingBuffer) -> list[int]:
        by_tid: dict[int, list[int]] = defaultdict(list)

        async def consume() -> None:
            async for event in rb.events():
                by_tid[event.tid].append(event.seq)

        def produce() -> int:
            getpid_n(3)
            return threading.get_native_id()

        task = asyncio.ensure_future(consume())
        tid = await asyncio.get_running_loop().run_in_executor(None, produce)
        for _ in range(100):
            if len(by_tid[tid]) == 3:
                break
            await asyncio.sleep(0.01)
        rb.close()
        await asyncio.wait_for(task, 2.0)
        return by_tid[tid]

    with load(bpf_objects) as obj:
        rb = cbpf.RingBuffer(obj.maps["events"], event="event")
        assert asyncio.run(main(rb)) == [1, 2, 3]
        assert rb.closed


# -- closing, threads, the GIL, fds ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["ring", "perf"])
@pytest.mark.parametrize("how", ["poll", "iterate", "poll_batch"])
def test_close_while_another_thread_polls(bpf_objects, kind, how):
    with load(bpf_objects, outputs=RINGBUF | PERF) as obj:
        before = open_fds()
        stream = (cbpf.RingBuffer(obj.maps["events"], print) if kind == "ring"
                  else cbpf.PerfBuffer(obj.maps["perf_events"], print))
        outcome: list[object] = []

        def poller() -> None:
            try:
                if how == "poll":
                    outcome.append(stream.poll())
                elif how == "poll_batch":
                    outcome.append(len(stream.poll_batch()[1]))
                else:
                    outcome.append(list(stream))
            except Exception as e:  # noqa: BLE001 - what the poller got is the point
                outcome.append(e)

        t = threading.Thread(target=poller)
        t.start()
        wait_until_in_epoll(t)  # without the GIL
        stream.close()
        t.join(5)
        assert not t.is_alive()
        assert outcome == [{"poll": 0, "poll_batch": 1, "iterate": []}[how]]
        assert stream.closed
        with pytest.raises(ValueError, match="closed"):
            stream.poll(0)
        assert open_fds() == before


def test_close_from_a_callback(bpf_objects):
    with load(bpf_objects) as obj:
        before = open_fds()
        got: list[bytes] = []

        def callback(data: bytes) -> None:
            got.append(data)
            rb.close()

        rb = cbpf.RingBuffer(obj.maps["events"], callback)
        getpid_n(5)
        assert rb.poll(1.0) == 1
        assert rb.closed and len(got) == 1
        assert open_fds() == before


def test_signal_handler_exception_interrupts_a_wait(bpf_objects):
    """Ctrl-C while waiting: the handler's exception comes out of poll(), and the stream stays usable."""
    class Alarm(Exception):
        pass

    def on_alarm(signum: int, frame: object) -> None:
        raise Alarm

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        with load(bpf_objects) as obj, cbpf.RingBuffer(obj.maps["events"], print) as rb:
            signal.setitimer(signal.ITIMER_REAL, 0.2)
            t0 = time.monotonic()
            with pytest.raises(Alarm):
                rb.poll()  # no timeout: only the signal ends it
            assert time.monotonic() - t0 < 5
            assert rb.poll(0) == 0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_poll_from_two_threads_is_refused(bpf_objects):
    with load(bpf_objects) as obj, cbpf.RingBuffer(obj.maps["events"], print) as rb:
        t = threading.Thread(target=rb.poll, args=(5,))
        t.start()
        wait_until_in_epoll(t)
        with pytest.raises(RuntimeError, match="polled already"):
            rb.poll(0)
        rb.close()  # ends the other poll
        t.join()


def test_gil_is_released_while_waiting(bpf_objects):
    with load(bpf_objects) as obj, cbpf.RingBuffer(obj.maps["events"], print) as rb:
        t = threading.Thread(target=rb.poll, args=(0.5,))
        spins = 0
        t.start()
        while t.is_alive():
            spins += 1
        t.join()
        assert spins > 10_000


def test_fds_back_to_baseline_after_close_and_gc(bpf_objects):
    with load(bpf_objects, outputs=RINGBUF | EVENTS2 | PERF) as obj:
        before = open_fds()
        for _ in range(50):
            rb = cbpf.RingBuffer([obj.maps["events"], obj.maps["events2"]], print)
            pb = cbpf.PerfBuffer(obj.maps["perf_events"], print)
            rb.close()
            pb.close()
        assert open_fds() == before
        for _ in range(50):
            rb = cbpf.RingBuffer(obj.maps["events"])
            pb = cbpf.PerfBuffer(obj.maps["perf_events"])
            del rb, pb
        gc.collect()
        assert open_fds() == before


def test_reference_cycles_are_collected(bpf_objects):
    with load(bpf_objects) as obj:
        before = open_fds()

        class Consumer:
            def __init__(self) -> None:
                self.rb = cbpf.RingBuffer(obj.maps["events"], self.on_event)  # rb -> bound method -> self -> rb
                self.pb = cbpf.PerfBuffer(obj.maps["perf_events"], self.on_event)

            def on_event(self, data: bytes) -> None:
                pass

        for _ in range(20):
            Consumer()
        gc.collect()
        assert open_fds() == before


def test_ring_buffer_keeps_its_object_alive(bpf_objects):
    def make() -> cbpf.RingBuffer:
        obj = load(bpf_objects)
        return cbpf.RingBuffer(obj.maps["events"])

    before = open_fds()
    rb = make()
    gc.collect()
    getpid_n(3)
    assert [fields(rb.read(1.0))[2] for _ in range(3)] == [1, 2, 3]  # the object is loaded and attached still
    obj = rb.maps[0].object
    del obj
    rb.close()
    del rb
    gc.collect()
    assert open_fds() == before


def test_object_closed_under_a_ring_buffer(bpf_objects):
    obj = load(bpf_objects)
    rb = cbpf.RingBuffer(obj.maps["events"])
    getpid_n(2)
    obj.close()  # detaches the program; the ring's memory stays mapped
    assert [fields(rb.read(1.0))[2] for _ in range(2)] == [1, 2]
    assert rb.read(0) is None
    rb.close()


def test_memory_is_flat_over_many_events(bpf_objects):
    """Events through every way of consuming, 25 times over: no memory kept per event or per call."""
    with load(bpf_objects, outputs=RINGBUF | EVENTS2 | PERF, burst=400) as obj, \
            cbpf.RingBuffer(obj.maps["events"], lambda e: None, event="event") as rb, \
            cbpf.RingBuffer(obj.maps["events2"]) as raw, \
            cbpf.PerfBuffer(obj.maps["perf_events"], lambda e: None, event="event") as pb:

        def cycle() -> int:
            n = 0
            os.getpid()
            while got := rb.poll(0) + pb.poll(0) + len(raw.poll_batch(0, 100)[1]) - 1:
                n += got
            os.getpid()
            while got := len(rb.poll_array(0)) + len(pb.poll_batch(0)[1]) - 1 + (raw.read(0) is not None):
                n += got
            return n

        for _ in range(5):
            assert cycle() == 2400
        gc.collect()
        tracemalloc.start()
        snap0 = tracemalloc.take_snapshot()
        for _ in range(20):
            assert cycle() == 2400
        gc.collect()
        snap1 = tracemalloc.take_snapshot()
        tracemalloc.stop()
        grown = sum(s.size_diff for s in snap1.compare_to(snap0, "filename") if s.size_diff > 0)
        assert grown < 64 * 1024, grown
        assert obj.globals["dropped"] == 0


# -- BTF struct decoding ---------------------------------------------------------------------------------------------

def test_btf_struct_decodes_events(bpf_objects):
    with load(bpf_objects) as obj:
        event = obj.btf_struct("event")
        assert event.size == EVENT_SIZE
        assert event.fields == ("tgid", "tid", "seq", "cpu", "neg", "comm", "triple", "inner", "u", "raw")
        data = EVENT.pack(11, 12, 2**40 + 3, 1, -5, b"comm\0junk", 1, 2, 65535, 300, 9, 0x01020304, b"\xff\0ab")
        e = event.decode(data)
        assert e == (11, 12, 2**40 + 3, 1, -5, "comm", (1, 2, 65535), (300, 9), (0x01020304, b"\x04\x03\x02\x01"),
                     b"\xff\0ab")
        assert e.seq == 2**40 + 3 and e.comm == "comm" and e.inner.a == 300 and e.u.bytes == b"\x04\x03\x02\x01"
        assert event(data + b"\0\0\0\0") == e  # perf samples come padded
        assert e._asdict()["neg"] == -5
        # a short (variable-length) event: the fields present decode, the rest come out empty
        assert event.decode(data[:10]) == (11, 12, 0, 0, 0, "", (), (0, 0), (0, b""), b"")
        assert event.decode(data[:30]).comm == "comm"
        with pytest.raises(KeyError, match="no struct or union named 'nope'"):
            obj.btf_struct("nope")
        inner = obj.btf_struct("inner")
        assert inner.decode(b"\x01\x02\x03\x00") == (0x0201, 3)
        with load(bpf_objects) as obj2, cbpf.RingBuffer(obj2.maps["events"], event=event) as rb:
            os.getpid()
            got = rb.read(1.0)
            assert (got.tgid, got.tid, got.seq, got.neg, got.raw) == (os.getpid(), threading.get_native_id(), 1, -1,
                                                                   b"\xde\xad\xbe\xef")
            assert got.comm and isinstance(got.comm, str)


def test_btf_struct_of_described_layouts():
    """Layouts the test program does not have: odd int sizes, floats, arrays of structs, a char array inside."""
    desc = ("struct", 40, [
        ("big", 0, 0, ("int", 16, False, False)),
        ("f", 16, 0, ("float", 8)),
        ("pairs", 24, 0, ("array", ("struct", 4, [("x", 0, 0, ("int", 2, True, False)),
                                                  ("y", 2, 0, ("int", 2, False, False))]), 2)),
        ("name", 32, 0, ("array", ("int", 1, True, True), 8)),
    ])
    s = cbpf.Struct("odd", desc)
    data = (2**100).to_bytes(16, "little") + struct.pack("=d", 1.5) + struct.pack("=hHhH", -1, 2, 3, 4) + b"ab\0cdefg"
    v = s.decode(data)
    assert v == (2**100, 1.5, ((-1, 2), (3, 4)), "ab")
    assert v.pairs[1].y == 4
    assert s.dtype.itemsize == 40 and s.dtype["name"] == np.dtype("S8")
    bits = cbpf.Struct("bits", ("struct", 4, [("b", 0, 3, ("int", 4, False, False), 0),
                                              ("c", 0, 5, ("int", 4, True, False), 3)]))
    assert bits.decode(b"\xfd\0\0\0") == (5, -1)
    assert bits.encode((5, -1)) == b"\xfd\0\0\0" and bits.encode({"c": 3}) == b"\x18\0\0\0"
    with pytest.raises(TypeError, match="not a struct"):
        cbpf.Struct("i", ("int", 4, False, False))


# -- bad input -------------------------------------------------------------------------------------------------------

def test_wrong_map_type_is_a_type_error(bpf_objects):
    with load(bpf_objects) as obj:
        with pytest.raises(TypeError, match="'seqs' is not a ring buffer"):
            cbpf.RingBuffer(obj.maps["seqs"])
        with pytest.raises(TypeError, match="use PerfBuffer"):
            cbpf.RingBuffer(obj.maps["perf_events"])
        with pytest.raises(TypeError, match="use RingBuffer"):
            cbpf.PerfBuffer(obj.maps["events"])
        with pytest.raises(TypeError, match="not a perf event array"):
            cbpf.PerfBuffer(obj.maps["seqs"])
        with pytest.raises(TypeError, match="sequence of Maps"):
            cbpf.RingBuffer(42)
        with pytest.raises(TypeError, match="not int"):
            cbpf.RingBuffer([obj.maps["events"], 42])
        with pytest.raises(TypeError, match="callback must be callable"):
            cbpf.RingBuffer(obj.maps["events"], 42)
        with pytest.raises(ValueError, match="power of two"):
            cbpf.PerfBuffer(obj.maps["perf_events"], page_cnt=3)
        with pytest.raises(ValueError, match="at least one map"):
            cbpf.RingBuffer([])
        with pytest.raises(ValueError, match="already"):
            cbpf.RingBuffer([obj.maps["events"], obj.maps["events"]])
        with pytest.raises(TypeError, match="event= or decode="):
            cbpf.RingBuffer(obj.maps["events"], event="event", decode=bytes)
        with cbpf.RingBuffer(obj.maps["events"]) as rb:
            with pytest.raises(TypeError, match="has none"):
                rb.poll(0)
            with pytest.raises(TypeError, match="needs the event type"):
                rb.poll_array(0)
            with pytest.raises(ValueError, match="timeout"):
                rb.poll_batch(-1)
            with pytest.raises(ValueError, match="max_events"):
                rb.poll_batch(0, 0)
        with pytest.raises(ValueError, match="closed"):
            rb.read(0)
        with pytest.raises(ValueError, match="closed"):
            rb.fileno()
    with pytest.raises(ValueError, match="not open"):
        cbpf.RingBuffer(obj.maps["events"])

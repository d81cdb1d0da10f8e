"""Events per second delivered to Python from a BPF program producing them as fast as it can, against C consumers of
the same buffers in the same run.

    python benchmarks/bench_events.py [--rounds R] [--window SECONDS] [--rate EVENTS_PER_S] [--paced-seconds S]

A producer process calls getpid() in a tight loop; a tracepoint program emits BURST events (32 bytes each) per call
into a ring buffer or a perf buffer. This process consumes them for a window per variant, variants interleaved
round after round; each figure is the median over rounds, each ratio the median of the round's ratios to the C
consumer of the same buffer (RingBuffer._c_consume: the same consumer with events copied out in C, no Python).
Events the producer could not write (buffer full) are reported as lost. The producer and the consumer are pinned
to different CPUs where there are two.

Then a paced run: the producer emits at --rate events/s (default 500k) for --paced-seconds, consumed with a Python
callback; the events lost must be 0.

bcc's Python front end (Debian's python3-bpfcc, run by /usr/bin/python3) consumes the same producer with its ring
buffer and a callback, where it is installed (scripts/setup-bcc); otherwise that line says why it was skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import cbpf

BURST = 256
PERF_WAKEUP = 64  # samples per wake-up of the perf buffer's consumer

PROGRAM = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define BURST %(burst)d

struct event {
    __u64 seq;
    __u32 tgid;
    __u32 tid;
    __u64 time_ns;
    __u64 value;
};

__u32 target_tgid = 0;
__u32 outputs = 1;     /* 1: the ring buffer, 2: the perf buffer */
__u64 produced = 0;
__u64 dropped = 0;

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 8 << 20);
} ring SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
    __uint(key_size, sizeof(__u32));
    __uint(value_size, sizeof(__u32));
} perf SEC(".maps");

/* its argument puts struct event in the object's BTF */
static __noinline int fill(struct event *e, __u64 id, __u64 seq)
{
    e->seq = seq;
    e->tgid = id >> 32;
    e->tid = (__u32)id;
    e->time_ns = bpf_ktime_get_ns();
    e->value = seq * 3;
    return 0;
}

SEC("tracepoint/syscalls/sys_enter_getpid")
int produce(void *ctx)
{
    __u64 id = bpf_get_current_pid_tgid();
    if ((id >> 32) != target_tgid)
        return 0;
    __u64 seq = __sync_fetch_and_add(&produced, BURST);
    for (int i = 0; i < BURST; i++, seq++) {
        if (outputs == 1) {
            /* written in place; the consumer is woken once per burst, by its last event, if it waits */
            struct event *e = bpf_ringbuf_reserve(&ring, sizeof(*e), 0);
            if (!e) {
                __sync_fetch_and_add(&dropped, 1);
                continue;
            }
            fill(e, id, seq);
            bpf_ringbuf_submit(e, i == BURST - 1 ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
        } else {
            struct event e = {};
            fill(&e, id, seq);
            if (bpf_perf_event_output(ctx, &perf, BPF_F_CURRENT_CPU, &e, sizeof(e)))
                __sync_fetch_and_add(&dropped, 1);
        }
    }
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""

# The producer: getpid() in a loop, flat out (rate 0) or paced to `rate` calls per second.
PRODUCER = r"""
import os, sys, time
calls_per_s, seconds, cpu = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
if cpu >= 0:
    os.sched_setaffinity(0, {cpu})
getpid, clock = os.getpid, time.perf_counter
end = clock() + seconds
if calls_per_s == 0:
    while clock() < end:
        for _ in range(100):
            getpid()
else:
    step = 1.0 / calls_per_s
    t = next_t = clock()
    while t < end:
        getpid()
        next_t += step
        while (t := clock()) < next_t:
            pass
"""

BCC_PEER = r"""
import json, os, statistics, sys, time
from bcc import BPF
target, burst, rounds, window = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
if len(sys.argv) > 5:
    os.sched_setaffinity(0, {int(sys.argv[5])})
text = '''
BPF_RINGBUF_OUTPUT(ring, 2048);
struct event { u64 seq; u32 tgid; u32 tid; u64 time_ns; u64 value; };
TRACEPOINT_PROBE(syscalls, sys_enter_getpid) {
    u64 id = bpf_get_current_pid_tgid();
    if ((id >> 32) != TARGET)
        return 0;
    for (int i = 0; i < BURST; i++) {
        struct event *e = ring.ringbuf_reserve(sizeof(struct event));
        if (!e)
            continue;
        e->seq = i; e->tgid = id >> 32; e->tid = (u32)id; e->time_ns = bpf_ktime_get_ns(); e->value = i * 3;
        ring.ringbuf_submit(e, i == BURST - 1 ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
    }
    return 0;
}
'''.replace('TARGET', str(target)).replace('BURST', str(burst))
b = BPF(text=text)
count = [0]
end = [0.0]
# libbpf's ring_buffer__poll() returns only once the ring is empty, which a producer faster than the consumer never
# lets happen: the callback ends the window itself (a negative return stops the poll)
def on_event(ctx, data, size):
    count[0] += 1
    if count[0] & 1023 == 0 and time.perf_counter() >= end[0]:
        return -1
    return 0
b['ring'].open_ring_buffer(on_event)
rates = []
for _ in range(rounds):
    end[0] = 0.0
    b.ring_buffer_consume()
    count[0] = 0
    t0 = time.perf_counter()
    end[0] = t0 + window
    while time.perf_counter() < end[0]:
        b.ring_buffer_poll(100)
    rates.append(count[0] / (time.perf_counter() - t0))
print(json.dumps({'rate': statistics.median(rates)}))
"""


def build_object() -> bytes:
    import sysconfig

    with tempfile.TemporaryDirectory() as tmp:
        src, out = os.path.join(tmp, "events.bpf.c"), os.path.join(tmp, "events.bpf.o")
        with open(src, "w") as f:
            f.write(PROGRAM % {"burst": BURST})
        cmd = ["clang", "-O2", "-g", "-target", "bpf", "-I", cbpf.include_dir()]
        multiarch = sysconfig.get_config_var("MULTIARCH")
        if multiarch:
            cmd += ["-idirafter", f"/usr/include/{multiarch}"]
        subprocess.run([*cmd, "-c", src, "-o", out], check=True)
        return Path(out).read_bytes()


def start_producer(calls_per_s: float, seconds: float, cpu: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", PRODUCER, str(calls_per_s), str(seconds), str(cpu)])


def drain(stream: Any) -> None:
    """Empties a buffer (as far as a producer running meanwhile lets it)."""
    for _ in range(64):
        if len(stream.poll_batch(0)[1]) == 1:
            return


class Counter:
    """What the least useful consumer does with an event: count it (its bound method add is the callback)."""

    def __init__(self) -> None:
        self.n = 0

    def add(self, event: object) -> None:
        self.n += 1


def timed(window: float, step: Callable[[], int]) -> tuple[float, int]:
    n = 0
    t0 = time.perf_counter()
    end = t0 + window
    while time.perf_counter() < end:
        n += step()
    return time.perf_counter() - t0, n


Table = dict[str, tuple[Any, Callable[[], tuple[float, int]]]]


def variants(obj: cbpf.Object, window: float) -> Table:
    """name -> (ring buffer to drain first, or None for the perf buffer; measure): measure() consumes for `window`
    seconds and returns (seconds, events)."""
    ring, perf = obj.maps["ring"], obj.maps["perf"]
    count, count_decoded, count_perf = Counter(), Counter(), Counter()
    rb = cbpf.RingBuffer(ring, count.add)
    rb_decoded = cbpf.RingBuffer(ring, count_decoded.add, event="event")
    rb_numpy = cbpf.RingBuffer(ring, event="event")

    def perf_buffer(measure: Callable[[Any], tuple[float, int]], wakeup_events: int = PERF_WAKEUP) \
            -> Callable[[], tuple[float, int]]:
        """A fresh PerfBuffer per measurement: a perf event array feeds one PerfBuffer at a time. One wake-up per
        sample (wakeup_events=1, the default, as in libbpf and bcc) costs the producer more than anything else."""
        def run() -> tuple[float, int]:
            with cbpf.PerfBuffer(perf, count_perf.add, page_cnt=2048, wakeup_events=wakeup_events) as pb:
                return measure(pb)
        return run

    def callback(stream: Any, counter: Counter) -> Callable[[], tuple[float, int]]:
        def measure() -> tuple[float, int]:
            counter.n = 0
            secs, _ = timed(window, lambda: stream.poll(0.1))
            return secs, counter.n
        return measure

    def iterate() -> tuple[float, int]:
        n = 0
        t0 = time.perf_counter()
        end = t0 + window
        for _ in rb:
            n += 1
            if n & 1023 == 0 and time.perf_counter() >= end:
                break
        return time.perf_counter() - t0, n

    def batch(stream: Any) -> Callable[[], tuple[float, int]]:
        return lambda: timed(window, lambda: len(stream.poll_batch(0.1)[1]) - 1)

    return {
        "C consumer (ring, cbpf's loop)": (rb, lambda: rb._c_consume(window)[:2]),
        "C consumer (ring, libbpf's)": (rb, lambda: rb._c_consume_libbpf(window)[:2]),
        "poll(), callback(bytes)": (rb, callback(rb, count)),
        "poll(), callback(named tuple)": (rb, callback(rb_decoded, count_decoded)),
        "for event in rb": (rb, iterate),
        "poll_batch()": (rb, batch(rb)),
        "poll_array() (numpy)": (rb, lambda: timed(window, lambda: len(rb_numpy.poll_array(0.1)))),
        "C consumer (perf)": (None, perf_buffer(lambda pb: pb._c_consume(window)[:2])),
        "perf poll(), callback(bytes)": (None, perf_buffer(lambda pb: callback(pb, count_perf)())),
        "perf poll_batch()": (None, perf_buffer(lambda pb: batch(pb)())),
        "C consumer (perf, wakeup_events=1)": (None, perf_buffer(lambda pb: pb._c_consume(window)[:2], 1)),
    }


def run_flat_out(obj: cbpf.Object, rounds: int, window: float, cpus: tuple[int, int]) -> dict[str, float]:
    """Events/s per variant against a producer running flat out; returns the C ring consumer's median rate."""
    producer = start_producer(0, 3600, cpus[1])
    table = variants(obj, window)
    rates: dict[str, list[float]] = {name: [] for name in table}
    lost: dict[str, list[float]] = {name: [] for name in table}
    try:
        g = obj.globals
        g["target_tgid"] = producer.pid
        time.sleep(0.3)
        for _ in range(rounds):
            for name, (stream, measure) in table.items():
                g["outputs"] = 1 if stream is not None else 2
                if stream is not None:
                    drain(stream)
                produced0, dropped0 = g["produced"], g["dropped"]
                secs, n = measure()
                produced, dropped = g["produced"] - produced0, g["dropped"] - dropped0
                rates[name].append(n / secs)
                lost[name].append(dropped / produced if produced else 0.0)
    finally:
        obj.globals["target_tgid"] = 0
        producer.kill()
        producer.wait()
        for stream, _ in table.values():
            if stream is not None:
                stream.close()
    base_ring = rates["C consumer (ring, cbpf's loop)"]
    base_perf = rates["C consumer (perf)"]
    print(f"flat out: {BURST} events of 32 bytes per getpid() call; {rounds} rounds of {window:g} s; medians")
    print(f"  {'variant':<32} {'events/s':>12} {'ratio to C':>11} {'lost':>7}")
    for name in table:
        base = base_ring if table[name][0] is not None else base_perf
        ratio = statistics.median(r / b for r, b in zip(rates[name], base))
        print(f"  {name:<32} {statistics.median(rates[name]):12,.0f} {ratio:10.3f}x "
              f"{statistics.median(lost[name]):7.1%}")
    return {name: statistics.median(r) for name, r in rates.items()}


def run_drain(obj: cbpf.Object, rounds: int, cpus: tuple[int, int]) -> None:
    """The consumers' own cost: the ring filled, the producer stopped, each variant empties it. Timed in CPU time of
    the consuming thread (time.thread_time), which the other processes of a busy machine do not inflate."""
    g = obj.globals
    ring = obj.maps["ring"]
    count = Counter()
    rb = cbpf.RingBuffer(ring, count.add)
    rb_decoded = cbpf.RingBuffer(ring, count.add, event="event")
    rb_numpy = cbpf.RingBuffer(ring, event="event")

    def until_empty(step: Callable[[], int]) -> int:
        n = 0
        while True:
            got = step()
            if not got:
                return n
            n += got

    def callbacks(stream: Any) -> int:
        count.n = 0
        until_empty(lambda: stream.poll(0))
        return count.n

    table: dict[str, Callable[[], int]] = {
        "C consumer (cbpf's loop)": lambda: rb._c_consume(0)[1],
        "C consumer (libbpf's)": lambda: rb._c_consume_libbpf(0)[1],
        "poll(), callback(bytes)": lambda: callbacks(rb),
        "poll(), callback(named tuple)": lambda: callbacks(rb_decoded),
        "read(0), one at a time": lambda: until_empty(lambda: rb.read(0) is not None),
        "poll_batch()": lambda: until_empty(lambda: len(rb.poll_batch(0)[1]) - 1),
        "poll_array() (numpy)": lambda: until_empty(lambda: len(rb_numpy.poll_array(0))),
    }
    per_event: dict[str, list[float]] = {name: [] for name in table}
    sizes = []
    producer = start_producer(0, 3600, cpus[1])
    try:
        g["outputs"] = 1
        for _ in range(rounds):
            for name, measure in table.items():
                drain(rb)
                dropped = g["dropped"]
                g["target_tgid"] = producer.pid
                while g["dropped"] == dropped:  # full
                    time.sleep(0.002)
                g["target_tgid"] = 0
                time.sleep(0.02)  # the burst under way ends
                cpu = time.thread_time()
                n = measure()
                per_event[name].append((time.thread_time() - cpu) / n * 1e9)
                sizes.append(n)
    finally:
        g["target_tgid"] = 0
        producer.kill()
        producer.wait()
        for stream in (rb, rb_decoded, rb_numpy):
            stream.close()
    base = per_event["C consumer (cbpf's loop)"]
    print(f"consumer alone: a full ring ({statistics.median(sizes):,.0f} events) emptied, producer stopped; "
          f"{rounds} rounds; medians of the consumer's CPU time")
    print(f"  {'variant':<32} {'ns/event':>12} {'events/s':>12} {'ratio to C':>11}")
    for name, samples in per_event.items():
        med = statistics.median(samples)
        ratio = statistics.median(s / b for s, b in zip(samples, base))
        print(f"  {name:<32} {med:12.1f} {1e9 / med:12,.0f} {ratio:10.2f}x")


def run_paced(obj: cbpf.Object, rate: float, seconds: float, cpus: tuple[int, int]) -> None:
    """rate events/s for `seconds`, consumed with a callback per event: every event must arrive."""
    g = obj.globals
    for buffer in ("ring", "perf"):
        count = Counter()
        stream: Any = (cbpf.RingBuffer(obj.maps["ring"], count.add) if buffer == "ring"
                       else cbpf.PerfBuffer(obj.maps["perf"], count.add, page_cnt=2048, wakeup_events=PERF_WAKEUP))
        with stream:
            g["outputs"] = 1 if buffer == "ring" else 2
            drain(stream)
            count.n = 0
            produced0, dropped0 = g["produced"], g["dropped"]
            producer = start_producer(rate / BURST, seconds, cpus[1])
            g["target_tgid"] = producer.pid
            while producer.poll() is None:
                stream.poll(0.1)
            while stream.poll(0.2):
                pass
            g["target_tgid"] = 0
            produced, dropped = g["produced"] - produced0, g["dropped"] - dropped0
            perf_lost = getattr(stream, "lost", 0)
        print(f"paced, {buffer}: {produced:,} events at {produced / seconds:,.0f}/s asked {rate:,.0f}/s, callback per "
              f"event: delivered {count.n:,}, lost {dropped:,}" + (f" (perf counted {perf_lost:,})" if buffer == "perf"
                                                                   else ""))


def run_bcc(obj: cbpf.Object, rounds: int, window: float, cpus: tuple[int, int], c_rate: float) -> None:
    if not Path("/usr/bin/python3").exists():
        print("bcc: skipped: /usr/bin/python3 not found")
        return
    producer = start_producer(0, 3600, cpus[1])
    try:
        args = ["/usr/bin/python3", "-c", BCC_PEER, str(producer.pid), str(BURST), str(rounds), str(window)]
        if cpus[0] != cpus[1]:
            args.append(str(cpus[0]))
        r = subprocess.run(args, capture_output=True, text=True, timeout=600, check=False)
    finally:
        producer.kill()
        producer.wait()
    if r.returncode != 0:
        why = ("not installed (Debian python3-bpfcc; scripts/setup-bcc)" if "No module named 'bcc'" in r.stderr
               else " ".join(r.stderr.strip().splitlines()[-1:]))
        print(f"bcc: skipped: {why}")
        return
    got = json.loads(r.stdout.strip().splitlines()[-1])
    print(f"bcc's Python ring buffer (callback per event, same producer): {got['rate']:,.0f} events/s, "
          f"ratio to cbpf's C consumer {got['rate'] / c_rate:.3f}x")


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--window", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=500_000)
    parser.add_argument("--paced-seconds", type=float, default=3.0)
    parser.add_argument("--no-bcc", action="store_true")
    args = parser.parse_args()

    allowed = sorted(os.sched_getaffinity(0))
    cpus = (allowed[0], allowed[1]) if len(allowed) > 1 else (allowed[0], allowed[0])
    os.sched_setaffinity(0, {cpus[0]})
    print(f"cbpf {cbpf.__version__}, libbpf {cbpf.libbpf_version()}; consumer on CPU {cpus[0]}, producer on CPU "
          f"{cpus[1]}")
    with cbpf.Object(build_object(), name="bench_events") as obj:
        rates = run_flat_out(obj, args.rounds, args.window, cpus)
        run_drain(obj, args.rounds, cpus)
        run_paced(obj, args.rate, args.paced_seconds, cpus)
        if not args.no_bcc:
            obj.globals["target_tgid"] = 0
            run_bcc(obj, args.rounds, args.window, cpus, rates["C consumer (ring, cbpf's loop)"])


if __name__ == "__main__":
    main()

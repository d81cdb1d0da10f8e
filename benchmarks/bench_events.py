"""Events per second delivered to Python from a BPF program producing them as fast as it can, against C consumers of
the same buffers in the same run.

    python benchmarks/bench_events.py [--rounds R] [--window SECONDS] [--rate EVENTS_PER_S] [--paced-seconds S]

A producer process calls getpid() in a tight loop; a tracepoint program emits BURST events of 32 bytes per call
into a ring buffer (8 MiB; reserve/submit, one wake-up per burst) or a perf buffer (bpf_perf_event_output, 8 MiB
per CPU). The producer and this process are pinned to different CPUs where there are two. Variants are interleaved
round after round; figures are medians over rounds, ratios the medians of each round's ratio to the C consumer of
the same buffer (_c_consume: this consumer with events copied out in C and no Python).

1. Flat out: each variant consumes for a window. events/s is wall-clock; on a machine shared with other work it
   depends on how much CPU the consumer got, printed as "cpu" (its thread's CPU time over the window). "lost" is
   the share of the events produced meanwhile that the program could not write (buffer full).
2. Consumer alone: the ring filled, the producer stopped, each variant empties it, timed in the consumer thread's
   CPU time (which other processes do not inflate): what consuming costs per event.
3. Paced: --rate events/s (default 500k) for --paced-seconds, a Python callback per event; lost must be 0.

bcc's Python front end (Debian's python3-bpfcc, run by /usr/bin/python3 in a process of its own, with the same
producer, ring size and program) takes part in 1 and 2 where it is installed (scripts/setup-bcc); otherwise the
output says why it was skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import cbpf

BURST = 256
PERF_WAKEUP = 64  # samples per wake-up of a waiting perf buffer consumer
PERF_PAGES = 2048  # per CPU: 8 MiB, as the ring

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
__u32 outputs = 1; /* 1: the ring buffer, 2: the perf buffer */
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
            /* written in place; a waiting consumer is woken once per burst, by its last event */
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

# bcc's side, in a process of its own (bcc belongs to the system Python): the same program written for bcc, and a
# callback per event counting them. It answers commands on stdin with a JSON line:
#   flat WINDOW  consume for WINDOW seconds   -> {"secs", "events", "cpu", "produced", "dropped"}
#   drain        fill the ring, stop, empty it -> {"events", "cpu"}
BCC_PEER = r"""
import json, os, sys, time
from bcc import BPF
producer, burst, cpu = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
if cpu >= 0:
    os.sched_setaffinity(0, {cpu})
text = '''
BPF_RINGBUF_OUTPUT(ring, 2048);
BPF_ARRAY(control, u64, 3);  /* [0] the producer's tgid (0: off), [1] events produced, [2] events dropped */
struct event { u64 seq; u32 tgid; u32 tid; u64 time_ns; u64 value; };
TRACEPOINT_PROBE(syscalls, sys_enter_getpid) {
    u64 id = bpf_get_current_pid_tgid();
    int k0 = 0, k1 = 1, k2 = 2;
    u64 *target = control.lookup(&k0), *produced = control.lookup(&k1), *dropped = control.lookup(&k2);
    if (!target || !produced || !dropped || (id >> 32) != *target)
        return 0;
    u64 seq = __sync_fetch_and_add(produced, BURST);
    for (int i = 0; i < BURST; i++) {
        struct event *e = ring.ringbuf_reserve(sizeof(struct event));
        if (!e) {
            __sync_fetch_and_add(dropped, 1);
            continue;
        }
        e->seq = seq + i; e->tgid = id >> 32; e->tid = (u32)id; e->time_ns = bpf_ktime_get_ns(); e->value = i * 3;
        ring.ringbuf_submit(e, i == BURST - 1 ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
    }
    return 0;
}
'''.replace('BURST', str(burst))
b = BPF(text=text)
control = b['control']
count = [0]
end = [0.0]

# libbpf's ring_buffer__poll() returns only once the ring is empty, which a producer faster than the consumer never
# lets happen: the callback ends a window itself (a negative return stops the poll)
def on_event(ctx, data, size):
    count[0] += 1
    if count[0] & 1023 == 0 and time.perf_counter() >= end[0]:
        return -1
    return 0

b['ring'].open_ring_buffer(on_event)

def set_target(pid):
    control[control.Key(0)] = control.Leaf(pid)

def counter(i):
    return control[control.Key(i)].value

print('ready', flush=True)
for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == 'flat':
        set_target(producer)
        end[0] = 0.0
        for _ in range(64):  # empty the ring as far as the producer lets it
            count[0] = 0
            b.ring_buffer_consume()
            if count[0] < 1024:
                break
        count[0] = 0
        produced, dropped = counter(1), counter(2)
        t0, c0 = time.perf_counter(), time.thread_time()
        end[0] = t0 + float(cmd[1])
        while time.perf_counter() < end[0]:
            b.ring_buffer_poll(100)
        out = {'secs': time.perf_counter() - t0, 'events': count[0], 'cpu': time.thread_time() - c0,
               'produced': counter(1) - produced, 'dropped': counter(2) - dropped}
        set_target(0)
    else:
        end[0] = float('inf')
        b.ring_buffer_consume()
        dropped = counter(2)
        set_target(producer)
        while counter(2) == dropped:
            time.sleep(0.002)
        set_target(0)
        time.sleep(0.02)
        count[0] = 0
        c0 = time.thread_time()
        b.ring_buffer_consume()
        out = {'events': count[0], 'cpu': time.thread_time() - c0}
    print(json.dumps(out), flush=True)
"""

BCC = "bcc: ring buffer, callback(ctypes)"


class BccPeer:
    """The bcc process; `why` says why there is none."""

    def __init__(self, producer: int, cpu: int) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.why = ""
        if not Path("/usr/bin/python3").exists():
            self.why = "/usr/bin/python3 not found"
            return
        proc = subprocess.Popen(["/usr/bin/python3", "-c", BCC_PEER, str(producer), str(BURST), str(cpu)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stderr is not None
        if proc.stdout.readline().strip() != "ready":
            err = proc.stderr.read()
            proc.wait()
            self.why = ("not installed (Debian python3-bpfcc; scripts/setup-bcc)" if "No module named 'bcc'" in err
                        else " ".join(err.strip().splitlines()[-1:]) or "it exited")
            return
        self.proc = proc

    def ask(self, command: str) -> dict[str, float]:
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())  # type: ignore[no-any-return]

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


def build_object() -> bytes:
    return cbpf.compile(PROGRAM % {"burst": BURST})


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


class Bench:
    """The object, the producer, the consumers; results as {variant: [sample per round]}."""

    def __init__(self, obj: cbpf.Object, cpus: tuple[int, int], window: float) -> None:
        self.obj, self.g, self.window = obj, obj.globals, window
        self.producer = start_producer(0, 3600, cpus[1])
        self.bcc = BccPeer(self.producer.pid, cpus[0] if cpus[0] != cpus[1] else -1)
        self.count = Counter()
        ring = obj.maps["ring"]
        self.rb = cbpf.RingBuffer(ring, self.count.add)
        self.rb_decoded = cbpf.RingBuffer(ring, self.count.add, event="event")
        self.rb_numpy = cbpf.RingBuffer(ring, event="event")

    def close(self) -> None:
        self.g["target_tgid"] = 0
        self.bcc.close()
        self.producer.kill()
        self.producer.wait()
        for stream in (self.rb, self.rb_decoded, self.rb_numpy):
            stream.close()

    # -- flat out: (seconds, events, consumer CPU seconds) per window ----------------------------------------------

    def windowed(self, step: Callable[[], int]) -> tuple[float, int, float]:
        n = 0
        t0, c0 = time.perf_counter(), time.thread_time()
        end = t0 + self.window
        while time.perf_counter() < end:
            n += step()
        return time.perf_counter() - t0, n, time.thread_time() - c0

    def c_loop(self, consume: Callable[[float], tuple[float, int, int]]) -> tuple[float, int, float]:
        c0 = time.thread_time()
        secs, n, _ = consume(self.window)
        return secs, n, time.thread_time() - c0

    def callbacks(self, stream: Any) -> tuple[float, int, float]:
        self.count.n = 0
        secs, _, cpu = self.windowed(lambda: stream.poll(0.1))
        return secs, self.count.n, cpu

    def iterate(self) -> tuple[float, int, float]:
        n = 0
        t0, c0 = time.perf_counter(), time.thread_time()
        end = t0 + self.window
        for _ in self.rb:
            n += 1
            if n & 1023 == 0 and time.perf_counter() >= end:
                break
        return time.perf_counter() - t0, n, time.thread_time() - c0

    def perf(self, measure: Callable[[Any], tuple[float, int, float]], wakeup_events: int = PERF_WAKEUP) \
            -> Callable[[], tuple[float, int, float]]:
        """A PerfBuffer per measurement: a perf event array feeds one PerfBuffer at a time."""
        def run() -> tuple[float, int, float]:
            with cbpf.PerfBuffer(self.obj.maps["perf"], self.count.add, page_cnt=PERF_PAGES,
                                 wakeup_events=wakeup_events) as pb:
                return measure(pb)
        return run

    def flat_out(self, rounds: int) -> None:
        rb, rb_numpy = self.rb, self.rb_numpy
        table: dict[str, tuple[str, Callable[[], tuple[float, int, float]]]] = {
            "C consumer (cbpf's loop)": ("ring", lambda: self.c_loop(rb._c_consume)),
            "C consumer (libbpf's)": ("ring", lambda: self.c_loop(rb._c_consume_libbpf)),
            "poll(), callback(bytes)": ("ring", lambda: self.callbacks(rb)),
            "poll(), callback(named tuple)": ("ring", lambda: self.callbacks(self.rb_decoded)),
            "for event in rb": ("ring", self.iterate),
            "poll_batch()": ("ring", lambda: self.windowed(lambda: len(rb.poll_batch(0.1)[1]) - 1)),
            "poll_array() (numpy)": ("ring", lambda: self.windowed(lambda: len(rb_numpy.poll_array(0.1)))),
            "perf: C consumer": ("perf", self.perf(lambda pb: self.c_loop(pb._c_consume))),
            "perf: poll(), callback(bytes)": ("perf", self.perf(self.callbacks)),
            "perf: poll_batch()": ("perf", self.perf(
                lambda pb: self.windowed(lambda: len(pb.poll_batch(0.1)[1]) - 1))),
            "perf: C consumer, wakeup_events=1": ("perf", self.perf(lambda pb: self.c_loop(pb._c_consume), 1)),
        }
        rows = {name: {"rate": [], "ratio": [], "cpu": [], "lost": []} for name in [*table, BCC]}
        g = self.g
        for _ in range(rounds):
            base: dict[str, float] = {}
            for name, (buffer, measure) in table.items():
                g["outputs"] = 1 if buffer == "ring" else 2
                if buffer == "ring":
                    drain(rb)
                g["target_tgid"] = self.producer.pid
                produced0, dropped0 = g["produced"], g["dropped"]
                secs, n, cpu = measure()
                produced, dropped = g["produced"] - produced0, g["dropped"] - dropped0
                g["target_tgid"] = 0
                base.setdefault(buffer, n / secs)
                self._row(rows[name], n / secs, base[buffer], cpu / secs, dropped / max(produced, 1))
            if self.bcc.proc is not None:
                got = self.bcc.ask(f"flat {self.window}")
                self._row(rows[BCC], got["events"] / got["secs"], base["ring"], got["cpu"] / got["secs"],
                          got["dropped"] / max(got["produced"], 1))
        print(f"1. flat out: {BURST} events of 32 bytes per getpid() call; {rounds} rounds of {self.window:g} s; "
              "medians")
        print(f"  {'variant':<36} {'events/s':>11} {'ratio to C':>11} {'cpu':>5} {'lost':>6}")
        for name, row in rows.items():
            if not row["rate"]:
                continue
            ratio = f"{statistics.median(row['ratio']):10.3f}x" if row["ratio"] else f"{'n/a':>11}"
            print(f"  {name:<36} {statistics.median(row['rate']):11,.0f} {ratio} "
                  f"{statistics.median(row['cpu']):5.0%} {statistics.median(row['lost']):6.1%}")

    @staticmethod
    def _row(row: dict[str, list[float]], rate: float, base: float, cpu: float, lost: float) -> None:
        row["rate"].append(rate)
        if base > 0:  # a round where the producer never ran (a loaded machine) has no ratio
            row["ratio"].append(rate / base)
        row["cpu"].append(cpu)
        row["lost"].append(lost)

    # -- consumer alone: CPU seconds to empty a full ring ----------------------------------------------------------

    def fill(self) -> None:
        g = self.g
        drain(self.rb)
        dropped = g["dropped"]
        g["outputs"] = 1
        g["target_tgid"] = self.producer.pid
        while g["dropped"] == dropped:  # full
            time.sleep(0.002)
        g["target_tgid"] = 0
        time.sleep(0.02)  # the burst under way ends

    def drain_cost(self, rounds: int) -> None:
        rb = self.rb

        def until_empty(step: Callable[[], int]) -> int:
            n = 0
            while got := step():
                n += got
            return n

        def callbacks(stream: Any) -> int:
            self.count.n = 0
            until_empty(lambda: stream.poll(0))
            return self.count.n

        table: dict[str, Callable[[], int]] = {
            "C consumer (cbpf's loop)": lambda: rb._c_consume(0)[1],
            "C consumer (libbpf's)": lambda: rb._c_consume_libbpf(0)[1],
            "poll(), callback(bytes)": lambda: callbacks(rb),
            "poll(), callback(named tuple)": lambda: callbacks(self.rb_decoded),
            "read(0), one at a time": lambda: until_empty(lambda: rb.read(0) is not None),
            "poll_batch()": lambda: until_empty(lambda: len(rb.poll_batch(0)[1]) - 1),
            "poll_array() (numpy)": lambda: until_empty(lambda: len(self.rb_numpy.poll_array(0))),
        }
        ns: dict[str, list[float]] = {name: [] for name in [*table, BCC]}
        ratios: dict[str, list[float]] = {name: [] for name in ns}
        sizes = []
        for _ in range(rounds):
            base = 0.0
            for name, measure in table.items():
                self.fill()
                c0 = time.thread_time()
                n = measure()
                ns[name].append((time.thread_time() - c0) / n * 1e9)
                base = base or ns[name][-1]
                ratios[name].append(ns[name][-1] / base)
                sizes.append(n)
            if self.bcc.proc is not None:
                got = self.bcc.ask("drain")
                ns[BCC].append(got["cpu"] / got["events"] * 1e9)
                ratios[BCC].append(ns[BCC][-1] / base)
        print(f"2. consumer alone: a full ring ({statistics.median(sizes):,.0f} events) emptied, producer stopped; "
              f"{rounds} rounds; medians of the consumer's CPU time")
        print(f"  {'variant':<36} {'ns/event':>11} {'events/s':>11} {'ratio to C':>11}")
        for name, samples in ns.items():
            if not samples:
                continue
            med = statistics.median(samples)
            print(f"  {name:<36} {med:11.1f} {1e9 / med:11,.0f} {statistics.median(ratios[name]):10.2f}x")


def run_paced(obj: cbpf.Object, rate: float, seconds: float, cpus: tuple[int, int]) -> None:
    """rate events/s for `seconds`, consumed with a callback per event: every event must arrive."""
    g = obj.globals
    for buffer in ("ring", "perf"):
        count = Counter()
        stream: Any = (cbpf.RingBuffer(obj.maps["ring"], count.add) if buffer == "ring"
                       else cbpf.PerfBuffer(obj.maps["perf"], count.add, page_cnt=PERF_PAGES,
                                            wakeup_events=PERF_WAKEUP))
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
            perf_lost = f" (PerfBuffer.lost {stream.lost:,})" if buffer == "perf" else ""
        print(f"3. paced, {buffer}: {produced:,} events at {produced / seconds:,.0f}/s (asked {rate:,.0f}/s), a "
              f"callback per event: delivered {count.n:,}, lost {dropped:,}{perf_lost}")


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--window", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=500_000)
    parser.add_argument("--paced-seconds", type=float, default=3.0)
    args = parser.parse_args()

    allowed = sorted(os.sched_getaffinity(0))
    cpus = (allowed[0], allowed[1]) if len(allowed) > 1 else (allowed[0], allowed[0])
    os.sched_setaffinity(0, {cpus[0]})
    print(f"cbpf {cbpf.__version__}, libbpf {cbpf.libbpf_version()}; consumer on CPU {cpus[0]}, producer on CPU "
          f"{cpus[1]}; load average {os.getloadavg()[0]:.1f} over {os.cpu_count()} CPUs")
    with cbpf.Object(build_object(), name="bench_events") as obj:
        bench = Bench(obj, cpus, args.window)
        try:
            if bench.bcc.proc is None:
                print(f"bcc: skipped: {bench.bcc.why}")
            bench.flat_out(args.rounds)
            bench.drain_cost(args.rounds)
        finally:
            bench.close()
        run_paced(obj, args.rate, args.paced_seconds, cpus)


if __name__ == "__main__":
    main()

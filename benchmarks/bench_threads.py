"""fetch() from 1 and from 8 threads on one hash map: what threads buy, on this interpreter's build.

    python benchmarks/bench_threads.py [--lookups N] [--rounds R]

cbpf needs the GIL (it does not declare Py_MOD_GIL_NOT_USED; on a free-threaded CPython importing it turns the
GIL back on), and fetch() keeps the GIL across its lookup system call, which is shorter (about 1 us) than what
releasing and taking the GIL back would cost. So 8 threads share one interpreter lock: their lookups add up to
about what one thread does. This measures it, as fetches per second over all threads, against a C loop of
bpf_map_lookup_elem() on the same map (_cbench.lookup_loop, benchmarks/_cbench.c) in the same round, and prints
whether the GIL is on.
Each round times 1 thread, then 8, then 1 again (mirrored, so that a drift of the machine costs each the same);
the figures are medians over the rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import sysconfig
import threading
import time

import _measure
import cbpf

THREADS = 8


def fetch_rate(m: cbpf.Map, threads: int, lookups: int) -> float:
    """Fetches per second over `threads` threads, each doing `lookups` fetches of its own key."""
    start = threading.Barrier(threads + 1)

    def work(key: int) -> None:
        fetch = m.fetch
        start.wait()
        for _ in range(lookups):
            fetch(key)

    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    start.wait()
    t0 = time.perf_counter()
    for w in workers:
        w.join()
    return threads * lookups / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lookups", type=int, default=20_000, help="fetches per thread per measurement")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    free_threaded = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    print(f"bench_threads: CPython {sys.version.split()[0]}, {'free-threaded' if free_threaded else 'GIL'} build,"
          f" GIL {'on' if gil else 'off'} after importing cbpf; {len(__import__('os').sched_getaffinity(0))} CPUs")
    cbench = _measure.cbench()  # the C baselines (benchmarks/_cbench.c)
    with cbpf.Map.create("hash", 4, 8, 64) as m:
        for k in range(THREADS):
            m[k] = k
        one, many, c_loop = [], [], []
        for _ in range(args.rounds):
            c_loop.append(args.lookups / cbench.lookup_loop(m, 0, args.lookups))
            first = fetch_rate(m, 1, args.lookups)
            many.append(fetch_rate(m, THREADS, args.lookups))
            one.append((first + fetch_rate(m, 1, args.lookups)) / 2)
            c_loop[-1] = (c_loop[-1] + args.lookups / cbench.lookup_loop(m, 0, args.lookups)) / 2
    scaling = [b / a for a, b in zip(one, many)]
    med, lo, hi = _measure.median_ci(scaling)
    print(f"  C loop, 1 thread:     {statistics.median(c_loop) / 1e6:6.3f} M lookups/s")
    print(f"  fetch, 1 thread:      {statistics.median(one) / 1e6:6.3f} M fetches/s")
    print(f"  fetch, {THREADS} threads:     {statistics.median(many) / 1e6:6.3f} M fetches/s in all")
    print(f"  {THREADS} threads / 1 thread: {med:.2f}x (95% interval {lo:.2f}x-{hi:.2f}x, {args.rounds} rounds)")


if __name__ == "__main__":
    main()

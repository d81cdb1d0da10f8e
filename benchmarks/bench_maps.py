"""Whole-map reads and mmapped fetches, against C loops over the same maps in the same run.

    python benchmarks/bench_maps.py [--entries N] [--rounds R]

- dump of an N-entry hash map (default 1M): the C batch-lookup loop (_cbench.batch_loop: the kernel's cost and
  nothing else) against Map.to_numpy() and Map.to_dict(); targets <= 1.10x and <= 1.5x per entry.
- fetch on a BPF_F_MMAPABLE array: read from memory, no system call; target <= 60 ns a call (a Python loop
  calling a C function that does nothing is printed beside it: it is the floor).
- bcc's Python front end on the same operations where it is installed (Debian's python3-bpfcc).
"""

from __future__ import annotations

import argparse
import statistics
import time

import _measure
import numpy as np

import cbpf
from cbpf import Map, MapFlag

CBENCH = _measure.cbench()  # the C baselines (benchmarks/_cbench.c)


def per_entry(seconds: float, n: int) -> float:
    return seconds / n * 1e9


def bench_dump(n: int, rounds: int) -> float:
    with Map.create("hash", 4, 8, n) as m:
        keys = np.arange(n, dtype=np.uint32)
        m.update_batch(keys, keys.astype(np.uint64))
        rows: dict[str, list[float]] = {"C batch loop": [], "to_numpy()": [], "to_dict()": []}
        for _ in range(rounds):
            secs, got = CBENCH.batch_loop(m)
            assert got == n
            rows["C batch loop"].append(per_entry(secs, n))
            t = time.perf_counter()
            k, v = m.to_numpy()
            rows["to_numpy()"].append(per_entry(time.perf_counter() - t, n))
            assert len(k) == n
            t = time.perf_counter()
            d = m.to_dict()
            rows["to_dict()"].append(per_entry(time.perf_counter() - t, n))
            assert len(d) == n
            del k, v, d
        base = statistics.median(rows["C batch loop"])
        print(f"dump of a {n}-entry hash map (u32 -> u64), {rounds} rounds, medians per entry")
        for name, samples in rows.items():
            med = statistics.median(samples)
            print(f"  {name:<28} {med:7.1f} ns/entry   ratio {med / base:5.3f}x")
        return base


def bench_bcc(n: int, dump_base: float, lookup_base: float) -> None:
    """bcc runs under the system python that Debian's python3-bpfcc is built for: measured in a child process."""
    import json
    import subprocess
    from pathlib import Path

    peer = Path(__file__).with_name("_bcc_peer.py")
    try:
        r = subprocess.run(["/usr/bin/python3", str(peer), str(n), "20000"], capture_output=True, text=True,
                           timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        print(f"bcc: could not run ({e})")
        return
    if r.returncode != 0:
        why = "not installed (Debian python3-bpfcc)" if "No module named 'bcc'" in r.stderr else \
            r.stderr.strip().splitlines()[-1:]
        print(f"bcc: skipped: {why}")
        return
    got = json.loads(r.stdout.strip().splitlines()[-1])
    print("bcc's Python front end on the same operations (ratios against the C loops above)")
    print(f"  {'bcc dump to dict':<28} {got['dump_dict_ns']:7.1f} ns/entry   ratio "
          f"{got['dump_dict_ns'] / dump_base:5.3f}x")
    print(f"  {'bcc table[key]':<28} {got['lookup_ns']:7.1f} ns/call    ratio "
          f"{got['lookup_ns'] / lookup_base:5.3f}x")


def bench_mmap_fetch(calls: int, rounds: int) -> float:
    with Map.create("array", 4, 8, 1024, flags=MapFlag.MMAPABLE) as m:
        m[7] = 1234
        fetch = m.fetch
        noop = id
        fetched, floor = [], []
        for _ in range(rounds):
            t = time.perf_counter()
            for _ in range(calls):
                fetch(7)
            fetched.append(per_entry(time.perf_counter() - t, calls))
            t = time.perf_counter()
            for _ in range(calls):
                noop(7)
            floor.append(per_entry(time.perf_counter() - t, calls))
        syscall = statistics.median(CBENCH.lookup_loop(m, 7, calls) / calls * 1e9 for _ in range(3))
        med, low, high = _measure.median_ci(fetched)
        print(f"fetch on a mmapped array, {calls} calls x {rounds} rounds (medians, 95% confidence interval)")
        print(f"  {'Map.fetch(int), mmapped':<28} {med:7.1f} ns/call [{low:.1f}, {high:.1f}]  target <= 60 ns: "
              f"{_measure.verdict(low, high, 60.0)}")
        print(f"  {'Python loop floor (id(x))':<28} {statistics.median(floor):7.1f} ns/call")
        print(f"  {'C syscall lookup, same map':<28} {syscall:7.1f} ns/call")
        return syscall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"cbpf {cbpf.__version__}, libbpf {cbpf.libbpf_version()}")
    dump_base = bench_dump(args.entries, args.rounds)
    lookup_base = bench_mmap_fetch(200_000, 4 * args.rounds + 1)
    bench_bcc(args.entries, dump_base, lookup_base)


if __name__ == "__main__":
    main()

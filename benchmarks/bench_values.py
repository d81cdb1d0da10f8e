"""Typed reads (the value codec) against C loops over the same maps, in the same run.

    python benchmarks/bench_values.py [--lookups N] [--rounds R] [--entries E] [--dump-rounds D]

- m[k] on a hash map whose BTF says u32 -> u64 (the value decoded to an int by the codec) against the C loop of
  bpf_map_lookup_elem() (_cbench.lookup_loop); target <= 1.12x. Rounds time each variant twice in mirrored order
  (C, A, B, B, A, C), as bench_fetch does; the verdict is on the median of the rounds' ratios and its 95% interval.
- to_dict() and items() of an E-entry hash (default 1M) with `struct {u32 pid; u32 cpu;}` keys and 16-byte
  `struct {u64 calls; u32 last; u32 flags;}` values, decoded to named tuples, against the C batch-lookup loop
  (_cbench.batch_loop: the kernel's cost and nothing else); targets <= 1.5x and <= 2x per entry.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import _measure
import numpy as np

import cbpf

CBENCH = _measure.cbench()  # the C baselines (benchmarks/_cbench.c)

LOOKUP_TARGET, DICT_TARGET, ITEMS_TARGET = 1.12, 1.5, 2.0

PROGRAM = """
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct pid_cpu { __u32 pid; __u32 cpu; };
struct stat { __u64 calls; __u32 last; __u32 flags; };
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __type(key, __u32);
    __type(value, __u64);
} counts SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, ENTRIES);
    __type(key, struct pid_cpu);
    __type(value, struct stat);
} stats SEC(".maps");
char LICENSE[] SEC("license") = "GPL";
"""


def build_object(entries: int) -> bytes:
    return cbpf.compile(PROGRAM.replace("ENTRIES", str(entries)))


def subscript_loop(m, key, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        m[key]
    return time.perf_counter() - t0


def bench_lookup(counts, n: int, rounds: int) -> None:
    key = 4321
    assert counts[key] == key * 3 and counts.value_type.name == "u64"
    variants = {"m[k] (typed u64)": lambda: subscript_loop(counts, key, n),
                "fetch(k)": lambda: subscript_loop(_Fetch(counts), key, n)}
    base = "C loop (bpf_map_lookup_elem)"
    times: dict[str, list[float]] = {base: [], **{name: [] for name in variants}}
    for _ in range(rounds):
        first = {base: CBENCH.lookup_loop(counts, key, n)}
        first.update((name, run()) for name, run in variants.items())
        second = {name: run() for name, run in reversed(variants.items())}
        second[base] = CBENCH.lookup_loop(counts, key, n)
        for name in times:
            times[name].append((first[name] + second[name]) / (2 * n))
    print(f"hash map u32 -> u64 by BTF, {rounds} rounds of 2 x {n} lookups per variant; medians, and the median of "
          "the rounds' ratios with its 95% confidence interval")
    for name, samples in times.items():
        ratio, low, high = _measure.median_ci([x / b for x, b in zip(samples, times[base])])
        print(f"  {name:<30} {statistics.median(samples) * 1e9:7.0f} ns/lookup   ratio {ratio:5.3f}x "
              f"[{low:5.3f}, {high:5.3f}]")
    ratio, low, high = _measure.median_ci([x / b for x, b in zip(times["m[k] (typed u64)"], times[base])])
    print(f"target: m[k] <= {LOOKUP_TARGET:.2f}x the C loop: {_measure.verdict(low, high, LOOKUP_TARGET)}")


class _Fetch:
    """fetch() behind the same subscript loop, for comparison."""

    __slots__ = ("__getitem__",)

    def __init__(self, m) -> None:
        self.__getitem__ = m.fetch


def bench_dump(stats, n: int, rounds: int) -> None:
    keys = np.zeros(n, dtype=[("pid", "u4"), ("cpu", "u4")])
    keys["pid"] = np.arange(n) // 2
    keys["cpu"] = np.arange(n) % 2
    values = np.zeros(n, dtype=[("calls", "u8"), ("last", "u4"), ("flags", "u4")])
    values["calls"] = np.arange(n)
    stats.update_batch(keys, values)
    rows: dict[str, list[float]] = {"C batch loop": [], "to_dict()": [], "items()": []}
    for _ in range(rounds):
        secs, got = CBENCH.batch_loop(stats)
        assert got == n
        rows["C batch loop"].append(secs / n)
        t = time.perf_counter()
        d = stats.to_dict()
        rows["to_dict()"].append((time.perf_counter() - t) / n)
        assert len(d) == n
        del d
        t = time.perf_counter()
        count = 0
        for _k, _v in stats.items():
            count += 1
        rows["items()"].append((time.perf_counter() - t) / n)
        assert count == n
        secs, got = CBENCH.batch_loop(stats)  # mirrored: the C loop at both ends of the round
        rows["C batch loop"][-1] = (rows["C batch loop"][-1] + secs / n) / 2
    sample = next(iter(stats.items()))
    print(f"whole-map reads of a {n}-entry hash, struct pid_cpu -> struct stat (16 bytes), {rounds} rounds; "
          f"an entry reads as {sample}")
    base = rows["C batch loop"]
    for name, samples in rows.items():
        ratio, low, high = _measure.median_ci([x / b for x, b in zip(samples, base)])
        print(f"  {name:<30} {statistics.median(samples) * 1e9:7.0f} ns/entry    ratio {ratio:5.3f}x "
              f"[{low:5.3f}, {high:5.3f}]")
    for name, target in (("to_dict()", DICT_TARGET), ("items()", ITEMS_TARGET)):
        ratio, low, high = _measure.median_ci([x / b for x, b in zip(rows[name], base)])
        print(f"target: {name} <= {target:.1f}x the C batch loop: {_measure.verdict(low, high, target)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lookups", type=int, default=10_000, help="lookups per variant per half round")
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--dump-rounds", type=int, default=41,
                        help="rounds of whole-map reads (with 7, the 95%% interval was wider than the distance to "
                             "the target, even on a quiet machine)")
    args = parser.parse_args()
    cpus = os.sched_getaffinity(0)
    with cbpf.Object(build_object(args.entries), name="bench_values") as obj:
        counts = obj.maps["counts"]
        for i in range(10_000):
            counts[i] = i * 3
        if args.lookups:
            print(_measure.pin_to_one_cpu())
            bench_lookup(counts, args.lookups, args.rounds)
            os.sched_setaffinity(0, cpus)  # to_dict() reads the kernel on a second thread: let it run on another CPU
        bench_dump(obj.maps["stats"], args.entries, args.dump_rounds)


if __name__ == "__main__":
    main()

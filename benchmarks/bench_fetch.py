"""fetch() on a hash map against a C loop of bpf_map_lookup_elem() over the same map, in the same run.

    python benchmarks/bench_fetch.py [--lookups N] [--rounds R]

Target: fetch <= 1.10x the C loop. The C loop is Map._c_lookup_loop, compiled into the extension, so both run
against the same map fd in the same process, pinned to one CPU. One lookup is a system call of about 1 us on the
development VMs, whose speed drifts by a third from second to second with other jobs on the host. So each round
times every variant twice, in the order C, A, B, ..., B, A, C: a drift that is linear over the round costs each
variant the same. A round's ratio is a variant's time over the C loop's in that round; the verdict is on the
median of the rounds' ratios and its 95% confidence interval. The floor printed beside them is the same Python
loop calling id(key), a C function that does nothing but return a new int, as fetch does: what any call from a
Python loop costs before fetch does anything.
"""

from __future__ import annotations

import argparse
import statistics
import struct
import time

import _measure
import cbpf

TARGET = 1.10

PROGRAM = """
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __type(key, __u32);
    __type(value, __u64);
} counts SEC(".maps");
char LICENSE[] SEC("license") = "GPL";
"""


def build_object() -> bytes:
    return cbpf.compile(PROGRAM)


def python_loop(fn, target, key, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn(target, key)
    return time.perf_counter() - t0


def method_loop(fn, key, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn(key)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lookups", type=int, default=10_000, help="lookups per variant per half round")
    parser.add_argument("--rounds", type=int, default=61)
    args = parser.parse_args()
    pinned = _measure.pin_to_one_cpu()

    with cbpf.Object(build_object(), name="bench") as obj:
        counts = obj.maps["counts"]
        for i in range(10_000):
            counts.update(i, i * 3)
        key = 4321
        assert counts.fetch(key) == 4321 * 3
        key_bytes = struct.pack("=I", key)
        n = args.lookups
        variants = {
            "Map.fetch(int)": lambda: method_loop(counts.fetch, key, n),
            "cbpf.fetch(map, int)": lambda: python_loop(cbpf.fetch, counts, key, n),
            "Map.fetch(bytes)": lambda: method_loop(counts.fetch, key_bytes, n),
            "floor: id(int)": lambda: method_loop(id, key, n),
        }
        base = "C loop (bpf_map_lookup_elem)"
        times: dict[str, list[float]] = {base: [], **{name: [] for name in variants}}
        for _ in range(args.rounds):
            first = {base: counts._c_lookup_loop(key, n)}
            first.update((name, run()) for name, run in variants.items())
            second = {name: run() for name, run in reversed(variants.items())}
            second[base] = counts._c_lookup_loop(key, n)
            for name in times:
                times[name].append((first[name] + second[name]) / (2 * n))

        print(f"hash map, {args.rounds} rounds of 2 x {n} lookups per variant, {pinned}; medians, and the median "
              f"of the rounds' ratios with its 95% confidence interval")
        for name, samples in times.items():
            ratio, low, high = _measure.median_ci([x / b for x, b in zip(samples, times[base])])
            print(f"  {name:<30} {statistics.median(samples) * 1e9:7.0f} ns/lookup   ratio {ratio:5.3f}x "
                  f"[{low:5.3f}, {high:5.3f}]")
        ratio, low, high = _measure.median_ci([x / b for x, b in zip(times["Map.fetch(int)"], times[base])])
        print(f"target: Map.fetch(int) <= {TARGET:.2f}x the C loop: {_measure.verdict(low, high, TARGET)}")


if __name__ == "__main__":
    main()

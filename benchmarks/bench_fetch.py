"""fetch() on a hash map against a C loop of bpf_map_lookup_elem() over the same map, in the same run.

    python benchmarks/bench_fetch.py [--lookups N] [--rounds R]

Prints the median per-lookup time of each and their ratio (target: fetch <= 1.10x the C loop). The C loop is
Map._c_lookup_loop, compiled into the extension so that both run against the same map fd in the same process.
"""

from __future__ import annotations

import argparse
import statistics
import struct
import time

import cbpf

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
    import os
    import subprocess
    import sysconfig
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "bench.bpf.c")
        out = os.path.join(tmp, "bench.bpf.o")
        with open(src, "w") as f:
            f.write(PROGRAM)
        cmd = ["clang", "-O2", "-g", "-target", "bpf", "-I", cbpf.include_dir()]
        multiarch = sysconfig.get_config_var("MULTIARCH")
        if multiarch:
            cmd += ["-idirafter", f"/usr/include/{multiarch}"]
        subprocess.run([*cmd, "-c", src, "-o", out], check=True)
        with open(out, "rb") as f:
            return f.read()


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
    parser.add_argument("--lookups", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=31)
    args = parser.parse_args()

    with cbpf.Object(build_object(), name="bench") as obj:
        counts = obj.maps["counts"]
        for i in range(10_000):
            counts.update(i, i * 3)
        key = 4321
        assert counts.fetch(key) == 4321 * 3
        n = args.lookups
        rows: dict[str, list[float]] = {"C loop (bpf_map_lookup_elem)": [], "Map.fetch(int)": [],
                                        "cbpf.fetch(map, int)": [], "Map.fetch(bytes)": []}
        key_bytes = struct.pack("=I", key)
        for _ in range(args.rounds):
            # interleaved, so that drift in the machine's speed hits every variant alike
            rows["C loop (bpf_map_lookup_elem)"].append(counts._c_lookup_loop(key, n) / n)
            rows["Map.fetch(int)"].append(method_loop(counts.fetch, key, n) / n)
            rows["cbpf.fetch(map, int)"].append(python_loop(cbpf.fetch, counts, key, n) / n)
            rows["Map.fetch(bytes)"].append(method_loop(counts.fetch, key_bytes, n) / n)
        base_samples = rows["C loop (bpf_map_lookup_elem)"]
        print(f"hash map, {n} lookups x {args.rounds} rounds; medians, and the median of each round's ratio")
        for name, samples in rows.items():
            med = statistics.median(samples)
            ratio = statistics.median(x / b for x, b in zip(samples, base_samples))
            print(f"  {name:<30} {med * 1e9:8.0f} ns/lookup   ratio {ratio:5.3f}x")


if __name__ == "__main__":
    main()

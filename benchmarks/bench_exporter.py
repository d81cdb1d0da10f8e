"""cbpf export: the time and CPU of one scrape of a 10,000-series metric, against a plain prometheus_client
loop over Map.items() in the same run.

    python benchmarks/bench_exporter.py [--series N] [--rounds R]

The metric: a 10k-entry hash whose struct key {__u32 addr; __u16 port; __u8 proto} decodes to three labels
(ipv4, port, an enum), value a __u64 counter. One scrape is what /metrics serves (Exporter.scrape():
the maps read and the text written). Target: <= 50 ms a scrape on these machines.

The peer is what one writes by hand with prometheus_client: a collector iterating Map.items() (one pair per
entry), unpacking each key, decoding the labels and adding one sample at a time, written by generate_latest().
Both give the same samples (checked). The exporter's CPU time is split into its phases: the batch read
(Map.to_numpy), the label columns and values (decoding), and the text.
"""

from __future__ import annotations

import argparse
import functools
import os
import socket
import struct
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import _measure
import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.parser import text_string_to_metric_families

import cbpf
from cbpf.exporter import Exporter, parse
from cbpf.exporter.collector import read_map

PROGRAM = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct flow {
    __u32 addr;
    __u16 port;
    __u8 proto;
    __u8 pad;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __type(key, struct flow);
    __type(value, __u64);
} flow_bytes SEC(".maps");

SEC("socket")
int touch(struct __sk_buff *skb)
{
    struct flow f = {};
    bpf_map_lookup_elem(&flow_bytes, &f);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""

CONFIG = """\
objects:
  - name: net
    path: {path}
    metrics:
      - name: flow_bytes_total
        help: Bytes per flow
        type: counter
        map: flow_bytes
        max_series: {max_series}
        labels:
          - {{name: addr, field: addr, decode: ipv4}}
          - {{name: port, field: port, decode: port}}
          - {{name: proto, field: proto, decode: {{enum: {{6: tcp, 17: udp}}}}}}
"""

PROTO = {6: "tcp", 17: "udp"}


def build_object(tmp: str) -> Path:
    src, out = Path(tmp) / "flows.bpf.c", Path(tmp) / "flows.bpf.o"
    src.write_text(PROGRAM)
    cmd = ["clang", "-O2", "-g", "-target", "bpf", "-I", cbpf.include_dir()]
    multiarch = sysconfig.get_config_var("MULTIARCH")
    if multiarch:
        cmd += ["-idirafter", f"/usr/include/{multiarch}"]
    subprocess.run([*cmd, "-c", str(src), "-o", str(out)], check=True)
    return out


class ItemsLoop:
    """The hand-written peer: Map.items(), one add_metric per entry. Its keys and values are unpacked with struct
    where items() gives bytes, or taken from the named tuples and ints of typed items() (the value model)."""

    def __init__(self, m: cbpf.Map) -> None:
        self.map = m

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        family = CounterMetricFamily("cbpf_net_flow_bytes_total", "Bytes per flow",
                                     labels=["addr", "port", "proto"])
        unpack_key = struct.Struct("=4sHBx").unpack
        unpack_value = struct.Struct("=Q").unpack
        ntoa, order = socket.inet_ntoa, sys.byteorder
        for key, value in self.map.items():
            if isinstance(key, bytes):
                addr, port, proto = unpack_key(key)
                value = unpack_value(value)[0]
            else:
                addr, port, proto = key.addr.to_bytes(4, order), key.port, key.proto
            family.add_metric([ntoa(addr), str(port), PROTO.get(proto, str(proto))], value)
        yield family


def parsed(text: bytes) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    """The samples of the benchmarked metric in a scrape, read back by prometheus_client's parser."""
    return {(s.name, tuple(sorted(s.labels.items())), s.value)
            for family in text_string_to_metric_families(text.decode())
            if family.name == "cbpf_net_flow_bytes"
            for s in family.samples}


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds of this process, result)."""
    c0, t0 = time.process_time(), time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, time.process_time() - c0, result


def report(name: str, samples: list[float], unit: float = 1e3, suffix: str = "ms") -> float:
    med, low, high = _measure.median_ci(samples)
    print(f"  {name:<44} {med * unit:8.2f} {suffix}  (95% CI {low * unit:.2f}-{high * unit:.2f})")
    return med


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=31)
    args = parser.parse_args()
    print(f"bench_exporter: {_measure.pin_to_one_cpu()}, {args.series} series, {args.rounds} rounds")

    with tempfile.TemporaryDirectory() as tmp:
        obj_path = build_object(tmp)
        conf = parse(CONFIG.format(path=obj_path, max_series=max(args.series, 10_000)), "bench.yaml")
        with Exporter(conf) as ex:
            m = ex.objects[0].maps["flow_bytes"]
            n = args.series
            i = np.arange(n, dtype=np.uint32)
            keys = np.zeros(n, dtype=[("addr", "<u4"), ("port", "=u2"), ("proto", "u1"), ("pad", "u1")])
            # 10.1.x.y, in network order
            keys["addr"] = (10 | ((i >> 8) & 0xFF) << 16 | (i & 0xFF) << 24) | 0x100
            keys["port"] = 1024 + i
            keys["proto"] = np.where(i % 2 == 0, 6, 17)
            m.update_batch(keys, (i.astype(np.uint64) + 1) * 1000)

            peer = CollectorRegistry(auto_describe=False)
            peer.register(ItemsLoop(m))
            ours, theirs = parsed(ex.scrape()), parsed(generate_latest(peer))
            assert len(ours) == n and ours == theirs, "the two scrapes disagree"

            reader = ex.collector.objects[0].readers[0]
            rows: dict[str, list[float]] = {k: [] for k in (
                "scrape, cbpf export", "scrape, Map.items() loop",
                "cpu, cbpf export", "cpu, Map.items() loop",
                "read: Map.to_numpy()", "labels and samples", "text exposition")}
            for r in range(args.rounds):
                runs = [("cbpf export", ex.scrape), ("Map.items() loop", lambda: generate_latest(peer))]
                for name, fn in (runs if r % 2 else runs[::-1]):  # alternate the order: no side always first
                    wall, cpu, _ = timed(fn)
                    rows[f"scrape, {name}"].append(wall)
                    rows[f"cpu, {name}"].append(cpu)
                # the phases, in CPU time (the machine's other load moves wall times more than these)
                _, cpu_read, raw = timed(lambda: read_map(m))
                _, cpu_family, _ = timed(functools.partial(reader.family, *raw))
                _, cpu_collect, families = timed(lambda: list(ex.registry.collect()))
                rows["read: Map.to_numpy()"].append(cpu_read)
                rows["labels and samples"].append(cpu_family)
                rows["text exposition"].append(max(rows["cpu, cbpf export"][-1] - cpu_collect, 0.0))
                del raw, families

    print(f"one scrape of a {n}-series counter (struct key -> 3 labels), medians; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    ours = report("scrape, cbpf export (wall)", rows["scrape, cbpf export"])
    peer_wall = report("scrape, Map.items() loop (wall)", rows["scrape, Map.items() loop"])
    ours_cpu = report("CPU per scrape, cbpf export", rows["cpu, cbpf export"])
    peer_cpu = report("CPU per scrape, Map.items() loop", rows["cpu, Map.items() loop"])
    print(f"  {'fastest scrape, cbpf export (wall)':<44} {min(rows['scrape, cbpf export']) * 1e3:8.2f} ms")
    print("where cbpf export's CPU time goes:")
    for phase in ("read: Map.to_numpy()", "labels and samples", "text exposition"):
        report(f"  {phase}", rows[phase])
    _, low, high = _measure.median_ci(rows["scrape, cbpf export"])
    print(f"ratio cbpf export / Map.items() loop: wall {ours / peer_wall:.2f}x, "
          f"CPU {ours_cpu / peer_cpu:.2f}x")
    print(f"target <= 50 ms a scrape: {_measure.verdict(low * 1e3, high * 1e3, 50.0)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main())

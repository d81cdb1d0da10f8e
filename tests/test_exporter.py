"""cbpf export against the live kernel, in process: what one scrape of /metrics holds for maps whose contents
the test caused or wrote (exact counts), the max_series guard, the error counter, and mistakes found when the
objects open."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import urllib.request
from pathlib import Path

import pytest
from conftest import skip_or_fail

pytest.importorskip("yaml", reason="the exporter's tests need PyYAML (pip install 'cbpf[exporter]')")
pytest.importorskip("prometheus_client", reason="exporter tests need prometheus_client (cbpf[exporter])")

from prometheus_client.parser import text_string_to_metric_families

import cbpf
from cbpf.exporter import ConfigError, Exporter, make_server, parse

pytestmark = pytest.mark.kernel


def exporter_of(text: str, objects: dict[str, Path]) -> Exporter:
    text = textwrap.dedent(text)
    for name, path in objects.items():
        text = text.replace(f"@{name}@", str(path))
    return Exporter(parse(text, "test.yaml"))


def samples(exporter: Exporter) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of one scrape by (name, sorted labels), read back with prometheus_client's text parser."""
    out = {}
    for family in text_string_to_metric_families(exporter.scrape().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def getpid_child(n: int, tmp_path: Path) -> int:
    """Runs a C program that calls getpid() exactly n times and exits; its pid."""
    src = tmp_path / "getpid_n.c"
    exe = tmp_path / "getpid_n"
    if not exe.exists():
        src.write_text("#include <stdlib.h>\n#include <unistd.h>\n#include <sys/syscall.h>\n"
                       "int main(int c, char **v) { long n = atol(v[1]); for (long i = 0; i < n; i++) "
                       "syscall(SYS_getpid); return 0; }\n")
        subprocess.run(["cc", "-O1", "-o", str(exe), str(src)], check=True)
    # without LD_PRELOAD: a preloaded runtime (the sanitizer runs preload libasan) may call getpid() itself
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    child = subprocess.Popen([str(exe), str(n)], env=env)
    assert child.wait(timeout=30) == 0
    return child.pid


TOP = """\
objects:
  - name: top
    path: @exporter_top@
    metrics:
      - name: getpid_total
        help: getpid calls per process
        type: counter
        map: syscalls
        value_field: count
        labels:
          - {name: pid, field: null, decode: int}
          - {name: comm, field: comm, from: value, decode: string}
      - name: getpid_calls
        type: gauge
        map: syscalls
        value_field: count
        labels:
          - {name: pid}
"""


def test_a_counter_per_process_holds_the_exact_calls(bpf_objects, tmp_path):
    with exporter_of(TOP, bpf_objects) as ex:
        pids = {getpid_child(n, tmp_path): n for n in (3, 1000, 25)}
        got = samples(ex)
        for pid, n in pids.items():
            assert got[("cbpf_top_getpid_total", (("comm", "getpid_n"), ("pid", str(pid))))] == n
            assert got[("cbpf_top_getpid_calls", (("pid", str(pid)),))] == n
        # the kernel's running totals: a second scrape does not reset them
        assert samples(ex)[("cbpf_top_getpid_total", (("comm", "getpid_n"), ("pid", str(max(pids)))))] \
            == pids[max(pids)]


FLOWS = """\
objects:
  - name: net
    path: @exporter_flows@
    metrics:
      - name: flow_bytes_total
        type: counter
        map: flow_bytes
        max_series: 10
        labels:
          - {name: addr, field: addr, decode: ipv4}
          - {name: port, field: port, decode: port}
          - {name: proto, field: proto, decode: {enum: {6: tcp, 17: udp}}}
      - name: slots
        type: histogram
        map: percpu_slots
        labels: [{name: id}]
        buckets: {kind: linear, step: 100, unit: nanoseconds, slots: 6}
"""


FLOW_METRIC = (("metric", "cbpf_net_flow_bytes_total"), ("object", "net"))


def flow_key(addr: str, port: int, proto: int) -> bytes:
    return socket.inet_aton(addr) + struct.pack("=HBB", port, proto, 0)


def test_struct_keys_decode_to_labels_and_max_series_keeps_the_largest(bpf_objects):
    with exporter_of(FLOWS, bpf_objects) as ex:
        m = ex.objects[0].maps["flow_bytes"]
        for i in range(30):
            m[flow_key(f"10.0.{i}.1", 1000 + i, 6 if i % 2 else 17)] = (i + 1) * 100
        got = samples(ex)
        flows = {k[1]: v for k, v in got.items() if k[0] == "cbpf_net_flow_bytes_total"}
        expected = {(("addr", f"10.0.{i}.1"), ("port", str(1000 + i)), ("proto", "tcp" if i % 2 else "udp")):
                    (i + 1) * 100 for i in range(20, 30)}
        assert flows == expected
        key = ("cbpf_exporter_dropped_series_total", FLOW_METRIC)
        assert got[key] == 20
        assert samples(ex)[key] == 40  # 20 more at the second scrape
        assert got[("cbpf_exporter_errors_total", FLOW_METRIC)] == 0
        assert ("cbpf_exporter_scrape_duration_seconds", (("object", "net"),)) in got


def test_per_cpu_slot_arrays_are_summed_into_cumulative_buckets(bpf_objects):
    with exporter_of(FLOWS, bpf_objects) as ex:
        m = ex.objects[0].maps["percpu_slots"]
        ncpus = m.ncpus
        # key 7: slot s on CPU c holds s + 10 * c; 8 slots in the value, the histogram keeps 6 (+Inf takes the
        # rest)
        per_cpu = [[s + 10 * c for s in range(8)] for c in range(ncpus)]
        m.update(7, b"".join(struct.pack("=8Q", *row) for row in per_cpu))
        slot_totals = [sum(per_cpu[c][s] for c in range(ncpus)) for s in range(8)]
        got = samples(ex)
        lab = (("id", "7"),)
        cumulative = 0
        for s, le in enumerate(["1e-07", "2e-07", "3e-07", "4e-07", "5e-07", "6e-07"]):
            cumulative += slot_totals[s]
            assert got[("cbpf_net_slots_bucket", (*lab, ("le", le)))] == cumulative
        assert got[("cbpf_net_slots_bucket", (*lab, ("le", "+Inf")))] == sum(slot_totals)
        assert got[("cbpf_net_slots_count", lab)] == sum(slot_totals)
        # _sum: each slot's count at its midpoint (slot s holds [100 s, 100 (s + 1)) ns)
        assert got[("cbpf_net_slots_sum", lab)] == pytest.approx(
            sum(slot_totals[s] * (s + 0.5) * 100e-9 for s in range(6)))


def test_a_failing_map_read_counts_an_error_and_spares_the_other_metrics(bpf_objects):
    with exporter_of(FLOWS, bpf_objects) as ex:
        reader = ex.collector.objects[0].readers[0]
        broken = cbpf.Map.create("hash", 8, 8, 4)
        broken.close()
        reader.map = broken  # every read now raises ValueError (closed)
        got = samples(ex)
        assert got[("cbpf_exporter_errors_total", FLOW_METRIC)] == 1
        assert not any(k[0] == "cbpf_net_flow_bytes_total" for k in got)
        assert ("cbpf_net_slots_count", (("id", "7"),)) not in got  # the histogram is served (empty map)
        assert any(k[0] == "cbpf_exporter_scrape_duration_seconds" for k in got)
        assert samples(ex)[("cbpf_exporter_errors_total", FLOW_METRIC)] == 2


BIO = """\
objects:
  - name: bio
    path: @exporter_biolatency@
    globals: {target_dev: %d}
    metrics:
      - name: latency_seconds
        type: histogram
        map: hist
        buckets: {kind: log2, unit: microseconds, slots: 27}
      - name: disk_latency_seconds
        type: histogram
        map: disk_hist
        labels: [{name: disk, field: dev, decode: disk}]
        buckets: {kind: log2, unit: microseconds, slot_field: slot, slots: 27}
"""


def block_writes(dev: str, count: int) -> None:
    """count writes of 4 KiB with O_DIRECT (each one request to the device), then fsync."""
    import mmap

    buf = mmap.mmap(-1, 4096)  # page-aligned, as O_DIRECT wants
    buf.write(b"w" * 4096)
    fd = os.open(dev, os.O_WRONLY | os.O_DIRECT)
    try:
        for i in range(count):
            assert os.pwrite(fd, buf, i * 4096) == 4096
        os.fsync(fd)
    finally:
        os.close(fd)


def test_block_writes_fill_a_log2_histogram_with_the_exact_count(bpf_objects, loop_device):
    dev, kdev = loop_device
    with exporter_of(BIO % kdev, bpf_objects) as ex:
        block_writes(dev, 37)
        got = samples(ex)
        name = os.path.basename(dev)
        assert got[("cbpf_bio_latency_seconds_count", ())] == 37
        assert got[("cbpf_bio_disk_latency_seconds_count", (("disk", name),))] == 37
        les = sorted((float(k[1][0][1]), v) for k, v in got.items()
                     if k[0] == "cbpf_bio_latency_seconds_bucket" and k[1][0][1] != "+Inf")
        assert [le for le, _ in les] == pytest.approx([2 ** (k + 1) * 1e-6 for k in range(27)])
        counts = [v for _, v in les]
        assert counts == sorted(counts) and counts[-1] == 37  # cumulative


def test_what_the_object_lacks_is_a_config_error_at_its_line(bpf_objects):
    cases = [
        (BIO.replace("target_dev: %d", "nope: 1"),
         "test.yaml:4: objects[0].globals.nope: the object has no global variable 'nope'; its globals: "
         "target_dev"),
        (TOP.replace("map: syscalls\n        value_field: count\n        labels:\n          - {name: pid, f",
                     "map: syscals\n        value_field: count\n        labels:\n          - {name: pid, f"),
         "test.yaml:8: objects[0].metrics[0].map: object 'top' has no map 'syscals'; its maps: syscalls"),
        (TOP.replace("value_field: count\n        labels:\n          - {name: pid, field",
                     "value_field: cnt\n        labels:\n          - {name: pid, field"),
         "test.yaml:9: objects[0].metrics[0].value_field: the values of map 'syscalls' have no field 'cnt'; "
         "fields: count, comm"),
        (TOP.replace("        value_field: count\n        labels:\n          - {name: pid}\n", ""),
         "test.yaml:13: objects[0].metrics[1]: the values of map 'syscalls' are structs: name the number to "
         "export with `value_field:` (one of count, comm)"),
        (FLOWS.replace("field: port, decode: port", "field: prt, decode: port"),
         "test.yaml:11: objects[0].metrics[0].labels[1].field: the keys of map 'flow_bytes' have no field "
         "'prt'; fields: addr, port, proto, pad"),
        (FLOWS.replace("- {name: addr, field: addr, decode: ipv4}", "- {name: addr, decode: ipv4}"),
         "test.yaml:10: objects[0].metrics[0].labels[0].field: the keys of map 'flow_bytes' are structs: "
         "name a field (addr, port, proto, pad)"),
    ]
    before = len(os.listdir("/proc/self/fd"))
    for text, expected in cases:
        with pytest.raises(ConfigError) as e:
            exporter_of(text % 0 if "%d" in text else text, bpf_objects)
        assert str(e.value).startswith(expected)
    assert len(os.listdir("/proc/self/fd")) == before  # the objects opened before the mistake were closed


def test_metrics_and_healthz_over_http_with_concurrent_scrapers(bpf_objects, tmp_path):
    with exporter_of(TOP, bpf_objects) as ex:
        server = make_server(ex.wsgi_app(), "127.0.0.1", 0)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        try:
            port = server.server_address[1]
            pid = getpid_child(42, tmp_path)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
                assert (r.status, r.read()) == (200, b"ok\n")
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/nothing", timeout=10)
            assert e.value.code == 404
            line = f'cbpf_top_getpid_total{{comm="getpid_n",pid="{pid}"}} 42.0'.encode()
            results: list[bool] = []

            def scraper() -> None:
                for _ in range(15):
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
                        results.append(r.status == 200 and line in r.read().splitlines())

            threads = [threading.Thread(target=scraper) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert results == [True] * 120
        finally:
            server.shutdown()
            server.server_close()


def test_the_command_serves_until_sigterm(bpf_objects, tmp_path):
    conf = tmp_path / "top.yaml"
    conf.write_text(TOP.replace("@exporter_top@", str(bpf_objects["exporter_top"])))
    proc = subprocess.Popen([sys.executable, "-m", "cbpf.exporter", str(conf), "--listen", "127.0.0.1:0"],
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line.startswith("cbpf export: serving http://127.0.0.1:")
        assert line.endswith(f"(pid {proc.pid})\n")
        url = line.split()[3]
        pid = getpid_child(5, tmp_path)
        with urllib.request.urlopen(url, timeout=10) as r:
            assert f'cbpf_top_getpid_total{{comm="getpid_n",pid="{pid}"}} 5.0' in r.read().decode()
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
        assert proc.stderr is not None and "Traceback" not in proc.stderr.read()


def test_check_and_once(bpf_objects, tmp_path):
    conf = tmp_path / "top.yaml"
    conf.write_text(TOP.replace("@exporter_top@", str(bpf_objects["exporter_top"])))
    r = subprocess.run([sys.executable, "-m", "cbpf.exporter", str(conf), "--check"], capture_output=True,
                       text=True, timeout=60)
    assert (r.returncode, r.stdout) == (0, "")
    assert r.stderr == f"cbpf export: {conf}: 1 object(s), 2 metric(s): ok\n"
    r = subprocess.run([sys.executable, "-m", "cbpf.exporter", str(conf), "--once"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0
    assert "# TYPE cbpf_top_getpid_total counter\n" in r.stdout
    assert 'cbpf_exporter_errors_total{metric="cbpf_top_getpid_total",object="top"} 0.0\n' in r.stdout


COUNTER_C = """\
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

const volatile __u32 only_tgid = 0;

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 64);
    __type(key, __u32);
    __type(value, __u64);
} calls SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getpid")
int count(void *ctx)
{
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
    __u64 one = 1, *n;
    if (only_tgid && tgid != only_tgid)
        return 0;
    n = bpf_map_lookup_elem(&calls, &tgid);
    if (n)
        __sync_fetch_and_add(n, 1);
    else
        bpf_map_update_elem(&calls, &tgid, &one, BPF_NOEXIST);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""


def test_source_objects_compile_through_cbpf_compile_where_it_exists(tmp_path):
    (tmp_path / "calls.bpf.c").write_text(COUNTER_C)
    text = f"""\
objects:
  - name: src
    source: calls.bpf.c
    globals: {{only_tgid: {os.getpid()}}}
    metrics:
      - {{name: getpid_total, type: counter, map: calls, labels: [{{name: pid}}]}}
"""
    config = parse(text, str(tmp_path / "src.yaml"), tmp_path)
    if getattr(cbpf, "compile", None) is None:
        with pytest.raises(ConfigError) as e:
            Exporter(config)
        assert str(e.value) == (f"{tmp_path / 'src.yaml'}:3: objects[0].source: this cbpf cannot compile C "
                                "(no cbpf.compile): compile calls.bpf.c with clang and give the object as "
                                "`path:`")
        return
    with Exporter(config) as ex:
        for _ in range(17):
            os.getpid()
        assert samples(ex)[("cbpf_src_getpid_total", (("pid", str(os.getpid())),))] == 17
    (tmp_path / "calls.bpf.c").write_text(COUNTER_C.replace("return 0;\n}\n\nchar", "return 0\n}\n\nchar"))
    (tmp_path / "src.yaml").write_text(text)
    r = subprocess.run([sys.executable, "-m", "cbpf.exporter", str(tmp_path / "src.yaml")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert r.stderr.startswith(f"cbpf export: {tmp_path / 'src.yaml'}:3: objects[0].source: calls.bpf.c did "
                               "not compile: ")
    assert "Traceback" not in r.stderr


SYSCALLS = """\
objects:
  - name: sys
    path: @exporter_syscalls@
    globals: {only_tgid: %d}
    metrics:
      - name: calls_total
        type: counter
        map: calls
        labels:
          - {name: cgroup, field: cgroup, decode: cgroup}
          - {name: syscall, field: nr, decode: syscall}
"""


def test_system_calls_decode_to_their_names_and_the_cgroup_to_its_path(bpf_objects):
    from cbpf.exporter.decoders import cgroup2_root, unistd_header

    if unistd_header() is None:
        skip_or_fail("no <asm/unistd.h> to name system calls (apt-get install linux-libc-dev)")
    if cgroup2_root() is None:
        skip_or_fail("no cgroup v2 hierarchy mounted")
    # this process's cgroup v2 path, as /proc says it
    path = next(line.split("::", 1)[1] for line in Path("/proc/self/cgroup").read_text().splitlines()
                if line.startswith("0::"))
    with exporter_of(SYSCALLS % os.getpid(), bpf_objects) as ex:
        for _ in range(321):
            os.getpid()
        got = samples(ex)
    assert got[("cbpf_sys_calls_total", (("cgroup", path), ("syscall", "getpid")))] == 321
    assert not any(k[1][1][1].isdigit() for k in got if k[0] == "cbpf_sys_calls_total")  # every call named


def test_histogram_rows_with_the_same_labels_add_up_and_max_series_keeps_the_largest(bpf_objects):
    ids = "{name: id, decode: {enum: {1: a, 2: a, 3: b, 4: c}}}"
    text = FLOWS.replace("labels: [{name: id}]", f"max_series: 2\n        labels: [{ids}]")
    with exporter_of(text, bpf_objects) as ex:
        m = ex.objects[0].maps["percpu_slots"]
        zero_cpus = [bytes(64)] * (m.ncpus - 1)
        for key, slot_counts in {1: [1, 0, 0, 0, 0, 0, 0, 9], 2: [0, 2, 0, 0, 0, 0, 0, 0],
                                 3: [0, 0, 3, 3, 0, 0, 0, 0], 4: [1, 0, 0, 0, 0, 0, 0, 0]}.items():
            m.update(key, b"".join([struct.pack("=8Q", *slot_counts), *zero_cpus]))
        got = samples(ex)
        # a = keys 1 and 2 (12 in all, 9 of them past the 6 slots kept), b = key 3 (6); c (1) is dropped
        assert got[("cbpf_net_slots_count", (("id", "a"),))] == 12
        assert got[("cbpf_net_slots_bucket", (("id", "a"), ("le", "6e-07")))] == 3
        assert got[("cbpf_net_slots_bucket", (("id", "b"), ("le", "3e-07")))] == 3
        assert got[("cbpf_net_slots_bucket", (("id", "b"), ("le", "4e-07")))] == 6
        assert not any(k[0].startswith("cbpf_net_slots") and ("id", "c") in k[1] for k in got)
        dropped = ("cbpf_exporter_dropped_series_total", (("metric", "cbpf_net_slots"), ("object", "net")))
        assert got[dropped] == 1


def test_the_cbpf_command_forwards_export_to_the_exporter(bpf_objects, tmp_path):
    conf = tmp_path / "top.yaml"
    conf.write_text(TOP.replace("@exporter_top@", str(bpf_objects["exporter_top"])))
    r = subprocess.run([sys.executable, "-m", "cbpf", "export", str(conf), "--check"], capture_output=True,
                       text=True, timeout=60)
    assert (r.returncode, r.stderr) == (0, f"cbpf export: {conf}: 1 object(s), 2 metric(s): ok\n")
    conf.write_text(conf.read_text().replace("gauge", "gauges"))
    r = subprocess.run([sys.executable, "-m", "cbpf", "export", str(conf)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2
    assert r.stderr == (f"cbpf export: {conf}:14: objects[0].metrics[1].type: 'gauges' is not one of "
                        "counter, gauge, histogram\n")

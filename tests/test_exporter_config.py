"""cbpf export without a kernel: the configuration's schema check and its messages, bucket bounds, label
decoders, and the command's exit status on a bad configuration."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import cbpf

pytest.importorskip("yaml", reason="the exporter's tests need PyYAML (pip install 'cbpf[exporter]')")
pytest.importorskip("prometheus_client", reason="exporter tests need prometheus_client (cbpf[exporter])")

from cbpf.exporter import config as cfg
from cbpf.exporter import decoders
from cbpf.exporter.collector import bucket_bounds

GOOD = """\
listen: 127.0.0.1:9500
objects:
  - name: syscalls
    path: syscount.bpf.o
    globals: {min_pid: 0}
    metrics:
      - name: syscalls_total
        help: System calls per process
        type: counter
        map: calls
        labels:
          - {name: pid, field: null, decode: int}
          - {name: op, field: kind, decode: {enum: {0: read, 1: write}}}
      - name: latency_seconds
        type: histogram
        map: lat_slots
        raw_name: true
        max_series: 5
        buckets: {kind: linear, step: 10, unit: milliseconds}
"""


def parse(text: str) -> cfg.Config:
    return cfg.parse(textwrap.dedent(text), "conf.yaml", Path("/base"))


def error_of(text: str) -> str:
    with pytest.raises(cfg.ConfigError) as e:
        parse(text)
    return str(e.value)


def test_a_good_configuration_is_read_whole():
    c = parse(GOOD)
    assert c.listen == "127.0.0.1:9500"
    (o,) = c.objects
    assert (o.name, o.path, o.globals) == ("syscalls", Path("/base/syscount.bpf.o"), {"min_pid": 0})
    counter, hist = o.metrics
    assert (counter.name, counter.type, counter.map, counter.max_series) == \
        ("cbpf_syscalls_syscalls_total", "counter", "calls", cfg.DEFAULT_MAX_SERIES)
    assert [(lab.name, lab.field, lab.decode, lab.enum) for lab in counter.labels] == \
        [("pid", None, "int", None), ("op", "kind", "enum", {0: "read", 1: "write"})]
    assert (hist.name, hist.max_series, hist.labels) == ("latency_seconds", 5, [])
    assert hist.buckets == cfg.Buckets(kind="linear", unit="milliseconds", step=10.0)
    assert counter.place.at() == "conf.yaml:7: objects[0].metrics[0]"
    assert counter.place.at("map") == "conf.yaml:10: objects[0].metrics[0].map"
    assert o.place.at("globals.min_pid") == "conf.yaml:5: objects[0].globals.min_pid"


@pytest.mark.parametrize("text, expected", [
    ("objects: []\n", "conf.yaml:1: objects: the list is empty"),
    ("objectz: []\n", "conf.yaml:1: objectz: unknown key; allowed here: objects, listen, max_series"),
    ("- a\n", "conf.yaml:1: (top level): expected a mapping"),
    ("", "conf.yaml:1: the file is empty"),
    ("objects: [\n", "conf.yaml:2: not valid YAML"),
    (GOOD.replace("type: counter", "type: countr"),
     "conf.yaml:9: objects[0].metrics[0].type: 'countr' is not one of counter, gauge, histogram"),
    (GOOD.replace("decode: int", "decode: hex"),
     "conf.yaml:12: objects[0].metrics[0].labels[0].decode: 'hex' is not one of int, comm"),
    (GOOD.replace("    path: syscount.bpf.o\n", ""), "conf.yaml:3: objects[0]: give exactly one of `path:`"),
    (GOOD.replace("    path: syscount.bpf.o\n", "    path: a.o\n    tool: top\n"),
     "conf.yaml:5: objects[0]: give exactly one of `path:` (a .bpf.o), `source:` (a .bpf.c) or `tool:` (a "
     "shipped tool), not path and tool"),
    (GOOD.replace("kind: linear, step: 10", "kind: linear"),
     "conf.yaml:19: objects[0].metrics[1].buckets: linear buckets need `step:`"),
    (GOOD.replace("kind: linear, step: 10", "kind: log2, step: 10"),
     "conf.yaml:19: objects[0].metrics[1].buckets.step: only linear buckets have a step"),
    (GOOD.replace("unit: milliseconds", "unit: fortnights"),
     "objects[0].metrics[1].buckets.unit: 'fortnights'"),
    (GOOD.replace("max_series: 5", "max_series: 0"),
     "conf.yaml:18: objects[0].metrics[1].max_series: expected an integer >= 1, got 0"),
    (GOOD.replace("        buckets: {kind: linear, step: 10, unit: milliseconds}\n", ""),
     "conf.yaml:14: objects[0].metrics[1]: a histogram needs `buckets:"),
    (GOOD.replace("name: op,", "name: pid,"),
     "conf.yaml:13: objects[0].metrics[0].labels[1].name: label 'pid' is used twice"),
    (GOOD.replace("name: op,", "name: le,"), "labels[1].name: label 'le' is reserved for buckets"),
    (GOOD.replace("name: syscalls_total", "name: 9lives"),
     "conf.yaml:7: objects[0].metrics[0].name: '9lives' is not a valid name"),
    (GOOD.replace("{enum: {0: read, 1: write}}", "{enum: {zero: read}}"),
     "conf.yaml:13: objects[0].metrics[0].labels[1].decode.enum.zero: enum keys are the integers the map "
     "holds"),
    (GOOD.replace("decode: int", "decode: enum"),
     "write the enum's names: `decode: {enum: {0: read, 1: write}}`"),
    (GOOD.replace("listen: 127.0.0.1:9500", "listen: localhost"),
     "conf.yaml:1: listen: 'localhost' is not ADDR:PORT"),
    (GOOD.replace("        map: calls\n", "        map: calls\n        map: other\n"),
     "conf.yaml:11: map: written twice (first on line 10)"),
    (GOOD.replace("    globals: {min_pid: 0}\n", "    globals: 3\n"),
     "conf.yaml:5: objects[0].globals: expected a mapping"),
    (GOOD.replace("type: counter", "type: counter\n        buckets: {kind: log2, unit: seconds}"),
     "conf.yaml:10: objects[0].metrics[0].buckets: only histograms have buckets (this metric is a counter)"),
    (GOOD + GOOD[GOOD.index("  - name: syscalls"):],
     "conf.yaml:20: objects[1].name: 'syscalls' is already the name of objects[0]"),
    (GOOD.replace("{name: pid, field: null, decode: int}", "{name: pid, from: value}"),
     "objects[0].metrics[0].labels[0].from: a label from the value needs `field:`"),
])
def test_a_mistake_is_reported_at_its_line_and_key(text, expected):
    assert expected in error_of(text)


def test_a_metric_name_exposed_twice_is_refused():
    text = GOOD.replace("name: latency_seconds", "name: cbpf_syscalls_syscalls_total")
    assert "conf.yaml:14: objects[0].metrics[1].name: exposes 'cbpf_syscalls_syscalls_total', as " \
           "objects[0].metrics[0] does" in error_of(text)


def test_listen_addresses():
    assert cfg.parse_listen("127.0.0.1:9435") == ("127.0.0.1", 9435)
    assert cfg.parse_listen("[::1]:80") == ("::1", 80)
    assert cfg.parse_listen(":9000") == ("0.0.0.0", 9000)
    for bad in ("9435", "host:port", "1.2.3.4:70000"):
        with pytest.raises(ValueError):
            cfg.parse_listen(bad)


def test_log2_bounds_follow_the_slot_convention():
    # slot 0 holds [0, 2) us, slot k >= 1 holds [2^k, 2^(k+1)) us: upper bounds 2, 4, 8 ... us, in seconds
    upper, mid = bucket_bounds(cfg.Buckets("log2", "microseconds"), 4)
    assert upper.tolist() == pytest.approx([2e-6, 4e-6, 8e-6, 16e-6])
    assert mid.tolist() == pytest.approx([1e-6, 3e-6, 6e-6, 12e-6])


def test_exp2_and_linear_bounds():
    upper, mid = bucket_bounds(cfg.Buckets("exp2", "nanoseconds"), 3)   # slot k holds (2^(k-1), 2^k]
    assert upper.tolist() == pytest.approx([1e-9, 2e-9, 4e-9])
    assert mid.tolist() == pytest.approx([0.5e-9, 1.5e-9, 3e-9])
    upper, mid = bucket_bounds(cfg.Buckets("linear", "milliseconds", step=10), 3)
    assert upper.tolist() == pytest.approx([0.01, 0.02, 0.03])
    assert mid.tolist() == pytest.approx([0.005, 0.015, 0.025])
    # a histogram of sizes: no conversion
    upper, _ = bucket_bounds(cfg.Buckets("linear", "none", step=512), 2)
    assert upper.tolist() == [512, 1024]


def test_decoders_of_numbers_and_addresses():
    assert decoders.make("int")([1, 2, 70000]) == ["1", "2", "70000"]
    assert decoders.make("port")([443]) == ["443"]
    assert decoders.make("errno")([2, -13 & 0xFFFFFFFF, 9999]) == ["ENOENT", "EACCES", "9999"]
    assert decoders.make("errno")([-errno.EPERM]) == ["EPERM"]
    addr = int.from_bytes(socket.inet_aton("10.1.2.3"), sys.byteorder)  # as a __be32 field reads on this host
    assert decoders.make("ipv4")([addr, socket.inet_aton("127.0.0.1")]) == ["10.1.2.3", "127.0.0.1"]
    fe80 = socket.inet_pton(socket.AF_INET6, "fe80::1")
    assert decoders.make("ipv6")([fe80, b"\0" * 16]) == ["fe80::1", "::"]
    assert decoders.make("string")([b"bash\0\0garbage", b"\xff\0"]) == ["bash", "\ufffd"]
    assert decoders.make("enum", {0: "read", 1: "write"})([1, 0, 7]) == ["write", "read", "7"]


def test_syscall_names_come_from_the_architecture_header(tmp_path):
    header = tmp_path / "unistd_64.h"
    header.write_text("#define __NR_read 0\n#define __NR_write 1\n#define __NR_getpid 39\n")
    assert decoders.Syscall(header)([39, 0, 1, 500]) == ["getpid", "read", "write", "500"]
    if decoders.unistd_header() is None:
        pytest.skip("no <asm/unistd.h> here (linux-libc-dev)")
    import platform
    expected = {"x86_64": "getpid", "aarch64": "getpid"}
    number = {"x86_64": 39, "aarch64": 172}.get(platform.machine())
    if number is not None:
        assert decoders.make("syscall")([number]) == [expected[platform.machine()]]


def test_comm_names_a_process_and_keeps_the_name_after_it_exits(tmp_path):
    child = subprocess.Popen(["sleep", "30"])
    try:
        for _ in range(1000):  # until the child has run exec
            if Path(f"/proc/{child.pid}/comm").read_text() == "sleep\n":
                break
            time.sleep(0.005)
        comm = decoders.Comm(refresh=0.0)
        assert comm([child.pid, os.getpid()]) == ["sleep", Path("/proc/self/comm").read_text().strip()]
    finally:
        child.kill()
        child.wait()
    assert comm([child.pid]) == ["sleep"]      # gone from /proc: the name seen before stays
    assert decoders.Comm()([child.pid]) == [decoders.EXITED]   # never seen alive
    assert comm([b"kworker/0:1\0\0\0\0\0"]) == ["kworker/0:1"]  # a char[16] field is the name itself


def test_ksym_finds_the_function_holding_an_address(tmp_path):
    kallsyms = tmp_path / "kallsyms"
    kallsyms.write_text("ffffffff81000000 T _stext\nffffffff81000100 t do_one\nffffffff81000200 D data_x\n"
                        "ffffffff81000300 T do_two\n")
    ksym = decoders.Ksym(str(kallsyms))
    assert ksym([0xFFFFFFFF81000150, 0xFFFFFFFF81000300, 0xFFFFFFFF81000250, 0x10]) == \
        ["do_one", "do_two", "do_one", "0x10"]


def test_cgroup_ids_are_the_inodes_of_cgroup2_directories(tmp_path):
    (tmp_path / "system.slice" / "ssh.service").mkdir(parents=True)
    ino = os.stat(tmp_path / "system.slice" / "ssh.service").st_ino
    dec = decoders.Cgroup(root=tmp_path)
    assert dec([ino, os.stat(tmp_path).st_ino, 1]) == ["/system.slice/ssh.service", "/", "1"]


def run_export(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cbpf.exporter", *args], capture_output=True, text=True,
                          timeout=60)


def test_the_command_exits_2_naming_line_and_key_on_a_bad_config(tmp_path):
    conf = tmp_path / "bad.yaml"
    conf.write_text(GOOD.replace("map: lat_slots", "map: [lat_slots]"))
    r = run_export(str(conf))
    assert r.returncode == 2
    assert r.stderr == f"cbpf export: {conf}:16: objects[0].metrics[1].map: expected a string, got a list\n"
    assert "Traceback" not in r.stderr


def test_the_command_reports_a_missing_file_and_a_bad_listen_address(tmp_path):
    r = run_export(str(tmp_path / "none.yaml"))
    assert (r.returncode, "Traceback" in r.stderr) == (2, False)
    assert r.stderr.startswith(f"cbpf export: {tmp_path / 'none.yaml'}: cannot read the configuration: No "
                               "such file")
    conf = tmp_path / "c.yaml"
    conf.write_text(GOOD)
    r = run_export(str(conf), "--listen", "nowhere")
    assert (r.returncode, r.stderr) == (2, "cbpf export: --listen: 'nowhere' is not ADDR:PORT (such as "
                                           "127.0.0.1:9435 or [::1]:9435)\n")
    r = run_export(str(conf))  # the object file is not there: said at start, with the key
    assert r.returncode == 2
    assert r.stderr == (f"cbpf export: {tmp_path}/c.yaml:4: objects[0].path: no such file: "
                        f"{tmp_path}/syscount.bpf.o\n")


def test_an_unknown_tool_lists_the_shipped_ones(tmp_path):
    conf = tmp_path / "t.yaml"
    conf.write_text(GOOD.replace("path: syscount.bpf.o", "tool: no_such_tool"))
    r = run_export(str(conf))
    assert r.returncode == 2
    assert "t.yaml:4: objects[0].tool: cbpf ships no tool 'no_such_tool'" in r.stderr
    shipped = r.stderr.split("shipped:")[1].strip().split(", ")
    assert shipped == sorted(p.name[:-len(".bpf.o")] for p in (Path(cbpf.__file__).parent / "bpf").glob("*.bpf.o"))
    assert "top" in shipped and "biolatency" in shipped


def test_the_bundled_examples_are_valid():
    examples = sorted((Path(cfg.__file__).parent / "examples").glob("*.yaml"))
    assert [p.stem for p in examples] == ["biolatency", "runqlat", "tcplife", "top"]
    for p in examples:
        c = cfg.load(p)
        assert c.objects[0].tool == p.stem


def series_registry():
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import GaugeMetricFamily

    from cbpf.exporter.collector import SeriesFamily

    class Families:
        def collect(self):
            yield SeriesFamily("cbpf_t_calls_total", "Calls\\with \"odd\" help\nacross lines", "counter",
                               ["pid", "comm"],
                               [["1", "22", "333"], ['a "quoted" name', "back\\slash", "new\nline"]],
                               [5, 1_234_567, 2 ** 60])
            yield SeriesFamily("cbpf_t_level", "Level", "gauge", [], [], [-3])
            g = GaugeMetricFamily("cbpf_t_other", "written by prometheus_client", labels=["x"])
            g.add_metric(["y"], 1.5)
            yield g

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Families())
    return registry


# what Prometheus 2.42 sends
PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
                     "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


@pytest.mark.parametrize("accept", ["", PROMETHEUS_ACCEPT])
def test_bulk_families_read_back_as_prometheus_client_writes_them(accept):
    from prometheus_client.exposition import choose_encoder
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
    from prometheus_client.parser import text_string_to_metric_families as parse_text

    from cbpf.exporter.exposition import render

    registry = series_registry()
    ours, content_type = render(registry, accept)
    encoder, expected_type = choose_encoder(accept)
    theirs = encoder(registry)   # prometheus_client's own writer, one Sample at a time
    assert content_type == expected_type
    parse = parse_openmetrics if "openmetrics" in content_type else parse_text
    if "openmetrics" in content_type:
        assert ours.endswith(b"\n# EOF\n") and ours.count(b"# EOF") == 1

    def read(text: bytes):
        return [(f.name, f.type, f.documentation, [(s.name, s.labels, s.value) for s in f.samples])
                for f in parse(text.decode())]

    assert read(ours) == read(theirs)
    assert read(ours)[0][3][2] == ("cbpf_t_calls_total", {"pid": "333", "comm": "new\nline"}, float(2 ** 60))
    # the lines differ only in how numbers of a million and more are written
    assert ours.replace(b"1234567.0", b"1.234567e+06") == theirs


def test_metrics_app_gzips_when_asked():
    import gzip

    from cbpf.exporter.exposition import metrics_app, render

    app = metrics_app(series_registry())
    seen = {}

    def start_response(status, headers):
        seen.update(status=status, headers=dict(headers))

    body = b"".join(app({"HTTP_ACCEPT_ENCODING": "gzip", "PATH_INFO": "/metrics"}, start_response))
    assert seen["status"] == "200 OK" and seen["headers"]["Content-Encoding"] == "gzip"
    assert gzip.decompress(body) == render(series_registry())[0]
    assert int(seen["headers"]["Content-Length"]) == len(body)


def test_make_server_listens_on_ipv6_loopback_too():
    import threading
    import urllib.request

    from cbpf.exporter import make_server

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello\n"]

    try:
        server = make_server(app, "::1", 0)
    except OSError as e:
        pytest.skip(f"no IPv6 loopback here: {e}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        with urllib.request.urlopen(f"http://[::1]:{server.server_address[1]}/", timeout=10) as r:
            assert r.read() == b"hello\n"
    finally:
        server.shutdown()
        server.server_close()

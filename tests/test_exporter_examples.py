"""The example configurations shipped in cbpf/exporter/examples/, each run against the live kernel with
activity the test causes. They name the shipped tools (`tool: top` ...); where this build ships no such tool
yet, the test runs the same configuration on a test program with the same maps
(tests/bpf/exporter_<tool>.bpf.c), whose counts are exact."""

from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path

import pytest

pytest.importorskip("yaml", reason="the exporter's tests need PyYAML (pip install 'cbpf[exporter]')")
pytest.importorskip("prometheus_client", reason="exporter tests need prometheus_client (cbpf[exporter])")

from test_exporter import block_writes, getpid_child, samples

from cbpf.exporter import Exporter, config, tool_object

pytestmark = pytest.mark.kernel
EXAMPLES = Path(config.__file__).parent / "examples"


def example(name: str, bpf_objects: dict[str, Path]) -> tuple[Exporter, bool]:
    """The exporter of examples/NAME.yaml, and whether it runs the shipped tool (else the test's stand-in)."""
    c = config.load(EXAMPLES / f"{name}.yaml")
    oc = c.objects[0]
    assert oc.tool == name
    shipped = tool_object(name).is_file()
    if not shipped:
        oc.tool, oc.path = None, bpf_objects[f"exporter_{name}"]
    return Exporter(c), shipped


def test_top_example_counts_system_calls_per_process(bpf_objects, tmp_path):
    ex, shipped = example("top", bpf_objects)
    with ex:
        pid = getpid_child(500, tmp_path)
        got = samples(ex)
        value = got[("cbpf_top_syscalls_total", (("comm", "getpid_n"), ("pid", str(pid))))]
        raw = ex.objects[0].maps["syscalls"].lookup(pid)   # the process has exited: its count is final
        assert value == struct.unpack_from("=Q", raw)[0]
        assert value >= 500 if shipped else value == 500   # the stand-in counts getpid() only


def test_biolatency_example_has_the_block_writes(bpf_objects, loop_device):
    dev, _ = loop_device
    ex, shipped = example("biolatency", bpf_objects)
    with ex:
        hist = ex.objects[0].maps["hist"]
        block_writes(dev, 12)
        before = sum(hist.to_dict().values())
        got = samples(ex)
        after = sum(hist.to_dict().values())
        assert before <= got[("cbpf_biolatency_latency_seconds_count", ())] <= after
        disk = got[("cbpf_biolatency_disk_latency_seconds_count", (("disk", os.path.basename(dev)),))]
        assert disk >= 12 if shipped else disk == 12        # the stand-in counts writes only


def test_runqlat_example_has_the_run_queue_waits(bpf_objects):
    ex, _ = example("runqlat", bpf_objects)
    with ex:
        hist = ex.objects[0].maps["hist"]
        for _ in range(20):
            time.sleep(0.005)  # each wakeup is a run-queue wait of this thread
        before = sum(hist.to_dict().values())
        got = samples(ex)
        after = sum(hist.to_dict().values())
        count = got[("cbpf_runqlat_latency_seconds_count", ())]
        assert 20 <= before <= count <= after
        assert got[("cbpf_runqlat_latency_seconds_bucket", (("le", "+Inf"),))] == count
        assert got[("cbpf_runqlat_latency_seconds_bucket", (("le", "134.217728"),))] <= count  # 2^27 us


def test_tcplife_example_has_the_bytes_of_a_closed_connection(bpf_objects):
    ex, shipped = example("tcplife", bpf_objects)
    with ex:
        with socket.socket() as srv:
            srv.bind(("127.0.0.1", 0))
            srv.listen()
            port = srv.getsockname()[1]
            with socket.create_connection(("127.0.0.1", port)) as c, srv.accept()[0] as s:
                c.sendall(b"x" * 50_000)
                got_bytes = 0
                while got_bytes < 50_000:
                    got_bytes += len(s.recv(65536))
                s.sendall(b"y" * 3000)
                back = 0
                while back < 3000:
                    back += len(c.recv(65536))
                client_port = c.getsockname()[1]
        deadline = time.monotonic() + 10
        m = ex.objects[0].maps["port_bytes"]
        while (m.lookup(port) is None or m.lookup(client_port) is None) and time.monotonic() < deadline:
            time.sleep(0.05)  # the closing handshakes end a moment later
        got = samples(ex)
        for p, received, sent in ((port, 50_000, 3000), (client_port, 3000, 50_000)):
            rx, tx = struct.unpack_from("=QQ", m.lookup(p))
            assert got[("cbpf_tcplife_received_bytes_total", (("port", str(p)),))] == rx
            assert got[("cbpf_tcplife_sent_bytes_total", (("port", str(p)),))] == tx
            assert rx >= received and tx >= sent
            if not shipped:  # the stand-in's counts: bytes_received and bytes_acked, where a FIN takes one
                assert rx <= received + 1 and tx <= sent + 2

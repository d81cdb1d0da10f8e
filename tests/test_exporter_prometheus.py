"""cbpf export scraped by a real Prometheus server (Debian's `prometheus`, on loopback, scrape_interval 1s):
the series Prometheus stores hold exactly the activity the test caused, queried through its HTTP API."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("yaml", reason="the exporter's tests need PyYAML (pip install 'cbpf[exporter]')")
pytest.importorskip("prometheus_client", reason="exporter tests need prometheus_client (cbpf[exporter])")

from conftest import skip_or_fail
from test_exporter import BIO, TOP, block_writes, getpid_child

pytestmark = pytest.mark.kernel


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, timeout: float = 10) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()  # type: ignore[no-any-return]


class Exporter:
    """`python -m cbpf.exporter CONFIG --listen 127.0.0.1:0` in a child process."""

    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "cbpf.exporter", str(config), "--listen",
                                      "127.0.0.1:0"], stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()
        if not line.startswith("cbpf export: serving "):
            self.proc.kill()
            raise RuntimeError(f"the exporter did not start: {line}{self.proc.stderr.read()}")
        self.url = line.split()[3]                     # http://127.0.0.1:PORT/metrics
        self.address = self.url.split("/")[2]

    def stop(self) -> str:
        self.proc.terminate()
        assert self.proc.wait(timeout=30) == 0
        assert self.proc.stderr is not None
        return self.proc.stderr.read()


class Prometheus:
    """Debian's prometheus on loopback, scraping targets every second, its data in a temporary directory."""

    def __init__(self, targets: list[str], workdir: Path) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            skip_or_fail("Debian's prometheus is not installed (scripts/setup installs it: apt-get install "
                         "prometheus)")
        config = workdir / "prometheus.yml"
        config.write_text(json.dumps({   # JSON is YAML
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "cbpf", "static_configs": [{"targets": targets}]}],
        }))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(workdir / "prometheus.log", "wb")
        self.proc = subprocess.Popen([str(binary), f"--config.file={config}",
                                      f"--storage.tsdb.path={workdir / 'tsdb'}",
                                      f"--web.listen-address=127.0.0.1:{self.port}"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                get(f"{self.url}/-/ready", timeout=2)
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("prometheus did not start: "
                                       + (workdir / "prometheus.log").read_text()[-2000:]) from None
                time.sleep(0.2)

    def query(self, promql: str) -> list[dict]:
        body = json.loads(get(f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})))
        assert body["status"] == "success", body
        return body["data"]["result"]  # type: ignore[no-any-return]

    def wait_for(self, promql: str, expected: float, timeout: float = 45) -> list[dict]:
        """Queries until the one series of promql has the value expected; the last result otherwise
        (failing)."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if len(result) == 1 and float(result[0]["value"][1]) == expected:
                return result
            if time.monotonic() > deadline:
                pytest.fail(f"Prometheus never showed {promql} == {expected}: last {result}")
            time.sleep(0.5)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def test_prometheus_stores_the_exact_getpid_calls_and_block_writes(bpf_objects, loop_device, tmp_path):
    dev, kdev = loop_device
    config = tmp_path / "export.yaml"
    top = TOP.replace("@exporter_top@", str(bpf_objects["exporter_top"]))
    bio = (BIO % kdev).replace("@exporter_biolatency@", str(bpf_objects["exporter_biolatency"]))
    config.write_text(top + bio[len("objects:\n"):])
    exporter = Exporter(config)
    prometheus = None
    try:
        prometheus = Prometheus([exporter.address], tmp_path)
        n, m = 1234, 29
        pid = getpid_child(n, tmp_path)
        block_writes(dev, m)

        # several clients scraping at once, beside Prometheus itself
        bodies: list[bytes] = []
        failures: list[BaseException] = []

        def scraper() -> None:
            for _ in range(10):
                try:
                    bodies.append(get(exporter.url, timeout=30))
                except BaseException as e:  # noqa: BLE001 - reported below
                    failures.append(e)

        threads = [threading.Thread(target=scraper) for _ in range(6)]
        for t in threads:
            t.start()

        result = prometheus.wait_for(f'cbpf_top_getpid_total{{pid="{pid}"}}', n)
        assert result[0]["metric"]["comm"] == "getpid_n"
        assert result[0]["metric"]["job"] == "cbpf"
        prometheus.wait_for("cbpf_bio_latency_seconds_count", m)
        name = os.path.basename(dev)
        prometheus.wait_for(f'cbpf_bio_disk_latency_seconds_count{{disk="{name}"}}', m)
        prometheus.wait_for(f'cbpf_bio_disk_latency_seconds_bucket{{disk="{name}",le="+Inf"}}', m)
        # the histogram works as one in PromQL: a quantile within the buckets' range
        q = prometheus.query(
            f'histogram_quantile(0.5, cbpf_bio_disk_latency_seconds_bucket{{disk="{name}"}})')
        assert 2e-6 <= float(q[0]["value"][1]) <= 2 ** 27 * 1e-6

        for t in threads:
            t.join(120)
        assert failures == [] and len(bodies) == 60
        line = f'cbpf_top_getpid_total{{comm="getpid_n",pid="{pid}"}} {float(n)}'.encode()
        assert all(line in b.splitlines() for b in bodies)
        prometheus.wait_for('up{job="cbpf"}', 1)
        errors = prometheus.query("sum(cbpf_exporter_errors_total)")
        assert float(errors[0]["value"][1]) == 0
    finally:
        if prometheus is not None:
            prometheus.stop()
        stderr = exporter.stop()
    assert "Traceback" not in stderr


def test_a_config_error_stops_the_exporter_at_start_with_line_and_key(bpf_objects, tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text(TOP.replace("@exporter_top@", str(bpf_objects["exporter_top"]))
                      .replace("type: gauge", "type: gague"))
    r = subprocess.run([sys.executable, "-m", "cbpf.exporter", str(config), "--listen", "127.0.0.1:0"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr == (f"cbpf export: {config}:14: objects[0].metrics[1].type: 'gague' is not one of "
                        "counter, gauge, histogram\n")
    # found only once the object is open: the map's field
    config.write_text(TOP.replace("@exporter_top@", str(bpf_objects["exporter_top"]))
                      .replace("value_field: count\n        labels:\n          - {name: pid}",
                               "value_field: total\n        labels:\n          - {name: pid}"))
    r = subprocess.run([sys.executable, "-m", "cbpf.exporter", str(config)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2
    assert r.stderr == (f"cbpf export: {config}:16: objects[0].metrics[1].value_field: the values of map "
                        "'syscalls' have no field 'total'; fields: count, comm\n")

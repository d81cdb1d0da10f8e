"""The cbpf command (cbpf.cli) and cbpf.Histogram. Each tool is run as a user runs it (`python -m cbpf TOOL
--json`), while the test causes activity it knows, and the test asserts that activity in the output."""

from __future__ import annotations

import json
import os
import queue
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import compile_bpf, skip_or_fail

import cbpf
from cbpf.cli import main

ROOT = Path(__file__).resolve().parent.parent
HELPERS = Path(__file__).resolve().parent / "helpers"
ARTIFACTS = ROOT / "build" / "test-artifacts"
kernel = pytest.mark.kernel


# ---- cbpf.Histogram (no kernel) ---------------------------------------------------------------------------------

def test_histogram_str_has_the_familiar_shape():
    h = cbpf.Histogram({1: 5, 3: 10}, unit="usecs")
    assert str(h).splitlines() == [
        "  usecs    : count    distribution",
        "  0 -> 1   : 0        |                                        |",
        "  2 -> 3   : 5        |********************                    |",
        "  4 -> 7   : 0        |                                        |",
        "  8 -> 15  : 10       |****************************************|",
    ]


def test_histogram_buckets_follow_the_documented_log2_convention():
    h = cbpf.Histogram([3, 0, 7, 1])
    assert h.buckets == [(0, 1, 3), (2, 3, 0), (4, 7, 7), (8, 15, 1)]
    assert h[2] == 7 and h.total == 11 and len(h) == 4
    assert h.bucket(2).low == 4 and h.bounds(10) == (1024, 2047)
    assert h == cbpf.Histogram.of_values([0, 1, 1, 4, 5, 6, 7, 7, 7, 7, 8])
    assert h.to_dict() == {0: 3, 2: 7, 3: 1}


def test_histogram_linear_and_numpy_and_differences():
    np = pytest.importorskip("numpy")
    h = cbpf.Histogram(np.array([1, 2, 0, 4], dtype=np.uint64), kind="linear", step=10, unit="ms")
    assert h.buckets == [(0, 9, 1), (10, 19, 2), (20, 29, 0), (30, 39, 4)]
    per_cpu = cbpf.Histogram(np.array([[1, 2], [3, 4]]))  # (slots, CPUs): summed
    assert per_cpu.counts == (3, 7)
    assert (cbpf.Histogram([5, 5]) - cbpf.Histogram([1, 2])).counts == (4, 3)
    with pytest.raises(ValueError):
        cbpf.Histogram([1], kind="log10")
    with pytest.raises(ValueError):
        cbpf.Histogram({-1: 2})


def test_histogram_format_fits_a_narrow_bar():
    text = cbpf.Histogram([0, 4, 2]).format(width=10)
    assert text.splitlines()[2].endswith("|**********|") and text.splitlines()[3].endswith("|*****     |")


def test_an_empty_histogram_says_so():
    assert "no samples" in str(cbpf.Histogram({}, unit="usecs"))


@kernel
def test_the_bpf_slot_helper_and_histogram_agree(bpf_objects):
    """cbpf/histogram.h's cbpf_log2_slot in the kernel, cbpf.Histogram's convention in Python: the nth of 1000 calls
    goes to the slot of n on both sides."""
    with cbpf.Object(bpf_objects["cli_slots"], load=False) as obj:
        obj.globals["target_tgid"] = os.getpid()
        obj.load()
        obj.attach()
        for _ in range(1000):
            os.getpid()
        h = cbpf.Histogram(obj.maps["hist"], unit="nth call")
    assert h == cbpf.Histogram.of_values(list(range(1, 1001)))
    assert h.total == 1000 and h.bucket(9) == (512, 1023, 489) and len(h.buckets) == 10


# ---- helpers ----------------------------------------------------------------------------------------------------

def cbpf_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "cbpf", *args]


class Tool:
    """`python -m cbpf ARGS` running in the background; stdout lines collected by a thread."""

    def __init__(self, *args: str, ready: str = "Ctrl-C") -> None:
        self.proc = subprocess.Popen(cbpf_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     cwd=ROOT)
        self.lines: queue.Queue[str] = queue.Queue()
        self.stdout: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()  # the tool says it is attached before anything else
        if ready not in line:
            self.proc.kill()
            raise AssertionError(f"cbpf {args[0]} did not start: {line}{self.proc.stderr.read()}")
        time.sleep(0.3)  # programs see events a moment after attaching (docs/guide/cli.md): start after that

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.stdout.append(line)
            self.lines.put(line)

    def wait_for(self, predicate, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            record = json.loads(line)
            if predicate(record):
                return record
        raise AssertionError(f"not seen in {timeout} s; output: {''.join(self.stdout)[-2000:]}")

    def finish(self, timeout: float = 30.0) -> tuple[int, list[dict], str]:
        """Waits for the end (--duration), or stops it with SIGINT as Ctrl-C does."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(10)
        self.reader.join(10)  # the rest of stdout, to its end
        assert self.proc.stderr is not None and self.proc.stdout is not None
        err = self.proc.stderr.read()
        self.proc.stderr.close()
        self.proc.stdout.close()
        return self.proc.returncode, [json.loads(x) for x in self.stdout if x.startswith("{")], err


@pytest.fixture(scope="module")
def busy_helper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    out = tmp_path_factory.mktemp("cli") / "cli_busy"
    subprocess.run(["gcc", "-static", "-O1", "-g", "-fno-omit-frame-pointer", "-o", str(out),
                    str(HELPERS / "cli_busy.c")], check=True)
    return out


# ---- the tools --------------------------------------------------------------------------------------------------

@kernel
def test_execsnoop_shows_the_exact_command_and_argv():
    marker = f"cbpf-execsnoop-{os.getpid()}"
    tool = Tool("execsnoop", "--json", "--comm", "sh")
    try:
        argv = ["/bin/sh", "-c", "exit 0", marker]
        child = subprocess.run(argv)
        assert child.returncode == 0
        event = tool.wait_for(lambda e: marker in e["argv"])
        many = ["/bin/sh", "-c", "exit 0", f"{marker}-many", *(f"a{i}" for i in range(30))]
        assert subprocess.run(many).returncode == 0
        long_one = tool.wait_for(lambda e: f"{marker}-many" in e["argv"])
    finally:
        tool.proc.send_signal(signal.SIGINT)
        status, _, err = tool.finish()
    assert event["argv"] == argv and event["truncated"] is False
    assert event["filename"] == "/bin/sh"
    assert event["comm"] == "sh"
    assert event["ppid"] == os.getpid() and event["uid"] == os.getuid() and event["ret"] == 0
    assert long_one["argv"] == many[:20] and long_one["truncated"] is True  # 20 arguments are kept
    assert status == 0 and "Traceback" not in err


@kernel
def test_opensnoop_shows_the_exact_path_flags_and_fd(tmp_path: Path):
    path = str(tmp_path / f"cbpf-opensnoop-{os.getpid()}")
    tool = Tool("opensnoop", "--json", "--pid", str(os.getpid()))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        event = tool.wait_for(lambda e: e["path"] == path)
    finally:
        tool.proc.send_signal(signal.SIGINT)
        status, _, err = tool.finish()
    assert event["pid"] == os.getpid() and event["fd"] == fd and event["errno"] == 0
    assert {"O_WRONLY", "O_CREAT", "O_TRUNC"} <= set(event["flag_names"]) and event["mode"] == 0o600
    assert status == 0 and "Traceback" not in err


@kernel
def test_tcplife_counts_the_exact_bytes_over_loopback():
    to_server, to_client = 100_003, 4_321
    tool = Tool("tcplife", "--json", "--pid", str(os.getpid()))
    try:
        port, client_port = loopback_session(to_server, to_client)
        server_side = tool.wait_for(lambda e: e["lport"] == port)
        client_side = tool.wait_for(lambda e: e["lport"] == client_port)
    finally:
        tool.proc.send_signal(signal.SIGINT)
        status, _, err = tool.finish()
    assert (server_side["rx_bytes"], server_side["tx_bytes"]) == (to_server, to_client)
    assert (client_side["rx_bytes"], client_side["tx_bytes"]) == (to_client, to_server)
    assert server_side["rport"] == client_port and client_side["rport"] == port
    assert client_side["pid"] == server_side["pid"] == os.getpid()
    assert client_side["laddr"] == client_side["raddr"] == "127.0.0.1" and client_side["family"] == "ipv4"
    assert status == 0 and "Traceback" not in err


def loopback_session(to_server: int, to_client: int) -> tuple[int, int]:
    """One TCP session over 127.0.0.1 carrying exactly these bytes each way; (server port, client port)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]

    def serve() -> None:
        conn, _ = server.accept()
        got = 0
        while got < to_server:
            got += len(conn.recv(65536))
        conn.sendall(b"s" * to_client)
        conn.close()

    t = threading.Thread(target=serve)
    t.start()
    with socket.create_connection(("127.0.0.1", port)) as client:
        client_port = client.getsockname()[1]
        client.sendall(b"c" * to_server)
        while client.recv(65536):
            pass
    t.join()
    server.close()
    return port, client_port


@kernel
def test_tcplife_sums_bytes_per_local_port_in_its_map():
    """The port_bytes map (host-order local port -> {rx, tx}) that the exporter reads, from the tool's object."""
    from cbpf._tools import tool_object

    with cbpf.Object(tool_object("tcplife")) as obj:
        port, client_port = loopback_session(7_777, 222)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(obj.maps["port_bytes"].to_dict()) < 2:
            time.sleep(0.05)
        sums = obj.maps["port_bytes"].to_dict()  # {local port: port_bytes(rx, tx)}, typed by the map's BTF
    assert (sums[port].rx, sums[port].tx) == (7_777, 222)
    assert (sums[client_port].rx, sums[client_port].tx) == (222, 7_777)


RUNQ_CHILD = """
import os, sys, time
os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))  # not preempted by ordinary tasks: only wakeups count
sys.stdout.write("ready\\n"); sys.stdout.flush()
os.read(0, 1)
for _ in range(int(sys.argv[1])):
    time.sleep(0.002)
sys.stdout.write("done\\n"); sys.stdout.flush()
os.read(0, 1)
"""


def runqlat_of_sleeps(n: int) -> tuple[dict, int]:
    """cbpf runqlat --json on a SCHED_FIFO child woken n + 1 times (a read, then n sleeps): the tool's record and the
    kernel's own count of the child's switch-ins meanwhile (/proc/PID/schedstat)."""
    child = subprocess.Popen([sys.executable, "-c", RUNQ_CHILD, str(n)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n"
        time.sleep(0.2)  # blocked in read()
        # Under heavy scheduling load (two pipe ping-pong pairs on both CPUs), runqlat missed events in the first
        # moments after attaching in about one run in ten when the child started at once, and in none of 60 runs
        # when it started 0.1 s or more later: Tool waits 0.3 s, the test measures the steady state.
        tool = Tool("runqlat", "--json", "--pid", str(child.pid), "--duration", "4")
        before = int(Path(f"/proc/{child.pid}/schedstat").read_text().split()[2])
        child.stdin.write("x")
        child.stdin.flush()
        assert child.stdout.readline() == "done\n"
        switch_ins = int(Path(f"/proc/{child.pid}/schedstat").read_text().split()[2]) - before
        status, records, err = tool.finish()
    finally:
        child.kill()
        child.wait()
        child.stdin.close()
        child.stdout.close()
    assert status == 0 and "Traceback" not in err
    (record,) = records
    assert sum(s["count"] for s in record["slots"]) == record["total"] and record["unit"] == "usecs"
    return record, switch_ins


@kernel
def test_runqlat_histogram_holds_one_sample_per_wakeup():
    n = 25
    runs = []
    for _ in range(2):  # a second run only if the first differs (seen once in about 30 runs; see runqlat_of_sleeps)
        record, switch_ins = runqlat_of_sleeps(n)
        # the kernel's view: the wakeup from read() and one per sleep (more only if something preempted the child)
        assert switch_ins >= n + 1
        runs.append((record["total"], switch_ins))
        if record["total"] == switch_ins:
            break
    assert runs[-1][0] == runs[-1][1], f"(runqlat total, kernel switch-ins) per run: {runs}"


@kernel
def test_biolatency_histogram_holds_one_sample_per_read(tmp_path: Path):
    if shutil.which("losetup") is None:
        pytest.skip("losetup is not installed (util-linux)")
    backing = tmp_path / "disk.img"
    backing.write_bytes(os.urandom(1 << 20))
    device = subprocess.run(["losetup", "--find", "--show", str(backing)], capture_output=True, text=True)
    if device.returncode != 0:
        pytest.skip(f"no loop device: {device.stderr.strip()}")
    dev = device.stdout.strip()
    n = 32
    try:
        time.sleep(0.5)  # anything that probes a new disk does it now, not under the tool
        tool = Tool("biolatency", "--json", "--disk", os.path.basename(dev), "--duration", "3")
        fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
        try:
            import mmap

            buf = mmap.mmap(-1, 4096)
            for i in range(n):
                assert os.preadv(fd, [buf], i * 4096 * 3) == 4096  # aligned, apart: one request each
        finally:
            os.close(fd)
        status, records, err = tool.finish()
    finally:
        subprocess.run(["losetup", "--detach", dev], check=False)
    assert status == 0 and "Traceback" not in err
    (record,) = records
    assert list(record["disks"]) == [os.path.basename(dev)]
    assert record["disks"][os.path.basename(dev)]["total"] == n


@kernel
def test_top_counts_the_system_calls_of_a_process_under_its_own_name(busy_helper: Path, tmp_path: Path):
    named = tmp_path / f"cbpftop{os.getpid() % 100000}"
    shutil.copy(busy_helper, named)
    tool = Tool("top", "--json", "--duration", "3", "--comm", named.name)
    baseline = subprocess.run([str(named), "getpid", "0"])
    counted = subprocess.run([str(named), "getpid", "1000"])  # exits before top reads: its name stays
    assert baseline.returncode == counted.returncode == 0
    status, records, err = tool.finish()
    assert status == 0 and "Traceback" not in err
    calls: dict[int, int] = {}
    for record in records:
        for p in record["processes"]:
            assert p["comm"] == named.name
            calls[p["pid"]] = calls.get(p["pid"], 0) + p["syscalls"]
    assert len(calls) == 2, calls
    # the same static binary: the same start-up calls; the difference is the getpid() calls
    assert max(calls.values()) - min(calls.values()) == 1000, calls


@kernel
def test_profile_symbolizes_a_busy_function_and_writes_a_flame_graph(busy_helper: Path, tmp_path: Path):
    # it spins until killed below: the profiler symbolizes from /proc/PID/maps after its 2 s, however long its
    # start took on a loaded machine (with 6 s the helper could exit first, and no frame was named)
    busy = subprocess.Popen([str(busy_helper), "spin", "120"])
    try:
        svg, folded = tmp_path / "profile.svg", tmp_path / "profile.folded"
        r = subprocess.run(cbpf_cmd("profile", "--json", "--pid", str(busy.pid), "--duration", "2",
                                    "--svg", str(svg), "--folded", str(folded)),
                           capture_output=True, text=True, timeout=60, cwd=ROOT)
    finally:
        busy.kill()
        busy.wait()
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    spinning = sum(s["count"] for s in result["stacks"] if "cbpf_test_busy_spin" in s["frames"])
    assert result["samples"] > 0 and spinning >= result["samples"] * 0.8, result
    assert all(s["pid"] == busy.pid for s in result["stacks"])
    top = result["stacks"][0]  # the busiest stack: the comm, then user frames from the outermost to the leaf
    assert top["frames"][0] == "cli_busy" and top["comm"] == "cli_busy"
    assert top["frames"][-1] == "cbpf_test_busy_spin" and top["frames"][-2] == "main", top
    lines = folded.read_text().splitlines()
    assert sum(int(x.rpartition(" ")[2]) for x in lines) == result["samples"]
    # the flame graph, opened in Chromium: one frame per node of the folded stacks, as wide as its samples
    expected: dict[tuple[int, tuple[str, ...]], int] = {}
    for line in lines:
        stack, _, count = line.rpartition(" ")
        frames = ["all", *stack.split(";")]
        for depth in range(len(frames)):
            key = (depth, tuple(frames[: depth + 1]))
            expected[key] = expected.get(key, 0) + int(count)
    from cbpf.cli.flamegraph import SIDE, WIDTH

    browser = DevTools(tmp_path)
    try:
        drawn = load_frames(browser, svg)
        save_screenshot(browser, "flamegraph-profile.png")
    finally:
        browser.close()
    total = result["samples"]
    assert sorted((d, name, round(w / (WIDTH - 2 * SIDE) * total)) for name, w, d in drawn) == \
        sorted((d, path[-1], n) for (d, path), n in expected.items())
    assert ("cbpf_test_busy_spin", pytest.approx(spinning / total * (WIDTH - 2 * SIDE), abs=0.01)) in \
        [(name, w) for name, w, _ in drawn]


# ---- the flame graph in a real browser ---------------------------------------------------------------------------

def browser_env() -> dict[str, str]:
    """The browser is not under test: under scripts/test-sanitizers it must not inherit the preloaded ASan/UBSan
    runtimes (an instrumented-by-preload Chromium runs for minutes at full CPU)."""
    dropped = ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")
    return {k: v for k, v in os.environ.items() if k not in dropped}


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    skip_or_fail("no Chromium (scripts/setup-browser, or apt-get install chromium)")
    raise AssertionError("unreachable")


class DevTools:
    """A headless Chromium driven through the DevTools protocol (websocket-client)."""

    def __init__(self, tmp: Path) -> None:
        try:
            import websocket
        except ImportError:
            skip_or_fail("websocket-client is not installed (pip install -e '.[test]')")
        self.proc = subprocess.Popen([chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                                      "--remote-debugging-port=0", f"--user-data-dir={tmp / 'profile'}",
                                      "--window-size=1280,800", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     env=browser_env())
        port = None
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            m = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if m:
                port = int(m.group(1))
        assert port, "Chromium did not start its DevTools server"
        import urllib.request

        for _ in range(50):
            targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
            pages = [t for t in targets if t["type"] == "page"]
            if pages:
                break
            time.sleep(0.1)
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=30)
        self.next_id = 0

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self.next_id:
                assert "error" not in reply, reply
                return reply["result"]

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def close(self) -> None:
        self.ws.close()
        self.proc.kill()
        self.proc.wait()


FRAMES_JS = """JSON.stringify(Array.from(document.querySelectorAll('g.f')).filter(g => g.style.display != 'none')
  .map(g => [g.getAttribute('data-name'), g.querySelector('rect').getBoundingClientRect().width,
             +g.getAttribute('data-depth')]))"""


def save_screenshot(browser: DevTools, name: str) -> None:
    """The page as the browser drew it, kept in build/test-artifacts/ for a person to look at."""
    import base64

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / name).write_bytes(base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"]))


def load_frames(browser: DevTools, svg: Path) -> list:
    """Opens svg in the browser; its visible frames as [name, width on the page, depth]."""
    browser.call("Page.enable")
    browser.call("Page.navigate", url=svg.as_uri())
    for _ in range(100):
        if browser.evaluate("document.readyState") == "complete" and browser.evaluate(
                "document.querySelectorAll('g.f').length"):
            break
        time.sleep(0.1)
    return json.loads(browser.evaluate(FRAMES_JS))


def test_flame_graph_in_chromium_shows_the_frames_hovers_and_zooms(tmp_path: Path):
    from cbpf.cli.flamegraph import SIDE, WIDTH, parse_folded, render

    folded = ("prog;main;parse;read_file 30\nprog;main;parse;tokenize 10\nprog;main;cbpf_test_busy_spin 50\n"
              "prog;idle_loop 10\n")
    svg = tmp_path / "flame.svg"
    svg.write_text(render(parse_folded(folded), "test"))
    inner = WIDTH - 2 * SIDE
    expected = {"all": 100, "prog": 100, "main": 90, "parse": 40, "read_file": 30, "tokenize": 10,
                "cbpf_test_busy_spin": 50, "idle_loop": 10}
    browser = DevTools(tmp_path)
    try:
        frames = load_frames(browser, svg)
        assert {name: round(width / inner * 100, 1) for name, width, _ in frames} == \
            {name: float(share) for name, share in expected.items()}
        # hover: the details line names the frame and its share
        box = browser.evaluate("""(() => { const r = Array.from(document.querySelectorAll('g.f')).find(
            g => g.getAttribute('data-name') == 'parse').querySelector('rect').getBoundingClientRect();
            return [r.x + r.width / 2, r.y + r.height / 2]; })()""")
        browser.call("Input.dispatchMouseEvent", type="mouseMoved", x=box[0], y=box[1])
        assert browser.evaluate("document.getElementById('details').textContent") == "parse (40 samples, 40.00%)"
        # click: parse fills the width, its children keep their shares of it, its ancestors stretch, others hide
        browser.call("Input.dispatchMouseEvent", type="mousePressed", x=box[0], y=box[1], button="left",
                     clickCount=1)
        browser.call("Input.dispatchMouseEvent", type="mouseReleased", x=box[0], y=box[1], button="left",
                     clickCount=1)
        zoomed = {name: round(width / inner * 100, 1) for name, width, _ in json.loads(browser.evaluate(FRAMES_JS))}
        assert zoomed == {"all": 100.0, "prog": 100.0, "main": 100.0, "parse": 100.0, "read_file": 75.0,
                          "tokenize": 25.0}
        save_screenshot(browser, "flamegraph-zoomed.png")
        browser.evaluate("document.getElementById('reset').dispatchEvent(new MouseEvent('click'))")
        assert len(json.loads(browser.evaluate(FRAMES_JS))) == len(expected)
    finally:
        browser.close()


# ---- cbpf run, live, in a terminal ------------------------------------------------------------------------------

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")


def run_in_pty(args: list[str], columns: int, rows: int, until, cause, timeout: float = 30.0) -> tuple[int, str]:
    """Runs `python -m cbpf ARGS` on a pseudo-terminal of columns x rows; calls cause() once it is attached, reads
    what it draws until until(text) holds, then stops it with SIGINT (Ctrl-C)."""
    import fcntl
    import pty
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": str(rows)}
    proc = subprocess.Popen(cbpf_cmd(*args), stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, env=env,
                            start_new_session=True)
    os.close(slave)
    out = b""
    caused = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    out += os.read(master, 65536)
                except OSError:
                    break
            text = ANSI.sub("", out.decode("utf-8", "replace"))
            if not caused and "Ctrl-C" in text:
                time.sleep(0.3)  # as Tool does
                cause()
                caused = True
            if caused and until(text):
                break
        proc.send_signal(signal.SIGINT)
        status = proc.wait(15)
        while True:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return status, ANSI.sub("", out.decode("utf-8", "replace"))


def need_rich() -> None:
    try:
        import rich  # noqa: F401
    except ImportError:
        skip_or_fail("rich is not installed (pip install -e '.[test]'): the live view needs it")


@pytest.fixture(scope="module")
def run_object(bpf_build_dir: Path) -> Path:
    return compile_bpf(Path(__file__).resolve().parent / "bpf" / "cli_run.bpf.c", bpf_build_dir)


@kernel
def test_cbpf_run_draws_a_live_histogram_and_table_in_a_terminal(run_object: Path):
    need_rich()
    n = 37
    me = os.getpid()

    def cause() -> None:
        for _ in range(n):
            os.getpid()

    def seen(text: str) -> bool:
        return bool(re.search(rf"4096 -> 8191\s*:\s*{n}\b", text) and re.search(rf"\b{me}\b\s*│?\s*{n}\b", text))

    status, text = run_in_pty(["run", str(run_object), "--set", f"targ_tgid={me}", "--set", "sample_value=5000",
                               "--interval", "0.3"], 120, 60, seen, cause)
    assert status == 0, text
    assert "Traceback" not in text
    assert re.search(rf"4096 -> 8191\s*:\s*{n}\s*\|\*+\s*\|", text), text[-3000:]   # the histogram, live
    assert re.search(rf"{me}\s*│\s*{n}", text), text[-3000:]                          # the table, live (rich)
    assert "calls_log: tgid=" in text                                                   # the events


@kernel
def test_cbpf_run_in_a_narrow_terminal_draws_without_error(run_object: Path):
    need_rich()
    me = os.getpid()
    status, text = run_in_pty(["run", str(run_object), "--set", f"targ_tgid={me}", "--interval", "0.2"], 24, 12,
                              lambda t: "value_hist" in t, lambda: os.getpid())
    assert status == 0 and "Traceback" not in text, text


@kernel
def test_cbpf_run_json_reports_maps_histograms_globals_and_events(run_object: Path):
    me = os.getpid()
    tool = Tool("run", str(run_object), "--json", "--set", f"targ_tgid={me}", "--set", "sample_value=3",
                "--interval", "0.2")
    try:
        for _ in range(5):
            os.getpid()
        record = tool.wait_for(lambda r: "maps" in r and r["maps"]["calls"] and r["globals"]["seen"] == 5)
    finally:
        tool.proc.send_signal(signal.SIGINT)
        status, records, err = tool.finish()
    assert status == 0 and "Traceback" not in err
    assert record["maps"]["calls"] == [{"key": me, "value": 5}]
    assert record["histograms"]["value_hist"]["total"] == 5
    assert record["histograms"]["value_hist"]["slots"][1] == {"low": 2, "high": 3, "count": 5}
    for name in ("calls_log", "calls_perf"):  # a ring buffer, a perf buffer: the same events, decoded as struct call
        events = [r["event"] for r in records if r.get("map") == name]
        assert [e["nth"] for e in events] == [1, 2, 3, 4, 5] and {e["tgid"] for e in events} == {me}, name


@kernel
def test_cbpf_run_map_filter_shows_only_that_map(run_object: Path):
    r = subprocess.run(cbpf_cmd("run", str(run_object), "--json", "--map", "calls", "--duration", "0.5",
                                "--interval", "0.2"), capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    for line in r.stdout.splitlines():
        record = json.loads(line)
        assert set(record["maps"]) == {"calls"} and record["histograms"] == {}


# ---- inspect ----------------------------------------------------------------------------------------------------

@kernel
def test_inspect_lists_maps_programs_and_globals(run_object: Path):
    r = subprocess.run(cbpf_cmd("inspect", str(run_object), "--json"), capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["format"] == "modern"
    maps = {m["name"]: m for m in info["maps"]}
    assert maps["calls"]["type"] == "hash" and maps["calls"]["key_type"] == "u32" and \
        maps["calls"]["value_type"] == "u64" and maps["calls"]["max_entries"] == 1024
    assert maps["value_hist"]["type"] == "array" and maps["value_hist"]["max_entries"] == 64
    assert maps["calls_log"]["type"] == "ringbuf" and maps["calls_perf"]["type"] == "perf_event_array"
    (prog,) = info["programs"]
    assert prog["name"] == "on_getpid" and prog["type"] == "tracepoint"
    assert prog["attach_point"] == "syscalls/sys_enter_getpid" and prog["boot_attaches"] is True
    assert prog["instructions"] > 0
    assert info["globals"] == {"targ_tgid": 0, "sample_value": 1, "seen": 0, "unused_call": 0}
    text = subprocess.run(cbpf_cmd("inspect", str(run_object)), capture_output=True, text=True, cwd=ROOT).stdout
    assert "on_getpid" in text and "syscalls/sys_enter_getpid" in text and "sample_value" in text


def test_inspect_reads_a_legacy_object(legacy_objects):
    r = subprocess.run(cbpf_cmd("inspect", str(legacy_objects["twin"]), "--json"), capture_output=True, text=True,
                       cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["format"] == "legacy" and info["globals"] == {}
    maps = {m["name"]: (m["type"], m["key_size"], m["value_size"], m["max_entries"]) for m in info["maps"]}
    assert maps == {"config": ("array", 4, 4, 1), "counts": ("hash", 4, 8, 64), "slots": ("array", 4, 8, 4),
                    "percpu": ("percpu_array", 4, 8, 1)}
    programs = {p["name"]: (p["type"], p["boot_attaches"]) for p in info["programs"]}
    assert programs == {"count_hash": ("tracepoint", True), "count_array": ("tracepoint", True),
                        "count_raw": ("raw_tracepoint", True), "filter": ("socket_filter", False)}


# ---- bad input and environment ------------------------------------------------------------------------------------

def run_cli(*args: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cbpf_cmd(*args), capture_output=True, text=True, cwd=ROOT, timeout=60, **kw)


@kernel
@pytest.mark.parametrize("args, message", [
    (["--map", "nope"], "no such map"),
    (["--set", "nope=1"], "no global variable 'nope'"),
    (["--set", "targ_tgid=twelve"], "--set targ_tgid=twelve"),
    (["--set", "targ_tgid"], "expected NAME=VALUE"),
])
def test_cbpf_run_bad_arguments_exit_2_with_one_line(run_object: Path, args, message):
    r = run_cli("run", str(run_object), *args, "--duration", "0.2")
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr


def test_a_file_that_is_not_there_exits_2():
    r = run_cli("inspect", "/nonexistent/x.bpf.o")
    assert r.returncode == 2 and "no such file" in r.stderr and "Traceback" not in r.stderr


@kernel
def test_a_missing_tracepoint_is_named_with_the_alternative(bpf_build_dir: Path, tmp_path: Path):
    source = tmp_path / "missing_tp.bpf.c"
    source.write_text('#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n'
                      'SEC("tracepoint/syscalls/sys_enter_getpidd") int a(void *c) { return 0; }\n'
                      'char LICENSE[] SEC("license") = "GPL";\n')
    r = run_cli("run", str(compile_bpf(source, tmp_path)), "--duration", "0.2")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "no tracepoint syscalls:sys_enter_getpidd" in r.stderr
    assert "syscalls/sys_enter_getpid" in r.stderr and "raw_tracepoint/" in r.stderr  # similar ones, alternative


@kernel
def test_a_kprobe_on_this_kernel_suggests_tracepoints(tmp_path: Path):
    if Path("/sys/kernel/tracing/kprobe_events").exists() or Path("/sys/kernel/debug/tracing/kprobe_events").exists():
        pytest.skip("this kernel has kprobes")
    source = tmp_path / "kp.bpf.c"
    source.write_text('#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n'
                      'SEC("kprobe/do_sys_openat2") int a(void *c) { return 0; }\n'
                      'char LICENSE[] SEC("license") = "GPL";\n')
    r = run_cli("run", str(compile_bpf(source, tmp_path)), "--duration", "0.2")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "no kprobes" in r.stderr and "tracepoint" in r.stderr and "tp_btf" in r.stderr


def test_no_btf_is_said_without_a_traceback(monkeypatch, capsys):
    from cbpf.cli import _common

    real = _common.Path

    class NoBtf(type(real())):  # type: ignore[misc]
        def exists(self) -> bool:
            return False if str(self) == "/sys/kernel/btf/vmlinux" else super().exists()

    monkeypatch.setattr(_common, "Path", NoBtf)
    monkeypatch.setattr(_common.os, "geteuid", lambda: 0)
    assert main(["runqlat", "--duration", "0.1"]) == 1
    assert "no BTF" in capsys.readouterr().err


@kernel
def test_unprivileged_tools_say_what_to_do():
    from test_hardening import run_as_nobody

    for tool in ("top", "execsnoop", "profile"):
        r = run_as_nobody("-m", "cbpf", tool, "--duration", "0.1")
        assert r.returncode == 1, (tool, r.stderr)
        assert r.stderr.startswith("cbpf: ") and "run as root" in r.stderr and "Traceback" not in r.stderr


@kernel
def test_closed_stdout_ends_quietly_with_141():
    proc = subprocess.Popen(cbpf_cmd("top", "--interval", "0.1", "--duration", "20"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout.readline()  # | head -1
    proc.stdout.close()
    status = proc.wait(30)
    err = proc.stderr.read()
    assert status == 141 and "Traceback" not in err and "Exception" not in err, err


@kernel
def test_ctrl_c_stops_a_tool_cleanly_and_prints_its_histogram():
    tool = Tool("runqlat")
    time.sleep(0.5)
    tool.proc.send_signal(signal.SIGINT)
    tool.proc.wait(20)
    status, _, err = tool.finish()
    assert status == 0 and "usecs" in "".join(tool.stdout) and "Traceback" not in err


@kernel
def test_c_source_is_compiled_for_inspect_and_run(tmp_path: Path):
    """SOURCE arguments go through cbpf.compile(): inspect names the source's map, run counts this process's calls."""
    source = tmp_path / "src_count.bpf.c"
    source.write_text(
        "#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n"
        "volatile const __u32 targ_tgid = 0;\n"
        "struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 16); __type(key, __u32); __type(value, __u64); }"
        " src_calls SEC(\".maps\");\n"
        "SEC(\"tracepoint/syscalls/sys_enter_getppid\") int on_getppid(void *ctx) {\n"
        "  __u32 tgid = bpf_get_current_pid_tgid() >> 32; __u64 one = 1, *n;\n"
        "  if (tgid != targ_tgid) return 0;\n"
        "  n = bpf_map_lookup_elem(&src_calls, &tgid);\n"
        "  if (n) __sync_fetch_and_add(n, 1); else bpf_map_update_elem(&src_calls, &tgid, &one, BPF_NOEXIST);\n"
        "  return 0; }\n"
        "char LICENSE[] SEC(\"license\") = \"GPL\";\n")
    r = run_cli("inspect", str(source), "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert [m["name"] for m in info["maps"] if m["name"] == "src_calls"] == ["src_calls"]
    assert [p["name"] for p in info["programs"]] == ["on_getppid"]
    me = os.getpid()
    tool = Tool("run", str(source), "--json", "--set", f"targ_tgid={me}", "--interval", "0.2")
    try:
        for _ in range(7):
            os.getppid()
        record = tool.wait_for(lambda r: "maps" in r and r["maps"]["src_calls"] == [{"key": me, "value": 7}])
    finally:
        tool.proc.send_signal(signal.SIGINT)
        status, _, err = tool.finish()
    assert status == 0 and "Traceback" not in err
    assert record["maps"]["src_calls"] == [{"key": me, "value": 7}]


def test_usage_errors_exit_2():
    r = run_cli("top", "--interval", "0")
    assert r.returncode == 2 and "--interval must be > 0" in r.stderr
    r = run_cli("nosuchcommand")
    assert r.returncode == 2 and "invalid choice" in r.stderr and "Traceback" not in r.stderr


def test_export_without_the_exporter_extra_says_what_to_install(tmp_path: Path):
    """prometheus_client and PyYAML made unimportable (as without the cbpf[exporter] extra): one line, exit 2 (the
    configuration cannot be read)."""
    config = tmp_path / "x.yaml"
    config.write_text("objects: []\n")
    code = ("import sys; sys.modules['prometheus_client'] = None; sys.modules['yaml'] = None\n"
            "from cbpf.cli import main; sys.exit(main(['export', sys.argv[1]]))")
    r = subprocess.run([sys.executable, "-c", code, str(config)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "needs PyYAML: pip install 'cbpf[exporter]'" in r.stderr and "Traceback" not in r.stderr


@kernel
def test_python_m_cbpf_with_no_arguments_runs_top_for_three_seconds():
    start = time.monotonic()
    r = run_cli()
    took = time.monotonic() - start
    assert r.returncode == 0, r.stderr
    assert 3 <= took < 30
    assert r.stdout.splitlines()[2].split() == ["PID", "COMM", "SYSCALLS", "PER", "SEC"], r.stdout

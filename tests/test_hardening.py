"""Long-lived daemons: no leaked fds or memory over long loops, threads, fork, the GIL released where it blocks."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import resource
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import cbpf
from cbpf import Map

from conftest import open_fds

pytestmark = pytest.mark.kernel

# Under AddressSanitizer freed memory sits in quarantine, so RSS grows whatever the code does: the RSS checks mean
# nothing there (ASan reports real misuse itself); fds and tracemalloc are still checked.
UNDER_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (resource.getpagesize() // 1024)


def test_ten_thousand_load_close_cycles_leak_no_fd(bpf_objects):
    data = Path(bpf_objects["minimal"]).read_bytes()
    cbpf.Object(data).close()
    before = open_fds()
    rss0 = None
    for i in range(10_000):
        with cbpf.Object(data) as obj:
            obj.maps["cells"].fetch(0)
        if i == 1000:
            gc.collect()
            rss0 = rss_kib()
    gc.collect()
    assert open_fds() == before
    if not UNDER_ASAN:
        assert rss_kib() - rss0 < 8 * 1024  # KiB: flat after the first thousand (allocator noise aside)


def test_memory_is_flat_over_a_million_fetches_and_many_updates():
    with Map.create("hash", 4, 8, 1024) as m:
        m[1] = 1 << 40  # a value that is not a cached small int
        for _ in range(10_000):
            m.fetch(1)
        tracemalloc.start()
        snap0 = tracemalloc.take_snapshot()
        for _ in range(1_000_000):
            m.fetch(1)
        for i in range(100_000):
            m[i % 1000] = i
            del m[i % 1000]
        snap1 = tracemalloc.take_snapshot()
        tracemalloc.stop()
        grown = sum(s.size_diff for s in snap1.compare_to(snap0, "filename") if s.size_diff > 0)
        assert grown < 64 * 1024, grown


def test_memory_is_flat_over_a_thousand_full_iterations():
    with Map.create("hash", 4, 8, 4096) as m:
        keys = np.arange(2000, dtype=np.uint32)
        m.update_batch(keys, keys.astype(np.uint64))
        for _ in range(50):
            m.to_dict(), list(m.items())
        gc.collect()
        rss0 = rss_kib()
        for _ in range(1000):
            assert len(m.to_dict()) == 2000
            assert sum(1 for _ in m.items()) == 2000
            m.to_numpy()
        gc.collect()
        if not UNDER_ASAN:
            assert rss_kib() - rss0 < 4 * 1024


def test_threads_hammer_a_map_while_its_object_closes(bpf_objects):
    obj = cbpf.Object(bpf_objects["counter"], attach=False)
    m = obj.maps["counts"]
    errors: list[BaseException] = []
    closed_seen = threading.Event()
    start = threading.Barrier(9)

    def worker(n: int) -> None:
        start.wait()
        try:
            for i in range(100_000):
                k = n * 1000 + i % 100
                m[k] = i
                m.fetch(k)
                m.delete(k)
                if i % 50 == 0:
                    m.to_dict()
                    list(m.items())
        except ValueError as e:  # the only error allowed: the object was closed under us
            assert "closed" in str(e)
            closed_seen.set()
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    start.wait()
    time.sleep(0.3)
    obj.close()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive(), "a thread hung after close"
    assert errors == []
    assert closed_seen.is_set()
    with pytest.raises(ValueError, match="closed"):
        m.fetch(1)


def test_the_gil_is_released_during_whole_map_reads():
    with Map.create("hash", 4, 8, 1_000_000) as m:
        keys = np.arange(1_000_000, dtype=np.uint32)
        m.update_batch(keys, keys.astype(np.uint64))
        ticks = 0
        done = threading.Event()

        def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                time.sleep(0)

        t = threading.Thread(target=ticker)
        sys.setswitchinterval(1.0)  # only a released GIL lets the ticker run during the reads
        try:
            t.start()
            time.sleep(0.01)
            before = ticks
            for _ in range(3):
                m.to_numpy()
            during = ticks - before
        finally:
            done.set()
            t.join()
            sys.setswitchinterval(0.005)
        assert during > 100


def test_a_forked_child_shares_the_maps_and_leaves_the_parent_intact(bpf_objects):
    obj = cbpf.Object(bpf_objects["counter"])
    try:
        pid = os.getpid()
        for _ in range(9):
            os.getpid()
        assert obj.maps["counts"].fetch(pid) == 10
        r, w = os.pipe()
        child = os.fork()
        if child == 0:  # the child: reads and writes the parent's maps, then closes its copy of the object
            try:
                obj.maps["target"].update(0, 4242)
                ok = obj.maps["counts"].fetch(pid) == 10
                obj.close()
                os.write(w, b"ok" if ok else b"no")
            finally:
                os._exit(0)
        os.close(w)
        assert os.read(r, 2) == b"ok"
        os.close(r)
        os.waitpid(child, 0)
        assert obj.maps["target"].fetch(0) == 4242  # the child's write is in the shared map
        for _ in range(5):  # the child's close did not detach the parent's program
            os.getpid()
        assert obj.maps["counts"].fetch(pid) == 15
    finally:
        obj.close()


# Run as nobody (no capabilities): each entry point that reaches the kernel, then what the caller sees.
UNPRIVILEGED_SCRIPT = r"""
import json, sys
import cbpf

elf, pinned = sys.stdin.read().encode("latin-1"), sys.argv[1]
results = {}

def attempt(name, call):
    try:
        call()
        results[name] = ["no error", ""]
    except Exception as e:
        results[name] = [type(e).__name__, str(e)]

attempt("boot", lambda: cbpf.boot(elf))
attempt("Object", lambda: cbpf.Object(elf))
attempt("Object(attach=False)", lambda: cbpf.Object(elf, attach=False))
unloaded = cbpf.Object(elf, load=False)  # parsing needs no privilege
results["programs before load"] = sorted(unloaded.programs)
attempt("Object.load", unloaded.load)
results["closed by the refused load"] = unloaded.closed
attempt("load again", unloaded.load)
unloaded.close()
attempt("Map.create", lambda: cbpf.Map.create("hash", 4, 8, 16))
attempt("Map.create(array)", lambda: cbpf.Map.create("array", 4, 8, 16, name="unpriv"))
attempt("Map.from_pinned", lambda: cbpf.Map.from_pinned(pinned))
results["booted"] = len(cbpf.booted())
print(json.dumps(results))
"""


def run_as_nobody(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(cbpf.__file__).resolve().parent.parent)}
    return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all",
                           "--bounding-set=-all", sys.executable, *args], capture_output=True, text=True,
                          input=stdin, env=env, cwd="/", timeout=120)


def test_every_entry_point_tells_an_unprivileged_user_to_get_privileges(bpf_objects):
    pinned = f"/sys/fs/bpf/cbpf-unprivileged-{os.getpid()}"
    m = Map.create("hash", 4, 8, 16)
    m.pin(pinned)
    try:
        r = run_as_nobody("-c", UNPRIVILEGED_SCRIPT, pinned,
                          stdin=Path(bpf_objects["counter"]).read_bytes().decode("latin-1"))
    finally:
        m.unpin()
        m.close()
    assert r.returncode == 0, r.stderr
    results = json.loads(r.stdout)
    assert results.pop("programs before load") == ["count_getpid"]
    assert results.pop("closed by the refused load") is True
    assert results.pop("load again") == ["ValueError", "Object 'object' is closed"]  # named 'object': from bytes
    assert results.pop("booted") == 0
    fix = "run as root, or grant CAP_BPF and CAP_PERFMON"
    assert {name: kind for name, (kind, _) in results.items()} == dict.fromkeys(results, "PermissionError")
    assert all(fix in message for _, message in results.values()), results


def test_the_monitor_run_unprivileged_says_what_to_do():
    r = run_as_nobody("-m", "cbpf", "--duration", "0.1")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith("cbpf: ") and "run as root, or grant CAP_BPF" in r.stderr, r.stderr


def kernel_ids(fd: int) -> dict[str, int]:
    """The kernel's ids of what an fd holds, from /proc/self/fdinfo (prog_id, map_id, link_id)."""
    ids = {}
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("prog_id", "map_id", "link_id"):
                ids[key] = int(value)
    return ids


def in_kernel(kind: str, ident: int) -> bool:
    return subprocess.run(["bpftool", kind, "show", "id", str(ident)], capture_output=True).returncode == 0


@pytest.mark.parametrize("how", ["close", "garbage collection"])
def test_links_maps_and_programs_are_gone_from_the_kernel(bpf_objects, how):
    obj = cbpf.Object(bpf_objects["counter"])
    held = [("map", kernel_ids(m.fd)["map_id"]) for m in obj.maps.values()]
    held += [("prog", kernel_ids(p.fd)["prog_id"]) for p in obj.programs.values()]
    held += [("link", link.id) for link in obj.links]
    assert sorted({kind for kind, _ in held}) == ["link", "map", "prog"]
    assert all(in_kernel(kind, ident) for kind, ident in held)
    if how == "close":
        obj.close()
    else:
        del obj
        gc.collect()
    deadline = time.monotonic() + 10  # the kernel frees programs and maps after an RCU grace period
    while (left := [(k, i) for k, i in held if in_kernel(k, i)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left == []

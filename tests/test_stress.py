"""8 threads for a bounded time, each doing at random what a program may do to cbpf's objects while others use them:
map reads, writes and batches, globals writes, load(), attach and detach, pin and unpin, stream polls, close().
The mix runs in a child interpreter (a crash fails the test instead of killing the suite); it must end with no
crash, no exception outside the documented ones (ValueError for a closed or not-yet-loaded object, RuntimeError
while another thread loads it), and no fd left open.

CBPF_STRESS_SECONDS sets how long (default 6).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.kernel

CHILD = r"""
import errno, json, os, random, sys, threading, time, traceback
import cbpf

MAPS, EVENTS, SECONDS = sys.argv[1], sys.argv[2], float(sys.argv[3])
PIN_DIR = f"/sys/fs/bpf/cbpf-stress-{os.getpid()}"

def fds():
    return sorted(os.listdir("/proc/self/fd"))

cbpf.Map.create("array", 4, 4, 1).close()
fds_before = len(fds())
lock = threading.Lock()
counts = {}
unexpected = []
shared = cbpf.Map.create("hash", 4, 8, 1024)
slots = [None] * 4   # Objects (maps.bpf.c) that threads load, use, and close and replace
streams = [None]     # an Object of events.bpf.c with its RingBuffer
links = []

def slot():
    i = random.randrange(len(slots))
    with lock:
        if slots[i] is None or slots[i].closed:
            slots[i] = cbpf.Object(MAPS, load=False, attach=False)
        return slots[i]

def op_map_rw(r):
    k = r.randrange(256)
    shared[k] = k * 3
    v = shared.fetch(k)
    assert v in (None, 0, k * 3), v  # another thread may have deleted it, or op_map_batch written 0 over it
    shared.delete(r.randrange(256))

def op_map_batch(r):
    keys = b"".join(i.to_bytes(4, sys.byteorder) for i in range(r.randrange(1, 64)))
    shared.update_batch(keys, bytes(8 * (len(keys) // 4)))
    dict(shared.items()), shared.to_dict(), len(shared)
    shared.delete_batch(keys)

def op_object_maps(r):
    o = slot()
    m = o.maps["stats" if r.random() < 0.5 else "mm_counts"]
    if m.name == "mm_counts":
        m[r.randrange(8)] = r.randrange(100)
        m.fetch(r.randrange(8)), list(m.items())
    else:
        m.update(r.randrange(64), bytes(m.value_size))
        m.to_dict(), m.delete_batch(bytes(4) * 0 or (0).to_bytes(4, sys.byteorder))

def op_globals(r):
    o = slot()
    g = o.globals
    g["increment"] = r.randrange(10)
    if not o.loaded:
        g["target_tgid"] = os.getpid()

def op_load(r):
    slot().load()

def op_attach_detach(r):
    o = slot()
    try:
        link = o.programs["on_getpid"].attach()
    except FileExistsError:
        return  # the kernel runs a program once per tracepoint: another thread's Link holds it
    with lock:
        links.append(link)
    os.getpid()
    with lock:
        victim = links.pop(r.randrange(len(links))) if links else None
    if victim is not None:
        victim.detach()

def op_pin(r):
    o = slot()
    m = o.maps["stats"]
    path = f"{PIN_DIR}-{threading.get_native_id()}-{r.randrange(4)}"
    try:
        m.pin(path)
    except ValueError as e:
        if "pinned already" not in str(e):
            raise
    try:
        m.unpin()
    except ValueError as e:
        if "not pinned" not in str(e):
            raise

def op_stream(r):
    with lock:
        if streams[0] is None or streams[0][0].closed:
            o = cbpf.Object(EVENTS)
            o.globals["target_tgid"] = os.getpid()
            streams[0] = (o, cbpf.RingBuffer(o.maps["events"], lambda data: None))
        o, rb = streams[0]
    os.getpid()
    rb.poll(0)
    if r.random() < 0.05:
        rb.close()
        o.close()

def op_close(r):
    if r.random() < 0.3:
        slot().close()

OPS = [op_map_rw, op_map_batch, op_object_maps, op_globals, op_load, op_attach_detach, op_pin, op_stream, op_close]
EXPECTED = (ValueError, RuntimeError)

def worker(seed, deadline):
    r = random.Random(seed)
    while time.monotonic() < deadline:
        op = r.choice(OPS)
        try:
            op(r)
            outcome = "ok"
        except EXPECTED as e:
            outcome = type(e).__name__
        except OSError as e:
            # EBADF and the like would mean an fd used after close: only a map a closed object emptied under us
            outcome = "OSError"
            with lock:
                unexpected.append(f"{op.__name__}: {type(e).__name__}: {e}")
        except Exception as e:
            with lock:
                unexpected.append(f"{op.__name__}: {traceback.format_exc()}")
            outcome = "unexpected"
        with lock:
            key = f"{op.__name__} {outcome}"
            counts[key] = counts.get(key, 0) + 1

deadline = time.monotonic() + SECONDS
threads = [threading.Thread(target=worker, args=(seed, deadline)) for seed in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for link in links:
    link.detach()
for o in slots:
    if o is not None:
        o.close()
if streams[0] is not None:
    streams[0][1].close()
    streams[0][0].close()
shared.close()
del links[:], slots[:], streams[:]
import gc; gc.collect()
left = [(fd, os.readlink(f"/proc/self/fd/{fd}")) for fd in fds()[fds_before - len(fds()) or len(fds()):]]
print(json.dumps({"counts": counts, "unexpected": unexpected[:20], "fds_before": fds_before, "fds_after": len(fds()),
                  "pins_left": [p for p in os.listdir("/sys/fs/bpf") if p.startswith(os.path.basename(PIN_DIR))]}))
"""


def test_eight_threads_mixing_every_operation(bpf_objects):
    seconds = os.environ.get("CBPF_STRESS_SECONDS", "6")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    r = subprocess.run([sys.executable, "-X", "faulthandler", "-c", textwrap.dedent(CHILD), str(bpf_objects["maps"]),
                        str(bpf_objects["events"]), seconds], capture_output=True, text=True,
                       timeout=float(seconds) + 120, env=env)
    assert r.returncode == 0, f"the child died (exit {r.returncode}):\n{r.stderr[-4000:]}"
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["unexpected"] == [], "\n".join(result["unexpected"])
    assert result["fds_after"] == result["fds_before"], result
    assert result["pins_left"] == []
    ran = {key.split()[0] for key, n in result["counts"].items() if n and key.endswith(" ok")}
    assert ran == {"op_map_rw", "op_map_batch", "op_object_maps", "op_globals", "op_load", "op_attach_detach",
                   "op_pin", "op_stream", "op_close"}, result["counts"]

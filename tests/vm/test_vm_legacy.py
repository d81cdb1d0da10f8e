"""Legacy dialects where a VM kernel has what the development kernel lacks (kprobes): gobpf's kprobe section, and
issue #20's question about the first kprobe-fed PerfBuffer of a fresh process (tests/bpf/vm_legacy_*.bpf.c)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import cbpf
from test_vm_attach import CALLS, bpf_objects, getpid_n, need_kprobes  # noqa: F401 - bpf_objects is a fixture

pytestmark = pytest.mark.vmkernel


def test_gobpf_kprobe_section_counts_getpid(bpf_objects):  # noqa: F811
    need_kprobes()
    pid = os.getpid()
    with cbpf.Object(bpf_objects["vm_legacy_gobpf"], attach=False) as obj:
        assert obj.dialect == "gobpf"
        with obj.programs["kprobe_getpid"].attach() as link:
            assert link.target == "kprobe/__x64_sys_getpid"
            getpid_n(CALLS)
        getpid_n(10)  # detached
        assert obj.maps["kcalls"].fetch(pid) == CALLS
        # kprobe/SyS_getpid, a 4.x kernel's name: attached to the syscall's wrapper of today
        with obj.programs["kprobe_compat"].attach() as link:
            assert link.target == "kprobe/SyS_getpid"
            getpid_n(CALLS)
        assert obj.maps["compat_calls"].fetch(pid) == CALLS
    os.unlink("/sys/fs/bpf/cbpf_gobpf/globals/shared")  # the guest's bpffs, but tidy all the same


# One fresh interpreter: three PerfBuffers in turn, each fed 20 samples by the kprobe; what each got, as JSON.
FRESH = """
import json, os, sys, time
import cbpf
path = sys.argv[1]
got_per_stream = []
with cbpf.Object(path, attach=False) as obj:
    obj.maps["perf_target"][0] = os.getpid()
    for stream in range(3):
        got = []
        on_sample = lambda data: got.append(int.from_bytes(data[:8], "little"))
        with cbpf.PerfBuffer(obj.maps["perf_samples"], on_sample) as pb:
            with obj.programs["perf_getpid"].attach():
                for _ in range(20):
                    os.getpid()
            deadline = time.monotonic() + 10
            while len(got) < 20 and time.monotonic() < deadline:
                pb.poll(0.1)
            got_per_stream.append({"got": len(got), "lost": pb.lost, "first": got[:1]})
print(json.dumps({"uptime": float(open("/proc/uptime").read().split()[0]), "streams": got_per_stream}))
"""


def test_the_first_perf_buffer_of_a_fresh_process_gets_every_sample(bpf_objects):  # noqa: F811
    """Issue #20, item 8: once, in a freshly booted 6.1 VM, a process's first kprobe-fed PerfBuffer got 0 of 20
    samples. Three fresh processes, three streams each: every stream must get all 20, in sequence; the guest's
    uptime is reported so that a failure tells whether the VM had just booted."""
    need_kprobes()
    runs = []
    for _ in range(3):
        r = subprocess.run([sys.executable, "-c", FRESH, str(bpf_objects["vm_legacy_perf"])], capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        runs.append(json.loads(r.stdout))
    print("fresh processes:", runs)
    expected_first = 0
    for run in runs:
        for stream in run["streams"]:
            assert (stream["got"], stream["lost"]) == (20, 0), runs
            assert stream["first"] == [expected_first], runs  # no sample went missing before the stream saw one
            expected_first += 20
        expected_first = 0  # each process loads its own object: the sequence starts again

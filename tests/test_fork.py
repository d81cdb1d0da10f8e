"""Fork semantics (issue #14): a forked child may use what it inherits, but closing an Object, detaching a Link or
freeing a PerfBuffer in the child (or the child's exit) never tears down what the parent attached. Each test
attaches in this process, forks a child that detaches and closes everything, then checks the parent's Link still
says attached and its program still counts exactly the events the test causes.
"""

from __future__ import annotations

import gc
import os
import socket
import struct
import subprocess
import sys
import textwrap
import time

import pytest
from test_attach import (UDP_PORT, ProbeBinaries, VethPair, busy, cgroup2_root, getpid_n, in_netns, samples,
                         send_from_cgroup)

import cbpf

pytestmark = pytest.mark.kernel


def in_child(*teardown) -> None:
    """Forks; the child runs each teardown call (close, detach), collects, and exits 0 when none raised."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            for f in teardown:
                f()
            gc.collect()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def teardown_of(obj: cbpf.Object, link: cbpf.Link):
    """What a child may do with what it inherited: detach the Link, then close the Object."""
    return (link.detach, lambda: link.attached and os._exit(2), obj.close)


@pytest.fixture(scope="module")
def veth():
    pair = VethPair()
    yield pair
    pair.remove()


@pytest.fixture(scope="module")
def probe_binaries(tmp_path_factory) -> ProbeBinaries:
    return ProbeBinaries(tmp_path_factory.mktemp("fork-probes"))


@pytest.fixture
def net(bpf_objects):
    with cbpf.Object(bpf_objects["net"], attach=False) as obj:
        obj.globals["udp_port"] = UDP_PORT
        yield obj


def test_tracepoint_survives_the_childs_teardown(bpf_objects):
    with cbpf.Object(bpf_objects["tracing"], attach=False) as obj:
        obj.globals["target_tgid"] = os.getpid()
        link = obj.programs["tp_getpid"].attach_tracepoint("syscalls", "sys_enter_getpid")
        in_child(*teardown_of(obj, link))
        assert link.attached
        before = obj.globals["tp_calls"]
        getpid_n(25)
        assert obj.globals["tp_calls"] - before == 25
        link.detach()
        before = obj.globals["tp_calls"]
        getpid_n(5)
        assert obj.globals["tp_calls"] == before


def test_uprobe_survives_the_childs_teardown(bpf_objects, probe_binaries):
    with cbpf.Object(bpf_objects["probes"], attach=False) as obj:
        obj.globals["target_tgid"] = os.getpid()
        link = obj.programs["on_entry"].attach_uprobe(probe_binaries.library, "cbpf_test_add")
        for i in range(7):
            probe_binaries.lib.cbpf_test_add(i, 1)
        assert obj.globals["entry_calls"] == 7
        in_child(*teardown_of(obj, link))
        assert link.attached
        for i in range(13):
            probe_binaries.lib.cbpf_test_add(i, 1)
        assert obj.globals["entry_calls"] == 20


def test_perf_event_survives_the_childs_teardown(bpf_objects):
    with cbpf.Object(bpf_objects["perf"], attach=False) as obj:
        link = obj.programs["on_sample"].attach_perf_event(cbpf.PerfType.SOFTWARE, cbpf.PerfSoftware.CPU_CLOCK,
                                                          sample_freq=1000)
        in_child(*teardown_of(obj, link))
        assert link.attached
        me = os.getpid()
        before = sum(n for (_, tgid), n in samples(obj).items() if tgid == me)
        busy(0.3)  # 1000 Hz for 0.3 s of CPU: some hundreds of samples of this process
        after = sum(n for (_, tgid), n in samples(obj).items() if tgid == me)
        assert after - before >= 50, (before, after)


def test_xdp_survives_the_childs_teardown(net, veth):
    with in_netns(veth.b):
        link = net.programs["xdp_count"].attach_xdp("vb")
    veth.send(4)
    in_child(*teardown_of(net, link))
    assert link.attached
    veth.send(16)
    assert net.globals["xdp_packets"] == 20


@pytest.mark.parametrize("tcx", [True, False], ids=["tcx", "clsact"])
def test_tc_survives_the_childs_teardown(net, veth, tcx):
    with in_netns(veth.b):
        link = net.programs["tc_count"].attach_tc("vb", tcx=tcx)
    veth.send(3)
    in_child(*teardown_of(net, link))
    assert link.attached
    veth.send(9)
    assert net.globals["tc_packets"] == 12
    if not tcx:
        filters = subprocess.run(["ip", "netns", "exec", veth.b, "tc", "filter", "show", "dev", "vb", "ingress"],
                                 capture_output=True, text=True, check=True)
        assert "tc_count" in filters.stdout
    link.detach()
    veth.send(2)
    assert net.globals["tc_packets"] == 12


def test_socket_filter_survives_the_childs_teardown(net):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        link = net.programs["socket_count"].attach_socket(b)
        a.send(b"1")
        b.recv(10)
        in_child(*teardown_of(net, link))
        assert link.attached
        for _ in range(30):
            a.send(b"x")
            b.recv(10)
        assert net.globals["socket_packets"] == 31


def test_cgroup_survives_the_childs_teardown(net):
    cgroup = cgroup2_root() / f"cbpf-fork-{os.getpid()}"
    cgroup.mkdir()
    try:
        link = net.programs["cgroup_egress"].attach_cgroup(cgroup)
        in_child(*teardown_of(net, link))
        assert link.attached
        send_from_cgroup(cgroup, 11)
        assert net.globals["cgroup_packets"] == 11
        link.detach()
    finally:
        cgroup.rmdir()


def test_iterator_survives_the_childs_teardown(bpf_objects):
    with cbpf.Object(bpf_objects["tracing"], attach=False) as obj:
        link = obj.programs["dump_task"].attach_iter()
        in_child(*teardown_of(obj, link))
        assert link.attached
        assert str(os.getpid()).encode() in link.read()


def test_perf_buffer_survives_the_childs_close(bpf_objects):
    with cbpf.Object(bpf_objects["events"]) as obj:
        obj.globals["target_tgid"] = os.getpid()
        obj.globals["outputs"] = 4
        obj.globals["burst"] = 1
        got: list[bytes] = []
        with cbpf.PerfBuffer(obj.maps["perf_events"], got.append) as pb:
            in_child(pb.close, obj.close)
            getpid_n(40)
            deadline = time.monotonic() + 5
            while len(got) < 40 and time.monotonic() < deadline:
                pb.poll(0.1)
            assert len(got) == 40
            assert {struct.unpack_from("=I", e)[0] for e in got} == {os.getpid()}


def test_pinned_link_keeps_its_pin_when_a_child_detaches(bpf_objects):
    path = f"/sys/fs/bpf/cbpf-fork-{os.getpid()}"
    with cbpf.Object(bpf_objects["tracing"], attach=False) as obj:
        obj.globals["target_tgid"] = os.getpid()
        link = obj.programs["tp_getpid"].attach_tracepoint("syscalls", "sys_enter_getpid")
        link.pin(path)
        in_child(link.detach)
        assert os.path.exists(path) and link.pin_path == path
        link.detach()
        assert not os.path.exists(path)


def test_a_child_exiting_without_closing_leaves_the_parents_attachments(bpf_objects):
    """No close(): the child's interpreter exits and collects what it inherited."""
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import os, socket, cbpf
        obj = cbpf.Object({str(bpf_objects["net"])!r}, attach=False)
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        link = obj.programs["socket_count"].attach_socket(b)
        tr = cbpf.Object({str(bpf_objects["tracing"])!r}, attach=False)
        tr.globals["target_tgid"] = os.getpid()
        tl = tr.programs["tp_getpid"].attach_tracepoint("syscalls", "sys_enter_getpid")
        pid = os.fork()
        if pid == 0:
            raise SystemExit(0)  # the interpreter's own exit: finalizers run
        os.waitpid(pid, 0)
        for _ in range(12):
            a.send(b"x")
            b.recv(4)
        before = tr.globals["tp_calls"]
        for _ in range(8):
            os.getpid()
        print(link.attached, tl.attached, obj.globals["socket_packets"], tr.globals["tp_calls"] - before)
    """)], capture_output=True, text=True, timeout=120,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p)))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "True", "12", "8"]

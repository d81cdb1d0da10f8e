"""Program and Link against the live kernel: every attach point this kernel offers, counting events the tests cause.

Network tests run in two network namespaces joined by a veth pair that the module creates (and removes); cgroup tests
in a cgroup v2 directory of their own. Programs are in tests/bpf/{tracing,probes,perf,net}.bpf.c.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import gc
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

import cbpf

from conftest import open_fds

pytestmark = pytest.mark.kernel

CLONE_NEWNET = 0x40000000
UDP_PORT = 47999


def getpid_n(n: int) -> None:
    for _ in range(n):
        os.getpid()  # glibc issues the system call every time


def kernel_version() -> tuple[int, int]:
    major, minor = re.match(r"(\d+)\.(\d+)", os.uname().release).groups()  # type: ignore[union-attr]
    return int(major), int(minor)


def has_kprobes() -> bool:
    return os.path.exists("/sys/bus/event_source/devices/kprobe")


def wait_until_stable(read, cause, timeout: float = 5.0) -> int:
    """Removing a bpffs pin releases the link from a kernel work queue: wait until events stop counting."""
    deadline = time.monotonic() + timeout
    while True:
        before = read()
        cause()
        time.sleep(0.02)
        if read() == before:
            return before
        assert time.monotonic() < deadline, "the link went on counting after its pin was removed"


# ---- programs and their attributes ---------------------------------------------------------------------------

@pytest.fixture
def tracing(bpf_objects):
    obj = cbpf.Object(bpf_objects["tracing"], attach=False)
    obj.globals["target_tgid"] = os.getpid()
    yield obj
    obj.close()


def test_programs_and_their_attributes(tracing):
    assert set(tracing.programs) == {"tp_getpid", "raw_getpid", "btf_getpid", "dump_task"}
    tp = tracing.programs["tp_getpid"]
    assert isinstance(tp, cbpf.Program)
    assert (tp.name, tp.section, tp.type) == ("tp_getpid", "tracepoint/syscalls/sys_enter_getpid",
                                              cbpf.ProgramType.TRACEPOINT)
    assert tracing.programs["raw_getpid"].type == cbpf.ProgramType.RAW_TRACEPOINT
    assert tracing.programs["btf_getpid"].type == cbpf.ProgramType.TRACING
    assert os.readlink(f"/proc/self/fd/{tp.fd}") == "anon_inode:bpf-prog"
    assert tp.insn_count > 0
    assert tp.autoload and tp.autoattach
    assert tp.object is tracing
    assert repr(tp) == "<cbpf.Program 'tp_getpid' section='tracepoint/syscalls/sys_enter_getpid' type=tracepoint>"
    with pytest.raises(TypeError):
        cbpf.Program()
    with pytest.raises(TypeError):
        cbpf.Link()
    tracing.close()
    assert tp.fd == -1 and tp.name == "tp_getpid"
    with pytest.raises(ValueError, match="program 'tp_getpid' is closed"):
        tp.attach()
    with pytest.raises(ValueError, match="closed"):
        tp.insn_count


def test_attach_tracepoint_counts_exactly_and_detach_stops_it(tracing):
    link = tracing.programs["tp_getpid"].attach_tracepoint("syscalls", "sys_enter_getpid")
    assert isinstance(link, cbpf.Link)
    assert link.target == "tracepoint syscalls/sys_enter_getpid"
    assert link.attached and link.id > 0
    assert os.readlink(f"/proc/self/fd/{link.fd}") == "anon_inode:bpf_link"
    assert link.program is tracing.programs["tp_getpid"]
    assert tracing.links == (link,) and tracing.attached_count == 1
    getpid_n(1000)
    assert tracing.globals["tp_calls"] == 1000
    link.detach()
    assert not link.attached and link.fd == -1 and tracing.attached_count == 0
    getpid_n(500)
    assert tracing.globals["tp_calls"] == 1000
    link.detach()  # twice is fine
    assert repr(link) == "<cbpf.Link tracepoint syscalls/sys_enter_getpid of program 'tp_getpid' (detached)>"


@pytest.mark.parametrize("program, attach, target, counter", [
    ("raw_getpid", lambda p: p.attach_raw_tracepoint("sys_enter"), "raw_tracepoint sys_enter", "raw_calls"),
    ("btf_getpid", lambda p: p.attach(), "tp_btf/sys_enter", "btf_calls"),  # tp_btf attaches by section name
])
def test_raw_tracepoint_and_tp_btf_count_exactly(tracing, program, attach, target, counter):
    link = attach(tracing.programs[program])
    assert link.target == target
    getpid_n(777)
    assert tracing.globals[counter] == 777
    link.detach()
    getpid_n(100)
    assert tracing.globals[counter] == 777


def test_link_is_a_context_manager(tracing):
    with tracing.programs["tp_getpid"].attach() as link:
        getpid_n(50)
    assert not link.attached
    getpid_n(50)
    assert tracing.globals["tp_calls"] == 50


def test_attach_all_makes_links_the_object_keeps(bpf_objects):
    with cbpf.Object(bpf_objects["tracing"]) as obj:
        assert obj.attached_count == 4  # tracepoint, raw tracepoint, tp_btf and the task iterator
        assert sorted(link.target for link in obj.links) == [
            "iter/task", "raw_tracepoint/sys_enter", "tp_btf/sys_enter", "tracepoint/syscalls/sys_enter_getpid"]
        obj.globals["target_tgid"] = os.getpid()
        getpid_n(200)
        assert [obj.globals[n] for n in ("tp_calls", "raw_calls", "btf_calls")] == [200, 200, 200]
        with pytest.raises(ValueError, match="already attached"):
            obj.attach()
        links = obj.links
    assert not any(link.attached for link in links)


def test_autoload_and_autoattach_set_before_load(bpf_objects):
    with cbpf.Object(bpf_objects["tracing"], load=False) as obj:
        btf, raw = obj.programs["btf_getpid"], obj.programs["raw_getpid"]
        btf.autoload = False
        raw.autoattach = False
        obj.load()
        with pytest.raises(ValueError, match="autoload of program 'raw_getpid' can only change before"):
            raw.autoload = False
        obj.attach()
        assert sorted(link.target for link in obj.links) == ["iter/task", "tracepoint/syscalls/sys_enter_getpid"]
        assert btf.fd == -1 and not btf.autoload
        with pytest.raises(ValueError, match="autoload was False"):
            btf.attach()
        obj.globals["target_tgid"] = os.getpid()
        getpid_n(40)
        assert [obj.globals[n] for n in ("tp_calls", "raw_calls", "btf_calls")] == [40, 0, 0]
        link = raw.attach()  # autoattach only concerns Object.attach()
        getpid_n(2)
        assert [obj.globals[n] for n in ("tp_calls", "raw_calls", "btf_calls")] == [42, 2, 0]


def test_attach_before_load_is_refused(bpf_objects):
    with cbpf.Object(bpf_objects["tracing"], load=False) as obj:
        with pytest.raises(ValueError, match="program 'tp_getpid' is not loaded: call Object.load"):
            obj.programs["tp_getpid"].attach_tracepoint("syscalls", "sys_enter_getpid")


def test_garbage_collected_link_detaches(tracing):
    tracing.programs["tp_getpid"].attach_tracepoint("syscalls", "sys_enter_getpid")  # dropped at once
    gc.collect()
    assert tracing.attached_count == 0
    link = tracing.programs["tp_getpid"].attach_tracepoint("syscalls", "sys_enter_getpid")
    getpid_n(10)
    del link
    gc.collect()
    getpid_n(10)
    assert tracing.globals["tp_calls"] == 10


def test_link_keeps_its_program_and_object_alive(bpf_objects):
    before = open_fds()
    obj = cbpf.Object(bpf_objects["tracing"], attach=False)
    obj.globals["target_tgid"] = os.getpid()
    link = obj.programs["tp_getpid"].attach_tracepoint("syscalls", "sys_enter_getpid")
    del obj
    gc.collect()
    getpid_n(25)
    assert not link.program.object.closed
    assert link.program.object.globals["tp_calls"] == 25
    del link
    gc.collect()
    assert open_fds() == before


def test_collected_cycles_of_objects_programs_and_links(bpf_objects):
    before = open_fds()
    for _ in range(20):
        obj = cbpf.Object(bpf_objects["tracing"])  # the object keeps four links: Object -> Link -> Program -> Object
        cycle: list[object] = [obj, obj.programs["dump_task"].attach_iter()]
        cycle.append(cycle)
        del obj, cycle
        gc.collect()
    assert open_fds() == before


def test_close_detaches_every_link_and_releases_every_fd(bpf_objects, probe_binaries):
    before = open_fds()
    obj = cbpf.Object(bpf_objects["tracing"], load=False)
    obj.programs["tp_getpid"].autoattach = obj.programs["raw_getpid"].autoattach = False
    obj.load()
    obj.attach()  # two links the object keeps: tp_btf and the iterator
    explicit = [obj.programs["tp_getpid"].attach_tracepoint("syscalls", "sys_enter_getpid"),
                obj.programs["raw_getpid"].attach_raw_tracepoint("sys_enter"),
                obj.programs["dump_task"].attach_iter()]
    probes = cbpf.Object(bpf_objects["probes"], attach=False)
    explicit.append(probes.programs["on_entry"].attach_uprobe(probe_binaries.library, "cbpf_test_add"))
    assert obj.attached_count == 5 and probes.attached_count == 1
    obj.globals["target_tgid"] = os.getpid()
    getpid_n(10)
    assert [obj.globals[n] for n in ("tp_calls", "raw_calls", "btf_calls")] == [10, 10, 10]
    obj.close()
    probes.close()
    assert not any(link.attached for link in explicit)
    assert all(link.fd == -1 for link in explicit)
    assert open_fds() == before  # the Link objects still exist; what they held is gone
    explicit[0].detach()  # detaching a link of a closed object is a no-op


def test_task_iterator_lists_this_process(tracing):
    link = tracing.programs["dump_task"].attach_iter()
    assert link.target == "iter/task"
    comm = Path("/proc/self/comm").read_text().strip()
    for _ in range(2):  # each read() runs the iterator anew
        lines = [line.split(" ", 2) for line in link.read().decode().splitlines()]
        ours = [(int(tid), name) for tgid, tid, name in lines if int(tgid) == os.getpid()]
        assert (os.getpid(), comm) in ours
        assert len(ours) == len(os.listdir("/proc/self/task"))  # one line per thread of this process
    link.detach()
    with pytest.raises(ValueError, match="detached"):
        link.read()


def test_read_is_for_iterators(tracing):
    link = tracing.programs["tp_getpid"].attach()
    with pytest.raises(TypeError, match="not an iterator"):
        link.read()
    with pytest.raises(TypeError, match="not an iterator: attach_iter"):
        tracing.programs["tp_getpid"].attach_iter()


# ---- user-space probes -----------------------------------------------------------------------------------------

LIBRARY_C = """
__attribute__((noinline)) long cbpf_test_add(long a, long b) { return a + b; }
"""

USDT_C = """
#include <stdlib.h>
#include <sys/sdt.h>
int main(int argc, char **argv)
{
    int n = atoi(argv[1]);
    for (int i = 1; i <= n; i++)
        DTRACE_PROBE1(cbpf, tick, i);
    return 0;
}
"""


class ProbeBinaries:
    def __init__(self, directory: Path) -> None:
        self.library = directory / "libcbpftest.so"
        self.usdt = directory / "usdt_ticks"
        (directory / "lib.c").write_text(LIBRARY_C)
        (directory / "usdt.c").write_text(USDT_C)
        for cmd in (["gcc", "-O1", "-shared", "-fPIC", "-o", str(self.library), str(directory / "lib.c")],
                    ["gcc", "-O1", "-o", str(self.usdt), str(directory / "usdt.c")]):
            r = subprocess.run(cmd, capture_output=True, text=True)
            assert r.returncode == 0, f"{' '.join(cmd)}:\n{r.stderr}"
        self.lib = ctypes.CDLL(str(self.library))
        self.lib.cbpf_test_add.restype = ctypes.c_long
        self.lib.cbpf_test_add.argtypes = [ctypes.c_long, ctypes.c_long]

    def file_offset(self, symbol: str) -> int:
        """The symbol's offset in the file (what a uprobe without a symbol takes), from readelf."""
        syms = subprocess.run(["readelf", "-sW", str(self.library)], capture_output=True, text=True, check=True)
        vaddr = next(int(f[1], 16) for f in (line.split() for line in syms.stdout.splitlines())
                     if len(f) >= 8 and f[7] == symbol)
        segs = subprocess.run(["readelf", "-lW", str(self.library)], capture_output=True, text=True, check=True)
        for f in (line.split() for line in segs.stdout.splitlines()):
            if f and f[0] == "LOAD":
                offset, seg_vaddr, memsz = int(f[1], 16), int(f[2], 16), int(f[5], 16)
                if seg_vaddr <= vaddr < seg_vaddr + memsz:
                    return vaddr - seg_vaddr + offset
        raise AssertionError(f"{symbol} is in no LOAD segment")


@pytest.fixture(scope="module")
def probe_binaries(tmp_path_factory) -> ProbeBinaries:
    return ProbeBinaries(tmp_path_factory.mktemp("probes"))


@pytest.fixture
def probes(bpf_objects):
    with cbpf.Object(bpf_objects["probes"], attach=False) as obj:
        yield obj


def test_uprobe_and_uretprobe_count_exact_calls(probes, probe_binaries):
    entry = probes.programs["on_entry"].attach_uprobe(probe_binaries.library, "cbpf_test_add")
    ret = probes.programs["on_return"].attach_uprobe(str(probe_binaries.library), "cbpf_test_add", retprobe=True)
    assert entry.target == f"uprobe {probe_binaries.library}:cbpf_test_add"
    assert ret.target == f"uretprobe {probe_binaries.library}:cbpf_test_add"
    n = 321
    for i in range(1, n + 1):
        assert probe_binaries.lib.cbpf_test_add(i, 1000) == i + 1000
    g = probes.globals
    assert (g["entry_calls"], g["entry_arg_sum"]) == (n, n * (n + 1) // 2)
    assert (g["return_calls"], g["return_sum"]) == (n, n * (n + 1) // 2 + 1000 * n)
    entry.detach()
    ret.detach()
    probe_binaries.lib.cbpf_test_add(1, 1)
    assert (g["entry_calls"], g["return_calls"]) == (n, n)


def test_uprobe_for_one_process(probes, probe_binaries):
    prog = probes.programs["on_entry"]
    other = subprocess.Popen(["sleep", "60"])
    try:
        mine = prog.attach_uprobe(probe_binaries.library, "cbpf_test_add", pid=os.getpid())
        theirs = prog.attach_uprobe(probe_binaries.library, "cbpf_test_add", pid=other.pid)
        for i in range(40):
            probe_binaries.lib.cbpf_test_add(i, i)
        assert probes.globals["entry_calls"] == 40  # only the link of this process fired
        mine.detach()
        probe_binaries.lib.cbpf_test_add(1, 1)
        assert probes.globals["entry_calls"] == 40
        assert theirs.attached
    finally:
        other.kill()
        other.wait()


def test_uprobe_by_file_offset(probes, probe_binaries):
    offset = probe_binaries.file_offset("cbpf_test_add")
    link = probes.programs["on_entry"].attach_uprobe(probe_binaries.library, offset=offset)
    assert link.target == f"uprobe {probe_binaries.library}:{offset:#x}"
    for i in range(17):
        probe_binaries.lib.cbpf_test_add(i, 0)
    assert probes.globals["entry_calls"] == 17


def test_uprobe_on_a_library_by_name(probes):
    probes.globals["target_tgid"] = os.getpid()
    link = probes.programs["on_entry"].attach_uprobe("libc", "getpid")
    assert re.fullmatch(r"uprobe /\S*/libc\.so\.6:getpid", link.target), link.target
    getpid_n(250)
    assert probes.globals["entry_calls"] == 250


def test_usdt_counts_the_probes_a_program_fires(probes, probe_binaries):
    link = probes.programs["on_tick"].attach_usdt(probe_binaries.usdt, "cbpf", "tick")
    assert link.target == f"usdt {probe_binaries.usdt}:cbpf:tick"
    subprocess.run([probe_binaries.usdt, "25"], check=True)
    assert (probes.globals["usdt_calls"], probes.globals["usdt_arg_sum"]) == (25, 25 * 26 // 2)
    link.detach()
    subprocess.run([probe_binaries.usdt, "5"], check=True)
    assert probes.globals["usdt_calls"] == 25


# ---- perf events -----------------------------------------------------------------------------------------------

def online_cpus() -> list[int]:
    cpus = []
    for part in Path("/sys/devices/system/cpu/online").read_text().strip().split(","):
        first, _, last = part.partition("-")
        cpus += range(int(first), int(last or first) + 1)
    return cpus


@contextlib.contextmanager
def on_cpu(cpu: int) -> Iterator[None]:
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, saved)


def busy(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def samples(obj) -> dict[tuple[int, int], int]:
    """{(cpu, tgid): samples}"""
    return {tuple(k): v for k, v in obj.maps["samples"].items()}  # typed by BTF: struct keys, u64 values


@pytest.fixture
def perf(bpf_objects):
    with cbpf.Object(bpf_objects["perf"], attach=False) as obj:
        yield obj


def test_perf_event_on_every_cpu(perf):
    before = open_fds()
    link = perf.programs["on_sample"].attach_perf_event(cbpf.PerfType.SOFTWARE, cbpf.PerfSoftware.CPU_CLOCK,
                                                        sample_freq=1000)
    opened = [target for fd, target in open_fds().items() if fd not in before]
    assert opened.count("anon_inode:[perf_event]") == len(online_cpus())  # one event per CPU, one Link
    for cpu in online_cpus():
        with on_cpu(cpu):
            busy(0.2)
    seen = samples(perf)
    for cpu in online_cpus():
        assert seen.get((cpu, os.getpid()), 0) > 0, f"no sample of this process on CPU {cpu}: {seen}"
    link.detach()
    assert open_fds() == before


def test_perf_event_on_one_cpu(perf):
    cpu = online_cpus()[-1]
    link = perf.programs["on_sample"].attach_perf_event(cbpf.PerfType.SOFTWARE, cbpf.PerfSoftware.CPU_CLOCK,
                                                        sample_freq=1000, cpu=cpu)
    assert link.target == f"perf_event type=1 config=0 cpu {cpu}"
    for c in online_cpus():
        with on_cpu(c):
            busy(0.2)
    seen = samples(perf)
    assert {c for c, _ in seen} == {cpu}  # the busy time on other CPUs gave no sample
    assert seen.get((cpu, os.getpid()), 0) > 0


def test_perf_event_of_one_process(perf):
    link = perf.programs["on_sample"].attach_perf_event(cbpf.PerfType.SOFTWARE, cbpf.PerfSoftware.TASK_CLOCK,
                                                        sample_period=1_000_000, pid=os.getpid())  # every 1 ms
    assert link.target == f"perf_event type=1 config=1 pid {os.getpid()}"
    busy(0.3)
    seen = samples(perf)
    assert {tgid for _, tgid in seen} == {os.getpid()}
    assert sum(seen.values()) > 0


def test_perf_event_arguments(perf):
    prog = perf.programs["on_sample"]
    with pytest.raises(ValueError, match="sample_period or sample_freq"):
        prog.attach_perf_event(cbpf.PerfType.SOFTWARE, cbpf.PerfSoftware.CPU_CLOCK)
    with pytest.raises(ValueError, match="sample_period or sample_freq"):
        prog.attach_perf_event(cbpf.PerfType.SOFTWARE, cbpf.PerfSoftware.CPU_CLOCK, sample_period=1, sample_freq=1)
    with pytest.raises(ValueError, match="sample_freq must be positive"):
        prog.attach_perf_event(cbpf.PerfType.SOFTWARE, cbpf.PerfSoftware.CPU_CLOCK, sample_freq=0)
    link = prog.attach_perf_event(cbpf.PerfType.SOFTWARE, cbpf.PerfSoftware.CPU_CLOCK, sample_freq=10)
    if len(online_cpus()) > 1:
        with pytest.raises(ValueError, match="one per CPU"):
            link.pin("/sys/fs/bpf/cbpf-never")


# ---- networks: XDP and tc on a veth pair between two namespaces ------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def in_netns(name: str) -> Iterator[None]:
    """Moves this thread into a network namespace (interface names and indexes are per namespace) and back."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    there = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(there, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {name}")
        yield
    finally:
        _libc.setns(home, CLONE_NEWNET)
        os.close(home)
        os.close(there)


class VethPair:
    """Namespace a holds va (10.77.0.1), namespace b holds vb (10.77.0.2); static neighbours, so no ARP."""

    def __init__(self) -> None:
        tag = os.getpid()
        self.a, self.b = f"cbpf{tag}a", f"cbpf{tag}b"
        self.addr_b = "10.77.0.2"
        mac_a, mac_b = "02:00:00:77:00:01", "02:00:00:77:00:02"
        for cmd in (f"netns add {self.a}", f"netns add {self.b}",
                    f"link add va address {mac_a} netns {self.a} type veth peer name vb address {mac_b} "
                    f"netns {self.b}",
                    f"-n {self.a} addr add 10.77.0.1/24 dev va", f"-n {self.b} addr add {self.addr_b}/24 dev vb",
                    f"-n {self.a} link set va up", f"-n {self.b} link set vb up",
                    f"-n {self.a} neigh add {self.addr_b} lladdr {mac_b} dev va nud permanent",
                    f"-n {self.b} neigh add 10.77.0.1 lladdr {mac_a} dev vb nud permanent"):
            subprocess.run(["ip", *cmd.split()], check=True, capture_output=True)

    def send(self, n: int) -> None:
        """n UDP datagrams from namespace a to b's port UDP_PORT, from a thread moved into a."""
        failure: list[BaseException] = []

        def run() -> None:
            try:
                with in_netns(self.a), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    for i in range(n):
                        s.sendto(b"datagram %d" % i, (self.addr_b, UDP_PORT))
            except BaseException as e:  # noqa: BLE001 - handed to the test's thread
                failure.append(e)

        t = threading.Thread(target=run)
        t.start()
        t.join()
        if failure:
            raise failure[0]

    def remove(self) -> None:
        for ns in (self.a, self.b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture(scope="module")
def veth():
    pair = VethPair()
    yield pair
    pair.remove()


@pytest.fixture
def net(bpf_objects):
    with cbpf.Object(bpf_objects["net"], attach=False) as obj:
        obj.globals["udp_port"] = UDP_PORT
        yield obj


@pytest.mark.parametrize("mode", [None, "skb", "native"])
def test_xdp_counts_the_datagrams_sent(net, veth, mode):
    with in_netns(veth.b):
        interface = "vb" if mode != "native" else socket.if_nametoindex("vb")  # by name or by index
        link = net.programs["xdp_count"].attach_xdp(interface, mode=mode)
    assert link.target == "xdp vb" + (f" mode {mode}" if mode else "")
    veth.send(64)
    assert net.globals["xdp_packets"] == 64
    link.detach()
    veth.send(8)
    assert net.globals["xdp_packets"] == 64


@pytest.mark.parametrize("direction", ["ingress", "egress"])
def test_tcx_counts_the_datagrams_sent(net, veth, direction):
    ns, interface = (veth.b, "vb") if direction == "ingress" else (veth.a, "va")
    with in_netns(ns):
        link = net.programs["tc_count"].attach_tc(interface, direction)
    if kernel_version() >= (6, 6):  # tcx
        assert link.target == f"tcx {direction} {interface}"
        assert os.readlink(f"/proc/self/fd/{link.fd}") == "anon_inode:bpf_link"
    else:  # older (VM) kernels: the fallback
        assert link.target == f"tc {direction} {interface} (clsact)"
    veth.send(50)
    assert net.globals["tc_packets"] == 50
    link.detach()
    veth.send(5)
    assert net.globals["tc_packets"] == 50


def test_tc_on_a_clsact_qdisc(net, veth):
    """The path for kernels before tcx, forced here; it is detached from another namespace than its own."""
    with in_netns(veth.b):
        link = net.programs["tc_count"].attach_tc("vb", tcx=False)
    assert link.target == "tc ingress vb (clsact)"
    assert link.fd == -1
    veth.send(30)
    assert net.globals["tc_packets"] == 30
    with pytest.raises(ValueError, match="cannot be pinned"):
        link.pin("/sys/fs/bpf/cbpf-never")
    link.detach()  # from this thread's own namespace: the filter is removed from vb's
    veth.send(7)
    assert net.globals["tc_packets"] == 30
    filters = subprocess.run(["ip", "netns", "exec", veth.b, "tc", "filter", "show", "dev", "vb", "ingress"],
                             capture_output=True, text=True, check=True)
    assert "tc_count" not in filters.stdout


def test_socket_filter_counts_exactly(net):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        link = net.programs["socket_count"].attach_socket(b)
        assert link.target == f"socket fd {b.fileno()}" and link.fd == -1
        for i in range(1, 101):
            a.send(b"x" * i)
        for i in range(1, 101):
            assert b.recv(200) == b"x" * i  # the filter keeps every byte
        assert net.globals["socket_packets"] == 100
        b.send(b"to a")  # the other end has no filter
        assert a.recv(10) == b"to a"
        link.detach()
        b.send(b"not counted")
        a.send(b"not counted")
        assert net.globals["socket_packets"] == 100
        link = net.programs["socket_count"].attach_socket(b.fileno())  # an fd works too
        a.send(b"counted")
        assert net.globals["socket_packets"] == 101
        with pytest.raises(ValueError, match="not a BPF link"):
            link.pin("/sys/fs/bpf/cbpf-never")


def test_socket_closed_before_its_link(net):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    link = net.programs["socket_count"].attach_socket(b)
    b.close()  # the filter goes with the socket
    c, d = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)  # may reuse b's fd number
    with a, c, d:
        link.detach()  # must not touch the socket now behind that fd number
        c.send(b"1")
        assert d.recv(10) == b"1"


# ---- cgroups -------------------------------------------------------------------------------------------------------

def cgroup2_root() -> Path:
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if fields[2] == "cgroup2":
            return Path(fields[1])
    # none mounted: mount one (root can)
    root = Path("/sys/fs/cgroup")
    if any(root.iterdir()):
        root = Path("/run/cbpf-cgroup2")
        root.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "cgroup2", "none", str(root)], check=True)
    return root


@pytest.fixture
def cgroup():
    path = cgroup2_root() / f"cbpf-test-{os.getpid()}"
    path.mkdir()
    yield path
    path.rmdir()


def send_from_cgroup(cgroup: Path, n: int) -> None:
    """n UDP datagrams to localhost from a child process that first moves itself into the cgroup."""
    code = ("import socket, sys\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            f"for i in range({n}): s.sendto(b'x', ('127.0.0.1', {UDP_PORT}))\n")
    subprocess.run(["sh", "-c", f'echo $$ > {cgroup}/cgroup.procs && exec "$0" -c "$1"', sys.executable, code],
                   check=True)


def send_from_here(n: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(n):
            s.sendto(b"x", ("127.0.0.1", UDP_PORT))


def test_cgroup_skb_counts_the_cgroups_packets(net, cgroup):
    link = net.programs["cgroup_egress"].attach_cgroup(cgroup)
    assert link.target == f"cgroup {cgroup} (cgroup_inet_egress)"
    send_from_cgroup(cgroup, 40)
    assert net.globals["cgroup_packets"] == 40
    send_from_here(10)  # this process is not in the cgroup
    assert net.globals["cgroup_packets"] == 40
    link.detach()
    send_from_cgroup(cgroup, 5)
    assert net.globals["cgroup_packets"] == 40


@pytest.mark.parametrize("attach_type", ["cgroup_inet_egress", cbpf.AttachType.CGROUP_INET_EGRESS])
def test_cgroup_attach_type_given(net, cgroup, attach_type):
    link = net.programs["cgroup_any"].attach_cgroup(str(cgroup), attach_type=attach_type)
    send_from_cgroup(cgroup, 12)
    assert net.globals["cgroup_packets"] == 12
    link.detach()


# ---- pins ----------------------------------------------------------------------------------------------------------

def test_pinned_link_outlives_its_object_until_unpinned(bpf_objects):
    tag = f"/sys/fs/bpf/cbpf-test-{os.getpid()}"
    obj = cbpf.Object(bpf_objects["counter"], attach=False)
    counts = obj.maps["counts"]
    counts.pin(tag + "-counts")
    link = obj.programs["count_getpid"].attach()
    link.pin(tag + "-link")
    assert link.pin_path == tag + "-link" and os.path.exists(tag + "-link")
    obj.close()
    assert not link.attached
    with cbpf.Map.from_pinned(tag + "-counts") as pinned:
        pid = os.getpid()
        start = pinned.fetch(pid)
        getpid_n(100)
        assert pinned.fetch(pid) == start + 100  # the pin holds the attachment
        link.unpin()
        assert not os.path.exists(tag + "-link") and link.pin_path is None
        stopped = wait_until_stable(lambda: pinned.fetch(pid), lambda: getpid_n(10))
        getpid_n(100)
        assert pinned.fetch(pid) == stopped
    counts.unpin()
    assert not os.path.exists(tag + "-counts")


def test_detach_of_a_pinned_link_removes_the_pin(tracing):
    path = f"/sys/fs/bpf/cbpf-test-{os.getpid()}-detach"
    link = tracing.programs["tp_getpid"].attach_tracepoint("syscalls", "sys_enter_getpid")
    link.pin(path)
    getpid_n(5)
    link.detach()
    assert not os.path.exists(path) and link.pin_path is None
    stopped = wait_until_stable(lambda: tracing.globals["tp_calls"], lambda: getpid_n(10))
    getpid_n(100)
    assert tracing.globals["tp_calls"] == stopped >= 5
    with pytest.raises(ValueError, match="not pinned"):
        link.unpin()


# ---- what the kernel lacks, and bad targets ------------------------------------------------------------------------

def test_kprobe_needs_config_kprobes(bpf_objects):
    with cbpf.Object(bpf_objects["kprobe"], attach=False) as obj:
        prog = obj.programs["on_getpid"]
        if has_kprobes():  # a kernel with kprobes (the VM's): the same calls attach
            prog.attach().detach()
            prog.attach_kprobe("__x64_sys_getpid").detach()
            return
        for attach in (prog.attach, lambda: prog.attach_kprobe("__x64_sys_getpid"),
                       lambda: prog.attach_kprobe("__x64_sys_getpid", retprobe=True)):
            with pytest.raises(OSError, match=r"no kprobes \(built without CONFIG_KPROBES\)") as info:
                attach()
            assert info.value.errno == errno.EOPNOTSUPP
        assert obj.attached_count == 0


def test_errors_name_the_missing_piece(bpf_objects, tracing, probes, net, probe_binaries):
    cases = [
        (lambda: tracing.programs["tp_getpid"].attach_tracepoint("syscalls", "sys_enter_no_such"),
         FileNotFoundError, r"tracepoint syscalls/sys_enter_no_such: no such tracepoint"),
        (lambda: tracing.programs["raw_getpid"].attach_raw_tracepoint("no_such_raw_tp"),
         FileNotFoundError, r"raw_tracepoint no_such_raw_tp: no such raw tracepoint"),
        (lambda: probes.programs["on_entry"].attach_uprobe(probe_binaries.library, "no_such_symbol"),
         FileNotFoundError, rf"no symbol 'no_such_symbol' in {re.escape(str(probe_binaries.library))}"),
        (lambda: probes.programs["on_entry"].attach_uprobe("libno-such-library", "f"),
         FileNotFoundError, r"no binary or library 'libno-such-library'"),
        (lambda: probes.programs["on_tick"].attach_usdt(probe_binaries.usdt, "cbpf", "no_such_probe"),
         FileNotFoundError, r"no USDT probe cbpf:no_such_probe in "),
        (lambda: net.programs["xdp_count"].attach_xdp("nosuch0"),
         FileNotFoundError, r"no network interface 'nosuch0'"),
        (lambda: net.programs["tc_count"].attach_tc(2**31 - 1),
         FileNotFoundError, r"no network interface with index 2147483647"),
        (lambda: net.programs["cgroup_egress"].attach_cgroup("/sys/fs/cgroup/no-such-cgroup"),
         FileNotFoundError, r"no cgroup at /sys/fs/cgroup/no-such-cgroup"),
        (lambda: net.programs["socket_count"].attach_socket(os.open("/dev/null", os.O_RDONLY)),
         OSError, r"fd \d+: Socket operation on non-socket"),
        (lambda: net.programs["xdp_count"].attach(), ValueError,
         r"program 'xdp_count' \(section 'xdp'\) does not say where to attach: use attach_xdp\(interface\)"),
        (lambda: net.programs["tc_count"].attach(), ValueError, r"use attach_tc\(interface\)"),
        (lambda: probes.programs["on_entry"].attach(), ValueError, r"use attach_uprobe\(binary, symbol\)"),
        (lambda: net.programs["xdp_count"].attach_tc("lo"), TypeError,
         r"program 'xdp_count' is a xdp program: attach_tc\(\) attaches sched_cls programs"),
        (lambda: net.programs["xdp_count"].attach_xdp("lo", mode="turbo"), ValueError, r"unknown XDP mode 'turbo'"),
        (lambda: net.programs["tc_count"].attach_tc("lo", "sideways"), ValueError, r"'ingress' or 'egress'"),
        (lambda: net.programs["cgroup_any"].attach_cgroup("/", attach_type="no_such_type"), ValueError,
         r"unknown attach type 'no_such_type'"),
    ]
    before = open_fds()
    for call, exc, pattern in cases:
        with pytest.raises(exc, match=pattern) as info:
            call()
        if issubclass(exc, OSError):
            assert info.value.errno in (errno.ENOENT, errno.ENOTSOCK)
    leaked = {fd for fd in open_fds() if fd not in before}
    assert len(leaked) == 1  # the /dev/null fd of the socket case, which the test opened
    os.close(leaked.pop())
    assert tracing.attached_count == probes.attached_count == net.attached_count == 0

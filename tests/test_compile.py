"""cbpf.compile(): BPF C in, running program out. Compiles with the system's clang and with the ziglang package's
zig (in a fresh virtualenv with no clang on PATH), loads into the live kernel and counts getpid() calls exactly; the
cache (hits, misses, tampering, permissions, fallback); every bad input the issue lists."""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

import cbpf
from cbpf import _compile, _toolchain

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parent.parent

COUNTER = (ROOT / "tests" / "bpf" / "stepcount.bpf.c").read_text()
# a program without vmlinux.h: no CO-RE, so it needs no kernel BTF
PLAIN = """\
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int pass(struct xdp_md *ctx)
{
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
"""


def counter(step: int = 1) -> str:
    return f"#define STEP {step}\n" + COUNTER


def counted(obj: cbpf.Object, n: int = 1000) -> int:
    """How many of n getpid() calls of this process the object's program counted."""
    pid = os.getpid()
    before = obj.maps["calls"].fetch(pid) or 0
    for _ in range(n):
        os.getpid()  # glibc makes the system call every time
    return (obj.maps["calls"].fetch(pid) or 0) - before


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    """A cache directory of the test's own (where it is made by compile())."""
    return tmp_path / f"cache-{os.getpid()}"


@pytest.fixture
def counting_clang(tmp_path: Path) -> tuple[str, Path]:
    """A compiler that records each run: a script that appends a line to a log, then runs the system's clang."""
    clang = shutil.which("clang")
    assert clang is not None
    log = tmp_path / "runs.log"
    script = tmp_path / "bin" / "clang"
    script.parent.mkdir()
    script.write_text(f'#!/bin/sh\necho run >> "{log}"\nexec "{clang}" "$@"\n')
    script.chmod(0o755)
    return str(script), log


def runs(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def leftovers(directory: Path) -> list[str]:
    """What a compile left behind where it should have left nothing: temporary files, or half entries."""
    found = []
    for path in directory.rglob("*"):
        if path.name.startswith(".tmp-") or path.name.startswith("cbpf-compile-"):
            found.append(str(path))
        if path.suffix == ".o" and not path.with_suffix(".entry").exists() and "objects" in path.parts:
            found.append(str(path))
    return found


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tempfile's directory for the test alone, so that what a compile leaves there can be counted."""
    where = tmp_path / "tmp"
    where.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(where))
    return where


# -- compile, load, count -----------------------------------------------------------------------------------------

def test_object_from_a_c_path_counts_exactly(tmp_path: Path):
    source = tmp_path / "getpids.bpf.c"
    source.write_text(counter())
    with cbpf.Object(source) as obj:
        assert obj.name == "getpids"
        assert counted(obj, 1000) == 1000


def test_boot_a_c_path_as_str(tmp_path: Path, booted_clean):
    source = tmp_path / "booted.bpf.c"
    source.write_text(counter(step=2))
    obj = cbpf.boot(str(source))
    assert obj.name == "booted" and cbpf.booted() == (obj,)
    pid = os.getpid()
    before = cbpf.fetch("calls", pid) or 0
    for _ in range(500):
        os.getpid()
    assert cbpf.fetch("calls", pid) - before == 1000


def test_from_c_inline_counts_exactly():
    with cbpf.Object.from_c(counter(step=3), name="inline_counter") as obj:
        assert obj.name == "inline_counter"
        assert counted(obj, 700) == 2100


def test_the_system_clang_compiles_by_default(tmp_path: Path):
    clang = shutil.which("clang")
    assert clang is not None
    chosen = _toolchain.find_compiler(environ={"PATH": os.environ["PATH"]})
    assert chosen.kind == "clang" and chosen.path == clang
    out = cbpf.compile(counter(), output=tmp_path / "explicit.bpf.o", compiler=clang)
    assert out == tmp_path / "explicit.bpf.o"
    with cbpf.Object(out) as obj:
        assert counted(obj, 321) == 321


def test_ziglang_in_a_fresh_virtualenv_without_clang(tmp_path: Path):
    """pip alone: a fresh virtualenv, the ziglang wheel (cbpf[compile]), PATH with no clang on it."""
    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # the wheel scripts/setup keeps in build/wheelhouse when there is one (no network), else the package index
    wheels = sorted((ROOT / "build" / "wheelhouse").glob("ziglang-*.whl"))
    where = ["--no-index", "--find-links", str(wheels[-1].parent)] if wheels else []
    r = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *where, "ziglang>=0.17"],
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        from conftest import skip_or_fail

        skip_or_fail(f"the ziglang package could not be installed: {r.stderr.strip()[-300:]}")
    # cbpf itself: the one under test (this checkout's in-place build, or an installed wheel), as a .pth file
    # would give it to the fresh environment
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = subprocess.run([str(venv / "bin" / "python"), "-c", purelib], capture_output=True, text=True,
                          check=True).stdout.strip()
    Path(site, "cbpf-under-test.pth").write_text(os.path.dirname(os.path.dirname(cbpf.__file__)) + "\n")
    source = tmp_path / "zigcount.bpf.c"
    source.write_text(counter(step=5))
    script = textwrap.dedent("""
        import json, os, shutil, sys
        import cbpf
        from cbpf import _toolchain
        assert shutil.which("clang") is None, shutil.which("clang")
        compiler = _toolchain.find_compiler()
        with cbpf.Object(sys.argv[1]) as obj:
            pid = os.getpid()
            before = obj.maps["calls"].fetch(pid) or 0
            for _ in range(400):
                os.getpid()
            counted = obj.maps["calls"].fetch(pid) - before
            sections = obj.programs["count_getpid"].section
        print(json.dumps({"kind": compiler.kind, "path": compiler.path, "counted": counted, "section": sections}))
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("CBPF_CLANG", "PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=str(venv / "bin"), CBPF_CACHE_DIR=str(tmp_path / "zig-cache"),
               ZIG_GLOBAL_CACHE_DIR=str(tmp_path / "zig-global"), ZIG_LOCAL_CACHE_DIR=str(tmp_path / "zig-local"))
    r = subprocess.run([str(venv / "bin" / "python"), "-c", script, str(source)], capture_output=True, text=True,
                       env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["kind"] == "zig"
    assert result["path"].startswith(str(venv)) and result["path"].endswith("/ziglang/zig")
    assert result["section"] == "tracepoint/syscalls/sys_enter_getpid"
    assert result["counted"] == 2000


def test_output_path_and_bytes_are_the_same_object(tmp_path: Path, cache: Path):
    data = cbpf.compile(PLAIN, cache=cache)
    out = cbpf.compile(PLAIN, cache=cache, output=tmp_path / "plain.bpf.o")
    assert isinstance(data, bytes) and data[:4] == b"\x7fELF"
    assert out.read_bytes() == data
    with cbpf.Object(out, load=False) as obj:
        assert list(obj.programs) == ["pass"]


def test_include_dirs_defines_and_cflags(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "step.h").write_text("#define STEP (BASE * 2)\n")
    source = '#include "step.h"\n' + COUNTER
    monkeypatch.chdir(tmp_path)  # a relative include directory is the caller's, made absolute before the compile
    data = cbpf.compile(source, include_dirs=["inc"], defines={"BASE": 3}, cflags=["-Wall"], cache=cache)
    with cbpf.Object(data) as obj:
        assert counted(obj, 100) == 600
    data = cbpf.compile(source, include_dirs=["inc"], defines=["BASE=4"], cache=cache)
    with cbpf.Object(data) as obj:
        assert counted(obj, 100) == 800


# -- the cache ----------------------------------------------------------------------------------------------------

def test_second_compile_is_a_hit_that_does_not_run_the_compiler(cache: Path, counting_clang, tmp_path: Path):
    clang, log = counting_clang
    first = cbpf.compile(counter(), compiler=clang, cache=cache)
    assert runs(log) == 1
    second = cbpf.compile(counter(), compiler=clang, cache=cache)
    assert runs(log) == 1  # a hit: the compiler did not run
    assert second == first
    with cbpf.Object(second) as obj:
        assert counted(obj, 250) == 250
    cbpf.compile(counter(step=2), compiler=clang, cache=cache)  # another source: a miss
    assert runs(log) == 2
    cbpf.compile(counter(), compiler=clang, cache=cache, cflags=["-Wall"])  # other flags: a miss
    assert runs(log) == 3
    cbpf.compile(counter(), compiler=clang, cache=cache, cflags=["-Wall"])
    assert runs(log) == 3
    cbpf.compile(counter(), compiler=clang, cache=False)  # no cache: always compiles
    cbpf.compile(counter(), compiler=clang, cache=False)
    assert runs(log) == 5


def test_a_changed_header_is_a_miss(cache: Path, counting_clang, tmp_path: Path):
    clang, log = counting_clang
    (tmp_path / "inc").mkdir()
    header = tmp_path / "inc" / "step.h"
    header.write_text("#define STEP 2\n")
    source = '#include "step.h"\n' + COUNTER
    cbpf.compile(source, compiler=clang, cache=cache, include_dirs=[tmp_path / "inc"])
    cbpf.compile(source, compiler=clang, cache=cache, include_dirs=[tmp_path / "inc"])
    assert runs(log) == 1
    header.write_text("#define STEP 7\n")
    data = cbpf.compile(source, compiler=clang, cache=cache, include_dirs=[tmp_path / "inc"])
    assert runs(log) == 2
    with cbpf.Object(data) as obj:
        assert counted(obj, 10) == 70


def test_a_changed_source_file_is_a_miss(cache: Path, counting_clang, tmp_path: Path):
    clang, log = counting_clang
    source = tmp_path / "edited.bpf.c"
    source.write_text(counter(step=1))
    cbpf.compile(source, compiler=clang, cache=cache)
    source.write_text(counter(step=4))
    data = cbpf.compile(source, compiler=clang, cache=cache)
    assert runs(log) == 2
    with cbpf.Object(data) as obj:
        assert counted(obj, 10) == 40


def test_a_tampered_entry_is_not_used(cache: Path, counting_clang):
    clang, log = counting_clang
    good = cbpf.compile(counter(), compiler=clang, cache=cache)
    (obj_file,) = (cache / "objects").rglob("*.o")
    planted = bytearray(good)
    planted[-8:] = b"PLANTED!"
    obj_file.write_bytes(bytes(planted))
    again = cbpf.compile(counter(), compiler=clang, cache=cache)
    assert runs(log) == 2  # the object's hash did not match its entry: compiled again
    assert again != bytes(planted)
    assert obj_file.read_bytes() != bytes(planted)  # and the entry was rewritten
    (entry,) = (cache / "objects").rglob("*.entry")
    lines = entry.read_text().splitlines()
    assert lines[1].startswith("key ") and lines[2].startswith("object ")
    assert any(line.startswith("header ") and line.endswith("/bpf/bpf_helpers.h") for line in lines[3:])
    entry.write_text("\n".join([lines[0], "key " + "0" * 64, *lines[2:]]))  # an entry that claims other inputs
    cbpf.compile(counter(), compiler=clang, cache=cache)
    assert runs(log) == 3


def test_cache_directory_is_private(cache: Path):
    cbpf.compile(PLAIN, cache=cache)
    for path in [cache, *[p for p in cache.rglob("*") if p.is_dir()]]:
        st = path.stat()
        assert stat.S_IMODE(st.st_mode) == 0o700, path
        assert st.st_uid == os.geteuid()
    for path in (cache / "objects").rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_a_cache_directory_others_can_write_is_refused(tmp_path: Path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(PermissionError, match=r"other users can write it \(mode drwxrwxrwx\)"):
        cbpf.compile(PLAIN, cache=shared)
    inside = tmp_path / "open-parent"
    inside.mkdir()
    inside.chmod(0o775)
    with pytest.raises(PermissionError, match=r"open-parent above it is writable by other users"):
        cbpf.compile(PLAIN, cache=inside / "cache")
    assert not (inside / "cache").exists()


def test_a_cache_directory_of_another_user_is_refused(tmp_path: Path):
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)
    with pytest.raises(PermissionError, match="belongs to uid 65534"):
        cbpf.compile(PLAIN, cache=theirs)
    with pytest.raises(PermissionError, match="above it belongs to uid 65534"):
        cbpf.compile(PLAIN, cache=theirs / "mine")


def test_an_unwritable_cache_falls_back_to_a_temporary_one_said_once(tmp_path: Path):
    """A read-only cache directory (a read-only tmpfs in a mount namespace of its own): compiles still work, one
    warning says where the cache went, and nothing is left in the temporary directory after exit."""
    ro, tmp = tmp_path / "ro", tmp_path / "tmp"
    ro.mkdir()
    tmp.mkdir()
    script = textwrap.dedent("""
        import logging, os, sys
        records = []
        class Keep(logging.Handler):
            def emit(self, record):
                records.append(record.getMessage())
        logging.getLogger("cbpf").addHandler(Keep())
        import cbpf
        first = cbpf.compile(sys.argv[1])
        second = cbpf.compile(sys.argv[1])
        assert first == second and first[:4] == b"\\x7fELF"
        print(len(records))
        print(records[0])
    """)
    env = dict(os.environ, CBPF_CACHE_DIR=str(ro / "cache"), TMPDIR=str(tmp))
    shell = f'mount -t tmpfs -o ro tmpfs "{ro}" && exec "$0" -c "$1" "$2"'
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", shell, sys.executable,
                        script, PLAIN], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    count, message = r.stdout.splitlines()
    assert count == "1"
    assert message.startswith(f"compile cache {ro / 'cache'} cannot be written (Read-only file system): caching in ")
    assert list(tmp.iterdir()) == []  # the fallback cache and every work directory removed


def test_concurrent_compiles_of_one_source(cache: Path, tmp_path: Path):
    """Processes compiling the same source into one empty cache at once: each gets a whole object, and the entry
    left behind is whole and used."""
    source = tmp_path / "raced.bpf.c"
    source.write_text(counter())
    script = f"import cbpf, sys; sys.stdout.write(str(len(cbpf.compile(sys.argv[1], cache={str(cache)!r}))))"
    procs = [subprocess.Popen([sys.executable, "-c", script, str(source)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    sizes = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        sizes.append(int(out))
    assert len(set(sizes)) == 1
    assert leftovers(cache) == []
    assert len(list((cache / "objects").rglob("*.entry"))) == 1
    with cbpf.Object(source) as obj:
        assert counted(obj, 50) == 50


# -- vmlinux.h and Struct.from_c ----------------------------------------------------------------------------------

def test_vmlinux_h_has_the_types_bpftool_finds(tmp_path: Path):
    path = cbpf.vmlinux_h()
    text = path.read_text()
    assert text.startswith("/* The running kernel's types") and "#define __VMLINUX_H__" in text
    assert "preserve_access_index" in text
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool is not installed: nothing to compare vmlinux.h with")
    theirs = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c"],
                            capture_output=True, text=True, check=True).stdout

    def definitions(c: str) -> set[str]:
        return {line.rstrip(" {") for line in c.splitlines() if line.startswith(("struct ", "union ", "enum "))
                and line.endswith("{")}

    assert definitions(text) == definitions(theirs)
    assert len(definitions(text)) > 1000
    out = cbpf.vmlinux_h(output=tmp_path / "vmlinux.h")
    assert out.read_text() == text


EVENTS = """\
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "event.h"

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 4096);
} events SEC(".maps");

const volatile __u32 target_tgid;

SEC("tracepoint/syscalls/sys_enter_getpid")
int on_getpid(void *ctx)
{
    static __u32 seq;
    struct event e = {};  /* a local: clang leaves struct event out of the object's BTF */
    if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
        return 0;
    e.tgid = target_tgid;
    e.seq = ++seq;
    e.tag = 0x5eed;
    bpf_get_current_comm(e.comm, sizeof(e.comm));
    bpf_ringbuf_output(&events, &e, sizeof(e), 0);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""
EVENT_H = """\
struct event {
    __u32 tgid;
    __u32 seq;
    __u64 tag;
    char comm[16];
};
"""


def test_struct_from_c_decodes_events_the_program_btf_lacks(tmp_path: Path):
    (tmp_path / "event.h").write_text(EVENT_H)
    obj = cbpf.Object.from_c(EVENTS, include_dirs=[tmp_path], load=False)
    with obj:
        with pytest.raises(KeyError, match="no struct or union named 'event'"):
            obj.btf_struct("event")
        event = cbpf.Struct.from_c("#include <linux/types.h>\n" + EVENT_H, "event")
        assert event.size == 32 and event.fields == ("tgid", "seq", "tag", "comm")
        obj.globals["target_tgid"] = os.getpid()
        obj.load()
        obj.attach()
        got = []
        rb = cbpf.RingBuffer(obj.maps["events"], got.append, event=event)
        for _ in range(5):
            os.getpid()
        assert rb.poll(1.0) == 5
        rb.close()
    me = Path("/proc/self/comm").read_text().strip()[:15]
    assert [(e.tgid, e.seq, e.tag, e.comm) for e in got] == [(os.getpid(), i, 0x5EED, me) for i in range(1, 6)]


def test_struct_from_c_kinds_and_headers(tmp_path: Path):
    text = """
        typedef unsigned int u32;
        struct pair { u32 a; u32 b; };
        typedef struct { u32 x; unsigned short y; } point_t;
        union both { u32 word; unsigned char bytes[4]; };
    """
    assert cbpf.Struct.from_c(text, "pair").decode(bytes([1, 0, 0, 0, 2, 0, 0, 0])) == (1, 2)
    point = cbpf.Struct.from_c(text, "point_t")
    assert point.size == 8 and point.decode(bytes([3, 0, 0, 0, 4, 0, 0, 0])) == (3, 4)
    both = cbpf.Struct.from_c(text, "union both")
    assert both.size == 4 and both.fields == ("word", "bytes")
    header = tmp_path / "types.h"
    header.write_text(text)
    assert cbpf.Struct.from_c(header, "pair").fields == ("a", "b")
    assert cbpf.Struct.from_c(str(header), "point_t").fields == ("x", "y")
    # a struct from vmlinux.h, which the text only includes
    assert cbpf.Struct.from_c('#include "vmlinux.h"\n', "ethhdr").size == 14
    with pytest.raises(KeyError, match="no struct, union or typedef named 'nothere'"):
        cbpf.Struct.from_c(text, "nothere")
    with pytest.raises(cbpf.CompileError, match="expected"):
        cbpf.Struct.from_c("struct broken { int a }\n", "broken")
    with pytest.raises(ValueError, match="not a C type name"):
        cbpf.Struct.from_c(text, "pair; int x")


# -- bad input ----------------------------------------------------------------------------------------------------

def test_missing_file(private_tmp: Path, cache: Path):
    with pytest.raises(FileNotFoundError, match="nothere.bpf.c"):
        cbpf.compile("nothere.bpf.c", cache=cache)
    with pytest.raises(FileNotFoundError):
        cbpf.Object("nothere.bpf.c")
    assert list(private_tmp.iterdir()) == []


def test_empty_source(tmp_path: Path, private_tmp: Path, cache: Path):
    with pytest.raises(ValueError, match="the C source is empty"):
        cbpf.compile("", cache=cache)
    with pytest.raises(ValueError, match="the C source is empty"):
        cbpf.compile(b"  \n\t\n", cache=cache)
    empty = tmp_path / "empty.bpf.c"
    empty.write_text("")
    with pytest.raises(ValueError, match=f"{empty} is empty"):
        cbpf.compile(empty, cache=cache)
    assert list(private_tmp.iterdir()) == []


def test_syntax_error_names_file_line_and_column(tmp_path: Path, private_tmp: Path, cache: Path):
    bad = "int f(void)\n{\n    return 1 +;\n}\nint g(void) { return undeclared; }\n"
    with pytest.raises(cbpf.CompileError) as info:
        cbpf.compile(bad, cache=cache)
    e = info.value
    message = str(e)
    assert message.startswith("compiling C source failed (exit status 1):\n"
                              "inline.bpf.c:3:15: error: expected expression")
    assert "inline.bpf.c:5:22: error: use of undeclared identifier 'undeclared'" in message
    assert "2 errors generated" in e.log and "return 1 +;" in e.log
    assert str(private_tmp) not in message + e.log  # the temporary directory's path is left out
    assert e.errors == ["inline.bpf.c:3:15: error: expected expression",
                        "inline.bpf.c:5:22: error: use of undeclared identifier 'undeclared'"]
    assert e.returncode == 1 and e.command[0].endswith("clang")
    source = tmp_path / "bad.bpf.c"
    source.write_text(bad)
    with pytest.raises(cbpf.CompileError, match=f"{source}:3:15: error: expected expression"):
        cbpf.Object(source)
    assert list(private_tmp.iterdir()) == [] and leftovers(cache) == []
    assert not (cache / "objects").exists() or not list((cache / "objects").rglob("*.o"))


def test_missing_header(private_tmp: Path, cache: Path):
    with pytest.raises(cbpf.CompileError, match="inline.bpf.c:2:10: fatal error: 'nothere.h' file not found"):
        cbpf.compile('#include "vmlinux.h"\n#include "nothere.h"\n', cache=cache)
    assert list(private_tmp.iterdir()) == [] and leftovers(cache) == []


def test_unsupported_flag(private_tmp: Path, cache: Path):
    with pytest.raises(cbpf.CompileError, match="error: unknown argument: '-fno-such-flag'"):
        cbpf.compile(PLAIN, cflags=["-fno-such-flag"], cache=cache)
    with pytest.raises(TypeError, match="not a str"):
        cbpf.compile(PLAIN, cflags="-Wall", cache=cache)  # type: ignore[arg-type]
    assert list(private_tmp.iterdir()) == [] and leftovers(cache) == []


def fake_compiler(tmp_path: Path, body: str) -> str:
    path = tmp_path / "fakebin" / "clang"
    path.parent.mkdir(exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def test_compiler_crash(tmp_path: Path, private_tmp: Path, cache: Path):
    # (without a preloaded sanitizer, scripts/test-sanitizers', which would turn the SIGSEGV into an abort)
    crashing = fake_compiler(tmp_path, "exec env -u LD_PRELOAD /bin/sh -c "
                                       "'echo \"clang: about to fall over\" >&2; kill -SEGV $$'\n")
    with pytest.raises(cbpf.CompileError, match=r"the compiler crashed \(SIGSEGV\)") as info:
        cbpf.compile(PLAIN, compiler=crashing, cache=cache)
    assert info.value.returncode == -11 and "about to fall over" in info.value.log
    assert list(private_tmp.iterdir()) == [] and leftovers(cache) == []


def test_compiler_hang_times_out_and_is_killed(tmp_path: Path, private_tmp: Path, cache: Path):
    pidfile = tmp_path / "hung.pid"
    # the hang is a child of the compiler, as clang's -cc1 is of the driver: the whole session is killed
    hanging = fake_compiler(tmp_path, f'sleep 600 &\necho $! > "{pidfile}"\nwait\n')
    t = time.monotonic()
    with pytest.raises(cbpf.CompileError, match=r"the compiler did not finish within 1 s and was killed"):
        cbpf.compile(PLAIN, compiler=hanging, cache=cache, timeout=1)
    assert time.monotonic() - t < 30
    child = int(pidfile.read_text())
    for _ in range(100):  # SIGKILL is delivered at once; the zombie is reaped by init
        if not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the compiler's child {child} still runs")
    assert list(private_tmp.iterdir()) == [] and leftovers(cache) == []


def test_kernel_without_btf(tmp_path: Path, private_tmp: Path, cache: Path):
    not_btf = tmp_path / "not-btf"
    not_btf.write_bytes(b"\x00" * 4096)
    with pytest.raises(cbpf.CompileError) as info:
        cbpf.compile(counter(), btf_path=not_btf, cache=cache)
    message = str(info.value)
    assert "inline.bpf.c:5:10: fatal error: 'vmlinux.h' file not found" in message
    assert f"no vmlinux.h: '{not_btf}' holds no BTF" in message
    assert "A CO-RE program (one that includes vmlinux.h) needs the kernel's BTF" in message
    # a program with no CO-RE still compiles, and loads
    with cbpf.Object(cbpf.compile(PLAIN, btf_path=not_btf, cache=cache)) as obj:
        assert obj.programs["pass"].fd >= 0
    with pytest.raises(OSError, match="holds no BTF"):
        cbpf.vmlinux_h(not_btf)
    with pytest.raises(FileNotFoundError):
        cbpf.compile(PLAIN, btf_path=tmp_path / "absent", cache=cache)
    assert list(private_tmp.iterdir()) == [] and leftovers(cache) == []


def test_no_compiler_names_the_three_ways(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setattr(_toolchain, "ziglang_binary", lambda: None)  # as if the ziglang package were absent
    with pytest.raises(cbpf.CompileError) as info:
        _toolchain.find_compiler(environ={"PATH": str(empty)})
    assert str(info.value) == (
        "no compiler for BPF C found: pass compiler= (or set CBPF_CLANG) to a clang or zig binary, install clang "
        "12 or newer on PATH, or `pip install cbpf[compile]` (the ziglang package)")
    old = fake_compiler(tmp_path, 'echo "clang version 9.0.1"\n')
    too_old = r"clang is clang 9, too old for BPF CO-RE \(clang 12\+\)\): pass compiler="
    with pytest.raises(cbpf.CompileError, match=too_old):
        _toolchain.find_compiler(environ={"PATH": str(Path(old).parent)})


def test_compilers_are_never_taken_from_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    planted = fake_compiler(tmp_path, "exit 0\n")
    monkeypatch.chdir(Path(planted).parent)
    system = shutil.which("clang")
    # an empty PATH entry, or ".", means the current directory to a shell: not to cbpf
    chosen = _toolchain.find_compiler(environ={"PATH": os.pathsep.join(["", ".", os.path.dirname(system)])})
    assert chosen.path == system
    with pytest.raises(cbpf.CompileError, match="CBPF_CLANG names 'clang', which is not an executable file in PATH"):
        _toolchain.find_compiler(environ={"PATH": ".", "CBPF_CLANG": "clang"})
    # a path is used as given
    assert _toolchain.find_compiler(environ={"CBPF_CLANG": "./clang"}).path == planted


def test_headers_are_never_taken_from_the_current_directory(tmp_path: Path, cache: Path,
                                                          monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "planted.h").write_text("#error planted header used\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(cbpf.CompileError, match="inline.bpf.c:1:10: fatal error: 'planted.h' file not found"):
        cbpf.compile('#include "planted.h"\nint x;\n', cache=cache)
    # unless asked for: a relative include directory is the caller's current one
    with pytest.raises(cbpf.CompileError, match="planted header used"):
        cbpf.compile('#include "planted.h"\nint x;\n', cache=cache, include_dirs=["."])


def test_logging_of_the_fallback_is_once_per_directory(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                        monkeypatch: pytest.MonkeyPatch):
    """In-process view of the fallback: a cache path under a regular file cannot be made."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setattr(_compile, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="cbpf"):
        first = cbpf.compile(PLAIN, cache=blocker / "cache")
        second = cbpf.compile(PLAIN, cache=blocker / "cache")
    assert first == second
    warnings = [r.getMessage() for r in caplog.records if r.name == "cbpf"]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"compile cache {blocker / 'cache'} cannot be written (Not a directory)")

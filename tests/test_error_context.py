"""One error path with context: every OSError of cbpf names the map, program and object it is about in its message,
and carries them as .map, .program and .object (None for what it is not about). Exact texts, the real kernel."""

from __future__ import annotations

import errno
import logging
import os

import pytest

import cbpf

from conftest import open_fds

pytestmark = pytest.mark.kernel


def test_a_failing_map_update_names_its_map_and_object(bpf_objects):
    with cbpf.Object(bpf_objects["counter"], attach=False) as obj:
        counts = obj.maps["counts"]
        counts.update(7, 1)
        with pytest.raises(FileExistsError) as info:
            counts.update(7, 2, flags=cbpf.BPF_NOEXIST)
    e = info.value
    assert str(e) == "[Errno 17] map 'counts' of object 'counter': update: File exists"
    assert (e.errno, e.object, e.program, e.map) == (errno.EEXIST, "counter", None, "counts")


def test_a_map_of_its_own_names_no_object():
    with cbpf.Map.create("hash", 4, 8, 1, name="own") as m:
        m.update(1, 1)
        with pytest.raises(OSError) as info:
            m.update(2, 2)  # full: one entry at most
    e = info.value
    assert str(e) == "[Errno 7] map 'own': update: Argument list too long"
    assert (e.errno, e.object, e.program, e.map) == (errno.E2BIG, None, None, "own")


def test_a_failing_program_load_names_its_program_and_object(bpf_objects):
    before = open_fds()
    path = bpf_objects["rejected"]
    with pytest.raises(cbpf.LoadError) as info:
        cbpf.Object(path)
    e = info.value
    assert str(e).splitlines()[0] == (f"[Errno 13] loading BPF object 'rejected' (from {path}): the verifier refused "
                                      "program 'unchecked' (Permission denied); last lines of the log:")
    assert (e.errno, e.object, e.program, e.map) == (errno.EACCES, "rejected", "unchecked", None)
    assert "invalid mem access 'map_value_or_null'" in e.log
    assert open_fds() == before


def test_a_failing_attach_names_its_program_and_object(bpf_objects):
    with cbpf.Object(bpf_objects["tracing"], attach=False) as obj:
        with pytest.raises(FileNotFoundError) as info:
            obj.programs["tp_getpid"].attach_tracepoint("syscalls", "sys_enter_cbpf_no_such_call")
    e = info.value
    assert str(e) == ("[Errno 2] program 'tp_getpid' of object 'tracing': cannot attach to tracepoint "
                      "syscalls/sys_enter_cbpf_no_such_call: no such tracepoint (see /sys/kernel/tracing/events): "
                      "No such file or directory")
    assert (e.errno, e.object, e.program, e.map) == (errno.ENOENT, "tracing", "tp_getpid", None)


def test_an_error_about_no_map_or_program_carries_none():
    with pytest.raises(FileNotFoundError) as info:
        cbpf.Map.from_pinned(f"/sys/fs/bpf/cbpf-no-such-pin-{os.getpid()}")
    e = info.value
    assert (e.object, e.program, e.map) == (None, None, None)


def test_libbpf_is_named_once_in_its_log_records(bpf_objects, caplog):
    """The records' logger is cbpf.libbpf: libbpf's own "libbpf: " prefix would name it twice where the logger's
    name is shown ("cbpf.libbpf: libbpf: map ...")."""
    with caplog.at_level(logging.DEBUG, logger="cbpf.libbpf"):
        cbpf.Object(bpf_objects["counter"]).close()
    lines = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.name == "cbpf.libbpf"]
    assert "cbpf.libbpf: map 'counts': found type = 1." in lines
    assert not [line for line in lines if "libbpf: libbpf:" in line or line.startswith("cbpf.libbpf: libbpf")]


def test_libbpf_is_named_once_in_an_open_error():
    name = f"garbage{os.getpid()}"
    with pytest.raises(OSError) as info:
        cbpf.Object(b"\x7fELF\x02\x01\x01garbage", name=name)
    assert str(info.value) == (f"[Errno 22] opening BPF object '{name}': not a valid BPF ELF object (libbpf: elf: "
                               f"'{name}' is not a proper ELF object: BPF object format invalid): Invalid argument")
    assert (info.value.object, info.value.program, info.value.map) == (name, None, None)


def test_a_failing_pin_names_its_map_or_the_links_program(bpf_objects):
    missing = f"/sys/fs/bpf/cbpf-no-such-dir-{os.getpid()}"
    with cbpf.Object(bpf_objects["counter"], attach=False) as obj:
        with pytest.raises(FileNotFoundError) as info:
            obj.maps["counts"].pin(f"{missing}/counts")
        assert obj.maps["counts"].pin_path is None
    e = info.value
    assert str(e) == f"[Errno 2] map 'counts' of object 'counter': pinning at {missing}/counts: No such file or directory"
    assert (e.errno, e.object, e.program, e.map) == (errno.ENOENT, "counter", None, "counts")

    with cbpf.Object(bpf_objects["tracing"], attach=False) as obj:
        link = obj.programs["tp_getpid"].attach_tracepoint("syscalls", "sys_enter_getpid")
        with pytest.raises(FileNotFoundError) as info:
            link.pin(f"{missing}/link")
        assert link.pin_path is None
    e = info.value
    assert str(e) == (f"[Errno 2] program 'tp_getpid' of object 'tracing': pinning link {link.target} at "
                      f"{missing}/link: No such file or directory")
    assert (e.errno, e.object, e.program, e.map) == (errno.ENOENT, "tracing", "tp_getpid", None)


def test_a_map_that_cannot_be_created_is_named():
    with pytest.raises(OSError) as info:
        cbpf.Map.create("hash", 4, 8, 0, name="empty")  # no entries: the kernel refuses the definition
    e = info.value
    assert str(e) == ("[Errno 22] map 'empty': creating a map of type 1 (key 4, value 8 bytes, 0 entries): "
                      "Invalid argument")
    assert (e.errno, e.object, e.program, e.map) == (errno.EINVAL, None, None, "empty")
    with pytest.raises(OSError) as info:
        cbpf.Map.create("hash", 4, 8, 0)
    assert str(info.value) == ("[Errno 22] creating a map of type 1 (key 4, value 8 bytes, 0 entries): "
                               "Invalid argument")
    assert (info.value.object, info.value.program, info.value.map) == (None, None, None)

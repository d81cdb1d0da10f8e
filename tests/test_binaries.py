"""Where attach_uprobe() and attach_usdt() find a binary given by name (cbpf._binaries): no kernel needed."""

from __future__ import annotations

import os
import shutil

import pytest

from cbpf import _binaries


def mapped_libc() -> str:
    with open("/proc/self/maps") as f:
        paths = {line.split()[-1] for line in f if line.rstrip().endswith("/libc.so.6")}
    assert len(paths) == 1, paths
    return paths.pop()


@pytest.mark.parametrize("name", ["libc", "c", "libc.so.6"])
def test_a_library_by_name_is_the_one_this_process_runs(name):
    found = _binaries.find(name)
    assert found is not None and os.path.basename(found) == "libc.so.6"
    assert os.path.samefile(found, mapped_libc())


def test_an_executable_by_name_is_the_shells_choice():
    assert _binaries.find("true") == shutil.which("true")


def test_a_path_is_kept_as_given_when_readable(tmp_path):
    assert _binaries.find("/bin/true") == "/bin/true"
    assert _binaries.find(str(tmp_path / "missing")) is None


def test_unknown_names_find_nothing():
    assert _binaries.find(f"libcbpf-no-such-library-{os.getpid()}") is None
    assert _binaries.find(f"libcbpf-no-such-library-{os.getpid()}.so.1") is None


def test_ld_library_path_first_and_only_files_of_this_word_size(tmp_path, monkeypatch):
    name = f"libcbpfwidth{os.getpid()}"
    shutil.copyfile(mapped_libc(), tmp_path / f"{name}.so.7")
    other = bytearray(open(mapped_libc(), "rb").read(64))
    other[4] = 1  # ELFCLASS32: a library a 64-bit process cannot map, as /lib32's are
    (tmp_path / f"{name}.so").write_bytes(bytes(other))
    (tmp_path / "notes.so.1").write_text("not an ELF file\n")
    monkeypatch.setenv("LD_LIBRARY_PATH", f"/nonexistent:{tmp_path}")
    assert _binaries.find(name) == str(tmp_path / f"{name}.so.7")  # base.so is skipped: not of this word size
    assert _binaries.find(name[3:]) == str(tmp_path / f"{name}.so.7")
    assert _binaries.find(f"{name}.so.7") == str(tmp_path / f"{name}.so.7")
    assert _binaries.find(f"{name}.so") is None
    assert _binaries.find("notes.so.1") is None

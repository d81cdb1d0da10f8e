"""Where attach_uprobe() and attach_usdt() find a binary given by name (cbpf._binaries): no kernel needed."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess

import pytest

from cbpf import _binaries


def system_libc() -> str:
    """The libc.so.6 of this machine's word size that the dynamic loader's cache names (ldconfig -p)."""
    arch = {"x86_64": "x86-64", "aarch64": "AArch64"}[platform.machine()]
    out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    paths = [line.rpartition(" => ")[2] for line in out.splitlines()
             if line.strip().startswith("libc.so.6 ") and arch in line]
    assert paths, out
    return paths[0]


@pytest.mark.parametrize("name", ["libc", "c", "libc.so.6"])
def test_a_library_by_name_is_the_one_the_loader_would_load(name):
    # the system's libc, as a program started on this machine gets it (an interpreter that runs on a libc of its
    # own, as the test wheels' sid builds do, still finds the system's)
    found = _binaries.find(name)
    assert found is not None and os.path.basename(found) == "libc.so.6"
    assert os.path.samefile(found, system_libc())


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
    shutil.copyfile(system_libc(), tmp_path / f"{name}.so.7")
    other = bytearray(open(system_libc(), "rb").read(64))
    other[4] = 1  # ELFCLASS32: a library a 64-bit process cannot map, as /lib32's are
    (tmp_path / f"{name}.so").write_bytes(bytes(other))
    (tmp_path / "notes.so.1").write_text("not an ELF file\n")
    monkeypatch.setenv("LD_LIBRARY_PATH", f"/nonexistent:{tmp_path}")
    assert _binaries.find(name) == str(tmp_path / f"{name}.so.7")  # base.so is skipped: not of this word size
    assert _binaries.find(name[3:]) == str(tmp_path / f"{name}.so.7")
    assert _binaries.find(f"{name}.so.7") == str(tmp_path / f"{name}.so.7")
    assert _binaries.find(f"{name}.so") is None
    assert _binaries.find("notes.so.1") is None

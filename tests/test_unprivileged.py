"""What needs no kernel and no privilege: argument checking, ELF parsing errors, the module's shape."""

from __future__ import annotations

import subprocess
import sys

import pytest

import cbpf


def test_module_shape():
    assert cbpf.libbpf_version() == "v1.7"
    assert issubclass(cbpf.LoadError, OSError)
    with pytest.raises(TypeError):
        cbpf.Map()


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        cbpf.Object(tmp_path / "nope.bpf.o")
    with pytest.raises(FileNotFoundError):
        cbpf.boot(str(tmp_path / "nope.bpf.o"))


def test_not_an_elf_is_a_clear_error():
    with pytest.raises(OSError, match="not a valid BPF ELF object"):
        cbpf.Object(b"\x7fELF" + b"\0" * 100)
    with pytest.raises(OSError, match="not a valid BPF ELF object"):
        cbpf.Object(b"this is not an ELF file at all")


def test_bad_arguments():
    with pytest.raises(TypeError, match="path or the ELF as bytes"):
        cbpf.Object(42)
    with pytest.raises(TypeError, match="name must be a str"):
        cbpf.Object(b"x", name=3)
    with pytest.raises(TypeError, match="exactly 2 arguments"):
        cbpf.fetch("x")
    with pytest.raises(TypeError, match="fetch.. takes a Map or a map name, not int"):
        cbpf.fetch(3, 1)
    with pytest.raises(IsADirectoryError):
        cbpf.Object("/")


def test_libbpf_is_linked_statically_and_hidden():
    so = cbpf._cbpf.__file__
    exported = subprocess.run(["nm", "-D", "--defined-only", so], capture_output=True, text=True, check=True).stdout
    symbols = {line.split()[-1] for line in exported.splitlines() if line.strip()}
    assert symbols == {"PyInit__cbpf"}
    libs = subprocess.run(["ldd", so], capture_output=True, text=True, check=True).stdout
    assert "libbpf" not in libs


def test_import_does_not_pull_in_logging():
    r = subprocess.run([sys.executable, "-c", "import sys, cbpf; print('logging' in sys.modules)"],
                       capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False"

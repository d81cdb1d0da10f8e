"""Tests that need a kernel this machine's lacks (kprobes, fentry/fexit, BPF LSM): they run inside scripts/vmtest.

On the host they skip, naming the missing feature; inside the VM (CBPF_VM_KERNEL set) a skip is a failure, as in
CI on the host. The BPF objects are compiled on the host beforehand (scripts/vmtest-run does it): compiling under
the VM's emulated CPU would take minutes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

IN_VM = "CBPF_VM_KERNEL" in os.environ


def vm_objects_dir() -> Path:
    where = os.environ.get("CBPF_VM_OBJECTS")
    if not where:
        pytest.fail("CBPF_VM_OBJECTS is not set: run these tests through scripts/vmtest-run", pytrace=False)
    return Path(where)


def require(feature_present: bool, what: str) -> None:
    """Skips on the host when the kernel lacks the feature; inside the VM a missing feature is a failure."""
    if feature_present:
        return
    if IN_VM:
        pytest.fail(f"kernel {os.environ['CBPF_VM_KERNEL']} lacks {what}", pytrace=False)
    pytest.skip(f"this kernel lacks {what}: run in a VM kernel (scripts/vmtest-run)")

"""Writes the fuzzers' seed objects into a directory: the test programs compiled as the tests compile them
(tests/bpf/*.bpf.c) and the seed's legacy objects (tests/bpf/legacy/*.bpf.c, with and without -g).

Usage: python fuzz/seeds.py DIR   (from the repository root; needs a compiler cbpf.compile() finds)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import LEGACY, TESTS, compile_bpf, compile_legacy  # noqa: E402


def write_seeds(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for src in sorted((TESTS / "bpf").glob("*.bpf.c")):
            obj = compile_bpf(src, tmp)
            (out / obj.name).write_bytes(obj.read_bytes())
        for src in sorted(LEGACY.glob("*.bpf.c")):
            for debug in (False, True):
                obj = compile_legacy(src, tmp, debug)
                (out / ("legacy-" + obj.name)).write_bytes(obj.read_bytes())
    return len(list(out.iterdir()))


if __name__ == "__main__":
    print(f"fuzz: {write_seeds(Path(sys.argv[1]))} seed objects")

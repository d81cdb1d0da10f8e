"""atheris target: Object() (what boot() does, less attaching) on arbitrary bytes.

Every input must either load or fail with OSError (LoadError included), or with ValueError at load for what its
loader must set first (a map size left 0, a program without a type), and leave no fd behind; any other exception,
or a crash, is a finding. Run through scripts/fuzz, which seeds the corpus with the test objects.
"""

from __future__ import annotations

import os
import sys

import atheris

with atheris.instrument_imports():
    import cbpf

LOAD = os.environ.get("CBPF_FUZZ_LOAD", "1") != "0"  # also hand what libbpf accepts to the kernel's verifier


# Maps the kernel would really allocate are capped: a mutated max_entries asks for tens of gigabytes, which the
# kernel grants (an mmapable array of 15 GB, all of it resident once mapped), and libFuzzer stops on the RSS.
MAX_MAP_BYTES = 64 << 20


def parents_missing(path: str) -> list[str]:
    """The directories between /sys/fs/bpf and path that do not exist yet."""
    missing = []
    d = os.path.dirname(path)
    while d.startswith("/sys/fs/bpf/") and not os.path.exists(d):
        missing.append(d)
        d = os.path.dirname(d)
    return missing


def one_input(data: bytes) -> None:
    try:
        obj = cbpf.Object(data, name="fuzz", load=False, attach=False)
    except OSError:
        return
    try:
        too_big = any(m.max_entries * (m.key_size + m.value_size) > MAX_MAP_BYTES for m in obj.maps.values())
        # legacy dialects pin maps (tc's, gobpf's): the pins and directories this load makes are removed, what was
        # there before is left alone
        pins = {m.pin_path for m in obj.maps.values() if m.pin_path and not os.path.exists(m.pin_path)}
        new_dirs = {d for p in pins for d in parents_missing(p)}
        if LOAD and not too_big:
            try:
                obj.load()
            except (OSError, ValueError):
                return
            finally:
                for path in pins:
                    if os.path.exists(path):
                        os.unlink(path)
                for d in sorted(new_dirs, key=len, reverse=True):
                    if os.path.isdir(d):
                        os.rmdir(d)
        for m in obj.maps.values():
            m.fd  # noqa: B018 - touch every map object
    finally:
        obj.close()


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

"""atheris target: Object() (what boot() does, less attaching) on arbitrary bytes.

Every input must either load or fail with OSError (LoadError included) and leave no fd behind; any other
exception, or a crash, is a finding. Run through scripts/fuzz, which seeds the corpus with the test objects.
"""

from __future__ import annotations

import os
import sys

import atheris

with atheris.instrument_imports():
    import cbpf

LOAD = os.environ.get("CBPF_FUZZ_LOAD", "1") != "0"  # also hand what libbpf accepts to the kernel's verifier


def one_input(data: bytes) -> None:
    try:
        obj = cbpf.Object(data, name="fuzz", load=LOAD, attach=False)
    except OSError:
        return
    try:
        for m in obj.maps.values():
            m.fd  # noqa: B018 - touch every map object
    finally:
        obj.close()


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

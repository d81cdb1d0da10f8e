"""Where the tools' BPF objects are: compiled by setup.py from cbpf/bpf/<tool>.bpf.c and shipped in the package."""

from __future__ import annotations

from pathlib import Path

BPF_DIR = Path(__file__).resolve().parent / "bpf"

TOOLS = ("top", "execsnoop", "opensnoop", "biolatency", "runqlat", "tcplife", "profile")


def tool_object(name: str) -> Path:
    """The compiled object of a bundled tool (cbpf/bpf/<name>.bpf.o).

    Raises KeyError for a name that is not a bundled tool, FileNotFoundError when the build did not compile it.
    """
    if name not in TOOLS:
        raise KeyError(f"no bundled tool {name!r} (there are: {', '.join(TOOLS)})")
    path = BPF_DIR / f"{name}.bpf.o"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the build compiles it from {name}.bpf.c with clang "
                                "(pip install . with clang installed, or python setup.py build_py)")
    return path

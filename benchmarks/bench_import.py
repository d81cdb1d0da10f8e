"""Import time of cbpf: `python -X importtime -c "import cbpf"`, in fresh interpreters, against the 30 ms target.

    python benchmarks/bench_import.py [--runs N] [--check]

Reports the median over N runs of the `cbpf` line's cumulative time (cbpf and everything it imports that the
interpreter had not imported already: typing, enum users, ...), and the median self time of each module imported
under it, largest first. The interpreter runs from a temporary directory with the environment as it is, so it
times the cbpf that `python` would import there (the build in .venv, or an installed wheel). With --check, a median
above the target is an error.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile

TARGET_US = 30_000
LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)\s*$")


def one_run(cwd: str) -> tuple[int, dict[str, int]]:
    """cbpf's cumulative µs, and the self µs of each module imported while importing cbpf."""
    r = subprocess.run([sys.executable, "-X", "importtime", "-c", "import cbpf"], capture_output=True, text=True,
                       cwd=cwd, check=True)
    rows = [(int(m[1]), int(m[2]), len(m[3]), m[4]) for m in map(LINE.match, r.stderr.splitlines()) if m]
    # -X importtime prints a module after its imports: cbpf's subtree is the run of deeper rows just before it
    end = max(i for i, row in enumerate(rows) if row[3] == "cbpf" and row[2] == 1)
    start = end
    while start > 0 and rows[start - 1][2] > 1:
        start -= 1
    return rows[end][1], {name: self_us for self_us, _, _, name in rows[start:end + 1]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--check", action="store_true", help=f"fail when the median is above {TARGET_US} µs")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as cwd:
        one_run(cwd)  # writes the .pyc files where they are missing
        runs = [one_run(cwd) for _ in range(args.runs)]
        where = subprocess.run([sys.executable, "-c", "import cbpf; print(cbpf.__file__)"], capture_output=True,
                               text=True, cwd=cwd, check=True).stdout.strip()
    cumulative = statistics.median(total for total, _ in runs)
    names = {name for _, modules in runs for name in modules}
    self_times = {name: statistics.median(modules.get(name, 0) for _, modules in runs) for name in names}

    print(f"import cbpf ({where}, Python {sys.version.split()[0]}), median of {args.runs} fresh interpreters:")
    for name, us in sorted(self_times.items(), key=lambda kv: -kv[1])[:8]:
        print(f"  {name:<24} {us:8.0f} µs self")
    verdict = "within" if cumulative <= TARGET_US else "OVER"
    print(f"  {'cbpf (cumulative)':<24} {cumulative:8.0f} µs   {verdict} the {TARGET_US / 1000:g} ms target")
    return 1 if args.check and cumulative > TARGET_US else 0


if __name__ == "__main__":
    sys.exit(main())

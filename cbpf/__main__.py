"""python -m cbpf: the bundled monitor. Counts system calls per process for a few seconds and prints the top.

Runs on its embedded default (the syscount program shipped in the package) with no arguments.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cbpf

BUNDLED = Path(__file__).resolve().parent / "bpf" / "syscount.bpf.o"


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "(exited)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cbpf", description=__doc__.splitlines()[0])
    parser.add_argument("-d", "--duration", type=float, default=3.0, help="seconds to count (default 3)")
    parser.add_argument("-n", "--top", type=int, default=10, help="rows to print (default 10)")
    args = parser.parse_args(argv)

    try:
        obj = cbpf.boot(BUNDLED)
    except OSError as e:  # no privilege, a kernel without BPF or tracepoints: say so without a traceback
        print(f"python -m cbpf: {e}", file=sys.stderr)
        return 1
    print(f"cbpf {cbpf.__version__} (libbpf {cbpf.libbpf_version()}): counting system calls for "
          f"{args.duration:g} s ...", flush=True)
    time.sleep(args.duration)
    # the whole map in one batch pass: {tgid: system calls}
    rows = sorted(((n, pid) for pid, n in obj.maps["syscalls"].to_dict().items()), reverse=True)
    total = sum(n for n, _ in rows)
    print(f"{'PID':>8}  {'COMM':<16} {'SYSCALLS':>10} {'PER SEC':>10}")
    for n, pid in rows[: args.top]:
        print(f"{pid:>8}  {process_name(pid):<16} {n:>10} {n / args.duration:>10.0f}")
    print(f"{len(rows)} processes, {total} system calls in {args.duration:g} s")
    obj.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the benchmarks share: the C baselines, pinning to one CPU, and a median with its confidence interval."""

from __future__ import annotations

import importlib
import math
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType


def cbench() -> ModuleType:
    """The benchmarks' C baselines (_cbench.c), built first when missing or older than their sources: an
    extension of its own, so that the cbpf users install carries no benchmark code."""
    subprocess.check_call([sys.executable, str(Path(__file__).with_name("build_cbench.py"))])
    return importlib.import_module("_cbench")


def pin_to_one_cpu() -> str:
    """Runs the rest of the process on one CPU, the last this process may use: C loops and Python loops then
    pay for the same caches, with no migration between them. Returns a description to print."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[-1]})
    except (AttributeError, OSError, IndexError) as e:
        return f"not pinned ({e})"
    return f"pinned to CPU {cpus[-1]}"


def median_ci(samples: list[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """The median and a distribution-free confidence interval for it: the order statistics that bracket the
    median with at least `confidence` probability, by the binomial distribution of how many samples fall below
    it (no assumption about how the machine's noise is shaped)."""
    xs = sorted(samples)
    n = len(xs)
    mid = n // 2
    median = xs[mid] if n % 2 else (xs[mid - 1] + xs[mid]) / 2
    # [xs[k], xs[n-k-1]] holds the true median unless fewer than k+1 or more than n-k-1 samples fall below it:
    # its coverage is P(k+1 <= B <= n-k-1) for B ~ Binomial(n, 1/2). Take the narrowest with enough coverage.
    pmf = [math.comb(n, i) / 2**n for i in range(n + 1)]

    def coverage(k: int) -> float:
        return sum(pmf[k + 1:n - k])

    k = 0
    while k + 1 <= n - k - 2 and coverage(k + 1) >= confidence:
        k += 1
    return median, xs[k], xs[n - k - 1]


def verdict(ci_low: float, ci_high: float, target: float) -> str:
    if ci_high <= target:
        return "met"
    if ci_low > target:
        return "missed"
    return "undecided at this noise (the interval contains the target)"

"""cbpf.Histogram: counts in log2 or linear slots, as BPF programs fill them, read and printed as bcc's tools do.

The slot convention (cbpf/histogram.h in cbpf.include_dir() is the BPF side of it):
- log2: slot 0 covers [0, 2), slot k >= 1 covers [2**k, 2**(k+1)); slot(v) = 0 for v < 2, else floor(log2(v)).
- linear (step s): slot k covers [k*s, (k+1)*s); the BPF side puts everything above the last slot in it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple


class Bucket(NamedTuple):
    """One slot: the values it covers, low to high (both included), and how many fell in it."""

    low: int
    high: int
    count: int  # type: ignore[assignment]  # the bucket's count, over tuple.count (which a bucket has no use for)


def _counts_of(source: Any) -> list[int]:
    to_dict = getattr(source, "to_dict", None)
    if to_dict is not None and hasattr(source, "max_entries"):  # a cbpf.Map: {slot: count}, per-CPU summed
        source = to_dict()
    if isinstance(source, Mapping):  # per-CPU maps give a list per slot: the sum over CPUs
        slots = {int(k): int(sum(v)) if isinstance(v, (list, tuple)) else int(v) for k, v in source.items()}
        if any(k < 0 for k in slots):
            raise ValueError("a histogram's slots are numbered from 0")
        counts = [0] * (max(slots) + 1 if slots else 0)
        for k, v in slots.items():
            counts[k] = v
        return counts
    shape = getattr(source, "shape", None)
    if shape is not None and len(shape) == 2:  # numpy, per-CPU (slots, ncpus): the sum over CPUs
        source = source.sum(axis=1)
    return [int(v) for v in source]


class Histogram:
    """A histogram of counts by slot, from a cbpf.Map (an array indexed by slot), a numpy array, a dict
    {slot: count} or any sequence of counts.

    kind is "log2" or "linear" (with step); unit names the values in str(), as bcc's tools do ("usecs").
    h[slot] is a slot's count, h.bucket(slot) / h.buckets its Bucket(low, high, count), h.total the sum.
    """

    def __init__(self, source: Any, *, kind: str = "log2", unit: str = "value", step: int = 1) -> None:
        if kind not in ("log2", "linear"):
            raise ValueError(f"kind must be 'log2' or 'linear', not {kind!r}")
        if kind == "linear" and step < 1:
            raise ValueError("a linear histogram's step must be >= 1")
        self.kind, self.unit, self.step = kind, unit, step
        self.counts: tuple[int, ...] = tuple(_counts_of(source))
        if any(c < 0 for c in self.counts):
            raise ValueError("a histogram's counts cannot be negative")

    def __len__(self) -> int:
        return len(self.counts)

    def __getitem__(self, slot: int) -> int:
        return self.counts[slot]

    def __iter__(self) -> Iterator[Bucket]:
        return iter(self.buckets)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Histogram):
            return NotImplemented
        return (self.kind, self.step, self._trimmed()) == (other.kind, other.step, other._trimmed())

    def __sub__(self, other: Histogram) -> Histogram:
        """The counts added since other was read (the same slots)."""
        n = max(len(self), len(other))
        mine, theirs = self.counts + (0,) * (n - len(self)), other.counts + (0,) * (n - len(other))
        return Histogram([a - b for a, b in zip(mine, theirs)], kind=self.kind, unit=self.unit, step=self.step)

    def _trimmed(self) -> tuple[int, ...]:
        counts = self.counts
        end = len(counts)
        while end and counts[end - 1] == 0:
            end -= 1
        return counts[:end]

    @property
    def total(self) -> int:
        return sum(self.counts)

    def bounds(self, slot: int) -> tuple[int, int]:
        """The lowest and highest value slot covers."""
        if slot < 0:
            raise IndexError(slot)
        if self.kind == "linear":
            return slot * self.step, (slot + 1) * self.step - 1
        return (0, 1) if slot == 0 else (1 << slot, (1 << (slot + 1)) - 1)

    def bucket(self, slot: int) -> Bucket:
        return Bucket(*self.bounds(slot), self.counts[slot])

    @property
    def buckets(self) -> list[Bucket]:
        """Every slot up to the last that holds a count."""
        return [self.bucket(slot) for slot in range(len(self._trimmed()))]

    def to_dict(self) -> dict[int, int]:
        """{slot: count} for the slots that hold a count."""
        return {slot: c for slot, c in enumerate(self.counts) if c}

    def format(self, width: int = 40) -> str:
        """The bcc-style table: one line per slot, up to the last slot with a count, bars width characters wide."""
        buckets = self.buckets
        if not buckets:
            return f"{self.unit} : count distribution (no samples)"
        lw = max(len(str(b.high)) for b in buckets)
        lw = max(lw, (len(self.unit) + 1) // 2)
        cw = max(8, len(str(max(b.count for b in buckets))))
        top = max(b.count for b in buckets)
        label = 2 * lw + 4
        lines = [f"{self.unit:^{label}} : {'count':<{cw}} distribution"]
        for b in buckets:
            stars = round(b.count * width / top) if top else 0
            if b.count and not stars:
                stars = 1  # a slot with samples shows at least one star
            lines.append(f"{b.low:>{lw}} -> {b.high:<{lw}} : {b.count:<{cw}} |{'*' * stars:<{width}}|")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()

    def __repr__(self) -> str:
        return f"<cbpf.Histogram {self.kind} {self.unit}: {self.total} in {len(self._trimmed())} slots>"

    @classmethod
    def of_values(cls, values: Sequence[int], *, kind: str = "log2", unit: str = "value",
                  step: int = 1) -> Histogram:
        """The histogram of values, slotted by the same convention as the BPF side (for comparisons and tests)."""
        counts: dict[int, int] = {}
        for v in values:
            if v < 0:
                raise ValueError("values must be >= 0")
            slot = (v // step) if kind == "linear" else (0 if v < 2 else v.bit_length() - 1)
            counts[slot] = counts.get(slot, 0) + 1
        return cls(counts, kind=kind, unit=unit, step=step)

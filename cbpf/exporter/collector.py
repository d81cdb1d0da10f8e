"""Reading BPF maps into Prometheus metric families, once per scrape.

Each map named by a metric is read in one batch pass per scrape (Map.to_numpy), whatever number of metrics
read it. Fields are cut out of the keys and values as numpy columns (per-CPU values summed over the CPUs),
decoded into label values a column at a time, and handed to prometheus_client's metric families.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, cast

import numpy as np
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

import cbpf
from cbpf.exporter import config as cfg
from cbpf.exporter import decoders
from cbpf.exporter.config import ConfigError

log = logging.getLogger("cbpf.exporter")
# bucket bounds written as the Go clients write them (le="2e-06"), as prometheus_client does
go_float = cast(Callable[[float], str], floatToGoString)


# -- layouts: where a field sits in a key or value -----------------------------------------------------------

@dataclass(frozen=True)
class Field:
    """A field of a key or value: offset and size in bytes; ints of 1/2/4/8 bytes (or arrays of them: count)
    become integer columns, anything else a column of bytes."""

    offset: int
    size: int
    integer: bool
    signed: bool = False
    count: int = 0          # > 0: an array of `count` integers of size // count bytes


def _field_of(desc: Any, offset: int, size: int) -> Field:
    if desc is not None and desc[0] == "int" and desc[1] in (1, 2, 4, 8):
        return Field(offset, size, True, bool(desc[2]))
    if desc is not None and desc[0] == "array" and desc[1][0] == "int" and desc[1][1] in (2, 4, 8):
        return Field(offset, size, True, bool(desc[1][2]), desc[2])
    if desc is None and size in (1, 2, 4, 8):
        return Field(offset, size, True)
    return Field(offset, size, False)


def _size_of(desc: Any) -> int:
    return _size_of(desc[1]) * int(desc[2]) if desc[0] == "array" else int(desc[1])


def layout(m: cbpf.Map, which: str) -> tuple[Field, dict[str, Field]]:
    """The whole key (or value) of a map as a Field, and its struct's fields by name (nested ones as a.b).

    The layout is the map's type in the value model (Map.key_type / value_type: from BTF, or set_types()),
    else its BTF as described when the model left the map untyped."""
    size = m.key_size if which == "key" else m.value_size
    typed = m.key_type if which == "key" else m.value_type
    desc = typed.desc if typed is not None else m._describe(m.btf_key_type_id if which == "key"
                                                             else m.btf_value_type_id)
    fields: dict[str, Field] = {}

    def walk(d: Any, base: int, prefix: str) -> None:
        for member in d[2]:
            name, off, bits, ftype = member[:4]  # (a bit offset may follow)
            if bits or not name:
                continue
            fields[prefix + name] = _field_of(ftype, base + off, _size_of(ftype))
            if ftype[0] in ("struct", "union"):
                walk(ftype, base + off, f"{prefix}{name}.")

    if desc is not None and desc[0] in ("struct", "union"):
        walk(desc, 0, "")
    return _field_of(desc, 0, size), fields


def _column(raw: np.ndarray, f: Field) -> np.ndarray:
    """The field f of every row of raw (uint8, shape (..., row size)): ints, arrays of ints, or bytes
    (void)."""
    part = np.ascontiguousarray(raw[..., f.offset:f.offset + f.size])
    if f.integer and f.count:
        elem = f.size // f.count
        return part.view(f"={'i' if f.signed else 'u'}{elem}")
    if f.integer:
        return part.view(f"={'i' if f.signed else 'u'}{f.size}")[..., 0]
    return part.view(f"V{f.size}")[..., 0]


# -- histogram buckets ---------------------------------------------------------------------------------------

def bucket_bounds(b: cfg.Buckets, slots: int) -> tuple[np.ndarray, np.ndarray]:
    """(upper bounds, midpoints) of each slot, in seconds (or the raw unit when unit is none).

    log2: slot 0 holds [0, 2), slot k >= 1 holds [2^k, 2^(k+1)) (slot(v) = floor(log2 v), 0 below 2).
    exp2: slot 0 holds [0, 1], slot k >= 1 holds (2^(k-1), 2^k] (slot(v) = ceil(log2 v)).
    linear: slot k holds [k*step, (k+1)*step).
    The midpoint of each slot's range stands for its values in _sum (the slots keep no exact sum)."""
    k = np.arange(slots, dtype=np.float64)
    if b.kind == "log2":
        upper = np.exp2(k + 1)
        mid = np.where(k == 0, 1.0, 1.5 * np.exp2(k))
    elif b.kind == "exp2":
        upper = np.exp2(k)
        mid = np.where(k == 0, 0.5, 0.75 * np.exp2(k))
    else:
        upper = (k + 1) * b.step
        mid = (k + 0.5) * b.step
    per_second = cfg.UNITS[b.unit]
    return upper / per_second, mid / per_second


# -- families of many series ---------------------------------------------------------------------------------

_SPECIAL = ("\\", "\n", '"')
_EXACT = 2 ** 53  # integers a float holds exactly: repr(float(v)) is then f"{v}.0"


def _escaped(column: list[str]) -> list[str]:
    """Label values escaped as both text formats want them (backslash, newline, double quote); a column with
    none of these, the usual case, is checked in one pass and returned as it is."""
    joined = "".join(column)
    if not any(c in joined for c in _SPECIAL):
        return column
    return [v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"') for v in column]


class SeriesFamily(Metric):
    """A counter or gauge of many series kept as label columns and a list of values, written out in bulk.

    prometheus_client writes a family one Sample (a named tuple holding a dict of labels) at a time, which
    costs microseconds per series; this family writes a label column with one f-string per value and each line
    with another (exposition.render). Values are written as Python's repr of the float, which Prometheus reads
    as the same number (prometheus_client writes 1e6 and above with an exponent, 1.234567e+06, at a function
    call per value). `samples` still gives prometheus_client's Sample objects (built on first use), so any
    consumer of a registry sees an ordinary family; tests check that both writings parse to the same
    samples."""

    def __init__(self, name: str, documentation: str, typ: str, labelnames: list[str],
                 columns: list[list[str]], values: list[int] | list[float]) -> None:
        if typ == "counter" and name.endswith("_total"):
            name = name[:-len("_total")]  # the family's name: its samples end in _total (CounterMetricFamily)
        super().__init__(name, documentation, typ)
        self.sample_name = self.name + "_total" if typ == "counter" else self.name
        self._samples: list[Sample] = []
        self.labelnames = labelnames
        self.columns = columns
        self.values = values

    @property
    def samples(self) -> list[Sample]:
        if not self._samples and getattr(self, "values", None):
            names, name = self.labelnames, self.sample_name
            rows = zip(*self.columns) if self.columns else [()] * len(self.values)
            self._samples = [Sample(name, dict(zip(names, labels)), value)
                             for labels, value in zip(rows, self.values)]
        return self._samples

    @samples.setter
    def samples(self, value: list[Sample]) -> None:
        self._samples = value

    def header(self) -> Metric:
        """The same family without samples: what prometheus_client writes of it is the HELP and TYPE lines."""
        return Metric(self.name, self.documentation, self.type)

    def lines(self) -> str:
        """The sample lines, labels sorted by name as prometheus_client writes them."""
        low, high = (min(self.values), max(self.values)) if self.values else (0, 0)
        if isinstance(low, int) and isinstance(high, int) and -_EXACT < low and high < _EXACT:
            values: Iterable[Any] = self.values
            suffix = " {}.0\n"  # what repr(float(v)) writes for these, at a fraction of the cost
        else:
            values = map(repr, map(float, self.values))
            suffix = " {}\n"
        if not self.labelnames:
            return "".join(map((self.sample_name + suffix).format, values))
        order = sorted(range(len(self.labelnames)), key=self.labelnames.__getitem__)
        # one str.format per line, driven by map(): no Python frame per series
        labels = ",".join(f'{self.labelnames[i]}="{{}}"' for i in order)
        line = self.sample_name + "{{" + labels + "}}" + suffix
        return "".join(map(line.format, *(_escaped(self.columns[i]) for i in order), values))


# -- one metric ----------------------------------------------------------------------------------------------

class MetricReader:
    """One configured metric of an open object: checks the config against the map at start, then makes a
    metric family from the map's contents at each scrape."""

    def __init__(self, oc: cfg.ObjectConfig, mc: cfg.Metric, obj: cbpf.Object) -> None:
        self.object_name = oc.name
        self.config = mc
        try:
            self.map = obj.maps[mc.map]
        except KeyError:
            names = ", ".join(sorted(n for n in obj.maps if "." not in n))
            raise ConfigError(f"{mc.place.at('map')}: object {oc.name!r} has no map {mc.map!r}; its maps: "
                              f"{names}") from None
        m = self.map
        self.key_whole, self.key_fields = layout(m, "key")
        self.value_whole, self.value_fields = layout(m, "value")
        self.value = self._value_field(mc)
        self.labels = [(lab, self._label_field(lab, m), decoders.make(lab.decode, lab.enum))
                       for lab in mc.labels]
        self.slot: Field | None = None
        self.per_key_slots = False
        if mc.buckets is not None:
            self._histogram_shape(mc, mc.buckets)

    def _value_field(self, mc: cfg.Metric) -> Field:
        if mc.value_field is None:
            if self.value_fields and mc.type != "histogram":
                raise ConfigError(f"{mc.place.at()}: the values of map {mc.map!r} are structs: name the "
                                  "number to export with `value_field:` (one of "
                                  f"{', '.join(self.value_fields)})")
            return self.value_whole
        f = self.value_fields.get(mc.value_field)
        if f is None:
            raise ConfigError(f"{mc.place.at('value_field')}: the values of map {mc.map!r} have no field "
                              f"{mc.value_field!r}" + _choices(self.value_fields))
        if not f.integer:
            raise ConfigError(f"{mc.place.at('value_field')}: field {mc.value_field!r} is not an integer")
        return f

    def _label_field(self, lab: cfg.Label, m: cbpf.Map) -> Field:
        fields = self.key_fields if lab.source == "key" else self.value_fields
        if lab.field is None:
            if self.key_fields:
                raise ConfigError(f"{lab.place.at('field')}: the keys of map {m.name!r} are structs: name a "
                                  f"field ({', '.join(self.key_fields)})")
            return self.key_whole
        f = fields.get(lab.field)
        if f is None:
            what = "keys" if lab.source == "key" else "values"
            raise ConfigError(f"{lab.place.at('field')}: the {what} of map {m.name!r} have no field "
                              f"{lab.field!r}" + _choices(fields))
        if lab.source == "value" and m.ncpus > 1:
            raise ConfigError(f"{lab.place.at('from')}: map {m.name!r} is per-CPU: labels come from its "
                              "keys only")
        return f

    def _histogram_shape(self, mc: cfg.Metric, b: cfg.Buckets) -> None:
        m = self.map
        if b.slot_field is not None:
            f = self.key_fields.get(b.slot_field)
            if f is None or not f.integer or f.count:
                raise ConfigError(f"{mc.place.at('buckets.slot_field')}: the keys of map {m.name!r} have no "
                                  f"integer field {b.slot_field!r}" + _choices(self.key_fields))
            self.slot = f
            self.slots = b.slots or 64
        elif self.value.count:  # per-key arrays of slots
            self.per_key_slots = True
            self.slots = b.slots or self.value.count
        elif self.key_fields:
            raise ConfigError(f"{mc.place.at('buckets')}: the keys of map {m.name!r} are structs: say which "
                              "field is the slot with `slot_field:`")
        else:
            if mc.labels:
                raise ConfigError(f"{mc.place.at('labels')}: in map {m.name!r} the whole key is the slot: a "
                                  "histogram of it has no labels")
            self.slot = self.key_whole
            arrays = (cbpf.MapType.ARRAY, cbpf.MapType.PERCPU_ARRAY)
            self.slots = b.slots or (m.max_entries if m.map_type in arrays else 64)
        if not self.value.integer:
            raise ConfigError(f"{mc.place.at()}: the slot counts of map {m.name!r} are not integers")
        upper, self.mids = bucket_bounds(b, self.slots)
        self.le = [go_float(x) for x in upper.tolist()] + ["+Inf"]

    # -- at each scrape --------------------------------------------------------------------------------------

    def family(self, keys: np.ndarray, values: np.ndarray) -> tuple[Metric, int]:
        """The metric family of the map's rows (keys: uint8 (n, key_size); values: uint8 (n, ncpus,
        value_size)), and how many series the max_series guard dropped."""
        mc = self.config
        counts = _column(values, self.value)
        counts = counts.sum(axis=1, dtype=np.uint64 if not self.value.signed else np.int64)  # over the CPUs
        if mc.type == "histogram":
            return self._histogram(keys, values, counts)
        dropped = 0
        if len(counts) > mc.max_series:
            # keep the largest series: the same ones from scrape to scrape while the ranking holds
            keep = np.sort(np.argpartition(counts, len(counts) - mc.max_series)[-mc.max_series:])
            dropped = len(counts) - mc.max_series
            keys, values, counts = keys[keep], values[keep], counts[keep]
        names = [lab.name for lab, _, _ in self.labels]
        columns = self._label_columns(keys, values)
        family = SeriesFamily(mc.name, mc.help, mc.type, names, columns, counts.tolist())
        return family, dropped

    def _label_columns(self, keys: np.ndarray, values: np.ndarray) -> list[list[str]]:
        out = []
        for lab, f, decode in self.labels:
            raw = keys if lab.source == "key" else values[:, 0]
            out.append(decode(_column(raw, f).tolist()))
        return out

    def _histogram(self, keys: np.ndarray, values: np.ndarray, counts: np.ndarray) -> tuple[Metric, int]:
        mc = self.config
        slots = self.slots
        # rows with the same labels add up into one series (one row per series number in ids)
        label_columns = self._label_columns(keys, values)
        if label_columns:
            index: dict[tuple[str, ...], int] = {}
            numbers = (index.setdefault(t, len(index)) for t in zip(*label_columns))
            ids = np.fromiter(numbers, np.intp, len(counts))
            series = list(index)
        else:
            ids = np.zeros(len(counts), np.intp)
            series = [()]
        acc = np.zeros((len(series), slots + 1), np.uint64)  # the last column: past the last slot (+Inf only)
        n = counts.astype(np.uint64)
        if self.per_key_slots:  # n: (rows, slots in the value)
            inside = min(slots, n.shape[1])
            np.add.at(acc, (ids[:, None], np.arange(inside)[None, :]), n[:, :inside])
            np.add.at(acc, (ids, np.full_like(ids, slots)), n[:, inside:].sum(axis=1, dtype=np.uint64))
        else:
            assert self.slot is not None
            slot_column = np.clip(_column(keys, self.slot).astype(np.int64), 0, slots)
            np.add.at(acc, (ids, slot_column), n)
        dropped = 0
        order = np.arange(len(series))
        if len(series) > mc.max_series:  # keep the series of the largest counts
            totals = acc.sum(axis=1)
            order = np.sort(np.argpartition(totals, len(series) - mc.max_series)[-mc.max_series:])
            dropped = len(series) - mc.max_series
        cumulative = np.cumsum(acc, axis=1)  # the last, +Inf, is _count: exact
        estimated_sums = acc[:, :slots].astype(np.float64) @ self.mids
        family = HistogramMetricFamily(mc.name, mc.help, labels=[lab.name for lab, _, _ in self.labels])
        for i in order.tolist():
            family.add_metric(list(series[i]), buckets=list(zip(self.le, cumulative[i].tolist())),
                              sum_value=float(estimated_sums[i]))
        return family, dropped


def _choices(fields: dict[str, Field]) -> str:
    return f"; fields: {', '.join(fields)}" if fields else " (they are not structs)"


# -- every object --------------------------------------------------------------------------------------------

def read_map(m: cbpf.Map) -> tuple[np.ndarray, np.ndarray]:
    """The whole map in one batch pass, as raw rows: keys uint8 (n, key_size), values uint8 (n, ncpus,
    value_size)."""
    k, v = m.to_numpy()
    n = len(k)
    keys = np.ascontiguousarray(k).view(np.uint8).reshape(n, m.key_size)
    values = np.ascontiguousarray(v).view(np.uint8).reshape(n, m.ncpus, m.value_size)
    return keys, values


class ObjectMetrics:
    """The metrics of one open object."""

    def __init__(self, oc: cfg.ObjectConfig, obj: cbpf.Object) -> None:
        self.name = oc.name
        self.object = obj
        self.readers = [MetricReader(oc, mc, obj) for mc in oc.metrics]


class Collector:
    """A prometheus_client collector of every configured object. Scrapes from several clients at once are
    served one after the other (a lock), each reading every map once."""

    def __init__(self, objects: list[ObjectMetrics]) -> None:
        self.objects = objects
        self.lock = threading.Lock()
        self.dropped: dict[tuple[str, str], int] = {}
        self.errors: dict[tuple[str, str], int] = {}
        for om in objects:
            for r in om.readers:
                self.dropped[(om.name, r.config.name)] = 0
                self.errors[(om.name, r.config.name)] = 0

    def describe(self) -> list[Metric]:
        return []  # the families depend on the maps: nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            yield from self._collect()

    def _collect(self) -> Iterator[Metric]:
        durations = GaugeMetricFamily("cbpf_exporter_scrape_duration_seconds",
                                      "Time spent reading and decoding each object's maps in this scrape",
                                      labels=["object"])
        for om in self.objects:
            start = time.perf_counter()
            families = []
            rows: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            for r in om.readers:
                key = (om.name, r.config.name)
                try:
                    if r.map.name not in rows:
                        rows[r.map.name] = read_map(r.map)
                    family, dropped = r.family(*rows[r.map.name])
                except Exception as e:  # noqa: BLE001 - one broken metric must not take the others down
                    self.errors[key] += 1
                    log.warning("object %s, metric %s: %s: %s", om.name, r.config.name, type(e).__name__, e)
                    continue
                self.dropped[key] += dropped
                families.append(family)
            durations.add_metric([om.name], time.perf_counter() - start)
            yield from families
        yield durations
        yield _counter("cbpf_exporter_dropped_series_total",
                       "Series left out of a metric over its max_series (summed over scrapes)", self.dropped)
        yield _counter("cbpf_exporter_errors_total", "Map reads or decodes that failed, per metric",
                       self.errors)


def _counter(name: str, help_text: str, values: dict[tuple[str, str], int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, help_text, labels=["object", "metric"])
    for (obj, metric), n in values.items():
        family.add_metric([obj, metric], n)
    return family

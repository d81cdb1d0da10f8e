"""The exporter's configuration: YAML read with the line of every value kept, checked against the schema
before any BPF object is opened, so that a mistake is reported as `FILE:LINE: objects[0].metrics[1].type:
...`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from dataclasses import field as default
from pathlib import Path
from typing import Any, Sequence

DEFAULT_LISTEN = "127.0.0.1:9435"
DEFAULT_MAX_SERIES = 10_000
METRIC_TYPES = ("counter", "gauge", "histogram")
BUCKET_KINDS = ("log2", "linear", "exp2")
# units per second: histogram bucket bounds are converted to seconds, Prometheus' base unit for time (dividing
# by 1e6 gives 2e-06 where multiplying by 1e-6 would give 2.0000000000000003e-06)
UNITS = {"seconds": 1.0, "milliseconds": 1e3, "microseconds": 1e6, "nanoseconds": 1e9, "none": 1.0}
DECODERS = ("int", "comm", "syscall", "errno", "ksym", "cgroup", "ipv4", "ipv6", "port", "string", "disk",
            "enum")
_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class ConfigError(Exception):
    """A configuration mistake: str() is `FILE:LINE: KEY: what is wrong`."""


@dataclass
class Place:
    """Where an item of the configuration was written, and the lines of the keys below it, for the mistakes
    found only once its object is open (a map or field the object lacks)."""

    filename: str = "<config>"
    key: str = ""
    line: int = 0
    lines: dict[str, int] = default(default_factory=dict)

    def at(self, sub: str = "") -> str:
        """`FILE:LINE: KEY.sub`, at the line of sub when it was written."""
        line = self.lines.get(sub, self.line) if sub else self.line
        return f"{self.filename}:{line}: {self.key}{'.' + sub if sub else ''}"


@dataclass
class Label:
    name: str
    field: str | None          # a field of the key (of the value with source "value"); None: the whole key
    decode: str
    enum: dict[int, str] | None = None
    source: str = "key"        # "key" or "value"
    place: Place = default(default_factory=Place)


@dataclass
class Buckets:
    kind: str
    unit: str
    step: float = 1.0          # linear: the width of a slot, in `unit`
    slots: int | None = None   # how many slots; default: the array's length (64 for slots from a key field)
    slot_field: str | None = None  # a key field holding the slot (per-key histograms such as {dev, slot})


@dataclass
class Metric:
    name: str                  # the exposed name (prefix applied)
    help: str
    type: str
    map: str
    labels: list[Label]
    value_field: str | None = None
    buckets: Buckets | None = None
    max_series: int = DEFAULT_MAX_SERIES
    place: Place = default(default_factory=Place)


@dataclass
class ObjectConfig:
    name: str
    path: Path | None = None
    source: Path | None = None
    tool: str | None = None
    globals: dict[str, Any] = default(default_factory=dict)
    metrics: list[Metric] = default(default_factory=list)
    place: Place = default(default_factory=Place)


@dataclass
class Config:
    objects: list[ObjectConfig]
    listen: str | None = None
    path: Path | None = None


# -- YAML with line numbers ----------------------------------------------------------------------------------

class _Located:
    """A parsed value with where it was written; mappings and sequences hold _Located values."""

    __slots__ = ("line", "value")

    def __init__(self, value: Any, line: int) -> None:
        self.value = value
        self.line = line


def _locate(node: Any, filename: str, loader: Any) -> _Located:
    import yaml

    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, _Located] = {}
        keys: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = _locate(key_node, filename, loader).value
            if not isinstance(key, (str, int, bool)) and key is not None:
                raise ConfigError(f"{filename}:{key_node.start_mark.line + 1}: a mapping key must be a name "
                                  "or a number")
            if key in keys:
                raise ConfigError(f"{filename}:{key_node.start_mark.line + 1}: {key}: written twice (first "
                                  f"on line {keys[key]})")
            keys[key] = key_node.start_mark.line + 1
            located = _locate(value_node, filename, loader)
            located.line = key_node.start_mark.line + 1  # a value is reported at its key
            out[key] = located
        return _Located(out, line)
    if isinstance(node, yaml.SequenceNode):
        return _Located([_locate(n, filename, loader) for n in node.value], line)
    return _Located(loader.construct_object(node), line)  # ints, bools, null... as YAML resolved them


def _parse_yaml(text: str, filename: str) -> _Located:
    try:
        import yaml
    except ImportError:
        raise ConfigError("reading the configuration needs PyYAML: pip install 'cbpf[exporter]'") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{filename}:{mark.line + 1}" if mark is not None else filename
        raise ConfigError(f"{where}: not valid YAML: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{filename}: not valid YAML: {e}") from None
    if node is None:
        raise ConfigError(f"{filename}:1: the file is empty: it needs `objects:`")
    return _locate(node, filename, yaml.SafeLoader(""))


# -- the schema ----------------------------------------------------------------------------------------------

class _Checker:
    def __init__(self, filename: str) -> None:
        self.filename = filename

    def fail(self, item: _Located | int, key: str, message: str) -> ConfigError:
        line = item if isinstance(item, int) else item.line
        return ConfigError(f"{self.filename}:{line}: {key or '(top level)'}: {message}")

    def mapping(self, item: _Located, key: str, allowed: Sequence[str] | None, required: Sequence[str] = ()
                ) -> dict[Any, _Located]:
        """item's mapping, with only the allowed keys (None: any) and every required one."""
        if not isinstance(item.value, dict):
            wanted = f" (with {', '.join(required or allowed or ())})" if required or allowed else ""
            raise self.fail(item, key, f"expected a mapping{wanted}, got {_kind(item.value)}")
        for name in item.value:
            if allowed is not None and name not in allowed:
                raise self.fail(item.value[name], f"{key}.{name}" if key else str(name),
                                f"unknown key; allowed here: {', '.join(allowed)}")
        for name in required:
            if name not in item.value:
                raise self.fail(item, key, f"missing `{name}:`")
        return item.value

    def sequence(self, item: _Located, key: str) -> list[_Located]:
        if not isinstance(item.value, list):
            raise self.fail(item, key, f"expected a list, got {_kind(item.value)}")
        return item.value

    def string(self, item: _Located, key: str, choices: Sequence[str] = (), name: bool = False) -> str:
        v = item.value
        if not isinstance(v, str) or not v:
            raise self.fail(item, key, f"expected a string, got {_kind(v)}")
        if choices and v not in choices:
            raise self.fail(item, key, f"{v!r} is not one of {', '.join(choices)}")
        if name and not _NAME.match(v):
            raise self.fail(item, key, f"{v!r} is not a valid name (letters, digits and _, not starting "
                                       "with a digit)")
        return v

    def integer(self, item: _Located, key: str, minimum: int = 0) -> int:
        v = item.value
        if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
            raise self.fail(item, key, f"expected an integer >= {minimum}, got {v!r}")
        return v

    def number(self, item: _Located, key: str) -> float:
        v = item.value
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0:
            raise self.fail(item, key, f"expected a positive number, got {v!r}")
        return float(v)

    def boolean(self, item: _Located, key: str) -> bool:
        if not isinstance(item.value, bool):
            raise self.fail(item, key, f"expected true or false, got {item.value!r}")
        return item.value


def _kind(v: Any) -> str:
    if v is None:
        return "nothing"
    if isinstance(v, dict):
        return "a mapping"
    if isinstance(v, list):
        return "a list"
    return f"the string {v!r}" if isinstance(v, str) else repr(v)


def _lines(item: _Located, prefix: str = "") -> dict[str, int]:
    """The line of every key below item, by dotted path (buckets.slot_field)."""
    out: dict[str, int] = {}
    if isinstance(item.value, dict):
        for k, v in item.value.items():
            out[f"{prefix}{k}"] = v.line
            out.update(_lines(v, f"{prefix}{k}."))
    return out


def _place(c: _Checker, item: _Located, key: str) -> Place:
    return Place(c.filename, key, item.line, _lines(item))


def _plain(item: _Located) -> Any:
    v = item.value
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _label(c: _Checker, item: _Located, key: str) -> Label:
    d = c.mapping(item, key, ("name", "field", "decode", "from"), ("name",))
    name = c.string(d["name"], f"{key}.name", name=True)
    fld = None
    if "field" in d and d["field"].value is not None:
        fld = c.string(d["field"], f"{key}.field")
    source = c.string(d["from"], f"{key}.from", ("key", "value")) if "from" in d else "key"
    if source == "value" and fld is None:
        raise c.fail(d["from"], f"{key}.from",
                     "a label from the value needs `field:` (a field of the value's struct)")
    decode, enum = "int", None
    if "decode" in d:
        dec = d["decode"]
        if isinstance(dec.value, dict):
            inner = c.mapping(dec, f"{key}.decode", ("enum",), ("enum",))
            table = c.mapping(inner["enum"], f"{key}.decode.enum", None)
            enum = {}
            for k, v in table.items():
                if not isinstance(k, int) or isinstance(k, bool):
                    raise c.fail(v, f"{key}.decode.enum.{k}", "enum keys are the integers the map holds")
                if not isinstance(v.value, (str, int)) or isinstance(v.value, bool):
                    raise c.fail(v, f"{key}.decode.enum.{k}", f"expected a name, got {_kind(v.value)}")
                enum[k] = str(v.value)
            decode = "enum"
        else:
            decode = c.string(dec, f"{key}.decode", DECODERS)
            if decode == "enum":
                raise c.fail(dec, f"{key}.decode",
                             "write the enum's names: `decode: {enum: {0: read, 1: write}}`")
    return Label(name, fld, decode, enum, source, _place(c, item, key))


def _buckets(c: _Checker, item: _Located, key: str) -> Buckets:
    d = c.mapping(item, key, ("kind", "unit", "step", "slots", "slot_field"), ("kind", "unit"))
    b = Buckets(kind=c.string(d["kind"], f"{key}.kind", BUCKET_KINDS),
                unit=c.string(d["unit"], f"{key}.unit", tuple(UNITS)))
    if "step" in d:
        if b.kind != "linear":
            raise c.fail(d["step"], f"{key}.step", "only linear buckets have a step")
        b.step = c.number(d["step"], f"{key}.step")
    elif b.kind == "linear":
        raise c.fail(item, key, "linear buckets need `step:` (the width of a slot, in the unit)")
    if "slots" in d:
        b.slots = c.integer(d["slots"], f"{key}.slots", 1)
    if "slot_field" in d:
        b.slot_field = c.string(d["slot_field"], f"{key}.slot_field")
    return b


_METRIC_KEYS = ("name", "help", "type", "map", "labels", "value_field", "buckets", "max_series", "raw_name")


def _metric(c: _Checker, item: _Located, key: str, prefix: str, default_max: int) -> Metric:
    d = c.mapping(item, key, _METRIC_KEYS, ("name", "type", "map"))
    name = c.string(d["name"], f"{key}.name", name=True)
    raw = c.boolean(d["raw_name"], f"{key}.raw_name") if "raw_name" in d else False
    mtype = c.string(d["type"], f"{key}.type", METRIC_TYPES)
    labels = []
    if "labels" in d and d["labels"].value is not None:
        items = c.sequence(d["labels"], f"{key}.labels")
        labels = [_label(c, x, f"{key}.labels[{i}]") for i, x in enumerate(items)]
    seen: set[str] = set()
    for i, lab in enumerate(labels):
        if lab.name in seen or lab.name == "le":
            raise c.fail(d["labels"].value[i], f"{key}.labels[{i}].name",
                         f"label {lab.name!r} " + ("is used twice" if lab.name in seen
                                                   else "is reserved for buckets"))
        seen.add(lab.name)
    map_name = c.string(d["map"], f"{key}.map")
    m = Metric(name=name if raw else f"cbpf_{prefix}_{name}",
               help=c.string(d["help"], f"{key}.help") if "help" in d else f"{name} from BPF map {map_name}",
               type=mtype, map=map_name, labels=labels,
               max_series=c.integer(d["max_series"], f"{key}.max_series", 1) if "max_series" in d
               else default_max,
               place=_place(c, item, key))
    if "value_field" in d:
        m.value_field = c.string(d["value_field"], f"{key}.value_field")
    if mtype == "histogram":
        if "buckets" not in d:
            raise c.fail(item, key, "a histogram needs `buckets: {kind: log2|linear|exp2, unit: ...}`")
        m.buckets = _buckets(c, d["buckets"], f"{key}.buckets")
    elif "buckets" in d:
        raise c.fail(d["buckets"], f"{key}.buckets",
                     f"only histograms have buckets (this metric is a {mtype})")
    return m


def _object(c: _Checker, item: _Located, key: str, base: Path, default_max: int) -> ObjectConfig:
    d = c.mapping(item, key, ("name", "path", "source", "tool", "globals", "metrics"), ("name", "metrics"))
    oc = ObjectConfig(name=c.string(d["name"], f"{key}.name", name=True), place=_place(c, item, key))
    given = [k for k in ("path", "source", "tool") if k in d]
    if len(given) != 1:
        raise c.fail(item if not given else d[given[1]], key,
                     "give exactly one of `path:` (a .bpf.o), `source:` (a .bpf.c) or `tool:` (a shipped "
                     "tool)" + (f", not {' and '.join(given)}" if given else ""))
    if "path" in d:
        oc.path = base / c.string(d["path"], f"{key}.path")
    if "source" in d:
        oc.source = base / c.string(d["source"], f"{key}.source")
    if "tool" in d:
        oc.tool = c.string(d["tool"], f"{key}.tool", name=True)
    if "globals" in d and d["globals"].value is not None:
        oc.globals = {str(k): _plain(v) for k, v in c.mapping(d["globals"], f"{key}.globals", None).items()}
    metrics = c.sequence(d["metrics"], f"{key}.metrics")
    if not metrics:
        raise c.fail(d["metrics"], f"{key}.metrics", "an object needs at least one metric")
    oc.metrics = [_metric(c, x, f"{key}.metrics[{i}]", oc.name, default_max) for i, x in enumerate(metrics)]
    return oc


def parse(text: str, filename: str = "<config>", base: Path | None = None) -> Config:
    """The checked configuration of YAML text; ConfigError names the line and key of the first mistake."""
    c = _Checker(filename)
    root = _parse_yaml(text, filename)
    d = c.mapping(root, "", ("objects", "listen", "max_series"), ("objects",))
    default_max = c.integer(d["max_series"], "max_series", 1) if "max_series" in d else DEFAULT_MAX_SERIES
    listen = c.string(d["listen"], "listen") if "listen" in d else None
    if listen is not None:
        try:
            parse_listen(listen)
        except ValueError as e:
            raise c.fail(d["listen"], "listen", str(e)) from None
    items = c.sequence(d["objects"], "objects")
    if not items:
        raise c.fail(d["objects"], "objects", "the list is empty: export at least one object")
    objects = [_object(c, x, f"objects[{i}]", base or Path("."), default_max) for i, x in enumerate(items)]
    names: dict[str, int] = {}
    exposed: dict[str, str] = {}
    for i, (oc, item) in enumerate(zip(objects, items)):
        if oc.name in names:
            raise c.fail(item.value["name"], f"objects[{i}].name",
                         f"{oc.name!r} is already the name of objects[{names[oc.name]}] (names are metric "
                         "prefixes)")
        names[oc.name] = i
        for j, m in enumerate(oc.metrics):
            mkey = f"objects[{i}].metrics[{j}]"
            if m.name in exposed:
                raise c.fail(item.value["metrics"].value[j].value["name"], f"{mkey}.name",
                             f"exposes {m.name!r}, as {exposed[m.name]} does")
            exposed[m.name] = mkey
    return Config(objects=objects, listen=listen)


def load(path: str | Path) -> Config:
    """The checked configuration in a YAML file; relative object paths are relative to the file's
    directory."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the configuration: {e.strerror}") from None
    config = parse(text, str(p), p.parent)
    config.path = p
    return config


def parse_listen(listen: str) -> tuple[str, int]:
    """(host, port) of ADDR:PORT, [IPv6]:PORT or :PORT (all addresses)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{listen!r} is not ADDR:PORT (such as {DEFAULT_LISTEN} or [::1]:9435)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or "0.0.0.0", int(port)


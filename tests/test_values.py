"""The typed value model against the live kernel: every kind of C type read after BPF wrote it, and written from
Python then checked field by field by the BPF program (tests/bpf/values.bpf.c); legacy maps typed with
set_types(); bad input naming the field; stack traces and symbols."""

from __future__ import annotations

import ctypes
import os

import numpy as np
import pytest

import cbpf
from cbpf import Map

pytestmark = pytest.mark.kernel

PID = os.getpid()
NCPUS = cbpf.num_possible_cpus()
ALL_FIELDS = (1 << 26) - 1  # check() in values.bpf.c: a bit per field

KNOWN = dict(
    s8=-5, u8=250, s16=-300, u16=60000, s32=-70000, u32=4000000000, s64=-5000000000, u64=18000000000000000000,
    flag=True, color=3, f32=1.5, f64=-2.25, name="hello", raw=b"\x01\x02\x03\x04", nums=(10, 20, 30),
    pair=(7, -8), pairs=((1, -1), (2, -2)), u=(0x01020304, b"\x04\x03\x02\x01"),
    bits=(5, -7, 0xABCDEF, 1), big=2**100 + 5, sbig=-(2**70) - 1,
)


@pytest.fixture(scope="module")
def values_obj(bpf_objects):
    obj = cbpf.Object(bpf_objects["values"], load=False)
    obj.globals["target_tgid"] = PID
    obj.load()
    obj.attach()
    yield obj
    obj.close()


def check_known(k) -> None:
    for name, want in KNOWN.items():
        assert getattr(k, name) == want, name
    assert k.as_u64 == 0x1122334455667788  # anonymous union member, reachable by name as in C
    assert (k.halves.lo, k.halves.hi) == (0x55667788, 0x11223344)
    assert (k.port, k.proto) == (8080, 17)  # anonymous struct member
    assert k.pair.x == 7 and k.pairs[1].y == -2 and k.bits.b == -7 and k.u.word == 0x01020304
    assert type(k.flag) is bool and type(k.name) is str and type(k.nums) is tuple


def test_every_kind_written_by_bpf_reads_typed(values_obj):
    os.getpid()
    g = values_obj.globals
    check_known(g["g_kinds"])
    by_key = values_obj.maps["by_key"]
    assert by_key.key_type.fields == ("pid", "cpu") and by_key.value_type.name == "struct kinds"
    key = (PID, 7)
    check_known(by_key[key])
    check_known(by_key.get({"pid": PID, "cpu": 7}))
    assert by_key.get((PID, 8)) is None and by_key.get((PID, 8), 0) == 0
    with pytest.raises(KeyError):
        by_key[(PID, 8)]
    d = by_key.to_dict()
    assert list(d) == [key] and list(d)[0].pid == PID and list(d)[0].cpu == 7  # struct keys are hashable named tuples
    check_known(d[key])
    (k, v), = list(by_key.items())
    assert k == key and v == d[key] and list(by_key.keys()) == [key] and list(by_key.values()) == [v]
    assert len(by_key.lookup(key)) == 160  # lookup() stays the raw bytes
    raw = bytearray(160)
    assert by_key.lookup_into(key, raw) and bytes(raw) == by_key.lookup(key)
    assert by_key.value_type.decode(raw) == v and by_key.value_type.encode(v) == bytes(raw)


def test_per_cpu_values_queue_and_fetch(values_obj):
    os.getpid()
    per_cpu = values_obj.maps["per_cpu"]
    v = per_cpu[0]
    assert isinstance(v, list) and len(v) == NCPUS
    ran = [c for c in v if c != (0, 0)]
    assert len(ran) >= 1 and all(c.y == -40 and 40 <= c.x < 40 + NCPUS for c in ran)
    assert per_cpu.to_dict() == {0: v} or per_cpu.to_dict()[0] != v  # a CPU may have run it meanwhile
    q = values_obj.maps["pairs_queue"]
    while q.pop() is not None:
        pass
    os.getpid()
    assert q.peek() == (9, -9) and q.pop().y == -9 and q.pop() is None
    q.push((3, -3))
    q.push({"x": 4})
    assert (q.pop(), q.pop()) == ((3, -3), (4, 0))
    bss = values_obj.maps["values.bss"]
    section = bss[0]  # a .bss map's value: a named tuple of its variables
    assert section.runs == values_obj.globals["runs"] >= 1 and section.g_kinds == values_obj.globals["g_kinds"]
    assert bss.key_type.name == "u32" and "runs" in bss.value_type.fields
    ids = values_obj.maps["stack_ids"]
    assert isinstance(ids[0], int) and ids.fetch(0) == ids[0]  # fetch() stays the int fast path


def test_writes_from_python_are_read_back_by_bpf(values_obj):
    """Each field written from Python is compared by the BPF program with the value C wrote: exact round trips."""
    from_user = values_obj.maps["from_user"]
    g = values_obj.globals
    value = dict(KNOWN, as_u64=0x1122334455667788, port=8080, proto=17)
    value["u"] = {"word": 0x01020304}
    from_user[0] = value  # a dict of field names, anonymous members' fields by their own names
    g["g_from_user"] = g["g_kinds"]  # a named tuple, as reads give it
    g["user_ok"] = 0
    g["g_user_ok"] = 0
    os.getpid()
    assert bin(g["user_ok"]) == bin(ALL_FIELDS)
    assert bin(g["g_user_ok"]) == bin(ALL_FIELDS)
    check_known(from_user[0])
    # a plain tuple in field order works too, and a single wrong field shows as one missing bit
    t = list(from_user[0])
    t[0] = -6
    from_user.update(0, tuple(t))
    os.getpid()
    assert g["user_ok"] == ALL_FIELDS & ~1
    g["g_from_user"] = {"bits": {"b": -7, "c": 0xABCDEF}}
    os.getpid()
    assert g["g_user_ok"] == (1 << 21) | (1 << 22)  # the other fields were zeroed, the neighbour bitfields too


def test_hash_with_struct_keys_written_from_python(values_obj):
    by_key = values_obj.maps["by_key"]
    os.getpid()
    v = by_key[(PID, 7)]
    by_key[(1, 2)] = v._replace(name="x" * 16, u8=0, sbig=-1)
    got = by_key[{"pid": 1, "cpu": 2}]
    assert (got.name, got.u8, got.sbig, got.big) == ("x" * 16, 0, -1, 2**100 + 5)
    assert by_key.value_type.type is type(got)
    assert by_key.delete((1, 2)) and (1, 2) not in by_key and (PID, 7) in by_key


def test_bad_input_names_the_field(values_obj):
    m = values_obj.maps["from_user"]
    with pytest.raises(OverflowError, match="value field 'u8': 256 does not fit a 8-bit unsigned int"):
        m[0] = {"u8": 256}
    with pytest.raises(OverflowError, match="value field 's8'"):
        m[0] = {"s8": 128}
    with pytest.raises(OverflowError, match="value field 'bits.a': 8 does not fit a 3-bit unsigned int"):
        m[0] = {"bits": {"a": 8}}
    with pytest.raises(ValueError, match="value field 'name': 17 UTF-8 bytes do not fit its 16 bytes"):
        m[0] = {"name": "y" * 17}
    with pytest.raises(ValueError, match="no field 'nope'; fields: s8, u8"):
        m[0] = {"nope": 1}
    with pytest.raises(ValueError, match="value field 'pairs\\[1\\]': inner has 2 fields, got a tuple of 3"):
        m[0] = {"pairs": ((1, 2), (1, 2, 3))}
    with pytest.raises(ValueError, match="kinds has 23 fields, got a tuple of 2"):
        m[0] = (1, 2)
    with pytest.raises(TypeError, match="value field 'f64': a float is needed, not str"):
        m[0] = {"f64": "1.0"}
    with pytest.raises(TypeError, match="value field 'flag': a bool \\(or 0 or 1\\) is needed, not 2"):
        m[0] = {"flag": 2}
    with pytest.raises(ValueError, match="value field 'nums': 4 items do not fit an array of 3"):
        m[0] = {"nums": (1, 2, 3, 4)}
    with pytest.raises(OverflowError, match="value field 'big'"):
        m[0] = {"big": 2**128}
    with pytest.raises(OverflowError, match="key 4294967296 does not fit the 4-byte key"):
        m[2**32] = {}
    with pytest.raises(OverflowError, match="global 'runs': -2147483649 does not fit a 32-bit unsigned int"):
        values_obj.globals["runs"] = -(2**31) - 1
    with pytest.raises(TypeError, match="key field 'pid': an int is needed, not str"):
        values_obj.maps["by_key"][{"pid": "1"}] = {}
    # unsigned fields take the signed range too (-1 is all ones), bools take 0 and 1
    m[0] = {"u32": -1, "flag": 1}
    assert (m[0].u32, m[0].flag) == (2**32 - 1, True)


def test_struct_from_ctypes_and_numpy():
    class Inner(ctypes.Structure):
        _fields_ = [("x", ctypes.c_uint16), ("y", ctypes.c_int16)]

    class Value(ctypes.Structure):
        _fields_ = [("count", ctypes.c_uint64), ("name", ctypes.c_char * 8), ("inner", Inner),
                    ("a", ctypes.c_uint32, 3), ("b", ctypes.c_int32, 5), ("ok", ctypes.c_bool)]

    s = cbpf.Struct(Value)
    assert s.size == ctypes.sizeof(Value) and s.fields == ("count", "name", "inner", "a", "b", "ok")
    c = Value(count=2**63, name=b"abc", inner=Inner(3, -4), a=6, b=-9, ok=True)
    v = s.decode(bytes(c))
    assert v == (2**63, "abc", (3, -4), 6, -9, True)
    assert s.encode(v) == bytes(c)
    dt = np.dtype([("pid", "<u4"), ("comm", "S4"), ("vals", "<i2", (2,))])
    n = cbpf.Struct(dt)
    rec = np.array([(7, b"ab", (-1, 2))], dtype=dt)
    assert n.decode(rec.tobytes()) == (7, "ab", (-1, 2))
    assert n.encode({"pid": 7, "comm": "ab", "vals": (-1, 2)}) == rec.tobytes()


def test_legacy_and_created_maps_typed_with_set_types():
    class Stat(ctypes.Structure):
        _fields_ = [("calls", ctypes.c_uint64), ("last", ctypes.c_uint32), ("cpu", ctypes.c_uint32)]

    with Map.create("hash", 8, 16, 16, name=f"st{PID % 10000}") as m:
        assert m.key_type is None and m.value_type is None
        m[b"\1" * 8] = bytes(16)
        assert m[b"\1" * 8] == bytes(16)  # untyped: bytes as before
        m.clear()
        key = np.dtype([("pid", "u4"), ("cpu", "u4")])
        m.set_types(key=key, value=Stat)
        m[(5, 1)] = (10, 20, 1)
        m[{"pid": 6, "cpu": 0}] = {"calls": 3}
        assert m.to_dict() == {(5, 1): (10, 20, 1), (6, 0): (3, 0, 0)}
        assert sorted(m.items()) == [((5, 1), (10, 20, 1)), ((6, 0), (3, 0, 0))]
        assert m[(5, 1)].last == 20 and m.key_type.fields == ("pid", "cpu")
        with pytest.raises(ValueError, match="16-byte values: .* takes 8 bytes"):
            m.set_types(value="Q")
    with Map.create("percpu_array", 4, 4, 2, name=f"pc{PID % 10000}") as pc:
        pc.set_types(key="I", value=ctypes.c_int32)
        pc[1] = -3  # the same value on every CPU
        assert pc[1] == [-3] * NCPUS and pc.to_dict()[1] == [-3] * NCPUS
        pc[0] = list(range(NCPUS))
        assert pc[0] == list(range(NCPUS))
        with pytest.raises(ValueError, match="one per possible CPU"):
            pc[0] = [1] * (NCPUS + 1)


def test_legacy_object_maps_typed(legacy_objects):
    """A legacy object has no BTF: its maps read bytes until set_types() types them, then as a modern map's do."""
    with cbpf.Object(legacy_objects["counter"], attach=False) as obj:
        config, pid_count, percpu = obj.maps["config"], obj.maps["pid_count"], obj.maps["percpu_count"]
        assert config.key_type is None and pid_count.value_type is None
        config.set_types(key="I", value=ctypes.c_uint32)
        pid_count.set_types(key=np.dtype("u4"), value="Q")
        percpu.set_types(key="I", value="Q")
        config[0] = PID
        assert config[0] == PID and config.get(0) == PID
        with obj.programs["count_hash"].attach(), obj.programs["count_array"].attach():
            for _ in range(25):
                os.getpid()
        assert pid_count[PID] == 25 and pid_count.to_dict()[PID] == 25
        assert (PID, 25) in list(pid_count.items()) and PID in list(pid_count.keys())
        assert sum(percpu[0]) == 25 and len(percpu[0]) == NCPUS


def test_stack_traces_and_symbols(values_obj):
    os.getpid()
    ids = values_obj.maps["stack_ids"].to_dict()
    user, kernel = values_obj.maps["user_stacks"][ids[0]], values_obj.maps["kernel_stacks"][ids[1]]
    assert values_obj.maps["user_stacks"].value_type.name == "stack trace (127 addresses)"
    assert isinstance(user, tuple) and 1 <= len(user) <= 127 and all(user)  # trailing zeros dropped
    name, offset, module = cbpf.usym(PID, user[0])
    assert "getpid" in name and offset >= 0 and "libc" in module
    ksyms = [cbpf.ksym(a) for a in kernel]
    assert all(s is not None for s in ksyms)
    assert any("syscall" in s[0] for s in ksyms) and all(s[2] == "kernel" for s in ksyms)
    assert cbpf.ksym(0) is None and cbpf.usym(PID, 0) is None


def test_variable_length_events_from_bpf(values_obj):
    """The program submits 12 bytes of a 72-byte struct: the fields present decode, the rest is empty."""
    with cbpf.RingBuffer(values_obj.maps["var_events"], event="var_event") as rb:
        while rb.read(0) is not None:
            pass
        os.getpid()
        e = rb.read(1.0)
    assert e == (PID, 6, "hello") and e.data == "hello"


def test_short_events_decode_the_fields_present():
    s = cbpf.Struct("ev", ("struct", 12, [("pid", 0, 0, ("int", 4, False)), ("len", 4, 0, ("int", 2, False)),
                                          ("data", 6, 0, ("array", ("int", 1, True, True), 6))], "ev"))
    assert s.decode(b"\x01\0\0\0\x03\0abc") == (1, 3, "abc")
    assert s.decode(b"\x01\0\0\0") == (1, 0, "")


def test_unions_lone_values_and_bad_plans():
    from cbpf import _cbpf

    u = cbpf.Struct("u", ("union", 8, [("word", 0, 0, ("int", 4, False)), ("wide", 0, 0, ("int", 8, True)),
                                       ("tag", 0, 0, ("array", ("int", 1, True, True), 2))], "u"))
    v = u.decode((2**40 + 65).to_bytes(8, "little"))
    assert v == (65, 2**40 + 65, "A")
    assert u.encode(v) == (2**40 + 65).to_bytes(8, "little")  # a tuple writes its largest member, which holds all
    assert u.encode({"word": 7}) == bytes([7, 0, 0, 0, 0, 0, 0, 0])
    text = cbpf.Type("char[4]", ("array", ("int", 1, True, True), 4))
    assert text.decode(b"ab\0c") == "ab" and text.encode("abcd") == b"abcd" and text.encode(b"x") == b"x\0\0\0"
    with pytest.raises(ValueError, match="value: 5 UTF-8 bytes do not fit its 4 bytes"):
        text.encode("abcde")
    nums = cbpf.Type("s16[3]", ("array", ("int", 2, True), 3))
    assert nums.decode(nums.encode([-1, 2])) == (-1, 2, 0)
    with pytest.raises(OverflowError, match="value field '\\[1\\]': 32768 does not fit a 16-bit signed int"):
        nums.encode((1, 32768))
    with pytest.raises(ValueError, match="unknown codec field kind"):
        _cbpf._Decoder(None, 4, [("z", 0, 4, 0, None)])
    with pytest.raises(ValueError, match="bad codec field"):
        _cbpf._Decoder(None, 4, [("u", 0, 1, 0, None, "b", 3, 7)])  # 3 + 7 bits need 2 bytes
    with pytest.raises(ValueError, match="bad codec field"):
        _cbpf._Decoder(None, 8, [("i", 0, 3, 0, None)])
    with pytest.raises((OverflowError, ValueError)):
        _cbpf._Decoder(None, 8, [("u", 8, 8, 2**61, None)])
    with pytest.raises(ValueError, match="ends past the type's 4 bytes"):
        _cbpf._Decoder(None, 4, [("u", 2, 4, 0, None)])
    with pytest.raises(ValueError, match="one field"):
        _cbpf._Decoder(None, 4, [])


def test_random_values_round_trip_through_the_codec(values_obj):
    """encode then decode gives back every value that fits, for every kind of the test program's struct."""
    import random
    import string

    rng = random.Random(1234)
    kinds = values_obj.btf_struct("kinds")

    def signed(bits: int) -> int:
        return rng.randrange(-(1 << (bits - 1)), 1 << (bits - 1))

    def unsigned(bits: int) -> int:
        return rng.randrange(0, 1 << bits)

    for _ in range(300):
        pair = lambda: (unsigned(16), signed(16))  # noqa: E731
        word = unsigned(32)
        v = dict(s8=signed(8), u8=unsigned(8), s16=signed(16), u16=unsigned(16), s32=signed(32), u32=unsigned(32),
                 s64=signed(64), u64=unsigned(64), flag=rng.random() < 0.5, color=rng.choice((1, 2, 3)),
                 f32=rng.choice((0.5, -1.25, 3.0)), f64=rng.uniform(-1e9, 1e9),
                 name="".join(rng.choice(string.ascii_letters) for _ in range(rng.randrange(17))),
                 raw=bytes(unsigned(8) for _ in range(4)), nums=tuple(unsigned(32) for _ in range(3)),
                 pair=pair(), pairs=(pair(), pair()), u={"word": word}, as_u64=unsigned(64),
                 port=unsigned(16), proto=unsigned(16),
                 bits={"a": unsigned(3), "b": signed(5), "c": unsigned(24), "d": unsigned(1)},
                 big=unsigned(128), sbig=signed(128))
        got = kinds.decode(kinds.encode(v))
        for name in ("s8", "u8", "s16", "u16", "s32", "u32", "s64", "u64", "flag", "color", "f32", "f64", "name",
                     "raw", "nums", "pair", "pairs", "as_u64", "port", "proto", "big", "sbig"):
            assert getattr(got, name) == v[name], name
        assert got.u.word == word and got.u.bytes == word.to_bytes(4, "little")
        assert got.bits._asdict() == v["bits"]
        assert kinds.encode(got) == kinds.encode(v)  # a named tuple as reads give it encodes the same bytes


def test_decoded_records_are_tracked_only_when_they_can_hold_a_cycle():
    """Records of ints, strs and bytes can hold no reference cycle: the collector never tracks them (map reads and
    events alike); a record holding what another decoder made is tracked unless a map read found it atomic."""
    import collections
    import gc
    import struct
    import weakref

    Pair = collections.namedtuple("Pair", "a b")
    atomic = cbpf._cbpf._Decoder(Pair, 8, [("u", 0, 4, 0, None, "a"), ("i", 4, 4, 0, None, "b")])
    rec = atomic(struct.pack("=Ii", 7, -1))
    assert rec == (7, -1) and type(rec) is Pair and rec.b == -1 and not gc.is_tracked(rec)
    assert hash(rec) == hash((7, -1)) and {(7, -1): 1}[rec] == 1
    class Box(list):  # a list a weak reference can watch
        pass

    holder = cbpf._cbpf._Decoder(Pair, 8, [("u", 0, 4, 0, None, "a"), ("p", 4, 4, 0, Box, "b")])
    rec = holder(struct.pack("=I", 3) + b"wxyz")
    assert rec == (3, list(b"wxyz")) and gc.is_tracked(rec)
    rec.b.append(rec)  # a cycle through the record: only a tracked record lets the collector free it
    box = weakref.ref(rec.b)
    del rec
    gc.collect()
    assert box() is None

    def refuse(raw: bytes) -> None:
        raise RuntimeError("refused")

    failing = cbpf._cbpf._Decoder(Pair, 8, [("u", 0, 4, 0, None, "a"), ("p", 4, 4, 0, refuse, "b")])
    with pytest.raises(RuntimeError, match="refused"):  # the half-made record is freed (its unset item skipped)
        failing(bytes(8))

    with Map.create("hash", 8, 8, 4, name=f"gc{PID % 10000}") as m:
        m.set_types(key=np.dtype([("pid", "u4"), ("cpu", "u4")]), value=np.dtype([("n", "u4"), ("f", "i4")]))
        m[(1, 2)] = (3, -4)
        (k, v), = m.items()
        assert (k, v) == ((1, 2), (3, -4)) and not gc.is_tracked(k) and not gc.is_tracked(v)
        (k, v), = m.to_dict().items()
        assert (k, v) == ((1, 2), (3, -4)) and not gc.is_tracked(k) and not gc.is_tracked(v)
        assert m[(1, 2)].f == -4 and not gc.is_tracked(m[(1, 2)])

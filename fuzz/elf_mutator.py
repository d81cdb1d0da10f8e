"""A structural mutator of BPF ELF objects, run against cbpf.Object() (scripts/fuzz-elf runs it under the ASan +
UBSan build, where any report aborts the process).

Unlike byte-level fuzzing, each mutant changes one to three fields that the parsers read: the ELF header, a section
header, a symbol, a relocation, the BTF header or a BTF type record, the .BTF.ext header or one of its record
sizes and counts, or cuts the file at a structural boundary. Every mutant must either open (and, one in
--load-every, load) or fail with OSError errno EINVAL (ENOMEM allowed), or at load with the ValueError that names
what must be set before load: a crash, a sanitizer report, another
exception or errno, or an fd left open is a finding. The run is deterministic for a given --seed.

Usage: python fuzz/elf_mutator.py --runs N [--seed S] [--load-every K] [--current FILE] SEED_DIR...
"""

from __future__ import annotations

import argparse
import errno
import faulthandler
import os
import random
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cbpf

EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
SHDR = struct.Struct("<IIQQQQIIQQ")
SYM = struct.Struct("<IBBHQQ")
REL = struct.Struct("<QQ")
BTF_HDR = struct.Struct("<HBBIIIII")
BTF_EXT_HDR = struct.Struct("<HBBIIIIIII")  # magic, version, flags, hdr_len, func/line info off+len, core relo
SHT_SYMTAB, SHT_REL, SHT_NOBITS = 2, 9, 8
MAX_MAP_BYTES = 64 << 20  # as fuzz_object.py: no multi-gigabyte maps


@dataclass
class Section:
    index: int
    name: str
    type: int
    offset: int
    size: int
    header_at: int


@dataclass
class Layout:
    """Where the fields of one seed object are: offsets into its bytes, found once per seed."""

    data: bytes
    shoff: int = 0
    sections: list[Section] = field(default_factory=list)
    symbols: list[int] = field(default_factory=list)  # offsets of Elf64_Sym records
    relocs: list[int] = field(default_factory=list)  # offsets of Elf64_Rel records
    btf: Section | None = None
    btf_types: list[int] = field(default_factory=list)  # offsets of struct btf_type records
    btf_ext: Section | None = None
    btf_ext_words: list[int] = field(default_factory=list)  # record sizes and counts of .BTF.ext


BTF_TRAILER = {1: lambda v: 4, 3: lambda v: 12, 4: lambda v: 12 * v, 5: lambda v: 12 * v, 6: lambda v: 8 * v,
               13: lambda v: 8 * v, 14: lambda v: 4, 15: lambda v: 12 * v, 17: lambda v: 4, 19: lambda v: 12 * v}


def parse(data: bytes) -> Layout:
    lay = Layout(data)
    eh = EHDR.unpack_from(data)
    lay.shoff, shnum, shstrndx = eh[6], eh[12], eh[13]
    headers = [SHDR.unpack_from(data, lay.shoff + i * SHDR.size) for i in range(shnum)]
    names = headers[shstrndx]
    for i, h in enumerate(headers):
        start = names[4] + h[0]
        name = data[start:data.index(b"\0", start)].decode("latin-1")
        lay.sections.append(Section(i, name, h[1], h[4], h[5], lay.shoff + i * SHDR.size))
    for s in lay.sections:
        if s.type == SHT_SYMTAB:
            lay.symbols += range(s.offset + SYM.size, s.offset + s.size, SYM.size)
        elif s.type == SHT_REL:
            lay.relocs += range(s.offset, s.offset + s.size, REL.size)
        elif s.name == ".BTF":
            lay.btf = s
            _, _, _, hdr_len, type_off, type_len, _, _ = BTF_HDR.unpack_from(data, s.offset)
            at, end = s.offset + hdr_len + type_off, s.offset + hdr_len + type_off + type_len
            while at + 12 <= end:
                lay.btf_types.append(at)
                info = struct.unpack_from("<I", data, at + 4)[0]
                kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
                at += 12 + BTF_TRAILER.get(kind, lambda v: 0)(vlen)
        elif s.name == ".BTF.ext":
            lay.btf_ext = s
            h = BTF_EXT_HDR.unpack_from(data, s.offset)
            hdr_len = h[3]
            for off, length in ((h[4], h[5]), (h[6], h[7]), (h[8], h[9])):
                at = s.offset + hdr_len + off
                if length >= 4:
                    lay.btf_ext_words.append(at)  # record size
                    rec = struct.unpack_from("<I", data, at)[0]
                    sub, end = at + 4, at + length
                    while rec and sub + 8 <= end:
                        lay.btf_ext_words += [sub, sub + 4]  # sec_name_off, num_info
                        sub += 8 + rec * struct.unpack_from("<I", data, sub + 4)[0]
    return lay


def interesting(rng: random.Random, old: int, bits: int, size: int) -> int:
    mask = (1 << bits) - 1
    choice = rng.randrange(10)
    if choice == 0:
        return 0
    if choice == 1:
        return mask
    if choice == 2:
        return (old + rng.choice((1, -1, 2, 4, -4, 8, -8))) & mask
    if choice == 3:
        return size & mask
    if choice == 4:
        return (size + rng.randrange(-16, 16)) & mask
    if choice == 5:
        return (1 << (bits - 1)) & mask
    if choice == 6:
        return old ^ (1 << rng.randrange(bits))
    if choice == 7:
        return rng.randrange(1 << min(bits, 16))
    if choice == 8:
        return (old * 2) & mask
    return rng.getrandbits(bits)


def put(buf: bytearray, rng: random.Random, at: int, fmt: str) -> None:
    """Rewrites one field (struct format fmt) at offset at with an interesting value."""
    if at < 0 or at + struct.calcsize(fmt) > len(buf):
        return
    old = struct.unpack_from(fmt, buf, at)[0]
    struct.pack_into(fmt, buf, at, interesting(rng, old, struct.calcsize(fmt) * 8, len(buf)))


SHDR_FIELDS = [(0, "<I"), (4, "<I"), (8, "<Q"), (24, "<Q"), (32, "<Q"), (40, "<I"), (44, "<I"), (48, "<Q"), (56, "<Q")]
EHDR_FIELDS = [(16, "<H"), (18, "<H"), (40, "<Q"), (58, "<H"), (60, "<H"), (62, "<H")]
SYM_FIELDS = [(0, "<I"), (4, "<B"), (6, "<H"), (8, "<Q"), (16, "<Q")]
REL_FIELDS = [(0, "<Q"), (8, "<Q"), (8, "<I"), (12, "<I")]
BTF_HDR_FIELDS = [(0, "<H"), (2, "<B"), (3, "<B"), (4, "<I"), (8, "<I"), (12, "<I"), (16, "<I"), (20, "<I")]
BTF_TYPE_FIELDS = [(0, "<I"), (4, "<I"), (4, "<H"), (7, "<B"), (8, "<I"), (12, "<I"), (16, "<I")]
BTF_EXT_FIELDS = [(4, "<I"), (8, "<I"), (12, "<I"), (16, "<I"), (20, "<I"), (24, "<I"), (28, "<I")]


def mutate(lay: Layout, rng: random.Random) -> tuple[bytes, str]:
    buf = bytearray(lay.data)
    done = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        what = rng.choice(("shdr", "shdr", "ehdr", "sym", "sym", "rel", "rel", "btf", "btf_type", "btf_type",
                           "btf_ext", "btf_ext_rec", "truncate", "bytes"))
        if what == "shdr":
            s = rng.choice(lay.sections)
            off, fmt = rng.choice(SHDR_FIELDS)
            put(buf, rng, s.header_at + off, fmt)
            done.append(f"shdr[{s.index} {s.name}]+{off}")
        elif what == "ehdr":
            off, fmt = rng.choice(EHDR_FIELDS)
            put(buf, rng, off, fmt)
            done.append(f"ehdr+{off}")
        elif what == "sym" and lay.symbols:
            at = rng.choice(lay.symbols)
            off, fmt = rng.choice(SYM_FIELDS)
            put(buf, rng, at + off, fmt)
            done.append(f"sym@{at}+{off}")
        elif what == "rel" and lay.relocs:
            at = rng.choice(lay.relocs)
            off, fmt = rng.choice(REL_FIELDS)
            put(buf, rng, at + off, fmt)
            done.append(f"rel@{at}+{off}")
        elif what == "btf" and lay.btf:
            off, fmt = rng.choice(BTF_HDR_FIELDS)
            put(buf, rng, lay.btf.offset + off, fmt)
            done.append(f"btf_hdr+{off}")
        elif what == "btf_type" and lay.btf_types:
            at = rng.choice(lay.btf_types)
            off, fmt = rng.choice(BTF_TYPE_FIELDS)
            put(buf, rng, at + off, fmt)
            done.append(f"btf_type@{at}+{off}")
        elif what == "btf_ext" and lay.btf_ext:
            off, fmt = rng.choice(BTF_EXT_FIELDS)
            put(buf, rng, lay.btf_ext.offset + off, fmt)
            done.append(f"btf_ext_hdr+{off}")
        elif what == "btf_ext_rec" and lay.btf_ext_words:
            at = rng.choice(lay.btf_ext_words)
            put(buf, rng, at, "<I")
            done.append(f"btf_ext@{at}")
        elif what == "truncate":
            ends = [s.offset + s.size for s in lay.sections if s.type != SHT_NOBITS] + [lay.shoff]
            cut = rng.choice(ends) + rng.choice((0, -1, -4, -8, 1, 12))
            cut = max(0, min(len(buf), cut))
            del buf[cut:]
            done.append(f"truncate@{cut}")
        elif what == "bytes":
            s = rng.choice(lay.sections)
            for _ in range(rng.randrange(1, 5)):
                if s.size and s.type != SHT_NOBITS and s.offset + s.size <= len(buf):
                    buf[s.offset + rng.randrange(s.size)] = rng.randrange(256)
            done.append(f"bytes[{s.name}]")
    return bytes(buf), ",".join(done) or "none"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def run_one(data: bytes, load: bool) -> str | None:
    """None when the mutant opened, "refused" when it was refused as it should be; otherwise what went wrong."""
    try:
        obj = cbpf.Object(data, name="mutant", load=False, attach=False)
    except OSError as e:
        # the legacy loader refuses what it does not support (callbacks, kfuncs, global data) with EOPNOTSUPP
        unsupported = e.errno == errno.EOPNOTSUPP and "(legacy format" in str(e)
        if (e.errno not in (errno.EINVAL, errno.ENOMEM) and not unsupported) or type(e) is not OSError:
            return f"open raised {type(e).__name__} errno {e.errno}: {e}"
        return "refused"
    except Exception as e:  # noqa: BLE001 - any other exception is what this looks for
        return f"open raised {type(e).__name__}: {e}"
    try:
        for m in obj.maps.values():
            m.name, m.key_size, m.value_size  # noqa: B018
        try:
            dict(obj.globals) if not obj.legacy else None
        except (ValueError, KeyError):
            pass
        too_big = any(m.max_entries * (m.key_size + m.value_size) > MAX_MAP_BYTES for m in obj.maps.values())
        if load and not too_big:
            try:
                obj.load()
                return "loaded"
            except OSError:
                pass
            except ValueError as e:
                # what the object's loader must set first (a map size left 0, a program without a type) is said
                # at load, before anything reaches the kernel: an answer, not a finding
                if "before Object.load()" not in str(e):
                    raise
    except Exception as e:  # noqa: BLE001
        return f"after open: {type(e).__name__}: {e}"
    finally:
        obj.close()
    return None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--load-every", type=int, default=20, help="load one mutant in this many that open")
    ap.add_argument("--current", type=Path, help="each mutant is written here first (kept if the process dies)")
    ap.add_argument("--timeout", type=float, default=30, help="seconds one mutant may take: past them, the process "
                    "exits with the stacks of its threads (a hang is a finding)")
    ap.add_argument("seeds", nargs="+", type=Path)
    args = ap.parse_args()
    layouts = []
    for d in args.seeds:
        for p in sorted(d.iterdir()) if d.is_dir() else [d]:
            try:
                layouts.append((p.name, parse(p.read_bytes())))
            except (struct.error, ValueError, IndexError):
                pass  # not an object this mutator understands (the regression inputs)
    if not layouts:
        print("elf_mutator: no seed objects", file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    findings = 0
    opened = 0
    counts = {"refused": 0, "opened": 0, "loaded": 0, "findings": 0}
    start = time.monotonic()
    fds = open_fds()
    for i in range(args.runs):
        name, lay = rng.choice(layouts)
        data, how = mutate(lay, rng)
        if args.current is not None:
            args.current.write_bytes(data)
            args.current.with_suffix(".txt").write_text(f"run {i} of seed {args.seed}: {name} {how}\n")
        load = False
        if opened % args.load_every == 0:
            load = True
        faulthandler.dump_traceback_later(args.timeout, exit=True)
        problem = run_one(data, load)
        faulthandler.cancel_dump_traceback_later()
        counts[problem if problem in counts else "opened" if problem is None else "findings"] += 1
        if problem in (None, "loaded"):
            opened += 1
        elif problem != "refused":
            findings += 1
            print(f"FINDING run {i}: {name} {how}: {problem}", file=sys.stderr)
        if i % 500 == 499 and open_fds() != fds:
            findings += 1
            print(f"FINDING: {open_fds() - fds} fds left open by runs up to {i}", file=sys.stderr)
            fds = open_fds()
    if open_fds() != fds:
        findings += 1
        print(f"FINDING: {open_fds() - fds} fds left open", file=sys.stderr)
    print(f"elf_mutator: {args.runs} mutants of {len(layouts)} seeds (seed {args.seed}) in "
          f"{time.monotonic() - start:.0f} s: {counts['refused']} refused, {counts['opened']} opened, "
          f"{counts['loaded']} of them loaded; {findings} findings")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())

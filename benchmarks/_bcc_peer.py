"""bcc's side of the benchmarks, run by the system python that Debian's python3-bpfcc belongs to.

    /usr/bin/python3 benchmarks/_bcc_peer.py ENTRIES LOOKUPS   -> one JSON line of ns figures
"""

import json
import statistics
import sys
import time

from bcc import BPF  # type: ignore[import-not-found]


def main() -> None:
    n, lookups = int(sys.argv[1]), int(sys.argv[2])
    b = BPF(text=f"BPF_HASH(counts, u32, u64, {n});")
    table = b["counts"]
    keys = (table.Key * n)(*range(n))
    values = (table.Leaf * n)(*range(n))
    table.items_update_batch(keys, values)
    dumps = []
    for _ in range(3):
        t = time.perf_counter()
        d = dict(table.items_lookup_batch())  # what bcc hands a user: its own key and value objects
        dumps.append((time.perf_counter() - t) / n * 1e9)
        assert len(d) == n
    key = table.Key(4321)
    t = time.perf_counter()
    for _ in range(lookups):
        table[key]
    lookup = (time.perf_counter() - t) / lookups * 1e9
    print(json.dumps({"dump_dict_ns": statistics.median(dumps), "lookup_ns": lookup}))


if __name__ == "__main__":
    main()

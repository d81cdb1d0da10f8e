// SPDX-License-Identifier: BSD-2-Clause
/* The exporter's test histograms as the shipped tools keep them: `hist`, SLOTS counts of log2 slots, slot(v) = 0
 * for v < 2, else floor(log2(v)), at most SLOTS - 1. */
#ifndef EXPORTER_SLOTS_H
#define EXPORTER_SLOTS_H

#define SLOTS 64

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, SLOTS);
    __type(key, __u32);
    __type(value, __u64);
} hist SEC(".maps");

static __always_inline __u32 log2_slot(__u64 v)
{
    __u32 slot = 0;
    while (v >= 2 && slot < SLOTS - 1) {
        v >>= 1;
        slot++;
    }
    return slot;
}

#endif

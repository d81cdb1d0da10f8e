// SPDX-License-Identifier: BSD-2-Clause
/* The log2 slot of the exporter's test histograms: slot(v) = 0 for v < 2, else floor(log2(v)), at most SLOTS - 1. */
#ifndef EXPORTER_SLOTS_H
#define EXPORTER_SLOTS_H

#define SLOTS 64

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

/* SPDX-License-Identifier: BSD-2-Clause */
/* cbpf/histogram.h: the slot convention of cbpf.Histogram, for BPF C.
 *
 * #include <bpf/bpf_helpers.h> first, then this header (it is in cbpf.include_dir()).
 *
 * log2 slots: slot(v) = 0 for v < 2, else floor(log2(v)); slot k >= 1 covers [2^k, 2^(k+1)), slot 0 covers [0, 2).
 * An ARRAY map of CBPF_LOG2_SLOTS __u64 counters indexed by slot is what cbpf.Histogram(map) reads.
 * linear slots: slot(v) = v / step, the last slot catching everything above.
 */
#ifndef CBPF_HISTOGRAM_H
#define CBPF_HISTOGRAM_H

#include <linux/types.h>

#define CBPF_LOG2_SLOTS 64

/* floor(log2(v)) for v >= 1 and 0 for v = 0, in five branch-free steps (no loop for the verifier to walk) */
static __always_inline __u32 cbpf_log2_slot(__u64 v)
{
    __u32 slot = 0, shift;

    shift = (v > 0xffffffffULL) << 5;
    v >>= shift;
    slot |= shift;
    shift = (v > 0xffff) << 4;
    v >>= shift;
    slot |= shift;
    shift = (v > 0xff) << 3;
    v >>= shift;
    slot |= shift;
    shift = (v > 0xf) << 2;
    v >>= shift;
    slot |= shift;
    shift = (v > 0x3) << 1;
    v >>= shift;
    slot |= shift;
    return slot | (__u32)(v >> 1);
}

static __always_inline __u32 cbpf_linear_slot(__u64 v, __u64 step, __u32 slots)
{
    __u64 slot = step ? v / step : v;

    return slot < slots ? (__u32)slot : slots - 1;
}

/* adds one to the counter of slot in an ARRAY (or per-CPU ARRAY) map of __u64 */
#define cbpf_hist_increment(map, slot)                                                                                 \
    ({                                                                                                                 \
        __u32 __cbpf_slot = (slot);                                                                                    \
        __u64 *__cbpf_count = bpf_map_lookup_elem(map, &__cbpf_slot);                                                  \
        if (__cbpf_count)                                                                                              \
            __sync_fetch_and_add(__cbpf_count, 1);                                                                     \
    })

#endif

// SPDX-License-Identifier: BSD-2-Clause
/* Exporter test program shaped like the shipped biolatency tool's maps: `hist` (log2 slots of microseconds from
 * issue to completion) and `disk_hist` ({dev, slot} -> count). Counts only writes, and only on target_dev when it
 * is set (a global the exporter's config sets before load), so a test knows how many requests it caused. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "exporter_slots.h"
#include <bpf/bpf_core_read.h>

const volatile __u32 target_dev = 0;

struct disk_slot {
    __u32 dev;
    __u32 slot;
};

struct rq_id {
    __u32 dev;
    __u32 pad;
    __u64 sector;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4096);
    __type(key, struct disk_slot);
    __type(value, __u64);
} disk_hist SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4096);
    __type(key, struct rq_id);
    __type(value, __u64);
} started SEC(".maps");

static __always_inline int is_write(const char *rwbs)
{
    /* rwbs starts with F (flush) before W for a preflush write; a plain write starts with W */
    return rwbs[0] == 'W' || (rwbs[0] == 'F' && rwbs[1] == 'W');
}

SEC("tracepoint/block/block_rq_issue")
int on_issue(struct trace_event_raw_block_rq *ctx)
{
    char rwbs[2];
    struct rq_id id = {};
    __u64 now = bpf_ktime_get_ns();

    id.dev = BPF_CORE_READ(ctx, dev);
    if (target_dev && id.dev != target_dev)
        return 0;
    bpf_probe_read_kernel(rwbs, sizeof(rwbs), ctx->rwbs);
    if (!is_write(rwbs))
        return 0;
    id.sector = BPF_CORE_READ(ctx, sector);
    bpf_map_update_elem(&started, &id, &now, BPF_ANY);
    return 0;
}

SEC("tracepoint/block/block_rq_complete")
int on_complete(struct trace_event_raw_block_rq_completion *ctx)
{
    struct rq_id id = {};
    struct disk_slot ds = {};
    __u64 *start, *n, one = 1;
    __u32 slot;

    id.dev = BPF_CORE_READ(ctx, dev);
    id.sector = BPF_CORE_READ(ctx, sector);
    start = bpf_map_lookup_elem(&started, &id);
    if (!start)
        return 0;
    slot = log2_slot((bpf_ktime_get_ns() - *start) / 1000);
    bpf_map_delete_elem(&started, &id);
    n = bpf_map_lookup_elem(&hist, &slot);
    if (n)
        __sync_fetch_and_add(n, 1);
    ds.dev = id.dev;
    ds.slot = slot;
    n = bpf_map_lookup_elem(&disk_hist, &ds);
    if (n)
        __sync_fetch_and_add(n, 1);
    else
        bpf_map_update_elem(&disk_hist, &ds, &one, BPF_NOEXIST);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";

// SPDX-License-Identifier: BSD-2-Clause
/* cbpf biolatency: block I/O latency, from a request's issue to the device to its completion, as a log2 histogram
 * in microseconds (cbpf/histogram.h's slots): one for every disk (hist) and one per disk (disk_hist). */
#include "tools.h"
#include <cbpf/histogram.h>

struct gendisk {
    int major;
    int first_minor;
} __attribute__((preserve_access_index));

struct request_queue {
    struct gendisk *disk;
} __attribute__((preserve_access_index));

struct request {
    struct request_queue *q;
} __attribute__((preserve_access_index));

struct disk_slot {
    __u32 dev; /* the disk's dev_t as the kernel packs it: major << 20 | minor */
    __u32 slot;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 10240);
    __type(key, __u64); /* the request's address */
    __type(value, __u64); /* issued at (ns) */
} issued SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, CBPF_LOG2_SLOTS);
    __type(key, __u32);
    __type(value, __u64);
} hist SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 64 * CBPF_LOG2_SLOTS);
    __type(key, struct disk_slot);
    __type(value, __u64);
} disk_hist SEC(".maps");

SEC("tp_btf/block_rq_issue")
int BPF_PROG(rq_issue, struct request *rq)
{
    __u64 key = (__u64)rq, now = bpf_ktime_get_ns();

    bpf_map_update_elem(&issued, &key, &now, BPF_ANY);
    return 0;
}

SEC("tp_btf/block_rq_complete")
int BPF_PROG(rq_complete, struct request *rq, int error, unsigned int nr_bytes)
{
    __u64 key = (__u64)rq, *start = bpf_map_lookup_elem(&issued, &key), one = 1, *count;
    struct disk_slot ds = {};
    struct gendisk *disk;
    __u64 usecs;

    if (!start)
        return 0;
    usecs = (bpf_ktime_get_ns() - *start) / 1000;
    bpf_map_delete_elem(&issued, &key);
    ds.slot = cbpf_log2_slot(usecs);
    if (ds.slot >= CBPF_LOG2_SLOTS)
        ds.slot = CBPF_LOG2_SLOTS - 1;
    cbpf_hist_increment(&hist, ds.slot);
    disk = BPF_CORE_READ(rq, q, disk);
    if (disk)
        ds.dev = ((__u32)BPF_CORE_READ(disk, major) << 20) | (__u32)BPF_CORE_READ(disk, first_minor);
    count = bpf_map_lookup_elem(&disk_hist, &ds);
    if (count)
        __sync_fetch_and_add(count, 1);
    else if (bpf_map_update_elem(&disk_hist, &ds, &one, BPF_NOEXIST) != 0 &&
             (count = bpf_map_lookup_elem(&disk_hist, &ds)))
        __sync_fetch_and_add(count, 1);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";

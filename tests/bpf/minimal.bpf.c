// SPDX-License-Identifier: BSD-2-Clause
/* A small object for load/close cycles: one map, one program that boot() does not attach (a socket filter). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u64);
} cells SEC(".maps");

SEC("socket")
int keep_all(struct __sk_buff *skb)
{
    __u32 key = 0;
    __u64 *v = bpf_map_lookup_elem(&cells, &key);
    if (v)
        __sync_fetch_and_add(v, 1);
    return skb->len;
}

char LICENSE[] SEC("license") = "GPL";

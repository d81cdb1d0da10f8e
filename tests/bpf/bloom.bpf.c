// SPDX-License-Identifier: BSD-2-Clause
/* A bloom filter whose number of hash functions (map_extra) user space sets before load, and a socket filter that
 * tests a value against it (run on test input). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_BLOOM_FILTER);
    __uint(max_entries, 64);
    __type(value, __u32);
} seen SEC(".maps");

const volatile __u32 probe_value = 0;

SEC("socket")
int contains(struct __sk_buff *skb)
{
    __u32 v = probe_value;
    return bpf_map_peek_elem(&seen, &v) == 0;
}

char LICENSE[] SEC("license") = "GPL";

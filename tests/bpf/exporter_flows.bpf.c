// SPDX-License-Identifier: BSD-2-Clause
/* Exporter test and benchmark program: a hash of bytes per flow whose struct key decodes to three labels (IPv4
 * address, port, protocol). Its program is never attached: the tests and the benchmark fill the map themselves,
 * so they know every entry it holds. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct flow {
    __u32 addr;     /* IPv4, network order */
    __u16 port;     /* host order */
    __u8 proto;     /* IPPROTO_TCP, IPPROTO_UDP */
    __u8 pad;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16384);
    __type(key, struct flow);
    __type(value, __u64);
} flow_bytes SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
    __uint(max_entries, 64);
    __type(key, __u32);
    __type(value, __u64[8]);
} percpu_slots SEC(".maps");

SEC("socket")
int count_flow(struct __sk_buff *skb)
{
    struct flow f = {.proto = IPPROTO_UDP};
    __u64 *n = bpf_map_lookup_elem(&flow_bytes, &f);
    __u32 zero = 0;
    if (n)
        __sync_fetch_and_add(n, skb->len);
    bpf_map_lookup_elem(&percpu_slots, &zero);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";

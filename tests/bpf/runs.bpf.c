// SPDX-License-Identifier: BSD-2-Clause
/* Programs run on test input (BPF_PROG_TEST_RUN) rather than attached: socket filters, XDP, a raw tracepoint; maps
 * shared between objects (by reuse and by pinning by name); a spin-locked value; BTF-defined initial contents of a
 * program array and a map of maps; a kconfig value given from user space. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} shared_counts SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} pinned_counts SEC(".maps");

struct locked_value {
    struct bpf_spin_lock lock;
    __u64 n;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, struct locked_value);
} locked SEC(".maps");

/* not used by any program: the autocreate tests turn it off */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 8);
    __type(key, __u32);
    __type(value, __u32);
} spare SEC(".maps");

/* a map of maps whose inner map's shape user space gives (Map.inner_map) */
struct {
    __uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u32);
} by_key SEC(".maps");

extern __u32 CONFIG_CBPF_ANSWER __kconfig __weak;

static void bump(void *map)
{
    __u32 zero = 0;
    __u64 *n = bpf_map_lookup_elem(map, &zero);
    if (n)
        __sync_fetch_and_add(n, 1);
}

SEC("socket")
int bump_shared(struct __sk_buff *skb)
{
    bump(&shared_counts);
    return skb->len;
}

SEC("socket")
int bump_pinned(struct __sk_buff *skb)
{
    bump(&pinned_counts);
    return 0;
}

/* tc: socket filters may not take spin locks */
SEC("tc")
int bump_locked(struct __sk_buff *skb)
{
    __u32 key = 1;
    struct locked_value zero = {}, *v = bpf_map_lookup_elem(&locked, &key);
    if (!v) {
        bpf_map_update_elem(&locked, &key, &zero, BPF_NOEXIST);
        v = bpf_map_lookup_elem(&locked, &key);
        if (!v)
            return 0;
    }
    bpf_spin_lock(&v->lock);
    v->n++;
    bpf_spin_unlock(&v->lock);
    return 0;
}

SEC("socket")
int answer(struct __sk_buff *skb)
{
    return CONFIG_CBPF_ANSWER;
}

/* drops packets whose first byte is odd; marks the second byte of those it passes */
SEC("xdp")
int drop_odd(struct xdp_md *ctx)
{
    unsigned char *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    if (data + 2 > end)
        return XDP_ABORTED;
    if (data[0] & 1)
        return XDP_DROP;
    data[1] = 0xAB;
    return XDP_PASS;
}

/* returns twice its second argument (the syscall number of sys_enter) */
SEC("raw_tp/sys_enter")
int twice_arg1(struct bpf_raw_tracepoint_args *ctx)
{
    return (int)ctx->args[1] * 2;
}

SEC("tracepoint/syscalls/sys_enter_getpid")
int tracepoint_only(void *ctx)
{
    return 0;
}

/* tail-called through jumps[1], which the BTF initialises */
SEC("socket")
int tail_target(struct __sk_buff *skb)
{
    return 42;
}

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __array(values, int(void *));
} jumps SEC(".maps") = {
    .values = {[1] = (void *)&tail_target},
};

SEC("socket")
int jumper(struct __sk_buff *skb)
{
    bpf_tail_call(skb, &jumps, 1);
    return 7; /* only if the tail call did not happen */
}

struct inner {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} inner_a SEC(".maps"), inner_b SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
    __uint(max_entries, 2);
    __type(key, __u32);
    __array(values, struct inner);
} outer SEC(".maps") = {
    .values = {[0] = &inner_a, [1] = &inner_b},
};

char LICENSE[] SEC("license") = "GPL";

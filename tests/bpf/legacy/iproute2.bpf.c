/* iproute2's dialect (tc's objects): struct bpf_elf_map records in "maps", maps of maps linked by id, pins chosen
 * by the pinning field, a "classifier" section. Modelled on the format that tc's loader reads. */
#include "dialects.h"

struct bpf_elf_map {
    __u32 type;
    __u32 size_key;
    __u32 size_value;
    __u32 max_elem;
    __u32 flags;
    __u32 id;
    __u32 pinning;
    __u32 inner_id;
    __u32 inner_idx;
};

#define INNER_ID 42

/* packets seen at [0], UDP datagrams to UDP_PORT at [1]: pinned at /sys/fs/bpf/tc/globals/tc_counts<TAG> */
struct bpf_elf_map SEC("maps") TAGGED(tc_counts) = {
    .type = BPF_MAP_TYPE_ARRAY, .size_key = 4, .size_value = 8, .max_elem = 2, .pinning = PIN_GLOBAL_NS,
};

/* pinned under the object's hash: /sys/fs/bpf/tc/<sha1 of the .o>/obj_counts<TAG> */
struct bpf_elf_map SEC("maps") TAGGED(obj_counts) = {
    .type = BPF_MAP_TYPE_ARRAY, .size_key = 4, .size_value = 8, .max_elem = 1, .pinning = PIN_OBJECT_NS,
};

/* the inner map's template, put at key 0 of the outer map by the loader (inner_idx 0) */
struct bpf_elf_map SEC("maps") tc_inner = {
    .type = BPF_MAP_TYPE_ARRAY, .size_key = 4, .size_value = 8, .max_elem = 1, .id = INNER_ID, .inner_idx = 0,
};

struct bpf_elf_map SEC("maps") tc_outer = {
    .type = BPF_MAP_TYPE_ARRAY_OF_MAPS, .size_key = 4, .size_value = 4, .max_elem = 1, .inner_id = INNER_ID,
    .inner_idx = ~0u,
};

/* tail calls: tc loads section "<id>/<key>" into the program array with that id, at that key */
#define JMP_ID 7
struct bpf_elf_map SEC("maps") tc_jmp = {
    .type = BPF_MAP_TYPE_PROG_ARRAY, .size_key = 4, .size_value = 4, .max_elem = 1, .id = JMP_ID, .inner_idx = ~0u,
};
struct bpf_elf_map SEC("maps") tail_hits = {
    .type = BPF_MAP_TYPE_ARRAY, .size_key = 4, .size_value = 8, .max_elem = 1,
};

SEC(STR(JMP_ID) "/0") int tail_count(struct __sk_buff *skb)
{
    add(&tail_hits, 0, 1);
    return TC_ACT_OK;
}

SEC("classifier") int cls_count(struct __sk_buff *skb)
{
    __u32 zero = 0;
    if (!to_udp_port(skb))
        return TC_ACT_OK;
    add(&TAGGED(tc_counts), 1, 1);
    add(&TAGGED(obj_counts), 0, 1);
    void *inner = bpf_map_lookup_elem(&tc_outer, &zero);
    if (inner)
        add(inner, 0, 1);
    bpf_tail_call(skb, &tc_jmp, 0);
    return TC_ACT_OK; /* only when the tail call fails */
}

/* a socket filter of the same object: every datagram counted at [0], passed whole */
SEC("socket") int sock_count(struct __sk_buff *skb)
{
    add(&TAGGED(tc_counts), 0, 1);
    return skb->len;
}

char _license[] SEC("license") = "GPL";

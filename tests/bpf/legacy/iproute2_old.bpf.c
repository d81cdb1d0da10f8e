/* iproute2's older struct bpf_elf_map, before inner_id and inner_idx: 7 fields, 28 bytes, the size of samples/bpf's
 * struct bpf_map_def. Only the BTF (-g) tells them apart; without it the loader says what it could not decide. */
#include "dialects.h"

struct bpf_elf_map {
    __u32 type;
    __u32 size_key;
    __u32 size_value;
    __u32 max_elem;
    __u32 flags;
    __u32 id;
    __u32 pinning;
};

/* pinned at /sys/fs/bpf/tc/globals/old_counts<TAG> */
struct bpf_elf_map SEC("maps") TAGGED(old_counts) = {
    .type = BPF_MAP_TYPE_ARRAY, .size_key = 4, .size_value = 8, .max_elem = 1, .id = 1, .pinning = PIN_GLOBAL_NS,
};

SEC("socket") int count_old(struct __sk_buff *skb)
{
    add(&TAGGED(old_counts), 0, 1);
    return skb->len;
}

char _license[] SEC("license") = "GPL";

/* Sections that name no program type, as an IDS names its filters: the application sets each program's type
 * before load. */
#include "dialects.h"

struct bpf_map_def {
    unsigned int type, key_size, value_size, max_entries, map_flags;
};

struct bpf_map_def SEC("maps") seen = {
    .type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 8, .max_entries = 2,
};

/* a socket filter once typed: counts datagrams at [0], keeps them whole */
SEC("filter") int ids_filter(struct __sk_buff *skb)
{
    add(&seen, 0, 1);
    return skb->len;
}

/* the same shape, counting at [1] and keeping 2 bytes */
SEC("loadbalancer") int balance(struct __sk_buff *skb)
{
    add(&seen, 1, 1);
    return 2;
}

char _license[] SEC("license") = "GPL";

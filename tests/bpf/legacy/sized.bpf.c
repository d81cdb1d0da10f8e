/* The legacy format with sizes user space changes before load: a hash of one entry (made larger), bumped by a socket filter
 * (run on test input), and an array no program uses. */
#include "bpf_legacy.h"

struct bpf_map_def SEC("maps") sized = {
    .type = BPF_MAP_TYPE_HASH, .key_size = sizeof(__u32), .value_size = sizeof(__u64), .max_entries = 1,
};
struct bpf_map_def SEC("maps") shared = {
    .type = BPF_MAP_TYPE_ARRAY, .key_size = sizeof(__u32), .value_size = sizeof(__u64), .max_entries = 1,
};
struct bpf_map_def SEC("maps") unused = {
    .type = BPF_MAP_TYPE_ARRAY, .key_size = sizeof(__u32), .value_size = sizeof(__u64), .max_entries = 1,
};

SEC("socket")
int bump(void *skb)
{
    __u32 key = 7, zero = 0;
    __u64 one = 1, *n = bpf_map_lookup_elem(&sized, &key);
    if (n)
        __sync_fetch_and_add(n, 1);
    else
        bpf_map_update_elem(&sized, &key, &one, BPF_NOEXIST);
    n = bpf_map_lookup_elem(&shared, &zero);
    if (n)
        __sync_fetch_and_add(n, 1);
    return 0;
}

char _license[] SEC("license") = "GPL";

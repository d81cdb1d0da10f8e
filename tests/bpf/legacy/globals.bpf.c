/* Global variables live in .data/.bss, which legacy objects never had: parsing must refuse them clearly. */
#include "bpf_legacy.h"

/* a map, so that this is a legacy object (without a "maps" section, libbpf loads it itself) */
struct bpf_map_def SEC("maps") unused = {BPF_MAP_TYPE_ARRAY, sizeof(__u32), sizeof(__u32), 1};

__u64 hits;

SEC("socket")
int count_packets(void *skb)
{
    hits++;
    return 0;
}

char _license[] SEC("license") = "GPL";

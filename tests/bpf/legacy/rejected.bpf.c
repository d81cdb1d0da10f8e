/* A program the verifier refuses (a map value used without a NULL check), after one it accepts: loading must fail
 * with the verifier's log and leave no map or program open. */
#include "bpf_legacy.h"

/* a hash: recent verifiers know an array lookup of a constant, in-range key cannot fail */
struct bpf_map_def SEC("maps") values = {BPF_MAP_TYPE_HASH, sizeof(__u32), sizeof(__u64), 1};

SEC("socket/good")
int good(void *skb)
{
    __u32 zero = 0;
    __u64 *v = bpf_map_lookup_elem(&values, &zero);
    return v ? (int)*v : 0;
}

SEC("socket/bad")
int bad(void *skb)
{
    __u32 zero = 0;
    __u64 *v = bpf_map_lookup_elem(&values, &zero);
    return (int)*v;
}

char _license[] SEC("license") = "GPL";

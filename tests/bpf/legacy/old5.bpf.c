/* The oldest layout: 5-word map definitions (no inner_map_idx, numa_node), mixed with a record carrying an extra,
 * zero field; no version section; programs under "tp/". */
#include "bpf_legacy.h"

struct bpf_map_def5 {
    unsigned int type, key_size, value_size, max_entries, map_flags;
};
struct bpf_map_def_padded {
    unsigned int type, key_size, value_size, max_entries, map_flags, inner_map_idx, numa_node, reserved;
};

struct bpf_map_def5 SEC("maps") counts = {BPF_MAP_TYPE_HASH, sizeof(__u32), sizeof(__u64), 64, 0};
struct bpf_map_def_padded SEC("maps") percpu_counts = {BPF_MAP_TYPE_PERCPU_HASH, sizeof(__u32), sizeof(__u64), 64};

SEC("tp/syscalls/sys_enter_getpid")
int count(void *ctx)
{
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
    __u64 one = 1, *v = bpf_map_lookup_elem(&counts, &tgid);
    if (v)
        __sync_fetch_and_add(v, 1);
    else
        bpf_map_update_elem(&counts, &tgid, &one, BPF_ANY);
    v = bpf_map_lookup_elem(&percpu_counts, &tgid);
    if (v)
        *v += 1; /* per-CPU: no atomics needed */
    else
        bpf_map_update_elem(&percpu_counts, &tgid, &one, BPF_ANY);
    return 0;
}

char _license[] SEC("license") = "Dual BSD/GPL";

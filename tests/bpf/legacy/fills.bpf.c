/* What old loaders filled in themselves: a map of maps with value_size 0 (4: an fd), a perf event array with
 * key_size and value_size 0 (4 and 4) and max_entries 0 (one per CPU). samples/bpf's struct bpf_map_def. */
#include "dialects.h"

struct bpf_map_def {
    unsigned int type, key_size, value_size, max_entries, map_flags, inner_map_idx, numa_node;
};

struct bpf_map_def SEC("maps") template = {
    .type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 8, .max_entries = 1,
};

struct bpf_map_def SEC("maps") outer = {
    .type = BPF_MAP_TYPE_ARRAY_OF_MAPS, .key_size = 4, .value_size = 0, .max_entries = 1, .inner_map_idx = 0,
};

struct bpf_map_def SEC("maps") events = {
    .type = BPF_MAP_TYPE_PERF_EVENT_ARRAY,
};

struct bpf_map_def SEC("maps") target = {
    .type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 4, .max_entries = 1,
};

SEC("tracepoint/syscalls/sys_enter_getpid") int on_getpid(void *ctx)
{
    __u32 zero = 0, *tgid = bpf_map_lookup_elem(&target, &zero);
    __u32 me = bpf_get_current_pid_tgid() >> 32;
    if (!tgid || *tgid != me)
        return 0;
    void *inner = bpf_map_lookup_elem(&outer, &zero);
    if (inner)
        add(inner, 0, 1);
    bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, &me, sizeof(me));
    return 0;
}

char _license[] SEC("license") = "GPL";

/* A legacy kprobe feeding a perf event array (samples/bpf's struct bpf_map_def, sizes 0: the loader fills them),
 * for the VM kernels: each getpid() of the tgid in perf_target[0] sends its sequence number. */
#include "legacy/dialects.h"

struct bpf_map_def {
    unsigned int type, key_size, value_size, max_entries, map_flags;
};

struct bpf_map_def SEC("maps") perf_target = {
    .type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 4, .max_entries = 1,
};
struct bpf_map_def SEC("maps") perf_seq = {
    .type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 8, .max_entries = 1,
};
struct bpf_map_def SEC("maps") perf_samples = {
    .type = BPF_MAP_TYPE_PERF_EVENT_ARRAY,
};

SEC("kprobe/__x64_sys_getpid") int perf_getpid(void *ctx)
{
    __u32 zero = 0, *tgid = bpf_map_lookup_elem(&perf_target, &zero);
    __u64 *seq = bpf_map_lookup_elem(&perf_seq, &zero);
    if (!tgid || !seq || *tgid != (__u32)(bpf_get_current_pid_tgid() >> 32))
        return 0;
    /* read, then add without fetching: an atomic fetch-and-add (BPF_FETCH) needs 5.12, and one thread of one tgid
     * calls getpid here */
    __u64 n = *seq;
    __sync_fetch_and_add(seq, 1);
    bpf_perf_event_output(ctx, &perf_samples, BPF_F_CURRENT_CPU, &n, sizeof(n));
    return 0;
}

char _license[] SEC("license") = "GPL";

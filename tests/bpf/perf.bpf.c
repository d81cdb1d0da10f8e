// SPDX-License-Identifier: BSD-2-Clause
/* Test program for perf events: counts samples by (CPU, process). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct sample_key {
    __u32 cpu;
    __u32 tgid;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4096);
    __type(key, struct sample_key);
    __type(value, __u64);
} samples SEC(".maps");

SEC("perf_event")
int on_sample(struct bpf_perf_event_data *ctx)
{
    struct sample_key key = {.cpu = bpf_get_smp_processor_id(), .tgid = bpf_get_current_pid_tgid() >> 32};
    __u64 one = 1, *n = bpf_map_lookup_elem(&samples, &key);
    if (n)
        __sync_fetch_and_add(n, 1);
    else
        bpf_map_update_elem(&samples, &key, &one, BPF_NOEXIST);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";

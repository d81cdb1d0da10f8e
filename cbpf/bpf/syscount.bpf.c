// SPDX-License-Identifier: BSD-2-Clause
/* The monitor bundled with cbpf: counts system calls per process (thread group). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16384);
    __type(key, __u32);   /* tgid */
    __type(value, __u64); /* system calls entered */
} syscalls SEC(".maps");

SEC("raw_tracepoint/sys_enter")
int count_syscalls(void *ctx)
{
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
    __u64 one = 1, *count = bpf_map_lookup_elem(&syscalls, &tgid);

    if (count)
        __sync_fetch_and_add(count, 1);
    else
        bpf_map_update_elem(&syscalls, &tgid, &one, BPF_NOEXIST);
    return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

// SPDX-License-Identifier: BSD-2-Clause
/* cbpf top: system calls per process (thread group), with the process's name recorded when it is first seen and
 * again at each exec, so that a process that has exited keeps its name. */
#include "tools.h"

struct top_value {
    __u64 count;
    char comm[TASK_COMM_LEN];
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16384);
    __type(key, __u32); /* tgid */
    __type(value, struct top_value);
} syscalls SEC(".maps");

SEC("raw_tracepoint/sys_enter")
int count_syscalls(void *ctx)
{
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
    struct top_value *value = bpf_map_lookup_elem(&syscalls, &tgid);
    struct top_value first = {.count = 1};

    if (value) {
        __sync_fetch_and_add(&value->count, 1);
        return 0;
    }
    current_process_comm(first.comm);
    if (bpf_map_update_elem(&syscalls, &tgid, &first, BPF_NOEXIST) != 0) {
        /* another CPU inserted it first (a thread of the same process): count on its entry */
        value = bpf_map_lookup_elem(&syscalls, &tgid);
        if (value)
            __sync_fetch_and_add(&value->count, 1);
    }
    return 0;
}

SEC("tracepoint/sched/sched_process_exec")
int rename_on_exec(void *ctx)
{
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
    struct top_value *value = bpf_map_lookup_elem(&syscalls, &tgid);

    if (value)
        bpf_get_current_comm(value->comm, sizeof(value->comm));
    return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

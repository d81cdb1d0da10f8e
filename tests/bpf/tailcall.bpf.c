// SPDX-License-Identifier: BSD-2-Clause
/* Test program: a program array. The getpid tracepoint tail-calls jump_table[0]; when the slot is empty the call
 * falls through and the entry program counts it itself. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, __u32);
} jump_table SEC(".maps");

__u32 target_tgid;
__u64 fell_through, in_first, in_second;

SEC("tracepoint/syscalls/sys_enter_getpid")
int entry(void *ctx)
{
    if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
        return 0;
    bpf_tail_call(ctx, &jump_table, 0);
    __sync_fetch_and_add(&fell_through, 1);
    return 0;
}

SEC("tracepoint")
int first(void *ctx)
{
    __sync_fetch_and_add(&in_first, 1);
    return 0;
}

SEC("tracepoint")
int second(void *ctx)
{
    __sync_fetch_and_add(&in_second, 1);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";

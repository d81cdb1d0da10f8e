// SPDX-License-Identifier: BSD-2-Clause
/* Test program of cbpf.compile(): counts getpid() calls per process, STEP at a time (a -D, or a #define put
 * before this text). CO-RE: reads the tgid from the kernel's task_struct. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#ifndef STEP
#define STEP 1
#endif

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, __u32);
    __type(value, __u64);
} calls SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getpid")
int count_getpid(void *ctx)
{
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    __u32 tgid = BPF_CORE_READ(task, tgid);
    __u64 first = STEP, *v = bpf_map_lookup_elem(&calls, &tgid);
    if (v)
        __sync_fetch_and_add(v, STEP);
    else
        bpf_map_update_elem(&calls, &tgid, &first, BPF_NOEXIST);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";

// SPDX-License-Identifier: BSD-2-Clause
/* cbpf profile: CPU stack sampling. A perf event fires at a set frequency on every CPU; each sample counts the
 * (process, user stack, kernel stack) it interrupted. User space symbolizes the stacks. */
#include "tools.h"
#include <linux/bpf_perf_event.h>

#define MAX_STACK_DEPTH 127

struct stack_key {
    __u32 pid;
    __s32 user_stack;   /* a stack id in stacks, or a negative errno (no user stack: a kernel thread) */
    __s32 kernel_stack; /* likewise: negative when the sample hit user code */
    char comm[TASK_COMM_LEN];
};

const volatile __u32 targ_tgid = 0;     /* 0: every process */
const volatile __u8 include_idle = 0;   /* samples of the idle task (pid 0) */

struct {
    __uint(type, BPF_MAP_TYPE_STACK_TRACE);
    __uint(max_entries, 16384);
    __uint(key_size, sizeof(__u32));
    __uint(value_size, MAX_STACK_DEPTH * sizeof(__u64));
} stacks SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 40960);
    __type(key, struct stack_key);
    __type(value, __u64);
} samples SEC(".maps");

SEC("perf_event")
int sample(struct bpf_perf_event_data *ctx)
{
    __u64 id = bpf_get_current_pid_tgid(), one = 1, *count;
    struct stack_key key = {.pid = id >> 32};

    if (targ_tgid && key.pid != targ_tgid)
        return 0;
    if (!include_idle && (__u32)id == 0)
        return 0;
    bpf_get_current_comm(key.comm, sizeof(key.comm));
    key.user_stack = bpf_get_stackid(ctx, &stacks, BPF_F_USER_STACK);
    key.kernel_stack = bpf_get_stackid(ctx, &stacks, 0);
    count = bpf_map_lookup_elem(&samples, &key);
    if (count)
        __sync_fetch_and_add(count, 1);
    else if (bpf_map_update_elem(&samples, &key, &one, BPF_NOEXIST) != 0 &&
             (count = bpf_map_lookup_elem(&samples, &key)))
        __sync_fetch_and_add(count, 1);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";

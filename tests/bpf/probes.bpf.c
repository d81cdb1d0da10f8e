// SPDX-License-Identifier: BSD-2-Clause
/* Test programs for user-space probes: a uprobe and a uretprobe on add(a, b), a USDT probe with one argument. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

__u32 target_tgid; /* 0: every process */
__u64 entry_calls, entry_arg_sum, return_calls, return_sum, usdt_calls, usdt_arg_sum;

static __always_inline bool is_target(void)
{
    return target_tgid == 0 || (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

SEC("uprobe")
int BPF_UPROBE(on_entry, long a)
{
    if (is_target()) {
        __sync_fetch_and_add(&entry_calls, 1);
        __sync_fetch_and_add(&entry_arg_sum, a);
    }
    return 0;
}

SEC("uretprobe")
int BPF_URETPROBE(on_return, long ret)
{
    if (is_target()) {
        __sync_fetch_and_add(&return_calls, 1);
        __sync_fetch_and_add(&return_sum, ret);
    }
    return 0;
}

SEC("usdt")
int BPF_USDT(on_tick, int value)
{
    __sync_fetch_and_add(&usdt_calls, 1);
    __sync_fetch_and_add(&usdt_arg_sum, value);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";

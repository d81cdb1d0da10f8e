// SPDX-License-Identifier: BSD-2-Clause
/* kprobes on getpid() for the VM kernel tests: by section name, and generic ones for attach_kprobe(). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

__u32 target_tgid;
__u64 kprobe_calls, kretprobe_calls, kretprobe_right_value, explicit_calls, explicit_ret_calls;

static __always_inline bool is_target(void)
{
    return (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

SEC("kprobe/__x64_sys_getpid")
int BPF_KPROBE(kprobe_getpid)
{
    if (is_target())
        __sync_fetch_and_add(&kprobe_calls, 1);
    return 0;
}

SEC("kretprobe/__x64_sys_getpid")
int BPF_KRETPROBE(kretprobe_getpid, long ret)
{
    if (is_target()) {
        __sync_fetch_and_add(&kretprobe_calls, 1);
        if (ret == target_tgid) /* getpid() returns the tgid */
            __sync_fetch_and_add(&kretprobe_right_value, 1);
    }
    return 0;
}

SEC("kprobe")
int BPF_KPROBE(any_kprobe)
{
    if (is_target())
        __sync_fetch_and_add(&explicit_calls, 1);
    return 0;
}

SEC("kretprobe")
int BPF_KRETPROBE(any_kretprobe)
{
    if (is_target())
        __sync_fetch_and_add(&explicit_ret_calls, 1);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";

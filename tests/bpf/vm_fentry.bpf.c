// SPDX-License-Identifier: BSD-2-Clause
/* fentry/fexit on getpid() for the VM kernel tests (kernels refuse them without BTF trampolines: EPERM here). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

__u32 target_tgid;
__u64 fentry_calls, fexit_calls, fexit_right_value;

static __always_inline bool is_target(void)
{
    return (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

SEC("fentry/__x64_sys_getpid")
int BPF_PROG(fentry_getpid, struct pt_regs *regs)
{
    if (is_target())
        __sync_fetch_and_add(&fentry_calls, 1);
    return 0;
}

SEC("fexit/__x64_sys_getpid")
int BPF_PROG(fexit_getpid, struct pt_regs *regs, long ret)
{
    if (is_target()) {
        __sync_fetch_and_add(&fexit_calls, 1);
        if (ret == target_tgid)
            __sync_fetch_and_add(&fexit_right_value, 1);
    }
    return 0;
}

char LICENSE[] SEC("license") = "GPL";

// SPDX-License-Identifier: BSD-2-Clause
/* Shapes of tools that ship an fentry and a non-fentry variant of one probe, and of tools whose fentry target is
 * chosen at run time: open() counted by fentry on security_file_open (where trampolines work) or by the openat
 * tracepoint (elsewhere), the loader choosing by cbpf.features; and an fentry program whose section names a
 * placeholder, retargeted before load. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

__u32 target_tgid;
__u64 fentry_opens, tracepoint_opens, retargeted_opens;

static __always_inline bool is_target(void)
{
    return (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

SEC("fentry/security_file_open")
int BPF_PROG(open_fentry, struct file *file)
{
    if (is_target())
        __sync_fetch_and_add(&fentry_opens, 1);
    return 0;
}

SEC("tracepoint/syscalls/sys_enter_openat")
int open_tracepoint(void *ctx)
{
    if (is_target())
        __sync_fetch_and_add(&tracepoint_opens, 1);
    return 0;
}

/* no kernel function has this name: the loader sets attach_target */
SEC("fentry/cbpf_placeholder_function")
int BPF_PROG(retargeted)
{
    if (is_target())
        __sync_fetch_and_add(&retargeted_opens, 1);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";

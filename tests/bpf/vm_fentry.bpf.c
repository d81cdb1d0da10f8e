// SPDX-License-Identifier: BSD-2-Clause
/* fentry/fexit on security_file_open() for the VM kernel tests: counts one process's opens (and the successful ones).
 * The syscall wrappers (__x64_sys_*) are not in the BTF of Debian's kernels and do_unlinkat is not in 7.x's: the LSM
 * hook's caller is in every kernel's BTF. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

__u32 target_tgid;
__u64 fentry_calls, fexit_calls, fexit_succeeded;

static __always_inline bool is_target(void)
{
    return (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

SEC("fentry/security_file_open")
int BPF_PROG(fentry_file_open, struct file *file)
{
    if (is_target())
        __sync_fetch_and_add(&fentry_calls, 1);
    return 0;
}

SEC("fexit/security_file_open")
int BPF_PROG(fexit_file_open, struct file *file, int ret)
{
    if (is_target()) {
        __sync_fetch_and_add(&fexit_calls, 1);
        if (ret == 0)
            __sync_fetch_and_add(&fexit_succeeded, 1);
    }
    return 0;
}

char LICENSE[] SEC("license") = "GPL";

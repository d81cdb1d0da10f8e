// SPDX-License-Identifier: BSD-2-Clause
/* fentry/fexit on do_unlinkat() for the VM kernel tests: counts one process's unlinks (and the successful ones). The
 * syscall wrappers (__x64_sys_*) are not in the BTF of Debian's kernels, so a VFS function is the target. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

__u32 target_tgid;
__u64 fentry_calls, fexit_calls, fexit_succeeded;

static __always_inline bool is_target(void)
{
    return (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

SEC("fentry/do_unlinkat")
int BPF_PROG(fentry_unlinkat, int dfd, struct filename *name)
{
    if (is_target())
        __sync_fetch_and_add(&fentry_calls, 1);
    return 0;
}

SEC("fexit/do_unlinkat")
int BPF_PROG(fexit_unlinkat, int dfd, struct filename *name, long ret)
{
    if (is_target()) {
        __sync_fetch_and_add(&fexit_calls, 1);
        if (ret == 0)
            __sync_fetch_and_add(&fexit_succeeded, 1);
    }
    return 0;
}

char LICENSE[] SEC("license") = "GPL";

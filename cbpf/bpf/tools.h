/* SPDX-License-Identifier: BSD-2-Clause */
/* What cbpf's tools share: the kernel types they read, declared with only the fields they use. libbpf relocates
 * each field access (preserve_access_index) against the running kernel's BTF, so no vmlinux.h is needed at build
 * time and one object fits every kernel that has these fields. */
#ifndef CBPF_TOOLS_H
#define CBPF_TOOLS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#define TASK_COMM_LEN 16

struct task_struct {
    int pid;
    int tgid;
    unsigned int __state;
    struct task_struct *real_parent;
    struct task_struct *group_leader;
    char comm[TASK_COMM_LEN];
} __attribute__((preserve_access_index));

/* the classic tracepoints of system calls: 8 bytes of common fields, the syscall number, then the arguments */
struct syscall_enter_ctx {
    __u64 common;
    __s64 syscall_nr;
    unsigned long args[6];
};

struct syscall_exit_ctx {
    __u64 common;
    __s64 syscall_nr;
    __s64 ret;
};

/* the comm of the current process (its thread group leader's, not a thread's own name) */
static __always_inline void current_process_comm(char comm[TASK_COMM_LEN])
{
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    struct task_struct *leader = BPF_CORE_READ(task, group_leader);

    if (!leader || bpf_core_read_str(comm, TASK_COMM_LEN, &leader->comm) < 0)
        bpf_get_current_comm(comm, TASK_COMM_LEN);
}

#endif

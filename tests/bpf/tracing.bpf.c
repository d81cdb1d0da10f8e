// SPDX-License-Identifier: BSD-2-Clause
/* Test programs for the tracing attach points: each counts the getpid() calls of one process (target_tgid). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define NR_getpid 39 /* x86_64 */

__u32 target_tgid;
__u64 tp_calls, raw_calls, btf_calls;

static __always_inline bool is_target(void)
{
    return (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

SEC("tracepoint/syscalls/sys_enter_getpid")
int tp_getpid(void *ctx)
{
    if (is_target())
        __sync_fetch_and_add(&tp_calls, 1);
    return 0;
}

SEC("raw_tracepoint/sys_enter")
int raw_getpid(struct bpf_raw_tracepoint_args *ctx)
{
    if (ctx->args[1] == NR_getpid && is_target())
        __sync_fetch_and_add(&raw_calls, 1);
    return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(btf_getpid, struct pt_regs *regs, long id)
{
    if (id == NR_getpid && is_target())
        __sync_fetch_and_add(&btf_calls, 1);
    return 0;
}

/* one line per task: "tgid pid comm" */
SEC("iter/task")
int dump_task(struct bpf_iter__task *ctx)
{
    struct seq_file *seq = ctx->meta->seq;
    struct task_struct *task = ctx->task;
    if (task == NULL)
        return 0;
    BPF_SEQ_PRINTF(seq, "%d %d %s\n", task->tgid, task->pid, task->comm);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";

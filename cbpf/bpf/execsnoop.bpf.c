// SPDX-License-Identifier: BSD-2-Clause
/* cbpf execsnoop: every exec, with what it was given (file name and argv, read at entry) and how it ended (the
 * result and the new comm, at exit), sent to user space as one event. */
#include "tools.h"

#define MAX_ARGS 20
#define ARG_LEN 128
#define PATH_LEN 256

struct exec_event {
    __u32 pid;
    __u32 ppid;
    __u32 uid;
    __s32 ret;
    __u32 argc;       /* arguments read into argv */
    __u32 truncated;  /* 1 when the program had more than MAX_ARGS arguments */
    char comm[TASK_COMM_LEN];
    char filename[PATH_LEN];
    char argv[MAX_ARGS][ARG_LEN];
};

const volatile __u32 targ_uid = (__u32)-1; /* (__u32)-1: every user */

/* an exec in flight, by thread id: the event being filled (too large for the BPF stack) */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 10240);
    __type(key, __u32);
    __type(value, struct exec_event);
} execs SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct exec_event);
} scratch SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 1 << 20);
} events SEC(".maps");

static __always_inline int exec_entered(const char *filename, const char *const *argv)
{
    __u64 id = bpf_get_current_pid_tgid();
    __u32 tid = (__u32)id, zero = 0, uid = (__u32)bpf_get_current_uid_gid();
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    struct exec_event *e;
    const char *arg;
    int i;

    if (targ_uid != (__u32)-1 && uid != targ_uid)
        return 0;
    e = bpf_map_lookup_elem(&scratch, &zero);
    if (!e)
        return 0;
    e->pid = id >> 32;
    e->ppid = BPF_CORE_READ(task, real_parent, tgid);
    e->uid = uid;
    e->ret = 0;
    e->argc = 0;
    e->truncated = 0;
    if (bpf_probe_read_user_str(e->filename, sizeof(e->filename), filename) < 0)
        e->filename[0] = '\0';
    for (i = 0; i < MAX_ARGS; i++) {
        if (bpf_probe_read_user(&arg, sizeof(arg), &argv[i]) != 0 || !arg)
            goto stored;
        if (bpf_probe_read_user_str(e->argv[i], ARG_LEN, arg) < 0)
            e->argv[i][0] = '\0';
        e->argc = i + 1;
    }
    if (bpf_probe_read_user(&arg, sizeof(arg), &argv[MAX_ARGS]) == 0 && arg)
        e->truncated = 1;
stored:
    bpf_map_update_elem(&execs, &tid, e, BPF_ANY);
    return 0;
}

static __always_inline int exec_returned(long ret)
{
    __u32 tid = (__u32)bpf_get_current_pid_tgid();
    struct exec_event *e = bpf_map_lookup_elem(&execs, &tid);

    if (!e)
        return 0;
    e->ret = ret;
    bpf_get_current_comm(e->comm, sizeof(e->comm));
    bpf_ringbuf_output(&events, e, sizeof(*e), 0);
    bpf_map_delete_elem(&execs, &tid);
    return 0;
}

SEC("tracepoint/syscalls/sys_enter_execve")
int execve_enter(struct syscall_enter_ctx *ctx)
{
    return exec_entered((const char *)ctx->args[0], (const char *const *)ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_enter_execveat")
int execveat_enter(struct syscall_enter_ctx *ctx)
{
    return exec_entered((const char *)ctx->args[1], (const char *const *)ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_exit_execve")
int execve_exit(struct syscall_exit_ctx *ctx)
{
    return exec_returned(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_execveat")
int execveat_exit(struct syscall_exit_ctx *ctx)
{
    return exec_returned(ctx->ret);
}

char LICENSE[] SEC("license") = "GPL";

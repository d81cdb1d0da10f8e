// SPDX-License-Identifier: BSD-2-Clause
/* cbpf opensnoop: every open, openat and openat2 with its path, flags and result. The path is read at the system
 * call's exit: by then the kernel has copied it, so its page is resident and the read cannot fault. */
#include "tools.h"

#define PATH_LEN 256

struct open_event {
    __u32 pid;
    __u32 tid;
    __u32 uid;
    __s32 ret;
    __s32 flags;
    __u32 mode;
    char comm[TASK_COMM_LEN];
    char path[PATH_LEN];
};

struct open_start {
    const char *path;
    __s32 flags;
    __u32 mode;
};

const volatile __u32 targ_tgid = 0; /* 0: every process */

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 10240);
    __type(key, __u32); /* thread id */
    __type(value, struct open_start);
} opens SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 1 << 20);
} events SEC(".maps");

/* puts struct open_event in the object's BTF, where user space finds it to decode the events */
struct open_event *unused_open_event __attribute__((unused));

static __always_inline int open_entered(const char *path, __s32 flags, __u32 mode)
{
    __u64 id = bpf_get_current_pid_tgid();
    __u32 tid = (__u32)id;
    struct open_start start = {.path = path, .flags = flags, .mode = mode};

    if (targ_tgid && (id >> 32) != targ_tgid)
        return 0;
    bpf_map_update_elem(&opens, &tid, &start, BPF_ANY);
    return 0;
}

SEC("tracepoint/syscalls/sys_enter_open")
int open_enter(struct syscall_enter_ctx *ctx)
{
    return open_entered((const char *)ctx->args[0], (__s32)ctx->args[1], (__u32)ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_enter_openat")
int openat_enter(struct syscall_enter_ctx *ctx)
{
    return open_entered((const char *)ctx->args[1], (__s32)ctx->args[2], (__u32)ctx->args[3]);
}

SEC("tracepoint/syscalls/sys_enter_openat2")
int openat2_enter(struct syscall_enter_ctx *ctx)
{
    __u64 how[2] = {}; /* struct open_how: flags, mode, resolve */

    bpf_probe_read_user(how, sizeof(how), (const void *)ctx->args[2]);
    return open_entered((const char *)ctx->args[1], (__s32)how[0], (__u32)how[1]);
}

static __always_inline int open_returned(long ret)
{
    __u64 id = bpf_get_current_pid_tgid();
    __u32 tid = (__u32)id;
    struct open_start *start = bpf_map_lookup_elem(&opens, &tid);
    struct open_event *e;

    if (!start)
        return 0;
    e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
    if (e) {
        e->pid = id >> 32;
        e->tid = tid;
        e->uid = (__u32)bpf_get_current_uid_gid();
        e->ret = ret;
        e->flags = start->flags;
        e->mode = start->mode;
        bpf_get_current_comm(e->comm, sizeof(e->comm));
        if (bpf_probe_read_user_str(e->path, sizeof(e->path), start->path) < 0)
            e->path[0] = '\0';
        bpf_ringbuf_submit(e, 0);
    }
    bpf_map_delete_elem(&opens, &tid);
    return 0;
}

SEC("tracepoint/syscalls/sys_exit_open")
int open_exit(struct syscall_exit_ctx *ctx)
{
    return open_returned(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_openat")
int openat_exit(struct syscall_exit_ctx *ctx)
{
    return open_returned(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_openat2")
int openat2_exit(struct syscall_exit_ctx *ctx)
{
    return open_returned(ctx->ret);
}

char LICENSE[] SEC("license") = "GPL";

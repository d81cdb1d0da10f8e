// SPDX-License-Identifier: BSD-2-Clause
/* Test program: counts getpid() calls per process several ways. CO-RE: reads the tgid from the task struct. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct pid_kind {
    __u32 pid;
    __u32 kind;
};

struct wide {
    __u64 calls;
    __u64 last_tid;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, __u32);
    __type(value, __u64);
} counts SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, struct pid_kind);
    __type(value, __u32);
} by_struct SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
    __uint(max_entries, 1024);
    __type(key, __u32);
    __type(value, __u64);
} percpu SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u16);
} small SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, __u32);
    __type(value, struct wide);
} wide_values SEC(".maps");

struct triple {
    __u32 a, b, c;
};

/* not used by the program: a 12-byte key that no int packs into */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16);
    __type(key, struct triple);
    __type(value, __u64);
} triples SEC(".maps");

/* target[0]: the tgid whose calls `small` counts (set from user space) */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} target SEC(".maps");

static __always_inline void bump(void *map, const void *key)
{
    __u64 one = 1, *v = bpf_map_lookup_elem(map, key);
    if (v)
        __sync_fetch_and_add(v, 1);
    else
        bpf_map_update_elem(map, key, &one, BPF_NOEXIST);
}

SEC("tracepoint/syscalls/sys_enter_getpid")
int count_getpid(void *ctx)
{
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    __u32 tgid = BPF_CORE_READ(task, tgid);
    struct pid_kind pk = { .pid = tgid, .kind = 39 };
    __u32 one32 = 1, *c32, slot = 1, zero = 0, *want;
    __u16 *s;
    struct wide *w, init = {};

    bump(&counts, &tgid);
    bump(&percpu, &tgid);

    c32 = bpf_map_lookup_elem(&by_struct, &pk);
    if (c32)
        __sync_fetch_and_add(c32, 1);
    else
        bpf_map_update_elem(&by_struct, &pk, &one32, BPF_NOEXIST);

    want = bpf_map_lookup_elem(&target, &zero);
    s = bpf_map_lookup_elem(&small, &slot);
    if (s && want && *want == tgid)
        *s += 1; /* no 16-bit atomics in BPF; only the test's own thread gets here */

    w = bpf_map_lookup_elem(&wide_values, &tgid);
    if (!w) {
        bpf_map_update_elem(&wide_values, &tgid, &init, BPF_NOEXIST);
        w = bpf_map_lookup_elem(&wide_values, &tgid);
    }
    if (w) {
        __sync_fetch_and_add(&w->calls, 1);
        w->last_tid = (__u32)bpf_get_current_pid_tgid();
    }
    return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

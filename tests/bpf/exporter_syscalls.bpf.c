// SPDX-License-Identifier: BSD-2-Clause
/* Exporter test program: system calls of one process (only_tgid, a global the config sets) by cgroup and number,
 * for the cgroup and syscall label decoders. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

const volatile __u32 only_tgid = 0;

struct call_key {
    __u64 cgroup;
    __u32 nr;
    __u32 pad;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4096);
    __type(key, struct call_key);
    __type(value, __u64);
} calls SEC(".maps");

SEC("raw_tracepoint/sys_enter")
int on_enter(struct bpf_raw_tracepoint_args *ctx)
{
    struct call_key key = {};
    __u64 one = 1, *n;

    if ((__u32)(bpf_get_current_pid_tgid() >> 32) != only_tgid)
        return 0;
    key.cgroup = bpf_get_current_cgroup_id();
    key.nr = ctx->args[1];
    n = bpf_map_lookup_elem(&calls, &key);
    if (n)
        __sync_fetch_and_add(n, 1);
    else
        bpf_map_update_elem(&calls, &key, &one, BPF_NOEXIST);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";

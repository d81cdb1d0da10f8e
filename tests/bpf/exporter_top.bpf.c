// SPDX-License-Identifier: BSD-2-Clause
/* Exporter test program shaped like the shipped top tool's map (`syscalls`: tgid -> {count, comm}), but counting
 * only getpid() so that a test knows the exact count it caused. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct top_value {
    __u64 count;
    char comm[16];
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 10240);
    __type(key, __u32);
    __type(value, struct top_value);
} syscalls SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getpid")
int count_getpid(void *ctx)
{
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
    struct top_value *v = bpf_map_lookup_elem(&syscalls, &tgid);
    if (!v) {
        struct top_value fresh = {};
        bpf_get_current_comm(fresh.comm, sizeof(fresh.comm));
        bpf_map_update_elem(&syscalls, &tgid, &fresh, BPF_NOEXIST);
        v = bpf_map_lookup_elem(&syscalls, &tgid);
        if (!v)
            return 0;
    }
    __sync_fetch_and_add(&v->count, 1);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";

// SPDX-License-Identifier: BSD-2-Clause
/* Test program the verifier must refuse: it dereferences a map value without checking it for NULL. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16);
    __type(key, __u32);
    __type(value, __u64);
} values SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getpid")
int unchecked(void *ctx)
{
    __u32 key = 0;
    __u64 *v = bpf_map_lookup_elem(&values, &key);
    *v += 1;
    return 0;
}

char LICENSE[] SEC("license") = "GPL";

// SPDX-License-Identifier: BSD-2-Clause
/* The seed's legacy format: a struct bpf_map_def in a section named "maps". */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct bpf_map_def {
    unsigned int type;
    unsigned int key_size;
    unsigned int value_size;
    unsigned int max_entries;
    unsigned int map_flags;
};

struct bpf_map_def SEC("maps") legacy_counts = {
    .type = BPF_MAP_TYPE_HASH,
    .key_size = sizeof(__u32),
    .value_size = sizeof(__u64),
    .max_entries = 64,
};

SEC("tracepoint/syscalls/sys_enter_getpid")
int count(void *ctx)
{
    __u32 key = 0;
    __u64 one = 1;
    bpf_map_update_elem(&legacy_counts, &key, &one, BPF_ANY);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
__u32 _version SEC("version") = 1;

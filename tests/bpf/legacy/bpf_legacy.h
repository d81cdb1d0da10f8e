/* BPF programs written the way samples/bpf wrote them before libbpf: map definitions are struct bpf_map_def records
 * in a section named "maps", helpers are called through pointers holding their ids. Self-contained (no kernel or
 * libbpf header), compiled with `clang -O2 -target bpf -c` with or without -g. */
#ifndef BPF_LEGACY_H
#define BPF_LEGACY_H

#define SEC(name) __attribute__((section(name), used))
#define __noinline __attribute__((noinline))

typedef unsigned char __u8;
typedef unsigned int __u32;
typedef unsigned long long __u64;

/* the uapi values of enum bpf_map_type */
#define BPF_MAP_TYPE_HASH 1
#define BPF_MAP_TYPE_ARRAY 2
#define BPF_MAP_TYPE_PERCPU_HASH 5
#define BPF_MAP_TYPE_PERCPU_ARRAY 6
#define BPF_MAP_TYPE_ARRAY_OF_MAPS 12
#define BPF_ANY 0
#define BPF_NOEXIST 1

/* samples/bpf/bpf_helpers.h's layout, inner_map_idx and numa_node included */
struct bpf_map_def {
    unsigned int type;
    unsigned int key_size;
    unsigned int value_size;
    unsigned int max_entries;
    unsigned int map_flags;
    unsigned int inner_map_idx;
    unsigned int numa_node;
};

struct bpf_raw_tracepoint_args {
    __u64 args[0];
};

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static int (*bpf_map_update_elem)(void *map, const void *key, const void *value, __u64 flags) = (void *)2;
static __u64 (*bpf_get_current_pid_tgid)(void) = (void *)14;

#endif

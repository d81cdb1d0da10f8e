/* The transition style: old headers' struct bpf_map_def records in "maps" beside BTF-defined maps in ".maps". The
 * .maps part needs the object's BTF: without -g the loader says so. */
#include "dialects.h"

struct bpf_map_def {
    unsigned int type, key_size, value_size, max_entries, map_flags;
};

struct bpf_map_def SEC("maps") old_counts = {
    .type = BPF_MAP_TYPE_HASH, .key_size = 4, .value_size = 8, .max_entries = 64,
};

/* libbpf's layout: __uint(name, N) is a pointer to an array of N, __type(name, T) a pointer to T */
struct {
    int (*type)[BPF_MAP_TYPE_HASH];
    int (*max_entries)[64];
    __u32 *key;
    __u64 *value;
} new_counts SEC(".maps");

/* getpid calls per process, in both maps */
SEC("tracepoint/syscalls/sys_enter_getpid") int count_both(void *ctx)
{
    count_process(&new_counts);
    count_process(&old_counts);
    return 0;
}

char _license[] SEC("license") = "GPL";

#ifdef CORE
/* a CO-RE field access (with -g: a relocation in .BTF.ext), which only libbpf applies */
struct task_like {
    int pid;
} __attribute__((preserve_access_index));

SEC("tracepoint/syscalls/sys_enter_getppid") int core_read(struct task_like *t)
{
    int pid = 0;
    bpf_probe_read_kernel(&pid, sizeof(pid), &t->pid);
    return pid;
}
#endif

#ifdef BTF_PINNED
/* LIBBPF_PIN_BY_NAME (1): pinned at /sys/fs/bpf/<name> */
struct {
    int (*type)[BPF_MAP_TYPE_ARRAY];
    int (*max_entries)[1];
    int (*key_size)[4];
    int (*value_size)[8];
    int (*pinning)[1];
} TAGGED(pinned_btf) SEC(".maps");
#endif

#ifdef BTF_VALUES
/* a map of maps declared with its inner map (libbpf's "values"): not read beside legacy maps */
struct inner_def {
    int (*type)[BPF_MAP_TYPE_ARRAY];
    int (*max_entries)[1];
    __u32 *key;
    __u32 *value;
};
struct {
    int (*type)[BPF_MAP_TYPE_ARRAY_OF_MAPS];
    int (*max_entries)[1];
    __u32 *key;
    struct inner_def *values[];
} outer_maps SEC(".maps");
#endif

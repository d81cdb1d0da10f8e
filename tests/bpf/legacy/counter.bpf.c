/* Counts getpid() calls many ways: hash, array and per-CPU maps, two programs in one section, a raw tracepoint
 * that calls functions in .text (bpf-to-bpf calls), a map-in-map, a kprobe, a socket filter. The driver writes its
 * tgid into config[0]. The version section holds a wrong value on purpose: the running kernel's is used. */
#include "bpf_legacy.h"

/* index 0: the template of outer's inner maps */
struct bpf_map_def SEC("maps") inner = {
    .type = BPF_MAP_TYPE_ARRAY, .key_size = sizeof(__u32), .value_size = sizeof(__u64), .max_entries = 1,
};
struct bpf_map_def SEC("maps") config = {
    .type = BPF_MAP_TYPE_ARRAY, .key_size = sizeof(__u32), .value_size = sizeof(__u32), .max_entries = 1,
};
struct bpf_map_def SEC("maps") pid_count = {
    .type = BPF_MAP_TYPE_HASH, .key_size = sizeof(__u32), .value_size = sizeof(__u64), .max_entries = 1024,
};
/* [0] count_array, [1] count_raw through bump(), [2] count_raw through bump_global(), [3] kprobe */
struct bpf_map_def SEC("maps") array_count = {
    .type = BPF_MAP_TYPE_ARRAY, .key_size = sizeof(__u32), .value_size = sizeof(__u64), .max_entries = 4,
};
struct bpf_map_def SEC("maps") percpu_count = {
    .type = BPF_MAP_TYPE_PERCPU_ARRAY, .key_size = sizeof(__u32), .value_size = sizeof(__u64), .max_entries = 1,
};
/* shared by the two programs of one section: [0] count_hash, [1] count_array */
struct bpf_map_def SEC("maps") shared = {
    .type = BPF_MAP_TYPE_ARRAY, .key_size = sizeof(__u32), .value_size = sizeof(__u64), .max_entries = 2,
};
struct bpf_map_def SEC("maps") outer = {
    .type = BPF_MAP_TYPE_ARRAY_OF_MAPS, .key_size = sizeof(__u32), .value_size = sizeof(__u32), .max_entries = 1,
    .inner_map_idx = 0,
};

static int is_target(void)
{
    __u32 zero = 0;
    __u32 *tgid = bpf_map_lookup_elem(&config, &zero);
    return tgid && *tgid == (__u32)(bpf_get_current_pid_tgid() >> 32);
}

static void add(void *map, __u32 idx)
{
    __u64 *v = bpf_map_lookup_elem(map, &idx);
    if (v)
        __sync_fetch_and_add(v, 1);
}

SEC("tracepoint/syscalls/sys_enter_getpid")
int count_hash(void *ctx)
{
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
    __u64 one = 1, *v = bpf_map_lookup_elem(&pid_count, &tgid);
    if (v)
        __sync_fetch_and_add(v, 1);
    else
        bpf_map_update_elem(&pid_count, &tgid, &one, BPF_ANY);
    if (is_target())
        add(&shared, 0);
    return 0;
}

SEC("tracepoint/syscalls/sys_enter_getpid")
int count_array(void *ctx)
{
    if (!is_target())
        return 0;
    add(&array_count, 0);
    add(&percpu_count, 0);
    add(&shared, 1);
    return 0;
}

/* static: called through a relocation against .text's section symbol, or none */
static __noinline int bump(__u32 idx)
{
    __u64 *v = bpf_map_lookup_elem(&array_count, &idx);
    if (!v)
        return 0;
    __sync_fetch_and_add(v, 1);
    return 1;
}

/* global: called through a relocation against its own symbol; it calls bump() and reads a map of maps */
__noinline int bump_global(__u32 idx)
{
    __u32 zero = 0;
    void *m = bpf_map_lookup_elem(&outer, &zero);
    if (m) {
        __u64 *v = bpf_map_lookup_elem(m, &zero);
        if (v)
            __sync_fetch_and_add(v, 1);
    }
    return bump(idx);
}

SEC("raw_tracepoint/sys_enter")
int count_raw(struct bpf_raw_tracepoint_args *ctx)
{
    if (ctx->args[1] != 39 /* __NR_getpid on x86_64 */ || !is_target())
        return 0;
    return bump(1) + bump_global(2) > 100;
}

SEC("kprobe/__x64_sys_getpid")
int kprobe_getpid(void *ctx)
{
    bump(3);
    return 0;
}

SEC("perf_event")
int on_sample(void *ctx)
{
    return 0;
}

SEC("socket")
int sock_filter(void *skb)
{
    return 0;
}

char _license[] SEC("license") = "GPL";
__u32 _version SEC("version") = 0xdeadbeef;

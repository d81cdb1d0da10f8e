/* gobpf's dialect: one section per map, "maps/<name>", holding gobpf's bpf_map_def (pinning and a 256-byte
 * namespace after the usual fields); programs in "kprobe/...", "socket/..." and "tracepoint/..." sections. */
#include "dialects.h"

struct bpf_map_def {
    unsigned int type;
    unsigned int key_size;
    unsigned int value_size;
    unsigned int max_entries;
    unsigned int map_flags;
    unsigned int pinning;
    char namespace[256];
};

#ifndef NS
#define NS cbpf_gobpf
#endif

/* getpid calls per process: seen by the tracepoint, and by the kprobe (kernels with kprobes) */
struct bpf_map_def SEC("maps/calls") calls = {
    .type = BPF_MAP_TYPE_HASH, .key_size = 4, .value_size = 8, .max_entries = 64,
};
struct bpf_map_def SEC("maps/kcalls") kcalls = {
    .type = BPF_MAP_TYPE_HASH, .key_size = 4, .value_size = 8, .max_entries = 64,
};

/* [0]: datagrams the socket filter saw. PIN_GLOBAL_NS: /sys/fs/bpf/<namespace>/globals/shared */
struct bpf_map_def SEC("maps/shared") shared = {
    .type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 8, .max_entries = 2, .pinning = PIN_GLOBAL_NS,
    .namespace = STR(NS),
};

SEC("tracepoint/syscalls/sys_enter_getpid") int count_getpid(void *ctx)
{
    count_process(&calls);
    return 0;
}

SEC("socket/count") int socket_count(struct __sk_buff *skb)
{
    add(&shared, 0, 1);
    return skb->len;
}

SEC("kprobe/__x64_sys_getpid") int kprobe_getpid(void *ctx)
{
    count_process(&kcalls);
    return 0;
}

/* an old kernel's syscall name, as gobpf objects for 4.x kernels have them: attached to __x64_sys_getpid today */
struct bpf_map_def SEC("maps/compat_calls") compat_calls = {
    .type = BPF_MAP_TYPE_HASH, .key_size = 4, .value_size = 8, .max_entries = 64,
};

SEC("kprobe/SyS_getpid") int kprobe_compat(void *ctx)
{
    count_process(&compat_calls);
    return 0;
}

/* gobpf's own classifier prefix */
SEC("sched_cls/pass") int cls_pass(struct __sk_buff *skb)
{
    return TC_ACT_OK;
}

char _license[] SEC("license") = "GPL";
__u32 _version SEC("version") = 0xFFFFFFFE; /* gobpf: "use the running kernel's" */

/* Attach points that do not exist: attaching must fail with -ENOENT naming them (kprobes: the CONFIG_KPROBES
 * message on a kernel without them). */
#include "bpf_legacy.h"

/* a map, so that this is a legacy object (without a "maps" section, libbpf loads it itself) */
struct bpf_map_def SEC("maps") unused = {BPF_MAP_TYPE_ARRAY, sizeof(__u32), sizeof(__u32), 1};

SEC("tracepoint/syscalls/sys_enter_no_such_call")
int no_tp(void *ctx)
{
    return 0;
}

SEC("raw_tracepoint/no_such_tracepoint")
int no_raw_tp(void *ctx)
{
    return 0;
}

SEC("kretprobe/no_such_function")
int no_kretprobe(void *ctx)
{
    return 0;
}

char _license[] SEC("license") = "GPL";

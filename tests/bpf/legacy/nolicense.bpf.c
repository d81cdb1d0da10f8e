/* No "license" section: loaded with an empty license, as old loaders did. Its helpers are not GPL-only. */
#include "dialects.h"

struct bpf_map_def {
    unsigned int type, key_size, value_size, max_entries, map_flags;
};

struct bpf_map_def SEC("maps") getpids = {
    .type = BPF_MAP_TYPE_HASH, .key_size = 4, .value_size = 8, .max_entries = 64,
};

SEC("tracepoint/syscalls/sys_enter_getpid") int count(void *ctx)
{
    count_process(&getpids);
    return 0;
}

#ifdef GPL_HELPER
/* bpf_probe_read_kernel is GPL-only: the kernel refuses it without a GPL license */
SEC("tracepoint/syscalls/sys_enter_getppid") int read_kernel(void *ctx)
{
    __u64 v = 0;
    bpf_probe_read_kernel(&v, sizeof(v), ctx);
    return v == 1;
}
#endif

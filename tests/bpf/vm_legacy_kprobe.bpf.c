/* A kprobe and a kretprobe on getpid() in the seed's legacy format (struct bpf_map_def in "maps", no BTF needed),
 * for the VM kernel tests: counts[0] and counts[1] count the calls of the tgid in legacy_config[0]. */
#include "legacy/bpf_legacy.h"

struct bpf_map_def SEC("maps") legacy_config = {
    .type = BPF_MAP_TYPE_ARRAY, .key_size = sizeof(__u32), .value_size = sizeof(__u32), .max_entries = 1,
};
struct bpf_map_def SEC("maps") legacy_kprobe_counts = {
    .type = BPF_MAP_TYPE_ARRAY, .key_size = sizeof(__u32), .value_size = sizeof(__u64), .max_entries = 2,
};

static int count(__u32 idx)
{
    __u32 zero = 0, *tgid = bpf_map_lookup_elem(&legacy_config, &zero);
    __u64 *v;
    if (!tgid || *tgid != (__u32)(bpf_get_current_pid_tgid() >> 32))
        return 0;
    v = bpf_map_lookup_elem(&legacy_kprobe_counts, &idx);
    if (v)
        __sync_fetch_and_add(v, 1);
    return 0;
}

SEC("kprobe/__x64_sys_getpid")
int legacy_kprobe_getpid(void *ctx)
{
    return count(0);
}

SEC("kretprobe/__x64_sys_getpid")
int legacy_kretprobe_getpid(void *ctx)
{
    return count(1);
}

char _license[] SEC("license") = "GPL";
__u32 _version SEC("version") = 0x040e00; /* 4.14: kprobe programs once had to match the kernel; ignored */

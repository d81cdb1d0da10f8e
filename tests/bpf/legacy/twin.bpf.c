/* One program in both map formats, for tests that run the same body over each: built with -DLEGACY its maps are
 * struct bpf_map_def records in a section named "maps" (the seed's format, with the seed's self-contained header),
 * without it BTF-defined maps in ".maps" for libbpf. Everything counts only the calls of the tgid in config[0]. */
#ifdef LEGACY
#include "bpf_legacy.h"
#define MAP(_name, _type, _key, _value, _entries)                                                                    \
    struct bpf_map_def SEC("maps") _name = {                                                                         \
        .type = _type, .key_size = sizeof(_key), .value_size = sizeof(_value), .max_entries = _entries}
#else
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#define MAP(_name, _type, _key, _value, _entries)                                                                    \
    struct {                                                                                                         \
        __uint(type, _type);                                                                                         \
        __uint(max_entries, _entries);                                                                               \
        __type(key, _key);                                                                                           \
        __type(value, _value);                                                                                       \
    } _name SEC(".maps")
#endif

MAP(config, BPF_MAP_TYPE_ARRAY, __u32, __u32, 1);         /* [0]: the tgid to count */
MAP(counts, BPF_MAP_TYPE_HASH, __u32, __u64, 64);         /* tgid -> getpid() calls, by count_hash */
MAP(slots, BPF_MAP_TYPE_ARRAY, __u32, __u64, 4);          /* [0] count_hash, [1] count_array, [2] count_raw, [3] filter */
MAP(percpu, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, __u64, 1); /* [0] count_array, per CPU */

static int is_target(void)
{
    __u32 zero = 0, *tgid = bpf_map_lookup_elem(&config, &zero);
    return tgid && *tgid == (__u32)(bpf_get_current_pid_tgid() >> 32);
}

static void add(void *map, __u32 idx)
{
    __u64 *v = bpf_map_lookup_elem(map, &idx);
    if (v)
        __sync_fetch_and_add(v, 1);
}

/* two programs in one section */
SEC("tracepoint/syscalls/sys_enter_getpid")
int count_hash(void *ctx)
{
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
    __u64 one = 1, *v;
    if (!is_target())
        return 0;
    v = bpf_map_lookup_elem(&counts, &tgid);
    if (v)
        __sync_fetch_and_add(v, 1);
    else
        bpf_map_update_elem(&counts, &tgid, &one, BPF_NOEXIST);
    add(&slots, 0);
    return 0;
}

SEC("tracepoint/syscalls/sys_enter_getpid")
int count_array(void *ctx)
{
    __u32 zero = 0;
    __u64 *v;
    if (!is_target())
        return 0;
    add(&slots, 1);
    v = bpf_map_lookup_elem(&percpu, &zero);
    if (v)
        *v += 1; /* this CPU's own value */
    return 0;
}

/* a bpf-to-bpf call into .text */
static __attribute__((noinline)) int bump(__u32 idx)
{
    __u64 *v = bpf_map_lookup_elem(&slots, &idx);
    if (!v)
        return 0;
    __sync_fetch_and_add(v, 1);
    return 1;
}

struct raw_args {
    __u64 args[2];
};

SEC("raw_tracepoint/sys_enter")
int count_raw(struct raw_args *ctx)
{
    if (ctx->args[1] != 39 /* __NR_getpid on x86_64 */ || !is_target())
        return 0;
    return bump(2) > 1;
}

/* keeps every packet (the return value is how many bytes to keep), counts them */
SEC("socket")
int filter(void *skb)
{
    add(&slots, 3);
    return -1;
}

char _license[] SEC("license") = "GPL";
#ifdef LEGACY
__u32 _version SEC("version") = 0xdeadbeef; /* wrong on purpose: the running kernel's version is used */
#endif

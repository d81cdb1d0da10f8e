/* What the dialect programs (iproute2.bpf.c, gobpf.bpf.c, nomaps.bpf.c, ...) share: the uapi numbers they use, the
 * helpers by id, the first fields of struct __sk_buff. Each file writes its own map struct, as its loader's headers
 * did. No system header: clang -O2 -target bpf -c, with or without -g.
 *
 * TAG (a suffix) makes the names of pinned maps unique per test run: -DTAG=_1234 (empty by default). */
#ifndef DIALECTS_H
#define DIALECTS_H

#define SEC(name) __attribute__((section(name), used))

#ifndef TAG
#define TAG
#endif
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define TAGGED(name) CAT(name, TAG)
#define STR_(x) #x
#define STR(x) STR_(x)

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;

#define BPF_MAP_TYPE_HASH 1
#define BPF_MAP_TYPE_ARRAY 2
#define BPF_MAP_TYPE_PROG_ARRAY 3
#define BPF_MAP_TYPE_PERF_EVENT_ARRAY 4
#define BPF_MAP_TYPE_ARRAY_OF_MAPS 12
#define BPF_ANY 0
#define BPF_F_CURRENT_CPU 0xffffffffULL

/* pinning, in iproute2's and gobpf's records alike */
#define PIN_NONE 0
#define PIN_OBJECT_NS 1
#define PIN_GLOBAL_NS 2
#define PIN_CUSTOM_NS 3

#define XDP_ABORTED 0
#define XDP_DROP 1
#define XDP_PASS 2
#define TC_ACT_OK 0

#ifndef UDP_PORT
#define UDP_PORT 47999 /* tests/test_attach.py's VethPair sends there */
#endif

/* the start of the uapi struct __sk_buff, enough for len */
struct __sk_buff {
    __u32 len;
};

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static int (*bpf_map_update_elem)(void *map, const void *key, const void *value, __u64 flags) = (void *)2;
static __u64 (*bpf_get_current_pid_tgid)(void) = (void *)14;
static long (*bpf_tail_call)(void *ctx, void *prog_array, __u32 index) = (void *)12;
static int (*bpf_perf_event_output)(void *ctx, void *map, __u64 flags, void *data, __u64 size) = (void *)25;
static int (*bpf_skb_load_bytes)(const void *skb, __u32 offset, void *to, __u32 len) = (void *)26;
static long (*bpf_probe_read_kernel)(void *dst, __u32 size, const void *src) = (void *)113; /* GPL only */

/* 1 for an IPv4 UDP datagram to UDP_PORT (an Ethernet frame: tc and XDP see it from its MAC header) */
static inline int to_udp_port(const void *skb)
{
    __u8 proto;
    __u16 port;
    if (bpf_skb_load_bytes(skb, 14 + 9, &proto, 1) < 0 || proto != 17)
        return 0;
    if (bpf_skb_load_bytes(skb, 14 + 20 + 2, &port, 2) < 0)
        return 0;
    return port == __builtin_bswap16(UDP_PORT);
}

static inline void add(void *map, __u32 key, __u64 n)
{
    __u64 *v = bpf_map_lookup_elem(map, &key);
    if (v)
        __sync_fetch_and_add(v, n);
}

/* map[the calling process's tgid] += 1, in a hash map of 4-byte keys and 8-byte values */
static inline void count_process(void *map)
{
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
    __u64 one = 1, *v = bpf_map_lookup_elem(map, &tgid);
    if (v)
        __sync_fetch_and_add(v, 1);
    else
        bpf_map_update_elem(map, &tgid, &one, BPF_ANY);
}

#endif

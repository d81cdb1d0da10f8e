// SPDX-License-Identifier: BSD-2-Clause
/* Test program for event streams: each getpid() call of target_tgid emits `burst` events, each carrying the tgid,
 * the tid and a per-thread sequence number (1, 2, 3...), to the outputs that `outputs` selects: bit 0 the ring
 * buffer `events`, bit 1 the ring buffer `events2`, bit 2 the perf event array `perf_events`. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

__u32 target_tgid = 0; /* .bss: set after load */
__u32 burst = 1;       /* .data */
__u32 outputs = 1;     /* .data */
__u64 dropped = 0;     /* .bss: events no output took (ring full) */

struct inner {
    __u16 a;
    __u8 b;
};

struct event {
    __u32 tgid;
    __u32 tid;
    __u64 seq;
    __u32 cpu;
    __s32 neg;          /* -seq, for signed decoding */
    char comm[16];
    __u16 triple[3];    /* seq, seq + 1, seq + 2 */
    struct inner inner; /* a = seq & 0xffff, b = 7 */
    union {
        __u32 word;
        __u8 bytes[4];
    } u;                /* word = 0x01020304 */
    __u8 raw[4];        /* 0xde 0xad 0xbe 0xef */
};

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 256 * 1024);
} events SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 64 * 1024);
} events2 SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
    __uint(key_size, sizeof(__u32));
    __uint(value_size, sizeof(__u32));
} perf_events SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, __u32);
    __type(value, __u64);
} seqs SEC(".maps");

struct emit_ctx {
    void *tp;
    __u32 tgid;
    __u32 tid;
    __u64 *seq;
};

/* A function of its own: its argument puts struct event in the object's BTF, where btf_struct() finds it (clang
 * leaves out types only local variables use). */
static __noinline int fill(struct event *e, __u32 tgid, __u32 tid, __u64 seq)
{
    e->tgid = tgid;
    e->tid = tid;
    e->seq = seq;
    e->cpu = bpf_get_smp_processor_id();
    e->neg = -(__s32)seq;
    bpf_get_current_comm(e->comm, sizeof(e->comm));
    e->triple[0] = seq;
    e->triple[1] = seq + 1;
    e->triple[2] = seq + 2;
    e->inner.a = seq & 0xffff;
    e->inner.b = 7;
    e->u.word = 0x01020304;
    e->raw[0] = 0xde;
    e->raw[1] = 0xad;
    e->raw[2] = 0xbe;
    e->raw[3] = 0xef;
    return 0;
}

static long emit_one(__u32 i, struct emit_ctx *c)
{
    struct event e = {};

    fill(&e, c->tgid, c->tid, __sync_fetch_and_add(c->seq, 1) + 1);

    if ((outputs & 1) && bpf_ringbuf_output(&events, &e, sizeof(e), 0) != 0)
        __sync_fetch_and_add(&dropped, 1);
    if ((outputs & 2) && bpf_ringbuf_output(&events2, &e, sizeof(e), 0) != 0)
        __sync_fetch_and_add(&dropped, 1);
    if ((outputs & 4) && bpf_perf_event_output(c->tp, &perf_events, BPF_F_CURRENT_CPU, &e, sizeof(e)) != 0)
        __sync_fetch_and_add(&dropped, 1);
    return 0;
}

SEC("tracepoint/syscalls/sys_enter_getpid")
int on_getpid(void *ctx)
{
    __u64 id = bpf_get_current_pid_tgid();
    struct emit_ctx c = {.tp = ctx, .tgid = id >> 32, .tid = (__u32)id};
    __u64 zero = 0;

    if (c.tgid != target_tgid)
        return 0;
    c.seq = bpf_map_lookup_elem(&seqs, &c.tid);
    if (!c.seq) {
        bpf_map_update_elem(&seqs, &c.tid, &zero, BPF_NOEXIST);
        c.seq = bpf_map_lookup_elem(&seqs, &c.tid);
        if (!c.seq)
            return 0;
    }
    bpf_loop(burst, emit_one, &c, 0);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";

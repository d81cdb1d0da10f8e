// SPDX-License-Identifier: BSD-2-Clause
/* cbpf tcplife: TCP sessions, from the sock:inet_sock_set_state tracepoint. A session is born at its first state
 * before FIN_WAIT1 and ends at TCP_CLOSE, where one event carries its addresses, ports, bytes each way and duration;
 * bytes are also summed per local port in port_bytes. Bytes are the application's data, from the socket's own
 * counters: received less the FIN's sequence number, sent less retransmissions. */
#include "tools.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6

enum {
    TCP_ESTABLISHED = 1,
    TCP_SYN_SENT = 2,
    TCP_FIN_WAIT1 = 4,
    TCP_CLOSE = 7,
    TCP_LAST_ACK = 9,
};

/* the tracepoint's record (its format file), stable since Linux 4.16 */
struct inet_sock_set_state_ctx {
    __u64 common;
    const void *skaddr;
    int oldstate;
    int newstate;
    __u16 sport;
    __u16 dport;
    __u16 family;
    __u16 protocol;
    __u8 saddr[4];
    __u8 daddr[4];
    __u8 saddr_v6[16];
    __u8 daddr_v6[16];
};

struct tcp_sock {
    __u64 bytes_received; /* sequence space received: the data, and 1 for a FIN */
    __u64 bytes_sent;     /* payload sent, retransmissions included (no SYN, no FIN) */
    __u64 bytes_retrans;
} __attribute__((preserve_access_index));

struct sock_common {
    unsigned long skc_flags; /* sk_flags */
} __attribute__((preserve_access_index));

struct sock {
    struct sock_common __sk_common;
} __attribute__((preserve_access_index));

#define SOCK_DONE 1 /* set when the peer's FIN arrived (tcp_fin) */

struct tcp_event {
    __u64 duration_ns;
    __u64 rx;
    __u64 tx;
    __u32 pid;
    __u16 family;
    __u16 lport;
    __u16 rport;
    __u16 pad;
    __u8 saddr[16];
    __u8 daddr[16];
    char comm[TASK_COMM_LEN];
};

struct owner {
    __u32 pid;
    char comm[TASK_COMM_LEN];
};

struct port_bytes {
    __u64 rx;
    __u64 tx;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16384);
    __type(key, __u64);   /* the socket's address */
    __type(value, __u64); /* born at (ns) */
} births SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16384);
    __type(key, __u64);
    __type(value, struct owner);
} owners SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __type(key, __u16); /* local port, host byte order */
    __type(value, struct port_bytes);
} port_bytes SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 1 << 20);
} events SEC(".maps");

struct tcp_event *unused_tcp_event __attribute__((unused));

SEC("tracepoint/sock/inet_sock_set_state")
int sock_set_state(struct inet_sock_set_state_ctx *ctx)
{
    __u64 sk = (__u64)ctx->skaddr, now = bpf_ktime_get_ns(), *born;
    struct tcp_sock *tp = (struct tcp_sock *)ctx->skaddr;
    struct sock *sk_struct = (struct sock *)ctx->skaddr;
    struct owner *who, me = {};
    struct port_bytes *sum, bytes;
    struct tcp_event *e;
    __u16 lport = ctx->sport;

    if (ctx->protocol != IPPROTO_TCP)
        return 0;
    if (ctx->newstate < TCP_FIN_WAIT1 && !bpf_map_lookup_elem(&births, &sk))
        bpf_map_update_elem(&births, &sk, &now, BPF_NOEXIST);
    /* connect() and close() run in the process: these are the states they set */
    if (ctx->newstate == TCP_SYN_SENT || ctx->newstate == TCP_FIN_WAIT1 || ctx->newstate == TCP_LAST_ACK) {
        me.pid = bpf_get_current_pid_tgid() >> 32;
        current_process_comm(me.comm);
        bpf_map_update_elem(&owners, &sk, &me, BPF_ANY);
    }
    if (ctx->newstate != TCP_CLOSE)
        return 0;
    born = bpf_map_lookup_elem(&births, &sk);
    if (!born)
        goto forget; /* a session that began before we looked, or a listener */
    bytes.rx = BPF_CORE_READ(tp, bytes_received);
    if (bytes.rx && (BPF_CORE_READ(sk_struct, __sk_common.skc_flags) & (1UL << SOCK_DONE)))
        bytes.rx--;
    bytes.tx = BPF_CORE_READ(tp, bytes_sent) - BPF_CORE_READ(tp, bytes_retrans);
    e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
    if (e) {
        e->duration_ns = now - *born;
        e->rx = bytes.rx;
        e->tx = bytes.tx;
        e->family = ctx->family;
        e->lport = lport;
        e->rport = ctx->dport;
        e->pad = 0;
        if (ctx->family == AF_INET) {
            __builtin_memset(e->saddr, 0, sizeof(e->saddr));
            __builtin_memset(e->daddr, 0, sizeof(e->daddr));
            __builtin_memcpy(e->saddr, ctx->saddr, 4);
            __builtin_memcpy(e->daddr, ctx->daddr, 4);
        } else {
            __builtin_memcpy(e->saddr, ctx->saddr_v6, 16);
            __builtin_memcpy(e->daddr, ctx->daddr_v6, 16);
        }
        who = bpf_map_lookup_elem(&owners, &sk);
        if (who) {
            e->pid = who->pid;
            __builtin_memcpy(e->comm, who->comm, sizeof(e->comm));
        } else {
            e->pid = 0;
            __builtin_memset(e->comm, 0, sizeof(e->comm));
        }
        bpf_ringbuf_submit(e, 0);
    }
    sum = bpf_map_lookup_elem(&port_bytes, &lport);
    if (sum) {
        __sync_fetch_and_add(&sum->rx, bytes.rx);
        __sync_fetch_and_add(&sum->tx, bytes.tx);
    } else {
        bpf_map_update_elem(&port_bytes, &lport, &bytes, BPF_NOEXIST);
    }
forget:
    bpf_map_delete_elem(&births, &sk);
    bpf_map_delete_elem(&owners, &sk);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";

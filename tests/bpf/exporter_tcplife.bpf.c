// SPDX-License-Identifier: BSD-2-Clause
/* Exporter test program shaped like the shipped tcplife tool's map: `port_bytes`, local port (host order) ->
 * {rx, tx}, the bytes a TCP socket received and had acknowledged, added when it reaches TCP_CLOSE. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#define TCP_CLOSE_STATE 7

struct port_bytes {
    __u64 rx;
    __u64 tx;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 10240);
    __type(key, __u16);
    __type(value, struct port_bytes);
} port_bytes SEC(".maps");

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(on_state, const struct sock *sk, const int oldstate, const int newstate)
{
    struct tcp_sock *tp = (struct tcp_sock *)sk;
    struct port_bytes *pb, zero = {};
    __u16 port;

    if (newstate != TCP_CLOSE_STATE || sk->sk_protocol != IPPROTO_TCP)
        return 0;
    /* skc_num is already 0 here (the port was released before the state change): inet_sport stays */
    port = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
    pb = bpf_map_lookup_elem(&port_bytes, &port);
    if (!pb) {
        bpf_map_update_elem(&port_bytes, &port, &zero, BPF_NOEXIST);
        pb = bpf_map_lookup_elem(&port_bytes, &port);
        if (!pb)
            return 0;
    }
    /* a tp_btf argument is a struct sock: the tcp_sock fields past it are read through probe_read */
    __sync_fetch_and_add(&pb->rx, BPF_CORE_READ(tp, bytes_received));
    __sync_fetch_and_add(&pb->tx, BPF_CORE_READ(tp, bytes_acked));
    return 0;
}

char LICENSE[] SEC("license") = "GPL";

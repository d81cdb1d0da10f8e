// SPDX-License-Identifier: BSD-2-Clause
/* Test programs for the network attach points: each counts the UDP datagrams to one port (udp_port). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_P_IP 0x0800
#define IPPROTO_UDP_NUM 17

__u16 udp_port; /* host byte order */
__u64 xdp_packets, tc_packets, socket_packets, cgroup_packets;

/* An IPv4 header at ip (and the UDP header after it) within [ip, end): is it UDP to udp_port? */
static __always_inline bool udp_to_port(void *ip, void *end)
{
    struct iphdr *iph = ip;
    if ((void *)(iph + 1) > end || iph->protocol != IPPROTO_UDP_NUM)
        return false;
    struct udphdr *udp = (void *)iph + iph->ihl * 4;
    if ((void *)(udp + 1) > end)
        return false;
    return udp->dest == bpf_htons(udp_port);
}

static __always_inline bool frame_is_udp_to_port(void *data, void *end)
{
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
        return false;
    return udp_to_port(eth + 1, end);
}

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
    if (frame_is_udp_to_port((void *)(long)ctx->data, (void *)(long)ctx->data_end))
        __sync_fetch_and_add(&xdp_packets, 1);
    return XDP_PASS;
}

SEC("tc")
int tc_count(struct __sk_buff *skb)
{
    if (frame_is_udp_to_port((void *)(long)skb->data, (void *)(long)skb->data_end))
        __sync_fetch_and_add(&tc_packets, 1);
    return 0; /* TC_ACT_OK */
}

/* every datagram of the socket it is attached to, all kept */
SEC("socket")
int socket_count(struct __sk_buff *skb)
{
    __sync_fetch_and_add(&socket_packets, 1);
    return skb->len;
}

/* cgroup skb programs see the packet from its IP header on, without direct access: copy the headers out (an
 * IPv4 header without options, as the test's datagrams have) */
static __always_inline void count_cgroup_udp(struct __sk_buff *skb)
{
    struct {
        struct iphdr ip;
        struct udphdr udp;
    } h;
    if (bpf_skb_load_bytes(skb, 0, &h, sizeof(h)) == 0 && h.ip.version == 4 && h.ip.ihl == 5 &&
        h.ip.protocol == IPPROTO_UDP_NUM && h.udp.dest == bpf_htons(udp_port))
        __sync_fetch_and_add(&cgroup_packets, 1);
}

SEC("cgroup_skb/egress")
int cgroup_egress(struct __sk_buff *skb)
{
    count_cgroup_udp(skb);
    return 1; /* allow */
}

/* no direction in the section: the test names one in attach_cgroup(path, attach_type) */
SEC("cgroup/skb")
int cgroup_any(struct __sk_buff *skb)
{
    count_cgroup_udp(skb);
    return 1;
}

char LICENSE[] SEC("license") = "GPL";

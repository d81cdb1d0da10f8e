/* A legacy object with no map at all: only its "version" section and its section names ("xdp_abort", "socket/trim"),
 * which libbpf 1.x does not know, say it is one. */
#include "dialects.h"

SEC("xdp_abort") int abort_all(void *ctx)
{
    return XDP_ABORTED;
}

/* keeps the first 3 bytes of every datagram */
SEC("socket/trim") int trim(struct __sk_buff *skb)
{
    return 3;
}

char _license[] SEC("license") = "GPL";
__u32 _version SEC("version") = 0x040f00; /* 4.15.0: ignored, the running kernel's is used */

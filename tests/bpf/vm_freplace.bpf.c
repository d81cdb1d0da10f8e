// SPDX-License-Identifier: BSD-2-Clause
/* freplace: an XDP program whose verdict comes from a global function, and a program that replaces that function
 * in the loaded XDP program (given as the replacement's attach_target before load). The same object is opened twice:
 * once for the target, once for the replacement. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

__noinline int decide(struct xdp_md *ctx)
{
    return ctx ? XDP_PASS : XDP_ABORTED;
}

SEC("xdp")
int xdp_target(struct xdp_md *ctx)
{
    return decide(ctx);
}

SEC("freplace/decide")
int new_decide(struct xdp_md *ctx)
{
    return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";

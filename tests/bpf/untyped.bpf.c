// SPDX-License-Identifier: BSD-2-Clause
/* A program in a section that names no program type: its loader says which (here a socket filter) before load. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("cbpf_filter")
int length_plus_one(struct __sk_buff *skb)
{
    return skb->len + 1;
}

char LICENSE[] SEC("license") = "GPL";

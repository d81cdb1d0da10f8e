// SPDX-License-Identifier: BSD-2-Clause
/* Reads the attach cookie (bpf_get_attach_cookie): loads only where the kernel has it, which is what
 * cbpf.features.bpf_cookie() must say. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

__u64 last_cookie;

SEC("tracepoint/syscalls/sys_enter_getpid")
int read_cookie(void *ctx)
{
    last_cookie = bpf_get_attach_cookie(ctx);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";

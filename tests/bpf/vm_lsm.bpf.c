// SPDX-License-Identifier: BSD-2-Clause
/* A BPF LSM program for the VM kernel tests: counts the files one process opens (and allows them all). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

__u32 target_tgid;
__u64 file_opens;

SEC("lsm/file_open")
int BPF_PROG(count_file_open, struct file *file)
{
    if ((bpf_get_current_pid_tgid() >> 32) == target_tgid)
        __sync_fetch_and_add(&file_opens, 1);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";

// SPDX-License-Identifier: BSD-2-Clause
/* For tests/test_cli.py: the nth getpid() call of one process counted in the log2 slot of n (cbpf/histogram.h). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <cbpf/histogram.h>

const volatile __u32 target_tgid = 0;
__u64 calls = 0;

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, CBPF_LOG2_SLOTS);
    __type(key, __u32);
    __type(value, __u64);
} hist SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getpid")
int count_getpid(void *ctx)
{
    if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
        return 0;
    /* the nth call goes to the slot of n: 1 to slot 0, 2-3 to slot 1, 4-7 to slot 2 ... */
    cbpf_hist_increment(&hist, cbpf_log2_slot(__sync_fetch_and_add(&calls, 1) + 1));
    return 0;
}

char LICENSE[] SEC("license") = "GPL";

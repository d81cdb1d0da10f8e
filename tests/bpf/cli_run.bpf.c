// SPDX-License-Identifier: BSD-2-Clause
/* For tests/test_cli.py: `cbpf run` shows getpid() calls of one process as a table (calls by tgid), a histogram
 * (sample_value's log2 slot, through cbpf/histogram.h) and events (a ring buffer and a perf buffer). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <cbpf/histogram.h>

const volatile __u32 targ_tgid = 0;
const volatile __u64 sample_value = 1;
__u64 seen = 0;

struct call {
    __u32 tgid;
    __u32 nth;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, __u32);
    __type(value, __u64);
} calls SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, CBPF_LOG2_SLOTS);
    __type(key, __u32);
    __type(value, __u64);
} value_hist SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 1 << 16);
} calls_log SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
    __uint(key_size, sizeof(__u32));
    __uint(value_size, sizeof(__u32));
} calls_perf SEC(".maps");

struct call *unused_call __attribute__((unused));

SEC("tracepoint/syscalls/sys_enter_getpid")
int on_getpid(void *ctx)
{
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
    __u64 one = 1, *n;
    struct call c = {.tgid = tgid};

    if (targ_tgid && tgid != targ_tgid)
        return 0;
    n = bpf_map_lookup_elem(&calls, &tgid);
    if (n)
        c.nth = __sync_fetch_and_add(n, 1) + 1;
    else if (bpf_map_update_elem(&calls, &tgid, &one, BPF_NOEXIST) == 0)
        c.nth = 1;
    cbpf_hist_increment(&value_hist, cbpf_log2_slot(sample_value));
    __sync_fetch_and_add(&seen, 1);
    bpf_ringbuf_output(&calls_log, &c, sizeof(c), 0);
    bpf_perf_event_output(ctx, &calls_perf, BPF_F_CURRENT_CPU, &c, sizeof(c));
    return 0;
}

char LICENSE[] SEC("license") = "GPL";

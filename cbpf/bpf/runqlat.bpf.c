// SPDX-License-Identifier: BSD-2-Clause
/* cbpf runqlat: run-queue latency, from the moment a task is made runnable (woken, new, or preempted while still
 * runnable) to the moment it runs, as a log2 histogram in microseconds (cbpf/histogram.h's slots). */
#include "tools.h"
#include <cbpf/histogram.h>

const volatile __u32 targ_tgid = 0; /* 0: every process */

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16384);
    __type(key, __u32);   /* thread id */
    __type(value, __u64); /* runnable since (ns) */
} runnable SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, CBPF_LOG2_SLOTS);
    __type(key, __u32);
    __type(value, __u64);
} hist SEC(".maps");

static __always_inline void made_runnable(struct task_struct *task)
{
    __u32 tid = BPF_CORE_READ(task, pid);
    __u64 now;

    if (!tid || (targ_tgid && (__u32)BPF_CORE_READ(task, tgid) != targ_tgid))
        return;
    now = bpf_ktime_get_ns();
    bpf_map_update_elem(&runnable, &tid, &now, BPF_ANY);
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(wakeup, struct task_struct *task)
{
    made_runnable(task);
    return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(wakeup_new, struct task_struct *task)
{
    made_runnable(task);
    return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(switch_task, _Bool preempt, struct task_struct *prev, struct task_struct *next)
{
    __u32 tid;
    __u64 *since;

    /* 0 is TASK_RUNNING: prev goes back to the run queue and waits its turn */
    if (BPF_CORE_READ(prev, __state) == 0)
        made_runnable(prev);
    tid = BPF_CORE_READ(next, pid);
    since = bpf_map_lookup_elem(&runnable, &tid);
    if (!since)
        return 0;
    cbpf_hist_increment(&hist, cbpf_log2_slot((bpf_ktime_get_ns() - *since) / 1000));
    bpf_map_delete_elem(&runnable, &tid);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";

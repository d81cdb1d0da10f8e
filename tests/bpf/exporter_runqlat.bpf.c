// SPDX-License-Identifier: BSD-2-Clause
/* Exporter test program shaped like the shipped runqlat tool's map: `hist`, log2 slots of the microseconds a task
 * waited on a run queue between its wakeup and running. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "exporter_slots.h"
#include <bpf/bpf_tracing.h>

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 10240);
    __type(key, __u32);
    __type(value, __u64);
} woken SEC(".maps");

SEC("tp_btf/sched_wakeup")
int BPF_PROG(on_wakeup, struct task_struct *p)
{
    __u32 pid = p->pid;
    __u64 now = bpf_ktime_get_ns();
    bpf_map_update_elem(&woken, &pid, &now, BPF_ANY);
    return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(on_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
    __u32 pid = next->pid, slot;
    __u64 *start = bpf_map_lookup_elem(&woken, &pid), *n;
    if (!start)
        return 0;
    slot = log2_slot((bpf_ktime_get_ns() - *start) / 1000);
    bpf_map_delete_elem(&woken, &pid);
    n = bpf_map_lookup_elem(&hist, &slot);
    if (n)
        __sync_fetch_and_add(n, 1);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";

// SPDX-License-Identifier: BSD-2-Clause
/* Test program for the map API: globals, an mmapped array, per-CPU, struct values, maps of maps, a queue, and a
 * map that grows while user space iterates it. Counts only the getpid() calls of target_tgid. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

const volatile __u32 target_tgid = 0; /* .rodata: set before load */
__u64 hits = 0;                       /* .bss */
__u64 increment = 1;                  /* .data */
__u64 grow = 0;                       /* .bss: when set, every call adds a new key to `growing` */

struct call_stat {
    __u64 calls;
    __u32 last_tid;
    __u32 flags;
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(map_flags, BPF_F_MMAPABLE);
    __uint(max_entries, 8);
    __type(key, __u32);
    __type(value, __u64);
} mm_counts SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, __u32);
} percpu_calls SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 64);
    __type(key, __u32);
    __type(value, struct call_stat);
} stats SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 100000);
    __type(key, __u64);
    __type(value, __u64);
} growing SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_QUEUE);
    __uint(max_entries, 64);
    __type(value, __u32);
} tids SEC(".maps");

struct inner {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u64);
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
    __uint(max_entries, 2);
    __type(key, __u32);
    __array(values, struct inner);
} outer SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getpid")
int on_getpid(void *ctx)
{
    __u64 id = bpf_get_current_pid_tgid();
    __u32 tgid = id >> 32, tid = (__u32)id, zero = 0;

    if (tgid != target_tgid)
        return 0;

    __sync_fetch_and_add(&hits, increment);

    __u64 *mm = bpf_map_lookup_elem(&mm_counts, &zero);
    if (mm)
        __sync_fetch_and_add(mm, 1);

    __u32 *pc = bpf_map_lookup_elem(&percpu_calls, &zero);
    if (pc)
        *pc += 1;

    struct call_stat *st = bpf_map_lookup_elem(&stats, &tgid);
    if (!st) {
        struct call_stat init = {};
        bpf_map_update_elem(&stats, &tgid, &init, BPF_NOEXIST);
        st = bpf_map_lookup_elem(&stats, &tgid);
    }
    if (st) {
        __sync_fetch_and_add(&st->calls, 1);
        st->last_tid = tid;
        st->flags = 0xabcd;
    }

    bpf_map_push_elem(&tids, &tid, BPF_EXIST);

    void *in = bpf_map_lookup_elem(&outer, &zero);
    if (in) {
        __u64 *slot = bpf_map_lookup_elem(in, &zero);
        if (slot)
            __sync_fetch_and_add(slot, 1);
    }

    if (grow) {
        __u64 key = __sync_fetch_and_add(&grow, 1);
        bpf_map_update_elem(&growing, &key, &key, BPF_ANY);
    }
    return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

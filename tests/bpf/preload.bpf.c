// SPDX-License-Identifier: BSD-2-Clause
/* A tool shaped like the libbpf-tools family: the BPF side leaves its maps' sizes to user space, which sets them
 * between open and load from its command line (stack depth, how many threads to track, how many slots). Counts one
 * process's getpid() calls per thread, their user stacks, and in a global array whose length user space chooses. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

const volatile __u32 target_tgid = 0;
const volatile __u32 nslots = 1; /* the length user space gave slots[] (by the .data.slots map's value_size) */
const volatile bool trace_stacks = true;

/* value_size (stack depth * 8) and max_entries (stacks kept) are set from user space */
struct {
    __uint(type, BPF_MAP_TYPE_STACK_TRACE);
    __uint(key_size, sizeof(__u32));
} stacks SEC(".maps");

/* per thread: max_entries (threads tracked) is set from user space */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __type(key, __u32);
    __type(value, __u64);
} calls SEC(".maps");

/* stack id -> calls: max_entries set from user space */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __type(key, __u32);
    __type(value, __u64);
} stack_calls SEC(".maps");

/* resized from user space through the map's value_size: its last (only) variable is an array */
__u64 slots[1] SEC(".data.slots");

static void bump(void *map, __u32 key)
{
    __u64 one = 1, *n = bpf_map_lookup_elem(map, &key);
    if (n)
        __sync_fetch_and_add(n, 1);
    else
        bpf_map_update_elem(map, &key, &one, BPF_NOEXIST);
}

SEC("tracepoint/syscalls/sys_enter_getpid")
int count_getpid(void *ctx)
{
    __u64 id = bpf_get_current_pid_tgid();
    if ((id >> 32) != target_tgid)
        return 0;
    bump(&calls, (__u32)id);
    if (trace_stacks) {
        long stack = bpf_get_stackid(ctx, &stacks, BPF_F_USER_STACK);
        if (stack >= 0)
            bump(&stack_calls, (__u32)stack);
    }
    /* the last slot of however many user space made: hidden from the compiler, which sees slots[1] */
    __u64 *base = slots;
    __u32 last = nslots - 1;
    asm volatile("" : "+r"(base));
    if (last < 4096)
        __sync_fetch_and_add(&base[last], 1);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";

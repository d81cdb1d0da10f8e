// SPDX-License-Identifier: BSD-2-Clause
/* Programs for kernels with kprobes, fentry/fexit and BPF LSM: each counts the getpid() calls or the file opens of
 * the process whose tgid user space writes into target[0]. No vmlinux.h: it compiles anywhere. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} target SEC(".maps");

/* slot 0: kprobe, 1: kretprobe (getpid); 2: fentry, 3: fexit (security_file_open); 4: lsm file_open */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 5);
    __type(key, __u32);
    __type(value, __u64);
} hits SEC(".maps");

static __always_inline int count(__u32 slot)
{
    __u32 zero = 0, *want = bpf_map_lookup_elem(&target, &zero);
    if (!want || *want != (__u32)(bpf_get_current_pid_tgid() >> 32))
        return 0;
    __u64 *v = bpf_map_lookup_elem(&hits, &slot);
    if (v)
        __sync_fetch_and_add(v, 1);
    return 0;
}

SEC("kprobe/__x64_sys_getpid")
int on_kprobe(void *ctx) { return count(0); }

SEC("kretprobe/__x64_sys_getpid")
int on_kretprobe(void *ctx) { return count(1); }

SEC("fentry/security_file_open")
int on_fentry(void *ctx) { return count(2); }

SEC("fexit/security_file_open")
int on_fexit(void *ctx) { return count(3); }

SEC("lsm/file_open")
int on_file_open(void *ctx) { count(4); return 0; }

char LICENSE[] SEC("license") = "GPL";

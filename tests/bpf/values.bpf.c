// SPDX-License-Identifier: BSD-2-Clause
/* Test program for the typed value model: maps and globals of every kind of C type.
 *
 * On each getpid() of target_tgid it writes known values (fill()) into a global, a hash with struct keys, a
 * per-CPU array, a queue and a stack trace map; and it checks what user space wrote into `from_user` (map) and
 * `g_from_user` (global) field by field against the same known values (check()): each matching field sets a bit
 * of user_ok / g_user_ok, so the encoder is judged by C, not by the decoder. Floats are compared and written by
 * their bit patterns (BPF has no floating point instructions).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

const volatile __u32 target_tgid = 0;

enum color { RED = 1, GREEN = 2, BLUE = 3 };

struct flags {
    unsigned int a : 3;
    int b : 5;
    unsigned int c : 24;
    __u8 d : 1;
};

struct inner {
    __u16 x;
    __s16 y;
};

struct kinds {
    __s8 s8;
    __u8 u8;
    __s16 s16;
    __u16 u16;
    __s32 s32;
    __u32 u32;
    __s64 s64;
    __u64 u64;
    bool flag;
    enum color color;
    float f32;
    double f64;
    char name[16];
    __u8 raw[4];
    __u32 nums[3];
    struct inner pair;
    struct inner pairs[2];
    union {
        __u32 word;
        __u8 bytes[4];
    } u;
    union {
        __u64 as_u64;
        struct {
            __u32 lo;
            __u32 hi;
        } halves;
    };
    struct {
        __u16 port;
        __u16 proto;
    };
    struct flags bits;
    unsigned __int128 big;
    __int128 sbig;
};

struct pid_cpu {
    __u32 pid;
    __u32 cpu;
};

struct kinds g_kinds;     /* .bss: filled by the program */
struct kinds g_from_user; /* .bss: written by user space, checked by the program */
__u64 user_ok = 0;             /* a bit per field of from_user[0] equal to the known value */
__u64 g_user_ok = 0;           /* the same for g_from_user */
__u32 runs = 0;

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 8);
    __type(key, struct pid_cpu);
    __type(value, struct kinds);
} by_key SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct kinds);
} from_user SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct inner);
} per_cpu SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_QUEUE);
    __uint(max_entries, 4);
    __type(value, struct inner);
} pairs_queue SEC(".maps");

/* user and kernel stacks apart: a stack id is a hash bucket, and two stacks in one bucket would evict each other */
struct {
    __uint(type, BPF_MAP_TYPE_STACK_TRACE);
    __uint(max_entries, 256);
    __uint(key_size, sizeof(__u32));
    __uint(value_size, 127 * sizeof(__u64));
} user_stacks SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_STACK_TRACE);
    __uint(max_entries, 256);
    __uint(key_size, sizeof(__u32));
    __uint(value_size, 127 * sizeof(__u64));
} kernel_stacks SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u32);
} stack_ids SEC(".maps");

/* a variable-length event: only the used part of data is submitted */
struct var_event {
    __u32 pid;
    __u16 len;
    char data[64];
};

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 4096);
} var_events SEC(".maps");

struct var_event var_event_template; /* .bss: puts struct var_event in the BTF, and is the event's buffer */

#define F32_BITS 0x3FC00000U            /* 1.5f */
#define F64_BITS 0xC002000000000000ULL  /* -2.25 */
#define BIG (((unsigned __int128)1 << 100) + 5)
#define SBIG (-((__int128)1 << 70) - 1)

static void fill(struct kinds *k)
{
    __u32 f32 = F32_BITS;
    __u64 f64 = F64_BITS;
    k->s8 = -5;
    k->u8 = 250;
    k->s16 = -300;
    k->u16 = 60000;
    k->s32 = -70000;
    k->u32 = 4000000000U;
    k->s64 = -5000000000LL;
    k->u64 = 18000000000000000000ULL;
    k->flag = true;
    k->color = BLUE;
    __builtin_memcpy(&k->f32, &f32, 4);
    __builtin_memcpy(&k->f64, &f64, 8);
    __builtin_memcpy(k->name, "hello\0\0\0\0\0\0\0\0\0\0\0", 16);
    k->raw[0] = 1;
    k->raw[1] = 2;
    k->raw[2] = 3;
    k->raw[3] = 4;
    k->nums[0] = 10;
    k->nums[1] = 20;
    k->nums[2] = 30;
    k->pair.x = 7;
    k->pair.y = -8;
    k->pairs[0].x = 1;
    k->pairs[0].y = -1;
    k->pairs[1].x = 2;
    k->pairs[1].y = -2;
    k->u.word = 0x01020304;
    k->as_u64 = 0x1122334455667788ULL;
    k->port = 8080;
    k->proto = 17;
    k->bits.a = 5;
    k->bits.b = -7;
    k->bits.c = 0xABCDEF;
    k->bits.d = 1;
    k->big = BIG;
    k->sbig = SBIG;
}

static __u64 check(const struct kinds *k)
{
    __u32 f32;
    __u64 f64, ok = 0;
    __builtin_memcpy(&f32, &k->f32, 4);
    __builtin_memcpy(&f64, &k->f64, 8);
    ok |= (__u64)(k->s8 == -5) << 0;
    ok |= (__u64)(k->u8 == 250) << 1;
    ok |= (__u64)(k->s16 == -300) << 2;
    ok |= (__u64)(k->u16 == 60000) << 3;
    ok |= (__u64)(k->s32 == -70000) << 4;
    ok |= (__u64)(k->u32 == 4000000000U) << 5;
    ok |= (__u64)(k->s64 == -5000000000LL) << 6;
    ok |= (__u64)(k->u64 == 18000000000000000000ULL) << 7;
    ok |= (__u64)(k->flag == true) << 8;
    ok |= (__u64)(k->color == BLUE) << 9;
    ok |= (__u64)(f32 == F32_BITS) << 10;
    ok |= (__u64)(f64 == F64_BITS) << 11;
    ok |= (__u64)(k->name[0] == 'h' && k->name[4] == 'o' && k->name[5] == 0 && k->name[15] == 0) << 12;
    ok |= (__u64)(k->raw[0] == 1 && k->raw[1] == 2 && k->raw[2] == 3 && k->raw[3] == 4) << 13;
    ok |= (__u64)(k->nums[0] == 10 && k->nums[1] == 20 && k->nums[2] == 30) << 14;
    ok |= (__u64)(k->pair.x == 7 && k->pair.y == -8) << 15;
    ok |= (__u64)(k->pairs[0].x == 1 && k->pairs[0].y == -1 && k->pairs[1].x == 2 && k->pairs[1].y == -2) << 16;
    ok |= (__u64)(k->u.word == 0x01020304) << 17;
    ok |= (__u64)(k->halves.lo == 0x55667788 && k->halves.hi == 0x11223344) << 18;
    ok |= (__u64)(k->port == 8080 && k->proto == 17) << 19;
    ok |= (__u64)(k->bits.a == 5) << 20;
    ok |= (__u64)(k->bits.b == -7) << 21;
    ok |= (__u64)(k->bits.c == 0xABCDEF) << 22;
    ok |= (__u64)(k->bits.d == 1) << 23;
    ok |= (__u64)(k->big == BIG) << 24;
    ok |= (__u64)(k->sbig == SBIG) << 25;
    return ok;
}

SEC("tracepoint/syscalls/sys_enter_getpid")
int on_getpid(void *ctx)
{
    __u64 id = bpf_get_current_pid_tgid();
    __u32 tgid = id >> 32, zero = 0;
    if (tgid != target_tgid)
        return 0;

    fill(&g_kinds);
    struct pid_cpu k = {.pid = tgid, .cpu = 7};
    bpf_map_update_elem(&by_key, &k, &g_kinds, BPF_ANY);

    struct inner *pc = bpf_map_lookup_elem(&per_cpu, &zero);
    if (pc) {
        pc->x = 40 + bpf_get_smp_processor_id();
        pc->y = -40;
    }
    struct inner pair = {.x = 9, .y = -9};
    bpf_map_push_elem(&pairs_queue, &pair, BPF_EXIST);

    struct kinds *in = bpf_map_lookup_elem(&from_user, &zero);
    if (in)
        user_ok = check(in);
    g_user_ok = check(&g_from_user);

    __s64 sid = bpf_get_stackid(ctx, &user_stacks, BPF_F_USER_STACK | BPF_F_REUSE_STACKID);
    if (sid >= 0) {
        __u32 s = sid;
        bpf_map_update_elem(&stack_ids, &zero, &s, BPF_ANY);
    }
    sid = bpf_get_stackid(ctx, &kernel_stacks, BPF_F_REUSE_STACKID);
    if (sid >= 0) {
        __u32 one = 1, s = sid;
        bpf_map_update_elem(&stack_ids, &one, &s, BPF_ANY);
    }
    var_event_template.pid = tgid;
    var_event_template.len = 6;
    __builtin_memcpy(var_event_template.data, "hello", 6);
    bpf_ringbuf_output(&var_events, &var_event_template, 6 + 6, 0); /* pid, len and "hello\0": 12 of 72 bytes */

    __sync_fetch_and_add(&runs, 1);
    return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

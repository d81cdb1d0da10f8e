/* cbpf: loader for legacy BPF ELF objects (bpf_map_def records in a "maps" section), see legacy.h.
 *
 * The ELF is read with glibc's <elf.h> types only, never through a pointer into the input: every header, symbol,
 * relocation and instruction is memcpy'd out after its bounds are checked, so the input needs no alignment and a
 * corrupt offset can only produce an error. BTF (.BTF, .BTF.ext) and debug sections are ignored, with their
 * relocations: programs are loaded without BTF.
 */
#include "legacy.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <linux/perf_event.h>

#include <bpf/bpf.h>

#ifndef EM_BPF
#define EM_BPF 247
#endif
#ifndef R_BPF_NONE
#define R_BPF_NONE 0
#endif
#ifndef R_BPF_64_64
#define R_BPF_64_64 1
#endif
#ifndef R_BPF_64_32
#define R_BPF_64_32 10
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define HOST_ELFDATA ELFDATA2MSB
#else
#define HOST_ELFDATA ELFDATA2LSB
#endif

#define INSN_SZ sizeof(struct bpf_insn)
#define OP_LD_IMM64 (BPF_LD | BPF_IMM | BPF_DW)
#define OP_CALL (BPF_JMP | BPF_CALL)
#define MAP_DEF_MIN 20u             /* type, key_size, value_size, max_entries, map_flags */
#define MAP_DEF_KNOWN 28u           /* ... inner_map_idx, numa_node */
#define MAX_PROG_INSNS 1000000u     /* the kernel's BPF_COMPLEXITY_LIMIT_INSNS */
#define MAX_TOTAL_INSNS (1u << 22)  /* all programs with their appended functions: 32 MiB */
#define LOG_START (256u * 1024)     /* first verifier log buffer */
#define LOG_MAX (16u * 1024 * 1024) /* the largest verifier log kept */

static int fail(char *err, size_t errlen, int ret, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int ret, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
        /* names come from the input: keep the message one line of ASCII */
        for (char *c = err; *c; c++) {
            if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
                *c = '?';
        }
    }
    return ret;
}

/* Names handed on (maps, programs, sections, license) are printable ASCII: C identifiers and section names are. */
static int printable(const char *s, int space_ok)
{
    for (; *s; s++) {
        if ((unsigned char)*s < (space_ok ? 0x20 : 0x21) || (unsigned char)*s >= 0x7f)
            return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------- ELF reading */

struct elf {
    const unsigned char *data;
    size_t size;
    Elf64_Ehdr eh;
    Elf64_Shdr *sh;
    size_t shnum;
    const char *shstr; /* section names, shstr_size bytes inside data */
    size_t shstr_size;
    Elf64_Sym *syms; /* copied out of .symtab */
    size_t nsyms;
    size_t symtab_idx;
    const char *str; /* .strtab */
    size_t str_size;
};

static int in_file(const struct elf *e, uint64_t off, uint64_t len)
{
    return off <= (uint64_t)e->size && len <= (uint64_t)e->size - off;
}

/* The string at off in a table of size bytes, or NULL when off is outside it or the string is not terminated. */
static const char *tab_str(const char *tab, size_t size, uint64_t off)
{
    if (!tab || off >= size)
        return NULL;
    if (!memchr(tab + off, '\0', size - (size_t)off))
        return NULL;
    return tab + off;
}

/* Checks the ELF header; the section headers' table must lie inside the file. No allocation. Not strict: only what
 * finding the sections needs (so that an object with a "maps" section but a wrong machine or type is still given to
 * the parser, which says what is wrong). */
static int elf_header(struct elf *e, const void *data, size_t size, int strict, char *err, size_t errlen)
{
    memset(e, 0, sizeof(*e));
    e->data = data;
    e->size = size;
    if (!data || size < sizeof(Elf64_Ehdr))
        return fail(err, errlen, -EINVAL, "truncated ELF: %zu bytes, fewer than an ELF header's %zu", size,
                    sizeof(Elf64_Ehdr));
    memcpy(&e->eh, data, sizeof(e->eh));
    const unsigned char *id = e->eh.e_ident;
    if (memcmp(id, ELFMAG, SELFMAG) != 0)
        return fail(err, errlen, -EINVAL, "not an ELF file (bad magic)");
    if (id[EI_CLASS] != ELFCLASS64)
        return fail(err, errlen, -EINVAL, "not a 64-bit ELF (EI_CLASS %u): BPF objects are ELFCLASS64", id[EI_CLASS]);
    if (id[EI_DATA] != HOST_ELFDATA)
        return fail(err, errlen, -EINVAL, "ELF byte order (EI_DATA %u) is not this machine's (%s-endian)", id[EI_DATA],
                    HOST_ELFDATA == ELFDATA2LSB ? "little" : "big");
    if (strict && (id[EI_VERSION] != EV_CURRENT || e->eh.e_version != EV_CURRENT))
        return fail(err, errlen, -EINVAL, "unknown ELF version %u", id[EI_VERSION]);
    if (strict && e->eh.e_machine != EM_BPF)
        return fail(err, errlen, -EINVAL,
                    "not a BPF object: e_machine is %u, EM_BPF is %u (compile with clang -target bpf)", e->eh.e_machine,
                    EM_BPF);
    if (strict && e->eh.e_type != ET_REL)
        return fail(err, errlen, -EINVAL, "not a relocatable object (e_type %u, ET_REL is %u)", e->eh.e_type, ET_REL);
    if (e->eh.e_shoff == 0 || e->eh.e_shnum == 0)
        return fail(err, errlen, -EINVAL, "no section headers (or extended section numbering, not supported)");
    if (e->eh.e_shentsize != sizeof(Elf64_Shdr))
        return fail(err, errlen, -EINVAL, "section header size %u, expected %zu", e->eh.e_shentsize,
                    sizeof(Elf64_Shdr));
    e->shnum = e->eh.e_shnum;
    if (e->shnum >= SHN_LORESERVE)
        return fail(err, errlen, -EINVAL, "too many sections (%zu)", e->shnum);
    if (!in_file(e, e->eh.e_shoff, (uint64_t)e->shnum * sizeof(Elf64_Shdr)))
        return fail(err, errlen, -EINVAL, "truncated ELF: %zu section headers at offset %llu do not fit in %zu bytes",
                    e->shnum, (unsigned long long)e->eh.e_shoff, size);
    if (e->eh.e_shstrndx == SHN_UNDEF || e->eh.e_shstrndx >= e->shnum)
        return fail(err, errlen, -EINVAL, "bad section name table index %u (%zu sections)", e->eh.e_shstrndx, e->shnum);
    return 0;
}

static void elf_shdr(const struct elf *e, size_t idx, Elf64_Shdr *sh)
{
    memcpy(sh, e->data + e->eh.e_shoff + idx * sizeof(Elf64_Shdr), sizeof(*sh));
}

/* A section's bytes; fails for SHT_NOBITS and for a section that does not fit in the file. */
static int sec_bytes(const struct elf *e, const Elf64_Shdr *sh, const unsigned char **p, size_t *len)
{
    if (sh->sh_type == SHT_NOBITS || !in_file(e, sh->sh_offset, sh->sh_size))
        return -1;
    *p = e->data + sh->sh_offset;
    *len = (size_t)sh->sh_size;
    return 0;
}

static int elf_names(struct elf *e, const Elf64_Shdr *strsh, char *err, size_t errlen)
{
    const unsigned char *p;
    size_t len;
    if (strsh->sh_type != SHT_STRTAB || sec_bytes(e, strsh, &p, &len) < 0)
        return fail(err, errlen, -EINVAL, "section name table (section %u) is not a string table inside the file",
                    e->eh.e_shstrndx);
    e->shstr = (const char *)p;
    e->shstr_size = len;
    return 0;
}

static const char *sec_name(const struct elf *e, size_t idx)
{
    if (idx >= e->shnum)
        return NULL;
    return tab_str(e->shstr, e->shstr_size, e->sh[idx].sh_name);
}

int cbpf_elf_check_functions(const void *data, size_t size, char *err, size_t errlen)
{
    struct elf e;
    Elf64_Shdr symsh, fsh;
    if (elf_header(&e, data, size, 0, NULL, 0) < 0)
        return 0; /* libbpf says what is wrong */
    for (size_t i = 1; i < e.shnum; i++) {
        elf_shdr(&e, i, &symsh);
        if (symsh.sh_type != SHT_SYMTAB)
            continue;
        if (!in_file(&e, symsh.sh_offset, symsh.sh_size))
            return 0;
        for (uint64_t off = 0; off + sizeof(Elf64_Sym) <= symsh.sh_size; off += sizeof(Elf64_Sym)) {
            Elf64_Sym sym;
            memcpy(&sym, e.data + symsh.sh_offset + off, sizeof(sym));
            if (ELF64_ST_TYPE(sym.st_info) != STT_FUNC || sym.st_shndx == SHN_UNDEF || sym.st_shndx >= e.shnum ||
                sym.st_size < INSN_SZ)
                continue;
            elf_shdr(&e, sym.st_shndx, &fsh);
            if (!(fsh.sh_flags & SHF_EXECINSTR) || sym.st_value > fsh.sh_size ||
                sym.st_size > fsh.sh_size - sym.st_value || !in_file(&e, fsh.sh_offset, fsh.sh_size))
                continue;
            struct bpf_insn last;
            memcpy(&last, e.data + fsh.sh_offset + sym.st_value + sym.st_size - INSN_SZ, sizeof(last));
            if (last.code == OP_LD_IMM64)
                return fail(err, errlen, -EINVAL,
                            "function at offset %llu of section %zu ends in the first half of a 16-byte ld_imm64 "
                            "instruction", (unsigned long long)sym.st_value, (size_t)sym.st_shndx);
        }
        return 0;
    }
    return 0;
}

int cbpf_legacy_is_legacy(const void *data, size_t size)
{
    struct elf e;
    Elf64_Shdr sh;
    if (elf_header(&e, data, size, 0, NULL, 0) < 0)
        return 0;
    elf_shdr(&e, e.eh.e_shstrndx, &sh);
    if (elf_names(&e, &sh, NULL, 0) < 0)
        return 0;
    for (size_t i = 1; i < e.shnum; i++) {
        elf_shdr(&e, i, &sh);
        const char *name = tab_str(e.shstr, e.shstr_size, sh.sh_name);
        if (name && strcmp(name, "maps") == 0)
            return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- program types */

enum { M_PREFIX, M_ARG, M_WORD };

struct sec_def {
    const char *prefix;
    int match; /* M_PREFIX: anything may follow; M_ARG: a non-empty target follows; M_WORD: nothing or "/..." */
    uint32_t prog_type;
    uint32_t expected_attach_type;
    enum cbpf_legacy_attach_kind attach;
};

/* Longer prefixes before the shorter ones they start with. */
static const struct sec_def sec_defs[] = {
    {"kprobe/", M_ARG, BPF_PROG_TYPE_KPROBE, 0, CBPF_LEGACY_ATTACH_KPROBE},
    {"kretprobe/", M_ARG, BPF_PROG_TYPE_KPROBE, 0, CBPF_LEGACY_ATTACH_KRETPROBE},
    {"uprobe", M_PREFIX, BPF_PROG_TYPE_KPROBE, 0, CBPF_LEGACY_ATTACH_NONE},
    {"uretprobe", M_PREFIX, BPF_PROG_TYPE_KPROBE, 0, CBPF_LEGACY_ATTACH_NONE},
    {"tracepoint/", M_ARG, BPF_PROG_TYPE_TRACEPOINT, 0, CBPF_LEGACY_ATTACH_TRACEPOINT},
    {"tp/", M_ARG, BPF_PROG_TYPE_TRACEPOINT, 0, CBPF_LEGACY_ATTACH_TRACEPOINT},
    {"raw_tracepoint/", M_ARG, BPF_PROG_TYPE_RAW_TRACEPOINT, 0, CBPF_LEGACY_ATTACH_RAW_TP},
    {"raw_tp/", M_ARG, BPF_PROG_TYPE_RAW_TRACEPOINT, 0, CBPF_LEGACY_ATTACH_RAW_TP},
    {"socket", M_PREFIX, BPF_PROG_TYPE_SOCKET_FILTER, 0, CBPF_LEGACY_ATTACH_NONE},
    {"xdp", M_PREFIX, BPF_PROG_TYPE_XDP, 0, CBPF_LEGACY_ATTACH_NONE},
    {"perf_event", M_PREFIX, BPF_PROG_TYPE_PERF_EVENT, 0, CBPF_LEGACY_ATTACH_NONE},
    {"classifier", M_PREFIX, BPF_PROG_TYPE_SCHED_CLS, 0, CBPF_LEGACY_ATTACH_NONE},
    {"tc", M_WORD, BPF_PROG_TYPE_SCHED_CLS, 0, CBPF_LEGACY_ATTACH_NONE},
    {"action", M_PREFIX, BPF_PROG_TYPE_SCHED_ACT, 0, CBPF_LEGACY_ATTACH_NONE},
    {"cgroup/skb", M_PREFIX, BPF_PROG_TYPE_CGROUP_SKB, 0, CBPF_LEGACY_ATTACH_NONE},
    {"cgroup_skb/ingress", M_PREFIX, BPF_PROG_TYPE_CGROUP_SKB, BPF_CGROUP_INET_INGRESS, CBPF_LEGACY_ATTACH_NONE},
    {"cgroup_skb/egress", M_PREFIX, BPF_PROG_TYPE_CGROUP_SKB, BPF_CGROUP_INET_EGRESS, CBPF_LEGACY_ATTACH_NONE},
    {"cgroup/sock_release", M_PREFIX, BPF_PROG_TYPE_CGROUP_SOCK, BPF_CGROUP_INET_SOCK_RELEASE, CBPF_LEGACY_ATTACH_NONE},
    {"cgroup/post_bind4", M_PREFIX, BPF_PROG_TYPE_CGROUP_SOCK, BPF_CGROUP_INET4_POST_BIND, CBPF_LEGACY_ATTACH_NONE},
    {"cgroup/post_bind6", M_PREFIX, BPF_PROG_TYPE_CGROUP_SOCK, BPF_CGROUP_INET6_POST_BIND, CBPF_LEGACY_ATTACH_NONE},
    {"cgroup/sock", M_PREFIX, BPF_PROG_TYPE_CGROUP_SOCK, BPF_CGROUP_INET_SOCK_CREATE, CBPF_LEGACY_ATTACH_NONE},
    {"cgroup/dev", M_PREFIX, BPF_PROG_TYPE_CGROUP_DEVICE, BPF_CGROUP_DEVICE, CBPF_LEGACY_ATTACH_NONE},
    {"cgroup/sysctl", M_PREFIX, BPF_PROG_TYPE_CGROUP_SYSCTL, BPF_CGROUP_SYSCTL, CBPF_LEGACY_ATTACH_NONE},
    {"cgroup/getsockopt", M_PREFIX, BPF_PROG_TYPE_CGROUP_SOCKOPT, BPF_CGROUP_GETSOCKOPT, CBPF_LEGACY_ATTACH_NONE},
    {"cgroup/setsockopt", M_PREFIX, BPF_PROG_TYPE_CGROUP_SOCKOPT, BPF_CGROUP_SETSOCKOPT, CBPF_LEGACY_ATTACH_NONE},
    {"cgroup/bind4", M_PREFIX, BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET4_BIND, CBPF_LEGACY_ATTACH_NONE},
    {"cgroup/bind6", M_PREFIX, BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET6_BIND, CBPF_LEGACY_ATTACH_NONE},
    {"cgroup/connect4", M_PREFIX, BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET4_CONNECT, CBPF_LEGACY_ATTACH_NONE},
    {"cgroup/connect6", M_PREFIX, BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET6_CONNECT, CBPF_LEGACY_ATTACH_NONE},
    {"cgroup/sendmsg4", M_PREFIX, BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_UDP4_SENDMSG, CBPF_LEGACY_ATTACH_NONE},
    {"cgroup/sendmsg6", M_PREFIX, BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_UDP6_SENDMSG, CBPF_LEGACY_ATTACH_NONE},
    {"cgroup/recvmsg4", M_PREFIX, BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_UDP4_RECVMSG, CBPF_LEGACY_ATTACH_NONE},
    {"cgroup/recvmsg6", M_PREFIX, BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_UDP6_RECVMSG, CBPF_LEGACY_ATTACH_NONE},
    {"sockops", M_PREFIX, BPF_PROG_TYPE_SOCK_OPS, BPF_CGROUP_SOCK_OPS, CBPF_LEGACY_ATTACH_NONE},
    {"sk_skb/stream_parser", M_PREFIX, BPF_PROG_TYPE_SK_SKB, BPF_SK_SKB_STREAM_PARSER, CBPF_LEGACY_ATTACH_NONE},
    {"sk_skb/stream_verdict", M_PREFIX, BPF_PROG_TYPE_SK_SKB, BPF_SK_SKB_STREAM_VERDICT, CBPF_LEGACY_ATTACH_NONE},
    {"sk_skb", M_PREFIX, BPF_PROG_TYPE_SK_SKB, 0, CBPF_LEGACY_ATTACH_NONE},
    {"sk_msg", M_PREFIX, BPF_PROG_TYPE_SK_MSG, BPF_SK_MSG_VERDICT, CBPF_LEGACY_ATTACH_NONE},
    {"sk_reuseport", M_PREFIX, BPF_PROG_TYPE_SK_REUSEPORT, 0, CBPF_LEGACY_ATTACH_NONE},
    {"lwt_in", M_PREFIX, BPF_PROG_TYPE_LWT_IN, 0, CBPF_LEGACY_ATTACH_NONE},
    {"lwt_out", M_PREFIX, BPF_PROG_TYPE_LWT_OUT, 0, CBPF_LEGACY_ATTACH_NONE},
    {"lwt_xmit", M_PREFIX, BPF_PROG_TYPE_LWT_XMIT, 0, CBPF_LEGACY_ATTACH_NONE},
    {"lwt_seg6local", M_PREFIX, BPF_PROG_TYPE_LWT_SEG6LOCAL, 0, CBPF_LEGACY_ATTACH_NONE},
    {"lirc_mode2", M_PREFIX, BPF_PROG_TYPE_LIRC_MODE2, BPF_LIRC_MODE2, CBPF_LEGACY_ATTACH_NONE},
    {"flow_dissector", M_PREFIX, BPF_PROG_TYPE_FLOW_DISSECTOR, BPF_FLOW_DISSECTOR, CBPF_LEGACY_ATTACH_NONE},
};

/* A tracepoint's "<category>/<name>" becomes a tracefs path: plain names only, no "..", no extra "/". */
static int tp_part_ok(const char *s, size_t n)
{
    if (n == 0 || s[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
              c == '.'))
            return 0;
    }
    return 1;
}

static int classify(const char *sec, struct cbpf_legacy_prog_spec *p, char *err, size_t errlen)
{
    for (size_t i = 0; i < sizeof(sec_defs) / sizeof(sec_defs[0]); i++) {
        const struct sec_def *d = &sec_defs[i];
        size_t n = strlen(d->prefix);
        if (strncmp(sec, d->prefix, n) != 0)
            continue;
        const char *arg = sec + n;
        if (d->match == M_WORD && *arg != '\0' && *arg != '/')
            continue;
        p->prog_type = d->prog_type;
        p->expected_attach_type = d->expected_attach_type;
        p->attach_kind = d->attach;
        p->attach_target = NULL;
        if (d->match != M_ARG)
            return 0;
        if (*arg == '\0')
            return fail(err, errlen, -EINVAL, "section '%s' names no attach target after '%s'", sec, d->prefix);
        for (const char *c = arg; *c; c++) {
            if (*c <= ' ' || *c >= 0x7f)
                return fail(err, errlen, -EINVAL, "section '%s': attach target has a blank or non-ASCII character",
                            sec);
        }
        if (d->attach == CBPF_LEGACY_ATTACH_TRACEPOINT) {
            const char *slash = strchr(arg, '/');
            if (!slash || !tp_part_ok(arg, (size_t)(slash - arg)) || !tp_part_ok(slash + 1, strlen(slash + 1)))
                return fail(err, errlen, -EINVAL,
                            "section '%s': a tracepoint section is '%s<category>/<name>' (letters, digits, _ - .)", sec,
                            d->prefix);
        }
        p->attach_target = arg;
        return 0;
    }
    return fail(err, errlen, -EINVAL,
                "section '%s' does not name a known program type (kprobe/, kretprobe/, tracepoint/, raw_tracepoint/, "
                "socket, xdp, perf_event, cgroup/skb, cgroup/sock, classifier, action, sk_skb, sk_msg, sockops, "
                "lwt_*, ...)",
                sec);
}

/* ---------------------------------------------------------------- parsing */

struct func {
    size_t csec;
    uint64_t start, end; /* instruction indices in the section, end exclusive */
    const char *name;
};

struct rel {
    uint64_t insn; /* index in its section */
    uint32_t sym;
    uint32_t type;
};

struct csec {
    size_t shndx;
    const char *name;
    const unsigned char *code;
    size_t ninsns;
    size_t func_lo, func_hi; /* its functions, funcs[func_lo..func_hi), by offset */
    struct rel *rels;        /* by instruction */
    size_t nrels;
};

struct parse {
    struct elf e;
    char *err;
    size_t errlen;
    size_t maps_idx, license_idx, version_idx; /* 0: none */
    struct csec *csecs;
    size_t ncsecs;
    size_t *csec_of; /* section index -> index in csecs, SIZE_MAX if not code */
    struct func *funcs;
    size_t nfuncs;
    /* building one program */
    size_t *func_pos; /* where each function was appended in the program being built, SIZE_MAX if not */
    size_t *units;    /* the functions appended, in order */
    size_t nunits;
    struct bpf_insn *insns;
    size_t ninsns, cap_insns;
    struct cbpf_legacy_reloc *relocs;
    size_t nrelocs, cap_relocs;
    size_t total_insns;
};

static const char *sym_name(const struct parse *p, size_t symidx)
{
    if (symidx >= p->e.nsyms)
        return "?";
    const Elf64_Sym *s = &p->e.syms[symidx];
    if (ELF64_ST_TYPE(s->st_info) == STT_SECTION) {
        const char *n = sec_name(&p->e, s->st_shndx);
        return n ? n : "?";
    }
    const char *n = tab_str(p->e.str, p->e.str_size, s->st_name);
    return n && *n ? n : "?";
}

static int load_symtab(struct parse *p)
{
    struct elf *e = &p->e;
    const Elf64_Shdr *sh = &e->sh[e->symtab_idx];
    const unsigned char *bytes;
    size_t len;
    if (sec_bytes(e, sh, &bytes, &len) < 0)
        return fail(p->err, p->errlen, -EINVAL, "symbol table (section %zu) is not inside the file", e->symtab_idx);
    if (sh->sh_entsize != sizeof(Elf64_Sym) || len % sizeof(Elf64_Sym) != 0)
        return fail(p->err, p->errlen, -EINVAL, "symbol table: entry size %llu and size %zu, expected entries of %zu",
                    (unsigned long long)sh->sh_entsize, len, sizeof(Elf64_Sym));
    if (sh->sh_link == 0 || sh->sh_link >= e->shnum || e->sh[sh->sh_link].sh_type != SHT_STRTAB)
        return fail(p->err, p->errlen, -EINVAL, "symbol table: its string table (section %u) is not a string table",
                    sh->sh_link);
    const unsigned char *strs;
    if (sec_bytes(e, &e->sh[sh->sh_link], &strs, &e->str_size) < 0)
        return fail(p->err, p->errlen, -EINVAL, "symbol string table is not inside the file");
    e->str = (const char *)strs;
    e->nsyms = len / sizeof(Elf64_Sym);
    if (e->nsyms) {
        e->syms = malloc(len);
        if (!e->syms)
            return fail(p->err, p->errlen, -ENOMEM, "out of memory for %zu symbols", e->nsyms);
        memcpy(e->syms, bytes, len);
    }
    for (size_t i = 1; i < e->nsyms; i++) {
        if (e->syms[i].st_shndx == SHN_XINDEX)
            return fail(p->err, p->errlen, -EINVAL, "symbol %zu uses an extended section index (not supported)", i);
        if (e->syms[i].st_name && !tab_str(e->str, e->str_size, e->syms[i].st_name))
            return fail(p->err, p->errlen, -EINVAL, "symbol %zu: name offset %u is outside the string table", i,
                        e->syms[i].st_name);
    }
    return 0;
}

/* Finds the special sections, the code sections and the symbol table. */
static int scan_sections(struct parse *p)
{
    struct elf *e = &p->e;
    size_t symtabs = 0;
    for (size_t i = 1; i < e->shnum; i++) {
        const Elf64_Shdr *sh = &e->sh[i];
        const char *name = sec_name(e, i);
        if (!name)
            return fail(p->err, p->errlen, -EINVAL, "section %zu: name offset %u is outside the section name table", i,
                        sh->sh_name);
        size_t *special = NULL;
        if (strcmp(name, "maps") == 0)
            special = &p->maps_idx;
        else if (strcmp(name, "license") == 0)
            special = &p->license_idx;
        else if (strcmp(name, "version") == 0)
            special = &p->version_idx;
        else if (strcmp(name, ".maps") == 0)
            return fail(
                p->err, p->errlen, -EOPNOTSUPP,
                "BTF-defined maps (section .maps) are not supported by the legacy loader (they are libbpf's to load)");
        if (special) {
            if (*special)
                return fail(p->err, p->errlen, -EINVAL, "two sections named '%s'", name);
            if (sh->sh_type != SHT_PROGBITS)
                return fail(p->err, p->errlen, -EINVAL, "section '%s' has type %u, not SHT_PROGBITS (data)", name,
                            sh->sh_type);
            *special = i;
        }
        if (sh->sh_type == SHT_SYMTAB) {
            symtabs++;
            e->symtab_idx = i;
        }
        if (sh->sh_type == SHT_PROGBITS && (sh->sh_flags & SHF_EXECINSTR) && sh->sh_size > 0) {
            if (special)
                return fail(p->err, p->errlen, -EINVAL, "section '%s' is executable", name);
            p->ncsecs++;
        }
    }
    if (symtabs != 1)
        return fail(p->err, p->errlen, -EINVAL, symtabs ? "more than one symbol table" : "no symbol table (.symtab)");
    if (!p->license_idx)
        return fail(p->err, p->errlen, -EINVAL,
                    "no license section (declare char _license[] SEC(\"license\") = \"GPL\";)");

    p->csec_of = malloc(e->shnum * sizeof(*p->csec_of));
    p->csecs = calloc(p->ncsecs ? p->ncsecs : 1, sizeof(*p->csecs));
    if (!p->csec_of || !p->csecs)
        return fail(p->err, p->errlen, -ENOMEM, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < e->shnum; i++) {
        const Elf64_Shdr *sh = &e->sh[i];
        p->csec_of[i] = SIZE_MAX;
        if (i == 0 || sh->sh_type != SHT_PROGBITS || !(sh->sh_flags & SHF_EXECINSTR) || sh->sh_size == 0)
            continue;
        struct csec *c = &p->csecs[n];
        size_t len;
        c->shndx = i;
        c->name = sec_name(e, i);
        if (sec_bytes(e, sh, &c->code, &len) < 0)
            return fail(p->err, p->errlen, -EINVAL, "section '%s' (%llu bytes at offset %llu) is not inside the file",
                        c->name, (unsigned long long)sh->sh_size, (unsigned long long)sh->sh_offset);
        if (len % INSN_SZ != 0)
            return fail(p->err, p->errlen, -EINVAL, "section '%s': %zu bytes is not a whole number of instructions",
                        c->name, len);
        c->ninsns = len / INSN_SZ;
        p->csec_of[i] = n++;
    }
    return 0;
}

static int read_license(struct parse *p, struct cbpf_legacy_spec *spec)
{
    const unsigned char *b;
    size_t len;
    if (sec_bytes(&p->e, &p->e.sh[p->license_idx], &b, &len) < 0)
        return fail(p->err, p->errlen, -EINVAL, "license section is not inside the file");
    const unsigned char *nul = memchr(b, '\0', len);
    if (!nul)
        return fail(p->err, p->errlen, -EINVAL, "license section (%zu bytes) is not a NUL-terminated string", len);
    if (nul == b)
        return fail(p->err, p->errlen, -EINVAL, "license section holds an empty string");
    if (!printable((const char *)b, 1))
        return fail(p->err, p->errlen, -EINVAL, "license '%s' is not printable ASCII", (const char *)b);
    spec->license = strdup((const char *)b);
    if (!spec->license)
        return fail(p->err, p->errlen, -ENOMEM, "out of memory");
    if (p->version_idx) {
        if (sec_bytes(&p->e, &p->e.sh[p->version_idx], &b, &len) < 0 || len != sizeof(uint32_t))
            return fail(p->err, p->errlen, -EINVAL, "version section must hold one 4-byte integer (it has %llu bytes)",
                        (unsigned long long)p->e.sh[p->version_idx].sh_size);
        memcpy(&spec->version, b, sizeof(uint32_t));
        spec->has_version = 1;
    }
    return 0;
}

/* ---- maps */

struct mapsym {
    uint64_t off, size;
    size_t sym;
};

static int cmp_mapsym(const void *a, const void *b)
{
    const struct mapsym *x = a, *y = b;
    if (x->off != y->off)
        return x->off < y->off ? -1 : 1;
    return x->sym < y->sym ? -1 : x->sym > y->sym;
}

/* qsort, which must not be given a NULL array even when empty */
static void sort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
    if (n > 1)
        qsort(base, n, size, cmp);
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The first name that appears twice in names[0..n), or NULL. Sorts names (a scratch copy). */
static const char *duplicate_name(char **names, size_t n)
{
    sort(names, n, sizeof(*names), cmp_str_ptr);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(names[i - 1], names[i]) == 0)
            return names[i];
    }
    return NULL;
}

static int is_map_in_map(uint32_t type)
{
    return type == BPF_MAP_TYPE_ARRAY_OF_MAPS || type == BPF_MAP_TYPE_HASH_OF_MAPS;
}

/* The map types whose definition needs a key, a value and entries (perf event arrays may have 0 entries: one per
 * CPU). Others (queue, stack, ring buffer, bloom filter, local storages, ...) are left to the kernel's checks. */
static int needs_sizes(uint32_t type)
{
    switch (type) {
    case BPF_MAP_TYPE_HASH:
    case BPF_MAP_TYPE_ARRAY:
    case BPF_MAP_TYPE_PROG_ARRAY:
    case BPF_MAP_TYPE_PERF_EVENT_ARRAY:
    case BPF_MAP_TYPE_PERCPU_HASH:
    case BPF_MAP_TYPE_PERCPU_ARRAY:
    case BPF_MAP_TYPE_STACK_TRACE:
    case BPF_MAP_TYPE_CGROUP_ARRAY:
    case BPF_MAP_TYPE_LRU_HASH:
    case BPF_MAP_TYPE_LRU_PERCPU_HASH:
    case BPF_MAP_TYPE_LPM_TRIE:
    case BPF_MAP_TYPE_ARRAY_OF_MAPS:
    case BPF_MAP_TYPE_HASH_OF_MAPS:
    case BPF_MAP_TYPE_DEVMAP:
    case BPF_MAP_TYPE_SOCKMAP:
    case BPF_MAP_TYPE_CPUMAP:
    case BPF_MAP_TYPE_XSKMAP:
    case BPF_MAP_TYPE_SOCKHASH:
    case BPF_MAP_TYPE_DEVMAP_HASH:
    case BPF_MAP_TYPE_REUSEPORT_SOCKARRAY: return 1;
    default: return 0;
    }
}

static int parse_maps(struct parse *p, struct cbpf_legacy_spec *spec)
{
    struct elf *e = &p->e;
    struct mapsym *ms = NULL;
    char **names = NULL;
    const unsigned char *b;
    size_t len, n = 0;
    int ret = 0;

    if (!p->maps_idx)
        return 0;
    if (sec_bytes(e, &e->sh[p->maps_idx], &b, &len) < 0)
        return fail(p->err, p->errlen, -EINVAL, "maps section is not inside the file");
    if (len > UINT32_MAX)
        return fail(p->err, p->errlen, -EINVAL, "maps section is too large (%zu bytes)", len);
    for (size_t i = 1; i < e->nsyms; i++) {
        const Elf64_Sym *s = &e->syms[i];
        int t = ELF64_ST_TYPE(s->st_info);
        if (s->st_shndx == p->maps_idx && (t == STT_OBJECT || t == STT_NOTYPE))
            n++;
    }
    if (n == 0) {
        if (len)
            return fail(p->err, p->errlen, -EINVAL, "maps section holds %zu bytes but no map symbol", len);
        return 0;
    }
    ms = calloc(n, sizeof(*ms));
    spec->maps = calloc(n, sizeof(*spec->maps));
    names = calloc(n, sizeof(*names));
    if (!ms || !spec->maps || !names) {
        ret = fail(p->err, p->errlen, -ENOMEM, "out of memory for %zu maps", n);
        goto done;
    }
    size_t k = 0, unsized = 0;
    for (size_t i = 1; i < e->nsyms; i++) {
        const Elf64_Sym *s = &e->syms[i];
        int t = ELF64_ST_TYPE(s->st_info);
        if (s->st_shndx != p->maps_idx || (t != STT_OBJECT && t != STT_NOTYPE))
            continue;
        ms[k].off = s->st_value;
        ms[k].size = s->st_size;
        ms[k].sym = i;
        unsized += s->st_size == 0;
        k++;
    }
    if (unsized && unsized != n) {
        for (size_t i = 0; i < n; i++) {
            if (ms[i].size == 0) {
                ret = fail(p->err, p->errlen, -EINVAL,
                           "map '%s' is 0 bytes (its symbol's size): a struct bpf_map_def has at least 5 4-byte fields",
                           sym_name(p, ms[i].sym));
                goto done;
            }
        }
    }
    if (unsized) {
        /* an old toolchain without symbol sizes: equal records filling the section */
        if (len % n != 0) {
            ret = fail(p->err, p->errlen, -EINVAL,
                       "map symbols have no size and the maps section (%zu bytes) is not a whole number of %zu "
                       "records",
                       len, n);
            goto done;
        }
        for (size_t i = 0; i < n; i++)
            ms[i].size = len / n;
    }
    sort(ms, n, sizeof(*ms), cmp_mapsym);
    uint64_t end = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = sym_name(p, ms[i].sym);
        if (ms[i].off > len || ms[i].size > len - ms[i].off) {
            ret = fail(p->err, p->errlen, -EINVAL,
                       "map '%s': its record (%llu bytes at offset %llu) lies outside the maps section (%zu bytes)",
                       name, (unsigned long long)ms[i].size, (unsigned long long)ms[i].off, len);
            goto done;
        }
        if (ms[i].off < end) {
            ret = fail(p->err, p->errlen, -EINVAL, "maps '%s' and '%s' overlap in the maps section",
                       sym_name(p, ms[i - 1].sym), name);
            goto done;
        }
        if (ms[i].off > end) {
            ret = fail(p->err, p->errlen, -EINVAL,
                       "maps section: bytes %llu to %llu belong to no map symbol (not a whole number of records)",
                       (unsigned long long)end, (unsigned long long)ms[i].off);
            goto done;
        }
        if (ms[i].size < MAP_DEF_MIN || ms[i].size % 4 != 0) {
            ret = fail(p->err, p->errlen, -EINVAL,
                       "map '%s': a %llu-byte record is not a struct bpf_map_def (5 or more 4-byte fields)", name,
                       (unsigned long long)ms[i].size);
            goto done;
        }
        end = ms[i].off + ms[i].size;
    }
    if (end != len) {
        ret = fail(p->err, p->errlen, -EINVAL,
                   "maps section is %zu bytes but its map records end at %llu (not a whole number of records)", len,
                   (unsigned long long)end);
        goto done;
    }

    for (size_t i = 0; i < n; i++) {
        struct cbpf_legacy_map_spec *m = &spec->maps[i];
        const unsigned char *rec = b + ms[i].off;
        uint32_t w[7] = {0};
        size_t words = ms[i].size / 4;
        const char *name = tab_str(e->str, e->str_size, e->syms[ms[i].sym].st_name);
        if (!name || !*name || !printable(name, 0)) {
            ret = fail(p->err, p->errlen, -EINVAL, "map at offset %llu of the maps section has no printable name",
                       (unsigned long long)ms[i].off);
            goto done;
        }
        m->name = strdup(name);
        if (!m->name) {
            ret = fail(p->err, p->errlen, -ENOMEM, "out of memory");
            goto done;
        }
        spec->nmaps = i + 1;
        names[i] = m->name;
        memcpy(w, rec, (words < 7 ? words : 7) * 4);
        for (size_t j = MAP_DEF_KNOWN; j < ms[i].size; j++) {
            if (rec[j] != 0) {
                ret = fail(p->err, p->errlen, -EINVAL,
                           "map '%s': byte %zu of its %llu-byte record is set, but only type, key_size, value_size, "
                           "max_entries, map_flags, inner_map_idx and numa_node are known",
                           name, j, (unsigned long long)ms[i].size);
                goto done;
            }
        }
        m->type = w[0];
        m->key_size = w[1];
        m->value_size = w[2];
        m->max_entries = w[3];
        m->map_flags = w[4];
        m->inner_map_idx = w[5];
        m->numa_node = w[6];
        m->def_offset = (uint32_t)ms[i].off;
        m->def_size = (uint32_t)ms[i].size;
    }

    for (size_t i = 0; i < n; i++) {
        struct cbpf_legacy_map_spec *m = &spec->maps[i];
        if (m->type == BPF_MAP_TYPE_UNSPEC) {
            ret = fail(p->err, p->errlen, -EINVAL, "map '%s': type 0 (BPF_MAP_TYPE_UNSPEC)", m->name);
            goto done;
        }
        if (needs_sizes(m->type)) {
            const char *zero = !m->key_size ? "key_size" : !m->value_size ? "value_size" : NULL;
            if (!zero && !m->max_entries && m->type != BPF_MAP_TYPE_PERF_EVENT_ARRAY)
                zero = "max_entries";
            if (zero) {
                ret = fail(p->err, p->errlen, -EINVAL, "map '%s' (type %u): %s is 0", m->name, m->type, zero);
                goto done;
            }
        }
        if (m->numa_node && !(m->map_flags & BPF_F_NUMA_NODE)) {
            ret = fail(p->err, p->errlen, -EINVAL,
                       "map '%s': numa_node is %u without BPF_F_NUMA_NODE in map_flags (iproute2's struct "
                       "bpf_elf_map is not this layout)",
                       m->name, m->numa_node);
            goto done;
        }
        if (!is_map_in_map(m->type)) {
            if (m->inner_map_idx) {
                ret = fail(p->err, p->errlen, -EINVAL, "map '%s': inner_map_idx is %u but it is not a map-in-map",
                           m->name, m->inner_map_idx);
                goto done;
            }
            continue;
        }
        if (m->def_size < 24) {
            ret = fail(p->err, p->errlen, -EINVAL,
                       "map '%s' is a map-in-map but its bpf_map_def has no inner_map_idx field", m->name);
            goto done;
        }
        if (m->inner_map_idx >= n || m->inner_map_idx == i) {
            ret = fail(p->err, p->errlen, -EINVAL, "map '%s': inner_map_idx %u is not another map (there are %zu)",
                       m->name, m->inner_map_idx, n);
            goto done;
        }
        if (is_map_in_map(spec->maps[m->inner_map_idx].type)) {
            ret = fail(p->err, p->errlen, -EINVAL, "map '%s': its inner map '%s' is itself a map-in-map", m->name,
                       spec->maps[m->inner_map_idx].name);
            goto done;
        }
        m->has_inner = 1;
    }
    const char *dup = duplicate_name(names, n);
    if (dup)
        ret = fail(p->err, p->errlen, -EINVAL, "two maps are named '%s'", dup);
done:
    free(ms);
    free(names);
    return ret;
}

/* The map whose record starts at off in the maps section, or -1. */
static long map_at(const struct cbpf_legacy_spec *spec, int64_t off)
{
    size_t lo = 0, hi = spec->nmaps;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if ((int64_t)spec->maps[mid].def_offset < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < spec->nmaps && (int64_t)spec->maps[lo].def_offset == off ? (long)lo : -1;
}

/* ---- functions and relocations */

static int cmp_func(const void *a, const void *b)
{
    const struct func *x = a, *y = b;
    if (x->csec != y->csec)
        return x->csec < y->csec ? -1 : 1;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

static int cmp_rel(const void *a, const void *b)
{
    const struct rel *x = a, *y = b;
    return (x->insn > y->insn) - (x->insn < y->insn);
}

static int collect_funcs(struct parse *p)
{
    struct elf *e = &p->e;
    size_t n = 0;
    for (size_t i = 1; i < e->nsyms; i++) {
        const Elf64_Sym *s = &e->syms[i];
        if (ELF64_ST_TYPE(s->st_info) == STT_FUNC && s->st_shndx < e->shnum && p->csec_of[s->st_shndx] != SIZE_MAX)
            n++;
    }
    /* a code section without function symbols is one function */
    for (size_t c = 0; c < p->ncsecs; c++)
        n++;
    p->funcs = calloc(n, sizeof(*p->funcs));
    if (!p->funcs)
        return fail(p->err, p->errlen, -ENOMEM, "out of memory");
    for (size_t i = 1; i < e->nsyms; i++) {
        const Elf64_Sym *s = &e->syms[i];
        if (ELF64_ST_TYPE(s->st_info) != STT_FUNC || s->st_shndx >= e->shnum || p->csec_of[s->st_shndx] == SIZE_MAX)
            continue;
        const struct csec *c = &p->csecs[p->csec_of[s->st_shndx]];
        const char *name = tab_str(e->str, e->str_size, s->st_name);
        if (!name || !*name)
            return fail(p->err, p->errlen, -EINVAL, "function symbol %zu in section '%s' has no name", i, c->name);
        if (s->st_value % INSN_SZ || s->st_size % INSN_SZ || s->st_size == 0)
            return fail(p->err, p->errlen, -EINVAL,
                        "function '%s': offset %llu and size %llu are not whole, non-empty instructions", name,
                        (unsigned long long)s->st_value, (unsigned long long)s->st_size);
        uint64_t start = s->st_value / INSN_SZ, len = s->st_size / INSN_SZ;
        if (start > c->ninsns || len > c->ninsns - start)
            return fail(p->err, p->errlen, -EINVAL,
                        "function '%s' (%llu bytes at offset %llu) lies outside its section '%s' (%zu bytes)", name,
                        (unsigned long long)s->st_size, (unsigned long long)s->st_value, c->name, c->ninsns * INSN_SZ);
        p->funcs[p->nfuncs++] = (struct func){p->csec_of[s->st_shndx], start, start + len, name};
    }
    sort(p->funcs, p->nfuncs, sizeof(*p->funcs), cmp_func);
    size_t nreal = p->nfuncs;
    for (size_t c = 0, f = 0; c < p->ncsecs; c++) {
        size_t lo = f;
        while (f < nreal && p->funcs[f].csec == c) {
            if (f > lo && p->funcs[f].start < p->funcs[f - 1].end)
                return fail(p->err, p->errlen, -EINVAL, "functions '%s' and '%s' overlap in section '%s'",
                            p->funcs[f - 1].name, p->funcs[f].name, p->csecs[c].name);
            f++;
        }
        p->csecs[c].func_lo = lo;
        p->csecs[c].func_hi = f;
    }
    /* A code section without function symbols (an old toolchain's) is one function, named after the global symbol
     * at its start if there is one, else after the section. These go after the real ones: every csec keeps a
     * contiguous range. */
    for (size_t c = 0; c < p->ncsecs; c++) {
        struct csec *cs = &p->csecs[c];
        if (cs->func_lo != cs->func_hi)
            continue;
        cs->func_lo = p->nfuncs;
        cs->func_hi = p->nfuncs + 1;
        p->funcs[p->nfuncs++] = (struct func){c, 0, cs->ninsns, cs->name};
    }
    for (size_t i = 1; i < e->nsyms && p->nfuncs > nreal; i++) {
        const Elf64_Sym *s = &e->syms[i];
        if (s->st_value != 0 || ELF64_ST_TYPE(s->st_info) != STT_NOTYPE || ELF64_ST_BIND(s->st_info) != STB_GLOBAL ||
            s->st_shndx >= e->shnum || p->csec_of[s->st_shndx] == SIZE_MAX)
            continue;
        const struct csec *cs = &p->csecs[p->csec_of[s->st_shndx]];
        struct func *fn = &p->funcs[cs->func_lo];
        const char *name = tab_str(e->str, e->str_size, s->st_name);
        if (cs->func_lo >= nreal && fn->name == cs->name && name && *name)
            fn->name = name;
    }
    return 0;
}

static int collect_rels(struct parse *p)
{
    struct elf *e = &p->e;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 1; i < e->shnum; i++) {
            const Elf64_Shdr *sh = &e->sh[i];
            if (sh->sh_type != SHT_REL && sh->sh_type != SHT_RELA)
                continue;
            /* relocations of anything but code (.BTF, .BTF.ext, .debug_*) are not needed: ignored */
            if (sh->sh_info == 0 || sh->sh_info >= e->shnum || p->csec_of[sh->sh_info] == SIZE_MAX)
                continue;
            struct csec *c = &p->csecs[p->csec_of[sh->sh_info]];
            const char *rname = sec_name(e, i);
            if (sh->sh_type == SHT_RELA)
                return fail(p->err, p->errlen, -EOPNOTSUPP,
                            "section '%s': RELA relocations of code are not supported (BPF uses REL)", rname);
            const unsigned char *b;
            size_t len;
            if (sec_bytes(e, sh, &b, &len) < 0)
                return fail(p->err, p->errlen, -EINVAL, "relocation section '%s' is not inside the file", rname);
            if (sh->sh_entsize != sizeof(Elf64_Rel) || len % sizeof(Elf64_Rel) != 0)
                return fail(p->err, p->errlen, -EINVAL,
                            "relocation section '%s': entry size %llu and size %zu, expected entries of %zu", rname,
                            (unsigned long long)sh->sh_entsize, len, sizeof(Elf64_Rel));
            if (sh->sh_link != e->symtab_idx)
                return fail(p->err, p->errlen, -EINVAL, "relocation section '%s' does not use the symbol table", rname);
            size_t n = len / sizeof(Elf64_Rel);
            if (pass == 0) {
                if (n > SIZE_MAX / sizeof(struct rel) - c->nrels)
                    return fail(p->err, p->errlen, -ENOMEM, "too many relocations");
                c->nrels += n; /* counted first, stored in the second pass */
                continue;
            }
            for (size_t r = 0; r < n; r++) {
                Elf64_Rel rel;
                memcpy(&rel, b + r * sizeof(rel), sizeof(rel));
                uint32_t type = (uint32_t)ELF64_R_TYPE(rel.r_info);
                uint64_t sym = ELF64_R_SYM(rel.r_info);
                if (type == R_BPF_NONE)
                    continue;
                if (rel.r_offset % INSN_SZ || rel.r_offset / INSN_SZ >= c->ninsns)
                    return fail(p->err, p->errlen, -EINVAL,
                                "relocation %zu of '%s': offset %llu is not an instruction of section '%s' (%zu "
                                "bytes)",
                                r, rname, (unsigned long long)rel.r_offset, c->name, c->ninsns * INSN_SZ);
                if (sym == 0 || sym >= e->nsyms)
                    return fail(p->err, p->errlen, -EINVAL, "relocation %zu of '%s': bad symbol index %llu", r, rname,
                                (unsigned long long)sym);
                c->rels[c->nrels++] = (struct rel){rel.r_offset / INSN_SZ, (uint32_t)sym, type};
            }
        }
        if (pass == 0) {
            for (size_t c = 0; c < p->ncsecs; c++) {
                struct csec *cs = &p->csecs[c];
                if (cs->nrels) {
                    cs->rels = malloc(cs->nrels * sizeof(*cs->rels));
                    if (!cs->rels)
                        return fail(p->err, p->errlen, -ENOMEM, "out of memory for relocations");
                }
                cs->nrels = 0;
            }
        }
    }
    for (size_t c = 0; c < p->ncsecs; c++) {
        struct csec *cs = &p->csecs[c];
        sort(cs->rels, cs->nrels, sizeof(*cs->rels), cmp_rel);
        for (size_t r = 1; r < cs->nrels; r++) {
            if (cs->rels[r].insn == cs->rels[r - 1].insn)
                return fail(p->err, p->errlen, -EINVAL, "two relocations of instruction %llu of section '%s'",
                            (unsigned long long)cs->rels[r].insn, cs->name);
        }
    }
    return 0;
}

static const struct rel *find_rel(const struct csec *c, uint64_t insn)
{
    size_t lo = 0, hi = c->nrels;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->rels[mid].insn < insn)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->nrels && c->rels[lo].insn == insn ? &c->rels[lo] : NULL;
}

/* The function of section c holding instruction insn, or SIZE_MAX. */
static size_t func_at(const struct parse *p, const struct csec *c, uint64_t insn)
{
    size_t lo = c->func_lo, hi = c->func_hi;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->funcs[mid].end <= insn)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->func_hi && p->funcs[lo].start <= insn ? lo : SIZE_MAX;
}

/* Appends function f to the program being built. */
static int append_func(struct parse *p, size_t f)
{
    const struct func *fn = &p->funcs[f];
    const struct csec *c = &p->csecs[fn->csec];
    size_t len = (size_t)(fn->end - fn->start);
    if (len > MAX_PROG_INSNS - p->ninsns)
        return fail(p->err, p->errlen, -E2BIG, "program is too large with function '%s' (over %u instructions)",
                    fn->name, MAX_PROG_INSNS);
    if (len > MAX_TOTAL_INSNS - p->total_insns)
        return fail(p->err, p->errlen, -E2BIG, "the object's programs exceed %u instructions in all", MAX_TOTAL_INSNS);
    if (p->ninsns + len > p->cap_insns) {
        size_t cap = p->cap_insns ? p->cap_insns : 64;
        while (cap < p->ninsns + len)
            cap *= 2;
        struct bpf_insn *n = realloc(p->insns, cap * INSN_SZ);
        if (!n)
            return fail(p->err, p->errlen, -ENOMEM, "out of memory for %zu instructions", cap);
        p->insns = n;
        p->cap_insns = cap;
    }
    memcpy(p->insns + p->ninsns, c->code + fn->start * INSN_SZ, len * INSN_SZ);
    p->func_pos[f] = p->ninsns;
    p->units[p->nunits++] = f;
    p->ninsns += len;
    p->total_insns += len;
    return 0;
}

static int add_reloc(struct parse *p, size_t insn, size_t map)
{
    if (p->nrelocs == p->cap_relocs) {
        size_t cap = p->cap_relocs ? p->cap_relocs * 2 : 16;
        struct cbpf_legacy_reloc *n = realloc(p->relocs, cap * sizeof(*n));
        if (!n)
            return fail(p->err, p->errlen, -ENOMEM, "out of memory");
        p->relocs = n;
        p->cap_relocs = cap;
    }
    p->relocs[p->nrelocs++] = (struct cbpf_legacy_reloc){(uint32_t)insn, (uint32_t)map};
    return 0;
}

/* An ld_imm64 with a relocation: only a map's record may be its target. */
static int reloc_ld(struct parse *p, const struct cbpf_legacy_spec *spec, const struct func *fn, const struct rel *r,
                    size_t out)
{
    const Elf64_Sym *s = &p->e.syms[r->sym];
    const char *sname = sym_name(p, r->sym);
    uint64_t at = r->insn - fn->start;
    if (r->type != R_BPF_64_64)
        return fail(p->err, p->errlen, -EINVAL, "function '%s', instruction %llu: ld_imm64 with relocation type %u",
                    fn->name, (unsigned long long)at, r->type);
    if (p->maps_idx && s->st_shndx == p->maps_idx) {
        struct bpf_insn *ins = &p->insns[out];
        uint64_t addend = (uint64_t)(uint32_t)ins[0].imm | (uint64_t)(uint32_t)ins[1].imm << 32;
        int64_t off = (int64_t)(s->st_value + addend);
        long m = map_at(spec, off);
        if (m < 0)
            return fail(p->err, p->errlen, -EINVAL,
                        "function '%s', instruction %llu: refers to byte %lld of the maps section ('%s'), not to the "
                        "start of a map",
                        fn->name, (unsigned long long)at, (long long)off, sname);
        ins[0].src_reg = BPF_PSEUDO_MAP_FD;
        ins[0].imm = 0;
        ins[1].imm = 0;
        return add_reloc(p, out, (size_t)m);
    }
    if (s->st_shndx == SHN_UNDEF)
        return fail(p->err, p->errlen, -EOPNOTSUPP,
                    "function '%s' refers to '%s', which the object does not define (externs are not supported)",
                    fn->name, sname);
    if (s->st_shndx < p->e.shnum && p->csec_of[s->st_shndx] != SIZE_MAX)
        return fail(p->err, p->errlen, -EOPNOTSUPP,
                    "function '%s' takes the address of function '%s' (callbacks are not supported by the legacy "
                    "loader)",
                    fn->name, sname);
    const char *sec = s->st_shndx < p->e.shnum ? sec_name(&p->e, s->st_shndx) : NULL;
    if (sec && (strncmp(sec, ".data", 5) == 0 || strncmp(sec, ".rodata", 7) == 0 || strncmp(sec, ".bss", 4) == 0))
        return fail(p->err, p->errlen, -EOPNOTSUPP,
                    "function '%s' uses global variable '%s' (section %s): global data is not supported in legacy "
                    "objects",
                    fn->name, sname, sec);
    return fail(p->err, p->errlen, -EINVAL,
                "function '%s', instruction %llu: relocation against '%s' (section %s), which is not a map in 'maps'",
                fn->name, (unsigned long long)at, sname, sec ? sec : "none");
}

/* A bpf-to-bpf call, instruction i of function fn, at out in the program: finds the callee (from the relocation r,
 * or pc-relative in the same section when there is none), appends its function if new, points the call at it. */
static int reloc_call(struct parse *p, const struct func *fn, const struct rel *r, uint64_t i, size_t out)
{
    size_t csec = fn->csec;
    int32_t imm = p->insns[out].imm;
    int64_t target;
    if (r) {
        const Elf64_Sym *s = &p->e.syms[r->sym];
        if (r->type != R_BPF_64_32)
            return fail(p->err, p->errlen, -EINVAL, "function '%s', instruction %llu: call with relocation type %u",
                        fn->name, (unsigned long long)i, r->type);
        if (s->st_shndx >= p->e.shnum || p->csec_of[s->st_shndx] == SIZE_MAX)
            return fail(p->err, p->errlen, s->st_shndx == SHN_UNDEF ? -EOPNOTSUPP : -EINVAL,
                        "function '%s' calls '%s', which is not a function of the object%s", fn->name,
                        sym_name(p, r->sym), s->st_shndx == SHN_UNDEF ? " (externs are not supported)" : "");
        if (s->st_value % INSN_SZ)
            return fail(p->err, p->errlen, -EINVAL, "function '%s' calls '%s' at a misaligned offset", fn->name,
                        sym_name(p, r->sym));
        csec = p->csec_of[s->st_shndx];
        /* REL: the addend is in imm, in instructions less one (a call's offset counts from the next one) */
        target = (int64_t)(s->st_value / INSN_SZ) + imm + 1;
    } else {
        target = (int64_t)(fn->start + i) + imm + 1;
    }
    const struct csec *c = &p->csecs[csec];
    if (target < 0 || (uint64_t)target >= c->ninsns)
        return fail(p->err, p->errlen, -EINVAL, "function '%s', instruction %llu: call target %lld is outside '%s'",
                    fn->name, (unsigned long long)i, (long long)target, c->name);
    size_t f = func_at(p, c, (uint64_t)target);
    if (f == SIZE_MAX)
        return fail(p->err, p->errlen, -EINVAL,
                    "function '%s', instruction %llu: call target %lld of '%s' is in no function", fn->name,
                    (unsigned long long)i, (long long)target, c->name);
    if (p->func_pos[f] == SIZE_MAX) {
        int ret = append_func(p, f);
        if (ret < 0)
            return ret;
    }
    int64_t dest = (int64_t)(p->func_pos[f] + ((uint64_t)target - p->funcs[f].start));
    p->insns[out].imm = (int32_t)(dest - (int64_t)(out + 1));
    return 0;
}

/* Builds the program of function f: its code, every function it calls (transitively), map relocations. */
static int build_prog(struct parse *p, const struct cbpf_legacy_spec *spec, size_t f)
{
    int ret;
    /* forget the previous program's functions (all of func_pos is SIZE_MAX at the first) */
    for (size_t u = 0; u < p->nunits; u++)
        p->func_pos[p->units[u]] = SIZE_MAX;
    p->nunits = 0;
    p->ninsns = 0;
    p->nrelocs = 0;
    if ((ret = append_func(p, f)) < 0)
        return ret;
    for (size_t u = 0; u < p->nunits; u++) {
        const struct func *fn = &p->funcs[p->units[u]];
        const struct csec *c = &p->csecs[fn->csec];
        size_t base = p->func_pos[p->units[u]];
        uint64_t len = fn->end - fn->start;
        for (uint64_t i = 0; i < len; i++) {
            size_t out = base + (size_t)i;
            const struct rel *r = find_rel(c, fn->start + i);
            uint8_t code = p->insns[out].code;
            uint8_t src = p->insns[out].src_reg;
            if (code == OP_LD_IMM64) {
                if (i + 1 >= len)
                    return fail(p->err, p->errlen, -EINVAL, "function '%s': its last instruction is half an ld_imm64",
                                fn->name);
                if (find_rel(c, fn->start + i + 1))
                    return fail(p->err, p->errlen, -EINVAL,
                                "function '%s', instruction %llu: relocation of the second half of an ld_imm64",
                                fn->name, (unsigned long long)(i + 1));
                if (r)
                    ret = reloc_ld(p, spec, fn, r, out);
                else if (src != 0)
                    ret = fail(p->err, p->errlen, -EINVAL,
                               "function '%s', instruction %llu: ld_imm64 with src_reg %u but no relocation", fn->name,
                               (unsigned long long)i, src);
                i++;
            } else if (code == OP_CALL && src == BPF_PSEUDO_CALL) {
                ret = reloc_call(p, fn, r, i, out);
            } else if (code == OP_CALL && src == BPF_PSEUDO_KFUNC_CALL) {
                ret = fail(p->err, p->errlen, -EOPNOTSUPP, "function '%s' calls a kernel function (kfuncs need BTF)",
                           fn->name);
            } else if (r) {
                ret = fail(p->err, p->errlen, -EINVAL,
                           "function '%s', instruction %llu: relocation (against '%s') of an instruction that is "
                           "neither an ld_imm64 nor a bpf-to-bpf call (opcode 0x%02x)",
                           fn->name, (unsigned long long)i, sym_name(p, r->sym), code);
            }
            if (ret < 0)
                return ret;
        }
    }
    return 0;
}

/* Sections of functions that programs call, not programs: ".text", and ".text.<fn>" of -ffunction-sections. */
static int is_text(const char *sec)
{
    return strcmp(sec, ".text") == 0 || strncmp(sec, ".text.", 6) == 0;
}

static int build_progs(struct parse *p, struct cbpf_legacy_spec *spec)
{
    size_t n = 0;
    for (size_t c = 0; c < p->ncsecs; c++) {
        if (!is_text(p->csecs[c].name))
            n += p->csecs[c].func_hi - p->csecs[c].func_lo;
    }
    if (n == 0)
        return fail(p->err, p->errlen, -EINVAL, "no programs: no executable section other than .text");
    spec->progs = calloc(n, sizeof(*spec->progs));
    p->func_pos = malloc(p->nfuncs * sizeof(*p->func_pos));
    p->units = malloc(p->nfuncs * sizeof(*p->units));
    if (!spec->progs || !p->func_pos || !p->units)
        return fail(p->err, p->errlen, -ENOMEM, "out of memory");
    for (size_t i = 0; i < p->nfuncs; i++)
        p->func_pos[i] = SIZE_MAX;
    p->nunits = 0;
    for (size_t c = 0; c < p->ncsecs; c++) {
        const struct csec *cs = &p->csecs[c];
        if (is_text(cs->name))
            continue;
        struct cbpf_legacy_prog_spec type = {0};
        if (!printable(cs->name, 0))
            return fail(p->err, p->errlen, -EINVAL, "program section '%s': its name is not printable ASCII", cs->name);
        int ret = classify(cs->name, &type, p->err, p->errlen);
        if (ret < 0)
            return ret;
        for (size_t f = cs->func_lo; f < cs->func_hi; f++) {
            struct cbpf_legacy_prog_spec *ps = &spec->progs[spec->nprogs];
            if (!printable(p->funcs[f].name, 0))
                return fail(p->err, p->errlen, -EINVAL, "program '%s' in section '%s': its name is not printable ASCII",
                            p->funcs[f].name, cs->name);
            *ps = type;
            ps->autoload = 1;
            ps->name = strdup(p->funcs[f].name);
            ps->section = strdup(cs->name);
            spec->nprogs++;
            if (!ps->name || !ps->section)
                return fail(p->err, p->errlen, -ENOMEM, "out of memory");
            if (type.attach_target)
                ps->attach_target = ps->section + (type.attach_target - cs->name);
            if ((ret = build_prog(p, spec, f)) < 0)
                return ret;
            /* the program owns the buffers: the next one starts afresh */
            ps->insns = p->insns;
            ps->insn_cnt = p->ninsns;
            ps->relocs = p->relocs;
            ps->nrelocs = p->nrelocs;
            ps->nsubprogs = p->nunits - 1;
            p->insns = NULL;
            p->relocs = NULL;
            p->cap_insns = p->cap_relocs = 0;
        }
    }
    char **names = malloc(spec->nprogs * sizeof(*names));
    if (!names)
        return fail(p->err, p->errlen, -ENOMEM, "out of memory");
    for (size_t i = 0; i < spec->nprogs; i++)
        names[i] = spec->progs[i].name;
    const char *dup = duplicate_name(names, spec->nprogs);
    int ret = dup ? fail(p->err, p->errlen, -EINVAL, "two programs are named '%s'", dup) : 0;
    free(names);
    return ret;
}

static void parse_free(struct parse *p)
{
    for (size_t c = 0; p->csecs && c < p->ncsecs; c++)
        free(p->csecs[c].rels);
    free(p->csecs);
    free(p->csec_of);
    free(p->funcs);
    free(p->func_pos);
    free(p->units);
    free(p->insns);
    free(p->relocs);
    free(p->e.sh);
    free(p->e.syms);
}

int cbpf_legacy_parse(const void *data, size_t size, struct cbpf_legacy_spec **out, char *err, size_t errlen)
{
    struct parse p;
    struct cbpf_legacy_spec *spec = NULL;
    int ret;

    memset(&p, 0, sizeof(p));
    if (err && errlen)
        err[0] = '\0';
    if (!out)
        return fail(err, errlen, -EINVAL, "no place for the result");
    *out = NULL;
    p.err = err;
    p.errlen = errlen;
    if ((ret = elf_header(&p.e, data, size, 1, err, errlen)) < 0)
        goto done;
    p.e.sh = malloc(p.e.shnum * sizeof(Elf64_Shdr));
    spec = calloc(1, sizeof(*spec));
    if (!p.e.sh || !spec) {
        ret = fail(err, errlen, -ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < p.e.shnum; i++)
        elf_shdr(&p.e, i, &p.e.sh[i]);
    if ((ret = elf_names(&p.e, &p.e.sh[p.e.eh.e_shstrndx], err, errlen)) < 0)
        goto done;
    if ((ret = scan_sections(&p)) < 0 || (ret = load_symtab(&p)) < 0 || (ret = read_license(&p, spec)) < 0 ||
        (ret = parse_maps(&p, spec)) < 0 || (ret = collect_funcs(&p)) < 0 || (ret = collect_rels(&p)) < 0 ||
        (ret = build_progs(&p, spec)) < 0)
        goto done;
    *out = spec;
    spec = NULL;
done:
    parse_free(&p);
    cbpf_legacy_spec_free(spec);
    return ret;
}

void cbpf_legacy_spec_free(struct cbpf_legacy_spec *spec)
{
    if (!spec)
        return;
    for (size_t i = 0; spec->maps && i < spec->nmaps; i++)
        free(spec->maps[i].name);
    for (size_t i = 0; spec->progs && i < spec->nprogs; i++) {
        free(spec->progs[i].name);
        free(spec->progs[i].section);
        free(spec->progs[i].insns);
        free(spec->progs[i].relocs);
    }
    free(spec->maps);
    free(spec->progs);
    free(spec->license);
    free(spec);
}

/* ---------------------------------------------------------------- loading */

/* The kernel takes object names of up to 15 characters among [A-Za-z0-9_.]. */
static void kernel_name(char dst[BPF_OBJ_NAME_LEN], const char *src)
{
    size_t i = 0;
    for (; src && src[i] && i < BPF_OBJ_NAME_LEN - 1; i++) {
        char c = src[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
        dst[i] = ok ? c : '_';
    }
    dst[i] = '\0';
}

/* LINUX_VERSION_CODE of the running kernel, from uname's release ("6.18.44-..."): what kprobe programs need. */
static uint32_t running_kernel_version(void)
{
    struct utsname u;
    unsigned a = 0, b = 0, c = 0;
    if (uname(&u) < 0 || sscanf(u.release, "%u.%u.%u", &a, &b, &c) < 2)
        return 0;
    if (a > 255)
        a = 255;
    if (b > 255)
        b = 255;
    if (c > 255)
        c = 255;
    return (a << 16) | (b << 8) | c;
}

static int read_small_file(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, len - 1);
    int e = errno;
    close(fd);
    if (n < 0)
        return -e;
    buf[n] = '\0';
    return 0;
}

/* The highest possible CPU number plus one: perf event arrays are indexed by CPU. */
static uint32_t possible_cpus(void)
{
    char buf[4096];
    unsigned long max = 0;
    int any = 0;
    if (read_small_file("/sys/devices/system/cpu/possible", buf, sizeof(buf)) == 0) {
        for (char *s = buf; *s;) {
            char *end;
            unsigned long v = strtoul(s, &end, 10);
            if (end == s)
                break;
            if (v > max || !any)
                max = v;
            any = 1;
            s = end;
            while (*s == '-' || *s == ',' || *s == '\n')
                s++;
        }
    }
    if (!any) {
        long n = sysconf(_SC_NPROCESSORS_CONF);
        return n > 0 ? (uint32_t)n : 1;
    }
    return max < UINT32_MAX ? (uint32_t)max + 1 : UINT32_MAX;
}

static int create_map(struct cbpf_legacy_obj *obj, size_t i, char *err, size_t errlen)
{
    struct cbpf_legacy_map *m = &obj->maps[i];
    char name[BPF_OBJ_NAME_LEN];
    LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = m->map_flags, .map_extra = m->map_extra);
    if (m->map_flags & BPF_F_NUMA_NODE)
        opts.numa_node = m->numa_node;
    if (m->has_inner) {
        if (m->inner_map_idx >= obj->nmaps || obj->maps[m->inner_map_idx].fd < 0)
            return fail(err, errlen, -EINVAL, "map '%s': its inner map %u was not created", m->name, m->inner_map_idx);
        opts.inner_map_fd = (uint32_t)obj->maps[m->inner_map_idx].fd;
    }
    if (m->type == BPF_MAP_TYPE_PERF_EVENT_ARRAY && m->max_entries == 0)
        m->max_entries = possible_cpus();
    kernel_name(name, m->name);
    int fd = bpf_map_create(m->type, name, m->key_size, m->value_size, m->max_entries, &opts);
    if (fd < 0) {
        int e = -fd;
        return fail(err, errlen, -e,
                    "map '%s' (type %u, key_size %u, value_size %u, max_entries %u, map_flags 0x%x): creation failed",
                    m->name, m->type, m->key_size, m->value_size, m->max_entries, m->map_flags);
    }
    m->fd = fd;
    return 0;
}

/* The verifier's most telling line: the last one, unless it is the "processed N insns" summary. */
static void log_tail(const char *log, char *line, size_t len)
{
    const char *end = log + strlen(log), *best = NULL, *best_end = NULL;
    while (end > log) {
        while (end > log && (end[-1] == '\n' || end[-1] == ' '))
            end--;
        const char *start = end;
        while (start > log && start[-1] != '\n')
            start--;
        if (end > start && strncmp(start, "processed ", 10) != 0 && strncmp(start, "verification time", 17) != 0 &&
            strncmp(start, "stack depth", 11) != 0) {
            best = start;
            best_end = end;
            break;
        }
        end = start;
    }
    if (!best) {
        line[0] = '\0';
        return;
    }
    snprintf(line, len, ": %.*s", (int)(best_end - best), best);
}

static int load_prog(const struct cbpf_legacy_spec *spec, struct cbpf_legacy_obj *obj, size_t i, char **log, char *err,
                     size_t errlen)
{
    const struct cbpf_legacy_prog_spec *ps = &spec->progs[i];
    struct cbpf_legacy_prog *pr = &obj->progs[i];
    char name[BPF_OBJ_NAME_LEN], tail[256];
    struct bpf_insn *insns = NULL;
    char *buf = NULL;
    int ret = 0, fd;

    if (!ps->insns || ps->insn_cnt == 0 || ps->insn_cnt > MAX_PROG_INSNS)
        return fail(err, errlen, -EINVAL, "program '%s' has %zu instructions", ps->name, ps->insn_cnt);
    insns = malloc(ps->insn_cnt * INSN_SZ);
    if (!insns)
        return fail(err, errlen, -ENOMEM, "out of memory");
    memcpy(insns, ps->insns, ps->insn_cnt * INSN_SZ);
    for (size_t r = 0; r < ps->nrelocs; r++) {
        const struct cbpf_legacy_reloc *rl = &ps->relocs[r];
        if ((size_t)rl->insn_idx + 1 >= ps->insn_cnt || insns[rl->insn_idx].code != OP_LD_IMM64 ||
            rl->map_idx >= obj->nmaps) {
            ret = fail(err, errlen, -EINVAL, "program '%s': relocation %zu is not a map reference", ps->name, r);
            goto done;
        }
        if (obj->maps[rl->map_idx].fd < 0) {
            ret = fail(err, errlen, -EINVAL, "program '%s' uses map '%s', which was not created (its autocreate is "
                       "False)", ps->name, obj->maps[rl->map_idx].name);
            goto done;
        }
        insns[rl->insn_idx].src_reg = BPF_PSEUDO_MAP_FD;
        insns[rl->insn_idx].imm = obj->maps[rl->map_idx].fd;
        insns[rl->insn_idx + 1].imm = 0;
    }
    kernel_name(name, ps->name);
    LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = ps->expected_attach_type,
                .kern_version = obj->kern_version);
    fd = bpf_prog_load(ps->prog_type, name, spec->license, insns, ps->insn_cnt, &opts);
    if (fd >= 0) {
        pr->fd = fd;
        goto done;
    }
    int e = -fd;
    /* refused: load again with a log, as large as the verifier needs */
    size_t size = LOG_START;
    for (;;) {
        char *n = realloc(buf, size);
        if (!n)
            break;
        buf = n;
        buf[0] = '\0';
        LIBBPF_OPTS(bpf_prog_load_opts, lopts, .expected_attach_type = ps->expected_attach_type,
                    .kern_version = obj->kern_version, .log_buf = buf, .log_size = (uint32_t)size, .log_level = 1);
        fd = bpf_prog_load(ps->prog_type, name, spec->license, insns, ps->insn_cnt, &lopts);
        if (fd >= 0) { /* passed this time: keep it */
            pr->fd = fd;
            goto done;
        }
        if (fd != -ENOSPC || size >= LOG_MAX) {
            if (fd != -ENOSPC)
                e = -fd;
            break;
        }
        size_t want = lopts.log_true_size > size ? lopts.log_true_size : size * 2;
        size = want < LOG_MAX ? want : LOG_MAX;
    }
    tail[0] = '\0';
    if (buf && buf[0]) {
        if (log)
            *log = strdup(buf);
        if (!log || !*log) /* a caller with the log shows its last lines itself */
            log_tail(buf, tail, sizeof(tail));
    }
    ret = fail(err, errlen, -e, "program '%s' (section %s) was refused by the kernel%s", ps->name, ps->section, tail);
done:
    free(buf);
    free(insns);
    return ret;
}

int cbpf_legacy_load(const struct cbpf_legacy_spec *spec, struct cbpf_legacy_obj **out, char **log, char *err,
                     size_t errlen)
{
    struct cbpf_legacy_obj *obj = NULL;
    int ret = 0;

    if (err && errlen)
        err[0] = '\0';
    if (log)
        *log = NULL;
    if (!out || !spec || !spec->license)
        return fail(err, errlen, -EINVAL, "no spec to load");
    *out = NULL;
    obj = calloc(1, sizeof(*obj));
    if (!obj)
        return fail(err, errlen, -ENOMEM, "out of memory");
    obj->maps = calloc(spec->nmaps ? spec->nmaps : 1, sizeof(*obj->maps));
    obj->progs = calloc(spec->nprogs ? spec->nprogs : 1, sizeof(*obj->progs));
    obj->license = strdup(spec->license);
    if (!obj->maps || !obj->progs || !obj->license) {
        free(obj->maps);
        free(obj->progs);
        free(obj->license);
        free(obj);
        return fail(err, errlen, -ENOMEM, "out of memory");
    }
    /* every fd -1 first, so that a failure anywhere can close what exists */
    for (size_t i = 0; i < spec->nmaps; i++)
        obj->maps[i].fd = -1;
    for (size_t i = 0; i < spec->nprogs; i++)
        obj->progs[i].fd = obj->progs[i].link_fd = obj->progs[i].perf_fd = -1;
    obj->nmaps = spec->nmaps;
    obj->nprogs = spec->nprogs;
    obj->kern_version = running_kernel_version();

    for (size_t i = 0; i < spec->nmaps; i++) {
        const struct cbpf_legacy_map_spec *ms = &spec->maps[i];
        struct cbpf_legacy_map *m = &obj->maps[i];
        m->name = strdup(ms->name ? ms->name : "");
        m->type = ms->type;
        m->key_size = ms->key_size;
        m->value_size = ms->value_size;
        m->max_entries = ms->max_entries;
        m->map_flags = ms->map_flags;
        m->inner_map_idx = ms->inner_map_idx;
        m->numa_node = ms->numa_node;
        m->has_inner = ms->has_inner;
        m->map_extra = ms->map_extra;
        if (!m->name) {
            ret = fail(err, errlen, -ENOMEM, "out of memory");
            goto fail;
        }
    }
    for (size_t i = 0; i < spec->nprogs; i++) {
        const struct cbpf_legacy_prog_spec *ps = &spec->progs[i];
        struct cbpf_legacy_prog *pr = &obj->progs[i];
        pr->name = strdup(ps->name ? ps->name : "");
        pr->section = strdup(ps->section ? ps->section : "");
        if (!pr->name || !pr->section) {
            ret = fail(err, errlen, -ENOMEM, "out of memory");
            goto fail;
        }
        pr->prog_type = ps->prog_type;
        pr->expected_attach_type = ps->expected_attach_type;
        pr->insn_cnt = ps->insn_cnt;
        pr->attach_kind = CBPF_LEGACY_ATTACH_NONE;
        if (ps->attach_kind != CBPF_LEGACY_ATTACH_NONE && ps->section && ps->attach_target &&
            ps->attach_target >= ps->section && ps->attach_target <= ps->section + strlen(ps->section)) {
            pr->attach_kind = ps->attach_kind;
            pr->attach_target = pr->section + (ps->attach_target - ps->section);
        }
    }
    /* map-in-map templates before the maps of maps that need them */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < obj->nmaps; i++) {
            if (obj->maps[i].has_inner != pass || spec->maps[i].no_create)
                continue;
            if (spec->maps[i].has_reuse) { /* Map.reuse(): the caller's map stands in for this one */
                obj->maps[i].fd = fcntl(spec->maps[i].reuse_fd, F_DUPFD_CLOEXEC, 0);
                if (obj->maps[i].fd < 0) {
                    ret = fail(err, errlen, -errno, "map '%s': duplicating the fd of the map it reuses",
                               obj->maps[i].name);
                    goto fail;
                }
                continue;
            }
            if ((ret = create_map(obj, i, err, errlen)) < 0)
                goto fail;
        }
    }
    for (size_t i = 0; i < obj->nprogs; i++) {
        if (!spec->progs[i].autoload)
            continue;
        if ((ret = load_prog(spec, obj, i, log, err, errlen)) < 0)
            goto fail;
    }
    *out = obj;
    return 0;
fail:
    cbpf_legacy_close(obj);
    return ret;
}

/* ---------------------------------------------------------------- attaching */

static long perf_event_open(struct perf_event_attr *attr, int pid, int cpu, int group, unsigned long flags)
{
    return syscall(__NR_perf_event_open, attr, pid, cpu, group, flags);
}

/* Runs prog_fd on the perf event pfd (a kprobe or tracepoint): a BPF link where the kernel has them (5.15+), else the
 * older ioctl. Takes ownership of pfd: on success it is in *perf_fd (with the link in *link_fd) or, without a link, in
 * *link_fd (closing it detaches). */
static int attach_perf(int prog_fd, int pfd, const char *what, int *link_fd, int *perf_fd, char *err, size_t errlen)
{
    int link = bpf_link_create(prog_fd, pfd, BPF_PERF_EVENT, NULL);
    if (link == -EINVAL || link == -EOPNOTSUPP) {
        if (ioctl(pfd, PERF_EVENT_IOC_SET_BPF, prog_fd) < 0) {
            int e = errno;
            close(pfd);
            return fail(err, errlen, -e, "%s: PERF_EVENT_IOC_SET_BPF failed", what);
        }
    } else if (link < 0) {
        int e = -link;
        close(pfd);
        return fail(err, errlen, -e, "%s: bpf_link_create failed", what);
    }
    if (ioctl(pfd, PERF_EVENT_IOC_ENABLE, 0) < 0) {
        int e = errno;
        if (link >= 0)
            close(link);
        close(pfd);
        return fail(err, errlen, -e, "%s: enabling its perf event failed", what);
    }
    if (link >= 0) {
        *link_fd = link;
        *perf_fd = pfd;
    } else {
        *link_fd = pfd;
        *perf_fd = -1;
    }
    return 0;
}

#define KPROBE_PMU "/sys/bus/event_source/devices/kprobe"

static int attach_kprobe(int prog_fd, const char *func, uint64_t offset, int retprobe, int *link_fd, int *perf_fd,
                         char *err, size_t errlen)
{
    char buf[64], what[160];
    const char *kind = retprobe ? "kretprobe" : "kprobe";
    snprintf(what, sizeof(what), "%s %s", kind, func);
    if (access("/sys/bus/event_source/devices", F_OK) < 0)
        return fail(err, errlen, -ENOENT, "%s: no /sys/bus/event_source/devices: is sysfs mounted?", what);
    int ret = read_small_file(KPROBE_PMU "/type", buf, sizeof(buf));
    if (ret == -ENOENT)
        return fail(err, errlen, -EOPNOTSUPP,
                    "cannot attach a %s to %s: this kernel has no kprobes (built without CONFIG_KPROBES)", kind, func);
    if (ret < 0)
        return fail(err, errlen, ret, "reading " KPROBE_PMU "/type failed");
    char *end;
    unsigned long type = strtoul(buf, &end, 10);
    if (end == buf || type > UINT32_MAX)
        return fail(err, errlen, -EINVAL, KPROBE_PMU "/type holds '%s', not a number", buf);
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.size = sizeof(attr);
    attr.type = (uint32_t)type;
    if (retprobe) {
        /* "config:0": which bit of config asks for a return probe */
        ret = read_small_file(KPROBE_PMU "/format/retprobe", buf, sizeof(buf));
        unsigned long bit = 64;
        if (ret == 0 && strncmp(buf, "config:", 7) == 0)
            bit = strtoul(buf + 7, NULL, 10);
        if (bit >= 64)
            return fail(err, errlen, -EOPNOTSUPP, "the kprobe PMU does not say how to ask for a kretprobe (%s)",
                        KPROBE_PMU "/format/retprobe");
        attr.config = 1ULL << bit;
    }
    attr.config1 = (uint64_t)(uintptr_t)func; /* kprobe_func */
    attr.config2 = offset;                    /* probe_offset */
    attr.sample_period = 1;
    attr.wakeup_events = 1;
    attr.disabled = 1;
    int pfd = (int)perf_event_open(&attr, -1, 0, -1, PERF_FLAG_FD_CLOEXEC);
    if (pfd < 0) {
        int e = errno;
        if (e == ENOENT || e == EINVAL)
            return fail(err, errlen, -ENOENT, "no kernel function '%s' that a %s can probe (see /proc/kallsyms)", func,
                        kind);
        return fail(err, errlen, -e, "%s: perf_event_open failed", what);
    }
    return attach_perf(prog_fd, pfd, what, link_fd, perf_fd, err, errlen);
}

static int attach_tracepoint(int prog_fd, const char *target, int *link_fd, int *perf_fd, char *err, size_t errlen)
{
    static const char *const roots[] = {"/sys/kernel/tracing", "/sys/kernel/debug/tracing"};
    char path[512], buf[64], what[300];
    const char *root = NULL;
    const char *slash = strchr(target, '/');
    if (!slash || !tp_part_ok(target, (size_t)(slash - target)) || !tp_part_ok(slash + 1, strlen(slash + 1)))
        return fail(err, errlen, -EINVAL, "'%s' is not a tracepoint: '<category>/<name>' (letters, digits, _ - .)",
                    target);
    snprintf(what, sizeof(what), "tracepoint %s", target);
    for (size_t i = 0; i < 2 && !root; i++) {
        snprintf(path, sizeof(path), "%s/events", roots[i]);
        if (access(path, F_OK) == 0)
            root = roots[i];
    }
    if (!root)
        return fail(err, errlen, -ENOENT,
                    "tracefs is not mounted (mount -t tracefs tracefs /sys/kernel/tracing): cannot attach to %s", what);
    if ((size_t)snprintf(path, sizeof(path), "%s/events/%s/id", root, target) >= sizeof(path))
        return fail(err, errlen, -ENAMETOOLONG, "tracepoint name '%s' is too long", target);
    int ret = read_small_file(path, buf, sizeof(buf));
    if (ret == -ENOENT)
        return fail(err, errlen, -ENOENT, "no tracepoint '%s' (no %s)", target, path);
    if (ret < 0)
        return fail(err, errlen, ret, "reading %s failed", path);
    char *end;
    unsigned long long id = strtoull(buf, &end, 10);
    if (end == buf)
        return fail(err, errlen, -EINVAL, "%s holds '%s', not a number", path, buf);
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.size = sizeof(attr);
    attr.type = PERF_TYPE_TRACEPOINT;
    attr.config = id;
    attr.sample_period = 1;
    attr.wakeup_events = 1;
    attr.disabled = 1;
    int pfd = (int)perf_event_open(&attr, -1, 0, -1, PERF_FLAG_FD_CLOEXEC);
    if (pfd < 0) {
        int e = errno;
        return fail(err, errlen, -e, "%s: perf_event_open failed", what);
    }
    return attach_perf(prog_fd, pfd, what, link_fd, perf_fd, err, errlen);
}

int cbpf_legacy_attach_fd(int prog_fd, enum cbpf_legacy_attach_kind kind, const char *target, uint64_t offset,
                          int *link_fd, int *perf_fd, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!link_fd || !perf_fd || !target)
        return fail(err, errlen, -EINVAL, "no target or no place for the result");
    *link_fd = *perf_fd = -1;
    if (prog_fd < 0)
        return fail(err, errlen, -EBADF, "the program is not loaded");
    switch (kind) {
    case CBPF_LEGACY_ATTACH_KPROBE:
    case CBPF_LEGACY_ATTACH_KRETPROBE:
        return attach_kprobe(prog_fd, target, offset, kind == CBPF_LEGACY_ATTACH_KRETPROBE, link_fd, perf_fd, err,
                             errlen);
    case CBPF_LEGACY_ATTACH_TRACEPOINT: return attach_tracepoint(prog_fd, target, link_fd, perf_fd, err, errlen);
    case CBPF_LEGACY_ATTACH_RAW_TP: {
        int fd = bpf_raw_tracepoint_open(target, prog_fd);
        if (fd < 0) {
            int e = -fd;
            if (e == ENOENT)
                return fail(err, errlen, -ENOENT, "no raw tracepoint '%s'", target);
            return fail(err, errlen, -e, "raw tracepoint %s: open failed", target);
        }
        *link_fd = fd;
        return 0;
    }
    default: return fail(err, errlen, -EOPNOTSUPP, "no attach point to attach to");
    }
}

int cbpf_legacy_attach(struct cbpf_legacy_obj *obj, size_t prog_index, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!obj || prog_index >= obj->nprogs)
        return fail(err, errlen, -EINVAL, "no program %zu (the object has %zu)", prog_index, obj ? obj->nprogs : 0);
    struct cbpf_legacy_prog *pr = &obj->progs[prog_index];
    if (pr->fd < 0)
        return fail(err, errlen, -EBADF, "program '%s' is not loaded", pr->name);
    if (pr->link_fd >= 0)
        return fail(err, errlen, -EBUSY, "program '%s' is already attached", pr->name);
    if (pr->attach_kind == CBPF_LEGACY_ATTACH_NONE || !pr->attach_target)
        return fail(err, errlen, -EOPNOTSUPP,
                    "program '%s' (section %s) cannot be attached without a target: attach its fd (socket, xdp, tc, "
                    "cgroup, perf_event, ...)",
                    pr->name, pr->section);
    return cbpf_legacy_attach_fd(pr->fd, pr->attach_kind, pr->attach_target, 0, &pr->link_fd, &pr->perf_fd, err,
                                 errlen);
}

void cbpf_legacy_detach(struct cbpf_legacy_obj *obj, size_t prog_index)
{
    if (!obj || prog_index >= obj->nprogs)
        return;
    struct cbpf_legacy_prog *pr = &obj->progs[prog_index];
    if (pr->link_fd >= 0)
        close(pr->link_fd);
    if (pr->perf_fd >= 0)
        close(pr->perf_fd);
    pr->link_fd = pr->perf_fd = -1;
}

void cbpf_legacy_close(struct cbpf_legacy_obj *obj)
{
    if (!obj)
        return;
    for (size_t i = 0; obj->progs && i < obj->nprogs; i++) {
        cbpf_legacy_detach(obj, i);
        if (obj->progs[i].fd >= 0)
            close(obj->progs[i].fd);
        free(obj->progs[i].name);
        free(obj->progs[i].section);
    }
    for (size_t i = 0; obj->maps && i < obj->nmaps; i++) {
        if (obj->maps[i].fd >= 0)
            close(obj->maps[i].fd);
        free(obj->maps[i].name);
    }
    free(obj->maps);
    free(obj->progs);
    free(obj->license);
    free(obj);
}

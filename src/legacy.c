/* cbpf: the parser of legacy BPF ELF objects (every dialect of legacy.h): bytes in, a spec out, no system call.
 *
 * The ELF is read with glibc's <elf.h> types only, never through a pointer into the input: every header, symbol,
 * relocation and instruction is memcpy'd out after its bounds are checked, so the input needs no alignment and a
 * corrupt offset can only produce an error. BTF (.BTF, .BTF.ext) and debug sections are ignored, with their
 * relocations: programs are loaded without BTF. The .BTF section is read (by libbpf's BTF parser, which copies and
 * checks it) only for what the ELF cannot say: the fields of BTF-defined maps in ".maps", and which struct a "maps"
 * record is.
 */
#include "legacy.h"
#include "legacy_internal.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/btf.h>
#include <bpf/libbpf.h>

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
#define MAP_DEF_MIN 20u            /* type, key_size, value_size, max_entries, map_flags */
#define MAP_DEF_KNOWN 28u          /* ... inner_map_idx, numa_node */
#define MAX_PROG_INSNS 1000000u    /* the kernel's BPF_COMPLEXITY_LIMIT_INSNS */
#define MAX_TOTAL_INSNS (1u << 22) /* all programs with their appended functions: 32 MiB */
#define ELF_MAP_SIZE 36u           /* iproute2's struct bpf_elf_map: 9 4-byte fields */
#define GOBPF_NS_SIZE 256u         /* gobpf's namespace[BUF_SIZE_MAP_NS] */
#define GOBPF_MAP_SIZE (24u + GOBPF_NS_SIZE)

#define fail cbpf_legacy_fail

/* Names come from the input: a message is kept one line of ASCII. */
static void one_line(char *s)
{
    for (char *c = s; *c; c++) {
        if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
            *c = '?';
    }
}

int cbpf_legacy_fail(char *err, size_t errlen, int ret, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
        one_line(err);
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

/* The section name table, the one e_shstrndx names (elf_header checked that index). */
static int elf_names(struct elf *e, char *err, size_t errlen)
{
    const unsigned char *p;
    size_t len;
    Elf64_Shdr strsh;
    elf_shdr(e, e->eh.e_shstrndx, &strsh);
    if (strsh.sh_type != SHT_STRTAB || sec_bytes(e, &strsh, &p, &len) < 0)
        return fail(err, errlen, -EINVAL, "section name table (section %u) is not a string table inside the file",
                    e->eh.e_shstrndx);
    e->shstr = (const char *)p;
    e->shstr_size = len;
    return 0;
}

/* The lenient opening the checks below share: the header and the section names, no error text. */
static int elf_open_names(struct elf *e, const void *data, size_t size)
{
    return elf_header(e, data, size, 0, NULL, 0) < 0 ? -1 : elf_names(e, NULL, 0);
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
                            "instruction",
                            (unsigned long long)sym.st_value, (size_t)sym.st_shndx);
        }
        return 0;
    }
    return 0;
}

/* Sections of functions that programs call, not programs: ".text", and ".text.<fn>" of -ffunction-sections. */
static int is_text(const char *sec)
{
    return strcmp(sec, ".text") == 0 || strncmp(sec, ".text.", 6) == 0;
}

static int is_code(const Elf64_Shdr *sh)
{
    return sh->sh_type == SHT_PROGBITS && (sh->sh_flags & SHF_EXECINSTR) && sh->sh_size > 0;
}

/* Sections only libbpf's loader gives a meaning to: global data, externs, BTF-defined maps, struct_ops. */
static int is_libbpf_only(const char *sec)
{
    return strcmp(sec, ".maps") == 0 || strncmp(sec, ".data", 5) == 0 || strncmp(sec, ".rodata", 7) == 0 ||
           strncmp(sec, ".bss", 4) == 0 || strcmp(sec, ".kconfig") == 0 || strcmp(sec, ".ksyms") == 0 ||
           strncmp(sec, ".struct_ops", 11) == 0 || strncmp(sec, ".addr_space", 11) == 0;
}

/* 1 when a .BTF.ext section holds CO-RE relocations (which only libbpf applies). */
static int has_core_relocs(const struct elf *e, const Elf64_Shdr *sh)
{
    struct {
        uint16_t magic;
        uint8_t version, flags;
        uint32_t hdr_len, func_info_off, func_info_len, line_info_off, line_info_len, core_relo_off, core_relo_len;
    } h;
    if (sh->sh_type == SHT_NOBITS || !in_file(e, sh->sh_offset, sh->sh_size) || sh->sh_size < sizeof(h))
        return 0;
    memcpy(&h, e->data + sh->sh_offset, sizeof(h));
    return h.magic == 0xeB9F && h.hdr_len >= sizeof(h) && h.core_relo_len > 0;
}

static int typed_by_legacy(const char *sec);

/* The legacy marks of an object that has no map section (see cbpf_legacy_is_legacy). */
static int legacy_marks(const struct elf *e)
{
    Elf64_Shdr sh, symsh = {0};
    int marks = 0, version = 0, untyped = 0;
    size_t symtab = 0;
    for (size_t i = 1; i < e->shnum; i++) {
        elf_shdr(e, i, &sh);
        const char *name = tab_str(e->shstr, e->shstr_size, sh.sh_name);
        if (!name)
            continue;
        if (is_libbpf_only(name) || (strcmp(name, ".BTF.ext") == 0 && has_core_relocs(e, &sh)))
            return 0;
        if (strcmp(name, "version") == 0)
            version = 1;
        if (sh.sh_type == SHT_SYMTAB) {
            symtab = i;
            symsh = sh;
        }
    }
    if (!symtab || symsh.sh_entsize != sizeof(Elf64_Sym) || !in_file(e, symsh.sh_offset, symsh.sh_size))
        return 0;
    unsigned char *has_func = calloc(e->shnum, 1);
    if (!has_func)
        return 0; /* never fails: libbpf gets the object and says what it makes of it */
    for (uint64_t off = sizeof(Elf64_Sym); off + sizeof(Elf64_Sym) <= symsh.sh_size; off += sizeof(Elf64_Sym)) {
        Elf64_Sym sym;
        memcpy(&sym, e->data + symsh.sh_offset + off, sizeof(sym));
        if (sym.st_shndx == SHN_UNDEF && sym.st_name != 0 && ELF64_ST_BIND(sym.st_info) != STB_LOCAL) {
            free(has_func);
            return 0; /* an extern: libbpf's */
        }
        if (sym.st_shndx < e->shnum && ELF64_ST_TYPE(sym.st_info) == STT_FUNC)
            has_func[sym.st_shndx] = 1;
    }
    for (size_t i = 1; i < e->shnum; i++) {
        elf_shdr(e, i, &sh);
        const char *name = tab_str(e->shstr, e->shstr_size, sh.sh_name);
        if (!name || !is_code(&sh) || is_text(name))
            continue;
        enum bpf_prog_type type;
        enum bpf_attach_type attach;
        /* a name libbpf 1.x gives no program type; or old LLVM's NOTYPE program symbol, where libbpf sees none */
        if (!has_func[i] || libbpf_prog_type_by_name(name, &type, &attach) < 0)
            marks = 1;
        untyped |= !typed_by_legacy(name);
    }
    free(has_func);
    /* a "version" section alone (libbpf ignores it) is a mark only when this loader types every section: an fentry/
     * or tp_btf/ program with one is libbpf's */
    return marks || (version && !untyped);
}

int cbpf_legacy_is_legacy(const void *data, size_t size)
{
    struct elf e;
    Elf64_Shdr sh;
    if (elf_open_names(&e, data, size) < 0)
        return 0;
    for (size_t i = 1; i < e.shnum; i++) {
        elf_shdr(&e, i, &sh);
        const char *name = tab_str(e.shstr, e.shstr_size, sh.sh_name);
        if (name && (strcmp(name, "maps") == 0 || strncmp(name, "maps/", 5) == 0))
            return 1;
    }
    return legacy_marks(&e);
}

void cbpf_elf_license(const void *data, size_t size, char *out, size_t outlen)
{
    struct elf e;
    Elf64_Shdr sh;
    if (!out || !outlen)
        return;
    out[0] = '\0';
    if (elf_open_names(&e, data, size) < 0)
        return;
    for (size_t i = 1; i < e.shnum; i++) {
        const unsigned char *b;
        size_t len;
        elf_shdr(&e, i, &sh);
        const char *name = tab_str(e.shstr, e.shstr_size, sh.sh_name);
        if (!name || strcmp(name, "license") != 0 || sec_bytes(&e, &sh, &b, &len) < 0)
            continue;
        const unsigned char *nul = memchr(b, '\0', len);
        size_t n = nul ? (size_t)(nul - b) : len;
        n = n < outlen - 1 ? n : outlen - 1;
        memcpy(out, b, n);
        out[n] = '\0';
        one_line(out);
        return;
    }
}

size_t cbpf_elf_unused_code_sections(const void *data, size_t size, const char *const *prog_sections, size_t n,
                                     char *out, size_t outlen)
{
    struct elf e;
    Elf64_Shdr sh;
    size_t unused = 0, len = 0;
    if (out && outlen)
        out[0] = '\0';
    if (elf_open_names(&e, data, size) < 0)
        return 0;
    for (size_t i = 1; i < e.shnum; i++) {
        elf_shdr(&e, i, &sh);
        const char *name = tab_str(e.shstr, e.shstr_size, sh.sh_name);
        if (!name || !is_code(&sh) || is_text(name))
            continue;
        size_t k = 0;
        while (k < n && (!prog_sections[k] || strcmp(prog_sections[k], name) != 0))
            k++;
        if (k < n)
            continue;
        unused++;
        if (out && len < outlen) {
            int w = snprintf(out + len, outlen - len, "%s'%s'", unused > 1 ? ", " : "", name);
            len = w < 0 ? outlen : len + (size_t)w;
        }
    }
    if (out && outlen)
        one_line(out); /* names come from the input */
    return unused;
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
    {"sched_cls", M_PREFIX, BPF_PROG_TYPE_SCHED_CLS, 0, CBPF_LEGACY_ATTACH_NONE}, /* gobpf's */
    {"sched_act", M_PREFIX, BPF_PROG_TYPE_SCHED_ACT, 0, CBPF_LEGACY_ATTACH_NONE},
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

/* A tracepoint's "<category>/<name>" becomes a tracefs path, a pin's name a bpffs one: plain names only, no "..",
 * no "/". */
int cbpf_legacy_tracepoint_ok(const char *target)
{
    const char *slash = strchr(target, '/');
    return slash && cbpf_legacy_name_ok(target, (size_t)(slash - target)) &&
           cbpf_legacy_name_ok(slash + 1, strlen(slash + 1));
}

int cbpf_legacy_name_ok(const char *s, size_t n)
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
            if (!cbpf_legacy_tracepoint_ok(arg))
                return fail(err, errlen, -EINVAL,
                            "section '%s': a tracepoint section is '%s<category>/<name>' (letters, digits, _ - .)", sec,
                            d->prefix);
        }
        p->attach_target = arg;
        return 0;
    }
    /* a section naming no program type (tc's "classifier"-less objects, an IDS's "filter"): the application sets
     * the type before load, as old loaders let it */
    p->prog_type = BPF_PROG_TYPE_UNSPEC;
    p->expected_attach_type = 0;
    p->attach_kind = CBPF_LEGACY_ATTACH_NONE;
    p->attach_target = NULL;
    return 0;
}

/* 1 when the legacy loader gives section sec a program type (else it loads as BPF_PROG_TYPE_UNSPEC). */
static int typed_by_legacy(const char *sec)
{
    struct cbpf_legacy_prog_spec p;
    return classify(sec, &p, NULL, 0) == 0 && p.prog_type != BPF_PROG_TYPE_UNSPEC;
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
    size_t maps_idx, license_idx, version_idx, dotmaps_idx, btf_idx; /* 0: none */
    size_t ngobpf;                                                   /* "maps/<name>" sections */
    struct btf *btf;                                                 /* .BTF, parsed when needed */
    int btf_tried;
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
            special = &p->dotmaps_idx;
        else if (strcmp(name, ".BTF") == 0)
            special = &p->btf_idx;
        else if (strcmp(name, ".BTF.ext") == 0 && has_core_relocs(e, sh))
            return fail(p->err, p->errlen, -EOPNOTSUPP,
                        "the object has CO-RE relocations (.BTF.ext), which the legacy loader does not apply: keep "
                        "legacy map definitions out of CO-RE objects (use BTF-defined maps in .maps)");
        if (strncmp(name, "maps/", 5) == 0) {
            if (sh->sh_type != SHT_PROGBITS || (sh->sh_flags & SHF_EXECINSTR))
                return fail(p->err, p->errlen, -EINVAL, "section '%s' (a gobpf map) is not a data section", name);
            p->ngobpf++;
        }
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

/* The license, "" without a license section: the old loaders passed an empty one (the kernel then refuses only
 * GPL-only helpers). */
static int read_license(struct parse *p, struct cbpf_legacy_spec *spec)
{
    const unsigned char *b = (const unsigned char *)"";
    size_t len;
    if (p->license_idx) {
        if (sec_bytes(&p->e, &p->e.sh[p->license_idx], &b, &len) < 0)
            return fail(p->err, p->errlen, -EINVAL, "license section is not inside the file");
        if (!memchr(b, '\0', len))
            return fail(p->err, p->errlen, -EINVAL, "license section (%zu bytes) is not a NUL-terminated string", len);
        if (!printable((const char *)b, 1))
            return fail(p->err, p->errlen, -EINVAL, "license '%s' is not printable ASCII", (const char *)b);
        spec->has_license = 1;
    }
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

/* ---- SHA-1, for tc's PIN_OBJECT_NS directory (/sys/fs/bpf/tc/<the object's SHA-1>/), as FIPS 180-4 defines it */

static uint32_t rol32(uint32_t x, unsigned n)
{
    return (x << n) | (x >> (32 - n));
}

static void sha1_block(uint32_t h[5], const unsigned char *b)
{
    uint32_t w[80];
    for (int t = 0; t < 16; t++)
        w[t] = (uint32_t)b[4 * t] << 24 | (uint32_t)b[4 * t + 1] << 16 | (uint32_t)b[4 * t + 2] << 8 | b[4 * t + 3];
    for (int t = 16; t < 80; t++)
        w[t] = rol32(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
    uint32_t a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4];
    for (int t = 0; t < 80; t++) {
        uint32_t f, k;
        if (t < 20) {
            f = (bb & c) | (~bb & d);
            k = 0x5a827999;
        } else if (t < 40) {
            f = bb ^ c ^ d;
            k = 0x6ed9eba1;
        } else if (t < 60) {
            f = (bb & c) | (bb & d) | (c & d);
            k = 0x8f1bbcdc;
        } else {
            f = bb ^ c ^ d;
            k = 0xca62c1d6;
        }
        uint32_t tmp = rol32(a, 5) + f + e + k + w[t];
        e = d;
        d = c;
        c = rol32(bb, 30);
        bb = a;
        a = tmp;
    }
    h[0] += a;
    h[1] += bb;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

static void sha1_hex(const unsigned char *data, size_t len, char out[41])
{
    uint32_t h[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
    unsigned char tail[128] = {0};
    size_t full = len / 64 * 64, rest = len - full;
    for (size_t i = 0; i < full; i += 64)
        sha1_block(h, data + i);
    memcpy(tail, data + full, rest);
    tail[rest] = 0x80;
    size_t tlen = rest < 56 ? 64 : 128;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++)
        tail[tlen - 1 - i] = (unsigned char)(bits >> (8 * i));
    for (size_t i = 0; i < tlen; i += 64)
        sha1_block(h, tail + i);
    for (int i = 0; i < 5; i++)
        snprintf(out + 8 * i, 9, "%08x", h[i]);
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

static int is_map_symbol(const Elf64_Sym *s, size_t shndx)
{
    int t = ELF64_ST_TYPE(s->st_info);
    return s->st_shndx == shndx && (t == STT_OBJECT || t == STT_NOTYPE);
}

/* A BTF header whose lengths keep the type section 4-byte aligned: libbpf 1.7 checks the offsets that follow the
 * header but not the header's own length, and reads the types through pointers that it would misalign. */
static int btf_aligned(const unsigned char *b, size_t len)
{
    struct {
        uint16_t magic;
        uint8_t version, flags;
        uint32_t hdr_len, type_off, type_len, str_off, str_len;
    } h;
    if (len < sizeof(h))
        return 0;
    memcpy(&h, b, sizeof(h));
    return h.magic == 0xeB9F && h.hdr_len >= sizeof(h) && h.hdr_len % 4 == 0 && h.type_off % 4 == 0;
}

/* The object's BTF, parsed (and checked) by libbpf on first use; NULL when it has none or it is malformed. */
static struct btf *object_btf(struct parse *p)
{
    const unsigned char *b;
    size_t len;
    if (!p->btf_tried && p->btf_idx && sec_bytes(&p->e, &p->e.sh[p->btf_idx], &b, &len) == 0 && len <= UINT32_MAX &&
        btf_aligned(b, len)) {
        p->btf = btf__new(b, (uint32_t)len);
        if (!p->btf || libbpf_get_error(p->btf))
            p->btf = NULL;
    }
    p->btf_tried = 1;
    return p->btf;
}

/* The struct that the BTF variable name is (typedefs and qualifiers skipped), or NULL. */
static const struct btf_type *var_struct(const struct btf *btf, const char *name)
{
    int id = btf__find_by_name_kind(btf, name, BTF_KIND_VAR);
    const struct btf_type *t = id > 0 ? btf__type_by_id(btf, (uint32_t)id) : NULL;
    int sid = t ? btf__resolve_type(btf, t->type) : -1;
    t = sid > 0 ? btf__type_by_id(btf, (uint32_t)sid) : NULL;
    return t && btf_is_struct(t) ? t : NULL;
}

/* A new map in spec->maps (allocated for all of them by parse_maps), in *out. */
static int add_map(struct parse *p, struct cbpf_legacy_spec *spec, const char *name, size_t shndx, uint64_t off,
                   uint64_t size, int format, struct cbpf_legacy_map_spec **out)
{
    struct cbpf_legacy_map_spec *m = &spec->maps[spec->nmaps];
    if (!name || !*name || !printable(name, 0))
        return fail(p->err, p->errlen, -EINVAL, "map at offset %llu of section '%s' has no printable name",
                    (unsigned long long)off, sec_name(&p->e, shndx));
    m->name = strdup(name);
    if (!m->name)
        return fail(p->err, p->errlen, -ENOMEM, "out of memory");
    spec->nmaps++;
    m->def_shndx = (uint32_t)shndx;
    m->def_offset = (uint32_t)off;
    m->def_size = (uint32_t)size;
    m->format = format;
    m->insert_into = -1;
    *out = m;
    return 0;
}

/* The first five fields every dialect's map record starts with: { type, key_size, value_size, max_entries,
 * map_flags }. */
static void def_from_words(struct cbpf_map_def *def, const uint32_t w[5])
{
    def->type = w[0];
    def->key_size = w[1];
    def->value_size = w[2];
    def->max_entries = w[3];
    def->map_flags = w[4];
}

/* The map symbols of the "maps" section into *out (n of them, malloc'd), each with its record's size: its symbol's,
 * or, from an old toolchain without symbol sizes, an equal share of the section (as iproute2 reads them). */
static int map_symbols(struct parse *p, size_t len, struct mapsym **out, size_t *count)
{
    struct elf *e = &p->e;
    size_t n = 0, k = 0, unsized = 0;
    for (size_t i = 1; i < e->nsyms; i++)
        n += is_map_symbol(&e->syms[i], p->maps_idx);
    *out = NULL;
    *count = n;
    if (n == 0)
        return len ? fail(p->err, p->errlen, -EINVAL, "maps section holds %zu bytes but no map symbol", len) : 0;
    struct mapsym *ms = calloc(n, sizeof(*ms));
    if (!ms)
        return fail(p->err, p->errlen, -ENOMEM, "out of memory for %zu maps", n);
    *out = ms;
    for (size_t i = 1; i < e->nsyms; i++) {
        const Elf64_Sym *s = &e->syms[i];
        if (!is_map_symbol(s, p->maps_idx))
            continue;
        ms[k++] = (struct mapsym){s->st_value, s->st_size, i};
        unsized += s->st_size == 0;
    }
    for (size_t i = 0; unsized && unsized != n && i < n; i++) {
        if (ms[i].size == 0)
            return fail(p->err, p->errlen, -EINVAL,
                        "map '%s' is 0 bytes (its symbol's size): a struct bpf_map_def has at least 5 4-byte fields",
                        sym_name(p, ms[i].sym));
    }
    if (unsized) {
        if (len % n != 0)
            return fail(p->err, p->errlen, -EINVAL,
                        "map symbols have no size and the maps section (%zu bytes) is not a whole number of %zu "
                        "records",
                        len, n);
        for (size_t i = 0; i < n; i++)
            ms[i].size = len / n;
    }
    return 0;
}

/* The records, sorted by offset, must tile the section exactly, each a whole number of 4-byte fields, five at
 * least. *elf_sized: how many are 36 bytes (iproute2's size). */
static int check_map_records(struct parse *p, struct mapsym *ms, size_t n, size_t len, size_t *elf_sized)
{
    uint64_t end = 0;
    sort(ms, n, sizeof(*ms), cmp_mapsym);
    *elf_sized = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = sym_name(p, ms[i].sym);
        if (ms[i].off > len || ms[i].size > len - ms[i].off)
            return fail(p->err, p->errlen, -EINVAL,
                        "map '%s': its record (%llu bytes at offset %llu) lies outside the maps section (%zu bytes)",
                        name, (unsigned long long)ms[i].size, (unsigned long long)ms[i].off, len);
        if (ms[i].off < end)
            return fail(p->err, p->errlen, -EINVAL, "maps '%s' and '%s' overlap in the maps section",
                        sym_name(p, ms[i - 1].sym), name);
        if (ms[i].off > end)
            return fail(p->err, p->errlen, -EINVAL,
                        "maps section: bytes %llu to %llu belong to no map symbol (not a whole number of records)",
                        (unsigned long long)end, (unsigned long long)ms[i].off);
        if (ms[i].size < MAP_DEF_MIN || ms[i].size % 4 != 0)
            return fail(p->err, p->errlen, -EINVAL,
                        "map '%s': a %llu-byte record is not a struct bpf_map_def (5 or more 4-byte fields)", name,
                        (unsigned long long)ms[i].size);
        *elf_sized += ms[i].size == ELF_MAP_SIZE;
        end = ms[i].off + ms[i].size;
    }
    if (end != len)
        return fail(p->err, p->errlen, -EINVAL,
                    "maps section is %zu bytes but its map records end at %llu (not a whole number of records)", len,
                    (unsigned long long)end);
    return 0;
}

/* Which struct the records are: the BTF says it when there is one (-g); else 36-byte records are iproute2's 9
 * fields. */
static int map_record_format(struct parse *p, const struct mapsym *ms, size_t n, size_t elf_sized, int *format)
{
    const struct btf *btf = object_btf(p);
    const struct btf_type *st = btf ? var_struct(btf, sym_name(p, ms[0].sym)) : NULL;
    const char *sname = st ? btf__name_by_offset(btf, st->name_off) : NULL;
    *format = elf_sized == n ? CBPF_LEGACY_MAP_ELF : CBPF_LEGACY_MAP_DEF;
    if (sname && *sname)
        *format = strcmp(sname, "bpf_elf_map") == 0 ? CBPF_LEGACY_MAP_ELF : CBPF_LEGACY_MAP_DEF;
    if (*format == CBPF_LEGACY_MAP_ELF && elf_sized && elf_sized != n)
        return fail(p->err, p->errlen, -EINVAL,
                    "maps section: records of different sizes (iproute2's struct bpf_elf_map is 36 bytes for all)");
    return 0;
}

/* One record of the "maps" section (rec, ms->size bytes) into a new map of spec; bytes past the fields the format
 * knows must be 0. */
static int read_map_record(struct parse *p, struct cbpf_legacy_spec *spec, const struct mapsym *ms,
                           const unsigned char *rec, int format)
{
    const struct elf *e = &p->e;
    size_t known = format == CBPF_LEGACY_MAP_ELF ? ELF_MAP_SIZE : MAP_DEF_KNOWN, words = ms->size / 4;
    uint32_t w[9] = {0};
    struct cbpf_legacy_map_spec *m;
    int ret = add_map(p, spec, tab_str(e->str, e->str_size, e->syms[ms->sym].st_name), p->maps_idx, ms->off,
                      ms->size, format, &m);
    if (ret < 0)
        return ret;
    for (size_t j = known; j < ms->size; j++) {
        if (rec[j] != 0)
            return fail(p->err, p->errlen, -EINVAL,
                        format == CBPF_LEGACY_MAP_ELF
                            ? "map '%s': byte %zu of its %llu-byte struct bpf_elf_map is set, but only type, "
                              "size_key, size_value, max_elem, flags, id, pinning, inner_id and inner_idx are known"
                            : "map '%s': byte %zu of its %llu-byte record is set, but only type, key_size, "
                              "value_size, max_entries, map_flags, inner_map_idx and numa_node are known",
                        m->name, j, (unsigned long long)ms->size);
    }
    memcpy(w, rec, (words < 9 ? words : 9) * 4);
    def_from_words(&m->def, w);
    if (format == CBPF_LEGACY_MAP_ELF) {
        m->id = w[5];
        m->pinning = w[6];
        m->inner_id = w[7];
        m->inner_idx = words > 8 ? w[8] : 0; /* iproute2 zero-fills a shorter record */
    } else {
        m->inner_map_idx = w[5];
        m->def.numa_node = w[6];
    }
    return 0;
}

/* The records of the "maps" section: struct bpf_map_def (samples/bpf) or struct bpf_elf_map (iproute2). */
static int parse_maps_section(struct parse *p, struct cbpf_legacy_spec *spec)
{
    struct elf *e = &p->e;
    struct mapsym *ms = NULL;
    const unsigned char *b;
    size_t len, n = 0, elf_sized = 0;
    int format = 0;

    if (sec_bytes(e, &e->sh[p->maps_idx], &b, &len) < 0)
        return fail(p->err, p->errlen, -EINVAL, "maps section is not inside the file");
    if (len > UINT32_MAX)
        return fail(p->err, p->errlen, -EINVAL, "maps section is too large (%zu bytes)", len);
    int ret = map_symbols(p, len, &ms, &n);
    if (ret == 0 && n > 0)
        ret = check_map_records(p, ms, n, len, &elf_sized);
    if (ret == 0 && n > 0)
        ret = map_record_format(p, ms, n, elf_sized, &format);
    for (size_t i = 0; ret == 0 && i < n; i++)
        ret = read_map_record(p, spec, &ms[i], b + ms[i].off, format);
    free(ms);
    return ret;
}

/* gobpf's "maps/<name>" section: one record { type, key_size, value_size, max_entries, map_flags, pinning,
 * char namespace[256] }. */
static int parse_gobpf_map(struct parse *p, struct cbpf_legacy_spec *spec, size_t shndx)
{
    struct elf *e = &p->e;
    const char *sec = sec_name(e, shndx);
    const unsigned char *b;
    size_t len, nsyms = 0;
    if (sec_bytes(e, &e->sh[shndx], &b, &len) < 0)
        return fail(p->err, p->errlen, -EINVAL, "section '%s' is not inside the file", sec);
    for (size_t i = 1; i < e->nsyms; i++) {
        const Elf64_Sym *s = &e->syms[i];
        if (!is_map_symbol(s, shndx))
            continue;
        nsyms++;
        if (s->st_value != 0)
            return fail(p->err, p->errlen, -EINVAL, "section '%s': symbol '%s' is not at its start (one map a section)",
                        sec, sym_name(p, i));
    }
    if (nsyms > 1)
        return fail(p->err, p->errlen, -EINVAL, "section '%s' holds %zu map symbols: gobpf puts one map in a section",
                    sec, nsyms);
    if (len < 24 || len > GOBPF_MAP_SIZE || len % 4 != 0)
        return fail(p->err, p->errlen, -EINVAL,
                    "section '%s' is %zu bytes: gobpf's bpf_map_def is 6 4-byte fields and a 256-byte namespace (%u "
                    "bytes)",
                    sec, len, GOBPF_MAP_SIZE);
    const char *name = sec + 5;
    if (!cbpf_legacy_name_ok(name, strlen(name)))
        return fail(p->err, p->errlen, -EINVAL,
                    "section '%s': a map's name is letters, digits, _ - . (it names its pin in bpffs)", sec);
    struct cbpf_legacy_map_spec *m;
    int ret = add_map(p, spec, name, shndx, 0, len, CBPF_LEGACY_MAP_GOBPF, &m);
    if (ret < 0)
        return ret;
    uint32_t w[6];
    memcpy(w, b, sizeof(w));
    def_from_words(&m->def, w);
    m->pinning = w[5];
    if (m->pinning == CBPF_LEGACY_PIN_NONE)
        return 0;
    char ns[GOBPF_NS_SIZE + 1] = "";
    size_t nslen = len - 24;
    memcpy(ns, b + 24, nslen);
    if (strlen(ns) == GOBPF_NS_SIZE)
        return fail(p->err, p->errlen, -EINVAL, "map '%s': its namespace is not NUL-terminated", name);
    if (m->pinning != CBPF_LEGACY_PIN_GLOBAL_NS)
        return fail(p->err, p->errlen, m->pinning <= CBPF_LEGACY_PIN_CUSTOM_NS ? -EOPNOTSUPP : -EINVAL,
                    "map '%s': pinning %u%s: only PIN_NONE (0) and PIN_GLOBAL_NS (2, pinned at " CBPF_LEGACY_BPFFS
                    "/<namespace>/globals/<name>) are supported",
                    name, m->pinning,
                    m->pinning == CBPF_LEGACY_PIN_OBJECT_NS   ? " (PIN_OBJECT_NS, which gobpf never implemented)"
                    : m->pinning == CBPF_LEGACY_PIN_CUSTOM_NS ? " (PIN_CUSTOM_NS, a path gobpf takes from its caller)"
                                                              : " (unknown)");
    if (!cbpf_legacy_name_ok(ns, strlen(ns)))
        return fail(p->err, p->errlen, -EINVAL,
                    "map '%s': PIN_GLOBAL_NS needs a namespace of letters, digits, _ - . (it has '%s')", name, ns);
    size_t plen = strlen(CBPF_LEGACY_BPFFS) + strlen(ns) + strlen(name) + 16;
    m->pin_path = malloc(plen);
    if (!m->pin_path)
        return fail(p->err, p->errlen, -ENOMEM, "out of memory");
    snprintf(m->pin_path, plen, CBPF_LEGACY_BPFFS "/%s/globals/%s", ns, name);
    return 0;
}

/* A __uint(field, N) of a BTF map definition: a pointer to an array of N elements. */
static int btf_uint(const struct btf *btf, uint32_t type_id, uint32_t *value)
{
    const struct btf_type *t = btf__type_by_id(btf, type_id);
    const struct btf_type *a = t && btf_is_ptr(t) ? btf__type_by_id(btf, t->type) : NULL;
    if (!a || !btf_is_array(a))
        return -1;
    *value = btf_array(a)->nelems;
    return 0;
}

/* A __type(key/value, T) of a BTF map definition: a pointer to T, whose size is wanted. */
static int btf_pointee_size(const struct btf *btf, uint32_t type_id, uint32_t *size)
{
    const struct btf_type *t = btf__type_by_id(btf, type_id);
    long long sz = t && btf_is_ptr(t) ? btf__resolve_size(btf, t->type) : -1;
    if (sz <= 0 || sz > UINT32_MAX)
        return -1;
    *size = (uint32_t)sz;
    return 0;
}

/* One member of a BTF map definition (__uint(name, N), __type(key, T)...) into m's definition; another member that
 * gave the same field must agree. */
static int btf_map_field(struct parse *p, const struct btf *btf, struct cbpf_legacy_map_spec *m,
                         const struct btf_member *mem)
{
    const char *field = btf__name_by_offset(btf, mem->name_off);
    uint32_t v = 0, *dst = NULL;
    int bad = 0;
    if (!field)
        field = "?";
    if (strcmp(field, "type") == 0)
        dst = &m->def.type;
    else if (strcmp(field, "max_entries") == 0)
        dst = &m->def.max_entries;
    else if (strcmp(field, "map_flags") == 0)
        dst = &m->def.map_flags;
    else if (strcmp(field, "numa_node") == 0)
        dst = &m->def.numa_node;
    else if (strcmp(field, "key_size") == 0)
        dst = &m->def.key_size;
    else if (strcmp(field, "value_size") == 0)
        dst = &m->def.value_size;
    else if (strcmp(field, "pinning") == 0)
        dst = &m->pinning;
    if (dst) {
        bad = btf_uint(btf, mem->type, &v);
    } else if (strcmp(field, "key") == 0 || strcmp(field, "value") == 0) {
        dst = field[0] == 'k' ? &m->def.key_size : &m->def.value_size;
        bad = btf_pointee_size(btf, mem->type, &v);
    } else {
        return fail(p->err, p->errlen, -EOPNOTSUPP,
                    "map '%s' (.maps): field '%s' is not supported beside legacy maps (type, key, value, "
                    "key_size, value_size, max_entries, map_flags, numa_node and pinning are)",
                    m->name, field);
    }
    if (bad)
        return fail(p->err, p->errlen, -EINVAL, "map '%s' (.maps): field '%s' is not of the __uint/__type form",
                    m->name, field);
    if (*dst && *dst != v)
        return fail(p->err, p->errlen, -EINVAL, "map '%s' (.maps): field '%s' says %u, another field %u", m->name,
                    field, v, *dst);
    *dst = v;
    return 0;
}

/* The BTF-defined map at ms into a new map of spec: its struct variable's members, and its pin by name. */
static int read_btf_map(struct parse *p, struct cbpf_legacy_spec *spec, const struct btf *btf,
                        const struct mapsym *ms)
{
    const char *name = sym_name(p, ms->sym);
    const struct btf_type *st = var_struct(btf, name);
    if (!st)
        return fail(p->err, p->errlen, -EINVAL, "map '%s' (.maps): the BTF has no struct variable of that name", name);
    struct cbpf_legacy_map_spec *m;
    int ret = add_map(p, spec, name, p->dotmaps_idx, ms->off, ms->size, CBPF_LEGACY_MAP_BTF, &m);
    const struct btf_member *mem = btf_members(st);
    for (uint16_t j = 0; ret == 0 && j < btf_vlen(st); j++, mem++)
        ret = btf_map_field(p, btf, m, mem);
    if (ret < 0)
        return ret;
    if (m->pinning > 1)
        return fail(p->err, p->errlen, -EINVAL, "map '%s' (.maps): pinning %u (0: none, 1: LIBBPF_PIN_BY_NAME)",
                    name, m->pinning);
    if (!m->pinning)
        return 0;
    if (!cbpf_legacy_name_ok(name, strlen(name)))
        return fail(p->err, p->errlen, -EINVAL, "map '%s' (.maps): a pinned map's name is letters, digits, _ - .",
                    name);
    size_t plen = strlen(CBPF_LEGACY_BPFFS) + strlen(name) + 2;
    m->pin_path = malloc(plen);
    if (!m->pin_path)
        return fail(p->err, p->errlen, -ENOMEM, "out of memory");
    snprintf(m->pin_path, plen, CBPF_LEGACY_BPFFS "/%s", name);
    return 0;
}

/* The BTF-defined maps of ".maps", in an object that also has legacy ones (libbpf's layout: a struct of __uint and
 * __type fields per map). */
static int parse_btf_maps(struct parse *p, struct cbpf_legacy_spec *spec)
{
    struct elf *e = &p->e;
    struct mapsym *ms = NULL;
    size_t n = 0, k = 0;
    int ret = 0;
    const struct btf *btf = object_btf(p);
    for (size_t i = 1; i < e->nsyms; i++)
        n += is_map_symbol(&e->syms[i], p->dotmaps_idx) && ELF64_ST_TYPE(e->syms[i].st_info) == STT_OBJECT;
    if (n == 0)
        return 0;
    if (!btf)
        return fail(p->err, p->errlen, p->btf_idx ? -EINVAL : -EOPNOTSUPP,
                    p->btf_idx ? "BTF-defined maps (.maps): the object's .BTF section is malformed"
                               : "BTF-defined maps (.maps) are described by the object's BTF, which it lacks: compile "
                                 "it with -g");
    ms = calloc(n, sizeof(*ms));
    if (!ms)
        return fail(p->err, p->errlen, -ENOMEM, "out of memory");
    for (size_t i = 1; i < e->nsyms; i++) {
        const Elf64_Sym *s = &e->syms[i];
        if (is_map_symbol(s, p->dotmaps_idx) && ELF64_ST_TYPE(s->st_info) == STT_OBJECT)
            ms[k++] = (struct mapsym){s->st_value, s->st_size, i};
    }
    sort(ms, n, sizeof(*ms), cmp_mapsym);
    for (size_t i = 0; ret == 0 && i < n; i++) {
        if (i > 0 && ms[i].off == ms[i - 1].off)
            ret = fail(p->err, p->errlen, -EINVAL, "maps '%s' and '%s' start at the same offset of .maps",
                       sym_name(p, ms[i - 1].sym), sym_name(p, ms[i].sym));
        else
            ret = read_btf_map(p, spec, btf, &ms[i]);
    }
    free(ms);
    return ret;
}

/* iproute2's maps of maps: an outer map names its inner map's template by inner_id (the template's id); an inner
 * map with an id, no inner_id and an inner_idx other than ~0 is put at key inner_idx of the outer map(s) naming it. */
static int link_elf_maps(struct parse *p, struct cbpf_legacy_spec *spec, size_t i)
{
    struct cbpf_legacy_map_spec *m = &spec->maps[i];
    if (m->id) {
        for (size_t j = 0; j < i; j++) {
            if (spec->maps[j].format == CBPF_LEGACY_MAP_ELF && spec->maps[j].id == m->id)
                return fail(p->err, p->errlen, -EINVAL, "maps '%s' and '%s' have the same id %u", spec->maps[j].name,
                            m->name, m->id);
        }
    }
    if (!is_map_in_map(m->def.type)) {
        if (m->inner_id)
            return fail(p->err, p->errlen, -EINVAL, "map '%s': inner_id is %u but it is not a map-in-map", m->name,
                        m->inner_id);
        return 0;
    }
    if (!m->inner_id)
        return fail(p->err, p->errlen, -EINVAL,
                    "map '%s' is a map-in-map with no inner_id (the id of the map that is its inner map's template)",
                    m->name);
    size_t inner = SIZE_MAX;
    for (size_t j = 0; j < spec->nmaps; j++) {
        if (spec->maps[j].format == CBPF_LEGACY_MAP_ELF && spec->maps[j].id == m->inner_id && j != i)
            inner = j;
    }
    if (inner == SIZE_MAX)
        return fail(p->err, p->errlen, -EINVAL, "map '%s': inner_id %u names no map (no other map has id %u)", m->name,
                    m->inner_id, m->inner_id);
    struct cbpf_legacy_map_spec *im = &spec->maps[inner];
    if (is_map_in_map(im->def.type))
        return fail(p->err, p->errlen, -EINVAL, "map '%s': its inner map '%s' is itself a map-in-map", m->name,
                    im->name);
    m->has_inner = 1;
    m->inner_map_idx = (uint32_t)inner;
    if (im->inner_idx != UINT32_MAX) {
        if (im->insert_into >= 0)
            return fail(p->err, p->errlen, -EOPNOTSUPP,
                        "maps '%s' and '%s' both take inner map '%s' (id %u): putting one map in two outer maps is "
                        "not supported",
                        spec->maps[im->insert_into].name, m->name, im->name, im->id);
        im->insert_into = (long)i;
    }
    return 0;
}

/* Pins of iproute2's maps, where tc puts them. */
static int elf_pin_path(struct parse *p, struct cbpf_legacy_map_spec *m)
{
    char dir[48];
    if (m->pinning == CBPF_LEGACY_PIN_NONE)
        return 0;
    if (m->pinning == CBPF_LEGACY_PIN_GLOBAL_NS) {
        snprintf(dir, sizeof(dir), "globals");
    } else if (m->pinning == CBPF_LEGACY_PIN_OBJECT_NS) {
        sha1_hex(p->e.data, p->e.size, dir);
    } else {
        return fail(p->err, p->errlen, -EOPNOTSUPP,
                    "map '%s': pinning %u is tc's custom pinning (a subdirectory named in /etc/iproute2/bpf_pinning), "
                    "which cbpf does not read: use PIN_NONE (0), PIN_OBJECT_NS (1) or PIN_GLOBAL_NS (2)",
                    m->name, m->pinning);
    }
    if (!cbpf_legacy_name_ok(m->name, strlen(m->name)))
        return fail(p->err, p->errlen, -EINVAL, "map '%s': a pinned map's name is letters, digits, _ - .", m->name);
    size_t plen = strlen(CBPF_LEGACY_BPFFS) + strlen(dir) + strlen(m->name) + 8;
    m->pin_path = malloc(plen);
    if (!m->pin_path)
        return fail(p->err, p->errlen, -ENOMEM, "out of memory");
    snprintf(m->pin_path, plen, CBPF_LEGACY_BPFFS "/tc/%s/%s", dir, m->name);
    return 0;
}

/* Checks every map, whatever its format; fills the sizes old loaders filled. base: the index of the first record of
 * "maps" (bpf_map_def's inner_map_idx counts from it). */
static int check_maps(struct parse *p, struct cbpf_legacy_spec *spec, size_t base, size_t nrecords)
{
    int ret;
    for (size_t i = 0; i < spec->nmaps; i++) {
        struct cbpf_legacy_map_spec *m = &spec->maps[i];
        if (m->def.type == BPF_MAP_TYPE_UNSPEC)
            return fail(p->err, p->errlen, -EINVAL, "map '%s': type 0 (BPF_MAP_TYPE_UNSPEC)", m->name);
        /* what the old loaders set themselves: a map of maps' value is an fd, a perf event array's key and value a
         * CPU number and an fd, 4 bytes each */
        if (is_map_in_map(m->def.type) && m->def.value_size == 0)
            m->def.value_size = 4;
        if (m->def.type == BPF_MAP_TYPE_PERF_EVENT_ARRAY) {
            m->def.key_size = m->def.key_size ? m->def.key_size : 4;
            m->def.value_size = m->def.value_size ? m->def.value_size : 4;
        }
        if (needs_sizes(m->def.type)) {
            const char *zero = !m->def.key_size ? "key_size" : !m->def.value_size ? "value_size" : NULL;
            if (!zero && !m->def.max_entries && m->def.type != BPF_MAP_TYPE_PERF_EVENT_ARRAY)
                zero = "max_entries";
            if (zero)
                return fail(p->err, p->errlen, -EINVAL, "map '%s' (type %u): %s is 0", m->name, m->def.type, zero);
        }
        if (m->def.numa_node && !(m->def.map_flags & BPF_F_NUMA_NODE))
            return fail(p->err, p->errlen, -EINVAL,
                        "map '%s': numa_node is %u without BPF_F_NUMA_NODE in map_flags (an iproute2 struct "
                        "bpf_elf_map of 28 bytes? compile with -g, so that its BTF names the struct)",
                        m->name, m->def.numa_node);
        if (m->format == CBPF_LEGACY_MAP_ELF) {
            if ((ret = link_elf_maps(p, spec, i)) < 0 || (ret = elf_pin_path(p, m)) < 0)
                return ret;
            continue;
        }
        if (m->format != CBPF_LEGACY_MAP_DEF)
            continue;
        if (!is_map_in_map(m->def.type)) {
            if (m->inner_map_idx)
                return fail(p->err, p->errlen, -EINVAL, "map '%s': inner_map_idx is %u but it is not a map-in-map%s",
                            m->name, m->inner_map_idx,
                            m->def_size == MAP_DEF_KNOWN
                                ? " (an iproute2 struct bpf_elf_map of 28 bytes, whose id this "
                                  "is? compile with -g, so that its BTF names the struct)"
                                : "");
            continue;
        }
        if (m->def_size < 24)
            return fail(p->err, p->errlen, -EINVAL,
                        "map '%s' is a map-in-map but its bpf_map_def has no inner_map_idx field", m->name);
        if (m->inner_map_idx >= nrecords || base + m->inner_map_idx == i)
            return fail(p->err, p->errlen, -EINVAL, "map '%s': inner_map_idx %u is not another map (there are %zu)",
                        m->name, m->inner_map_idx, nrecords);
        if (is_map_in_map(spec->maps[base + m->inner_map_idx].def.type))
            return fail(p->err, p->errlen, -EINVAL, "map '%s': its inner map '%s' is itself a map-in-map", m->name,
                        spec->maps[base + m->inner_map_idx].name);
        m->inner_map_idx += (uint32_t)base;
        m->has_inner = 1;
    }
    return 0;
}

static int parse_maps(struct parse *p, struct cbpf_legacy_spec *spec)
{
    struct elf *e = &p->e;
    size_t n = p->ngobpf, base = 0, nrecords = 0;
    int ret = 0, formats = 0;
    for (size_t i = 1; i < e->nsyms; i++) {
        n += p->maps_idx && is_map_symbol(&e->syms[i], p->maps_idx);
        n += p->dotmaps_idx && is_map_symbol(&e->syms[i], p->dotmaps_idx);
    }
    spec->dialect = "none";
    if (n == 0 && !p->maps_idx)
        return 0;
    spec->maps = calloc(n ? n : 1, sizeof(*spec->maps));
    if (!spec->maps)
        return fail(p->err, p->errlen, -ENOMEM, "out of memory for %zu maps", n);
    /* in section order, each section's by offset: map_at searches them so */
    for (size_t i = 1; i < e->shnum && ret == 0; i++) {
        const char *name = sec_name(e, i);
        if (i == p->maps_idx) {
            base = spec->nmaps;
            ret = parse_maps_section(p, spec);
            nrecords = spec->nmaps - base;
        } else if (i == p->dotmaps_idx) {
            ret = parse_btf_maps(p, spec);
        } else if (name && strncmp(name, "maps/", 5) == 0) {
            ret = parse_gobpf_map(p, spec, i);
        }
    }
    if (ret < 0)
        return ret;
    if ((ret = check_maps(p, spec, base, nrecords)) < 0)
        return ret;
    for (size_t i = 0; i < spec->nmaps; i++)
        formats |= 1 << spec->maps[i].format;
    if (formats & (1 << CBPF_LEGACY_MAP_GOBPF))
        spec->dialect = "gobpf";
    else if (formats & (1 << CBPF_LEGACY_MAP_ELF))
        spec->dialect = "iproute2";
    else if (formats == (1 << CBPF_LEGACY_MAP_DEF))
        spec->dialect = "bpf_map_def";
    else if (formats & (1 << CBPF_LEGACY_MAP_BTF))
        spec->dialect = formats & (1 << CBPF_LEGACY_MAP_DEF) ? "bpf_map_def+btf" : "btf";
    char **names = malloc((spec->nmaps ? spec->nmaps : 1) * sizeof(*names));
    if (!names)
        return fail(p->err, p->errlen, -ENOMEM, "out of memory");
    for (size_t i = 0; i < spec->nmaps; i++)
        names[i] = spec->maps[i].name;
    const char *dup = duplicate_name(names, spec->nmaps);
    if (dup)
        ret = fail(p->err, p->errlen, -EINVAL, "two maps are named '%s'", dup);
    free(names);
    return ret;
}

/* The map whose record starts at off in section shndx, or -1 (maps[] is sorted by section, then offset). */
static long map_at(const struct cbpf_legacy_spec *spec, size_t shndx, int64_t off)
{
    size_t lo = 0, hi = spec->nmaps;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct cbpf_legacy_map_spec *m = &spec->maps[mid];
        if (m->def_shndx < shndx || (m->def_shndx == shndx && (int64_t)m->def_offset < off))
            lo = mid + 1;
        else
            hi = mid;
    }
    const struct cbpf_legacy_map_spec *m = lo < spec->nmaps ? &spec->maps[lo] : NULL;
    return m && m->def_shndx == shndx && (int64_t)m->def_offset == off ? (long)lo : -1;
}

/* 1 when section shndx holds maps: "maps", "maps/<name>", ".maps". */
static int is_map_section(const struct parse *p, size_t shndx)
{
    if (shndx == 0 || shndx >= p->e.shnum)
        return 0;
    const char *name = sec_name(&p->e, shndx);
    return shndx == p->maps_idx || shndx == p->dotmaps_idx || (name && strncmp(name, "maps/", 5) == 0);
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
    if (is_map_section(p, s->st_shndx)) {
        struct bpf_insn *ins = &p->insns[out];
        uint64_t addend = (uint64_t)(uint32_t)ins[0].imm | (uint64_t)(uint32_t)ins[1].imm << 32;
        int64_t off = (int64_t)(s->st_value + addend);
        long m = map_at(spec, s->st_shndx, off);
        if (m < 0)
            return fail(p->err, p->errlen, -EINVAL,
                        "function '%s', instruction %llu: refers to byte %lld of the map section '%s' ('%s'), not to "
                        "the start of a map",
                        fn->name, (unsigned long long)at, (long long)off, sec_name(&p->e, s->st_shndx), sname);
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

/* A number as iproute2's section names write them: decimal, or hexadecimal after 0x. */
static int parse_u32(const char *s, const char *end, uint32_t *v)
{
    uint64_t n = 0;
    int hex = end - s > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
    if (hex)
        s += 2;
    if (s == end)
        return -1;
    for (; s < end; s++) {
        int d = *s >= '0' && *s <= '9'          ? *s - '0'
                : hex && *s >= 'a' && *s <= 'f' ? *s - 'a' + 10
                : hex && *s >= 'A' && *s <= 'F' ? *s - 'A' + 10
                                                : -1;
        if (d < 0 || (n = n * (hex ? 16 : 10) + (uint64_t)d) > UINT32_MAX)
            return -1;
    }
    *v = (uint32_t)n;
    return 0;
}

/* iproute2's tail calls: an untyped section "<id>/<key>" goes into the program array with that id, at that key, and
 * takes the type of the programs that use that array (tc gives every program of an object one type). */
static void tail_calls(struct cbpf_legacy_spec *spec)
{
    for (size_t i = 0; i < spec->nprogs; i++) {
        struct cbpf_legacy_prog_spec *ps = &spec->progs[i];
        const char *slash = strchr(ps->section, '/');
        uint32_t id, key;
        ps->tail_map = -1;
        if (ps->prog_type != BPF_PROG_TYPE_UNSPEC || !slash || parse_u32(ps->section, slash, &id) < 0 ||
            parse_u32(slash + 1, slash + strlen(slash), &key) < 0 || id == 0)
            continue;
        for (size_t m = 0; m < spec->nmaps; m++) {
            const struct cbpf_legacy_map_spec *ms = &spec->maps[m];
            if (ms->format == CBPF_LEGACY_MAP_ELF && ms->id == id && ms->def.type == BPF_MAP_TYPE_PROG_ARRAY)
                ps->tail_map = (long)m;
        }
        if (ps->tail_map < 0)
            continue;
        ps->tail_key = key;
        uint32_t type = BPF_PROG_TYPE_UNSPEC, attach = 0;
        int agree = 1;
        for (size_t j = 0; j < spec->nprogs; j++) {
            const struct cbpf_legacy_prog_spec *caller = &spec->progs[j];
            for (size_t r = 0; r < caller->nrelocs && j != i; r++) {
                if (caller->relocs[r].map_idx != (uint32_t)ps->tail_map || caller->prog_type == BPF_PROG_TYPE_UNSPEC)
                    continue;
                agree &= type == BPF_PROG_TYPE_UNSPEC ||
                         (type == caller->prog_type && attach == caller->expected_attach_type);
                type = caller->prog_type;
                attach = caller->expected_attach_type;
            }
        }
        if (agree) {
            ps->prog_type = type;
            ps->expected_attach_type = attach;
        }
    }
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
    tail_calls(spec);
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
    btf__free(p->btf);
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
    if ((ret = elf_names(&p.e, err, errlen)) < 0)
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
    for (size_t i = 0; spec->maps && i < spec->nmaps; i++) {
        free(spec->maps[i].name);
        free(spec->maps[i].pin_path);
    }
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

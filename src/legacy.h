/* cbpf: loader for "legacy" BPF ELF objects, the ones libbpf 1.x refuses at open (docs/guide/legacy.md).
 *
 * Their dialects, told apart by their marks (cbpf_legacy_is_legacy):
 *   - samples/bpf's `struct bpf_map_def { type, key_size, value_size, max_entries, map_flags[, inner_map_idx,
 *     numa_node] }` records in a section named "maps";
 *   - iproute2's `struct bpf_elf_map { type, size_key, size_value, max_elem, flags, id, pinning, inner_id,
 *     inner_idx }` (36-byte records in "maps", or a BTF struct of that name), maps of maps linked by id;
 *   - gobpf's one section per map, "maps/<name>", holding `{ type, key_size, value_size, max_entries, map_flags,
 *     pinning, char namespace[256] }`;
 *   - objects with no map at all but a "version" section, section names libbpf does not know, or code sections
 *     without function symbols (old LLVM's NOTYPE);
 *   - a mix of "maps" records and BTF-defined maps in ".maps" (the .maps part needs the object's BTF: -g).
 * Each program sits in an executable section named after its attach point ("kprobe/<fn>", "tracepoint/<cat>/<name>",
 * "socket", "xdp", ...); a section naming no program type gives a program of type BPF_PROG_TYPE_UNSPEC, which loads
 * once its type is set. An object without a "license" section is loaded with an empty license, as old loaders did.
 *
 * Pure C (no Python.h): backend_legacy.c makes it one of an Object's backends (backend.h). Two stages, kept apart:
 *   - the spec (cbpf_legacy_parse, legacy.c): what the ELF says, validated, no syscall, no global state. Every input is
 *     treated as hostile: any offset, size or index is checked before use, and nothing is read outside the buffer.
 *   - the object (cbpf_legacy_load, legacy_load.c): maps created or reused from their pins, programs relocated
 *     and loaded, maps pinned, optionally attached.
 * No function here keeps global state, so all may run without the GIL (two threads must not share one object).
 * Every failure returns a negative errno and writes a one-line message into err (when err and errlen are non-zero),
 * releasing whatever the call had allocated or opened. The message says what failed, not strerror(-ret): the caller
 * adds that (cbpf's errors.c does, with the fix for EPERM).
 */
#ifndef CBPF_LEGACY_H
#define CBPF_LEGACY_H

#include <stddef.h>
#include <stdint.h>

#include <linux/bpf.h>

#include "mapdef.h"

/* How a program attaches (cbpf_legacy_attach_fd), from its section name. */
enum cbpf_legacy_attach_kind {
    CBPF_LEGACY_ATTACH_NONE = 0,   /* needs a target cbpf cannot guess (socket, xdp, cgroup, perf_event, ...) */
    CBPF_LEGACY_ATTACH_KPROBE,     /* kprobe/<fn> */
    CBPF_LEGACY_ATTACH_KRETPROBE,  /* kretprobe/<fn> */
    CBPF_LEGACY_ATTACH_TRACEPOINT, /* tracepoint/<cat>/<name>, tp/<cat>/<name> */
    CBPF_LEGACY_ATTACH_RAW_TP,     /* raw_tracepoint/<name>, raw_tp/<name> */
};

/* One map reference: instruction insn_idx (an ld_imm64) is to be loaded with the fd of map map_idx. */
struct cbpf_legacy_reloc {
    uint32_t insn_idx;
    uint32_t map_idx;
};

/* Where a map's definition came from. */
enum cbpf_legacy_map_format {
    CBPF_LEGACY_MAP_DEF = 0, /* struct bpf_map_def in "maps" (samples/bpf) */
    CBPF_LEGACY_MAP_ELF,     /* struct bpf_elf_map in "maps" (iproute2, tc) */
    CBPF_LEGACY_MAP_GOBPF,   /* gobpf's bpf_map_def in "maps/<name>" */
    CBPF_LEGACY_MAP_BTF,     /* a BTF-defined map in ".maps", beside legacy ones */
};

/* The pinning field of iproute2's and gobpf's records (libbpf's BTF maps: 1 is LIBBPF_PIN_BY_NAME). */
#define CBPF_LEGACY_PIN_NONE 0u
#define CBPF_LEGACY_PIN_OBJECT_NS 1u
#define CBPF_LEGACY_PIN_GLOBAL_NS 2u
#define CBPF_LEGACY_PIN_CUSTOM_NS 3u

#define CBPF_LEGACY_BPFFS "/sys/fs/bpf"

struct cbpf_legacy_map_spec {
    char *name; /* the symbol's name, in full (gobpf: the section's after "maps/"); the kernel gets 15 characters */
    struct cbpf_map_def def; /* as the record says (no BTF ids); Map's setters change it before load */
    uint32_t inner_map_idx;
    int has_inner;       /* a map-in-map: inner_map_idx is the index (in maps[]) of its inner map's template */
    uint32_t def_shndx;  /* the section holding the record */
    uint32_t def_offset; /* where the record sits in that section */
    uint32_t def_size;   /* the record's size in bytes (its symbol's st_size) */
    /* Set from Python between parse and load (0 after parsing): */
    int no_create;       /* Map.autocreate = False: cbpf_legacy_load leaves it out (fd -1) */
    int has_reuse;       /* Map.reuse(): the map is reuse_fd (dup'd at load), not created; the caller closes it */
    int reuse_fd;
    int format;          /* enum cbpf_legacy_map_format */
    uint32_t pinning;    /* CBPF_LEGACY_PIN_* (0 for bpf_map_def) */
    char *pin_path;      /* where the map is pinned (and first looked for), NULL when not pinned */
    /* iproute2: the map's id, the id of its inner map's template (outer maps), and where tc puts this map in the
     * outer map whose inner_id is its id (inner_idx, ~0: nowhere) */
    uint32_t id, inner_id, inner_idx;
    long insert_into; /* the map (index in maps[]) this one is put into at key inner_idx after creation, or -1 */
};

struct cbpf_legacy_prog_spec {
    char *name;    /* the function's symbol name */
    char *section; /* the ELF section it came from, e.g. "tracepoint/syscalls/sys_enter_getpid" */
    uint32_t prog_type;
    uint32_t expected_attach_type;
    enum cbpf_legacy_attach_kind attach_kind;
    const char *attach_target; /* points into section: "<fn>", "<cat>/<name>", "<name>"; NULL for ATTACH_NONE */
    /* The program as it is to be loaded: called functions (from .text or elsewhere) appended and calls fixed;
     * map references have src_reg = BPF_PSEUDO_MAP_FD and imm = 0, to be given the map's fd (relocs[]). */
    struct bpf_insn *insns;
    size_t insn_cnt;
    struct cbpf_legacy_reloc *relocs;
    size_t nrelocs;
    size_t nsubprogs; /* how many functions were appended after the program's own instructions */
    /* iproute2's tail-call sections "<id>/<key>": loaded into key tail_key of the program array whose id is <id>
     * (tail_map: its index in maps[]), -1 otherwise */
    long tail_map;
    uint32_t tail_key;
    int autoload; /* 1 after parsing; cbpf_legacy_load skips (leaves fd -1) a program whose autoload is 0 */
};

struct cbpf_legacy_spec {
    struct cbpf_legacy_map_spec *maps; /* in the order of their records in the "maps" section */
    size_t nmaps;
    struct cbpf_legacy_prog_spec *progs; /* by section (ELF order), then by offset in the section */
    size_t nprogs;
    char *license; /* "" when the object has no license section (has_license 0) */
    int has_license;
    uint32_t version; /* the "version" section's value, 0 if none; not used: the running kernel's is */
    int has_version;
    const char *dialect; /* static: "bpf_map_def", "iproute2", "gobpf", "bpf_map_def+btf", "none" (no map) */
};

/* 1 when data is a 64-bit ELF in one of the legacy dialects (see the top of this file): a "maps" or "maps/<name>"
 * section; or, with no ".maps" section, no global data, no externs and no CO-RE relocations: a code section that
 * libbpf 1.x names no program type for, a code section without function symbols, or a "version" section when this
 * loader types every code section. Else 0. Never fails, safe on any bytes, no syscall. */
int cbpf_legacy_is_legacy(const void *data, size_t size);

/* The "license" section's string into out (truncated to outlen - 1, made printable); "" when there is none. */
void cbpf_elf_license(const void *data, size_t size, char *out, size_t outlen);

/* For an object libbpf opened: the executable sections other than .text* that hold none of the programs libbpf
 * found (prog_sections[0..n), their section names), written into out as "'a', 'b'"; returns how many. */
size_t cbpf_elf_unused_code_sections(const void *data, size_t size, const char *const *prog_sections, size_t n,
                                     char *out, size_t outlen);

/* For any BPF ELF, before libbpf opens it: 0, or -EINVAL when a function ends in the first half of an ld_imm64
 * (libbpf 1.7 would write past its copy of the program when relocating it). Never reads outside the buffer. */
int cbpf_elf_check_functions(const void *data, size_t size, char *err, size_t errlen);

/* Parses an object into *out (free with cbpf_legacy_spec_free). No syscall: safe on untrusted bytes.
 * -EINVAL for a malformed object, -EOPNOTSUPP for a feature this loader does not handle (BTF-defined maps, global
 * data, kfuncs, callbacks...), -E2BIG when the programs would exceed the kernel's size limit, -ENOMEM. */
int cbpf_legacy_parse(const void *data, size_t size, struct cbpf_legacy_spec **out, char *err, size_t errlen);
void cbpf_legacy_spec_free(struct cbpf_legacy_spec *spec);

struct cbpf_legacy_map {
    char *name;
    struct cbpf_map_def def; /* as created (a perf event array of 0 entries gets one per possible CPU) */
    uint32_t inner_map_idx;
    int has_inner;
    int fd;
    char *pin_path;   /* where the map is pinned, NULL if not */
    int pin_reused;   /* 1: the map was already pinned there and is shared; 0: created (and pinned by this load) */
    long insert_into; /* see struct cbpf_legacy_map_spec */
    uint32_t inner_idx;
};

struct cbpf_legacy_prog {
    char *name;
    char *section;
    uint32_t prog_type;
    uint32_t expected_attach_type;
    enum cbpf_legacy_attach_kind attach_kind;
    const char *attach_target; /* points into section */
    int fd;
    size_t insn_cnt;
    long tail_map; /* see struct cbpf_legacy_prog_spec */
    uint32_t tail_key;
};

struct cbpf_legacy_obj {
    struct cbpf_legacy_map *maps;
    size_t nmaps;
    struct cbpf_legacy_prog *progs;
    size_t nprogs;
    char *license;
    int has_license;
    uint32_t kern_version; /* what kprobe programs were loaded with: the running kernel's, from uname */
};

/* What a refusal message adds when the object had no license section and the verifier names a GPL-only helper. */
#define CBPF_LEGACY_NO_LICENSE_NOTE                                                                                    \
    " (the object has no license section: it was loaded with an empty license, as old loaders did, and GPL-only "      \
    "helpers need char _license[] SEC(\"license\") = \"GPL\")"

/* Creates the maps (map-in-map templates first; a pinned map already at its pin_path is reused when its type and
 * sizes match), puts iproute2's inner maps into their outer maps, relocates and loads every program whose autoload
 * is set (-EINVAL naming them when some have no program type), then pins the maps it created that have a pin_path
 * (bpffs must be mounted at /sys/fs/bpf: the caller sees to it). On failure returns -errno,
 * writes a one-line message into err and, when the verifier refused a program and log is not NULL, its log into
 * *log (malloc'd, the caller frees; NULL when there is none). Nothing stays open or pinned after a failure. */
int cbpf_legacy_load(const struct cbpf_legacy_spec *spec, struct cbpf_legacy_obj **out, char **log, char *err,
                     size_t errlen);

/* Attaches the loaded program prog_fd to a kprobe or kretprobe (target: the function; offset into it), a tracepoint
 * (target: "<category>/<name>") or a raw tracepoint (target: its name). On success *link_fd is a BPF link (-1 when the
 * kernel predates perf links and the program runs through PERF_EVENT_IOC_SET_BPF) and *perf_fd the perf event behind
 * it (-1 for a raw tracepoint): closing both detaches. -EOPNOTSUPP for a kprobe on a kernel without kprobes, -ENOENT
 * for a missing function or tracepoint, or tracefs not mounted. */
int cbpf_legacy_attach_fd(int prog_fd, enum cbpf_legacy_attach_kind kind, const char *target, uint64_t offset,
                          int *link_fd, int *perf_fd, char *err, size_t errlen);

/* Closes everything, frees obj. NULL is accepted. (Attachments are the caller's: cbpf_legacy_attach_fd's fds.) */
void cbpf_legacy_close(struct cbpf_legacy_obj *obj);

#endif /* CBPF_LEGACY_H */

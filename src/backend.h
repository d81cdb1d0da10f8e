/* cbpf: the formats of an Object behind one set of operations, in the shape of cbpf_stream_ops.
 *
 * An Object holds its backend's state (an opaque pointer, `backend`) and the backend's operations (`ops`); its Maps
 * and Programs hold their index in it. object.c, program.c and map.c call these operations and never ask which
 * format an object is in. Two backends exist: backend_libbpf.c (libbpf's bpf_object: BTF-defined maps) and
 * backend_legacy.c (the legacy formats libbpf 1.x refuses, through legacy.c and legacy_load.c). A third format is a
 * new file with these operations and a line in object.c's list of backends.
 *
 * Conventions: `b` is the backend's state, `i` a map's or a program's index (0..count). Operations that return an
 * int return 0 on success; a positive errno the caller reports ("setting ... of map 'x'"); or -1 with a Python
 * exception already set. They run with the GIL held unless said otherwise. An operation that is NULL is a feature
 * the format does not have: the caller says so, naming the format with `what`. The setters (`*_set*`, `map_reuse_fd`)
 * are called only before load, on an object not closed: map.c and program.c check that first.
 */
#ifndef CBPF_BACKEND_H
#define CBPF_BACKEND_H

#include "mapdef.h"

/* What Object(...) was given besides the ELF. */
typedef struct {
    const char *name;      /* the object's name: in messages, and libbpf names its internal maps after it */
    const char *pin_root;  /* NULL when not given */
    const char *btf_path;  /* NULL when not given */
    const char *kconfig;   /* NULL when not given */
} cbpf_open_args;

/* What a Program is attached to, for the attach operation. */
typedef enum {
    CBPF_ATTACH_SECTION,        /* where its section name says; -EOPNOTSUPP and no message when it names nothing */
    CBPF_ATTACH_KPROBE,         /* target: the kernel function, offset into it */
    CBPF_ATTACH_KRETPROBE,      /* target: the kernel function */
    CBPF_ATTACH_TRACEPOINT,     /* target: "<category>/<name>" */
    CBPF_ATTACH_RAW_TRACEPOINT, /* target: its name */
} cbpf_attach_how;

/* The map definition's fields a setter changes (Map.type, Map.key_size, ...). */
typedef enum {
    CBPF_MAP_TYPE,
    CBPF_MAP_KEY_SIZE,
    CBPF_MAP_VALUE_SIZE,
    CBPF_MAP_MAX_ENTRIES,
    CBPF_MAP_FLAGS,
    CBPF_MAP_NUMA_NODE,
    CBPF_MAP_EXTRA,
} cbpf_map_field;

struct cbpf_backend_ops {
    /* An object of this format in a message: "a legacy object (struct bpf_map_def maps)". */
    const char *what;
    /* Whether the ELF image is in this format (never fails, no system call); the last backend takes every image. */
    bool (*claims)(const void *elf, size_t size);
    /* False: Object()'s pin_root, btf_path and kconfig are refused (the format has no BTF to apply them to). */
    bool takes_open_options;

    /* ---- the object ---- */
    /* Opens the image (kept alive by the caller until load) for obj (its errors name it): 0 with *out set, or -1
     * with an exception set. */
    int (*open)(ObjectObject *obj, const void *elf, size_t size, const cbpf_open_args *args, void **out);
    /* Creates the maps and loads the programs (the kernel's work without the GIL): 0, or -1 with cbpf.LoadError or
     * an OSError set, after which the state is only fit to be closed. name and path_note ("" or " (from PATH)")
     * name the object in messages. */
    int (*load)(ObjectObject *obj, void *b, const char *name, const char *path_note);
    /* Frees everything: maps, programs, the fds reuse() gave it (the Links are object.c's, released first). Runs
     * without the GIL. NULL is accepted. */
    void (*close)(void *b);
    const char *(*license)(void *b);   /* the license the programs are loaded with ("" when none) */
    const char *(*dialect)(void *b);   /* a static name of the format's variant ("iproute2"...), NULL when none */
    const struct btf *(*btf)(void *b); /* the object's BTF, NULL when it has none */

    /* ---- maps ---- */
    size_t (*map_count)(void *b);
    const char *(*map_name)(void *b, size_t i);
    /* The definition as it stands: as opened and set before load, as created after load. A positive errno when it
     * cannot be read (from the kernel). */
    int (*map_def)(void *b, size_t i, struct cbpf_map_def *def);
    int (*map_fd)(void *b, size_t i); /* once loaded; -1 when not created */
    int (*map_set)(void *b, size_t i, cbpf_map_field field, uint64_t value, PyObject *name); /* name: for messages */
    bool (*map_autocreate)(void *b, size_t i);
    int (*map_set_autocreate)(void *b, size_t i, bool on);
    /* reuse(): the map becomes fd (described by info), not created; the backend keeps what it needs until close */
    int (*map_reuse_fd)(void *b, size_t i, int fd, const struct bpf_map_info *info);
    bool (*map_reused)(void *b, size_t i);
    /* where the map is pinned (first looked for at load), NULL when it is not */
    const char *(*map_pin_path)(void *b, size_t i);
    int (*map_set_pin_path)(void *b, size_t i, const char *path);
    /* whether the backend pinned the map (at load) or will (a pin path set before load), and removing that pin */
    bool (*map_is_pinned)(void *b, size_t i);
    int (*map_unpin)(void *b, size_t i);
    /* a map of maps: whether its inner map's shape is known; setting it from a Map's fd (NULL: the format's maps
     * of maps name their inner map themselves) */
    bool (*map_has_inner)(void *b, size_t i);
    int (*map_set_inner_map_fd)(void *b, size_t i, int fd);
    /* the image of a global data section before load (NULL op or NULL result: none), *size its bytes */
    void *(*map_initial_value)(void *b, size_t i, size_t *size);

    /* ---- programs ---- */
    size_t (*prog_count)(void *b);
    const char *(*prog_name)(void *b, size_t i);
    const char *(*prog_section)(void *b, size_t i);
    uint32_t (*prog_type)(void *b, size_t i);
    int (*prog_set_type)(void *b, size_t i, uint32_t type);
    uint32_t (*prog_expected_attach_type)(void *b, size_t i);
    int (*prog_set_expected_attach_type)(void *b, size_t i, uint32_t type);
    bool (*prog_autoload)(void *b, size_t i);
    int (*prog_set_autoload)(void *b, size_t i, bool on);
    bool (*prog_autoattach)(void *b, size_t i);
    void (*prog_set_autoattach)(void *b, size_t i, bool on);
    int (*prog_fd)(void *b, size_t i); /* once loaded; -1 when not loaded */
    size_t (*prog_insn_count)(void *b, size_t i);
    /* Attaches as `how` says, filling *att: 0, or a negative errno with, when the backend has words of its own,
     * a message in msg ("" otherwise: the caller explains the errno). */
    int (*attach)(cbpf_state *st, void *b, size_t i, cbpf_attach_how how, const char *target, uint64_t offset,
                  cbpf_attachment *att, char *msg, size_t msglen);
    /* libbpf's program, for what only libbpf does (uprobes, USDT, perf events, iterators, attach targets, flags,
     * the verifier's log level). NULL op: the format has none of those; then these two say what it has. */
    struct bpf_program *(*libbpf_program)(void *b, size_t i);
    const char *attach_kinds;  /* "kprobes, tracepoints, ..." that its programs attach to */
    const char *prog_settable; /* the program attributes set before load it takes */
};

/* The kernel's description of a map (after load, or of a map of its own) as a definition. */
static inline void cbpf_map_def_from_info(const struct bpf_map_info *info, struct cbpf_map_def *def)
{
    *def = (struct cbpf_map_def){.type = info->type,
                                 .key_size = info->key_size,
                                 .value_size = info->value_size,
                                 .max_entries = info->max_entries,
                                 .map_flags = info->map_flags,
                                 .map_extra = info->map_extra,
                                 .btf_key_type_id = info->btf_key_type_id,
                                 .btf_value_type_id = info->btf_value_type_id};
}

extern const cbpf_backend_ops cbpf_backend_libbpf;
extern const cbpf_backend_ops cbpf_backend_legacy;

#endif /* CBPF_BACKEND_H */

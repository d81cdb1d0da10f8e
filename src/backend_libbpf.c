/* cbpf: the libbpf backend (backend.h): an Object whose ELF libbpf 1.x opens, as a struct bpf_object. */
#include "cbpf.h"

#include <errno.h>
#include <string.h>

#include <bpf/btf.h>

#include "legacy.h" /* the ELF helpers: license, unused code sections, functions ending inside an ld_imm64 */

typedef struct {
    struct bpf_object *obj;
    struct bpf_map **maps; /* in libbpf's order: a Map's index */
    size_t nmaps;
    struct bpf_program **progs;
    size_t nprogs;
    char license[128];
} libbpf_backend;

#define B ((libbpf_backend *)b)

static bool libbpf_claims(const void *elf, size_t size)
{
    (void)elf;
    (void)size;
    return true;
}

/* The last non-empty line of libbpf's warnings, for a one-line message. */
static void last_line(const char *log, char *out, size_t size)
{
    if (log == NULL) {
        return;
    }
    const char *end = log + strlen(log);
    while (end > log && end[-1] == '\n') {
        end--;
    }
    const char *start = end;
    while (start > log && start[-1] != '\n') {
        start--;
    }
    start = cbpf_libbpf_text(start); /* the caller's text says "libbpf: " once */
    if (end > start) {
        snprintf(out, size, "%.*s", (int)(end - start), start);
    }
}

/* An object whose code libbpf finds no program in (old LLVM's NOTYPE function symbols...) must not "load" with 0
 * programs: the sections it could not use are named. */
static int check_code_used(ObjectObject *obj, libbpf_backend *b, const void *elf, size_t size, const char *cname)
{
    const char **secs = PyMem_Calloc(b->nprogs ? b->nprogs : 1, sizeof(*secs));
    if (secs == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < b->nprogs; i++) {
        secs[i] = bpf_program__section_name(b->progs[i]);
    }
    char unused[400];
    size_t nunused = cbpf_elf_unused_code_sections(elf, size, secs, b->nprogs, unused, sizeof(unused));
    PyMem_Free(secs);
    if (nunused) {
        cbpf_object_error(obj, EINVAL,
                          "opening BPF object '%s': code section%s %s hold%s no program libbpf could use (no function "
                          "symbol: compiled by an old LLVM?)",
                          cname, nunused > 1 ? "s" : "", unused, nunused > 1 ? "" : "s");
        return -1;
    }
    return 0;
}

/* The maps' and programs' arrays: their indexes are what Maps and Programs hold. */
static int index_object(libbpf_backend *b)
{
    struct bpf_map *map;
    struct bpf_program *prog;
    bpf_object__for_each_map(map, b->obj) {
        b->nmaps++;
    }
    bpf_object__for_each_program(prog, b->obj) {
        b->nprogs++;
    }
    b->maps = PyMem_RawCalloc(b->nmaps ? b->nmaps : 1, sizeof(*b->maps));
    b->progs = PyMem_RawCalloc(b->nprogs ? b->nprogs : 1, sizeof(*b->progs));
    if (b->maps == NULL || b->progs == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    size_t i = 0;
    bpf_object__for_each_map(map, b->obj) {
        b->maps[i++] = map;
    }
    i = 0;
    bpf_object__for_each_program(prog, b->obj) {
        b->progs[i++] = prog;
    }
    return 0;
}

static void libbpf_close(void *b)
{
    if (b == NULL) {
        return;
    }
    bpf_object__close(B->obj);
    PyMem_RawFree(B->maps);
    PyMem_RawFree(B->progs);
    PyMem_RawFree(b);
}

static int libbpf_open(ObjectObject *obj, const void *elf, size_t size, const cbpf_open_args *args, void **out)
{
    cbpf_state *st = cbpf_state_from_type(Py_TYPE(obj));
    const char *cname = args->name;
    char bad[200];
    if (cbpf_elf_precheck(elf, size, bad, sizeof(bad)) < 0 || cbpf_elf_check_functions(elf, size, bad,
                                                                                        sizeof(bad)) < 0) {
        cbpf_object_error(obj, EINVAL, "opening BPF object '%s': not a valid BPF ELF object (%s)", cname, bad);
        return -1;
    }
    libbpf_backend *b = PyMem_RawCalloc(1, sizeof(*b));
    if (b == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = cname, .pin_root_path = args->pin_root,
                .btf_custom_path = args->btf_path, .kconfig = args->kconfig);
    cbpf_log_begin();
    b->obj = bpf_object__open_mem(elf, size, &opts);
    int err = b->obj == NULL ? errno : 0;
    char *log = cbpf_log_end(st);
    if (b->obj == NULL) {
        /* The bytes are in memory: whatever libbpf says but ENOMEM is about them (ENOENT: "couldn't find symbol
         * table", ESRCH, EOPNOTSUPP: "program is static"...), so the error is the documented EINVAL, with
         * libbpf's own code and last message in the text. */
        char reason[300] = "", code[160];
        last_line(log, reason, sizeof(reason));
        cbpf_strerror(err, code, sizeof(code));
        if (err == ENOMEM) {
            cbpf_object_error(obj, err, "opening BPF object '%s'", cname);
        }
        else {
            cbpf_object_error(obj, EINVAL, "opening BPF object '%s': not a valid BPF ELF object (libbpf: %s%s%s)",
                              cname, reason[0] ? reason : code, reason[0] ? ": " : "", reason[0] ? code : "");
        }
        free(log);
        PyMem_RawFree(b);
        return -1;
    }
    free(log);
    cbpf_elf_license(elf, size, b->license, sizeof(b->license));
    if (index_object(b) < 0 || check_code_used(obj, b, elf, size, cname) < 0) {
        libbpf_close(b);
        return -1;
    }
    *out = b;
    return 0;
}

/* The program libbpf names in its warnings when it fails to load one. */
static bool refused_program(const char *log, char *out, size_t size)
{
    static const char *const markers[] = {"': BPF program load failed", "': failed to load",
                                          "': failed to find kernel BTF type ID", "': failed to find BPF program",
                                          "': attach program FD is not set"};
    for (size_t i = 0; log != NULL && i < sizeof(markers) / sizeof(markers[0]); i++) {
        const char *m = strstr(log, markers[i]);
        if (m == NULL) {
            continue;
        }
        /* "prog 'NAME" on the marker's own line: a walk past its start would take other messages (and their
         * "libbpf: " prefixes) into the name */
        const char *start = m;
        while (start > log && start[-1] != '\n' && strncmp(start - 1, "prog '", 6) != 0) {
            start--;
        }
        if (start > log && start[-1] != '\n') {
            start += 5;
            snprintf(out, size, "%.*s", (int)(m - start), start);
            return true;
        }
    }
    return false;
}

static int libbpf_load(ObjectObject *obj, void *b, const char *name, const char *path_note)
{
    cbpf_state *st = cbpf_state_from_type(Py_TYPE(obj));
    int err;
    cbpf_log_begin();
    Py_BEGIN_ALLOW_THREADS
    err = bpf_object__load(B->obj);
    Py_END_ALLOW_THREADS
    char *log = cbpf_log_end(st);
    if (err != 0) {
        char what[768], program[256];
        snprintf(what, sizeof(what), "loading BPF object '%s'%s", name, path_note);
        if (refused_program(log, program, sizeof(program))) {
            struct bpf_program *p = bpf_object__find_program_by_name(B->obj, program);
            cbpf_set_program_load_error(obj, err, what, program, p != NULL ? (uint32_t)bpf_program__type(p) : 0,
                                        log);
        }
        else {
            cbpf_set_load_error(obj, err, what, log);
        }
        free(log);
        return -1; /* libbpf unloads what it loaded when load fails */
    }
    free(log);
    return 0;
}

static const char *libbpf_license(void *b)
{
    return B->license;
}

static const char *libbpf_dialect(void *b)
{
    (void)b;
    return NULL;
}

static const struct btf *libbpf_btf(void *b)
{
    return bpf_object__btf(B->obj);
}

/* ---- maps ---- */

static size_t libbpf_map_count(void *b)
{
    return B->nmaps;
}

static const char *libbpf_map_name(void *b, size_t i)
{
    return bpf_map__name(B->maps[i]);
}

static int libbpf_map_fd(void *b, size_t i)
{
    struct bpf_map *m = B->maps[i];
    int fd = bpf_map__fd(m);
    return fd < 0 || !bpf_map__autocreate(m) ? -1 : fd; /* not created: libbpf holds a placeholder fd in its place */
}

static int libbpf_map_def(void *b, size_t i, struct cbpf_map_def *def)
{
    struct bpf_map *m = B->maps[i];
    def->type = bpf_map__type(m);
    def->key_size = bpf_map__key_size(m);
    def->value_size = bpf_map__value_size(m);
    def->max_entries = bpf_map__max_entries(m);
    def->map_flags = bpf_map__map_flags(m);
    def->numa_node = bpf_map__numa_node(m);
    def->map_extra = bpf_map__map_extra(m);
    def->btf_key_type_id = bpf_map__btf_key_type_id(m);
    def->btf_value_type_id = bpf_map__btf_value_type_id(m);
    return 0;
}

/* libbpf resizes a global section (.bss, .data, .data.*) only through its last variable, an array: any other new
 * size it takes all the same but drops the section's BTF, and with it Object.globals. Refused here instead. */
static int check_section_resize(libbpf_backend *b, struct bpf_map *map, unsigned long long size, PyObject *mapname)
{
    const struct btf *btf = bpf_object__btf(b->obj);
    __u32 id = bpf_map__btf_value_type_id(map);
    const struct btf_type *sec = btf != NULL && id ? btf__type_by_id(btf, id) : NULL;
    if (sec == NULL || !btf_is_datasec(sec) || btf_vlen(sec) == 0) {
        return 0; /* no BTF to lose */
    }
    const struct btf_var_secinfo *last = btf_var_secinfos(sec) + btf_vlen(sec) - 1;
    const struct btf_type *var = btf__type_by_id(btf, last->type);
    const struct btf_type *t = var != NULL ? btf__type_by_id(btf, var->type) : NULL;
    while (t != NULL && (btf_is_mod(t) || btf_is_typedef(t))) {
        t = btf__type_by_id(btf, t->type);
    }
    const char *name = var != NULL ? btf__name_by_offset(btf, var->name_off) : "?";
    if (t == NULL || !btf_is_array(t)) {
        PyErr_Format(PyExc_ValueError, "value_size of map '%U' cannot change: libbpf resizes a global section through "
                                       "its last variable, an array, and '%s' is not one", mapname, name);
        return -1;
    }
    __s64 elem = btf__resolve_size(btf, btf_array(t)->type);
    if (elem <= 0 || size <= last->offset || (size - last->offset) % (unsigned long long)elem != 0) {
        PyErr_Format(PyExc_ValueError, "value_size of map '%U' must be %u (where its last variable '%s' starts) plus "
                                       "a whole number of its %lld-byte elements, not %llu",
                     mapname, last->offset, name, (long long)elem, size);
        return -1;
    }
    return 0;
}

static int libbpf_map_set(void *b, size_t i, cbpf_map_field field, uint64_t v, PyObject *name)
{
    struct bpf_map *m = B->maps[i];
    int err = 0;
    switch (field) {
    case CBPF_MAP_TYPE: err = bpf_map__set_type(m, (enum bpf_map_type)v); break;
    case CBPF_MAP_KEY_SIZE: err = bpf_map__set_key_size(m, (__u32)v); break;
    case CBPF_MAP_VALUE_SIZE:
        if (bpf_map__is_internal(m) && check_section_resize(B, m, v, name) < 0) {
            return -1;
        }
        err = bpf_map__set_value_size(m, (__u32)v);
        break;
    case CBPF_MAP_MAX_ENTRIES: err = bpf_map__set_max_entries(m, (__u32)v); break;
    case CBPF_MAP_FLAGS: err = bpf_map__set_map_flags(m, (__u32)v); break;
    case CBPF_MAP_NUMA_NODE: err = bpf_map__set_numa_node(m, (__u32)v); break;
    case CBPF_MAP_EXTRA: err = bpf_map__set_map_extra(m, (__u64)v); break;
    }
    return -err;
}

static bool libbpf_map_autocreate(void *b, size_t i)
{
    return bpf_map__autocreate(B->maps[i]);
}

static int libbpf_map_set_autocreate(void *b, size_t i, bool on)
{
    return -bpf_map__set_autocreate(B->maps[i], on);
}

static int libbpf_map_reuse_fd(void *b, size_t i, int fd, const struct bpf_map_info *info)
{
    (void)info;
    return -bpf_map__reuse_fd(B->maps[i], fd);
}

static bool libbpf_map_reused(void *b, size_t i)
{
    return bpf_map__fd(B->maps[i]) >= 0; /* before load, only reuse_fd gives it one */
}

static const char *libbpf_map_pin_path(void *b, size_t i)
{
    return bpf_map__pin_path(B->maps[i]);
}

static int libbpf_map_set_pin_path(void *b, size_t i, const char *path)
{
    return -bpf_map__set_pin_path(B->maps[i], path);
}

static bool libbpf_map_is_pinned(void *b, size_t i)
{
    return bpf_map__is_pinned(B->maps[i]);
}

static int libbpf_map_unpin(void *b, size_t i)
{
    return -bpf_map__unpin(B->maps[i], NULL);
}

static bool libbpf_map_has_inner(void *b, size_t i)
{
    return bpf_map__inner_map(B->maps[i]) != NULL;
}

static int libbpf_map_set_inner_map_fd(void *b, size_t i, int fd)
{
    return -bpf_map__set_inner_map_fd(B->maps[i], fd);
}

static void *libbpf_map_initial_value(void *b, size_t i, size_t *size)
{
    struct bpf_map *m = B->maps[i];
    /* libbpf's fd as well as ours: once it has one (reused, loaded), a frozen .rodata image is mapped read-only */
    return bpf_map__fd(m) >= 0 ? NULL : bpf_map__initial_value(m, size);
}

/* ---- programs ---- */

static size_t libbpf_prog_count(void *b)
{
    return B->nprogs;
}

static const char *libbpf_prog_name(void *b, size_t i)
{
    return bpf_program__name(B->progs[i]);
}

static const char *libbpf_prog_section(void *b, size_t i)
{
    return bpf_program__section_name(B->progs[i]);
}

static uint32_t libbpf_prog_type(void *b, size_t i)
{
    return (uint32_t)bpf_program__type(B->progs[i]);
}

static int libbpf_prog_set_type(void *b, size_t i, uint32_t type)
{
    return -bpf_program__set_type(B->progs[i], (enum bpf_prog_type)type);
}

static uint32_t libbpf_prog_expected_attach_type(void *b, size_t i)
{
    return (uint32_t)bpf_program__expected_attach_type(B->progs[i]);
}

static int libbpf_prog_set_expected_attach_type(void *b, size_t i, uint32_t type)
{
    return -bpf_program__set_expected_attach_type(B->progs[i], (enum bpf_attach_type)type);
}

static bool libbpf_prog_autoload(void *b, size_t i)
{
    return bpf_program__autoload(B->progs[i]);
}

static int libbpf_prog_set_autoload(void *b, size_t i, bool on)
{
    return -bpf_program__set_autoload(B->progs[i], on);
}

static bool libbpf_prog_autoattach(void *b, size_t i)
{
    return bpf_program__autoattach(B->progs[i]);
}

static void libbpf_prog_set_autoattach(void *b, size_t i, bool on)
{
    bpf_program__set_autoattach(B->progs[i], on);
}

static int libbpf_prog_fd(void *b, size_t i)
{
    int fd = bpf_program__fd(B->progs[i]);
    return fd < 0 ? -1 : fd; /* libbpf says -ENOENT for a program not loaded */
}

static size_t libbpf_prog_insn_count(void *b, size_t i)
{
    return bpf_program__insn_cnt(B->progs[i]);
}

static struct bpf_program *libbpf_program(void *b, size_t i)
{
    return B->progs[i];
}

static int libbpf_attach(cbpf_state *st, void *b, size_t i, cbpf_attach_how how, const char *target,
                         uint64_t offset, cbpf_attachment *att, char *msg, size_t msglen)
{
    struct bpf_program *prog = B->progs[i];
    struct bpf_link *link = NULL;
    (void)msglen;
    msg[0] = '\0';
    cbpf_log_begin();
    switch (how) {
    case CBPF_ATTACH_SECTION: link = bpf_program__attach(prog); break;
    case CBPF_ATTACH_KPROBE:
    case CBPF_ATTACH_KRETPROBE: {
        LIBBPF_OPTS(bpf_kprobe_opts, opts, .offset = offset, .retprobe = how == CBPF_ATTACH_KRETPROBE);
        link = bpf_program__attach_kprobe_opts(prog, target, &opts);
        break;
    }
    case CBPF_ATTACH_TRACEPOINT: {
        /* "<category>/<name>": a tracepoint's name has no slash */
        const char *slash = strrchr(target, '/');
        char *category = slash != NULL ? strndup(target, (size_t)(slash - target)) : NULL;
        if (category == NULL) {
            free(cbpf_log_end(st));
            return slash != NULL ? -ENOMEM : -EINVAL;
        }
        link = bpf_program__attach_tracepoint(prog, category, slash + 1);
        int saved = errno;
        free(category);
        errno = saved;
        break;
    }
    case CBPF_ATTACH_RAW_TRACEPOINT: link = bpf_program__attach_raw_tracepoint(prog, target); break;
    }
    int err = link == NULL ? errno : 0;
    free(cbpf_log_end(st)); /* libbpf's messages go to logging; the errno of the call that failed survives that */
    if (link == NULL) {
        return -(err ? err : EINVAL);
    }
    *att = (cbpf_attachment){.kind = CBPF_ATTACHMENT_LIBBPF, .fd = -1, .tc_netns_fd = -1, .nlinks = 1};
    att->links = PyMem_RawMalloc(sizeof(*att->links));
    if (att->links == NULL) {
        bpf_link__destroy(link);
        PyErr_NoMemory();
        return -ENOMEM;
    }
    att->links[0] = link;
    return 0;
}

const cbpf_backend_ops cbpf_backend_libbpf = {
    .what = "a libbpf object",
    .claims = libbpf_claims,
    .takes_open_options = true,
    .open = libbpf_open,
    .load = libbpf_load,
    .close = libbpf_close,
    .license = libbpf_license,
    .dialect = libbpf_dialect,
    .btf = libbpf_btf,
    .map_count = libbpf_map_count,
    .map_name = libbpf_map_name,
    .map_def = libbpf_map_def,
    .map_fd = libbpf_map_fd,
    .map_set = libbpf_map_set,
    .map_autocreate = libbpf_map_autocreate,
    .map_set_autocreate = libbpf_map_set_autocreate,
    .map_reuse_fd = libbpf_map_reuse_fd,
    .map_reused = libbpf_map_reused,
    .map_pin_path = libbpf_map_pin_path,
    .map_set_pin_path = libbpf_map_set_pin_path,
    .map_is_pinned = libbpf_map_is_pinned,
    .map_unpin = libbpf_map_unpin,
    .map_has_inner = libbpf_map_has_inner,
    .map_set_inner_map_fd = libbpf_map_set_inner_map_fd,
    .map_initial_value = libbpf_map_initial_value,
    .prog_count = libbpf_prog_count,
    .prog_name = libbpf_prog_name,
    .prog_section = libbpf_prog_section,
    .prog_type = libbpf_prog_type,
    .prog_set_type = libbpf_prog_set_type,
    .prog_expected_attach_type = libbpf_prog_expected_attach_type,
    .prog_set_expected_attach_type = libbpf_prog_set_expected_attach_type,
    .prog_autoload = libbpf_prog_autoload,
    .prog_set_autoload = libbpf_prog_set_autoload,
    .prog_autoattach = libbpf_prog_autoattach,
    .prog_set_autoattach = libbpf_prog_set_autoattach,
    .prog_fd = libbpf_prog_fd,
    .prog_insn_count = libbpf_prog_insn_count,
    .attach = libbpf_attach,
    .libbpf_program = libbpf_program,
    .attach_kinds = "every kind",
    .prog_settable = "every attribute",
};

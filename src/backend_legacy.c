/* cbpf: the legacy backend (backend.h): an Object in one of the formats libbpf 1.x refuses (legacy.h lists them),
 * parsed into a spec by legacy.c, then loaded by legacy_load.c into a legacy object. Before load the operations
 * read and change the spec; after, they read the loaded object (the spec is freed: its instructions are in the
 * kernel). */
#include "cbpf.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "legacy.h"

typedef struct {
    struct cbpf_legacy_spec *spec; /* until load */
    struct cbpf_legacy_obj *obj;   /* once loaded */
    size_t nmaps, nprogs;
    bool *autoload, *autoattach;   /* per program: what Object.load() and attach() read */
    char *license;
    const char *dialect;
} legacy_backend;

#define B ((legacy_backend *)b)

static bool legacy_claims(const void *elf, size_t size)
{
    return cbpf_legacy_is_legacy(elf, size);
}

/* The fds that Map.reuse() gave the spec (the loader dups them). */
static void close_reused(struct cbpf_legacy_spec *spec)
{
    for (size_t i = 0; spec != NULL && i < spec->nmaps; i++) {
        if (spec->maps[i].has_reuse) {
            close(spec->maps[i].reuse_fd);
            spec->maps[i].has_reuse = 0;
        }
    }
}

static void legacy_close(void *b)
{
    if (b == NULL) {
        return;
    }
    close_reused(B->spec);
    cbpf_legacy_spec_free(B->spec);
    cbpf_legacy_close(B->obj);
    PyMem_RawFree(B->autoload);
    PyMem_RawFree(B->autoattach);
    PyMem_RawFree(B->license);
    PyMem_RawFree(b);
}

static int legacy_open(ObjectObject *obj, const void *elf, size_t size, const cbpf_open_args *args, void **out)
{
    char err[512] = "";
    struct cbpf_legacy_spec *spec = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = cbpf_legacy_parse(elf, size, &spec, err, sizeof(err));
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        cbpf_object_error(obj, rc, "opening BPF object '%s' (legacy format): %s", args->name, err);
        return -1;
    }
    legacy_backend *b = PyMem_RawCalloc(1, sizeof(*b));
    if (b == NULL) {
        cbpf_legacy_spec_free(spec);
        PyErr_NoMemory();
        return -1;
    }
    b->spec = spec;
    b->nmaps = spec->nmaps;
    b->nprogs = spec->nprogs;
    b->dialect = spec->dialect;
    b->license = PyMem_RawMalloc(strlen(spec->license) + 1);
    b->autoload = PyMem_RawMalloc(spec->nprogs ? spec->nprogs : 1);
    b->autoattach = PyMem_RawMalloc(spec->nprogs ? spec->nprogs : 1);
    if (b->license == NULL || b->autoload == NULL || b->autoattach == NULL) {
        legacy_close(b);
        PyErr_NoMemory();
        return -1;
    }
    strcpy(b->license, spec->license);
    memset(b->autoload, true, spec->nprogs);
    memset(b->autoattach, true, spec->nprogs);
    *out = b;
    return 0;
}

/* legacy_load.c's message for a refused program: "program 'NAME' (section ...) was refused ...". */
static bool refused_program(const char *err, char *out, size_t size)
{
    const char *p = strncmp(err, "program '", 9) == 0 ? err + 9 : NULL;
    const char *end = p != NULL ? strchr(p, '\'') : NULL;
    if (end == NULL || strstr(end, "was refused") == NULL) {
        return false;
    }
    snprintf(out, size, "%.*s", (int)(end - p), p);
    return true;
}

static uint32_t spec_prog_type(const struct cbpf_legacy_spec *spec, const char *name)
{
    for (size_t i = 0; i < spec->nprogs; i++) {
        if (strcmp(spec->progs[i].name, name) == 0) {
            return spec->progs[i].prog_type;
        }
    }
    return 0;
}

static int legacy_load(ObjectObject *o, void *b, const char *name, const char *path_note)
{
    char err[512] = "", *log = NULL;
    struct cbpf_legacy_obj *obj = NULL;
    struct cbpf_legacy_spec *spec = B->spec;
    int rc;
    for (size_t i = 0; i < spec->nprogs; i++) {
        spec->progs[i].autoload = B->autoload[i];
    }
    Py_BEGIN_ALLOW_THREADS
    rc = cbpf_legacy_load(spec, &obj, &log, err, sizeof(err));
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        char what[768], program[256];
        /* legacy_load.c's words stay: they carry hints of their own (a missing license section...) */
        snprintf(what, sizeof(what), "loading BPF object '%s'%s (legacy format): %s", name, path_note, err);
        if (log != NULL && refused_program(err, program, sizeof(program))) {
            /* the verifier's log, marked as libbpf marks it */
            size_t len = strlen(log) + 64;
            char *marked = malloc(len);
            if (marked != NULL) {
                snprintf(marked, len, "-- BEGIN PROG LOAD LOG --\n%s-- END PROG LOAD LOG --", log);
            }
            cbpf_set_program_load_error(o, rc, what, program, spec_prog_type(spec, program), marked ? marked : log);
            free(marked);
        }
        else {
            cbpf_object_error(o, rc, "%s", what);
        }
        free(log);
        return -1;
    }
    B->obj = obj;
    /* the instructions are in the kernel now */
    close_reused(spec);
    cbpf_legacy_spec_free(spec);
    B->spec = NULL;
    return 0;
}

static const char *legacy_license(void *b)
{
    return B->license;
}

static const char *legacy_dialect(void *b)
{
    return B->dialect;
}

static const struct btf *legacy_btf(void *b)
{
    (void)b;
    return NULL;
}

/* ---- maps: the spec's before load, the loaded object's after ---- */

static struct cbpf_legacy_map_spec *map_spec(void *b, size_t i)
{
    return B->spec != NULL ? &B->spec->maps[i] : NULL;
}

static size_t legacy_map_count(void *b)
{
    return B->nmaps;
}

static const char *legacy_map_name(void *b, size_t i)
{
    return B->obj != NULL ? B->obj->maps[i].name : B->spec->maps[i].name;
}

static int legacy_map_fd(void *b, size_t i)
{
    return B->obj != NULL ? B->obj->maps[i].fd : -1;
}

/* After load, what the kernel made of the map (a reused pin is the map that was there). */
static int legacy_map_def(void *b, size_t i, struct cbpf_map_def *def)
{
    if (B->obj == NULL) {
        *def = B->spec->maps[i].def;
        return 0;
    }
    *def = B->obj->maps[i].def;
    if (B->obj->maps[i].fd < 0) {
        return 0;
    }
    struct bpf_map_info info = {0};
    __u32 len = sizeof(info);
    if (bpf_map_get_info_by_fd(B->obj->maps[i].fd, &info, &len) != 0) {
        return errno;
    }
    uint32_t numa_node = def->numa_node; /* the kernel does not tell */
    cbpf_map_def_from_info(&info, def);
    def->numa_node = numa_node;
    return 0;
}

static int legacy_map_set(void *b, size_t i, cbpf_map_field field, uint64_t v, PyObject *name)
{
    struct cbpf_map_def *def = &map_spec(b, i)->def;
    (void)name;
    switch (field) {
    case CBPF_MAP_TYPE: def->type = (uint32_t)v; break;
    case CBPF_MAP_KEY_SIZE: def->key_size = (uint32_t)v; break;
    case CBPF_MAP_VALUE_SIZE: def->value_size = (uint32_t)v; break;
    case CBPF_MAP_MAX_ENTRIES: def->max_entries = (uint32_t)v; break;
    case CBPF_MAP_FLAGS: def->map_flags = (uint32_t)v; break;
    case CBPF_MAP_NUMA_NODE: def->numa_node = (uint32_t)v; break;
    case CBPF_MAP_EXTRA: def->map_extra = v; break;
    }
    return 0;
}

static bool legacy_map_autocreate(void *b, size_t i)
{
    return B->obj != NULL ? B->obj->maps[i].fd >= 0 : !B->spec->maps[i].no_create;
}

static int legacy_map_set_autocreate(void *b, size_t i, bool on)
{
    map_spec(b, i)->no_create = !on;
    return 0;
}

/* The map becomes a dup of fd (legacy_load.c dups it again at load), and the spec's definition describes it. */
static int legacy_map_reuse_fd(void *b, size_t i, int fd, const struct bpf_map_info *info)
{
    struct cbpf_legacy_map_spec *m = map_spec(b, i);
    int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0) {
        return errno;
    }
    if (m->has_reuse) {
        close(m->reuse_fd);
    }
    m->has_reuse = 1;
    m->reuse_fd = dup;
    m->def.type = info->type;
    m->def.key_size = info->key_size;
    m->def.value_size = info->value_size;
    m->def.max_entries = info->max_entries;
    m->def.map_flags = info->map_flags;
    return 0;
}

static bool legacy_map_reused(void *b, size_t i)
{
    struct cbpf_legacy_map_spec *m = map_spec(b, i);
    return m != NULL && m->has_reuse;
}

static char **pin_path_of(void *b, size_t i)
{
    return B->obj != NULL ? &B->obj->maps[i].pin_path : &B->spec->maps[i].pin_path;
}

static const char *legacy_map_pin_path(void *b, size_t i)
{
    return *pin_path_of(b, i);
}

/* the loader reuses the map pinned there, or pins the new one */
static int legacy_map_set_pin_path(void *b, size_t i, const char *path)
{
    char *copy = path != NULL ? strdup(path) : NULL;
    if (path != NULL && copy == NULL) {
        return ENOMEM;
    }
    char **pin = pin_path_of(b, i);
    free(*pin);
    *pin = copy;
    return 0;
}

static bool legacy_map_is_pinned(void *b, size_t i)
{
    return *pin_path_of(b, i) != NULL;
}

static int legacy_map_unpin(void *b, size_t i)
{
    char **pin = pin_path_of(b, i);
    if (unlink(*pin) != 0 && errno != ENOENT) {
        return errno;
    }
    free(*pin);
    *pin = NULL;
    return 0;
}

/* its maps of maps name their inner map's template themselves (inner_map_idx, iproute2's inner_id) */
static bool legacy_map_has_inner(void *b, size_t i)
{
    (void)b;
    (void)i;
    return true;
}

/* ---- programs ---- */

static size_t legacy_prog_count(void *b)
{
    return B->nprogs;
}

static const char *legacy_prog_name(void *b, size_t i)
{
    return B->obj != NULL ? B->obj->progs[i].name : B->spec->progs[i].name;
}

static const char *legacy_prog_section(void *b, size_t i)
{
    return B->obj != NULL ? B->obj->progs[i].section : B->spec->progs[i].section;
}

static uint32_t legacy_prog_type(void *b, size_t i)
{
    return B->obj != NULL ? B->obj->progs[i].prog_type : B->spec->progs[i].prog_type;
}

static int legacy_prog_set_type(void *b, size_t i, uint32_t type)
{
    B->spec->progs[i].prog_type = type;
    return 0;
}

static uint32_t legacy_prog_expected_attach_type(void *b, size_t i)
{
    return B->obj != NULL ? B->obj->progs[i].expected_attach_type : B->spec->progs[i].expected_attach_type;
}

static int legacy_prog_set_expected_attach_type(void *b, size_t i, uint32_t type)
{
    B->spec->progs[i].expected_attach_type = type;
    return 0;
}

static bool legacy_prog_autoload(void *b, size_t i)
{
    return B->autoload[i];
}

static int legacy_prog_set_autoload(void *b, size_t i, bool on)
{
    B->autoload[i] = on;
    return 0;
}

static bool legacy_prog_autoattach(void *b, size_t i)
{
    return B->autoattach[i];
}

static void legacy_prog_set_autoattach(void *b, size_t i, bool on)
{
    B->autoattach[i] = on;
}

static int legacy_prog_fd(void *b, size_t i)
{
    return B->obj != NULL ? B->obj->progs[i].fd : -1;
}

static size_t legacy_prog_insn_count(void *b, size_t i)
{
    return B->obj != NULL ? B->obj->progs[i].insn_cnt : B->spec->progs[i].insn_cnt;
}

static int legacy_attach(cbpf_state *st, void *b, size_t i, cbpf_attach_how how, const char *target,
                         uint64_t offset, cbpf_attachment *att, char *msg, size_t msglen)
{
    const struct cbpf_legacy_prog *p = &B->obj->progs[i];
    enum cbpf_legacy_attach_kind kind = CBPF_LEGACY_ATTACH_NONE;
    int link_fd, perf_fd;
    (void)st;
    msg[0] = '\0';
    switch (how) {
    case CBPF_ATTACH_SECTION:
        kind = p->attach_kind;
        target = p->attach_target;
        break;
    case CBPF_ATTACH_KPROBE: kind = CBPF_LEGACY_ATTACH_KPROBE; break;
    case CBPF_ATTACH_KRETPROBE: kind = CBPF_LEGACY_ATTACH_KRETPROBE; break;
    case CBPF_ATTACH_TRACEPOINT: kind = CBPF_LEGACY_ATTACH_TRACEPOINT; break;
    case CBPF_ATTACH_RAW_TRACEPOINT: kind = CBPF_LEGACY_ATTACH_RAW_TP; break;
    }
    if (kind == CBPF_LEGACY_ATTACH_NONE) {
        return -EOPNOTSUPP; /* the section names no target */
    }
    int rc = cbpf_legacy_attach_fd(p->fd, kind, target, offset, &link_fd, &perf_fd, msg, msglen);
    if (rc < 0) {
        return rc;
    }
    *att = (cbpf_attachment){.kind = CBPF_ATTACHMENT_PERF, .fd = link_fd, .perf_fd = perf_fd, .tc_netns_fd = -1};
    if (perf_fd < 0) { /* a raw tracepoint's BPF link, or a perf event without one (kernels before 5.15) */
        att->kind = CBPF_ATTACHMENT_FD;
    }
    return 0;
}

const cbpf_backend_ops cbpf_backend_legacy = {
    .what = "a legacy object (struct bpf_map_def maps)",
    .claims = legacy_claims,
    .takes_open_options = false,
    .open = legacy_open,
    .load = legacy_load,
    .close = legacy_close,
    .license = legacy_license,
    .dialect = legacy_dialect,
    .btf = legacy_btf,
    .map_count = legacy_map_count,
    .map_name = legacy_map_name,
    .map_def = legacy_map_def,
    .map_fd = legacy_map_fd,
    .map_set = legacy_map_set,
    .map_autocreate = legacy_map_autocreate,
    .map_set_autocreate = legacy_map_set_autocreate,
    .map_reuse_fd = legacy_map_reuse_fd,
    .map_reused = legacy_map_reused,
    .map_pin_path = legacy_map_pin_path,
    .map_set_pin_path = legacy_map_set_pin_path,
    .map_is_pinned = legacy_map_is_pinned,
    .map_unpin = legacy_map_unpin,
    .map_has_inner = legacy_map_has_inner,
    .map_set_inner_map_fd = NULL, /* its maps of maps name their inner map by inner_map_idx */
    .map_initial_value = NULL,    /* no global data */
    .prog_count = legacy_prog_count,
    .prog_name = legacy_prog_name,
    .prog_section = legacy_prog_section,
    .prog_type = legacy_prog_type,
    .prog_set_type = legacy_prog_set_type,
    .prog_expected_attach_type = legacy_prog_expected_attach_type,
    .prog_set_expected_attach_type = legacy_prog_set_expected_attach_type,
    .prog_autoload = legacy_prog_autoload,
    .prog_set_autoload = legacy_prog_set_autoload,
    .prog_autoattach = legacy_prog_autoattach,
    .prog_set_autoattach = legacy_prog_set_autoattach,
    .prog_fd = legacy_prog_fd,
    .prog_insn_count = legacy_prog_insn_count,
    .attach = legacy_attach,
    .libbpf_program = NULL,
    .attach_kinds = "kprobes, tracepoints, raw tracepoints, xdp, tc, sockets and cgroups",
    .prog_settable = "type and expected_attach_type",
};

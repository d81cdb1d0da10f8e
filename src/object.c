/* cbpf.Object: a BPF ELF object opened, loaded and attached through libbpf. */
#include "cbpf.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/btf.h>

/* Reads a whole file into a new bytes object. */
static PyObject *read_file(PyObject *path)
{
    PyObject *encoded = NULL, *data = NULL;
    int fd = -1;
    if (!PyUnicode_FSConverter(path, &encoded)) {
        return NULL;
    }
    fd = open(PyBytes_AS_STRING(encoded), O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0) {
        cbpf_set_file_error(NULL, errno, path);
        goto done;
    }
    if (S_ISDIR(sb.st_mode)) {
        cbpf_set_file_error(NULL, EISDIR, path);
        goto done;
    }
    if (!S_ISREG(sb.st_mode)) {
        PyErr_Format(PyExc_ValueError, "%R is not a regular file", path);
        goto done;
    }
    data = PyBytes_FromStringAndSize(NULL, sb.st_size);
    if (data == NULL) {
        goto done;
    }
    char *p = PyBytes_AS_STRING(data);
    Py_ssize_t got = 0;
    while (got < sb.st_size) {
        ssize_t n = read(fd, p + got, (size_t)(sb.st_size - got));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            if (n == 0) {
                errno = EIO; /* the file shrank under us */
            }
            cbpf_set_file_error(NULL, errno, path);
            Py_CLEAR(data);
            goto done;
        }
        got += n;
    }
done:
    if (fd >= 0) {
        close(fd);
    }
    Py_XDECREF(encoded);
    return data;
}

/* "dir/counter.bpf.o" -> "counter" as libbpf names objects, so map names like "counter.bss" read the same. */
static PyObject *name_from_path(PyObject *path)
{
    PyObject *fs = PyOS_FSPath(path);
    if (fs == NULL) {
        return NULL;
    }
    PyObject *str = PyUnicode_Check(fs) ? Py_NewRef(fs) : PyUnicode_DecodeFSDefaultAndSize(PyBytes_AS_STRING(fs),
                                                                                           PyBytes_GET_SIZE(fs));
    Py_DECREF(fs);
    if (str == NULL) {
        return NULL;
    }
    Py_ssize_t len = PyUnicode_GET_LENGTH(str);
    Py_ssize_t slash = PyUnicode_FindChar(str, '/', 0, len, -1);
    Py_ssize_t start = slash < 0 ? 0 : slash + 1;
    Py_ssize_t dot = PyUnicode_FindChar(str, '.', start, len, 1);
    PyObject *name = PyUnicode_Substring(str, start, dot > start ? dot : len);
    Py_DECREF(str);
    return name;
}

/* The fds that Map.reuse() gave a legacy object's spec (legacy.c dups them at load). */
static void close_reused(struct cbpf_legacy_spec *spec)
{
    for (size_t i = 0; spec != NULL && i < spec->nmaps; i++) {
        if (spec->maps[i].has_reuse) {
            close(spec->maps[i].reuse_fd);
            spec->maps[i].has_reuse = 0;
        }
    }
}

/* Detaching a tracepoint or perf event waits for an RCU grace period in the kernel (tens of ms here): the links and
 * the libbpf object are freed with the GIL released, once the Python side no longer points at them. */
static void close_object(ObjectObject *self)
{
    if (self->closed) {
        return;
    }
    self->closed = true;
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (self->maps != NULL && PyDict_Next(self->maps, &pos, &key, &value)) {
        cbpf_map_invalidate((MapObject *)value);
    }
    pos = 0;
    while (self->programs != NULL && PyDict_Next(self->programs, &pos, &key, &value)) {
        cbpf_program_invalidate((ProgramObject *)value);
    }
    cbpf_attachment *atts = NULL;
    Py_ssize_t natts = cbpf_links_take_all(self, &atts);
    struct bpf_object *obj = self->obj;
    struct cbpf_legacy_obj *legacy = self->legacy;
    struct cbpf_legacy_spec *spec = self->legacy_spec;
    self->obj = NULL;
    self->legacy = NULL;
    self->legacy_spec = NULL;
    Py_CLEAR(self->elf);
    close_reused(spec);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < natts; i++) {
        cbpf_attachment_release(&atts[i]);
    }
    bpf_object__close(obj);
    cbpf_legacy_close(legacy);
    cbpf_legacy_spec_free(spec);
    Py_END_ALLOW_THREADS
    PyMem_Free(atts);
    Py_CLEAR(self->kept_links); /* detached now: dropping them runs no kernel work */
}

static int check_usable(ObjectObject *self)
{
    if (self->closed) {
        PyErr_Format(PyExc_ValueError, "Object '%U' is closed", self->name);
        return -1;
    }
    return 0;
}

/* " (from PATH)" for an object read from a file, "" for one given as bytes: load errors name the file. */
static const char *path_note(ObjectObject *self)
{
    static _Thread_local char note[600];
    const char *p = self->path != NULL && self->path != Py_None ? PyUnicode_AsUTF8(self->path) : NULL;
    if (p == NULL) {
        PyErr_Clear();
        return "";
    }
    snprintf(note, sizeof(note), " (from %s)", p);
    return note;
}

/* The program libbpf names in its warnings when it fails to load one. */
static bool libbpf_refused_program(const char *log, char *out, size_t size)
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

/* legacy.c's message for a refused program: "program 'NAME' (section ...) was refused ...". */
static bool legacy_refused_program(const char *err, char *out, size_t size)
{
    const char *p = strncmp(err, "program '", 9) == 0 ? err + 9 : NULL;
    const char *end = p != NULL ? strchr(p, '\'') : NULL;
    if (end == NULL || strstr(end, "was refused") == NULL) {
        return false;
    }
    snprintf(out, size, "%.*s", (int)(end - p), p);
    return true;
}

static uint32_t program_type(ObjectObject *self, const char *name)
{
    PyObject *key = PyUnicode_FromString(name);
    PyObject *p = key != NULL ? PyDict_GetItemWithError(self->programs, key) : NULL;
    Py_XDECREF(key);
    PyErr_Clear();
    return p != NULL ? ((ProgramObject *)p)->type : 0;
}

/* What the maps and programs were given before load is checked in one pass, before anything reaches the kernel. */
static int check_before_load(cbpf_state *st, ObjectObject *self)
{
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(self->maps, &pos, &key, &value)) {
        MapObject *m = (MapObject *)value;
        if (cbpf_map_check_before_load(m) < 0) {
            return -1;
        }
        /* LIBBPF_PIN_BY_NAME or a pin_path: libbpf pins in bpffs, which may not be mounted yet */
        const char *pin = m->map != NULL ? bpf_map__pin_path(m->map) : NULL;
        if (pin != NULL && cbpf_ensure_bpffs(st, pin) < 0) {
            return -1;
        }
    }
    pos = 0;
    while (PyDict_Next(self->programs, &pos, &key, &value)) {
        if (cbpf_program_check_before_load((ProgramObject *)value) < 0) {
            return -1;
        }
    }
    return 0;
}

int cbpf_object_check_idle(ObjectObject *obj, const char *what)
{
    if (obj != NULL && obj->busy) {
        PyErr_Format(PyExc_RuntimeError, "Object '%U' is being loaded by another thread: %s waits until load() "
                     "returns", obj->name, what);
        return -1;
    }
    return 0;
}

/* A legacy object: maps created, programs relocated and loaded by legacy.c, without the GIL. */
static PyObject *legacy_load(cbpf_state *st, ObjectObject *self)
{
    char err[512] = "", *log = NULL;
    struct cbpf_legacy_obj *obj = NULL;
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    int rc;
    while (PyDict_Next(self->programs, &pos, &key, &value)) {
        ProgramObject *p = (ProgramObject *)value;
        self->legacy_spec->progs[p->legacy_index].autoload = p->legacy_autoload;
    }
    const struct cbpf_legacy_spec *spec = self->legacy_spec;
    for (size_t i = 0; i < spec->nmaps; i++) {
        if (spec->maps[i].pin_path != NULL && cbpf_ensure_bpffs(st, spec->maps[i].pin_path) < 0) {
            close_object(self);
            return NULL;
        }
    }
    /* busy until the maps point at their fds: what runs meanwhile (a collection, logging) may switch threads */
    self->busy = true;
    Py_BEGIN_ALLOW_THREADS
    rc = cbpf_legacy_load(spec, &obj, &log, err, sizeof(err));
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        self->busy = false;
        char what[768], program[256];
        const char *name = cbpf_utf8(self->name);
        if (log != NULL && legacy_refused_program(err, program, sizeof(program))) {
            /* the verifier's log, marked as libbpf marks it */
            size_t len = strlen(log) + 64;
            char *marked = malloc(len);
            if (marked != NULL) {
                snprintf(marked, len, "-- BEGIN PROG LOAD LOG --\n%s-- END PROG LOAD LOG --", log);
            }
            /* legacy.c's words stay: they carry hints of their own (a missing license section...) */
            snprintf(what, sizeof(what), "loading BPF object '%s'%s (legacy format): %s", name, path_note(self), err);
            cbpf_set_program_load_error(self, rc, what, program, program_type(self, program), marked ? marked : log);
            free(marked);
        }
        else {
            cbpf_object_error(self, rc, "loading BPF object '%s'%s (legacy format): %s", name, path_note(self), err);
        }
        free(log);
        close_object(self);
        return NULL;
    }
    self->legacy = obj;
    self->loaded = true;
    Py_CLEAR(self->elf);
    /* the maps dict was filled in the spec's order, which is the loaded object's (names are unique) */
    pos = 0;
    for (size_t i = 0; i < obj->nmaps && PyDict_Next(self->maps, &pos, &key, &value); i++) {
        cbpf_map_loaded((MapObject *)value);
        if (obj->maps[i].fd >= 0 && cbpf_map_set_fd(st, (MapObject *)value, obj->maps[i].fd) < 0) {
            self->busy = false;
            return NULL;
        }
        if (obj->maps[i].pin_path != NULL) {
            Py_XSETREF(((MapObject *)value)->pin_path, PyUnicode_DecodeFSDefault(obj->maps[i].pin_path));
            if (((MapObject *)value)->pin_path == NULL) {
                self->busy = false;
                return NULL;
            }
        }
    }
    close_reused(self->legacy_spec);
    /* the instructions are in the kernel now */
    cbpf_legacy_spec_free(self->legacy_spec);
    self->legacy_spec = NULL;
    self->busy = false;
    return Py_NewRef(Py_None);
}

static PyObject *do_load(cbpf_state *st, ObjectObject *self)
{
    int err;
    char *log;
    if (check_usable(self) < 0) {
        return NULL;
    }
    if (self->loaded || self->busy) {
        return PyErr_Format(PyExc_ValueError, "Object '%U' is already %s", self->name,
                            self->busy ? "being loaded by another thread" : "loaded");
    }
    if (check_before_load(st, self) < 0) {
        return NULL;
    }
    if (self->is_legacy) {
        return legacy_load(st, self);
    }
    cbpf_log_begin();
    /* busy until the maps know their fds: logging libbpf's messages and making the maps' regions run Python code,
     * which may switch threads while libbpf's state is loaded but the maps still look unloaded */
    self->busy = true;
    Py_BEGIN_ALLOW_THREADS
    err = bpf_object__load(self->obj);
    Py_END_ALLOW_THREADS
    log = cbpf_log_end(st);
    if (err != 0) {
        char what[768], program[256];
        snprintf(what, sizeof(what), "loading BPF object '%s'%s", cbpf_utf8(self->name), path_note(self));
        if (libbpf_refused_program(log, program, sizeof(program))) {
            cbpf_set_program_load_error(self, err, what, program, program_type(self, program), log);
        }
        else {
            cbpf_set_load_error(self, err, what, log);
        }
        free(log);
        /* libbpf unloads what it loaded when load fails; the object can only be closed now. */
        self->busy = false;
        close_object(self);
        return NULL;
    }
    free(log);
    self->loaded = true;
    Py_CLEAR(self->elf);
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    PyObject *result = Py_None;
    while (PyDict_Next(self->maps, &pos, &key, &value)) {
        cbpf_map_loaded((MapObject *)value);
        if (cbpf_map_refresh(st, (MapObject *)value) < 0) {
            result = NULL;
            break;
        }
    }
    self->busy = false;
    Py_XINCREF(result);
    return result;
}

static PyObject *do_attach(cbpf_state *st, ObjectObject *self)
{
    PyObject *made = NULL, *key, *value;
    Py_ssize_t pos = 0;
    if (check_usable(self) < 0 || cbpf_object_check_idle(self, "attach()") < 0) {
        return NULL;
    }
    if (!self->loaded) {
        return PyErr_Format(PyExc_ValueError, "Object '%U' is not loaded: call load() first", self->name);
    }
    if (self->attached) {
        return PyErr_Format(PyExc_ValueError, "Object '%U' is already attached", self->name);
    }
    made = PyList_New(0);
    if (made == NULL) {
        return NULL;
    }
    while (PyDict_Next(self->programs, &pos, &key, &value)) {
        ProgramObject *prog = (ProgramObject *)value;
        if (self->closed) {
            /* making a Link may run a collection, and so another thread, which closed the object */
            PyErr_Format(PyExc_ValueError, "Object '%U' was closed while attach() ran", self->name);
            goto error;
        }
        if (!cbpf_program_autoload(prog) || !cbpf_program_autoattach(prog)) {
            continue;
        }
        /* a section that names no target (xdp, tc, socket...) is attached explicitly: None */
        PyObject *link = cbpf_program_attach_section(st, prog, true);
        if (link == NULL || (link != Py_None && PyList_Append(made, link) < 0)) {
            Py_XDECREF(link);
            goto error;
        }
        Py_DECREF(link);
    }
    if (PyList_SetSlice(self->kept_links, PY_SSIZE_T_MAX, PY_SSIZE_T_MAX, made) < 0) {
        goto error;
    }
    Py_DECREF(made);
    self->attached = true;
    Py_RETURN_NONE;
error:
    /* all or nothing: undo this call's links */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(made); i++) {
        cbpf_link_detach((LinkObject *)PyList_GET_ITEM(made, i));
    }
    Py_DECREF(made);
    return NULL;
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

/* An ELF of the other byte order (-target bpfeb here): libbpf opens it, reads its globals byte-swapped and fails
 * at load with "Endian mismatch"; the legacy loader cannot read it. Refused up front, whichever format. */
static int check_byte_order(ObjectObject *self, const char *cname, const unsigned char *elf, size_t size)
{
    static const unsigned char magic[4] = {0x7f, 'E', 'L', 'F'};
    if (size < 6 || memcmp(elf, magic, 4) != 0) {
        return 0; /* not an ELF: libbpf says so */
    }
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const unsigned char native = 1; /* ELFDATA2LSB */
#else
    const unsigned char native = 2; /* ELFDATA2MSB */
#endif
    if (elf[5] != native) {
        const char *order = elf[5] == 1 ? "little-endian" : elf[5] == 2 ? "big-endian" : "of no known byte order";
        cbpf_object_error(self, EINVAL, "opening BPF object '%s': not a valid BPF ELF object for this machine (the "
                          "object is %s, this machine is %s: compile with clang -target bpf, or bpf%s)", cname, order,
                          native == 1 ? "little-endian" : "big-endian", native == 1 ? "el" : "eb");
        return -1;
    }
    return 0;
}

/* dict[name] = item, taking over the caller's reference to item. */
static int add_by_name(PyObject *dict, PyObject *name, PyObject *item)
{
    int rc = PyDict_SetItem(dict, name, item);
    Py_DECREF(item);
    return rc;
}

/* An opened object (either format): open, with empty maps and programs dicts and no kept links yet. */
static int open_containers(ObjectObject *self)
{
    self->closed = false;
    self->maps = PyDict_New();
    self->programs = PyDict_New();
    self->kept_links = PyList_New(0);
    return self->maps == NULL || self->programs == NULL || self->kept_links == NULL ? -1 : 0;
}

/* A legacy object (struct bpf_map_def records in "maps", which libbpf 1.x refuses): parsed by legacy.c without the
 * GIL, its maps and programs made from the spec. */
static int open_legacy(cbpf_state *st, ObjectObject *self, const char *cname)
{
    char err[512] = "";
    struct cbpf_legacy_spec *spec = NULL;
    const void *data = PyBytes_AS_STRING(self->elf);
    size_t size = (size_t)PyBytes_GET_SIZE(self->elf);
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = cbpf_legacy_parse(data, size, &spec, err, sizeof(err));
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        cbpf_object_error(self, rc, "opening BPF object '%s' (legacy format): %s", cname, err);
        return -1;
    }
    self->is_legacy = true;
    self->legacy_spec = spec;
    self->dialect = spec->dialect;
    self->license = PyUnicode_FromString(spec->license);
    if (self->license == NULL || open_containers(self) < 0) {
        return -1;
    }
    for (size_t i = 0; i < spec->nmaps; i++) {
        MapObject *m = cbpf_map_from_legacy(st, self, &spec->maps[i]);
        if (m == NULL || add_by_name(self->maps, m->name, (PyObject *)m) < 0) {
            return -1;
        }
        /* where load() will look for it and pin it, known before */
        if (spec->maps[i].pin_path != NULL &&
            (m->pin_path = PyUnicode_DecodeFSDefault(spec->maps[i].pin_path)) == NULL) {
            return -1;
        }
    }
    for (size_t i = 0; i < spec->nprogs; i++) {
        ProgramObject *p = cbpf_program_from_legacy(st, self, (Py_ssize_t)i);
        if (p == NULL || add_by_name(self->programs, p->name, (PyObject *)p) < 0) {
            return -1;
        }
    }
    return 0;
}

/* kconfig as libbpf takes it: "CONFIG_A=y\nCONFIG_B=42\n", from that str or a mapping {"CONFIG_A": True, ...}
 * (True "y", False "n", ints as numbers, str as given). */
static PyObject *kconfig_text(PyObject *kconfig)
{
    if (PyUnicode_Check(kconfig)) {
        return Py_NewRef(kconfig);
    }
    if (!PyDict_Check(kconfig)) {
        return PyErr_Format(PyExc_TypeError, "kconfig must be a str or a dict, not %.100s", Py_TYPE(kconfig)->tp_name);
    }
    PyObject *parts = PyList_New(0), *key, *value, *text = NULL;
    Py_ssize_t pos = 0;
    if (parts == NULL) {
        return NULL;
    }
    while (PyDict_Next(kconfig, &pos, &key, &value)) {
        PyObject *line = NULL;
        if (!PyUnicode_Check(key)) {
            PyErr_Format(PyExc_TypeError, "kconfig keys must be str (CONFIG_...), not %.100s", Py_TYPE(key)->tp_name);
            goto done;
        }
        if (PyBool_Check(value)) {
            line = PyUnicode_FromFormat("%U=%s\n", key, value == Py_True ? "y" : "n");
        }
        else if (PyLong_Check(value) || PyUnicode_Check(value)) {
            line = PyUnicode_FromFormat("%U=%S\n", key, value);
        }
        else {
            PyErr_Format(PyExc_TypeError, "kconfig %U: a value must be a bool, an int or a str, not %.100s", key,
                         Py_TYPE(value)->tp_name);
        }
        if (line == NULL || PyList_Append(parts, line) < 0) {
            Py_XDECREF(line);
            goto done;
        }
        Py_DECREF(line);
    }
    PyObject *empty = PyUnicode_FromString("");
    text = empty != NULL ? PyUnicode_Join(empty, parts) : NULL; /* a NULL separator would be a space */
    Py_XDECREF(empty);
done:
    Py_DECREF(parts);
    return text;
}

/* An object whose code libbpf finds no program in (old LLVM's NOTYPE function symbols...) must not "load" with 0
 * programs: the sections it could not use are named. */
static int check_code_used(cbpf_state *st, ObjectObject *self, const char *cname)
{
    struct bpf_program *prog;
    size_t n = 0, i = 0;
    bpf_object__for_each_program(prog, self->obj) {
        n++;
    }
    const char **secs = PyMem_Calloc(n ? n : 1, sizeof(*secs));
    if (secs == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    bpf_object__for_each_program(prog, self->obj) {
        secs[i++] = bpf_program__section_name(prog);
    }
    char unused[400];
    size_t nunused = cbpf_elf_unused_code_sections(PyBytes_AS_STRING(self->elf), (size_t)PyBytes_GET_SIZE(self->elf),
                                                   secs, n, unused, sizeof(unused));
    PyMem_Free(secs);
    if (nunused) {
        cbpf_object_error(self, EINVAL,
                          "opening BPF object '%s': code section%s %s hold%s no program libbpf could use (no function "
                          "symbol: compiled by an old LLVM?)",
                          cname, nunused > 1 ? "s" : "", unused, nunused > 1 ? "" : "s");
        return -1;
    }
    return 0;
}

/* The Object a program opened from a pin belongs to: loaded, with no ELF and no maps; closing it closes the program
 * and detaches its Links as for any Object. */
ObjectObject *cbpf_object_for_pinned(cbpf_state *st, PyObject *name)
{
    ObjectObject *self = (ObjectObject *)st->Object_type->tp_alloc(st->Object_type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->name = Py_NewRef(name);
    if (open_containers(self) < 0) {
        self->closed = true;
        Py_DECREF(self);
        return NULL;
    }
    self->loaded = true;
    self->attached = true; /* attach() has nothing to do: no section names a target */
    return self;
}

static PyObject *Object_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"source", "name", "load", "attach", "pin_root", "btf_path", "kconfig", NULL};
    PyObject *source = NULL, *name = Py_None, *pin_root = Py_None, *btf_path = Py_None, *kconfig = Py_None;
    PyObject *pin_root_b = NULL, *btf_path_b = NULL, *kconfig_s = NULL;
    int load = 1, attach = 1;
    cbpf_state *st = cbpf_state_from_type(type);
    ObjectObject *self = NULL;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|$OppOOO:Object", kwlist, &source, &name, &load, &attach,
                                     &pin_root, &btf_path, &kconfig)) {
        return NULL;
    }
    if (name != Py_None && !PyUnicode_Check(name)) {
        return PyErr_Format(PyExc_TypeError, "name must be a str, not %.100s", Py_TYPE(name)->tp_name);
    }
    self = (ObjectObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->closed = true; /* until there is something to close */
    if (PyObject_CheckBuffer(source)) {
        Py_buffer view = {0};
        if (PyObject_GetBuffer(source, &view, PyBUF_SIMPLE) < 0) {
            goto error;
        }
        self->elf = PyBytes_FromStringAndSize(view.buf, view.len);
        PyBuffer_Release(&view);
        self->name = name != Py_None ? Py_NewRef(name) : PyUnicode_FromString("object");
    }
    else if (PyUnicode_Check(source) || PyObject_HasAttrString(source, "__fspath__")) {
        self->elf = read_file(source);
        if (self->elf == NULL) {
            goto error;
        }
        self->name = name != Py_None ? Py_NewRef(name) : name_from_path(source);
        PyObject *fs = PyOS_FSPath(source);
        if (fs == NULL) {
            goto error;
        }
        self->path = PyBytes_Check(fs) ? PyUnicode_DecodeFSDefaultAndSize(PyBytes_AS_STRING(fs), PyBytes_GET_SIZE(fs))
                                       : Py_NewRef(fs);
        Py_DECREF(fs);
        if (self->path == NULL) {
            goto error;
        }
    }
    else {
        PyErr_Format(PyExc_TypeError, "Object() takes a path or the ELF as bytes, not %.100s",
                     Py_TYPE(source)->tp_name);
        goto error;
    }
    if (self->elf == NULL || self->name == NULL) {
        goto error;
    }
    const char *cname = cbpf_c_string(self->name, "object name");
    if (cname == NULL) {
        goto error;
    }
    if (check_byte_order(self, cname, (const unsigned char *)PyBytes_AS_STRING(self->elf),
                         (size_t)PyBytes_GET_SIZE(self->elf)) < 0) {
        goto error;
    }
    /* detection asks libbpf about section names, which it answers with debug messages: dropped */
    cbpf_log_begin();
    int legacy = cbpf_legacy_is_legacy(PyBytes_AS_STRING(self->elf), (size_t)PyBytes_GET_SIZE(self->elf));
    cbpf_log_begin();
    if (legacy) {
        if (pin_root != Py_None || btf_path != Py_None || kconfig != Py_None) {
            PyErr_Format(PyExc_TypeError, "opening BPF object '%s': a legacy object (struct bpf_map_def maps) takes "
                         "no pin_root, btf_path or kconfig (it has no BTF): set Map.pin_path instead", cname);
            goto error;
        }
        if (open_legacy(st, self, cname) < 0) {
            goto error;
        }
        goto opened;
    }

    char bad[200];
    if (cbpf_elf_precheck(PyBytes_AS_STRING(self->elf), (size_t)PyBytes_GET_SIZE(self->elf), bad, sizeof(bad)) < 0 ||
        cbpf_elf_check_functions(PyBytes_AS_STRING(self->elf), (size_t)PyBytes_GET_SIZE(self->elf), bad,
                                 sizeof(bad)) < 0) {
        cbpf_object_error(self, EINVAL, "opening BPF object '%s': not a valid BPF ELF object (%s)", cname, bad);
        goto error;
    }
    if ((pin_root != Py_None && !PyUnicode_FSConverter(pin_root, &pin_root_b)) ||
        (btf_path != Py_None && !PyUnicode_FSConverter(btf_path, &btf_path_b)) ||
        (kconfig != Py_None && (kconfig_s = kconfig_text(kconfig)) == NULL)) {
        goto error;
    }
    if (btf_path_b != NULL && access(PyBytes_AS_STRING(btf_path_b), R_OK) != 0) {
        cbpf_set_file_error(st, errno, btf_path);
        goto error;
    }
    LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = cname,
                .pin_root_path = pin_root_b ? PyBytes_AS_STRING(pin_root_b) : NULL,
                .btf_custom_path = btf_path_b ? PyBytes_AS_STRING(btf_path_b) : NULL,
                .kconfig = kconfig_s ? PyUnicode_AsUTF8(kconfig_s) : NULL);
    cbpf_log_begin();
    self->obj = bpf_object__open_mem(PyBytes_AS_STRING(self->elf), (size_t)PyBytes_GET_SIZE(self->elf), &opts);
    int err = self->obj == NULL ? errno : 0;
    char *log = cbpf_log_end(st);
    if (self->obj == NULL) {
        /* The bytes are in memory: whatever libbpf says but ENOMEM is about them (ENOENT: "couldn't find symbol
         * table", ESRCH, EOPNOTSUPP: "program is static"...), so the error is the documented EINVAL, with
         * libbpf's own code and last message in the text. */
        char reason[300] = "", code[160];
        last_line(log, reason, sizeof(reason));
        cbpf_strerror(err, code, sizeof(code));
        if (err == ENOMEM) {
            cbpf_object_error(self, err, "opening BPF object '%s'", cname);
        }
        else {
            cbpf_object_error(self, EINVAL, "opening BPF object '%s': not a valid BPF ELF object (libbpf: %s%s%s)",
                              cname, reason[0] ? reason : code, reason[0] ? ": " : "", reason[0] ? code : "");
        }
        free(log);
        goto error;
    }
    free(log);
    char license[128];
    cbpf_elf_license(PyBytes_AS_STRING(self->elf), (size_t)PyBytes_GET_SIZE(self->elf), license, sizeof(license));
    self->license = PyUnicode_FromString(license);
    if (self->license == NULL || open_containers(self) < 0 || check_code_used(st, self, cname) < 0) {
        goto error;
    }
    struct bpf_map *map;
    bpf_object__for_each_map(map, self->obj) {
        MapObject *m = cbpf_map_from_libbpf(st, self, map);
        if (m == NULL || add_by_name(self->maps, m->name, (PyObject *)m) < 0) {
            goto error;
        }
    }
    struct bpf_program *prog;
    bpf_object__for_each_program(prog, self->obj) {
        ProgramObject *p = cbpf_program_new(st, self, prog);
        if (p == NULL || add_by_name(self->programs, p->name, (PyObject *)p) < 0) {
            goto error;
        }
    }
opened:
    Py_CLEAR(pin_root_b);
    Py_CLEAR(btf_path_b);
    Py_CLEAR(kconfig_s);
    if (load) {
        PyObject *r = do_load(st, self);
        if (r == NULL) {
            goto error;
        }
        Py_DECREF(r);
        if (attach) {
            r = do_attach(st, self);
            if (r == NULL) {
                goto error;
            }
            Py_DECREF(r);
        }
    }
    return (PyObject *)self;
error:
    Py_XDECREF(pin_root_b);
    Py_XDECREF(btf_path_b);
    Py_XDECREF(kconfig_s);
    if (self == NULL) {
        return NULL;
    }
    /* the maps point back at the object: without this, the fds would wait for the garbage collector */
    close_object(self);
    Py_DECREF(self);
    return NULL;
}

static PyObject *Object_load(ObjectObject *self, PyObject *Py_UNUSED(ignored))
{
    return do_load(cbpf_state_from_type(Py_TYPE(self)), self);
}

static PyObject *Object_attach(ObjectObject *self, PyObject *Py_UNUSED(ignored))
{
    return do_attach(cbpf_state_from_type(Py_TYPE(self)), self);
}

static PyObject *Object_close(ObjectObject *self, PyObject *Py_UNUSED(ignored))
{
    if (cbpf_object_check_idle(self, "close()") < 0) {
        return NULL;
    }
    close_object(self);
    Py_RETURN_NONE;
}

static PyObject *Object_enter(ObjectObject *self, PyObject *Py_UNUSED(ignored))
{
    if (check_usable(self) < 0) {
        return NULL;
    }
    return Py_NewRef(self);
}

static PyObject *Object_exit(ObjectObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)args;
    (void)nargs;
    PyObject *r = Object_close(self, NULL);
    if (r == NULL) {
        return NULL;
    }
    Py_DECREF(r);
    Py_RETURN_FALSE;
}

#define DESCRIBE_BUDGET 1000000 /* types visited by one description */

/* A BTF type as plain tuples, for the Python layer to build decoders and numpy dtypes from:
 *   ("int", size, signed, is_char, is_bool)  ("float", size)  ("bytes", size)  ("array", elem, count)
 *   ("struct" | "union", size, [(name, byte_offset, bitfield_bits, type), ...])
 *   ("datasec", size, [(name, byte_offset, size, type), ...])
 * typedefs, const, volatile and type tags are looked through; enums are ints, pointers 8-byte ints. */
static PyObject *describe_btf(const struct btf *btf, __u32 id, int depth, size_t *budget)
{
    if (depth > 64) {
        return PyErr_Format(PyExc_ValueError, "BTF type %u nests too deep", id);
    }
    /* nesting is bounded, fan-out is not: a struct whose members are that struct again, 64 deep, would take
     * forever (a mutated object did) */
    if (*budget == 0) {
        return PyErr_Format(PyExc_ValueError, "BTF type %u is too large to describe (over %d types in all)", id,
                            DESCRIBE_BUDGET);
    }
    (*budget)--;
    const struct btf_type *t = btf__type_by_id(btf, id);
    for (int hops = 0; t != NULL && (btf_is_mod(t) || btf_is_typedef(t)); hops++) {
        if (hops == 64) { /* a typedef of itself, in a mutated object: a cycle */
            return PyErr_Format(PyExc_ValueError, "BTF type %u: typedefs and modifiers in a cycle", id);
        }
        id = t->type;
        t = btf__type_by_id(btf, id);
    }
    if (t == NULL) {
        return PyErr_Format(PyExc_ValueError, "no BTF type %u", id);
    }
    if (btf_is_int(t)) {
        /* plain `char` (not signed/unsigned char, __u8): its arrays are text */
        bool is_char = strcmp(btf__name_by_offset(btf, t->name_off), "char") == 0;
        return Py_BuildValue("(sIOOO)", "int", t->size, (btf_int_encoding(t) & BTF_INT_SIGNED) ? Py_True : Py_False,
                             is_char ? Py_True : Py_False, (btf_int_encoding(t) & BTF_INT_BOOL) ? Py_True : Py_False);
    }
    if (btf_is_any_enum(t)) {
        return Py_BuildValue("(sIO)", "int", t->size, btf_kflag(t) ? Py_True : Py_False);
    }
    if (btf_is_ptr(t)) {
        return Py_BuildValue("(sIO)", "int", (unsigned)sizeof(void *), Py_False);
    }
    if (btf_is_float(t)) {
        return Py_BuildValue("(sI)", "float", t->size);
    }
    if (btf_is_array(t)) {
        const struct btf_array *a = btf_array(t);
        PyObject *elem = describe_btf(btf, a->type, depth + 1, budget);
        return elem ? Py_BuildValue("(sNI)", "array", elem, a->nelems) : NULL;
    }
    if (btf_is_composite(t) || btf_is_datasec(t)) {
        bool sec = btf_is_datasec(t);
        __u16 n = btf_vlen(t);
        PyObject *fields = PyList_New(n);
        if (fields == NULL) {
            return NULL;
        }
        for (__u16 i = 0; i < n; i++) {
            PyObject *field;
            if (sec) {
                const struct btf_var_secinfo *v = btf_var_secinfos(t) + i;
                const struct btf_type *var = btf__type_by_id(btf, v->type);
                if (var == NULL || !btf_is_var(var)) {
                    Py_DECREF(fields);
                    return PyErr_Format(PyExc_ValueError, "BTF datasec %u: entry %u is not a variable", id, i);
                }
                PyObject *type = describe_btf(btf, var->type, depth + 1, budget);
                field = type ? Py_BuildValue("(NIIN)", cbpf_elf_name(btf__name_by_offset(btf, var->name_off)), v->offset,
                                             v->size, type)
                             : NULL;
            }
            else {
                const struct btf_member *m = btf_members(t) + i;
                PyObject *type = describe_btf(btf, m->type, depth + 1, budget);
                /* (name, byte offset, bitfield bits or 0, type, bit offset) */
                field = type ? Py_BuildValue("(NIINI)", cbpf_elf_name(btf__name_by_offset(btf, m->name_off)),
                                             btf_member_bit_offset(t, i) / 8, btf_member_bitfield_size(t, i), type,
                                             btf_member_bit_offset(t, i))
                             : NULL;
            }
            if (field == NULL) {
                Py_DECREF(fields);
                return NULL;
            }
            PyList_SET_ITEM(fields, i, field);
        }
        /* (kind, size, members, name: "" when anonymous) */
        return Py_BuildValue("(sINN)", sec ? "datasec" : btf_is_struct(t) ? "struct" : "union", t->size, fields,
                             cbpf_elf_name(btf__name_by_offset(btf, t->name_off)));
    }
    __s64 size = btf__resolve_size(btf, id);
    return Py_BuildValue("(sL)", "bytes", (long long)(size < 0 ? 0 : size));
}

static PyObject *Object_btf_describe(ObjectObject *self, PyObject *arg)
{
    unsigned long id = PyLong_AsUnsignedLong(arg);
    if (id == (unsigned long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    if (check_usable(self) < 0 || cbpf_object_check_idle(self, "reading its BTF") < 0) {
        return NULL;
    }
    const struct btf *btf = self->obj != NULL ? bpf_object__btf(self->obj) : NULL; /* legacy objects: no BTF */
    if (btf == NULL || id == 0) {
        Py_RETURN_NONE;
    }
    size_t budget = DESCRIBE_BUDGET;
    return describe_btf(btf, (__u32)id, 0, &budget);
}

/* The id of a named struct or union (a typedef of one too) in the object's BTF, or None. */
static PyObject *Object_btf_find(ObjectObject *self, PyObject *name)
{
    if (!PyUnicode_Check(name)) {
        return PyErr_Format(PyExc_TypeError, "a type name must be a str, not %.100s", Py_TYPE(name)->tp_name);
    }
    const char *cname = cbpf_c_string(name, "type name");
    if (cname == NULL || check_usable(self) < 0 || cbpf_object_check_idle(self, "reading its BTF") < 0) {
        return NULL;
    }
    const struct btf *btf = self->obj != NULL ? bpf_object__btf(self->obj) : NULL;
    if (btf == NULL) {
        Py_RETURN_NONE;
    }
    static const int kinds[] = {BTF_KIND_STRUCT, BTF_KIND_UNION, BTF_KIND_TYPEDEF};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        __s32 id = btf__find_by_name_kind(btf, cname, kinds[i]);
        if (id > 0) {
            return PyLong_FromLong(id);
        }
    }
    Py_RETURN_NONE;
}

static PyObject *Object_get_maps(ObjectObject *self, void *Py_UNUSED(closure))
{
    if (self->maps == NULL) {
        return PyErr_Format(PyExc_ValueError, "Object has no maps: it was never opened");
    }
    return PyDictProxy_New(self->maps);
}

static PyObject *Object_get_name(ObjectObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->name ? self->name : Py_None);
}

static PyObject *Object_get_path(ObjectObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->path ? self->path : Py_None);
}

static PyObject *Object_get_loaded(ObjectObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->loaded && !self->closed);
}

static PyObject *Object_get_legacy(ObjectObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->is_legacy);
}

static PyObject *Object_get_license(ObjectObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->license != NULL ? self->license : Py_None);
}

static PyObject *Object_get_dialect(ObjectObject *self, void *Py_UNUSED(closure))
{
    return self->dialect != NULL ? PyUnicode_FromString(self->dialect) : Py_NewRef(Py_None);
}

static PyObject *Object_get_closed(ObjectObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->closed);
}

static PyObject *Object_get_programs(ObjectObject *self, void *Py_UNUSED(closure))
{
    if (self->programs == NULL) {
        return PyErr_Format(PyExc_ValueError, "Object has no programs: it was never opened");
    }
    return PyDictProxy_New(self->programs);
}

/* The attached Links, oldest first (the list is newest first). */
static PyObject *Object_get_links(ObjectObject *self, void *Py_UNUSED(closure))
{
    Py_ssize_t n = 0;
    for (LinkObject *l = self->live; l != NULL; l = l->next) {
        n++;
    }
    PyObject *links = PyTuple_New(n);
    if (links == NULL) {
        return NULL;
    }
    for (LinkObject *l = self->live; l != NULL; l = l->next) {
        PyTuple_SET_ITEM(links, --n, Py_NewRef(l));
    }
    return links;
}

static PyObject *Object_get_nlinks(ObjectObject *self, void *Py_UNUSED(closure))
{
    Py_ssize_t n = 0;
    for (LinkObject *l = self->live; l != NULL; l = l->next) {
        n++;
    }
    return PyLong_FromSsize_t(n);
}

static PyObject *Object_repr(ObjectObject *self)
{
    return PyUnicode_FromFormat("<cbpf.Object '%U'%s>", self->name ? self->name : Py_None,
                                self->closed ? " (closed)" : self->loaded ? "" : " (not loaded)");
}

static int Object_traverse(ObjectObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->maps);
    Py_VISIT(self->programs);
    Py_VISIT(self->kept_links);
    return 0;
}

static int Object_clear(ObjectObject *self)
{
    /* The maps die with the object: close first so none keeps a stale fd. */
    close_object(self);
    Py_CLEAR(self->maps);
    Py_CLEAR(self->programs);
    Py_CLEAR(self->kept_links);
    return 0;
}

static void Object_dealloc(ObjectObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Object_clear(self);
    Py_CLEAR(self->name);
    Py_CLEAR(self->license);
    Py_CLEAR(self->elf);
    Py_CLEAR(self->path);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyMethodDef Object_methods[] = {
    {"load", (PyCFunction)Object_load, METH_NOARGS,
     "load($self, /)\n--\n\nCreates the maps and loads the programs into the kernel."},
    {"attach", (PyCFunction)Object_attach, METH_NOARGS,
     "attach($self, /)\n--\n\nAttaches every program (autoload and autoattach on) whose section name says where "
     "(kprobe/..., tracepoint/..., raw_tracepoint/..., ...); the object keeps the Links. Programs whose section names "
     "no target (xdp, tc, socket) are left for their attach_* methods."},
    {"close", (PyCFunction)Object_close, METH_NOARGS,
     "close($self, /)\n--\n\nDetaches every Link of its programs and frees the maps and programs. Safe to call "
     "twice."},
    {"_btf_describe", (PyCFunction)Object_btf_describe, METH_O,
     "_btf_describe($self, type_id, /)\n--\n\nA BTF type of the object as nested tuples, or None without BTF."},
    {"_btf_find", (PyCFunction)Object_btf_find, METH_O,
     "_btf_find($self, name, /)\n--\n\nThe BTF id of the struct, union or typedef called name, or None."},
    {"__enter__", (PyCFunction)Object_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))Object_exit, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Object_getset[] = {
    {"maps", (getter)Object_get_maps, NULL, "The object's maps by name (read-only mapping of Map).", NULL},
    {"name", (getter)Object_get_name, NULL, "The object's name.", NULL},
    {"path", (getter)Object_get_path, NULL, "The file the object was read from, or None (given as bytes).", NULL},
    {"loaded", (getter)Object_get_loaded, NULL, "True while loaded in the kernel.", NULL},
    {"closed", (getter)Object_get_closed, NULL, "True once closed.", NULL},
    {"legacy", (getter)Object_get_legacy, NULL,
     "True for an object in one of the legacy formats that libbpf 1.x refuses (struct bpf_map_def maps in a section "
     "named \"maps\", and the other dialects of docs/guide/legacy.md), loaded by cbpf's own loader.",
     NULL},
    {"license", (getter)Object_get_license, NULL,
     "The license its programs are loaded with: its \"license\" section, \"\" when it has none (a legacy object "
     "then loads as old loaders did; the kernel refuses it GPL-only helpers).",
     NULL},
    {"dialect", (getter)Object_get_dialect, NULL,
     "A legacy object's dialect (\"bpf_map_def\", \"iproute2\", \"gobpf\", \"bpf_map_def+btf\", \"none\": see "
     "docs/guide/legacy.md), None for the others.",
     NULL},
    {"programs", (getter)Object_get_programs, NULL, "The object's programs by name (read-only mapping of Program).",
     NULL},
    {"links", (getter)Object_get_links, NULL, "The attached Links of its programs, oldest first.", NULL},
    {"attached_count", (getter)Object_get_nlinks, NULL, "How many Links of its programs are attached.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Object_slots[] = {
    {Py_tp_doc, "Object(source, *, name=None, load=True, attach=True, pin_root=None, btf_path=None, kconfig=None)"
                "\n--\n\n"
                "A BPF ELF object (a path, or the ELF as bytes): opened, loaded and attached by default. With "
                "load=False, its maps and programs can be configured before load(). pin_root: the bpffs directory for "
                "maps pinned by name (default /sys/fs/bpf); btf_path: a BTF file to relocate CO-RE programs against "
                "instead of the running kernel's; kconfig: CONFIG_* values for __kconfig externs (a str of lines or a "
                "dict). "
                "close() (or leaving a with block, or garbage collection) detaches and frees everything."},
    {Py_tp_new, Object_new},
    {Py_tp_methods, Object_methods},
    {Py_tp_getset, Object_getset},
    {Py_tp_repr, Object_repr},
    {Py_tp_traverse, Object_traverse},
    {Py_tp_clear, Object_clear},
    {Py_tp_dealloc, Object_dealloc},
    {0, NULL},
};

PyType_Spec cbpf_object_spec = {
    .name = "cbpf._cbpf.Object",
    .basicsize = sizeof(ObjectObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = Object_slots,
};

/* cbpf.Map: one BPF map of a loaded object, read and written through its fd. */
#include "cbpf.h"

#include <bpf/btf.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <limits.h>
#include <linux/magic.h>
#include <strings.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <unistd.h>

static bool is_percpu(uint32_t type)
{
    return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY ||
           type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

static void set_layout(MapObject *self)
{
    self->value_stride = self->value_size;
    self->ncpus = 1;
    if (is_percpu(self->type)) {
        int n = libbpf_num_possible_cpus();
        self->ncpus = n > 0 ? (uint32_t)n : 1;
        self->value_stride = (self->value_size + 7) & ~7u;
    }
}

/* Maps BPF_F_MMAPABLE arrays (and so the object's .bss/.data/.rodata) so that fetch() and memoryview() read the
 * kernel's memory directly. A map that cannot be mapped simply goes through the syscalls. */
static int setup_mmap(cbpf_state *st, MapObject *self)
{
    if (self->type != BPF_MAP_TYPE_ARRAY || !(self->flags & BPF_F_MMAPABLE) || self->fd < 0 ||
        self->region != NULL) {
        return 0;
    }
    size_t stride = ((size_t)self->value_size + 7) & ~(size_t)7, size;
    if (cbpf_checked_mul(stride, (size_t)self->max_entries, &size)) {
        return 0; /* cannot be mapped: read through the syscalls */
    }
    bool writable;
    PyObject *region = cbpf_region_new(st, self->fd, size ? size : 1, &writable);
    if (region == NULL) {
        return -1;
    }
    self->region = (RegionObject *)region;
    self->mm = self->region->addr;
    return 0;
}

/* The one place a Map takes its definition, whoever describes it (an object's backend, the kernel). */
static void apply_def(MapObject *self, const struct cbpf_map_def *def)
{
    self->type = def->type;
    self->key_size = def->key_size;
    self->value_size = def->value_size;
    self->max_entries = def->max_entries;
    self->flags = def->map_flags;
    self->btf_key_type_id = def->btf_key_type_id;
    self->btf_value_type_id = def->btf_value_type_id;
    set_layout(self);
}

/* The object's backend, which holds the map's definition; NULL for a map of its own or once its object is closed. */
static void *map_backend(MapObject *self)
{
    return self->owner != NULL ? self->owner->backend : NULL;
}

static const cbpf_backend_ops *map_ops(MapObject *self)
{
    return self->owner->ops;
}

/* Its object is loaded: the fd and the definition as created (sizes may change between open and load) come from
 * the backend, once; the borrowed inner map is no longer needed. */
int cbpf_map_loaded(cbpf_state *st, MapObject *self)
{
    void *b = map_backend(self);
    uint32_t key_id = self->btf_key_type_id, value_id = self->btf_value_type_id;
    struct cbpf_map_def def;
    Py_CLEAR(self->inner_map);
    int err = map_ops(self)->map_def(b, self->index, &def);
    if (err != 0) {
        cbpf_map_error(self, err, "reading its info");
        return -1;
    }
    self->fd = map_ops(self)->map_fd(b, self->index);
    apply_def(self, &def);
    /* libbpf creates some map types (queues, stacks, stack traces...) without BTF and then forgets their ids: the
     * ids found at open still name their types in the object's BTF */
    if (self->fd >= 0 && def.btf_key_type_id == 0 && def.btf_value_type_id == 0) {
        self->btf_key_type_id = key_id;
        self->btf_value_type_id = value_id;
    }
    if (self->fd >= 0) {
        struct bpf_map_info info = {0};
        __u32 len = sizeof(info);
        if (bpf_map_get_info_by_fd(self->fd, &info, &len) == 0) {
            self->id = info.id;
        }
    }
    return setup_mmap(st, self);
}

/* Forgets the fd (closing it when the map owns it) and the mapping; memoryviews keep the region alive. */
void cbpf_map_invalidate(MapObject *self)
{
    if (self->owns_fd && self->fd >= 0) {
        close(self->fd);
    }
    self->owns_fd = false;
    self->fd = -1;
    self->mm = NULL;
    Py_CLEAR(self->region);
}

/* A Map of type tp: the C type for an object's maps (the Python layer gives them its class as it hands them out),
 * the class a classmethod was called on for Map.create() and Map.from_pinned(). */
static MapObject *map_alloc(PyTypeObject *tp, ObjectObject *owner, const char *name)
{
    MapObject *self = (MapObject *)tp->tp_alloc(tp, 0);
    if (self == NULL) {
        return NULL;
    }
    self->owner = owner ? (ObjectObject *)Py_NewRef(owner) : NULL;
    self->fd = -1;
    self->name = cbpf_elf_name(name);
    if (self->name == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return self;
}

/* A map of an opened Object, as its backend describes it: usable once the object is loaded (cbpf_map_loaded). */
MapObject *cbpf_map_new(cbpf_state *st, ObjectObject *owner, size_t index)
{
    struct cbpf_map_def def;
    MapObject *self = map_alloc(st->Map_type, owner, owner->ops->map_name(owner->backend, index));
    if (self == NULL) {
        return NULL;
    }
    self->index = index;
    int err = owner->ops->map_def(owner->backend, index, &def);
    if (err != 0) {
        cbpf_map_error(self, err, "reading its definition");
        Py_DECREF(self);
        return NULL;
    }
    apply_def(self, &def);
    return self;
}

/* A map over fd, as the kernel describes it. */
static void apply_info(MapObject *self, int fd, bool owns_fd, const struct bpf_map_info *info)
{
    struct cbpf_map_def def;
    cbpf_map_def_from_info(info, &def);
    self->fd = fd;
    self->owns_fd = owns_fd;
    self->id = info->id;
    apply_def(self, &def);
}

/* A map the Map object owns, from an fd it now owns: Map.create(), Map.from_pinned(). */
static PyObject *map_from_owned_fd(cbpf_state *st, PyTypeObject *cls, int fd)
{
    struct bpf_map_info info = {0};
    __u32 len = sizeof(info);
    if (bpf_map_get_info_by_fd(fd, &info, &len) != 0) {
        int err = errno;
        close(fd);
        return cbpf_set_error(st, err, "reading the map's info");
    }
    MapObject *self = map_alloc(cls, NULL, info.name);
    if (self == NULL) {
        close(fd);
        return NULL;
    }
    apply_info(self, fd, true, &info);
    if (setup_mmap(st, self) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int check_open(MapObject *self)
{
    if (self->fd >= 0) {
        return 0;
    }
    if (self->owner == NULL) {
        PyErr_Format(PyExc_ValueError, "map '%U' is closed", self->name);
        return -1;
    }
    if (self->owner != NULL && self->owner->closed) {
        PyErr_Format(PyExc_ValueError, "map '%U' is closed: its Object was closed", self->name);
    }
    else if (self->owner != NULL && !self->owner->loaded) {
        PyErr_Format(PyExc_ValueError, "map '%U' is not loaded yet: call Object.load() first", self->name);
    }
    else if (!cbpf_map_autocreate(self)) { /* a loaded object's map without an fd */
        PyErr_Format(PyExc_ValueError, "map '%U' was not created: its autocreate was False", self->name);
    }
    else {
        PyErr_Format(PyExc_ValueError, "map '%U' is closed", self->name);
    }
    return -1;
}

/* Maps without keys: a keyed call or a whole-map read fails in the kernel with EINVAL or ENOTSUPP. What the map is
 * and what reads it instead, or NULL for a map with keys. */
static const char *keyless_use(uint32_t type)
{
    switch (type) {
    case BPF_MAP_TYPE_QUEUE: return "a queue: it has no keys to look up or iterate; use push(), pop() and peek()";
    case BPF_MAP_TYPE_STACK: return "a stack: it has no keys to look up or iterate; use push(), pop() and peek()";
    case BPF_MAP_TYPE_BLOOM_FILTER:
        return "a bloom filter: it has no keys and its values cannot be read back; use push(value) and "
               "`value in map`";
    case BPF_MAP_TYPE_RINGBUF:
        return "a ring buffer: it has no keys to look up or iterate; read its events with cbpf.RingBuffer(map)";
    case BPF_MAP_TYPE_USER_RINGBUF:
        return "a user ring buffer: it has no keys to look up or iterate (BPF programs drain it)";
    default: return NULL;
    }
}

/* check_open(), and a map with keys: `op` names the call refused. */
int cbpf_map_check_keyed(MapObject *self, const char *op)
{
    if (check_open(self) < 0) {
        return -1;
    }
    const char *use = keyless_use(self->type);
    if (use != NULL) {
        PyErr_Format(PyExc_TypeError, "%s: map '%U' is %s", op, self->name, use);
        return -1;
    }
    return 0;
}

/* An exact int of at most one internal digit (30 bits and a sign), read without a call. */
static inline bool compact_int(PyObject *obj, long *v)
{
    if (!PyLong_CheckExact(obj)) {
        return false;
    }
#if PY_VERSION_HEX >= 0x030C0000
    if (!PyUnstable_Long_IsCompact((PyLongObject *)obj)) {
        return false;
    }
    *v = (long)PyUnstable_Long_CompactValue((PyLongObject *)obj);
    return true;
#else
    Py_ssize_t n = Py_SIZE(obj);
    if (n < -1 || n > 1) {
        return false;
    }
    *v = n * (long)((PyLongObject *)obj)->ob_digit[0];
    return true;
#endif
}

/* A buffer of floating-point numbers (struct module format: e, f, d, g; Zf, Zd, Zg complex). */
static bool float_format(const char *format)
{
    if (format == NULL) {
        return false;
    }
    while (*format && strchr("@=<>!", *format)) {
        format++;
    }
    if (*format == 'Z') {
        format++;
    }
    return format[0] != '\0' && format[1] == '\0' && strchr("efdg", format[0]) != NULL;
}

/* Turns a key or value into bytes of exactly `size`: a Python int is packed in native byte order for sizes
 * 1, 2, 4 and 8; anything with the buffer protocol must have that many bytes. `scratch` holds 8 bytes. On
 * success *out points at the bytes and, for a buffer, `view` must be released by the caller. */
static int to_bytes(PyObject *obj, uint32_t size, const char *what, PyObject *mapname, uint64_t *scratch,
                    Py_buffer *view, const void **out)
{
    if (!PyLong_Check(obj) && PyObject_CheckBuffer(obj)) {
        if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
            return -1;
        }
        if (what[0] == 'k' && float_format(view->format)) {
            /* a float is refused as a key: so is a numpy float, whose bytes are no better a key */
            PyErr_Format(PyExc_TypeError, "map '%U' takes a key as an int or a buffer of %u bytes, not floats (%.100s)",
                         mapname, size, Py_TYPE(obj)->tp_name);
            PyBuffer_Release(view);
            return -1;
        }
        if ((size_t)view->len != size) {
            PyErr_Format(PyExc_ValueError, "map '%U' takes a %s of %u bytes, got a buffer of %zd bytes", mapname,
                         what, size, view->len);
            PyBuffer_Release(view);
            return -1;
        }
        *out = view->buf;
        return 0;
    }
    long small;
    if (size == 4 && compact_int(obj, &small)) {
        /* the common key (a pid, an index): no detour through PyNumber_Index */
        *(uint32_t *)scratch = (uint32_t)small;
        *out = scratch;
        return 0;
    }
    if (!PyIndex_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "map '%U' takes a %s as an int or a buffer of %u bytes, not %.100s", mapname,
                     what, size, Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (size != 1 && size != 2 && size != 4 && size != 8) {
        PyErr_Format(PyExc_TypeError,
                     "map '%U' has a %u-byte %s: pass a buffer of %u bytes (an int packs only into 1, 2, 4 or 8)",
                     mapname, size, what, size);
        return -1;
    }
    PyObject *num = PyNumber_Index(obj);
    if (num == NULL) {
        return -1;
    }
    /* Accept both the unsigned range and the signed one (stored as two's complement). */
    int overflow = 0;
    long long s = PyLong_AsLongLongAndOverflow(num, &overflow);
    unsigned long long u;
    if (overflow > 0) {
        u = PyLong_AsUnsignedLongLong(num);
        if (u == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            overflow = 2;
        }
        else {
            overflow = 0;
        }
    }
    else {
        u = (unsigned long long)s;
    }
    Py_DECREF(num);
    if (!overflow && s == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (!overflow && size < 8) {
        unsigned bits = size * 8;
        if (s < 0 ? s < -(1LL << (bits - 1)) : u >= (1ULL << bits)) {
            overflow = 1;
        }
    }
    if (overflow) {
        PyErr_Format(PyExc_OverflowError, "%s %R does not fit the %u-byte %s of map '%U'", what, obj, size, what,
                     mapname);
        return -1;
    }
    switch (size) {
    case 1: *(uint8_t *)scratch = (uint8_t)u; break;
    case 2: *(uint16_t *)scratch = (uint16_t)u; break;
    case 4: *(uint32_t *)scratch = (uint32_t)u; break;
    default: *scratch = u; break;
    }
    *out = scratch;
    return 0;
}

int cbpf_map_to_bytes(PyObject *obj, uint32_t size, const char *what, PyObject *mapname, uint64_t *scratch,
                      Py_buffer *view, const void **out)
{
    return to_bytes(obj, size, what, mapname, scratch, view, out);
}

int cbpf_map_check_open(MapObject *self)
{
    return check_open(self);
}

int cbpf_map_key(cbpf_state *st, MapObject *self, PyObject *key, void *scratch, Py_buffer *view, const void **out)
{
    (void)st;
    return to_bytes(key, self->key_size, "key", self->name, scratch, view, out);
}

static bool holds_fds(uint32_t type)
{
    return type == BPF_MAP_TYPE_PROG_ARRAY || type == BPF_MAP_TYPE_ARRAY_OF_MAPS ||
           type == BPF_MAP_TYPE_HASH_OF_MAPS || type == BPF_MAP_TYPE_PERF_EVENT_ARRAY;
}

/* A value for update(): maps of maps and program arrays also take the Map (or Program) itself, by its fd. */
static int value_bytes(MapObject *self, PyObject *value, uint64_t *scratch, Py_buffer *view, const void **out)
{
    if (holds_fds(self->type) && !PyIndex_Check(value) && !PyObject_CheckBuffer(value)) {
        PyObject *fd = PyObject_GetAttrString(value, "fd");
        if (fd == NULL) {
            if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
                const char *what = self->type == BPF_MAP_TYPE_PROG_ARRAY      ? "a Program, "
                                   : self->type == BPF_MAP_TYPE_PERF_EVENT_ARRAY ? ""
                                                                                 : "a Map, ";
                PyErr_Format(PyExc_TypeError, "a value of map '%U' is %san fd or a buffer of %u bytes, not %.200s",
                             self->name, what, self->value_size, Py_TYPE(value)->tp_name);
            }
            return -1;
        }
        int rc = to_bytes(fd, self->value_size, "value", self->name, scratch, view, out);
        Py_DECREF(fd);
        return rc;
    }
    return to_bytes(value, self->value_size, "value", self->name, scratch, view, out);
}

int cbpf_map_io_begin(MapObject *self, PyObject *key, PyObject *value, bool read, cbpf_map_io *io)
{
    if (cbpf_map_types(self) < 0) {
        return -1;
    }
    if (key != NULL && cbpf_map_encode_key(self, key, &io->kb, &io->key) < 0) {
        return -1;
    }
    if (value != NULL && (holds_fds(self->type) ? value_bytes(self, value, io->vb.inline_, &io->vb.view, &io->value)
                                                : cbpf_map_encode_value(self, value, &io->vb, &io->value)) < 0) {
        return -1;
    }
    if (read) {
        size_t full = cbpf_map_full_value_size(self);
        io->out = full <= sizeof(io->out_inline) ? (unsigned char *)io->out_inline : PyMem_Malloc(full);
        if (io->out == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    return 0;
}

void cbpf_map_io_release(cbpf_map_io *io)
{
    cbpf_keybuf_release(&io->kb);
    cbpf_keybuf_release(&io->vb);
    if (io->out != (unsigned char *)io->out_inline) {
        PyMem_Free(io->out);
    }
    io->out = NULL;
}

/* Parses "positional arguments, then optional flags (by position or keyword)" for update-like calls. */
static int parse_flags(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, Py_ssize_t npos,
                       const char *usage, unsigned long long *flags)
{
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    *flags = BPF_ANY;
    if (nargs < npos || nargs + nkw > npos + 1 ||
        (nkw == 1 && !PyUnicode_EqualToUTF8Compat(PyTuple_GET_ITEM(kwnames, 0), "flags"))) {
        PyErr_SetString(PyExc_TypeError, usage);
        return -1;
    }
    if (nargs + nkw == npos + 1) {
        *flags = PyLong_AsUnsignedLongLong(args[npos]);
        if (*flags == (unsigned long long)-1 && PyErr_Occurred()) {
            return -1;
        }
    }
    return 0;
}

/* A 1, 2, 4 or 8-byte value as an integer; per-CPU maps: the sum over every CPU's value. */
uint64_t cbpf_map_value_sum(MapObject *self, const unsigned char *value)
{
    uint64_t sum = 0;
    for (uint32_t cpu = 0; cpu < self->ncpus; cpu++) {
        const unsigned char *p = value + (size_t)cpu * self->value_stride;
        switch (self->value_size) {
        case 1: sum += *p; break;
        case 2: sum += *(const uint16_t *)p; break;
        case 4: sum += *(const uint32_t *)p; break;
        default: sum += *(const uint64_t *)p; break;
        }
    }
    return sum;
}

/* The fast path. Per-CPU maps give the sum of every CPU's value. st may be NULL (found when needed). */
static inline PyObject *int_result(uint64_t v)
{
    /* PyLong_FromLong has the short path for the small and medium values that counters hold */
    return v <= (uint64_t)LONG_MAX ? PyLong_FromLong((long)v) : PyLong_FromUnsignedLongLong(v);
}

/* Per-CPU maps, and values too large for the fast path's stack: a lookup into a buffer of the full size. */
static PyObject *fetch_slow(cbpf_state *st, MapObject *self, const void *k)
{
    void *value = PyMem_Malloc(cbpf_map_full_value_size(self));
    if (value == NULL) {
        return PyErr_NoMemory();
    }
    PyObject *result = NULL;
    if (bpf_map_lookup_elem(self->fd, k, value) == 0) {
        result = int_result(cbpf_map_value_sum(self, value));
    }
    else if (errno == ENOENT) {
        result = Py_NewRef(Py_None);
    }
    else {
        cbpf_map_error(self, errno, "lookup");
    }
    PyMem_Free(value);
    return result;
}

PyObject *cbpf_map_fetch(cbpf_state *st, MapObject *self, PyObject *key)
{
    uint64_t scratch = 0, value = 0;
    Py_buffer view = {0};
    const void *k = NULL;
    PyObject *result = NULL;

    if (self->mm == NULL && cbpf_map_check_keyed(self, "fetch()") < 0) {
        return NULL;
    }
    uint32_t vs = self->value_size;
    if (vs != 1 && vs != 2 && vs != 4 && vs != 8) {
        if (check_open(self) < 0) {
            return NULL;
        }
        return PyErr_Format(PyExc_TypeError,
                            "map '%U' has %u-byte values; fetch() reads 1, 2, 4 or 8-byte values as ints: "
                            "use Map.lookup() for the bytes",
                            self->name, vs);
    }
    if (self->mm != NULL) {
        /* a mmapped array: read the kernel's memory, no syscall */
        if (cbpf_map_key(st, self, key, &scratch, &view, &k) < 0) {
            return NULL;
        }
        uint32_t index = *(const uint32_t *)k;
        if (view.obj != NULL) {
            PyBuffer_Release(&view);
        }
        if (index >= self->max_entries) {
            Py_RETURN_NONE;
        }
        const unsigned char *p = self->mm + (size_t)index * ((vs + 7) & ~7u);
        switch (vs) {
        case 1: return PyLong_FromLong(*(const volatile uint8_t *)p);
        case 2: return PyLong_FromLong(*(const volatile uint16_t *)p);
        case 4: return PyLong_FromLong((long)*(const volatile uint32_t *)p);
        default: return int_result(*(const volatile uint64_t *)p);
        }
    }
    if (check_open(self) < 0 || cbpf_map_key(st, self, key, &scratch, &view, &k) < 0) {
        return NULL;
    }
    if (self->ncpus != 1) {
        result = fetch_slow(st, self, k);
    }
    else if (bpf_map_lookup_elem(self->fd, k, &value) == 0) {
        result = int_result(cbpf_map_value_sum(self, (const unsigned char *)&value));
    }
    else if (errno == ENOENT) {
        result = Py_NewRef(Py_None);
    }
    else {
        cbpf_map_error(self, errno, "lookup");
    }
    if (view.obj != NULL) {
        PyBuffer_Release(&view);
    }
    return result;
}

static PyObject *Map_fetch(MapObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 1) {
        return PyErr_Format(PyExc_TypeError, "fetch() takes exactly one argument (%zd given)", nargs);
    }
    return cbpf_map_fetch(NULL, self, args[0]); /* the state is looked up only to report an error */
}

/* Per-CPU maps give a list of one bytes object per possible CPU. */
static PyObject *value_to_python(MapObject *self, const unsigned char *value)
{
    if (self->ncpus == 1) {
        return PyBytes_FromStringAndSize((const char *)value, self->value_size);
    }
    PyObject *list = PyList_New(self->ncpus);
    if (list == NULL) {
        return NULL;
    }
    for (uint32_t cpu = 0; cpu < self->ncpus; cpu++) {
        PyObject *b = PyBytes_FromStringAndSize((const char *)value + (size_t)cpu * self->value_stride,
                                                self->value_size);
        if (b == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, cpu, b);
    }
    return list;
}

static PyObject *Map_lookup(MapObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    cbpf_map_io io = {0};
    PyObject *result = NULL;
    unsigned long long flags;

    if (parse_flags(args, nargs, kwnames, 1, "lookup() takes a key and optional flags (BPF_F_LOCK)", &flags) < 0 ||
        cbpf_map_check_keyed(self, "lookup") < 0) {
        return NULL;
    }
    if (cbpf_map_io_begin(self, args[0], NULL, true, &io) < 0) {
        goto done;
    }
    if (bpf_map_lookup_elem_flags(self->fd, io.key, io.out, flags) != 0) {
        int err = errno;
        if (err == ENOENT) {
            result = Py_NewRef(Py_None);
        }
        else {
            cbpf_map_error(self, err, "lookup");
        }
        goto done;
    }
    result = value_to_python(self, io.out);
done:
    cbpf_map_io_release(&io);
    return result;
}

static PyObject *Map_update(MapObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    cbpf_map_io io = {0};
    PyObject *result = NULL;
    unsigned long long flags;

    if (parse_flags(args, nargs, kwnames, 2, "update() takes a key, a value and optional flags", &flags) < 0 ||
        cbpf_map_check_keyed(self, "update") < 0) {
        return NULL;
    }
    if (cbpf_map_io_begin(self, args[0], args[1], false, &io) < 0) {
        goto done;
    }
    if (bpf_map_update_elem(self->fd, io.key, io.value, flags) != 0) {
        cbpf_map_error(self, errno, "update");
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    cbpf_map_io_release(&io);
    return result;
}

static PyObject *Map_delete(MapObject *self, PyObject *key)
{
    cbpf_map_io io = {0};
    PyObject *result = NULL;

    if (cbpf_map_check_keyed(self, "delete") < 0) {
        return NULL;
    }
    if (cbpf_map_io_begin(self, key, NULL, false, &io) < 0) {
        goto done;
    }
    if (bpf_map_delete_elem(self->fd, io.key) == 0) {
        result = Py_NewRef(Py_True);
    }
    else if (errno == ENOENT) {
        result = Py_NewRef(Py_False);
    }
    else {
        cbpf_map_error(self, errno, "delete");
    }
done:
    cbpf_map_io_release(&io);
    return result;
}

/* Checks a buffer of whole records of `size` bytes: returns the record count or -1. Its items must be bytes, whole
 * records, or (`element`, when not 0) one per-CPU value each: a uint32 array is not cut into 8-byte keys. Keys may
 * not be floats. The count must fit the kernel's 32-bit one. */
static Py_ssize_t records(MapObject *self, Py_buffer *view, size_t size, size_t element, const char *what)
{
    if (size == 0 || view->len % (Py_ssize_t)size != 0) {
        PyErr_Format(PyExc_ValueError, "map '%U' takes %s as a buffer of whole %zu-byte records, got %zd bytes",
                     self->name, what, size, view->len);
        return -1;
    }
    size_t item = (size_t)view->itemsize;
    if (item != 1 && item != size && (element == 0 || item != element)) {
        PyErr_Format(PyExc_ValueError, "map '%U' takes %s of %zu bytes each, got a buffer of %zu-byte items (format "
                     "'%s'): pass an array whose items are whole %s, or bytes", self->name, what, size, item,
                     view->format ? view->format : "B", what);
        return -1;
    }
    if (what[0] == 'k' && float_format(view->format)) {
        PyErr_Format(PyExc_TypeError, "map '%U' takes keys as ints or bytes, not floats (format '%s')", self->name,
                     view->format);
        return -1;
    }
    Py_ssize_t n = view->len / (Py_ssize_t)size;
    if ((uint64_t)n > UINT32_MAX) {
        PyErr_Format(PyExc_ValueError, "%zd %s in one batch: at most %u", n, what, UINT32_MAX);
        return -1;
    }
    return n;
}

static PyObject *Map_update_batch(MapObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    Py_buffer kv = {0}, vv = {0};
    PyObject *result = NULL;
    unsigned long long flags;
    if (parse_flags(args, nargs, kwnames, 2, "update_batch() takes keys, values and optional flags", &flags) < 0) {
        return NULL;
    }
    if (cbpf_map_check_keyed(self, "update_batch()") < 0 ||
        PyObject_GetBuffer(args[0], &kv, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &vv, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        goto done;
    }
    Py_ssize_t nk = records(self, &kv, self->key_size, 0, "keys");
    Py_ssize_t nv = nk < 0 ? -1
                           : records(self, &vv, cbpf_map_full_value_size(self),
                                     self->ncpus > 1 && self->value_size == self->value_stride ? self->value_size : 0,
                                     "values");
    if (nv < 0) {
        goto done;
    }
    if (nk != nv) {
        PyErr_Format(PyExc_ValueError, "update_batch(): %zd keys but %zd values", nk, nv);
        goto done;
    }
    __u32 count = (__u32)nk;
    int err = 0;
    if (count) {
        LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = flags);
        int fd = dup(self->fd); /* the GIL is released: a close elsewhere must not hand the number on */
        if (fd < 0) {
            cbpf_map_error(self, errno, "update_batch");
            goto done;
        }
        Py_BEGIN_ALLOW_THREADS
        err = bpf_map_update_batch(fd, kv.buf, vv.buf, &count, &opts) ? errno : 0;
        close(fd);
        Py_END_ALLOW_THREADS
    }
    if (err) {
        cbpf_map_error(self, err, "update_batch (%u of %zd entries written)", count, nk);
        goto done;
    }
    result = PyLong_FromSsize_t(nk);
done:
    if (kv.obj) {
        PyBuffer_Release(&kv);
    }
    if (vv.obj) {
        PyBuffer_Release(&vv);
    }
    return result;
}

/* Deletes the keys; keys that are absent are passed over. Returns how many were deleted. */
static PyObject *Map_delete_batch(MapObject *self, PyObject *keys)
{
    Py_buffer kv = {0};
    PyObject *result = NULL;
    if (cbpf_map_check_keyed(self, "delete_batch()") < 0 ||
        PyObject_GetBuffer(keys, &kv, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        return NULL;
    }
    Py_ssize_t n = records(self, &kv, self->key_size, 0, "keys");
    if (n < 0) {
        goto done;
    }
    Py_ssize_t deleted = 0, at = 0;
    int err = 0;
    int fd = dup(self->fd); /* the GIL is released: a close elsewhere must not hand the number on */
    if (fd < 0) {
        cbpf_map_error(self, errno, "delete_batch");
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    while (at < n) {
        __u32 count = (__u32)(n - at);
        LIBBPF_OPTS(bpf_map_batch_opts, opts);
        if (bpf_map_delete_batch(fd, (const unsigned char *)kv.buf + (size_t)at * self->key_size, &count,
                                 &opts) == 0) {
            deleted += count;
            break;
        }
        err = errno;
        deleted += count;
        at += count;
        if (err != ENOENT) {
            break;
        }
        err = 0;
        at++; /* the kernel stopped at an absent key: step over it */
    }
    close(fd);
    Py_END_ALLOW_THREADS
    if (err) {
        cbpf_map_error(self, err, "delete_batch");
        goto done;
    }
    result = PyLong_FromSsize_t(deleted);
done:
    PyBuffer_Release(&kv);
    return result;
}

static PyObject *Map_lookup_into(MapObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    cbpf_map_io io = {0};
    Py_buffer out = {0};
    PyObject *result = NULL;
    if (nargs != 2) {
        return PyErr_Format(PyExc_TypeError, "lookup_into() takes a key and a writable buffer");
    }
    if (cbpf_map_check_keyed(self, "lookup_into()") < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &out, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) {
        return NULL;
    }
    if ((size_t)out.len != cbpf_map_full_value_size(self)) {
        PyErr_Format(PyExc_ValueError, "map '%U' needs an output buffer of %zu bytes, got %zd", self->name,
                     cbpf_map_full_value_size(self), out.len);
        goto done;
    }
    if (cbpf_map_io_begin(self, args[0], NULL, false, &io) < 0) {
        goto done;
    }
    if (bpf_map_lookup_elem(self->fd, io.key, out.buf) == 0) {
        result = Py_NewRef(Py_True);
    }
    else if (errno == ENOENT) {
        result = Py_NewRef(Py_False);
    }
    else {
        cbpf_map_error(self, errno, "lookup");
    }
done:
    cbpf_map_io_release(&io);
    PyBuffer_Release(&out);
    return result;
}

/* Queues and stacks (and bloom filters for push): values without keys, as the kernel defines them. */
static int check_keyless(MapObject *self, const char *op, bool bloom_too)
{
    if (check_open(self) < 0) {
        return -1;
    }
    if (self->type == BPF_MAP_TYPE_QUEUE || self->type == BPF_MAP_TYPE_STACK ||
        (bloom_too && self->type == BPF_MAP_TYPE_BLOOM_FILTER)) {
        return 0;
    }
    if (self->type == BPF_MAP_TYPE_BLOOM_FILTER) {
        PyErr_Format(PyExc_TypeError, "%s: map '%U' is a bloom filter, whose values cannot be read back: ask "
                     "`value in map` whether a value may be in it", op, self->name);
    }
    else {
        const char *type = libbpf_bpf_map_type_str((enum bpf_map_type)self->type);
        PyErr_Format(PyExc_TypeError, "%s is for queues and stacks%s: map '%U' is a %s map%s", op,
                     bloom_too ? " (and bloom filters)" : "", self->name, type ? type : "?",
                     keyless_use(self->type) ? "" : ": use lookup(), update() and delete()");
    }
    return -1;
}

/* pop() and peek() give None when empty (the kernel's ENOENT). */
static PyObject *keyless_read(MapObject *self, bool remove)
{
    cbpf_map_io io = {0};
    PyObject *result = NULL;
    if (check_keyless(self, remove ? "pop()" : "peek()", false) < 0) {
        return NULL;
    }
    if (cbpf_map_io_begin(self, NULL, NULL, true, &io) < 0) {
        goto done;
    }
    int rc = remove ? bpf_map_lookup_and_delete_elem(self->fd, NULL, io.out)
                    : bpf_map_lookup_elem(self->fd, NULL, io.out);
    if (rc == 0) {
        result = self->value_codec ? cbpf_decoder_decode(self->value_codec, io.out, self->value_size)
                                   : PyBytes_FromStringAndSize((const char *)io.out, self->value_size);
    }
    else if (errno == ENOENT) {
        result = Py_NewRef(Py_None);
    }
    else {
        cbpf_map_error(self, errno, "%s", remove ? "pop" : "peek");
    }
done:
    cbpf_map_io_release(&io);
    return result;
}

static PyObject *Map_pop(MapObject *self, PyObject *Py_UNUSED(ignored))
{
    return keyless_read(self, true);
}

static PyObject *Map_peek(MapObject *self, PyObject *Py_UNUSED(ignored))
{
    return keyless_read(self, false);
}

/* push(value, flags=0): onto a queue or stack (BPF_EXIST overwrites the oldest when full), or into a bloom filter. */
static PyObject *Map_push(MapObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    cbpf_map_io io = {0};
    unsigned long long flags;
    if (parse_flags(args, nargs, kwnames, 1, "push() takes a value and optional flags", &flags) < 0 ||
        check_keyless(self, "push()", true) < 0) {
        return NULL;
    }
    if (cbpf_map_io_begin(self, NULL, args[0], false, &io) < 0) {
        cbpf_map_io_release(&io);
        return NULL;
    }
    int rc = bpf_map_update_elem(self->fd, NULL, io.value, flags);
    int err = errno;
    cbpf_map_io_release(&io);
    if (rc != 0 && err == E2BIG && self->type != BPF_MAP_TYPE_BLOOM_FILTER) {
        return cbpf_map_error(self, err, "push: it is full (%u values; push(value, flags=BPF_EXIST) drops the "
                              "oldest to make room)", self->max_entries);
    }
    if (rc != 0) {
        return cbpf_map_error(self, err, "push");
    }
    Py_RETURN_NONE;
}

/* ---- the mapping protocol ---- */


static int Map_ass_subscript(MapObject *self, PyObject *key, PyObject *value)
{
    PyObject *r;
    if (value == NULL) {
        r = Map_delete(self, key);
        if (r == Py_False) {
            Py_DECREF(r);
            PyErr_SetObject(PyExc_KeyError, key);
            return -1;
        }
    }
    else {
        PyObject *args[2] = {key, value};
        r = Map_update(self, args, 2, NULL);
    }
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

static int Map_contains(MapObject *self, PyObject *key)
{
    if (self->type == BPF_MAP_TYPE_BLOOM_FILTER) {
        /* a bloom filter is asked about a value: "maybe there" or "surely not" */
        cbpf_map_io io = {0};
        if (check_open(self) < 0 || cbpf_map_io_begin(self, NULL, key, false, &io) < 0) {
            cbpf_map_io_release(&io);
            return -1;
        }
        int rc = bpf_map_lookup_elem(self->fd, NULL, (void *)io.value);
        int err = errno;
        cbpf_map_io_release(&io);
        if (rc == 0 || err == ENOENT) {
            return rc == 0;
        }
        cbpf_map_error(self, err, "lookup in the bloom filter");
        return -1;
    }
    PyObject *value = Map_lookup(self, &key, 1, NULL);
    if (value == NULL) {
        return -1;
    }
    int found = value != Py_None;
    Py_DECREF(value);
    return found;
}

/* ---- maps of their own: create, pin, open pinned (the bpffs helpers are pin.c's) ---- */

static PyObject *Map_pin(MapObject *self, PyObject *path)
{
    if (check_open(self) < 0) {
        return NULL;
    }
    char what[160];
    snprintf(what, sizeof(what), "map '%s'", cbpf_utf8(self->name));
    if (cbpf_pin_fd(cbpf_state_from_type(Py_TYPE(self)), self, NULL, self->fd, path, what, &self->pin_path) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *Map_unpin(MapObject *self, PyObject *Py_UNUSED(ignored))
{
    char what[160];
    snprintf(what, sizeof(what), "map '%s'", cbpf_utf8(self->name));
    void *b = map_backend(self);
    if (self->pin_path == NULL && b != NULL && map_ops(self)->map_is_pinned(b, self->index)) {
        /* pinned by its object's backend at load (pin_path, LIBBPF_PIN_BY_NAME) */
        int err = map_ops(self)->map_unpin(b, self->index);
        if (err != 0) {
            return cbpf_map_error(self, err, "unpinning");
        }
        Py_RETURN_NONE;
    }
    if (cbpf_unpin(&self->pin_path, what) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *Map_from_pinned(PyTypeObject *cls, PyObject *path)
{
    cbpf_state *st = cbpf_state_from_type(cls);
    int fd = cbpf_open_pinned(st, path, "map", NULL);
    return fd < 0 ? NULL : map_from_owned_fd(st, cls, fd);
}

/* create(type, key_size, value_size, max_entries, flags=0, name=None, inner_map=None): a map of its own. */
static PyObject *Map_create(PyTypeObject *cls, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"type", "key_size", "value_size", "max_entries", "flags", "name", "inner_map",
                             "map_extra", NULL};
    cbpf_state *st = cbpf_state_from_type(cls);
    uint32_t type, key_size, value_size, max_entries, flags = 0;
    uint64_t map_extra = 0;
    const char *name = NULL;
    PyObject *inner = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O&O&O&O&|O&zOO&:create", kwlist, cbpf_u32_converter, &type,
                                     cbpf_u32_converter, &key_size, cbpf_u32_converter, &value_size,
                                     cbpf_u32_converter, &max_entries, cbpf_u32_converter, &flags, &name, &inner,
                                     cbpf_u64_converter, &map_extra)) {
        return NULL;
    }
    LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = flags, .map_extra = map_extra);
    if (inner != Py_None) {
        if (!PyObject_TypeCheck(inner, st->Map_type) || ((MapObject *)inner)->fd < 0) {
            return PyErr_Format(PyExc_TypeError, "inner_map must be an open Map");
        }
        opts.inner_map_fd = (__u32)((MapObject *)inner)->fd;
    }
    int fd = bpf_map_create((enum bpf_map_type)type, name, key_size, value_size, max_entries, &opts);
    if (fd < 0) {
        return cbpf_new_map_error(st, name, errno, "creating a map of type %u (key %u, value %u bytes, %u entries)",
                                  type, key_size, value_size, max_entries);
    }
    return map_from_owned_fd(st, cls, fd);
}

static PyObject *Map_close(MapObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->owner != NULL) {
        return PyErr_Format(PyExc_ValueError, "map '%U' belongs to an Object: close the Object", self->name);
    }
    cbpf_map_invalidate(self);
    Py_RETURN_NONE;
}

static PyObject *Map_memoryview(MapObject *self, PyObject *Py_UNUSED(ignored))
{
    if (check_open(self) < 0) {
        return NULL;
    }
    if (self->region == NULL) {
        return PyErr_Format(PyExc_TypeError,
                            "map '%U' is not mmapped: only arrays created with BPF_F_MMAPABLE (and an object's "
                            ".bss/.data/.rodata) are",
                            self->name);
    }
    return PyMemoryView_FromObject((PyObject *)self->region);
}

/* Before load, the initial contents of .data/.rodata/.bss as libbpf holds them: read or write a range. */
static PyObject *Map_initial_value(MapObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer data = {0};
    PyObject *result = NULL;
    if (nargs < 2 || nargs > 3) {
        return PyErr_Format(PyExc_TypeError, "_initial_value(offset, size[, data])");
    }
    Py_ssize_t off = PyLong_AsSsize_t(args[0]), size = PyLong_AsSsize_t(args[1]), end;
    if ((off == -1 || size == -1) && PyErr_Occurred()) {
        return NULL;
    }
    /* the data first: an exporter written in Python may let another thread run, and start a load */
    if (nargs == 3 && PyObject_GetBuffer(args[2], &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    /* libbpf re-maps a frozen .rodata read-only during load and copies .data/.bss into the kernel: neither a read
     * nor a write may run then (a write would fault, or be lost) */
    if (cbpf_object_check_idle(self->owner, nargs == 2 ? "reading a global" : "writing a global") < 0) {
        goto done;
    }
    size_t total = 0;
    void *b = map_backend(self);
    void *base = b != NULL && map_ops(self)->map_initial_value != NULL
                     ? map_ops(self)->map_initial_value(b, self->index, &total)
                     : NULL;
    /* once loaded, a frozen .rodata image is mapped read-only */
    if (base == NULL || self->fd >= 0 || (self->owner && self->owner->loaded)) {
        PyErr_Format(PyExc_ValueError, "map '%U' has no initial value to edit (only before load)", self->name);
        goto done;
    }
    if (off < 0 || size < 0 || cbpf_checked_add(off, size, &end) || (size_t)end > total) {
        PyErr_Format(PyExc_ValueError, "range %zd+%zd is outside map '%U' (%zu bytes)", off, size, self->name,
                     total);
        goto done;
    }
    if (nargs == 2) {
        result = PyBytes_FromStringAndSize((const char *)base + off, size);
        goto done;
    }
    if (data.len != size) {
        PyErr_Format(PyExc_ValueError, "expected %zd bytes, got %zd", size, data.len);
        goto done;
    }
    memcpy((char *)base + off, data.buf, (size_t)size);
    result = Py_NewRef(Py_None);
done:
    if (data.obj != NULL) {
        PyBuffer_Release(&data);
    }
    return result;
}

static PyObject *Map_get_fd(MapObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromLong(self->fd);
}

static PyObject *Map_get_closed(MapObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->fd < 0 && (self->owner == NULL || self->owner->closed));
}

static PyObject *Map_get_object(MapObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->owner ? (PyObject *)self->owner : Py_None);
}

static PyObject *Map_get_pin_path(MapObject *self, void *Py_UNUSED(closure))
{
    void *b = map_backend(self);
    const char *backend_path = b != NULL && self->pin_path == NULL ? map_ops(self)->map_pin_path(b, self->index)
                                                                   : NULL;
    if (backend_path != NULL) {
        return PyUnicode_DecodeFSDefault(backend_path);
    }
    return Py_NewRef(self->pin_path ? self->pin_path : Py_None);
}

static PyObject *Map_get_mmapped(MapObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->region != NULL);
}

static PyObject *Map_get_writable(MapObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->region == NULL || self->region->writable);
}

static PyObject *Map_get_ncpus(MapObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLong(self->ncpus);
}

static PyObject *Map_get_value_stride(MapObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLong(self->value_stride);
}

/* ---- the definition before load: setters, through the object's backend ---- */

/* Which attribute a getter or setter of the definition serves (its closure). */
enum map_attr {
    ATTR_TYPE,
    ATTR_KEY_SIZE,
    ATTR_VALUE_SIZE,
    ATTR_MAX_ENTRIES,
    ATTR_FLAGS,
    ATTR_NUMA_NODE,
    ATTR_MAP_EXTRA,
};
static const char *const attr_names[] = {"type", "key_size", "value_size", "max_entries", "flags", "numa_node",
                                         "map_extra"};

bool cbpf_map_autocreate(MapObject *self)
{
    void *b = map_backend(self);
    return b == NULL || map_ops(self)->map_autocreate(b, self->index);
}

/* 0 when the definition may change now; else -1 with the exception that says why not. */
static int check_configurable(MapObject *self, const char *attr)
{
    if (self->owner == NULL) {
        PyErr_Format(PyExc_ValueError,
                     "%s of map '%U' cannot change: the map exists already (made by create() or from_pinned())", attr,
                     self->name);
        return -1;
    }
    if (self->owner->busy) {
        PyErr_Format(PyExc_RuntimeError, "cannot set %s of map '%U' while its Object is being loaded", attr,
                     self->name);
        return -1;
    }
    if (self->owner->closed) {
        PyErr_Format(PyExc_ValueError, "map '%U' is closed: its Object was closed", self->name);
        return -1;
    }
    if (self->owner->loaded) {
        PyErr_Format(PyExc_ValueError, "%s of map '%U' can only be set before Object.load() (Object(path, "
                                       "load=False))", attr, self->name);
        return -1;
    }
    if (map_backend(self) == NULL) {
        PyErr_Format(PyExc_ValueError, "map '%U' has no definition to change", self->name);
        return -1;
    }
    if (map_ops(self)->map_reused(map_backend(self), self->index) && strcmp(attr, "autocreate") != 0) {
        PyErr_Format(PyExc_ValueError, "%s of map '%U' cannot change: it reuses an existing map (reuse())", attr,
                     self->name);
        return -1;
    }
    return 0;
}

/* A map type from a MapType, its number or its name ("hash", "PERCPU_ARRAY"). */
static int map_type_arg(MapObject *self, PyObject *value, uint32_t *out)
{
    if (PyUnicode_Check(value)) {
        const char *name = PyUnicode_AsUTF8(value);
        if (name == NULL) {
            return -1;
        }
        for (uint32_t t = 1; libbpf_bpf_map_type_str((enum bpf_map_type)t) != NULL; t++) {
            if (strcasecmp(libbpf_bpf_map_type_str((enum bpf_map_type)t), name) == 0) {
                *out = t;
                return 0;
            }
        }
        PyErr_Format(PyExc_ValueError, "type of map '%U': unknown map type %R (see cbpf.MapType)", self->name, value);
        return -1;
    }
    unsigned long long t;
    if (!PyLong_Check(value) || ((t = PyLong_AsUnsignedLongLong(value)) == (unsigned long long)-1 && PyErr_Occurred())
        || t == 0 || libbpf_bpf_map_type_str((enum bpf_map_type)t) == NULL) {
        if (PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_OverflowError)) {
            return -1;
        }
        PyErr_Clear();
        PyErr_Format(PyLong_Check(value) ? PyExc_ValueError : PyExc_TypeError,
                     "type of map '%U' must be a cbpf.MapType or its name, not %R", self->name, value);
        return -1;
    }
    *out = (uint32_t)t;
    return 0;
}

/* An unsigned value of at most max for attribute attr. */
static int unsigned_arg(MapObject *self, PyObject *value, const char *attr, unsigned long long max,
                        unsigned long long *out)
{
    if (!PyLong_Check(value) || PyBool_Check(value)) {
        PyErr_Format(PyExc_TypeError, "%s of map '%U' must be an int, not %.100s", attr, self->name,
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    unsigned long long u = (unsigned long long)v;
    if (overflow > 0) {
        u = PyLong_AsUnsignedLongLong(value);
        if (u == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            overflow = 2;
        }
    }
    if ((v == -1 && PyErr_Occurred()) || overflow < 0 || overflow == 2 || (!overflow && v < 0) || u > max) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "%s of map '%U' must be within 0..%llu, not %R", attr, self->name, max, value);
        return -1;
    }
    *out = u;
    return 0;
}

static int map_info(MapObject *self, struct bpf_map_info *info)
{
    __u32 len = sizeof(*info);
    memset(info, 0, sizeof(*info));
    if (self->fd < 0 || bpf_map_get_info_by_fd(self->fd, info, &len) != 0) {
        return -1;
    }
    return 0;
}

static PyObject *Map_get_attr(MapObject *self, void *closure)
{
    struct bpf_map_info info;
    struct cbpf_map_def def;
    void *b = map_backend(self);
    enum map_attr attr = (enum map_attr)(uintptr_t)closure;
    /* the fields a Map does not keep: from its object's backend while it has one */
    bool has_def = (attr == ATTR_NUMA_NODE || attr == ATTR_MAP_EXTRA) && b != NULL &&
                   map_ops(self)->map_def(b, self->index, &def) == 0;
    switch (attr) {
    case ATTR_TYPE: return PyLong_FromUnsignedLong(self->type);
    case ATTR_KEY_SIZE: return PyLong_FromUnsignedLong(self->key_size);
    case ATTR_VALUE_SIZE: return PyLong_FromUnsignedLong(self->value_size);
    case ATTR_MAX_ENTRIES: return PyLong_FromUnsignedLong(self->max_entries);
    case ATTR_FLAGS: return PyLong_FromUnsignedLong(self->flags);
    case ATTR_NUMA_NODE: return PyLong_FromUnsignedLong(has_def ? def.numa_node : 0); /* the kernel does not tell */
    case ATTR_MAP_EXTRA:
        if (has_def) {
            return PyLong_FromUnsignedLongLong(def.map_extra);
        }
        return PyLong_FromUnsignedLongLong(map_info(self, &info) == 0 ? info.map_extra : 0);
    }
    Py_RETURN_NONE;
}

/* What the backend now holds for the map (a setter may change more than it was given: value_size of a .bss). */
static void reread_definition(MapObject *self)
{
    struct cbpf_map_def def;
    if (map_ops(self)->map_def(map_backend(self), self->index, &def) == 0) {
        apply_def(self, &def);
    }
}

/* The definition changed: the key and value types read from it before (BTF, sizes) are read again when next needed,
 * and so are the object's globals (a resized section). */
static void forget_layout(MapObject *self)
{
    Py_CLEAR(self->key_type);
    Py_CLEAR(self->value_type);
    Py_CLEAR(self->key_codec);
    Py_CLEAR(self->value_codec);
    self->types_resolved = false;
    if (self->owner != NULL && PyObject_DelAttrString((PyObject *)self->owner, "_globals") < 0) {
        PyErr_Clear(); /* none cached */
    }
}

static int Map_set_attr(MapObject *self, PyObject *value, void *closure)
{
    enum map_attr attr = (enum map_attr)(uintptr_t)closure;
    const char *name = attr_names[attr];
    unsigned long long v = 0;
    uint32_t type = 0;
    int err = 0;
    if (value == NULL) {
        PyErr_Format(PyExc_AttributeError, "cannot delete %s of map '%U'", name, self->name);
        return -1;
    }
    if (check_configurable(self, name) < 0) {
        return -1;
    }
    if (attr == ATTR_TYPE ? map_type_arg(self, value, &type) < 0
                          : unsigned_arg(self, value, name, attr == ATTR_MAP_EXTRA ? UINT64_MAX : UINT32_MAX, &v) < 0) {
        return -1;
    }
    /* enum map_attr lists the fields in cbpf_map_field's order */
    err = map_ops(self)->map_set(map_backend(self), self->index, (cbpf_map_field)attr,
                                 attr == ATTR_TYPE ? (uint64_t)type : (uint64_t)v, self->name);
    if (err < 0) {
        return -1;
    }
    if (err != 0) {
        cbpf_map_error(self, err, "setting %s", name);
        return -1;
    }
    reread_definition(self);
    forget_layout(self);
    return 0;
}

static PyObject *Map_get_autocreate(MapObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(cbpf_map_autocreate(self));
}

static int Map_set_autocreate(MapObject *self, PyObject *value, void *Py_UNUSED(closure))
{
    if (value == NULL || !PyBool_Check(value)) {
        PyErr_Format(PyExc_TypeError, "autocreate of map '%U' must be True or False", self->name);
        return -1;
    }
    if (check_configurable(self, "autocreate") < 0) {
        return -1;
    }
    int err = map_ops(self)->map_set_autocreate(map_backend(self), self->index, value == Py_True);
    if (err != 0) {
        cbpf_map_error(self, err, "setting autocreate");
        return -1;
    }
    return 0;
}

static PyObject *Map_get_inner_map(MapObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->inner_map ? self->inner_map : Py_None);
}

static bool is_map_of_maps(uint32_t type)
{
    return type == BPF_MAP_TYPE_ARRAY_OF_MAPS || type == BPF_MAP_TYPE_HASH_OF_MAPS;
}

/* The inner map's shape of a map of maps, given as a Map whose fd libbpf borrows until load. */
static int Map_set_inner_map(MapObject *self, PyObject *value, void *Py_UNUSED(closure))
{
    cbpf_state *st = cbpf_state_from_type(Py_TYPE(self));
    if (value == NULL || !PyObject_TypeCheck(value, st->Map_type)) {
        PyErr_Format(PyExc_TypeError, "inner_map of map '%U' must be a Map", self->name);
        return -1;
    }
    if (check_configurable(self, "inner_map") < 0) {
        return -1;
    }
    if (map_ops(self)->map_set_inner_map_fd == NULL) {
        PyErr_Format(PyExc_TypeError, "map '%U' belongs to %s, whose maps of maps name their inner map themselves",
                     self->name, map_ops(self)->what);
        return -1;
    }
    if (!is_map_of_maps(self->type)) {
        PyErr_Format(PyExc_ValueError, "inner_map of map '%U': it is not a map of maps (its type is %s)", self->name,
                     libbpf_bpf_map_type_str((enum bpf_map_type)self->type));
        return -1;
    }
    MapObject *inner = (MapObject *)value;
    if (check_open(inner) < 0) {
        return -1;
    }
    if (self->inner_map != NULL) {
        PyErr_Format(PyExc_ValueError, "inner_map of map '%U' is set already", self->name);
        return -1;
    }
    int err = map_ops(self)->map_set_inner_map_fd(map_backend(self), self->index, inner->fd);
    if (err != 0) {
        cbpf_map_error(self, err, "setting inner_map");
        return -1;
    }
    self->inner_map = Py_NewRef(value);
    return 0;
}

/* Before load, a path sets where the map is pinned: an existing pin there is reused (libbpf checks that it
 * matches), else the new map is pinned there. None forgets it. */
static int Map_set_pin_path(MapObject *self, PyObject *value, void *Py_UNUSED(closure))
{
    PyObject *encoded = NULL;
    if (value == NULL) {
        value = Py_None;
    }
    if (value != Py_None && !PyUnicode_FSConverter(value, &encoded)) {
        return -1;
    }
    int rc = -1;
    if (check_configurable(self, "pin_path") < 0) {
        goto done;
    }
    /* the backend reuses the map pinned there at load (if it matches), or pins the new one */
    int err = map_ops(self)->map_set_pin_path(map_backend(self), self->index,
                                               encoded ? PyBytes_AS_STRING(encoded) : NULL);
    if (err != 0) {
        cbpf_map_error(self, err, "setting pin_path");
        goto done;
    }
    rc = 0;
done:
    Py_XDECREF(encoded);
    return rc;
}

/* reuse(source): the map becomes an existing one (a Map, an fd, or a path pinned in bpffs), shared, not created. */
static PyObject *Map_reuse(MapObject *self, PyObject *source)
{
    cbpf_state *st = cbpf_state_from_type(Py_TYPE(self));
    PyObject *encoded = NULL, *result = NULL;
    int fd = -1, opened = -1;
    if (check_configurable(self, "reuse()") < 0) {
        return NULL;
    }
    if (PyObject_TypeCheck(source, st->Map_type)) {
        if (source == (PyObject *)self || check_open((MapObject *)source) < 0) {
            return source == (PyObject *)self ? PyErr_Format(PyExc_ValueError, "map '%U' cannot reuse itself",
                                                             self->name)
                                              : NULL;
        }
        fd = ((MapObject *)source)->fd;
    }
    else if (PyLong_Check(source) && !PyBool_Check(source)) {
        long v = PyLong_AsLong(source);
        if ((v == -1 && PyErr_Occurred()) || v < 0 || v > INT32_MAX) {
            PyErr_Clear();
            return PyErr_Format(PyExc_ValueError, "reuse() of map '%U': %R is not a file descriptor", self->name,
                                source);
        }
        fd = (int)v;
    }
    else if (PyUnicode_Check(source) || PyObject_HasAttrString(source, "__fspath__")) {
        if (!PyUnicode_FSConverter(source, &encoded)) {
            return NULL;
        }
        if (cbpf_ensure_bpffs(st, PyBytes_AS_STRING(encoded)) < 0) {
            goto done;
        }
        fd = opened = bpf_obj_get(PyBytes_AS_STRING(encoded));
        if (fd < 0) {
            cbpf_map_error(self, errno, "reuse(): opening the pinned map %s", PyBytes_AS_STRING(encoded));
            goto done;
        }
    }
    else {
        return PyErr_Format(PyExc_TypeError, "reuse() of map '%U' takes a Map, a file descriptor or a pinned path, "
                                             "not %.100s", self->name, Py_TYPE(source)->tp_name);
    }
    struct bpf_map_info info = {0};
    __u32 len = sizeof(info);
    if (bpf_map_get_info_by_fd(fd, &info, &len) != 0) {
        cbpf_map_error(self, errno, "reuse(): fd %d is not a BPF map", fd);
        goto done;
    }
    int err = map_ops(self)->map_reuse_fd(map_backend(self), self->index, fd, &info);
    if (err != 0) {
        cbpf_map_error(self, err, "reuse()");
        goto done;
    }
    reread_definition(self);
    result = Py_NewRef(Py_None);
done:
    if (opened >= 0) {
        close(opened);
    }
    Py_XDECREF(encoded);
    return result;
}

/* What the kernel would refuse or libbpf would fail on obscurely: a size left 0 for user space to set. */
int cbpf_map_check_before_load(MapObject *self)
{
    if (!cbpf_map_autocreate(self) || map_ops(self)->map_reused(map_backend(self), self->index)) {
        return 0; /* not created, or reused */
    }
    const char *attr = NULL;
    switch (self->type) {
    case BPF_MAP_TYPE_HASH:
    case BPF_MAP_TYPE_ARRAY:
    case BPF_MAP_TYPE_PERCPU_HASH:
    case BPF_MAP_TYPE_PERCPU_ARRAY:
    case BPF_MAP_TYPE_STACK_TRACE:
    case BPF_MAP_TYPE_LRU_HASH:
    case BPF_MAP_TYPE_LRU_PERCPU_HASH:
    case BPF_MAP_TYPE_LPM_TRIE:
        attr = self->key_size == 0 ? "key_size" : self->value_size == 0 ? "value_size" : NULL;
        break;
    case BPF_MAP_TYPE_QUEUE:
    case BPF_MAP_TYPE_STACK:
    case BPF_MAP_TYPE_BLOOM_FILTER:
        attr = self->value_size == 0 ? "value_size" : NULL;
        break;
    default:
        break;
    }
    switch (self->type) {
    case BPF_MAP_TYPE_PERF_EVENT_ARRAY: /* 0: one per possible CPU */
    case BPF_MAP_TYPE_STRUCT_OPS:
    case BPF_MAP_TYPE_CGROUP_STORAGE:
    case BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE:
    case BPF_MAP_TYPE_SK_STORAGE:
    case BPF_MAP_TYPE_INODE_STORAGE:
    case BPF_MAP_TYPE_TASK_STORAGE:
    case BPF_MAP_TYPE_CGRP_STORAGE:
        break;
    default:
        if (attr == NULL && self->max_entries == 0) {
            attr = "max_entries";
        }
    }
    if (attr != NULL) {
        PyErr_Format(PyExc_ValueError, "map '%U' has %s 0: set Map.%s before Object.load()", self->name, attr, attr);
        return -1;
    }
    if (is_map_of_maps(self->type) && !map_ops(self)->map_has_inner(map_backend(self), self->index) &&
        self->inner_map == NULL) {
        PyErr_Format(PyExc_ValueError, "map '%U' is a map of maps whose inner map's shape is unknown: set "
                                       "Map.inner_map (a Map shaped like its inner maps) before Object.load()",
                     self->name);
        return -1;
    }
    return 0;
}

static int Map_bool(MapObject *self)
{
    (void)self;
    return 1; /* a Map is always true: truth must not count the entries, as len() would */
}

static PyObject *Map_repr(MapObject *self)
{
    return PyUnicode_FromFormat("<cbpf.Map '%U' type=%u key_size=%u value_size=%u max_entries=%u%s>", self->name,
                                self->type, self->key_size, self->value_size, self->max_entries,
                                self->fd < 0 ? " (not open)" : "");
}

static int Map_traverse(MapObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->owner);
    Py_VISIT(self->inner_map);
    Py_VISIT(self->key_type);
    Py_VISIT(self->value_type);
    Py_VISIT(self->key_codec);
    Py_VISIT(self->value_codec);
    return 0;
}

static int Map_clear_refs(MapObject *self)
{
    Py_CLEAR(self->owner);
    Py_CLEAR(self->inner_map);
    Py_CLEAR(self->key_type);
    Py_CLEAR(self->value_type);
    Py_CLEAR(self->key_codec);
    Py_CLEAR(self->value_codec);
    return 0;
}

static void Map_dealloc(MapObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (self->owns_fd) {
        cbpf_map_invalidate(self);
    }
    Py_CLEAR(self->region);
    Map_clear_refs(self);
    Py_CLEAR(self->name);
    Py_CLEAR(self->pin_path);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

#define FASTCALL(f) (PyCFunction)(void (*)(void))(f)

static PyMethodDef Map_methods[] = {
    {"fetch", FASTCALL(Map_fetch), METH_FASTCALL,
     "fetch($self, key, /)\n--\n\nThe value for key as an int (1, 2, 4 or 8-byte values; per-CPU maps give the "
     "sum over CPUs), or None when the key is absent. Mmapped arrays are read without a system call."},
    {"lookup", FASTCALL(Map_lookup), METH_FASTCALL | METH_KEYWORDS,
     "lookup($self, key, /, flags=0)\n--\n\nThe value for key as bytes (a list of bytes, one per possible CPU, for "
     "per-CPU maps), or None when the key is absent. flags=BPF_F_LOCK reads a value holding a bpf_spin_lock under "
     "that lock."},
    {"lookup_into", FASTCALL(Map_lookup_into), METH_FASTCALL,
     "lookup_into($self, key, out, /)\n--\n\nReads the value for key into the writable buffer out (value_size "
     "bytes; ncpus * value_stride for per-CPU maps). True if found, False if absent."},
    {"update", FASTCALL(Map_update), METH_FASTCALL | METH_KEYWORDS,
     "update($self, key, value, /, flags=0)\n--\n\nSets key to value (an int or a buffer of value_size bytes; a "
     "Map or Program for maps of maps and program arrays)."},
    {"delete", (PyCFunction)Map_delete, METH_O,
     "delete($self, key, /)\n--\n\nRemoves key; True if it was there, False if it was absent."},
    {"pop", (PyCFunction)Map_pop, METH_NOARGS,
     "pop($self, /)\n--\n\nRemoves and returns the next value of a queue or stack (bytes), None when empty."},
    {"peek", (PyCFunction)Map_peek, METH_NOARGS,
     "peek($self, /)\n--\n\nThe next value of a queue or stack without removing it (bytes), None when empty."},
    {"push", FASTCALL(Map_push), METH_FASTCALL | METH_KEYWORDS,
     "push($self, value, /, flags=0)\n--\n\nAdds value to a queue, stack or bloom filter."},
    {"update_batch", FASTCALL(Map_update_batch), METH_FASTCALL | METH_KEYWORDS,
     "update_batch($self, keys, values, /, flags=0)\n--\n\nWrites many entries in one call: keys and values are "
     "contiguous buffers (numpy arrays, bytes) of whole records. Returns the count written."},
    {"delete_batch", (PyCFunction)Map_delete_batch, METH_O,
     "delete_batch($self, keys, /)\n--\n\nDeletes many keys in one call (absent keys are passed over); returns "
     "how many were deleted."},
    {"_dump_raw", (PyCFunction)cbpf_map_dump_raw, METH_NOARGS,
     "_dump_raw($self, /)\n--\n\nThe whole map as (keys bytes, values bytes, count), read with batch lookups."},
    {"_dump_dict", (PyCFunction)cbpf_map_dump_dict, METH_NOARGS,
     "_dump_dict($self, /)\n--\n\nThe whole map as a dict, decoded by the types (ints by size when untyped)."},
    {"_read_chunk", FASTCALL(cbpf_map_read_chunk), METH_FASTCALL,
     "_read_chunk($self, cursor, n, /)\n--\n\nOne step of an iteration: (keys, values, count, next cursor)."},
    {"reuse", (PyCFunction)Map_reuse, METH_O,
     "reuse($self, source, /)\n--\n\nBefore load: the object uses an existing map (a Map, a file descriptor or a "
     "path pinned in bpffs) instead of creating this one, so that objects share it."},
    {"_iter_decoded", FASTCALL(cbpf_map_iter_decoded), METH_FASTCALL,
     "_iter_decoded($self, what, n, /)\n--\n\nAn iterator over the keys (what 0), values (1) or items (2), "
     "decoded, read n entries at a time."},
    {"get", FASTCALL(cbpf_map_get), METH_FASTCALL,
     "get($self, key, default=None, /)\n--\n\nThe value at key, decoded by the map's types, or default."},
    {"_resolve_types", cbpf_map_resolve_no_types, METH_NOARGS,
     "_resolve_types($self, /)\n--\n\nCalled on the first typed use to set the key and value types: none here (bytes); "
     "cbpf.Map reads them from the BTF."},
    {"_set_codecs", FASTCALL(cbpf_map_set_codecs), METH_FASTCALL,
     "_set_codecs($self, key, value, /)\n--\n\nThe key and value codecs (None: bytes); see Map.set_types()."},
    {"pin", (PyCFunction)Map_pin, METH_O,
     "pin($self, path, /)\n--\n\nPins the map in bpffs (mounted at /sys/fs/bpf when missing)."},
    {"unpin", (PyCFunction)Map_unpin, METH_NOARGS, "unpin($self, /)\n--\n\nRemoves the pin made by pin()."},
    {"from_pinned", (PyCFunction)Map_from_pinned, METH_O | METH_CLASS,
     "from_pinned($type, path, /)\n--\n\nOpens a map pinned in bpffs."},
    {"create", (PyCFunction)(void (*)(void))Map_create, METH_VARARGS | METH_KEYWORDS | METH_CLASS,
     "create($type, /, type, key_size, value_size, max_entries, flags=0, name=None, inner_map=None, "
     "map_extra=0)\n--\n\nCreates a map of its own (not part of an object); close() frees it."},
    {"close", (PyCFunction)Map_close, METH_NOARGS,
     "close($self, /)\n--\n\nCloses a map made by create() or from_pinned()."},
    {"memoryview", (PyCFunction)Map_memoryview, METH_NOARGS,
     "memoryview($self, /)\n--\n\nThe kernel memory of an mmapped array (BPF_F_MMAPABLE, .bss, .data, .rodata), "
     "element i at i * value_stride; valid as long as the view exists."},
    {"_initial_value", FASTCALL(Map_initial_value), METH_FASTCALL,
     "_initial_value($self, offset, size, data=None, /)\n--\n\nBefore load: reads or writes a global section."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Map_members[] = {
    {"name", T_OBJECT_EX, offsetof(MapObject, name), READONLY, "The map's name."},
    {"id", T_UINT, offsetof(MapObject, id), READONLY, "The kernel's id of the map (0 before load)."},
    {"btf_key_type_id", T_UINT, offsetof(MapObject, btf_key_type_id), READONLY, "BTF type id of the key."},
    {"btf_value_type_id", T_UINT, offsetof(MapObject, btf_value_type_id), READONLY, "BTF type id of the value."},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef Map_getset[] = {
    {"fd", (getter)Map_get_fd, NULL, "The map's file descriptor (-1 when not open).", NULL},
    {"closed", (getter)Map_get_closed, NULL, "True once closed (or once its Object is).", NULL},
    {"object", (getter)Map_get_object, NULL, "The Object the map belongs to, or None.", NULL},
    {"pin_path", (getter)Map_get_pin_path, (setter)Map_set_pin_path,
     "Where the map is pinned (by pin(), or by libbpf for LIBBPF_PIN_BY_NAME), or None. Settable before load: the "
     "map pinned there is reused, or the new map is pinned there.", NULL},
#define ATTR(name, id, doc) {name, (getter)Map_get_attr, (setter)Map_set_attr, doc, (void *)(uintptr_t)(id)}
    ATTR("type", ATTR_TYPE, "The map type (a BPF_MAP_TYPE_* value); settable before load (a MapType or its name)."),
    ATTR("key_size", ATTR_KEY_SIZE, "Bytes in a key; settable before load."),
    ATTR("value_size", ATTR_VALUE_SIZE,
         "Bytes in a value (per CPU); settable before load (a .bss/.data whose last variable is an array resizes)."),
    ATTR("max_entries", ATTR_MAX_ENTRIES, "Capacity; settable before load."),
    ATTR("flags", ATTR_FLAGS, "The map's creation flags; settable before load."),
    ATTR("numa_node", ATTR_NUMA_NODE, "The NUMA node to allocate on (with BPF_F_NUMA_NODE); settable before load."),
    ATTR("map_extra", ATTR_MAP_EXTRA,
         "The map type's extra word (a bloom filter's hash count, an arena's address); settable before load."),
#undef ATTR
    {"autocreate", (getter)Map_get_autocreate, (setter)Map_set_autocreate,
     "Whether Object.load() creates the map; settable before load (a program that uses a map not created fails to "
     "load, naming it).", NULL},
    {"inner_map", (getter)Map_get_inner_map, (setter)Map_set_inner_map,
     "The Map whose shape a map of maps' inner maps take, when set before load; else None.", NULL},
    {"mmapped", (getter)Map_get_mmapped, NULL, "True when the map's memory is mapped into the process.", NULL},
    {"writable", (getter)Map_get_writable, NULL, "False for mmapped memory the kernel froze (.rodata).", NULL},
    {"key_type", (getter)cbpf_map_get_key_type, NULL,
     "The keys' cbpf.Type: from the map's BTF, or given with set_types(); None when untyped (bytes).", NULL},
    {"value_type", (getter)cbpf_map_get_value_type, NULL,
     "The values' cbpf.Type: from the map's BTF, or given with set_types(); None when untyped (bytes).", NULL},
    {"ncpus", (getter)Map_get_ncpus, NULL, "Values per key: possible CPUs for per-CPU maps, else 1.", NULL},
    {"value_stride", (getter)Map_get_value_stride, NULL,
     "Bytes between per-CPU values (value_size rounded up to 8 on per-CPU maps).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Map_slots[] = {
    {Py_tp_doc, "A BPF map: of a loaded Object, made with Map.create(), or opened with Map.from_pinned()."},
    {Py_tp_methods, Map_methods},
    {Py_tp_members, Map_members},
    {Py_tp_getset, Map_getset},
    {Py_tp_repr, Map_repr},
    {Py_tp_traverse, Map_traverse},
    {Py_tp_clear, Map_clear_refs},
    {Py_tp_dealloc, Map_dealloc},
    {Py_mp_subscript, cbpf_map_subscript},
    {Py_mp_ass_subscript, Map_ass_subscript},
    {Py_mp_length, cbpf_map_length},
    {Py_sq_contains, Map_contains},
    {Py_nb_bool, Map_bool},
    {0, NULL},
};

PyType_Spec cbpf_map_spec = {
    .name = "cbpf._cbpf.Map",
    .basicsize = sizeof(MapObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE | CBPF_TPFLAGS_NO_INSTANCES,
    .slots = Map_slots,
};

/* cbpf.Map: one BPF map of a loaded object, read and written through its fd. */
#include "cbpf.h"

#include <errno.h>
#include <string.h>
#include <time.h>

static bool is_percpu(uint32_t type)
{
    return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY ||
           type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

/* Reads the definition back from libbpf: sizes may change between open and load. */
void cbpf_map_refresh(MapObject *self)
{
    struct bpf_map *m = self->map;
    if (m == NULL) {
        return;
    }
    self->fd = bpf_map__fd(m);
    if (self->fd < 0) {
        self->fd = -1;
    }
    self->type = bpf_map__type(m);
    self->key_size = bpf_map__key_size(m);
    self->value_size = bpf_map__value_size(m);
    self->max_entries = bpf_map__max_entries(m);
    self->flags = bpf_map__map_flags(m);
    self->value_stride = self->value_size;
    self->ncpus = 1;
    if (is_percpu(self->type)) {
        int n = libbpf_num_possible_cpus();
        self->ncpus = n > 0 ? (uint32_t)n : 1;
        self->value_stride = (self->value_size + 7) & ~7u;
    }
}

/* The owning object closes the fd (libbpf owns it); the map only forgets it. */
void cbpf_map_invalidate(MapObject *self)
{
    self->fd = -1;
    self->map = NULL;
}

MapObject *cbpf_map_from_libbpf(cbpf_state *st, ObjectObject *owner, struct bpf_map *map)
{
    MapObject *self = PyObject_GC_New(MapObject, st->Map_type);
    if (self == NULL) {
        return NULL;
    }
    self->owner = (ObjectObject *)Py_NewRef(owner);
    self->map = map;
    self->fd = -1;
    self->name = PyUnicode_FromString(bpf_map__name(map));
    if (self->name == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    cbpf_map_refresh(self);
    self->fd = -1; /* a map is usable only once its object is loaded */
    PyObject_GC_Track(self);
    return self;
}

static int check_open(MapObject *self)
{
    if (self->fd >= 0) {
        return 0;
    }
    if (self->owner != NULL && self->owner->closed) {
        PyErr_Format(PyExc_ValueError, "map '%U' is closed: its Object was closed", self->name);
    }
    else if (self->owner != NULL && !self->owner->loaded) {
        PyErr_Format(PyExc_ValueError, "map '%U' is not loaded yet: call Object.load() first", self->name);
    }
    else {
        PyErr_Format(PyExc_ValueError, "map '%U' is closed", self->name);
    }
    return -1;
}

/* Turns a key or value into bytes of exactly `size`: a Python int is packed in native byte order for sizes
 * 1, 2, 4 and 8; anything with the buffer protocol must have that many bytes. `scratch` holds 8 bytes. On
 * success *out points at the bytes and, for a buffer, `view` must be released by the caller. */
static int to_bytes(PyObject *obj, uint32_t size, const char *what, PyObject *mapname, uint64_t *scratch,
                    Py_buffer *view, const void **out)
{
    if (!PyLong_Check(obj) && PyObject_CheckBuffer(obj)) {
        if (PyObject_GetBuffer(obj, view, PyBUF_SIMPLE) < 0) {
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
    if (PyLong_CheckExact(obj) && size == 4) {
        /* the common key (a pid, an index): no detour through PyNumber_Index */
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
        if (!overflow && v >= INT32_MIN && v <= (long long)UINT32_MAX) {
            *(uint32_t *)scratch = (uint32_t)v;
            *out = scratch;
            return 0;
        }
        if (v == -1 && PyErr_Occurred()) {
            return -1;
        }
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

int cbpf_map_key(cbpf_state *st, MapObject *self, PyObject *key, void *scratch, Py_buffer *view, const void **out)
{
    (void)st;
    return to_bytes(key, self->key_size, "key", self->name, scratch, view, out);
}

static size_t full_value_size(MapObject *self)
{
    return (size_t)self->value_stride * self->ncpus;
}

/* The fast path. Per-CPU maps give the sum of every CPU's value. */
PyObject *cbpf_map_fetch(cbpf_state *st, MapObject *self, PyObject *key)
{
    uint64_t scratch = 0;
    uint64_t stackbuf[64]; /* fits 8-byte values of 64 CPUs; larger machines take the heap */
    Py_buffer view = {0};
    const void *k = NULL;
    void *value = stackbuf;
    PyObject *result = NULL;

    if (check_open(self) < 0) {
        return NULL;
    }
    uint32_t vs = self->value_size;
    if (vs != 1 && vs != 2 && vs != 4 && vs != 8) {
        return PyErr_Format(PyExc_TypeError,
                            "map '%U' has %u-byte values; fetch() reads 1, 2, 4 or 8-byte values as ints: "
                            "use Map.lookup() for the bytes",
                            self->name, vs);
    }
    size_t total = full_value_size(self);
    if (total > sizeof(stackbuf)) {
        value = PyMem_Malloc(total);
        if (value == NULL) {
            return PyErr_NoMemory();
        }
    }
    if (cbpf_map_key(st, self, key, &scratch, &view, &k) < 0) {
        goto done;
    }
    if (bpf_map_lookup_elem(self->fd, k, value) != 0) {
        int err = errno;
        if (err == ENOENT) {
            result = Py_NewRef(Py_None);
        }
        else {
            cbpf_set_error(st, err, "lookup in map '%s'", PyUnicode_AsUTF8(self->name));
        }
        goto done;
    }
    uint64_t sum = 0;
    for (uint32_t cpu = 0; cpu < self->ncpus; cpu++) {
        const unsigned char *p = (const unsigned char *)value + (size_t)cpu * self->value_stride;
        switch (vs) {
        case 1: sum += *(const uint8_t *)p; break;
        case 2: sum += *(const uint16_t *)p; break;
        case 4: sum += *(const uint32_t *)p; break;
        default: sum += *(const uint64_t *)p; break;
        }
    }
    result = PyLong_FromUnsignedLongLong(sum);
done:
    if (view.obj != NULL) {
        PyBuffer_Release(&view);
    }
    if (value != stackbuf) {
        PyMem_Free(value);
    }
    return result;
}

static PyObject *Map_fetch(MapObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 1) {
        return PyErr_Format(PyExc_TypeError, "fetch() takes exactly one argument (%zd given)", nargs);
    }
    return cbpf_map_fetch(cbpf_state_from_type(Py_TYPE(self)), self, args[0]);
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

static PyObject *Map_lookup(MapObject *self, PyObject *key)
{
    cbpf_state *st = cbpf_state_from_type(Py_TYPE(self));
    uint64_t scratch = 0;
    Py_buffer view = {0};
    const void *k = NULL;
    unsigned char *value = NULL;
    PyObject *result = NULL;

    if (check_open(self) < 0) {
        return NULL;
    }
    value = PyMem_Malloc(full_value_size(self) ? full_value_size(self) : 1);
    if (value == NULL) {
        return PyErr_NoMemory();
    }
    if (cbpf_map_key(st, self, key, &scratch, &view, &k) < 0) {
        goto done;
    }
    if (bpf_map_lookup_elem(self->fd, k, value) != 0) {
        int err = errno;
        if (err == ENOENT) {
            result = Py_NewRef(Py_None);
        }
        else {
            cbpf_set_error(st, err, "lookup in map '%s'", PyUnicode_AsUTF8(self->name));
        }
        goto done;
    }
    result = value_to_python(self, value);
done:
    if (view.obj != NULL) {
        PyBuffer_Release(&view);
    }
    PyMem_Free(value);
    return result;
}

static PyObject *Map_update(MapObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    cbpf_state *st = cbpf_state_from_type(Py_TYPE(self));
    uint64_t kscratch = 0, vscratch = 0;
    Py_buffer kview = {0}, vview = {0};
    const void *k = NULL, *v = NULL;
    PyObject *result = NULL;
    unsigned long long flags = BPF_ANY;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;

    if (nargs + nkw < 2 || nargs + nkw > 3 || nargs < 2) {
        return PyErr_Format(PyExc_TypeError, "update() takes a key, a value and optional flags");
    }
    if (nargs + nkw == 3) {
        if (nkw && !PyUnicode_EqualToUTF8Compat(PyTuple_GET_ITEM(kwnames, 0), "flags")) {
            return PyErr_Format(PyExc_TypeError, "update() got an unexpected keyword argument %R",
                                PyTuple_GET_ITEM(kwnames, 0));
        }
        flags = PyLong_AsUnsignedLongLong(args[2]);
        if (flags == (unsigned long long)-1 && PyErr_Occurred()) {
            return NULL;
        }
    }
    if (check_open(self) < 0) {
        return NULL;
    }
    if (cbpf_map_key(st, self, args[0], &kscratch, &kview, &k) < 0) {
        goto done;
    }
    if (self->ncpus == 1) {
        if (to_bytes(args[1], self->value_size, "value", self->name, &vscratch, &vview, &v) < 0) {
            goto done;
        }
    }
    else if (to_bytes(args[1], (uint32_t)full_value_size(self), "per-CPU value (one slot per possible CPU)",
                      self->name, &vscratch, &vview, &v) < 0) {
        goto done;
    }
    if (bpf_map_update_elem(self->fd, k, v, flags) != 0) {
        cbpf_set_error(st, errno, "update of map '%s'", PyUnicode_AsUTF8(self->name));
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    if (kview.obj != NULL) {
        PyBuffer_Release(&kview);
    }
    if (vview.obj != NULL) {
        PyBuffer_Release(&vview);
    }
    return result;
}

static PyObject *Map_delete(MapObject *self, PyObject *key)
{
    cbpf_state *st = cbpf_state_from_type(Py_TYPE(self));
    uint64_t scratch = 0;
    Py_buffer view = {0};
    const void *k = NULL;
    PyObject *result = NULL;

    if (check_open(self) < 0) {
        return NULL;
    }
    if (cbpf_map_key(st, self, key, &scratch, &view, &k) < 0) {
        return NULL;
    }
    if (bpf_map_delete_elem(self->fd, k) == 0) {
        result = Py_NewRef(Py_True);
    }
    else if (errno == ENOENT) {
        result = Py_NewRef(Py_False);
    }
    else {
        cbpf_set_error(st, errno, "delete from map '%s'", PyUnicode_AsUTF8(self->name));
    }
    if (view.obj != NULL) {
        PyBuffer_Release(&view);
    }
    return result;
}

/* A get_next_key walk into a list of (key, value) bytes pairs, or keys only. Bounded by max_entries so that a
 * map being rewritten under the walk cannot keep it going forever. */
static PyObject *walk(MapObject *self, bool with_values)
{
    cbpf_state *st = cbpf_state_from_type(Py_TYPE(self));
    unsigned char *keys = NULL, *value = NULL;
    PyObject *list = NULL, *result = NULL;

    if (check_open(self) < 0) {
        return NULL;
    }
    size_t ks = self->key_size ? self->key_size : 1;
    keys = PyMem_Malloc(2 * ks);
    value = PyMem_Malloc(full_value_size(self) ? full_value_size(self) : 1);
    list = PyList_New(0);
    if (keys == NULL || value == NULL || list == NULL) {
        if (list != NULL) {
            PyErr_NoMemory();
        }
        goto done;
    }
    unsigned char *cur = keys, *next = keys + ks;
    const void *prev = NULL;
    for (uint64_t n = 0; n <= self->max_entries; n++) {
        if (bpf_map_get_next_key(self->fd, prev, next) != 0) {
            if (errno == ENOENT) {
                break;
            }
            cbpf_set_error(st, errno, "iteration of map '%s'", PyUnicode_AsUTF8(self->name));
            goto done;
        }
        unsigned char *t = cur;
        cur = next;
        next = t;
        prev = cur;
        PyObject *k = PyBytes_FromStringAndSize((const char *)cur, self->key_size);
        if (k == NULL) {
            goto done;
        }
        PyObject *item = k;
        if (with_values) {
            if (bpf_map_lookup_elem(self->fd, cur, value) != 0) {
                Py_DECREF(k);
                if (errno == ENOENT) {
                    continue; /* deleted between the two calls */
                }
                cbpf_set_error(st, errno, "lookup in map '%s'", PyUnicode_AsUTF8(self->name));
                goto done;
            }
            PyObject *v = value_to_python(self, value);
            if (v == NULL) {
                Py_DECREF(k);
                goto done;
            }
            item = PyTuple_Pack(2, k, v);
            Py_DECREF(k);
            Py_DECREF(v);
            if (item == NULL) {
                goto done;
            }
        }
        int rc = PyList_Append(list, item);
        Py_DECREF(item);
        if (rc < 0) {
            goto done;
        }
    }
    result = Py_NewRef(list);
done:
    Py_XDECREF(list);
    PyMem_Free(keys);
    PyMem_Free(value);
    return result;
}

static PyObject *Map_keys(MapObject *self, PyObject *Py_UNUSED(ignored))
{
    return walk(self, false);
}

static PyObject *Map_items(MapObject *self, PyObject *Py_UNUSED(ignored))
{
    return walk(self, true);
}

/* Runs n lookups of one key from C: the baseline the benchmarks compare fetch() against. Returns seconds. */
static PyObject *Map_c_lookup_loop(MapObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    cbpf_state *st = cbpf_state_from_type(Py_TYPE(self));
    uint64_t scratch = 0;
    Py_buffer view = {0};
    const void *k = NULL;
    unsigned char *value = NULL;
    PyObject *result = NULL;

    if (nargs != 2) {
        return PyErr_Format(PyExc_TypeError, "_c_lookup_loop(key, n)");
    }
    Py_ssize_t n = PyLong_AsSsize_t(args[1]);
    if (n < 0) {
        return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_ValueError, "n must be >= 0");
    }
    if (check_open(self) < 0 || cbpf_map_key(st, self, args[0], &scratch, &view, &k) < 0) {
        return NULL;
    }
    value = PyMem_Malloc(full_value_size(self) ? full_value_size(self) : 1);
    if (value == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (Py_ssize_t i = 0; i < n; i++) {
        bpf_map_lookup_elem(self->fd, k, value);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    result = PyFloat_FromDouble((double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9);
done:
    if (view.obj != NULL) {
        PyBuffer_Release(&view);
    }
    PyMem_Free(value);
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
    return 0;
}

static int Map_clear(MapObject *self)
{
    Py_CLEAR(self->owner);
    return 0;
}

static void Map_dealloc(MapObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Map_clear(self);
    Py_CLEAR(self->name);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyMethodDef Map_methods[] = {
    {"fetch", (PyCFunction)(void (*)(void))Map_fetch, METH_FASTCALL,
     "fetch($self, key, /)\n--\n\nThe value for key as an int (1, 2, 4 or 8-byte values; per-CPU maps give the "
     "sum over CPUs), or None when the key is absent."},
    {"lookup", (PyCFunction)Map_lookup, METH_O,
     "lookup($self, key, /)\n--\n\nThe value for key as bytes (a list of bytes, one per possible CPU, for per-CPU "
     "maps), or None when the key is absent."},
    {"update", (PyCFunction)(void (*)(void))Map_update, METH_FASTCALL | METH_KEYWORDS,
     "update($self, key, value, /, flags=0)\n--\n\nSets key to value (int or buffer of value_size bytes)."},
    {"delete", (PyCFunction)Map_delete, METH_O,
     "delete($self, key, /)\n--\n\nRemoves key; True if it was there, False if it was absent."},
    {"keys", (PyCFunction)Map_keys, METH_NOARGS, "keys($self, /)\n--\n\nThe keys, as a list of bytes."},
    {"items", (PyCFunction)Map_items, METH_NOARGS,
     "items($self, /)\n--\n\nThe entries, as a list of (key bytes, value) pairs."},
    {"_c_lookup_loop", (PyCFunction)(void (*)(void))Map_c_lookup_loop, METH_FASTCALL,
     "_c_lookup_loop($self, key, n, /)\n--\n\nBenchmark baseline: n lookups from a C loop; returns seconds."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Map_members[] = {
    {"name", T_OBJECT_EX, offsetof(MapObject, name), READONLY, "The map's name."},
    {"type", T_UINT, offsetof(MapObject, type), READONLY, "The map type (a BPF_MAP_TYPE_* value)."},
    {"key_size", T_UINT, offsetof(MapObject, key_size), READONLY, "Bytes in a key."},
    {"value_size", T_UINT, offsetof(MapObject, value_size), READONLY, "Bytes in a value (per CPU)."},
    {"max_entries", T_UINT, offsetof(MapObject, max_entries), READONLY, "Capacity."},
    {"flags", T_UINT, offsetof(MapObject, flags), READONLY, "The map's creation flags."},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef Map_getset[] = {
    {"fd", (getter)Map_get_fd, NULL, "The map's file descriptor (-1 when not open).", NULL},
    {"closed", (getter)Map_get_closed, NULL, "True once the owning object is closed.", NULL},
    {"object", (getter)Map_get_object, NULL, "The Object the map belongs to.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Map_slots[] = {
    {Py_tp_doc, "A BPF map of a loaded Object."},
    {Py_tp_methods, Map_methods},
    {Py_tp_members, Map_members},
    {Py_tp_getset, Map_getset},
    {Py_tp_repr, Map_repr},
    {Py_tp_traverse, Map_traverse},
    {Py_tp_clear, Map_clear},
    {Py_tp_dealloc, Map_dealloc},
    {0, NULL},
};

PyType_Spec cbpf_map_spec = {
    .name = "cbpf.Map",
    .basicsize = sizeof(MapObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | CBPF_TPFLAGS_NO_INSTANCES,
    .slots = Map_slots,
};

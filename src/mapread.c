/* cbpf.Map's reads of many entries: the whole map at once (to_dict(), to_numpy(), len()) or in chunks (iteration,
 * keys(), values(), items()), by batch lookups, with a get_next_key walk where the map has no batch operations. */
#include "cbpf.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <string.h>
#include <unistd.h>

#ifndef ENOTSUPP
#define ENOTSUPP 524 /* the kernel's own "not supported", seen by user space as is */
#endif

/* Where a multi-call read stands; kept in a bytes object between Python calls. */
typedef struct {
    uint8_t mode;    /* 0: not started, 'B': batch, 'W': walk, 'E': ended */
    uint8_t pad[7];
    uint64_t budget; /* walk: entries left before it stops (a map rewritten under a walk can restart it) */
    unsigned char token[]; /* batch: the kernel's batch token; walk: the last key read */
} cursor;

static size_t token_size(MapObject *self)
{
    return self->key_size > 8 ? self->key_size : 8;
}

typedef struct {
    unsigned char *keys;
    unsigned char *values;
    size_t len; /* entries held */
    size_t cap;
} entries;

/* Raw allocators: these run without the GIL. */
static int entries_reserve(MapObject *self, entries *e, size_t more)
{
    if (e->len + more <= e->cap) {
        return 0;
    }
    size_t cap = e->cap ? e->cap : 1024, need, kbytes, vbytes;
    if (cbpf_checked_add(e->len, more, &need)) {
        return -ENOMEM;
    }
    while (cap < need) {
        if (cbpf_checked_mul(cap, 2, &cap)) {
            return -ENOMEM;
        }
    }
    size_t vs = cbpf_map_full_value_size(self);
    if (cbpf_checked_mul(cap, (size_t)(self->key_size ? self->key_size : 1), &kbytes) ||
        cbpf_checked_mul(cap, vs ? vs : 1, &vbytes)) {
        return -ENOMEM;
    }
    unsigned char *k = PyMem_RawRealloc(e->keys, kbytes);
    if (k == NULL) {
        return -ENOMEM;
    }
    e->keys = k;
    unsigned char *v = PyMem_RawRealloc(e->values, vbytes);
    if (v == NULL) {
        return -ENOMEM;
    }
    e->values = v;
    e->cap = cap;
    return 0;
}

static void entries_free(entries *e)
{
    PyMem_RawFree(e->keys);
    PyMem_RawFree(e->values);
    e->keys = e->values = NULL;
    e->len = e->cap = 0;
}

/* Appends up to n entries to e. Returns 0 (c->mode becomes 'E' at the end) or a negative errno. Touches no Python
 * object: callers may release the GIL around it, on a dup of the map's fd. */
static int read_chunk(MapObject *self, int fd, cursor *c, entries *e, uint32_t n)
{
    size_t ks = self->key_size, vs = cbpf_map_full_value_size(self), ts = token_size(self);
    int rc = entries_reserve(self, e, n);
    if (rc < 0) {
        return rc;
    }
    if (c->mode == 0 || c->mode == 'B') {
        unsigned char out_token[ts];
        __u32 count = n;
        LIBBPF_OPTS(bpf_map_batch_opts, opts);
        int err = bpf_map_lookup_batch(fd, c->mode == 0 ? NULL : c->token, out_token, e->keys + e->len * ks,
                                       e->values + e->len * vs, &count, &opts);
        err = err ? errno : 0;
        if (err == 0 || err == ENOENT) {
            CBPF_KERNEL_WROTE(e->keys + e->len * ks, (size_t)count * ks);
            CBPF_KERNEL_WROTE(e->values + e->len * vs, (size_t)count * vs);
            CBPF_KERNEL_WROTE(out_token, ts);
            e->len += count;
            memcpy(c->token, out_token, ts);
            c->mode = err == ENOENT ? 'E' : 'B';
            return 0;
        }
        if (err == ENOSPC && count == 0) {
            /* one hash bucket holds more than n entries: ask again for more at once */
            return read_chunk(self, fd, c, e, n * 2);
        }
        if (c->mode != 0 || (err != EINVAL && err != ENOTSUPP && err != EOPNOTSUPP)) {
            return -err;
        }
        c->mode = 'W'; /* this map type has no batch lookups */
        c->budget = (uint64_t)self->max_entries;
        return read_chunk(self, fd, c, e, n);
    }
    if (c->mode != 'W') {
        return 0;
    }
    bool first = e->len == 0 && c->budget == self->max_entries;
    for (uint32_t i = 0; i < n; i++) {
        if (c->budget == 0) {
            c->mode = 'E';
            return 0;
        }
        unsigned char *key = e->keys + e->len * ks;
        if (bpf_map_get_next_key(fd, first ? NULL : c->token, key) != 0) {
            if (errno == ENOENT) {
                c->mode = 'E';
                return 0;
            }
            return -errno;
        }
        first = false;
        memcpy(c->token, key, ks);
        c->budget--;
        if (bpf_map_lookup_elem(fd, key, e->values + e->len * vs) != 0) {
            if (errno == ENOENT) {
                continue; /* deleted between the two calls */
            }
            return -errno;
        }
        e->len++;
    }
    return 0;
}

/* Reads the whole map with the GIL released (on a dup of the fd, so that a close elsewhere cannot hand the
 * number to another file meanwhile). */
static int read_all(cbpf_state *st, MapObject *self, entries *e)
{
    size_t csize = sizeof(cursor) + token_size(self);
    cursor *c = PyMem_Calloc(1, csize);
    if (c == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    int fd = dup(self->fd);
    if (fd < 0) {
        PyMem_Free(c);
        cbpf_map_error(self, errno, "reading");
        return -1;
    }
    uint32_t n = self->max_entries < 8192 ? (self->max_entries ? self->max_entries : 1) : 8192;
    int rc = 0;
    Py_BEGIN_ALLOW_THREADS
    while (rc == 0 && c->mode != 'E') {
        rc = read_chunk(self, fd, c, e, n);
    }
    Py_END_ALLOW_THREADS
    close(fd);
    PyMem_Free(c);
    if (rc < 0) {
        cbpf_map_error(self, rc, "reading");
        return -1;
    }
    return 0;
}

static PyObject *entries_to_tuple(MapObject *self, entries *e)
{
    return Py_BuildValue("(y#y#n)", (const char *)e->keys, (Py_ssize_t)(e->len * self->key_size),
                         (const char *)e->values, (Py_ssize_t)(e->len * cbpf_map_full_value_size(self)), (Py_ssize_t)e->len);
}

PyObject *cbpf_map_dump_raw(MapObject *self, PyObject *Py_UNUSED(ignored))
{
    cbpf_state *st = cbpf_state_from_type(Py_TYPE(self));
    entries e = {0};
    PyObject *result = NULL;
    if (cbpf_map_check_keyed(self, "reading the whole map") < 0) {
        return NULL;
    }
    if (read_all(st, self, &e) == 0) {
        result = entries_to_tuple(self, &e);
    }
    entries_free(&e);
    return result;
}

static PyObject *int_at(const unsigned char *p, uint32_t size)
{
    switch (size) {
    case 1: return PyLong_FromUnsignedLong(*p);
    case 2: return PyLong_FromUnsignedLong(*(const uint16_t *)p);
    case 4: return PyLong_FromUnsignedLong(*(const uint32_t *)p);
    default: return PyLong_FromUnsignedLongLong(*(const uint64_t *)p);
    }
}

static bool int_sized(uint32_t size)
{
    return size == 1 || size == 2 || size == 4 || size == 8;
}

/* to_dict() overlaps the kernel's work with Python's: a reader thread fetches the next chunk with batch lookups
 * (no Python object, no GIL) while this thread turns the previous chunk into dict entries. */
typedef struct {
    MapObject *self; /* only its C fields are read on the reader thread */
    int fd;
    cursor *c;
    uint32_t n;
    entries buf[2];
    int rc[2];
    bool last[2];
    bool cancel;
    sem_t filled[2], empty[2];
} pipeline;

static void *pipeline_reader(void *arg)
{
    pipeline *p = arg;
    for (int i = 0;; i ^= 1) {
        sem_wait(&p->empty[i]);
        p->buf[i].len = 0;
        p->rc[i] = p->cancel ? -ECANCELED : read_chunk(p->self, p->fd, p->c, &p->buf[i], p->n);
        p->last[i] = p->rc[i] < 0 || p->c->mode == 'E';
        bool stop = p->last[i];
        sem_post(&p->filled[i]);
        if (stop) {
            return NULL;
        }
    }
}

/* to_dict()'s key and value: decoded by type; untyped, ints by size (per-CPU values summed) or else bytes. */
static PyObject *dict_key(MapObject *self, const unsigned char *p)
{
    if (self->key_codec == NULL && int_sized(self->key_size)) {
        return int_at(p, self->key_size);
    }
    return cbpf_map_decode_key(self, p);
}

static PyObject *dict_value(MapObject *self, const unsigned char *p)
{
    if (self->value_codec == NULL && int_sized(self->value_size)) {
        return self->ncpus == 1 ? int_at(p, self->value_size) : PyLong_FromUnsignedLongLong(cbpf_map_value_sum(self, p));
    }
    return cbpf_map_decode_value(self, p);
}

static int add_entries(MapObject *self, PyObject *dict, entries *e)
{
    size_t vs = cbpf_map_full_value_size(self);
    for (size_t i = 0; i < e->len; i++) {
        PyObject *k = dict_key(self, e->keys + i * self->key_size);
        PyObject *v = dict_value(self, e->values + i * vs);
        int rc = (k && v) ? PyDict_SetItem(dict, k, v) : -1;
        Py_XDECREF(k);
        Py_XDECREF(v);
        if (rc < 0) {
            return -1;
        }
    }
    return 0;
}

/* The whole map as a dict, decoded by type (see dict_key, dict_value), with no intermediate objects. */
PyObject *cbpf_map_dump_dict(MapObject *self, PyObject *Py_UNUSED(ignored))
{
    cbpf_state *st = cbpf_state_from_type(Py_TYPE(self));
    pipeline p = {0};
    PyObject *dict = NULL, *result = NULL;
    bool sems = false;
    p.fd = -1;
    int err = 0;
    if (cbpf_map_check_keyed(self, "reading the whole map") < 0 || cbpf_map_types(self) < 0) {
        return NULL;
    }
    dict = PyDict_New();
    p.c = PyMem_Calloc(1, sizeof(cursor) + token_size(self));
    if (dict == NULL || p.c == NULL) {
        if (dict != NULL) {
            PyErr_NoMemory();
        }
        goto done;
    }
    p.self = self;
    p.n = self->max_entries < 16384 ? (self->max_entries ? self->max_entries : 1) : 16384;
    p.fd = dup(self->fd);
    if (p.fd < 0) {
        cbpf_map_error(self, errno, "reading");
        goto done;
    }
    for (int i = 0; i < 2; i++) {
        sem_init(&p.filled[i], 0, 0);
        sem_init(&p.empty[i], 0, 1);
    }
    sems = true;
    pthread_t reader;
    if ((err = pthread_create(&reader, NULL, pipeline_reader, &p)) != 0) {
        cbpf_set_error(st, err, "starting a reader thread");
        goto done;
    }
    for (int i = 0;; i ^= 1) {
        Py_BEGIN_ALLOW_THREADS
        sem_wait(&p.filled[i]);
        Py_END_ALLOW_THREADS
        if (p.rc[i] < 0) {
            err = -p.rc[i];
            break;
        }
        if (add_entries(self, dict, &p.buf[i]) < 0) {
            p.cancel = true;
            if (!p.last[i]) {
                sem_post(&p.empty[i]); /* let the reader see the cancel and stop */
            }
            break;
        }
        if (p.last[i]) {
            break;
        }
        sem_post(&p.empty[i]);
    }
    Py_BEGIN_ALLOW_THREADS
    pthread_join(reader, NULL);
    Py_END_ALLOW_THREADS
    if (err) {
        cbpf_map_error(self, err, "reading");
    }
    else if (!PyErr_Occurred()) {
        result = Py_NewRef(dict);
    }
done:
    if (p.fd >= 0) {
        close(p.fd);
    }
    if (sems) {
        for (int i = 0; i < 2; i++) {
            sem_destroy(&p.filled[i]);
            sem_destroy(&p.empty[i]);
            entries_free(&p.buf[i]);
        }
    }
    PyMem_Free(p.c);
    Py_XDECREF(dict);
    return result;
}

/* One step of an iteration from Python: reads up to n entries into e, after the cursor (None to start). Returns
 * the cursor to pass next (a new bytes), or NULL with an exception set. */
static PyObject *chunk_step(MapObject *self, PyObject *cursor_arg, PyObject *n_arg, entries *e)
{
    PyObject *state = NULL;
    Py_ssize_t n = PyLong_AsSsize_t(n_arg);
    if (n <= 0 || n > (1 << 20)) {
        return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_ValueError, "chunk size out of range");
    }
    if (cbpf_map_check_keyed(self, "iterating") < 0) {
        return NULL;
    }
    size_t csize = sizeof(cursor) + token_size(self);
    if (cursor_arg == Py_None) {
        state = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)csize);
        if (state == NULL) {
            return NULL;
        }
        memset(PyBytes_AS_STRING(state), 0, csize);
    }
    else if (PyBytes_Check(cursor_arg) && (size_t)PyBytes_GET_SIZE(cursor_arg) == csize) {
        state = PyBytes_FromStringAndSize(PyBytes_AS_STRING(cursor_arg), (Py_ssize_t)csize);
        if (state == NULL) {
            return NULL;
        }
    }
    else {
        return PyErr_Format(PyExc_ValueError, "not a cursor of map '%U'", self->name);
    }
    int rc = read_chunk(self, self->fd, (cursor *)PyBytes_AS_STRING(state), e, (uint32_t)n);
    if (rc < 0) {
        Py_DECREF(state);
        return cbpf_map_error(self, rc, "reading");
    }
    return state;
}

static PyObject *next_cursor(PyObject *state)
{
    return ((cursor *)PyBytes_AS_STRING(state))->mode == 'E' ? Py_None : state;
}

/* _read_chunk(cursor_or_None, n) -> (keys, values, count, cursor_or_None): one step of an iteration. */
PyObject *cbpf_map_read_chunk(MapObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    entries e = {0};
    PyObject *result = NULL;
    if (nargs != 2) {
        return PyErr_Format(PyExc_TypeError, "_read_chunk(cursor, n)");
    }
    PyObject *state = chunk_step(self, args[0], args[1], &e);
    if (state != NULL) {
        result = Py_BuildValue("(y#y#nO)", (const char *)e.keys, (Py_ssize_t)(e.len * self->key_size),
                               (const char *)e.values, (Py_ssize_t)(e.len * cbpf_map_full_value_size(self)),
                               (Py_ssize_t)e.len, next_cursor(state));
        Py_DECREF(state);
    }
    entries_free(&e);
    return result;
}

/* keys(), values() and items(): an iterator that reads a chunk at a time and decodes one entry per step, so that
 * what the loop drops is freed before the next entry is made (the chunk's objects are not all alive at once, and
 * memory stays in the cache). */
typedef struct {
    PyObject_HEAD MapObject *map;
    cursor *c;
    entries e;   /* the chunk being handed out */
    size_t at;   /* its next entry */
    uint32_t n;  /* entries per chunk */
    int what;    /* 0: keys, 1: values, 2: (key, value) */
    bool ended;  /* read to the end, or failed: as a generator that raised, it stays ended */
} MapIterObject;

/* _iter_decoded(what, n): keys (what 0), values (1) or items (2), decoded by type (bytes when untyped), read n
 * entries at a time. */
PyObject *cbpf_map_iter_decoded(MapObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    cbpf_state *st = cbpf_state_from_type(Py_TYPE(self));
    if (nargs != 2) {
        return PyErr_Format(PyExc_TypeError, "_iter_decoded(what, n)");
    }
    long what = PyLong_AsLong(args[0]);
    if (what < 0 || what > 2) {
        return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_ValueError, "what is 0, 1 or 2");
    }
    Py_ssize_t n = PyLong_AsSsize_t(args[1]);
    if (n <= 0 || n > (1 << 20)) {
        return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_ValueError, "chunk size out of range");
    }
    MapIterObject *it = PyObject_GC_New(MapIterObject, st->MapIter_type);
    if (it == NULL) {
        return NULL;
    }
    it->map = (MapObject *)Py_NewRef(self);
    it->c = NULL; /* made at the first step: as a generator, the iterator checks the map only when it is used */
    it->e = (entries){0};
    it->at = 0;
    it->n = (uint32_t)n;
    it->what = (int)what;
    it->ended = false;
    PyObject_GC_Track(it);
    return (PyObject *)it;
}

/* Reads the next chunk into it->e: 0 (it->ended at the end), or -1 with an exception. */
static int MapIter_fill(MapIterObject *it)
{
    MapObject *m = it->map;
    it->ended = true; /* until the chunk is read */
    if (cbpf_map_check_keyed(m, "iterating") < 0) {
        return -1;
    }
    if (it->c == NULL) {
        if (cbpf_map_types(m) < 0) {
            return -1;
        }
        it->c = PyMem_Calloc(1, sizeof(cursor) + token_size(m));
        if (it->c == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    it->e.len = it->at = 0;
    int rc = read_chunk(m, m->fd, it->c, &it->e, it->n);
    if (rc < 0) {
        cbpf_map_error(m, rc, "reading");
        return -1;
    }
    it->ended = it->e.len == 0 && it->c->mode == 'E';
    return 0;
}

static PyObject *MapIter_next(MapIterObject *it)
{
    MapObject *m = it->map;
    while (it->at == it->e.len) { /* a walk's chunk may come back empty (its keys deleted meanwhile) */
        if (it->ended || (it->c != NULL && it->c->mode == 'E') || MapIter_fill(it) < 0) {
            it->ended = true;
            return NULL;
        }
    }
    size_t i = it->at++;
    const unsigned char *key = it->e.keys + i * m->key_size;
    const unsigned char *value = it->e.values + i * cbpf_map_full_value_size(m);
    if (it->what == 0) {
        return cbpf_map_decode_key(m, key);
    }
    if (it->what == 1) {
        return cbpf_map_decode_value(m, value);
    }
    PyObject *k = cbpf_map_decode_key(m, key);
    PyObject *v = k ? cbpf_map_decode_value(m, value) : NULL;
    PyObject *item = v ? PyTuple_New(2) : NULL;
    if (item == NULL) {
        Py_XDECREF(k);
        Py_XDECREF(v);
        return NULL;
    }
    PyTuple_SET_ITEM(item, 0, k);
    PyTuple_SET_ITEM(item, 1, v);
    return item;
}

static int MapIter_traverse(MapIterObject *it, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(it));
    Py_VISIT(it->map);
    return 0;
}

static int MapIter_clear(MapIterObject *it)
{
    Py_CLEAR(it->map);
    return 0;
}

static void MapIter_dealloc(MapIterObject *it)
{
    PyTypeObject *tp = Py_TYPE(it);
    PyObject_GC_UnTrack(it);
    MapIter_clear(it);
    entries_free(&it->e);
    PyMem_Free(it->c);
    tp->tp_free((PyObject *)it);
    Py_DECREF(tp);
}

static PyType_Slot MapIter_slots[] = {
    {Py_tp_doc, "An iteration over a Map's keys, values or items (Map.keys(), values(), items())."},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, MapIter_next},
    {Py_tp_traverse, MapIter_traverse},
    {Py_tp_clear, MapIter_clear},
    {Py_tp_dealloc, MapIter_dealloc},
    {0, NULL},
};

PyType_Spec cbpf_mapiter_spec = {
    .name = "cbpf._cbpf._MapIter",
    .basicsize = sizeof(MapIterObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | CBPF_TPFLAGS_NO_INSTANCES,
    .slots = MapIter_slots,
};

/* Counts the entries (a whole read: the kernel keeps no count). */
Py_ssize_t cbpf_map_length(MapObject *self)
{
    cbpf_state *st = cbpf_state_from_type(Py_TYPE(self));
    entries e = {0};
    if (cbpf_map_check_keyed(self, "len()") < 0) {
        return -1;
    }
    Py_ssize_t n = read_all(st, self, &e) == 0 ? (Py_ssize_t)e.len : -1;
    entries_free(&e);
    return n;
}

/* cbpf.RingBuffer: events from BPF_MAP_TYPE_RINGBUF maps, read from the rings' memory mapped into the process.
 *
 * The kernel's ring buffer ABI: page 0 of the map holds the consumer position (ours to write), page 1 the
 * producer position; the data pages follow, mapped twice in a row, so that a record wrapping around the end is
 * contiguous. A record is an 8-byte header (the length, with a busy bit while the producer writes it and a discard
 * bit when it gave it up) and the data, padded to 8 bytes. Reading the rings directly, rather than through
 * libbpf's ring_buffer, lets one epoll set hold the stream's wake-up eventfd too (see stream.c), lets read() take
 * one event at a time, and lets batches publish the consumer position once per pass; benchmarks/bench_events.py
 * measures libbpf's consumer beside this one (benchmarks/_cbench.c).
 */
#include "cbpf.h"

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct {
    MapObject *map;
    PyObject *callback; /* NULL: the RingBuffer's */
    PyObject *decode;   /* NULL: the RingBuffer's */
    unsigned long *consumer;
    const unsigned long *producer;
    const unsigned char *data;
    size_t mask;
    size_t producer_len;
} ring;

typedef struct {
    StreamObject base;
    ring *rings;
    Py_ssize_t nrings;
    Py_ssize_t next_ring; /* where read() looks first, so that one busy ring does not starve the others */
} RingBufferObject;

static void ring_unmap(ring *r)
{
    if (r->consumer != NULL) {
        munmap(r->consumer, (size_t)sysconf(_SC_PAGESIZE));
    }
    if (r->producer != NULL) {
        munmap((void *)r->producer, r->producer_len);
    }
    r->consumer = NULL;
    r->producer = NULL;
    r->data = NULL;
}

static void release(PyObject *op)
{
    RingBufferObject *self = (RingBufferObject *)op;
    ring *rings = self->rings;
    Py_ssize_t n = self->nrings;
    self->rings = NULL;
    self->nrings = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        ring_unmap(&rings[i]);
        Py_CLEAR(rings[i].map);
        Py_CLEAR(rings[i].callback);
        Py_CLEAR(rings[i].decode);
    }
    PyMem_Free(rings);
}

/* Takes the records each ring holds now, up to the producer position read on entry. */
static int consume(PyObject *op, cbpf_sink *sink)
{
    RingBufferObject *self = (RingBufferObject *)op;
    Py_ssize_t n = self->nrings;
    Py_ssize_t first = self->next_ring < n ? self->next_ring : 0;
    /* a slow callback should give the space back at once; batches publish the position once per pass */
    bool publish_each = sink->kind == CBPF_SINK_CALL;
    for (Py_ssize_t k = 0; k < n; k++) {
        Py_ssize_t idx = (first + k) % n;
        ring *r = &self->rings[idx];
        PyObject *callback = r->callback ? r->callback : self->base.callback;
        PyObject *decode = r->decode ? r->decode : self->base.decode;
        unsigned long cons = *r->consumer; /* only we write it */
        unsigned long prod = __atomic_load_n(r->producer, __ATOMIC_ACQUIRE);
        /* at most this many bytes of events, and a record takes 8 bytes at least */
        if (cons < prod && cbpf_sink_expect(sink, prod - cons, (prod - cons) / BPF_RINGBUF_HDR_SZ) < 0) {
            return -1;
        }
        while (cons < prod) {
            const uint32_t *hdr = (const uint32_t *)(r->data + (cons & r->mask));
            uint32_t len = __atomic_load_n(hdr, __ATOMIC_ACQUIRE);
            if (len & BPF_RINGBUF_BUSY_BIT) {
                break; /* the producer is still writing it; later records wait behind it */
            }
            uint32_t size = len & ~(uint32_t)(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT);
            int rc = 0;
            cons += (size + BPF_RINGBUF_HDR_SZ + 7) & ~7u;
            if (!(len & BPF_RINGBUF_DISCARD_BIT)) {
                rc = cbpf_sink_put(sink, callback, decode, (const unsigned char *)hdr + BPF_RINGBUF_HDR_SZ, size);
            }
            if (publish_each || rc != 0 || self->base.closed) {
                __atomic_store_n(r->consumer, cons, __ATOMIC_RELEASE);
            }
            if (rc != 0 || self->base.closed) {
                self->next_ring = (idx + 1) % n;
                return rc < 0 ? -1 : 0;
            }
        }
        __atomic_store_n(r->consumer, cons, __ATOMIC_RELEASE);
    }
    return 0;
}

static bool has_callbacks(PyObject *op)
{
    RingBufferObject *self = (RingBufferObject *)op;
    for (Py_ssize_t i = 0; i < self->nrings; i++) {
        if (self->rings[i].callback == NULL && self->base.callback == NULL) {
            return false;
        }
    }
    return true;
}

static const cbpf_stream_ops ringbuf_ops = {consume, release, has_callbacks};

/* Maps a ring buffer map's pages and adds its fd to the epoll set. */
static int add_ring(cbpf_state *st, RingBufferObject *self, PyObject *map, PyObject *callback, PyObject *decode)
{
    if (!PyObject_TypeCheck(map, st->Map_type)) {
        PyErr_Format(PyExc_TypeError, "RingBuffer takes Maps of type BPF_MAP_TYPE_RINGBUF, not %.100s",
                     Py_TYPE(map)->tp_name);
        return -1;
    }
    MapObject *m = (MapObject *)map;
    if (m->type != BPF_MAP_TYPE_RINGBUF) {
        PyErr_Format(PyExc_TypeError,
                     "map '%U' is not a ring buffer (type %u; RingBuffer needs BPF_MAP_TYPE_RINGBUF, %d)%s", m->name,
                     m->type, BPF_MAP_TYPE_RINGBUF,
                     m->type == BPF_MAP_TYPE_PERF_EVENT_ARRAY ? ": use PerfBuffer for a perf event array" : "");
        return -1;
    }
    if (m->fd < 0) {
        PyErr_Format(PyExc_ValueError, "map '%U' is not open (its Object is closed or not loaded)", m->name);
        return -1;
    }
    if (cbpf_check_callable(callback, "callback") < 0 || cbpf_check_callable(decode, "decode") < 0) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < self->nrings; i++) {
        if (self->rings[i].map == m) {
            PyErr_Format(PyExc_ValueError, "map '%U' is in this RingBuffer already", m->name);
            return -1;
        }
    }
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    ring r = {0};
    r.mask = (size_t)m->max_entries - 1;
    r.producer_len = page + 2 * (size_t)m->max_entries;
    void *consumer = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, 0);
    if (consumer == MAP_FAILED) {
        cbpf_map_error(m, errno, "mapping the ring buffer's consumer page");
        return -1;
    }
    r.consumer = consumer;
    void *producer = mmap(NULL, r.producer_len, PROT_READ, MAP_SHARED, m->fd, (off_t)page);
    if (producer == MAP_FAILED) {
        cbpf_map_error(m, errno, "mapping the ring buffer's data");
        ring_unmap(&r);
        return -1;
    }
    r.producer = producer;
    r.data = (const unsigned char *)producer + page;
    ring *grown = PyMem_Realloc(self->rings, (size_t)(self->nrings + 1) * sizeof(ring));
    if (grown == NULL) {
        ring_unmap(&r);
        PyErr_NoMemory();
        return -1;
    }
    self->rings = grown;
    /* the epoll set holds the map's file, as the mappings do: the ring outlives the map's fd (Object.close()) */
    if (cbpf_stream_watch(st, &self->base, m->fd) < 0) {
        ring_unmap(&r);
        return -1;
    }
    r.map = (MapObject *)Py_NewRef(m);
    r.callback = callback == NULL || callback == Py_None ? NULL : Py_NewRef(callback);
    r.decode = decode == NULL || decode == Py_None ? NULL : Py_NewRef(decode);
    self->rings[self->nrings++] = r;
    return 0;
}

static PyObject *RingBuffer_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"maps", "callback", "decode", NULL};
    PyObject *maps = NULL, *callback = Py_None, *decode = Py_None, *seq = NULL;
    cbpf_state *st = cbpf_state_from_type(type);
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O$O:RingBuffer", kwlist, &maps, &callback, &decode)) {
        return NULL;
    }
    RingBufferObject *self = (RingBufferObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    if (cbpf_stream_init(st, &self->base, &ringbuf_ops, callback, decode) < 0) {
        goto error;
    }
    if (PyObject_TypeCheck(maps, st->Map_type)) {
        if (add_ring(st, self, maps, NULL, NULL) < 0) {
            goto error;
        }
        return (PyObject *)self;
    }
    seq = PySequence_Fast(maps, "RingBuffer takes a Map or a sequence of Maps");
    if (seq == NULL) {
        goto error;
    }
    if (PySequence_Fast_GET_SIZE(seq) == 0) {
        PyErr_SetString(PyExc_ValueError, "RingBuffer needs at least one map");
        goto error;
    }
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        if (add_ring(st, self, PySequence_Fast_GET_ITEM(seq, i), NULL, NULL) < 0) {
            goto error;
        }
    }
    Py_DECREF(seq);
    return (PyObject *)self;
error:
    Py_XDECREF(seq);
    Py_DECREF(self);
    return NULL;
}

static PyObject *RingBuffer_add(RingBufferObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"map", "callback", "decode", NULL};
    PyObject *map = NULL, *callback = Py_None, *decode = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O$O:add", kwlist, &map, &callback, &decode)) {
        return NULL;
    }
    if (cbpf_stream_usable(&self->base) < 0 ||
        add_ring(cbpf_state_from_type(Py_TYPE(self)), self, map, callback, decode) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *RingBuffer_get_maps(RingBufferObject *self, void *Py_UNUSED(closure))
{
    PyObject *t = PyTuple_New(self->nrings);
    if (t == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < self->nrings; i++) {
        PyTuple_SET_ITEM(t, i, Py_NewRef(self->rings[i].map));
    }
    return t;
}

static PyObject *RingBuffer_repr(RingBufferObject *self)
{
    PyObject *names = PyList_New(0);
    for (Py_ssize_t i = 0; names != NULL && i < self->nrings; i++) {
        if (PyList_Append(names, self->rings[i].map->name) < 0) {
            Py_CLEAR(names);
        }
    }
    if (names == NULL) {
        return NULL;
    }
    PyObject *r = PyUnicode_FromFormat("<cbpf.RingBuffer %R%s>", names, self->base.closed ? " (closed)" : "");
    Py_DECREF(names);
    return r;
}

static int RingBuffer_traverse(RingBufferObject *self, visitproc visit, void *arg)
{
    for (Py_ssize_t i = 0; i < self->nrings; i++) {
        Py_VISIT(self->rings[i].map);
        Py_VISIT(self->rings[i].callback);
        Py_VISIT(self->rings[i].decode);
    }
    return cbpf_stream_traverse(&self->base, visit, arg);
}

static PyMethodDef RingBuffer_methods[] = {
    {"add", (PyCFunction)(void (*)(void))RingBuffer_add, METH_VARARGS | METH_KEYWORDS,
     "add($self, map, callback=None, *, decode=None)\n--\n\nAdds another ring buffer map, with a callback and a "
     "decode of its own (None: the RingBuffer's)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef RingBuffer_getset[] = {
    {"maps", (getter)RingBuffer_get_maps, NULL, "The ring buffer maps read, as a tuple.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot RingBuffer_slots[] = {
    {Py_tp_doc, "RingBuffer(maps, callback=None, *, decode=None)\n--\n\n"
                "Events from BPF_MAP_TYPE_RINGBUF maps (a Map or a sequence of Maps). Each event comes as bytes (a "
                "copy: the ring's space goes back to the kernel at once), or as decode(bytes) when decode is set."},
    {Py_tp_new, RingBuffer_new},
    {Py_tp_methods, RingBuffer_methods},
    {Py_tp_getset, RingBuffer_getset},
    {Py_tp_repr, RingBuffer_repr},
    {Py_tp_traverse, RingBuffer_traverse},
    {0, NULL},
};

PyType_Spec cbpf_ringbuf_spec = {
    .name = "cbpf._cbpf.RingBuffer",
    .basicsize = sizeof(RingBufferObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = RingBuffer_slots,
};

/* _cbench: the C baselines the benchmarks measure cbpf against, in an extension of their own that wheels never
 * build (benchmarks/build_cbench.py builds it in place; `make bench` runs that first).
 *
 * It reads cbpf's objects through src/cbpf.h, so it must be built against the very sources and Python the
 * installed cbpf._cbpf was built from (the build script does both). Each object is type-checked against
 * cbpf._cbpf's own types before its fields are read. The stream baseline runs cbpf's own consumer (the stream's
 * cbpf_stream_ops, inside cbpf._cbpf) with the sink that only counts: the loop the Python calls pay for, without
 * Python.
 */
#include "cbpf.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

typedef struct {
    PyTypeObject *map_type;
    PyTypeObject *stream_type;
    PyTypeObject *ringbuf_type;
} bench_state;

static bench_state *state_of(PyObject *module)
{
    return PyModule_GetState(module);
}

static double monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static MapObject *open_map(PyObject *module, PyObject *arg)
{
    if (!PyObject_TypeCheck(arg, state_of(module)->map_type)) {
        PyErr_Format(PyExc_TypeError, "a cbpf Map, not %.100s", Py_TYPE(arg)->tp_name);
        return NULL;
    }
    MapObject *map = (MapObject *)arg;
    if (map->fd < 0) {
        PyErr_Format(PyExc_ValueError, "map '%U' is closed", map->name);
        return NULL;
    }
    return map;
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) * 1e-9;
}

/* lookup_loop(map, key, n): n lookups of one key (an int, or bytes of the key's size) from C, the baseline of
 * Map.fetch(). Returns seconds. */
static PyObject *lookup_loop(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        return PyErr_Format(PyExc_TypeError, "lookup_loop(map, key, n)");
    }
    MapObject *map = open_map(module, args[0]);
    Py_ssize_t n = PyLong_AsSsize_t(args[2]);
    if (map == NULL || (n == -1 && PyErr_Occurred())) {
        return NULL;
    }
    uint64_t scratch = 0;
    Py_buffer view = {0};
    const void *key = &scratch;
    unsigned char *value = NULL;
    PyObject *result = NULL;
    if (PyLong_Check(args[1])) {
        scratch = PyLong_AsUnsignedLongLong(args[1]);
        if (PyErr_Occurred() || map->key_size > sizeof(scratch)) {
            return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_ValueError, "an int key needs a key of <= 8 bytes");
        }
    }
    else {
        if (PyObject_GetBuffer(args[1], &view, PyBUF_CONTIG_RO) < 0) {
            return NULL;
        }
        if ((size_t)view.len != map->key_size) {
            PyErr_Format(PyExc_ValueError, "the key takes %u bytes, not %zd", map->key_size, view.len);
            goto done;
        }
        key = view.buf;
    }
    value = PyMem_Malloc(cbpf_map_full_value_size(map) ? cbpf_map_full_value_size(map) : 1);
    if (value == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (Py_ssize_t i = 0; i < n; i++) {
        bpf_map_lookup_elem(map->fd, key, value);
    }
    result = PyFloat_FromDouble(seconds_since(&t0));
done:
    if (view.obj != NULL) {
        PyBuffer_Release(&view);
    }
    PyMem_Free(value);
    return result;
}

/* batch_loop(map): the whole map read with batch lookups into reused buffers, from C, the baseline of the
 * whole-map reads. Returns (seconds, entries). */
static PyObject *batch_loop(PyObject *module, PyObject *arg)
{
    MapObject *map = open_map(module, arg);
    if (map == NULL) {
        return NULL;
    }
    uint32_t chunk = 8192;
    size_t token = map->key_size > 8 ? map->key_size : 8;
    unsigned char *keys = PyMem_RawMalloc((size_t)chunk * map->key_size + 2 * token);
    unsigned char *values = PyMem_RawMalloc((size_t)chunk * cbpf_map_full_value_size(map));
    if (keys == NULL || values == NULL) {
        PyMem_RawFree(keys);
        PyMem_RawFree(values);
        return PyErr_NoMemory();
    }
    unsigned char *in = keys + (size_t)chunk * map->key_size, *out = in + token;
    size_t total = 0;
    int err = 0;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (bool first = true;; first = false) {
        __u32 count = chunk;
        LIBBPF_OPTS(bpf_map_batch_opts, opts);
        int rc = bpf_map_lookup_batch(map->fd, first ? NULL : in, out, keys, values, &count, &opts);
        total += count;
        if (rc != 0) {
            err = errno == ENOENT ? 0 : errno;
            break;
        }
        memcpy(in, out, token);
    }
    double secs = seconds_since(&t0);
    PyMem_RawFree(keys);
    PyMem_RawFree(values);
    if (err) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return Py_BuildValue("(dn)", secs, (Py_ssize_t)total);
}

/* Marks a stream busy as a poll does: a close() meanwhile only marks it closed (it is freed at dealloc then). */
static StreamObject *enter_stream(PyObject *module, PyObject *arg, PyTypeObject *type)
{
    if (!PyObject_TypeCheck(arg, type)) {
        PyErr_Format(PyExc_TypeError, "a cbpf %s, not %.100s", type->tp_name, Py_TYPE(arg)->tp_name);
        return NULL;
    }
    StreamObject *s = (StreamObject *)arg;
    if (s->closed || s->busy) {
        PyErr_SetString(PyExc_ValueError, s->closed ? "the stream is closed" : "the stream is being polled");
        return NULL;
    }
    s->busy = true;
    (void)module;
    return s;
}

/* Waits (without the GIL) until the stream's epoll set is ready or the deadline passes. */
static int wait_ready(StreamObject *s, double deadline)
{
    struct epoll_event events[8];
    double left = deadline - monotonic();
    int ms = left <= 0 ? 0 : left >= INT_MAX / 1000 ? INT_MAX : (int)ceil(left * 1000.0);
    int n, err, epfd = s->epfd;
    Py_BEGIN_ALLOW_THREADS
    n = epoll_wait(epfd, events, 8, ms);
    err = errno;
    Py_END_ALLOW_THREADS
    if (n < 0 && err != EINTR) {
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return PyErr_CheckSignals();
}

/* stream_consume(stream, duration): cbpf's consumer on a RingBuffer or PerfBuffer with events only copied out
 * in C, for duration seconds, or until the buffers are empty when duration <= 0. Returns (seconds, events,
 * checksum). */
static PyObject *stream_consume(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        return PyErr_Format(PyExc_TypeError, "stream_consume(stream, duration)");
    }
    double duration = PyFloat_AsDouble(args[1]);
    if (duration == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    StreamObject *s = enter_stream(module, args[0], state_of(module)->stream_type);
    if (s == NULL) {
        return NULL;
    }
    bool drain = duration <= 0;
    cbpf_sink sink = {.kind = CBPF_SINK_COUNT};
    Py_ssize_t total = 0;
    int rc = 0;
    double t0 = monotonic(), end = t0 + duration;
    while ((drain || monotonic() < end) && !s->closed) {
        sink.count = 0;
        rc = s->ops->consume((PyObject *)s, &sink);
        total += sink.count;
        if (rc < 0 || (drain && sink.count == 0)) {
            break;
        }
        if (!drain && sink.count == 0 && (rc = wait_ready(s, end)) < 0) {
            break;
        }
    }
    s->busy = false;
    if (rc < 0) {
        return NULL;
    }
    return Py_BuildValue("(dnK)", monotonic() - t0, total, (unsigned long long)sink.checksum);
}

static int count_sample(void *ctx, void *data, size_t size)
{
    cbpf_sink_count(ctx, data, size);
    return 0;
}

/* libbpf_ring_consume(ringbuf, duration): libbpf's own ring buffer consumer (ring_buffer__poll) on the RingBuffer's
 * first map for duration seconds (<= 0: one ring_buffer__consume, which empties it), the GIL released
 * throughout. Returns (seconds, events, checksum). */
static PyObject *libbpf_ring_consume(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        return PyErr_Format(PyExc_TypeError, "libbpf_ring_consume(ringbuf, duration)");
    }
    double duration = PyFloat_AsDouble(args[1]);
    if (duration == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *maps = PyObject_GetAttrString(args[0], "maps");
    if (maps == NULL) {
        return NULL;
    }
    MapObject *map = PyTuple_Check(maps) && PyTuple_GET_SIZE(maps) > 0
                         ? open_map(module, PyTuple_GET_ITEM(maps, 0))
                         : (MapObject *)PyErr_Format(PyExc_ValueError, "the RingBuffer has no map");
    StreamObject *s = map == NULL ? NULL : enter_stream(module, args[0], state_of(module)->ringbuf_type);
    if (s == NULL) {
        Py_DECREF(maps);
        return NULL;
    }
    cbpf_sink sink = {.kind = CBPF_SINK_COUNT};
    int err = 0;
    double elapsed = 0;
    struct ring_buffer *rb = NULL;
    Py_BEGIN_ALLOW_THREADS
    rb = ring_buffer__new(map->fd, count_sample, &sink, NULL);
    err = rb == NULL ? errno : 0;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (rb != NULL && (elapsed < duration || duration <= 0)) {
        int rc = duration <= 0 ? ring_buffer__consume(rb) : ring_buffer__poll(rb, 10);
        if (rc < 0 && rc != -EINTR) {
            err = -rc;
            break;
        }
        elapsed = seconds_since(&t0);
        if (duration <= 0) {
            break;
        }
    }
    ring_buffer__free(rb);
    Py_END_ALLOW_THREADS
    s->busy = false;
    Py_DECREF(maps);
    if (err) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return Py_BuildValue("(dnK)", elapsed, sink.count, (unsigned long long)sink.checksum);
}

static PyMethodDef bench_methods[] = {
    {"lookup_loop", (PyCFunction)(void (*)(void))lookup_loop, METH_FASTCALL,
     "lookup_loop(map, key, n, /)\n--\n\nn lookups of one key from C; returns seconds."},
    {"batch_loop", (PyCFunction)batch_loop, METH_O,
     "batch_loop(map, /)\n--\n\nThe whole map by batch lookups from C; (seconds, entries)."},
    {"stream_consume", (PyCFunction)(void (*)(void))stream_consume, METH_FASTCALL,
     "stream_consume(stream, duration, /)\n--\n\ncbpf's consumer with events only copied out in C; (seconds, "
     "events, checksum)."},
    {"libbpf_ring_consume", (PyCFunction)(void (*)(void))libbpf_ring_consume, METH_FASTCALL,
     "libbpf_ring_consume(ringbuf, duration, /)\n--\n\nlibbpf's ring_buffer__poll() on the first map; (seconds, "
     "events, checksum)."},
    {NULL, NULL, 0, NULL},
};

static int bench_exec(PyObject *module)
{
    bench_state *st = state_of(module);
    PyObject *core = PyImport_ImportModule("cbpf._cbpf");
    if (core == NULL) {
        return -1;
    }
    st->map_type = (PyTypeObject *)PyObject_GetAttrString(core, "Map");
    st->stream_type = (PyTypeObject *)PyObject_GetAttrString(core, "_EventStream");
    st->ringbuf_type = (PyTypeObject *)PyObject_GetAttrString(core, "RingBuffer");
    Py_DECREF(core);
    if (st->map_type == NULL || st->stream_type == NULL || st->ringbuf_type == NULL) {
        return -1;
    }
    if (!PyType_Check(st->map_type) || !PyType_Check(st->stream_type) || !PyType_Check(st->ringbuf_type)) {
        PyErr_SetString(PyExc_TypeError, "cbpf._cbpf does not have the types _cbench was built for");
        return -1;
    }
    return 0;
}

static int bench_traverse(PyObject *module, visitproc visit, void *arg)
{
    bench_state *st = state_of(module);
    Py_VISIT(st->map_type);
    Py_VISIT(st->stream_type);
    Py_VISIT(st->ringbuf_type);
    return 0;
}

static int bench_clear(PyObject *module)
{
    bench_state *st = state_of(module);
    Py_CLEAR(st->map_type);
    Py_CLEAR(st->stream_type);
    Py_CLEAR(st->ringbuf_type);
    return 0;
}

static PyModuleDef_Slot bench_slots[] = {
    {Py_mod_exec, bench_exec},
    {0, NULL},
};

static struct PyModuleDef bench_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_cbench",
    .m_doc = "C baselines for cbpf's benchmarks (not part of cbpf).",
    .m_size = sizeof(bench_state),
    .m_methods = bench_methods,
    .m_slots = bench_slots,
    .m_traverse = bench_traverse,
    .m_clear = bench_clear,
};

PyMODINIT_FUNC PyInit__cbench(void)
{
    return PyModuleDef_Init(&bench_module);
}

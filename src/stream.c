/* cbpf._cbpf._EventStream: what RingBuffer and PerfBuffer share. Waiting in epoll without the GIL, closing while
 * another thread waits, timeouts, and the sinks that consumed events go to (a callback per event, one event back,
 * or a batch).
 *
 * A stream is polled by one thread at a time (busy). Closing a busy stream only marks it closed and writes the
 * eventfd that sits in its epoll set: the poller wakes, stops, and frees the buffers itself once it no longer reads
 * them. No thread frees memory another one reads, and close() never blocks.
 */
#include "cbpf.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

static double monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int cbpf_check_callable(PyObject *obj, const char *what)
{
    if (obj != NULL && obj != Py_None && !PyCallable_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be callable or None, not %.100s", what, Py_TYPE(obj)->tp_name);
        return -1;
    }
    return 0;
}

static void free_fds(StreamObject *s)
{
    if (s->epfd >= 0) {
        close(s->epfd);
    }
    if (s->wakefd >= 0) {
        close(s->wakefd);
    }
    s->epfd = s->wakefd = -1;
}

/* Called by a subtype's tp_new right after tp_alloc; on failure the object can simply be released. */
int cbpf_stream_init(cbpf_state *st, StreamObject *s, const cbpf_stream_ops *ops, PyObject *callback, PyObject *decode)
{
    s->ops = ops;
    s->epfd = s->wakefd = -1;
    if (cbpf_check_callable(callback, "callback") < 0 || cbpf_check_callable(decode, "decode") < 0) {
        s->closed = true;
        return -1;
    }
    s->callback = callback == NULL || callback == Py_None ? NULL : Py_NewRef(callback);
    s->decode = decode == NULL || decode == Py_None ? NULL : Py_NewRef(decode);
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    s->wakefd = s->epfd < 0 ? -1 : eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
    if (s->epfd < 0 || s->wakefd < 0 || epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->wakefd, &ev) < 0) {
        cbpf_set_error(st, errno, "creating the epoll set of an event stream");
        free_fds(s);
        return -1;
    }
    return 0;
}

int cbpf_stream_watch(cbpf_state *st, StreamObject *s, int fd)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)fd};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        cbpf_set_error(st, errno, "adding fd %d to the epoll set of an event stream", fd);
        return -1;
    }
    return 0;
}

int cbpf_stream_usable(StreamObject *s)
{
    if (s->closed) {
        PyErr_Format(PyExc_ValueError, "%s is closed", Py_TYPE(s)->tp_name);
        return -1;
    }
    if (s->busy) {
        PyErr_Format(PyExc_RuntimeError, "%s is being polled already (by another thread, or this is its callback)",
                     Py_TYPE(s)->tp_name);
        return -1;
    }
    return 0;
}

static void stream_close(StreamObject *s)
{
    if (s->closed && s->epfd < 0) {
        return;
    }
    s->closed = true;
    if (s->busy) {
        /* the poller frees everything when it returns; a full eventfd counter wakes it as well as a write */
        uint64_t one = 1;
        ssize_t n = write(s->wakefd, &one, sizeof(one));
        (void)n;
        return;
    }
    s->ops->release((PyObject *)s);
    free_fds(s);
}

/* None: wait as long as it takes (deadline < 0); else seconds from now, >= 0. */
static int parse_deadline(PyObject *timeout, double *deadline)
{
    if (timeout == NULL || timeout == Py_None) {
        *deadline = -1.0;
        return 0;
    }
    double t = PyFloat_AsDouble(timeout);
    if (t == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    if (!(t >= 0.0)) { /* NaN too */
        PyErr_Format(PyExc_ValueError, "timeout must be >= 0 seconds or None, not %R", timeout);
        return -1;
    }
    *deadline = monotonic() + t;
    return 0;
}

/* Waits until a buffer is readable, close() wakes the stream, or the deadline passes: 1, 0 on timeout, -1 with an
 * exception (a signal handler raised). The GIL is released only around epoll_wait. */
static int wait_ready(StreamObject *s, double deadline)
{
    struct epoll_event events[8];
    for (;;) {
        int ms = -1;
        if (deadline >= 0) {
            double left = deadline - monotonic();
            ms = left <= 0 ? 0 : left >= INT_MAX / 1000 ? INT_MAX : (int)ceil(left * 1000.0);
        }
        int n, err, epfd = s->epfd;
        Py_BEGIN_ALLOW_THREADS
        n = epoll_wait(epfd, events, 8, ms);
        err = errno;
        Py_END_ALLOW_THREADS
        if (n >= 0) {
            return n > 0;
        }
        if (err != EINTR) {
            cbpf_set_error(cbpf_state_from_type(Py_TYPE(s)), err, "waiting for events (epoll_wait)");
            return -1;
        }
        if (PyErr_CheckSignals() < 0) {
            return -1;
        }
        if (s->closed) {
            return 1;
        }
    }
}

/* Marks the stream busy for a poll (or fails as cbpf_stream_usable does); cbpf_stream_leave ends it. */
int cbpf_stream_enter(StreamObject *s)
{
    if (cbpf_stream_usable(s) < 0) {
        return -1;
    }
    s->busy = true;
    return 0;
}

void cbpf_stream_leave(StreamObject *s)
{
    s->busy = false;
    if (s->closed) {
        stream_close(s); /* deferred by a close() while busy: free now */
    }
}

/* Consumes, and waits when there was nothing, until the sink got something, the deadline passed or the stream was
 * closed: 0 (sink->count says what came), or -1 with an exception set. */
static int run(StreamObject *s, cbpf_sink *sink, double deadline)
{
    int rc;
    if (cbpf_stream_enter(s) < 0) {
        return -1;
    }
    sink->decoder_type = cbpf_state_from_type(Py_TYPE(s))->Decoder_type;
    for (;;) {
        rc = s->ops->consume((PyObject *)s, sink);
        if (rc < 0 || sink->count > 0 || s->closed) {
            break;
        }
        rc = wait_ready(s, deadline);
        if (rc == 0 && !s->closed) {
            /* timed out: take what came without a wake-up (a perf buffer wakes every wakeup_events samples) */
            rc = s->ops->consume((PyObject *)s, sink);
            break;
        }
        if (rc < 0 || s->closed) {
            break;
        }
    }
    cbpf_stream_leave(s);
    return rc < 0 ? -1 : 0;
}

/* Sinks ---------------------------------------------------------------------------------------------------------- */

/* Grows a bytes object in place to hold at least `need` bytes (doubling). */
/* base + count * each bytes, or SIZE_MAX (which grow() refuses) when that does not fit. */
static size_t need_of(size_t base, size_t count, size_t each)
{
    size_t bytes, need;
    return cbpf_checked_mul(count, each, &bytes) || cbpf_checked_add(base, bytes, &need) ? SIZE_MAX : need;
}

static int grow(PyObject **buf, size_t need)
{
    size_t have = *buf ? (size_t)PyBytes_GET_SIZE(*buf) : 0;
    if (need <= have) {
        return 0;
    }
    if (need > (size_t)PY_SSIZE_T_MAX) {
        PyErr_NoMemory();
        return -1;
    }
    size_t size = have ? have : 64 * 1024;
    while (size < need) {
        if (cbpf_checked_mul(size, 2, &size) || size > (size_t)PY_SSIZE_T_MAX) {
            size = need;
        }
    }
    if (*buf == NULL) {
        *buf = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
        return *buf ? 0 : -1;
    }
    return _PyBytes_Resize(buf, (Py_ssize_t)size);
}

/* Room for `events` more events of `bytes` bytes in all: a batch is built in the bytes objects it returns, so
 * a buffer that knows what it holds (a ring) sizes them once; pages never written cost nothing. */
int cbpf_sink_expect(cbpf_sink *sink, size_t bytes, size_t events)
{
    if (sink->kind != CBPF_SINK_BATCH || sink->limit > 0) {
        return 0; /* a batch of at most max_events grows as it goes */
    }
    if (sink->record_size) {
        return grow(&sink->data, need_of(sink->len, events, sink->record_size));
    }
    if (grow(&sink->data, need_of(sink->len, bytes, 1)) < 0) {
        return -1;
    }
    return grow(&sink->offsets, need_of(sizeof(uint64_t), need_of((size_t)sink->count, events, 1), sizeof(uint64_t)));
}

/* One event, copied out (the buffer's space goes back to the kernel right after). Returns 0 to go on, 1 when the
 * sink is full, -1 with an exception set (a callback raised: the event counts as delivered). */
int cbpf_sink_put(cbpf_sink *sink, PyObject *callback, PyObject *decode, const void *data, size_t size)
{
    switch (sink->kind) {
    case CBPF_SINK_COUNT: {
        unsigned char copy[512];
        size_t n = size < sizeof(copy) ? size : sizeof(copy);
        uint64_t word = 0;
        memcpy(copy, data, n);
        memcpy(&word, copy, n < 8 ? n : 8);
        sink->checksum += word + n;
        break;
    }
    case CBPF_SINK_BATCH: {
        size_t take = sink->record_size ? sink->record_size : size;
        size_t copied = size < take ? size : take;
        if (grow(&sink->data, need_of(sink->len, take, 1)) < 0 ||
            (sink->record_size == 0 &&
             grow(&sink->offsets, need_of(2 * sizeof(uint64_t), (size_t)sink->count, sizeof(uint64_t))) < 0)) {
            sink->count++;
            return -1;
        }
        char *out = PyBytes_AS_STRING(sink->data) + sink->len;
        if (sink->record_size == 0) {
            ((uint64_t *)PyBytes_AS_STRING(sink->offsets))[sink->count] = sink->len;
        }
        memcpy(out, data, copied);
        memset(out + copied, 0, take - copied);
        sink->len += take;
        break;
    }
    case CBPF_SINK_ONE:
    case CBPF_SINK_CALL: {
        PyObject *event;
        if (decode != NULL && Py_IS_TYPE(decode, sink->decoder_type)) {
            event = cbpf_decoder_decode(decode, data, size); /* straight from the buffer's memory */
        } else {
            event = PyBytes_FromStringAndSize(data, (Py_ssize_t)size);
            if (event != NULL && decode != NULL) {
                Py_SETREF(event, PyObject_CallOneArg(decode, event));
            }
        }
        if (event == NULL) {
            sink->count++;
            return -1;
        }
        if (sink->kind == CBPF_SINK_ONE) {
            sink->one = event;
            break;
        }
        PyObject *r = PyObject_CallOneArg(callback, event);
        Py_DECREF(event);
        if (r == NULL) {
            sink->count++;
            return -1;
        }
        Py_DECREF(r);
        break;
    }
    }
    sink->count++;
    return sink->limit > 0 && sink->count >= sink->limit;
}

/* A batch as (bytes, offsets), offsets a memoryview of uint64 with count + 1 entries; with a record size,
 * (bytes, count). Takes the sink's buffers. */
static PyObject *batch_result(cbpf_sink *sink)
{
    PyObject *view = NULL, *offsets = NULL, *result = NULL;
    size_t n = (size_t)sink->count;
    if (grow(&sink->data, 1) < 0 || _PyBytes_Resize(&sink->data, (Py_ssize_t)sink->len) < 0) {
        goto done;
    }
    if (sink->record_size) {
        result = Py_BuildValue("(On)", sink->data, sink->count);
        goto done;
    }
    if (grow(&sink->offsets, (n + 1) * sizeof(uint64_t)) < 0) {
        goto done;
    }
    ((uint64_t *)PyBytes_AS_STRING(sink->offsets))[n] = sink->len;
    if (_PyBytes_Resize(&sink->offsets, (Py_ssize_t)((n + 1) * sizeof(uint64_t))) < 0) {
        goto done;
    }
    view = PyMemoryView_FromObject(sink->offsets);
    offsets = view ? PyObject_CallMethod(view, "cast", "s", "Q") : NULL;
    if (offsets == NULL) {
        goto done;
    }
    result = PyTuple_Pack(2, sink->data, offsets);
done:
    Py_XDECREF(view);
    Py_XDECREF(offsets);
    return result;
}

static void sink_free(cbpf_sink *sink)
{
    Py_CLEAR(sink->data);
    Py_CLEAR(sink->offsets);
    Py_CLEAR(sink->one);
}

/* Methods ---------------------------------------------------------------------------------------------------------- */

/* The one optional argument of poll() and read(): timeout=None, as a deadline. */
static int timeout_arg(PyObject *const *args, Py_ssize_t nargs, const char *method, double *deadline)
{
    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most 1 argument (%zd given)", method, nargs);
        return -1;
    }
    return parse_deadline(nargs ? args[0] : NULL, deadline);
}

static PyObject *Stream_poll(StreamObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    double deadline;
    if (timeout_arg(args, nargs, "poll", &deadline) < 0) {
        return NULL;
    }
    bool callable = self->ops->has_callbacks ? self->ops->has_callbacks((PyObject *)self) : self->callback != NULL;
    if (!self->closed && !callable) {
        return PyErr_Format(PyExc_TypeError,
                            "poll() calls a callback per event and this %s has none: pass "
                            "callback=, or use poll_batch(), read() or iteration",
                            Py_TYPE(self)->tp_name);
    }
    cbpf_sink sink = {.kind = CBPF_SINK_CALL};
    if (run(self, &sink, deadline) < 0) {
        return NULL;
    }
    return PyLong_FromSsize_t(sink.count);
}

/* [record_size,] timeout=None, max_events=None: one batch. */
static PyObject *batch(StreamObject *self, PyObject *const *args, Py_ssize_t nargs, size_t record_size)
{
    double deadline;
    PyObject *result = NULL;
    cbpf_sink sink = {.kind = CBPF_SINK_BATCH, .record_size = record_size};
    if (parse_deadline(nargs > 0 ? args[0] : NULL, &deadline) < 0) {
        return NULL;
    }
    if (nargs > 1 && args[1] != Py_None) {
        sink.limit = PyLong_AsSsize_t(args[1]);
        if (sink.limit <= 0) {
            return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_ValueError, "max_events must be > 0 or None");
        }
    }
    if (run(self, &sink, deadline) == 0) {
        result = batch_result(&sink);
    }
    sink_free(&sink);
    return result;
}

static PyObject *Stream_poll_batch(StreamObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs > 2) {
        return PyErr_Format(PyExc_TypeError, "poll_batch() takes at most 2 arguments (%zd given)", nargs);
    }
    return batch(self, args, nargs, 0);
}

static PyObject *Stream_poll_records(StreamObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 3) {
        return PyErr_Format(PyExc_TypeError, "_poll_records(record_size, timeout=None, max_events=None)");
    }
    Py_ssize_t record_size = PyLong_AsSsize_t(args[0]);
    if (record_size <= 0) {
        return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_ValueError, "record_size must be > 0");
    }
    return batch(self, args + 1, nargs - 1, (size_t)record_size);
}

/* The next event, or NULL without an exception on timeout or when the stream was closed while waiting. */
static PyObject *read_one(StreamObject *self, double deadline)
{
    cbpf_sink sink = {.kind = CBPF_SINK_ONE, .limit = 1};
    if (run(self, &sink, deadline) < 0) {
        Py_CLEAR(sink.one);
        return NULL;
    }
    return sink.one;
}

static PyObject *Stream_read(StreamObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    double deadline;
    if (timeout_arg(args, nargs, "read", &deadline) < 0) {
        return NULL;
    }
    PyObject *event = read_one(self, deadline);
    if (event == NULL && !PyErr_Occurred()) {
        Py_RETURN_NONE;
    }
    return event;
}

static PyObject *Stream_iternext(StreamObject *self)
{
    if (self->closed) {
        return NULL; /* StopIteration: close() ends a for loop, in this thread or another */
    }
    return read_one(self, -1.0);
}

static PyObject *Stream_fileno(StreamObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->closed) {
        return PyErr_Format(PyExc_ValueError, "%s is closed", Py_TYPE(self)->tp_name);
    }
    return PyLong_FromLong(self->epfd);
}

static PyObject *Stream_close(StreamObject *self, PyObject *Py_UNUSED(ignored))
{
    stream_close(self);
    Py_RETURN_NONE;
}

static PyObject *Stream_enter(StreamObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->closed) {
        return PyErr_Format(PyExc_ValueError, "%s is closed", Py_TYPE(self)->tp_name);
    }
    return Py_NewRef(self);
}

static PyObject *Stream_exit(StreamObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)args;
    (void)nargs;
    stream_close(self);
    Py_RETURN_FALSE;
}

/* Benchmark baseline: this consumer with events only copied out in C, for `duration` seconds, or until the
 * buffers are empty when duration <= 0. Returns (seconds, events, checksum). */
static PyObject *Stream_c_consume(StreamObject *self, PyObject *arg)
{
    double duration = PyFloat_AsDouble(arg);
    if (duration == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    bool drain = duration <= 0;
    cbpf_sink sink = {.kind = CBPF_SINK_COUNT};
    Py_ssize_t total = 0;
    double t0 = monotonic(), end = t0 + duration;
    while ((drain || monotonic() < end) && !self->closed) {
        sink.count = 0;
        if (run(self, &sink, drain ? 0.0 : end) < 0) {
            return NULL;
        }
        total += sink.count;
        if (drain && sink.count == 0) {
            break;
        }
    }
    return Py_BuildValue("(dnK)", monotonic() - t0, total, (unsigned long long)sink.checksum);
}

static PyObject *Stream_get_closed(StreamObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->closed);
}

static PyObject *Stream_get_callback(StreamObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->callback ? self->callback : Py_None);
}

static PyObject *Stream_get_decode(StreamObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->decode ? self->decode : Py_None);
}

int cbpf_stream_traverse(StreamObject *s, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(s));
    Py_VISIT(s->callback);
    Py_VISIT(s->decode);
    return 0;
}

static int Stream_clear(StreamObject *self)
{
    /* unreachable, so no poll is under way (a poll holds a reference); release() drops the subtype's refs */
    if (self->ops != NULL) {
        stream_close(self);
    }
    Py_CLEAR(self->callback);
    Py_CLEAR(self->decode);
    return 0;
}

static void Stream_dealloc(StreamObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Stream_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

#define FASTCALL(f) (PyCFunction)(void (*)(void))(f)

static PyMethodDef Stream_methods[] = {
    {"poll", FASTCALL(Stream_poll), METH_FASTCALL,
     "poll($self, timeout=None, /)\n--\n\nWaits up to timeout seconds (None: as long as it takes) for events, "
     "then calls the callback once per event that is there, with the event's bytes (or what decode makes of them). "
     "Returns how many events were handled: 0 on timeout, or when close() was called meanwhile. An exception "
     "raised by a callback stops the poll and propagates; that event counts as consumed, the ones after it wait "
     "for the next poll."},
    {"poll_batch", FASTCALL(Stream_poll_batch), METH_FASTCALL,
     "poll_batch($self, timeout=None, max_events=None, /)\n--\n\nWaits as poll() does, then takes up to "
     "max_events events (None: all there are) in one call, with no Python object per event: (data, offsets), "
     "data the events' bytes one after another, offsets a memoryview of uint64 with one entry more than there "
     "are events: event i is data[offsets[i]:offsets[i + 1]]."},
    {"_poll_records", FASTCALL(Stream_poll_records), METH_FASTCALL,
     "_poll_records($self, record_size, timeout=None, max_events=None, /)\n--\n\nAs poll_batch(), every event "
     "cut or zero-padded to record_size bytes: (data, count)."},
    {"read", FASTCALL(Stream_read), METH_FASTCALL,
     "read($self, timeout=None, /)\n--\n\nThe next event (bytes, or what decode makes of them), or None when "
     "timeout seconds pass first or close() is called meanwhile."},
    {"fileno", (PyCFunction)Stream_fileno, METH_NOARGS,
     "fileno($self, /)\n--\n\nAn epoll fd, readable while events wait: for select, selectors, asyncio's "
     "add_reader."},
    {"close", (PyCFunction)Stream_close, METH_NOARGS,
     "close($self, /)\n--\n\nFrees the buffers and fds. A poll under way in another thread returns first (it frees "
     "them as it leaves). Safe to call twice."},
    {"__enter__", (PyCFunction)Stream_enter, METH_NOARGS, NULL},
    {"__exit__", FASTCALL(Stream_exit), METH_FASTCALL, NULL},
    {"_c_consume", (PyCFunction)Stream_c_consume, METH_O,
     "_c_consume($self, duration, /)\n--\n\nBenchmark baseline: this consumer with events only copied out in C, "
     "for duration seconds (<= 0: until nothing is left); (seconds, events, checksum)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Stream_getset[] = {
    {"closed", (getter)Stream_get_closed, NULL, "True once close() was called.", NULL},
    {"callback", (getter)Stream_get_callback, NULL, "What poll() calls per event, or None.", NULL},
    {"decode", (getter)Stream_get_decode, NULL, "What turns an event's bytes into what is delivered, or None.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Stream_slots[] = {
    {Py_tp_doc, "The base of RingBuffer and PerfBuffer: polling, batches, iteration, fileno() and close()."},
    {Py_tp_methods, Stream_methods},
    {Py_tp_getset, Stream_getset},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, Stream_iternext},
    {Py_tp_traverse, cbpf_stream_traverse},
    {Py_tp_clear, Stream_clear},
    {Py_tp_dealloc, Stream_dealloc},
    {0, NULL},
};

PyType_Spec cbpf_stream_spec = {
    .name = "cbpf._cbpf._EventStream",
    .basicsize = sizeof(StreamObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE | CBPF_TPFLAGS_NO_INSTANCES,
    .slots = Stream_slots,
};

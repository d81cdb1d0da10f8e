/* cbpf.PerfBuffer: events from a BPF_MAP_TYPE_PERF_EVENT_ARRAY map (bpf_perf_event_output), one perf buffer per
 * CPU, through libbpf's perf_buffer in raw mode: libbpf opens the perf events, maps them and puts them in the map;
 * records come to on_record() here, which sees lost-sample records too and can stop after any record (the ones
 * after it stay in the buffer for the next call). libbpf's epoll set sits inside the stream's (stream.c).
 */
#include "cbpf.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <unistd.h>

typedef struct {
    StreamObject base;
    struct perf_buffer *pb;
    MapObject *map;
    PyObject *lost_callback;
    int map_fd;      /* our own dup: libbpf clears the map's entries through it when freeing */
    size_t next_cpu; /* where read() looks first */
    cbpf_sink *sink; /* while consuming */
    bool failed;     /* a callback raised while consuming */
    unsigned long long lost;
    Py_ssize_t page_cnt;
    int wakeup_events;
    unsigned long generation; /* cbpf_process_generation() where the buffers were opened */
} PerfBufferObject;

struct sample_record {
    struct perf_event_header header;
    uint32_t size;
    unsigned char data[];
};

struct lost_record {
    struct perf_event_header header;
    uint64_t id;
    uint64_t lost;
};

static enum bpf_perf_event_ret on_record(void *ctx, int cpu, struct perf_event_header *e)
{
    PerfBufferObject *self = ctx;
    cbpf_sink *sink = self->sink;
    int rc = 0;
    if (e->type == PERF_RECORD_SAMPLE) {
        const struct sample_record *s = (const void *)e;
        rc = cbpf_sink_put(sink, self->base.callback, self->base.decode, s->data, s->size);
    } else if (e->type == PERF_RECORD_LOST) {
        const struct lost_record *l = (const void *)e;
        self->lost += l->lost;
        if (self->lost_callback != NULL && sink->kind != CBPF_SINK_COUNT) {
            PyObject *r = PyObject_CallFunction(self->lost_callback, "iK", cpu, (unsigned long long)l->lost);
            Py_XDECREF(r);
            rc = r == NULL ? -1 : 0;
        }
    }
    if (rc < 0) {
        self->failed = true;
        return LIBBPF_PERF_EVENT_ERROR;
    }
    return rc > 0 || self->base.closed ? LIBBPF_PERF_EVENT_DONE : LIBBPF_PERF_EVENT_CONT;
}

static int consume(PyObject *op, cbpf_sink *sink)
{
    PerfBufferObject *self = (PerfBufferObject *)op;
    size_t n = perf_buffer__buffer_cnt(self->pb);
    self->sink = sink;
    self->failed = false;
    for (size_t k = 0; k < n; k++) {
        size_t idx = (self->next_cpu + k) % n;
        int rc = perf_buffer__consume_buffer(self->pb, idx);
        if (self->failed) {
            return -1;
        }
        if (rc < 0 && rc != -ENOENT) { /* ENOENT: a CPU that is not online has no buffer */
            PyErr_NoMemory();          /* the only other failure: copying a record that wraps around */
            return -1;
        }
        if ((sink->limit > 0 && sink->count >= sink->limit) || self->base.closed) {
            self->next_cpu = (idx + 1) % n;
            return 0;
        }
    }
    return 0;
}

static void release(PyObject *op)
{
    PerfBufferObject *self = (PerfBufferObject *)op;
    struct perf_buffer *pb = self->pb;
    int fd = self->map_fd;
    self->pb = NULL;
    self->map_fd = -1;
    /* closing perf events can wait for the kernel; nothing here touches Python */
    Py_BEGIN_ALLOW_THREADS
    if (pb != NULL && self->generation != cbpf_process_generation()) {
        /* a forked child: perf_buffer__free would disable the parent's perf events (they are shared) and delete
         * the parent's entries of the map. Each fd it would use is first made a copy of /dev/null (atomically:
         * no other thread can get the number meanwhile), on which those calls fail and only close. */
        int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        for (size_t i = 0; null_fd >= 0 && i < perf_buffer__buffer_cnt(pb); i++) {
            int bfd = perf_buffer__buffer_fd(pb, i);
            if (bfd >= 0) {
                dup3(null_fd, bfd, O_CLOEXEC);
            }
        }
        if (null_fd >= 0 && fd >= 0) {
            dup3(null_fd, fd, O_CLOEXEC);
        }
        if (null_fd >= 0) {
            close(null_fd);
        }
        else {
            pb = NULL; /* without /dev/null: leave them to this process's exit rather than tear them down */
        }
    }
    perf_buffer__free(pb);
    if (fd >= 0) {
        close(fd);
    }
    Py_END_ALLOW_THREADS
    Py_CLEAR(self->map);
    Py_CLEAR(self->lost_callback);
}

static const cbpf_stream_ops perfbuf_ops = {consume, release, NULL};

static PyObject *PerfBuffer_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"map", "callback", "page_cnt", "lost_callback", "decode", "wakeup_events", NULL};
    PyObject *map = NULL, *callback = Py_None, *lost_callback = Py_None, *decode = Py_None;
    Py_ssize_t page_cnt = 64;
    int wakeup_events = 1;
    cbpf_state *st = cbpf_state_from_type(type);
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|OnO$Oi:PerfBuffer", kwlist, &map, &callback, &page_cnt,
                                     &lost_callback, &decode, &wakeup_events)) {
        return NULL;
    }
    if (!PyObject_TypeCheck(map, st->Map_type)) {
        return PyErr_Format(PyExc_TypeError, "PerfBuffer takes a Map of type BPF_MAP_TYPE_PERF_EVENT_ARRAY, not %.100s",
                            Py_TYPE(map)->tp_name);
    }
    MapObject *m = (MapObject *)map;
    if (m->type != BPF_MAP_TYPE_PERF_EVENT_ARRAY) {
        return PyErr_Format(
            PyExc_TypeError,
            "map '%U' is not a perf event array (type %u; PerfBuffer needs BPF_MAP_TYPE_PERF_EVENT_ARRAY, %d)%s",
            m->name, m->type, BPF_MAP_TYPE_PERF_EVENT_ARRAY,
            m->type == BPF_MAP_TYPE_RINGBUF ? ": use RingBuffer for a ring buffer" : "");
    }
    if (m->fd < 0) {
        return PyErr_Format(PyExc_ValueError, "map '%U' is not open (its Object is closed or not loaded)", m->name);
    }
    if (page_cnt <= 0 || (page_cnt & (page_cnt - 1)) != 0) {
        return PyErr_Format(PyExc_ValueError, "page_cnt must be a power of two (pages per CPU), not %zd", page_cnt);
    }
    if (cbpf_check_callable(lost_callback, "lost_callback") < 0) {
        return NULL;
    }
    if (wakeup_events < 1) {
        return PyErr_Format(PyExc_ValueError, "wakeup_events must be >= 1");
    }
    PerfBufferObject *self = (PerfBufferObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->map_fd = -1;
    if (cbpf_stream_init(st, &self->base, &perfbuf_ops, callback, decode) < 0) {
        goto error;
    }
    self->map = (MapObject *)Py_NewRef(m);
    self->lost_callback = lost_callback == Py_None ? NULL : Py_NewRef(lost_callback);
    self->page_cnt = page_cnt;
    self->wakeup_events = wakeup_events;
    self->generation = cbpf_process_generation();
    self->map_fd = fcntl(m->fd, F_DUPFD_CLOEXEC, 0);
    if (self->map_fd < 0) {
        cbpf_map_error(m, errno, "duplicating its fd");
        goto error;
    }
    struct perf_event_attr attr = {
        .type = PERF_TYPE_SOFTWARE,
        .size = sizeof(attr),
        .config = PERF_COUNT_SW_BPF_OUTPUT,
        .sample_period = 1,
        .sample_type = PERF_SAMPLE_RAW,
        .wakeup_events = (__u32)wakeup_events,
    };
    cbpf_log_begin();
    self->pb = perf_buffer__new_raw(self->map_fd, (size_t)page_cnt, &attr, on_record, self, NULL);
    int err = self->pb == NULL ? errno : 0;
    free(cbpf_log_end(st));
    if (self->pb == NULL) {
        cbpf_map_error(m, err, "opening perf buffers (%zd pages per CPU)", page_cnt);
        goto error;
    }
    if (cbpf_stream_watch(st, &self->base, perf_buffer__epoll_fd(self->pb)) < 0) {
        goto error;
    }
    return (PyObject *)self;
error:
    Py_DECREF(self);
    return NULL;
}

static PyObject *PerfBuffer_get_map(PerfBufferObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->map ? (PyObject *)self->map : Py_None);
}

static PyObject *PerfBuffer_get_lost_callback(PerfBufferObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->lost_callback ? self->lost_callback : Py_None);
}

static PyObject *PerfBuffer_get_buffer_count(PerfBufferObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSize_t(self->pb ? perf_buffer__buffer_cnt(self->pb) : 0);
}

static PyObject *PerfBuffer_repr(PerfBufferObject *self)
{
    return PyUnicode_FromFormat("<cbpf.PerfBuffer %R, %zd pages per CPU%s>", self->map ? self->map->name : Py_None,
                                self->page_cnt, self->base.closed ? " (closed)" : "");
}

static int PerfBuffer_traverse(PerfBufferObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->map);
    Py_VISIT(self->lost_callback);
    return cbpf_stream_traverse(&self->base, visit, arg);
}

static PyMemberDef PerfBuffer_members[] = {
    {"lost", T_ULONGLONG, offsetof(PerfBufferObject, lost), READONLY,
     "Samples the kernel dropped because a CPU's buffer was full, as reported so far."},
    {"page_cnt", T_PYSSIZET, offsetof(PerfBufferObject, page_cnt), READONLY, "Pages per CPU buffer."},
    {"wakeup_events", T_INT, offsetof(PerfBufferObject, wakeup_events), READONLY,
     "Samples per wake-up of a waiting poll (the rest are taken when its timeout ends)."},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef PerfBuffer_getset[] = {
    {"map", (getter)PerfBuffer_get_map, NULL, "The perf event array read (None once closed).", NULL},
    {"lost_callback", (getter)PerfBuffer_get_lost_callback, NULL, "Called as lost_callback(cpu, count).", NULL},
    {"buffer_count", (getter)PerfBuffer_get_buffer_count, NULL, "Per-CPU buffers (possible CPUs).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot PerfBuffer_slots[] = {
    {Py_tp_doc, "PerfBuffer(map, callback=None, page_cnt=64, lost_callback=None, *, decode=None, wakeup_events=1)"
                "\n--\n\n"
                "Events from a BPF_MAP_TYPE_PERF_EVENT_ARRAY map: a buffer of page_cnt pages per CPU. Each event "
                "comes as bytes (the kernel pads samples, so they may be up to 7 bytes longer than what the program "
                "sent), or as decode(bytes) when decode is set. Samples the kernel drops are counted in lost and "
                "reported to lost_callback(cpu, count). wakeup_events > 1 wakes a waiting poll every that many "
                "samples: cheaper for the program that writes them, and a poll then sees the last few only when "
                "its timeout ends."},
    {Py_tp_new, PerfBuffer_new},
    {Py_tp_members, PerfBuffer_members},
    {Py_tp_getset, PerfBuffer_getset},
    {Py_tp_repr, PerfBuffer_repr},
    {Py_tp_traverse, PerfBuffer_traverse},
    {0, NULL},
};

PyType_Spec cbpf_perfbuf_spec = {
    .name = "cbpf._cbpf.PerfBuffer",
    .basicsize = sizeof(PerfBufferObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = PerfBuffer_slots,
};

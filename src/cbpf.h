/* cbpf: shared declarations of the C extension cbpf._cbpf. */
#ifndef CBPF_H
#define CBPF_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#if PY_VERSION_HEX < 0x030B0000
#include <longintrepr.h> /* ob_digit, for reading small ints without a call (3.11+ has it in Python.h) */
#endif
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

/* Compatibility with CPython 3.9. */
#if PY_VERSION_HEX < 0x030A0000
static inline PyObject *cbpf_newref(PyObject *o)
{
    Py_INCREF(o);
    return o;
}
#define Py_NewRef(o) cbpf_newref((PyObject *)(o))
static inline int cbpf_add_object_ref(PyObject *m, const char *name, PyObject *value)
{
    Py_INCREF(value);
    if (PyModule_AddObject(m, name, value) < 0) {
        Py_DECREF(value);
        return -1;
    }
    return 0;
}
#define PyModule_AddObjectRef cbpf_add_object_ref
#define CBPF_HAVE_DISALLOW_INSTANTIATION 0
#define CBPF_TPFLAGS_NO_INSTANCES 0
#else
#define CBPF_HAVE_DISALLOW_INSTANTIATION 1
#define CBPF_TPFLAGS_NO_INSTANCES Py_TPFLAGS_DISALLOW_INSTANTIATION
#endif

#define PyUnicode_EqualToUTF8Compat(u, s) (PyUnicode_CompareWithASCIIString((u), (s)) == 0)

typedef struct {
    PyTypeObject *Object_type;
    PyTypeObject *Map_type;
    PyTypeObject *Region_type;
    PyTypeObject *Stream_type;
    PyTypeObject *RingBuffer_type;
    PyTypeObject *PerfBuffer_type;
    PyTypeObject *Decoder_type;
    PyTypeObject *MapIter_type;
    PyTypeObject *Program_type;
    PyTypeObject *Link_type;
    PyObject *LoadError;     /* OSError subclass carrying the verifier log */
    PyObject *logger;        /* logging.getLogger("cbpf.libbpf"), imported on first use */
    PyObject *find_binary;   /* cbpf._binaries.find: a uprobe's binary by name, imported on first use */
    PyObject *find_map;      /* cbpf._boot.find: a booted map by name, imported on first use */
    PyObject *str_log;       /* interned "log" */
    PyObject *str_object;    /* interned "object", "program", "map": the error context's attributes */
    PyObject *str_program;
    PyObject *str_map;
} cbpf_state;

typedef struct LinkObject LinkObject;

typedef struct cbpf_backend_ops cbpf_backend_ops;

/* One BPF object, in whichever format its backend reads (backend.h: libbpf's, or the legacy formats libbpf 1.x
 * refuses); its maps and programs, and the links of its programs. */
typedef struct {
    PyObject_HEAD
    const cbpf_backend_ops *ops; /* its format's operations */
    void *backend;           /* their state; NULL once closed, and for the Object of a pinned program */
    PyObject *maps;          /* dict name -> Map, filled when the object is opened */
    PyObject *programs;      /* dict name -> Program, filled when the object is opened */
    PyObject *kept_links;    /* list of the Links attach() made: the object keeps them alive */
    LinkObject *live;        /* every attached Link of its programs, borrowed: a Link leaves when it detaches */
    bool attached;           /* attach() has run */
    PyObject *name;          /* str: the object's name (file name or the name given) */
    PyObject *license;       /* str: the license the programs are loaded with ("" when the ELF has none) */
    const char *dialect;     /* the format's variant (static string, backend.h), NULL when it has none */
    PyObject *elf;           /* bytes kept until load(): libbpf reads the ELF image again at load time */
    PyObject *path;          /* str: the file it was read from, or None (bytes given): load errors name it */
    bool loaded;
    bool closed;
    bool busy;               /* loading with the GIL released: close() must wait for it */
} ObjectObject;

typedef struct {
    PyObject_HEAD
    void *addr;
    size_t size;
    bool writable;
    Py_ssize_t exports;
} RegionObject;

typedef struct {
    PyObject_HEAD
    ObjectObject *owner;     /* strong reference; NULL for a map not owned by an object */
    size_t index;            /* an object's map: its index in the object's backend */
    PyObject *name;
    PyObject *pin_path;      /* str once pinned by pin() */
    RegionObject *region;    /* the map's memory when mmapped (BPF_F_MMAPABLE arrays) */
    const unsigned char *mm; /* region->addr while the map is open: fetch() reads it without a syscall */
    int fd;                  /* -1 until loaded and after close */
    bool owns_fd;            /* a map made by Map.create() or from_pinned(): close() closes the fd */
    uint32_t type;
    uint32_t key_size;
    uint32_t value_size;
    uint32_t max_entries;
    uint32_t flags;
    uint32_t id;             /* the kernel's map id, 0 when unknown */
    uint32_t btf_key_type_id;
    uint32_t btf_value_type_id;
    uint32_t ncpus;          /* number of values a lookup returns: possible CPUs for per-CPU maps, else 1 */
    uint32_t value_stride;   /* bytes between per-CPU values and between mmapped array elements (8-aligned) */
    PyObject *inner_map;     /* the Map given to the inner_map setter, kept until load: libbpf borrows its fd */
    PyObject *key_type;      /* the keys' and values' cbpf.Type, NULL when untyped (bytes) */
    PyObject *value_type;
    PyObject *key_codec;     /* their _Decoder (see codec.h) */
    PyObject *value_codec;
    bool types_resolved;     /* Map._resolve_types() has run (BTF read, or set_types() called) */
} MapObject;

/* A program of an Object. Its name, section and type are kept for after the object is closed. */
typedef struct {
    PyObject_HEAD
    ObjectObject *owner;     /* strong reference */
    size_t index;            /* its index in the object's backend (not for a pinned program) */
    PyObject *name;
    PyObject *section;
    uint32_t type;
    char *log_buf;           /* PyMem_Raw: the verifier's log of a load with log_level set; NULL otherwise */
    size_t log_size;
    PyObject *attach_target; /* what attach_target was set to; a Program in it (freplace) lends libbpf its fd */
    bool pinned;             /* opened with Program.from_pinned() (or Link.from_pinned()): no ELF, no libbpf */
    int pinned_fd;           /* then: its fd, owned; -1 once its Object is closed */
} ProgramObject;

/* What a Link holds in the kernel; released without the GIL (detaching can wait for an RCU grace period). */
enum cbpf_attachment_kind {
    CBPF_ATTACHMENT_NONE,   /* detached */
    CBPF_ATTACHMENT_LIBBPF, /* libbpf links: one, or one per CPU for perf events */
    CBPF_ATTACHMENT_FD,     /* a BPF link fd of our own (xdp, tcx, cgroup): closing it detaches */
    CBPF_ATTACHMENT_SOCKET, /* SO_ATTACH_BPF on a socket, which has no BPF link */
    CBPF_ATTACHMENT_TC,     /* a filter on a clsact qdisc (kernels before tcx), which has no BPF link */
    CBPF_ATTACHMENT_PERF,   /* a kprobe or tracepoint of our own: a perf event and the BPF link on it, if any */
};

typedef struct {
    enum cbpf_attachment_kind kind;
    struct bpf_link **links; /* LIBBPF: PyMem_RawMalloc'd array */
    size_t nlinks;
    int fd;                  /* FD: the link; SOCKET: the socket's fd; PERF: the BPF link, or -1 (older kernels) */
    int perf_fd;             /* PERF: the perf event */
    dev_t sock_dev;          /* SOCKET: the socket fd named at attach time (the fd may be closed and reused) */
    ino_t sock_ino;
    int ifindex;             /* TC */
    int tc_netns_fd;         /* TC: the network namespace it was attached in (netlink speaks to the caller's) */
    uint32_t tc_attach_point, tc_handle, tc_priority;
    unsigned long generation; /* cbpf_process_generation() of the process that attached: in a forked child, releasing
                               * only closes the child's copies */
} cbpf_attachment;

struct LinkObject {
    PyObject_HEAD
    ProgramObject *program;  /* strong reference: a Link keeps its program and object alive */
    LinkObject *prev, *next; /* in program->owner->live while attached */
    PyObject *target;        /* str: what it is attached to */
    PyObject *pin_path;      /* str once pinned */
    unsigned long pin_generation; /* of the process that pinned it: detach() in a forked child leaves the pin */
    cbpf_attachment att;
};

#include "backend.h"

extern PyType_Spec cbpf_object_spec;
extern PyType_Spec cbpf_program_spec;
extern PyType_Spec cbpf_link_spec;
extern PyType_Spec cbpf_map_spec;
extern PyType_Spec cbpf_region_spec;
extern PyType_Spec cbpf_ringbuf_spec;
extern PyType_Spec cbpf_perfbuf_spec;
extern PyType_Spec cbpf_decoder_spec;
extern PyType_Spec cbpf_mapiter_spec;

/* Memory the kernel filled through a bpf() command valgrind does not know (the batch commands of valgrind 3.19):
 * without this, memcheck takes it for uninitialised. A no-op unless built with CBPF_VALGRIND=1. */
#ifdef CBPF_VALGRIND
#include <valgrind/memcheck.h>
#define CBPF_KERNEL_WROTE(p, len) VALGRIND_MAKE_MEM_DEFINED((p), (len))
#else
#define CBPF_KERNEL_WROTE(p, len) ((void)0)
#endif

/* A name out of an ELF or its BTF (map, program, section, field): the file is untrusted, so bytes that are not UTF-8
 * become backslash escapes instead of a UnicodeDecodeError. */
static inline PyObject *cbpf_elf_name(const char *s)
{
    return PyUnicode_DecodeUTF8(s ? s : "", s ? (Py_ssize_t)strlen(s) : 0, "backslashreplace");
}

/* A str as a C string for a message's %s, never NULL: "?" when it has no UTF-8 form (lone surrogates), with any
 * exception already set kept as it was. The one way a name goes into a C-string message (%U takes the str itself
 * where the format is Python's). */
static inline const char *cbpf_utf8(PyObject *s)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    const char *p = s != NULL && PyUnicode_Check(s) ? PyUnicode_AsUTF8(s) : NULL;
    if (p == NULL) {
        PyErr_Clear();
        p = "?";
    }
    PyErr_Restore(type, value, tb);
    return p;
}

/* Checked arithmetic for every size and offset computed in C (sizes come from ELF files, BTF, the kernel or the
 * caller): true when a + b (a * b) does not fit *out, whose type decides the range. */
#define cbpf_checked_add(a, b, out) __builtin_add_overflow((a), (b), (out))
#define cbpf_checked_mul(a, b, out) __builtin_mul_overflow((a), (b), (out))

static inline cbpf_state *cbpf_get_state(PyObject *module)
{
    return (cbpf_state *)PyModule_GetState(module);
}

cbpf_state *cbpf_state_from_type(PyTypeObject *tp);

/* errors.c: every errno or libbpf error becomes a Python exception here. */
void cbpf_log_begin(void);
const char *cbpf_libbpf_text(const char *s);
char *cbpf_log_end(cbpf_state *st);
void cbpf_log_emit_pending(cbpf_state *st);
int cbpf_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap);
int cbpf_strerror(int err, char *buf, size_t size);
/* One error path: each raises the OSError subclass the errno selects, "<context>: <what>: <reason><hint>", and the
 * exception carries .object, .program and .map (names, or None). cbpf_set_error is about none of them. */
#define CBPF_PRINTF(f) __attribute__((format(printf, f, f + 1)))
PyObject *cbpf_set_error(cbpf_state *st, int err, const char *fmt, ...) CBPF_PRINTF(3);
PyObject *cbpf_map_error(MapObject *map, int err, const char *fmt, ...) CBPF_PRINTF(3);
PyObject *cbpf_new_map_error(cbpf_state *st, const char *name, int err, const char *fmt, ...) CBPF_PRINTF(4);
PyObject *cbpf_program_error(ProgramObject *program, int err, const char *fmt, ...) CBPF_PRINTF(3);
PyObject *cbpf_object_error(ObjectObject *object, int err, const char *fmt, ...) CBPF_PRINTF(3);
PyObject *cbpf_set_file_error(cbpf_state *st, int err, PyObject *filename);
PyObject *cbpf_set_load_error(ObjectObject *object, int err, const char *what, const char *log);
PyObject *cbpf_set_program_load_error(ObjectObject *object, int err, const char *object_what, const char *program,
                                      uint32_t prog_type, const char *log);

/* module.c: O& converters for unsigned arguments (uint32_t, uint64_t) that raise OverflowError out of range, and a
 * str as a C string (NULL with ValueError when it holds a NUL: "lo\0x" must not name "lo"). */
int cbpf_u32_converter(PyObject *o, void *out);
int cbpf_u64_converter(PyObject *o, void *out);
const char *cbpf_c_string(PyObject *s, const char *what);

/* elfcheck.c: 0, or -1 with why filled for an ELF image libbpf must not be given (see the file). */
int cbpf_elf_precheck(const void *image, size_t size, char *why, size_t whylen);

/* object.c: 0, or -1 with RuntimeError while another thread loads obj (libbpf rewrites the object's state then:
 * relocated programs, re-mapped .rodata); `what` names the refused operation. */
int cbpf_object_check_idle(ObjectObject *obj, const char *what);

ObjectObject *cbpf_object_for_pinned(cbpf_state *st, PyObject *name);

/* program.c */
ProgramObject *cbpf_program_from_fd(cbpf_state *st, int fd, PyObject *path);
void cbpf_program_invalidate(ProgramObject *self);
ProgramObject *cbpf_program_new(cbpf_state *st, ObjectObject *owner, size_t index);
PyObject *cbpf_program_attach_section(cbpf_state *st, ProgramObject *self, bool skip_untargeted);
bool cbpf_program_autoload(ProgramObject *self);
bool cbpf_program_autoattach(ProgramObject *self);

/* link.c */
unsigned long cbpf_process_generation(void);
PyObject *cbpf_link_new(cbpf_state *st, ProgramObject *program, cbpf_attachment *att, PyObject *target);
void cbpf_attachment_release(cbpf_attachment *att);
Py_ssize_t cbpf_links_take_all(ObjectObject *owner, cbpf_attachment **out);
void cbpf_link_detach(LinkObject *self);

/* btfdump.c */
PyObject *cbpf_btf_c_header(PyObject *module, PyObject *path);

/* region.c */
PyObject *cbpf_region_new(cbpf_state *st, int fd, size_t size, bool *writable);

/* map.c */
MapObject *cbpf_map_new(cbpf_state *st, ObjectObject *owner, size_t index);
int cbpf_map_loaded(cbpf_state *st, MapObject *self);
void cbpf_map_invalidate(MapObject *self);
int cbpf_ensure_bpffs(cbpf_state *st, const char *path);
/* pin.c: a pin failure is about map (or, for a link, program) when given: the exception carries its names. */
int cbpf_pin_fd(cbpf_state *st, MapObject *map, ProgramObject *program, int fd, PyObject *path, const char *what,
                PyObject **pin_path);
int cbpf_unpin(PyObject **pin_path, const char *what);
const char *cbpf_fd_kind(int fd);
int cbpf_open_pinned(cbpf_state *st, PyObject *path, const char *want, PyObject **abs_path);
PyObject *cbpf_map_fetch(cbpf_state *st, MapObject *self, PyObject *key);
int cbpf_map_key(cbpf_state *st, MapObject *self, PyObject *key, void *scratch, Py_buffer *view,
                 const void **out);
int cbpf_map_check_before_load(MapObject *self);
bool cbpf_map_autocreate(MapObject *self);
int cbpf_map_check_keyed(MapObject *self, const char *op);
uint64_t cbpf_map_value_sum(MapObject *self, const unsigned char *value);

/* What one lookup reads: a value per possible CPU on per-CPU maps, one value otherwise. */
static inline size_t cbpf_map_full_value_size(MapObject *self)
{
    return (size_t)self->value_stride * self->ncpus;
}

/* mapread.c: many entries at once (whole-map reads, chunks of an iteration) */
PyObject *cbpf_map_dump_raw(MapObject *self, PyObject *ignored);
PyObject *cbpf_map_dump_dict(MapObject *self, PyObject *ignored);
PyObject *cbpf_map_read_chunk(MapObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *cbpf_map_iter_decoded(MapObject *self, PyObject *const *args, Py_ssize_t nargs);
Py_ssize_t cbpf_map_length(MapObject *self);

/* program.c: before load */
int cbpf_program_check_before_load(ProgramObject *self);

/* probe.c: cbpf.features' probes, and what they say about a refused trampoline program */
extern PyMethodDef cbpf_probe_methods[];
void cbpf_trampoline_diagnosis(char *out, size_t size);
int cbpf_map_check_open(MapObject *self);
int cbpf_map_to_bytes(PyObject *obj, uint32_t size, const char *what, PyObject *mapname, uint64_t *scratch,
                      Py_buffer *view, const void **out);

/* mapvalues.c: typed keys and values. A cbpf_keybuf holds an encoded key or value ({0} to start, then
 * cbpf_keybuf_release). */
typedef struct {
    uint64_t inline_[8];
    Py_buffer view;
    void *heap;
} cbpf_keybuf;
PyObject *cbpf_map_resolve_no_types(PyObject *self, PyObject *ignored);
int cbpf_map_types(MapObject *self);
PyObject *cbpf_map_decode_key(MapObject *self, const unsigned char *key);
PyObject *cbpf_map_decode_value(MapObject *self, const unsigned char *value);
int cbpf_map_encode_key(MapObject *self, PyObject *key, cbpf_keybuf *kb, const void **out);
int cbpf_map_encode_value(MapObject *self, PyObject *value, cbpf_keybuf *kb, const void **out);
void cbpf_keybuf_release(cbpf_keybuf *kb);
PyObject *cbpf_map_set_codecs(MapObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *cbpf_map_subscript(MapObject *self, PyObject *key);
PyObject *cbpf_map_get(MapObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *cbpf_map_get_key_type(MapObject *self, void *closure);
PyObject *cbpf_map_get_value_type(MapObject *self, void *closure);

/* map.c: the buffers of one single-key call ({0} to start, then cbpf_map_io_release on every path). begin resolves
 * the map's types, then encodes `key` (unless NULL) into io->key and `value` (unless NULL: the value to write; maps of
 * fds also take an object with an fd) into io->value, each an int, a buffer of exactly the size or a typed value,
 * and with `read` makes io->out room for the value a lookup reads (every possible CPU's). -1 with an exception. */
typedef struct {
    cbpf_keybuf kb, vb;
    const void *key;
    const void *value;
    unsigned char *out;
    uint64_t out_inline[8];
} cbpf_map_io;
int cbpf_map_io_begin(MapObject *self, PyObject *key, PyObject *value, bool read, cbpf_map_io *io);
void cbpf_map_io_release(cbpf_map_io *io);

/* Event streams (stream.c, ringbuf.c, perfbuf.c) -------------------------------------------------------------- */

/* Where consumed events go: one call per event, one object back, appended to a batch, or only counted (the
 * C baseline of benchmarks/_cbench.c). */
typedef enum { CBPF_SINK_CALL, CBPF_SINK_ONE, CBPF_SINK_BATCH, CBPF_SINK_COUNT } cbpf_sink_kind;

typedef struct {
    cbpf_sink_kind kind;
    Py_ssize_t limit;   /* stop after this many events (0: no limit) */
    Py_ssize_t count;   /* events taken so far */
    PyObject *one;      /* CBPF_SINK_ONE: the event, a new reference */
    PyObject *data;     /* CBPF_SINK_BATCH: bytes, the events one after another (grown in place) */
    size_t len;         /* bytes of data used */
    PyObject *offsets;  /* CBPF_SINK_BATCH without record_size: bytes, a uint64 per event, where it starts */
    size_t record_size; /* CBPF_SINK_BATCH: when set, every event takes exactly this many bytes */
    uint64_t checksum;  /* CBPF_SINK_COUNT: the C consumer reads what it is given */
    PyTypeObject *decoder_type; /* a decode of this type is run in C on the buffer's memory */
} cbpf_sink;

/* What a kind of stream does itself; stream.c does the rest. */
typedef struct {
    /* takes what the buffers hold now (once round) into the sink: 0, or -1 with an exception set */
    int (*consume)(PyObject *self, cbpf_sink *sink);
    /* frees the buffers and drops the references they hold, once the stream is closed and no poll runs */
    void (*release)(PyObject *self);
    /* true when every event has a callback to go to (NULL: when the stream's callback is set) */
    bool (*has_callbacks)(PyObject *self);
} cbpf_stream_ops;

/* The base of RingBuffer and PerfBuffer (cbpf._cbpf._EventStream): an epoll set holding the buffers' fds and an
 * eventfd, and the rules for closing while a poll is under way (see stream.c). */
typedef struct {
    PyObject_HEAD
    const cbpf_stream_ops *ops;
    int epfd;           /* -1 once freed */
    int wakefd;         /* eventfd in the epoll set: close() writes it to wake a waiting poller */
    bool busy;          /* a poll is under way: close() leaves the freeing to it */
    bool closed;        /* close() was called; the buffers stay until the poll under way returns */
    PyObject *callback; /* NULL when none */
    PyObject *decode;   /* NULL when none */
} StreamObject;

extern PyType_Spec cbpf_stream_spec;

int cbpf_stream_init(cbpf_state *st, StreamObject *s, const cbpf_stream_ops *ops, PyObject *callback,
                     PyObject *decode);
int cbpf_stream_watch(cbpf_state *st, StreamObject *s, int fd);
int cbpf_stream_usable(StreamObject *s);
int cbpf_stream_enter(StreamObject *s);
void cbpf_stream_leave(StreamObject *s);
int cbpf_stream_traverse(StreamObject *s, visitproc visit, void *arg);
int cbpf_check_callable(PyObject *obj, const char *what);
int cbpf_sink_put(cbpf_sink *sink, PyObject *callback, PyObject *decode, const void *data, size_t size);

/* CBPF_SINK_COUNT's work on one event: copied out (as any sink copies) and folded into a checksum, so that the
 * copy is not optimised away. Inline: benchmarks/_cbench.c counts libbpf's consumer's events the same way. */
static inline void cbpf_sink_count(cbpf_sink *sink, const void *data, size_t size)
{
    unsigned char copy[512];
    size_t n = size < sizeof(copy) ? size : sizeof(copy);
    uint64_t word = 0;
    memcpy(copy, data, n);
    memcpy(&word, copy, n < 8 ? n : 8);
    sink->checksum += word + n;
    sink->count++;
}
int cbpf_sink_expect(cbpf_sink *sink, size_t bytes, size_t events);

/* decoder.c, encoder.c: the value codec (a cbpf._cbpf._Decoder, see codec.h).
 * decode: the Python value of `size` bytes (fields past the end come out empty), or NULL with an exception set.
 * encode: value into the codec's size of bytes at buf (zeroed first); -1 with an exception naming `what` and the
 * field. */
PyObject *cbpf_decoder_decode(PyObject *decoder, const void *data, size_t size);
PyObject *cbpf_decoder_decode_kept(PyObject *decoder, const void *data, size_t size); /* untracked by the GC */
int cbpf_codec_encode(PyObject *codec, PyObject *value, void *buf, const char *what);
Py_ssize_t cbpf_codec_size(PyObject *codec);

#endif

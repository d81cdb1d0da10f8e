/* cbpf._cbpf._Decoder: the value codec's type. Bytes laid out as a C type -> Python (here) and back (encoder.c).
 *
 * See codec.h for the plan the Python layer (cbpf/_btf.py) hands over. Event streams call a _Decoder directly on
 * the buffer's memory (no bytes object, no Python frame per event); maps call it on what the kernel returned.
 */
#include "codec.h"

#include <string.h>

static const unsigned char zeros[16];

static uint64_t load(const unsigned char *p, Py_ssize_t size)
{
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    switch (size) {
    case 1: memcpy(&u8, p, 1); return u8;
    case 2: memcpy(&u16, p, 2); return u16;
    case 4: memcpy(&u32, p, 4); return u32;
    default: memcpy(&u64, p, 8); return u64;
    }
}

static inline PyObject *from_u64(uint64_t u)
{
    return u <= (uint64_t)LONG_MAX ? PyLong_FromLong((long)u) : PyLong_FromUnsignedLongLong(u);
}

/* A 128-bit int: hi * 2**64 + lo, hi signed for 'x'. */
static PyObject *int128(const unsigned char *p, bool is_signed)
{
    uint64_t lo, hi;
    memcpy(&lo, p, 8);
    memcpy(&hi, p + 8, 8);
    if (hi == 0 || (is_signed && hi == UINT64_MAX && (int64_t)lo < 0)) {
        return hi == 0 ? from_u64(lo) : PyLong_FromLongLong((int64_t)lo);
    }
    PyObject *h = is_signed ? PyLong_FromLongLong((int64_t)hi) : PyLong_FromUnsignedLongLong(hi);
    PyObject *l = PyLong_FromUnsignedLongLong(lo);
    PyObject *sixty_four = PyLong_FromLong(64);
    PyObject *shifted = h && sixty_four ? PyNumber_Lshift(h, sixty_four) : NULL;
    PyObject *r = shifted && l ? PyNumber_Or(shifted, l) : NULL;
    Py_XDECREF(h);
    Py_XDECREF(l);
    Py_XDECREF(sixty_four);
    Py_XDECREF(shifted);
    return r;
}

/* A bitfield: `bits` bits starting `shift` bits into the `size` (at most 9) bytes at p. */
static PyObject *bitfield(const cbpf_field *f, const unsigned char *p)
{
    unsigned char window[16] = {0};
    unsigned __int128 w;
    memcpy(window, p, (size_t)f->size);
    memcpy(&w, window, sizeof(w));
    uint64_t u = (uint64_t)(w >> f->shift);
    if (f->bits < 64) {
        u &= (UINT64_C(1) << f->bits) - 1;
    }
    if (f->kind == 'u') {
        return from_u64(u);
    }
    unsigned up = 64 - (unsigned)f->bits; /* sign-extend from the field's width */
    return PyLong_FromLongLong((int64_t)(u << up) >> up);
}

/* An int of 1, 2, 4 or 8 bytes: the common field. */
static inline PyObject *plain_int(const cbpf_field *f, const unsigned char *p)
{
    uint64_t u = load(p, f->size);
    if (f->kind == 'u') {
        return from_u64(u);
    }
    unsigned shift = 64 - 8 * (unsigned)f->size; /* sign-extend from the field's width */
    return PyLong_FromLongLong((int64_t)(u << shift) >> shift);
}

static PyObject *scalar(const cbpf_field *f, const unsigned char *p)
{
    if (f->plain_int || ((f->kind == 'u' || f->kind == 'i') && f->bits == 0)) {
        return plain_int(f, p);
    }
    switch (f->kind) {
    case 'f': {
        float fl;
        double d;
        if (f->size == 4) {
            memcpy(&fl, p, 4);
            return PyFloat_FromDouble(fl);
        }
        memcpy(&d, p, 8);
        return PyFloat_FromDouble(d);
    }
    case '?': return PyBool_FromLong(*p != 0);
    case 'x':
    case 'X': return int128(p, f->kind == 'x');
    default: return bitfield(f, p);
    }
}

static PyObject *decode_at(DecoderObject *self, const unsigned char *base, Py_ssize_t avail, bool untrack);

/* A tuple of ints, floats, strs, bytes and untracked tuples can never be part of a reference cycle: the
 * collector need not follow it. Untracked now, a whole map's worth of keys and values costs no collections (as
 * CPython untracks such tuples itself, later, once a collection has seen them). */
static bool atomic_items(PyObject *t)
{
    Py_ssize_t n = PyTuple_GET_SIZE(t);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyTuple_GET_ITEM(t, i);
        if (PyTuple_Check(v) ? PyObject_GC_IsTracked(v) : PyObject_IS_GC(v)) {
            return false;
        }
    }
    return true;
}

static void untrack_if_atomic(PyObject *t)
{
    if (atomic_items(t)) {
        PyObject_GC_UnTrack(t);
    }
}

static PyObject *text(const unsigned char *p, Py_ssize_t len)
{
    const unsigned char *nul = memchr(p, 0, (size_t)len);
    return PyUnicode_DecodeUTF8((const char *)p, nul ? (Py_ssize_t)(nul - p) : len, "replace");
}

static PyObject *stack_trace(const unsigned char *p, Py_ssize_t count)
{
    while (count > 0 && load(p + (count - 1) * 8, 8) == 0) {
        count--;
    }
    PyObject *t = PyTuple_New(count);
    for (Py_ssize_t i = 0; t != NULL && i < count; i++) {
        PyObject *v = from_u64(load(p + i * 8, 8));
        if (v == NULL) {
            Py_CLEAR(t);
            break;
        }
        PyTuple_SET_ITEM(t, i, v);
    }
    return t;
}

static PyObject *element(const cbpf_field *f, const unsigned char *p, Py_ssize_t avail)
{
    if (f->kind == 'r') {
        return decode_at((DecoderObject *)f->extra, p, avail, true);
    }
    return scalar(f, avail < f->size ? zeros : p); /* a scalar cut by the end of a short event: empty */
}

/* The first n elements of an array field. */
static PyObject *array(const cbpf_field *f, const unsigned char *p, Py_ssize_t n)
{
    PyObject *t = PyTuple_New(n);
    if (t == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = element(f, p + i * f->size, f->size);
        if (v == NULL) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, v);
    }
    untrack_if_atomic(t);
    return t;
}

/* A field that ends past the `avail` bytes at base (a variable-length event stops inside its last fields):
 * what is present decodes, the rest is empty (0, "", b"", a shorter tuple). */
static PyObject *decode_short(const cbpf_field *f, const unsigned char *base, Py_ssize_t avail)
{
    const unsigned char *p = base + f->offset;
    Py_ssize_t have = avail > f->offset ? avail - f->offset : 0;
    Py_ssize_t size = f->size < have ? f->size : have;
    switch (f->kind) {
    case 's': return text(p, size);
    case 'b':
    case 'p': return PyBytes_FromStringAndSize((const char *)p, size);
    case 'k': return stack_trace(p, have / 8);
    default: break;
    }
    return f->count == 0 ? element(f, p, have) : array(f, p, have / f->size);
}

/* A field of a struct at base, of which `avail` bytes exist. */
static PyObject *decode_field(const cbpf_field *f, const unsigned char *base, Py_ssize_t avail)
{
    if (f->end > avail) {
        return decode_short(f, base, avail);
    }
    const unsigned char *p = base + f->offset;
    if (f->count == 0) {
        switch (f->kind) {
        case 'r': return decode_at((DecoderObject *)f->extra, p, f->size, true);
        case 's': return text(p, f->size);
        case 'b': return PyBytes_FromStringAndSize((const char *)p, f->size);
        case 'k': return stack_trace(p, 0);
        case 'p': {
            PyObject *raw = PyBytes_FromStringAndSize((const char *)p, f->size);
            if (raw == NULL) {
                return NULL;
            }
            PyObject *v = PyObject_CallOneArg(f->extra, raw);
            Py_DECREF(raw);
            return v;
        }
        default: return scalar(f, p);
        }
    }
    if (f->kind == 'k') {
        return stack_trace(p, f->count);
    }
    return array(f, p, f->count);
}

/* A record is made untracked and tracked only if it may hold a cycle. Every field atomic (self->atomic): never
 * tracked. Otherwise, with `untrack` (nested records, map reads, which keep many) its items are looked at and it
 * stays untracked when they are all atomic; without (the top level of an event, mostly dropped at once) it is
 * tracked without looking. */
static PyObject *decode_at(DecoderObject *self, const unsigned char *base, Py_ssize_t avail, bool untrack)
{
    if (self->type == NULL) {
        return decode_field(&self->fields[0], base, avail);
    }
    /* A named tuple has the layout of a tuple: allocated as one, neither zero-filled nor tracked by the collector
       (tp_alloc would do both, and a map read would untrack it again): every item is set below, and the record is
       tracked last, unless it can hold no cycle. */
    PyObject *record = (PyObject *)PyObject_GC_NewVar(PyTupleObject, self->type, self->nfields);
    if (record == NULL) {
        return NULL;
    }
#if PY_VERSION_HEX >= 0x030E0000
    /* CPython 3.14 caches a tuple's hash in the tuple, -1 meaning "not computed yet" (a stale value would make the
       record hash unlike the equal plain tuple, and a dict lookup by (a, b) then misses) */
    ((PyTupleObject *)record)->ob_hash = -1;
#endif
    for (Py_ssize_t i = 0; i < self->nfields; i++) {
        const cbpf_field *f = &self->fields[i];
        PyObject *v = f->plain_int && f->end <= avail ? plain_int(f, base + f->offset) : decode_field(f, base, avail);
        if (v == NULL) {
            for (Py_ssize_t j = i; j < self->nfields; j++) {
                PyTuple_SET_ITEM(record, j, NULL); /* the tuple's dealloc skips what was never set */
            }
            Py_DECREF(record);
            return NULL;
        }
        PyTuple_SET_ITEM(record, i, v);
    }
    if (!self->atomic && !(untrack && atomic_items(record))) {
        PyObject_GC_Track(record);
    }
    return record;
}

PyObject *cbpf_decoder_decode(PyObject *decoder, const void *data, size_t size)
{
    DecoderObject *self = (DecoderObject *)decoder;
    return decode_at(self, data, size > (size_t)PY_SSIZE_T_MAX ? PY_SSIZE_T_MAX : (Py_ssize_t)size, false);
}

PyObject *cbpf_decoder_decode_kept(PyObject *decoder, const void *data, size_t size)
{
    DecoderObject *self = (DecoderObject *)decoder;
    return decode_at(self, data, size > (size_t)PY_SSIZE_T_MAX ? PY_SSIZE_T_MAX : (Py_ssize_t)size, true);
}

static PyObject *Decoder_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_buffer view = {0};
    if (nargs != 1 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)) {
        return PyErr_Format(PyExc_TypeError, "a decoder takes one argument, the bytes (%zd given)", nargs);
    }
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    PyObject *r = cbpf_decoder_decode(op, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return r;
}

static bool scalar_size_ok(char kind, Py_ssize_t size, int bits)
{
    switch (kind) {
    case 'f': return size == 4 || size == 8;
    case '?': return size == 1;
    case 'x':
    case 'X': return size == 16;
    case 'i':
    case 'u':
        if (bits) {
            return size >= 1 && size <= 9;
        }
        return size == 1 || size == 2 || size == 4 || size == 8;
    case 'k': return size == 8;
    default: return true;
    }
}

static int parse_field(cbpf_state *st, PyObject *item, cbpf_field *f)
{
    const char *kind;
    PyObject *extra, *name = Py_None;
    if (!PyArg_ParseTuple(item, "snnnO|Oii;a codec field is (kind, offset, size, count, extra[, name, shift, bits])",
                          &kind, &f->offset, &f->size, &f->count, &extra, &name, &f->shift, &f->bits)) {
        return -1;
    }
    f->kind = kind[0];
    if (strlen(kind) != 1 || strchr("iuxX?fsbkrp", f->kind) == NULL) {
        PyErr_Format(PyExc_ValueError, "unknown codec field kind %R", PyTuple_GET_ITEM(item, 0));
        return -1;
    }
    if (f->offset < 0 || f->size < 0 || f->count < 0 || !scalar_size_ok(f->kind, f->size, f->bits) ||
        f->bits < 0 || f->bits > 64 || f->shift < 0 || f->shift > 7 || (f->bits && f->count) ||
        (f->bits && (f->shift + f->bits + 7) / 8 > f->size) || (f->count && f->size == 0)) {
        PyErr_Format(PyExc_ValueError, "bad codec field %R", item);
        return -1;
    }
    if ((f->kind == 'r' && !PyObject_TypeCheck(extra, st->Decoder_type)) ||
        (f->kind == 'p' && !PyCallable_Check(extra))) {
        PyErr_Format(PyExc_TypeError, "codec field %R needs %s", item, f->kind == 'r' ? "a _Decoder" : "a callable");
        return -1;
    }
    if (f->kind == 'r' && ((DecoderObject *)extra)->size > f->size) {
        PyErr_Format(PyExc_ValueError, "codec field %R is smaller than its struct", item);
        return -1;
    }
    if (name != Py_None && !PyUnicode_Check(name)) {
        PyErr_Format(PyExc_TypeError, "codec field %R: the name must be a str or None", item);
        return -1;
    }
    if (name == Py_None && f->kind != 'r') {
        name = PyUnicode_FromString(""); /* only nested structs and unions may be anonymous */
        if (name == NULL) {
            return -1;
        }
        f->name = name;
    }
    else {
        f->name = name == Py_None ? NULL : Py_NewRef(name);
    }
    f->cname = f->name ? PyUnicode_AsUTF8(f->name) : "";
    if (f->cname == NULL) {
        return -1;
    }
    f->extra = f->kind == 'r' || f->kind == 'p' ? Py_NewRef(extra) : NULL;
    f->plain_int = (f->kind == 'i' || f->kind == 'u') && f->bits == 0 && f->count == 0;
    if (cbpf_checked_mul(f->size, f->count ? f->count : 1, &f->end) || cbpf_checked_add(f->end, f->offset, &f->end)) {
        PyErr_Format(PyExc_ValueError, "codec field %R ends past any size (its end does not fit a Py_ssize_t)", item);
        return -1;
    }
    return 0;
}

static PyObject *Decoder_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"type", "size", "fields", "union", NULL};
    PyObject *tuple_type = NULL, *fields = NULL, *seq = NULL;
    Py_ssize_t size;
    int is_union = 0;
    cbpf_state *st = cbpf_state_from_type(type);
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OnO|p:_Decoder", kwlist, &tuple_type, &size, &fields,
                                     &is_union)) {
        return NULL;
    }
    if (tuple_type != Py_None &&
        (!PyType_Check(tuple_type) || !PyType_IsSubtype((PyTypeObject *)tuple_type, &PyTuple_Type) ||
         ((PyTypeObject *)tuple_type)->tp_basicsize != PyTuple_Type.tp_basicsize ||
         ((PyTypeObject *)tuple_type)->tp_dictoffset != 0)) {
        return PyErr_Format(PyExc_TypeError, "a decoder makes named tuples: type must be a tuple subclass with "
                                             "__slots__ = (), as collections.namedtuple makes (or None)");
    }
    if (size < 0) {
        return PyErr_Format(PyExc_ValueError, "a codec's size must be >= 0, not %zd", size);
    }
    seq = PySequence_Fast(fields, "fields must be a sequence");
    if (seq == NULL) {
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (tuple_type == Py_None && n != 1) {
        Py_DECREF(seq);
        return PyErr_Format(PyExc_ValueError, "a codec of a lone value (type None) has one field, not %zd", n);
    }
    DecoderObject *self = (DecoderObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        goto error;
    }
    self->vectorcall = Decoder_vectorcall;
    self->type = tuple_type == Py_None ? NULL : (PyTypeObject *)Py_NewRef(tuple_type);
    self->size = size;
    self->is_union = is_union;
    self->atomic = true; /* until a field that may hold a tracked object */
    self->fields = PyMem_Calloc(n ? (size_t)n : 1, sizeof(cbpf_field));
    if (self->fields == NULL) {
        PyErr_NoMemory();
        goto error;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        /* counted first: a field that fails half parsed still holds references for Decoder_clear */
        self->nfields = i + 1;
        if (parse_field(st, PySequence_Fast_GET_ITEM(seq, i), &self->fields[i]) < 0) {
            goto error;
        }
        const cbpf_field *f = &self->fields[i];
        self->atomic = self->atomic && f->count == 0 && strchr("iuxX?fsb", f->kind) != NULL;
        if (self->fields[i].end > size) {
            PyErr_Format(PyExc_ValueError, "codec field %zd ends past the type's %zd bytes", i, size);
            goto error;
        }
    }
    Py_DECREF(seq);
    return (PyObject *)self;
error:
    Py_XDECREF(self);
    Py_DECREF(seq);
    return NULL;
}

/* encode(value, what="value"): what names the value in messages ("global 'x'"). */
static PyObject *Decoder_encode(DecoderObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *what = "value";
    if (nargs < 1 || nargs > 2) {
        return PyErr_Format(PyExc_TypeError, "encode() takes a value and an optional name of it (%zd given)", nargs);
    }
    if (nargs == 2 && (what = PyUnicode_AsUTF8(args[1])) == NULL) {
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, self->size);
    if (out == NULL) {
        return NULL;
    }
    if (cbpf_codec_encode((PyObject *)self, args[0], PyBytes_AS_STRING(out), what) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

static int Decoder_traverse(DecoderObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->type);
    for (Py_ssize_t i = 0; i < self->nfields; i++) {
        Py_VISIT(self->fields[i].extra);
    }
    return 0;
}

static int Decoder_clear(DecoderObject *self)
{
    Py_CLEAR(self->type);
    for (Py_ssize_t i = 0; i < self->nfields; i++) {
        Py_CLEAR(self->fields[i].extra);
        Py_CLEAR(self->fields[i].name);
        self->fields[i].cname = "";
    }
    return 0;
}

static void Decoder_dealloc(DecoderObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Decoder_clear(self);
    PyMem_Free(self->fields);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *Decoder_get_type(DecoderObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->type ? (PyObject *)self->type : Py_None);
}

static PyObject *Decoder_get_names(DecoderObject *self, void *Py_UNUSED(closure))
{
    PyObject *t = PyTuple_New(self->nfields);
    for (Py_ssize_t i = 0; t != NULL && i < self->nfields; i++) {
        PyTuple_SET_ITEM(t, i, Py_NewRef(self->fields[i].name ? self->fields[i].name : Py_None));
    }
    return t;
}

static PyMethodDef Decoder_methods[] = {
    {"encode", (PyCFunction)(void (*)(void))Decoder_encode, METH_FASTCALL,
     "encode($self, value, what='value', /)\n--\n\nThe bytes of value laid out as the type: a named tuple, tuple or dict of a "
     "struct; an int, float, bool, str (char[N]), bytes or tuple of a lone value."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Decoder_members[] = {
    {"size", T_PYSSIZET, offsetof(DecoderObject, size), READONLY, "Bytes the struct takes."},
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(DecoderObject, vectorcall), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef Decoder_getset[] = {
    {"type", (getter)Decoder_get_type, NULL, "The named tuple type made, or None for a lone value.", NULL},
    {"names", (getter)Decoder_get_names, NULL, "The fields' names (None for an anonymous member).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Decoder_slots[] = {
    {Py_tp_doc, "_Decoder(type, size, fields, union=False)\n--\n\nThe value codec: bytes laid out as a C type -> "
                "a named tuple of type (or a lone value), and back with encode(); see cbpf.Type, which makes these "
                "from BTF."},
    {Py_tp_new, Decoder_new},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_members, Decoder_members},
    {Py_tp_methods, Decoder_methods},
    {Py_tp_getset, Decoder_getset},
    {Py_tp_traverse, Decoder_traverse},
    {Py_tp_clear, Decoder_clear},
    {Py_tp_dealloc, Decoder_dealloc},
    {0, NULL},
};

PyType_Spec cbpf_decoder_spec = {
    .name = "cbpf._cbpf._Decoder",
    .basicsize = sizeof(DecoderObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .slots = Decoder_slots,
};

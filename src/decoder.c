/* cbpf._cbpf._Decoder: bytes laid out as a C struct -> a named tuple, in C.
 *
 * The Python layer (cbpf/_btf.py) reads the struct from BTF and hands over a plan: the named tuple type, the
 * struct's size, and one field per member as (kind, offset, size, count, extra):
 *   'i' / 'u'  a signed / unsigned int of 1, 2, 4 or 8 bytes     'f'  a float of 4 or 8 bytes
 *   's'        text: `size` bytes, up to the first NUL (UTF-8)    'b'  `size` bytes
 *   'r'        a nested struct or union: extra is its _Decoder    'p'  anything else: extra(bytes of `size`)
 * count > 0 makes an 'i', 'u', 'f' or 'r' field an array of that many (a tuple), one element every `size` bytes.
 * Event streams call a _Decoder directly on the buffer's memory (no bytes object, no Python frame per event).
 */
#include "cbpf.h"

#include <string.h>

typedef struct {
    char kind;
    Py_ssize_t offset;
    Py_ssize_t size;
    Py_ssize_t count;
    PyObject *extra;
} field;

typedef struct {
    PyObject_HEAD PyTypeObject *type; /* a tuple subclass without instance dict: a named tuple */
    Py_ssize_t size;
    Py_ssize_t nfields;
    field *fields;
    vectorcallfunc vectorcall;
} DecoderObject;

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

static PyObject *scalar(char kind, Py_ssize_t size, const unsigned char *p)
{
    if (kind == 'f') {
        float f;
        double d;
        if (size == 4) {
            memcpy(&f, p, 4);
            return PyFloat_FromDouble(f);
        }
        memcpy(&d, p, 8);
        return PyFloat_FromDouble(d);
    }
    uint64_t u = load(p, size);
    if (kind == 'u') {
        return u <= (uint64_t)LONG_MAX ? PyLong_FromLong((long)u) : PyLong_FromUnsignedLongLong(u);
    }
    unsigned shift = 64 - 8 * (unsigned)size; /* sign-extend from the field's width */
    return PyLong_FromLongLong((int64_t)(u << shift) >> shift);
}

static PyObject *decode_at(DecoderObject *self, const unsigned char *base);

static PyObject *element(const field *f, const unsigned char *p)
{
    if (f->kind == 'r') {
        return decode_at((DecoderObject *)f->extra, p);
    }
    return scalar(f->kind, f->size, p);
}

static PyObject *decode_field(const field *f, const unsigned char *base)
{
    const unsigned char *p = base + f->offset;
    switch (f->kind) {
    case 's': {
        const unsigned char *nul = memchr(p, 0, (size_t)f->size);
        return PyUnicode_DecodeUTF8((const char *)p, nul ? (Py_ssize_t)(nul - p) : f->size, "replace");
    }
    case 'b': return PyBytes_FromStringAndSize((const char *)p, f->size);
    case 'p': {
        PyObject *raw = PyBytes_FromStringAndSize((const char *)p, f->size);
        if (raw == NULL) {
            return NULL;
        }
        PyObject *v = PyObject_CallOneArg(f->extra, raw);
        Py_DECREF(raw);
        return v;
    }
    default: break;
    }
    if (f->count == 0) {
        return element(f, p);
    }
    PyObject *t = PyTuple_New(f->count);
    if (t == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < f->count; i++) {
        PyObject *v = element(f, p + i * f->size);
        if (v == NULL) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, v);
    }
    return t;
}

static PyObject *decode_at(DecoderObject *self, const unsigned char *base)
{
    /* a named tuple has the layout of a tuple: allocate it as one and fill it */
    PyObject *record = self->type->tp_alloc(self->type, self->nfields);
    if (record == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < self->nfields; i++) {
        PyObject *v = decode_field(&self->fields[i], base);
        if (v == NULL) {
            Py_DECREF(record);
            return NULL;
        }
        PyTuple_SET_ITEM(record, i, v);
    }
    return record;
}

PyObject *cbpf_decoder_decode(PyObject *decoder, const void *data, size_t size)
{
    DecoderObject *self = (DecoderObject *)decoder;
    if ((Py_ssize_t)size < self->size) {
        return PyErr_Format(PyExc_ValueError, "an event of %zu bytes is shorter than %s (%zd bytes)", size,
                            self->type->tp_name, self->size);
    }
    return decode_at(self, data);
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

static int parse_field(cbpf_state *st, PyObject *item, field *f)
{
    const char *kind;
    PyObject *extra;
    if (!PyArg_ParseTuple(item, "snnnO;a decoder field is (kind, offset, size, count, extra)", &kind, &f->offset,
                          &f->size, &f->count, &extra)) {
        return -1;
    }
    f->kind = kind[0];
    if (strlen(kind) != 1 || strchr("iufsbrp", f->kind) == NULL) {
        PyErr_Format(PyExc_ValueError, "unknown decoder field kind %R", PyTuple_GET_ITEM(item, 0));
        return -1;
    }
    bool scalar_size = f->kind == 'f' ? (f->size == 4 || f->size == 8)
                                      : (f->size == 1 || f->size == 2 || f->size == 4 || f->size == 8);
    if (f->offset < 0 || f->size < 0 || f->count < 0 ||
        ((f->kind == 'i' || f->kind == 'u' || f->kind == 'f') && !scalar_size)) {
        PyErr_Format(PyExc_ValueError, "bad decoder field %R", item);
        return -1;
    }
    if ((f->kind == 'r' && !PyObject_TypeCheck(extra, st->Decoder_type)) ||
        (f->kind == 'p' && !PyCallable_Check(extra))) {
        PyErr_Format(PyExc_TypeError, "decoder field %R needs %s", item, f->kind == 'r' ? "a _Decoder" : "a callable");
        return -1;
    }
    if (f->kind == 'r' && ((DecoderObject *)extra)->size > f->size) {
        PyErr_Format(PyExc_ValueError, "decoder field %R is smaller than its struct", item);
        return -1;
    }
    f->extra = f->kind == 'r' || f->kind == 'p' ? Py_NewRef(extra) : NULL;
    return 0;
}

/* Where a field ends, or -1 when that does not fit a Py_ssize_t (offsets and counts come from the caller). */
static Py_ssize_t field_end(const field *f)
{
    Py_ssize_t bytes, end;
    if (cbpf_checked_mul(f->size, f->count ? f->count : 1, &bytes) || cbpf_checked_add(f->offset, bytes, &end)) {
        return -1;
    }
    return end;
}

static PyObject *Decoder_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"type", "size", "fields", NULL};
    PyObject *tuple_type = NULL, *fields = NULL, *seq = NULL;
    Py_ssize_t size;
    cbpf_state *st = cbpf_state_from_type(type);
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OnO:_Decoder", kwlist, &tuple_type, &size, &fields)) {
        return NULL;
    }
    if (size < 0) {
        return PyErr_Format(PyExc_ValueError, "a decoder's struct size must be >= 0, not %zd", size);
    }
    if (!PyType_Check(tuple_type) || !PyType_IsSubtype((PyTypeObject *)tuple_type, &PyTuple_Type) ||
        ((PyTypeObject *)tuple_type)->tp_basicsize != PyTuple_Type.tp_basicsize ||
        ((PyTypeObject *)tuple_type)->tp_dictoffset != 0) {
        return PyErr_Format(PyExc_TypeError, "a decoder makes named tuples: type must be a tuple subclass with "
                                             "__slots__ = (), as collections.namedtuple makes");
    }
    seq = PySequence_Fast(fields, "fields must be a sequence");
    if (seq == NULL) {
        return NULL;
    }
    DecoderObject *self = (DecoderObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        goto error;
    }
    self->vectorcall = Decoder_vectorcall;
    self->type = (PyTypeObject *)Py_NewRef(tuple_type);
    self->size = size;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    self->fields = PyMem_Calloc(n ? (size_t)n : 1, sizeof(field));
    if (self->fields == NULL) {
        PyErr_NoMemory();
        goto error;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (parse_field(st, PySequence_Fast_GET_ITEM(seq, i), &self->fields[i]) < 0) {
            goto error;
        }
        self->nfields = i + 1;
        Py_ssize_t end = field_end(&self->fields[i]);
        if (end < 0 || end > size) {
            PyErr_Format(PyExc_ValueError, "decoder field %zd ends past the struct's %zd bytes", i, size);
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

static PyMemberDef Decoder_members[] = {
    {"size", T_PYSSIZET, offsetof(DecoderObject, size), READONLY, "Bytes the struct takes."},
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(DecoderObject, vectorcall), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef Decoder_getset[] = {
    {"type", (getter)Decoder_get_type, NULL, "The named tuple type made.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Decoder_slots[] = {
    {Py_tp_doc, "_Decoder(type, size, fields)\n--\n\nBytes laid out as a C struct -> a named tuple of type, in C; "
                "see cbpf.Struct, which makes these from BTF."},
    {Py_tp_new, Decoder_new},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_members, Decoder_members},
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

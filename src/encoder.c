/* The value codec's way back: Python values -> bytes laid out as the plan says (see codec.h).
 *
 * The inverse of decoder.c: a struct takes what a read gives (a named tuple), a tuple or a dict of field names
 * (absent fields stay zero); a lone value takes an int, float, bool, str (char[N]), bytes or a tuple. A value
 * that does not fit raises TypeError, ValueError or OverflowError naming the field ("value field 'a.b[2]'").
 */
#include "codec.h"

#include <string.h>

/* Where in a value the encoder is, for messages: "stats.slots[3]". */
typedef struct {
    const char *what; /* "key", "value", "global 'x'" */
    char buf[240];
    size_t len;
} path;

static size_t path_push(path *p, const char *name)
{
    size_t was = p->len;
    if (name[0] == '\0') {
        return was; /* an anonymous member: C names its fields as the parent's */
    }
    int n = snprintf(p->buf + p->len, sizeof(p->buf) - p->len, "%s%s", p->len ? "." : "", name);
    if (n > 0) {
        p->len = p->len + (size_t)n < sizeof(p->buf) ? p->len + (size_t)n : sizeof(p->buf) - 1;
    }
    return was;
}

static size_t path_index(path *p, Py_ssize_t i)
{
    size_t was = p->len;
    int n = snprintf(p->buf + p->len, sizeof(p->buf) - p->len, "[%zd]", i);
    if (n > 0) {
        p->len = p->len + (size_t)n < sizeof(p->buf) ? p->len + (size_t)n : sizeof(p->buf) - 1;
    }
    return was;
}

static void path_pop(path *p, size_t was)
{
    p->len = was;
    p->buf[was] = '\0';
}

static int fail(PyObject *exc, path *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    PyObject *msg = PyUnicode_FromFormatV(fmt, ap);
    va_end(ap);
    if (msg == NULL) {
        return -1;
    }
    if (p->len) {
        PyErr_Format(exc, "%s field '%s': %U", p->what, p->buf, msg);
    }
    else {
        PyErr_Format(exc, "%s: %U", p->what, msg);
    }
    Py_DECREF(msg);
    return -1;
}

/* An int of `bits` bits: the signed range, and for unsigned fields the unsigned range too (-1 gives all ones). */
static int int_value(PyObject *v, char kind, int bits, path *p, uint64_t *out)
{
    if (!PyIndex_Check(v) || PyFloat_Check(v)) {
        return fail(PyExc_TypeError, p, "an int is needed, not %.100s", Py_TYPE(v)->tp_name);
    }
    PyObject *num = PyNumber_Index(v);
    if (num == NULL) {
        return -1;
    }
    int overflow = 0;
    long long s = PyLong_AsLongLongAndOverflow(num, &overflow);
    unsigned long long u = (unsigned long long)s;
    if (overflow > 0 && kind == 'u') {
        u = PyLong_AsUnsignedLongLong(num);
        if (u == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
        }
        else {
            overflow = 0;
            s = 0; /* positive, beyond the signed range */
        }
    }
    Py_DECREF(num);
    if (!overflow && s == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (!overflow && bits < 64) {
        long long lo = -(1LL << (bits - 1));
        unsigned long long hi = kind == 'u' ? (1ULL << bits) - 1 : (1ULL << (bits - 1)) - 1;
        if (s < lo || (s >= 0 && u > hi)) {
            overflow = 1;
        }
    }
    if (overflow) {
        return fail(PyExc_OverflowError, p, "%R does not fit a %d-bit %s int", v, bits,
                    kind == 'u' ? "unsigned" : "signed");
    }
    *out = bits < 64 ? u & ((1ULL << bits) - 1) : u;
    return 0;
}

static int int128_value(PyObject *v, bool is_signed, path *p, unsigned char *dst)
{
    if (!PyIndex_Check(v) || PyFloat_Check(v)) {
        return fail(PyExc_TypeError, p, "an int is needed, not %.100s", Py_TYPE(v)->tp_name);
    }
    PyObject *num = PyNumber_Index(v), *sixty_four = PyLong_FromLong(64), *mask = PyLong_FromUnsignedLongLong(UINT64_MAX);
    PyObject *hi = num && sixty_four ? PyNumber_Rshift(num, sixty_four) : NULL; /* floor: keeps the sign */
    PyObject *lo = num && mask ? PyNumber_And(num, mask) : NULL;
    int rc = -1;
    if (hi != NULL && lo != NULL) {
        int overflow = 0;
        long long h = PyLong_AsLongLongAndOverflow(hi, &overflow);
        uint64_t hu = (uint64_t)h;
        if (overflow > 0 && !is_signed) {
            hu = PyLong_AsUnsignedLongLong(hi);
            overflow = hu == UINT64_MAX && PyErr_Occurred() ? 1 : 0;
            PyErr_Clear();
        }
        if (overflow) {
            fail(PyExc_OverflowError, p, "%R does not fit a 128-bit %s int", v, is_signed ? "signed" : "unsigned");
        }
        else if (!PyErr_Occurred()) {
            uint64_t l = PyLong_AsUnsignedLongLong(lo);
            memcpy(dst, &l, 8);
            memcpy(dst + 8, &hu, 8);
            rc = 0;
        }
    }
    Py_XDECREF(num);
    Py_XDECREF(sixty_four);
    Py_XDECREF(mask);
    Py_XDECREF(hi);
    Py_XDECREF(lo);
    return rc;
}

static void store(unsigned char *dst, uint64_t u, Py_ssize_t size)
{
    uint8_t u8 = (uint8_t)u;
    uint16_t u16 = (uint16_t)u;
    uint32_t u32 = (uint32_t)u;
    switch (size) {
    case 1: memcpy(dst, &u8, 1); break;
    case 2: memcpy(dst, &u16, 2); break;
    case 4: memcpy(dst, &u32, 4); break;
    default: memcpy(dst, &u, 8); break;
    }
}

/* Bytes of a str (UTF-8) or a buffer, at most `size` of them; the rest stays zero. */
static int bytes_value(PyObject *v, bool text, Py_ssize_t size, path *p, unsigned char *dst)
{
    Py_buffer view = {0};
    const char *src;
    Py_ssize_t len;
    if (text && PyUnicode_Check(v)) {
        src = PyUnicode_AsUTF8AndSize(v, &len);
        if (src == NULL) {
            return -1;
        }
    }
    else if (PyObject_CheckBuffer(v) && !PyUnicode_Check(v)) {
        if (PyObject_GetBuffer(v, &view, PyBUF_SIMPLE) < 0) {
            return -1;
        }
        src = view.buf;
        len = view.len;
    }
    else {
        return fail(PyExc_TypeError, p, "%s is needed, not %.100s", text ? "a str or bytes" : "bytes",
                    Py_TYPE(v)->tp_name);
    }
    int rc = 0;
    if (len > size) {
        rc = fail(PyExc_ValueError, p, "%zd %s do not fit its %zd bytes", len, text ? "UTF-8 bytes" : "bytes", size);
    }
    else {
        memcpy(dst, src, (size_t)len);
    }
    if (view.obj != NULL) {
        PyBuffer_Release(&view);
    }
    return rc;
}

static int encode_at(DecoderObject *self, PyObject *value, unsigned char *base, path *p);

/* One element of a field (the field itself when count == 0) at dst. */
static int encode_element(const cbpf_field *f, PyObject *v, unsigned char *dst, path *p)
{
    uint64_t u;
    switch (f->kind) {
    case 'r': return encode_at((DecoderObject *)f->extra, v, dst, p);
    case 'x':
    case 'X': return int128_value(v, f->kind == 'x', p, dst);
    case 'f': {
        if (!PyFloat_Check(v) && !PyIndex_Check(v)) {
            return fail(PyExc_TypeError, p, "a float is needed, not %.100s", Py_TYPE(v)->tp_name);
        }
        double d = PyFloat_AsDouble(v);
        if (d == -1.0 && PyErr_Occurred()) {
            return -1;
        }
        if (f->size == 4) {
            float fl = (float)d;
            memcpy(dst, &fl, 4);
        }
        else {
            memcpy(dst, &d, 8);
        }
        return 0;
    }
    case '?': {
        if (!PyBool_Check(v) && !(PyLong_CheckExact(v) && (PyLong_AsLong(v) == 0 || PyLong_AsLong(v) == 1))) {
            PyErr_Clear();
            return fail(PyExc_TypeError, p, "a bool (or 0 or 1) is needed, not %R", v);
        }
        *dst = v == Py_True || (PyLong_CheckExact(v) && PyLong_AsLong(v) == 1);
        return 0;
    }
    case 'i':
    case 'u':
        if (f->bits) {
            if (int_value(v, f->kind, f->bits, p, &u) < 0) {
                return -1;
            }
            unsigned char window[16] = {0};
            unsigned __int128 w, m = (((unsigned __int128)1 << f->bits) - 1) << f->shift;
            memcpy(window, dst, (size_t)f->size);
            memcpy(&w, window, sizeof(w));
            w = (w & ~m) | (((unsigned __int128)u << f->shift) & m);
            memcpy(window, &w, sizeof(w));
            memcpy(dst, window, (size_t)f->size);
            return 0;
        }
        if (int_value(v, f->kind, (int)f->size * 8, p, &u) < 0) {
            return -1;
        }
        store(dst, u, f->size);
        return 0;
    default: return fail(PyExc_SystemError, p, "codec kind '%c' has no elements", f->kind);
    }
}

static int encode_field(const cbpf_field *f, PyObject *v, unsigned char *base, path *p)
{
    unsigned char *dst = base + f->offset;
    switch (f->kind) {
    case 's':
    case 'b': return bytes_value(v, f->kind == 's', f->size, p, dst);
    case 'p': {
        Py_buffer view = {0};
        if (!PyObject_CheckBuffer(v) || PyObject_GetBuffer(v, &view, PyBUF_SIMPLE) < 0) {
            PyErr_Clear();
            return fail(PyExc_TypeError, p, "bytes of %zd are needed, not %.100s", f->size, Py_TYPE(v)->tp_name);
        }
        int rc = 0;
        if (view.len != f->size) {
            rc = fail(PyExc_ValueError, p, "%zd bytes are needed, not %zd", f->size, view.len);
        }
        else {
            memcpy(dst, view.buf, (size_t)f->size);
        }
        PyBuffer_Release(&view);
        return rc;
    }
    default: break;
    }
    Py_ssize_t count = f->count;
    if (count == 0) {
        return encode_element(f, v, dst, p);
    }
    if (!PyTuple_Check(v) && !PyList_Check(v)) {
        return fail(PyExc_TypeError, p, "an array of %zd is needed (a tuple or list), not %.100s", count,
                    Py_TYPE(v)->tp_name);
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(v);
    if (n > count) {
        return fail(PyExc_ValueError, p, "%zd items do not fit an array of %zd", n, count);
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        size_t was = path_index(p, i);
        int rc;
        if (f->kind == 'k') {
            uint64_t u;
            rc = int_value(PySequence_Fast_GET_ITEM(v, i), 'u', 64, p, &u);
            if (rc == 0) {
                store(dst + i * 8, u, 8);
            }
        }
        else {
            rc = encode_element(f, PySequence_Fast_GET_ITEM(v, i), dst + i * f->size, p);
        }
        if (rc < 0) {
            return -1;
        }
        path_pop(p, was);
    }
    return 0;
}

static int encode_named(const cbpf_field *f, PyObject *v, unsigned char *base, path *p)
{
    size_t was = path_push(p, f->cname);
    if (encode_field(f, v, base, p) < 0) {
        return -1;
    }
    path_pop(p, was);
    return 0;
}

/* Fields named in dict, anonymous members' fields included: the number of the dict's keys used, or -1. */
static Py_ssize_t encode_dict(DecoderObject *self, PyObject *dict, unsigned char *base, path *p)
{
    Py_ssize_t used = 0;
    for (Py_ssize_t i = 0; i < self->nfields; i++) {
        const cbpf_field *f = &self->fields[i];
        if (f->name == NULL) {
            Py_ssize_t n = encode_dict((DecoderObject *)f->extra, dict, base + f->offset, p);
            if (n < 0) {
                return -1;
            }
            used += n;
            continue;
        }
        PyObject *v = PyDict_GetItemWithError(dict, f->name);
        if (v == NULL) {
            if (PyErr_Occurred()) {
                return -1;
            }
            continue;
        }
        if (encode_named(f, v, base, p) < 0) {
            return -1;
        }
        used++;
    }
    return used;
}

static bool has_field(DecoderObject *self, PyObject *name)
{
    for (Py_ssize_t i = 0; i < self->nfields; i++) {
        const cbpf_field *f = &self->fields[i];
        if (f->name == NULL ? has_field((DecoderObject *)f->extra, name)
                            : PyUnicode_Check(name) && PyUnicode_Compare(f->name, name) == 0) {
            return true;
        }
    }
    return false;
}

static int unknown_field(DecoderObject *self, PyObject *dict, path *p)
{
    PyObject *key, *v;
    Py_ssize_t pos = 0;
    while (PyDict_Next(dict, &pos, &key, &v)) {
        if (!has_field(self, key)) {
            PyObject *names = PyUnicode_FromString("");
            for (Py_ssize_t i = 0; names != NULL && i < self->nfields; i++) {
                PyObject *joined = PyUnicode_FromFormat("%U%s%s", names, i ? ", " : "",
                                                        self->fields[i].name ? self->fields[i].cname : "(anonymous)");
                Py_SETREF(names, joined);
            }
            if (names == NULL) {
                return -1;
            }
            fail(PyExc_ValueError, p, "no field %R; fields: %U", key, names);
            Py_DECREF(names);
            return -1;
        }
    }
    return fail(PyExc_ValueError, p, "a dict key is not a field");
}

static int encode_at(DecoderObject *self, PyObject *value, unsigned char *base, path *p)
{
    if (self->type == NULL) {
        return encode_field(&self->fields[0], value, base, p);
    }
    if (PyDict_Check(value)) {
        Py_ssize_t used = encode_dict(self, value, base, p);
        if (used < 0) {
            return -1;
        }
        return used == PyDict_GET_SIZE(value) ? 0 : unknown_field(self, value, p);
    }
    if (!PyTuple_Check(value) && !PyList_Check(value)) {
        return fail(PyExc_TypeError, p, "a %s takes a named tuple, tuple or dict, not %.100s", self->type->tp_name,
                    Py_TYPE(value)->tp_name);
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(value);
    if (n != self->nfields) {
        return fail(PyExc_ValueError, p, "%s has %zd fields, got a %s of %zd", self->type->tp_name, self->nfields,
                    Py_TYPE(value)->tp_name, n);
    }
    if (self->is_union) {
        /* members overlap: write the first of the largest size, which holds every byte the others see */
        Py_ssize_t best = 0;
        for (Py_ssize_t i = 1; i < n; i++) {
            if (self->fields[i].end > self->fields[best].end) {
                best = i;
            }
        }
        return n ? encode_named(&self->fields[best], PySequence_Fast_GET_ITEM(value, best), base, p) : 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (encode_named(&self->fields[i], PySequence_Fast_GET_ITEM(value, i), base, p) < 0) {
            return -1;
        }
    }
    return 0;
}

int cbpf_codec_encode(PyObject *codec, PyObject *value, void *buf, const char *what)
{
    DecoderObject *self = (DecoderObject *)codec;
    path p = {what, {0}, 0};
    memset(buf, 0, (size_t)self->size);
    return encode_at(self, value, buf, &p);
}

Py_ssize_t cbpf_codec_size(PyObject *codec)
{
    return ((DecoderObject *)codec)->size;
}

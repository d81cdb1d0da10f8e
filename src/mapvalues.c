/* Typed keys and values of a Map: what reads give and writes take, through the value codec (codec.h).
 *
 * A map's codecs come from its BTF or from Map.set_types() (the Python layer's Map._resolve_types() hands them
 * over with _set_codecs, once, on first use). Without one, keys and values are bytes as the kernel has them.
 * Buffers (bytes, bytearray, memoryview, numpy) and ints keep the untyped path: exact sizes, ints packed in C.
 */
#include "codec.h"

/* The codecs, found on first use by the _resolve_types() hook: the C type's resolves none (keys and values stay
 * bytes); the Python layer's Map reads them from the BTF and hands them over with _set_codecs(). */
int cbpf_map_types(MapObject *self)
{
    if (self->types_resolved) {
        return 0;
    }
    PyObject *r = PyObject_CallMethod((PyObject *)self, "_resolve_types", NULL);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    self->types_resolved = true; /* _set_codecs() has run (the types are set before the flag another thread sees) */
    return 0;
}

PyObject *cbpf_map_resolve_no_types(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    Py_RETURN_NONE;
}

static PyObject *decode_per_cpu(MapObject *self, PyObject *codec, const unsigned char *value)
{
    PyObject *list = PyList_New(self->ncpus);
    for (uint32_t cpu = 0; list != NULL && cpu < self->ncpus; cpu++) {
        const unsigned char *p = value + (size_t)cpu * self->value_stride;
        PyObject *v = codec ? cbpf_decoder_decode_kept(codec, p, self->value_size)
                            : PyBytes_FromStringAndSize((const char *)p, self->value_size);
        if (v == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, cpu, v);
    }
    return list;
}

/* A value as reads give it: decoded (a list of one per possible CPU on per-CPU maps), or bytes when untyped. */
PyObject *cbpf_map_decode_value(MapObject *self, const unsigned char *value)
{
    if (self->ncpus != 1) {
        return decode_per_cpu(self, self->value_codec, value);
    }
    if (self->value_codec != NULL) {
        return cbpf_decoder_decode_kept(self->value_codec, value, self->value_size);
    }
    return PyBytes_FromStringAndSize((const char *)value, self->value_size);
}

PyObject *cbpf_map_decode_key(MapObject *self, const unsigned char *key)
{
    if (self->key_codec != NULL) {
        return cbpf_decoder_decode_kept(self->key_codec, key, self->key_size);
    }
    return PyBytes_FromStringAndSize((const char *)key, self->key_size);
}

void cbpf_keybuf_release(cbpf_keybuf *kb)
{
    if (kb->view.obj != NULL) {
        PyBuffer_Release(&kb->view);
    }
    PyMem_Free(kb->heap);
    kb->heap = NULL;
}

static unsigned char *keybuf_space(cbpf_keybuf *kb, size_t size)
{
    if (size <= sizeof(kb->inline_)) {
        return (unsigned char *)kb->inline_;
    }
    kb->heap = PyMem_Malloc(size);
    if (kb->heap == NULL) {
        PyErr_NoMemory();
    }
    return kb->heap;
}

static bool raw_input(PyObject *obj)
{
    return PyLong_Check(obj) || (PyObject_CheckBuffer(obj) && !PyUnicode_Check(obj));
}

int cbpf_map_encode_key(MapObject *self, PyObject *key, cbpf_keybuf *kb, const void **out)
{
    if (self->key_codec == NULL || raw_input(key)) {
        return cbpf_map_to_bytes(key, self->key_size, "key", self->name, kb->inline_, &kb->view, out);
    }
    unsigned char *buf = keybuf_space(kb, self->key_size);
    if (buf == NULL || cbpf_codec_encode(self->key_codec, key, buf, "key") < 0) {
        return -1;
    }
    *out = buf;
    return 0;
}

/* A value for a write. Per-CPU maps take a list of one value per possible CPU, or one value for every CPU. */
int cbpf_map_encode_value(MapObject *self, PyObject *value, cbpf_keybuf *kb, const void **out)
{
    size_t full = (size_t)self->value_stride * self->ncpus;
    /* per-CPU maps: an int is one CPU's value, only a buffer holds them all */
    bool raw = self->ncpus == 1 ? raw_input(value) : PyObject_CheckBuffer(value) && !PyUnicode_Check(value);
    if (self->value_codec == NULL || raw) {
        if (self->ncpus == 1) {
            return cbpf_map_to_bytes(value, self->value_size, "value", self->name, kb->inline_, &kb->view, out);
        }
        return cbpf_map_to_bytes(value, (uint32_t)full, "per-CPU value (one slot per possible CPU)", self->name,
                                 kb->inline_, &kb->view, out);
    }
    unsigned char *buf = keybuf_space(kb, full);
    if (buf == NULL) {
        return -1;
    }
    if (self->ncpus == 1) {
        if (cbpf_codec_encode(self->value_codec, value, buf, "value") < 0) {
            return -1;
        }
        *out = buf;
        return 0;
    }
    memset(buf, 0, full);
    if (PyList_Check(value) && PyList_GET_SIZE(value) != (Py_ssize_t)self->ncpus) {
        PyErr_Format(PyExc_ValueError, "map '%U' is per-CPU: a list of values needs one per possible CPU (%u), got %zd",
                     self->name, self->ncpus, PyList_GET_SIZE(value));
        return -1;
    }
    for (uint32_t cpu = 0; cpu < self->ncpus; cpu++) {
        PyObject *v = PyList_Check(value) ? PyList_GET_ITEM(value, cpu) : value;
        if (cbpf_codec_encode(self->value_codec, v, buf + (size_t)cpu * self->value_stride, "value") < 0) {
            return -1;
        }
    }
    *out = buf;
    return 0;
}

/* _set_codecs(key_type, value_type): the cbpf.Types (or None) Map._resolve_types() or set_types() found. */
PyObject *cbpf_map_set_codecs(MapObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    cbpf_state *st = cbpf_state_from_type(Py_TYPE(self));
    PyObject *codecs[2] = {NULL, NULL};
    if (nargs != 2) {
        return PyErr_Format(PyExc_TypeError, "_set_codecs(key_type, value_type)");
    }
    const uint32_t sizes[2] = {self->key_size, self->value_size};
    for (int i = 0; i < 2; i++) {
        if (args[i] == Py_None) {
            continue;
        }
        codecs[i] = PyObject_GetAttrString(args[i], "codec");
        if (codecs[i] == NULL) {
            goto error;
        }
        if (!PyObject_TypeCheck(codecs[i], st->Decoder_type)) {
            PyErr_Format(PyExc_TypeError, "a type's codec is a cbpf._cbpf._Decoder, not %.100s",
                         Py_TYPE(codecs[i])->tp_name);
            goto error;
        }
        if (cbpf_codec_size(codecs[i]) != (Py_ssize_t)sizes[i]) {
            PyErr_Format(PyExc_ValueError, "map '%U' has %u-byte %ss: %R takes %zd bytes", self->name, sizes[i],
                         i ? "value" : "key", args[i], cbpf_codec_size(codecs[i]));
            goto error;
        }
    }
    Py_XSETREF(self->key_type, args[0] == Py_None ? NULL : Py_NewRef(args[0]));
    Py_XSETREF(self->value_type, args[1] == Py_None ? NULL : Py_NewRef(args[1]));
    Py_XSETREF(self->key_codec, codecs[0]);
    Py_XSETREF(self->value_codec, codecs[1]);
    self->types_resolved = true;
    Py_RETURN_NONE;
error:
    Py_XDECREF(codecs[0]);
    Py_XDECREF(codecs[1]);
    return NULL;
}

PyObject *cbpf_map_get_key_type(MapObject *self, void *Py_UNUSED(closure))
{
    if (cbpf_map_types(self) < 0) {
        return NULL;
    }
    return Py_NewRef(self->key_type ? self->key_type : Py_None);
}

PyObject *cbpf_map_get_value_type(MapObject *self, void *Py_UNUSED(closure))
{
    if (cbpf_map_types(self) < 0) {
        return NULL;
    }
    return Py_NewRef(self->value_type ? self->value_type : Py_None);
}

/* The value at key, decoded; NULL with *found false when absent (no exception), NULL with an exception on error. */
static PyObject *typed_lookup(MapObject *self, PyObject *key, bool *found)
{
    cbpf_map_io io = {0};
    PyObject *result = NULL;
    *found = false;

    if (cbpf_map_check_open(self) < 0) {
        return NULL;
    }
    if (cbpf_map_io_begin(self, key, NULL, true, &io) < 0) {
        goto done;
    }
    if (bpf_map_lookup_elem(self->fd, io.key, io.out) != 0) {
        if (errno != ENOENT) {
            cbpf_map_error(self, errno, "lookup");
        }
        goto done;
    }
    *found = true;
    result = cbpf_map_decode_value(self, io.out);
done:
    cbpf_map_io_release(&io);
    return result;
}

PyObject *cbpf_map_subscript(MapObject *self, PyObject *key)
{
    bool found;
    PyObject *v = typed_lookup(self, key, &found);
    if (v == NULL && !found && !PyErr_Occurred()) {
        PyErr_SetObject(PyExc_KeyError, key);
    }
    return v;
}

/* get(key, default=None) */
PyObject *cbpf_map_get(MapObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        return PyErr_Format(PyExc_TypeError, "get() takes a key and an optional default (%zd given)", nargs);
    }
    bool found;
    PyObject *v = typed_lookup(self, args[0], &found);
    if (v == NULL && !found && !PyErr_Occurred()) {
        return Py_NewRef(nargs == 2 ? args[1] : Py_None);
    }
    return v;
}

/* The value codec shared by decoder.c (bytes -> Python) and encoder.c (Python -> bytes): one plan per C type.
 *
 * The Python layer (cbpf/_btf.py) reads a type from BTF (or ctypes, numpy, a format) and hands over a plan: the
 * named tuple type (None for a lone value: an int, a char[N], an array...), the type's size, and one field per
 * member as (kind, offset, size, count, extra, name, shift, bits):
 *   'i' / 'u'  a signed / unsigned int of 1, 2, 4 or 8 bytes; with bits > 0 a bitfield of that many bits starting
 *              `shift` bits into the `size` bytes at offset (little-endian layout)
 *   'x' / 'X'  a signed / unsigned 128-bit int (size 16)      '?'  a bool (size 1)
 *   'f'        a float of 4 or 8 bytes                         's'  text: `size` bytes, up to the first NUL (UTF-8)
 *   'b'        `size` bytes                                    'k'  a stack trace: `count` u64 addresses, as a
 *                                                                   tuple with the trailing zeros dropped
 *   'r'        a nested struct, union or lone value: extra is its _Decoder
 *   'p'        anything else: extra(bytes of `size`) decodes it; encoding takes bytes of exactly `size`
 * count > 0 makes an 'i', 'u', 'x', 'X', '?', 'f' or 'r' field an array of that many (a tuple), one element every
 * `size` bytes. name is the member's name, or None for an anonymous struct or union member (its fields are then
 * reachable by their own names when encoding from a dict).
 */
#ifndef CBPF_CODEC_H
#define CBPF_CODEC_H

#include "cbpf.h"

typedef struct {
    char kind;
    Py_ssize_t offset;
    Py_ssize_t size;
    Py_ssize_t count;
    Py_ssize_t end;    /* offset + size * max(count, 1): a shorter buffer decodes this field partly or empty */
    PyObject *extra;   /* 'r': a _Decoder; 'p': a callable */
    PyObject *name;    /* str, or NULL for an anonymous member */
    const char *cname; /* name's UTF-8, for error messages ("" when anonymous) */
    int shift;         /* bitfields: bits into the `size` bytes */
    int bits;          /* bitfields: width, else 0 */
    bool plain_int;    /* an 'i' or 'u' of 1, 2, 4 or 8 bytes, no bitfield, no array: the fast path */
} cbpf_field;

typedef struct {
    PyObject_HEAD PyTypeObject *type; /* a tuple subclass without instance dict (a named tuple), or NULL for a lone
                                         value: fields[0] alone */
    Py_ssize_t size;
    Py_ssize_t nfields;
    cbpf_field *fields;
    vectorcallfunc vectorcall;
    bool is_union; /* encoding from a tuple writes one member only: the first of the largest size */
    bool atomic;   /* every field decodes to an int, float, bool, str or bytes: records hold no tracked object */
} DecoderObject;

#endif

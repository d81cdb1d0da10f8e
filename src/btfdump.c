/* The kernel's types as C: what cbpf.vmlinux_h() writes, made with libbpf's BTF dumper instead of bpftool.
 *
 * The BTF is parsed and dumped with the GIL released (a kernel's BTF holds about 100k types: tens of milliseconds),
 * into a buffer of our own; Python gets the header as bytes and writes it where it belongs.
 */
#include "cbpf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/btf.h>

typedef struct {
    char *buf;
    size_t len;
    size_t cap;
    bool failed; /* out of memory: the text is incomplete */
} textbuf;

static void text_vappend(textbuf *t, const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n < 0 || t->failed) {
        t->failed = true;
        return;
    }
    size_t need = t->len + (size_t)n + 1;
    if (need > t->cap) {
        size_t cap = t->cap ? t->cap : (size_t)1 << 20;
        while (cap < need) {
            cap *= 2;
        }
        char *grown = realloc(t->buf, cap);
        if (grown == NULL) {
            t->failed = true;
            return;
        }
        t->buf = grown;
        t->cap = cap;
    }
    vsnprintf(t->buf + t->len, (size_t)n + 1, fmt, ap);
    t->len += (size_t)n;
}

static void text_append(textbuf *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    text_vappend(t, fmt, ap);
    va_end(ap);
}

static void dump_printf(void *ctx, const char *fmt, va_list ap)
{
    text_vappend(ctx, fmt, ap);
}

/* Every type of btf as C declarations, inside an include guard. Records get preserve_access_index, so that field
 * accesses of a program including the header are CO-RE relocations. 0, or a negative errno. */
static int dump_header(struct btf *btf, textbuf *out)
{
    text_append(out, "/* The running kernel's types, from its BTF, written by cbpf.vmlinux_h(). */\n"
                     "#ifndef __VMLINUX_H__\n#define __VMLINUX_H__\n\n"
                     "#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n"
                     "#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)\n"
                     "#endif\n\n");
    struct btf_dump *dump = btf_dump__new(btf, dump_printf, out, NULL);
    if (dump == NULL) {
        return -errno;
    }
    int err = 0;
    __u32 count = btf__type_cnt(btf);
    for (__u32 id = 1; id < count && err == 0 && !out->failed; id++) {
        err = btf_dump__dump_type(dump, id);
    }
    btf_dump__free(dump);
    text_append(out, "\n#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n#pragma clang attribute pop\n#endif\n\n"
                     "#endif /* __VMLINUX_H__ */\n");
    return err < 0 ? err : out->failed ? -ENOMEM : 0;
}

PyObject *cbpf_btf_c_header(PyObject *module, PyObject *path)
{
    cbpf_state *st = cbpf_get_state(module);
    PyObject *encoded = NULL, *result = NULL;
    textbuf text = {0};
    struct btf *btf = NULL;
    int err = 0;

    if (!PyUnicode_FSConverter(path, &encoded)) {
        return NULL;
    }
    const char *cpath = PyBytes_AS_STRING(encoded);
    cbpf_log_begin();
    Py_BEGIN_ALLOW_THREADS
    btf = btf__parse(cpath, NULL);
    err = btf == NULL ? errno : dump_header(btf, &text);
    Py_END_ALLOW_THREADS
    free(cbpf_log_end(st));
    if (btf == NULL) {
        if (err == ENOENT || err == EACCES || err == EPERM || err == EISDIR) {
            cbpf_set_file_error(st, err, path);
        }
        else {
            /* libbpf's answer for a file that is neither raw BTF nor an ELF with a .BTF section */
            cbpf_set_error(st, err, "'%s' holds no BTF (a kernel without BTF, CONFIG_DEBUG_INFO_BTF unset, cannot "
                           "give CO-RE programs their types)", cpath);
        }
        goto done;
    }
    if (err < 0) {
        cbpf_set_error(st, err, "writing the types of '%s' as C", cpath);
        goto done;
    }
    result = PyBytes_FromStringAndSize(text.buf, (Py_ssize_t)text.len);

done:
    btf__free(btf);
    free(text.buf);
    Py_XDECREF(encoded);
    return result;
}

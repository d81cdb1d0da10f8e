/* Errors and libbpf's log.
 *
 * libbpf reports through a process-wide print callback and returns negative errno codes. The callback may run
 * while the GIL is released (object load), so it never touches Python: it appends to a per-thread buffer, and the
 * caller hands the buffer to Python's logging (logger "cbpf.libbpf") once it holds the GIL again. The same buffer
 * gives the verifier log that a LoadError carries.
 */
#include "cbpf.h"

#include <errno.h>
#include <linux/capability.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LOG_CAP (16u << 20) /* a verifier log can reach megabytes; past this, records are dropped */

/* Records: one byte of libbpf level, the text, a NUL. */
typedef struct {
    char *buf;
    size_t len;
    size_t cap;
} logbuf;

static _Thread_local logbuf tl_log;

int cbpf_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n < 0) {
        return 0;
    }
    size_t need;
    if (cbpf_checked_add(tl_log.len, (size_t)n + 2, &need) || need > LOG_CAP) {
        return 0;
    }
    if (need > tl_log.cap) {
        size_t cap = tl_log.cap ? tl_log.cap : 4096;
        while (cap < need) {
            cap *= 2;
        }
        char *grown = realloc(tl_log.buf, cap);
        if (grown == NULL) {
            return 0;
        }
        tl_log.buf = grown;
        tl_log.cap = cap;
    }
    tl_log.buf[tl_log.len++] = (char)level;
    vsnprintf(tl_log.buf + tl_log.len, (size_t)n + 1, fmt, ap);
    tl_log.len += (size_t)n + 1;
    return n;
}

/* A libbpf message without the "libbpf: " libbpf starts it with (every one of them, should a message quote another):
 * where it goes names libbpf already, the "cbpf.libbpf" logger or a message's "(libbpf: ...)". */
const char *cbpf_libbpf_text(const char *s)
{
    while (strncmp(s, "libbpf:", 7) == 0) {
        s += 7;
        while (*s == ' ') {
            s++;
        }
    }
    return s;
}

void cbpf_log_begin(void)
{
    tl_log.len = 0;
}

static PyObject *get_logger(cbpf_state *st)
{
    if (st->logger == NULL) {
        PyObject *logging = PyImport_ImportModule("logging");
        if (logging == NULL) {
            return NULL;
        }
        st->logger = PyObject_CallMethod(logging, "getLogger", "s", "cbpf.libbpf");
        /* a library's logger stays silent until the application configures logging (no lastResort on stderr) */
        PyObject *parent = st->logger ? PyObject_CallMethod(logging, "getLogger", "s", "cbpf") : NULL;
        PyObject *null = parent ? PyObject_CallMethod(logging, "NullHandler", NULL) : NULL;
        PyObject *r = null ? PyObject_CallMethod(parent, "addHandler", "O", null) : NULL;
        Py_XDECREF(r);
        Py_XDECREF(null);
        Py_XDECREF(parent);
        Py_DECREF(logging);
        if (r == NULL) {
            Py_CLEAR(st->logger);
        }
    }
    return st->logger;
}

/* Sends what libbpf printed on this thread to Python's logging and returns the warnings as one string (malloc'd,
 * caller frees; NULL when there were none or memory ran out). Keeps any exception already set. */
char *cbpf_log_end(cbpf_state *st)
{
    char *warnings = NULL;
    size_t wlen = 0;
    PyObject *exc_type, *exc_value, *exc_tb;
    PyErr_Fetch(&exc_type, &exc_value, &exc_tb);

    PyObject *logger = tl_log.len ? get_logger(st) : NULL;
    for (size_t off = 0; off < tl_log.len;) {
        int level = tl_log.buf[off];
        const char *text = tl_log.buf + off + 1;
        size_t n = strlen(text);
        off += n + 2;
        if (level == LIBBPF_WARN) {
            char *grown = realloc(warnings, wlen + n + 1);
            if (grown != NULL) {
                memcpy(grown + wlen, text, n);
                wlen += n;
                grown[wlen] = '\0';
                warnings = grown;
            }
        }
        if (logger == NULL) {
            continue;
        }
        int pylevel = level == LIBBPF_WARN ? 30 : level == LIBBPF_INFO ? 20 : 10;
        const char *shown = cbpf_libbpf_text(text); /* "cbpf.libbpf: libbpf: ..." would say it twice */
        size_t len = n - (size_t)(shown - text);
        while (len && shown[len - 1] == '\n') {
            len--;
        }
        PyObject *r = PyObject_CallMethod(logger, "log", "is#", pylevel, shown, (Py_ssize_t)len);
        if (r == NULL) {
            PyErr_Clear(); /* a broken logging handler must not turn a successful load into a failure */
        }
        Py_XDECREF(r);
    }
    if (logger == NULL && tl_log.len) {
        PyErr_Clear();
    }
    tl_log.len = 0;
    PyErr_Restore(exc_type, exc_value, exc_tb);
    return warnings;
}

/* Whether the process lacks what BPF needs: CAP_SYS_ADMIN, or CAP_BPF with CAP_PERFMON. */
static bool lacks_bpf_capabilities(void)
{
    struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset(data, 0, sizeof(data));
    if (syscall(SYS_capget, &header, data) != 0) {
        return false; /* cannot tell: no hint rather than a wrong one */
    }
#define HAS(cap) ((data[(cap) / 32].effective >> ((cap) % 32)) & 1u)
    bool ok = HAS(CAP_SYS_ADMIN) || (HAS(39 /* CAP_BPF */) && HAS(38 /* CAP_PERFMON */));
#undef HAS
    return !ok;
}

static const char *hint_for(int err)
{
    switch (err) {
    case EPERM:
    case EACCES:
        /* root is refused for other reasons (a path outside bpffs, a lockdown...): the hint would mislead */
        return lacks_bpf_capabilities() ? " (run as root, or grant CAP_BPF and CAP_PERFMON)" : "";
    case ENOMEM:
        return " (out of memory, or the locked-memory limit is too low)";
    default:
        return "";
    }
}

/* The kernel's internal codes (include/linux/errnos.h), which reach user space from some BPF paths (ENOTSUPP above
 * all) and which strerror() calls "Unknown error". */
static const char *kernel_internal_error(int err)
{
    switch (err) {
    case 512: return "Restart the system call (ERESTARTSYS, kernel-internal code 512)";
    case 513: return "Restart the system call (ERESTARTNOINTR, kernel-internal code 513)";
    case 514: return "Restart if no handler (ERESTARTNOHAND, kernel-internal code 514)";
    case 515: return "No ioctl command (ENOIOCTLCMD, kernel-internal code 515)";
    case 516: return "Restart by calling sys_restart_syscall (ERESTART_RESTARTBLOCK, kernel-internal code 516)";
    case 517: return "Driver requests probe retry (EPROBE_DEFER, kernel-internal code 517)";
    case 518: return "Open found a stale dentry (EOPENSTALE, kernel-internal code 518)";
    case 519: return "Parameter not supported (ENOPARAM, kernel-internal code 519)";
    case 521: return "Illegal NFS file handle (EBADHANDLE, kernel-internal code 521)";
    case 522: return "Update synchronization mismatch (ENOTSYNC, kernel-internal code 522)";
    case 523: return "Cookie is stale (EBADCOOKIE, kernel-internal code 523)";
    case 524: return "Operation not supported (ENOTSUPP, kernel-internal code 524)";
    case 525: return "Buffer or request is too small (ETOOSMALL, kernel-internal code 525)";
    case 526: return "An untranslatable error occurred (ESERVERFAULT, kernel-internal code 526)";
    case 527: return "Type not supported by server (EBADTYPE, kernel-internal code 527)";
    case 528: return "Request initiated, but will not complete before timeout (EJUKEBOX, kernel-internal code 528)";
    case 529: return "iocb queued, will get completion event (EIOCBQUEUED, kernel-internal code 529)";
    case 530: return "Conflict with recalled state (ERECALLCONFLICT, kernel-internal code 530)";
    default: return NULL;
    }
}

/* err's text (positive or negative): strerror's, the kernel's internal codes named, libbpf's own codes (4000 and
 * up: bad ELF, endianness, relocation...) through libbpf_strerror. Returns the errno a Python exception should
 * carry: EINVAL for libbpf's codes, which are no errno values. */
int cbpf_strerror(int err, char *buf, size_t size)
{
    if (err < 0) {
        err = -err;
    }
    if (err == 0) {
        err = EINVAL;
    }
    const char *internal = kernel_internal_error(err);
    if (internal != NULL) {
        snprintf(buf, size, "%s", internal);
    }
    else if (err >= __LIBBPF_ERRNO__START && err < __LIBBPF_ERRNO__START + 1000) {
        libbpf_strerror(err, buf, size);
        return EINVAL;
    }
    else {
        snprintf(buf, size, "%s", strerror(err));
    }
    return err;
}

/* What an error is about: names (str, borrowed) or NULL. The message begins with them ("map 'counts' of object
 * 'demo': ", "program 'handle' of object 'demo': ", "object 'demo': ") and the exception carries them as .object,
 * .program and .map (None where the error is about no such thing). */
typedef struct {
    PyObject *object;
    PyObject *program;
    PyObject *map;
    bool named; /* the message names them already (a load's "loading BPF object 'demo' (from ...): ...") */
} error_context;

static PyObject *object_name(ObjectObject *obj)
{
    return obj != NULL ? obj->name : NULL;
}

/* "map 'counts' of object 'demo'", "program 'handle'", "object 'demo'"... or NULL (and no exception) for none. */
static PyObject *context_text(const error_context *ctx)
{
    const char *kind = ctx->map ? "map" : ctx->program ? "program" : NULL;
    PyObject *name = ctx->map ? ctx->map : ctx->program;
    if (kind != NULL && ctx->object != NULL) {
        return PyUnicode_FromFormat("%s '%U' of object '%U'", kind, name, ctx->object);
    }
    if (kind != NULL) {
        return PyUnicode_FromFormat("%s '%U'", kind, name);
    }
    return ctx->object != NULL ? PyUnicode_FromFormat("object '%U'", ctx->object) : NULL;
}

/* .object, .program and .map on exc: the context's names, None for what it lacks. st gives the attributes' interned
 * names; without it (pin.c's helpers have none), plain C strings. */
static int set_context(cbpf_state *st, PyObject *exc, const error_context *ctx)
{
    PyObject *names[3] = {ctx->object, ctx->program, ctx->map};
    PyObject *attrs[3] = {st ? st->str_object : NULL, st ? st->str_program : NULL, st ? st->str_map : NULL};
    static const char *const cattrs[3] = {"object", "program", "map"};
    for (int i = 0; i < 3; i++) {
        PyObject *v = names[i] ? names[i] : Py_None;
        if ((attrs[i] ? PyObject_SetAttr(exc, attrs[i], v) : PyObject_SetAttrString(exc, cattrs[i], v)) < 0) {
            return -1;
        }
    }
    return 0;
}

/* The one place an errno becomes an exception: the OSError subclass err selects (EPERM gives PermissionError,
 * ENOENT FileNotFoundError), "<context>: <what>: <reason><hint>", the context's names as attributes. err may be
 * negative, as libbpf returns it. Always returns NULL. */
static PyObject *raise_os_error(cbpf_state *st, const error_context *ctx, int err, const char *what)
{
    PyObject *where = NULL, *msg = NULL, *exc = NULL;
    char reason[160];
    err = cbpf_strerror(err, reason, sizeof(reason));
    where = ctx->named ? NULL : context_text(ctx);
    if (where == NULL && PyErr_Occurred()) {
        goto done;
    }
    msg = where ? PyUnicode_FromFormat("%U: %s: %s%s", where, what, reason, hint_for(err))
                : PyUnicode_FromFormat("%s: %s%s", what, reason, hint_for(err));
    exc = msg ? PyObject_CallFunction(PyExc_OSError, "iO", err, msg) : NULL;
    if (exc != NULL && set_context(st, exc, ctx) == 0) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    }
done:
    Py_XDECREF(where);
    Py_XDECREF(msg);
    Py_XDECREF(exc);
    return NULL;
}

#define FORMAT_WHAT(what, fmt)                                                                                         \
    char what[768];                                                                                                   \
    do {                                                                                                               \
        va_list ap;                                                                                                    \
        va_start(ap, fmt);                                                                                             \
        vsnprintf(what, sizeof(what), fmt, ap);                                                                        \
        va_end(ap);                                                                                                    \
    } while (0)

/* An error about nothing in particular (a file, a system setting): .object, .program and .map are None. */
PyObject *cbpf_set_error(cbpf_state *st, int err, const char *fmt, ...)
{
    FORMAT_WHAT(what, fmt);
    error_context ctx = {0};
    return raise_os_error(st, &ctx, err, what);
}

/* An error about a map (and the object it belongs to, if any). */
PyObject *cbpf_map_error(MapObject *map, int err, const char *fmt, ...)
{
    FORMAT_WHAT(what, fmt);
    error_context ctx = {.object = object_name(map->owner), .map = map->name};
    return raise_os_error(cbpf_state_from_type(Py_TYPE(map)), &ctx, err, what);
}

/* An error about a map being made, before it has a Map (Map.create): about the map named name (NULL: no name). */
PyObject *cbpf_new_map_error(cbpf_state *st, const char *name, int err, const char *fmt, ...)
{
    FORMAT_WHAT(what, fmt);
    error_context ctx = {0};
    if (name != NULL && (ctx.map = PyUnicode_DecodeUTF8(name, (Py_ssize_t)strlen(name), "replace")) == NULL) {
        return NULL;
    }
    raise_os_error(st, &ctx, err, what);
    Py_XDECREF(ctx.map);
    return NULL;
}

/* An error about a program (and its object). */
PyObject *cbpf_program_error(ProgramObject *program, int err, const char *fmt, ...)
{
    FORMAT_WHAT(what, fmt);
    error_context ctx = {.object = object_name(program->owner), .program = program->name};
    return raise_os_error(cbpf_state_from_type(Py_TYPE(program)), &ctx, err, what);
}

/* An error about an object as a whole, whose message names it as every one of those does ("loading BPF object
 * 'demo' (from /path/demo.bpf.o): ..."): the context is carried, not repeated. */
PyObject *cbpf_object_error(ObjectObject *object, int err, const char *fmt, ...)
{
    FORMAT_WHAT(what, fmt);
    error_context ctx = {.object = object->name, .named = true};
    return raise_os_error(cbpf_state_from_type(Py_TYPE(object)), &ctx, err, what);
}

/* A system call on a file failed: the OSError subclass err selects, with .filename, as open() would raise it; the
 * context's attributes None. st may be NULL. Always returns NULL. */
PyObject *cbpf_set_file_error(cbpf_state *st, int err, PyObject *filename)
{
    error_context ctx = {0};
    PyObject *exc = NULL, *text = NULL;
    char reason[160];
    err = cbpf_strerror(err, reason, sizeof(reason));
    text = PyUnicode_FromString(reason);
    exc = text ? PyObject_CallFunction(PyExc_OSError, "iOO", err, text, filename ? filename : Py_None) : NULL;
    if (exc != NULL && set_context(st, exc, &ctx) == 0) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    }
    Py_XDECREF(text);
    Py_XDECREF(exc);
    return NULL;
}

/* The verifier's own words sit between libbpf's BEGIN/END markers; without them, every warning is kept. */
static PyObject *extract_verifier_log(const char *log)
{
    static const char begin[] = "-- BEGIN PROG LOAD LOG --\n";
    static const char end[] = "-- END PROG LOAD LOG --";
    if (log == NULL) {
        return PyUnicode_FromString("");
    }
    const char *b = strstr(log, begin);
    if (b != NULL) {
        b += sizeof(begin) - 1;
        const char *e = strstr(b, end);
        return PyUnicode_DecodeUTF8(b, e ? (Py_ssize_t)(e - b) : (Py_ssize_t)strlen(b), "replace");
    }
    return PyUnicode_DecodeUTF8(log, (Py_ssize_t)strlen(log), "replace");
}

/* LoadError(errno, message) with .log (the verifier log: text), .program (a str or None) and .object. The message
 * says what happened, the errno's text in parentheses (it is rarely the reason: EACCES is the verifier's "no"),
 * then the log's last lines. Always returns NULL. */
static PyObject *raise_load_error(cbpf_state *st, const error_context *ctx, int err, const char *what, PyObject *text)
{
    PyObject *lines = NULL, *last = NULL, *sep = NULL, *tail = NULL, *msg = NULL, *exc = NULL;
    char reason[160];
    if (text == NULL || (lines = PyUnicode_Splitlines(text, 0)) == NULL) {
        goto done;
    }
    Py_ssize_t n = PyList_GET_SIZE(lines);
    if ((last = PyList_GetSlice(lines, n > 8 ? n - 8 : 0, n)) == NULL ||
        (sep = PyUnicode_FromString("\n  ")) == NULL || (tail = PyUnicode_Join(sep, last)) == NULL) {
        goto done;
    }
    err = cbpf_strerror(err, reason, sizeof(reason));
    msg = n ? PyUnicode_FromFormat("%s (%s); last lines of the log:\n  %U", what, reason, tail)
            : PyUnicode_FromFormat("%s (%s)", what, reason);
    if (msg == NULL || (exc = PyObject_CallFunction(st->LoadError, "iO", err, msg)) == NULL) {
        goto done;
    }
    if (PyObject_SetAttr(exc, st->str_log, text) == 0 && set_context(st, exc, ctx) == 0) {
        PyErr_SetObject(st->LoadError, exc);
    }
done:
    Py_XDECREF(lines);
    Py_XDECREF(last);
    Py_XDECREF(sep);
    Py_XDECREF(tail);
    Py_XDECREF(msg);
    Py_XDECREF(exc);
    return NULL;
}

/* A failed load of object (what says so and names it): LoadError whose .log holds the verifier log. A load refused
 * for lack of privilege stays a PermissionError. Always returns NULL. */
PyObject *cbpf_set_load_error(ObjectObject *object, int err, const char *what, const char *log)
{
    cbpf_state *st = cbpf_state_from_type(Py_TYPE(object));
    error_context ctx = {.object = object->name, .named = true};
    if (err < 0) {
        err = -err;
    }
    if (err == EPERM && (log == NULL || strstr(log, "PROG LOAD LOG") == NULL)) {
        return raise_os_error(st, &ctx, err, what);
    }
    PyObject *text = extract_verifier_log(log);
    if (text != NULL) {
        raise_load_error(st, &ctx, err, what, text);
        Py_DECREF(text);
    }
    return NULL;
}

static bool is_trampoline(uint32_t prog_type)
{
    return prog_type == BPF_PROG_TYPE_TRACING || prog_type == BPF_PROG_TYPE_LSM || prog_type == BPF_PROG_TYPE_EXT;
}

/* Copies what follows marker in log up to the next quote into out: libbpf's "...of 'name'" messages. */
static bool quoted_after(const char *log, const char *marker, char *out, size_t size)
{
    const char *p = log != NULL ? strstr(log, marker) : NULL;
    if (p == NULL) {
        return false;
    }
    p += strlen(marker);
    const char *end = strchr(p, '\'');
    if (end == NULL) {
        return false;
    }
    snprintf(out, size, "%.*s", (int)(end - p), p);
    return true;
}

/* The load of program (of type prog_type) of object failed (object_what says what was loaded and names it): say
 * which program and why, in the words that fit the cause:
 *   - its attach target is not in the kernel's BTF: FileNotFoundError naming the function;
 *   - a trampoline program (fentry/fexit/LSM/freplace) refused with EPERM although we are root: LoadError saying the
 *     kernel refuses those, with what the probes point to;
 *   - the verifier refused it: LoadError saying so, with .program and .log.
 * Every one carries .object and .program. Always returns NULL. */
PyObject *cbpf_set_program_load_error(ObjectObject *object, int err, const char *object_what, const char *program,
                                      uint32_t prog_type, const char *log)
{
    cbpf_state *st = cbpf_state_from_type(Py_TYPE(object));
    char target[256], why[512], what[1024];
    PyObject *text = NULL;
    error_context ctx = {.object = object->name, .program = cbpf_elf_name(program), .named = true};
    if (ctx.program == NULL) {
        return NULL;
    }
    if (err < 0) {
        err = -err;
    }
    bool verified = log != NULL && strstr(log, "PROG LOAD LOG") != NULL;
    if (quoted_after(log, "failed to find kernel BTF type ID of '", target, sizeof(target))) {
        snprintf(what, sizeof(what), "%s: program '%s' attaches to '%s', which is not a function (or type) in the "
                 "running kernel's BTF: there is no such kernel function, or it cannot be traced", object_what,
                 program, target);
        raise_os_error(st, &ctx, ENOENT, what);
    }
    else if (quoted_after(log, "failed to find BPF program (FD ", target, sizeof(target))) {
        snprintf(what, sizeof(what), "%s: program '%s': its target program has no function named as its "
                 "attach_target", object_what, program);
        raise_os_error(st, &ctx, err ? err : ENOENT, what);
    }
    else if ((err == EPERM || err == EACCES) && !verified && geteuid() != 0) {
        /* refused before any verifying, to a process without privilege: that is the reason */
        snprintf(what, sizeof(what), "%s: program '%s'", object_what, program);
        raise_os_error(st, &ctx, err, what);
    }
    else if ((text = extract_verifier_log(verified ? log : NULL)) != NULL) {
        if ((err == EPERM || err == EACCES) && is_trampoline(prog_type) && geteuid() == 0 &&
            PyUnicode_GET_LENGTH(text) == 0) {
            cbpf_trampoline_diagnosis(why, sizeof(why));
            snprintf(what, sizeof(what), "%s: program '%s' was refused: this kernel refuses trampoline programs "
                     "(fentry/fexit/fmod_ret, LSM, freplace) even to root (%s)", object_what, program, why);
        }
        else {
            snprintf(what, sizeof(what), "%s: the %s refused program '%s'", object_what,
                     verified ? "verifier" : "kernel", program);
        }
        raise_load_error(st, &ctx, err, what, text);
        Py_DECREF(text);
    }
    Py_DECREF(ctx.program);
    return NULL;
}

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
        size_t shown = n;
        while (shown && text[shown - 1] == '\n') {
            shown--;
        }
        PyObject *r = PyObject_CallMethod(logger, "log", "is#", pylevel, text, (Py_ssize_t)shown);
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

/* Raises the OSError subclass that matches err (so EPERM gives PermissionError, ENOENT FileNotFoundError) with
 * a message of its own. err may be given negative, as libbpf returns it. Always returns NULL. */
PyObject *cbpf_set_error(cbpf_state *st, int err, const char *fmt, ...)
{
    (void)st;
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    char reason[160];
    err = cbpf_strerror(err, reason, sizeof(reason));
    PyObject *msg = PyUnicode_FromFormat("%s: %s%s", what, reason, hint_for(err));
    if (msg == NULL) {
        return NULL;
    }
    PyObject *exc = PyObject_CallFunction(PyExc_OSError, "iO", err, msg);
    Py_DECREF(msg);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
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

/* LoadError(errno, message) with .log (the verifier log: text) and .program (a str or None). The message says what
 * happened, the errno's text in parentheses (it is rarely the reason: EACCES is the verifier's "no"), then the
 * log's last lines. Always returns NULL. */
static PyObject *raise_load_error(cbpf_state *st, int err, const char *what, const char *program, PyObject *text)
{
    PyObject *lines = NULL, *tail = NULL, *msg = NULL, *exc = NULL, *prog = NULL;
    if (text == NULL) {
        goto done;
    }
    lines = PyUnicode_Splitlines(text, 0);
    if (lines == NULL) {
        goto done;
    }
    Py_ssize_t n = PyList_GET_SIZE(lines);
    Py_ssize_t from = n > 8 ? n - 8 : 0;
    PyObject *last = PyList_GetSlice(lines, from, n);
    if (last == NULL) {
        goto done;
    }
    PyObject *sep = PyUnicode_FromString("\n  ");
    if (sep == NULL) {
        Py_DECREF(last);
        goto done;
    }
    tail = PyUnicode_Join(sep, last);
    Py_DECREF(sep);
    Py_DECREF(last);
    if (tail == NULL) {
        goto done;
    }
    char reason[160];
    err = cbpf_strerror(err, reason, sizeof(reason));
    if (n) {
        msg = PyUnicode_FromFormat("%s (%s); last lines of the log:\n  %U", what, reason, tail);
    }
    else {
        msg = PyUnicode_FromFormat("%s (%s)", what, reason);
    }
    if (msg == NULL) {
        goto done;
    }
    exc = PyObject_CallFunction(st->LoadError, "iO", err, msg);
    if (exc == NULL) {
        goto done;
    }
    prog = program != NULL ? cbpf_elf_name(program) : Py_NewRef(Py_None);
    if (prog == NULL || PyObject_SetAttr(exc, st->str_log, text) < 0 ||
        PyObject_SetAttrString(exc, "program", prog) < 0) {
        goto done;
    }
    PyErr_SetObject(st->LoadError, exc);
done:
    Py_XDECREF(prog);
    Py_XDECREF(lines);
    Py_XDECREF(tail);
    Py_XDECREF(msg);
    Py_XDECREF(exc);
    return NULL;
}

/* A failed load: LoadError whose .log holds the verifier log. A load refused for lack of privilege stays a
 * PermissionError. Always returns NULL. */
PyObject *cbpf_set_load_error(cbpf_state *st, int err, const char *what, const char *log)
{
    if (err < 0) {
        err = -err;
    }
    if (err == EPERM && (log == NULL || strstr(log, "PROG LOAD LOG") == NULL)) {
        return cbpf_set_error(st, err, "%s", what);
    }
    PyObject *text = extract_verifier_log(log);
    if (text != NULL) {
        raise_load_error(st, err, what, NULL, text);
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

/* The load of program (of type prog_type) failed: say which program and why, in the words that fit the cause:
 *   - its attach target is not in the kernel's BTF: FileNotFoundError naming the function;
 *   - a trampoline program (fentry/fexit/LSM/freplace) refused with EPERM although we are root: LoadError saying the
 *     kernel refuses those, with what the probes point to;
 *   - the verifier refused it: LoadError saying so, with .program and .log.
 * Always returns NULL. */
PyObject *cbpf_set_program_load_error(cbpf_state *st, int err, const char *object_what, const char *program,
                                      uint32_t prog_type, const char *log)
{
    char target[256], why[512], what[1024];
    if (err < 0) {
        err = -err;
    }
    if (quoted_after(log, "failed to find kernel BTF type ID of '", target, sizeof(target))) {
        return cbpf_set_error(st, ENOENT,
                              "%s: program '%s' attaches to '%s', which is not a function (or type) in the running "
                              "kernel's BTF: there is no such kernel function, or it cannot be traced",
                              object_what, program, target);
    }
    if (quoted_after(log, "failed to find BPF program (FD ", target, sizeof(target))) {
        return cbpf_set_error(st, err ? err : ENOENT, "%s: program '%s': its target program has no function named "
                              "as its attach_target", object_what, program);
    }
    bool verified = log != NULL && strstr(log, "PROG LOAD LOG") != NULL;
    if ((err == EPERM || err == EACCES) && !verified && geteuid() != 0) {
        /* refused before any verifying, to a process without privilege: that is the reason */
        return cbpf_set_error(st, err, "%s: program '%s'", object_what, program);
    }
    PyObject *text = extract_verifier_log(verified ? log : NULL);
    if (text == NULL) {
        return NULL;
    }
    if ((err == EPERM || err == EACCES) && is_trampoline(prog_type) && geteuid() == 0 &&
        PyUnicode_GET_LENGTH(text) == 0) {
        cbpf_trampoline_diagnosis(why, sizeof(why));
        snprintf(what, sizeof(what), "%s: program '%s' was refused: this kernel refuses trampoline programs "
                 "(fentry/fexit/fmod_ret, LSM, freplace) even to root (%s)", object_what, program, why);
    }
    else if (verified) {
        snprintf(what, sizeof(what), "%s: the verifier refused program '%s'", object_what, program);
    }
    else {
        snprintf(what, sizeof(what), "%s: the kernel refused program '%s'", object_what, program);
    }
    raise_load_error(st, err, what, program, text);
    Py_DECREF(text);
    return NULL;
}

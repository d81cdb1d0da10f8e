/* cbpf.Program: a program of an Object, and the ways to attach it. Each attach_* call returns a cbpf.Link. */
#include "cbpf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/perf_event.h>

#ifndef SO_ATTACH_BPF
#define SO_ATTACH_BPF 50
#endif
/* linux/if_link.h, which clashes with net/if.h */
#define CBPF_XDP_FLAGS_SKB_MODE (1U << 1)
#define CBPF_XDP_FLAGS_DRV_MODE (1U << 2)
#define CBPF_XDP_FLAGS_HW_MODE (1U << 3)

/* An int argument (PyLong_AsInt is 3.13+). */
static int int_arg(PyObject *o, const char *what, int *out)
{
    long v = PyLong_AsLong(o);
    if (v == -1 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", what, Py_TYPE(o)->tp_name);
        }
        return -1;
    }
    if (v < INT_MIN || v > INT_MAX) {
        PyErr_Format(PyExc_OverflowError, "%s out of range: %ld", what, v);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

ProgramObject *cbpf_program_new(cbpf_state *st, ObjectObject *owner, struct bpf_program *prog)
{
    ProgramObject *self = (ProgramObject *)st->Program_type->tp_alloc(st->Program_type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->owner = (ObjectObject *)Py_NewRef(owner);
    self->prog = prog;
    self->legacy_index = -1;
    self->type = (uint32_t)bpf_program__type(prog);
    self->name = cbpf_elf_name(bpf_program__name(prog));
    self->section = cbpf_elf_name(bpf_program__section_name(prog));
    if (self->name == NULL || self->section == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return self;
}

/* A program of a legacy object (before load: from its spec). Its flags live here, not in libbpf. */
ProgramObject *cbpf_program_from_legacy(cbpf_state *st, ObjectObject *owner, Py_ssize_t index)
{
    const struct cbpf_legacy_prog_spec *spec = &owner->legacy_spec->progs[index];
    ProgramObject *self = (ProgramObject *)st->Program_type->tp_alloc(st->Program_type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->owner = (ObjectObject *)Py_NewRef(owner);
    self->legacy_index = index;
    self->type = spec->prog_type;
    self->legacy_expected_attach_type = spec->expected_attach_type;
    self->legacy_autoload = true;
    self->legacy_autoattach = true;
    self->name = cbpf_elf_name(spec->name);
    self->section = cbpf_elf_name(spec->section);
    if (self->name == NULL || self->section == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return self;
}

static bool is_legacy(ProgramObject *self)
{
    return self->legacy_index >= 0;
}

/* A program in the kernel, from an fd it takes over (closed on failure): Program.from_pinned(), and the program of
 * Link.from_pinned(). It belongs to an Object of its own, named after path. */
ProgramObject *cbpf_program_from_fd(cbpf_state *st, int fd, PyObject *path)
{
    struct bpf_prog_info info;
    __u32 len = sizeof(info);
    memset(&info, 0, sizeof(info));
    if (bpf_prog_get_info_by_fd(fd, &info, &len) != 0) {
        int err = errno;
        close(fd);
        cbpf_set_error(st, err, "reading the info of the program pinned at %s", cbpf_utf8(path));
        return NULL;
    }
    ObjectObject *owner = cbpf_object_for_pinned(st, path);
    ProgramObject *self = owner ? (ProgramObject *)st->Program_type->tp_alloc(st->Program_type, 0) : NULL;
    if (self == NULL) {
        close(fd);
        Py_XDECREF(owner);
        return NULL;
    }
    self->owner = owner; /* takes the reference */
    self->legacy_index = -1;
    self->pinned = true;
    self->pinned_fd = fd;
    self->type = info.type;
    self->name = cbpf_elf_name(info.name);
    self->section = PyUnicode_FromString("");
    if (self->name == NULL || self->section == NULL ||
        PyDict_SetItem(owner->programs, self->name, (PyObject *)self) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return self;
}

/* Its Object is closing: the libbpf program goes with it; a pinned program's fd is closed. */
void cbpf_program_invalidate(ProgramObject *self)
{
    self->prog = NULL;
    if (self->pinned && self->pinned_fd >= 0) {
        close(self->pinned_fd);
        self->pinned_fd = -1;
    }
}

/* Attach calls that read the program's ELF section or hand libbpf's bpf_program over, which a program opened from
 * a pin does not have. */
static int refuse_pinned(ProgramObject *self, const char *method)
{
    if (self->pinned) {
        PyErr_Format(PyExc_TypeError,
                     "program '%U' was opened from a pin: %s() needs its ELF object (attach_xdp, attach_tc, "
                     "attach_socket and attach_cgroup(path, attach_type) take a pinned program)",
                     self->name, method);
        return -1;
    }
    return 0;
}

/* The loaded legacy program, or NULL (object not loaded yet, or closed). */
static struct cbpf_legacy_prog *legacy_prog(ProgramObject *self)
{
    struct cbpf_legacy_obj *obj = self->owner->legacy;
    bool loaded = is_legacy(self) && obj != NULL && (size_t)self->legacy_index < obj->nprogs;
    return loaded ? &obj->progs[self->legacy_index] : NULL;
}

static int program_fd(ProgramObject *self)
{
    if (self->pinned) {
        return self->pinned_fd;
    }
    if (is_legacy(self)) {
        struct cbpf_legacy_prog *p = legacy_prog(self);
        return p != NULL ? p->fd : -1;
    }
    int fd = self->prog != NULL ? bpf_program__fd(self->prog) : -1;
    return fd < 0 ? -1 : fd; /* libbpf says -ENOENT for a program not loaded */
}

static enum bpf_attach_type expected_attach_type(ProgramObject *self)
{
    return is_legacy(self) ? (enum bpf_attach_type)self->legacy_expected_attach_type
                           : bpf_program__expected_attach_type(self->prog);
}

bool cbpf_program_autoload(ProgramObject *self)
{
    return self->pinned ? false : is_legacy(self) ? self->legacy_autoload : bpf_program__autoload(self->prog);
}

bool cbpf_program_autoattach(ProgramObject *self)
{
    return self->pinned ? false : is_legacy(self) ? self->legacy_autoattach : bpf_program__autoattach(self->prog);
}

static bool is_closed(ProgramObject *self)
{
    return self->pinned ? self->pinned_fd < 0 : is_legacy(self) ? self->owner->closed : self->prog == NULL;
}

static int check_open(ProgramObject *self)
{
    if (is_closed(self)) {
        PyErr_Format(PyExc_ValueError, "program '%U' is closed: its Object was closed", self->name);
        return -1;
    }
    return 0;
}

static int check_attachable(ProgramObject *self)
{
    if (check_open(self) < 0 || cbpf_object_check_idle(self->owner, "attaching its programs") < 0) {
        return -1;
    }
    if (!self->owner->loaded) {
        PyErr_Format(PyExc_ValueError, "program '%U' is not loaded: call Object.load() first", self->name);
        return -1;
    }
    if (program_fd(self) < 0) {
        PyErr_Format(PyExc_ValueError, "program '%U' was not loaded (its autoload was False)", self->name);
        return -1;
    }
    return 0;
}

static const char *type_name(uint32_t type)
{
    const char *name = libbpf_bpf_prog_type_str((enum bpf_prog_type)type);
    return name != NULL ? name : "unknown";
}

static int require_type(ProgramObject *self, enum bpf_prog_type type, const char *method)
{
    if (self->type != (uint32_t)type) {
        PyErr_Format(PyExc_TypeError, "program '%U' is a %s program: %s() attaches %s programs", self->name,
                     type_name(self->type), method, type_name(type));
        return -1;
    }
    return 0;
}

/* tracepoints need tracefs (and kprobes and uprobes too, on kernels without their perf PMUs); mount it when it
 * is missing (root can), or say what is missing. */
static int ensure_tracefs(cbpf_state *st)
{
    if (access("/sys/kernel/tracing/events", F_OK) == 0 || access("/sys/kernel/debug/tracing/events", F_OK) == 0) {
        return 0;
    }
    if (mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, NULL) != 0) {
        cbpf_set_error(st, errno, "tracefs is not mounted at /sys/kernel/tracing and mounting it failed "
                                  "(mount -t tracefs tracefs /sys/kernel/tracing)");
        return -1;
    }
    return 0;
}

static bool has_pmu(const char *name)
{
    char path[96];
    snprintf(path, sizeof(path), "/sys/bus/event_source/devices/%s", name);
    return access(path, F_OK) == 0;
}

static int ensure_probe_support(cbpf_state *st, const char *pmu)
{
    return has_pmu(pmu) ? 0 : ensure_tracefs(st);
}

/* Checked before libbpf tries, so that the error names the missing kernel feature. */
static int check_kprobes(cbpf_state *st, ProgramObject *self, const char *target)
{
    if (has_pmu("kprobe") || access("/sys/kernel/tracing/kprobe_events", F_OK) == 0 ||
        access("/sys/kernel/debug/tracing/kprobe_events", F_OK) == 0) {
        return ensure_probe_support(st, "kprobe");
    }
    cbpf_program_error(self, EOPNOTSUPP,
                       "cannot attach to %s: this kernel has no kprobes (built without CONFIG_KPROBES)", target);
    return -1;
}

static int section_prerequisites(cbpf_state *st, ProgramObject *self, const char *sec)
{
    if (has_prefix(sec, "kprobe/") || has_prefix(sec, "kretprobe/") || has_prefix(sec, "ksyscall/") ||
        has_prefix(sec, "kretsyscall/")) {
        return check_kprobes(st, self, sec);
    }
    if (has_prefix(sec, "tracepoint/") || has_prefix(sec, "tp/")) {
        return ensure_tracefs(st);
    }
    if (has_prefix(sec, "uprobe") || has_prefix(sec, "uretprobe") || has_prefix(sec, "usdt")) {
        return ensure_probe_support(st, "uprobe");
    }
    return 0;
}

/* The error of a failed attach; missing says what ENOENT means for this kind of target. Returns NULL. */
static PyObject *attach_error(cbpf_state *st, ProgramObject *self, int err, PyObject *target, const char *missing)
{
    if (err == ENOENT && missing != NULL) {
        return cbpf_program_error(self, err, "cannot attach to %s: %s", cbpf_utf8(target), missing);
    }
    return cbpf_program_error(self, err, "cannot attach to %s", cbpf_utf8(target));
}

/* libbpf's messages go to logging; the errno of the call that failed survives that. */
static int log_done(cbpf_state *st, int err)
{
    free(cbpf_log_end(st));
    return err;
}

/* A Link for what a libbpf attach call returned (steals target, which may be NULL: out of memory), or the error. */
static PyObject *libbpf_result(cbpf_state *st, ProgramObject *self, struct bpf_link *link, int err, PyObject *target,
                               const char *missing)
{
    if (target == NULL) {
        bpf_link__destroy(link);
        return NULL;
    }
    if (link == NULL) {
        attach_error(st, self, err, target, missing);
        Py_DECREF(target);
        return NULL;
    }
    cbpf_attachment att = {.kind = CBPF_ATTACHMENT_LIBBPF, .fd = -1, .tc_netns_fd = -1, .nlinks = 1};
    att.links = PyMem_RawMalloc(sizeof(*att.links));
    if (att.links == NULL) {
        bpf_link__destroy(link);
        Py_DECREF(target);
        return PyErr_NoMemory();
    }
    att.links[0] = link;
    return cbpf_link_new(st, self, &att, target);
}

/* A Link for a BPF link fd of our own (steals target, which may be NULL: out of memory), or the error. */
static PyObject *fd_result(cbpf_state *st, ProgramObject *self, int fd, int err, PyObject *target)
{
    if (target == NULL) {
        if (fd >= 0) {
            close(fd);
        }
        return NULL;
    }
    if (fd < 0) {
        attach_error(st, self, err, target, NULL);
        Py_DECREF(target);
        return NULL;
    }
    cbpf_attachment att = {.kind = CBPF_ATTACHMENT_FD, .fd = fd, .tc_netns_fd = -1};
    return cbpf_link_new(st, self, &att, target);
}

/* A legacy object's program attached through legacy.c (steals target, which may be NULL: out of memory). */
static PyObject *legacy_attach(cbpf_state *st, ProgramObject *self, enum cbpf_legacy_attach_kind kind,
                               const char *where, uint64_t offset, PyObject *target)
{
    char err[512];
    int link_fd, perf_fd;
    if (target == NULL) {
        return NULL;
    }
    int rc = cbpf_legacy_attach_fd(program_fd(self), kind, where, offset, &link_fd, &perf_fd, err, sizeof(err));
    if (rc < 0) {
        cbpf_program_error(self, rc, "cannot attach: %s", err);
        Py_DECREF(target);
        return NULL;
    }
    cbpf_attachment att = {.kind = CBPF_ATTACHMENT_PERF, .fd = link_fd, .perf_fd = perf_fd, .tc_netns_fd = -1};
    if (perf_fd < 0) { /* a raw tracepoint's BPF link, or a perf event without one (kernels before 5.15) */
        att.kind = CBPF_ATTACHMENT_FD;
    }
    return cbpf_link_new(st, self, &att, target);
}

/* Attach calls that need libbpf's bpf_program, which a legacy object's programs do not have. */
static int require_libbpf(ProgramObject *self, const char *method)
{
    if (refuse_pinned(self, method) < 0) {
        return -1;
    }
    if (is_legacy(self)) {
        PyErr_Format(PyExc_TypeError,
                     "program '%U' belongs to a legacy object (struct bpf_map_def maps): %s() is not available for "
                     "it (kprobes, tracepoints, raw tracepoints, xdp, tc, sockets and cgroups are)",
                     self->name, method);
        return -1;
    }
    return 0;
}

static const char *attach_hint(ProgramObject *self)
{
    const char *sec = cbpf_utf8(self->section);
    if (is_legacy(self) &&
        (has_prefix(sec, "uprobe") || has_prefix(sec, "uretprobe") || self->type == BPF_PROG_TYPE_PERF_EVENT)) {
        return "its fd with perf_event_open(2) and PERF_EVENT_IOC_SET_BPF yourself (attach_uprobe and "
               "attach_perf_event need libbpf's programs, which a legacy object does not have)";
    }
    if (has_prefix(sec, "uprobe") || has_prefix(sec, "uretprobe")) {
        return "attach_uprobe(binary, symbol)";
    }
    if (has_prefix(sec, "usdt")) {
        return "attach_usdt(binary, provider, name)";
    }
    switch (self->type) {
    case BPF_PROG_TYPE_XDP: return "attach_xdp(interface)";
    case BPF_PROG_TYPE_SCHED_CLS: return "attach_tc(interface)";
    case BPF_PROG_TYPE_SOCKET_FILTER: return "attach_socket(sock)";
    case BPF_PROG_TYPE_CGROUP_SKB:
    case BPF_PROG_TYPE_CGROUP_SOCK:
    case BPF_PROG_TYPE_CGROUP_SOCK_ADDR:
    case BPF_PROG_TYPE_CGROUP_SOCKOPT:
    case BPF_PROG_TYPE_CGROUP_SYSCTL:
    case BPF_PROG_TYPE_CGROUP_DEVICE: return "attach_cgroup(path)";
    case BPF_PROG_TYPE_KPROBE: return "attach_kprobe(func)";
    case BPF_PROG_TYPE_TRACEPOINT: return "attach_tracepoint(category, name)";
    case BPF_PROG_TYPE_RAW_TRACEPOINT: return "attach_raw_tracepoint(name)";
    case BPF_PROG_TYPE_PERF_EVENT: return "attach_perf_event(type, config, ...)";
    default: return "one of the attach_* methods";
    }
}

/* What a Link attached by section says it is attached to: the section ("fentry/do_unlinkat"), or, for a program
 * retargeted before load, the section's kind and the target ("fentry/security_file_open"; "freplace/f of program
 * 'p'"). */
static PyObject *section_target(ProgramObject *self, const char *sec)
{
    PyObject *t = self->attach_target;
    if (t == NULL) {
        return cbpf_elf_name(sec);
    }
    char kind[64]; /* "fentry", "freplace": PyUnicode_FromFormat has no %.*s */
    snprintf(kind, sizeof(kind), "%.*s", (int)strcspn(sec, "/"), sec);
    if (PyUnicode_Check(t)) {
        return PyUnicode_FromFormat("%s/%U", kind, t);
    }
    PyObject *prog = PyTuple_Check(t) ? PyTuple_GET_ITEM(t, 0) : t;
    PyObject *func = PyTuple_Check(t) ? PyTuple_GET_ITEM(t, 1) : ((ProgramObject *)prog)->name;
    return PyUnicode_FromFormat("%s/%U of program '%U'", kind, func, ((ProgramObject *)prog)->name);
}

/* Attaches by section name. With skip_untargeted, a section that names no target (xdp, tc...) gives None. */
PyObject *cbpf_program_attach_section(cbpf_state *st, ProgramObject *self, bool skip_untargeted)
{
    if (check_attachable(self) < 0 || refuse_pinned(self, "attach") < 0) {
        return NULL;
    }
    const char *sec = cbpf_utf8(self->section);
    if (is_legacy(self)) {
        struct cbpf_legacy_prog *p = legacy_prog(self);
        if (p->attach_kind == CBPF_LEGACY_ATTACH_NONE) {
            if (skip_untargeted) {
                Py_RETURN_NONE;
            }
            return PyErr_Format(PyExc_ValueError, "program '%U' (section '%s') does not say where to attach: use %s",
                                self->name, sec, attach_hint(self));
        }
        if (section_prerequisites(st, self, sec) < 0) {
            return NULL;
        }
        return legacy_attach(st, self, p->attach_kind, p->attach_target, 0, cbpf_elf_name(sec));
    }
    if (section_prerequisites(st, self, sec) < 0) {
        return NULL;
    }
    cbpf_log_begin();
    struct bpf_link *link = bpf_program__attach(self->prog);
    int err = log_done(st, link == NULL ? errno : 0);
    if (link == NULL && err == EOPNOTSUPP) {
        if (skip_untargeted) {
            Py_RETURN_NONE;
        }
        return PyErr_Format(PyExc_ValueError, "program '%U' (section '%s') does not say where to attach: use %s",
                            self->name, sec, attach_hint(self));
    }
    return libbpf_result(st, self, link, err, section_target(self, sec), "no such attach point");
}

static PyObject *Program_attach(ProgramObject *self, PyObject *Py_UNUSED(ignored))
{
    return cbpf_program_attach_section(cbpf_state_from_type(Py_TYPE(self)), self, false);
}

/* /proc/kallsyms lists every kernel function; read only to explain a failure. */
static bool kernel_has_symbol(const char *name)
{
    FILE *f = fopen("/proc/kallsyms", "r");
    if (f == NULL) {
        return true; /* cannot tell: let the kernel's errno speak */
    }
    char line[512];
    bool found = false;
    size_t n = strlen(name);
    while (!found && fgets(line, sizeof(line), f)) {
        /* "ffffffff81000000 T name\t[module]" */
        char *sym = strchr(line, ' ');
        sym = sym ? strchr(sym + 1, ' ') : NULL;
        if (sym != NULL && strncmp(sym + 1, name, n) == 0 && strchr("\n\t", sym[1 + n]) != NULL) {
            found = true;
        }
    }
    fclose(f);
    return found;
}

static PyObject *Program_attach_kprobe(ProgramObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"func", "retprobe", "offset", NULL};
    const char *func;
    int retprobe = 0;
    uint64_t offset = 0;
    cbpf_state *st = cbpf_state_from_type(Py_TYPE(self));
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "s|pO&:attach_kprobe", kwlist, &func, &retprobe,
                                     cbpf_u64_converter, &offset) ||
        check_attachable(self) < 0 || refuse_pinned(self, "attach_kprobe") < 0) {
        return NULL;
    }
    char where[64] = "";
    if (offset) {
        snprintf(where, sizeof(where), "+0x%llx", (unsigned long long)offset);
    }
    PyObject *target = PyUnicode_FromFormat("%s %s%s", retprobe ? "kretprobe" : "kprobe", func, where);
    if (target == NULL) {
        return NULL;
    }
    if (check_kprobes(st, self, cbpf_utf8(target)) < 0) {
        Py_DECREF(target);
        return NULL;
    }
    if (is_legacy(self)) {
        return legacy_attach(st, self, retprobe ? CBPF_LEGACY_ATTACH_KRETPROBE : CBPF_LEGACY_ATTACH_KPROBE, func,
                             offset, target);
    }
    LIBBPF_OPTS(bpf_kprobe_opts, opts, .offset = offset, .retprobe = retprobe);
    cbpf_log_begin();
    struct bpf_link *link = bpf_program__attach_kprobe_opts(self->prog, func, &opts);
    int err = log_done(st, link == NULL ? errno : 0);
    if (link == NULL && (err == ENOENT || err == EINVAL) && !kernel_has_symbol(func)) {
        err = ENOENT;
    }
    return libbpf_result(st, self, link, err, target, "no such kernel function (see /proc/kallsyms)");
}

static PyObject *Program_attach_tracepoint(ProgramObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"category", "name", NULL};
    const char *category, *name;
    cbpf_state *st = cbpf_state_from_type(Py_TYPE(self));
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "ss:attach_tracepoint", kwlist, &category, &name) ||
        check_attachable(self) < 0 || refuse_pinned(self, "attach_tracepoint") < 0 || ensure_tracefs(st) < 0) {
        return NULL;
    }
    if (is_legacy(self)) {
        PyObject *where = PyUnicode_FromFormat("%s/%s", category, name);
        PyObject *link = where ? legacy_attach(st, self, CBPF_LEGACY_ATTACH_TRACEPOINT, cbpf_utf8(where), 0,
                                               PyUnicode_FromFormat("tracepoint %s/%s", category, name))
                               : NULL;
        Py_XDECREF(where);
        return link;
    }
    cbpf_log_begin();
    struct bpf_link *link = bpf_program__attach_tracepoint(self->prog, category, name);
    int err = log_done(st, link == NULL ? errno : 0);
    return libbpf_result(st, self, link, err, PyUnicode_FromFormat("tracepoint %s/%s", category, name),
                         "no such tracepoint (see /sys/kernel/tracing/events)");
}

static PyObject *Program_attach_raw_tracepoint(ProgramObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"name", NULL};
    const char *name;
    cbpf_state *st = cbpf_state_from_type(Py_TYPE(self));
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "s:attach_raw_tracepoint", kwlist, &name) ||
        check_attachable(self) < 0 || refuse_pinned(self, "attach_raw_tracepoint") < 0) {
        return NULL;
    }
    if (is_legacy(self)) {
        return legacy_attach(st, self, CBPF_LEGACY_ATTACH_RAW_TP, name, 0,
                             PyUnicode_FromFormat("raw_tracepoint %s", name));
    }
    cbpf_log_begin();
    struct bpf_link *link = bpf_program__attach_raw_tracepoint(self->prog, name);
    int err = log_done(st, link == NULL ? errno : 0);
    return libbpf_result(st, self, link, err, PyUnicode_FromFormat("raw_tracepoint %s", name),
                         "no such raw tracepoint");
}

/* ---- binaries and libraries by name ---- */

static bool is_elf(const char *path)
{
    unsigned char magic[4];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    bool elf = read(fd, magic, 4) == 4 && memcmp(magic, "\177ELF", 4) == 0;
    close(fd);
    return elf;
}

/* The path of a binary given as a path or a name: the Python layer's cbpf._binaries.find() looks names up as the
 * dynamic loader and the shell would (LD_LIBRARY_PATH, the loader's cache, PATH). None when there is none. */
static PyObject *find_binary(cbpf_state *st, PyObject *name)
{
    if (st->find_binary == NULL) {
        PyObject *module = PyImport_ImportModule("cbpf._binaries");
        st->find_binary = module ? PyObject_GetAttrString(module, "find") : NULL;
        Py_XDECREF(module);
        if (st->find_binary == NULL) {
            return NULL;
        }
    }
    return PyObject_CallOneArg(st->find_binary, name);
}

static int binary_path(cbpf_state *st, ProgramObject *self, PyObject *binary, char *out, size_t size)
{
    PyObject *name = NULL, *found = NULL, *encoded = NULL;
    int rc = -1;
    struct stat sb;
    if (!PyUnicode_FSDecoder(binary, &name) || (found = find_binary(st, name)) == NULL) {
        goto done;
    }
    if (found == Py_None) {
        cbpf_program_error(self, ENOENT, "cannot attach: no binary or library '%s' (looked in PATH, "
                           "LD_LIBRARY_PATH and the dynamic loader's cache)", cbpf_utf8(name));
        goto done;
    }
    if (!PyUnicode_FSConverter(found, &encoded)) {
        goto done;
    }
    snprintf(out, size, "%s", PyBytes_AS_STRING(encoded));
    if (stat(out, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        cbpf_program_error(self, EISDIR, "cannot attach to %s: a directory, not an ELF file (an executable or a "
                           "shared library)", out);
    }
    else if (!is_elf(out)) {
        cbpf_program_error(self, ENOEXEC, "cannot attach to %s: not an ELF file (an executable or a shared "
                           "library)", out);
    }
    else {
        rc = 0;
    }
done:
    Py_XDECREF(name);
    Py_XDECREF(found);
    Py_XDECREF(encoded);
    return rc;
}

static PyObject *Program_attach_uprobe(ProgramObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"binary", "symbol", "offset", "pid", "retprobe", NULL};
    PyObject *binary;
    const char *symbol = NULL;
    uint64_t offset = 0;
    int pid = -1, retprobe = 0;
    char path[PATH_MAX], missing[PATH_MAX + 300];
    cbpf_state *st = cbpf_state_from_type(Py_TYPE(self));
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|zO&ip:attach_uprobe", kwlist, &binary, &symbol,
                                     cbpf_u64_converter, &offset, &pid, &retprobe) ||
        check_attachable(self) < 0 || require_libbpf(self, "attach_uprobe") < 0) {
        return NULL;
    }
    if (symbol == NULL && offset == 0) {
        return PyErr_Format(PyExc_ValueError, "attach_uprobe() needs a symbol or a file offset");
    }
    if (binary_path(st, self, binary, path, sizeof(path)) < 0 || ensure_probe_support(st, "uprobe") < 0) {
        return NULL;
    }
    snprintf(missing, sizeof(missing), "no symbol '%s' in %s", symbol ? symbol : "", path);
    LIBBPF_OPTS(bpf_uprobe_opts, opts, .func_name = symbol, .retprobe = retprobe);
    cbpf_log_begin();
    struct bpf_link *link = bpf_program__attach_uprobe_opts(self->prog, pid, path, offset, &opts);
    int err = log_done(st, link == NULL ? errno : 0);
    char where[64] = "";
    if (offset || symbol == NULL) {
        snprintf(where, sizeof(where), "%s0x%llx", symbol ? "+" : "", (unsigned long long)offset);
    }
    PyObject *target = PyUnicode_FromFormat("%s %s:%s%s", retprobe ? "uretprobe" : "uprobe", path, symbol ? symbol : "",
                                            where);
    return libbpf_result(st, self, link, err, target, symbol ? missing : NULL);
}

static PyObject *Program_attach_usdt(ProgramObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"binary", "provider", "name", "pid", NULL};
    PyObject *binary;
    const char *provider, *name;
    int pid = -1;
    char path[PATH_MAX], missing[PATH_MAX + 300];
    cbpf_state *st = cbpf_state_from_type(Py_TYPE(self));
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "Oss|i:attach_usdt", kwlist, &binary, &provider, &name, &pid) ||
        check_attachable(self) < 0 || require_libbpf(self, "attach_usdt") < 0 ||
        binary_path(st, self, binary, path, sizeof(path)) < 0 || ensure_probe_support(st, "uprobe") < 0) {
        return NULL;
    }
    snprintf(missing, sizeof(missing), "no USDT probe %s:%s in %s", provider, name, path);
    cbpf_log_begin();
    struct bpf_link *link = bpf_program__attach_usdt(self->prog, pid, path, provider, name, NULL);
    int err = log_done(st, link == NULL ? errno : 0);
    return libbpf_result(st, self, link, err, PyUnicode_FromFormat("usdt %s:%s:%s", path, provider, name), missing);
}

/* ---- perf events ---- */

/* The online CPUs ("0-3,5" in sysfs) into cpus; returns how many, or -1 with errno. */
static int online_cpus(int *cpus, int max)
{
    char buf[4096];
    int fd = open("/sys/devices/system/cpu/online", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    ssize_t len = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (len <= 0) {
        errno = EIO;
        return -1;
    }
    buf[len] = '\0';
    int n = 0;
    for (char *s = buf; *s && *s != '\n';) {
        char *end;
        long first = strtol(s, &end, 10), last = first;
        if (*end == '-') {
            last = strtol(end + 1, &end, 10);
        }
        for (long c = first; c <= last && n < max; c++) {
            cpus[n++] = (int)c;
        }
        s = *end == ',' ? end + 1 : end;
        if (end == s && *s != '\0' && *s != '\n') {
            break;
        }
    }
    return n;
}

static int optional_u64(PyObject *o, const char *what, unsigned long long *v)
{
    if (o == Py_None) {
        return 0;
    }
    *v = PyLong_AsUnsignedLongLong(o);
    if (*v == (unsigned long long)-1 && PyErr_Occurred()) {
        return -1;
    }
    if (*v == 0) {
        PyErr_Format(PyExc_ValueError, "%s must be positive", what);
        return -1;
    }
    return 1;
}

static PyObject *Program_attach_perf_event(ProgramObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"type", "config", "sample_period", "sample_freq", "cpu", "pid", NULL};
    uint32_t type;
    uint64_t config;
    unsigned long long period = 0, freq = 0;
    PyObject *period_obj = Py_None, *freq_obj = Py_None, *cpu_obj = Py_None, *target = NULL;
    int pid = -1, ncpus = 0, *cpus = NULL;
    cbpf_attachment att = {.kind = CBPF_ATTACHMENT_LIBBPF, .fd = -1, .tc_netns_fd = -1};
    cbpf_state *st = cbpf_state_from_type(Py_TYPE(self));
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O&O&|$OOOi:attach_perf_event", kwlist, cbpf_u32_converter, &type,
                                     cbpf_u64_converter, &config, &period_obj, &freq_obj, &cpu_obj, &pid) ||
        check_attachable(self) < 0 || require_type(self, BPF_PROG_TYPE_PERF_EVENT, "attach_perf_event") < 0 ||
        require_libbpf(self, "attach_perf_event") < 0) {
        return NULL;
    }
    int has_period = optional_u64(period_obj, "sample_period", &period);
    int has_freq = has_period < 0 ? -1 : optional_u64(freq_obj, "sample_freq", &freq);
    if (has_freq < 0) {
        return NULL;
    }
    if (has_period + has_freq != 1) {
        return PyErr_Format(PyExc_ValueError, "attach_perf_event() takes sample_period or sample_freq (one of them)");
    }
    int possible = libbpf_num_possible_cpus();
    if (possible < 0) {
        return cbpf_set_error(st, possible, "reading /sys/devices/system/cpu/possible");
    }
    cpus = PyMem_Malloc(sizeof(*cpus) * (size_t)possible);
    att.links = PyMem_RawCalloc((size_t)possible, sizeof(*att.links));
    if (cpus == NULL || att.links == NULL) {
        PyErr_NoMemory();
        goto error;
    }
    if (cpu_obj != Py_None) {
        if (int_arg(cpu_obj, "cpu", &cpus[0]) < 0) {
            goto error;
        }
        ncpus = 1;
        target = PyUnicode_FromFormat("perf_event type=%u config=%llu cpu %d%s", type, (unsigned long long)config,
                                      cpus[0], pid >= 0 ? " pid" : "");
    }
    else if (pid >= 0) {
        cpus[0] = -1; /* the process wherever it runs */
        ncpus = 1;
        target = PyUnicode_FromFormat("perf_event type=%u config=%llu pid %d", type, (unsigned long long)config, pid);
    }
    else {
        ncpus = online_cpus(cpus, possible);
        if (ncpus < 0) {
            cbpf_set_error(st, errno, "reading /sys/devices/system/cpu/online");
            goto error;
        }
        target = PyUnicode_FromFormat("perf_event type=%u config=%llu on %d CPUs", type, (unsigned long long)config,
                                      ncpus);
    }
    if (target == NULL) {
        goto error;
    }
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.size = sizeof(attr);
    attr.type = type;
    attr.config = config;
    attr.disabled = 1; /* libbpf enables it once the program is attached */
    attr.freq = has_freq;
    if (has_freq) {
        attr.sample_freq = freq;
    }
    else {
        attr.sample_period = period;
    }
    for (int i = 0; i < ncpus; i++) {
        int pfd = (int)syscall(__NR_perf_event_open, &attr, pid, cpus[i], -1, PERF_FLAG_FD_CLOEXEC);
        if (pfd < 0) {
            int err = errno;
            cbpf_program_error(self, err, "cannot attach to %s: perf_event_open on CPU %d%s", cbpf_utf8(target),
                               cpus[i],
                           err == ENOENT || err == EOPNOTSUPP ? " (no such event on this machine)" : "");
            goto error;
        }
        cbpf_log_begin();
        struct bpf_link *link = bpf_program__attach_perf_event(self->prog, pfd);
        int err = log_done(st, link == NULL ? errno : 0);
        if (link == NULL) {
            close(pfd);
            attach_error(st, self, err, target, NULL);
            goto error;
        }
        att.links[att.nlinks++] = link; /* it owns pfd now */
    }
    PyMem_Free(cpus);
    return cbpf_link_new(st, self, &att, target);
error:
    PyMem_Free(cpus);
    Py_XDECREF(target);
    cbpf_attachment_release(&att);
    return NULL;
}

/* ---- network interfaces, sockets, cgroups ---- */

/* An interface by name or index, in the calling thread's network namespace. */
static int interface_index(cbpf_state *st, ProgramObject *self, PyObject *iface, char name[IF_NAMESIZE])
{
    if (PyUnicode_Check(iface)) {
        const char *s = cbpf_c_string(iface, "interface name");
        if (s == NULL) {
            return -1;
        }
        unsigned int index = strlen(s) < IF_NAMESIZE ? if_nametoindex(s) : 0;
        if (index == 0) {
            cbpf_program_error(self, ENOENT, "cannot attach: no network interface '%s' (in this network namespace)",
                               s);
            return -1;
        }
        snprintf(name, IF_NAMESIZE, "%s", s);
        return (int)index;
    }
    int index;
    if (int_arg(iface, "interface (a name or an index)", &index) < 0) {
        return -1;
    }
    if (index <= 0 || if_indextoname((unsigned int)index, name) == NULL) {
        cbpf_program_error(self, ENOENT, "cannot attach: no network interface with index %d (in this network "
                           "namespace)", index);
        return -1;
    }
    return index;
}

static PyObject *Program_attach_xdp(ProgramObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"interface", "mode", NULL};
    PyObject *iface;
    const char *mode = NULL;
    char name[IF_NAMESIZE];
    unsigned int flags = 0;
    cbpf_state *st = cbpf_state_from_type(Py_TYPE(self));
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|z:attach_xdp", kwlist, &iface, &mode) ||
        check_attachable(self) < 0 || require_type(self, BPF_PROG_TYPE_XDP, "attach_xdp") < 0) {
        return NULL;
    }
    if (mode == NULL) {
        flags = 0; /* the driver's native mode where it has one, else generic */
    }
    else if (strcmp(mode, "skb") == 0 || strcmp(mode, "generic") == 0) {
        flags = CBPF_XDP_FLAGS_SKB_MODE;
    }
    else if (strcmp(mode, "native") == 0 || strcmp(mode, "driver") == 0) {
        flags = CBPF_XDP_FLAGS_DRV_MODE;
    }
    else if (strcmp(mode, "offload") == 0 || strcmp(mode, "hw") == 0) {
        flags = CBPF_XDP_FLAGS_HW_MODE;
    }
    else {
        return PyErr_Format(PyExc_ValueError, "unknown XDP mode '%s': None, 'skb' (generic), 'native' (driver) or "
                            "'offload' (hw)", mode);
    }
    int ifindex = interface_index(st, self, iface, name);
    if (ifindex < 0) {
        return NULL;
    }
    PyObject *target = PyUnicode_FromFormat("xdp %s%s%s", name, mode ? " mode " : "", mode ? mode : "");
    if (target == NULL) {
        return NULL;
    }
    LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = flags);
    int fd = bpf_link_create(program_fd(self), ifindex, BPF_XDP, &opts);
    return fd_result(st, self, fd, errno, target);
}

static PyObject *Program_attach_tc(ProgramObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"interface", "direction", "tcx", NULL};
    PyObject *iface, *tcx = Py_None;
    const char *direction = NULL;
    char name[IF_NAMESIZE];
    cbpf_state *st = cbpf_state_from_type(Py_TYPE(self));
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|z$O:attach_tc", kwlist, &iface, &direction, &tcx) ||
        check_attachable(self) < 0 || require_type(self, BPF_PROG_TYPE_SCHED_CLS, "attach_tc") < 0) {
        return NULL;
    }
    bool egress;
    if (direction == NULL) {
        egress = expected_attach_type(self) == BPF_TCX_EGRESS;
    }
    else if (strcmp(direction, "ingress") == 0 || strcmp(direction, "egress") == 0) {
        egress = direction[0] == 'e';
    }
    else {
        return PyErr_Format(PyExc_ValueError, "direction must be 'ingress' or 'egress', not '%s'", direction);
    }
    int use_tcx = tcx == Py_None ? -1 : PyObject_IsTrue(tcx);
    if (tcx != Py_None && use_tcx < 0) {
        return NULL;
    }
    int ifindex = interface_index(st, self, iface, name);
    if (ifindex < 0) {
        return NULL;
    }
    const char *dir = egress ? "egress" : "ingress";
    int prog_fd = program_fd(self);
    if (use_tcx != 0) {
        int fd = bpf_link_create(prog_fd, ifindex, egress ? BPF_TCX_EGRESS : BPF_TCX_INGRESS, NULL);
        int err = errno;
        /* a kernel without tcx (before 6.6) does not know the attach type: EINVAL; then a clsact qdisc */
        if (fd >= 0 || use_tcx == 1 || err != EINVAL) {
            return fd_result(st, self, fd, err, PyUnicode_FromFormat("tcx %s %s", dir, name));
        }
    }
    PyObject *target = PyUnicode_FromFormat("tc %s %s (clsact)", dir, name);
    if (target == NULL) {
        return NULL;
    }
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = egress ? BPF_TC_EGRESS : BPF_TC_INGRESS);
    LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd);
    cbpf_log_begin();
    int rc = bpf_tc_hook_create(&hook);
    if (rc == 0 || rc == -EEXIST) {
        rc = bpf_tc_attach(&hook, &opts);
    }
    log_done(st, 0);
    if (rc < 0) {
        attach_error(st, self, -rc, target, NULL);
        Py_DECREF(target);
        return NULL;
    }
    cbpf_attachment att = {.kind = CBPF_ATTACHMENT_TC,
                           .fd = -1,
                           .ifindex = ifindex,
                           .tc_netns_fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC),
                           .tc_attach_point = hook.attach_point,
                           .tc_handle = opts.handle,
                           .tc_priority = opts.priority};
    return cbpf_link_new(st, self, &att, target);
}

static PyObject *Program_attach_socket(ProgramObject *self, PyObject *sock)
{
    cbpf_state *st = cbpf_state_from_type(Py_TYPE(self));
    if (check_attachable(self) < 0 || require_type(self, BPF_PROG_TYPE_SOCKET_FILTER, "attach_socket") < 0) {
        return NULL;
    }
    int fd = PyObject_AsFileDescriptor(sock);
    if (fd < 0) {
        return NULL;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        return cbpf_program_error(self, errno, "cannot attach to fd %d", fd);
    }
    if (!S_ISSOCK(sb.st_mode)) {
        return cbpf_program_error(self, ENOTSOCK, "cannot attach to fd %d", fd);
    }
    PyObject *target = PyUnicode_FromFormat("socket fd %d", fd);
    if (target == NULL) {
        return NULL;
    }
    int prog_fd = program_fd(self);
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_BPF, &prog_fd, sizeof(prog_fd)) != 0) {
        attach_error(st, self, errno, target, NULL);
        Py_DECREF(target);
        return NULL;
    }
    cbpf_attachment att = {
        .kind = CBPF_ATTACHMENT_SOCKET, .fd = fd, .tc_netns_fd = -1, .sock_dev = sb.st_dev, .sock_ino = sb.st_ino};
    return cbpf_link_new(st, self, &att, target);
}

/* An attach type by number or by libbpf's name ("cgroup_inet_egress"). */
static int attach_type_arg(PyObject *o, enum bpf_attach_type *out)
{
    if (PyUnicode_Check(o)) {
        const char *want = cbpf_c_string(o, "attach type");
        if (want == NULL) {
            return -1;
        }
        for (int t = 0;; t++) {
            const char *name = libbpf_bpf_attach_type_str((enum bpf_attach_type)t);
            if (name == NULL) {
                PyErr_Format(PyExc_ValueError, "unknown attach type '%s' (see cbpf.AttachType)", want);
                return -1;
            }
            if (strcmp(name, want) == 0) {
                *out = (enum bpf_attach_type)t;
                return 0;
            }
        }
    }
    int t;
    if (int_arg(o, "attach_type", &t) < 0) {
        return -1;
    }
    *out = (enum bpf_attach_type)t;
    return 0;
}

static PyObject *Program_attach_cgroup(ProgramObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"path", "attach_type", NULL};
    PyObject *path = NULL, *type_obj = Py_None, *result = NULL;
    cbpf_state *st = cbpf_state_from_type(Py_TYPE(self));
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O&|O:attach_cgroup", kwlist, PyUnicode_FSConverter, &path,
                                     &type_obj)) {
        return NULL;
    }
    enum bpf_attach_type type;
    if (check_attachable(self) < 0) {
        goto done;
    }
    if (type_obj == Py_None && self->pinned) {
        PyErr_Format(PyExc_ValueError, "program '%U' was opened from a pin, which does not say its attach type: "
                     "pass attach_type", self->name);
        goto done;
    }
    if (type_obj == Py_None) {
        type = expected_attach_type(self);
    }
    else if (attach_type_arg(type_obj, &type) < 0) {
        goto done;
    }
    const char *p = PyBytes_AS_STRING(path);
    const char *type_str = libbpf_bpf_attach_type_str(type);
    int cgroup_fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cgroup_fd < 0) {
        int err = errno;
        cbpf_program_error(self, err, "cannot attach: %s %s", err == ENOENT ? "no cgroup at" : "cannot open the cgroup",
                           p);
        goto done;
    }
    int fd = bpf_link_create(program_fd(self), cgroup_fd, type, NULL);
    int err = errno;
    close(cgroup_fd);
    result = fd_result(st, self, fd, err, PyUnicode_FromFormat("cgroup %s (%s)", p, type_str ? type_str : "?"));
done:
    Py_DECREF(path);
    return result;
}

static PyObject *Program_attach_iter(ProgramObject *self, PyObject *Py_UNUSED(ignored))
{
    cbpf_state *st = cbpf_state_from_type(Py_TYPE(self));
    if (check_attachable(self) < 0 || refuse_pinned(self, "attach_iter") < 0) {
        return NULL;
    }
    if (is_legacy(self) || expected_attach_type(self) != BPF_TRACE_ITER) {
        return PyErr_Format(PyExc_TypeError, "program '%U' (section '%U') is not an iterator: attach_iter() "
                            "attaches iter/... programs", self->name, self->section);
    }
    cbpf_log_begin();
    struct bpf_link *link = bpf_program__attach_iter(self->prog, NULL);
    int err = log_done(st, link == NULL ? errno : 0);
    return libbpf_result(st, self, link, err, Py_NewRef(self->section), NULL);
}

/* ---- attributes ---- */

static bool check_open_quiet(ProgramObject *self)
{
    return !is_closed(self);
}

static PyObject *Program_get_fd(ProgramObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromLong(check_open_quiet(self) ? program_fd(self) : -1);
}

static PyObject *Program_get_insn_count(ProgramObject *self, void *Py_UNUSED(closure))
{
    if (check_open(self) < 0) {
        return NULL;
    }
    if (self->pinned) {
        struct bpf_prog_info info;
        __u32 len = sizeof(info);
        memset(&info, 0, sizeof(info));
        if (bpf_prog_get_info_by_fd(self->pinned_fd, &info, &len) != 0) {
            return cbpf_program_error(self, errno, "reading its info");
        }
        return PyLong_FromSize_t(info.xlated_prog_len / 8);
    }
    if (is_legacy(self)) {
        struct cbpf_legacy_prog *p = legacy_prog(self);
        struct cbpf_legacy_spec *spec = self->owner->legacy_spec;
        return PyLong_FromSize_t(p != NULL ? p->insn_cnt : spec != NULL ? spec->progs[self->legacy_index].insn_cnt : 0);
    }
    return PyLong_FromSize_t(bpf_program__insn_cnt(self->prog));
}

static PyObject *Program_get_autoload(ProgramObject *self, void *Py_UNUSED(closure))
{
    if (check_open(self) < 0) {
        return NULL;
    }
    return PyBool_FromLong(cbpf_program_autoload(self));
}

static PyObject *Program_get_autoattach(ProgramObject *self, void *Py_UNUSED(closure))
{
    if (check_open(self) < 0) {
        return NULL;
    }
    return PyBool_FromLong(cbpf_program_autoattach(self));
}

/* Both flags are read by Object.load() and Object.attach(): a flag set after them would do nothing. */
static int set_flag(ProgramObject *self, PyObject *value, const char *flag, bool frozen, const char *when)
{
    if (value == NULL) {
        PyErr_Format(PyExc_AttributeError, "cannot delete %s", flag);
        return -1;
    }
    int on = PyObject_IsTrue(value);
    if (on < 0 || check_open(self) < 0) {
        return -1;
    }
    if (frozen) {
        PyErr_Format(PyExc_ValueError, "%s of program '%U' can only change before %s", flag, self->name, when);
        return -1;
    }
    return on;
}

static int Program_set_autoload(ProgramObject *self, PyObject *value, void *Py_UNUSED(closure))
{
    if (value != NULL && cbpf_object_check_idle(self->owner, "setting autoload") < 0) {
        return -1;
    }
    int on = set_flag(self, value, "autoload", self->owner->loaded, "Object.load()");
    if (on < 0 || refuse_pinned(self, "setting autoload") < 0) {
        return -1;
    }
    if (is_legacy(self)) {
        self->legacy_autoload = on;
        return 0;
    }
    int err = bpf_program__set_autoload(self->prog, on);
    if (err != 0) {
        cbpf_program_error(self, err, "setting autoload");
        return -1;
    }
    return 0;
}

static int Program_set_autoattach(ProgramObject *self, PyObject *value, void *Py_UNUSED(closure))
{
    int on = set_flag(self, value, "autoattach", self->owner->attached && !self->pinned, "Object.attach()");
    if (on < 0 || refuse_pinned(self, "setting autoattach") < 0) {
        return -1;
    }
    if (is_legacy(self)) {
        self->legacy_autoattach = on;
        return 0;
    }
    bpf_program__set_autoattach(self->prog, on);
    return 0;
}

/* ---- before load: the program's type, attach type and target, flags and verifier log, as libbpf's setters ---- */

static int check_configurable(ProgramObject *self, const char *attr)
{
    if (check_open(self) < 0) {
        return -1;
    }
    if (self->owner->busy) {
        PyErr_Format(PyExc_RuntimeError, "cannot set %s of program '%U' while its Object is being loaded", attr,
                     self->name);
        return -1;
    }
    if (self->owner->loaded) {
        PyErr_Format(PyExc_ValueError, "%s of program '%U' can only be set before Object.load() (Object(path, "
                                       "load=False))", attr, self->name);
        return -1;
    }
    return 0;
}

static int libbpf_only(ProgramObject *self, const char *attr)
{
    if (is_legacy(self)) {
        PyErr_Format(PyExc_TypeError, "%s of program '%U' cannot be set: it belongs to a legacy object (struct "
                                      "bpf_map_def maps), whose programs take only type and expected_attach_type",
                     attr, self->name);
        return -1;
    }
    return 0;
}

/* A program type from a ProgramType, its number or its name ("socket_filter", "XDP"). */
static int prog_type_arg(ProgramObject *self, PyObject *value, uint32_t *out)
{
    if (PyUnicode_Check(value)) {
        const char *want = PyUnicode_AsUTF8(value);
        if (want == NULL) {
            return -1;
        }
        for (uint32_t t = 1; libbpf_bpf_prog_type_str((enum bpf_prog_type)t) != NULL; t++) {
            if (strcasecmp(libbpf_bpf_prog_type_str((enum bpf_prog_type)t), want) == 0) {
                *out = t;
                return 0;
            }
        }
        PyErr_Format(PyExc_ValueError, "type of program '%U': unknown program type %R (see cbpf.ProgramType)",
                     self->name, value);
        return -1;
    }
    unsigned long t = PyLong_Check(value) && !PyBool_Check(value) ? PyLong_AsUnsignedLong(value) : 0;
    if (t == (unsigned long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        t = 0;
    }
    if (t == 0 || t > UINT32_MAX || libbpf_bpf_prog_type_str((enum bpf_prog_type)t) == NULL) {
        PyErr_Format(PyLong_Check(value) ? PyExc_ValueError : PyExc_TypeError,
                     "type of program '%U' must be a cbpf.ProgramType or its name, not %R", self->name, value);
        return -1;
    }
    *out = (uint32_t)t;
    return 0;
}

static PyObject *Program_get_type(ProgramObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLong(self->type);
}

static int Program_set_type(ProgramObject *self, PyObject *value, void *Py_UNUSED(closure))
{
    uint32_t t;
    if (value == NULL) {
        PyErr_Format(PyExc_AttributeError, "cannot delete type of program '%U'", self->name);
        return -1;
    }
    if (check_configurable(self, "type") < 0 || prog_type_arg(self, value, &t) < 0) {
        return -1;
    }
    if (is_legacy(self)) {
        self->owner->legacy_spec->progs[self->legacy_index].prog_type = t;
    }
    else {
        int err = bpf_program__set_type(self->prog, (enum bpf_prog_type)t);
        if (err != 0) {
            cbpf_program_error(self, err, "setting type");
            return -1;
        }
    }
    self->type = t;
    return 0;
}

static PyObject *Program_get_expected_attach_type(ProgramObject *self, void *Py_UNUSED(closure))
{
    if (check_open(self) < 0) {
        return NULL;
    }
    if (self->pinned) {
        return PyErr_Format(PyExc_ValueError, "program '%U' was opened from a pin: the kernel does not say its "
                                              "expected attach type", self->name);
    }
    return PyLong_FromLong((long)expected_attach_type(self));
}

static int attach_type_arg(PyObject *o, enum bpf_attach_type *out);

static int Program_set_expected_attach_type(ProgramObject *self, PyObject *value, void *Py_UNUSED(closure))
{
    enum bpf_attach_type t;
    if (value == NULL) {
        PyErr_Format(PyExc_AttributeError, "cannot delete expected_attach_type of program '%U'", self->name);
        return -1;
    }
    if (check_configurable(self, "expected_attach_type") < 0) {
        return -1;
    }
    if (attach_type_arg(value, &t) < 0 || libbpf_bpf_attach_type_str(t) == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_Format(PyExc_ValueError, "unknown attach type %R (see cbpf.AttachType)", value);
        }
        return -1;
    }
    if (is_legacy(self)) {
        self->owner->legacy_spec->progs[self->legacy_index].expected_attach_type = (uint32_t)t;
        self->legacy_expected_attach_type = (uint32_t)t;
        return 0;
    }
    int err = bpf_program__set_expected_attach_type(self->prog, t);
    if (err != 0) {
        cbpf_program_error(self, err, "setting expected_attach_type");
        return -1;
    }
    return 0;
}

static PyObject *Program_get_attach_target(ProgramObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->attach_target ? self->attach_target : Py_None);
}

/* A kernel function (fentry/fexit/fmod_ret/LSM) or BTF type (tp_btf) by name; for freplace a Program (the function
 * of that name in it) or (Program, function name). libbpf looks the target up at once. */
static int Program_set_attach_target(ProgramObject *self, PyObject *value, void *Py_UNUSED(closure))
{
    cbpf_state *st = cbpf_state_from_type(Py_TYPE(self));
    PyObject *target = value, *func = NULL;
    if (value == NULL) {
        PyErr_Format(PyExc_AttributeError, "cannot delete attach_target of program '%U'", self->name);
        return -1;
    }
    if (check_configurable(self, "attach_target") < 0 || libbpf_only(self, "attach_target") < 0) {
        return -1;
    }
    if (PyTuple_Check(value) && PyTuple_GET_SIZE(value) == 2) {
        target = PyTuple_GET_ITEM(value, 0);
        func = PyTuple_GET_ITEM(value, 1);
    }
    int fd = 0;
    if (PyObject_TypeCheck(target, st->Program_type)) {
        ProgramObject *p = (ProgramObject *)target;
        if (p == self || check_attachable(p) < 0) {
            if (p == self) {
                PyErr_Format(PyExc_ValueError, "program '%U' cannot be its own attach_target", self->name);
            }
            return -1;
        }
        fd = program_fd(p);
        func = func != NULL ? func : p->name;
    }
    else if (func == NULL && PyUnicode_Check(value)) {
        func = value;
    }
    if (func == NULL || !PyUnicode_Check(func)) {
        PyErr_Format(PyExc_TypeError, "attach_target of program '%U' must be a kernel function's name, a loaded "
                                      "Program or (Program, function name), not %R", self->name, value);
        return -1;
    }
    const char *name = PyUnicode_AsUTF8(func);
    if (name == NULL) {
        return -1;
    }
    cbpf_log_begin();
    int err = log_done(st, bpf_program__set_attach_target(self->prog, fd, name));
    if (err == -ESRCH || err == -ENOENT) {
        cbpf_program_error(self, ENOENT, "attach_target: '%s' is not %s", name,
                           fd ? "a function of the target program (in its BTF)"
                              : "in the running kernel's BTF (no such kernel function or type, or it cannot be "
                                "traced)");
        return -1;
    }
    if (err != 0) {
        cbpf_program_error(self, err, "setting attach_target to '%s'", name);
        return -1;
    }
    Py_XSETREF(self->attach_target, Py_NewRef(value));
    return 0;
}

static PyObject *Program_get_flags(ProgramObject *self, void *Py_UNUSED(closure))
{
    if (check_open(self) < 0) {
        return NULL;
    }
    return PyLong_FromUnsignedLong(is_legacy(self) || self->pinned ? 0 : bpf_program__flags(self->prog));
}

static int u32_setting(ProgramObject *self, PyObject *value, const char *attr, uint32_t *out)
{
    if (value == NULL) {
        PyErr_Format(PyExc_AttributeError, "cannot delete %s of program '%U'", attr, self->name);
        return -1;
    }
    if (check_configurable(self, attr) < 0 || libbpf_only(self, attr) < 0) {
        return -1;
    }
    if (!PyLong_Check(value) || PyBool_Check(value)) {
        PyErr_Format(PyExc_TypeError, "%s of program '%U' must be an int, not %.100s", attr, self->name,
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    unsigned long v = PyLong_AsUnsignedLong(value);
    if ((v == (unsigned long)-1 && PyErr_Occurred()) || v > UINT32_MAX) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "%s of program '%U' must be within 0..%u, not %R", attr, self->name,
                     UINT32_MAX, value);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

static int Program_set_flags(ProgramObject *self, PyObject *value, void *Py_UNUSED(closure))
{
    uint32_t v;
    if (u32_setting(self, value, "flags", &v) < 0) {
        return -1;
    }
    int err = bpf_program__set_flags(self->prog, v);
    if (err != 0) {
        cbpf_program_error(self, err, "setting flags");
        return -1;
    }
    return 0;
}

static PyObject *Program_get_log_level(ProgramObject *self, void *Py_UNUSED(closure))
{
    if (check_open(self) < 0) {
        return NULL;
    }
    return PyLong_FromUnsignedLong(is_legacy(self) || self->pinned ? 0 : bpf_program__log_level(self->prog));
}

#define LOG_BUF_SIZE (16u << 20) /* the kernel's limit for a log buffer is far larger; a log past this is cut */

/* A level above 0 asks the verifier for its log of the load, kept in Program.log even when the load succeeds. */
static int Program_set_log_level(ProgramObject *self, PyObject *value, void *Py_UNUSED(closure))
{
    uint32_t level;
    if (u32_setting(self, value, "log_level", &level) < 0) {
        return -1;
    }
    char *buf = level ? self->log_buf : NULL;
    if (level && buf == NULL) {
        buf = PyMem_RawCalloc(1, LOG_BUF_SIZE);
        if (buf == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    int err = bpf_program__set_log_level(self->prog, level);
    if (err == 0) {
        err = bpf_program__set_log_buf(self->prog, buf, buf ? LOG_BUF_SIZE : 0);
    }
    if (err != 0) {
        if (buf != self->log_buf) {
            PyMem_RawFree(buf);
        }
        cbpf_program_error(self, err, "setting log_level");
        return -1;
    }
    if (buf != self->log_buf) {
        PyMem_RawFree(self->log_buf);
    }
    self->log_buf = buf;
    self->log_size = buf ? LOG_BUF_SIZE : 0;
    return 0;
}

static PyObject *Program_get_log(ProgramObject *self, void *Py_UNUSED(closure))
{
    if (self->log_buf == NULL || !self->owner->loaded || (self->prog == NULL && !is_legacy(self))) {
        Py_RETURN_NONE;
    }
    return PyUnicode_DecodeUTF8(self->log_buf, (Py_ssize_t)strnlen(self->log_buf, self->log_size), "replace");
}

static PyObject *Program_get_id(ProgramObject *self, void *Py_UNUSED(closure))
{
    int fd = check_open_quiet(self) ? program_fd(self) : -1;
    struct bpf_prog_info info = {0};
    __u32 len = sizeof(info);
    if (fd < 0 || bpf_prog_get_info_by_fd(fd, &info, &len) != 0) {
        return PyLong_FromLong(0);
    }
    return PyLong_FromUnsignedLong(info.id);
}

/* A program that load() would send without a type: said here, naming the fix, before anything is created. */
int cbpf_program_check_before_load(ProgramObject *self)
{
    if (self->type == BPF_PROG_TYPE_UNSPEC && cbpf_program_autoload(self)) {
        PyErr_Format(PyExc_ValueError, "program '%U' (section '%U') has no program type: its section names none; "
                                       "set Program.type (a cbpf.ProgramType or its name) before Object.load(), or "
                                       "its autoload to False", self->name, self->section);
        return -1;
    }
    return 0;
}

/* ---- running a program on test input: BPF_PROG_TEST_RUN ---- */

static bool test_runs(uint32_t type)
{
    switch (type) {
    case BPF_PROG_TYPE_SOCKET_FILTER:
    case BPF_PROG_TYPE_SCHED_CLS:
    case BPF_PROG_TYPE_SCHED_ACT:
    case BPF_PROG_TYPE_XDP:
    case BPF_PROG_TYPE_CGROUP_SKB:
    case BPF_PROG_TYPE_LWT_IN:
    case BPF_PROG_TYPE_LWT_OUT:
    case BPF_PROG_TYPE_LWT_XMIT:
    case BPF_PROG_TYPE_LWT_SEG6LOCAL:
    case BPF_PROG_TYPE_FLOW_DISSECTOR:
    case BPF_PROG_TYPE_RAW_TRACEPOINT:
    case BPF_PROG_TYPE_TRACING:
    case BPF_PROG_TYPE_SYSCALL:
    case BPF_PROG_TYPE_SK_LOOKUP:
    case BPF_PROG_TYPE_STRUCT_OPS:
    case BPF_PROG_TYPE_NETFILTER:
        return true;
    default:
        return false;
    }
}

/* test_run(data=b"", ctx=None, *, repeat=1, data_size_out=None, flags=0, cpu=None)
 *   -> (retval, data_out, ctx_out, duration_ns) */
static PyObject *Program_test_run(ProgramObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"data", "ctx", "repeat", "data_size_out", "flags", "cpu", NULL};
    Py_buffer data = {0}, ctx = {0};
    PyObject *ctx_obj = Py_None, *size_obj = Py_None, *cpu_obj = Py_None, *result = NULL;
    unsigned int repeat = 1, flags = 0;
    unsigned char *data_out = NULL, *ctx_out = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|y*O$IOIO:test_run", kwlist, &data, &ctx_obj, &repeat, &size_obj,
                                     &flags, &cpu_obj)) {
        return NULL;
    }
    if (check_attachable(self) < 0) {
        goto done;
    }
    if (!test_runs(self->type)) {
        PyErr_Format(PyExc_TypeError, "program '%U' is a %s program, which the kernel cannot run on test input "
                                      "(BPF_PROG_TEST_RUN takes socket filters, tc, XDP, cgroup skb, lwt, flow "
                                      "dissector, raw tracepoint, tracing, syscall, sk_lookup and netfilter programs)",
                     self->name, type_name(self->type));
        goto done;
    }
    if (ctx_obj != Py_None && PyObject_GetBuffer(ctx_obj, &ctx, PyBUF_SIMPLE) < 0) {
        goto done;
    }
    /* these run a context only: no packet, no repeat, and a syscall program writes its context back in place */
    bool ctx_only = self->type == BPF_PROG_TYPE_RAW_TRACEPOINT || self->type == BPF_PROG_TYPE_SYSCALL;
    if (ctx_only && data.len) {
        PyErr_Format(PyExc_ValueError, "program '%U' is a %s program: it runs on ctx alone, not on data", self->name,
                     type_name(self->type));
        goto done;
    }
    size_t out_size = data.len ? (size_t)data.len + 4096 : 0;
    if (size_obj != Py_None) {
        unsigned long v = PyLong_AsUnsignedLong(size_obj);
        if (v == (unsigned long)-1 && PyErr_Occurred()) {
            goto done;
        }
        out_size = v;
    }
    if (out_size > UINT32_MAX) {
        PyErr_Format(PyExc_ValueError, "data_size_out %zu is too large", out_size);
        goto done;
    }
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = data.len ? data.buf : NULL, .data_size_in = (__u32)data.len,
                .repeat = ctx_only ? 0 : (int)repeat, .flags = flags);
    if (cpu_obj != Py_None) {
        int cpu;
        if (int_arg(cpu_obj, "cpu", &cpu) < 0) {
            goto done;
        }
        opts.cpu = (__u32)cpu;
        opts.flags |= BPF_F_TEST_RUN_ON_CPU;
    }
    if (!ctx_only && out_size) {
        data_out = PyMem_RawMalloc(out_size);
        if (data_out == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        opts.data_out = data_out;
        opts.data_size_out = (__u32)out_size;
    }
    if (ctx.len) {
        ctx_out = PyMem_RawMalloc((size_t)ctx.len);
        if (ctx_out == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        opts.ctx_size_in = (__u32)ctx.len;
        if (self->type == BPF_PROG_TYPE_SYSCALL) {
            memcpy(ctx_out, ctx.buf, (size_t)ctx.len);
            opts.ctx_in = ctx_out;
        }
        else {
            opts.ctx_in = ctx.buf;
            if (!ctx_only) {
                opts.ctx_out = ctx_out;
                opts.ctx_size_out = (__u32)ctx.len;
            }
        }
    }
    int rc, fd = program_fd(self);
    Py_BEGIN_ALLOW_THREADS
    rc = bpf_prog_test_run_opts(fd, &opts);
    Py_END_ALLOW_THREADS
    if (rc != 0) {
        int err = errno;
        if (err == 524 /* ENOTSUPP */ || err == EOPNOTSUPP) {
            PyErr_Format(PyExc_TypeError, "program '%U' (%s): this kernel cannot run it on test input "
                                          "(BPF_PROG_TEST_RUN is not supported for it)", self->name,
                         type_name(self->type));
        }
        else {
            cbpf_program_error(self, err, "test_run (%s, %zd bytes of data, %zd of ctx)", type_name(self->type),
                               data.len, ctx.len);
        }
        goto done;
    }
    PyObject *out = data_out ? PyBytes_FromStringAndSize((const char *)data_out, opts.data_size_out)
                             : PyBytes_FromStringAndSize(NULL, 0);
    PyObject *ctx_result = NULL;
    if (ctx_out != NULL && (self->type == BPF_PROG_TYPE_SYSCALL || opts.ctx_size_out)) {
        ctx_result = PyBytes_FromStringAndSize((const char *)ctx_out,
                                               self->type == BPF_PROG_TYPE_SYSCALL ? ctx.len : opts.ctx_size_out);
    }
    else {
        ctx_result = Py_NewRef(Py_None);
    }
    if (out != NULL && ctx_result != NULL) {
        result = Py_BuildValue("(kNNK)", (unsigned long)opts.retval, out, ctx_result,
                               (unsigned long long)opts.duration);
    }
    else {
        Py_XDECREF(out);
        Py_XDECREF(ctx_result);
    }
done:
    if (data.obj != NULL) {
        PyBuffer_Release(&data);
    }
    if (ctx.obj != NULL) {
        PyBuffer_Release(&ctx);
    }
    PyMem_RawFree(data_out);
    PyMem_RawFree(ctx_out);
    return result;
}

static PyObject *Program_get_object(ProgramObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->owner);
}

static PyObject *Program_repr(ProgramObject *self)
{
    return PyUnicode_FromFormat("<cbpf.Program '%U' section='%U' type=%s%s>", self->name, self->section,
                                type_name(self->type), check_open_quiet(self) ? "" : " (closed)");
}

static int Program_traverse(ProgramObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->owner);
    Py_VISIT(self->attach_target);
    return 0;
}

static void Program_dealloc(ProgramObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    cbpf_program_invalidate(self);
    Py_CLEAR(self->owner);
    Py_CLEAR(self->name);
    Py_CLEAR(self->section);
    Py_CLEAR(self->attach_target);
    PyMem_RawFree(self->log_buf); /* libbpf is done with it: the object is closed, or it was never loaded */
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

#define VARARGS(f) (PyCFunction)(void (*)(void))(f), METH_VARARGS | METH_KEYWORDS

static PyObject *Program_from_pinned(PyTypeObject *cls, PyObject *path)
{
    cbpf_state *st = cbpf_state_from_type(cls);
    PyObject *abs = NULL;
    int fd = cbpf_open_pinned(st, path, "program", &abs);
    if (fd < 0) {
        return NULL;
    }
    PyObject *self = (PyObject *)cbpf_program_from_fd(st, fd, abs);
    Py_DECREF(abs);
    return self;
}

static PyMethodDef Program_methods[] = {
    {"attach", (PyCFunction)Program_attach, METH_NOARGS,
     "attach($self, /)\n--\n\nAttaches where the section name says (tracepoint/..., raw_tracepoint/..., tp_btf/..., "
     "kprobe/..., uprobe/..., fentry/..., lsm/..., iter/..., ...) and returns the Link."},
    {"attach_kprobe", VARARGS(Program_attach_kprobe),
     "attach_kprobe($self, /, func, retprobe=False, offset=0)\n--\n\nAttaches to a kernel function's entry (or "
     "return, with retprobe). Needs a kernel with CONFIG_KPROBES."},
    {"attach_tracepoint", VARARGS(Program_attach_tracepoint),
     "attach_tracepoint($self, /, category, name)\n--\n\nAttaches to the tracepoint category/name (tracefs is "
     "mounted when missing)."},
    {"attach_raw_tracepoint", VARARGS(Program_attach_raw_tracepoint),
     "attach_raw_tracepoint($self, /, name)\n--\n\nAttaches to the raw tracepoint name (sys_enter, sched_switch...)."},
    {"attach_uprobe", VARARGS(Program_attach_uprobe),
     "attach_uprobe($self, /, binary, symbol=None, offset=0, pid=-1, retprobe=False)\n--\n\nAttaches to a function "
     "of a program or library: binary is a path, a library's name (\"libc\", \"libc.so.6\") or an executable in "
     "PATH; symbol the function (offset added to it), or offset alone a file offset. pid -1: every process."},
    {"attach_usdt", VARARGS(Program_attach_usdt),
     "attach_usdt($self, /, binary, provider, name, pid=-1)\n--\n\nAttaches to the USDT probe provider:name of a "
     "program or library (the BPF side reads arguments with bpf/usdt.bpf.h)."},
    {"attach_perf_event", VARARGS(Program_attach_perf_event),
     "attach_perf_event($self, /, type, config, *, sample_period=None, sample_freq=None, cpu=None, pid=-1)\n--\n\n"
     "Opens a sampling perf event (type and config as perf_event_open(2), e.g. PerfType.SOFTWARE and "
     "PerfSoftware.CPU_CLOCK; one of sample_period or sample_freq) and runs the program on each sample. With cpu "
     "None and pid -1: one event per online CPU, all held by the Link; with a pid: that thread on any CPU."},
    {"attach_xdp", VARARGS(Program_attach_xdp),
     "attach_xdp($self, /, interface, mode=None)\n--\n\nAttaches to a network interface (name or index) as a BPF "
     "link; mode None (the driver's choice), 'skb' (generic), 'native' or 'offload'."},
    {"attach_tc", VARARGS(Program_attach_tc),
     "attach_tc($self, /, interface, direction=None, *, tcx=None)\n--\n\nAttaches to a network interface's "
     "ingress or egress (None: the section's, else ingress): through tcx where the kernel has it (6.6+), else as a "
     "filter on a clsact qdisc. tcx=True or False insists on one."},
    {"attach_socket", (PyCFunction)Program_attach_socket, METH_O,
     "attach_socket($self, sock, /)\n--\n\nAttaches a socket filter (SO_ATTACH_BPF) to a socket object or fd."},
    {"attach_cgroup", VARARGS(Program_attach_cgroup),
     "attach_cgroup($self, /, path, attach_type=None)\n--\n\nAttaches to a cgroup v2 directory; attach_type (an "
     "AttachType or its name) defaults to the section's (cgroup_skb/egress -> cgroup_inet_egress)."},
    {"test_run", VARARGS(Program_test_run),
     "test_run($self, /, data=b'', ctx=None, *, repeat=1, data_size_out=None, flags=0, cpu=None)\n--\n\n"
     "Runs the loaded program on test input with BPF_PROG_TEST_RUN, without attaching it: data is the packet (socket "
     "filter, tc, XDP, ...), ctx the context (raw tracepoint and syscall programs take ctx alone). Returns (retval, "
     "data_out, ctx_out, duration_ns): the return value, the packet as the program left it, the context as it left "
     "it (None when none) and the mean time of one run over repeat runs."},
    {"from_pinned", (PyCFunction)Program_from_pinned, METH_O | METH_CLASS,
     "from_pinned($type, path, /)\n--\n\nOpens a program pinned in bpffs. It belongs to an Object of its own "
     "(program.object): closing that closes it. Without its ELF object, it attaches with attach_xdp, attach_tc, "
     "attach_socket and attach_cgroup(path, attach_type)."},
    {"attach_iter", (PyCFunction)Program_attach_iter, METH_NOARGS,
     "attach_iter($self, /)\n--\n\nAttaches an iterator (iter/task, ...): Link.read() runs it."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Program_members[] = {
    {"name", T_OBJECT_EX, offsetof(ProgramObject, name), READONLY, "The program's (function's) name."},
    {"section", T_OBJECT_EX, offsetof(ProgramObject, section), READONLY, "The ELF section it came from."},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef Program_getset[] = {
    {"fd", (getter)Program_get_fd, NULL, "The program's file descriptor (-1 when not loaded).", NULL},
    {"insn_count", (getter)Program_get_insn_count, NULL,
     "Instructions in the program (after load: as loaded, subprograms included).", NULL},
    {"autoload", (getter)Program_get_autoload, (setter)Program_set_autoload,
     "Whether Object.load() loads it; settable before load.", NULL},
    {"autoattach", (getter)Program_get_autoattach, (setter)Program_set_autoattach,
     "Whether Object.attach() attaches it; settable before attach.", NULL},
    {"object", (getter)Program_get_object, NULL, "The Object the program belongs to.", NULL},
    {"type", (getter)Program_get_type, (setter)Program_set_type,
     "The program type (a BPF_PROG_TYPE_* value); settable before load (a ProgramType or its name).", NULL},
    {"expected_attach_type", (getter)Program_get_expected_attach_type, (setter)Program_set_expected_attach_type,
     "The attach type the kernel checks the program against at load (a BPF_* attach type); settable before load "
     "(an AttachType or its name).", NULL},
    {"attach_target", (getter)Program_get_attach_target, (setter)Program_set_attach_target,
     "Before load: the kernel function (fentry/fexit/fmod_ret/LSM) or BTF type (tp_btf) to attach to instead of the "
     "section's, or for freplace a loaded Program (or (Program, function name)). None unless set.", NULL},
    {"flags", (getter)Program_get_flags, (setter)Program_set_flags,
     "Load flags (BPF_F_SLEEPABLE, ...); settable before load.", NULL},
    {"log_level", (getter)Program_get_log_level, (setter)Program_set_log_level,
     "Verifier log level; set above 0 before load to keep the verifier's log of a successful load in log.", NULL},
    {"log", (getter)Program_get_log, NULL,
     "The verifier's log of the load (str) when log_level was set before it; else None.", NULL},
    {"id", (getter)Program_get_id, NULL, "The kernel's id of the loaded program (0 when not loaded).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Program_slots[] = {
    {Py_tp_doc, "A BPF program of an Object (Object.programs[name]). attach() and the attach_* methods return "
                "Links."},
    {Py_tp_methods, Program_methods},
    {Py_tp_members, Program_members},
    {Py_tp_getset, Program_getset},
    {Py_tp_repr, Program_repr},
    /* no tp_clear: a Link detaching during a collection reaches its Object through owner; the Object's and the
     * Link's tp_clear break the cycles */
    {Py_tp_traverse, Program_traverse},
    {Py_tp_dealloc, Program_dealloc},
    {0, NULL},
};

PyType_Spec cbpf_program_spec = {
    .name = "cbpf._cbpf.Program",
    .basicsize = sizeof(ProgramObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | CBPF_TPFLAGS_NO_INSTANCES,
    .slots = Program_slots,
};

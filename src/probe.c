/* The kernel's features, asked of the kernel itself (cbpf.features builds on these), and what they say about a
 * trampoline program the kernel refused. Each probe answers a bool: a feature that is absent is not an error. */
#include "cbpf.h"

#include <errno.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <bpf/btf.h>

/* r0 = 0; exit: the smallest program every type accepts. */
static const struct bpf_insn return_zero[] = {
    {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0},
    {.code = BPF_JMP | BPF_EXIT},
};

/* A probe's answer as a bool: rc 1 yes, 0 or an error no. err is the errno the probe's bpf() call left: a refusal
 * for want of privilege raises when we are not root (as root, the refusal is the kernel's answer: no). */
static PyObject *answer(PyObject *module, int rc, int err, const char *what)
{
    bool refused = rc <= 0 && (rc == -EPERM || rc == -EACCES || err == EPERM || err == EACCES);
    if (refused && geteuid() != 0) {
        return cbpf_set_error(cbpf_get_state(module), EPERM, "probing %s", what);
    }
    return PyBool_FromLong(rc > 0 && !refused);
}

static int unsigned_arg(PyObject *o, const char *what, unsigned int *out)
{
    unsigned long v = PyLong_AsUnsignedLong(o);
    if (v == (unsigned long)-1 && PyErr_Occurred()) {
        return -1;
    }
    if (v > UINT32_MAX) {
        PyErr_Format(PyExc_OverflowError, "%s out of range: %lu", what, v);
        return -1;
    }
    *out = (unsigned int)v;
    return 0;
}

static PyObject *probe_prog_type(PyObject *module, PyObject *arg)
{
    unsigned int t;
    if (unsigned_arg(arg, "program type", &t) < 0) {
        return NULL;
    }
    errno = 0;
    int rc = libbpf_probe_bpf_prog_type((enum bpf_prog_type)t, NULL);
    return answer(module, rc, errno, "a program type");
}

static PyObject *probe_map_type(PyObject *module, PyObject *arg)
{
    unsigned int t;
    if (unsigned_arg(arg, "map type", &t) < 0) {
        return NULL;
    }
    errno = 0;
    int rc = libbpf_probe_bpf_map_type((enum bpf_map_type)t, NULL);
    return answer(module, rc, errno, "a map type");
}

static PyObject *probe_helper(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    unsigned int t, helper;
    if (nargs != 2) {
        return PyErr_Format(PyExc_TypeError, "_probe_helper(program_type, helper)");
    }
    if (unsigned_arg(args[0], "program type", &t) < 0 || unsigned_arg(args[1], "helper", &helper) < 0) {
        return NULL;
    }
    /* libbpf takes a program refused before verifying (no privilege, no such type) for one whose helper is
     * supported: the type is asked first */
    errno = 0;
    int rc = libbpf_probe_bpf_prog_type((enum bpf_prog_type)t, NULL);
    if (rc <= 0) {
        return answer(module, rc, errno, "a helper");
    }
    return answer(module, libbpf_probe_bpf_helper((enum bpf_prog_type)t, (enum bpf_func_id)helper, NULL), 0,
                  "a helper");
}

/* Loads return_zero as prog_type; -errno on failure. */
static int load_tiny(enum bpf_prog_type type, enum bpf_attach_type attach, __u32 btf_id)
{
    LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = attach, .attach_btf_id = btf_id);
    int fd = bpf_prog_load(type, NULL, "GPL", return_zero, sizeof(return_zero) / sizeof(return_zero[0]), &opts);
    return fd < 0 ? -errno : fd;
}

/* Can a trampoline (fentry) attach to the kernel function name? Really loads and attaches one, without the GIL. */
static PyObject *probe_fentry(PyObject *module, PyObject *arg)
{
    const char *name = PyUnicode_Check(arg) ? PyUnicode_AsUTF8(arg) : NULL;
    if (name == NULL) {
        return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_TypeError, "a function name must be a str");
    }
    int rc = 0;
    Py_BEGIN_ALLOW_THREADS
    struct btf *vmlinux = btf__load_vmlinux_btf();
    __s32 id = vmlinux != NULL ? btf__find_by_name_kind(vmlinux, name, BTF_KIND_FUNC) : -1;
    btf__free(vmlinux);
    if (id > 0) {
        int fd = load_tiny(BPF_PROG_TYPE_TRACING, BPF_TRACE_FENTRY, (__u32)id);
        rc = fd;
        if (fd >= 0) {
            int link = bpf_raw_tracepoint_open(NULL, fd);
            rc = link >= 0 ? 1 : -errno;
            if (link >= 0) {
                close(link);
            }
            close(fd);
        }
    }
    Py_END_ALLOW_THREADS
    return answer(module, rc, 0, "fentry");
}

/* Does the raw tracepoint name exist? Attaches a program that returns at once, and detaches it. */
static PyObject *probe_raw_tracepoint(PyObject *module, PyObject *arg)
{
    const char *name = PyUnicode_Check(arg) ? PyUnicode_AsUTF8(arg) : NULL;
    if (name == NULL) {
        return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_TypeError, "a tracepoint name must be a str");
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = load_tiny(BPF_PROG_TYPE_RAW_TRACEPOINT, 0, 0);
    if (rc >= 0) {
        int fd = rc;
        int link = bpf_raw_tracepoint_open(name, fd);
        rc = link >= 0 ? 1 : -errno;
        if (link >= 0) {
            close(link);
        }
        close(fd);
    }
    Py_END_ALLOW_THREADS
    return answer(module, rc, 0, "a raw tracepoint");
}

/* In the running kernel's BTF: is there a type called name (a struct, union, enum, typedef or function), and, with
 * member, does it have that member (a struct's or union's field, an enum's value)? */
static PyObject *probe_btf(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    bool has_member = nargs == 2 && args[1] != Py_None;
    if (nargs < 1 || nargs > 2 || !PyUnicode_Check(args[0]) || (has_member && !PyUnicode_Check(args[1]))) {
        return PyErr_Format(PyExc_TypeError, "_probe_btf(name: str, member: str = None)");
    }
    const char *name = PyUnicode_AsUTF8(args[0]);
    const char *member = has_member ? PyUnicode_AsUTF8(args[1]) : NULL;
    if (name == NULL || (has_member && member == NULL)) {
        return NULL;
    }
    bool found = false;
    Py_BEGIN_ALLOW_THREADS
    struct btf *vmlinux = btf__load_vmlinux_btf();
    __u32 n = vmlinux != NULL ? btf__type_cnt(vmlinux) : 0;
    for (__u32 id = 1; id < n && !found; id++) {
        const struct btf_type *t = btf__type_by_id(vmlinux, id);
        if (btf_is_var(t) || btf_is_datasec(t) || strcmp(btf__name_by_offset(vmlinux, t->name_off), name) != 0) {
            continue;
        }
        if (member == NULL) {
            found = true;
        }
        else if (btf_is_composite(t)) {
            const struct btf_member *m = btf_members(t);
            for (__u16 i = 0; i < btf_vlen(t) && !found; i++) {
                found = strcmp(btf__name_by_offset(vmlinux, m[i].name_off), member) == 0;
            }
        }
        else if (btf_is_enum(t)) {
            const struct btf_enum *e = btf_enum(t);
            for (__u16 i = 0; i < btf_vlen(t) && !found; i++) {
                found = strcmp(btf__name_by_offset(vmlinux, e[i].name_off), member) == 0;
            }
        }
        else if (btf_is_enum64(t)) {
            const struct btf_enum64 *e = btf_enum64(t);
            for (__u16 i = 0; i < btf_vlen(t) && !found; i++) {
                found = strcmp(btf__name_by_offset(vmlinux, e[i].name_off), member) == 0;
            }
        }
    }
    btf__free(vmlinux);
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(found);
}

/* The value of CONFIG_<name> in the running kernel's config (/proc/config.gz or /boot/config-*): "y", "m", a value,
 * or "" when unset, or NULL when the config cannot be read. */
static const char *kernel_config(const char *name, char *out, size_t size)
{
    char boot[300];
    gzFile f = gzopen("/proc/config.gz", "re");
    if (f == NULL) {
        FILE *r = fopen("/proc/sys/kernel/osrelease", "re");
        char release[128] = "";
        if (r != NULL) {
            if (fgets(release, sizeof(release), r) != NULL) {
                release[strcspn(release, "\n")] = '\0';
            }
            fclose(r);
        }
        snprintf(boot, sizeof(boot), "/boot/config-%s", release);
        f = gzopen(boot, "re"); /* gzopen reads plain files too */
    }
    if (f == NULL) {
        return NULL;
    }
    char line[512], key[128];
    snprintf(key, sizeof(key), "CONFIG_%s=", name);
    out[0] = '\0';
    while (gzgets(f, line, sizeof(line)) != NULL) {
        if (strncmp(line, key, strlen(key)) == 0) {
            snprintf(out, size, "%s", line + strlen(key));
            out[strcspn(out, "\n")] = '\0';
            break;
        }
    }
    gzclose(f);
    return out;
}

/* The kernel lockdown mode ("none", "integrity", "confidentiality"), or "" when unknown. securityfs is mounted
 * where it is missing (root can). */
static void lockdown_mode(char *out, size_t size)
{
    out[0] = '\0';
    FILE *f = fopen("/sys/kernel/security/lockdown", "re");
    if (f == NULL && access("/sys/kernel/security", F_OK) == 0 &&
        mount("securityfs", "/sys/kernel/security", "securityfs", 0, NULL) == 0) {
        f = fopen("/sys/kernel/security/lockdown", "re");
    }
    if (f == NULL) {
        return;
    }
    char line[128] = "";
    if (fgets(line, sizeof(line), f) != NULL) {
        char *open = strchr(line, '['), *close_ = open ? strchr(open, ']') : NULL;
        if (open != NULL && close_ != NULL) {
            snprintf(out, size, "%.*s", (int)(close_ - open - 1), open + 1);
        }
    }
    fclose(f);
}

/* Why a trampoline program (fentry/fexit/LSM/freplace) may be refused to root, as the probes see it. */
void cbpf_trampoline_diagnosis(char *out, size_t size)
{
    static const char *const needed[] = {"BPF_JIT", "FUNCTION_TRACER", "DYNAMIC_FTRACE_WITH_DIRECT_CALLS",
                                         "BPF_LSM"};
    char mode[64], value[64], missing[256] = "", have[256] = "";
    lockdown_mode(mode, sizeof(mode));
    bool config = false;
    for (size_t i = 0; i < sizeof(needed) / sizeof(needed[0]); i++) {
        const char *v = kernel_config(needed[i], value, sizeof(value));
        if (v == NULL) {
            break;
        }
        config = true;
        char *list = v[0] == 'y' ? have : missing;
        size_t len = strlen(list);
        snprintf(list + len, sizeof(have) - len, "%sCONFIG_%s", len ? ", " : "", needed[i]);
    }
    if (strcmp(mode, "confidentiality") == 0) {
        snprintf(out, size, "kernel lockdown is 'confidentiality', which forbids tracing programs%s%s",
                 missing[0] ? "; also missing: " : "", missing);
    }
    else if (missing[0]) {
        snprintf(out, size, "the kernel is built without %s (lockdown: %s)", missing, mode[0] ? mode : "unknown");
    }
    else {
        snprintf(out, size,
                 "lockdown is '%s' and the config has %s: the refusal comes from neither, but from a security module "
                 "or the machine's hypervisor; cbpf.features.fentry(name) says whether any trampoline attaches",
                 mode[0] ? mode : "unknown", config ? have : "(config not readable)");
    }
}

/* {name: number} of the BPF link types libbpf knows ("xdp", "tcx", "perf_event", ...). */
static PyObject *link_types(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    (void)module;
    PyObject *d = PyDict_New();
    for (int t = 1; d != NULL && libbpf_bpf_link_type_str((enum bpf_link_type)t) != NULL; t++) {
        PyObject *v = PyLong_FromLong(t);
        if (v == NULL || PyDict_SetItemString(d, libbpf_bpf_link_type_str((enum bpf_link_type)t), v) < 0) {
            Py_XDECREF(v);
            Py_CLEAR(d);
            break;
        }
        Py_DECREF(v);
    }
    return d;
}

PyMethodDef cbpf_probe_methods[] = {
    {"_link_types", link_types, METH_NOARGS,
     "_link_types()\n--\n\n{name: number} of the BPF link types libbpf knows."},
    {"_probe_prog_type", probe_prog_type, METH_O,
     "_probe_prog_type(type, /)\n--\n\nWhether the kernel loads programs of this type."},
    {"_probe_map_type", probe_map_type, METH_O,
     "_probe_map_type(type, /)\n--\n\nWhether the kernel creates maps of this type."},
    {"_probe_helper", (PyCFunction)(void (*)(void))probe_helper, METH_FASTCALL,
     "_probe_helper(program_type, helper, /)\n--\n\nWhether programs of the type may call the helper (by number)."},
    {"_probe_fentry", probe_fentry, METH_O,
     "_probe_fentry(name, /)\n--\n\nWhether an fentry program loads and attaches to the kernel function name."},
    {"_probe_raw_tracepoint", probe_raw_tracepoint, METH_O,
     "_probe_raw_tracepoint(name, /)\n--\n\nWhether a raw tracepoint program attaches to name."},
    {"_probe_btf", (PyCFunction)(void (*)(void))probe_btf, METH_FASTCALL,
     "_probe_btf(name, member=None, /)\n--\n\nWhether the kernel's BTF has the type (and its member or enum value)."},
    {NULL, NULL, 0, NULL},
};

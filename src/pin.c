/* Pins on bpffs, for maps, programs and links alike: bpffs mounted where it is missing, paths made absolute (a pin
 * is found again by its path after a chdir), what a pinned fd holds, and messages that say when a path is on no
 * bpffs.
 */
#include "cbpf.h"

#include <errno.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <unistd.h>

static bool starts_with_bpffs(const char *path)
{
    return strncmp(path, "/sys/fs/bpf/", 12) == 0;
}

/* Pins need bpffs at /sys/fs/bpf: mount it when root can, or say it is missing. */
int cbpf_ensure_bpffs(cbpf_state *st, const char *path)
{
    if (!starts_with_bpffs(path) || access("/sys/fs/bpf", F_OK) != 0) {
        return 0; /* elsewhere: the kernel says whether it is a bpffs */
    }
    FILE *mounts = fopen("/proc/self/mounts", "r");
    bool mounted = false;
    if (mounts != NULL) {
        char line[512];
        while (fgets(line, sizeof(line), mounts)) {
            if (strstr(line, " /sys/fs/bpf bpf ") != NULL) {
                mounted = true;
                break;
            }
        }
        fclose(mounts);
    }
    if (!mounted && mount("bpf", "/sys/fs/bpf", "bpf", 0, NULL) != 0) {
        cbpf_set_error(st, errno, "bpffs is not mounted at /sys/fs/bpf and mounting it failed "
                                  "(mount -t bpf bpf /sys/fs/bpf)");
        return -1;
    }
    return 0;
}

/* path as an absolute path (relative ones from the current directory), as bytes: a pin is found again by it after
 * a chdir. */
static PyObject *absolute_path(PyObject *path)
{
    PyObject *encoded = NULL;
    if (!PyUnicode_FSConverter(path, &encoded)) {
        return NULL;
    }
    const char *p = PyBytes_AS_STRING(encoded);
    if (p[0] == '/') {
        return encoded;
    }
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)) == NULL) {
        Py_DECREF(encoded);
        return cbpf_set_file_error(NULL, errno, NULL);
    }
    const char *rest = p;
    while (rest[0] == '.' && rest[1] == '/') {
        rest += 2;
    }
    PyObject *abs = PyBytes_FromFormat("%s%s%s", cwd, strcmp(cwd, "/") == 0 ? "" : "/", rest);
    Py_DECREF(encoded);
    return abs;
}

/* A pin's path, absolute, as bytes (an embedded NUL is a ValueError), with bpffs mounted when it is under
 * /sys/fs/bpf. */
static PyObject *bpffs_path(cbpf_state *st, PyObject *path)
{
    PyObject *encoded = absolute_path(path);
    if (encoded != NULL && cbpf_ensure_bpffs(st, PyBytes_AS_STRING(encoded)) < 0) {
        Py_CLEAR(encoded);
    }
    return encoded;
}

/* A path on no bpffs (the kernel says EPERM or EINVAL for those): the message says so, whatever the errno. */
static bool on_bpffs(const char *path, bool parent)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    if (parent) {
        char *slash = strrchr(dir, '/');
        if (slash != NULL) {
            slash[slash == dir ? 1 : 0] = '\0';
        }
    }
    struct statfs sf;
    return statfs(dir, &sf) != 0 || sf.f_type == BPF_FS_MAGIC; /* cannot tell: let the errno speak */
}

/* Pins fd at path (bpffs mounted first when missing) and records the absolute path in *pin_path. what names the
 * thing; a failure is raised about map or program (a link's), when one is given, so that the OSError carries
 * .map/.program and .object. A thing pinned already is not pinned again: unpin() first (a second pin would be
 * forgotten by unpin()). */
int cbpf_pin_fd(cbpf_state *st, MapObject *map, ProgramObject *program, int fd, PyObject *path, const char *what,
                PyObject **pin_path)
{
    PyObject *encoded = NULL;
    int rc = -1;
    if (*pin_path != NULL) {
        PyErr_Format(PyExc_ValueError, "%s is pinned already, at %U: unpin() it first", what, *pin_path);
        return -1;
    }
    encoded = bpffs_path(st, path);
    if (encoded == NULL) {
        return -1;
    }
    const char *p = PyBytes_AS_STRING(encoded);
    if (bpf_obj_pin(fd, p) != 0) {
        int err = errno;
        const char *why = err != EEXIST && err != ENOENT && !on_bpffs(p, true)
                              ? ": the directory is not on a bpffs (pin under /sys/fs/bpf, or mount -t bpf bpf DIR)"
                              : "";
        if (map != NULL) {
            cbpf_map_error(map, err, "pinning at %s%s", p, why);
        }
        else if (program != NULL) {
            cbpf_program_error(program, err, "pinning %s at %s%s", what, p, why);
        }
        else {
            cbpf_set_error(st, err, "pinning %s at %s%s", what, p, why);
        }
        goto done;
    }
    *pin_path = PyUnicode_DecodeFSDefault(p);
    rc = *pin_path == NULL ? -1 : 0;
done:
    Py_DECREF(encoded);
    return rc;
}

/* What a BPF fd holds, from the name of its anonymous inode: "map", "program", "link", or NULL. */
const char *cbpf_fd_kind(int fd)
{
    char link[64], target[64];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    if (n < 0) {
        return NULL;
    }
    target[n] = '\0';
    if (strcmp(target, "anon_inode:bpf-map") == 0) {
        return "map";
    }
    if (strcmp(target, "anon_inode:bpf-prog") == 0) {
        return "program";
    }
    if (strcmp(target, "anon_inode:bpf_link") == 0 || strcmp(target, "anon_inode:bpf-link") == 0) {
        return "link";
    }
    return NULL;
}

/* Opens what is pinned at path, which must be a `want` ("map", "program" or "link"). Returns the fd, or -1 with
 * TypeError naming what the pin holds, or the OSError; *abs_path (when given) gets the absolute path as str. */
int cbpf_open_pinned(cbpf_state *st, PyObject *path, const char *want, PyObject **abs_path)
{
    PyObject *encoded = bpffs_path(st, path);
    int fd = -1;
    if (encoded == NULL) {
        return -1;
    }
    const char *p = PyBytes_AS_STRING(encoded);
    fd = bpf_obj_get(p);
    if (fd < 0) {
        int err = errno;
        if (err != ENOENT && !on_bpffs(p, false)) {
            cbpf_set_error(st, err, "opening the pinned %s %s: not a file on a bpffs", want, p);
        }
        else {
            cbpf_set_error(st, err, "opening the pinned %s %s", want, p);
        }
        goto done;
    }
    const char *kind = cbpf_fd_kind(fd);
    if (kind == NULL || strcmp(kind, want) != 0) {
        PyErr_Format(PyExc_TypeError, "%s holds a pinned %s, not a %s%s%s%s", p, kind ? kind : "BPF object of "
                     "another kind", want, kind ? ": open it with " : "", kind ? (strcmp(kind, "map") == 0 ? "Map" :
                     strcmp(kind, "link") == 0 ? "Link" : "Program") : "", kind ? ".from_pinned()" : "");
        close(fd);
        fd = -1;
        goto done;
    }
    if (abs_path != NULL) {
        *abs_path = PyUnicode_DecodeFSDefault(p);
        if (*abs_path == NULL) {
            close(fd);
            fd = -1;
        }
    }
done:
    Py_DECREF(encoded);
    return fd;
}

/* Removes the pin at *pin_path (gone already is fine) and forgets it. */
int cbpf_unpin(PyObject **pin_path, const char *what)
{
    if (*pin_path == NULL) {
        PyErr_Format(PyExc_ValueError, "%s is not pinned", what);
        return -1;
    }
    PyObject *encoded = NULL;
    if (!PyUnicode_FSConverter(*pin_path, &encoded)) {
        return -1;
    }
    int rc = unlink(PyBytes_AS_STRING(encoded));
    Py_DECREF(encoded);
    if (rc != 0 && errno != ENOENT) {
        cbpf_set_file_error(NULL, errno, *pin_path);
        return -1;
    }
    Py_CLEAR(*pin_path);
    return 0;
}

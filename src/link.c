/* cbpf.Link: one attachment of a program (a BPF link, perf events, a socket filter or a tc filter).
 *
 * A Link keeps its Program (and so its Object) alive. The Object keeps a list of its attached Links, borrowed, so
 * that close() can detach them all; a Link leaves the list when it detaches, by detach(), close or collection. */
#include "cbpf.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef SO_DETACH_BPF
#define SO_DETACH_BPF SO_DETACH_FILTER
#endif

/* Which process this is, without a system call (getpid() would be one per detach, and the tests count getpid
 * calls): 1 in the process that loaded cbpf, one more in each forked child (a pthread_atfork handler). Recorded at
 * attach time, compared at release; 0 means not recorded. */
static volatile unsigned long fork_generation = 1;
static pthread_once_t watch_forks_once = PTHREAD_ONCE_INIT;

static void after_fork_in_child(void)
{
    fork_generation++;
}

static void watch_forks(void)
{
    pthread_atfork(NULL, NULL, after_fork_in_child);
}

unsigned long cbpf_process_generation(void)
{
    pthread_once(&watch_forks_once, watch_forks);
    return fork_generation;
}

static const cbpf_attachment detached = {.kind = CBPF_ATTACHMENT_NONE, .fd = -1, .perf_fd = -1, .tc_netns_fd = -1};

static bool same_file(int a, int b)
{
    struct stat sa, sb;
    return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Removes a clsact filter through netlink, from the network namespace it was attached in: the caller's thread may
 * be elsewhere now (setns), and an interface index means nothing across namespaces. */
static void tc_detach(cbpf_attachment *att)
{
    int here = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    bool moved = here >= 0 && att->tc_netns_fd >= 0 && !same_file(here, att->tc_netns_fd) &&
                 setns(att->tc_netns_fd, CLONE_NEWNET) == 0;
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = att->ifindex, .attach_point = att->tc_attach_point);
    LIBBPF_OPTS(bpf_tc_opts, opts, .handle = att->tc_handle, .priority = att->tc_priority);
    bpf_tc_detach(&hook, &opts);
    if (moved) {
        setns(here, CLONE_NEWNET);
    }
    if (here >= 0) {
        close(here);
    }
    if (att->tc_netns_fd >= 0) {
        close(att->tc_netns_fd);
    }
}

/* In a process forked from the one that attached: what it inherited are copies of the parent's fds, on the
 * parent's perf events, sockets and qdiscs. Closing a copy leaves the parent's attachment in place, but libbpf's
 * detach would disable the shared perf event (PERF_EVENT_IOC_DISABLE), a socket's SO_DETACH_BPF or a netlink
 * request would remove the parent's filter: none of that runs here. A perf event fd that libbpf keeps to itself
 * stays open until this process exits. */
static void release_inherited(cbpf_attachment *att)
{
    switch (att->kind) {
    case CBPF_ATTACHMENT_LIBBPF:
        for (size_t i = 0; i < att->nlinks; i++) {
            int fd = bpf_link__fd(att->links[i]);
            bpf_link__disconnect(att->links[i]);
            if (fd >= 0) {
                close(fd);
            }
            bpf_link__destroy(att->links[i]); /* disconnected: frees, detaches nothing */
        }
        PyMem_RawFree(att->links);
        break;
    case CBPF_ATTACHMENT_TC:
        if (att->tc_netns_fd >= 0) {
            close(att->tc_netns_fd);
        }
        break;
    case CBPF_ATTACHMENT_SOCKET: /* the socket is shared with the parent: its filter stays */
    case CBPF_ATTACHMENT_NONE:
        break;
    case CBPF_ATTACHMENT_FD: /* closing a copy of a BPF link fd does not detach it */
    case CBPF_ATTACHMENT_PERF: /* nor closing copies of a perf event's fds */
        cbpf_attachment_release(att);
        return;
    }
    *att = detached;
}

/* Runs without the GIL. A pinned BPF link outlives this: the pin holds it in the kernel. */
void cbpf_attachment_release(cbpf_attachment *att)
{
    if (att->generation != 0 && att->generation != cbpf_process_generation()) {
        att->generation = 0;
        release_inherited(att);
        return;
    }
    switch (att->kind) {
    case CBPF_ATTACHMENT_LIBBPF:
        for (size_t i = 0; i < att->nlinks; i++) {
            bpf_link__destroy(att->links[i]);
        }
        PyMem_RawFree(att->links);
        break;
    case CBPF_ATTACHMENT_FD:
        close(att->fd);
        break;
    case CBPF_ATTACHMENT_PERF:
        if (att->fd >= 0) {
            close(att->fd);
        }
        close(att->perf_fd);
        break;
    case CBPF_ATTACHMENT_SOCKET: {
        /* only if the fd still names that socket: closing the socket took the filter with it, and the fd number
         * may be another file's now */
        struct stat sb;
        if (fstat(att->fd, &sb) == 0 && sb.st_dev == att->sock_dev && sb.st_ino == att->sock_ino) {
            int unused = 0;
            setsockopt(att->fd, SOL_SOCKET, SO_DETACH_BPF, &unused, sizeof(unused));
        }
        break;
    }
    case CBPF_ATTACHMENT_TC:
        tc_detach(att);
        break;
    case CBPF_ATTACHMENT_NONE:
        break;
    }
    *att = detached;
}

static void live_remove(LinkObject *self)
{
    ObjectObject *owner = self->program->owner;
    if (self->prev != NULL) {
        self->prev->next = self->next;
    }
    else if (owner->live == self) {
        owner->live = self->next;
    }
    if (self->next != NULL) {
        self->next->prev = self->prev;
    }
    self->prev = self->next = NULL;
}

/* Takes over *att (released on failure). target describes where it is attached, for repr and messages. */
PyObject *cbpf_link_new(cbpf_state *st, ProgramObject *program, cbpf_attachment *att, PyObject *target)
{
    if (target == NULL) {
        cbpf_attachment_release(att);
        return NULL;
    }
    LinkObject *self = (LinkObject *)st->Link_type->tp_alloc(st->Link_type, 0);
    if (self == NULL) {
        Py_DECREF(target);
        cbpf_attachment_release(att);
        return NULL;
    }
    self->program = (ProgramObject *)Py_NewRef(program);
    self->target = target;
    self->att = *att;
    self->att.generation = cbpf_process_generation();
    *att = detached;
    ObjectObject *owner = program->owner;
    self->next = owner->live;
    if (owner->live != NULL) {
        owner->live->prev = self;
    }
    owner->live = self;
    return (PyObject *)self;
}

/* Detaches (waiting for the kernel with the GIL released). Detached already is fine. */
void cbpf_link_detach(LinkObject *self)
{
    if (self->att.kind == CBPF_ATTACHMENT_NONE) {
        return;
    }
    live_remove(self);
    cbpf_attachment att = self->att;
    self->att = detached;
    Py_BEGIN_ALLOW_THREADS
    cbpf_attachment_release(&att);
    Py_END_ALLOW_THREADS
}

/* For Object.close(): moves every attachment of the object's links into *out (PyMem array, caller frees after
 * releasing them), leaving the links detached. Returns how many; never fails: without memory for the array, the
 * attachments are released here and now. */
Py_ssize_t cbpf_links_take_all(ObjectObject *owner, cbpf_attachment **out)
{
    Py_ssize_t n = 0;
    for (LinkObject *l = owner->live; l != NULL; l = l->next) {
        n++;
    }
    *out = n ? PyMem_Malloc((size_t)n * sizeof(**out)) : NULL;
    Py_ssize_t i = 0;
    while (owner->live != NULL) {
        LinkObject *l = owner->live;
        live_remove(l);
        if (*out != NULL) {
            (*out)[i++] = l->att;
        }
        else {
            cbpf_attachment_release(&l->att);
        }
        l->att = detached;
    }
    return *out != NULL ? n : 0;
}

static int link_fd(LinkObject *self)
{
    switch (self->att.kind) {
    case CBPF_ATTACHMENT_LIBBPF: return bpf_link__fd(self->att.links[0]);
    case CBPF_ATTACHMENT_FD:
    case CBPF_ATTACHMENT_PERF: return self->att.fd;
    default: return -1;
    }
}

static int check_attached(LinkObject *self)
{
    if (self->att.kind == CBPF_ATTACHMENT_NONE) {
        PyErr_Format(PyExc_ValueError, "Link %U of program '%U' is detached", self->target, self->program->name);
        return -1;
    }
    return 0;
}

static PyObject *Link_detach(LinkObject *self, PyObject *Py_UNUSED(ignored))
{
    /* a pinned link lives on in bpffs after the process: detach() means it, so the pin goes too; in a forked
     * child, the pin its parent made stays the parent's */
    if (self->pin_path != NULL && self->pin_generation == cbpf_process_generation() &&
        cbpf_unpin(&self->pin_path, "link") < 0) {
        return NULL;
    }
    cbpf_link_detach(self);
    Py_RETURN_NONE;
}

static PyObject *Link_pin(LinkObject *self, PyObject *path)
{
    if (check_attached(self) < 0) {
        return NULL;
    }
    if (self->att.kind == CBPF_ATTACHMENT_LIBBPF && self->att.nlinks > 1) {
        return PyErr_Format(PyExc_ValueError, "Link %U holds %zu perf events (one per CPU): pin a Link of one CPU",
                            self->target, self->att.nlinks);
    }
    int fd = link_fd(self);
    if (fd < 0) {
        return PyErr_Format(PyExc_ValueError, "Link %U is not a BPF link (a socket filter or a tc filter on a clsact "
                            "qdisc): it cannot be pinned", self->target);
    }
    char what[256];
    snprintf(what, sizeof(what), "link %s", cbpf_utf8(self->target));
    if (cbpf_pin_fd(cbpf_state_from_type(Py_TYPE(self)), NULL, self->program, fd, path, what, &self->pin_path) < 0) {
        return NULL;
    }
    self->pin_generation = cbpf_process_generation();
    Py_RETURN_NONE;
}

static PyObject *Link_unpin(LinkObject *self, PyObject *Py_UNUSED(ignored))
{
    if (cbpf_unpin(&self->pin_path, "link") < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* Reads a BPF iterator to its end: runs without the GIL. Returns the bytes (PyMem_Raw) or NULL with errno. */
static char *read_iterator(int fd, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = PyMem_RawMalloc(cap);
    while (buf != NULL) {
        if (n == cap) {
            char *grown = cbpf_checked_mul(cap, 2, &cap) ? NULL : PyMem_RawRealloc(buf, cap);
            if (grown == NULL) {
                PyMem_RawFree(buf);
                errno = ENOMEM;
                return NULL;
            }
            buf = grown;
        }
        ssize_t got = read(fd, buf + n, cap - n);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got < 0) {
            int err = errno;
            PyMem_RawFree(buf);
            errno = err;
            return NULL;
        }
        if (got == 0) {
            *len = n;
            return buf;
        }
        n += (size_t)got;
    }
    errno = ENOMEM;
    return NULL;
}

static PyObject *Link_read(LinkObject *self, PyObject *Py_UNUSED(ignored))
{
    if (check_attached(self) < 0) {
        return NULL;
    }
    struct bpf_link_info info;
    __u32 info_len = sizeof(info);
    memset(&info, 0, sizeof(info));
    /* asked of the kernel: a legacy object's or a pinned program has no libbpf program to ask */
    if (link_fd(self) < 0 || bpf_link_get_info_by_fd(link_fd(self), &info, &info_len) != 0 ||
        info.type != BPF_LINK_TYPE_ITER) {
        return PyErr_Format(PyExc_TypeError, "Link %U is not an iterator: read() reads iter/... programs",
                            self->target);
    }
    int iter_fd = bpf_iter_create(link_fd(self));
    if (iter_fd < 0) {
        return cbpf_program_error(self->program, errno, "creating an iterator from link %s",
                                  cbpf_utf8(self->target));
    }
    size_t len = 0;
    char *data;
    int err;
    /* the iterator holds the link in the kernel: another thread may detach ours meanwhile */
    Py_BEGIN_ALLOW_THREADS
    data = read_iterator(iter_fd, &len);
    err = errno;
    close(iter_fd);
    Py_END_ALLOW_THREADS
    if (data == NULL) {
        return cbpf_program_error(self->program, err, "reading the iterator of link %s",
                                  cbpf_utf8(self->target));
    }
    PyObject *result = PyBytes_FromStringAndSize(data, (Py_ssize_t)len);
    PyMem_RawFree(data);
    return result;
}

/* A BPF link pinned in bpffs, with its program (Program.from_pinned's kind). The Link holds the pin as if it had
 * made it: detach() removes the pin and closes the fd (the link goes when nothing else holds it), unpin() only
 * the pin. */
static PyObject *Link_from_pinned(PyTypeObject *cls, PyObject *path)
{
    cbpf_state *st = cbpf_state_from_type(cls);
    PyObject *abs = NULL, *result = NULL;
    ProgramObject *program = NULL;
    int fd = cbpf_open_pinned(st, path, "link", &abs);
    if (fd < 0) {
        return NULL;
    }
    struct bpf_link_info info;
    __u32 len = sizeof(info);
    memset(&info, 0, sizeof(info));
    if (bpf_link_get_info_by_fd(fd, &info, &len) != 0) {
        cbpf_set_error(st, errno, "reading the info of the link pinned at %s", cbpf_utf8(abs));
        close(fd);
        goto done;
    }
    int prog_fd = bpf_prog_get_fd_by_id(info.prog_id);
    if (prog_fd < 0) {
        cbpf_set_error(st, errno, "opening the program of the link pinned at %s", cbpf_utf8(abs));
        close(fd);
        goto done;
    }
    program = cbpf_program_from_fd(st, prog_fd, abs);
    if (program == NULL) {
        close(fd);
        goto done;
    }
    const char *type = libbpf_bpf_link_type_str((enum bpf_link_type)info.type);
    cbpf_attachment att = {.kind = CBPF_ATTACHMENT_FD, .fd = fd, .perf_fd = -1, .tc_netns_fd = -1};
    result = cbpf_link_new(st, program, &att, PyUnicode_FromFormat("%s link pinned at %U", type ? type : "a", abs));
    if (result != NULL) {
        ((LinkObject *)result)->pin_path = Py_NewRef(abs);
        ((LinkObject *)result)->pin_generation = cbpf_process_generation();
    }
done:
    Py_XDECREF(program);
    Py_XDECREF(abs);
    return result;
}

static PyObject *Link_enter(LinkObject *self, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(self);
}

static PyObject *Link_exit(LinkObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)args;
    (void)nargs;
    PyObject *r = Link_detach(self, NULL);
    if (r == NULL) {
        return NULL;
    }
    Py_DECREF(r);
    Py_RETURN_FALSE;
}

static PyObject *Link_get_fd(LinkObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromLong(link_fd(self));
}

static PyObject *Link_get_id(LinkObject *self, void *Py_UNUSED(closure))
{
    int fd = link_fd(self);
    struct bpf_link_info info;
    __u32 len = sizeof(info);
    memset(&info, 0, sizeof(info));
    if (fd < 0 || bpf_link_get_info_by_fd(fd, &info, &len) != 0) {
        return PyLong_FromLong(0);
    }
    return PyLong_FromUnsignedLong(info.id);
}

static PyObject *Link_get_attached(LinkObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->att.kind != CBPF_ATTACHMENT_NONE);
}

static PyObject *Link_get_pin_path(LinkObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->pin_path ? self->pin_path : Py_None);
}

static PyObject *Link_repr(LinkObject *self)
{
    return PyUnicode_FromFormat("<cbpf.Link %U of program '%U'%s>", self->target, self->program->name,
                                self->att.kind == CBPF_ATTACHMENT_NONE ? " (detached)" : "");
}

static int Link_traverse(LinkObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->program);
    return 0;
}

static int Link_clear(LinkObject *self)
{
    if (self->program != NULL) {
        cbpf_link_detach(self); /* the list it is on belongs to the program's object */
    }
    Py_CLEAR(self->program);
    return 0;
}

static void Link_dealloc(LinkObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Link_clear(self);
    Py_CLEAR(self->target);
    Py_CLEAR(self->pin_path);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyMethodDef Link_methods[] = {
    {"detach", (PyCFunction)Link_detach, METH_NOARGS,
     "detach($self, /)\n--\n\nDetaches the program (and removes the pin, if pinned). Safe to call twice."},
    {"pin", (PyCFunction)Link_pin, METH_O,
     "pin($self, path, /)\n--\n\nPins the link in bpffs (mounted at /sys/fs/bpf when missing): the attachment then "
     "outlives this Link, its Object and the process, until unpin() or detach() or the file is removed."},
    {"unpin", (PyCFunction)Link_unpin, METH_NOARGS,
     "unpin($self, /)\n--\n\nRemoves the pin made by pin(); the link stays attached while this Link is."},
    {"from_pinned", (PyCFunction)Link_from_pinned, METH_O | METH_CLASS,
     "from_pinned($type, path, /)\n--\n\nOpens a BPF link pinned in bpffs, with its program (link.program, opened "
     "as Program.from_pinned does). detach() removes the pin (and the link, unless something else holds it); "
     "unpin() removes only the pin."},
    {"read", (PyCFunction)Link_read, METH_NOARGS,
     "read($self, /)\n--\n\nRuns an iterator link (iter/... programs) once and returns all it wrote, as bytes."},
    {"__enter__", (PyCFunction)Link_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))Link_exit, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Link_members[] = {
    {"program", T_OBJECT_EX, offsetof(LinkObject, program), READONLY, "The Program attached."},
    {"target", T_OBJECT_EX, offsetof(LinkObject, target), READONLY, "Where it is attached, as text."},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef Link_getset[] = {
    {"fd", (getter)Link_get_fd, NULL,
     "The BPF link's file descriptor; -1 once detached, and for socket and clsact filters, which have none.", NULL},
    {"id", (getter)Link_get_id, NULL, "The kernel's id of the BPF link (0 when there is none).", NULL},
    {"attached", (getter)Link_get_attached, NULL, "True until detached (by detach(), or its Object's close).",
     NULL},
    {"pin_path", (getter)Link_get_pin_path, NULL, "Where pin() pinned the link, or None.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Link_slots[] = {
    {Py_tp_doc, "An attached program, made by Program.attach() and the attach_* methods. It detaches on detach(), "
                "at the end of a with block, when its Object is closed, or when garbage collected."},
    {Py_tp_methods, Link_methods},
    {Py_tp_members, Link_members},
    {Py_tp_getset, Link_getset},
    {Py_tp_repr, Link_repr},
    {Py_tp_traverse, Link_traverse},
    {Py_tp_clear, Link_clear},
    {Py_tp_dealloc, Link_dealloc},
    {0, NULL},
};

PyType_Spec cbpf_link_spec = {
    .name = "cbpf._cbpf.Link",
    .basicsize = sizeof(LinkObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | CBPF_TPFLAGS_NO_INSTANCES,
    .slots = Link_slots,
};

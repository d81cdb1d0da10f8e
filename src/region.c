/* cbpf._Region: kernel memory of a BPF map mapped into the process (BPF_F_MMAPABLE arrays, .bss/.data/.rodata).
 *
 * The region owns its mapping, apart from libbpf's and from the map's fd: memoryviews and numpy arrays over it stay
 * valid after the object is closed (the mapping keeps the kernel map alive), and the memory is unmapped only when
 * the last of them is gone.
 */
#include "cbpf.h"

#include <errno.h>
#include <sys/mman.h>

PyObject *cbpf_region_new(cbpf_state *st, int fd, size_t size, bool *writable)
{
    void *addr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    *writable = addr != MAP_FAILED;
    if (addr == MAP_FAILED && (errno == EPERM || errno == EACCES)) {
        addr = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0); /* frozen (.rodata): readable only */
    }
    if (addr == MAP_FAILED) {
        return cbpf_set_error(st, errno, "mmap of a BPF map");
    }
    RegionObject *self = PyObject_New(RegionObject, st->Region_type);
    if (self == NULL) {
        munmap(addr, size);
        return NULL;
    }
    self->addr = addr;
    self->size = size;
    self->writable = *writable;
    self->exports = 0;
    return (PyObject *)self;
}

static int Region_getbuffer(RegionObject *self, Py_buffer *view, int flags)
{
    if ((flags & PyBUF_WRITABLE) && !self->writable) {
        PyErr_SetString(PyExc_BufferError, "this map's memory is read-only (a frozen map such as .rodata)");
        return -1;
    }
    if (PyBuffer_FillInfo(view, (PyObject *)self, self->addr, (Py_ssize_t)self->size, !self->writable, flags) < 0) {
        return -1;
    }
    self->exports++;
    return 0;
}

static void Region_releasebuffer(RegionObject *self, Py_buffer *view)
{
    (void)view;
    self->exports--;
}

static void Region_dealloc(RegionObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    /* a buffer export holds a reference, so no export is alive here */
    munmap(self->addr, self->size);
    PyObject_Free(self);
    Py_DECREF(tp);
}

static PyType_Slot Region_slots[] = {
    {Py_tp_doc, "Kernel memory of a BPF map, mapped into the process; use memoryview() on it."},
    {Py_bf_getbuffer, Region_getbuffer},
    {Py_bf_releasebuffer, Region_releasebuffer},
    {Py_tp_dealloc, Region_dealloc},
    {0, NULL},
};

PyType_Spec cbpf_region_spec = {
    .name = "cbpf._Region",
    .basicsize = sizeof(RegionObject),
    .flags = Py_TPFLAGS_DEFAULT | CBPF_TPFLAGS_NO_INSTANCES,
    .slots = Region_slots,
};

/* cbpf._cbpf: module init, state and the module-level fast path. */
#include "cbpf.h"

#include <linux/perf_event.h>

static struct PyModuleDef cbpf_module;

/* The module state behind a type of ours or a Python subclass of one (cbpf.Map subclasses the C Map). */
cbpf_state *cbpf_state_from_type(PyTypeObject *tp)
{
    for (PyTypeObject *t = tp; t != NULL; t = t->tp_base) {
        if (t->tp_flags & Py_TPFLAGS_HEAPTYPE) {
            PyObject *module = ((PyHeapTypeObject *)t)->ht_module;
            if (module != NULL && PyModule_GetDef(module) == &cbpf_module) {
                return (cbpf_state *)PyModule_GetState(module);
            }
        }
    }
    Py_FatalError("cbpf: a type without cbpf's module state");
}

/* An unsigned argument of `bits` bits: OverflowError outside 0..2**bits-1, where "I" or "K" would wrap it. */
static int unsigned_arg(PyObject *o, unsigned bits, unsigned long long *out)
{
    PyObject *num = PyNumber_Index(o);
    if (num == NULL) {
        return 0;
    }
    int overflow = 0;
    long long s = PyLong_AsLongLongAndOverflow(num, &overflow);
    unsigned long long v = overflow > 0 ? PyLong_AsUnsignedLongLong(num) : (unsigned long long)s;
    Py_DECREF(num);
    bool too_big = overflow > 0 && v == (unsigned long long)-1 && PyErr_Occurred();
    if (too_big && !PyErr_ExceptionMatches(PyExc_OverflowError)) {
        return 0;
    }
    PyErr_Clear();
    if (too_big || overflow < 0 || (overflow == 0 && s < 0) || (bits < 64 && v >> bits)) {
        PyErr_Format(PyExc_OverflowError, "%R is out of range for an unsigned %u-bit argument (0 to 2**%u - 1)", o,
                     bits, bits);
        return 0;
    }
    *out = v;
    return 1;
}

int cbpf_u32_converter(PyObject *o, void *out)
{
    unsigned long long v;
    if (!unsigned_arg(o, 32, &v)) {
        return 0;
    }
    *(uint32_t *)out = (uint32_t)v;
    return 1;
}

int cbpf_u64_converter(PyObject *o, void *out)
{
    unsigned long long v;
    if (!unsigned_arg(o, 64, &v)) {
        return 0;
    }
    *(uint64_t *)out = (uint64_t)v;
    return 1;
}

const char *cbpf_c_string(PyObject *s, const char *what)
{
    Py_ssize_t len;
    const char *p = PyUnicode_AsUTF8AndSize(s, &len);
    if (p != NULL && strlen(p) != (size_t)len) {
        PyErr_Format(PyExc_ValueError, "%s %R contains a NUL character", what, s);
        return NULL;
    }
    return p;
}

/* A booted map by name: the registry is the Python layer's (cbpf/_boot.py, which raises the KeyError of a name no
 * booted object has, or several have); C asks it, as it asks cbpf._binaries for a path. A new reference. */
static PyObject *booted_map(cbpf_state *st, PyObject *name)
{
    if (st->find_map == NULL) {
        PyObject *module = PyImport_ImportModule("cbpf._boot");
        st->find_map = module ? PyObject_GetAttrString(module, "find") : NULL;
        Py_XDECREF(module);
        if (st->find_map == NULL) {
            return NULL;
        }
    }
    return PyObject_CallOneArg(st->find_map, name);
}

/* fetch(map, key): map is a Map or the name of a map of a booted object. */
static PyObject *module_fetch(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    cbpf_state *st = cbpf_get_state(module);
    if (nargs != 2) {
        return PyErr_Format(PyExc_TypeError, "fetch() takes exactly 2 arguments (%zd given)", nargs);
    }
    PyObject *target = args[0];
    if (PyObject_TypeCheck(target, st->Map_type)) {
        return cbpf_map_fetch(st, (MapObject *)target, args[1]);
    }
    if (!PyUnicode_Check(target)) {
        return PyErr_Format(PyExc_TypeError, "fetch() takes a Map or a map name, not %.100s",
                            Py_TYPE(target)->tp_name);
    }
    PyObject *found = booted_map(st, target);
    if (found == NULL) {
        return NULL;
    }
    PyObject *value = PyObject_TypeCheck(found, st->Map_type) ? cbpf_map_fetch(st, (MapObject *)found, args[1])
                                                              : PyErr_Format(PyExc_TypeError, "not a Map: %R", found);
    Py_DECREF(found);
    return value;
}

static PyObject *module_libbpf_version(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    (void)module;
    return PyUnicode_FromString(libbpf_version_string());
}

static PyObject *module_num_possible_cpus(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    int n = libbpf_num_possible_cpus();
    if (n < 0) {
        return cbpf_set_error(cbpf_get_state(module), n, "reading /sys/devices/system/cpu/possible");
    }
    return PyLong_FromLong(n);
}

static const char *map_type_str(int t)
{
    return libbpf_bpf_map_type_str((enum bpf_map_type)t);
}

static const char *prog_type_str(int t)
{
    return libbpf_bpf_prog_type_str((enum bpf_prog_type)t);
}

static const char *attach_type_str(int t)
{
    return libbpf_bpf_attach_type_str((enum bpf_attach_type)t);
}

/* {name: number} of an enum as this libbpf names it: the Python enums are built from these. */
static PyObject *names_of(const char *(*name_of)(int))
{
    PyObject *d = PyDict_New();
    if (d == NULL) {
        return NULL;
    }
    for (int t = 0;; t++) {
        const char *name = name_of(t);
        if (name == NULL) {
            break;
        }
        PyObject *v = PyLong_FromLong(t);
        if (v == NULL || PyDict_SetItemString(d, name, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(d);
            return NULL;
        }
        Py_DECREF(v);
    }
    return d;
}

static PyObject *module_map_types(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    (void)module;
    return names_of(map_type_str);
}

static PyObject *module_prog_types(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    (void)module;
    return names_of(prog_type_str);
}

static PyObject *module_attach_types(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    (void)module;
    return names_of(attach_type_str);
}

/* perf_event_open(2)'s type and config numbers, from the kernel's header, for the Python enums. */
static PyObject *module_perf_constants(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    (void)module;
    return Py_BuildValue(
        "{s{sisisisisisi}s{sisisisisisisisisisi}s{sisisisisisisisisisisisi}}", "type", "HARDWARE",
        PERF_TYPE_HARDWARE, "SOFTWARE", PERF_TYPE_SOFTWARE, "TRACEPOINT", PERF_TYPE_TRACEPOINT, "HW_CACHE",
        PERF_TYPE_HW_CACHE, "RAW", PERF_TYPE_RAW, "BREAKPOINT", PERF_TYPE_BREAKPOINT, "hardware", "CPU_CYCLES",
        PERF_COUNT_HW_CPU_CYCLES, "INSTRUCTIONS", PERF_COUNT_HW_INSTRUCTIONS, "CACHE_REFERENCES",
        PERF_COUNT_HW_CACHE_REFERENCES, "CACHE_MISSES", PERF_COUNT_HW_CACHE_MISSES, "BRANCH_INSTRUCTIONS",
        PERF_COUNT_HW_BRANCH_INSTRUCTIONS, "BRANCH_MISSES", PERF_COUNT_HW_BRANCH_MISSES, "BUS_CYCLES",
        PERF_COUNT_HW_BUS_CYCLES, "STALLED_CYCLES_FRONTEND", PERF_COUNT_HW_STALLED_CYCLES_FRONTEND,
        "STALLED_CYCLES_BACKEND", PERF_COUNT_HW_STALLED_CYCLES_BACKEND, "REF_CPU_CYCLES", PERF_COUNT_HW_REF_CPU_CYCLES,
        "software", "CPU_CLOCK", PERF_COUNT_SW_CPU_CLOCK, "TASK_CLOCK", PERF_COUNT_SW_TASK_CLOCK, "PAGE_FAULTS",
        PERF_COUNT_SW_PAGE_FAULTS, "CONTEXT_SWITCHES", PERF_COUNT_SW_CONTEXT_SWITCHES, "CPU_MIGRATIONS",
        PERF_COUNT_SW_CPU_MIGRATIONS, "PAGE_FAULTS_MIN", PERF_COUNT_SW_PAGE_FAULTS_MIN, "PAGE_FAULTS_MAJ",
        PERF_COUNT_SW_PAGE_FAULTS_MAJ, "ALIGNMENT_FAULTS", PERF_COUNT_SW_ALIGNMENT_FAULTS, "EMULATION_FAULTS",
        PERF_COUNT_SW_EMULATION_FAULTS, "DUMMY", PERF_COUNT_SW_DUMMY, "BPF_OUTPUT", PERF_COUNT_SW_BPF_OUTPUT,
        "CGROUP_SWITCHES", PERF_COUNT_SW_CGROUP_SWITCHES);
}

static PyMethodDef module_methods[] = {
    {"_map_types", module_map_types, METH_NOARGS,
     "_map_types()\n--\n\n{name: number} of the BPF map types libbpf knows."},
    {"_prog_types", module_prog_types, METH_NOARGS,
     "_prog_types()\n--\n\n{name: number} of the BPF program types libbpf knows."},
    {"_attach_types", module_attach_types, METH_NOARGS,
     "_attach_types()\n--\n\n{name: number} of the BPF attach types libbpf knows."},
    {"_perf_constants", module_perf_constants, METH_NOARGS,
     "_perf_constants()\n--\n\nperf_event_open(2) numbers: {'type': {...}, 'hardware': {...}, 'software': {...}}."},
    {"_btf_c_header", cbpf_btf_c_header, METH_O,
     "_btf_c_header(path, /)\n--\n\nEvery type of the BTF in path (raw BTF such as /sys/kernel/btf/vmlinux, or an "
     "ELF with a .BTF section) as C declarations: the text of a vmlinux.h, as bytes."},
    {"fetch", (PyCFunction)(void (*)(void))module_fetch, METH_FASTCALL,
     "fetch(map, key, /)\n--\n\nThe value of key in map (a Map, or the name of a map of a booted object) as an "
     "int, or None when the key is absent. Keys are ints (packed to the map's key size) or buffers of exactly "
     "key_size bytes; values must be 1, 2, 4 or 8 bytes (per-CPU maps give the sum over CPUs)."},
    {"libbpf_version", module_libbpf_version, METH_NOARGS,
     "libbpf_version()\n--\n\nThe version of the libbpf linked into cbpf."},
    {"num_possible_cpus", module_num_possible_cpus, METH_NOARGS,
     "num_possible_cpus()\n--\n\nHow many values a per-CPU map holds per key."},
    {NULL, NULL, 0, NULL},
};

static int add_type(PyObject *module, PyType_Spec *spec, PyTypeObject *base, PyTypeObject **slot)
{
    PyObject *bases = base ? PyTuple_Pack(1, (PyObject *)base) : NULL; /* 3.9 takes a tuple only */
    if (base != NULL && bases == NULL) {
        return -1;
    }
    *slot = (PyTypeObject *)PyType_FromModuleAndSpec(module, spec, bases);
    Py_XDECREF(bases);
    if (*slot == NULL) {
        return -1;
    }
#if !CBPF_HAVE_DISALLOW_INSTANTIATION
    if (spec == &cbpf_map_spec || spec == &cbpf_region_spec || spec == &cbpf_stream_spec ||
        spec == &cbpf_program_spec || spec == &cbpf_link_spec || spec == &cbpf_mapiter_spec) {
        (*slot)->tp_new = NULL;
    }
#endif
    return PyModule_AddType(module, *slot);
}

static int module_exec(PyObject *module)
{
    cbpf_state *st = cbpf_get_state(module);
    if (add_type(module, &cbpf_object_spec, NULL, &st->Object_type) < 0 ||
        add_type(module, &cbpf_map_spec, NULL, &st->Map_type) < 0 ||
        add_type(module, &cbpf_region_spec, NULL, &st->Region_type) < 0 ||
        add_type(module, &cbpf_program_spec, NULL, &st->Program_type) < 0 ||
        add_type(module, &cbpf_link_spec, NULL, &st->Link_type) < 0) {
        return -1;
    }
    /* event streams: RingBuffer and PerfBuffer share their base's methods */
    if (add_type(module, &cbpf_stream_spec, NULL, &st->Stream_type) < 0 ||
        add_type(module, &cbpf_ringbuf_spec, st->Stream_type, &st->RingBuffer_type) < 0 ||
        add_type(module, &cbpf_perfbuf_spec, st->Stream_type, &st->PerfBuffer_type) < 0 ||
        add_type(module, &cbpf_decoder_spec, NULL, &st->Decoder_type) < 0 ||
        add_type(module, &cbpf_mapiter_spec, NULL, &st->MapIter_type) < 0) {
        return -1;
    }
    PyObject *attrs = Py_BuildValue("{sssOsOsO}", "log", "", "program", Py_None, "object", Py_None, "map", Py_None);
    if (attrs == NULL) {
        return -1;
    }
    st->LoadError = PyErr_NewExceptionWithDoc(
        "cbpf.LoadError",
        "The kernel refused to load a BPF program. errno is the kernel's code; .log holds the verifier log, "
        ".object the name of the object loaded and .program the name of the program refused (None when no one "
        "program was).",
        PyExc_OSError, attrs);
    Py_DECREF(attrs);
    if (st->LoadError == NULL || PyModule_AddObjectRef(module, "LoadError", st->LoadError) < 0) {
        return -1;
    }
    if (PyModule_AddFunctions(module, cbpf_probe_methods) < 0) {
        return -1;
    }
    st->str_log = PyUnicode_InternFromString("log");
    st->str_object = PyUnicode_InternFromString("object");
    st->str_program = PyUnicode_InternFromString("program");
    st->str_map = PyUnicode_InternFromString("map");
    if (st->str_log == NULL || st->str_object == NULL || st->str_program == NULL || st->str_map == NULL) {
        return -1;
    }
    if (PyModule_AddIntConstant(module, "BPF_F_NO_PREALLOC", BPF_F_NO_PREALLOC) < 0 ||
        PyModule_AddIntConstant(module, "BPF_F_MMAPABLE", BPF_F_MMAPABLE) < 0 ||
        PyModule_AddIntConstant(module, "BPF_F_RDONLY_PROG", BPF_F_RDONLY_PROG) < 0 ||
        PyModule_AddIntConstant(module, "BPF_F_WRONLY_PROG", BPF_F_WRONLY_PROG) < 0 ||
        PyModule_AddIntConstant(module, "BPF_F_NO_COMMON_LRU", BPF_F_NO_COMMON_LRU) < 0 ||
        PyModule_AddIntConstant(module, "BPF_F_LOCK", BPF_F_LOCK) < 0 ||
        PyModule_AddIntConstant(module, "BPF_ANY", BPF_ANY) < 0 ||
        PyModule_AddIntConstant(module, "BPF_NOEXIST", BPF_NOEXIST) < 0 ||
        PyModule_AddIntConstant(module, "BPF_EXIST", BPF_EXIST) < 0) {
        return -1;
    }
    libbpf_set_print(cbpf_libbpf_print);
    return 0;
}

static int module_traverse(PyObject *module, visitproc visit, void *arg)
{
    cbpf_state *st = cbpf_get_state(module);
    Py_VISIT(st->Object_type);
    Py_VISIT(st->Map_type);
    Py_VISIT(st->Region_type);
    Py_VISIT(st->Stream_type);
    Py_VISIT(st->RingBuffer_type);
    Py_VISIT(st->PerfBuffer_type);
    Py_VISIT(st->Decoder_type);
    Py_VISIT(st->MapIter_type);
    Py_VISIT(st->Program_type);
    Py_VISIT(st->Link_type);
    Py_VISIT(st->LoadError);
    Py_VISIT(st->logger);
    Py_VISIT(st->find_binary);
    Py_VISIT(st->find_map);
    return 0;
}

static int module_clear(PyObject *module)
{
    cbpf_state *st = cbpf_get_state(module);
    Py_CLEAR(st->Object_type);
    Py_CLEAR(st->Map_type);
    Py_CLEAR(st->Region_type);
    Py_CLEAR(st->Stream_type);
    Py_CLEAR(st->RingBuffer_type);
    Py_CLEAR(st->PerfBuffer_type);
    Py_CLEAR(st->Decoder_type);
    Py_CLEAR(st->MapIter_type);
    Py_CLEAR(st->Program_type);
    Py_CLEAR(st->Link_type);
    Py_CLEAR(st->LoadError);
    Py_CLEAR(st->logger);
    Py_CLEAR(st->find_binary);
    Py_CLEAR(st->find_map);
    Py_CLEAR(st->str_log);
    Py_CLEAR(st->str_object);
    Py_CLEAR(st->str_program);
    Py_CLEAR(st->str_map);
    return 0;
}

static void module_free(void *module)
{
    module_clear((PyObject *)module);
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
#ifdef Py_mod_gil
    /* Not audited for running without the GIL: the GIL guards the objects' state (a free-threaded CPython turns
       it back on when importing this module, and says so). See docs/install.md, "Free-threaded Python". */
    {Py_mod_gil, Py_MOD_GIL_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef cbpf_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "cbpf._cbpf",
    .m_doc = "The C core of cbpf: BPF objects and maps through a statically linked libbpf.",
    .m_size = sizeof(cbpf_state),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC PyInit__cbpf(void)
{
    return PyModuleDef_Init(&cbpf_module);
}

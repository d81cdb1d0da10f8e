/* gobpf's dialect (tests/bpf/legacy/gobpf.bpf.c) for the VM kernels, where its kprobe section attaches. */
#include "legacy/gobpf.bpf.c"

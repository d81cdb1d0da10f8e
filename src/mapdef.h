/* cbpf: a map's definition, described once. Every source of one fills this struct: the legacy parser from a map
 * record, libbpf's bpf_map before load, the kernel's bpf_map_info after; the legacy loader copies it whole into
 * what it creates, and map.c reads it into a Map in one place. Pure C (the legacy parser includes it). */
#ifndef CBPF_MAPDEF_H
#define CBPF_MAPDEF_H

#include <stdint.h>

struct cbpf_map_def {
    uint32_t type, key_size, value_size, max_entries, map_flags, numa_node;
    uint64_t map_extra;
    uint32_t btf_key_type_id, btf_value_type_id; /* 0: no BTF type */
};

#endif /* CBPF_MAPDEF_H */

/* libFuzzer target of src/legacy.c's parser: cbpf_legacy_is_legacy and cbpf_legacy_parse on arbitrary bytes (no
 * syscall: parse never touches the kernel). Build and run: see fuzz/README.md.
 *
 * Beyond crashes, leaks and undefined behaviour (ASan, UBSan, LSan), it traps when the parser breaks its contract:
 *   - failure: a negative errno, a non-empty one-line message, no spec;
 *   - success: a spec whose every index and pointer is consistent (what cbpf_legacy_load relies on);
 *   - the same bytes at an odd address give the same answer (the input needs no alignment).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "legacy.h"

#define REQUIRE(cond)                                                                                                  \
    do {                                                                                                               \
        if (!(cond))                                                                                                   \
            __builtin_trap();                                                                                          \
    } while (0)

static int printable(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            return 0;
    }
    return 1;
}

static void check_spec(const struct cbpf_legacy_spec *s)
{
    REQUIRE(s->license && printable(s->license));
    REQUIRE(s->has_license || s->license[0] == '\0');
    REQUIRE(s->dialect != NULL);
    REQUIRE(s->nprogs > 0 && s->progs);
    REQUIRE(s->nmaps == 0 || s->maps);
    for (size_t i = 0; i < s->nmaps; i++) {
        const struct cbpf_legacy_map_spec *m = &s->maps[i];
        REQUIRE(m->name && m->name[0] && printable(m->name));
        REQUIRE(m->def.type != 0);
        REQUIRE(m->format >= CBPF_LEGACY_MAP_DEF && m->format <= CBPF_LEGACY_MAP_BTF);
        if (m->format == CBPF_LEGACY_MAP_DEF || m->format == CBPF_LEGACY_MAP_ELF)
            REQUIRE(m->def_size >= 20 && m->def_size % 4 == 0);
        /* sorted by section, then offset: relocations find them by binary search */
        if (i > 0)
            REQUIRE(m->def_shndx > s->maps[i - 1].def_shndx ||
                    (m->def_shndx == s->maps[i - 1].def_shndx && m->def_offset > s->maps[i - 1].def_offset));
        if (i > 0 && m->def_shndx == s->maps[i - 1].def_shndx && m->format != CBPF_LEGACY_MAP_BTF)
            REQUIRE(m->def_offset == s->maps[i - 1].def_offset + s->maps[i - 1].def_size);
        if (m->has_inner) {
            REQUIRE(m->inner_map_idx < s->nmaps && m->inner_map_idx != i);
            REQUIRE(!s->maps[m->inner_map_idx].has_inner);
        }
        REQUIRE(m->insert_into < (long)s->nmaps);
        if (m->insert_into >= 0)
            REQUIRE(s->maps[m->insert_into].has_inner && s->maps[m->insert_into].inner_map_idx == i);
        if (m->pin_path) {
            REQUIRE(strncmp(m->pin_path, CBPF_LEGACY_BPFFS "/", sizeof(CBPF_LEGACY_BPFFS)) == 0);
            REQUIRE(strstr(m->pin_path, "/..") == NULL && strstr(m->pin_path, "//") == NULL && printable(m->pin_path));
        }
    }
    for (size_t i = 0; i < s->nprogs; i++) {
        const struct cbpf_legacy_prog_spec *p = &s->progs[i];
        REQUIRE(p->name && p->section && printable(p->name) && printable(p->section));
        REQUIRE(p->prog_type != BPF_PROG_TYPE_UNSPEC || p->attach_kind == CBPF_LEGACY_ATTACH_NONE);
        REQUIRE(p->tail_map < (long)s->nmaps);
        if (p->tail_map >= 0)
            REQUIRE(s->maps[p->tail_map].def.type == BPF_MAP_TYPE_PROG_ARRAY);
        REQUIRE(p->insns && p->insn_cnt > 0 && p->insn_cnt <= 1000000);
        REQUIRE(p->nsubprogs < p->insn_cnt);
        if (p->attach_kind == CBPF_LEGACY_ATTACH_NONE) {
            REQUIRE(p->attach_target == NULL);
        } else {
            size_t len = strlen(p->section);
            REQUIRE(p->attach_target > p->section && p->attach_target < p->section + len);
            REQUIRE(p->attach_target[0] != '\0');
        }
        for (size_t r = 0; r < p->nrelocs; r++) {
            const struct cbpf_legacy_reloc *rl = &p->relocs[r];
            REQUIRE(rl->map_idx < s->nmaps);
            REQUIRE((size_t)rl->insn_idx + 1 < p->insn_cnt);
            REQUIRE(p->insns[rl->insn_idx].code == (BPF_LD | BPF_IMM | BPF_DW));
            REQUIRE(p->insns[rl->insn_idx].src_reg == BPF_PSEUDO_MAP_FD);
        }
        /* every bpf-to-bpf call lands inside the program */
        for (size_t k = 0; k < p->insn_cnt; k++) {
            const struct bpf_insn *in = &p->insns[k];
            if (in->code == (BPF_JMP | BPF_CALL) && in->src_reg == BPF_PSEUDO_CALL) {
                int64_t t = (int64_t)k + 1 + in->imm;
                REQUIRE(t >= 0 && (uint64_t)t < p->insn_cnt);
            }
        }
    }
}

static int parse(const uint8_t *data, size_t size, char *err, size_t errlen)
{
    struct cbpf_legacy_spec *spec = (struct cbpf_legacy_spec *)&spec; /* garbage: parse must reset it */
    memset(err, 0x55, errlen);
    int rc = cbpf_legacy_parse(data, size, &spec, err, errlen);
    REQUIRE(memchr(err, '\0', errlen) != NULL);
    if (rc == 0) {
        REQUIRE(spec != NULL);
        check_spec(spec);
        cbpf_legacy_spec_free(spec);
    } else {
        REQUIRE(rc < 0 && rc >= -4095);
        REQUIRE(spec == NULL);
        REQUIRE(err[0] != '\0' && printable(err));
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err1[512], err2[512], tiny[8];
    int legacy = cbpf_legacy_is_legacy(data, size);
    REQUIRE(legacy == 0 || legacy == 1);
    int rc = parse(data, size, err1, sizeof(err1));

    /* the same bytes, misaligned */
    uint8_t *copy = malloc(size + 1);
    if (!copy)
        return 0;
    memcpy(copy + 1, data, size);
    REQUIRE(cbpf_legacy_is_legacy(copy + 1, size) == legacy);
    REQUIRE(parse(copy + 1, size, err2, sizeof(err2)) == rc);
    REQUIRE(rc == 0 || strcmp(err1, err2) == 0);
    /* a message buffer too small for the message is truncated, not overrun; none at all is fine */
    REQUIRE(parse(copy + 1, size, tiny, sizeof(tiny)) == rc);
    struct cbpf_legacy_spec *spec = NULL;
    REQUIRE(cbpf_legacy_parse(copy + 1, size, &spec, NULL, 0) == rc);
    cbpf_legacy_spec_free(spec);
    free(copy);
    return 0;
}

/* Cheap checks of an ELF image before libbpf opens it: shapes that a compiler never makes and on which libbpf 1.7
 * reads through misaligned pointers or hands memcpy a NULL (UndefinedBehaviorSanitizer's reports on mutated
 * objects; fuzz/README.md lists them). Such an object is refused as not valid. Anything these checks cannot read
 * (not ELF64, truncated tables) is left to libbpf, which says what is wrong.
 */
#include "cbpf.h"

#include <elf.h>
#include <stdio.h>
#include <string.h>

/* The bytes [off, off + len) lie inside the image. */
static bool inside(size_t size, uint64_t off, uint64_t len)
{
    uint64_t end;
    return !cbpf_checked_add(off, len, &end) && end <= size;
}

static uint32_t u32_at(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* A .BTF or .BTF.ext section: its header's length places everything after it, so it must keep their 4-byte
 * alignment (libbpf checks the offsets that follow the header, not the header's own length). */
static int check_btf_section(const char *name, const unsigned char *data, const Elf64_Shdr *sh, char *why,
                             size_t whylen)
{
    if (sh->sh_type == SHT_NOBITS || sh->sh_size == 0) {
        snprintf(why, whylen, "section %s is empty", name);
        return -1;
    }
    if (sh->sh_offset % 4 != 0) {
        snprintf(why, whylen, "section %s at offset %llu is not 4-byte aligned", name,
                 (unsigned long long)sh->sh_offset);
        return -1;
    }
    if (sh->sh_size >= 8) {
        uint32_t hdr_len = u32_at(data + sh->sh_offset + 4); /* after magic (2), version, flags */
        if (hdr_len % 4 != 0) {
            snprintf(why, whylen, "section %s has a header of %u bytes, not a multiple of 4", name, hdr_len);
            return -1;
        }
    }
    return 0;
}

int cbpf_elf_precheck(const void *image, size_t size, char *why, size_t whylen)
{
    const unsigned char *data = image;
    Elf64_Ehdr eh;
    if (size < sizeof(eh) || memcmp(data, ELFMAG, SELFMAG) != 0 || data[EI_CLASS] != ELFCLASS64) {
        return 0;
    }
    memcpy(&eh, data, sizeof(eh));
    if (eh.e_shoff == 0 || eh.e_shnum == 0) {
        return 0;
    }
    if (eh.e_shoff % 8 != 0) {
        snprintf(why, whylen, "the section header table at offset %llu is not 8-byte aligned",
                 (unsigned long long)eh.e_shoff);
        return -1;
    }
    uint64_t table;
    if (eh.e_shentsize != sizeof(Elf64_Shdr) || cbpf_checked_mul((uint64_t)eh.e_shnum, sizeof(Elf64_Shdr), &table) ||
        !inside(size, eh.e_shoff, table) || eh.e_shstrndx >= eh.e_shnum) {
        return 0;
    }
    Elf64_Shdr names;
    memcpy(&names, data + eh.e_shoff + (uint64_t)eh.e_shstrndx * sizeof(Elf64_Shdr), sizeof(names));
    bool have_names = names.sh_type != SHT_NOBITS && inside(size, names.sh_offset, names.sh_size);
    for (uint16_t i = 1; i < eh.e_shnum; i++) {
        Elf64_Shdr sh;
        memcpy(&sh, data + eh.e_shoff + (uint64_t)i * sizeof(Elf64_Shdr), sizeof(sh));
        if ((sh.sh_type == SHT_SYMTAB || sh.sh_type == SHT_REL || sh.sh_type == SHT_RELA) && sh.sh_size != 0 &&
            sh.sh_offset % 8 != 0) {
            snprintf(why, whylen, "section %u (symbols or relocations) at offset %llu is not 8-byte aligned", i,
                     (unsigned long long)sh.sh_offset);
            return -1;
        }
        if (!have_names || sh.sh_name >= names.sh_size) {
            continue;
        }
        const char *name = (const char *)data + names.sh_offset + sh.sh_name;
        size_t room = (size_t)(names.sh_size - sh.sh_name);
        bool btf = strnlen(name, room) == 4 && memcmp(name, ".BTF", 4) == 0;
        bool ext = strnlen(name, room) == 8 && memcmp(name, ".BTF.ext", 8) == 0;
        if ((btf || ext) && (sh.sh_type == SHT_NOBITS || inside(size, sh.sh_offset, sh.sh_size)) &&
            check_btf_section(btf ? ".BTF" : ".BTF.ext", data, &sh, why, whylen) < 0) {
            return -1;
        }
    }
    return 0;
}

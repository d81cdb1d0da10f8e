/* cbpf: the loader of legacy BPF ELF objects (see legacy.h): a parsed spec's maps created, reused from or pinned to
 * bpffs, its programs relocated and loaded; attaching to kprobes, tracepoints and raw tracepoints.
 */
#include "legacy.h"
#include "legacy_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <linux/perf_event.h>

#include <bpf/bpf.h>

#define INSN_SZ sizeof(struct bpf_insn)
#define MAX_PROG_INSNS 1000000u /* the kernel's BPF_COMPLEXITY_LIMIT_INSNS */
#define OP_LD_IMM64 (BPF_LD | BPF_IMM | BPF_DW)
#define LOG_START (256u * 1024)     /* first verifier log buffer */
#define LOG_MAX (16u * 1024 * 1024) /* the largest verifier log kept */

#define fail cbpf_legacy_fail

/* ---------------------------------------------------------------- loading */

/* The kernel takes object names of up to 15 characters among [A-Za-z0-9_.]. */
static void kernel_name(char dst[BPF_OBJ_NAME_LEN], const char *src)
{
    size_t i = 0;
    for (; src && src[i] && i < BPF_OBJ_NAME_LEN - 1; i++) {
        char c = src[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
        dst[i] = ok ? c : '_';
    }
    dst[i] = '\0';
}

/* LINUX_VERSION_CODE of the running kernel, from uname's release ("6.18.44-..."): what kprobe programs need. */
static uint32_t running_kernel_version(void)
{
    struct utsname u;
    unsigned a = 0, b = 0, c = 0;
    if (uname(&u) < 0 || sscanf(u.release, "%u.%u.%u", &a, &b, &c) < 2)
        return 0;
    if (a > 255)
        a = 255;
    if (b > 255)
        b = 255;
    if (c > 255)
        c = 255;
    return (a << 16) | (b << 8) | c;
}

static int read_small_file(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, len - 1);
    int e = errno;
    close(fd);
    if (n < 0)
        return -e;
    buf[n] = '\0';
    return 0;
}

/* The highest possible CPU number plus one: perf event arrays are indexed by CPU. */
static uint32_t possible_cpus(void)
{
    char buf[4096];
    unsigned long max = 0;
    int any = 0;
    if (read_small_file("/sys/devices/system/cpu/possible", buf, sizeof(buf)) == 0) {
        for (char *s = buf; *s;) {
            char *end;
            unsigned long v = strtoul(s, &end, 10);
            if (end == s)
                break;
            if (v > max || !any)
                max = v;
            any = 1;
            s = end;
            while (*s == '-' || *s == ',' || *s == '\n')
                s++;
        }
    }
    if (!any) {
        long n = sysconf(_SC_NPROCESSORS_CONF);
        return n > 0 ? (uint32_t)n : 1;
    }
    return max < UINT32_MAX ? (uint32_t)max + 1 : UINT32_MAX;
}

/* A map pinned at m->pin_path by an earlier load (or another program): reused when it is the map the object defines,
 * as tc and gobpf do. 0 with m->fd set, 1 when nothing is pinned there, or -errno. */
static int open_pinned(struct cbpf_legacy_map *m, char *err, size_t errlen)
{
    int fd = bpf_obj_get(m->pin_path);
    if (fd < 0) {
        int e = -fd;
        if (e == ENOENT)
            return 1;
        return fail(err, errlen, -e, "map '%s': opening its pin %s failed", m->name, m->pin_path);
    }
    struct bpf_map_info info;
    uint32_t len = sizeof(info);
    memset(&info, 0, sizeof(info));
    if (bpf_map_get_info_by_fd(fd, &info, &len) < 0) {
        int e = errno;
        close(fd);
        return fail(err, errlen, -e, "map '%s': %s is not a map", m->name, m->pin_path);
    }
    uint32_t want_entries = m->def.max_entries ? m->def.max_entries : info.max_entries; /* perf event array: per CPU */
    if (info.type != m->def.type || info.key_size != m->def.key_size || info.value_size != m->def.value_size ||
        info.max_entries != want_entries || info.map_flags != m->def.map_flags) {
        close(fd);
        return fail(err, errlen, -EEXIST,
                    "map '%s': the map pinned at %s is not the one the object defines (type %u, key_size %u, "
                    "value_size %u, max_entries %u, map_flags 0x%x there; %u, %u, %u, %u, 0x%x here): remove the pin "
                    "or fix the object",
                    m->name, m->pin_path, info.type, info.key_size, info.value_size, info.max_entries, info.map_flags,
                    m->def.type, m->def.key_size, m->def.value_size, m->def.max_entries, m->def.map_flags);
    }
    m->fd = fd;
    m->def.max_entries = info.max_entries;
    m->pin_reused = 1;
    return 0;
}

static int create_map(struct cbpf_legacy_obj *obj, size_t i, char *err, size_t errlen)
{
    struct cbpf_legacy_map *m = &obj->maps[i];
    char name[BPF_OBJ_NAME_LEN];
    if (m->pin_path) {
        int ret = open_pinned(m, err, errlen);
        if (ret <= 0)
            return ret;
    }
    LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = m->def.map_flags, .map_extra = m->def.map_extra);
    if (m->def.map_flags & BPF_F_NUMA_NODE)
        opts.numa_node = m->def.numa_node;
    if (m->has_inner) {
        if (m->inner_map_idx >= obj->nmaps || obj->maps[m->inner_map_idx].fd < 0)
            return fail(err, errlen, -EINVAL, "map '%s': its inner map %u was not created", m->name, m->inner_map_idx);
        opts.inner_map_fd = (uint32_t)obj->maps[m->inner_map_idx].fd;
    }
    if (m->def.type == BPF_MAP_TYPE_PERF_EVENT_ARRAY && m->def.max_entries == 0)
        m->def.max_entries = possible_cpus();
    kernel_name(name, m->name);
    int fd = bpf_map_create(m->def.type, name, m->def.key_size, m->def.value_size, m->def.max_entries, &opts);
    if (fd < 0) {
        int e = -fd;
        return fail(err, errlen, -e,
                    "map '%s' (type %u, key_size %u, value_size %u, max_entries %u, map_flags 0x%x): creation failed",
                    m->name, m->def.type, m->def.key_size, m->def.value_size, m->def.max_entries, m->def.map_flags);
    }
    m->fd = fd;
    return 0;
}

/* mkdir -p of path's directory, below /sys/fs/bpf (which exists: the caller mounted bpffs there). */
static int make_parents(const char *path)
{
    char dir[PATH_MAX];
    if (strlen(path) >= sizeof(dir))
        return -ENAMETOOLONG;
    strcpy(dir, path);
    for (char *c = dir + strlen(CBPF_LEGACY_BPFFS) + 1; (c = strchr(c, '/')) != NULL; c++) {
        *c = '\0';
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
            return -errno;
        *c = '/';
    }
    return 0;
}

/* Pins the maps this load created that have a pin path; on failure removes the pins it made. */
static int pin_maps(struct cbpf_legacy_obj *obj, char *err, size_t errlen)
{
    for (size_t i = 0; i < obj->nmaps; i++) {
        struct cbpf_legacy_map *m = &obj->maps[i];
        if (!m->pin_path || m->pin_reused || m->fd < 0)
            continue;
        int ret = make_parents(m->pin_path);
        if (ret == 0)
            ret = bpf_obj_pin(m->fd, m->pin_path);
        if (ret < 0) {
            for (size_t j = 0; j < i; j++) {
                if (obj->maps[j].pin_path && !obj->maps[j].pin_reused)
                    unlink(obj->maps[j].pin_path);
            }
            return fail(err, errlen, ret, "map '%s': pinning it at %s failed", m->name, m->pin_path);
        }
    }
    return 0;
}

/* iproute2: a tail-call section's program goes into its program array, at its key. */
static int insert_tail_calls(struct cbpf_legacy_obj *obj, char *err, size_t errlen)
{
    for (size_t i = 0; i < obj->nprogs; i++) {
        struct cbpf_legacy_prog *pr = &obj->progs[i];
        if (pr->tail_map < 0 || (size_t)pr->tail_map >= obj->nmaps || pr->fd < 0 || obj->maps[pr->tail_map].fd < 0)
            continue;
        struct cbpf_legacy_map *m = &obj->maps[pr->tail_map];
        uint32_t fd = (uint32_t)pr->fd;
        int ret = bpf_map_update_elem(m->fd, &pr->tail_key, &fd, BPF_ANY);
        if (ret < 0)
            return fail(err, errlen, ret,
                        "program '%s' (section %s): putting it at key %u of program array '%s' failed", pr->name,
                        pr->section, pr->tail_key, m->name);
    }
    return 0;
}

/* iproute2: an inner map goes into the outer map naming it, at key inner_idx. */
static int insert_inner_maps(struct cbpf_legacy_obj *obj, char *err, size_t errlen)
{
    for (size_t i = 0; i < obj->nmaps; i++) {
        struct cbpf_legacy_map *m = &obj->maps[i];
        if (m->insert_into < 0 || (size_t)m->insert_into >= obj->nmaps || m->fd < 0 || obj->maps[m->insert_into].fd < 0)
            continue;
        struct cbpf_legacy_map *outer = &obj->maps[m->insert_into];
        uint32_t fd = (uint32_t)m->fd;
        int ret = bpf_map_update_elem(outer->fd, &m->inner_idx, &fd, BPF_ANY);
        if (ret < 0)
            return fail(err, errlen, ret, "map '%s': putting it at key %u (its inner_idx) of map '%s' failed", m->name,
                        m->inner_idx, outer->name);
    }
    return 0;
}

/* Programs that would be loaded without a type: named all at once, with the fix. */
static int check_types(const struct cbpf_legacy_spec *spec, char *err, size_t errlen)
{
    char names[256] = "";
    size_t len = 0, n = 0;
    const char *first = NULL;
    for (size_t i = 0; i < spec->nprogs; i++) {
        const struct cbpf_legacy_prog_spec *ps = &spec->progs[i];
        if (!ps->autoload || ps->prog_type != BPF_PROG_TYPE_UNSPEC)
            continue;
        first = first ? first : ps->name;
        if (len < sizeof(names)) {
            int w =
                snprintf(names + len, sizeof(names) - len, "%s'%s' (section %s)", n ? ", " : "", ps->name, ps->section);
            len = w < 0 ? sizeof(names) : len + (size_t)w;
        }
        n++;
    }
    if (!n)
        return 0;
    return fail(err, errlen, -EINVAL,
                "program%s %s: no program type (the section names none): set it before load, e.g. "
                "obj.programs['%s'].type = 'socket_filter', or set autoload = False",
                n > 1 ? "s" : "", names, first);
}

/* The verifier's most telling line: the last one, unless it is the "processed N insns" summary. */
static void log_tail(const char *log, char *line, size_t len)
{
    const char *end = log + strlen(log), *best = NULL, *best_end = NULL;
    while (end > log) {
        while (end > log && (end[-1] == '\n' || end[-1] == ' '))
            end--;
        const char *start = end;
        while (start > log && start[-1] != '\n')
            start--;
        if (end > start && strncmp(start, "processed ", 10) != 0 && strncmp(start, "verification time", 17) != 0 &&
            strncmp(start, "stack depth", 11) != 0) {
            best = start;
            best_end = end;
            break;
        }
        end = start;
    }
    if (!best) {
        line[0] = '\0';
        return;
    }
    snprintf(line, len, ": %.*s", (int)(best_end - best), best);
}

static int load_prog(const struct cbpf_legacy_spec *spec, struct cbpf_legacy_obj *obj, size_t i, char **log, char *err,
                     size_t errlen)
{
    const struct cbpf_legacy_prog_spec *ps = &spec->progs[i];
    struct cbpf_legacy_prog *pr = &obj->progs[i];
    char name[BPF_OBJ_NAME_LEN], tail[256];
    struct bpf_insn *insns = NULL;
    char *buf = NULL;
    int ret = 0, fd;

    if (!ps->insns || ps->insn_cnt == 0 || ps->insn_cnt > MAX_PROG_INSNS)
        return fail(err, errlen, -EINVAL, "program '%s' has %zu instructions", ps->name, ps->insn_cnt);
    insns = malloc(ps->insn_cnt * INSN_SZ);
    if (!insns)
        return fail(err, errlen, -ENOMEM, "out of memory");
    memcpy(insns, ps->insns, ps->insn_cnt * INSN_SZ);
    for (size_t r = 0; r < ps->nrelocs; r++) {
        const struct cbpf_legacy_reloc *rl = &ps->relocs[r];
        if ((size_t)rl->insn_idx + 1 >= ps->insn_cnt || insns[rl->insn_idx].code != OP_LD_IMM64 ||
            rl->map_idx >= obj->nmaps) {
            ret = fail(err, errlen, -EINVAL, "program '%s': relocation %zu is not a map reference", ps->name, r);
            goto done;
        }
        if (obj->maps[rl->map_idx].fd < 0) {
            ret = fail(err, errlen, -EINVAL, "program '%s' uses map '%s', which was not created (its autocreate is "
                       "False)", ps->name, obj->maps[rl->map_idx].name);
            goto done;
        }
        insns[rl->insn_idx].src_reg = BPF_PSEUDO_MAP_FD;
        insns[rl->insn_idx].imm = obj->maps[rl->map_idx].fd;
        insns[rl->insn_idx + 1].imm = 0;
    }
    kernel_name(name, ps->name);
    LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = ps->expected_attach_type,
                .kern_version = obj->kern_version);
    fd = bpf_prog_load(ps->prog_type, name, spec->license, insns, ps->insn_cnt, &opts);
    if (fd >= 0) {
        pr->fd = fd;
        goto done;
    }
    int e = -fd;
    /* refused: load again with a log, as large as the verifier needs */
    size_t size = LOG_START;
    for (;;) {
        char *n = realloc(buf, size);
        if (!n)
            break;
        buf = n;
        buf[0] = '\0';
        LIBBPF_OPTS(bpf_prog_load_opts, lopts, .expected_attach_type = ps->expected_attach_type,
                    .kern_version = obj->kern_version, .log_buf = buf, .log_size = (uint32_t)size, .log_level = 1);
        fd = bpf_prog_load(ps->prog_type, name, spec->license, insns, ps->insn_cnt, &lopts);
        if (fd >= 0) { /* passed this time: keep it */
            pr->fd = fd;
            goto done;
        }
        if (fd != -ENOSPC || size >= LOG_MAX) {
            if (fd != -ENOSPC)
                e = -fd;
            break;
        }
        size_t want = lopts.log_true_size > size ? lopts.log_true_size : size * 2;
        size = want < LOG_MAX ? want : LOG_MAX;
    }
    tail[0] = '\0';
    if (buf && buf[0]) {
        if (log)
            *log = strdup(buf);
        if (!log || !*log) /* a caller with the log shows its last lines itself */
            log_tail(buf, tail, sizeof(tail));
    }
    const char *why = "";
    if (!spec->has_license && buf && strstr(buf, "GPL"))
        why = CBPF_LEGACY_NO_LICENSE_NOTE;
    ret = fail(err, errlen, -e, "program '%s' (section %s) was refused by the kernel%s%s", ps->name, ps->section, why,
               tail);
done:
    free(buf);
    free(insns);
    return ret;
}

int cbpf_legacy_load(const struct cbpf_legacy_spec *spec, struct cbpf_legacy_obj **out, char **log, char *err,
                     size_t errlen)
{
    struct cbpf_legacy_obj *obj = NULL;
    int ret = 0;

    if (err && errlen)
        err[0] = '\0';
    if (log)
        *log = NULL;
    if (!out || !spec || !spec->license)
        return fail(err, errlen, -EINVAL, "no spec to load");
    *out = NULL;
    obj = calloc(1, sizeof(*obj));
    if (!obj)
        return fail(err, errlen, -ENOMEM, "out of memory");
    obj->maps = calloc(spec->nmaps ? spec->nmaps : 1, sizeof(*obj->maps));
    obj->progs = calloc(spec->nprogs ? spec->nprogs : 1, sizeof(*obj->progs));
    obj->license = strdup(spec->license);
    obj->has_license = spec->has_license;
    if (!obj->maps || !obj->progs || !obj->license) {
        free(obj->maps);
        free(obj->progs);
        free(obj->license);
        free(obj);
        return fail(err, errlen, -ENOMEM, "out of memory");
    }
    /* every fd -1 first, so that a failure anywhere can close what exists */
    for (size_t i = 0; i < spec->nmaps; i++)
        obj->maps[i].fd = -1;
    for (size_t i = 0; i < spec->nprogs; i++)
        obj->progs[i].fd = -1;
    obj->nmaps = spec->nmaps;
    obj->nprogs = spec->nprogs;
    obj->kern_version = running_kernel_version();

    for (size_t i = 0; i < spec->nmaps; i++) {
        const struct cbpf_legacy_map_spec *ms = &spec->maps[i];
        struct cbpf_legacy_map *m = &obj->maps[i];
        m->name = strdup(ms->name ? ms->name : "");
        m->def = ms->def;
        m->inner_map_idx = ms->inner_map_idx;
        m->has_inner = ms->has_inner;
        m->insert_into = ms->insert_into;
        m->inner_idx = ms->inner_idx;
        m->pin_path = ms->pin_path ? strdup(ms->pin_path) : NULL;
        if (!m->name || (ms->pin_path && !m->pin_path)) {
            ret = fail(err, errlen, -ENOMEM, "out of memory");
            goto fail;
        }
    }
    for (size_t i = 0; i < spec->nprogs; i++) {
        const struct cbpf_legacy_prog_spec *ps = &spec->progs[i];
        struct cbpf_legacy_prog *pr = &obj->progs[i];
        pr->name = strdup(ps->name ? ps->name : "");
        pr->section = strdup(ps->section ? ps->section : "");
        if (!pr->name || !pr->section) {
            ret = fail(err, errlen, -ENOMEM, "out of memory");
            goto fail;
        }
        pr->prog_type = ps->prog_type;
        pr->tail_map = ps->tail_map;
        pr->tail_key = ps->tail_key;
        pr->expected_attach_type = ps->expected_attach_type;
        pr->insn_cnt = ps->insn_cnt;
        pr->attach_kind = CBPF_LEGACY_ATTACH_NONE;
        if (ps->attach_kind != CBPF_LEGACY_ATTACH_NONE && ps->section && ps->attach_target &&
            ps->attach_target >= ps->section && ps->attach_target <= ps->section + strlen(ps->section)) {
            pr->attach_kind = ps->attach_kind;
            pr->attach_target = pr->section + (ps->attach_target - ps->section);
        }
    }
    if ((ret = check_types(spec, err, errlen)) < 0)
        goto fail;
    /* map-in-map templates before the maps of maps that need them */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < obj->nmaps; i++) {
            if (obj->maps[i].has_inner != pass || spec->maps[i].no_create)
                continue;
            if (spec->maps[i].has_reuse) { /* Map.reuse(): the caller's map stands in for this one */
                obj->maps[i].fd = fcntl(spec->maps[i].reuse_fd, F_DUPFD_CLOEXEC, 0);
                if (obj->maps[i].fd < 0) {
                    ret = fail(err, errlen, -errno, "map '%s': duplicating the fd of the map it reuses",
                               obj->maps[i].name);
                    goto fail;
                }
                continue;
            }
            if ((ret = create_map(obj, i, err, errlen)) < 0)
                goto fail;
        }
    }
    for (size_t i = 0; i < obj->nprogs; i++) {
        if (!spec->progs[i].autoload)
            continue;
        if ((ret = load_prog(spec, obj, i, log, err, errlen)) < 0)
            goto fail;
    }
    if ((ret = insert_inner_maps(obj, err, errlen)) < 0 || (ret = insert_tail_calls(obj, err, errlen)) < 0 ||
        (ret = pin_maps(obj, err, errlen)) < 0)
        goto fail;
    *out = obj;
    return 0;
fail:
    cbpf_legacy_close(obj);
    return ret;
}

/* ---------------------------------------------------------------- attaching */

static long perf_event_open(struct perf_event_attr *attr, int pid, int cpu, int group, unsigned long flags)
{
    return syscall(__NR_perf_event_open, attr, pid, cpu, group, flags);
}

/* Runs prog_fd on the perf event pfd (a kprobe or tracepoint): a BPF link where the kernel has them (5.15+), else the
 * older ioctl. Takes ownership of pfd: on success it is in *perf_fd (with the link in *link_fd) or, without a link, in
 * *link_fd (closing it detaches). */
static int attach_perf(int prog_fd, int pfd, const char *what, int *link_fd, int *perf_fd, char *err, size_t errlen)
{
    int link = bpf_link_create(prog_fd, pfd, BPF_PERF_EVENT, NULL);
    if (link == -EINVAL || link == -EOPNOTSUPP) {
        if (ioctl(pfd, PERF_EVENT_IOC_SET_BPF, prog_fd) < 0) {
            int e = errno;
            close(pfd);
            return fail(err, errlen, -e, "%s: PERF_EVENT_IOC_SET_BPF failed", what);
        }
    } else if (link < 0) {
        int e = -link;
        close(pfd);
        return fail(err, errlen, -e, "%s: bpf_link_create failed", what);
    }
    if (ioctl(pfd, PERF_EVENT_IOC_ENABLE, 0) < 0) {
        int e = errno;
        if (link >= 0)
            close(link);
        close(pfd);
        return fail(err, errlen, -e, "%s: enabling its perf event failed", what);
    }
    if (link >= 0) {
        *link_fd = link;
        *perf_fd = pfd;
    } else {
        *link_fd = pfd;
        *perf_fd = -1;
    }
    return 0;
}

/* A kprobe's or tracepoint's perf event, disabled until attach_perf enables it (a BPF program runs on every CPU's
 * hits whatever CPU the event is opened on). */
static int open_probe_event(struct perf_event_attr *attr)
{
    attr->sample_period = 1;
    attr->wakeup_events = 1;
    attr->disabled = 1;
    return (int)perf_event_open(attr, -1, 0, -1, PERF_FLAG_FD_CLOEXEC);
}

/* The syscall wrapper that an old kprobe target "SyS_<name>" or "sys_<name>" now is (x86-64's and arm64's), into
 * out; 0 when func is not such a name or the architecture is another. */
static int syscall_wrapper(const char *func, char *out, size_t len)
{
#if defined(__x86_64__)
    const char *arch = "x64";
#elif defined(__aarch64__)
    const char *arch = "arm64";
#else
    const char *arch = NULL;
#endif
    if (!arch || (strncmp(func, "SyS_", 4) != 0 && strncmp(func, "sys_", 4) != 0))
        return 0;
    return (size_t)snprintf(out, len, "__%s_sys_%s", arch, func + 4) < len;
}

#define KPROBE_PMU "/sys/bus/event_source/devices/kprobe"

static int attach_kprobe(int prog_fd, const char *func, uint64_t offset, int retprobe, int *link_fd, int *perf_fd,
                         char *err, size_t errlen)
{
    char buf[64], what[160];
    const char *kind = retprobe ? "kretprobe" : "kprobe";
    snprintf(what, sizeof(what), "%s %s", kind, func);
    if (access("/sys/bus/event_source/devices", F_OK) < 0)
        return fail(err, errlen, -ENOENT, "%s: no /sys/bus/event_source/devices: is sysfs mounted?", what);
    int ret = read_small_file(KPROBE_PMU "/type", buf, sizeof(buf));
    if (ret == -ENOENT)
        return fail(err, errlen, -EOPNOTSUPP,
                    "cannot attach a %s to %s: this kernel has no kprobes (built without CONFIG_KPROBES)", kind, func);
    if (ret < 0)
        return fail(err, errlen, ret, "reading " KPROBE_PMU "/type failed");
    char *end;
    unsigned long type = strtoul(buf, &end, 10);
    if (end == buf || type > UINT32_MAX)
        return fail(err, errlen, -EINVAL, KPROBE_PMU "/type holds '%s', not a number", buf);
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.size = sizeof(attr);
    attr.type = (uint32_t)type;
    if (retprobe) {
        /* "config:0": which bit of config asks for a return probe */
        ret = read_small_file(KPROBE_PMU "/format/retprobe", buf, sizeof(buf));
        unsigned long bit = 64;
        if (ret == 0 && strncmp(buf, "config:", 7) == 0)
            bit = strtoul(buf + 7, NULL, 10);
        if (bit >= 64)
            return fail(err, errlen, -EOPNOTSUPP, "the kprobe PMU does not say how to ask for a kretprobe (%s)",
                        KPROBE_PMU "/format/retprobe");
        attr.config = 1ULL << bit;
    }
    attr.config1 = (uint64_t)(uintptr_t)func; /* kprobe_func */
    attr.config2 = offset;                    /* probe_offset */
    int pfd = open_probe_event(&attr);
    char syscall_fn[128];
    if (pfd < 0 && (errno == ENOENT || errno == EINVAL) && syscall_wrapper(func, syscall_fn, sizeof(syscall_fn))) {
        /* kprobe/SyS_<name> of kernels before 4.17: the syscall's wrapper is __<arch>_sys_<name> now */
        attr.config1 = (uint64_t)(uintptr_t)syscall_fn;
        pfd = open_probe_event(&attr);
    }
    if (pfd < 0) {
        int e = errno;
        if (e == ENOENT || e == EINVAL)
            return fail(err, errlen, -ENOENT, "no kernel function '%s' that a %s can probe (see /proc/kallsyms)", func,
                        kind);
        return fail(err, errlen, -e, "%s: perf_event_open failed", what);
    }
    return attach_perf(prog_fd, pfd, what, link_fd, perf_fd, err, errlen);
}

static int attach_tracepoint(int prog_fd, const char *target, int *link_fd, int *perf_fd, char *err, size_t errlen)
{
    static const char *const roots[] = {"/sys/kernel/tracing", "/sys/kernel/debug/tracing"};
    char path[512], buf[64], what[300];
    const char *root = NULL;
    if (!cbpf_legacy_tracepoint_ok(target))
        return fail(err, errlen, -EINVAL, "'%s' is not a tracepoint: '<category>/<name>' (letters, digits, _ - .)",
                    target);
    snprintf(what, sizeof(what), "tracepoint %s", target);
    for (size_t i = 0; i < 2 && !root; i++) {
        snprintf(path, sizeof(path), "%s/events", roots[i]);
        if (access(path, F_OK) == 0)
            root = roots[i];
    }
    if (!root)
        return fail(err, errlen, -ENOENT,
                    "tracefs is not mounted (mount -t tracefs tracefs /sys/kernel/tracing): cannot attach to %s", what);
    if ((size_t)snprintf(path, sizeof(path), "%s/events/%s/id", root, target) >= sizeof(path))
        return fail(err, errlen, -ENAMETOOLONG, "tracepoint name '%s' is too long", target);
    int ret = read_small_file(path, buf, sizeof(buf));
    if (ret == -ENOENT)
        return fail(err, errlen, -ENOENT, "no tracepoint '%s' (no %s)", target, path);
    if (ret < 0)
        return fail(err, errlen, ret, "reading %s failed", path);
    char *end;
    unsigned long long id = strtoull(buf, &end, 10);
    if (end == buf)
        return fail(err, errlen, -EINVAL, "%s holds '%s', not a number", path, buf);
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.size = sizeof(attr);
    attr.type = PERF_TYPE_TRACEPOINT;
    attr.config = id;
    int pfd = open_probe_event(&attr);
    if (pfd < 0) {
        int e = errno;
        return fail(err, errlen, -e, "%s: perf_event_open failed", what);
    }
    return attach_perf(prog_fd, pfd, what, link_fd, perf_fd, err, errlen);
}

int cbpf_legacy_attach_fd(int prog_fd, enum cbpf_legacy_attach_kind kind, const char *target, uint64_t offset,
                          int *link_fd, int *perf_fd, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!link_fd || !perf_fd || !target)
        return fail(err, errlen, -EINVAL, "no target or no place for the result");
    *link_fd = *perf_fd = -1;
    if (prog_fd < 0)
        return fail(err, errlen, -EBADF, "the program is not loaded");
    switch (kind) {
    case CBPF_LEGACY_ATTACH_KPROBE:
    case CBPF_LEGACY_ATTACH_KRETPROBE:
        return attach_kprobe(prog_fd, target, offset, kind == CBPF_LEGACY_ATTACH_KRETPROBE, link_fd, perf_fd, err,
                             errlen);
    case CBPF_LEGACY_ATTACH_TRACEPOINT: return attach_tracepoint(prog_fd, target, link_fd, perf_fd, err, errlen);
    case CBPF_LEGACY_ATTACH_RAW_TP: {
        int fd = bpf_raw_tracepoint_open(target, prog_fd);
        if (fd < 0) {
            int e = -fd;
            if (e == ENOENT)
                return fail(err, errlen, -ENOENT, "no raw tracepoint '%s'", target);
            return fail(err, errlen, -e, "raw tracepoint %s: open failed", target);
        }
        *link_fd = fd;
        return 0;
    }
    default: return fail(err, errlen, -EOPNOTSUPP, "no attach point to attach to");
    }
}

void cbpf_legacy_close(struct cbpf_legacy_obj *obj)
{
    if (!obj)
        return;
    for (size_t i = 0; obj->progs && i < obj->nprogs; i++) {
        if (obj->progs[i].fd >= 0)
            close(obj->progs[i].fd);
        free(obj->progs[i].name);
        free(obj->progs[i].section);
    }
    for (size_t i = 0; obj->maps && i < obj->nmaps; i++) {
        if (obj->maps[i].fd >= 0)
            close(obj->maps[i].fd);
        free(obj->maps[i].name);
        free(obj->maps[i].pin_path);
    }
    free(obj->maps);
    free(obj->progs);
    free(obj->license);
    free(obj);
}

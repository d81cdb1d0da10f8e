/* cbpf: what the legacy parser (legacy.c) and loader (legacy_load.c) share. Not for the rest of the extension. */
#ifndef CBPF_LEGACY_INTERNAL_H
#define CBPF_LEGACY_INTERNAL_H

#include <stddef.h>

/* Writes a one-line printable message into err (when err and errlen are non-zero) and returns ret. */
int cbpf_legacy_fail(char *err, size_t errlen, int ret, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* 1 when s[0..n) is a plain path component of a tracepoint or pin name: letters, digits, _ - ., not starting with
 * a dot (so no "." or ".."). */
int cbpf_legacy_name_ok(const char *s, size_t n);

/* 1 when target is "<category>/<name>", both parts as cbpf_legacy_name_ok wants them. */
int cbpf_legacy_tracepoint_ok(const char *target);

#endif /* CBPF_LEGACY_INTERNAL_H */

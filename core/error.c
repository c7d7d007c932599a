/* Errors as values, and the log: the engine reports, the command decides. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "core/core.h"

fs_code fs_fail(fs_error *err, fs_code code, const char *fmt, ...) {
    if (err) {
        err->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

void fs_error_prefix(fs_error *err, const char *fmt, ...) {
    if (!err) return;
    char prefix[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    size_t cap = sizeof err->msg - 1, pl = strlen(prefix), ml = strnlen(err->msg, cap);
    if (pl > cap) pl = cap;
    if (ml > cap - pl) ml = cap - pl;  /* the tail of the old message gives way */
    memmove(err->msg + pl, err->msg, ml);
    memcpy(err->msg, prefix, pl);
    err->msg[pl + ml] = 0;
}

const char *fs_code_name(fs_code code) {
    switch (code) {
    case FS_OK: return "ok";
    case FS_ERR_INVALID: return "invalid argument";
    case FS_ERR_IO: return "i/o error";
    case FS_ERR_FORMAT: return "malformed file";
    case FS_ERR_NOMEM: return "out of memory";
    case FS_ERR_RANGE: return "out of range";
    case FS_ERR_COMM: return "communication error";
    case FS_ERR_UNSUPPORTED: return "unsupported";
    }
    return "unknown error";
}

static fs_log_level log_level = FS_LOG_INFO;

void fs_log_set_level(fs_log_level level) { log_level = level; }

void fs_log(fs_log_level level, const char *fmt, ...) {
    static const char *names[] = {"error", "warning", "info", "debug"};
    if (level > log_level) return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    /* One fprintf per line so lines from threads do not interleave mid-line. */
    fprintf(stderr, "freescale: %s: %s\n", names[level], line);
}

/* Counted allocations and arenas. fs_alloc keeps a small header in front of
 * each block so the process peak can be reported without a tracking table. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"

#define FS_ALIGN 64

static _Atomic size_t mem_current, mem_peak;

static void mem_add(size_t bytes) {
    size_t now = atomic_fetch_add(&mem_current, bytes) + bytes;
    size_t peak = atomic_load(&mem_peak);
    while (now > peak && !atomic_compare_exchange_weak(&mem_peak, &peak, now)) {
    }
}

void *fs_alloc(size_t bytes) {
    if (bytes > SIZE_MAX - 2 * FS_ALIGN) return NULL;
    size_t total = (bytes + FS_ALIGN - 1) / FS_ALIGN * FS_ALIGN + FS_ALIGN;
    unsigned char *base = aligned_alloc(FS_ALIGN, total);
    if (!base) return NULL;
    memcpy(base, &bytes, sizeof bytes);
    mem_add(bytes);
    return base + FS_ALIGN;
}

void fs_free(void *p) {
    if (!p) return;
    unsigned char *base = (unsigned char *)p - FS_ALIGN;
    size_t bytes;
    memcpy(&bytes, base, sizeof bytes);
    atomic_fetch_sub(&mem_current, bytes);
    free(base);
}

size_t fs_alloc_size(const void *p) {
    if (!p) return 0;
    size_t bytes;
    memcpy(&bytes, (const unsigned char *)p - FS_ALIGN, sizeof bytes);
    return bytes;
}

void fs_mem_note(size_t bytes, int add) {
    if (add) mem_add(bytes);
    else atomic_fetch_sub(&mem_current, bytes);
}

size_t fs_mem_current(void) { return atomic_load(&mem_current); }
size_t fs_mem_peak(void) { return atomic_load(&mem_peak); }
void fs_mem_reset_peak(void) { atomic_store(&mem_peak, atomic_load(&mem_current)); }

size_t fs_mem_peak_rss(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    size_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %zu kB", &kb) == 1) break;
    fclose(f);
    return kb * 1024;
}

int fs_mem_reset_peak_rss(void) {
    /* Linux: writing 5 to clear_refs resets VmHWM to the current RSS */
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return -1;
    int ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* ---------------------------------------------------------------- arenas */
struct fs_arena {
    unsigned char *base;
    size_t capacity, used, peak;
    int owns; /* base is ours to free (not so for fs_arena_over) */
};

fs_arena *fs_arena_create(size_t capacity, fs_error *err) {
    fs_arena *a = calloc(1, sizeof *a);
    if (!a) { fs_fail(err, FS_ERR_NOMEM, "arena: out of memory"); return NULL; }
    a->base = fs_alloc(capacity ? capacity : FS_ALIGN);
    if (!a->base) {
        free(a);
        fs_fail(err, FS_ERR_NOMEM, "arena: cannot reserve %zu bytes", capacity);
        return NULL;
    }
    a->capacity = capacity;
    a->owns = 1;
    /* counted as it is first used (its high-water mark), as the system gives
     * it pages: what stays resident is what was ever touched */
    fs_mem_note(fs_alloc_size(a->base), 0);
    return a;
}

fs_arena *fs_arena_over(void *base, size_t capacity, fs_error *err) {
    fs_arena *a = calloc(1, sizeof *a);
    if (!a) { fs_fail(err, FS_ERR_NOMEM, "arena: out of memory"); return NULL; }
    a->base = base;
    a->capacity = capacity;
    return a;
}

void fs_arena_destroy(fs_arena *a) {
    if (!a) return;
    if (a->owns) {
        size_t size = fs_alloc_size(a->base);   /* fs_free uncounts it whole */
        fs_mem_note(size > a->peak ? size - a->peak : 0, 1);
        fs_free(a->base);
    }
    free(a);
}

void *fs_arena_alloc(fs_arena *a, size_t bytes) {
    size_t start = (a->used + FS_ALIGN - 1) / FS_ALIGN * FS_ALIGN;
    if (start > a->capacity || bytes > a->capacity - start) return NULL;
    a->used = start + bytes;
    if (a->used > a->peak) {
        if (a->owns) fs_mem_note(a->used - a->peak, 1);
        a->peak = a->used;
    }
    return a->base + start;
}

float *fs_arena_floats(fs_arena *a, size_t n) {
    if (n > SIZE_MAX / sizeof(float)) return NULL;
    return fs_arena_alloc(a, n * sizeof(float));
}

size_t fs_arena_mark(const fs_arena *a) { return a->used; }
void fs_arena_reset(fs_arena *a, size_t mark) { if (mark <= a->used) a->used = mark; }
size_t fs_arena_used(const fs_arena *a) { return a->used; }
size_t fs_arena_peak(const fs_arena *a) { return a->peak; }
size_t fs_arena_capacity(const fs_arena *a) { return a->capacity; }

/* nn/profile.c: FS_PROFILE's table of op times (nn.h, "profile").
 *
 * One pass runs at a time per process (ranks are processes), so plain
 * statics suffice. Each helper records wall time (its parallel region,
 * fork/join and imbalance included) and process CPU time: on a machine
 * shared with other work, wall time swings with the load while CPU time per
 * FLOP stays close to the op's own cost (run with OMP_WAIT_POLICY=passive so
 * waiting threads do not spin it up). Time between helpers shows as
 * "outside the ops". */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "nn/profile.h"

static const char *const prof_kind_name[PK_COUNT] = {
    "conv", "linear", "attention", "groupnorm", "layernorm", "geglu", "add", "copy/halo/cat/up",
    "small linear"};

enum { PROF_ROWS = 512, PROF_LEVELS = 8 };
typedef struct prof_row {
    int kind, level;
    char shape[40];
    double sec, cpu, flop; /* sums over the counted evaluations */
    long calls;
} prof_row;
static struct {
    int on;          /* -1: FS_PROFILE not read yet */
    int evals;       /* evaluations begun */
    int counted;     /* evaluations whose ops are in the table */
    double eval_sec, eval_cpu; /* their wall and CPU time */
    nn_prof_time begin;
    char what[48];   /* the first evaluation's label */
    int nrows;
    prof_row rows[PROF_ROWS];
} prof = {.on = -1};

static void prof_report(void);

static int prof_enabled(void) {
    if (prof.on < 0) {
        const char *e = getenv("FS_PROFILE");
        prof.on = e && atoi(e) > 0;
        if (prof.on) atexit(prof_report);
    }
    return prof.on;
}

static nn_prof_time prof_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (nn_prof_time){fs_now(), (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec};
}

void nn_profile_eval(const nn_ctx *f, int begin) {
    if (f->dry || !prof_enabled()) return;
    nn_prof_time t = prof_now();
    if (begin) {
        if (!prof.what[0]) snprintf(prof.what, sizeof prof.what, "%s", f->what ? f->what : "pass");
        if (++prof.evals == 2) { /* drop the warm-up evaluation */
            prof.nrows = 0;
            prof.counted = 0;
            prof.eval_sec = prof.eval_cpu = 0;
        }
        prof.begin = t;
    } else {
        prof.counted++;
        prof.eval_sec += t.wall - prof.begin.wall;
        prof.eval_cpu += t.cpu - prof.begin.cpu;
    }
}

nn_prof_time nn_prof_t(const nn_ctx *f) {
    return !f->dry && prof_enabled() ? prof_now() : (nn_prof_time){0, 0};
}

void nn_prof_add(const nn_ctx *f, nn_prof_time t0, int kind, double flop, const char *fmt, ...) {
    if (t0.wall == 0.0) return;
    nn_prof_time t = prof_now();
    char shape[40];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(shape, sizeof shape, fmt, ap);
    va_end(ap);
    prof_row *r = NULL;
    for (int i = 0; i < prof.nrows && !r; i++)
        if (prof.rows[i].kind == kind && prof.rows[i].level == f->level &&
            !strcmp(prof.rows[i].shape, shape))
            r = &prof.rows[i];
    if (!r) {
        if (prof.nrows == PROF_ROWS) return;
        r = &prof.rows[prof.nrows++];
        memset(r, 0, sizeof *r);
        r->kind = kind;
        r->level = f->level;
        memcpy(r->shape, shape, sizeof shape);
    }
    r->sec += t.wall - t0.wall;
    r->cpu += t.cpu - t0.cpu;
    r->flop += flop;
    r->calls++;
}

static int prof_by_time(const void *a, const void *b) {
    double x = ((const prof_row *)a)->sec, y = ((const prof_row *)b)->sec;
    return (x < y) - (x > y);
}

static double gflops(double flop, double sec) { return sec > 0 ? flop / sec * 1e-9 : 0.0; }

/* One line: wall s/eval, % of the eval, CPU s/eval, GFLOP/eval, GFLOP per
 * wall second, GFLOP per CPU second (one core's rate). */
static void prof_line(const char *label, double sec, double cpu, double flop, double total,
                      int ev) {
    fprintf(stderr, "  %-52s %8.3f %5.1f%% %8.3f %8.2f %7.1f %7.1f\n", label, sec / ev,
            100 * sec / total, cpu / ev, flop / ev * 1e-9, gflops(flop, sec), gflops(flop, cpu));
}

static void prof_report(void) {
    const int ev = prof.counted > 0 ? prof.counted : 1;
    double sec_k[PK_COUNT] = {0}, cpu_k[PK_COUNT] = {0}, flop_k[PK_COUNT] = {0};
    double ops = 0, ops_cpu = 0, flop_all = 0;
    for (int i = 0; i < prof.nrows; i++) {
        const prof_row *r = &prof.rows[i];
        sec_k[r->kind] += r->sec;
        cpu_k[r->kind] += r->cpu;
        flop_k[r->kind] += r->flop;
        ops += r->sec;
        ops_cpu += r->cpu;
        flop_all += r->flop;
    }
    const double total = prof.eval_sec > ops ? prof.eval_sec : ops;
    char label[96];
    fprintf(stderr,
            "FS_PROFILE: %s, per eval (mean of %d after the first): %.3f s wall, "
            "%.3f s CPU, %.1f GFLOP/s\n",
            prof.what[0] ? prof.what : "pass", prof.counted, total / ev, prof.eval_cpu / ev,
            gflops(flop_all, total));
    fprintf(stderr, "  %-52s %8s %6s %8s %8s %7s %7s\n", "op", "wall s", "%", "CPU s", "GFLOP",
            "GF/s", "GF/cpus");
    for (int k = 0; k < PK_COUNT; k++)
        if (sec_k[k] > 0) prof_line(prof_kind_name[k], sec_k[k], cpu_k[k], flop_k[k], total, ev);
    prof_line("outside the ops", total - ops, prof.eval_cpu - ops_cpu, 0, total, ev);
    fprintf(stderr, "  by kind and level (L-1: before the first level, e.g. embeddings):\n");
    for (int k = 0; k < PK_COUNT; k++)
        for (int l = -1; l < PROF_LEVELS; l++) {
            double sec = 0, cpu = 0, flop = 0;
            for (int i = 0; i < prof.nrows; i++)
                if (prof.rows[i].kind == k && prof.rows[i].level == l) {
                    sec += prof.rows[i].sec;
                    cpu += prof.rows[i].cpu;
                    flop += prof.rows[i].flop;
                }
            snprintf(label, sizeof label, "%s L%d", prof_kind_name[k], l);
            if (sec > 0) prof_line(label, sec, cpu, flop, total, ev);
        }
    qsort(prof.rows, (size_t)prof.nrows, sizeof prof.rows[0], prof_by_time);
    fprintf(stderr, "  by shape, slowest first (calls per eval):\n");
    for (int i = 0; i < prof.nrows; i++) {
        const prof_row *r = &prof.rows[i];
        if (r->sec < 0.002 * total) break;
        snprintf(label, sizeof label, "%s L%d %s (%ld)", prof_kind_name[r->kind], r->level,
                 r->shape, r->calls / ev);
        prof_line(label, r->sec, r->cpu, r->flop, total, ev);
    }
}

/* freescale plan JOB.yaml [--ranks N[,N...]] [--mem GB] [--set key=value]...
 * What a render of the job holds per rank, stage by stage, for some rank
 * counts, before any GPU hour is spent: one process, no MPI, no weights read
 * (the model is opened: names and shapes). With --mem, which counts fit and
 * the smallest count that fits every stage. The figures are the worker's
 * (fs_worker_plan: the networks' own sizing passes and the render's
 * buffers); this file reads the job and prints them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "coordinator/commands.h"
#include "jobs/jobs.h"
#include "worker/worker.h"

#define MAX_COUNTS 32
#define SEARCH_MAX 1024   /* --mem looks for the smallest fitting count up to here */

static int usage_error(const char *why) {
    if (why) fprintf(stderr, "freescale plan: %s\n", why);
    fprintf(stderr, "usage: freescale plan JOB.yaml [--ranks N[,N...]] [--mem GB] "
                    "[--set key=value]...\n");
    return 2;
}

/* "1,2,4,8": each 1..FS_MAX_RANKS. */
static int parse_counts(const char *s, int *out, int *n) {
    *n = 0;
    while (*s) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v < 1 || v > FS_MAX_RANKS || *n == MAX_COUNTS ||
            (*end && *end != ','))
            return -1;
        out[(*n)++] = (int)v;
        s = *end ? end + 1 : end;
        if (*end && !*s) return -1;   /* a trailing comma */
    }
    return *n ? 0 : -1;
}

/* Bytes as people read them (10^6, 10^9), in one of 8 rotating buffers so
 * one printf can show several. */
static const char *H(size_t b) {
    static char buf[8][32];
    static int at;
    char *o = buf[at = (at + 1) % 8];
    if (b >= 1000000000u) snprintf(o, sizeof buf[0], "%.2f GB", b / 1e9);
    else snprintf(o, sizeof buf[0], "%.1f MB", b / 1e6);
    return o;
}

/* The phase that decides a plan's peak. */
static void largest_phase(const fs_job_plan *p, char *out, size_t cap) {
    size_t best = p->peak_text;
    snprintf(out, cap, "text encoders");
    for (int s = 0; s < p->n_stages; s++) {
        if (p->stage[s].peak_unet > best)
            best = p->stage[s].peak_unet, snprintf(out, cap, "stage %d UNet", s);
        if (p->stage[s].peak_vae > best)
            best = p->stage[s].peak_vae, snprintf(out, cap, "stage %d VAE", s);
    }
}

typedef struct plan_set {
    int n, counts[MAX_COUNTS];
    int ok[MAX_COUNTS];          /* 1: planned; 0: impossible count */
    fs_job_plan plans[MAX_COUNTS];
} plan_set;

static void print_stage(const fs_job *job, const plan_set *ps, int s, int max_ranks) {
    const fs_stage_plan *first = NULL;
    for (int i = 0; i < ps->n && !first; i++)
        if (ps->ok[i]) first = &ps->plans[i].stage[s];
    if (!first) return;
    printf("\nstage %d: %dx%d px, latent %dx%d", s, first->img_w, first->img_h, first->lat_w,
           first->lat_h);
    if (first->evals == 0) printf(", the input image encoded (no UNet steps)");
    else printf(", steps %d-%d (%d UNet evaluations)", first->first_step, job->steps - 1,
                first->evals);
    if (s > 0) {
        if (first->max_dilation > 1)
            printf(", dilation %d while step < %d", first->max_dilation, job->dilate_tau);
        if (job->scale_fusion) printf(", scale fusion");
        printf(", %s upsample", job->upsample_latent ? "latent" : "RGB");
    }
    if (job->freeu) printf(", FreeU");
    printf("\n  %5s %6s %11s %10s %11s %11s %11s %11s %11s\n", "ranks", "rows", "UNet act",
           "GFLOP/eval", "decode act", "encode act", "UNet phase", "VAE phase", "peak");
    for (int i = 0; i < ps->n; i++) {
        if (!ps->ok[i]) {
            printf("  %5d  impossible: at most %d rank(s)\n", ps->counts[i], max_ranks);
            continue;
        }
        const fs_stage_plan *sp = &ps->plans[i].stage[s];
        char rows[24];
        if (sp->min_rows == sp->max_rows) snprintf(rows, sizeof rows, "%d", sp->max_rows);
        else snprintf(rows, sizeof rows, "%d-%d", sp->min_rows, sp->max_rows);
        printf("  %5d %6s %11s %10.3f %11s %11s %11s %11s %11s\n", ps->counts[i], rows,
               sp->evals ? H(sp->unet_act_bytes) : "-", sp->unet_flops / 1e9,
               sp->decode_act_bytes ? H(sp->decode_act_bytes) : "-",
               sp->encode_act_bytes ? H(sp->encode_act_bytes) : "-",
               sp->evals ? H(sp->peak_unet) : "-", sp->peak_vae ? H(sp->peak_vae) : "-",
               H(sp->peak_bytes));
    }
}

/* The smallest count in 1..limit whose peak fits: binary search from 2 up,
 * the per-rank peak not growing with the count there (the largest strip
 * only shrinks; one rank alone skips the tiled VAE's gathered input, hence
 * its own test). Returns 0 when none does. */
static int smallest_fit(const fs_job *job, fs_models *models, int limit, size_t mem,
                        fs_job_plan *tmp, fs_error *err, int *failed) {
    *failed = 0;
    if (fs_worker_plan(job, models, 1, tmp, err)) return *failed = 1, 0;
    if (tmp->peak_bytes <= mem) return 1;
    int lo = 2, hi = limit, found = 0;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        if (fs_worker_plan(job, models, mid, tmp, err)) return *failed = 1, 0;
        if (tmp->peak_bytes <= mem) found = mid, hi = mid - 1;
        else lo = mid + 1;
    }
    /* tmp: the plan of the count found (or of the largest one tried) */
    if (fs_worker_plan(job, models, found ? found : limit, tmp, err)) return *failed = 1, 0;
    return found;
}

static int report(const char *path, const fs_job *job, fs_models *models, plan_set *ps,
                  double mem_gb) {
    fs_error err = {0};
    const fs_job_plan *p0 = NULL;
    int max_ranks = FS_MAX_RANKS;
    for (int i = 0; i < ps->n; i++) {
        fs_code rc = fs_worker_plan(job, models, ps->counts[i], &ps->plans[i], &err);
        max_ranks = ps->plans[i].max_ranks;
        if (rc == FS_ERR_RANGE && ps->counts[i] > max_ranks) continue;
        if (rc) { fprintf(stderr, "freescale plan: %s\n", err.msg); return 1; }
        ps->ok[i] = 1;
        if (!p0) p0 = &ps->plans[i];
    }
    static fs_job_plan any;   /* the header's figures when every count is impossible */
    if (!p0) {
        if (fs_worker_plan(job, models, 1, &any, &err)) {
            fprintf(stderr, "freescale plan: %s\n", err.msg);
            return 1;
        }
        p0 = &any;
    }
    printf("plan of %s: %d stage(s), %d %s steps, guidance %g (UNet batch %d), prompt %d "
           "chunk(s) of 77 tokens\nmodel: %s\n", path, p0->n_stages, job->steps,
           fs_scheduler_name(job->scheduler), job->guidance, p0->batch, p0->chunks,
           fs_models_describe(models));
    static const char *const prec[FS_DTYPE_COUNT] = {[FS_DTYPE_F32] = "fp32",
                                                    [FS_DTYPE_F16] = "fp16",
                                                    [FS_DTYPE_BF16] = "bf16"};
    printf("weights held by every rank (f32 in memory, rounded to %s): text encoders %.1f M "
           "params = %s, UNet %.1f M = %s, VAE %.1f M = %s\n",
           prec[job->precision] ? prec[job->precision] : fs_dtype_name(job->precision),
           p0->text_params / 1e6, H(p0->text_weight_bytes), p0->unet_params / 1e6,
           H(p0->unet_weight_bytes), p0->vae_params / 1e6, H(p0->vae_weight_bytes));
    printf("text phase (every rank): %s = encoders %s + activations %s + conditioning %s\n",
           H(p0->peak_text), H(p0->text_weight_bytes), H(p0->text_act_bytes),
           H(p0->cond_bytes));
    printf("per rank, the largest strip, CPU ranks of %d thread(s) (FS_THREADS; the ops' "
           "scratch grows with it); MB = 10^6 bytes;\na phase = the weights it holds + its "
           "buffers + the network's activations\n", fs_threads_count());
    for (int s = 0; s < p0->n_stages; s++) print_stage(job, ps, s, max_ranks);

    size_t mem = mem_gb > 0 ? (size_t)(mem_gb * 1e9) : 0;
    printf("\npeak per rank (the largest phase of the job):\n  %5s %11s  %-16s%s\n", "ranks",
           "peak", "decided by", mem ? "  fits" : "");
    for (int i = 0; i < ps->n; i++) {
        if (!ps->ok[i]) {
            printf("  %5d  impossible: at most %d rank(s)%s\n", ps->counts[i], max_ranks,
                   mem ? "  no" : "");
            continue;
        }
        char phase[64];
        largest_phase(&ps->plans[i], phase, sizeof phase);
        printf("  %5d %11s  %-16s%s\n", ps->counts[i], H(ps->plans[i].peak_bytes), phase,
               !mem ? "" : ps->plans[i].peak_bytes <= mem ? "  yes" : "  no");
    }
    if (max_ranks < FS_MAX_RANKS)
        printf("rank counts above %d are impossible: every rank needs at least one group of "
               "rows of every stage's latent\n", max_ranks);
    int first_fits = ps->ok[0];
    if (mem) {
        int limit = max_ranks < SEARCH_MAX ? max_ranks : SEARCH_MAX, failed;
        static fs_job_plan tmp;
        int best = smallest_fit(job, models, limit, mem, &tmp, &err, &failed);
        if (failed) { fprintf(stderr, "freescale plan: %s\n", err.msg); return 1; }
        if (best) {
            char phase[64];
            largest_phase(&tmp, phase, sizeof phase);
            printf("with %g GB per rank: the smallest rank count that fits every stage is %d "
                   "(peak %s, %s)\n", mem_gb, best, H(tmp.peak_bytes), phase);
        } else {
            printf("with %g GB per rank: no rank count from 1 to %d fits (at %d the peak is "
                   "%s); use fewer stages, a smaller size or more memory\n", mem_gb, limit,
                   limit, H(tmp.peak_bytes));
        }
        first_fits = first_fits && ps->plans[0].peak_bytes <= mem;
    }
    return first_fits ? 0 : 3;
}

int cmd_plan(int argc, char **argv) {
    const char *path = NULL;
    plan_set *ps = calloc(1, sizeof *ps);
    if (!ps) { fprintf(stderr, "freescale plan: out of memory\n"); return 1; }
    int defaults[] = {1, 2, 4, 8};
    ps->n = 4;
    memcpy(ps->counts, defaults, sizeof defaults);
    double mem_gb = 0;
    int status = 0;
    for (int i = 0; i < argc && !status; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--set")) {
            if (!v) status = usage_error("--set needs key=value");
            i++;
        } else if (!strcmp(argv[i], "--ranks")) {
            if (!v || parse_counts(v, ps->counts, &ps->n))
                status = usage_error("--ranks wants counts 1..4096 separated by commas "
                                     "(at most 32), e.g. --ranks 4,8,16");
            i++;
        } else if (!strcmp(argv[i], "--mem")) {
            char *end = NULL;
            mem_gb = v ? strtod(v, &end) : 0;
            if (!v || *end || !(mem_gb > 0 && mem_gb <= 1e6))
                status = usage_error("--mem wants the memory of one rank in GB (10^9 bytes), "
                                     "e.g. --mem 80");
            i++;
        } else if (!strncmp(argv[i], "--set=", 6)) {
            continue;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "freescale plan: unknown option '%s'\n", argv[i]);
            status = usage_error(NULL);
        } else if (path) {
            status = usage_error("one job file at a time");
        } else {
            path = argv[i];
        }
    }
    if (!status && !path) status = usage_error("no job file given");
    fs_job *job = status ? NULL : malloc(sizeof *job);
    if (!status && !job) { fprintf(stderr, "freescale plan: out of memory\n"); status = 1; }
    fs_error err = {0};
    fs_models *models = NULL;
    if (!status) {
        /* the job as render reads it: the same parser, overrides and checks */
        fs_code rc = fs_job_load(path, job, &err);
        for (int i = 0; !rc && i < argc; i++) {
            if (!strcmp(argv[i], "--set")) rc = fs_job_set(job, argv[++i], &err);
            else if (!strncmp(argv[i], "--set=", 6)) rc = fs_job_set(job, argv[i] + 6, &err);
            else if (!strcmp(argv[i], "--ranks") || !strcmp(argv[i], "--mem")) i++;
        }
        if (!rc) rc = fs_job_validate(job, &err);
        if (!rc) rc = fs_models_open(job->model, job->precision, &models, &err);
        if (rc) { fprintf(stderr, "%s\n", err.msg); status = 1; }
    }
    if (!status) {
        fs_threads_init(0);   /* as render: the sizing passes count per-thread scratch */
        status = report(path, job, models, ps, mem_gb);
    }
    fs_models_free(models);
    free(job);
    free(ps);
    return status;
}

/* sampler/noise.c: the initial latent, from the counter-based RNG or from a
 * noise file. Both give a strip's rows without looking at the other rows, so
 * any split of the latent gives the same numbers. */
#include <stdio.h>
#include <stdlib.h>
#include "io/io.h"
#include "kernels/kernels.h"
#include "sampler/sampler.h"

/* The loops are the backend table's (kernels/steps.c, core's Philox), here
 * the CPU's on the host buffer the API takes; its ops cannot fail. */
void fs_sampler_init_noise(const fs_schedule *s, uint64_t seed, int h, int w, int c, int row0,
                           int rows, float *x) {
    (void)h;
    /* Element (y, x, ch) of the NHWC latent is normal number (y * w + x) * c
     * + ch (the contract's "* 4" for SDXL's 4 channels): a strip is one run
     * of consecutive indices starting at row0 * w * c. */
    size_t n = (size_t)rows * (size_t)w * (size_t)c;
    const fs_backend *be = fs_backend_cpu();
    (void)be->op->noise_fill(be, x, n, seed, FS_STREAM_NOISE,
                             (uint64_t)row0 * (uint64_t)w * (uint64_t)c, NULL);
    fs_sampler_scale_noise(s, x, n, x);
}

void fs_sampler_scale_noise(const fs_schedule *s, const float *noise, size_t n, float *x) {
    /* latents * scheduler.init_noise_sigma: one float32 product */
    const fs_backend *be = fs_backend_cpu();
    (void)be->op->scale(be, noise, x, n, s->init_sigma, NULL);
}

static void shape_text(const fs_st_tensor *t, char *buf, size_t cap) {
    size_t used = 0;
    used += (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < t->ndim && used < cap; d++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
    if (used < cap) snprintf(buf + used, cap - used, "]");
}

fs_code fs_noise_file_read(const char *path, int h, int w, int c, int row0, int rows, float *x,
                           fs_error *err) {
    if (h <= 0 || w <= 0 || c <= 0 || row0 < 0 || rows < 0 || row0 > h || rows > h - row0)
        return fs_fail(err, FS_ERR_RANGE, "%s: rows [%d, %d) outside a %d x %d x %d noise latent", path,
                       row0, row0 + rows, h, w, c);
    fs_safetensors *st = NULL;
    fs_code rc = fs_safetensors_open(path, &st, err);
    if (rc != FS_OK) {
        fs_error_prefix(err, "noise file: ");
        return rc;
    }
    float *tmp = NULL;
    const fs_st_tensor *t = fs_safetensors_find(st, "noise");
    if (!t) {
        rc = fs_fail(err, FS_ERR_FORMAT,
                     "%s: no tensor \"noise\" (expected F32/F16/BF16 [1, %d, %d, %d], NCHW)", path, c, h, w);
        goto done;
    }
    if (t->ndim != 4 || t->shape[0] != 1 || t->shape[1] != c || t->shape[2] != h || t->shape[3] != w) {
        char have[128];
        shape_text(t, have, sizeof have);
        rc = fs_fail(err, FS_ERR_FORMAT, "%s: tensor \"noise\" has shape %s, expected [1, %d, %d, %d] (NCHW)",
                     path, have, c, h, w);
        goto done;
    }
    if (!fs_dtype_is_float(t->dtype)) {
        rc = fs_fail(err, FS_ERR_FORMAT, "%s: tensor \"noise\" has dtype %s, expected F32, F16 or BF16", path,
                     fs_dtype_name(t->dtype));
        goto done;
    }
    /* Convert only this strip: per channel, rows [row0, row0 + rows) are one
     * contiguous run of the NCHW data (a whole-tensor read would hold the full
     * latent on every rank). */
    size_t run = (size_t)rows * (size_t)w, dsz = fs_dtype_size(t->dtype);
    tmp = malloc((run ? run : 1) * sizeof *tmp);
    if (!tmp) {
        rc = fs_fail(err, FS_ERR_NOMEM, "%s: out of memory for a %zu-value noise strip", path, run);
        goto done;
    }
    for (int ch = 0; ch < c && rc == FS_OK; ch++) {
        size_t off = ((size_t)ch * (size_t)h + (size_t)row0) * (size_t)w;
        rc = fs_convert_to_f32(tmp, (const unsigned char *)t->data + off * dsz, run, t->dtype, err);
        if (rc != FS_OK) {
            fs_error_prefix(err, "%s: tensor \"noise\": ", path);
            break;
        }
        for (size_t k = 0; k < run; k++) x[k * (size_t)c + (size_t)ch] = tmp[k];
    }
done:
    free(tmp);
    fs_safetensors_close(st);
    return rc;
}

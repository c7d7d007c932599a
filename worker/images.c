/* worker/images.c: the render's pixel side on this rank's strip: decoding a
 * stage's latent (and handing 8-bit rows to rank 0 in order), the move from
 * one cascade stage to the next (decode, bicubic in RGB, encode, posterior
 * sample; or bicubic on the latent), the job's input image and mask.
 * The bicubic resize reads rows around each output row, so the previous
 * stage's image is all-gathered first (every rank then holds it whole: the
 * memory cost is one RGB float image of the previous stage per rank).
 * In a dry run (the plan) every buffer is counted, nothing is computed. */
#include <stdlib.h>
#include <string.h>
#include "io/io.h"
#include "kernels/kernels.h"
#include "worker/render_internal.h"

#define TAG_IMAGE 701

/* The same strip cut in pixel rows (x f, the VAE's factor). */
static fs_strip_plan *pixel_plan(const fs_strip_plan *lat, int f, fs_error *err) {
    fs_strip_plan *p = calloc(1, sizeof *p);
    if (!p) { fs_fail(err, FS_ERR_NOMEM, "render: out of memory"); return NULL; }
    p->h = lat->h * f, p->parts = lat->parts, p->align = lat->align * f;
    for (int i = 0; i <= lat->parts; i++) p->row0[i] = lat->row0[i] * f;
    return p;
}

/* Every rank gets the whole map [h][row_elems] from the strips. */
static fs_code gather_all(render_run *r, const fs_strip_plan *plan, const float *own, float *full,
                          size_t row_elems) {
    if (r->dry) return FS_OK;
    if (r->size == 1) {
        memcpy(full, own, sizeof(float) * (size_t)plan->h * row_elems);
        return FS_OK;
    }
    return fs_comm_allgather_rows(r->comm, plan, own, full, 1, row_elems, r->err);
}
/* Rank 0 hands its own rows to on_rows, then every other rank's in order. */
static fs_code collect_rows(render_run *r, const fs_strip_plan *px, int width,
                            const uint8_t *mine) {
    size_t row_bytes = (size_t)width * 3;
    const fs_render_hooks *hk = r->hooks;
    if (r->rank != 0)
        return fs_comm_send_bytes(r->comm, mine, row_bytes * fs_strip_rows(px, r->rank), 0,
                                  TAG_IMAGE, r->err);
    fs_code rc = FS_OK;
    if (hk && hk->on_rows) rc = hk->on_rows(hk->user, mine, 0, fs_strip_rows(px, 0), width, r->err);
    uint8_t *buf = NULL;
    for (int q = 1; q < r->size; q++) {
        size_t bytes = row_bytes * fs_strip_rows(px, q);
        uint8_t *nb = realloc(buf, bytes ? bytes : 1);
        if (!nb) { free(buf); return fs_fail(r->err, FS_ERR_NOMEM, "render: out of memory"); }
        buf = nb;
        /* receive even after a failed write so the senders are not left waiting */
        fs_error e2 = {0};
        fs_code r2 = fs_comm_recv_bytes(r->comm, buf, bytes, q, TAG_IMAGE, &e2);
        if (!rc && r2) rc = fs_fail(r->err, r2, "%s", e2.msg);
        if (!rc && hk && hk->on_rows)
            rc = hk->on_rows(hk->user, buf, px->row0[q], fs_strip_rows(px, q), width, r->err);
    }
    free(buf);
    return rc;
}

static fs_code emit_image(render_run *r, int stage, const fs_strip_plan *px, int width,
                          int height, const float *img) {
    if (r->dry) return FS_OK;
    const fs_render_hooks *hk = r->hooks;
    size_t n = (size_t)fs_strip_rows(px, r->rank) * width * 3;
    uint8_t *u8 = malloc(n ? n : 1);
    fs_code rc = u8 ? FS_OK : fs_fail(r->err, FS_ERR_NOMEM, "render: out of memory");
    if (!rc) fs_image_to_u8(img, n, u8);
    if (!rc && r->rank == 0 && hk && hk->begin_image)
        rc = hk->begin_image(hk->user, stage, width, height, r->err);
    rc = render_agree(r, rc);
    int begun = !rc;
    if (!rc) rc = collect_rows(r, px, width, u8);
    if (begun && r->rank == 0 && hk && hk->end_image) {
        fs_code r2 = hk->end_image(hk->user, stage, !rc, r->err);
        if (!rc) rc = r2;
    }
    free(u8);
    return render_agree(r, rc);
}

fs_code render_decode(render_run *r, const stage_map *m, float **img_out, int emit) {
    if (img_out) *img_out = NULL;
    fs_code rc = run_vae_load(r);
    int rows = stage_rows(r, m), f = r->den.vae_factor;
    size_t lat = (size_t)rows * m->w * r->den.latent_channels;
    size_t pix = (size_t)f * f * rows * m->w * 3;
    float *z = rc ? NULL : run_floats(r, lat);
    float *img = rc || !z ? NULL : run_floats(r, pix);
    fs_strip_plan *px = rc || !img ? NULL : pixel_plan(m->plan, f, r->err);
    if (!rc && !px) {
        fs_error_prefix(r->err, "stage %d's image strip (%zu MB): ", m->stage, pix * 4 >> 20);
        rc = r->err->code;
    }
    rc = render_agree(r, rc);
    if (!rc) {
        if (!r->dry) rc = fs_vae_unscale(&fs_vae_get_info(r->vae)->config, m->x, z, lat);
        if (!rc) rc = run_vae(r, m, 1, z, img);
        rc = render_agree(r, rc);
    }
    if (!rc && !r->dry && r->hooks && r->hooks->on_image)
        r->hooks->on_image(r->hooks->user, m->stage, img, px->row0[r->rank], f * rows, f * m->h,
                           f * m->w);
    if (!rc && emit) rc = emit_image(r, m->stage, px, f * m->w, f * m->h, img);
    run_free(r, z);
    if (!rc && img_out) *img_out = img, img = NULL;
    run_free(r, img), free(px);
    return rc;
}

/* Own rows of a bicubic resize of the whole map `full` (in_h x in_w x c). */
static fs_code resize_rows(render_run *r, const float *full, int in_h, int in_w, int c,
                           int out_h, int out_w, int y0, int rows, float *y) {
    fs_resize_desc d = {.n = 1, .c = c, .in_h = in_h, .in_w = in_w, .out_h = out_h,
                        .out_w = out_w, .x_row0 = 0, .x_rows = in_h, .y_row0 = y0,
                        .y_rows = rows};
    const fs_backend *be = fs_backend_cpu();
    return be->op->resize_bicubic(be, &d, full, y, r->err);
}

/* moments -> latent sample of the own rows (stream of `stage`). */
static fs_code encode_sample(render_run *r, const stage_map *m, const float *img, float *z) {
    fs_code rc = run_vae_load(r);
    int rows = stage_rows(r, m);
    float *mom = rc ? NULL : run_floats(r, (size_t)rows * m->w * 2 * r->den.latent_channels + 1);
    if (!rc && !mom) rc = r->err->code;
    rc = render_agree(r, rc);
    if (!rc) rc = render_agree(r, run_vae(r, m, 0, img, mom));
    if (!rc && !r->dry)
        rc = render_agree(r, fs_vae_sample(&fs_vae_get_info(r->vae)->config, 1, m->h, m->w,
                                           m->plan->row0[r->rank], rows, mom, NULL, r->job->seed,
                                           FS_STREAM_POSTERIOR(m->stage), z));
    run_free(r, mom);
    return rc;
}

fs_code render_upsample(render_run *r, const stage_map *prev, const float *img,
                        const stage_map *next, float **z_out) {
    *z_out = NULL;
    int rows = stage_rows(r, next), f = r->den.vae_factor, c = r->den.latent_channels;
    float *z = run_floats(r, (size_t)rows * next->w * c + 1);
    fs_code rc = z ? FS_OK : r->err->code;
    float *full = NULL, *own_img = NULL, *mine = NULL;
    if (!rc && r->job->upsample_latent) {
        full = run_floats(r, (size_t)prev->h * prev->w * c);
        rc = full ? gather_all(r, prev->plan, prev->x, full, (size_t)prev->w * c) : r->err->code;
        if (!rc && !r->dry)
            rc = resize_rows(r, full, prev->h, prev->w, c, next->h, next->w,
                             next->plan->row0[r->rank], rows, z);
        rc = render_agree(r, rc);
    } else if (!rc) {
        if (!img) {
            rc = render_decode(r, prev, &own_img, 0);
            img = own_img;
        }
        fs_strip_plan *px = rc ? NULL : pixel_plan(prev->plan, f, r->err);
        size_t ph = (size_t)f * prev->h, pw = (size_t)f * prev->w;
        if (!rc && px) full = run_floats(r, ph * pw * 3);
        if (!rc && full) mine = run_floats(r, (size_t)f * f * rows * next->w * 3 + 1);
        if (!rc && (!px || !full || !mine)) {
            fs_error_prefix(r->err, "the %zux%zu image of stage %d: ", pw, ph, prev->stage);
            rc = r->err->code;
        }
        rc = render_agree(r, rc);
        if (!rc) rc = render_agree(r, gather_all(r, px, img, full, pw * 3));
        free(px);
        if (!rc) {
            if (!r->dry)
                rc = resize_rows(r, full, (int)ph, (int)pw, 3, f * next->h, f * next->w,
                                 f * next->plan->row0[r->rank], f * rows, mine);
            run_free(r, full), full = NULL;
            rc = render_agree(r, rc);
            if (!rc) rc = encode_sample(r, next, mine, z);
        }
    }
    run_free(r, full), run_free(r, own_img), run_free(r, mine);
    if (rc) run_free(r, z);
    else *z_out = z;
    return rc;
}

fs_code render_input_image(render_run *r, stage_map *m) {
    int rows = stage_rows(r, m), f = r->den.vae_factor;
    size_t n = (size_t)f * f * rows * m->w * 3;
    float *img = run_floats(r, n + 1);
    fs_code rc = img ? FS_OK : r->err->code;
    /* rank 0 read the file and handed every rank its rows (worker/inputs.c) */
    if (!rc && !r->dry) fs_image_from_u8(r->inputs.image, n, img);
    rc = render_agree(r, rc);
    if (!rc) rc = encode_sample(r, m, img, m->x);
    run_free(r, img);
    return rc;
}

fs_code render_mask(render_run *r, const stage_map *m, float **mask_out) {
    *mask_out = NULL;
    if (!r->job->mask[0]) return FS_OK;
    int rows = stage_rows(r, m), row0 = m->plan->row0[r->rank];
    float *mask = run_floats(r, (size_t)rows * m->w + 1);
    fs_code rc = mask ? FS_OK : r->err->code;
    /* nonzero is inside (the official process_image_to_bitensor), then
     * nearest; the mask's pixels were read once on rank 0 and broadcast */
    const fs_job_inputs *in = &r->inputs;
    const fs_backend *be = fs_backend_cpu();
    if (!rc && !r->dry)
        rc = be->op->mask_nearest(be, in->mask, in->mask_h, in->mask_w, m->h, m->w, row0, rows,
                                  mask, r->err);
    rc = render_agree(r, rc);
    if (rc) run_free(r, mask);
    else *mask_out = mask;
    return rc;
}

/* worker/inputs.c: the user's files a job names (input image, mask, noise
 * file) are read once, by rank 0, and handed to the other ranks: no other
 * rank opens a user file, so a file that changes or vanishes mid-job cannot
 * give ranks different data, and a shared file system sees one reader.
 *
 * Sizes are checked from the headers before any decoding: the input image
 * must be stage 0's size (a larger one is refused by fs_png_read before it
 * allocates), the mask any size up to 2^28 pixels (it is resized to every
 * stage by nearest), the noise file [1, channels, h, w] of stage 0's latent
 * (fs_noise_file_read checks the shape from the safetensors header).
 * The mask is broadcast whole (every stage resizes it); the image's rows go
 * to their owners, and the noise (one stage-0 latent, small) is broadcast. */
#include <stdlib.h>
#include <string.h>
#include "io/io.h"
#include "worker/render_internal.h"

#define TAG_INPUT_ROWS 702
#define MASK_MAX_PIXELS ((uint64_t)1 << 28)

static int several(const render_run *r) { return r->comm && r->size > 1; }

/* Rank 0's outcome of a read, known to every rank (its message stays on
 * rank 0; the others report that rank 0 failed). */
static fs_code share_outcome(render_run *r, fs_code rc, const char *what) {
    if (!several(r)) return rc;
    int code = (int)rc;
    fs_error e2 = {0};
    if (fs_comm_bcast(r->comm, &code, sizeof code, 0, &e2))
        return rc ? rc : fs_fail(r->err, e2.code, "%s", e2.msg);
    if (r->rank != 0 && code)
        return fs_fail(r->err, (fs_code)code, "rank 0 could not read the job's %s (its message "
                       "is in its own output)", what);
    return rc;
}

static fs_code read_mask(render_run *r) {
    fs_job_inputs *in = &r->inputs;
    int dims[2] = {0, 0};
    fs_code rc = FS_OK;
    if (r->rank == 0) {
        rc = fs_png_read(r->job->mask, 1, MASK_MAX_PIXELS, &in->mask, &dims[0], &dims[1],
                         r->err);
        if (rc) fs_error_prefix(r->err, "mask: ");
    }
    rc = share_outcome(r, rc, "mask");
    if (!rc && several(r)) rc = fs_comm_bcast(r->comm, dims, sizeof dims, 0, r->err);
    size_t bytes = (size_t)dims[0] * dims[1];
    if (!rc && r->rank != 0) {
        in->mask = malloc(bytes ? bytes : 1);
        if (!in->mask) rc = fs_fail(r->err, FS_ERR_NOMEM, "mask: out of memory");
    }
    rc = render_agree(r, rc);
    if (!rc && several(r)) rc = fs_comm_bcast(r->comm, in->mask, bytes, 0, r->err);
    in->mask_w = dims[0], in->mask_h = dims[1];
    return render_agree(r, rc);
}

static fs_code read_image(render_run *r, const stage_map *m) {
    fs_job_inputs *in = &r->inputs;
    const char *path = r->job->input_image;
    int f = r->den.vae_factor, W = f * m->w, H = f * m->h;
    size_t row_bytes = (size_t)W * 3;
    uint8_t *whole = NULL;
    fs_code rc = FS_OK;
    if (r->rank == 0) {
        int w = 0, h = 0;
        rc = fs_png_read(path, 3, (uint64_t)W * H, &whole, &w, &h, r->err);
        if (rc) fs_error_prefix(r->err, "input_image: ");
        else if (w != W || h != H)
            rc = fs_fail(r->err, FS_ERR_INVALID, "input_image %s is %dx%d but stage 0 is %dx%d: "
                         "make the first stage the image's size", path, w, h, W, H);
    }
    rc = share_outcome(r, rc, "input_image");
    size_t own = row_bytes * f * stage_rows(r, m);
    if (!rc) {
        in->image = malloc(own ? own : 1);
        if (!in->image) rc = fs_fail(r->err, FS_ERR_NOMEM, "input_image: out of memory");
    }
    rc = render_agree(r, rc);
    if (!rc && r->rank == 0) {
        memcpy(in->image, whole, own);
        for (int q = 1; !rc && q < r->size; q++)
            rc = fs_comm_send_bytes(r->comm, whole + row_bytes * f * m->plan->row0[q],
                                    row_bytes * f * fs_strip_rows(m->plan, q), q, TAG_INPUT_ROWS,
                                    r->err);
    } else if (!rc) {
        rc = fs_comm_recv_bytes(r->comm, in->image, own, 0, TAG_INPUT_ROWS, r->err);
    }
    free(whole);
    return render_agree(r, rc);
}

static fs_code read_noise(render_run *r, const stage_map *m) {
    fs_job_inputs *in = &r->inputs;
    int c = r->den.latent_channels;
    size_t all = (size_t)m->h * m->w * c;
    float *whole = malloc(sizeof(float) * (all ? all : 1));
    fs_code rc = whole ? FS_OK : fs_fail(r->err, FS_ERR_NOMEM, "noise: out of memory");
    if (!rc && r->rank == 0) rc = fs_noise_file_read(r->job->noise, m->h, m->w, c, 0, m->h,
                                                     whole, r->err);
    rc = share_outcome(r, rc, "noise file");
    rc = render_agree(r, rc);
    if (!rc && several(r)) rc = fs_comm_bcast(r->comm, whole, sizeof(float) * all, 0, r->err);
    rc = render_agree(r, rc);
    if (!rc) {
        /* keep only the own rows */
        size_t row = (size_t)m->w * c, own = row * stage_rows(r, m);
        in->noise = malloc(sizeof(float) * (own ? own : 1));
        if (!in->noise) rc = fs_fail(r->err, FS_ERR_NOMEM, "noise: out of memory");
        else memcpy(in->noise, whole + row * m->plan->row0[r->rank], sizeof(float) * own);
    }
    free(whole);
    return render_agree(r, rc);
}

fs_code inputs_read(render_run *r, const stage_map *m, int stage0_start) {
    if (r->dry) return FS_OK;
    fs_code rc = FS_OK;
    if (r->job->mask[0]) rc = read_mask(r);
    if (!rc && stage0_start && r->job->input_image[0]) rc = read_image(r, m);
    if (!rc && stage0_start && r->job->noise[0] && !r->job->input_image[0])
        rc = read_noise(r, m);
    return rc;
}

void inputs_free(fs_job_inputs *in) {
    free(in->mask), free(in->image), free(in->noise);
    memset(in, 0, sizeof *in);
}

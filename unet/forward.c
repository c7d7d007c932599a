/* unet/forward.c: fs_unet_forward, the SDXL UNet on this rank's row strip:
 * embeddings, conv_in, the down levels (skips kept), the mid block, the up
 * levels (skips concatenated after the running tensor), conv_norm_out and
 * conv_out, calling the blocks of blocks.c.
 *
 * Memory: one arena per call, sized by a dry pass over this same code (see
 * forward.h). The running tensor lives in two ping-pong buffers as large as
 * the largest strip tensor of the network (a block reads one, writes the
 * other); skips are pushed above them in the order made and popped in the
 * reverse order, so each is released right after its concatenation; every
 * block's temporaries sit above the skips and are gone when it returns.
 *
 * The plan, not the communicator, decides who talks: a one-part plan runs the
 * whole map without a single comm call, whatever comm is.
 *
 * FreeScale (fs_unet_forward_fs): restrained dilation sets f->dil for the
 * blocks fwd_conv_dilated names (the convs read it), scale fusion replaces
 * attn1 inside blocks.c's transformer blocks (fusion.c), FreeU acts before
 * each up resnet's concat (freeu.c). With nothing on, the code path is the
 * plain forward's, so its bits are too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "unet/forward.h"

fs_code fwd_trace(fwd *f, const char *name, const fwd_level *lv, const float *x, int c) {
    if (f->nn.dry || !f->trace || !f->trace->on_block) return FS_OK;
    /* the block's output through a host copy (the backend's memory may be a
     * device's) */
    size_t bytes = nn_tensor_floats(&f->nn, lv, c) * sizeof(float);
    float *h = malloc(bytes ? bytes : 1);
    if (!h) return fs_fail(f->nn.err, FS_ERR_NOMEM, "UNet forward: trace of %s", name);
    fs_code rc = nn_download(&f->nn, h, x, bytes);
    if (!rc) f->trace->on_block(f->trace->user, name, h, f->nn.n, lv->rows, lv->w, c);
    free(h);
    return rc;
}

typedef struct skip {
    float *p;
    size_t mark;  /* arena mark before p: popping resets to it */
    int level, c;
} skip;

/* Largest running-tensor width (channels) at level l: down outputs, the
 * downsampled input of level l, every up resnet's concatenated input, and the
 * upsampled output arriving from level l + 1. */
static int widest_at(const fs_unet *u, int l) {
    const fs_unet_config *c = &u->config;
    const int last = c->levels - 1, i = last - l;
    int wmax = c->channels[l];
    if (l > 0 && c->channels[l - 1] > wmax) wmax = c->channels[l - 1];
    if (l < last && c->channels[l + 1] > wmax) wmax = c->channels[l + 1];
    for (int j = 0; j <= c->layers_per_block; j++)
        if (u->w.up[i].resnets[j].cin > wmax) wmax = u->w.up[i].resnets[j].cin;
    return wmax;
}

/* The embedding: SiLU(time_embedding(t) + add_embedding(y)), [n][temb]: the
 * only form the resnets use it in. Tiny, so every rank computes it. */
static fs_code embed(fwd *f, const fs_unet *u, const float *t, const float *y, float **out) {
    const fs_unet_weights *w = &u->w;
    const int n = f->nn.n, temb = f->cfg->time_embed_dim;
    float *te = nn_floats(&f->nn, (size_t)n * f->cfg->channels[0]);
    float *a = te ? nn_floats(&f->nn, (size_t)n * temb) : NULL;
    float *e = a ? nn_floats(&f->nn, (size_t)n * temb) : NULL;
    float *b = e ? nn_floats(&f->nn, (size_t)n * temb) : NULL;
    if (!b) return f->nn.err && f->nn.err->code ? f->nn.err->code : FS_ERR_NOMEM;
    fs_code rc = FS_OK;
    rc = nn_timestep_embedding(&f->nn, t, n, f->cfg->channels[0], te);
    if (!rc) rc = nn_small_linear(&f->nn, te, a, n, &w->time_linear_1);
    if (!rc) rc = nn_silu(&f->nn, a, a, (size_t)n * temb);
    if (!rc) rc = nn_small_linear(&f->nn, a, e, n, &w->time_linear_2);
    if (!rc) rc = nn_small_linear(&f->nn, y, a, n, &w->add_linear_1);
    if (!rc) rc = nn_silu(&f->nn, a, a, (size_t)n * temb);
    if (!rc) rc = nn_small_linear(&f->nn, a, b, n, &w->add_linear_2);
    if (!rc) rc = nn_add(&f->nn, e, b, (size_t)n * temb);
    if (!rc) rc = nn_silu(&f->nn, e, e, (size_t)n * temb);
    if (rc) return rc;
    *out = e;
    return FS_OK;
}

static fs_code push(fwd *f, skip *stack, int *depth, const fwd_level *lv, int level,
                    const float *x, int c) {
    skip *s = &stack[(*depth)++];
    s->mark = nn_mark(&f->nn);
    s->level = level;
    s->c = c;
    s->p = nn_floats(&f->nn, nn_tensor_floats(&f->nn, lv, c));
    if (!s->p) return f->nn.err && f->nn.err->code ? f->nn.err->code : FS_ERR_NOMEM;
    nn_copy(&f->nn, s->p, x, nn_tensor_floats(&f->nn, lv, c));
    return FS_OK;
}

int fwd_conv_dilated(const fs_unet_config *cfg, int kind, int level) {
    const int last = cfg->levels - 1;
    switch (kind) {
    case FWD_CONV_DOWNSAMPLER: return level == last - 1 && level >= 0;
    case FWD_CONV_DOWN_RESNET: return level == last;
    case FWD_CONV_MID_RESNET: return 1;
    default: return 0;
    }
}

/* f->dil for a conv of this kind and level. */
static int dil_for(const fwd *f, int kind, int level) {
    const int d = f->fsx && f->fsx->dilation > 1 ? f->fsx->dilation : 1;
    return d > 1 && fwd_conv_dilated(f->cfg, kind, level) ? d : 1;
}

/* One whole pass (dry or real) over the network. */
static fs_code run(fwd *f, const fs_unet *u, const float *x, const float *t, const float *y,
                   float *eps) {
    const fs_unet_config *cfg = f->cfg;
    const fs_unet_weights *w = &u->w;
    const int last = cfg->levels - 1, L = cfg->layers_per_block;
    char name[64];
    float *emb_silu = NULL;
    nn_profile_eval(&f->nn, 1);
    f->dil = 1;
    f->attn_ordinal = 0;
    f->nn.level = -1; /* the embeddings */
    fs_code rc = embed(f, u, t, y, &emb_silu);
    if (rc) return rc;
    f->emb_silu = emb_silu;

    size_t pp = 0;
    for (int l = 0; l < cfg->levels; l++) {
        size_t v = nn_tensor_floats(&f->nn, &f->lv[l], widest_at(u, l));
        if (v > pp) pp = v;
    }
    float *cur = nn_floats(&f->nn, pp), *other = cur ? nn_floats(&f->nn, pp) : NULL, *swap;
    if (!other) return f->nn.err->code;
#define SWAP() (swap = cur, cur = other, other = swap)
#define TRY(call) do { rc = (call); if (rc) return rc; } while (0)

    skip stack[1 + 3 * FS_UNET_MAX_LEVELS];
    int depth = 0, c = cfg->channels[0];
    f->nn.level = 0;
    TRY(fwd_conv3x3(f, &f->lv[0], &w->conv_in, NULL, 0, x, cur));
    TRY(fwd_trace(f, "conv_in", &f->lv[0], cur, c));
    TRY(push(f, stack, &depth, &f->lv[0], 0, cur, c));

    for (int l = 0; l < cfg->levels; l++) {
        const fs_level_w *lw = &w->down[l];
        f->nn.level = l;
        for (int j = 0; j < L; j++) {
            f->dil = dil_for(f, FWD_CONV_DOWN_RESNET, l);
            TRY(fwd_resblock(f, &f->lv[l], &lw->resnets[j], cur, other));
            f->dil = 1;
            SWAP();
            TRY(fwd_transformer(f, &f->lv[l], &lw->attentions[j], cur));
            c = lw->resnets[j].cout;
            TRY(push(f, stack, &depth, &f->lv[l], l, cur, c));
        }
        int out_level = l;
        if (l < last) {
            f->nn.level = l + 1;
            f->dil = dil_for(f, FWD_CONV_DOWNSAMPLER, l);
            TRY(fwd_downsample(f, &f->lv[l], &f->lv[l + 1], &lw->sampler, cur, other));
            f->dil = 1;
            SWAP();
            out_level = l + 1;
            TRY(push(f, stack, &depth, &f->lv[l + 1], l + 1, cur, c));
        }
        snprintf(name, sizeof name, "down_blocks.%d", l);
        TRY(fwd_trace(f, name, &f->lv[out_level], cur, c));
    }

    f->nn.level = last;
    f->dil = dil_for(f, FWD_CONV_MID_RESNET, last);
    TRY(fwd_resblock(f, &f->lv[last], &w->mid_resnets[0], cur, other));
    SWAP();
    f->dil = 1;
    TRY(fwd_transformer(f, &f->lv[last], &w->mid_attention, cur));
    f->dil = dil_for(f, FWD_CONV_MID_RESNET, last);
    TRY(fwd_resblock(f, &f->lv[last], &w->mid_resnets[1], cur, other));
    f->dil = 1;
    SWAP();
    TRY(fwd_trace(f, "mid_block", &f->lv[last], cur, c));

    for (int i = 0; i < cfg->levels; i++) {
        const int l = last - i;
        const fwd_level *lv = &f->lv[l];
        const fs_level_w *lw = &w->up[i];
        f->nn.level = l;
        for (int j = 0; j <= L; j++) {
            if (depth == 0)
                return fs_fail(f->nn.err, FS_ERR_INVALID, "UNet forward: skip stack underflow");
            const skip *s = &stack[--depth];
            if (s->level != l || c + s->c != lw->resnets[j].cin)
                return fs_fail(f->nn.err, FS_ERR_INVALID,
                               "UNet forward: up_blocks.%d.resnets.%d expects %d input channels, "
                               "the running tensor (%d) and skip (%d, level %d) give %d",
                               i, j, lw->resnets[j].cin, c, s->c, s->level, c + s->c);
            TRY(fwd_freeu(f, lv, i, j, cur, c, s->p, s->c));
            TRY(nn_concat(&f->nn, cur, c, s->p, s->c, other,
                          (size_t)f->nn.n * lv->rows * lv->w));
            nn_reset(&f->nn, s->mark); /* the skip was the top of the stack */
            TRY(fwd_resblock(f, lv, &lw->resnets[j], other, cur));
            TRY(fwd_transformer(f, lv, &lw->attentions[j], cur));
            c = lw->resnets[j].cout;
        }
        int out_level = l;
        if (l > 0) {
            f->nn.level = l - 1;
            TRY(fwd_upsample(f, lv, &f->lv[l - 1], &lw->sampler, cur, other));
            SWAP();
            out_level = l - 1;
        }
        snprintf(name, sizeof name, "up_blocks.%d", i);
        TRY(fwd_trace(f, name, &f->lv[out_level], cur, c));
    }
    f->nn.level = 0;
    TRY(fwd_conv3x3(f, &f->lv[0], &w->conv_out, &w->conv_norm_out, cfg->eps_resnet, cur, eps));
#undef TRY
#undef SWAP
    nn_profile_eval(&f->nn, 0);
    return FS_OK;
}

/* Checks the call and fills the per-level geometry of f. */
static fs_code setup(fwd *f, const fs_unet *u, const fs_strip_plan *plan, int rank, int h,
                     int w, int n, int ctx_len, const fs_unet_freescale *fsx, fs_error *err) {
    const fs_unet_config *cfg = &u->config;
    const int factor = 1 << (cfg->levels - 1);
    if (n < 1 || ctx_len < 1 || h < 1 || w < 1)
        return fs_fail(err, FS_ERR_INVALID,
                       "UNet forward: batch %d, context length %d, latent %dx%d must be >= 1", n,
                       ctx_len, h, w);
    if (h % factor || w % factor)
        return fs_fail(err, FS_ERR_UNSUPPORTED,
                       "UNet forward: latent %dx%d is not a multiple of %d (%d levels); the "
                       "stride-2 resamplers need whole rows and columns at every level",
                       h, w, factor, cfg->levels);
    if (plan->h != h || plan->parts < 1)
        return fs_fail(err, FS_ERR_INVALID,
                       "UNet forward: the strip plan cuts %d rows into %d parts, the latent has "
                       "%d rows", plan->h, plan->parts, h);
    if (rank < 0 || rank >= plan->parts)
        return fs_fail(err, FS_ERR_INVALID, "UNet forward: strip %d of a %d-part plan", rank,
                       plan->parts);
    fs_code frc = fwd_fs_check(fsx, cfg, h, w, err);
    if (frc) return frc;
    f->fsx = fwd_fs_active(fsx) ? fsx : NULL;
    f->lat_h = h;
    f->lat_w = w;
    f->cfg = cfg;
    f->nn.what = "UNet forward";
    f->nn.n = n;
    f->nn.err = err;
    f->ctx_len = ctx_len;
    for (int l = 0; l < cfg->levels; l++) {
        fs_code rc = fs_strip_plan_coarsen(plan, 1 << l, &f->plans[l], err);
        if (rc) {
            fs_error_prefix(err, "UNet forward, level %d: ", l);
            return rc;
        }
        fwd_level *lv = &f->lv[l];
        lv->plan = &f->plans[l];
        lv->h = h >> l;
        lv->w = w >> l;
        lv->rank = rank;
        lv->row0 = f->plans[l].row0[rank];
        lv->rows = fs_strip_rows(&f->plans[l], rank);
    }
    return FS_OK;
}

fs_code fs_unet_forward(fs_unet *u, fs_comm *comm, const fs_strip_plan *plan, int h, int w,
                        int n, const float *x, const float *t, const float *context,
                        int ctx_len, const float *y, float *eps, const fs_unet_trace *trace,
                        fs_error *err) {
    return fs_unet_forward_fs(u, comm, plan, h, w, n, x, t, context, ctx_len, y, eps, trace,
                              NULL, err);
}

/* The real pass on the backend of f: the host tensors in and out through
 * its memory (plain copies on the CPU), the arena there too, the weights of
 * the model that lives there (the device shadow on a GPU). */
static fs_code run_real(fwd *f, const fs_unet *u, int ctx_len, const float *x, const float *t,
                        const float *y, float *eps, fs_error *err) {
    const fs_backend *be = nn_backend(&f->nn);
    const fs_unet_config *cfg = f->cfg;
    const size_t xb = nn_tensor_floats(&f->nn, &f->lv[0], cfg->in_channels) * sizeof(float);
    const size_t eb = nn_tensor_floats(&f->nn, &f->lv[0], cfg->out_channels) * sizeof(float);
    const size_t yb = (size_t)f->nn.n * cfg->adm_in_channels * sizeof(float);
    const size_t cb = (size_t)f->nn.n * ctx_len * cfg->context_dim * sizeof(float);
    const size_t ab = f->nn.arena_peak + 4096;
    void *dx = NULL, *de = NULL, *dy = NULL, *dc = NULL, *da = NULL;
    const float *host_context = f->context;
    fs_code rc = be->op->alloc(be, &dx, xb, err);
    if (!rc) rc = be->op->alloc(be, &de, eb, err);
    if (!rc) rc = be->op->alloc(be, &dy, yb, err);
    if (!rc) rc = be->op->alloc(be, &dc, cb, err);
    if (!rc) {
        rc = be->op->alloc(be, &da, ab, err);
        if (rc)
            fs_error_prefix(err, "UNet forward (%.1f MB of activations and scratch on the %s): ",
                            ab / 1e6, be->name);
    }
    if (!rc) f->nn.arena = fs_arena_over(da, ab, err);
    if (!rc && !f->nn.arena) rc = err->code ? err->code : FS_ERR_NOMEM;
    if (!rc) rc = be->op->upload(be, dx, x, xb, err);
    if (!rc) rc = be->op->upload(be, dy, y, yb, err);
    if (!rc) rc = be->op->upload(be, dc, host_context, cb, err);
    if (!rc) {
        f->context = dc;
        rc = run(f, fs_unet_gpu_model(u), dx, t, dy, de);
        f->context = host_context;
    }
    if (!rc) rc = be->op->download(be, eps, de, eb, err);
    fs_arena_destroy(f->nn.arena);
    f->nn.arena = NULL;
    void *blocks[] = {da, dc, dy, de, dx};
    for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++)
        if (blocks[i]) be->op->free(be, blocks[i]);
    return rc;
}

fs_code fs_unet_forward_fs(fs_unet *u, fs_comm *comm, const fs_strip_plan *plan, int h, int w,
                           int n, const float *x, const float *t, const float *context,
                           int ctx_len, const float *y, float *eps, const fs_unet_trace *trace,
                           const fs_unet_freescale *fsx, fs_error *err) {
    if (!u || !plan || !x || !t || !context || !y || !eps)
        return fs_fail(err, FS_ERR_INVALID, "UNet forward: NULL model, plan or tensor");
    fs_error local = {0};
    if (!err) err = &local; /* the helpers read the code back */
    if (!u->arena_weights || !u->w.conv_in.w)
        return fs_fail(err, FS_ERR_INVALID,
                       "UNet forward: the weights are not loaded (call fs_unet_load_weights)");
    int rank = 0;
    if (plan->parts > 1) {
        if (!comm || fs_comm_size(comm) != plan->parts)
            return fs_fail(err, FS_ERR_INVALID,
                           "UNet forward: the plan has %d parts but the communicator has %d "
                           "rank(s)", plan->parts, comm ? fs_comm_size(comm) : 0);
        rank = fs_comm_rank(comm);
    }
    fwd *f = calloc(1, sizeof *f);
    if (!f) return fs_fail(err, FS_ERR_NOMEM, "UNet forward: out of memory");
    fs_code rc = setup(f, u, plan, rank, h, w, n, ctx_len, fsx, err);
    f->nn.comm = comm;
    f->context = context;
    f->trace = trace;
    /* the sizing pass knows the device too: some blocks cut their work
     * by its GEMM tiles (blocks.c's feed-forward chunks) */
    f->nn.be = fs_unet_backend(u);
    if (!rc) { /* sizing pass */
        f->nn.dry = 1;
        rc = run(f, u, x, t, y, eps);
    }
    if (!rc) {
        f->nn.dry = 0;
        rc = run_real(f, u, ctx_len, x, t, y, eps, err);
    }
    free(f);
    return rc;
}

fs_code fs_unet_forward_cost(const fs_unet *u, const fs_strip_plan *plan, int rank, int h, int w,
                             int n, int ctx_len, const fs_unet_freescale *fsx, size_t *bytes,
                             double *flops, fs_error *err) {
    if (bytes) *bytes = 0;
    if (flops) *flops = 0;
    if (!u || !plan || !bytes)
        return fs_fail(err, FS_ERR_INVALID, "UNet forward bytes: NULL model, plan or result");
    fs_error local = {0};
    if (!err) err = &local;
    fwd *f = calloc(1, sizeof *f);
    if (!f) return fs_fail(err, FS_ERR_NOMEM, "UNet forward bytes: out of memory");
    fs_code rc = setup(f, u, plan, rank, h, w, n, ctx_len, fsx, err);
    if (!rc) {
        /* the dry pass reads no tensor: placeholders stand for the inputs */
        static const float none[1];
        f->nn.dry = 1;
        f->context = none;
        rc = run(f, u, none, none, none, (float *)none);
    }
    *bytes = rc ? 0 : f->nn.arena_peak + 4096;
    if (flops) *flops = rc ? 0 : f->nn.flops;
    free(f);
    return rc;
}

fs_code fs_unet_forward_bytes(const fs_unet *u, const fs_strip_plan *plan, int rank, int h,
                              int w, int n, int ctx_len, const fs_unet_freescale *fsx,
                              size_t *bytes, fs_error *err) {
    return fs_unet_forward_cost(u, plan, rank, h, w, n, ctx_len, fsx, bytes, NULL, err);
}

/* Tests for the UNet loader (unet/slots.c, load.c, config.c, names.c):
 * - the binding table for SDXL equals the real checkpoint's list of names and
 *   shapes (tests/data/sdxl_base_1.0_names.json), 2,567,463,684 parameters,
 *   and the SGM names computed for it equal the list's;
 * - random weights are deterministic, follow fs_rng_normal, and convolutions
 *   land in OHWI;
 * - the model core's upload puts every weight at its place in a device
 *   block (a host stand-in) and points the shadow table at it;
 * - round trips: random tiny UNets written as a diffusers folder (F32) and
 *   as SGM files (F16, BF16), reopened (config read / inferred), loaded and
 *   compared bit for bit;
 * - errors: a missing tensor, a misshapen one, an unexpected extra one (not
 *   fatal), bad config.json keys. (test_unet_sparse: the full-size files.) */
#define _GNU_SOURCE
#include "unet_files.h"

#include <math.h>
#include <stdint.h>

#include "kernels/kernels.h"


static char names_path[1024];

static json_t *load_names(void) {
    json_error_t je;
    json_t *root = json_load_file(names_path, 0, &je);
    CHECK(root != NULL, "cannot read %s: %s", names_path, je.text);
    return root;
}

static fs_unet_config tiny_config(void) {
    fs_unet_config c = fs_unet_config_sdxl();
    c.channels[0] = 32; c.channels[1] = 64; c.channels[2] = 64;
    c.depth[0] = 0; c.depth[1] = 1; c.depth[2] = 2;
    c.depth_mid = 2;
    c.heads[0] = 1; c.heads[1] = 2; c.heads[2] = 2;
    c.context_dim = 48;
    c.time_embed_dim = 128;
    c.adm_in_channels = 40;
    c.groups = 8;
    return c;
}

/* ---------------------------------------------------------------- SDXL table */

static void test_sdxl_slots(json_t *names) {
    fs_unet *u = calloc(1, sizeof *u);
    u->config = fs_unet_config_sdxl();
    fs_error err = {0};
    CHECK(fs_unet_build_slots(u, &err) == FS_OK, "%s", err.msg);
    json_t *unet = json_object_get(names, "unet");
    CHECK(u->nslots == 1680, "%zu slots", u->nslots);
    CHECK(json_object_size(unet) == 1680, "%zu names", json_object_size(unet));
    uint64_t params = 0;
    size_t matched = 0;
    for (size_t i = 0; i < u->nslots; i++) {
        const fs_unet_slot *s = &u->slots[i];
        params += fs_unet_slot_numel(s);
        json_t *e = json_object_get(unet, s->name);
        CHECK(e != NULL, "slot %s is not in the SDXL list", s->name);
        if (!e) continue;
        json_t *shape = json_array_get(e, 1);
        int same = (int)json_array_size(shape) == s->ndim;
        for (int d = 0; same && d < s->ndim; d++)
            same = json_integer_value(json_array_get(shape, d)) == s->shape[d];
        CHECK(same, "slot %s: shape differs from the SDXL list", s->name);
        int conv = s->ndim == 4;
        CHECK(conv == (s->kind == FS_SLOT_CONV_OIHW), "slot %s: kind", s->name);
        matched += same;
    }
    CHECK(matched == 1680, "%zu matched", matched);
    CHECK(params == 2567463684ull, "%llu params", (unsigned long long)params);
    /* every dst is distinct (no two slots bind the same pointer) */
    int dup = 0;
    for (size_t i = 1; i < u->nslots; i++)
        for (size_t j = 0; j < i && !dup; j++) dup = u->slots[i].dst == u->slots[j].dst;
    CHECK(!dup, "two slots share a destination");
    CHECK(u->w.up[0].attentions[2].depth == 10 && u->w.up[0].resnets[0].cin == 2560,
          "up_blocks.0 shape");
    CHECK(u->w.down[0].attentions[0].depth == 0 && u->w.down[0].attentions[0].blocks == NULL,
          "down_blocks.0 has no attention");
    fs_unet_free(u);
}

static void test_config_errors(void) {
    fs_unet_config c = fs_unet_config_sdxl();
    fs_error err = {0};
    c.channels[1] = 650;
    CHECK(fs_unet_config_check(&c, &err) == FS_ERR_INVALID && strstr(err.msg, "level 1"),
          "%s", err.msg);
    c = fs_unet_config_sdxl();
    c.layers_per_block = 3;
    CHECK(fs_unet_config_check(&c, &err) == FS_ERR_UNSUPPORTED &&
          strstr(err.msg, "layers_per_block"), "%s", err.msg);
    c = fs_unet_config_sdxl();
    c.heads[2] = 7;
    CHECK(fs_unet_config_check(&c, &err) == FS_ERR_INVALID && strstr(err.msg, "heads"), "%s",
          err.msg);
}

/* ---------------------------------------------------------------- random */

static void test_fill_normal(void) {
    enum { N = 1003 };
    float a[N];
    for (uint64_t off = 0; off < 5; off++) {
        fs_rng_fill_normal(a, N, 77, 0x1234567890ull, off * 1001);
        int bad = 0;
        for (size_t i = 0; i < N; i++)
            bad += memcmp(&a[i], &(float){fs_rng_normal(77, 0x1234567890ull, off * 1001 + i)}, 4) != 0;
        CHECK(bad == 0, "offset %llu: %d values differ from fs_rng_normal", (unsigned long long)off, bad);
    }
}

static fs_unet_slot *find_slot(fs_unet *u, const char *name) {
    for (size_t i = 0; i < u->nslots; i++)
        if (!strcmp(u->slots[i].name, name)) return &u->slots[i];
    return NULL;
}

static void test_random(void) {
    fs_unet_config c = tiny_config();
    fs_unet *a = NULL, *b = NULL, *d = NULL;
    fs_error err = {0};
    fs_threads_init(2);
    CHECK(fs_unet_create_random(&c, 5, &a, &err) == FS_OK, "%s", err.msg);
    fs_threads_init(1);
    CHECK(fs_unet_create_random(&c, 5, &b, &err) == FS_OK, "%s", err.msg);
    CHECK(fs_unet_create_random(&c, 6, &d, &err) == FS_OK, "%s", err.msg);
    if (!a || !b || !d) { fs_unet_free(a); fs_unet_free(b); fs_unet_free(d); return; }
    const fs_unet_info *info = fs_unet_get_info(a);
    CHECK(info->tensors_bound == a->nslots && info->params > 0, "info");
    size_t same = 0, differ = 0;
    uint64_t params = 0;
    for (size_t i = 0; i < a->nslots; i++) {
        size_t n = fs_unet_slot_numel(&a->slots[i]);
        params += n;
        same += !memcmp(*a->slots[i].dst, *b->slots[i].dst, n * sizeof(float));
        differ += memcmp(*a->slots[i].dst, *d->slots[i].dst, n * sizeof(float)) != 0;
    }
    CHECK(same == a->nslots, "2 threads vs 1: %zu of %zu tensors equal", same, a->nslots);
    CHECK(differ == a->nslots, "seed 5 vs 6: %zu of %zu tensors differ", differ, a->nslots);
    CHECK(params == info->params, "params %llu vs %llu", (unsigned long long)params,
          (unsigned long long)info->params);

    /* a conv weight is the OIHW draw converted to OHWI, scaled by 1/sqrt(fan_in) */
    fs_unet_slot *s = find_slot(a, "down_blocks.1.resnets.0.conv1.weight");
    CHECK(s && s->kind == FS_SLOT_CONV_OIHW, "conv slot");
    if (s) {
        int co = (int)s->shape[0], ci = (int)s->shape[1], k = (int)s->shape[2];
        size_t n = (size_t)co * ci * k * k;
        float *oihw = malloc(n * 4), *ohwi = malloc(n * 4);
        uint64_t h = 0xcbf29ce484222325ull;
        for (const char *p = s->name; *p; p++) h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
        float scale = (float)(1.0 / sqrt((double)(ci * k * k)));
        for (size_t i = 0; i < n; i++) oihw[i] = fs_rng_normal(5, h, i) * scale;
        fs_conv2d_weight_from_oihw(oihw, ohwi, co, ci, k);
        CHECK(!memcmp(ohwi, *s->dst, n * 4), "conv weight is not the OHWI of the OIHW draw");
        CHECK(*s->dst == a->w.down[1].resnets[0].conv1.w, "dst points into the weights");
        free(oihw);
        free(ohwi);
    }
    /* norms: gamma near 1, beta near 0 */
    const float *g = a->w.conv_norm_out.gamma, *be = a->w.conv_norm_out.beta;
    float gmin = 9, gmax = -9, bmax = 0;
    for (int i = 0; i < c.channels[0]; i++) {
        gmin = fminf(gmin, g[i]); gmax = fmaxf(gmax, g[i]); bmax = fmaxf(bmax, fabsf(be[i]));
    }
    CHECK(gmin > 0.7f && gmax < 1.3f && bmax < 0.3f, "norm init %g..%g, |beta| %g", gmin, gmax,
          bmax);
    /* a linear weight has variance ~ 1/fan_in */
    const fs_linear_w *l = &a->w.up[1].attentions[0].blocks[0].ff_proj;
    double ss = 0;
    for (int i = 0; i < l->in * l->out; i++) ss += (double)l->w[i] * l->w[i];
    double var = ss / (l->in * l->out) * l->in;
    CHECK(var > 0.9 && var < 1.1, "ff_proj variance x fan_in = %g", var);
    fs_unet_free(a);
    fs_unet_free(b);
    fs_unet_free(d);
}

/* ---------------------------------------------------------------- upload */

/* A "device" in host memory that counts what it is asked for, so the core's
 * upload (io/model.c) can be checked without a GPU: every weight lands at
 * its host offset and the shadow's slots point at the copies. */
typedef struct { size_t allocs, copies, bytes; int fail_copy; } host_dev;
static fs_code hd_alloc(void *user, void **dev, size_t bytes, fs_error *err) {
    host_dev *h = user;
    *dev = calloc(1, bytes);
    h->allocs++;
    return *dev ? FS_OK : fs_fail(err, FS_ERR_NOMEM, "host device: %zu bytes", bytes);
}
static fs_code hd_copy(void *user, void *dev, const void *host, size_t bytes, fs_error *err) {
    host_dev *h = user;
    if (h->fail_copy && h->copies == 3) return fs_fail(err, FS_ERR_IO, "host device: copy 3 failed");
    memcpy(dev, host, bytes);
    h->copies++;
    h->bytes += bytes;
    return FS_OK;
}
static void hd_free(void *user, void *dev) { (void)user; free(dev); }

static void test_upload(void) {
    fs_error err = {0};
    fs_unet_config c = tiny_config();
    fs_unet *u = NULL;
    CHECK(fs_unet_create_random(&c, 9, &u, &err) == FS_OK, "%s", err.msg);
    if (!u) return;
    fs_unet *s = calloc(1, sizeof *s);
    s->config = c;
    CHECK(fs_unet_build_slots(s, &err) == FS_OK, "%s", err.msg);
    host_dev h = {0};
    const fs_wdevice d = {.user = &h, .alloc = hd_alloc, .copy = hd_copy, .free = hd_free};
    float *dev = NULL;
    CHECK(fs_model_upload(u->slots, u->nslots, u->arena_weights, s->slots, s->nslots, &d, &dev,
                          "UNet", &err) == FS_OK, "%s", err.msg);
    CHECK(h.allocs == 1 && h.copies == u->nslots, "%zu allocations, %zu copies for %zu slots",
          h.allocs, h.copies, u->nslots);
    CHECK(h.bytes == u->info.params * sizeof(float), "%zu bytes copied for %llu params", h.bytes,
          (unsigned long long)u->info.params);
    size_t same = 0;
    for (size_t i = 0; dev && i < u->nslots; i++) {
        size_t n = (size_t)fs_unet_slot_numel(&u->slots[i]);
        same += *s->slots[i].dst == dev + (*u->slots[i].dst - u->arena_weights) &&
                !memcmp(*s->slots[i].dst, *u->slots[i].dst, n * sizeof(float));
    }
    CHECK(same == u->nslots, "%zu of %zu slots at their copy", same, u->nslots);
    CHECK(dev && s->w.conv_in.w == dev + (u->w.conv_in.w - u->arena_weights) &&
              s->w.conv_out.b == dev + (u->w.conv_out.b - u->arena_weights),
          "the shadow's weight tree points at the copies");
    free(dev);
    /* a failing copy frees the device block and says which model */
    h = (host_dev){.fail_copy = 1};
    dev = (float *)&h;
    CHECK(fs_model_upload(u->slots, u->nslots, u->arena_weights, s->slots, s->nslots, &d, &dev,
                          "UNet", &err) == FS_ERR_IO && dev == NULL && strstr(err.msg, "UNet") &&
          strstr(err.msg, "copy 3"), "failed copy: %s", err.msg);
    /* a table of another config is refused before anything is allocated */
    h = (host_dev){0};
    CHECK(fs_model_upload(u->slots, u->nslots, u->arena_weights, s->slots, s->nslots - 1, &d,
                          &dev, "UNet", &err) == FS_ERR_INVALID && h.allocs == 0, "%s", err.msg);
    fs_unet_free_slots(s);
    free(s);
    fs_unet_free(u);
}

/* ---------------------------------------------------------------- SGM names */

static void test_sgm_names(json_t *names) {
    fs_unet_config c = fs_unet_config_sdxl();
    fs_unet *u = table_only(&c);
    json_t *unet = json_object_get(names, "unet");
    size_t same = 0;
    for (size_t i = 0; i < u->nslots; i++) {
        char sg[256], full[320];
        const char *want = json_string_value(json_array_get(json_object_get(unet, u->slots[i].name), 0));
        int ok = fs_unet_sgm_name(&c, u->slots[i].name, sg, sizeof sg) == 0;
        snprintf(full, sizeof full, "model.diffusion_model.%s", sg);
        ok = ok && want && !strcmp(full, want);
        CHECK(ok, "%s -> %s, expected %s", u->slots[i].name, ok ? full : "(none)", want ? want : "?");
        same += ok;
    }
    CHECK(same == 1680, "%zu of 1680 SGM names match", same);
    /* names outside the config are refused */
    char sg[256];
    CHECK(fs_unet_sgm_name(&c, "down_blocks.3.resnets.0.norm1.weight", sg, sizeof sg) < 0, "level 3");
    CHECK(fs_unet_sgm_name(&c, "down_blocks.0.resnets.2.norm1.weight", sg, sizeof sg) < 0, "j = L");
    CHECK(fs_unet_sgm_name(&c, "up_blocks.2.upsamplers.0.conv.weight", sg, sizeof sg) < 0, "last up");
    CHECK(fs_unet_sgm_name(&c, "down_blocks.01.resnets.0.norm1.weight", sg, sizeof sg) < 0, "01");
    CHECK(fs_unet_sgm_name(&c, "up_blocks.0.resnets.0.norm9.weight", sg, sizeof sg) < 0, "norm9");
    CHECK(fs_unet_sgm_name(&c, "conv_in.weight", sg, 8) < 0, "too long for the buffer");
    fs_unet_free(u);
}

/* ---------------------------------------------------------------- round trips */

static char tmpdir[512];

/* Rounds to bf16 precision and flushes magnitudes below 2^-14 to zero: such
 * values are exact in both F16 and BF16. */
static float both_exact(float v) {
    float r = fs_bf16_to_f32(fs_f32_to_bf16(v));
    return fabsf(r) < 0x1p-14f ? 0.0f : r;
}

/* The loaded weights of a equal want's (exactly), slot by slot. */
static void compare_weights(fs_unet *got, const fs_unet *want, const char *what) {
    size_t same = 0;
    for (size_t i = 0; i < want->nslots; i++) {
        size_t n = (size_t)fs_unet_slot_numel(&want->slots[i]);
        int eq = !strcmp(got->slots[i].name, want->slots[i].name) &&
                 !memcmp(*got->slots[i].dst, *want->slots[i].dst, n * sizeof(float));
        CHECK(eq, "%s: %s differs after the round trip", what, want->slots[i].name);
        same += eq;
    }
    CHECK(same == want->nslots, "%s: %zu of %zu tensors equal", what, same, want->nslots);
}

static void open_load_compare(const char *path, const fs_unet *want, fs_unet_layout layout,
                              fs_dtype dt, const char *what) {
    fs_unet *u = NULL;
    fs_error err = {0};
    CHECK(fs_unet_open(path, &u, &err) == FS_OK, "%s: %s", what, err.msg);
    if (!u) return;
    const fs_unet_info *info = fs_unet_get_info(u);
    CHECK(info->layout == layout, "%s: layout %d", what, info->layout);
    CHECK(config_equal(&info->config, &want->config), "%s: config differs", what);
    CHECK(info->tensors_bound == want->nslots && info->tensors_unexpected == 0,
          "%s: %zu bound, %zu unexpected", what, info->tensors_bound, info->tensors_unexpected);
    CHECK(info->params == want->info.params && info->params_by_dtype[dt] == info->params,
          "%s: params %llu", what, (unsigned long long)info->params);
    CHECK(fs_unet_load_weights(u, &err) == FS_OK, "%s: %s", what, err.msg);
    if (!err.code) compare_weights(u, want, what);
    fs_unet_free(u);
}

static void round_trip(const fs_unet_config *c, const char *const *sgm_meta, const char *tag) {
    fs_unet *u = NULL;
    fs_error err = {0};
    CHECK(fs_unet_create_random(c, 11, &u, &err) == FS_OK, "%s: %s", tag, err.msg);
    if (!u) return;
    char dir[600], path[700], what[64];

    /* diffusers folder, F32: exact */
    snprintf(dir, sizeof dir, "%s/%s_diffusers", tmpdir, tag);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/unet", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/unet/config.json", dir);
    write_config_json(c, path, NULL);
    snprintf(path, sizeof path, "%s/unet/diffusion_pytorch_model.safetensors", dir);
    write_unet_file(u, path, &(unet_file_opts){.dtype = FS_DTYPE_F32, .with_data = 1});
    snprintf(what, sizeof what, "%s diffusers F32", tag);
    open_load_compare(dir, u, FS_UNET_LAYOUT_DIFFUSERS, FS_DTYPE_F32, what);
    /* the unet folder itself and the file itself open the same way */
    snprintf(path, sizeof path, "%s/unet/diffusion_pytorch_model.safetensors", dir);
    open_load_compare(path, u, FS_UNET_LAYOUT_DIFFUSERS, FS_DTYPE_F32, "diffusers file");

    /* SGM single files, F16 and BF16 of the rounded weights: exact */
    for (size_t i = 0; i < u->nslots; i++) {
        float *w = *u->slots[i].dst;
        for (size_t k = 0; k < fs_unet_slot_numel(&u->slots[i]); k++) w[k] = both_exact(w[k]);
    }
    const fs_dtype dts[2] = {FS_DTYPE_F16, FS_DTYPE_BF16};
    for (int d = 0; d < 2; d++) {
        snprintf(path, sizeof path, "%s/%s_sgm_%s.safetensors", tmpdir, tag, fs_dtype_name(dts[d]));
        write_unet_file(u, path, &(unet_file_opts){.sgm = 1, .dtype = dts[d], .with_data = 1,
                                                    .meta = sgm_meta});
        snprintf(what, sizeof what, "%s SGM %s", tag, fs_dtype_name(dts[d]));
        open_load_compare(path, u, FS_UNET_LAYOUT_SGM, dts[d], what);
    }
    fs_unet_free(u);
}

static void test_round_trips(void) {
    /* L = 2, no attention at level 0 (SDXL's shape), head size 64, 32 groups:
     * everything an SGM file's shapes imply by default */
    fs_unet_config a = fs_unet_config_sdxl();
    a.channels[0] = 32; a.channels[1] = 64; a.channels[2] = 128;
    a.depth[1] = 1; a.depth[2] = 2; a.depth_mid = 2;
    a.heads[0] = 1; a.heads[1] = 1; a.heads[2] = 2;
    a.context_dim = 40; a.adm_in_channels = 24; a.time_embed_dim = 128;
    round_trip(&a, NULL, "L2");
    /* L = 1, attention at level 0 but not at the last level (an upsampler
     * after a plain up block: output_blocks.1.1.conv), 8 groups, head size 16
     * stated in the SGM file's metadata */
    fs_unet_config b = a;
    b.levels = 2;
    b.layers_per_block = 1;
    b.channels[0] = 16; b.channels[1] = 48;
    b.depth[0] = 1; b.depth[1] = 0; b.depth_mid = 1;
    b.heads[0] = 1; b.heads[1] = 3;
    b.groups = 8; b.time_embed_dim = 64; b.in_channels = 3; b.out_channels = 5;
    static const char *const meta_b[] = {"num_head_channels", "16", "norm_num_groups", "8", NULL};
    round_trip(&b, meta_b, "L1");
}

/* ---------------------------------------------------------------- errors */

static void expect_open_error(const char *path, fs_code code, const char *a, const char *b,
                              const char *what) {
    fs_unet *u = NULL;
    fs_error err = {0};
    fs_code rc = fs_unet_open(path, &u, &err);
    printf("  %-28.28s -> %s\n", what, err.msg);
    CHECK(rc == code, "%s: got %s (%s)", what, fs_code_name(rc), err.msg);
    CHECK(!a || strstr(err.msg, a), "%s: message '%s' does not name '%s'", what, err.msg, a);
    CHECK(!b || strstr(err.msg, b), "%s: message '%s' does not name '%s'", what, err.msg, b);
    CHECK(u == NULL, "%s: no UNet on error", what);
    fs_unet_free(u);
}

static void test_errors(void) {
    fs_unet_config c = fs_unet_config_sdxl();
    c.channels[0] = 32; c.channels[1] = 64; c.channels[2] = 64;
    c.depth[1] = 1; c.depth[2] = 1; c.depth_mid = 1;
    c.heads[0] = 1; c.heads[1] = 1; c.heads[2] = 1;
    c.context_dim = 16; c.adm_in_channels = 8; c.time_embed_dim = 128;
    fs_unet *t = table_only(&c);
    char path[700], dir[600];
    const char *victim = "up_blocks.1.attentions.2.transformer_blocks.0.attn2.to_v.weight";
    const char *victim_sgm = "model.diffusion_model.output_blocks.5.1.transformer_blocks.0.attn2.to_v.weight";

    snprintf(path, sizeof path, "%s/missing.safetensors", tmpdir);
    write_unet_file(t, path, &(unet_file_opts){.sgm = 1, .dtype = FS_DTYPE_F16, .drop = victim});
    expect_open_error(path, FS_ERR_FORMAT, victim_sgm, path, "SGM missing tensor");

    snprintf(path, sizeof path, "%s/misshapen.safetensors", tmpdir);
    write_unet_file(t, path, &(unet_file_opts){.sgm = 1, .dtype = FS_DTYPE_F16, .reshape = victim});
    expect_open_error(path, FS_ERR_FORMAT, victim_sgm, "[65, 16]", "SGM misshapen tensor");

    snprintf(path, sizeof path, "%s/extra.safetensors", tmpdir);
    const char *extra = "model.diffusion_model.output_blocks.5.1.lora_up.weight";
    write_unet_file(t, path, &(unet_file_opts){.sgm = 1, .dtype = FS_DTYPE_F16, .extra = extra});
    fs_unet *u = NULL;
    fs_error err = {0};
    CHECK(fs_unet_open(path, &u, &err) == FS_OK, "extra tensor is not fatal: %s", err.msg);
    if (u) {
        const fs_unet_info *info = fs_unet_get_info(u);
        CHECK(info->tensors_unexpected == 1 && !strcmp(info->first_unexpected, extra),
              "%zu unexpected, first '%s'", info->tensors_unexpected, info->first_unexpected);
        CHECK(info->tensors_bound == t->nslots, "%zu bound", info->tensors_bound);
        fs_unet_free(u);
    }

    /* SGM inference: metadata that cannot be, or heads that do not fit */
    static const char *const bad_meta[] = {"num_head_channels", "abc", NULL};
    static const char *const odd_heads[] = {"num_head_channels", "48", NULL};
    snprintf(path, sizeof path, "%s/meta.safetensors", tmpdir);
    write_unet_file(t, path, &(unet_file_opts){.sgm = 1, .dtype = FS_DTYPE_F16, .meta = bad_meta});
    expect_open_error(path, FS_ERR_FORMAT, "num_head_channels", path, "bad SGM metadata");
    write_unet_file(t, path, &(unet_file_opts){.sgm = 1, .dtype = FS_DTYPE_F16, .meta = odd_heads});
    expect_open_error(path, FS_ERR_UNSUPPORTED, "head size 48", "level 1", "SGM head size");
    write_unet_file(t, path, &(unet_file_opts){.sgm = 1, .dtype = FS_DTYPE_F16,
                                                .drop = "conv_in.weight"});
    expect_open_error(path, FS_ERR_FORMAT, "input_blocks.0.0.weight", "infer", "SGM without conv_in");

    /* diffusers: missing / misshapen with the diffusers name; bad config keys */
    snprintf(dir, sizeof dir, "%s/dif", tmpdir);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", dir);
    write_unet_file(t, path, &(unet_file_opts){.dtype = FS_DTYPE_BF16, .drop = victim});
    char cfg[800];
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    write_config_json(&c, cfg, NULL);
    expect_open_error(dir, FS_ERR_FORMAT, victim, path, "diffusers missing tensor");
    write_unet_file(t, path, &(unet_file_opts){.dtype = FS_DTYPE_BF16, .reshape = victim});
    expect_open_error(dir, FS_ERR_FORMAT, victim, "[65, 16]", "diffusers misshapen tensor");
    write_unet_file(t, path, &(unet_file_opts){.dtype = FS_DTYPE_I32});
    expect_open_error(dir, FS_ERR_UNSUPPORTED, "time_embedding.linear_1.weight", "I32",
                      "integer weights");
    write_unet_file(t, path, &(unet_file_opts){.dtype = FS_DTYPE_BF16});
    CHECK(fs_unet_open(dir, &u, &err) == FS_OK, "good diffusers folder: %s", err.msg);
    fs_unet_free(u);

    static const struct { const char *extra; fs_code code; const char *key; } bad[] = {
        {"\"layers_per_block\": \"two\"", FS_ERR_FORMAT, "'layers_per_block'"},
        {"\"block_out_channels\": 320", FS_ERR_FORMAT, "'block_out_channels'"},
        {"\"transformer_layers_per_block\": [1, 2]", FS_ERR_FORMAT, "'transformer_layers_per_block'"},
        {"\"attention_head_dim\": [1, 1.5, 1]", FS_ERR_FORMAT, "'attention_head_dim'"},
        {"\"num_attention_heads\": \"x\"", FS_ERR_FORMAT, "'num_attention_heads'"},
        {"\"norm_eps\": \"small\"", FS_ERR_FORMAT, "'norm_eps'"},
        {"\"cross_attention_dim\": null", FS_ERR_FORMAT, "'cross_attention_dim'"},
        {"\"use_linear_projection\": false", FS_ERR_UNSUPPORTED, "'use_linear_projection'"},
        {"\"addition_embed_type\": \"text\"", FS_ERR_UNSUPPORTED, "'addition_embed_type'"},
        {"\"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\", \"UpBlock2D\"]",
         FS_ERR_UNSUPPORTED, "'up_block_types'"},
        {"\"down_block_types\": [\"DownBlock2D\", \"AttnDownBlock2D\", \"CrossAttnDownBlock2D\"]",
         FS_ERR_UNSUPPORTED, "'down_block_types'"},
        {"\"flip_sin_to_cos\": false", FS_ERR_UNSUPPORTED, "'flip_sin_to_cos'"},
        {"\"layers_per_block\": 3", FS_ERR_UNSUPPORTED, "layers_per_block"},
        {"\"block_out_channels\": [32, 64, 65]", FS_ERR_INVALID, "level 2"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_config_json(&c, cfg, bad[i].extra);
        expect_open_error(dir, bad[i].code, cfg, bad[i].key, bad[i].extra);
    }
    FILE *f = fopen(cfg, "w");
    fputs("{\"block_out_channels\": [32, 64,", f);
    fclose(f);
    expect_open_error(dir, FS_ERR_FORMAT, cfg, "line", "truncated config.json");
    /* a num_attention_heads key wins over attention_head_dim */
    write_config_json(&c, cfg, "\"num_attention_heads\": [2, 2, 4], \"attention_head_dim\": 7");
    CHECK(fs_unet_open(dir, &u, &err) == FS_OK, "%s", err.msg);
    if (u) CHECK(u->config.heads[2] == 4, "heads %d", u->config.heads[2]);
    fs_unet_free(u);

    /* folders and files that hold no UNet */
    snprintf(path, sizeof path, "%s/empty", tmpdir);
    mkdir(path, 0755);
    expect_open_error(path, FS_ERR_IO, path, "config.json", "empty folder");
    snprintf(path, sizeof path, "%s/nounet", tmpdir);
    mkdir(path, 0755);
    snprintf(cfg, sizeof cfg, "%s/config.json", path);
    write_config_json(&c, cfg, NULL);
    expect_open_error(path, FS_ERR_IO, "diffusion_pytorch_model.safetensors", NULL, "no weights");
    snprintf(path, sizeof path, "%s/vae.safetensors", tmpdir);
    fs_st_entry vae = {"encoder.conv_in.weight", FS_DTYPE_F16, 4, {128, 3, 3, 3}, NULL};
    CHECK(fs_safetensors_write(path, &vae, 1, NULL, &err) == FS_OK, "%s", err.msg);
    expect_open_error(path, FS_ERR_FORMAT, path, "no UNet", "not a UNet file");
    snprintf(path, sizeof path, "%s/does_not_exist", tmpdir);
    expect_open_error(path, FS_ERR_IO, path, NULL, "no such path");
    /* random weights have no file to load from */
    CHECK(fs_unet_create_random(&c, 1, &u, &err) == FS_OK, "%s", err.msg);
    if (u) CHECK(fs_unet_load_weights(u, &err) == FS_ERR_INVALID, "load_weights without a file");
    fs_unet_free(u);
    fs_unet_free(t);
}

/* ---------------------------------------------------------------- golden files
 * tools/gen_unet_golden.py writes each tiny config as a diffusers folder and
 * (where heads = ch / 64) an SGM file, with names mapped by its own Python
 * rules: both must give the same config and the same weights, bit for bit. */

static void test_golden_files(const char *data) {
    static const struct { const char *name; int has_sgm; fs_dtype dt; int heads2; } cfgs[] = {
        {"nonsquare", 1, FS_DTYPE_F32, 1}, {"deep", 1, FS_DTYPE_F16, 1}, {"heads", 0, FS_DTYPE_BF16, 2},
    };
    char dir[1200], sgm[1300];
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
        snprintf(dir, sizeof dir, "%s/unet/%s", data, cfgs[i].name);
        struct stat sb;
        if (stat(dir, &sb)) { printf("  (no golden files at %s)\n", dir); continue; }
        fs_unet *d = NULL, *g = NULL;
        fs_error err = {0};
        CHECK(fs_unet_open(dir, &d, &err) == FS_OK, "%s: %s", dir, err.msg);
        if (!d) continue;
        const fs_unet_info *info = fs_unet_get_info(d);
        CHECK(info->tensors_unexpected == 0 && info->params_by_dtype[cfgs[i].dt] == info->params,
              "%s: dtype or unexpected tensors", dir);
        CHECK(d->config.heads[1] == cfgs[i].heads2, "%s: heads[1] %d", dir, d->config.heads[1]);
        CHECK(fs_unet_load_weights(d, &err) == FS_OK, "%s: %s", dir, err.msg);
        snprintf(sgm, sizeof sgm, "%s/sgm.safetensors", dir);
        if (cfgs[i].has_sgm) {
            CHECK(fs_unet_open(sgm, &g, &err) == FS_OK, "%s: %s", sgm, err.msg);
            if (g) {
                CHECK(config_equal(&g->config, &d->config), "%s: inferred config differs from "
                      "config.json's", sgm);
                CHECK(g->info.tensors_bound == d->nslots && g->info.tensors_unexpected == 0,
                      "%s: %zu bound, %zu unexpected", sgm, g->info.tensors_bound,
                      g->info.tensors_unexpected);
                CHECK(fs_unet_load_weights(g, &err) == FS_OK, "%s: %s", sgm, err.msg);
                if (!err.code) compare_weights(g, d, sgm);
            }
        }
        printf("  golden %s: %zu tensors, %llu parameters%s\n", cfgs[i].name, d->nslots,
               (unsigned long long)d->info.params, g ? ", diffusers == SGM bit for bit" : "");
        fs_unet_free(d);
        fs_unet_free(g);
    }
}

int main(void) {
    const char *data = getenv("FS_TEST_DATA");
    snprintf(names_path, sizeof names_path, "%s/sdxl_base_1.0_names.json", data ? data : "tests/data");
    json_t *names = load_names();
    if (names) test_sdxl_slots(names);
    if (names) test_sgm_names(names);
    test_config_errors();
    test_fill_normal();
    test_random();
    test_upload();
    make_tmpdir(tmpdir, sizeof tmpdir, "unet_load");
    test_round_trips();
    test_errors();
    rm_tree(tmpdir);
    test_golden_files(data ? data : "tests/data");
    json_decref(names);
    return check_report("test_unet_load");
}

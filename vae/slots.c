/* vae/slots.c: the VAE's configuration (SDXL's, and the checks that keep a
 * config inside what the passes compute) and its binding table: for any
 * config, every weight tensor under its diffusers name with its PyTorch shape
 * and the pointer in vae_weights that receives the converted floats. Loading
 * and random init walk this table, so they cannot disagree about what a VAE
 * contains. Also the name maps to the SGM single-file layout (spec/sdxl.md
 * 7.3 "VAE") and to diffusers' old attention names.
 *
 * Slot order is diffusers' state_dict order. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vae/vae_internal.h"

fs_vae_config fs_vae_config_sdxl(void) {
    fs_vae_config c;
    memset(&c, 0, sizeof c);
    c.in_channels = 3;
    c.out_channels = 3;
    c.latent_channels = 4;
    c.levels = 4;
    c.channels[0] = 128; c.channels[1] = 256; c.channels[2] = 512; c.channels[3] = 512;
    c.layers_per_block = 2;
    c.groups = 32;
    c.eps = 1e-6f;
    c.mid_attention = 1;
    c.quant_conv = 1;
    c.post_quant_conv = 1;
    c.scaling_factor = 0.13025f;
    c.shift_factor = 0.0f;
    c.sample_size = 1024;
    return c;
}

fs_code vae_config_check(const fs_vae_config *c, fs_error *err) {
    if (c->levels < 1 || c->levels > FS_VAE_MAX_LEVELS)
        return fs_fail(err, FS_ERR_UNSUPPORTED, "VAE config: %d levels (1..%d supported)",
                       c->levels, FS_VAE_MAX_LEVELS);
    if (c->layers_per_block < 1 || c->layers_per_block + 1 > VAE_MAX_LAYERS)
        return fs_fail(err, FS_ERR_UNSUPPORTED, "VAE config: layers_per_block %d (1..%d supported)",
                       c->layers_per_block, VAE_MAX_LAYERS - 1);
    if (c->in_channels < 1 || c->out_channels < 1 || c->latent_channels < 1)
        return fs_fail(err, FS_ERR_INVALID, "VAE config: in/out/latent channels %d/%d/%d",
                       c->in_channels, c->out_channels, c->latent_channels);
    if (c->groups < 1) return fs_fail(err, FS_ERR_INVALID, "VAE config: %d norm groups", c->groups);
    if (!(c->eps > 0)) return fs_fail(err, FS_ERR_INVALID, "VAE config: norm eps must be > 0");
    if (!(c->scaling_factor > 0) || c->shift_factor != c->shift_factor)
        return fs_fail(err, FS_ERR_INVALID, "VAE config: scaling factor %g, shift %g",
                       c->scaling_factor, c->shift_factor);
    if (c->sample_size < 0)
        return fs_fail(err, FS_ERR_INVALID, "VAE config: sample_size %d", c->sample_size);
    for (int l = 0; l < c->levels; l++)
        if (c->channels[l] < 1 || c->channels[l] % c->groups)
            return fs_fail(err, FS_ERR_INVALID,
                           "VAE config: level %d has %d channels, not a positive multiple of %d "
                           "groups", l, c->channels[l], c->groups);
    return FS_OK;
}

/* ---------------------------------------------------------------- the table */

/* nn's weight types, described to the core's table builder (io.h). */
typedef struct {
    fs_wtable t;
    int sgm_attention;
} builder;

static void add_conv(builder *b, nn_conv_w *cw, int in, int out, int k, const char *p) {
    *cw = (nn_conv_w){.in = in, .out = out, .k = k};
    fs_wtable_pair(&b->t, &cw->w, &cw->b, FS_WSLOT_CONV_OIHW, 4, (int64_t[]){out, in, k, k}, p);
}

static void add_norm(builder *b, nn_norm_w *n, int c, const char *p) {
    *n = (nn_norm_w){.c = c};
    fs_wtable_pair(&b->t, &n->gamma, &n->beta, FS_WSLOT_PLAIN, 1, (int64_t[]){c}, p);
}

/* A Linear [out][in] (diffusers) or a 1x1 conv [out][in][1][1] (SGM files):
 * the same floats in the same order either way. */
static void add_proj(builder *b, nn_linear_w *l, int c, const char *p) {
    *l = (nn_linear_w){.in = c, .out = c};
    fs_wtable_pair(&b->t, &l->w, &l->b, FS_WSLOT_PLAIN, b->sgm_attention ? 4 : 2,
                   (int64_t[]){c, c, 1, 1}, p);
}

static void add_resnet(builder *b, vae_resnet_w *r, int cin, int cout, const char *p) {
    char q[160];
    r->cin = cin;
    r->cout = cout;
    snprintf(q, sizeof q, "%s.norm1", p); add_norm(b, &r->norm1, cin, q);
    snprintf(q, sizeof q, "%s.conv1", p); add_conv(b, &r->conv1, cin, cout, 3, q);
    snprintf(q, sizeof q, "%s.norm2", p); add_norm(b, &r->norm2, cout, q);
    snprintf(q, sizeof q, "%s.conv2", p); add_conv(b, &r->conv2, cout, cout, 3, q);
    if (cin != cout) {
        snprintf(q, sizeof q, "%s.conv_shortcut", p);
        add_conv(b, &r->shortcut, cin, cout, 1, q);
    }
}

static void add_mid(builder *b, const fs_vae_config *c, vae_mid_w *m, const char *p) {
    const int ch = c->channels[c->levels - 1];
    char q[160];
    snprintf(q, sizeof q, "%s.mid_block.resnets.0", p); add_resnet(b, &m->res[0], ch, ch, q);
    if (c->mid_attention) {
        m->attn.c = ch;
        snprintf(q, sizeof q, "%s.mid_block.attentions.0.group_norm", p);
        add_norm(b, &m->attn.norm, ch, q);
        snprintf(q, sizeof q, "%s.mid_block.attentions.0.to_q", p); add_proj(b, &m->attn.q, ch, q);
        snprintf(q, sizeof q, "%s.mid_block.attentions.0.to_k", p); add_proj(b, &m->attn.k, ch, q);
        snprintf(q, sizeof q, "%s.mid_block.attentions.0.to_v", p); add_proj(b, &m->attn.v, ch, q);
        snprintf(q, sizeof q, "%s.mid_block.attentions.0.to_out.0", p);
        add_proj(b, &m->attn.out, ch, q);
    }
    snprintf(q, sizeof q, "%s.mid_block.resnets.1", p); add_resnet(b, &m->res[1], ch, ch, q);
}

void vae_free_slots(fs_vae *v) {
    free(v->slots);
    v->slots = NULL;
    v->nslots = 0;
    memset(&v->w, 0, sizeof v->w);
}

fs_code vae_build_slots(fs_vae *v, int sgm_attention, fs_error *err) {
    const fs_vae_config *c = &v->config;
    fs_code rc = vae_config_check(c, err);
    if (rc) return rc;
    vae_free_slots(v);
    builder b = {.t = {.model = "VAE", .err = err}, .sgm_attention = sgm_attention};
    vae_encoder_w *e = &v->w.enc;
    vae_decoder_w *d = &v->w.dec;
    const int L = c->layers_per_block, last = c->levels - 1, lat = c->latent_channels;
    char p[160];

    /* encoder: level l takes channels[l-1] (channels[0] at l = 0) to channels[l] */
    add_conv(&b, &e->conv_in, c->in_channels, c->channels[0], 3, "encoder.conv_in");
    for (int l = 0; l < c->levels; l++) {
        int cout = c->channels[l], cin = l ? c->channels[l - 1] : c->channels[0];
        for (int j = 0; j < L; j++) {
            snprintf(p, sizeof p, "encoder.down_blocks.%d.resnets.%d", l, j);
            add_resnet(&b, &e->down[l][j], j ? cout : cin, cout, p);
        }
        if (l < last) {
            snprintf(p, sizeof p, "encoder.down_blocks.%d.downsamplers.0.conv", l);
            add_conv(&b, &e->downsample[l], cout, cout, 3, p);
        }
    }
    add_mid(&b, c, &e->mid, "encoder");
    add_norm(&b, &e->norm_out, c->channels[last], "encoder.conv_norm_out");
    add_conv(&b, &e->conv_out, c->channels[last], 2 * lat, 3, "encoder.conv_out");

    /* decoder: up_blocks.i is level last - i, from the previous block's width */
    add_conv(&b, &d->conv_in, lat, c->channels[last], 3, "decoder.conv_in");
    add_mid(&b, c, &d->mid, "decoder");
    int prev = c->channels[last];
    for (int i = 0; i < c->levels; i++) {
        int cout = c->channels[last - i];
        for (int j = 0; j <= L; j++) {
            snprintf(p, sizeof p, "decoder.up_blocks.%d.resnets.%d", i, j);
            add_resnet(&b, &d->up[i][j], j ? cout : prev, cout, p);
        }
        if (i < last) {
            snprintf(p, sizeof p, "decoder.up_blocks.%d.upsamplers.0.conv", i);
            add_conv(&b, &d->upsample[i], cout, cout, 3, p);
        }
        prev = cout;
    }
    add_norm(&b, &d->norm_out, c->channels[0], "decoder.conv_norm_out");
    add_conv(&b, &d->conv_out, c->channels[0], c->out_channels, 3, "decoder.conv_out");
    if (c->quant_conv) add_conv(&b, &v->w.quant_conv, 2 * lat, 2 * lat, 1, "quant_conv");
    if (c->post_quant_conv) add_conv(&b, &v->w.post_quant_conv, lat, lat, 1, "post_quant_conv");
    rc = fs_wtable_finish(&b.t, &v->slots, &v->nslots, NULL);
    if (rc) vae_free_slots(v);
    return rc;
}

/* ---------------------------------------------------------------- names */

/* out = prefix + rest with `from` (at the start of rest) replaced by `to`. */
static int put(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int put(char *out, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < cap ? 0 : -1;
}

/* Inside a resnet: only the shortcut is renamed. */
static const char *res_part(const char *rest, char *buf, size_t cap) {
    if (!strncmp(rest, "conv_shortcut.", 14)) {
        snprintf(buf, cap, "nin_shortcut.%s", rest + 14);
        return buf;
    }
    return rest;
}

/* Inside the mid block: resnets.0/1 -> block_1/2, attentions.0 -> attn_1. */
static int mid_part(const char *rest, char *out, size_t cap) {
    char tmp[160];
    int j, k = 0;
    if (sscanf(rest, "resnets.%d.%n", &j, &k) == 1 && k > 0 && (j == 0 || j == 1))
        return put(out, cap, "mid.block_%d.%s", j + 1, res_part(rest + k, tmp, sizeof tmp));
    static const char *const map[][2] = {{"group_norm.", "norm."}, {"to_q.", "q."},
                                         {"to_k.", "k."}, {"to_v.", "v."},
                                         {"to_out.0.", "proj_out."}};
    if (strncmp(rest, "attentions.0.", 13)) return -1;
    rest += 13;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        size_t n = strlen(map[i][0]);
        if (!strncmp(rest, map[i][0], n)) return put(out, cap, "mid.attn_1.%s%s", map[i][1], rest + n);
    }
    return -1;
}

int vae_sgm_name(const fs_vae_config *c, const char *name, char *out, size_t cap) {
    char tmp[160];
    const char *rest;
    int i, j, k = 0;
    static const char *const same[] = {"quant_conv.", "post_quant_conv."};
    for (size_t s = 0; s < 2; s++)
        if (!strncmp(name, same[s], strlen(same[s]))) return put(out, cap, "%s", name);
    int enc = !strncmp(name, "encoder.", 8), dec = !strncmp(name, "decoder.", 8);
    if (!enc && !dec) return -1;
    const char *side = enc ? "encoder" : "decoder";
    rest = name + 8;
    if (!strncmp(rest, "conv_in.", 8) || !strncmp(rest, "conv_out.", 9))
        return put(out, cap, "%s", name);
    if (!strncmp(rest, "conv_norm_out.", 14))
        return put(out, cap, "%s.norm_out.%s", side, rest + 14);
    if (!strncmp(rest, "mid_block.", 10)) {
        if (mid_part(rest + 10, tmp, sizeof tmp)) return -1;
        return put(out, cap, "%s.%s", side, tmp);
    }
    const int L = c->layers_per_block, last = c->levels - 1;
    if (enc && sscanf(rest, "down_blocks.%d.resnets.%d.%n", &i, &j, &k) == 2 && k > 0) {
        if (i < 0 || i > last || j < 0 || j >= L) return -1;
        return put(out, cap, "encoder.down.%d.block.%d.%s", i, j, res_part(rest + k, tmp, sizeof tmp));
    }
    k = 0;
    if (enc && sscanf(rest, "down_blocks.%d.downsamplers.0.%n", &i, &k) == 1 && k > 0) {
        if (i < 0 || i >= last) return -1;
        return put(out, cap, "encoder.down.%d.downsample.%s", i, rest + k);
    }
    k = 0;
    if (dec && sscanf(rest, "up_blocks.%d.resnets.%d.%n", &i, &j, &k) == 2 && k > 0) {
        if (i < 0 || i > last || j < 0 || j > L) return -1;
        return put(out, cap, "decoder.up.%d.block.%d.%s", last - i, j,
                   res_part(rest + k, tmp, sizeof tmp));
    }
    k = 0;
    if (dec && sscanf(rest, "up_blocks.%d.upsamplers.0.%n", &i, &k) == 1 && k > 0) {
        if (i < 0 || i >= last) return -1;
        return put(out, cap, "decoder.up.%d.upsample.%s", last - i, rest + k);
    }
    return -1;
}

int vae_old_attention_name(const char *name, char *out, size_t cap) {
    static const char *const map[][2] = {{".attentions.0.to_q.", ".attentions.0.query."},
                                         {".attentions.0.to_k.", ".attentions.0.key."},
                                         {".attentions.0.to_v.", ".attentions.0.value."},
                                         {".attentions.0.to_out.0.", ".attentions.0.proj_attn."}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        const char *at = strstr(name, map[i][0]);
        if (at)
            return put(out, cap, "%.*s%s%s", (int)(at - name), name, map[i][1],
                       at + strlen(map[i][0]));
    }
    return -1;
}

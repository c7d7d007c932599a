/* unet/slots.c: the binding table. For any fs_unet_config it lists every
 * weight tensor of the UNet under its diffusers name with its PyTorch shape
 * and the pointer in fs_unet_weights that receives the converted floats,
 * described to io's table builder. Loading (load.c) and random init walk
 * this table, so the two can never disagree about what a UNet contains.
 *
 * The order of slots is module order (diffusers' state_dict order), which is
 * also the order `freescale inspect` and the tests report them in. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "unet/unet_internal.h"

fs_unet_config fs_unet_config_sdxl(void) {
    fs_unet_config c;
    memset(&c, 0, sizeof c);
    c.in_channels = 4;
    c.out_channels = 4;
    c.levels = 3;
    c.channels[0] = 320; c.channels[1] = 640; c.channels[2] = 1280;
    c.layers_per_block = 2;
    c.depth[0] = 0; c.depth[1] = 2; c.depth[2] = 10;
    c.depth_mid = 10;
    /* head dim 64 everywhere (SGM's num_head_channels); diffusers' config
     * says attention_head_dim [5, 10, 20], which is really the head count */
    c.heads[0] = 5; c.heads[1] = 10; c.heads[2] = 20;
    c.context_dim = 2048;
    c.adm_in_channels = 2816;
    c.time_embed_dim = 1280;
    c.groups = 32;
    c.eps_resnet = 1e-5f;
    c.eps_transformer = 1e-6f;
    return c;
}

/* Rejects configurations the weight structs or the forward pass cannot hold,
 * saying which field is wrong. */
fs_code fs_unet_config_check(const fs_unet_config *c, fs_error *err) {
    if (c->levels < 1 || c->levels > FS_UNET_MAX_LEVELS)
        return fs_fail(err, FS_ERR_UNSUPPORTED, "UNet config: %d levels (1..%d supported)",
                       c->levels, FS_UNET_MAX_LEVELS);
    if (c->layers_per_block < 1 || c->layers_per_block > 2)
        return fs_fail(err, FS_ERR_UNSUPPORTED,
                       "UNet config: layers_per_block %d (1 or 2 supported)", c->layers_per_block);
    if (c->in_channels < 1 || c->out_channels < 1)
        return fs_fail(err, FS_ERR_INVALID, "UNet config: in/out channels %d/%d",
                       c->in_channels, c->out_channels);
    if (c->groups < 1) return fs_fail(err, FS_ERR_INVALID, "UNet config: %d norm groups", c->groups);
    if (c->time_embed_dim < 1 || c->adm_in_channels < 1 || c->context_dim < 1)
        return fs_fail(err, FS_ERR_INVALID,
                       "UNet config: time_embed_dim %d, adm_in_channels %d, context_dim %d",
                       c->time_embed_dim, c->adm_in_channels, c->context_dim);
    if (!(c->eps_resnet > 0) || !(c->eps_transformer > 0))
        return fs_fail(err, FS_ERR_INVALID, "UNet config: norm eps must be > 0");
    for (int l = 0; l < c->levels; l++) {
        int ch = c->channels[l];
        if (ch < 1 || ch % c->groups)
            return fs_fail(err, FS_ERR_INVALID,
                           "UNet config: level %d has %d channels, not a positive multiple of "
                           "%d groups", l, ch, c->groups);
        if (c->depth[l] < 0)
            return fs_fail(err, FS_ERR_INVALID, "UNet config: level %d transformer depth %d", l,
                           c->depth[l]);
        int with_attn = c->depth[l] > 0 || (l == c->levels - 1 && c->depth_mid > 0);
        if (with_attn && (c->heads[l] < 1 || ch % c->heads[l]))
            return fs_fail(err, FS_ERR_INVALID,
                           "UNet config: level %d: %d heads do not divide %d channels", l,
                           c->heads[l], ch);
    }
    if (c->depth_mid < 0)
        return fs_fail(err, FS_ERR_INVALID, "UNet config: mid transformer depth %d", c->depth_mid);
    return FS_OK;
}

/* ---------------------------------------------------------------- the table */

/* nn's weight types, described to the core's table builder (io.h). */
static void add_linear(fs_wtable *b, fs_linear_w *l, int in, int out, int bias, const char *p) {
    *l = (fs_linear_w){.in = in, .out = out};
    fs_wtable_pair(b, &l->w, bias ? &l->b : NULL, FS_WSLOT_PLAIN, 2, (int64_t[]){out, in}, p);
}

static void add_conv(fs_wtable *b, fs_conv_w *cw, int in, int out, int k, const char *p) {
    *cw = (fs_conv_w){.in = in, .out = out, .k = k};
    fs_wtable_pair(b, &cw->w, &cw->b, FS_WSLOT_CONV_OIHW, 4, (int64_t[]){out, in, k, k}, p);
}

static void add_norm(fs_wtable *b, fs_norm_w *n, int c, const char *p) {
    *n = (fs_norm_w){.c = c};
    fs_wtable_pair(b, &n->gamma, &n->beta, FS_WSLOT_PLAIN, 1, (int64_t[]){c}, p);
}

static void add_resnet(fs_wtable *b, fs_resnet_w *r, int cin, int cout, int temb, const char *p) {
    char q[160];
    r->cin = cin;
    r->cout = cout;
    snprintf(q, sizeof q, "%s.norm1", p); add_norm(b, &r->norm1, cin, q);
    snprintf(q, sizeof q, "%s.conv1", p); add_conv(b, &r->conv1, cin, cout, 3, q);
    snprintf(q, sizeof q, "%s.time_emb_proj", p); add_linear(b, &r->time_emb_proj, temb, cout, 1, q);
    snprintf(q, sizeof q, "%s.norm2", p); add_norm(b, &r->norm2, cout, q);
    snprintf(q, sizeof q, "%s.conv2", p); add_conv(b, &r->conv2, cout, cout, 3, q);
    if (cin != cout) {
        snprintf(q, sizeof q, "%s.conv_shortcut", p);
        add_conv(b, &r->conv_shortcut, cin, cout, 1, q);
    }
}

static void add_tblock(fs_wtable *b, fs_tblock_w *t, int c, int ctx, const char *p) {
    char q[200];
    snprintf(q, sizeof q, "%s.norm1", p); add_norm(b, &t->norm1, c, q);
    snprintf(q, sizeof q, "%s.attn1.to_q", p); add_linear(b, &t->attn1_q, c, c, 0, q);
    snprintf(q, sizeof q, "%s.attn1.to_k", p); add_linear(b, &t->attn1_k, c, c, 0, q);
    snprintf(q, sizeof q, "%s.attn1.to_v", p); add_linear(b, &t->attn1_v, c, c, 0, q);
    snprintf(q, sizeof q, "%s.attn1.to_out.0", p); add_linear(b, &t->attn1_out, c, c, 1, q);
    snprintf(q, sizeof q, "%s.norm2", p); add_norm(b, &t->norm2, c, q);
    snprintf(q, sizeof q, "%s.attn2.to_q", p); add_linear(b, &t->attn2_q, c, c, 0, q);
    snprintf(q, sizeof q, "%s.attn2.to_k", p); add_linear(b, &t->attn2_k, ctx, c, 0, q);
    snprintf(q, sizeof q, "%s.attn2.to_v", p); add_linear(b, &t->attn2_v, ctx, c, 0, q);
    snprintf(q, sizeof q, "%s.attn2.to_out.0", p); add_linear(b, &t->attn2_out, c, c, 1, q);
    snprintf(q, sizeof q, "%s.norm3", p); add_norm(b, &t->norm3, c, q);
    snprintf(q, sizeof q, "%s.ff.net.0.proj", p); add_linear(b, &t->ff_proj, c, 8 * c, 1, q);
    snprintf(q, sizeof q, "%s.ff.net.2", p); add_linear(b, &t->ff_out, 4 * c, c, 1, q);
}

static void add_transformer(fs_wtable *b, fs_transformer_w *tr, int c, int heads, int depth,
                            int ctx, const char *p) {
    char q[160];
    tr->channels = c;
    tr->heads = heads;
    tr->depth = depth;
    if (depth <= 0) return;
    tr->blocks = calloc((size_t)depth, sizeof *tr->blocks);
    if (!tr->blocks) {
        if (!b->rc) b->rc = fs_fail(b->err, FS_ERR_NOMEM, "UNet: out of memory for %s", p);
        return;
    }
    snprintf(q, sizeof q, "%s.norm", p); add_norm(b, &tr->norm, c, q);
    snprintf(q, sizeof q, "%s.proj_in", p); add_linear(b, &tr->proj_in, c, c, 1, q);
    for (int k = 0; k < depth; k++) {
        snprintf(q, sizeof q, "%s.transformer_blocks.%d", p, k);
        add_tblock(b, &tr->blocks[k], c, ctx, q);
    }
    snprintf(q, sizeof q, "%s.proj_out", p); add_linear(b, &tr->proj_out, c, c, 1, q);
}

/* Frees the transformer block arrays (the only allocations inside u->w). */
void fs_unet_free_slots(fs_unet *u) {
    fs_unet_weights *w = &u->w;
    for (int l = 0; l < FS_UNET_MAX_LEVELS; l++)
        for (int j = 0; j < 3; j++) {
            free(w->down[l].attentions[j].blocks);
            free(w->up[l].attentions[j].blocks);
        }
    free(w->mid_attention.blocks);
    free(u->slots);
    memset(w, 0, sizeof *w);
    u->slots = NULL;
    u->nslots = 0;
}

fs_code fs_unet_build_slots(fs_unet *u, fs_error *err) {
    const fs_unet_config *c = &u->config;
    fs_code rc = fs_unet_config_check(c, err);
    if (rc) return rc;
    fs_unet_free_slots(u);
    fs_wtable b = {.model = "UNet", .err = err};
    fs_unet_weights *w = &u->w;
    const int L = c->layers_per_block, last = c->levels - 1, temb = c->time_embed_dim;
    char p[160];

    add_linear(&b, &w->time_linear_1, c->channels[0], temb, 1, "time_embedding.linear_1");
    add_linear(&b, &w->time_linear_2, temb, temb, 1, "time_embedding.linear_2");
    add_linear(&b, &w->add_linear_1, c->adm_in_channels, temb, 1, "add_embedding.linear_1");
    add_linear(&b, &w->add_linear_2, temb, temb, 1, "add_embedding.linear_2");
    add_conv(&b, &w->conv_in, c->in_channels, c->channels[0], 3, "conv_in");

    /* down: level l takes channels[l-1] (channels[0] at l = 0) to channels[l] */
    for (int l = 0; l < c->levels; l++) {
        int cout = c->channels[l], cin = l ? c->channels[l - 1] : c->channels[0];
        fs_level_w *lv = &w->down[l];
        for (int j = 0; j < L; j++) {
            snprintf(p, sizeof p, "down_blocks.%d.resnets.%d", l, j);
            add_resnet(&b, &lv->resnets[j], j ? cout : cin, cout, temb, p);
            snprintf(p, sizeof p, "down_blocks.%d.attentions.%d", l, j);
            add_transformer(&b, &lv->attentions[j], cout, c->heads[l], c->depth[l],
                            c->context_dim, p);
        }
        if (l < last) {
            snprintf(p, sizeof p, "down_blocks.%d.downsamplers.0.conv", l);
            add_conv(&b, &lv->sampler, cout, cout, 3, p);
        }
    }

    int cm = c->channels[last];
    add_resnet(&b, &w->mid_resnets[0], cm, cm, temb, "mid_block.resnets.0");
    add_transformer(&b, &w->mid_attention, cm, c->heads[last], c->depth_mid, c->context_dim,
                    "mid_block.attentions.0");
    add_resnet(&b, &w->mid_resnets[1], cm, cm, temb, "mid_block.resnets.1");

    /* up: up_blocks.i is level l = last - i; resnet j concatenates the skip of
     * the matching down layer: channels[l] for j < L, the level's input
     * channels (channels[l-1], or channels[0]) for j = L */
    int prev = cm;
    for (int i = 0; i < c->levels; i++) {
        int l = last - i, cout = c->channels[l], cinput = l ? c->channels[l - 1] : c->channels[0];
        fs_level_w *lv = &w->up[i];
        for (int j = 0; j <= L; j++) {
            int skip = j == L ? cinput : cout;
            snprintf(p, sizeof p, "up_blocks.%d.resnets.%d", i, j);
            add_resnet(&b, &lv->resnets[j], (j ? cout : prev) + skip, cout, temb, p);
            snprintf(p, sizeof p, "up_blocks.%d.attentions.%d", i, j);
            add_transformer(&b, &lv->attentions[j], cout, c->heads[l], c->depth[l],
                            c->context_dim, p);
        }
        if (i < last) {
            snprintf(p, sizeof p, "up_blocks.%d.upsamplers.0.conv", i);
            add_conv(&b, &lv->sampler, cout, cout, 3, p);
        }
        prev = cout;
    }

    add_norm(&b, &w->conv_norm_out, c->channels[0], "conv_norm_out");
    add_conv(&b, &w->conv_out, c->channels[0], c->out_channels, 3, "conv_out");
    rc = fs_wtable_finish(&b, &u->slots, &u->nslots, NULL);
    if (rc) fs_unet_free_slots(u);
    return rc;
}


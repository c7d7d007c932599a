/* unet/names.c: diffusers -> SGM tensor names for the UNet, for any
 * layers_per_block L (spec/sdxl.md section 7.3 gives them for L = 2).
 *
 * SGM numbers its blocks in one flat list per direction:
 *   input_blocks.0 = conv_in; then per level l: L x [resnet, attention?] at
 *   input_blocks.{1 + l(L+1) + j}, and the downsampler at input_blocks.{(l+1)(L+1)}.0.op;
 *   output_blocks.{i(L+1) + j} for up block i's layer j in 0..L, its upsampler
 *   the last module of output_blocks.{i(L+1) + L}: .1 without attention, .2 with.
 * Inside a ResBlock the module names differ; inside a SpatialTransformer they
 * are the same on both sides. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "unet/loader.h"

/* Reads "<digits>." at *s (no sign, no leading zero unless "0"); advances. */
static int take_index(const char **s, int *out) {
    const char *p = *s;
    if (*p < '0' || *p > '9' || (*p == '0' && p[1] >= '0' && p[1] <= '9')) return -1;
    long v = 0;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (*p++ - '0');
        if (v > 1000000) return -1;
    }
    if (*p != '.') return -1;
    *out = (int)v;
    *s = p + 1;
    return 0;
}

static int take(const char **s, const char *word) {
    size_t n = strlen(word);
    if (strncmp(*s, word, n)) return -1;
    *s += n;
    return 0;
}

static int emit(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int emit(char *out, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* A ResBlock's parameter: diffusers module -> SGM module. */
/* <block>.<sgm module>.<param>; block is e.g. "input_blocks.4.0" (the ResBlock
 * is module 0 of its SGM block) or "middle_block.2" (no inner index there). */
static int resnet_name(const char *rest, const char *block, char *out, size_t cap) {
    static const char *const map[][2] = {
        {"norm1.", "in_layers.0."},  {"conv1.", "in_layers.2."},
        {"norm2.", "out_layers.0."}, {"conv2.", "out_layers.3."},
        {"time_emb_proj.", "emb_layers.1."}, {"conv_shortcut.", "skip_connection."},
    };
    for (size_t k = 0; k < sizeof map / sizeof map[0]; k++) {
        const char *r = rest;
        if (!take(&r, map[k][0])) {
            return emit(out, cap, "%s.%s%s", block, map[k][1], r);
        }
    }
    return -1;
}

int fs_unet_sgm_name(const fs_unet_config *c, const char *name, char *out, size_t cap) {
    const int L = c->layers_per_block, last = c->levels - 1;
    const char *s = name;
    int i, j;
    char block[48];
    static const char *const fixed[][2] = {
        {"time_embedding.linear_1.", "time_embed.0."}, {"time_embedding.linear_2.", "time_embed.2."},
        {"add_embedding.linear_1.", "label_emb.0.0."}, {"add_embedding.linear_2.", "label_emb.0.2."},
        {"conv_in.", "input_blocks.0.0."}, {"conv_norm_out.", "out.0."}, {"conv_out.", "out.2."},
    };
    for (size_t k = 0; k < sizeof fixed / sizeof fixed[0]; k++) {
        s = name;
        if (!take(&s, fixed[k][0])) return emit(out, cap, "%s%s", fixed[k][1], s);
    }
    s = name;
    if (!take(&s, "down_blocks.")) {
        if (take_index(&s, &i) || i > last) return -1;
        if (!take(&s, "resnets.")) {
            if (take_index(&s, &j) || j >= L) return -1;
            snprintf(block, sizeof block, "input_blocks.%d.0", 1 + i * (L + 1) + j);
            return resnet_name(s, block, out, cap);
        }
        if (!take(&s, "attentions.")) {
            if (take_index(&s, &j) || j >= L) return -1;
            return emit(out, cap, "input_blocks.%d.1.%s", 1 + i * (L + 1) + j, s);
        }
        if (!take(&s, "downsamplers.0.conv.") && i < last)
            return emit(out, cap, "input_blocks.%d.0.op.%s", (i + 1) * (L + 1), s);
        return -1;
    }
    if (!take(&s, "mid_block.")) {
        if (!take(&s, "resnets.")) {
            if (take_index(&s, &j) || j > 1) return -1;
            snprintf(block, sizeof block, "middle_block.%d", 2 * j);
            return resnet_name(s, block, out, cap);
        }
        if (!take(&s, "attentions.0.")) return emit(out, cap, "middle_block.1.%s", s);
        return -1;
    }
    if (!take(&s, "up_blocks.")) {
        if (take_index(&s, &i) || i > last) return -1;
        if (!take(&s, "resnets.")) {
            if (take_index(&s, &j) || j > L) return -1;
            snprintf(block, sizeof block, "output_blocks.%d.0", i * (L + 1) + j);
            return resnet_name(s, block, out, cap);
        }
        if (!take(&s, "attentions.")) {
            if (take_index(&s, &j) || j > L) return -1;
            return emit(out, cap, "output_blocks.%d.1.%s", i * (L + 1) + j, s);
        }
        if (!take(&s, "upsamplers.0.conv.") && i < last)
            return emit(out, cap, "output_blocks.%d.%d.conv.%s", i * (L + 1) + L,
                        c->depth[last - i] > 0 ? 2 : 1, s);
        return -1;
    }
    return -1;
}

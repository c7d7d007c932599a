/* unet/fusion.h: FreeScale's scale fusion as strip ops (unet/fusion.c),
 * private to unet/ and its tests (tests/test_fusion.c).
 *
 * The general rule (unet.h's contract, spec/freescale.md section 5), for a
 * stage latent (lat_h, lat_w), a base (stage-0) latent (base_h, base_w) and
 * a level whose feature map is fh x fw tokens:
 *   s_h = lat_h / base_h, s_w = lat_w / base_w (integer division, both >= 1),
 *   s = max(s_h, s_w);
 *   window   P = (fh / s, fw / s)          (at least 1 per axis)
 *   stride   S = max(1, P / 2) per axis
 *   radius   r = P / 8 per axis            (jitter range and zero padding)
 *   windows  n = 1 if L <= P, else ceil((L - P) / S) + 1 per axis (L = fh or fw)
 *   window i of an axis starts at i S, shifted back to end at L if it would
 *   pass it, clamped at 0; its jitter range is [-r, r] inside, [-r, 0] when
 *   it starts at 0, [0, r] when it ends at L, 0 when it spans the axis; the
 *   jittered window starts at start + j + r in the map zero-padded by r.
 *   blur kernel k = 2 s - 1.
 * With a 128 x 128 base and square stages this is the official get_views with
 * its scale_factor arithmetic (P = 64/32 at the 1/2 and 1/4 levels, stride
 * 32/16, r 8/4); official non-square stages (P = h / s, w / s there too) also
 * agree. Where the official integer arithmetic rounds differently (strides of
 * odd windows) this rule, not a copy of the rounding, is what runs.
 *
 * Windows are numbered wy * nw + wx (row-major); their jitter comes from
 * fs_rng_randint(jitter_seed, jitter_stream, index, lo, hi) with index =
 * (((step * 256 + block) * 65536 + window) * 2 + axis), axis 0 = rows, 1 =
 * columns, block = the self-attention's ordinal in forward order (down
 * levels, mid, up levels; one per BasicTransformerBlock; SDXL: 0..69). */
#ifndef FS_UNET_FUSION_H
#define FS_UNET_FUSION_H

#include "nn/nn.h"
#include "unet/unet.h"

typedef struct fus_geom {
    int fh, fw;          /* the level's feature map (tokens) */
    int s_h, s_w, s;     /* stage scale per axis, and the larger */
    int ph, pw;          /* window */
    int sh, sw;          /* stride */
    int rh, rw;          /* jitter radius = zero padding on each side */
    int nh, nw;          /* windows per axis */
    int k;               /* blur kernel 2 s - 1 */
} fus_geom;

/* A window: its top-left token in the zero-padded map (padded coordinates:
 * real token (y, x) is padded (y + rh, x + rw)); it covers ph x pw tokens. */
typedef struct fus_view { int y0, x0; } fus_view;

fs_code fus_geometry(int lat_h, int lat_w, int base_h, int base_w, int fh, int fw, fus_geom *g,
                     fs_error *err);
/* Window i of an axis of length L (window P, stride S): its unjittered
 * [start, end) and its jitter range [lo, hi] for radius r. */
void fus_axis_window(int L, int P, int S, int r, int i, int *start, int *end, int *lo, int *hi);
/* Every window (nh * nw, in ordinal order) with its jitter for this step and
 * block, in padded coordinates. */
void fus_views(const fus_geom *g, uint64_t seed, uint64_t stream, int step, int block,
               fus_view *views);
/* The jitter key's counter index (unet.h). */
uint64_t fus_jitter_index(int step, int block, int window, int axis);

/* Local path, pre-to_out: out (own rows [row0, row0 + rows) of the map,
 * [rows][fw][c]) = average over the windows covering each token of the
 * window attention of the padded map: q [rows][fw][c] the own tokens'
 * queries, k and v [fh][fw][c] every token's; a padded token's query, key
 * and value are pad_q, pad_k, pad_v ([c]: the projections of a zero token,
 * i.e. their biases, or zeros). Window contributions are added in window
 * ordinal order; query tiles are aligned on window coordinates, so a
 * token's result never depends on the rows computed with it. */
fs_code fus_local(nn_ctx *nn, const fus_geom *g, const fus_view *views, const float *q,
                  const float *k, const float *v, const float *pad_q, const float *pad_k,
                  const float *pad_v, int row0, int rows, int c, int heads, float *out);
/* Global path, pre-to_out: full attention of the own queries over every
 * token (m0-aligned as the plain forward), or with fast_mode over each of
 * the s_h x s_w dilated sub-lattices separately (tiles aligned on
 * sub-lattice coordinates). Same shapes as fus_local. */
fs_code fus_global(nn_ctx *nn, const fus_geom *g, int fast_mode, const float *q, const float *k,
                   const float *v, int row0, int rows, int c, int heads, float *out);
/* The fusion of the post-to_out outputs, for all n items of this strip:
 * out = G + blur(Lo - G) (= blur(Lo) + G - blur(G): the blur is linear).
 * G [n][rows][w][c]; lo is a halo buffer [n][hr + rows + hr][w][c] with the
 * local output in its own rows, hr = fus_blur_halo(kind, g); it is
 * overwritten. out [n][rows][w][c] may not alias G. */
int fus_blur_halo(fs_blur_kind kind, const fus_geom *g);
fs_code fus_blend(nn_ctx *nn, const nn_level *lv, const fus_geom *g, fs_blur_kind kind,
                  float sigma, int c, const float *G, float *lo, float *out);

#endif

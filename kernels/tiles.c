/* kernels/tiles.c: the seam blend of diffusers' tiled VAE (AutoencoderKL
 * tiled_decode / tiled_encode: blend_v, blend_h), for vae/tiled.c. The
 * weights are computed in double and rounded to float once per row or
 * column, then each element is a * wa + b * wb in float, as diffusers does
 * it (a Python float times a float32 tensor). */
#include "kernels/kernels.h"

void fs_tile_blend(const float *a, int ah, int aw, float *b, int bh, int bw, int c, int blend,
                   int vertical) {
    if (vertical) {
        int e = ah < bh ? ah : bh;
        if (blend < e) e = blend;
        const size_t row = (size_t)bw * c;
        for (int y = 0; y < e; y++) {
            const float wa = (float)(1.0 - (double)y / e), wb = (float)((double)y / e);
            const float *ar = a + (size_t)(ah - e + y) * row;
            float *br = b + (size_t)y * row;
            for (size_t i = 0; i < row; i++) br[i] = ar[i] * wa + br[i] * wb;
        }
        return;
    }
    int e = aw < bw ? aw : bw;
    if (blend < e) e = blend;
    for (int x = 0; x < e; x++) {
        const float wa = (float)(1.0 - (double)x / e), wb = (float)((double)x / e);
        for (int y = 0; y < bh; y++) {
            const float *ap = a + ((size_t)y * aw + (aw - e + x)) * c;
            float *bp = b + ((size_t)y * bw + x) * c;
            for (int ch = 0; ch < c; ch++) bp[ch] = ap[ch] * wa + bp[ch] * wb;
        }
    }
}

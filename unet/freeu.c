/* unet/freeu.c: FreeU in the up blocks (unet.h, spec/freescale.md section 7).
 *
 * The official rule goes by the channel count of the incoming h (1280: b1,
 * s1; 640: b2, s2). Generalised to L levels by where h comes from: resnet 0
 * of up block i > 0 receives the previous up block's upsampled output (level
 * L - i); every other resnet of up block i receives its own level's (L-1-i),
 * and up block 0's resnet 0 the mid block's (level L-1). h from level L-1:
 * b1, s1; from level L-2: b2, s2; otherwise untouched. SDXL: all of
 * up_blocks.0 and up_blocks.1.resnets.0 (h of 1280 channels), then
 * up_blocks.1.resnets.1-2 and up_blocks.2.resnets.0 (640): the official
 * rule exactly.
 *
 * The Fourier filter of the skip is exact on strips: four DFT coefficients
 * per channel (kernels.h, fs_freeu_row_coeffs) as per-row partials, summed
 * exactly over all rows (nn_freeu_filter: fixed-point sums, one all-reduce
 * of 448 bytes per channel and item), then applied to the own rows:
 * bit-identical for any split, instead of an all-to-all FFT. */
#include "unet/forward.h"

int fwd_freeu_which(const fs_unet_config *cfg, int up_block, int resnet) {
    const int last = cfg->levels - 1;
    /* the level h comes from */
    const int src = resnet == 0 && up_block > 0 ? last - up_block + 1 : last - up_block;
    return src == last ? 1 : src == last - 1 ? 2 : 0;
}

fs_code fwd_freeu(fwd *f, const fwd_level *lv, int up_block, int resnet, float *h, int ch,
                  float *skip, int cs) {
    const fs_unet_freescale *fsx = f->fsx;
    if (!fsx || !fsx->freeu.on) return FS_OK;
    const int which = fwd_freeu_which(f->cfg, up_block, resnet);
    if (!which) return FS_OK;
    const float b = which == 1 ? fsx->freeu.b1 : fsx->freeu.b2;
    const float s = which == 1 ? fsx->freeu.s1 : fsx->freeu.s2;
    fs_code rc = nn_scale_channels(&f->nn, h, (size_t)f->nn.n * lv->rows * lv->w, ch, ch / 2, b);
    return rc ? rc : nn_freeu_filter(&f->nn, lv, skip, cs, s);
}

/* nn/ops_gpu.c: the GPU side of nn.h's helpers (not public: only nn/ops.c
 * and nn/ops_fs.c include it). Each is called from the helper of the same
 * name in the real pass when f->gpu is set; arguments are the helper's. */
#ifndef FS_NN_GPU_H
#define FS_NN_GPU_H
#include "nn/nn.h"

/* After a failure (f->err->code set) every GPU helper returns at once, so
 * f->err keeps the first failure's message. */
/* nn/ops.c: GroupNorm's mean and rstd from this strip's per-row partials,
 * all on the host (the CPU pass, and the GPU pass after its download). */
fs_code nn_gn_fold(nn_ctx *f, const nn_level *lv, const double *own_part, int c, int groups,
                   float eps, float *mean, float *rstd);
void nn_gpu_gn_partials(nn_ctx *f, const float *x, int rows, int w, int c, int groups,
                        double *part);
fs_code nn_gpu_gn_finish(nn_ctx *f, const nn_level *lv, const double *own_part, int c,
                         int groups, float eps, float *mean, float *rstd);
void nn_gpu_gn_apply(nn_ctx *f, const nn_level *lv, const float *x, int c, int groups,
                     const float *mean, const float *rstd, const nn_norm_w *nw, int silu,
                     float *buf, int top, int bot);
void nn_gpu_copy_own(nn_ctx *f, const nn_level *lv, const float *x, int c, float *buf, int top,
                     int bot);
fs_code nn_gpu_halo(nn_ctx *f, const nn_level *lv, float *buf, int c, int top, int bot);
fs_code nn_gpu_allgather(nn_ctx *f, const nn_level *lv, const float *own, float *full, int c);
#endif

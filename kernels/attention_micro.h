/* kernels/attention_micro.h (private to kernels/): the two products of one
 * flash-attention step (kernels/attention.c) as register-blocked AVX2 loops
 * instead of OpenBLAS calls.
 *
 * Why: the products of attention are small (a 256-query tile against a block
 * of at most 256 keys, inner dimension dh = 64 for SDXL): OpenBLAS zeroes C
 * and packs both operands on every call and reached ~60% of its big-GEMM
 * rate there (less with the 77 keys of the text context). Here each output
 * element is one fixed-order FMA chain (over d for a score, over the keys for
 * an output), so its bits depend only on the data and the shapes, never on
 * the threads or the split. Any dh and kv; bq a multiple of 16.
 *
 * Operands are first copied into panels that the loops read sequentially
 * (strided reads of 64-float rows 4 KB apart thrash the 8-way L1):
 *   Q^T: panel p = queries [16p, 16p + 16): [dh][16];
 *   K:   panel g = keys [6g, 6g + R): [dh][R], R = min(6, kv - 6g);
 *   V:   panel g = dims [6g, 6g + R): [kv][R], R = min(6, dh - 6g). */
#ifndef FS_KERNELS_ATTENTION_MICRO_H
#define FS_KERNELS_ATTENTION_MICRO_H

#include <stddef.h>

/* Floats of a packed K or V block of n rows (keys) x dh. */
size_t fs_att_packed_floats(int n, int dh);

/* Packs the query tile: tile rows i in [i0, i1) from q (q points at row i0,
 * row stride ldq), zeros for the other rows of the bq-row tile. */
void fs_att_pack_qt(const float *q, int ldq, int i0, int i1, int dh, int bq, float *qt);
void fs_att_pack_k(const float *k, int ldk, int kv, int dh, float *kp);
void fs_att_pack_v(const float *v, int ldv, int kv, int dh, float *vp);

/* st[r * lds + i] = scale * sum_d k[r][d] q[i][d] for r < kv, i < bq. */
void fs_att_scores(const float *kp, int kv, const float *qt, int dh, int bq, float scale,
                   float *st, int lds);

/* ot[d * bq + i] += sum_{r < kv} v[r][d] st[r * lds + i] for d < dh, i < bq
 * (the sum over r in key order, then added to ot). */
void fs_att_pv(const float *vp, int kv, const float *st, int lds, int dh, int bq, float *ot);

/* o[(i - i0) * ldo + d] = ot[d * bq + i] / l[i] for tile rows i in [i0, i1)
 * (o points at row i0): the write-back, in 8 x 8 transposed blocks (a walk
 * down a column of ot, 1 KB apart, thrashes L1). */
void fs_att_store_o(const float *ot, int bq, const float *l, int i0, int i1, int dh, float *o,
                    int ldo);

#endif

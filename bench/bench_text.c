/* bench/bench_text.c: time of SDXL's text encoders (random weights of the
 * real shapes) encoding a batch of 77-token sequences.
 *
 *   bench_text [which 0|1|2] [layers] [n_seq] [reps]
 *     which 0: CLIP-L, 1: OpenCLIP-bigG, 2: both (the SDXL conditioning of
 *     one prompt: CLIP-L hidden state + bigG hidden state and pooled)
 *     layers: override the layer count (0 = the real one), to time a few
 *     layers of bigG without its 2.8 GB of weights; times scale linearly.
 *
 * Prints seconds per encode and the GEMM rate (token products only:
 * 2 * rows * (4 C^2 + 2 C mlp) per layer, plus attention's 2 * 2 * 77^2 C /
 * 2 causal). Threads: FS_THREADS (default all cores). Compare with PyTorch
 * on the same machine: tools/bench_text_torch.py with the same arguments. */
#include <stdio.h>
#include <stdlib.h>
#include "kernels/kernels.h"
#include "text/encoders.h"

static double encoder_flops(const fs_clip_config *c, int n_seq, int layers) {
    double rows = (double)n_seq * c->positions, C = c->width;
    double per_layer = 2 * rows * (4 * C * C + 2 * C * c->mlp) +
                       2.0 * n_seq * c->positions * c->positions * C; /* causal: half of 4 T^2 C */
    return per_layer * layers;
}

int main(int argc, char **argv) {
    int which = argc > 1 ? atoi(argv[1]) : 2, layers = argc > 2 ? atoi(argv[2]) : 0;
    int n_seq = argc > 3 ? atoi(argv[3]) : 1, reps = argc > 4 ? atoi(argv[4]) : 3;
    fs_threads_init(0);
    fs_error err = {0};
    fs_clip *m[2] = {NULL, NULL};
    for (int e = 0; e < 2; e++) {
        if (which != 2 && which != e) continue;
        fs_clip_config c = fs_clip_config_sdxl(e);
        if (layers > 0) c.layers = layers;
        double t0 = fs_now();
        if (fs_clip_create_random(&c, 7 + e, &m[e], &err)) {
            fprintf(stderr, "bench_text: %s\n", err.msg);
            return 1;
        }
        printf("%s: %d layers, width %d, %.0f M parameters (random init %.1f s)\n",
               e ? "bigG" : "CLIP-L", c.layers, c.width,
               fs_clip_get_info(m[e])->params / 1e6, fs_now() - t0);
    }
    int32_t *ids = malloc((size_t)n_seq * 77 * sizeof(int32_t));
    for (int i = 0; i < n_seq * 77; i++) ids[i] = (i % 77) == 0 ? 49406 : (i * 7919) % 49406;
    for (int s = 0; s < n_seq; s++) ids[s * 77 + 40] = 49407;
    double flops = 0;
    for (int e = 0; e < 2; e++)
        if (m[e]) {
            const fs_clip_config *c = &fs_clip_get_info(m[e])->config;
            /* SDXL runs CLIP-L to its penultimate layer, bigG through (pooled) */
            flops += encoder_flops(c, n_seq, c->projection ? c->layers : c->layers - 1);
        }
    for (int r = 0; r < reps; r++) {
        double t0 = fs_now();
        for (int e = 0; e < 2; e++) {
            if (!m[e]) continue;
            const fs_clip_config *c = &fs_clip_get_info(m[e])->config;
            float *h = malloc((size_t)n_seq * 77 * c->width * sizeof(float));
            float *p = c->projection ? malloc((size_t)n_seq * c->projection * sizeof(float)) : NULL;
            if (fs_clip_encode(m[e], ids, n_seq, c->layers - 1, h, p, &err)) {
                fprintf(stderr, "bench_text: %s\n", err.msg);
                return 1;
            }
            free(h);
            free(p);
        }
        double dt = fs_now() - t0;
        printf("encode %d x 77 tokens, %d threads: %.3f s, %.1f GFLOP/s\n", n_seq,
               fs_threads_count(), dt, flops / dt / 1e9);
    }
    free(ids);
    fs_clip_free(m[0]);
    fs_clip_free(m[1]);
    return 0;
}

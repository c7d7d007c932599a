/* Philox4x32-10 (Salmon, Moraes, Dror, Shaw: "Parallel random numbers: as
 * easy as 1, 2, 3", SC'11) and the samplers built on it. Every value is a
 * pure function of (seed, stream, index): noise does not depend on ranks,
 * threads or resuming. */
#include <math.h>
#include "core/core.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void fs_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

static void block(uint64_t seed, uint64_t stream, uint64_t b, uint32_t out[4]) {
    const uint32_t ctr[4] = {(uint32_t)b, (uint32_t)(b >> 32), (uint32_t)stream,
                             (uint32_t)(stream >> 32)};
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    fs_philox4x32_10(ctr, key, out);
}

/* u in (0, 1): never 0, so log(u) is finite. */
static double open_unit(uint32_t w) { return ((double)w + 0.5) * 0x1p-32; }

static void box_muller(uint32_t a, uint32_t b, float *z0, float *z1) {
    double r = sqrt(-2.0 * log(open_unit(a)));
    double th = 2.0 * M_PI * open_unit(b);
    *z0 = (float)(r * cos(th));
    *z1 = (float)(r * sin(th));
}

static void normals4(uint64_t seed, uint64_t stream, uint64_t b, float z[4]) {
    uint32_t w[4];
    block(seed, stream, b, w);
    box_muller(w[0], w[1], &z[0], &z[1]);
    box_muller(w[2], w[3], &z[2], &z[3]);
}

float fs_rng_normal(uint64_t seed, uint64_t stream, uint64_t index) {
    float z[4];
    normals4(seed, stream, index / 4, z);
    return z[index % 4];
}

void fs_rng_fill_normal(float *dst, size_t n, uint64_t seed, uint64_t stream, uint64_t offset) {
    /* Whole Philox blocks (four normals each) in parallel; every element is
     * still the pure function fs_rng_normal(seed, stream, offset + i). */
    if (n == 0) return;
    uint64_t first = offset / 4, last = (offset + n - 1) / 4;
    #pragma omp parallel for schedule(static) if (n > 65536)
    for (uint64_t b = first; b <= last; b++) {
        float z[4];
        normals4(seed, stream, b, z);
        for (int j = 0; j < 4; j++) {
            uint64_t idx = 4 * b + (uint64_t)j;
            if (idx >= offset && idx - offset < n) dst[idx - offset] = z[j];
        }
    }
}

double fs_rng_uniform(uint64_t seed, uint64_t stream, uint64_t index) {
    uint32_t w[4];
    block(seed, stream, index / 4, w);
    return (double)w[index % 4] * 0x1p-32;
}

int64_t fs_rng_randint(uint64_t seed, uint64_t stream, uint64_t index, int64_t lo, int64_t hi) {
    if (hi <= lo) return lo;
    uint64_t span = (uint64_t)(hi - lo) + 1;
    /* 64 random bits from two words of block `index`; the modulo bias is at
     * most span / 2^64, far below anything observable. */
    uint32_t w[4];
    block(seed, stream, index, w);
    uint64_t r = ((uint64_t)w[0] << 32) | w[1];
    return lo + (int64_t)(span ? r % span : r);
}

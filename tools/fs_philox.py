"""tools/fs_philox.py: core/rng.c ported bit for bit (Philox4x32-10, the
Box-Muller normals and randint), for the Python references that must draw
the same random numbers as the C engine (tools/ref_freescale.py).

Every value is a pure function of (seed, stream, index), as in C:
  block b = Philox(ctr = {b_lo, b_hi, stream_lo, stream_hi}, key = {seed_lo, seed_hi})
  normal(index): block index // 4, Box-Muller on words (0, 1) and (2, 3),
                 u = (w + 0.5) * 2^-32 in double, float32 of r cos / r sin
  randint(index, lo, hi): block `index`, r = (w0 << 32) | w1, lo + r % (hi - lo + 1)
Philox runs vectorised in numpy (exact integer arithmetic); the logarithm,
square root, cosine and sine go through Python's math module, i.e. the same
libm calls as the C code (numpy's SIMD versions may differ in the last bit).

Self-test against the C library: `python tools/fs_philox.py --check` compiles a
tiny program against core/rng.c and compares (needs cc)."""
import math
import os
import subprocess
import sys
import tempfile

import numpy as np

M0, M1 = 0xD2511F53, 0xCD9E8D57
W0, W1 = 0x9E3779B9, 0xBB67AE85
MASK32 = 0xFFFFFFFF


def philox_blocks(seed, stream, blocks):
    """Philox4x32-10 of counters {b, stream} for the uint64 array `blocks`:
    returns four uint32 arrays (words 0..3)."""
    b = np.asarray(blocks, dtype=np.uint64)
    m32 = np.uint64(MASK32)
    c0 = b & m32
    c1 = b >> np.uint64(32)
    c2 = np.full_like(b, stream & MASK32)
    c3 = np.full_like(b, (stream >> 32) & MASK32)
    k0, k1 = seed & MASK32, (seed >> 32) & MASK32
    for _ in range(10):
        p0 = np.uint64(M0) * c0
        p1 = np.uint64(M1) * c2
        n0 = (p1 >> np.uint64(32)) ^ c1 ^ np.uint64(k0)
        n1 = p1 & m32
        n2 = (p0 >> np.uint64(32)) ^ c3 ^ np.uint64(k1)
        n3 = p0 & m32
        c0, c1, c2, c3 = n0, n1, n2, n3
        k0 = (k0 + W0) & MASK32
        k1 = (k1 + W1) & MASK32
    return c0, c1, c2, c3


def _box_muller(a, b):
    r = math.sqrt(-2.0 * math.log((a + 0.5) * 2.0 ** -32))
    th = 2.0 * math.pi * ((b + 0.5) * 2.0 ** -32)
    return r * math.cos(th), r * math.sin(th)


def normals(seed, stream, offset, n):
    """float32 array: fs_rng_normal(seed, stream, offset + i) for i < n
    (fs_rng_fill_normal)."""
    if n <= 0:
        return np.zeros(0, np.float32)
    first, last = offset // 4, (offset + n - 1) // 4
    w = philox_blocks(seed, stream, np.arange(first, last + 1, dtype=np.uint64))
    w = [x.tolist() for x in w]
    out = np.empty(4 * (last - first + 1), np.float64)
    for j in range(last - first + 1):
        z0, z1 = _box_muller(w[0][j], w[1][j])
        z2, z3 = _box_muller(w[2][j], w[3][j])
        out[4 * j:4 * j + 4] = (z0, z1, z2, z3)
    s = offset - 4 * first
    return out[s:s + n].astype(np.float32)  # (float)(double): round to nearest, as C


def randint(seed, stream, index, lo, hi):
    """fs_rng_randint: uniform integer in [lo, hi] from block `index`."""
    if hi <= lo:
        return lo
    w = philox_blocks(seed, stream, np.array([index], dtype=np.uint64))
    r = (int(w[0][0]) << 32) | int(w[1][0])
    return lo + r % (hi - lo + 1)


def uniform(seed, stream, index):
    w = philox_blocks(seed, stream, np.array([index // 4], dtype=np.uint64))
    return int(w[index % 4][0]) * 2.0 ** -32


# ------------------------------------------------------------------ self-test
C_PROG = r"""
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include "core/core.h"
int main(int argc, char **argv) {
    if (argc > 1) { /* a large fill, as raw float32, for the bulk comparison */
        size_t n = 3 * 65536 + 5;
        float *x = malloc(n * sizeof(float));
        fs_rng_fill_normal(x, n, 11, 0x201, 3);
        FILE *f = fopen(argv[1], "wb");
        fwrite(x, sizeof(float), n, f);
        fclose(f);
        free(x);
        return 0;
    }
    const uint64_t seeds[3] = {0, 11, 0x123456789abcdefULL};
    const uint64_t streams[4] = {1, 0x101, 0x202, 0x300000001ULL};
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 4; b++) {
            float x[70];
            fs_rng_fill_normal(x, 70, seeds[a], streams[b], 4097);
            for (int i = 0; i < 70; i++) printf("N %d %d %.9e\n", a, b, (double)x[i]);
            for (uint64_t i = 0; i < 40; i++) {
                uint64_t idx = i * 2654435761ULL + (uint64_t)a * 99991ULL;
                printf("R %d %d %llu %lld %lld %lld\n", a, b, (unsigned long long)idx,
                       (long long)fs_rng_randint(seeds[a], streams[b], idx, -4, 4),
                       (long long)fs_rng_randint(seeds[a], streams[b], idx, 0, 2),
                       (long long)fs_rng_randint(seeds[a], streams[b], idx, -3, 0));
            }
            for (uint64_t i = 0; i < 8; i++)
                printf("U %d %d %.17g\n", a, b, fs_rng_uniform(seeds[a], streams[b], i * 7 + 3));
        }
    return 0;
}
"""


def self_check(repo):
    seeds = [0, 11, 0x123456789abcdef]
    streams = [1, 0x101, 0x202, 0x300000001]
    with tempfile.TemporaryDirectory() as d:
        src, exe = os.path.join(d, "t.c"), os.path.join(d, "t")
        with open(src, "w") as f:
            f.write(C_PROG)
        subprocess.run(["cc", "-O2", "-std=c11", "-D_GNU_SOURCE", "-I", repo, src,
                        os.path.join(repo, "core", "rng.c"), "-o", exe, "-lm"], check=True)
        out = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
        raw = os.path.join(d, "bulk.f32")
        subprocess.run([exe, raw], check=True)
        bulk = np.fromfile(raw, dtype=np.float32)
    mine = normals(11, 0x201, 3, bulk.size)
    assert np.array_equal(mine.view(np.uint32), bulk.view(np.uint32)), \
        f"bulk normals differ at {int(np.sum(mine != bulk))} of {bulk.size}"
    nn = nr = nu = 0
    cache = {}
    for line in out.splitlines():
        f = line.split()
        a, b = int(f[1]), int(f[2])
        if f[0] == "N":
            if (a, b) not in cache:
                cache[(a, b)] = normals(seeds[a], streams[b], 4097, 70)
                k = 0
            want = np.float32(float(f[3]))
            got = cache[(a, b)][k]
            k += 1
            assert got == want, (a, b, k, got, want)
            nn += 1
        elif f[0] == "R":
            idx = int(f[3])
            got = (randint(seeds[a], streams[b], idx, -4, 4), randint(seeds[a], streams[b], idx, 0, 2),
                   randint(seeds[a], streams[b], idx, -3, 0))
            assert got == (int(f[4]), int(f[5]), int(f[6])), (line, got)
            nr += 1
        else:
            nu += 1
            i = nu - 1 - 8 * (a * 4 + b)
            assert uniform(seeds[a], streams[b], i * 7 + 3) == float(f[3]), line
    print(f"fs_philox: {bulk.size} + {nn} normals, {nr} randint triples, {nu} uniforms equal to core/rng.c")


if __name__ == "__main__":
    if "--check" in sys.argv:
        self_check(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#!/usr/bin/env python3
"""Golden tensors for FreeU's Fourier filter (spec/freescale.md section 7).

Runs the official FreeU code (free_lunch_utils.py, Fourier_filter, copied
below; only `.cuda()` is dropped so it runs on the CPU) with threshold 1 and
scale 0.6 on small random maps of even, odd, 2- and 1-long sizes, and writes
tests/data/freeu/golden.safetensors:
  x<i>, y<i>: [H][W][C] float32 (NHWC, the engine's layout; torch runs NCHW)
  scale:      [1] float32
Usage: /tmp/tv/bin/python tools/gen_freeu_golden.py [out.safetensors]
"""
import os
import sys

import torch
import torch.fft as fft
from safetensors.torch import save_file


def Fourier_filter(x, threshold, scale):
    dtype = x.dtype
    x = x.type(torch.float32)
    # FFT
    x_freq = fft.fftn(x, dim=(-2, -1))
    x_freq = fft.fftshift(x_freq, dim=(-2, -1))

    B, C, H, W = x_freq.shape
    mask = torch.ones((B, C, H, W))

    crow, ccol = H // 2, W // 2
    mask[..., crow - threshold:crow + threshold, ccol - threshold:ccol + threshold] = scale
    x_freq = x_freq * mask

    # IFFT
    x_freq = fft.ifftshift(x_freq, dim=(-2, -1))
    x_filtered = fft.ifftn(x_freq, dim=(-2, -1)).real

    x_filtered = x_filtered.type(dtype)
    return x_filtered


SIZES = [(8, 8), (6, 10), (7, 5), (2, 4), (1, 6)]
C = 3
SCALE = 0.6


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        here, "..", "tests", "data", "freeu", "golden.safetensors")
    gen = torch.Generator().manual_seed(20240917)
    tensors = {"scale": torch.tensor([SCALE], dtype=torch.float32)}
    for i, (h, w) in enumerate(SIZES):
        x = torch.randn((1, C, h, w), generator=gen, dtype=torch.float32)
        y = Fourier_filter(x, threshold=1, scale=SCALE)
        tensors[f"x{i}"] = x[0].permute(1, 2, 0).contiguous()
        tensors[f"y{i}"] = y[0].permute(1, 2, 0).contiguous()
    os.makedirs(os.path.dirname(out), exist_ok=True)
    save_file(tensors, out, metadata={
        "generator": "tools/gen_freeu_golden.py",
        "torch": torch.__version__,
        "cases": ";".join(f"{h}x{w}x{C}" for h, w in SIZES),
    })
    print(f"wrote {out}: {len(SIZES)} cases, scale {SCALE}")


if __name__ == "__main__":
    main()

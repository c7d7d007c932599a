#!/usr/bin/env python3
"""Writes a diffusers UNet folder (config.json + diffusion_pytorch_model.fp16.safetensors)
with seeded random weights, for benchmarks that time the C UNet and PyTorch on
the same weights (bench/unet_vs_torch.sh).

  /tmp/tv/bin/python tools/make_random_unet.py --config sdxl --out /tmp/fs_bench/sdxl

--config: sdxl, or a golden config name (nonsquare, deep, heads), or a config.json.
Weights: diffusers' default initialisation (seeded), stored as F16; both sides
upcast the same F16 values to f32, so they compute with identical weights.
"""
import argparse
import json
import os
import sys

import torch
from diffusers import UNet2DConditionModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_unet_torch import SDXL_CONFIG, GOLDEN  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="sdxl")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    if args.config == "sdxl":
        cfg = dict(SDXL_CONFIG)
    else:
        path = args.config if args.config.endswith(".json") else \
            os.path.join(GOLDEN, args.config, "unet", "config.json")
        with open(path) as f:
            cfg = {k: v for k, v in json.load(f).items() if not k.startswith("_")}
    torch.manual_seed(args.seed)
    model = UNet2DConditionModel(**cfg)
    for p in model.parameters():  # in place, one tensor at a time
        p.data = p.data.half()
    os.makedirs(args.out, exist_ok=True)
    model.save_pretrained(args.out, variant="fp16", safe_serialization=True)
    n = sum(p.numel() for p in model.parameters())
    print(f"make_random_unet: {n} parameters -> {args.out}")


if __name__ == "__main__":
    main()

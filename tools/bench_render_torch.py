#!/usr/bin/env python3
"""tools/bench_render_torch.py: the diffusers side of bench/render_vs_torch.sh.

Times StableDiffusionXLPipeline (CPU, float32) on a diffusers folder (default: the
tiny golden pipeline tests/data/render/pipe, whose folder has no tokenizer: the
CLIP tokenizers are built from the shipped merges as tools/gen_render_golden.py
does), for one prompt, size, step count and thread count; prints the best of
--iters whole calls (text encoders, the denoising loop, the VAE decode and
postprocessing), model loading excluded.
"""
import argparse
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tests/data/render/pipe")
    ap.add_argument("--prompt", default="a lighthouse on a rocky coast at dawn, oil painting")
    ap.add_argument("--negative", default="blurry, low quality")
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--height", type=int, default=512)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=7.5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--iters", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from diffusers import StableDiffusionXLPipeline
    import gen_render_golden as g
    with tempfile.TemporaryDirectory() as d:
        tok, tok2 = g.build_tokenizers(d)
    pipe = StableDiffusionXLPipeline.from_pretrained(
        a.model, tokenizer=tok, tokenizer_2=tok2, torch_dtype=torch.float32,
        add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    best = None
    for _ in range(a.iters):
        gen = torch.Generator().manual_seed(0)
        t0 = time.perf_counter()
        with torch.no_grad():
            pipe(prompt=a.prompt, negative_prompt=a.negative, num_inference_steps=a.steps,
                 guidance_scale=a.guidance, width=a.width, height=a.height, generator=gen,
                 output_type="pil")
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    print(f"diffusers {a.width}x{a.height} {a.steps} steps, {a.threads} threads: "
          f"render best {best * 1e3:.1f} ms of {a.iters}")


if __name__ == "__main__":
    main()

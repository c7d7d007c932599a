#!/usr/bin/env python3
"""tools/bench_unet_torch.py: the PyTorch peer for bench/bench_unet.c. Times
diffusers' UNet2DConditionModel forward on the CPU (float32, batch 2 = a CFG pair)
and prints ms per evaluation, GFLOP per evaluation (torch's FlopCounterMode:
convolutions, matmuls, attention) and the process's peak RSS.

  /tmp/tv/bin/python tools/bench_unet_torch.py --config nonsquare --threads 2
  /tmp/tv/bin/python tools/bench_unet_torch.py --config sdxl --latent 64x64 --threads 2
  /tmp/tv/bin/python tools/bench_unet_torch.py --weights DIR/unet/diffusion_pytorch_model.safetensors

--config: a golden config name (nonsquare, deep, heads: tests/data/unet/<name>/unet/
config.json), "sdxl" (SDXL base 1.0's UNet config), or a path to a config.json.
--weights FILE: a diffusers-layout safetensors (any of F32/F16/BF16, converted to
float32), so the C bench and torch can run the same weights; its config is the
config.json beside it unless --config says otherwise. Without --weights the model
keeps diffusers' default random init (values do not matter for timing).
The full SDXL UNet holds 2.57e9 float32 parameters (10.3 GB): the script checks
MemAvailable first and refuses unless about 12 GB are free (--force overrides);
nothing else big should run at the same time. Timing is wall clock, best and
median of --iters after --warmup runs; torch's own threads set by --threads
(torch.set_num_threads), inter-op threads 1.
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch
from diffusers import UNet2DConditionModel

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(REPO, "tests", "data", "unet")

SDXL_CONFIG = dict(
    sample_size=128, in_channels=4, out_channels=4, flip_sin_to_cos=True, freq_shift=0,
    down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    block_out_channels=[320, 640, 1280], layers_per_block=2,
    transformer_layers_per_block=[1, 2, 10], attention_head_dim=[5, 10, 20],
    cross_attention_dim=2048, use_linear_projection=True, addition_embed_type="text_time",
    addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816,
    norm_num_groups=32, norm_eps=1e-5, downsample_padding=1, act_fn="silu",
    upcast_attention=False)


def mem_available_bytes():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def load_config(args):
    if args.config == "sdxl" or (args.config is None and args.weights is None):
        return dict(SDXL_CONFIG), "sdxl"
    path = args.config
    if path is None:
        path = os.path.join(os.path.dirname(os.path.abspath(args.weights)), "config.json")
    elif not path.endswith(".json"):
        path = os.path.join(GOLDEN, path, "unet", "config.json")
    with open(path) as f:
        cfg = json.load(f)
    return {k: v for k, v in cfg.items() if not k.startswith("_")}, path


def param_count(cfg):
    with torch.device("meta"):
        m = UNet2DConditionModel(**cfg)
    return sum(p.numel() for p in m.parameters())


def build(cfg, weights):
    if not weights:
        return UNet2DConditionModel(**cfg).float().eval()
    # Meta-device model + assign: the weights are held once (10 GB for SDXL in
    # f32), never twice; each tensor is upcast and its f16 copy dropped.
    from safetensors.torch import load_file
    with torch.device("meta"):
        model = UNet2DConditionModel(**cfg)
    sd = load_file(weights)
    for k in list(sd):
        sd[k] = sd[k].float()
    missing, unexpected = model.load_state_dict(sd, strict=False, assign=True)
    if missing or unexpected:
        sys.exit(f"{weights}: {len(missing)} missing (e.g. {missing[:2]}), "
                 f"{len(unexpected)} unexpected (e.g. {unexpected[:2]}) tensors")
    del sd
    return model.float().eval()


def make_inputs(cfg, n, h, w, ctx_len, t):
    g = torch.Generator().manual_seed(7)
    text = cfg["projection_class_embeddings_input_dim"] - 6 * cfg["addition_time_embed_dim"]
    return dict(
        sample=torch.randn(n, cfg.get("in_channels", 4), h, w, generator=g),
        timestep=torch.full((n,), float(t)),
        encoder_hidden_states=torch.randn(n, ctx_len, cfg["cross_attention_dim"], generator=g),
        added_cond_kwargs=dict(text_embeds=torch.randn(n, text, generator=g),
                               time_ids=torch.tensor([[8 * h, 8 * w, 0, 0, 8 * h, 8 * w]] * n,
                                                     dtype=torch.float32)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", help="nonsquare | deep | heads | sdxl | path/config.json")
    ap.add_argument("--weights", help="diffusers-layout .safetensors to load")
    ap.add_argument("--latent", help="HxW latent (default: golden config's, 64x64 for sdxl)")
    ap.add_argument("--ctx-len", type=int, help="context tokens (default 77, golden's for tiny)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--t", type=float, default=981.0)
    ap.add_argument("--no-flops", action="store_true", help="skip the FLOP-counting pass")
    ap.add_argument("--force", action="store_true", help="run even if memory looks short")
    ap.add_argument("--device", default="cpu",
                    help="cpu, or cuda: the GPU peer of bench_unet --gpu (FP32, TF32 off, "
                         "synchronised wall clock per evaluation, peak GPU memory)")
    args = ap.parse_args()
    dev = torch.device(args.device)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    cfg, cfg_from = load_config(args)

    # shapes: the golden io's for a golden config, else 64x64 and 77 tokens
    h = w = 64
    ctx_len = 77
    golden_io = None
    if args.config in ("nonsquare", "deep", "heads"):
        golden_io = os.path.join(GOLDEN, args.config, "io.safetensors")
    elif args.weights and os.path.exists(os.path.join(os.path.dirname(
            os.path.dirname(os.path.abspath(args.weights))), "io.safetensors")):
        golden_io = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(args.weights))),
                                 "io.safetensors")
    if golden_io:
        from safetensors import safe_open
        with safe_open(golden_io, "pt") as f:
            _, h, w, _ = f.get_slice("x").get_shape()
            ctx_len = f.get_slice("context").get_shape()[1]
    if args.latent:
        h, w = (int(v) for v in args.latent.lower().split("x"))
    if args.ctx_len:
        ctx_len = args.ctx_len

    params = param_count(cfg)
    need = params * 4 * 1.15 + 1.5e9
    avail = mem_available_bytes()
    print(f"config {cfg_from}: {params / 1e6:.1f} M params ({params * 4 / 1e9:.2f} GB f32); "
          f"MemAvailable {avail / 1e9:.1f} GB")
    if need > avail and not args.force:
        sys.exit(f"refusing: needs about {need / 1e9:.1f} GB, {avail / 1e9:.1f} GB available "
                 "(stop other jobs, or --force)")

    t0 = time.perf_counter()
    model = build(cfg, args.weights)
    print(f"built in {time.perf_counter() - t0:.1f} s"
          + (f", weights from {args.weights}" if args.weights else ", default random init"))
    inp = make_inputs(cfg, args.batch, h, w, ctx_len, args.t)
    if dev.type == "cuda":
        model = model.to(dev)
        inp = {k: (v.to(dev) if torch.is_tensor(v) else {a: b.to(dev) for a, b in v.items()})
               for k, v in inp.items()}
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    gflop = None
    with torch.inference_mode():
        if not args.no_flops:
            from torch.utils.flop_counter import FlopCounterMode
            fc = FlopCounterMode(display=False)
            with fc:
                model(**inp, return_dict=False)
            gflop = fc.get_total_flops() / 1e9
        for _ in range(args.warmup):
            model(**inp, return_dict=False)
        sync()
        times = []
        for _ in range(args.iters):
            t0 = time.perf_counter()
            eps = model(**inp, return_dict=False)[0]
            sync()
            times.append((time.perf_counter() - t0) * 1e3)
    assert torch.isfinite(eps).all()
    best, med = min(times), statistics.median(times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, "
          f"latent {h}x{w}, ctx {ctx_len}")
    line = f"ms/eval best {best:.1f} median {med:.1f} (iters {args.iters})"
    if gflop is not None:
        line += f"; {gflop:.2f} GFLOP/eval, {gflop / (best / 1e3):.1f} GFLOP/s"
    if dev.type == "cuda":
        line += f"; peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
        print(f"device {torch.cuda.get_device_name()}")
    print(line + f"; peak RSS {rss:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

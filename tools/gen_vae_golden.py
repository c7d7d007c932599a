#!/usr/bin/env python3
"""tools/gen_vae_golden.py: golden files for the C VAE (tests/data/vae/), made
with diffusers' AutoencoderKL on CPU.

Run (from the repository root; a few seconds):
    /tmp/tv/bin/python tools/gen_vae_golden.py            # writes tests/data/vae/
    /tmp/tv/bin/python tools/gen_vae_golden.py --check    # regenerate in a temp dir, compare
Versions are written into tests/data/vae/versions.json.

Configurations (see CONFIGS): tiny VAEs with SDXL's block structure
(DownEncoderBlock2D / UpDecoderBlock2D, SiLU, GroupNorm eps 1e-6, a mid block
with single-head attention of head dim = the last width, quant_conv and
post_quant_conv, latent 4, scaling factor 0.13025):
  sdxl4  4 levels [8, 16, 16, 16] (widen, then flat; the decoder's last level
         narrows 16 -> 8 through a 1x1 shortcut), layers_per_block 2 (SDXL's),
         4 groups (2-4 channels each), latent 6x5 (image 48x40), batch 1;
         diffusers .fp16 F16, SGM BF16 with __metadata__ {"norm_num_groups": "4"}
  small  2 levels [32, 32], layers_per_block 1, SDXL's 32 groups (the SGM
         default: no metadata), latent 8x12 (image 16x24), batch 1;
         diffusers BF16 (plain file name), SGM F16
(F32 files and diffusers' old attention names are covered by tests/test_vae_load.c,
which writes them from these; the golden files stay under 2 MB.)
Files per configuration:
  <cfg>/vae/config.json + diffusers weights; <cfg>/sgm.safetensors: the same
  weights as first_stage_model.<SGM name> (spec/sdxl.md 7.3: decoder.up.{L-1-i}
  <-> up_blocks.{i}, mid.block_1/2, mid.attn_1.{norm,q,k,v,proj_out} with the
  projections as 1x1 convs [c, c, 1, 1], nin_shortcut, norm_out).
  <cfg>/io.safetensors, float32, NHWC:
    image [n][H][W][3] in [-1, 1]; moments [n][h][w][8] = quant_conv(encoder(image))
    (mean | logvar); noise [n][h][w][4]; sample = mean + exp(logvar/2) * noise
    (logvar clamped to [-30, 20]); latent = sample * scaling_factor; z [n][h][w][4]
    (a separate decoder input); decoded = decoder(post_quant_conv(z)) [n][H][W][3];
    act.<module> for encoder.conv_in, encoder.down_blocks.<i>.resnets.<L-1>,
    encoder.mid_block, decoder.conv_in, decoder.mid_block,
    decoder.up_blocks.<i>.resnets.<L> (outputs of those modules);
    moments_tiled, decoded_tiled: diffusers' tiled _encode / _decode with
    tile_sample_min_size = tile_sample (a [1] tensor), tile_latent_min_size =
    tile_sample / 2^(levels-1), tile_overlap_factor 0.25.
Weights: seeded N(0, 1/fan_in) conv / linear weights (x2 for resnet conv2),
biases 0.1 N, norm gammas 1 + 0.2 N, betas 0.2 N; the rows of both conv_ins
feeding GroupNorm group 0 scaled by 2^-9 (that group's variance is then near
eps: a wrong eps is caught); every value rounded to bf16 precision (|w| <
2^-14 flushed to 0), so the F32, F16 and BF16 files hold the same values and
one set of goldens serves them all. The goldens come from a float64 forward;
diffusers in float32 is printed against them (the noise floor; the C tolerance
is rel L2 <= 1e-4 per tensor). The script prints how far the outputs move
under plausible slips (eps 1e-5, symmetric downsample padding, a wrong
attention scale, no attention residual) to show the goldens catch them.
Checks on the way (asserts): the files reload to the same weights (diffusers
from_pretrained, and the SGM file mapped back); the SGM mapping reproduces all
248 SGM VAE names of SDXL base 1.0 (/work/shared/data/sdxl_base_1.0_names.json
or --names) on SDXL's VAE built on the meta device, with their shapes.
"""
import argparse
import copy
import json
import math
import os
import re
import shutil
import sys
import tempfile

import numpy as np
import safetensors
import torch
from safetensors.torch import load_file, save_file

import diffusers
from diffusers import AutoencoderKL

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES_JSON = "/work/shared/data/sdxl_base_1.0_names.json"
SGM_PREFIX = "first_stage_model."
QUIET = 2.0 ** -9
TOL = 1e-4
DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}

CONFIGS = {
    "sdxl4": dict(seed=41, channels=[8, 16, 16, 16], layers=2, groups=4, h=6, w=5, n=1,
                  tile_sample=32, diffusers_dtype="F16", sgm_dtype="BF16"),
    "small": dict(seed=42, channels=[32, 32], layers=1, groups=32, h=8, w=12, n=1,
                  tile_sample=8, diffusers_dtype="BF16", sgm_dtype="F16"),
}
SDXL = dict(channels=[128, 256, 512, 512], layers=2, groups=32, tile_sample=1024)


def build(cfg, device=None):
    levels = len(cfg["channels"])
    kw = dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * levels,
              up_block_types=["UpDecoderBlock2D"] * levels, block_out_channels=cfg["channels"],
              layers_per_block=cfg["layers"], act_fn="silu", latent_channels=4,
              norm_num_groups=cfg["groups"], sample_size=cfg["tile_sample"],
              scaling_factor=0.13025, force_upcast=True)
    if device is not None:
        with torch.device(device):
            return AutoencoderKL(**kw)
    return AutoencoderKL(**kw)


# ------------------------------------------------------------------ weights
def round_bf16(w):
    r = w.to(torch.bfloat16).to(torch.float32)
    r[r.abs() < 2.0 ** -14] = 0.0
    assert torch.equal(r.to(torch.float16).to(torch.float32), r)
    return r


@torch.no_grad()
def init_weights(model, seed):
    g = torch.Generator().manual_seed(seed)
    mods = dict(model.named_modules())
    groups = model.config.norm_num_groups
    for name, p in sorted(model.named_parameters()):
        owner = mods[name.rsplit(".", 1)[0]]
        kind = name.rsplit(".", 1)[1]
        z = torch.randn(p.shape, generator=g, dtype=torch.float32)
        if isinstance(owner, torch.nn.GroupNorm):
            v = 1.0 + 0.2 * z if kind == "weight" else 0.2 * z
        elif kind == "bias":
            v = 0.1 * z
        else:
            v = z / math.sqrt(p[0].numel())
        if re.search(r"resnets\.\d+\.conv2\.weight$", name):
            v = v * 2.0
        if name in ("encoder.conv_in.weight", "encoder.conv_in.bias", "decoder.conv_in.weight",
                    "decoder.conv_in.bias"):
            v[: p.shape[0] // groups] *= QUIET
        p.copy_(round_bf16(v))


# ------------------------------------------------------------------ names
def sgm_name(name, levels):
    """diffusers VAE tensor name -> SGM name (without first_stage_model.)."""
    last = levels - 1
    if name.startswith(("quant_conv.", "post_quant_conv.")):
        return name
    side, rest = name.split(".", 1)
    assert side in ("encoder", "decoder"), name

    def res(r):
        return r.replace("conv_shortcut.", "nin_shortcut.", 1) if r.startswith("conv_shortcut.") else r

    if rest.startswith(("conv_in.", "conv_out.")):
        return name
    if rest.startswith("conv_norm_out."):
        return f"{side}.norm_out." + rest[len("conv_norm_out."):]
    m = re.fullmatch(r"mid_block\.resnets\.(\d)\.(.+)", rest)
    if m:
        return f"{side}.mid.block_{int(m[1]) + 1}.{res(m[2])}"
    m = re.fullmatch(r"mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)\.(.+)", rest)
    if m:
        sub = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
        return f"{side}.mid.attn_1.{sub[m[1]]}.{m[2]}"
    m = re.fullmatch(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", rest)
    if m and side == "encoder":
        return f"encoder.down.{m[1]}.block.{m[2]}.{res(m[3])}"
    m = re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.(.+)", rest)
    if m and side == "encoder":
        return f"encoder.down.{m[1]}.downsample.{m[2]}"
    m = re.fullmatch(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", rest)
    if m and side == "decoder":
        return f"decoder.up.{last - int(m[1])}.block.{m[2]}.{res(m[3])}"
    m = re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.(.+)", rest)
    if m and side == "decoder":
        return f"decoder.up.{last - int(m[1])}.upsample.{m[2]}"
    raise ValueError("unknown VAE tensor " + name)


def is_attention_proj(name):
    return re.search(r"mid_block\.attentions\.0\.(to_q|to_k|to_v|to_out\.0)\.weight$", name)


def sgm_tensors(sd, levels):
    out = {}
    for k, v in sd.items():
        s = SGM_PREFIX + sgm_name(k, levels)
        assert s not in out, "two tensors map to " + s
        out[s] = v.reshape(*v.shape, 1, 1) if is_attention_proj(k) else v
    return out


def check_sdxl_names(path):
    with open(path) as f:
        ref = json.load(f)["vae"]
    model = build(SDXL, device="meta")
    sd = model.state_dict()
    assert set(sd) == set(ref), sorted(set(sd) ^ set(ref))[:10]
    bad = [(k, sgm_name(k, 4), ref[k][0]) for k in sd if SGM_PREFIX + sgm_name(k, 4) != ref[k][0]]
    assert not bad, bad[:10]
    bad = [(k, list(sd[k].shape), ref[k][1]) for k in sd if list(sd[k].shape) != ref[k][1]]
    assert not bad, bad[:10]
    params = sum(v.numel() for v in sd.values())
    assert len(sd) == 248 and params == 83653863, (len(sd), params)
    print(f"SDXL VAE name check: {len(sd)} tensors, {params} params, SGM names and shapes match")


# ------------------------------------------------------------------ forward
def nhwc(t):
    return t.permute(0, 2, 3, 1).contiguous()


def act_modules(model):
    L = model.config.layers_per_block
    names = ["encoder.conv_in"]
    names += [f"encoder.down_blocks.{i}.resnets.{L - 1}" for i in range(len(model.encoder.down_blocks))]
    names += ["encoder.mid_block", "decoder.conv_in", "decoder.mid_block"]
    names += [f"decoder.up_blocks.{i}.resnets.{L}" for i in range(len(model.decoder.up_blocks))]
    return names


@torch.no_grad()
def forward(model, inp, dtype, tile_sample):
    model = model.to(dtype)
    acts, hooks = {}, []

    def keep(name):
        def hook(mod, args, out):
            acts[name] = out.double().clone()
        return hook

    for name in act_modules(model):
        hooks.append(model.get_submodule(name).register_forward_hook(keep(name)))
    model.disable_tiling()
    try:
        moments = model._encode(inp["image"].to(dtype))
        decoded = model.decode(inp["z"].to(dtype)).sample
    finally:
        for h in hooks:
            h.remove()
    f = 2 ** (len(model.config.block_out_channels) - 1)
    model.enable_tiling()
    model.tile_sample_min_size = tile_sample
    model.tile_latent_min_size = tile_sample // f
    model.tile_overlap_factor = 0.25
    moments_tiled = model._encode(inp["image"].to(dtype))
    decoded_tiled = model.decode(inp["z"].to(dtype)).sample
    model.disable_tiling()
    m = moments.double()
    mean, logvar = torch.chunk(m, 2, dim=1)
    logvar = torch.clamp(logvar, -30.0, 20.0)
    sample = mean + torch.exp(0.5 * logvar) * inp["noise"].double()
    out = dict(moments=m, decoded=decoded.double(), moments_tiled=moments_tiled.double(),
               decoded_tiled=decoded_tiled.double(), sample=sample,
               latent=sample * model.config.scaling_factor)
    return out, acts


def rel_l2(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm())


def make_inputs(cfg):
    g = torch.Generator().manual_seed(cfg["seed"] + 1)
    n, h, w = cfg["n"], cfg["h"], cfg["w"]
    f = 2 ** (len(cfg["channels"]) - 1)
    image = torch.rand(n, 3, h * f, w * f, generator=g) * 2 - 1
    z = torch.randn(n, 4, h, w, generator=g)
    noise = torch.randn(n, 4, h, w, generator=g)
    return dict(image=image, z=z, noise=noise)


# ------------------------------------------------------------------ teeth
def sensitivity(model, inp, ref, tile_sample):
    print(f"rel change of moments / decoded under a slip (caught iff > {TOL:g}):")

    def eps(m):
        for mod in m.modules():
            if isinstance(mod, torch.nn.GroupNorm):
                mod.eps = 1e-5

    def pad(m):
        for mod in m.modules():
            if type(mod).__name__ == "Downsample2D":
                mod.padding = 1
                mod.conv.padding = (1, 1)

    def scale(m):  # the processor takes SDPA's default scale: double the queries instead
        for mod in m.modules():
            if type(mod).__name__ == "Attention":
                mod.to_q.weight.data *= 2
                mod.to_q.bias.data *= 2

    def residual(m):
        for mod in m.modules():
            if type(mod).__name__ == "Attention":
                mod.residual_connection = False

    for what, fn in [("GroupNorm eps 1e-5", eps), ("symmetric downsample padding", pad),
                     ("attention scale x2", scale), ("no attention residual", residual)]:
        m = copy.deepcopy(model)
        fn(m)
        out, _ = forward(m, inp, torch.float32, tile_sample)
        a, b = rel_l2(out["moments"], ref["moments"]), rel_l2(out["decoded"], ref["decoded"])
        print(f"  {what:30s} moments {a:.2e} decoded {b:.2e}"
              f"{'' if max(a, b) > TOL else '   (below tolerance: not caught)'}")


# ------------------------------------------------------------------ files
def write_all(name, cfg, root):
    print(f"\n=== {name} ===")
    model = build(cfg)
    init_weights(model, cfg["seed"])
    sd = {k: v.detach().clone().float() for k, v in model.state_dict().items()}
    print(f"{len(sd)} tensors, {sum(v.numel() for v in sd.values())} params")
    inp = make_inputs(cfg)
    ref, acts = forward(model, inp, torch.float64, cfg["tile_sample"])
    r32, a32 = forward(model, inp, torch.float32, cfg["tile_sample"])
    model = model.float()
    worst = 0
    for k in list(ref) + list(acts):
        a, b = (ref[k], r32[k]) if k in ref else (acts[k], a32[k])
        e = rel_l2(b, a)
        worst = max(worst, e)
        print(f"  {k:32s} {tuple(nhwc(a).shape)!s:18s} rms {float(a.pow(2).mean().sqrt()):7.3f}"
              f"  f32 err {e:.2e}")
    assert worst < TOL / 10, worst
    assert rel_l2(ref["decoded_tiled"], ref["decoded"]) > 1e-3, "tiling made no difference"
    assert rel_l2(ref["moments_tiled"], ref["moments"]) > 1e-3, "tiling made no difference"
    sensitivity(model, inp, r32, cfg["tile_sample"])

    cdir = os.path.join(root, name)
    vdir = os.path.join(cdir, "vae")
    os.makedirs(vdir, exist_ok=True)
    model.save_config(vdir)
    dfile = ("diffusion_pytorch_model.fp16.safetensors" if cfg["diffusers_dtype"] == "F16"
             else "diffusion_pytorch_model.safetensors")
    dt = DTYPES[cfg["diffusers_dtype"]]
    save_file({k: v.to(dt).contiguous() for k, v in sd.items()}, os.path.join(vdir, dfile),
              metadata={"format": "pt"})
    levels = len(cfg["channels"])
    meta = {"norm_num_groups": str(cfg["groups"])} if cfg["groups"] != 32 else None
    st = DTYPES[cfg["sgm_dtype"]]
    save_file({k: v.to(st).contiguous() for k, v in sgm_tensors(sd, levels).items()},
              os.path.join(cdir, "sgm.safetensors"), metadata=meta)
    io = {"image": nhwc(inp["image"]), "z": nhwc(inp["z"]), "noise": nhwc(inp["noise"]),
          "tile_sample": torch.tensor([float(cfg["tile_sample"])])}
    for k, v in ref.items():
        io[k] = nhwc(v.float())
    for k, v in acts.items():
        io["act." + k] = nhwc(v.float())
    save_file({k: v.float().contiguous() for k, v in io.items()}, os.path.join(cdir, "io.safetensors"),
              metadata={"format": "pt"})

    # reload: the same weights through diffusers and through the SGM mapping
    m2 = AutoencoderKL.from_pretrained(vdir, variant="fp16" if cfg["diffusers_dtype"] == "F16" else None,
                                       torch_dtype=torch.float32)
    for k, v in m2.state_dict().items():
        assert torch.equal(v, sd[k]), k
    back = load_file(os.path.join(cdir, "sgm.safetensors"))
    fwd = sgm_tensors(sd, levels)
    assert set(back) == set(fwd)
    for k, v in fwd.items():
        assert torch.equal(back[k].float(), v), k
    with safetensors.safe_open(os.path.join(cdir, "sgm.safetensors"), "pt") as fh:
        assert (fh.metadata() or None) == meta, fh.metadata()
    print(f"files of {name} reload to the same weights")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "data", "vae"))
    ap.add_argument("--names", default=NAMES_JSON)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    diffusers.utils.logging.set_verbosity_error()
    check_sdxl_names(args.names)
    out = tempfile.mkdtemp() if args.check else args.out
    os.makedirs(out, exist_ok=True)
    for name, cfg in CONFIGS.items():
        write_all(name, cfg, out)
    with open(os.path.join(out, "versions.json"), "w") as f:
        json.dump({"torch": torch.__version__, "diffusers": diffusers.__version__,
                   "safetensors": safetensors.__version__, "numpy": np.__version__,
                   "python": sys.version.split()[0], "script": "tools/gen_vae_golden.py"}, f, indent=1)
        f.write("\n")
    if args.check:
        diff = []
        for r, _, files in os.walk(out):
            for fn in files:
                rel = os.path.relpath(os.path.join(r, fn), out)
                ref = os.path.join(args.out, rel)
                if not os.path.exists(ref) or open(ref, "rb").read() != open(os.path.join(r, fn), "rb").read():
                    diff.append(rel)
        shutil.rmtree(out)
        print("regenerated files differ: " + ", ".join(diff) if diff
              else "regenerated files are identical to " + args.out)
        return 1 if diff else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

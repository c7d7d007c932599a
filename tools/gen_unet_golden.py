#!/usr/bin/env python3
"""tools/gen_unet_golden.py: golden files for the C UNet (tests/data/unet/), made
with diffusers' UNet2DConditionModel on CPU.

Run (from the repository root; ~15 s on 2 cores):
    /tmp/tv/bin/python tools/gen_unet_golden.py            # writes tests/data/unet/
    /tmp/tv/bin/python tools/gen_unet_golden.py --check    # regenerate in a temp dir, compare
The committed files were produced with torch 2.15.0 (CPU), diffusers 0.42.1,
safetensors 0.8.0, numpy 2.4.6, Python 3.11.7 (also written into
tests/data/unet/versions.json); --check reproduced them byte for byte at 1 and 2
threads.

What it makes, per configuration (see CONFIGS): tiny UNets with SDXL's block types
(down DownBlock2D, CrossAttnDownBlock2D x2; up CrossAttnUpBlock2D x2, UpBlock2D;
linear proj_in/out, GEGLU feed-forward, text_time added embedding, eps 1e-5,
[cos, sin] timestep sinusoid):
  nonsquare  channels [16, 16, 16], 8 groups, layers_per_block 2 (SDXL's), depth 1,
             16x24 latent; diffusers F32, SGM F16
  deep       channels [16, 16, 32], 8 groups, layers_per_block 1, depths [1, 2, 3]
             (mid 3), 16x16; diffusers .fp16 F16, SGM BF16
  heads      channels [32, 32, 64], 32 groups, layers_per_block 1, heads [1, 2, 4]
             (head dims 32, 16, 16), 8x12; diffusers BF16 only (no SGM file: a single
             file cannot say these head counts, see sgm_heads)
nonsquare and deep have the heads a single-file loader infers (sgm_heads: ch / 64
where ch >= 64, else one head of ch), i.e. one head per attention. Their GroupNorms
have 2 or 4 channels per group, not 1: with one channel per group the norm after
the time-embedding add removes that per-channel constant, and t, y and the whole
time path would have no effect on eps. The group count is not in any shape, so
their SGM files say it in __metadata__ {"norm_num_groups": "8"} (unet/config.c
reads it; SGM's default is 32). Files:
  <cfg>/unet/config.json + diffusers weights (dtype and file name as above)
  <cfg>/sgm.safetensors      the same weights as an SGM single file
                             (model.diffusion_model.<SGM name>)
  <cfg>/io.safetensors       inputs, eps and per-block activations, NHWC float32
About 6 MB in all (the weights dominate; nonsquare's F32 file is its biggest part).
Weights: every conv/linear weight ~ N(0, gain/sqrt(fan_in)) (gain 1; x2 for the
GEGLU input projection so gate values reach where erf- and tanh-GELU differ; x3
for resnet conv2 so resnet branches stay comparable to the growing residual
stream), biases 0.1 N(0,1), norm gammas 1 + 0.2 N, betas 0.2 N (seeded). Rows
feeding two GroupNorm groups are scaled by 2^-9 so those groups have a variance
near eps (see quiet_scale): otherwise a wrong eps (1e-5 vs 1e-6) goes unseen.
Then every weight is rounded to bf16 precision with |w| < 2^-14 flushed to 0,
so the F32, F16 and BF16 files hold the same values and one set of goldens serves
every dtype. The goldens come from a float64 forward of
those weights (the timestep sinusoids are float32 inside diffusers in any case),
so a float32 implementation is measured against the exact answer; the script also
runs diffusers in float32 and prints its error against float64 (the noise floor a
float32 engine should be near; the C tolerance is rel L2 <= 1e-4 per tensor).
It prints, per residual module, ||branch|| / ||skip|| so one sees that no block is
close to identity and nothing explodes (asserted within 0.05..20), and how far eps
moves under typical implementation slips (tanh GELU, swapped GEGLU halves,
[sin, cos], no time embedding, GroupNorm eps swapped, y ignored, one head instead
of many) to show the goldens catch each of them at the tolerance.

Checks made on the way (asserts): y fed to add_embedding equals
text_embeds ‖ add_time_proj(time_ids).reshape(n, -1) exactly; the written files
reload (diffusers from_pretrained, and the SGM file mapped back, with its
metadata) to the same tensors and the same eps; a config has an SGM file iff its
heads are what sgm_heads infers (SDXL's are); the SGM mapping below reproduces
all 1,680 SGM names and shapes of SDXL base 1.0 (/work/shared/data/sdxl_base_1.0_names.json, or
--names FILE) on a UNet built with SDXL's config on the meta device.

diffusers -> SGM names for a general config (prefix model.diffusion_model.;
L = layers_per_block; down level i = 0..n-1, up block u = 0..n-1 (u = 0 is the
deepest); an up block has L+1 resnets; a level has attention iff its block type
starts with CrossAttn):
  time_embedding.linear_1 / linear_2      time_embed.0 / time_embed.2
  add_embedding.linear_1 / linear_2       label_emb.0.0 / label_emb.0.2
  conv_in                                 input_blocks.0.0
  down_blocks.i.resnets.j                 input_blocks.{1 + i*(L+1) + j}.0     (j < L)
  down_blocks.i.attentions.j              input_blocks.{1 + i*(L+1) + j}.1
  down_blocks.i.downsamplers.0.conv       input_blocks.{(i+1)*(L+1)}.0.op      (i < n-1)
  mid_block.resnets.0 / attentions.0 / resnets.1    middle_block.0 / .1 / .2
  up_blocks.u.resnets.j                   output_blocks.{u*(L+1) + j}.0        (j <= L)
  up_blocks.u.attentions.j                output_blocks.{u*(L+1) + j}.1
  up_blocks.u.upsamplers.0.conv           output_blocks.{u*(L+1) + L}.K.conv   (u < n-1;
                                          K = 2 if up block u has attention, else 1)
  conv_norm_out / conv_out                out.0 / out.2
  inside a resnet: norm1 in_layers.0, conv1 in_layers.2, time_emb_proj emb_layers.1,
                   norm2 out_layers.0, conv2 out_layers.3, conv_shortcut skip_connection
  inside an attention (Transformer2DModel): the same names on both sides.
  (SDXL, L = 2: input_blocks 1,2 | 3 = down | 4,5 | 6 = down | 7,8; output_blocks
   0,1,2 + 2.2 up | 3,4,5 + 5.2 up | 6,7,8. L = 1: input_blocks 1 | 2 = down | 3 |
   4 = down | 5; output_blocks 0,1 + 1.2 up | 2,3 + 3.2 up | 4,5.)
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
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

import diffusers
from diffusers import UNet2DConditionModel

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES_JSON = "/work/shared/data/sdxl_base_1.0_names.json"
SGM_PREFIX = "model.diffusion_model."
DOWN_TYPES = ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"]
UP_TYPES = ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"]

# The tiny configurations. diffusers_dtype / sgm_dtype pick the committed file
# dtypes; the weights are the same values in every dtype. Widths are as small as
# keeps every check alive (the files must stay a few MB): 8 groups of 2 or 4
# channels for the configs with an SGM file (one channel per group would cancel
# the time embedding, see the docstring); deep's level 2 is wider (16 -> 32) so a
# single file's per-level widths and a down-block conv_shortcut are exercised.
CONFIGS = {
    "nonsquare": dict(
        seed=1001, block_out_channels=[16, 16, 16], groups=8, layers_per_block=2,
        transformer_layers_per_block=[1, 1, 1], heads=[1, 1, 1], cross_attention_dim=32,
        text_embeds_dim=16, addition_time_embed_dim=8, h=16, w=24, ctx_len=7, n=2,
        t=[981.0, 401.0], time_ids=[128, 192, 0, 0, 128, 192],
        diffusers_dtype="F32", sgm_dtype="F16"),
    "deep": dict(
        seed=2002, block_out_channels=[16, 16, 32], groups=8, layers_per_block=1,
        transformer_layers_per_block=[1, 2, 3], heads=[1, 1, 1], cross_attention_dim=48,
        text_embeds_dim=24, addition_time_embed_dim=8, h=16, w=16, ctx_len=10, n=2,
        t=[999.0, 37.0], time_ids=[128, 128, 0, 0, 128, 128],
        diffusers_dtype="F16", sgm_dtype="BF16"),
    # Several heads per attention, a different count per level (head dims 32, 16,
    # 16): the only config whose heads are not what a single file implies (see
    # sgm_heads), so it has no SGM file, and its diffusers file is BF16 under the
    # plain name. SDXL's 32 groups (1 or 2 channels per group here; its level 2
    # and the up blocks' concatenated inputs keep the time path alive).
    "heads": dict(
        seed=3003, block_out_channels=[32, 32, 64], groups=32, layers_per_block=1,
        transformer_layers_per_block=[1, 1, 1], heads=[1, 2, 4], cross_attention_dim=40,
        text_embeds_dim=8, addition_time_embed_dim=8, h=8, w=12, ctx_len=5, n=2,
        t=[500.0, 999.0], time_ids=[64, 96, 0, 0, 64, 96],
        diffusers_dtype="BF16", sgm_dtype=None),
}
GAIN = 1.0
FF_GAIN = 2.0
RES_GAIN = 3.0
QUIET = 2.0 ** -9
DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
TOL = 1e-4  # what the C engine must meet, rel L2 per tensor (README)


# ------------------------------------------------------------------ the model
def unet_kwargs(cfg):
    return dict(
        sample_size=cfg["h"], in_channels=4, out_channels=4, center_input_sample=False,
        flip_sin_to_cos=True, freq_shift=0, down_block_types=DOWN_TYPES,
        mid_block_type="UNetMidBlock2DCrossAttn", up_block_types=UP_TYPES,
        only_cross_attention=False, block_out_channels=cfg["block_out_channels"],
        layers_per_block=cfg["layers_per_block"], downsample_padding=1, mid_block_scale_factor=1,
        act_fn="silu", norm_num_groups=cfg["groups"], norm_eps=1e-5,
        cross_attention_dim=cfg["cross_attention_dim"],
        transformer_layers_per_block=cfg["transformer_layers_per_block"],
        attention_head_dim=cfg["heads"], use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=cfg["addition_time_embed_dim"],
        projection_class_embeddings_input_dim=cfg["text_embeds_dim"]
        + 6 * cfg["addition_time_embed_dim"],
        upcast_attention=False, resnet_time_scale_shift="default")


SDXL = dict(block_out_channels=[320, 640, 1280], groups=32, layers_per_block=2,
            transformer_layers_per_block=[1, 2, 10], heads=[5, 10, 20],
            cross_attention_dim=2048, text_embeds_dim=1280, addition_time_embed_dim=256, h=128)


def build(cfg, device=None):
    if device is not None:
        with torch.device(device):
            return UNet2DConditionModel(**unet_kwargs(cfg))
    return UNet2DConditionModel(**unet_kwargs(cfg))


def sgm_heads(ch):
    """The head count a single-file loader infers for an attention of width ch
    (an SGM file has no config; its shapes do not say the head count): SGM's
    num_head_channels = 64, so ch / 64 heads of 64 where ch >= 64 (SDXL: 10 at
    640, 20 at 1280), else one head of ch (the tiny test widths)."""
    return ch // 64 if ch >= 64 else 1


def heads_match_sgm(model):
    """Whether every attention has the head count sgm_heads infers from its width."""
    for mod in model.modules():
        if type(mod).__name__ == "Attention":
            dim = mod.to_q.out_features
            assert dim % mod.heads == 0, (dim, mod.heads)
            if mod.heads != sgm_heads(dim):
                return False
    return True


# ------------------------------------------------------------------ weights
def round_bf16(w):
    """Round to bf16 precision, flush |w| < 2^-14 to 0: then F16 and BF16 hold it exactly."""
    r = w.to(torch.bfloat16).to(torch.float32)
    r[r.abs() < 2.0 ** -14] = 0.0
    assert torch.equal(r.to(torch.float16).to(torch.float32), r)
    assert torch.equal(r.to(torch.bfloat16).to(torch.float32), r)
    return r


@torch.no_grad()
def init_weights(model, seed, gain=GAIN):
    g = torch.Generator().manual_seed(seed)
    mods = dict(model.named_modules())
    for name, p in sorted(model.named_parameters()):
        owner = mods[name.rsplit(".", 1)[0]]
        kind = name.rsplit(".", 1)[1]
        z = torch.randn(p.shape, generator=g, dtype=torch.float32)
        if isinstance(owner, (torch.nn.GroupNorm, torch.nn.LayerNorm)):
            v = 1.0 + 0.2 * z if kind == "weight" else 0.2 * z
        elif kind == "bias":
            v = 0.1 * z
        else:
            fan_in = p[0].numel()  # in * kh * kw for convs, in for linears
            v = z * (gain / math.sqrt(fan_in))
        if name.endswith("ff.net.0.proj.weight"):
            v = v * FF_GAIN  # wider gate values: GELU's erf/tanh forms differ measurably
        if re.search(r"resnets\.\d+\.conv2\.weight$", name):
            v = v * RES_GAIN  # keeps the resnet branch comparable to the growing stream
        p.copy_(round_bf16(v * quiet_scale(name, model)))
    for name, b in model.named_buffers():
        raise AssertionError("unexpected buffer " + name)


def quiet_scale(name, model):
    """QUIET for the rows that make two GroupNorm groups nearly constant (variance
    near the norm's eps), 1 elsewhere: conv_in's first output channel (group 0 of
    down_blocks.0.resnets.0.norm1, eps 1e-5) and the first group's channels of
    down_blocks.1.resnets.0's output (group 0 of down_blocks.1.attentions.0.norm,
    eps 1e-6). That output is conv2's plus the skip: the skip is conv_shortcut's
    output where the resnet changes width, else its input, which is
    down_blocks.0's downsampler output; the rows of conv2 and of that skip's
    producer are scaled. With unit-scale groups a wrong eps moves nothing; with
    these it moves eps by far more than the tolerance (see the printed slips)."""
    ch, groups = model.config.block_out_channels, model.config.norm_num_groups
    per_group = ch[1] // groups
    skip = ("down_blocks.1.resnets.0.conv_shortcut"
            if model.down_blocks[1].resnets[0].conv_shortcut is not None
            else "down_blocks.0.downsamplers.0.conv")
    rows = {"conv_in": ch[0] // groups, "down_blocks.1.resnets.0.conv2": per_group,
            skip: per_group}
    mod = name.rsplit(".", 1)[0]
    if mod not in rows:
        return 1.0
    s = torch.ones(model.get_parameter(name).shape)
    s[:rows[mod]] = QUIET
    return s


# ------------------------------------------------------------------ names
RES_RENAME = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
              "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}


def sgm_name(name, layers_per_block, up_has_attention):
    """diffusers UNet tensor name -> SGM name without the model.diffusion_model. prefix.
    up_has_attention[u]: whether up block u is a CrossAttn block (decides the
    upsampler's sub-index). Raises on a name it does not know."""
    L = layers_per_block
    fixed = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2",
             "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
    mod, param = name.rsplit(".", 1)
    if mod in fixed:
        return fixed[mod] + "." + param

    def res(rest):  # rest: "<resnet sub-module>.<param>"
        head, tail = rest.split(".", 1)
        if head not in RES_RENAME:
            raise ValueError("unknown resnet tensor " + name)
        return RES_RENAME[head] + "." + tail

    m = re.fullmatch(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", name)
    if m:
        i, j = int(m[1]), int(m[3])
        assert j < L, name
        idx = 1 + i * (L + 1) + j
        if m[2] == "resnets":
            return f"input_blocks.{idx}.0.{res(m[4])}"
        return f"input_blocks.{idx}.1.{m[4]}"
    m = re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", name)
    if m:
        return f"input_blocks.{(int(m[1]) + 1) * (L + 1)}.0.op.{m[2]}"
    m = re.fullmatch(r"mid_block\.(resnets|attentions)\.(\d+)\.(.+)", name)
    if m:
        if m[1] == "attentions":
            assert m[2] == "0", name
            return f"middle_block.1.{m[3]}"
        return f"middle_block.{2 * int(m[2])}.{res(m[3])}"
    m = re.fullmatch(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", name)
    if m:
        u, j = int(m[1]), int(m[3])
        assert j <= L, name
        idx = u * (L + 1) + j
        if m[2] == "resnets":
            return f"output_blocks.{idx}.0.{res(m[4])}"
        return f"output_blocks.{idx}.1.{m[4]}"
    m = re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", name)
    if m:
        u = int(m[1])
        return f"output_blocks.{u * (L + 1) + L}.{2 if up_has_attention[u] else 1}.conv.{m[2]}"
    raise ValueError("unknown UNet tensor " + name)


def sgm_names_for(model):
    cfg = model.config
    up_attn = [t.startswith("CrossAttn") for t in cfg.up_block_types]
    out = {}
    for k in model.state_dict():
        s = SGM_PREFIX + sgm_name(k, cfg.layers_per_block, up_attn)
        assert s not in out.values(), "two tensors map to " + s
        out[k] = s
    return out


def check_sdxl_names(path):
    """The mapping reproduces every SGM name and shape of SDXL base 1.0 (meta device)."""
    with open(path) as f:
        ref = json.load(f)["unet"]
    model = build(SDXL, device="meta")
    assert heads_match_sgm(model), "SDXL's heads are not what the single-file rule infers"
    sd = model.state_dict()
    mapped = sgm_names_for(model)
    assert set(sd) == set(ref), (sorted(set(sd) ^ set(ref)))[:10]
    bad = [(k, mapped[k], ref[k][0]) for k in sd if mapped[k] != ref[k][0]]
    assert not bad, bad[:10]
    bad = [(k, list(sd[k].shape), ref[k][1]) for k in sd if list(sd[k].shape) != ref[k][1]]
    assert not bad, bad[:10]
    params = sum(v.numel() for v in sd.values())
    assert len(sd) == 1680 and params == 2567463684, (len(sd), params)
    print(f"SDXL name check: {len(sd)} tensors, {params} params, all SGM names and shapes match")


# ------------------------------------------------------------------ forward
def make_inputs(cfg, model):
    g = torch.Generator().manual_seed(cfg["seed"] + 1)
    n, h, w = cfg["n"], cfg["h"], cfg["w"]
    x = torch.randn(n, 4, h, w, generator=g)
    context = torch.randn(n, cfg["ctx_len"], cfg["cross_attention_dim"], generator=g)
    text_embeds = torch.randn(n, cfg["text_embeds_dim"], generator=g)
    time_ids = torch.tensor([cfg["time_ids"]] * n, dtype=torch.float32)
    t = torch.tensor(cfg["t"], dtype=torch.float32)
    with torch.no_grad():
        y = torch.cat([text_embeds, model.add_time_proj(time_ids.flatten()).reshape(n, -1)], -1)
    assert y.shape[1] == model.config.projection_class_embeddings_input_dim
    return dict(x=x, t=t, context=context, text_embeds=text_embeds, time_ids=time_ids, y=y)


def act_names(model):
    names = ["conv_in"] + [f"down_blocks.{i}" for i in range(len(model.down_blocks))]
    names += ["mid_block"] + [f"up_blocks.{i}" for i in range(len(model.up_blocks))]
    return names


@torch.no_grad()
def forward(model, inp, dtype, stats=None):
    """eps and the block activations (NCHW, float64 copies) of model run in dtype.
    stats: a list to receive (module, ||branch||/||skip||) of every residual module."""
    model = model.to(dtype)
    acts, hooks, seen_y = {}, [], []

    def keep(name):
        def hook(mod, args, out):
            acts[name] = (out[0] if isinstance(out, tuple) else out).double().clone()
        return hook

    for name in act_names(model):
        hooks.append(model.get_submodule(name).register_forward_hook(keep(name)))
    hooks.append(model.add_embedding.register_forward_pre_hook(
        lambda mod, args: seen_y.append(args[0].clone())))
    if stats is not None:
        for name, mod in model.named_modules():
            kind = type(mod).__name__
            if kind in ("ResnetBlock2D", "Transformer2DModel", "BasicTransformerBlock"):
                hooks.append(mod.register_forward_hook(ratio_hook(name, kind, stats),
                                                       with_kwargs=True))
            elif re.fullmatch(r"(down_blocks|up_blocks)\.\d+|mid_block", name):
                hooks.append(mod.register_forward_hook(ratio_hook(name, "block", stats),
                                                       with_kwargs=True))
    try:
        eps = model(inp["x"].to(dtype), inp["t"], encoder_hidden_states=inp["context"].to(dtype),
                    added_cond_kwargs=dict(text_embeds=inp["text_embeds"].to(dtype),
                                           time_ids=inp["time_ids"]), return_dict=False)[0]
    finally:
        for h in hooks:
            h.remove()
    # the C side takes y directly: it must be exactly what add_embedding received
    assert len(seen_y) == 1 and torch.equal(seen_y[0], inp["y"].to(dtype)), "y mismatch"
    return eps.double(), acts


def ratio_hook(name, kind, stats):
    def hook(mod, args, kwargs, out):
        x = args[0] if args else kwargs.get("hidden_states", kwargs.get("input_tensor"))
        o = out[0] if isinstance(out, tuple) else out
        if hasattr(o, "sample"):
            o = o.sample
        if kind == "ResnetBlock2D":
            skip = mod.conv_shortcut(x) if mod.conv_shortcut is not None else x
            stats.append((name, kind, float((o - skip).norm() / skip.norm())))
        elif o.shape == x.shape:
            stats.append((name, kind, float((o - x).norm() / x.norm())))
        else:  # a whole block that changes shape: report the norm ratio out/in (per element)
            r = (o.norm() / math.sqrt(o.numel())) / (x.norm() / math.sqrt(x.numel()))
            stats.append((name, kind + "(rms out/in)", float(r)))
    return hook


def rel_l2(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm())


# ------------------------------------------------------------------ teeth
def _geglu_forward(tanh=False, swap=False):
    def fwd(self, hidden_states, *args, **kwargs):
        value, gate = self.proj(hidden_states).chunk(2, dim=-1)
        if swap:
            value, gate = gate, value
        return value * F.gelu(gate, approximate="tanh" if tanh else "none")
    return fwd


def _perturb(model, what):
    for name, mod in model.named_modules():
        kind = type(mod).__name__
        if kind == "GEGLU" and what in ("gelu_tanh", "geglu_swap"):
            mod.forward = _geglu_forward(tanh=what == "gelu_tanh", swap=what == "geglu_swap")
            mod.forward = mod.forward.__get__(mod)
        elif kind == "Transformer2DModel" and what == "st_gn_eps_1e-5":
            mod.norm.eps = 1e-5
        elif kind == "ResnetBlock2D" and what == "res_gn_eps_1e-6":
            mod.norm1.eps = mod.norm2.eps = 1e-6
        elif name == "add_embedding" and what == "no_y":
            mod.linear_1.weight.zero_()
            mod.linear_1.bias.zero_()
        elif kind == "ResnetBlock2D" and what == "no_temb":
            mod.time_emb_proj.weight.zero_()
            mod.time_emb_proj.bias.zero_()
        elif kind == "Attention" and what == "one_head" and mod.heads > 1:
            mod.heads = 1
    if what == "sin_cos":
        model.time_proj.flip_sin_to_cos = False


@torch.no_grad()
def sensitivity(model, inp, eps32):
    """How far eps moves under plausible implementation slips (float32), to show
    which of them the goldens catch at the C tolerance."""
    print(f"eps rel change under a slip (caught iff > {TOL:g}):")
    whats = ["gelu_tanh", "geglu_swap", "sin_cos", "no_temb", "st_gn_eps_1e-5", "res_gn_eps_1e-6",
             "no_y"]
    if any(getattr(m, "heads", 1) > 1 for m in model.modules() if type(m).__name__ == "Attention"):
        whats.append("one_head")
    for what in whats:
        m = copy.deepcopy(model)
        _perturb(m, what)
        e, _ = forward(m, inp, torch.float32)
        r = rel_l2(e, eps32)
        print(f"  {what:18s} {r:.2e}{'' if r > TOL else '   (below tolerance: not caught)'}")


# ------------------------------------------------------------------ files
def sgm_metadata(cfg):
    return {"norm_num_groups": str(cfg["groups"])}


def nhwc(t):
    return t.permute(0, 2, 3, 1).contiguous() if t.dim() == 4 else t.contiguous()


def write_config(model, cfg_dir):
    os.makedirs(cfg_dir, exist_ok=True)
    model.save_config(cfg_dir)  # config.json, as diffusers writes it


def write_all(name, cfg, out_root):
    print(f"\n=== {name} ===")
    model = build(cfg)
    # a config with an SGM file must have the heads a single-file loader infers;
    # one without must have other heads (else it tests no head splitting of its own)
    assert heads_match_sgm(model) == bool(cfg["sgm_dtype"]), (name, "heads vs sgm_heads")
    init_weights(model, cfg["seed"])
    sd = {k: v.detach().clone().float() for k, v in model.state_dict().items()}
    params = sum(v.numel() for v in sd.values())
    print(f"{len(sd)} tensors, {params} params")

    inp = make_inputs(cfg, model)
    stats = []
    eps64, acts64 = forward(model, inp, torch.float64, stats)
    eps32, acts32 = forward(model, inp, torch.float32)
    model = model.float()

    print("residual branch / skip (per residual module; whole blocks that change shape: rms out/in)")
    for mname, kind, r in stats:
        print(f"  {r:8.3f}  {kind:28s} {mname}")
        assert 0.05 < r < 20.0, f"{mname}: ratio {r} (near identity or exploding)"
    print("golden tensors (float64 forward): rms, and diffusers-float32 rel L2 error vs it")
    for k in act_names(model):
        a = acts64[k]
        print(f"  {k:14s} {tuple(nhwc(a).shape)!s:20s} rms {float(a.pow(2).mean().sqrt()):7.3f}"
              f"  f32 err {rel_l2(acts32[k], a):.2e}")
    e32 = rel_l2(eps32, eps64)
    print(f"  {'eps':14s} {tuple(nhwc(eps64).shape)!s:20s} rms "
          f"{float(eps64.pow(2).mean().sqrt()):7.3f}  f32 err {e32:.2e}")
    assert max([e32] + [rel_l2(acts32[k], acts64[k]) for k in acts64]) < TOL / 10

    sensitivity(model, inp, eps32)

    # diffusers folder
    cdir = os.path.join(out_root, name)
    udir = os.path.join(cdir, "unet")
    write_config(model, udir)
    dfile = ("diffusion_pytorch_model.fp16.safetensors" if cfg["diffusers_dtype"] == "F16"
             else "diffusion_pytorch_model.safetensors")
    dt = DTYPES[cfg["diffusers_dtype"]]
    save_file({k: v.to(dt).contiguous() for k, v in sd.items()}, os.path.join(udir, dfile),
              metadata={"format": "pt"})
    # SGM single file
    names = sgm_names_for(model)
    if cfg["sgm_dtype"]:
        st = DTYPES[cfg["sgm_dtype"]]
        # the group count is not in any shape: a single file states it in its
        # __metadata__ (read by unet/config.c; SGM's default is 32). One key only:
        # safetensors writes several in a random order (the bytes would vary).
        save_file({names[k]: v.to(st).contiguous() for k, v in sd.items()},
                  os.path.join(cdir, "sgm.safetensors"), metadata=sgm_metadata(cfg))
    # inputs, outputs, activations (NHWC float32)
    io = {"x": nhwc(inp["x"]), "t": inp["t"], "context": inp["context"], "y": inp["y"],
          "text_embeds": inp["text_embeds"], "time_ids": inp["time_ids"],
          "eps": nhwc(eps64.float())}
    for k, a in acts64.items():
        io["act." + k] = nhwc(a.float())
    save_file({k: v.float().contiguous() for k, v in io.items()}, os.path.join(cdir, "io.safetensors"),
              metadata={"format": "pt"})  # one key: safetensors orders several randomly

    verify_files(name, cfg, cdir, dfile, sd, names, inp, eps32)


def verify_files(name, cfg, cdir, dfile, sd, names, inp, eps32):
    """Reload what was written: same tensors both layouts, same eps through diffusers."""
    variant = None if dfile == "diffusion_pytorch_model.safetensors" else "fp16"
    dt = DTYPES[cfg["diffusers_dtype"]]
    raw = load_file(os.path.join(cdir, "unet", dfile))
    assert all(v.dtype == dt for v in raw.values())
    m2 = UNet2DConditionModel.from_pretrained(os.path.join(cdir, "unet"), variant=variant,
                                              torch_dtype=torch.float32)
    for k, v in m2.state_dict().items():
        assert torch.equal(v, sd[k]), k
    if cfg["sgm_dtype"]:
        path = os.path.join(cdir, "sgm.safetensors")
        sgm = load_file(path)
        assert len(sgm) == len(sd)
        with safetensors.safe_open(path, "pt") as f:
            assert f.metadata() == sgm_metadata(cfg), f.metadata()
        for k, v in sd.items():
            assert torch.equal(sgm[names[k]].float(), v), k
    eps_again, _ = forward(m2, inp, torch.float32)
    assert torch.equal(eps_again, eps32), "reloaded model gives another eps"
    io = load_file(os.path.join(cdir, "io.safetensors"))
    assert io["eps"].shape == (cfg["n"], cfg["h"], cfg["w"], 4)
    print(f"files of {name} reload to the same weights and eps")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "data", "unet"))
    ap.add_argument("--names", default=NAMES_JSON)
    ap.add_argument("--check", action="store_true",
                    help="regenerate into a temp dir and compare with --out byte for byte")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    diffusers.utils.logging.set_verbosity_error()  # dtype-cast and accelerate notices

    check_sdxl_names(args.names)
    out = tempfile.mkdtemp() if args.check else args.out
    os.makedirs(out, exist_ok=True)
    for name, cfg in CONFIGS.items():
        write_all(name, cfg, out)
    with open(os.path.join(out, "versions.json"), "w") as f:
        json.dump({"torch": torch.__version__, "diffusers": diffusers.__version__,
                   "safetensors": safetensors.__version__, "numpy": np.__version__, "python": sys.version.split()[0],
                   "script": "tools/gen_unet_golden.py"}, f, indent=1)
        f.write("\n")
    if args.check:
        diff = []
        for root, _, files in os.walk(out):
            for fn in files:
                rel = os.path.relpath(os.path.join(root, fn), out)
                ref = os.path.join(args.out, rel)
                if not os.path.exists(ref) or open(ref, "rb").read() != open(
                        os.path.join(root, fn), "rb").read():
                    diff.append(rel)
        shutil.rmtree(out)
        print("regenerated files differ: " + ", ".join(diff) if diff
              else "regenerated files are identical to " + args.out)
        return 1 if diff else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

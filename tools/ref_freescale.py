#!/usr/bin/env python3
"""tools/ref_freescale.py: the stage-by-stage reference of FreeScale's
self-cascade (spec/freescale.md sections 1-5, 7) on the tiny diffusers SDXL
pipeline of tests/data/render/pipe, fed the C engine's random numbers
(tools/fs_philox.py, a bit-exact port of core/rng.c). Writes
tests/data/cascade/ (golden.safetensors, cases.json, mask.png, versions.json;
README.md there says what is in them); tests/test_cascade_golden.c runs the
C cascade on the same cases and compares every stage's latent.

Run from the repository root (40 s alone on 2 cores; minutes when they are shared):
    /tmp/tv/bin/python tools/ref_freescale.py                 # writes tests/data/cascade/
    /tmp/tv/bin/python tools/ref_freescale.py --check         # regenerate in memory, compare
    /tmp/tv/bin/python tools/ref_freescale.py --selftest      # checks of the building blocks
    /tmp/tv/bin/python tools/ref_freescale.py --sensitivity   # how far each piece moves the result
    /tmp/tv/bin/python tools/ref_freescale.py --dtype float64 --out DIR   # the float32 noise floor
    /tmp/tv/bin/python tools/ref_freescale.py --debug DIR     # also every stage's intermediates

What runs, per case (the C contract: unet/unet.h "FreeScale inside the UNet",
sampler/sampler.h, worker/stage.c, worker/images.c):
  conditioning  pipe.encode_prompt (both encoders, CFG batch [uncond, cond], the
                negative prompt encoded; None -> zeros), time ids (H0, W0, 0, 0, H0, W0)
                of stage 0 for every stage (section 1.2)
  stage 0       x = init_noise_sigma * n, n = Philox normal(seed, stream 1, (y w + x) 4 + c);
                plain Euler loop (diffusers' float32 step order), CFG, FreeU if on
  stage s >= 1  img = vae.decode(x_prev / sf) (unclamped); bicubic (align_corners False)
                to the stage's pixels; moments = vae.encode; z = (mean + exp(logvar/2) n) sf,
                n stream 0x200+s at ((y w + x) 4 + c); eps stream 0x100+s (same index);
                x = z + sigma_r eps; for i = r .. steps-1: detail blend x = (1-c) x +
                c (z + sigma_i eps), c = cosine(t_i)^alpha (per pixel alpha_fg / alpha_bg
                with a mask, nearest-resized, nonzero = inside); restrained dilation
                d = w_lat // base_w for i < dilate_tau on the listed convs; scale fusion
                in every attn1; CFG; Euler step
  scale fusion  unet/fusion.h's geometry (s = max(lat_h // base_h, lat_w // base_w),
                window P = feature / s, stride P / 2, jitter r = P / 8, official get_views
                placement and border rules), jitter = Philox randint(seed, stream
                0x300+s, (((step 256 + block) 65536 + window) 2 + axis), lo, hi), block
                = the attn1's ordinal in forward order (counted per UNet call), zero
                padding by r, value / count; global = full attention or (fast mode) the
                s_h x s_w sub-lattices; out = blur(local) + global - blur(global), blur
                the official HEAD Gaussian (conv3d over rows, columns and feature
                channels per batch item, k = 2 s - 1, sigma 1, zero padding) or "hw"
                (2-D over rows and columns per channel)
  FreeU         the official rule by position: h[:, :C/2] *= b1, skip = Fourier(skip, s1)
                before every resnet of up block 0 and resnet 0 of up block 1; b2 / s2 before
                the other resnets of up block 1 and resnet 0 of up block 2 (NOT diffusers'
                enable_freeu, which uses b1/s1 for all of up block 0 and b2/s2 for all of
                up block 1)
"""
import argparse
import json
import math
import os
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

TOOLS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TOOLS)
sys.path.insert(0, TOOLS)
sys.dont_write_bytecode = True
import fs_philox  # noqa: E402

PIPE = os.path.join(REPO, "tests", "data", "render", "pipe")
OUT = os.path.join(REPO, "tests", "data", "cascade")
STREAM_NOISE = 1


def stream_stage_noise(s):
    return 0x100 + s


def stream_posterior(s):
    return 0x200 + s


def stream_jitter(s):
    return 0x300 + s


PROMPT = "a stone bridge over a quiet river in autumn, warm evening light; detailed oil painting."
COMMON = dict(prompt=PROMPT, negative_prompt="blurry", seed=11, steps=10, guidance=7.5,
              scheduler="euler", restart_step=3, dilate_tau=7, cosine_scale=2.0,
              cosine_scale_bg=1.0, fast_mode=False, upsample="rgb", mask=None, freeu=True,
              freeu_factors=[1.1, 1.2, 0.6, 0.4], blur="3d", blur_sigma=1.0, precision="fp32",
              vae_tiling=False, crop=[0, 0])
CASES = [
    dict(name="a", what="two stages 256 -> 512, FreeU on", stages=[[256, 256], [512, 512]]),
    dict(name="b", what="three stages 256 -> 512 -> 1024, FreeU on, fast mode",
         stages=[[256, 256], [512, 512], [1024, 1024]], fast_mode=True),
    dict(name="c", what="non-square 384x256 -> 768x512 (w x h), mask (alpha 3 in, 0.5 out), FreeU off",
         stages=[[384, 256], [768, 512]], mask="mask.png", cosine_scale=3.0, cosine_scale_bg=0.5,
         freeu=False),
    dict(name="d", what="two stages 256 -> 512, FreeU off, blur hw (2-D per channel)",
         stages=[[256, 256], [512, 512]], freeu=False, blur="hw"),
]


def case_keys(c):
    """Every job key of a case (names of fs_job's fields / the job file's keys)."""
    k = dict(COMMON)
    k.update({n: v for n, v in c.items() if n not in ("name", "what")})
    w, h = k["stages"][-1]
    k["size"] = [w, h]
    k["original_size"] = list(k["stages"][0])   # time ids of stage 0 for every stage
    k["target_size"] = list(k["stages"][0])
    return k


# ------------------------------------------------------------------ the pipeline
def load_pipeline(dtype):
    import diffusers
    import gen_render_golden as gr
    import transformers
    from diffusers import StableDiffusionXLPipeline
    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    with tempfile.TemporaryDirectory() as d:
        tok, tok2 = gr.build_tokenizers(d)
        pipe = StableDiffusionXLPipeline.from_pretrained(PIPE, tokenizer=tok, tokenizer_2=tok2,
                                                         add_watermarker=False)
    pipe.to(dtype)
    for m in (pipe.unet, pipe.vae, pipe.text_encoder, pipe.text_encoder_2):
        m.eval()
    return pipe


def f32(v, dtype):
    """A scalar rounded to float32 (what the C side holds), as a tensor of dtype."""
    return torch.tensor(float(np.float32(v)), dtype=dtype)


def philox_latent(seed, stream, h, w, c=4):
    """NCHW [1, c, h, w] of Philox normals at index (y w + x) c + ch."""
    n = fs_philox.normals(seed, stream, 0, h * w * c)
    return torch.from_numpy(n.reshape(h, w, c).transpose(2, 0, 1).copy())[None]


# ------------------------------------------------------------------ FreeScale state + hooks
class State:
    def __init__(self):
        self.fusion = False
        self.lat_h = self.lat_w = self.base_h = self.base_w = 0
        self.fast_mode = False
        self.blur = "3d"
        self.sigma = 1.0
        self.seed = 0
        self.stream = 0
        self.step = 0
        self.ordinal = 0        # attn1 calls so far in this UNet call
        self.freeu = False
        self.b1 = self.b2 = self.s1 = self.s2 = 0.0
        self.dilated = []       # (conv, padding, dilation) to restore
        self.views_log = None   # list to record windows (debug / self-test)
        self.perturb = {}       # --sensitivity: deliberate deviations from the contract


def geometry(lat_h, lat_w, base_h, base_w, fh, fw):
    """unet/fusion.h fus_geometry."""
    s_h, s_w = lat_h // base_h, lat_w // base_w
    assert s_h >= 1 and s_w >= 1
    s = max(s_h, s_w)
    ph, pw = max(1, fh // s), max(1, fw // s)
    sh, sw = max(1, ph // 2), max(1, pw // 2)
    rh, rw = ph // 8, pw // 8
    nh = 1 if fh <= ph else -(-(fh - ph) // sh) + 1
    nw = 1 if fw <= pw else -(-(fw - pw) // sw) + 1
    return dict(fh=fh, fw=fw, s_h=s_h, s_w=s_w, s=s, ph=ph, pw=pw, sh=sh, sw=sw, rh=rh, rw=rw,
                nh=nh, nw=nw, k=2 * s - 1)


def axis_window(L, P, S, r, i):
    """unet/fusion.h fus_axis_window: unjittered [start, end) and jitter range."""
    start = i * S
    end = start + P
    if end > L:
        start, end = start + L - end, L
    if start < 0:
        start, end = 0, end - start
    if start != 0 and end != L:
        lo, hi = -r, r
    elif start == 0 and end != L:
        lo, hi = -r, 0
    elif start != 0 and end == L:
        lo, hi = 0, r
    else:
        lo, hi = 0, 0
    return start, end, lo, hi


def jitter_index(step, block, window, axis):
    return (((step * 256 + block) * 65536 + window) * 2 + axis) & 0xFFFFFFFFFFFFFFFF


def views(g, seed, stream, step, block):
    """Every window's top-left in the padded map, ordinal order wy * nw + wx."""
    out = []
    for wy in range(g["nh"]):
        for wx in range(g["nw"]):
            win = wy * g["nw"] + wx
            y0, _, lo, hi = axis_window(g["fh"], g["ph"], g["sh"], g["rh"], wy)
            jy = fs_philox.randint(seed, stream, jitter_index(step, block, win, 0), lo, hi)
            x0, _, lo, hi = axis_window(g["fw"], g["pw"], g["sw"], g["rw"], wx)
            jx = fs_philox.randint(seed, stream, jitter_index(step, block, win, 1), lo, hi)
            out.append((y0 + jy + g["rh"], x0 + jx + g["rw"]))
    return out


def gaussian_1d(k, sigma, dtype):
    x = torch.arange(k, dtype=torch.float64)
    g = torch.exp(-(x - (k - 1) / 2) ** 2 / (2 * sigma ** 2))
    return (g / g.sum()).to(dtype)


def blur(x, kind, k, sigma):
    """x [B, h, w, C]. "3d": the official HEAD gaussian_filter (conv3d of the
    (1, B, h, w, C) view, groups B, zero padding k // 2); "hw": per channel over
    rows and columns."""
    if k <= 1:
        return x
    g = gaussian_1d(k, sigma, x.dtype)
    B, h, w, C = x.shape
    if kind == "3d":
        ker = (g[:, None, None] * g[None, :, None] * g[None, None, :])[None, None].repeat(B, 1, 1, 1, 1)
        return F.conv3d(x[None], ker, padding=k // 2, groups=B)[0]
    if kind == "hw":
        ker = (g[:, None] * g[None, :])[None, None]
        y = F.conv2d(x.permute(0, 3, 1, 2).reshape(B * C, 1, h, w), ker, padding=k // 2)
        return y.reshape(B, C, h, w).permute(0, 2, 3, 1)
    raise ValueError(kind)


class FusionProcessor:
    """attn1 of every transformer block: plain attention when fusion is off,
    else FreeScale's scale fusion (on post-to_out outputs)."""

    def __init__(self, st, base):
        self.st = st
        self.base = base

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 temb=None, **kw):
        st = self.st
        block = st.ordinal + st.perturb.get("ordinal_shift", 0)
        st.ordinal += 1
        if not st.fusion:
            return self.base(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        assert encoder_hidden_states is None and attention_mask is None
        B, N, C = hidden_states.shape
        lev = [l for l in range(8) if (st.lat_h >> l) * (st.lat_w >> l) == N]
        assert lev, N
        fh, fw = st.lat_h >> lev[0], st.lat_w >> lev[0]
        g = geometry(st.lat_h, st.lat_w, st.base_h, st.base_w, fh, fw)
        y = hidden_states.reshape(B, fh, fw, C)
        # local: windows of the zero-padded map, value / count
        rh, rw, ph, pw = g["rh"], g["rw"], g["ph"], g["pw"]
        yp = F.pad(y, (0, 0, rw, rw, rh, rh))
        value = torch.zeros_like(yp)
        count = torch.zeros_like(yp)
        vs = views(g, st.seed, st.stream, st.step, block)
        if st.views_log is not None:
            st.views_log.append((st.step, block, fh, fw, vs))
        for (y0, x0) in vs:
            o = self.base(attn, yp[:, y0:y0 + ph, x0:x0 + pw].reshape(B, ph * pw, C))
            value[:, y0:y0 + ph, x0:x0 + pw] += o.reshape(B, ph, pw, C)
            count[:, y0:y0 + ph, x0:x0 + pw] += 1
        value = value[:, rh:rh + fh, rw:rw + fw]
        count = count[:, rh:rh + fh, rw:rw + fw]
        assert bool((count > 0).all())
        local = value / count
        # global: all tokens, or each dilated sub-lattice
        if not st.fast_mode:
            glob = self.base(attn, hidden_states).reshape(B, fh, fw, C)
        else:
            glob = torch.zeros_like(y)
            for a in range(g["s_h"]):
                for b in range(g["s_w"]):
                    sub = y[:, a::g["s_h"], b::g["s_w"]]
                    sh_, sw_ = sub.shape[1], sub.shape[2]
                    o = self.base(attn, sub.reshape(B, sh_ * sw_, C))
                    glob[:, a::g["s_h"], b::g["s_w"]] = o.reshape(B, sh_, sw_, C)
        out = blur(local, st.blur, g["k"], st.sigma) + (glob - blur(glob, st.blur, g["k"], st.sigma))
        return out.reshape(B, N, C)


def fourier_filter(x, scale):
    """FreeU's FourierFilter (threshold 1), computed in float64."""
    dt = x.dtype
    x = x.to(torch.float64)
    B, C, H, W = x.shape
    f = torch.fft.fftshift(torch.fft.fftn(x, dim=(-2, -1)), dim=(-2, -1))
    mask = torch.ones((H, W), dtype=torch.float64)
    mask[H // 2 - 1:H // 2 + 1, W // 2 - 1:W // 2 + 1] = scale
    f = torch.fft.ifftshift(f * mask, dim=(-2, -1))
    return torch.fft.ifftn(f, dim=(-2, -1)).real.to(dt)


def freeu_rule(unet, rule):
    """{(up block, resnet): (1 or 2, h channels)} where FreeU acts. rule
    "official": by position as unet.h (h from level L-1: b1/s1, from L-2:
    b2/s2); "diffusers": enable_freeu's (all of up block 0: 1, up block 1: 2)."""
    rev = list(reversed(unet.config.block_out_channels))
    out = {}
    for i, ub in enumerate(unet.up_blocks):
        prev = rev[max(i - 1, 0)]
        for j in range(len(ub.resnets)):
            ch = prev if j == 0 else rev[i]
            if rule == "official":
                lvl = len(rev) - 1 - (i - 1 if j == 0 and i > 0 else i)  # level h comes from
                which = {len(rev) - 1: 1, len(rev) - 2: 2}.get(lvl)
            else:
                which = {0: 1, 1: 2}.get(i)
            if which:
                out[(i, j)] = (which, ch)
    return out


def install(pipe, st, freeu="official"):
    """The attn1 processors, FreeU pre-hooks and the dilation list."""
    from diffusers.models.attention_processor import AttnProcessor2_0
    unet = pipe.unet
    base = AttnProcessor2_0()
    procs = {}
    for name in unet.attn_processors:
        procs[name] = FusionProcessor(st, base) if ".attn1." in name else AttnProcessor2_0()
    unet.set_attn_processor(procs)
    handles = []
    for (i, j), (which, ch) in freeu_rule(unet, freeu).items():
        def hook(mod, args, kwargs, which=which, ch=ch):
            if not st.freeu:
                return None
            x = args[0]
            h, skip = x[:, :ch], x[:, ch:]
            b, s = (st.b1, st.s1) if which == 1 else (st.b2, st.s2)
            h = torch.cat([h[:, :ch // 2] * b, h[:, ch // 2:]], dim=1)
            return (torch.cat([h, fourier_filter(skip, s)], dim=1),) + tuple(args[1:]), kwargs
        handles.append(unet.up_blocks[i].resnets[j].register_forward_pre_hook(hook, with_kwargs=True))
    L = len(unet.config.block_out_channels)
    convs = [unet.down_blocks[L - 2].downsamplers[0].conv]
    for r in list(unet.down_blocks[L - 1].resnets) + list(unet.mid_block.resnets):
        convs += [r.conv1, r.conv2]
    return convs, handles


def set_dilation(convs, d):
    for c in convs:
        c.dilation = (d, d)
        c.padding = (d, d)


# ------------------------------------------------------------------ the sampler
class Runner:
    def __init__(self, pipe, dtype, debug=None, freeu_rule="official"):
        from diffusers import EulerDiscreteScheduler
        self.pipe = pipe
        self.dtype = dtype
        self.st = State()
        self.convs, self.hooks = install(pipe, self.st, freeu_rule)
        self.sched_cls = EulerDiscreteScheduler
        self.debug = debug

    def condition(self, prompt, negative, h0, w0):
        pe, npe, pp, npp = self.pipe.encode_prompt(prompt, device="cpu", num_images_per_prompt=1,
                                                   do_classifier_free_guidance=True,
                                                   negative_prompt=negative)
        ids = torch.tensor([[h0, w0, 0, 0, h0, w0]], dtype=self.dtype)
        return (torch.cat([npe, pe]).to(self.dtype), torch.cat([npp, pp]).to(self.dtype),
                torch.cat([ids, ids]))

    def eps(self, x, i, cond, guidance):
        ctx, pooled, ids = cond
        sig = self.sigmas[i]
        xin = torch.cat([x, x]) / ((sig ** 2 + 1) ** 0.5)
        self.st.ordinal = 0
        e = self.pipe.unet(xin, self.timesteps[i], encoder_hidden_states=ctx,
                           added_cond_kwargs={"text_embeds": pooled, "time_ids": ids}).sample
        eu, ec = e.chunk(2)
        return eu + guidance * (ec - eu)

    def euler(self, x, i, e):
        # diffusers' float32 order: x0 = x - sigma eps, d = (x - x0) / sigma, x + d dt
        sigma = self.sigmas[i]
        x0 = x - sigma * e
        d = (x - x0) / sigma
        return x + d * (self.sigmas[i + 1] - sigma)

    def run(self, k, name=None):
        st, pipe, dt = self.st, self.pipe, self.dtype
        sched = self.sched_cls.from_config(pipe.scheduler.config)
        sched.set_timesteps(k["steps"])
        self.timesteps = sched.timesteps.to(dt)
        self.sigmas = sched.sigmas.to(dt)   # float32 as diffusers (float64 run: widened)
        init_sigma = float(sched.init_noise_sigma)
        stages = k["stages"]
        w0, h0 = stages[0]
        pt = st.perturb
        ih, iw = (stages[-1][1], stages[-1][0]) if pt.get("time_ids_final") else (h0, w0)
        cond = self.condition(k["prompt"], k["negative_prompt"], ih, iw)
        seed = k["seed"]
        f = k["freeu_factors"]
        st.freeu = bool(k["freeu"])
        st.b1, st.b2, st.s1, st.s2 = f
        st.fast_mode = bool(k["fast_mode"])
        st.blur = k["blur"]
        st.sigma = k["blur_sigma"]
        st.seed = seed
        st.base_h, st.base_w = h0 // 8, w0 // 8
        sf = pipe.vae.config.scaling_factor
        dbg = {}
        # stage 0: the plain loop
        st.fusion = False
        set_dilation(self.convs, 1)
        # init_sigma * n in float32, as fs_sampler_init_noise
        x = philox_latent(seed, STREAM_NOISE, h0 // 8, w0 // 8).to(dt) * f32(init_sigma, dt)
        for i in range(k["steps"]):
            x = self.euler(x, i, self.eps(x, i, cond, k["guidance"]))
        latents = [x]
        mask_img = None
        if k["mask"]:
            from PIL import Image
            mask_img = np.array(Image.open(os.path.join(OUT, k["mask"])).convert("L")) != 0
        for s in range(1, len(stages)):
            W, H = stages[s]
            h, w = H // 8, W // 8
            with torch.no_grad():
                img = pipe.vae.decode(x / sf).sample
                up = F.interpolate(img, size=(H, W), mode="bicubic", align_corners=False)
                dist = pipe.vae.encode(up).latent_dist
            n_post = philox_latent(seed, stream_posterior(s), h, w).to(dt)
            z = (dist.mean + (0 if pt.get("posterior_mean") else dist.std * n_post)) * sf
            eps = philox_latent(seed, stream_stage_noise(s), h, w).to(dt)
            if mask_img is not None:
                m = torch.from_numpy(mask_img.astype(np.float32))[None, None]
                m = F.interpolate(m, size=(h, w), mode="nearest").to(dt)
            else:
                m = None
            r = k["restart_step"]
            x = z + eps * self.sigmas[r]
            st.fusion = not pt.get("no_fusion")
            st.lat_h, st.lat_w = h, w
            st.stream = stream_jitter(s) + pt.get("jitter_stream_add", 0)
            d = w // st.base_w
            if name and self.debug is not None:
                dbg[f"{name}.stage{s}.image_prev"] = img
                dbg[f"{name}.stage{s}.z"] = z
            for i in range(r, k["steps"]):
                t = float(self.timesteps[i])
                cf = 0.5 * (1.0 + math.cos(math.pi * (1000.0 - t) / 1000.0))
                c = f32(cf ** k["cosine_scale"], dt)    # (float)pow(cf, alpha), as C
                if m is not None:
                    c = m * c + (1 - m) * f32(cf ** k["cosine_scale_bg"], dt)
                x = x * (1 - c) + (z + eps * self.sigmas[i]) * c
                set_dilation(self.convs, d if (i < k["dilate_tau"] and d > 1) else 1)
                st.step = i
                e = self.eps(x, i, cond, k["guidance"])
                set_dilation(self.convs, 1)
                x = self.euler(x, i, e)
            st.fusion = False
            latents.append(x)
        if name and self.debug is not None:
            self.debug.update(dbg)
        return latents


# ------------------------------------------------------------------ self-tests
def official_get_views(height, width, hw, ww, hs, ws):
    """The official get_views' placement (scale_attention.py L24-81) without
    the random draw: (h_start, h_end, w_start, w_end) per window."""
    nbh = int((height - hw) / hs - 1e-6) + 2 if height > hw else 1
    nbw = int((width - ww) / ws - 1e-6) + 2 if width > ww else 1
    out = []
    for i in range(nbh * nbw):
        h_start = int((i // nbw) * hs)
        h_end = h_start + hw
        w_start = int((i % nbw) * ws)
        w_end = w_start + ww
        if h_end > height:
            h_start = int(h_start + height - h_end)
            h_end = int(height)
        if w_end > width:
            w_start = int(w_start + width - w_end)
            w_end = int(width)
        if h_start < 0:
            h_end = int(h_end - h_start)
            h_start = 0
        if w_start < 0:
            w_end = int(w_end - w_start)
            w_start = 0
        out.append((h_start, h_end, w_start, w_end))
    return out


def selftest(pipe, dtype):
    from safetensors.torch import load_file
    ok = True
    # 1. geometry against the official placement at SDXL sizes (base 128 latents)
    for lat in [(256, 256), (512, 512), (1024, 1024), (256, 512), (512, 256)]:
        for lev in (1, 2):
            fh, fw = lat[0] >> lev, lat[1] >> lev
            g = geometry(lat[0], lat[1], 128, 128, fh, fw)
            s_h, s_w = lat[0] // 128, lat[1] // 128
            sfac = 128 * s_h / fh
            sub = (128, int(128 * s_w / s_h)) if s_h / s_w > 1 else (int(128 * s_h / s_w), 128)
            P = (int(sub[0] / sfac), int(sub[1] / sfac))
            S = (int((sub[0] // 2) / sfac), int((sub[1] // 2) / sfac))
            assert (g["ph"], g["pw"], g["sh"], g["sw"]) == P + S, (lat, lev, g, P, S)
            off = official_get_views(fh, fw, P[0], P[1], S[0], S[1])
            mine = []
            for wy in range(g["nh"]):
                for wx in range(g["nw"]):
                    ys, ye, _, _ = axis_window(fh, g["ph"], g["sh"], g["rh"], wy)
                    xs, xe, _, _ = axis_window(fw, g["pw"], g["sw"], g["rw"], wx)
                    mine.append((ys, ye, xs, xe))
            assert mine == off, (lat, lev)
    print("selftest: window geometry equals the official get_views at SDXL sizes")
    # 2. stage 0 = the plain pipeline (tests/data/render, case euler_neg: 128 x 64, 8 steps)
    cases = json.load(open(os.path.join(REPO, "tests", "data", "render", "cases.json")))
    gold = load_file(os.path.join(REPO, "tests", "data", "render", "cases.safetensors"))
    rn = Runner(pipe, dtype)
    for cs in cases:
        if cs["scheduler"] != "euler":
            continue
        sched = rn.sched_cls.from_config(pipe.scheduler.config)
        sched.set_timesteps(cs["steps"])
        rn.timesteps, rn.sigmas = sched.timesteps.to(dtype), sched.sigmas.to(dtype)
        cond = rn.condition(cs["prompt"], cs["negative_prompt"], cs["height"], cs["width"])
        x = gold[cs["name"] + ".noise"].to(dtype) * f32(sched.init_noise_sigma, dtype)
        rn.st.fusion = rn.st.freeu = False
        for i in range(cs["steps"]):
            x = rn.euler(x, i, rn.eps(x, i, cond, cs["guidance"]))
        ref = gold[cs["name"] + ".latent"].to(dtype)
        e = float((x - ref).norm() / ref.norm())
        print(f"selftest: stage-0 loop vs tests/data/render {cs['name']}: rel L2 {e:.2e}")
        ok &= e < 1e-5
    # 3. the FreeU hooks with diffusers' rule = diffusers' enable_freeu
    h, w = 16, 32
    xin = philox_latent(3, 9, h, w).to(dtype).repeat(2, 1, 1, 1)
    t = torch.tensor(500.0, dtype=dtype)
    ctx = 0.3 * philox_latent(3, 10, 77, 32).to(dtype).reshape(1, 77, 128).repeat(2, 1, 1)
    pooled = 0.5 * philox_latent(3, 11, 1, 16).to(dtype).reshape(1, 64).repeat(2, 1)
    ids = torch.tensor([[h * 8, w * 8, 0, 0, h * 8, w * 8]] * 2, dtype=dtype)
    kw = dict(encoder_hidden_states=ctx, added_cond_kwargs={"text_embeds": pooled, "time_ids": ids})
    unet = pipe.unet
    st = State()
    st.freeu, st.b1, st.b2, st.s1, st.s2 = True, 1.1, 1.2, 0.6, 0.4
    from diffusers.models.attention_processor import AttnProcessor2_0
    saved = unet.attn_processors
    unet.set_attn_processor(AttnProcessor2_0())
    with torch.no_grad():
        unet.enable_freeu(s1=0.6, s2=0.4, b1=1.1, b2=1.2)
        ref = unet(xin, t, **kw).sample
        unet.disable_freeu()
        _, hs = install(pipe, st, freeu="diffusers")
        got = unet(xin, t, **kw).sample
        for hd in hs:
            hd.remove()
        _, hs = install(pipe, st, freeu="official")
        off = unet(xin, t, **kw).sample
        for hd in hs:
            hd.remove()
        plain = unet(xin, t, **kw).sample
    unet.set_attn_processor(saved)
    e = float((got - ref).norm() / ref.norm())
    print(f"selftest: FreeU hooks (diffusers' rule) vs enable_freeu: rel L2 {e:.2e}; official "
          f"rule vs diffusers' {float((off - ref).norm() / ref.norm()):.2e}, vs none "
          f"{float((off - plain).norm() / plain.norm()):.2e}")
    ok &= e < 1e-5
    rule = freeu_rule(unet, "official")
    assert rule == {(0, 0): (1, 32), (0, 1): (1, 32), (1, 0): (1, 32), (1, 1): (2, 16),
                    (2, 0): (2, 16)}, rule
    # 4. fusion at scale 1 is plain attention; the ordinal counts 7 attn1 per call
    rn = Runner(pipe, dtype)
    rn.st.freeu = False
    with torch.no_grad():
        rn.st.ordinal = 0
        a = unet(xin, t, **kw).sample
        n_attn = rn.st.ordinal
        rn.st.fusion, rn.st.lat_h, rn.st.lat_w, rn.st.base_h, rn.st.base_w = True, h, w, h, w
        rn.st.seed, rn.st.stream, rn.st.step, rn.st.blur, rn.st.sigma = 11, 0x301, 3, "3d", 1.0
        rn.st.ordinal = 0
        b = unet(xin, t, **kw).sample
    e = float((a - b).norm() / a.norm())
    print(f"selftest: fusion at scale 1 vs plain attention: rel L2 {e:.2e}; {n_attn} attn1 per call")
    ok &= e < 1e-5 and n_attn == 7
    print("selftest:", "ok" if ok else "FAILED")
    return ok


def sensitivity(pipe, dtype):
    """How far case a's (and c's) last latent moves when one piece of the
    contract is changed: each must move it well past the test's 1e-3, or the
    C test could not tell it apart."""
    def last(k, runner=None, **pt):
        rn = runner or Runner(pipe, dtype)
        rn.st.perturb = pt
        out = rn.run(k)[-1]
        for hd in rn.hooks:
            hd.remove()
        return out
    a = case_keys(CASES[0])
    ref = last(a)
    rows = []
    for what, k, kw in [
            ("no scale fusion in later stages", a, dict(no_fusion=True)),
            ("other window jitter (stream + 1)", a, dict(jitter_stream_add=1)),
            ("jitter block ordinal + 1", a, dict(ordinal_shift=1)),
            ("no dilation (dilate_tau 0)", dict(a, dilate_tau=0), {}),
            ("dilation one step longer (tau 8)", dict(a, dilate_tau=8), {}),
            ("FreeU off", dict(a, freeu=False), {}),
            ("posterior mean instead of sample", a, dict(posterior_mean=True)),
            ("time ids of the last stage", a, dict(time_ids_final=True)),
            ("fast mode on", dict(a, fast_mode=True), {}),
            ("blur hw instead of 3d", dict(a, blur="hw"), {}),
            ("restart step 4", dict(a, restart_step=4), {}),
            ("cosine scale 1", dict(a, cosine_scale=1.0), {})]:
        x = last(k, **kw)
        rows.append((what, float((x - ref).norm() / ref.norm())))
    rn = Runner(pipe, dtype, freeu_rule="diffusers")
    x = last(a, rn)
    rows.append(("FreeU by diffusers' enable_freeu rule", float((x - ref).norm() / ref.norm())))
    c = case_keys(CASES[2])
    ref = last(c)
    x = last(dict(c, mask=None))
    rows.append(("case c without its mask", float((x - ref).norm() / ref.norm())))
    for what, e in rows:
        print(f"sensitivity: {what:40s} moves the last latent by rel L2 {e:.3e}")
    return rows


# ------------------------------------------------------------------ files
def write_mask(path):
    """64 x 64 grayscale: a filled disc (255) of radius 20 centred at (36, 26)
    (x, y), 0 elsewhere."""
    from PIL import Image
    yy, xx = np.mgrid[0:64, 0:64]
    a = (((xx - 36) ** 2 + (yy - 26) ** 2) <= 20 ** 2).astype(np.uint8) * 255
    Image.fromarray(a).save(path, optimize=True)   # uint8 2-D: mode "L"


def format_cases(meta):
    """cases.json: one line per field, values inline."""
    out = []
    for c in meta:
        lines = [f' {json.dumps(n)}: {json.dumps(c[n])}' for n in ("name", "what", "latents")]
        keys = ",\n".join(f'  {json.dumps(n)}: {json.dumps(v)}' for n, v in c["keys"].items())
        lines.append(' "keys": {\n' + keys + "\n }")
        out.append("{\n" + ",\n".join(lines) + "\n}")
    return "[\n" + ",\n".join(out) + "\n]\n"


def versions():
    import diffusers
    import PIL
    import safetensors
    import transformers
    return {"torch": torch.__version__, "diffusers": diffusers.__version__, "pillow": PIL.__version__,
            "transformers": transformers.__version__, "safetensors": safetensors.__version__,
            "numpy": np.__version__, "python": sys.version.split()[0],
            "threads": torch.get_num_threads()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--check", action="store_true", help="regenerate and compare with --out")
    ap.add_argument("--selftest", action="store_true")
    ap.add_argument("--sensitivity", action="store_true")
    ap.add_argument("--cases", default="", help="comma-separated case names (default all)")
    ap.add_argument("--debug", default=None, help="folder: also write intermediates")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtype = torch.float32 if args.dtype == "float32" else torch.float64
    torch.set_grad_enabled(False)
    pipe = load_pipeline(dtype)
    if args.selftest:
        sys.exit(0 if selftest(pipe, dtype) else 1)
    if args.sensitivity:
        sys.exit(0 if min(e for _, e in sensitivity(pipe, dtype)) > 1e-2 else 1)
    from safetensors.torch import load_file, save_file
    os.makedirs(args.out, exist_ok=True)
    if not os.path.exists(os.path.join(OUT, "mask.png")):
        os.makedirs(OUT, exist_ok=True)
        write_mask(os.path.join(OUT, "mask.png"))
    debug = {} if args.debug else None
    rn = Runner(pipe, dtype, debug)
    want = set(args.cases.split(",")) if args.cases else None
    tensors, meta = {}, []
    for c in CASES:
        if want and c["name"] not in want:
            continue
        k = case_keys(c)
        lat = rn.run(k, c["name"])
        names = []
        for s, x in enumerate(lat):
            n = f"{c['name']}.stage{s}"
            tensors[n] = x.to(torch.float32).contiguous()
            names.append(n)
        meta.append({"name": c["name"], "what": c["what"], "keys": k, "latents": names})
        print(f"case {c['name']}: " + ", ".join(
            f"stage {s} {tuple(x.shape[2:])} std {float(x.std()):.3f}" for s, x in enumerate(lat)))
    if args.check:
        gold = load_file(os.path.join(args.out, "golden.safetensors"))
        bad = 0
        for n, x in tensors.items():
            e = float((x - gold[n]).norm() / gold[n].norm())
            same = torch.equal(x, gold[n])
            print(f"check {n}: {'identical' if same else f'rel L2 {e:.2e}'}")
            bad += not same
        same = True
        if not want:  # the whole list only when every case ran
            with open(os.path.join(args.out, "cases.json")) as f:
                same = f.read() == format_cases(meta)
            print(f"check cases.json: {'identical' if same else 'DIFFERS'}")
        sys.exit(1 if bad or not same else 0)
    save_file(tensors, os.path.join(args.out, "golden.safetensors"),
              metadata={"generator": "tools/ref_freescale.py", "dtype": args.dtype})
    with open(os.path.join(args.out, "cases.json"), "w") as f:
        f.write(format_cases(meta))
    with open(os.path.join(args.out, "versions.json"), "w") as f:
        json.dump(versions(), f, indent=1)
        f.write("\n")
    if debug is not None:
        os.makedirs(args.debug, exist_ok=True)
        save_file({n: v.to(torch.float32).contiguous() for n, v in debug.items()},
                  os.path.join(args.debug, "debug.safetensors"))
    print(f"wrote {args.out}: {len(tensors)} latents")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""tools/gen_render_golden.py: end-to-end golden files for the C render
(tests/data/render/), made with a tiny random diffusers StableDiffusionXLPipeline
on CPU, all float32.

Run (from the repository root; 30 to 70 s on 2 shared cores):
    /tmp/tv/bin/python tools/gen_render_golden.py            # writes tests/data/render/
    /tmp/tv/bin/python tools/gen_render_golden.py --check    # regenerate in a temp dir, compare
Versions are written into tests/data/render/versions.json; tests/data/render/README.md
says what each file holds.

The pipeline (SDXL's structure, tiny widths; see UNET, CLIP_L, CLIP_G, VAE):
  unet            UNet2DConditionModel, SDXL's block types (DownBlock2D,
                  CrossAttnDownBlock2D x2 / mirrored up blocks), linear projections,
                  GEGLU, text_time added embedding with addition_time_embed_dim 256
                  (SDXL's, so the C conditioning's 256-wide size embeddings fit),
                  channels [8, 16, 32] (SDXL's 1:2:4), layers_per_block 1,
                  transformer depth 1, 4 GroupNorm groups (2..8 channels each), one
                  head per attention (what a single file implies: width <= 64),
                  context 128 = 64 + 64, time embedding 32, adm_in 1600 = 64 + 6 * 256.
  text_encoder    CLIPTextModel: vocab 49408, width 64, 1 head, 2 layers, MLP 64,
                  quick_gelu, BOS 49406, EOS = pad 49407, 77 positions.
  text_encoder_2  CLIPTextModelWithProjection: vocab 49408, width 64, 1 head, 2 layers,
                  MLP 64, gelu (erf), projection 64 (the pooled width), pad 0 ("!",
                  as diffusers' tokenizer_2).
  vae             AutoencoderKL [8, 16, 16, 16] (4 levels: 8x down, as SDXL),
                  layers_per_block 1, 4 groups, mid attention, scaling 0.13025.
  scheduler       EulerDiscreteScheduler from SDXL's scheduler_config.json (SCHEDULER);
                  DDIM cases use DDIMScheduler.from_config of the same config.
  tokenizers      transformers CLIPTokenizer built from data/clip/bpe_simple_vocab_16e6.txt.gz
                  (the real CLIP vocabulary); tokenizer_2 the same with pad_token "!".
                  They are NOT written into the folder (4 MB): the C side falls back
                  to its shipped merges when a diffusers folder has no tokenizer/.
The single file and the diffusers folder hold one group count: the C UNet and VAE
loaders both read __metadata__ "norm_num_groups" from an SGM file, so the UNet and
the VAE share it (4). Widths, layers and MLP sizes are as small as keeps the files
near 3 MB (git's zlib; the script prints the sizes): the UNet, text and VAE goldens
in tests/data/{unet,text,vae} test the wider and deeper variants.

Weights: seeded random as the other gen_*_golden.py scripts (conv/linear N(0, 1/fan_in)
(x2 GEGLU input, x3 UNet / x2 VAE resnet conv2), biases 0.1 N, norm gammas 1 + 0.2 N,
betas 0.2 N, text embeddings 0.5 N; no "quiet" GroupNorm rows), then every value rounded to float16 and saved as
F16, so the folder and the single file hold the same values. Token embedding tables
(49408 x 64) repeat: row i is row (i mod 211) of a random 211 x 64 table, so each
6.3 MB table is a 27 KB period that zlib (and git) stores in 70 to 150 KB; the golden
prompts' ids still get distinct rows unless two ids are equal mod 211 (printed). The
VAE's conv_out is scaled so the decoded golden images have std 0.35 (1-2% clamped).

Cases (CASES): 128 x 64 (width x height, non-square), 8 steps, Euler and DDIM, with and
without a negative prompt, guidance 7.5 or 5.0. Per case the pipeline is called with
latents = the stored unit-variance noise (it multiplies by init_noise_sigma itself).

Checks made on the way (asserts): every UNet call gets time_ids (H, W, 0, 0, H, W);
negative None gives an all-zero uncond context and pooled (force_zeros_for_empty_prompt),
a negative prompt gives its own encoding (recomputed here from the ids); open_clip's
tokenizer (what the C side copies for bigG) gives tokenizer_2's ids; the Euler and DDIM
schedules are SDXL's; output_type="np" equals decode + postprocess of the latent; the
folder reloads (from_pretrained with the tokenizers passed) to the same weights and
the same outputs, bit for bit; the single file maps back to the same tensors (and,
where diffusers can load it offline, from_single_file gives the same outputs); the
name mappings (imported from gen_unet/text/vae_golden.py) reproduce SDXL base 1.0's
names. It prints per case the latent std, image range and clamped fraction, how much the
text (eps cond vs uncond) and the UNet (latent not a multiple of the noise) matter, and
how far the outputs move when the networks run in float64 instead (the float32 noise
floor a C render is measured against).
"""
import argparse
import copy
import gzip
import json
import math
import os
import re
import shutil
import sys
import tempfile
import zlib

import numpy as np
import safetensors
import torch
import transformers
from safetensors.torch import load_file, save_file

import diffusers
from diffusers import DDIMScheduler, EulerDiscreteScheduler, StableDiffusionXLPipeline
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

TOOLS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TOOLS)
sys.path.insert(0, TOOLS)
sys.dont_write_bytecode = True  # importing the sibling scripts leaves no tools/__pycache__
import gen_text_golden as gt  # noqa: E402  (SGM text names, state dict names)
import gen_unet_golden as gu  # noqa: E402  (UNet kwargs, SGM UNet names)
import gen_vae_golden as gv  # noqa: E402  (VAE build, SGM VAE names)

NAMES_JSON = "/work/shared/data/sdxl_base_1.0_names.json"
BPE = os.path.join(REPO, "data", "clip", "bpe_simple_vocab_16e6.txt.gz")
T = 77
VOCAB = 49408
BOS, EOS = 49406, 49407
EMB_PERIOD = 211
GROUPS = 4  # one count for the UNet and the VAE (one __metadata__ key in the single file)
META = {"norm_num_groups": str(GROUPS)}
SEED = 7007
TARGET_STD = 0.35  # decoded image std the VAE's conv_out is scaled to

UNET = dict(block_out_channels=[8, 16, 32], groups=GROUPS, layers_per_block=1,
            transformer_layers_per_block=[1, 1, 1], heads=[1, 1, 1], cross_attention_dim=128,
            text_embeds_dim=64, addition_time_embed_dim=256, h=8)
CLIP_L = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=64, num_hidden_layers=2,
              num_attention_heads=1, hidden_act="quick_gelu", projection_dim=64,
              max_position_embeddings=T, layer_norm_eps=1e-5, bos_token_id=BOS,
              eos_token_id=EOS, pad_token_id=EOS)
CLIP_G = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=64, num_hidden_layers=2,
              num_attention_heads=1, hidden_act="gelu", projection_dim=64,
              max_position_embeddings=T, layer_norm_eps=1e-5, bos_token_id=BOS,
              eos_token_id=EOS, pad_token_id=0)
VAE = dict(channels=[8, 16, 16, 16], layers=1, groups=GROUPS, tile_sample=1024)
# stabilityai/stable-diffusion-xl-base-1.0 scheduler/scheduler_config.json
SCHEDULER = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
             "num_train_timesteps": 1000, "prediction_type": "epsilon",
             "timestep_spacing": "leading", "steps_offset": 1, "set_alpha_to_one": False,
             "clip_sample": False, "interpolation_type": "linear", "use_karras_sigmas": False,
             "sample_max_value": 1.0, "skip_prk_steps": True}
W, H = 128, 64
CASES = [
    dict(name="euler_neg", prompt="a watercolor painting of a lighthouse on a rocky coast at sunset, "
         "soft light; gentle waves.", negative_prompt="blurry, low quality, jpeg artifacts",
         scheduler="euler", steps=8, guidance=7.5, width=W, height=H),
    dict(name="euler", prompt="An old red tractor in a wheat field (morning fog), photographed "
         "from the side.", negative_prompt=None, scheduler="euler", steps=8, guidance=7.5,
         width=W, height=H),
    dict(name="ddim_neg", prompt="a bowl of ramen with chopsticks, steam rising: studio photo, "
         "50mm lens, warm colors", negative_prompt="cartoon, text, watermark, oversaturated",
         scheduler="ddim", steps=8, guidance=7.5, width=W, height=H),
    dict(name="ddim", prompt="Portrait of a tabby cat wearing a tiny wizard hat - detailed, "
         "whimsical, 4k.", negative_prompt=None, scheduler="ddim", steps=8, guidance=5.0,
         width=W, height=H),
]


# ------------------------------------------------------------------ weights
def round_f16(v):
    r = v.to(torch.float16).to(torch.float32)
    assert torch.isfinite(r).all()
    return r


def init_unet(model, seed):
    """gen_unet_golden's recipe (without its quiet GroupNorm rows), rounded to f16."""
    g = torch.Generator().manual_seed(seed)
    mods = dict(model.named_modules())
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            owner = mods[name.rsplit(".", 1)[0]]
            kind = name.rsplit(".", 1)[1]
            z = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if isinstance(owner, (torch.nn.GroupNorm, torch.nn.LayerNorm)):
                v = 1.0 + 0.2 * z if kind == "weight" else 0.2 * z
            elif kind == "bias":
                v = 0.1 * z
            else:
                v = z / math.sqrt(p[0].numel())
            if name.endswith("ff.net.0.proj.weight"):
                v = v * gu.FF_GAIN
            if re.search(r"resnets\.\d+\.conv2\.weight$", name):
                v = v * gu.RES_GAIN
            p.copy_(round_f16(v))


def init_text(model, seed):
    """gen_text_golden's recipe; the token table repeats with period EMB_PERIOD rows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            kind = name.rsplit(".", 1)[1]
            if name.endswith("token_embedding.weight"):
                base = 0.5 * torch.randn(EMB_PERIOD, p.shape[1], generator=g)
                v = base[torch.arange(p.shape[0]) % EMB_PERIOD]
            else:
                z = torch.randn(p.shape, generator=g, dtype=torch.float32)
                if "embedding" in name:
                    v = 0.5 * z
                elif "norm" in name:
                    v = 1.0 + 0.2 * z if kind == "weight" else 0.2 * z
                elif kind == "bias":
                    v = 0.1 * z
                else:
                    v = z / math.sqrt(p.shape[1])
            p.copy_(round_f16(v))


def init_vae(model, seed):
    """gen_vae_golden's recipe (without its quiet rows), rounded to f16."""
    g = torch.Generator().manual_seed(seed)
    mods = dict(model.named_modules())
    with torch.no_grad():
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
            p.copy_(round_f16(v))


# ------------------------------------------------------------------ tokenizers
def build_tokenizers(folder):
    """CLIPTokenizer pair from the shipped merges (gen_tokenizer_golden.py's
    construction: the ids of the hub's CLIP vocab.json); tokenizer_2 pads with "!"."""
    from open_clip.tokenizer import bytes_to_unicode
    lines = gzip.open(BPE).read().decode("utf-8").split("\n")
    merges = lines[1:49152 - 256 - 2 + 1]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == VOCAB and len(set(vocab)) == VOCAB
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    tok = CLIPTokenizer.from_pretrained(folder, model_max_length=T)
    tok2 = CLIPTokenizer.from_pretrained(folder, model_max_length=T, pad_token="!")
    assert tok("a photo of a cat").input_ids == [BOS, 320, 1125, 539, 320, 2368, EOS]
    assert tok.pad_token_id == EOS and tok2.pad_token_id == 0
    return tok, tok2


def window_ids(tok, text):
    return tok(text, padding="max_length", max_length=T, truncation=True,
               return_tensors="pt").input_ids


# ------------------------------------------------------------------ the pipeline
def build_pipeline(tok, tok2):
    unet = gu.build(UNET)
    assert gu.heads_match_sgm(unet), "UNet heads are not what a single file implies"
    init_unet(unet, SEED)
    te = CLIPTextModel(CLIPTextConfig(**CLIP_L)).eval()
    init_text(te, SEED + 1)
    te2 = CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_G)).eval()
    init_text(te2, SEED + 2)
    vae = gv.build(VAE)
    init_vae(vae, SEED + 3)
    sched = EulerDiscreteScheduler.from_config(SCHEDULER)
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=te, text_encoder_2=te2, tokenizer=tok,
                                     tokenizer_2=tok2, unet=unet, scheduler=sched,
                                     force_zeros_for_empty_prompt=True, add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def make_scheduler(pipe, kind):
    base = pipe.scheduler.config
    s = (EulerDiscreteScheduler if kind == "euler" else DDIMScheduler).from_config(base)
    # from_config keeps the keys the other class does not use: DDIM sees SDXL's
    # set_alpha_to_one false (else its final alpha would be 1)
    assert s.config.set_alpha_to_one is False and s.config.steps_offset == 1
    return s


def check_schedule(s, kind, steps):
    s.set_timesteps(steps)
    ratio = 1000 // steps
    want = [ratio * (steps - 1 - i) + 1 for i in range(steps)]  # leading + offset 1
    assert [int(t) for t in s.timesteps] == want, s.timesteps
    ac = s.alphas_cumprod
    if kind == "euler":
        sig = ((1 - ac) / ac) ** 0.5
        assert torch.equal(s.sigmas[:-1], sig[want].to(torch.float32)), "Euler sigmas"
        assert float(s.sigmas[-1]) == 0.0
        assert torch.equal(torch.as_tensor(s.init_noise_sigma),
                           (s.sigmas.max() ** 2 + 1) ** 0.5)
    else:
        assert s.init_noise_sigma == 1.0 and torch.equal(s.final_alpha_cumprod, ac[0])
    return [int(t) for t in s.timesteps]


def encode_branch(pipe, ids_l, ids_g):
    """What the C conditioning computes for one prompt: context = [hidden_l | hidden_g]
    (hidden_states[-2] of each), pooled = text_embeds of encoder 2."""
    with torch.no_grad():
        a = pipe.text_encoder(ids_l, output_hidden_states=True)
        b = pipe.text_encoder_2(ids_g, output_hidden_states=True)
    return torch.cat([a.hidden_states[-2], b.hidden_states[-2]], -1), b.text_embeds


def decode(pipe, latent):
    """The pipeline's own decode of a final latent: image = vae.decode(latent /
    scaling_factor) (NCHW, not clamped), and postprocess(image, "np")."""
    with torch.no_grad():
        image = pipe.vae.decode(latent / pipe.vae.config.scaling_factor).sample
    return image, pipe.image_processor.postprocess(image, output_type="np")


def run_case(pipe, case, noise, record=False, check_np=False):
    """The pipeline (output_type="latent") on the case's noise, then decode. record:
    keep what every UNet call receives and returns; check_np: also run it with
    output_type="np" and assert that equals decode + postprocess."""
    euler = pipe.scheduler
    assert type(euler) is EulerDiscreteScheduler
    pipe.scheduler = make_scheduler(pipe, case["scheduler"])
    calls = []

    def pre(mod, args, kwargs):
        calls.append(dict(t=args[1] if len(args) > 1 else kwargs["timestep"],
                          x=args[0].detach().clone(),
                          ctx=kwargs["encoder_hidden_states"].detach().clone(),
                          emb=kwargs["added_cond_kwargs"]["text_embeds"].detach().clone(),
                          tid=kwargs["added_cond_kwargs"]["time_ids"].detach().clone()))

    def post(mod, args, kwargs, out):
        calls[-1]["eps"] = out[0].detach().clone()

    hooks = [pipe.unet.register_forward_pre_hook(pre, with_kwargs=True),
             pipe.unet.register_forward_hook(post, with_kwargs=True)] if record else []
    kw = dict(prompt=case["prompt"], negative_prompt=case["negative_prompt"],
              num_inference_steps=case["steps"], guidance_scale=case["guidance"],
              width=case["width"], height=case["height"])
    dt = next(pipe.unet.parameters()).dtype
    try:
        with torch.no_grad():
            latent = pipe(latents=noise.to(dt), output_type="latent", **kw).images
            for h in hooks:
                h.remove()
            image_np = pipe(latents=noise.to(dt), output_type="np", **kw).images if check_np else None
    finally:
        for h in hooks:
            h.remove()
        pipe.scheduler = euler
    image, post_np = decode(pipe, latent)
    if check_np:
        assert np.array_equal(post_np, image_np), "output_type np != decode + postprocess"
    return dict(latent=latent, image=image[0].permute(1, 2, 0).contiguous(), np=post_np[0],
                calls=calls)


def check_calls(pipe, case, tok, tok2, calls):
    """The per-step inputs the C render must reproduce."""
    h, w = case["height"], case["width"]
    want_tid = torch.tensor([[h, w, 0, 0, h, w]] * 2, dtype=torch.float32)
    assert len(calls) == case["steps"]
    ids_l, ids_g = window_ids(tok, case["prompt"]), window_ids(tok2, case["prompt"])
    ctx_c, pool_c = encode_branch(pipe, ids_l, ids_g)
    for c in calls:
        assert torch.equal(c["tid"], want_tid), c["tid"]
        assert c["ctx"].shape == (2, T, 128) and c["emb"].shape == (2, 64)
        assert torch.equal(c["ctx"][1:], ctx_c) and torch.equal(c["emb"][1:], pool_c)
        assert torch.equal(c["x"][0], c["x"][1])
    neg = case["negative_prompt"]
    if neg is None:
        assert not calls[0]["ctx"][0].any() and not calls[0]["emb"][0].any(), "uncond not zero"
    else:
        ctx_u, pool_u = encode_branch(pipe, window_ids(tok, neg), window_ids(tok2, neg))
        assert torch.equal(calls[0]["ctx"][:1], ctx_u) and torch.equal(calls[0]["emb"][:1], pool_u)
    e = calls[0]["eps"]
    u, c = e.chunk(2)
    return u + case["guidance"] * (c - u)  # as the pipeline forms it (float32, same order)


def check_tokens(tok, tok2, case):
    """bigG's ids as the C side makes them (open_clip) equal tokenizer_2's; no
    truncation; no "!" (tokenizer_2 would turn it into the pad id 0)."""
    import open_clip
    out = {}
    for key, text in (("", case["prompt"]), ("neg_", case["negative_prompt"])):
        if text is None:
            continue
        assert "!" not in text
        l, g = window_ids(tok, text)[0], window_ids(tok2, text)[0]
        n = int((l == EOS).nonzero()[0])
        assert n < T - 1 and len(tok(text).input_ids) == n + 1, "prompt would be truncated"
        assert torch.equal(open_clip.tokenize([text])[0], g), text
        assert torch.equal(l[:n + 1], g[:n + 1]) and (l[n + 1:] == EOS).all() and not g[n + 1:].any()
        out[key + "ids_l"], out[key + "ids_g"] = l.to(torch.int32), g.to(torch.int32)
        out[key + "tokens"] = n - 1
    return out


# ------------------------------------------------------------------ files
def sgm_state(pipe):
    """The whole pipeline as one SGM single file (F16; position_ids I64, logit_scale F32)."""
    out = {}
    names = gu.sgm_names_for(pipe.unet)
    for k, v in pipe.unet.state_dict().items():
        out[names[k]] = v
    for k, v in gt.file_state_dict(pipe.text_encoder).items():
        out[gt.SGM_L + k] = v
    out[gt.SGM_L + "text_model.embeddings.position_ids"] = torch.arange(T).reshape(1, T)
    sd2 = gt.file_state_dict(pipe.text_encoder_2)
    for k, v in gt.sgm_names_g(sd2, CLIP_G["num_hidden_layers"]).items():
        out[gt.SGM_G + k] = v
    out[gt.SGM_G + "logit_scale"] = torch.tensor(math.log(1 / 0.07))
    levels = len(VAE["channels"])
    out.update(gv.sgm_tensors(pipe.vae.state_dict(), levels))
    return {k: (v.to(torch.float16) if v.is_floating_point() and v.ndim else v).contiguous()
            for k, v in out.items()}


def f16(sd):
    return {k: v.detach().to(torch.float16).contiguous() for k, v in sd.items()}


def write_folder(pipe, d):
    os.makedirs(d, exist_ok=True)
    pipe.save_config(d)  # model_index.json, as save_pretrained writes it
    pipe.scheduler.save_config(os.path.join(d, "scheduler"))
    for name in ("unet", "vae"):
        m = getattr(pipe, name)
        sub = os.path.join(d, name)
        m.save_config(sub)
        save_file(f16(m.state_dict()), os.path.join(sub, "diffusion_pytorch_model.safetensors"),
                  metadata={"format": "pt"})
    for name in ("text_encoder", "text_encoder_2"):
        m = getattr(pipe, name)
        sub = os.path.join(d, name)
        os.makedirs(sub, exist_ok=True)
        m.config.architectures = [type(m).__name__]
        m.config.to_json_file(os.path.join(sub, "config.json"))
        save_file(f16(gt.file_state_dict(m)), os.path.join(sub, "model.safetensors"),
                  metadata={"format": "pt"})


def same_weights(a, b):
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        assert set(sa) == set(sb), name
        for k in sa:
            assert torch.equal(sa[k], sb[k]), (name, k)


def check_sgm_file(pipe, path):
    """The single file holds the pipeline's tensors under the SGM names."""
    back = load_file(path)
    want = sgm_state(pipe)
    assert set(back) == set(want), set(back) ^ set(want)
    for k, v in want.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v), k
    with safetensors.safe_open(path, "pt") as f:
        assert f.metadata() == META, f.metadata()
    # inverse of the bigG mapping by hand: in_proj split, projection transposed
    sd2 = gt.file_state_dict(pipe.text_encoder_2)
    w = back[gt.SGM_G + "transformer.resblocks.1.attn.in_proj_weight"].float()
    c = CLIP_G["hidden_size"]
    for i, p in enumerate("qkv"):
        assert torch.equal(w[i * c:(i + 1) * c], sd2[f"text_model.encoder.layers.1.self_attn.{p}_proj.weight"])
    assert torch.equal(back[gt.SGM_G + "text_projection"].float().t(), sd2["text_projection.weight"])


def try_single_file(pipe_dir, sgm_path, tok, tok2, case, noise, ref):
    """diffusers' own single-file loader on our file (offline, configs from the folder).
    diffusers tells the two text encoders of a single file apart by width (768 vs
    1280); ours are both 64 wide, so from_single_file fills text_encoder_2 from the
    CLIP-L tensors. text_encoder_2 is therefore rebuilt here with diffusers'
    convert_open_clip_checkpoint on the bigG prefix (the SGM -> diffusers conversion a
    real SDXL file gets). Returns a description; raises on other weights or outputs."""
    from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint
    try:
        p = StableDiffusionXLPipeline.from_single_file(
            sgm_path, config=pipe_dir, tokenizer=tok, tokenizer_2=tok2, dtype=torch.float32,
            local_files_only=True, add_watermarker=False)
    except Exception as e:  # noqa: BLE001  (offline config resolution may be unsupported)
        return f"not loadable offline ({type(e).__name__}: {str(e).splitlines()[0][:120]})"
    p.set_progress_bar_config(disable=True)
    ref_pipe = ref.pop("pipe")
    quirk = not torch.equal(p.text_encoder_2.text_model.encoder.layers[0].mlp.fc1.weight,
                            ref_pipe.text_encoder_2.text_model.encoder.layers[0].mlp.fc1.weight)
    te2 = CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_G)).eval()
    sd = convert_open_clip_checkpoint(te2, load_file(sgm_path), prefix=gt.SGM_G)
    missing, unexpected = te2.load_state_dict({k: v.float() for k, v in sd.items()}, strict=False)
    assert not unexpected and all(k.endswith("position_ids") for k in missing), (missing, unexpected)
    p.text_encoder_2 = te2
    same_weights(p, ref_pipe)
    r = run_case(p, case, noise)
    assert torch.equal(r["latent"], ref["latent"]) and np.array_equal(r["np"], ref["np"]), \
        "from_single_file gives other outputs"
    return ("same weights, same latent and image, bit for bit (text_encoder_2 through "
            "convert_open_clip_checkpoint" + ("; from_single_file itself loads CLIP-L's "
                                              "tensors there: equal widths)" if quirk else ")"))


def rel_l2(a, b):
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    return float((a - b).norm() / b.norm())


def u8(x):
    """diffusers' numpy_to_pil: (x * 255).round() (half to even) of the float32 np image."""
    return torch.from_numpy((x * 255).round().astype(np.uint8))


def write_all(out, names_json):
    gu.check_sdxl_names(names_json)
    gt.check_sdxl_names(names_json)
    gv.check_sdxl_names(names_json)
    tokdir = tempfile.mkdtemp()
    try:
        tok, tok2 = build_tokenizers(tokdir)
    finally:
        shutil.rmtree(tokdir)
    pipe = build_pipeline(tok, tok2)
    print("params: " + ", ".join(
        f"{n} {sum(p.numel() for p in getattr(pipe, n).parameters())}"
        for n in ("unet", "text_encoder", "text_encoder_2", "vae")))

    noise, ids = {}, {}
    g = torch.Generator().manual_seed(SEED + 10)
    for case in CASES:
        noise[case["name"]] = torch.randn(1, 4, case["height"] // 8, case["width"] // 8, generator=g)
        ids[case["name"]] = check_tokens(tok, tok2, case)
        for kind in ("euler", "ddim"):
            check_schedule(make_scheduler(pipe, kind), kind, case["steps"])

    # the in-memory pipeline's runs; the latents do not depend on the VAE: scale its
    # conv_out so the decoded images have std TARGET_STD (most pixels in [-1, 1])
    runs = {c["name"]: run_case(pipe, c, noise[c["name"]], record=True) for c in CASES}
    with torch.no_grad():
        dec = torch.cat([decode(pipe, r["latent"])[0].flatten() for r in runs.values()])
        s = TARGET_STD / float(dec.std())
        co = pipe.vae.decoder.conv_out
        co.weight.copy_(round_f16(co.weight * s))
        co.bias.copy_(round_f16(co.bias * s))
    print(f"VAE conv_out scaled by {s:.4f} (decoded std {float(dec.std()):.3f} -> {TARGET_STD})")
    for name, r in runs.items():
        image, post_np = decode(pipe, r["latent"])
        r["image"], r["np"] = image[0].permute(1, 2, 0).contiguous(), post_np[0]

    # the files
    pdir = os.path.join(out, "pipe")
    write_folder(pipe, pdir)
    sgm_path = os.path.join(out, "sgm.safetensors")
    save_file(sgm_state(pipe), sgm_path, metadata=META)
    check_sgm_file(pipe, sgm_path)
    re_pipe = StableDiffusionXLPipeline.from_pretrained(pdir, tokenizer=tok, tokenizer_2=tok2,
                                                        dtype=torch.float32,
                                                        add_watermarker=False)
    re_pipe.set_progress_bar_config(disable=True)
    same_weights(pipe, re_pipe)
    assert type(re_pipe.scheduler) is EulerDiscreteScheduler
    assert re_pipe.config.force_zeros_for_empty_prompt is True
    assert re_pipe.text_encoder_2.config.projection_dim == 64

    pipe64 = copy.deepcopy(pipe)
    for n in ("unet", "vae", "text_encoder", "text_encoder_2"):
        getattr(pipe64, n).to(torch.float64)

    tensors, cases_json, rows = {}, [], []
    for case in CASES:
        n = case["name"]
        r = runs[n]
        if n == CASES[0]["name"]:  # output_type="np" is decode + postprocess
            assert np.array_equal(run_case(pipe, case, noise[n], check_np=True)["np"], r["np"])
        eps0 = check_calls(pipe, case, tok, tok2, r["calls"])
        r2 = run_case(re_pipe, case, noise[n])
        d_reload = max(float((r2["latent"] - r["latent"]).abs().max()),
                       float(np.abs(r2["np"] - r["np"]).max()))
        r64 = run_case(pipe64, case, noise[n])
        img, img_u8 = r["image"], u8(r["np"])
        tensors[n + ".noise"] = noise[n]
        tensors[n + ".latent"] = r["latent"]
        tensors[n + ".image"] = img
        tensors[n + ".image_u8"] = img_u8
        tensors[n + ".timesteps"] = torch.stack([c["t"].float().reshape(()) for c in r["calls"]])
        tensors[n + ".eps0"] = eps0
        for k, v in ids[n].items():
            if k.endswith("ids_l") or k.endswith("ids_g"):
                tensors[n + "." + k] = v
        cases_json.append({k: case[k] for k in ("name", "prompt", "negative_prompt", "scheduler",
                                                "steps", "guidance", "width", "height")})
        clamped = float(((img < -1) | (img > 1)).float().mean())
        u8_64 = u8(r64["np"])
        # the text matters: eps of the two branches differ at step 0; the UNet matters:
        # most of the final latent is not a multiple of the noise
        e_u, e_c = r["calls"][0]["eps"].chunk(2)
        cu = rel_l2(e_c, e_u)
        lat64, n64 = r["latent"].double().flatten(), noise[n].double().flatten()
        moved = float((lat64 - (lat64 @ n64) / (n64 @ n64) * n64).norm() / lat64.norm())
        assert moved > 0.2, f"{n}: the final latent is mostly a multiple of the noise ({moved})"
        body = ids[n]["ids_l"][1:ids[n]["tokens"] + 1]
        rows_used = f"{len(set((body % EMB_PERIOD).tolist()))}/{len(set(body.tolist()))}"
        assert cu > 0.05, f"{n}: the prompt barely changes eps ({cu})"
        rows.append((n, ids[n]["tokens"], ids[n].get("neg_tokens"), rows_used, cu, moved,
                     float(r["latent"].std()),
                     float(img.min()), float(img.max()), float(img.std()), clamped, d_reload,
                     rel_l2(r64["latent"], r["latent"]), rel_l2(r64["image"], img),
                     float((u8_64.int() - img_u8.int()).abs().max()),
                     float((u8_64 != img_u8).float().mean())))
        assert d_reload == 0.0, f"{n}: the reloaded folder gives other outputs ({d_reload})"
        assert clamped < 0.05, f"{n}: {clamped:.1%} of the pixels are clamped"

    print("\ncase: tokens (negative's), distinct embedding rows / distinct ids; eps cond vs "
          "uncond at step 0 (rel L2); part of the latent that is not a multiple of the noise; "
          "latent std; image min..max, std, clamped; folder reload max diff; networks in "
          "float64: latent, image rel L2, u8 max diff, u8 pixels differing")
    for (n, tk, ntk, ru, cu, mv, ls, lo, hi, sd, cl, dr, e_l, e_i, umax, ufrac) in rows:
        print(f"  {n:9s} {tk:2d}({'-' if ntk is None else ntk!s:>2s}) {ru:5s}  c/u {cu:.2f}  "
              f"moved {mv:.2f}  std {ls:6.2f}  [{lo:6.3f}, {hi:5.3f}] {sd:5.3f} {cl:6.2%}  "
              f"reload {dr:.0e}  f64: {e_l:.1e} {e_i:.1e} {umax:.0f} {ufrac:.3%}")

    ref0 = dict(runs[CASES[0]["name"]], pipe=pipe)
    sf = try_single_file(pdir, sgm_path, tok, tok2, CASES[0], noise[CASES[0]["name"]], ref0)
    print("diffusers from_single_file(sgm.safetensors, config=pipe/): " + sf)

    save_file({k: v.contiguous() for k, v in tensors.items()},
              os.path.join(out, "cases.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump(cases_json, f, indent=1)
        f.write("\n")
    back = load_file(os.path.join(out, "cases.safetensors"))
    for k, v in tensors.items():
        assert torch.equal(back[k], v), k


def report_sizes(out):
    total = z1 = z6 = 0
    print("\nfile sizes (bytes: on disk, zlib level 1, zlib level 6 = git's default):")
    for root, _, files in sorted(os.walk(out)):
        for fn in sorted(files):
            p = os.path.join(root, fn)
            with open(p, "rb") as f:
                data = f.read()
            a, b = len(zlib.compress(data, 1)), len(zlib.compress(data, 6))
            total, z1, z6 = total + len(data), z1 + a, z6 + b
            print(f"  {os.path.relpath(p, out):48s} {len(data):10d} {a:9d} {b:9d}")
    print(f"  {'total':48s} {total:10d} {z1:9d} {z6:9d}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "data", "render"))
    ap.add_argument("--names", default=NAMES_JSON)
    ap.add_argument("--check", action="store_true",
                    help="regenerate into a temp dir and compare with --out byte for byte")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()

    out = tempfile.mkdtemp() if args.check else args.out
    os.makedirs(out, exist_ok=True)
    write_all(out, args.names)
    import open_clip
    with open(os.path.join(out, "versions.json"), "w") as f:
        json.dump({"torch": torch.__version__, "diffusers": diffusers.__version__,
                   "transformers": transformers.__version__, "open_clip": open_clip.__version__,
                   "safetensors": safetensors.__version__, "numpy": np.__version__,
                   "python": sys.version.split()[0], "script": "tools/gen_render_golden.py"},
                  f, indent=1)
        f.write("\n")
    report_sizes(out)
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

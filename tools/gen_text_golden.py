#!/usr/bin/env python3
"""tools/gen_text_golden.py: golden files for the C text encoders and the SDXL
conditioning (tests/data/text/), made with transformers' CLIPTextModel and
CLIPTextModelWithProjection (and open_clip's TextTransformer for the SGM layout)
on CPU.

Run (from the repository root; a few seconds):
    /tmp/tv/bin/python tools/gen_text_golden.py            # writes tests/data/text/
    /tmp/tv/bin/python tools/gen_text_golden.py --check    # regenerate in a temp dir, compare
Versions are written into tests/data/text/versions.json.

What it makes: two tiny encoders with the real block types, named like SDXL's
  clip_l  CLIPTextModel (quick GELU, no projection): width 64, 1 head, 3 layers,
          MLP 128, vocab 128, 77 positions; diffusers F16 (model.fp16.safetensors)
  clip_g  CLIPTextModelWithProjection (erf GELU): width 128, 2 heads of 64, 2 layers,
          MLP 128, vocab 128, 77 positions, projection 128 (square, as bigG's);
          diffusers BF16 (model.safetensors)
Head dims are 64 (SDXL's), so a single file's inferred heads (width / 64, one head
when narrower) are the true ones. Token ids: BOS = vocab - 2, EOS = vocab - 1 (the
largest id, as 49407 is in the real vocab: the pooled row is then both the first EOS
and SGM's argmax), eos_token_id = vocab - 1 in the configs.
Files (tests/data/text/):
  text_encoder/{config.json, model.fp16.safetensors}      diffusers layout, CLIP-L
  text_encoder_2/{config.json, model.safetensors}         diffusers layout, bigG
  sgm.safetensors   both encoders as an SGM single file, F16:
                    conditioner.embedders.0.transformer.<HF name> (+ position_ids I64)
                    conditioner.embedders.1.model.<OpenCLIP name> (in_proj fused q;k;v,
                    text_projection = P with pooled = x @ P, + logit_scale F32)
  io.safetensors    ids_l, ids_g [3][77] I32 (sequence 0: 10 tokens, 1: 75 tokens
                    (full), 2: the empty prompt; CLIP-L pads with EOS, bigG with 0);
                    hidden_l [3][77][64] = hidden_states[-2] of CLIP-L (after 2 of 3
                    layers), pooled_l [3][64] = its pooler_output (final LN at EOS);
                    hidden_g [3][77][128] = hidden_states[-2] of bigG (after 1 of 2),
                    pooled_g [3][128] = text_embeds; time_ids [6] (orig h, w, crop
                    top, left, target h, w) and time_embeds [6*256] = diffusers'
                    Timesteps(256, flip_sin_to_cos=True, shift 0) of them, flattened
                    (what SDXL's add_time_proj makes of the time ids).
The SDXL conditioning of a prompt is then context = [hidden_l | hidden_g] per token
and y = [pooled_g | time_embeds] (diffusers' encode_prompt + _get_add_time_ids).

Weights: embeddings 0.5 N(0,1); linear weights N(0, 1/fan_in); biases 0.1 N; LayerNorm
gammas 1 + 0.2 N, betas 0.2 N (seeded); rounded to bf16 precision with |w| < 2^-14
flushed to 0, so the F16, BF16 and F32 forms hold the same values and one set of
goldens serves both layouts. Goldens: a float64 forward of those weights (stored as
float32); transformers in float32 is printed against it (the float32 noise floor). The
C side must meet rel L2 <= 1e-4 per tensor.

Checks made on the way (asserts): the SGM file's bigG, loaded into open_clip's
TextTransformer (strict names), run the way SGM's FrozenOpenCLIPEmbedder2 does
(penultimate = the input of the last resblock; pooled = ln_final(last)[argmax ids] @
text_projection), gives HF's hidden_states[-2] and text_embeds (float64, 1e-12); the
files reload to the same tensors; the mapping reproduces every SGM name and shape of
SDXL base 1.0's text encoders (/work/shared/data/sdxl_base_1.0_names.json) on
SDXL-sized configs built on the meta device. It prints how much typical slips move
the outputs (each must exceed the tolerance): quick GELU <-> GELU, no causal mask, the
last layer instead of the penultimate, pooled at the last token, the projection
untransposed, k and q swapped in the fused in_proj.
"""
import argparse
import json
import math
import os
import shutil
import sys
import tempfile

import numpy as np
import safetensors
import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES_JSON = "/work/shared/data/sdxl_base_1.0_names.json"
SGM_L = "conditioner.embedders.0.transformer."
SGM_G = "conditioner.embedders.1.model."
TOL = 1e-4
T = 77

ENCODERS = {
    "clip_l": dict(seed=4004, folder="text_encoder", file="model.fp16.safetensors",
                   dtype=torch.float16, cls=CLIPTextModel,
                   cfg=dict(vocab_size=128, hidden_size=64, intermediate_size=128,
                            num_hidden_layers=3, num_attention_heads=1, hidden_act="quick_gelu",
                            projection_dim=64)),
    "clip_g": dict(seed=5005, folder="text_encoder_2", file="model.safetensors",
                   dtype=torch.bfloat16, cls=CLIPTextModelWithProjection,
                   cfg=dict(vocab_size=128, hidden_size=128, intermediate_size=128,
                            num_hidden_layers=2, num_attention_heads=2, hidden_act="gelu",
                            projection_dim=128)),
}
TIME_IDS = [1024, 768, 16, 32, 896, 1152]


def make_config(c):
    v = c["vocab_size"]
    return CLIPTextConfig(max_position_embeddings=T, layer_norm_eps=1e-5, bos_token_id=v - 2,
                          eos_token_id=v - 1, pad_token_id=v - 1, attn_implementation="sdpa",
                          **c)


def text_model(m):
    """The transformer of either class (transformers 5's CLIPTextModel is itself the
    text transformer; CLIPTextModelWithProjection holds it as .text_model)."""
    return m.text_model if hasattr(m, "text_model") else m


def file_state_dict(m):
    """The model's tensors under the names checkpoints use (text_model.*,
    text_projection.weight), without position_ids."""
    out = {}
    for k, v in m.state_dict().items():
        if k.endswith("position_ids"):
            continue
        if not k.startswith("text_model.") and k != "text_projection.weight":
            k = "text_model." + k
        out[k] = v.detach().clone()
    return out


def round_bf16(w):
    """Round to bf16 precision, flush |w| < 2^-14 to 0: then F16 and BF16 hold it exactly."""
    r = w.to(torch.bfloat16).to(torch.float32)
    r[r.abs() < 2.0 ** -14] = 0.0
    assert torch.equal(r.to(torch.float16).to(torch.float32), r)
    assert torch.equal(r.to(torch.bfloat16).to(torch.float32), r)
    return r


@torch.no_grad()
def init_weights(model, seed):
    g = torch.Generator().manual_seed(seed)
    for name, p in sorted(model.named_parameters()):
        z = torch.randn(p.shape, generator=g, dtype=torch.float32)
        kind = name.rsplit(".", 1)[1]
        if "embedding" in name:
            v = 0.5 * z
        elif "norm" in name:
            v = 1.0 + 0.2 * z if kind == "weight" else 0.2 * z
        elif kind == "bias":
            v = 0.1 * z
        else:
            v = z / math.sqrt(p.shape[1])
        p.copy_(round_bf16(v))


# ------------------------------------------------------------------ layouts
def sgm_names_g(sd, layers):
    """diffusers (HF) state dict of bigG -> OpenCLIP names (SGM file), fused in_proj."""
    out = {}
    out["token_embedding.weight"] = sd["text_model.embeddings.token_embedding.weight"]
    out["positional_embedding"] = sd["text_model.embeddings.position_embedding.weight"]
    for i in range(layers):
        h, o = f"text_model.encoder.layers.{i}.", f"transformer.resblocks.{i}."
        out[o + "attn.in_proj_weight"] = torch.cat(
            [sd[h + f"self_attn.{p}_proj.weight"] for p in "qkv"], 0)
        out[o + "attn.in_proj_bias"] = torch.cat(
            [sd[h + f"self_attn.{p}_proj.bias"] for p in "qkv"], 0)
        pairs = {"self_attn.out_proj": "attn.out_proj", "layer_norm1": "ln_1",
                 "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}
        for a, b in pairs.items():
            for k in ("weight", "bias"):
                out[o + f"{b}.{k}"] = sd[h + f"{a}.{k}"]
    out["ln_final.weight"] = sd["text_model.final_layer_norm.weight"]
    out["ln_final.bias"] = sd["text_model.final_layer_norm.bias"]
    out["text_projection"] = sd["text_projection.weight"].t().contiguous()
    return out


def check_sdxl_names(path):
    """The mapping above reproduces SDXL base 1.0's SGM names and shapes."""
    names = json.load(open(path))
    for which, cls, width, layers, heads, mlp, proj in (
            ("text_encoder", CLIPTextModel, 768, 12, 12, 3072, 768),
            ("text_encoder_2", CLIPTextModelWithProjection, 1280, 32, 20, 5120, 1280)):
        cfg = CLIPTextConfig(vocab_size=49408, hidden_size=width, num_hidden_layers=layers,
                             num_attention_heads=heads, intermediate_size=mlp,
                             projection_dim=proj, max_position_embeddings=T)
        with torch.device("meta"):
            model = cls(cfg)
        sd = file_state_dict(model)
        want = names[which]
        assert set(sd) == set(want), (which, set(sd) ^ set(want))
        for k, v in sd.items():
            assert list(v.shape) == want[k][1], (k, v.shape, want[k])
        if which == "text_encoder":
            for k in sd:
                assert want[k][0] == SGM_L + k, (k, want[k][0])
        else:
            sgm = sgm_names_g({k: torch.empty(v.shape) for k, v in sd.items()}, layers)
            listed = {}
            for k, (s, shape) in want.items():
                base = s.split("[")[0]
                listed.setdefault(base, []).append(shape)
            assert set(SGM_G + k for k in sgm) == set(listed), set(SGM_G + k for k in sgm) ^ set(listed)
            for k, v in sgm.items():
                shapes = listed[SGM_G + k]
                if len(shapes) == 3:  # q, k, v thirds of the fused tensor
                    assert list(v.shape) == [3 * shapes[0][0]] + shapes[0][1:], k
                elif k == "text_projection":
                    assert list(v.shape) == shapes[0][::-1], k
                else:
                    assert list(v.shape) == shapes[0], k
    print("the SGM mapping reproduces SDXL base 1.0's text encoder names and shapes")


# ------------------------------------------------------------------ inputs
def make_ids(vocab, pad, seed):
    g = torch.Generator().manual_seed(seed)
    bos, eos = vocab - 2, vocab - 1
    ids = torch.full((3, T), pad, dtype=torch.int64)
    for s, n in enumerate((10, 75, 0)):
        ids[s, 0] = bos
        ids[s, 1:1 + n] = torch.randint(0, vocab - 2, (n,), generator=g)
        ids[s, 1 + n] = eos
    return ids


def sgm_forward_g(tt, ids):
    """SGM FrozenOpenCLIPEmbedder2 (legacy=False) on open_clip's TextTransformer."""
    x = tt.token_embedding(ids) + tt.positional_embedding
    blocks = tt.transformer.resblocks
    for i, r in enumerate(blocks):
        if i == len(blocks) - 1:
            penultimate = x
        x = r(x, attn_mask=tt.attn_mask)
    o = tt.ln_final(x)
    pooled = o[torch.arange(o.shape[0]), ids.argmax(dim=-1)] @ tt.text_projection
    return penultimate, pooled


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


# ------------------------------------------------------------------ slips
def slips(name, model, ids, h_ref, p_ref):
    """How far typical mistakes move the outputs (float64)."""
    out = {}
    m = model
    cfg = m.config
    with torch.no_grad():
        act = cfg.hidden_act
        cfg.hidden_act = "gelu" if act == "quick_gelu" else "quick_gelu"
        from transformers.activations import ACT2FN
        for layer in text_model(m).encoder.layers:
            layer.mlp.activation_fn = ACT2FN[cfg.hidden_act]
        r = m(ids, output_hidden_states=True)
        out["quick GELU <-> GELU"] = rel(r.hidden_states[-2], h_ref)
        for layer in text_model(m).encoder.layers:
            layer.mlp.activation_fn = ACT2FN[act]
        cfg.hidden_act = act
        r = m(ids, output_hidden_states=True)
        out["last layer, not penultimate"] = rel(r.hidden_states[-1], h_ref)
        out["first layer only" if len(r.hidden_states) > 3 else "embeddings only"] = rel(
            r.hidden_states[1] if len(r.hidden_states) > 3 else r.hidden_states[0], h_ref)
        # no causal mask: the same forward with a full mask through the eager path
        emb = text_model(m).embeddings(input_ids=ids)
        x = emb
        hs = [x]
        for layer in text_model(m).encoder.layers:
            x = layer(x, attention_mask=None)
            x = x[0] if isinstance(x, tuple) else x
            hs.append(x)
        out["no causal mask"] = rel(hs[-2], h_ref)
        last = text_model(m).final_layer_norm(r.hidden_states[-1])
        pooled_last = last[:, -1]
        if hasattr(m, "text_projection"):
            w = m.text_projection.weight
            out["pooled at the last token"] = rel(pooled_last @ w.t(), p_ref)
            eos_rows = last[torch.arange(3), ids.argmax(-1)]
            out["projection not transposed"] = rel(eos_rows @ w, p_ref)
            # k and q swapped when splitting the fused in_proj
            l0 = text_model(m).encoder.layers[0].self_attn
            qw, kw = l0.q_proj.weight.clone(), l0.k_proj.weight.clone()
            qb, kb = l0.q_proj.bias.clone(), l0.k_proj.bias.clone()
            l0.q_proj.weight.copy_(kw); l0.k_proj.weight.copy_(qw)
            l0.q_proj.bias.copy_(kb); l0.k_proj.bias.copy_(qb)
            r2 = m(ids, output_hidden_states=True)
            out["q and k swapped (layer 0)"] = rel(r2.hidden_states[-2], h_ref)
            l0.q_proj.weight.copy_(qw); l0.k_proj.weight.copy_(kw)
            l0.q_proj.bias.copy_(qb); l0.k_proj.bias.copy_(kb)
        else:
            out["pooled at the last token"] = rel(pooled_last, p_ref)
    for k, v in out.items():
        print(f"  slip {name}: {k:32s} moves the output by {v:.2e} (rel L2)")
        assert v > 10 * TOL, (name, k, v)


# ------------------------------------------------------------------ the files
def timestep_embedding(t, dim=256):
    """diffusers Timesteps(dim, flip_sin_to_cos=True, downscale_freq_shift=0) (float32)."""
    from diffusers.models.embeddings import get_timestep_embedding
    return get_timestep_embedding(t, dim, flip_sin_to_cos=True, downscale_freq_shift=0)


def write_all(out):
    io = {}
    sgm = {}
    models = {}
    for name, e in ENCODERS.items():
        cfg = make_config(e["cfg"])
        model = e["cls"](cfg).eval()
        init_weights(model, e["seed"])
        models[name] = model
        d = os.path.join(out, e["folder"])
        os.makedirs(d, exist_ok=True)
        model.config.architectures = [e["cls"].__name__]
        model.config.to_json_file(os.path.join(d, "config.json"))
        sd = file_state_dict(model)
        save_file({k: v.to(e["dtype"]).contiguous() for k, v in sd.items()},
                  os.path.join(d, e["file"]))
        if name == "clip_l":
            for k, v in sd.items():
                sgm[SGM_L + k] = v
            sgm[SGM_L + "text_model.embeddings.position_ids"] = torch.arange(T).reshape(1, T)
        else:
            for k, v in sgm_names_g(sd, cfg.num_hidden_layers).items():
                sgm[SGM_G + k] = v
            sgm[SGM_G + "logit_scale"] = torch.tensor(math.log(1 / 0.07))
        vocab = cfg.vocab_size
        ids = make_ids(vocab, vocab - 1 if name == "clip_l" else 0, e["seed"] + 1)
        suffix = name[-1]
        io["ids_" + suffix] = ids.to(torch.int32)
        m64 = e["cls"](cfg).eval()
        m64.load_state_dict(model.state_dict())
        m64 = m64.double()
        with torch.no_grad():
            r = m64(ids, output_hidden_states=True)
            r32 = model(ids, output_hidden_states=True)
        assert len(r.hidden_states) == cfg.num_hidden_layers + 1
        pooled = r.text_embeds if hasattr(r, "text_embeds") else r.pooler_output
        pooled32 = r32.text_embeds if hasattr(r32, "text_embeds") else r32.pooler_output
        io["hidden_" + suffix] = r.hidden_states[-2]
        io["pooled_" + suffix] = pooled
        print(f"{name}: transformers float32 vs float64: hidden {rel(r32.hidden_states[-2], r.hidden_states[-2]):.2e}, "
              f"pooled {rel(pooled32, pooled):.2e}; |hidden| rms {r.hidden_states[-2].pow(2).mean().sqrt():.3f}")
        slips(name, m64, ids, r.hidden_states[-2], pooled)
        if name == "clip_g":
            import open_clip
            c = e["cfg"]
            tt = open_clip.transformer.TextTransformer(
                context_length=T, vocab_size=c["vocab_size"], width=c["hidden_size"],
                heads=c["num_attention_heads"], layers=c["num_hidden_layers"],
                mlp_ratio=c["intermediate_size"] / c["hidden_size"],
                output_dim=c["projection_dim"], act_layer=torch.nn.GELU, pool_type="argmax")
            oc = {k[len(SGM_G):]: v for k, v in sgm.items()
                  if k.startswith(SGM_G) and not k.endswith("logit_scale")}
            tt.load_state_dict(oc, strict=True)
            tt = tt.double().eval()
            with torch.no_grad():
                pen, pool = sgm_forward_g(tt, ids)
            assert rel(pen, r.hidden_states[-2]) < 1e-12, rel(pen, r.hidden_states[-2])
            assert rel(pool, pooled) < 1e-12, rel(pool, pooled)
            print("clip_g: open_clip on the SGM names (SGM's forward) = transformers on the "
                  "diffusers names")
    save_file({k: (v.to(torch.float16) if v.is_floating_point() and v.ndim else v).contiguous()
               for k, v in sgm.items()}, os.path.join(out, "sgm.safetensors"))
    t = torch.tensor(TIME_IDS, dtype=torch.float32)
    io["time_ids"] = t
    io["time_embeds"] = timestep_embedding(t).reshape(-1)
    save_file({k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in io.items()},
              os.path.join(out, "io.safetensors"))

    # reload: the files hold exactly the weights
    for name, e in ENCODERS.items():
        d = os.path.join(out, e["folder"])
        w = load_file(os.path.join(d, e["file"]))
        sd = file_state_dict(models[name])
        assert set(w) == set(sd)
        for k, v in sd.items():
            assert torch.equal(w[k].float(), v), k
        m2 = e["cls"].from_pretrained(d, dtype=torch.float32,
                                      variant="fp16" if ".fp16." in e["file"] else None)
        for k, v in file_state_dict(m2).items():
            assert torch.equal(v, sd[k]), k
    s2 = load_file(os.path.join(out, "sgm.safetensors"))
    for k, v in sgm.items():
        assert torch.equal(s2[k].to(v.dtype), v), k
    print("files reload to the same weights")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "data", "text"))
    ap.add_argument("--names", default=NAMES_JSON)
    ap.add_argument("--check", action="store_true",
                    help="regenerate into a temp dir and compare with --out byte for byte")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    transformers.utils.logging.set_verbosity_error()

    check_sdxl_names(args.names)
    out = tempfile.mkdtemp() if args.check else args.out
    os.makedirs(out, exist_ok=True)
    write_all(out)
    import open_clip
    with open(os.path.join(out, "versions.json"), "w") as f:
        json.dump({"torch": torch.__version__, "transformers": transformers.__version__,
                   "open_clip": open_clip.__version__, "safetensors": safetensors.__version__,
                   "numpy": np.__version__, "python": sys.version.split()[0],
                   "script": "tools/gen_text_golden.py"}, f, indent=1)
        f.write("\n")
    if args.check:
        diff = []
        for root, _, files in os.walk(out):
            for fn in files:
                rel_path = os.path.relpath(os.path.join(root, fn), out)
                ref = os.path.join(args.out, rel_path)
                if not os.path.exists(ref) or open(ref, "rb").read() != open(
                        os.path.join(root, fn), "rb").read():
                    diff.append(rel_path)
        shutil.rmtree(out)
        print("regenerated files differ: " + ", ".join(diff) if diff
              else "regenerated files are identical to " + args.out)
        return 1 if diff else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

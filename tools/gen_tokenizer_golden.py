#!/usr/bin/env python3
"""Writes tests/data/tokenizer/golden.json: the token ids the reference
tokenizers give for a set of prompts, for tests/test_tokenizer.c.

  clip_l: transformers.CLIPTokenizer (what diffusers' SDXL pipeline uses for
          tokenizer/), padding="max_length", max_length=77, truncation=True;
  bigg:   open_clip.tokenize (what SGM's FrozenOpenCLIPEmbedder2 uses), pad 0.

Both are built from the merges file open_clip ships (no network: the HF hub's
openai/clip-vit-large-patch14 vocab.json is the same construction, written
here to a temporary folder for transformers). For each prompt the file also
holds the ids without BOS/EOS and, for prompts longer than 75 tokens, the
75-token chunks (BOS + 75 + EOS, padded) that stable-diffusion.cpp and A1111
feed the encoders.

usage: /tmp/tv/bin/python tools/gen_tokenizer_golden.py
needs: transformers, tokenizers, open_clip_torch, ftfy (pip)
"""
import gzip
import json
import os
import platform
import sys
import tempfile

import ftfy
import open_clip
import regex
import tokenizers
import transformers
from open_clip.tokenizer import bytes_to_unicode, default_bpe
from transformers import CLIPTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "tokenizer", "golden.json")
CONTEXT = 77
CHUNK = CONTEXT - 2
BOS, EOS = 49406, 49407

LONG_1 = ("a breathtaking ultra detailed matte painting of an ancient castle on a cliff above a stormy "
          "sea at dusk, dramatic volumetric lighting, god rays through heavy clouds, crashing waves, "
          "seagulls, a lone knight in silver armor walking up the winding stone path, banners "
          "fluttering in the wind, intricate gothic architecture, moss covered walls, lanterns glowing "
          "in the windows, cinematic composition, by greg rutkowski and thomas kinkade, trending on "
          "artstation, 8k, highly detailed, sharp focus")
LONG_2 = ", ".join(["masterpiece", "best quality", "1girl", "solo", "long hair", "looking at viewer",
                    "smile", "blue eyes", "blonde hair", "dress", "outdoors", "sky", "day", "cloud",
                    "tree", "blue sky", "flower", "grass", "wind", "field", "sunlight", "petals",
                    "summer", "straw hat", "white dress", "sundress", "hat ribbon", "bare shoulders",
                    "collarbone", "wide shot", "depth of field", "bokeh", "lens flare", "(sharp:1.2)",
                    "[blurry]", "8k uhd", "dslr", "soft lighting", "high quality", "film grain",
                    "Fujifilm XT3", "RAW photo", "award-winning", "hyperrealistic"] * 3)

PROMPTS = [
    "a photo of a cat",
    "Hello, world!",
    "A PHOTO of  a Cat!",
    "An astronaut riding a green horse",
    "don't stop, it's what we've got; I'm sure they'll say you'd re-do it",
    "1024x1024, 16:9 aspect, 4k UHD, 35mm f/1.8, ISO 100, 1/250s",
    "3.14159 2023-11-25 #1 100% $9.99 @user",
    "(masterpiece:1.2), [blurry], {curly}, <angled>, a|b, back\\slash, `tick`, ~tilde~, ^caret^",
    "!", "!!!", "wow! amazing!! ! ! !", "hello!world", "a sign that says \"STOP!\"",
    "",
    "   ", " \t\n\r  \u3000 ",
    "  leading and trailing spaces   and   inner   runs  ",
    "line one\nline two\r\nline three\ttabbed",
    "café crème brûlée, naïve façade, Zürich, São Paulo, señor, Dvořák",
    "Straße in München, smörgåsbord in Ærøskøbing, Œuvre, İstanbul ılık",
    "e\u0301 versus \u00e9, A\u030a versus \u00c5 (combining marks)",
    "ΟΔΟΣ ΣΑΣ Σ. Ελληνικά, Москва ночью, مرحبا بالعالم, हिन्दी, ภาษาไทย",
    "東京の夜景、新宿 — 中文提示词，한국어 프롬프트",
    "a cat 😺 with 🇯🇵 flag, 👍🏽, ❤️, 👨‍👩‍👧 family, 🤖🚀✨",
    "Tom &amp; Jerry &lt;3 &quot;cartoon&quot; &#39;classic&#39; &copy; &eacute;t&eacute; &nbsp;x",
    "&EACUTE;T&EACUTE; &AMP; &ampx &notit; &#x41;&#66; &#150; &#0; &#x85; &NotNestedLessLess;",
    "a <b>bold</b> &amp; move\nnext line &amp; more",
    "“smart quotes” and ‘single’ and ʼmodifierʼ",
    "ﬁne ﬂowers, ﬀ, ﬅ, ĳ, ŉ, Ǆ",
    "ＦＵＬＬＷＩＤＴＨ　ｔｅｘｔ！ ﾊﾝｶｸ ｶﾀｶﾅ",
    "x\u0092s y\u0093q\u0094 z\u0085",
    "\u001b[1;31mred\u001b[0m bell\u0007 bom\ufeff zero\u200bwidth",
    "<|startoftext|>a photo<|endoftext|> of <|ENDOFTEXT|> a <start_of_text>cat<END_OF_TEXT>",
    "<|endoftext|>!",
    "'S 'T 'RE 'VE 'M 'LL 'D 'ſ KELVIN K",
    "Ⅻⅻ ½ ² ٣ ① Ⓐⓐ 𝐀𝐁𝐂 ͅ ᠎ mark",
    "a " * 75,
    "a " * 76,
    LONG_1,
    LONG_2,
    "extremely " * 200 + "long",
]


def build_hf_folder(folder):
    """vocab.json + merges.txt built from open_clip's merges (open_clip's
    construction; the same ids as the hub's CLIP vocab.json)."""
    lines = gzip.open(default_bpe()).read().decode("utf-8").split("\n")
    merges = lines[1:49152 - 256 - 2 + 1]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408 and len(set(vocab)) == 49408
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")


def chunks(body, pad):
    n = max(1, (len(body) + CHUNK - 1) // CHUNK)
    out = []
    for c in range(n):
        part = body[c * CHUNK:(c + 1) * CHUNK]
        w = [BOS] + part + [EOS]
        out.append(w + [pad] * (CONTEXT - len(w)))
    return out


def main():
    with tempfile.TemporaryDirectory() as folder:
        build_hf_folder(folder)
        hf = CLIPTokenizer.from_pretrained(folder)
    oc = open_clip.tokenizer._tokenizer
    # the HF hub's well-known ids for these (e.g. transformers' CLIP docs)
    assert hf("a photo of a cat").input_ids == [BOS, 320, 1125, 539, 320, 2368, EOS]
    entries = []
    for p in PROMPTS:
        # ftfy's mojibake repair is the one ftfy step the C code leaves out
        # (tokenizer.h): no golden prompt may depend on it
        assert ftfy.fix_text(p) == ftfy.fix_text(p, fix_encoding=False), p
        l_body = hf(p, add_special_tokens=False).input_ids
        g_body = oc.encode(p)
        l_win = hf(p, padding="max_length", max_length=CONTEXT, truncation=True).input_ids
        g_win = open_clip.tokenize([p])[0].tolist()
        assert l_win == chunks(l_body, EOS)[0], p
        assert g_win == chunks(g_body, 0)[0], p
        e = {"text": p, "clip_l": l_win, "bigg": g_win, "clip_l_ids": l_body, "bigg_ids": g_body}
        if len(l_body) > CHUNK:
            e["clip_l_chunks"] = chunks(l_body, EOS)
        if len(g_body) > CHUNK:
            e["bigg_chunks"] = chunks(g_body, 0)
        entries.append(e)
    doc = {
        "about": "CLIP tokenizer goldens for tests/test_tokenizer.c, written by tools/gen_tokenizer_golden.py",
        "versions": {"python": platform.python_version(), "transformers": transformers.__version__,
                     "tokenizers": tokenizers.__version__, "open_clip": open_clip.__version__,
                     "ftfy": ftfy.__version__, "regex": regex.__version__},
        "context": CONTEXT, "bos": BOS, "eos": EOS, "pad_clip_l": EOS, "pad_bigg": 0,
        "prompts": entries,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=True, separators=(",", ":"))
        f.write("\n")
    n_long = sum(1 for e in entries if "clip_l_chunks" in e)
    differ = sum(1 for e in entries if e["clip_l_ids"] != e["bigg_ids"])
    print("wrote %s: %d prompts (%d over 75 tokens; %d where CLIP-L and bigG ids differ), %d bytes"
          % (OUT, len(entries), n_long, differ, os.path.getsize(OUT)))


if __name__ == "__main__":
    sys.exit(main())

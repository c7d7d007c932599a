#!/usr/bin/env python3
"""tools/bench_text_torch.py: the PyTorch peer of bench/bench_text.c: transformers'
CLIPTextModel (CLIP-L) / CLIPTextModelWithProjection (bigG) with random weights of SDXL's
shapes, float32, SDPA attention, on CPU, encoding n_seq x 77 tokens.

    /tmp/tv/bin/python tools/bench_text_torch.py WHICH LAYERS N_SEQ REPS [THREADS]
WHICH 0 CLIP-L, 1 bigG; LAYERS 0 = the real count (same arguments as bench_text)."""
import sys
import time

import torch
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

which, layers, n, reps = (int(a) for a in sys.argv[1:5])
torch.set_num_threads(int(sys.argv[5]) if len(sys.argv) > 5 else 2)
if which == 0:
    cfg = CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=layers or 12,
                         num_attention_heads=12, hidden_act="quick_gelu")
    cls = CLIPTextModel
else:
    cfg = CLIPTextConfig(hidden_size=1280, intermediate_size=5120, num_hidden_layers=layers or 32,
                         num_attention_heads=20, hidden_act="gelu", projection_dim=1280)
    cls = CLIPTextModelWithProjection
cfg._attn_implementation = "sdpa"
model = cls(cfg).eval()
ids = torch.randint(0, 49406, (n, 77))
ids[:, 0], ids[:, 40] = 49406, 49407
with torch.no_grad():
    for _ in range(reps):
        t = time.time()
        model(ids, output_hidden_states=True)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
              f"{n} x 77 tokens: {time.time() - t:.3f} s")

#!/usr/bin/env python3
"""The PyTorch side of bench/cuda_vs_torch.sh: the cases of bench/bench_cuda.c,
under the same names, with PyTorch on CUDA in plain FP32 (no TF32 in matmul
or cuDNN), each as diffusers runs it: convs on channels_last tensors, the VAE
downsampler as F.pad(x, (0, 1, 0, 1)) then a stride-2 padding-0 conv,
attention through F.scaled_dot_product_attention (torch picks the backend),
GroupNorm + SiLU on NCHW (torch's own layout).

Timing: one warm-up call, then `reps` calls each between two CUDA events
(GPU time, the "ms" reported) and followed by a synchronize; the host wall
time of call + synchronize is reported too ("wall_ms"), measured as
bench_cuda measures its own calls. Medians.

Needs only torch (no diffusers).
  python3 bench/cuda_vs_torch.py [--reps 5] [--json FILE] [--only SUBSTR]
  python3 bench/cuda_vs_torch.py --device cpu --small 8 --reps 1   (smoke test only)
"""
import argparse
import json
import math
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def build_cases(s):
    """The cases of bench_cuda.c. s > 1 (--small) divides the spatial sizes by
    s and token counts by s^2 (channels unchanged), for smoke tests only."""
    def sp(x):
        return max(1, x // s)

    def tk(x):
        return max(1, x // (s * s))

    cases = []

    def conv(name, n, h, w, cin, cout, k, stride=1, pad_end=0):
        cases.append(dict(name=name, kind="conv", n=n, h=sp(h), w=sp(w), cin=cin, cout=cout,
                          k=k, stride=stride, pad_end=pad_end))

    conv("unet_conv3x3_n2_128x128_320", 2, 128, 128, 320, 320, 3)
    conv("unet_conv3x3_n2_64x64_640", 2, 64, 64, 640, 640, 3)
    conv("unet_conv3x3_n2_32x32_1280", 2, 32, 32, 1280, 1280, 3)
    conv("unet_conv3x3_n2_32x32_2560to1280", 2, 32, 32, 2560, 1280, 3)
    conv("unet_conv1x1_n2_64x64_960to640", 2, 64, 64, 960, 640, 1)
    conv("vae_conv3x3_1024x1024_128", 1, 1024, 1024, 128, 128, 3)
    conv("vae_conv3x3_512x512_256", 1, 512, 512, 256, 256, 3)
    conv("vae_conv3x3_256x256_512", 1, 256, 256, 512, 512, 3)
    conv("vae_conv3x3s2_1024x1024_128", 1, 1024, 1024, 128, 128, 3, stride=2, pad_end=1)
    for name, m, k, nout in [("linear_8192x640to5120", 8192, 640, 5120),
                             ("linear_8192x2560to640", 8192, 2560, 640),
                             ("linear_2048x1280to10240", 2048, 1280, 10240)]:
        cases.append(dict(name=name, kind="linear", m=tk(m), k=k, nout=nout))
    for name, nq, nk, heads, dh in [("attn_self_4096_h10_d64", 4096, 4096, 10, 64),
                                    ("attn_self_1024_h20_d64", 1024, 1024, 20, 64),
                                    ("attn_cross_4096x77_h10_d64", 4096, 77, 10, 64),
                                    ("attn_vae_16384_h1_d512", 16384, 16384, 1, 512),
                                    ("attn_vae_65536_h1_d512", 65536, 65536, 1, 512)]:
        nk = nk if nk == 77 else tk(nk)  # the text context keeps its 77 tokens
        cases.append(dict(name=name, kind="attn", nq=tk(nq), nk=nk, heads=heads, dh=dh))
    cases.append(dict(name="groupnorm_silu_n2_128x128_320_g32", kind="groupnorm", n=2,
                      h=sp(128), w=sp(128), c=320, groups=32, eps=1e-5))
    cases.append(dict(name="groupnorm_silu_1024x1024_128_g32", kind="groupnorm", n=1,
                      h=sp(1024), w=sp(1024), c=128, groups=32, eps=1e-6))
    cases.append(dict(name="layernorm_8192x640", kind="layernorm", m=tk(8192), c=640, eps=1e-5))
    cases.append(dict(name="geglu_8192_d2560", kind="geglu", m=tk(8192), d=2560))
    cases.append(dict(name="silu_n2_128x128x320", kind="silu", count=2 * sp(128) * sp(128) * 320))
    return cases


SDPA_NAMES = {0: "math", 1: "flash", 2: "efficient", 3: "cudnn", 4: "overrideable"}


def sdpa_choice(q, k, v):
    """The backend torch's dispatcher picks for these inputs (private API:
    best effort, "?" when this torch lacks it)."""
    try:
        return SDPA_NAMES.get(int(torch._fused_sdp_choice(q, k, v)), "?")
    except Exception:  # noqa: BLE001 - informational only
        return "?"


def setup(c, dev, gen):
    """Returns (fn, work, membound, shape, note): fn() runs the op once."""
    def randn(*shape, scale=1.0):
        t = torch.randn(*shape, device=dev, dtype=torch.float32, generator=gen)
        return t * scale if scale != 1.0 else t

    kind = c["kind"]
    if kind == "conv":
        n, h, w, cin, cout, k, stride = c["n"], c["h"], c["w"], c["cin"], c["cout"], c["k"], c["stride"]
        fan_in = cin * k * k
        x = randn(n, cin, h, w).contiguous(memory_format=torch.channels_last)
        wt = randn(cout, cin, k, k, scale=1 / math.sqrt(fan_in)).contiguous(
            memory_format=torch.channels_last)
        b = randn(cout, scale=0.1)
        if c["pad_end"]:
            def fn():
                return F.conv2d(F.pad(x, (0, 1, 0, 1)), wt, b, stride=stride, padding=0)
            oh = (h + 1 - k) // stride + 1
            ow = (w + 1 - k) // stride + 1
        else:
            pad = (k - 1) // 2

            def fn():
                return F.conv2d(x, wt, b, stride=stride, padding=pad)
            oh = (h + 2 * pad - k) // stride + 1
            ow = (w + 2 * pad - k) // stride + 1
        shape = f"{n}x{h}x{w}x{cin} -> {oh}x{ow}x{cout}" + (" s2" if stride == 2 else "")
        return fn, 2.0 * n * oh * ow * cout * fan_in, False, shape, ""
    if kind == "linear":
        m, k, nout = c["m"], c["k"], c["nout"]
        x = randn(m, k)
        wt = randn(nout, k, scale=1 / math.sqrt(k))
        b = randn(nout, scale=0.1)
        return (lambda: F.linear(x, wt, b)), 2.0 * m * k * nout, False, f"{m}x{k} -> {nout}", ""
    if kind == "attn":
        nq, nk, heads, dh = c["nq"], c["nk"], c["heads"], c["dh"]
        # diffusers' layout: [b, n, heads*dh] viewed as [b, heads, n, dh] (a transpose, no copy)
        q = randn(1, nq, heads, dh).transpose(1, 2)
        k = randn(1, nk, heads, dh).transpose(1, 2)
        v = randn(1, nk, heads, dh).transpose(1, 2)
        backend = sdpa_choice(q, k, v)
        return ((lambda: F.scaled_dot_product_attention(q, k, v)),
                4.0 * nq * nk * dh * heads, False, f"q {nq} k {nk}, {heads} x {dh}",
                "sdpa=" + backend)
    if kind == "groupnorm":
        n, h, w, ch, groups, eps = c["n"], c["h"], c["w"], c["c"], c["groups"], c["eps"]
        x = randn(n, ch, h, w)  # NCHW, torch's layout for group_norm
        gamma, beta = randn(ch), randn(ch)
        return ((lambda: F.silu(F.group_norm(x, groups, gamma, beta, eps))),
                3.0 * x.numel() * 4, True, f"{n}x{h}x{w}x{ch}, {groups} groups", "")
    if kind == "layernorm":
        m, ch, eps = c["m"], c["c"], c["eps"]
        x = randn(m, ch)
        gamma, beta = randn(ch), randn(ch)
        return ((lambda: F.layer_norm(x, (ch,), gamma, beta, eps)), 2.0 * x.numel() * 4, True,
                f"{m} x {ch}", "")
    if kind == "geglu":
        m, d = c["m"], c["d"]
        x = randn(m, 2 * d)
        return ((lambda: x[:, :d] * F.gelu(x[:, d:])), 3.0 * m * d * 4, True,
                f"{m} x {2 * d} -> {d}", "")
    if kind == "silu":
        x = randn(c["count"])
        return (lambda: F.silu(x)), 2.0 * x.numel() * 4, True, f"{x.numel()}", ""
    raise ValueError(f"unknown kind {kind}")


def time_op(fn, reps, dev):
    """Median GPU ms (events) and median wall ms (call + synchronize)."""
    cuda = dev.type == "cuda"
    fn()  # warm-up: cuDNN autotuning, workspace allocation
    if cuda:
        torch.cuda.synchronize()
    gpu, wall = [], []
    for _ in range(reps):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            t0 = time.perf_counter()
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            wall.append((time.perf_counter() - t0) * 1e3)
            gpu.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            wall.append((time.perf_counter() - t0) * 1e3)
            gpu.append(wall[-1])
    return statistics.median(gpu), statistics.median(wall)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", help="write one JSON object per case (JSON lines) here")
    ap.add_argument("--device", default="cuda", help="cuda (the benchmark) or cpu (smoke test)")
    ap.add_argument("--small", type=int, default=1,
                    help="divide spatial sizes by N and token counts by N^2 (smoke test only)")
    ap.add_argument("--only", help="run only the cases whose name contains this")
    args = ap.parse_args()
    if args.reps < 1 or args.small < 1:
        ap.error("--reps and --small must be >= 1")

    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("cuda_vs_torch: no CUDA device visible to torch", file=sys.stderr)
        return 1
    # Plain FP32 on both sides: no TF32 in cuBLAS or cuDNN.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    # The peer at its best: cuDNN may autotune its conv algorithm (in the warm-up).
    torch.backends.cudnn.benchmark = True

    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    print(f"cuda_vs_torch: torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN "
          f"{torch.backends.cudnn.version()}) on {name}, FP32, median of {args.reps} after 1 warm-up"
          + (f", SMALL /{args.small}" if args.small > 1 else ""))
    print(f"  allow_tf32: matmul {torch.backends.cuda.matmul.allow_tf32}, cudnn "
          f"{torch.backends.cudnn.allow_tf32}; cudnn.benchmark {torch.backends.cudnn.benchmark}")
    enabled = []
    for label, query in [("flash", "flash_sdp_enabled"), ("efficient", "mem_efficient_sdp_enabled"),
                         ("math", "math_sdp_enabled"), ("cudnn", "cudnn_sdp_enabled")]:
        f = getattr(torch.backends.cuda, query, None)
        if f is not None and f():
            enabled.append(label)
    print(f"  SDPA backends enabled: {', '.join(enabled)} (flash and cudnn take no FP32 inputs)")

    out = open(args.json, "w") if args.json else None
    gen = torch.Generator(device=dev)
    gen.manual_seed(1234)
    failures = 0
    print(f"{'case':34s} {'shape':32s} {'ms':>10s} {'wall ms':>10s} {'rate':>10s}")
    sys.stdout.flush()
    for c in build_cases(args.small):
        if args.only and args.only not in c["name"]:
            continue
        rec = {"case": c["name"]}
        try:
            fn, work, membound, shape, note = setup(c, dev, gen)
            ms, wall_ms = time_op(fn, args.reps, dev)
            rate = work / (ms * 1e-3) * 1e-9
            unit = "GB/s" if membound else "GFLOP/s"
            rec.update(shape=shape, ms=round(ms, 6), wall_ms=round(wall_ms, 6),
                       gflops=None if membound else round(rate, 3), reps=args.reps)
            if membound:
                rec["gbps"] = round(rate, 3)
            if note:
                rec["note"] = note
            print(f"{c['name']:34s} {shape:32s} {ms:10.3f} {wall_ms:10.3f} {rate:10.1f} {unit} {note}")
        except (RuntimeError, torch.cuda.OutOfMemoryError) as e:  # keep going: report the rest
            failures += 1
            msg = str(e).split("\n")[0]
            rec.update(ms=None, gflops=None, error=msg)
            print(f"{c['name']:34s} FAILED: {msg}")
        sys.stdout.flush()
        if out:
            out.write(json.dumps(rec) + "\n")
            out.flush()
        fn = None  # free the case's tensors before the next one
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    if out:
        out.close()
    if failures:
        print(f"cuda_vs_torch: {failures} case(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

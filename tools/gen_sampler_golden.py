#!/usr/bin/env python3
"""tools/gen_sampler_golden.py: golden schedules and trajectories for the C
sampler (tests/data/sampler/golden.safetensors), made with diffusers'
EulerDiscreteScheduler and DDIMScheduler built from SDXL base 1.0's
scheduler_config.json (SCHEDULER_CONFIG below, copied from the checkpoint).

Run (from the repository root; about a second):
    /tmp/tv/bin/python tools/gen_sampler_golden.py           # writes tests/data/sampler/
    /tmp/tv/bin/python tools/gen_sampler_golden.py --check   # regenerate in memory, compare

Tensors (all F32 unless said; NCHW as diffusers holds them):
  alphas_cumprod [1000]                       scheduler.alphas_cumprod (same for both)
  betas [1000]                                scheduler.betas
  euler.<S>.timesteps [S] (I64)               S in STEPS
  euler.<S>.sigmas [S+1]                      scheduler.sigmas after set_timesteps(S)
  euler.<S>.init_sigma [1]                    scheduler.init_noise_sigma
  ddim.<S>.timesteps [S] (I64)
  ddim.<S>.alpha_prev [S]                     alphas_cumprod at t - 1000 // S (or
                                              final_alpha_cumprod), what step() uses
  noise [1,4,8,12]                            a fixed N(0,1) draw
  eps [20,1,4,8,12]                           the model outputs fed to step i
  euler.traj.x0 [1,4,8,12]                    noise * init_noise_sigma (the pipeline's start)
  euler.traj.input [20,1,4,8,12]              scale_model_input(x_i, t_i)
  euler.traj.x [20,1,4,8,12]                  x_{i+1} = step(eps_i, t_i, x_i).prev_sample
  ddim.traj.x [20,1,4,8,12]                   the same for DDIM (x_0 = noise, init sigma 1,
                                              scale_model_input is the identity)
The trajectory uses TRAJ_STEPS (20) steps. Metadata: versions of torch,
diffusers and numpy, the CPU (torch's float32 sqrt is MKL's vsSqrt, not
correctly rounded on every CPU: see tests/data/sampler/README.md).
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

import diffusers
from diffusers import DDIMScheduler, EulerDiscreteScheduler

SCHEDULER_CONFIG = {
    "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000, "prediction_type": "epsilon", "timestep_spacing": "leading",
    "steps_offset": 1, "set_alpha_to_one": False, "clip_sample": False,
    "interpolation_type": "linear", "use_karras_sigmas": False, "sample_max_value": 1.0,
    "skip_prk_steps": True,
}
STEPS = [1, 4, 20, 50]
TRAJ_STEPS = 20
SHAPE = (1, 4, 8, 12)
SEED = 20241213

OUT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "sampler"))


def make_schedulers():
    import warnings
    with warnings.catch_warnings():
        # the SDXL config holds keys each class does not use (clip_sample for
        # Euler, interpolation_type for DDIM): diffusers only warns about them
        warnings.simplefilter("ignore")
        euler = EulerDiscreteScheduler.from_config(SCHEDULER_CONFIG)
        ddim = DDIMScheduler.from_config(SCHEDULER_CONFIG)
    return euler, ddim


def generate():
    out = {}
    euler, ddim = make_schedulers()
    out["alphas_cumprod"] = euler.alphas_cumprod.numpy().astype(np.float32)
    out["betas"] = euler.betas.numpy().astype(np.float32)
    assert np.array_equal(euler.alphas_cumprod.numpy(), ddim.alphas_cumprod.numpy())
    for s in STEPS:
        euler.set_timesteps(s)
        out[f"euler.{s}.timesteps"] = euler.timesteps.numpy().astype(np.int64)
        out[f"euler.{s}.sigmas"] = euler.sigmas.numpy().astype(np.float32)
        out[f"euler.{s}.init_sigma"] = np.array([float(euler.init_noise_sigma)], dtype=np.float32)
        ddim.set_timesteps(s)
        ts = ddim.timesteps.numpy().astype(np.int64)
        out[f"ddim.{s}.timesteps"] = ts
        ratio = ddim.config.num_train_timesteps // s
        ap = [ddim.alphas_cumprod[t - ratio] if t - ratio >= 0 else ddim.final_alpha_cumprod for t in ts]
        out[f"ddim.{s}.alpha_prev"] = np.array([float(a) for a in ap], dtype=np.float32)

    g = torch.Generator().manual_seed(SEED)
    noise = torch.randn(SHAPE, generator=g, dtype=torch.float32)
    eps = torch.randn((TRAJ_STEPS,) + SHAPE, generator=g, dtype=torch.float32)
    out["noise"] = noise.numpy()
    out["eps"] = eps.numpy()

    # Euler, as StableDiffusionXLPipeline runs it (no CFG: eps stands for the guided output)
    euler.set_timesteps(TRAJ_STEPS)
    x = noise * euler.init_noise_sigma
    out["euler.traj.x0"] = x.numpy().copy()
    inputs, xs = [], []
    for i, t in enumerate(euler.timesteps):
        inputs.append(euler.scale_model_input(x, t).numpy().copy())
        x = euler.step(eps[i], t, x, return_dict=False)[0]
        xs.append(x.numpy().copy())
    out["euler.traj.input"] = np.stack(inputs)
    out["euler.traj.x"] = np.stack(xs)

    ddim.set_timesteps(TRAJ_STEPS)
    x = noise * ddim.init_noise_sigma
    xs = []
    for i, t in enumerate(ddim.timesteps):
        assert torch.equal(ddim.scale_model_input(x, t), x)
        x = ddim.step(eps[i], t, x, eta=0.0, return_dict=False)[0]
        xs.append(x.numpy().copy())
    out["ddim.traj.x"] = np.stack(xs)
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def versions():
    # the CPU matters: torch's CPU sqrt is MKL's vsSqrt, whose last bit
    # depends on the machine (tests/data/sampler/README.md)
    return {"cpu": cpu_model(), "torch": torch.__version__, "diffusers": diffusers.__version__, "numpy": np.__version__,
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "scheduler_config": json.dumps(SCHEDULER_CONFIG, sort_keys=True)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="regenerate and compare with the committed file")
    args = ap.parse_args()
    tensors = generate()
    path = os.path.join(OUT, "golden.safetensors")
    if args.check:
        old = load_file(path)
        bad = [k for k in tensors if k not in old or not np.array_equal(old[k], tensors[k])]
        bad += [k for k in old if k not in tensors]
        if bad:
            print("differs:", ", ".join(sorted(bad)))
            sys.exit(1)
        print(f"{path}: identical ({len(tensors)} tensors)")
        return
    os.makedirs(OUT, exist_ok=True)
    save_file(tensors, path, metadata=versions())
    print(f"wrote {path}: {len(tensors)} tensors, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# The C UNet against PyTorch CPU (diffusers' UNet2DConditionModel) on the SAME
# weights, the same latent, batch 2, the same thread count, in one run; prints
# both times and the ratio (torch ms / C ms: above 1 means C is faster).
#   bench/unet_vs_torch.sh [sdxl|nonsquare|deep|heads] [LATENT] [THREADS]
# Needs a Python with torch + diffusers (PYTHON, default /tmp/tv/bin/python)
# and the build in build/ (or $FS_BUILD). SDXL: ~5 GB of F16 weights written once to
# $FS_BENCH_DIR (default /tmp/fs_bench); each side holds ~10 GB of f32
# weights; they run one after the other, never at the same time.
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-nonsquare}
latent=${2:-64}
threads=${3:-$(nproc)}
py=${PYTHON:-/tmp/tv/bin/python}
dir=${FS_BENCH_DIR:-/tmp/fs_bench}/$config
if [ ! -f "$dir/diffusion_pytorch_model.fp16.safetensors" ]; then
  "$py" tools/make_random_unet.py --config "$config" --out "$dir"
fi
c_out=$(FS_THREADS=$threads ${FS_BUILD:-build}/bench/bench_unet --model "$dir" --latent "$latent" 3)
echo "$c_out"
t_out=$("$py" tools/bench_unet_torch.py --config "$dir/config.json" \
        --weights "$dir/diffusion_pytorch_model.fp16.safetensors" \
        --latent "${latent}x${latent}" --threads "$threads" --iters 3 --force)
echo "$t_out"
c_ms=$(echo "$c_out" | sed -n 's/.*time per eval: best \([0-9.]*\) ms.*/\1/p')
t_ms=$(echo "$t_out" | sed -n 's/.*ms\/eval best \([0-9.]*\).*/\1/p')
echo "unet_vs_torch: $config latent ${latent}x${latent} batch 2, $threads threads:" \
     "C ${c_ms} ms, PyTorch ${t_ms} ms, ratio (PyTorch / C) $(awk -v t="$t_ms" -v c="$c_ms" 'BEGIN { printf "%.2f", t / c }')"

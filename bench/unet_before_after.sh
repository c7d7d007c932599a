#!/usr/bin/env bash
# Two builds of the C UNet (before and after a change) and PyTorch CPU
# (diffusers' UNet2DConditionModel) on the SAME weights and latent, batch 2,
# the same threads, in interleaved rounds of one run; prints each round and
# the median ratios PyTorch / C for both builds (above 1: C is faster) and
# after / before. For a change that must not cost speed (a refactor).
#   bench/unet_before_after.sh OLD_BUILD NEW_BUILD [sdxl|nonsquare|deep|heads] [LATENT] [THREADS] [ROUNDS]
# Needs a Python with torch + diffusers (PYTHON, default /tmp/tv/bin/python).
# Weights: tools/make_random_unet.py into $FS_BENCH_DIR/CONFIG (default /tmp/fs_bench).
set -euo pipefail
cd "$(dirname "$0")/.."
old=$1 new=$2
config=${3:-sdxl}
latent=${4:-32}
threads=${5:-$(nproc)}
rounds=${6:-3}
py=${PYTHON:-/tmp/tv/bin/python}
dir=${FS_BENCH_DIR:-/tmp/fs_bench}/$config
[ -f "$dir/diffusion_pytorch_model.fp16.safetensors" ] ||
  "$py" tools/make_random_unet.py --config "$config" --out "$dir"
c_ms() {
  FS_THREADS=$threads "$1/bench/bench_unet" --model "$dir" --latent "$latent" 2 |
    sed -n 's/.*time per eval: best \([0-9.]*\) ms.*/\1/p'
}
t_ms() {
  "$py" tools/bench_unet_torch.py --config "$dir/config.json" \
    --weights "$dir/diffusion_pytorch_model.fp16.safetensors" \
    --latent "${latent}x${latent}" --threads "$threads" --iters 2 --force |
    sed -n 's/.*ms\/eval best \([0-9.]*\).*/\1/p'
}
o_all=() n_all=() t_all=()
for r in $(seq 1 "$rounds"); do
  o=$(c_ms "$old"); n=$(c_ms "$new"); t=$(t_ms)
  echo "round $r: before ${o} ms, after ${n} ms, PyTorch ${t} ms"
  o_all+=("$o") n_all+=("$n") t_all+=("$t")
done
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
mo=$(median "${o_all[@]}") mn=$(median "${n_all[@]}") mt=$(median "${t_all[@]}")
echo "unet_before_after: $config latent ${latent}x${latent} batch 2, $threads threads, $rounds rounds (medians):" \
     "before ${mo} ms, after ${mn} ms, PyTorch ${mt} ms;" \
     "PyTorch/C before $(awk -v t="$mt" -v c="$mo" 'BEGIN { printf "%.3f", t / c }')," \
     "after $(awk -v t="$mt" -v c="$mn" 'BEGIN { printf "%.3f", t / c }');" \
     "after/before time $(awk -v a="$mn" -v b="$mo" 'BEGIN { printf "%.3f", a / b }')"

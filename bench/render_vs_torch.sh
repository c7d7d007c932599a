#!/usr/bin/env bash
# A whole render (text encoders, the sampler loop, the VAE decode, the image)
# in C against diffusers' StableDiffusionXLPipeline on CPU, on the SAME weights
# (the tiny golden pipeline tests/data/render/pipe, or MODEL), the same prompt,
# size, steps and thread count, one after the other in one run. Prints both
# times and the ratio (diffusers / C: above 1 means C is faster). Model loading
# is excluded on both sides (C: the text + stages times of --stats, best of 3).
#   bench/render_vs_torch.sh [WIDTH] [HEIGHT] [STEPS] [THREADS] [MODEL]
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-512}; H=${2:-512}; STEPS=${3:-20}; T=${4:-$(nproc)}
MODEL=${5:-tests/data/render/pipe}
py=${PYTHON:-/tmp/tv/bin/python}
fs=${FS_BUILD:-build}/freescale
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
cat > "$dir/job.yaml" <<JOB
model: $(realpath "$MODEL")
prompt: "a lighthouse on a rocky coast at dawn, oil painting"
negative_prompt: "blurry, low quality"
size: [$W, $H]
steps: $STEPS
guidance: 7.5
output: $dir/out.png
JOB
best=""
for i in 1 2 3; do
  s=$(FS_THREADS=$T "$fs" render "$dir/job.yaml" --stats --progress none 2>&1 |
      sed -n 's/.*text \([0-9.]*\) s, stages \([0-9.]*\) s.*/\1 \2/p' | awk '{ print ($1 + $2) * 1000 }')
  best=$(awk -v a="$s" -v b="$best" 'BEGIN { if (b == "" || a < b) print a; else print b }')
done
echo "C freescale ${W}x${H} $STEPS steps, $T threads: render best $best ms of 3"
t_out=$("$py" tools/bench_render_torch.py --model "$MODEL" --width "$W" --height "$H" \
        --steps "$STEPS" --threads "$T" --iters 3)
echo "$t_out"
t_ms=$(echo "$t_out" | sed -n 's/.*render best \([0-9.]*\) ms.*/\1/p')
echo "render_vs_torch: ${W}x${H}, $STEPS steps, $T threads: C $best ms, diffusers $t_ms ms," \
     "ratio (diffusers / C) $(awk -v t="$t_ms" -v c="$best" 'BEGIN { printf "%.2f", t / c }')"

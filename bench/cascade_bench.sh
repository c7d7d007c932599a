#!/usr/bin/env bash
# FreeScale's cost at one final size, on one model, in one run (issue 6; the
# paper: FreeScale costs 1.14x direct inference at 4096^2, scale fusion about
# 37% of FreeScale's time):
#   direct   one stage at the final size, all steps
#   cascade  the self-cascade over STAGES (base ... final), FreeScale's defaults
#   nofusion the same cascade with scale_fusion: false
# Prints each render's time (text + stages, from --stats), the ratios
# cascade/direct and (cascade - nofusion)/cascade, and each stage's peak memory.
#   bench/cascade_bench.sh [STAGES] [STEPS] [THREADS] [MODEL]
#   STAGES default "[256, 512, 1024]" (the 1024 -> 4096 cascade scaled down 4x);
#   MODEL default: the embedded tiny model.
set -euo pipefail
cd "$(dirname "$0")/.."
STAGES=${1:-"[256, 512, 1024]"}; STEPS=${2:-50}; T=${3:-$(nproc)}; MODEL=${4:-default}
fs=${FS_BUILD:-build}/freescale
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
final=$(echo "$STAGES" | tr -d '[] ' | awk -F, '{ print $NF }')
[ "$MODEL" != default ] && MODEL=$(realpath "$MODEL")
cat > "$dir/job.yaml" <<JOB
model: $MODEL
prompt: "Astronaut on Mars during sunset"
negative_prompt: "blurry, ugly, duplicate, poorly drawn, deformed, mosaic"
seed: 123
steps: $STEPS
guidance: 7.5
stages: $STAGES
output: $dir/out.png
JOB
run() {  # name, --set arguments...
  local name=$1; shift
  FS_THREADS=$T "$fs" render "$dir/job.yaml" --stats --progress none "$@" > "$dir/$name.log" 2>&1 \
    || { cat "$dir/$name.log"; exit 1; }
  local ms
  ms=$(sed -n 's/.*text \([0-9.]*\) s, stages \([0-9.]*\) s.*/\1 \2/p' "$dir/$name.log" |
       awk '{ printf "%.0f", ($1 + $2) * 1000 }')
  echo "$ms"
}
direct=$(run direct --set "stages=[$final]") || { echo "$direct"; exit 1; }
cascade=$(run cascade) || { echo "$cascade"; exit 1; }
nofusion=$(run nofusion --set scale_fusion=false) || { echo "$nofusion"; exit 1; }
echo "cascade_bench: stages $STAGES, $STEPS steps, $T threads, model $MODEL"
echo "  direct ${final}^2:          $direct ms"
echo "  FreeScale cascade:        $cascade ms"
echo "  cascade without fusion:   $nofusion ms"
awk -v d="$direct" -v c="$cascade" -v n="$nofusion" 'BEGIN {
  printf "  FreeScale / direct: %.2f (paper at 4096^2: 1.14)\n", c / d
  printf "  scale fusion share of FreeScale time: %.0f%% (paper: about 37%%)\n", 100 * (c - n) / c }'
echo "  per-stage peaks (FreeScale cascade):"
grep "stage [0-9]:" "$dir/cascade.log"

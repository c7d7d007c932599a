#!/usr/bin/env bash
# The README's main command (after tools/setup.sh): renders the example job
# (jobs/example.yaml: the embedded default model, 512x512, 20 steps) to
# out/example.png, then the same job on 2 MPI ranks, and checks that the two
# PNGs are the same bytes. The embedded model is tiny and random: its picture
# is noise; set `model:` in the job to SDXL base 1.0 weights for a real one.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
       OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader \
       OMPI_MCA_osc=^ucx HWLOC_COMPONENTS=-x86
mkdir -p out
build/freescale validate jobs/example.yaml > /dev/null
FS_THREADS=$(nproc) build/freescale render jobs/example.yaml --set output=out/example.png --stats
FS_THREADS=1 mpirun --timeout 600 -np 2 build/freescale render jobs/example.yaml \
    --set output=out/example_2ranks.png --progress none
if cmp -s out/example.png out/example_2ranks.png; then
  echo "demo: out/example.png and out/example_2ranks.png (2 MPI ranks) are the same bytes"
else
  echo "demo: out/example.png and out/example_2ranks.png DIFFER" >&2
  exit 1
fi

#!/usr/bin/env bash
# The main command until `render` exists: runs what the engine can do today.
#  1. a GroupNorm+SiLU+conv3x3 block (64x64x320, batch 2) on 1 and on 2 MPI
#     ranks, each compared bit for bit with the whole map, with traffic;
#  2. `freescale inspect` on a small safetensors file.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
       OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader \
       OMPI_MCA_osc=^ucx HWLOC_COMPONENTS=-x86
for np in 1 2; do
  FS_THREADS=$((2 / np)) mpirun --timeout 300 -np "$np" build/freescale check --size 64 --channels 320
done
build/freescale inspect tests/fuzz/corpus/safetensors/valid_f16_bf16_meta

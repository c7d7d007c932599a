#!/usr/bin/env bash
# Everything that needs a GPU, in one call, for a lent GPU machine (the
# device tool): builds with CUDA into $BUILD (default build-gpu), runs every
# GPU test and benchmark, prints one summary line per step and exits non-zero
# when a test failed. Benchmarks against PyTorch run only where a Python with
# torch is found ($PYTHON, default python3).
#   tools/gpu_check.sh [--quick]     # --quick: tests only, no benchmarks
# Steps:
#   test_ops        every op of every backend against its reference (CUDA included)
#   test_unet_cuda  the UNet on the GPU against the diffusers goldens and the CPU
#   mpi_transport   comm's device-buffer paths at 1 and 2 ranks (both on this GPU)
#   memcheck        compute-sanitizer over test_ops' CUDA cases (when installed)
#   bench_cuda      the CUDA ops vs PyTorch CUDA (bench/cuda_vs_torch.sh)
#   bench_unet      the full SDXL UNet on the GPU at 1024^2 (random weights)
set -uo pipefail
cd "$(dirname "$0")/.."
quick=0
[ "${1:-}" = "--quick" ] && quick=1
build=${BUILD:-build-gpu}
py=${PYTHON:-python3}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader FS_TEST_DATA=$PWD/tests/data
summary=()
failed=0
step() {   # step NAME COMMAND...: runs it, logs to $build/NAME.log, records the outcome
  local name=$1; shift
  local t0=$SECONDS
  "$@" > "$build/$name.log" 2>&1
  local rc=$?
  local what="ok"
  if [ $rc -eq 77 ]; then what="skipped"; elif [ $rc -ne 0 ]; then what="FAILED (exit $rc)"; failed=1; fi
  summary+=("$(printf '%-18s %-18s %4ds  %s' "$name" "$what" $((SECONDS - t0)) "$(tail -1 "$build/$name.log")")")
}

if command -v nvidia-smi > /dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -2
else
  echo "gpu_check: no nvidia-smi here (no GPU driver): the GPU steps will skip"
fi
mkdir -p "$build"
if ! { cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release > "$build/configure.log" 2>&1 &&
       cmake --build "$build" -j"$(nproc)" > "$build/build.log" 2>&1; }; then
  echo "gpu_check: the build failed:"; tail -30 "$build/build.log" "$build/configure.log"; exit 1
fi
[ -f "$build/libfs_cuda.a" ] ||
  echo "gpu_check: warning: CMake found no CUDA (no libfs_cuda.a): the GPU steps will skip"

step test_ops "$build/tests/test_ops"
step test_unet_cuda "$build/tests/test_unet_cuda"
step mpi_transport_np1 mpirun -np 1 "$build/tests/mpi_transport"
step mpi_transport_np2 mpirun -np 2 "$build/tests/mpi_transport"
if command -v compute-sanitizer > /dev/null; then
  step memcheck compute-sanitizer --tool memcheck --error-exitcode 9 "$build/tests/test_ops"
fi
if [ $quick -eq 0 ]; then
  step bench_unet_gpu "$build/bench/bench_unet" --full --gpu --latent 128 3
  if "$py" -c "import torch; assert torch.cuda.is_available()" > /dev/null 2>&1; then
    step bench_cuda env PYTHON="$py" OUTDIR="$build/cuda_vs_torch" bench/cuda_vs_torch.sh "$build" 5
  else
    step bench_cuda "$build/bench/bench_cuda" 5
  fi
fi

echo
echo "gpu_check summary ($build; logs in $build/*.log):"
printf '  %s\n' "${summary[@]}"
exit $failed

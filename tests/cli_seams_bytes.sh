#!/bin/sh
# tests/cli_seams_bytes.sh FREESCALE: the render's bytes are pinned. Four jobs
# (the plain example, the tiny FreeScale cascade with its per-stage PNG, a
# masked non-square 2-stage cascade with fast_mode and latent upsampling, a
# DDIM render) are rendered on 1 and on 3 ranks, and every PNG must have the
# SHA-256 below: the hashes of the PNGs that the commit before the seams work
# (aa66b87) wrote. A change that moves code must leave every byte as it was;
# a change that means to alter the pictures (or the PNG's text chunks) must
# say so and update these hashes in the same commit.
set -u
FS=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
SRC=$(cd "$(dirname "$0")/.." && pwd)
# a fixed folder: the masked job's PNG holds the mask's absolute path
dir=/tmp/freescale_cli_seams_bytes
rm -rf "$dir" && mkdir -p "$dir" || { echo "FAIL: cannot make $dir"; exit 1; }
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; cat "$dir/log" 2>/dev/null | tail -20; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader OMPI_MCA_osc=^ucx HWLOC_COMPONENTS=-x86
export OPENBLAS_NUM_THREADS=1 FS_THREADS=1

cp "$SRC/jobs/example.yaml" "$SRC/jobs/freescale_tiny.yaml" "$SRC/tests/data/seams/mask.png" "$dir/"
cat > "$dir/masked.yaml" <<JOB
prompt: "a castle on a hill"
negative_prompt: "fog"
seed: 7
steps: 6
stages: [[192, 128], [384, 256]]
mask: mask.png
cosine_scale: 3.0
fast_mode: true
upsample: latent
output: masked.png
JOB
cat > "$dir/ddim.yaml" <<JOB
prompt: "a bowl of fruit"
seed: 11
steps: 8
scheduler: ddim
guidance: 5.0
size: [256, 192]
output: ddim.png
JOB

# name of the PNG, then its SHA-256
expected="
example.png 30c3378811aae506f250682659425c7120545a75623998b4211bffbcda2e33db
freescale_tiny.png 4f131b2959140df20e5ce26f6d5cee7b5dc7dc1332f9234f61f1af4604a706c5
freescale_tiny_256x256.png 102c59f7c2b137a564d2ed7329deb6edf791ab89b55376abf44676c48e83a512
masked.png e95ff3ef9a351959e3403c10c08baf4da9a0fbaa716b0887d7d346ace6ee1deb
ddim.png 1fd1484c42450e800640b316fc1e594b6a547d3654a64b837763b4f4a7495fe6
"
cd "$dir"
for np in 1 3; do
    for job in example freescale_tiny masked ddim; do
        mpirun -np $np "$FS" render $job.yaml --progress none > log 2>&1 || fail "$job on $np ranks: exit $?"
    done
    for png in example.png freescale_tiny.png freescale_tiny_256x256.png masked.png ddim.png; do
        [ -s "$png" ] || fail "$png not written on $np ranks"
        got=$(sha256sum "$png" | cut -d' ' -f1)
        want=$(echo "$expected" | awk -v n="$png" '$1 == n { print $2 }')
        [ "$got" = "$want" ] || fail "$png on $np ranks: sha256 $got, expected $want"
        mv "$png" "$png.$np"
    done
    echo "$np ranks: 5 PNGs as pinned"
done

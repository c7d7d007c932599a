#!/bin/sh
# freescale on Slurm: one MPI job, one rank per Slurm task, launched with srun.
#
#   sbatch [sbatch options] slurm/freescale.sh JOB.yaml [render options]
#   sbatch -n 8 -c 4 --mem-per-cpu=2G slurm/freescale.sh jobs/example.yaml --set steps=30
#
# The #SBATCH lines below are defaults; any option given to sbatch on the
# command line wins over them. Before any render work the script runs
# `freescale plan JOB --ranks $SLURM_NTASKS --mem <GB per rank>` and stops
# (exit 3) when the job does not fit the memory Slurm gave each rank; the plan
# in the output file names the smallest rank count that fits. slurm/README.md
# says more.
#
#SBATCH --job-name=freescale
#SBATCH --output=freescale-%j.out
#SBATCH --ntasks=4
#SBATCH --cpus-per-task=4
#SBATCH --time=02:00:00
#
# Memory: none asked by default (the cluster's default applies). Ask for it per
# CPU (--mem-per-cpu, so a rank gets it times --cpus-per-task) or per node
# (--mem, shared by the node's tasks); the plan check then uses it.
#
# GPUs: on a GPU cluster ask for one GPU per rank by removing one '#' below
# (or pass --gpus-per-task=1 to sbatch). Today the render command does not use
# the GPU yet: the UNet's CUDA path exists in the library, but `render` runs
# its ranks on the CPU, so a GPU asked for now sits idle.
##SBATCH --gpus-per-task=1
#
# No --requeue: there is no checkpoint or resume yet, so a requeued job would
# start again from step 0. Add --requeue yourself if that is what you want.
#
# Which freescale binary runs (the first that exists):
#   1. $FREESCALE, the path of the binary;
#   2. $FREESCALE_ROOT/build/freescale, FREESCALE_ROOT a checkout;
#   3. build/freescale of the checkout this script lives in (sbatch runs a
#      copy of the script from its spool folder, so the original path comes
#      from `scontrol show job`), else of $SLURM_SUBMIT_DIR (where sbatch ran);
#   4. `freescale` on PATH.
# sbatch passes your environment on to the job, so `FREESCALE=... sbatch ...`
# works. FREESCALE_MPI (default pmix) is srun's --mpi plugin.
#
# Exit status: render's (0 done, 1 failed, 130 interrupted), 3 when the plan
# says the job does not fit or cannot be cut into this many ranks, 2 for bad
# usage (no job file, job file missing, no freescale binary).

me=freescale.sh
say() { echo "$me: $*"; }
err() { echo "$me: $*" >&2; }
usage() {
    echo "usage: sbatch [sbatch options] slurm/freescale.sh JOB.yaml [render options]" >&2
    echo "       (render options: --set key=value ... --stats --progress bar|lines|none)" >&2
}

if [ $# -lt 1 ]; then
    err "no job file given"
    usage
    exit 2
fi
case $1 in
    -h|--help) usage; exit 0 ;;
    -*) err "the first argument must be the job file, not '$1'"; usage; exit 2 ;;
esac
job=$1
shift
if [ ! -f "$job" ]; then
    err "job file '$job' not found (relative paths start at $(pwd))"
    exit 2
fi

# $1 in single quotes, safe for eval (the plan gets only the --set options)
quote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

# The checkout of the original script: Command= of this job, when under Slurm.
script_root() {
    cmd=
    if [ -n "${SLURM_JOB_ID:-}" ] && command -v scontrol > /dev/null 2>&1; then
        cmd=$(scontrol show job -o "$SLURM_JOB_ID" 2> /dev/null |
              sed -n 's/.* Command=\([^ ]*\).*/\1/p')
    fi
    [ -n "$cmd" ] && [ -f "$cmd" ] || cmd=$0
    (cd "$(dirname "$cmd")/.." 2> /dev/null && pwd)
}

find_freescale() {
    if [ -n "${FREESCALE:-}" ]; then
        [ -x "$FREESCALE" ] && { echo "$FREESCALE"; return 0; }
        err "FREESCALE=$FREESCALE is not an executable file"
        return 1
    fi
    if [ -n "${FREESCALE_ROOT:-}" ]; then
        [ -x "$FREESCALE_ROOT/build/freescale" ] && { echo "$FREESCALE_ROOT/build/freescale"; return 0; }
        err "FREESCALE_ROOT=$FREESCALE_ROOT has no build/freescale (build it: tools/setup.sh)"
        return 1
    fi
    for root in "$(script_root)" "${SLURM_SUBMIT_DIR:-}"; do
        [ -n "$root" ] && [ -x "$root/build/freescale" ] && { echo "$root/build/freescale"; return 0; }
    done
    command -v freescale && return 0
    err "no freescale binary: set FREESCALE=/path/to/freescale or FREESCALE_ROOT=/path/to/checkout"
    return 1
}

is_count() { case $1 in ''|*[!0-9]*) return 1 ;; *) [ "$1" -gt 0 ] ;; esac; }

fs=$(find_freescale) || exit 2

# One rank per task, its OpenMP threads on the task's CPUs.
ranks=${SLURM_NTASKS:-${SLURM_NPROCS:-1}}
is_count "$ranks" || ranks=1
cpus=${SLURM_CPUS_PER_TASK:-1}
is_count "$cpus" || cpus=1
FS_THREADS=$cpus
export FS_THREADS
# Open MPI refuses root in mpirun (srun does not check): only then allow it.
if [ "$(id -u)" -eq 0 ]; then
    OMPI_ALLOW_RUN_AS_ROOT=1
    OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    export OMPI_ALLOW_RUN_AS_ROOT OMPI_ALLOW_RUN_AS_ROOT_CONFIRM
fi

# Memory of one rank, in Slurm's MB (MiB), when Slurm gives one: per CPU times
# the task's CPUs, or the node's divided among the most tasks any node runs.
mem_mb=
mem_from=
if is_count "${SLURM_MEM_PER_CPU:-}"; then
    mem_mb=$((SLURM_MEM_PER_CPU * cpus))
    mem_from="--mem-per-cpu=${SLURM_MEM_PER_CPU}M x $cpus CPU(s)"
elif is_count "${SLURM_MEM_PER_NODE:-}"; then
    per_node=${SLURM_NTASKS_PER_NODE:-}
    if ! is_count "$per_node"; then   # SLURM_TASKS_PER_NODE: "4(x2),3"
        per_node=$(echo "${SLURM_TASKS_PER_NODE:-}" | tr ',' '\n' | sed 's/(.*//' | sort -n | tail -n 1)
    fi
    is_count "$per_node" || per_node=$ranks
    mem_mb=$((SLURM_MEM_PER_NODE / per_node))
    mem_from="--mem=${SLURM_MEM_PER_NODE}M per node / $per_node task(s)"
fi

say "job ${SLURM_JOB_ID:-(not under Slurm)}: $job, $ranks rank(s) x $FS_THREADS thread(s), binary $fs"

# The plan takes the job's --set overrides (not render's own options).
plan_args=
prev=
for a in "$@"; do
    if [ "$prev" = --set ]; then
        plan_args="$plan_args --set $(quote "$a")"
        prev=
        continue
    fi
    case $a in --set=*) plan_args="$plan_args $(quote "$a")" ;; esac
    prev=$a
done

if [ -n "$mem_mb" ]; then
    mem_gb=$(awk -v mb="$mem_mb" 'BEGIN { printf "%.6g", mb * 1048576 / 1e9 }')
    say "memory per rank: ${mem_mb} MiB = $mem_gb GB (from $mem_from)"
    plan_args="$plan_args --mem $mem_gb"
else
    say "memory per rank: not given by Slurm (ask with --mem-per-cpu or --mem to have the plan checked)"
fi
plan_out=$(eval "\"\$fs\" plan \"\$job\" --ranks \"\$ranks\" $plan_args")
rc=$?
[ -n "$plan_out" ] && printf '%s\n' "$plan_out"
case $rc in
    0) ;;
    3)
        fits=$(printf '%s\n' "$plan_out" |
               sed -n 's/.*smallest rank count that fits every stage is \([0-9]*\) .*/\1/p')
        if printf '%s\n' "$plan_out" | grep -q "^ *$ranks  *impossible"; then
            err "stopped before rendering: the job cannot be cut into $ranks ranks (see the plan above)"
        elif [ -n "$fits" ]; then
            err "stopped before rendering: the job does not fit $ranks rank(s) of $mem_gb GB each;" \
                "the smallest rank count that fits is $fits: resubmit with sbatch -n $fits" \
                "(or more memory per rank)"
        else
            err "stopped before rendering: the job does not fit $ranks rank(s) of ${mem_gb:-?} GB" \
                "each, nor any rank count the plan tried: give each rank more memory"
        fi
        exit 3 ;;
    *)
        err "stopped before rendering: 'freescale plan' failed (exit $rc)"
        exit "$rc" ;;
esac

mpi=${FREESCALE_MPI:-pmix}
say "srun --mpi=$mpi --cpus-per-task=$cpus $fs render $job $*"
# --cpus-per-task again for srun: Slurm 22.05's srun does not take it from the allocation.
srun --mpi="$mpi" --cpus-per-task="$cpus" "$fs" render "$job" "$@"
rc=$?
[ $rc -eq 0 ] || err "render exited $rc"
exit $rc

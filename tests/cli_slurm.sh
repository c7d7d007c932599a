#!/bin/sh
# tests/cli_slurm.sh FREESCALE: slurm/freescale.sh on a real single-node Slurm
# (spec/platform.md: munged, slurmctld, slurmd started here, as root, with a
# slurm.conf and state under a scratch folder, on free ports of 127.0.0.1).
# 0. bad usage, no Slurm needed: no job argument, a missing job file: exit 2;
# 1. `sbatch --wait -n 2 slurm/freescale.sh JOB --set ...`: exit 0, one 2-rank
#    MPI world (render --stats says 2 ranks), the PNG byte-identical to a
#    1-rank render of the same job run directly;
# 2. a job that does not fit: --mem-per-cpu (then --mem per node) below the
#    2-rank peak: sbatch --wait exits 3, the output names the smallest rank
#    count that fits (the one `freescale plan` names), no render, no PNG.
# Skips (77) unless root with slurmctld, slurmd, sbatch, srun and munged.
# Always stops the daemons it started (by the pids from their pid files) and
# removes the scratch folder.
set -u
FS=$1
src=$(cd "$(dirname "$0")/.." && pwd)
script=$src/slurm/freescale.sh
PATH=$PATH:/usr/sbin:/sbin
export PATH
dir=$(mktemp -d /tmp/fs-slurm.XXXXXX) || exit 1
pids=
teardown() {
    rc=$?
    trap - EXIT INT TERM HUP
    if [ -n "$pids" ]; then
        echo "teardown: cancelling jobs, stopping daemons ($pids)"
        scancel --quiet --user=root > /dev/null 2>&1
        i=0
        while [ -n "$(squeue -h -o %i 2> /dev/null)" ] && [ $i -lt 50 ]; do
            sleep 0.2; i=$((i + 1))
        done
        # slurmd, then slurmctld, then munged: each its own pid, checked by name
        for entry in $pids; do
            pid=${entry#*:}
            [ "$(cat /proc/"$pid"/comm 2> /dev/null)" = "${entry%%:*}" ] && kill "$pid"
        done
        for entry in $pids; do
            pid=${entry#*:}
            i=0
            while alive "$pid" && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
            if alive "$pid" && [ "$(cat /proc/"$pid"/comm 2> /dev/null)" = "${entry%%:*}" ]; then
                echo "teardown: ${entry%%:*} ($pid) did not stop in 10 s: SIGKILL"
                kill -9 "$pid"
            fi
        done
    fi
    rm -rf "$dir"
    exit $rc
}
trap teardown EXIT
trap 'exit 1' INT TERM HUP
# A zombie (a daemon whose parent is gone, under an init that does not reap) is not alive.
alive() { [ -d /proc/"$1" ] && ! grep -q '^State:[[:space:]]*Z' /proc/"$1"/status 2> /dev/null; }
fail() {
    echo "FAIL: $*"
    for f in "$dir"/*.out "$dir"/log "$dir"/*.log "$dir"/munge/munged.log; do
        [ -f "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }
    done
    exit 1
}

# 0. bad usage
sh "$script" > "$dir/log" 2>&1
rc=$?
[ $rc -eq 2 ] || fail "no job argument: exit $rc, not 2"
grep -q "no job file given" "$dir/log" || fail "no job argument: no clear message"
grep -q "usage: sbatch" "$dir/log" || fail "no job argument: no usage line"
sh "$script" "$dir/missing.yaml" > "$dir/log" 2>&1
rc=$?
[ $rc -eq 2 ] || fail "missing job file: exit $rc, not 2"
grep -q "missing.yaml' not found" "$dir/log" || fail "missing job file: not named"
echo "bad usage: ok (exit 2)"

[ "$(id -u)" -eq 0 ] || { echo "SKIP: not root (the test starts munged and Slurm's daemons)"; exit 77; }
for p in slurmctld slurmd sbatch srun sinfo squeue scontrol scancel munged munge unmunge runuser; do
    command -v "$p" > /dev/null ||
        { echo "SKIP: no $p (Debian: slurmctld slurmd slurm-client munge; tools/setup.sh)"; exit 77; }
done
id munge > /dev/null 2>&1 || { echo "SKIP: no user munge"; exit 77; }

# --- the cluster: munged, slurmctld, slurmd
host=$(hostname -s 2> /dev/null || uname -n | cut -d. -f1)
conf=$dir/slurm.conf
SLURM_CONF=$conf
export SLURM_CONF
chmod 755 "$dir"
mkdir -p "$dir/munge" "$dir/state" "$dir/spool"
dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 2> /dev/null
chown -R munge:munge "$dir/munge"
chmod 755 "$dir/munge"   # munged wants its socket's folder open to all
chmod 400 "$dir/munge/munge.key"
sock=$dir/munge/munge.socket

# Two TCP ports nobody uses (in /proc/net/tcp*, any state), from a random start.
used=$(awk 'FNR > 1 { split($2, a, ":"); print a[2] }' /proc/net/tcp /proc/net/tcp6 2> /dev/null)
port=$(awk -v pid=$$ 'BEGIN { srand(); print 20000 + (int(rand() * 30000) + pid) % 30000 }')
next_free_port() {   # sets port to the first unused one from port
    while echo "$used" | grep -qi "^$(printf %04X "$port")$"; do port=$((port + 1)); done
}
next_free_port
ctld_port=$port
port=$((port + 1))
next_free_port
slurmd_port=$port

cat > "$conf" <<CONF
ClusterName=fstest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock
MpiDefault=pmix
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=8 RealMemory=4000 State=UNKNOWN
PartitionName=fstest Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
echo "cluster: node $host, slurmctld port $ctld_port, slurmd port $slurmd_port, in $dir"

# pid of daemon $1 from its pid file $2 (written after it forks), recorded for teardown
started() {
    i=0
    while [ ! -s "$2" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    [ -s "$2" ] || fail "$1 did not start (no $2)"
    pid=$(cat "$2")
    pids="$1:$pid $pids"   # stopped in the reverse order of starting
    alive "$pid" || fail "$1 ($pid) is not running"
}
runuser -u munge -- munged --socket="$sock" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
    --seed-file="$dir/munge/munged.seed" || fail "munged failed to start"
started munged "$dir/munge/munged.pid"
munge -n -S "$sock" | unmunge -S "$sock" > /dev/null || fail "munge credential round trip"
slurmctld -f "$conf" || fail "slurmctld failed to start"
started slurmctld "$dir/slurmctld.pid"
slurmd -f "$conf" -N "$host" || fail "slurmd failed to start"
started slurmd "$dir/slurmd.pid"
i=0
until [ "$(sinfo -h -n "$host" -o %T 2> /dev/null)" = idle ]; do
    i=$((i + 1))
    [ $i -gt 300 ] && fail "node $host not idle after 30 s: $(sinfo -h -o %T 2>&1)"
    sleep 0.1
done
echo "cluster: node idle after $i polls"

# Fast, quiet Open MPI start-up on this machine (spec/platform.md); sbatch
# passes the environment on to the job, and FREESCALE names the binary.
OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader OMPI_MCA_osc=^ucx HWLOC_COMPONENTS=-x86
OPENBLAS_NUM_THREADS=1 FREESCALE=$FS
export OMPI_MCA_pml OMPI_MCA_btl OMPI_MCA_osc HWLOC_COMPONENTS OPENBLAS_NUM_THREADS FREESCALE
job=$src/jobs/example.yaml
small="--set size=[64,128] --set steps=3"   # 16 latent rows, a few seconds of CPU

# 1. a 2-rank render through sbatch, against a direct 1-rank render
# shellcheck disable=SC2086
"$FS" render "$job" $small --set "output=$dir/direct.png" --progress none > "$dir/log" 2>&1 ||
    fail "direct render exit $?"
# shellcheck disable=SC2086
timeout 120 sbatch --wait --quiet -n 2 -c 1 --time=2 -o "$dir/render.out" "$script" "$job" $small \
    --set "output=$dir/slurm.png" --progress lines --stats > "$dir/log" 2>&1
rc=$?
[ $rc -eq 0 ] || fail "sbatch --wait of the 2-rank render exited $rc"
grep -q "^freescale.sh: job [0-9]*: .*example.yaml, 2 rank(s) x 1 thread(s), binary $FS" \
    "$dir/render.out" || fail "no job header line (ranks, threads, binary)"
grep -q "not given by Slurm" "$dir/render.out" || fail "no memory: not said"
grep -q "^peak per rank" "$dir/render.out" || fail "no plan before the render"
grep -q "fits" "$dir/render.out" && fail "a fits column without a memory limit"
grep -q "stats (2 rank(s)" "$dir/render.out" || fail "not one 2-rank MPI world"
grep -q "step 3/3" "$dir/render.out" || fail "no progress lines"
[ -s "$dir/slurm.png" ] || fail "no slurm.png"
cmp "$dir/direct.png" "$dir/slurm.png" || fail "the 2-rank Slurm PNG differs from the 1-rank one"
echo "sbatch render: ok (2 ranks, $(wc -c < "$dir/slurm.png") bytes, same as 1 rank)"

# 2. too little memory: the 512^2 example's 2-rank peak, less 1 MiB, per rank
FS_THREADS=1 "$FS" plan "$job" --ranks 2 > "$dir/plan" 2> "$dir/log" || fail "plan exit $?"
peak=$(awk '/^peak per rank/ { t = 1 } t && $1 == 2 { print ($3 == "GB" ? $2 * 1e9 : $2 * 1e6) }' \
    "$dir/plan")
[ -n "$peak" ] || fail "no 2-rank peak in the plan"
mib=$(awk -v p="$peak" 'BEGIN { print int(p / 1048576) - 1 }')
FS_THREADS=1 "$FS" plan "$job" --ranks 2 --mem "$(awk -v m="$mib" 'BEGIN { printf "%.6g", m * 1048576 / 1e9 }')" \
    > "$dir/plan" 2> "$dir/log"
[ $? -eq 3 ] || fail "plan does not refuse $mib MiB per rank"
fits=$(sed -n 's/.*the smallest rank count that fits every stage is \([0-9]*\) .*/\1/p' "$dir/plan")
[ "${fits:-0}" -gt 2 ] || fail "plan names no rank count above 2 that fits $mib MiB"
for mem in "--mem-per-cpu=$mib" "--mem=$((2 * mib))"; do
    out=$dir/nofit${mem%%=*}.out
    timeout 120 sbatch --wait --quiet -n 2 -c 1 "$mem" --time=2 -o "$out" "$script" "$job" \
        --set "output=$dir/nofit.png" > "$dir/log" 2>&1
    rc=$?
    [ $rc -eq 3 ] || fail "$mem: sbatch --wait exited $rc, not 3"
    grep -q "memory per rank: $mib MiB" "$out" || fail "$mem: not $mib MiB per rank"
    grep -q "smallest rank count that fits every stage is $fits " "$out" ||
        fail "$mem: the output does not name $fits ranks"
    grep -q "stopped before rendering: the job does not fit 2 rank(s).*sbatch -n $fits" "$out" ||
        fail "$mem: no clear message naming sbatch -n $fits"
    grep -q "srun\|step 1/" "$out" && fail "$mem: the render started"
    [ -e "$dir/nofit.png" ] && fail "$mem: a PNG was written"
    echo "does not fit ($mem): ok (exit 3, names $fits ranks, nothing rendered):"
    sed -n 's/^freescale.sh: /    /p' "$out"
done
echo "cli_slurm: ok"

#!/usr/bin/env bash
# The CUDA ops (bench/bench_cuda) against PyTorch CUDA (bench/cuda_vs_torch.py)
# on the same cases, plain FP32 on both sides, one after the other on the
# same GPU; prints a joined table with ratio = torch ms / C ms (above 1: ours
# is faster).
#   bench/cuda_vs_torch.sh BUILD_DIR [reps]
# BUILD_DIR: a build with CUDA ON (holds bench/bench_cuda). Environment:
#   OUTDIR  where c.json, torch.json and both logs go (default: mktemp -d)
#   PYTHON  the Python with torch (default python3)
#   ONLY    run only the cases whose name contains this string
# "torch ms" is GPU time between CUDA events; "C ms" is host wall time of
# call + fs_cuda_sync, so "torch wall" (torch's call + synchronize, timed the
# same way) is shown too: for ops under ~0.1 ms the launch and sync latency
# is a visible part of C ms, and "wall ratio" is the like-for-like one.
# Exits non-zero when either side fails (or bench_cuda SKIPs: no GPU).
set -uo pipefail
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 BUILD_DIR [reps]" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" && pwd) || { echo "cuda_vs_torch: no build dir $1" >&2; exit 2; }
reps=${2:-5}
py=${PYTHON:-python3}
out=${OUTDIR:-$(mktemp -d)}
mkdir -p "$out" || exit 2
out=$(cd "$out" && pwd)
bin=$build/bench/bench_cuda
if [ ! -x "$bin" ]; then
  echo "cuda_vs_torch: $bin not found (make -C $build bench_cuda)" >&2
  exit 2
fi
only=()
if [ -n "${ONLY:-}" ]; then only=(--only "$ONLY"); fi
rm -f "$out/c.json" "$out/torch.json"

echo "== C: $bin $reps (output in $out)"
"$bin" "$reps" --json "$out/c.json" "${only[@]}" 2>&1 | tee "$out/c.log"
c_rc=${PIPESTATUS[0]}
if [ "$c_rc" -eq 0 ] && grep -q "^bench_cuda: SKIP" "$out/c.log"; then
  echo "cuda_vs_torch: bench_cuda skipped (no usable GPU in this build or machine)" >&2
  c_rc=3
fi

echo "== torch: $py bench/cuda_vs_torch.py --reps $reps"
"$py" "$root/bench/cuda_vs_torch.py" --reps "$reps" --json "$out/torch.json" "${only[@]}" 2>&1 \
  | tee "$out/torch.log"
t_rc=${PIPESTATUS[0]}

echo "== joined (ratio = torch / C: above 1 means ours is faster)"
"$py" - "$out/c.json" "$out/torch.json" <<'EOF'
import json, math, os, sys

def load(path):
    rows = {}
    order = []
    if not os.path.exists(path):
        return rows, order
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                r = json.loads(line)
                rows[r["case"]] = r
                order.append(r["case"])
    return rows, order

c, c_order = load(sys.argv[1])
t, t_order = load(sys.argv[2])
names = c_order + [n for n in t_order if n not in c]

def fmt(x):
    return f"{x:10.3f}" if isinstance(x, (int, float)) else f"{'-':>10s}"

print(f"{'case':34s} {'C ms':>10s} {'torch ms':>10s} {'ratio':>7s} {'torch wall':>10s} "
      f"{'wall ratio':>10s}  note")
logs, wlogs = [], []
for n in names:
    cm = c.get(n, {}).get("ms")
    tm = t.get(n, {}).get("ms")
    tw = t.get(n, {}).get("wall_ms")
    ratio = f"{tm / cm:7.2f}" if cm and tm else f"{'-':>7s}"
    wratio = f"{tw / cm:10.2f}" if cm and tw else f"{'-':>10s}"
    if cm and tm:
        logs.append(math.log(tm / cm))
    if cm and tw:
        wlogs.append(math.log(tw / cm))
    note = t.get(n, {}).get("note", "") or t.get(n, {}).get("error", "")
    print(f"{n:34s} {fmt(cm)} {fmt(tm)} {ratio} {fmt(tw)} {wratio}  {note}")
if logs:
    print(f"geometric mean ratio over {len(logs)} cases: {math.exp(sum(logs) / len(logs)):.2f}"
          f" (wall: {math.exp(sum(wlogs) / len(wlogs)):.2f})")
EOF
j_rc=$?

if [ "$c_rc" -ne 0 ] || [ "$t_rc" -ne 0 ] || [ "$j_rc" -ne 0 ]; then
  echo "cuda_vs_torch: FAILED (bench_cuda rc $c_rc, cuda_vs_torch.py rc $t_rc, join rc $j_rc)" >&2
  exit 1
fi

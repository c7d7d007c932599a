#!/bin/sh
# tests/cli_render.sh FREESCALE: the render command as a user runs it.
# 1. a job renders to a PNG and says so; log lines per step when not on a terminal;
# 2. Ctrl-C (SIGINT) mid-render: exit status 130, the existing image untouched,
#    no temporary file left behind;
# 3. a bad job: exit 1, the message names file:line:column, nothing written.
set -u
FS=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; cat "$dir/log" 2>/dev/null; exit 1; }

cat > "$dir/job.yaml" <<JOB
prompt: "a red bicycle leaning on a wall"
negative_prompt: "blurry"
size: [128, 64]
steps: 4
seed: 5
output: $dir/out.png
JOB
"$FS" render "$dir/job.yaml" > "$dir/out" 2> "$dir/log" || fail "render exit $?"
[ -s "$dir/out.png" ] || fail "no out.png"
grep -q "step 4/4" "$dir/log" || fail "no per-step log line"
grep -q "wrote" "$dir/out" || fail "no 'wrote' line"
grep -qi "not meaningful" "$dir/log" || fail "the embedded model is not announced as such"
echo "render: ok ($(wc -c < "$dir/out.png") bytes)"

# 2. interrupt
echo "a good image" > "$dir/keep.png"
rm -f "$dir/log"
"$FS" render "$dir/job.yaml" --set steps=400 --set "output=$dir/keep.png" --set "size=[256,256]" \
    --progress lines 2> "$dir/log" > /dev/null &
pid=$!
i=0
while ! grep -q "step 2/400" "$dir/log" 2>/dev/null; do
    i=$((i + 1)); [ $i -gt 600 ] && { kill -9 $pid; fail "no progress after 60 s"; }
    sleep 0.1
done
kill -INT $pid
wait $pid
rc=$?
[ $rc -eq 130 ] || fail "interrupted render exited $rc, not 130"
[ "$(cat "$dir/keep.png")" = "a good image" ] || fail "the existing image was replaced"
ls "$dir" | grep -q tmp && fail "a temporary file was left: $(ls "$dir")"
grep -q "interrupted" "$dir/log" || fail "no 'interrupted' message"
echo "interrupt: ok"

# 3. a bad job
printf 'prompt: "x"\nstpes: 3\n' > "$dir/bad.yaml"
"$FS" render "$dir/bad.yaml" 2> "$dir/log" > /dev/null
rc=$?
[ $rc -eq 1 ] || fail "bad job exited $rc, not 1"
grep -q "bad.yaml:2:1" "$dir/log" || fail "the error does not say bad.yaml:2:1"
grep -q "steps" "$dir/log" || fail "no suggestion of 'steps'"
echo "bad job: ok"

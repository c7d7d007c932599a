#!/bin/sh
# tests/cli_plan.sh FREESCALE: the plan command as a user runs it (jobs/*.yaml
# of the source tree; the embedded model; no MPI).
# 1. jobs/freescale_tiny.yaml: one block per stage (2), the default rank
#    counts 1,2,4,8, UNet activations per rank shrinking from 1 to 4 ranks in
#    every stage, 8 the most ranks (stage 0: 32 latent rows in groups of 4);
#    jobs/example.yaml: one block; --set stages=... changes the blocks;
# 2. --mem: the fits column agrees with the peaks, the smallest fitting count
#    is named, exit 3 when the first listed count does not fit, 0 when it does;
#    an impossible count is said so (exit 3);
# 3. a bad job: exit 1 with file:line:column; bad arguments: exit 2.
set -u
FS=$1
src=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; cat "$dir/out" "$dir/log" 2>/dev/null; exit 1; }

# bytes of a table cell "18.2 MB" / "1.75 GB": fields $2, $2+1 of stage block $1's row of $3 ranks
cell() {
    awk -v stage="$1" -v col="$2" -v ranks="$3" '
        /^stage / { s = $2; sub(":", "", s); next }
        /^peak per rank/ { s = "" }
        s == stage && $1 == ranks {
            v = $col; u = $(col + 1)
            print (u == "GB" ? v * 1e9 : v * 1e6); exit }' "$dir/out"
}

# 1. the tiny cascade
"$FS" plan "$src/jobs/freescale_tiny.yaml" > "$dir/out" 2> "$dir/log" || fail "plan exit $?"
[ "$(grep -c '^stage ' "$dir/out")" -eq 2 ] || fail "not one block per stage (2)"
for r in 1 2 4 8; do
    [ "$(grep -c "^ *$r  *[0-9]" "$dir/out")" -ge 3 ] || fail "no rows for $r ranks"
done
for s in 0 1; do
    a1=$(cell $s 3 1); a4=$(cell $s 3 4)   # UNet act
    [ -n "$a1" ] && [ -n "$a4" ] || fail "stage $s: no UNet activation cells"
    awk -v a="$a1" -v b="$a4" 'BEGIN { exit !(b > 0 && b < a) }' ||
        fail "stage $s: UNet activations $a4 at 4 ranks, $a1 at 1"
done
grep -q "rows" "$dir/out" && grep -q "GFLOP/eval" "$dir/out" || fail "no table header"
grep -q "above 8 are impossible" "$dir/out" || fail "the rank limit (8) is not said"
grep -q "^stage 1: 512x512 px, latent 64x64, steps 3-9 (7 UNet evaluations), dilation 2" \
    "$dir/out" || fail "stage 1's line"
echo "tiny cascade: ok"

"$FS" plan "$src/jobs/example.yaml" --ranks 1,4 > "$dir/out" 2> "$dir/log" || fail "example exit $?"
[ "$(grep -c '^stage ' "$dir/out")" -eq 1 ] || fail "example: not one block"
a1=$(cell 0 3 1); a4=$(cell 0 3 4)
awk -v a="$a1" -v b="$a4" 'BEGIN { exit !(b > 0 && b < a) }' || fail "example: $a4 vs $a1"
"$FS" plan "$src/jobs/example.yaml" --set "stages=[256, 512, 512]" --ranks 2 > "$dir/out" \
    2> "$dir/log" || fail "--set stages exit $?"
[ "$(grep -c '^stage ' "$dir/out")" -eq 3 ] || fail "--set stages: not 3 blocks"
echo "example: ok"

# 2. --mem (tiny cascade peaks: about 94, 58, 49, 40 MB at 1, 2, 3, 4 ranks)
"$FS" plan "$src/jobs/freescale_tiny.yaml" --ranks 2,3 --mem 0.054 > "$dir/out" 2> "$dir/log"
rc=$?
[ $rc -eq 3 ] || fail "--mem too small for 2 ranks exited $rc, not 3"
grep -q "smallest rank count that fits every stage is 3 " "$dir/out" || fail "3 not named"
grep -q "^ *2 .* no$" "$dir/out" && grep -q "^ *3 .* yes$" "$dir/out" || fail "fits column"
p3=$(awk '/^peak per rank/ { t = 1 } t && $1 == 3 { print ($3 == "GB" ? $2 * 1e9 : $2 * 1e6) }' \
    "$dir/out")
awk -v p="$p3" 'BEGIN { exit !(p > 0 && p <= 0.054e9) }' || fail "3 ranks' peak $p3 > 54 MB"
"$FS" plan "$src/jobs/freescale_tiny.yaml" --ranks 3,2 --mem 0.054 > "$dir/out" 2> "$dir/log" ||
    fail "a fitting first count exited $?"
"$FS" plan "$src/jobs/freescale_tiny.yaml" --mem 0.001 > "$dir/out" 2> "$dir/log"
rc=$?
[ $rc -eq 3 ] || fail "--mem 0.001 exited $rc"
grep -q "no rank count from 1 to 8 fits" "$dir/out" || fail "no 'no rank count fits'"
"$FS" plan "$src/jobs/freescale_tiny.yaml" --ranks 16 > "$dir/out" 2> "$dir/log"
rc=$?
[ $rc -eq 3 ] || fail "16 ranks (impossible) exited $rc"
grep -q "16  impossible: at most 8" "$dir/out" || fail "16 ranks not said impossible"
echo "--mem: ok"

# 3. errors
printf 'prompt: "x"\nstpes: 3\n' > "$dir/bad.yaml"
"$FS" plan "$dir/bad.yaml" > "$dir/out" 2> "$dir/log"
rc=$?
[ $rc -eq 1 ] || fail "bad job exited $rc, not 1"
grep -q "bad.yaml:2:1" "$dir/log" || fail "the error does not say bad.yaml:2:1"
for args in "" "--ranks 0" "--ranks 2,,4" "--ranks x" "--mem -1" "--mem" "--frobnicate" \
            "--ranks 5000"; do
    # shellcheck disable=SC2086
    "$FS" plan "$src/jobs/example.yaml" $args > "$dir/out" 2> "$dir/log"
    rc=$?
    [ "$args" = "" ] && { [ $rc -eq 0 ] || fail "plain plan exited $rc"; continue; }
    [ $rc -eq 2 ] || fail "'$args' exited $rc, not 2"
    grep -q "usage: freescale plan" "$dir/log" || fail "'$args': no usage line"
done
"$FS" plan > "$dir/out" 2> "$dir/log"; [ $? -eq 2 ] || fail "no job file: not 2"
echo "errors: ok"

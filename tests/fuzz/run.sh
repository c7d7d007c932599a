#!/usr/bin/env bash
# Builds one libFuzzer target (tests/fuzz/NAME.c) with ASan + UBSan and runs it
# for FS_FUZZ_SECONDS (default 60) on a copy of its seed corpus
# tests/fuzz/corpus/<NAME without fuzz_>/. Exits non-zero on any crash, leak
# or sanitizer report. Everything it makes goes under OUTDIR/NAME, never into
# the source tree.
#   usage: tests/fuzz/run.sh fuzz_safetensors OUTDIR
# A target names the repository sources and libraries it needs in its top
# comment ("fuzz-sources: a.c b.c", "fuzz-libs: -lx"); the core/*.c files that
# need neither MPI nor BLAS are always added (core is everyone's base).
set -euo pipefail

name=${1:?usage: run.sh fuzz_NAME OUTDIR}
outdir=${2:?usage: run.sh fuzz_NAME OUTDIR}
seconds=${FS_FUZZ_SECONDS:-60}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
src="$here/$name.c"
seeds="$here/corpus/${name#fuzz_}"
[ -f "$src" ] || { echo "run.sh: no target $src" >&2; exit 2; }

# The words after the tag, up to the end of the line or of the comment.
tag_words() { sed -n "s/.*$1:\([^*]*\).*\$/\1/p" "$src" | head -n1; }
set -f  # the lists are split into words but never globbed
sources=$(tag_words fuzz-sources)
libs=$(tag_words fuzz-libs)
files=()
for f in $sources; do files+=("$repo/$f"); done
read -r -a libs <<<"$libs"
set +f
for f in "$repo"/core/*.c; do
    grep -qE 'openblas|cblas|mpi\.h' "$f" || files+=("$f")
done
openmp=()
if grep -qE 'pragma omp|omp\.h' "${files[@]}"; then openmp=(-fopenmp); fi

work="$outdir/$name"
mkdir -p "$work/corpus" "$work/artifacts"
if [ -d "$seeds" ]; then cp -n "$seeds"/* "$work/corpus/" 2>/dev/null || true; fi

bin="$work/$name"
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    "${openmp[@]}" -I"$repo" "$src" "${files[@]}" "${libs[@]}" -o "$bin"

echo "run.sh: fuzzing $name for ${seconds}s (corpus $work/corpus, artifacts $work/artifacts)"
dict=()
if [ -f "$here/$name.dict" ]; then dict=(-dict="$here/$name.dict"); fi
status=0
"$bin" "${dict[@]}" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/log.txt" 2>&1 || status=$?
tail -n 25 "$work/log.txt"
if [ "$status" -ne 0 ]; then
    echo "run.sh: $name FAILED (exit $status); inputs in $work/artifacts, log $work/log.txt" >&2
    exit 1
fi
echo "run.sh: $name passed"

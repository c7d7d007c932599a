#!/bin/sh
# tests/cli_layers.sh FREESCALE: the layout's rules, read off the built object
# files (what really calls what, not what a comment says):
# 1. no two source files call each other in a circle: an edge A -> B when A's
#    object uses a function or variable B's object defines; tsort finds any
#    loop;
# 2. arrows point down the layers of DESIGN.md: a folder never calls a folder
#    above it (the order below; folders on one line are peers and may not
#    call each other at all).
set -u
FS=$1
BUILD=$(cd "$(dirname "$FS")" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

objs=$(find "$BUILD/CMakeFiles/fs_engine.dir" "$BUILD/CMakeFiles/fs_coord.dir" \
            "$BUILD/CMakeFiles/freescale.dir" "$BUILD/CMakeFiles/fs_cuda.dir" -name '*.o' 2>/dev/null | sort)
[ -n "$objs" ] || fail "no object files under $BUILD/CMakeFiles"
n=0
for o in $objs; do
    # the source path relative to the build's object folder: worker/render.c.o -> worker/render.c
    src=$(echo "$o" | sed -E 's|.*/CMakeFiles/[^/]+\.dir/||; s|\.o$||')
    [ -f "$SRC/$src" ] || continue   # a stale object of a deleted source
    nm -g --defined-only "$o" 2>/dev/null | awk -v s="$src" 'NF == 3 { print $3, s }' >> "$dir/defs"
    nm -g --undefined-only "$o" 2>/dev/null | awk -v s="$src" '{ print $NF, s }' >> "$dir/uses"
    n=$((n + 1))
done
sort -k1,1 "$dir/defs" > "$dir/defs.s"
sort -k1,1 "$dir/uses" > "$dir/uses.s"
# user definer, once per pair
join "$dir/uses.s" "$dir/defs.s" | awk '$2 != $3 { print $2, $3 }' | sort -u > "$dir/edges"
[ -s "$dir/edges" ] || fail "no calls between $n object files: the check reads nothing"

# 1. file circles
if ! tsort "$dir/edges" > /dev/null 2> "$dir/loops"; then
    echo "FAIL: source files that call each other in a circle:"
    grep -v "input contains a loop" "$dir/loops" | sed 's/^tsort: /  /'
    exit 1
fi
echo "files: $n objects, $(wc -l < "$dir/edges") caller -> callee pairs, no circle"

# 2. folder layers, top to bottom
layers="coordinator
worker
jobs
sampler
unet vae text
nn
comm
kernels
io
core"
rank_of() {
    echo "$layers" | awk -v f="$1" '{ for (i = 1; i <= NF; i++) if ($i == f) { print NR; exit } }'
}
bad=0
awk '{ split($1, a, "/"); split($2, b, "/"); if (a[1] != b[1]) print a[1], b[1], $1, $2 }' \
    "$dir/edges" > "$dir/folder_edges"
while read -r fa fb a b; do
    ra=$(rank_of "$fa"); rb=$(rank_of "$fb")
    if [ -z "$ra" ] || [ -z "$rb" ]; then
        echo "FAIL: folder not in the layer list: $fa or $fb ($a -> $b)"; bad=1; continue
    fi
    if [ "$ra" -ge "$rb" ]; then
        echo "FAIL: $a ($fa) calls $b ($fb), which is not below it"; bad=1
    fi
done < "$dir/folder_edges"
[ $bad -eq 0 ] || exit 1
echo "folders: $(cut -d' ' -f1,2 "$dir/folder_edges" | sort -u | wc -l) folder -> folder arrows, all pointing down"

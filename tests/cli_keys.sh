#!/bin/sh
# tests/cli_keys.sh FREESCALE: `freescale keys` prints the job key table
# (jobs/job_keys.c) as Markdown, and the README's "Job files" table, between
# its <!-- freescale keys --> markers, is exactly that output, so the README
# cannot drift from the keys the reader knows. Also: one row per key that
# `validate` prints, in the same order; extra arguments are refused (exit 2).
set -u
FS=$1
src=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$FS" keys > "$dir/keys" 2> "$dir/log" || fail "keys exit $?: $(cat "$dir/log")"
[ -s "$dir/keys" ] || fail "keys printed nothing"

# the README's table: the lines strictly between the two markers
awk '/^<!-- \/freescale keys -->/ { on = 0 } on { print } /^<!-- freescale keys/ { on = 1 }' \
    "$src/README.md" > "$dir/readme"
[ -s "$dir/readme" ] || fail "README.md has no <!-- freescale keys --> ... <!-- /freescale keys --> table"
diff -u "$dir/readme" "$dir/keys" > "$dir/diff" ||
    fail "README.md's key table differs from \`freescale keys\` (regenerate it):
$(cat "$dir/diff")"

# the rows name the keys validate prints, in its order
"$FS" validate "$src/jobs/example.yaml" > "$dir/valid" 2> "$dir/log" || fail "validate exit $?"
sed -n 's/^\([a-z_0-9]*\): .*/\1/p' "$dir/valid" > "$dir/valid_keys"
sed -n 's/^| `\([a-z_0-9]*\)` |.*/\1/p' "$dir/keys" > "$dir/table_keys"
[ "$(wc -l < "$dir/table_keys")" -ge 30 ] || fail "only $(wc -l < "$dir/table_keys") key rows"
diff -u "$dir/valid_keys" "$dir/table_keys" > "$dir/diff" ||
    fail "validate's keys differ from the table's rows:
$(cat "$dir/diff")"
# every row has the four cells (no stray '|' inside a cell)
awk -F'|' 'NR > 2 && NF != 6 { print NR": "$0; bad = 1 } END { exit bad }' "$dir/keys" ||
    fail "a row without exactly 4 cells"

"$FS" keys extra > /dev/null 2>&1
rc=$?
[ "$rc" = 2 ] || fail "keys with an argument: exit $rc, want 2"
echo "cli_keys: ok"

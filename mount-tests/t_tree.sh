#!/usr/bin/env bash
# t_tree: a nested tree of .txt files copied with `cp -r` into data/ becomes
# one version once it has been quiet for the settle time; versions/ID/input
# mirrors the tree, and with reduce = sum the result covers every file.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"

IN="$VD_WORK/in"
TREE="$IN/tree"
mkdir -p "$TREE/a/b" "$TREE/c"
seed=11
for f in top.txt a/one.txt a/two.txt a/b/three.txt a/b/four.txt c/five.txt c/six.txt; do
	vd_gen_text "$TREE/$f" $((seed * 40 * 1024)) "$seed" 2000
	seed=$((seed + 7))
done
nfiles="$(find "$TREE" -type f | wc -l)"
# Word counts over every file, and lines per file (by path inside the tree).
mapfile -t files < <(cd "$TREE" && find . -type f | sed 's|^\./||' | LC_ALL=C sort)
(cd "$TREE" && vd_count_words "${files[@]}") >"$IN/expected-words.csv"
for f in "${files[@]}"; do
	echo "$f,$(wc -l <"$TREE/$f")"
done | LC_ALL=C sort >"$IN/expected-paths.csv"
vd_note "tree of $nfiles files, $(du -sb "$TREE" | cut -f1) bytes"

vd_write_wc_function "$IN/wc.sh"
cat >"$IN/paths.sh" <<'EOF'
#!/bin/sh
# One row per unit: the file's path inside the tree and its line count here.
n=$(wc -l)
echo "$VDFS_PATH,$n"
EOF
chmod +x "$IN/paths.sh"
printf 'reduce = sum\nsettle = 1\n' >"$IN/config"

vd_start_daemon
vd_start_executor e1 --slots 2

for task in words paths; do
	T="$VD_MNT/tasks/$task"
	mkdir "$T"
	if [ "$task" = words ]; then cp "$IN/wc.sh" "$T/function"; else cp "$IN/paths.sh" "$T/function"; fi
	cp "$IN/config" "$T/config"
	before="$(vd_versions "$T")"
	cp -r "$TREE" "$T/data/"
	id="$(vd_wait_new_version "$T" "$before")"
	vd_is_id "$id" || vd_fail "version name '$id' is not a data ID"
	vd_ok "$task: cp -r of the tree became version $id after the settle time"
	[ -d "$T/versions/$id/input" ] || vd_fail "versions/$id/input is not a directory"
	diff -r "$TREE" "$T/versions/$id/input" >&2 || vd_fail "versions/$id/input does not mirror the tree"
	vd_ok "$task: versions/$id/input is a directory mirroring the tree (diff -r)"
	vd_wait_status "$T/versions/$id" "done"
	n="$(vd_versions "$T" | wc -l)"
	[ "$n" = 1 ] || vd_fail "$task: the tree made $n versions, expected one: $(vd_versions "$T" | tr '\n' ' ')"
	vd_ok "$task: the whole tree is one version"
	vd_same "$T/versions/$id/result.csv" "$IN/expected-$task.csv" "$task: the result covers every file of the tree"
	diff -r "$TREE" "$T/data/tree" >&2 || vd_fail "data/tree does not read back the tree"
	vd_ok "$task: data/tree reads back the tree"
done

#!/usr/bin/env bash
# t_inodes: an immutable name keeps its inode number, whatever the user
# does around it (ls, ls -l, stat, find, reading it again), so the kernel
# keeps its cached pages. A regression test: the view once gave a version's
# directory a new inode on every other listing of versions/ (a lookup
# compared a field it had not cleared), and the kernel then dropped
# `input`'s cached pages, so a warm `cat` re-read everything through the
# daemon. Checked here by inode numbers (stat -c %i), which is what the
# kernel keys its cache on; nothing is timed.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"

IN="$VD_WORK/in"
vd_gen_text "$IN/a.txt" 3000000 11 500
mkdir -p "$IN/tree/sub"
vd_gen_text "$IN/tree/sub/b.txt" 200000 12 500
vd_gen_text "$IN/tree/c.txt" 100000 13 500

vd_start_daemon
T="$VD_MNT/tasks/ino"
mkdir "$T"
printf 'settle = 1\n' >"$T/config"
cp "$IN/a.txt" "$T/data/a.txt"
id="$(vd_new_version "$T" "")"
cp -r "$IN/tree" "$T/data/"
vd_wait_new_version "$T" "$id" >/dev/null
V="$T/versions/$id"

# inos: the inode numbers of everything immutable in the task, one line
# each, sorted by name.
inos() {
	find "$T/versions" -mindepth 1 \( -name status -o -name meta.json -o -name log \) -prune \
		-o -printf '%P %i\n' | sort
}
cat "$V/input" >/dev/null
before="$(inos)"
[ "$(printf '%s\n' "$before" | wc -l)" -ge 8 ] || vd_fail "expected at least 8 immutable names, got: $before"
ino_input="$(stat -c %i "$V/input")"

for round in 1 2 3; do
	ls "$T/versions" >/dev/null
	ls -l "$T/versions" >/dev/null
	ls -lR "$T/versions" >/dev/null
	stat "$V" "$V/input" >/dev/null
	find "$T/versions" -type f -name input -exec cat {} + >/dev/null
	cat "$V/input" >/dev/null
	[ "$(stat -c %i "$V/input")" = "$ino_input" ] ||
		vd_fail "round $round: versions/ID/input changed its inode ($ino_input -> $(stat -c %i "$V/input"))"
	after="$(inos)"
	if [ "$after" != "$before" ]; then
		diff <(printf '%s\n' "$before") <(printf '%s\n' "$after") >&2 || true
		vd_fail "round $round: inode numbers under versions/ changed"
	fi
done
vd_ok "inode numbers under versions/ stay the same across ls, ls -l, ls -lR, stat, find and reads"

# The same after the kernel forgets everything it can (drop_caches, as
# root): a name gets its number back.
if [ -w /proc/sys/vm/drop_caches ]; then
	sync
	echo 2 >/proc/sys/vm/drop_caches
	after="$(inos)"
	if [ "$after" != "$before" ]; then
		diff <(printf '%s\n' "$before") <(printf '%s\n' "$after") >&2 || true
		vd_fail "inode numbers under versions/ changed after the kernel forgot them"
	fi
	vd_ok "a forgotten name gets the same inode number again"
fi
vd_same "$V/input" "$IN/a.txt" "the input still reads back byte for byte"

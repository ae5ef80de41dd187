#!/usr/bin/env bash
# t_inodes: an immutable name keeps its inode number, whatever the user
# does around it (ls, ls -l, stat, find, reading it again), so the kernel
# keeps its cached pages. A regression test: the view once gave a version's
# directory a new inode on every other listing of versions/ (a lookup
# compared a field it had not cleared), and the kernel then dropped
# `input`'s cached pages, so a warm `cat` re-read everything through the
# daemon. Checked here by inode numbers (stat -c %i), which is what the
# kernel keys its cache on; nothing is timed.
#
# The kernel also keeps its listing of versions/ between opens while no
# version was sealed: the last part checks that a version sealed after the
# listing was cached shows at once, for a file and for a tree.
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

# A cached listing of versions/ never hides a new version.
for i in 1 2; do ls -l "$T/versions" >/dev/null; done
before="$(vd_versions "$T")"
vd_gen_text "$IN/d.txt" 50000 14 500
cp "$IN/d.txt" "$T/data/d.txt"
# No wait: cp has returned, so the version must be listed now.
new="$(vd_new_version "$T" "$before")"
ls -l "$T/versions/$new/input" >/dev/null || vd_fail "the new version $new has no input"
vd_same "$T/versions/$new/input" "$IN/d.txt" "a version sealed after versions/ was listed (and cached) is listed at once"
before="$(vd_versions "$T")"
mkdir -p "$IN/tree2"
vd_gen_text "$IN/tree2/e.txt" 50000 15 500
cp -r "$IN/tree2" "$T/data/"
new="$(vd_wait_new_version "$T" "$before")"
[ "$(ls "$T/versions" | wc -l)" = 4 ] || vd_fail "expected 4 versions, listed: $(ls "$T/versions" | tr '\n' ' ')"
vd_same "$T/versions/$new/input/e.txt" "$IN/tree2/e.txt" "a tree sealed after the listing was cached shows too"

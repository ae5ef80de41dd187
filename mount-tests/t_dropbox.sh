#!/usr/bin/env bash
# t_dropbox: how data/ behaves as a file system (docs/mount.md): a shell
# redirect makes one version, not an empty one first; >> appends to the
# sealed content; truncate(1) seals at once; touch makes an empty version;
# bad names, links and FIFOs are refused; mv between names copies; a file
# removed while open stays readable and is never sealed; a sealed tree can
# be changed in place (one file appended, one renamed), becomes a new
# version, and the old version is unchanged; rm -r forgets a tree;
# readdir and stat agree on inode numbers; nothing is left in staging.
# No executor is needed.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"

IN="$VD_WORK/in"
vd_start_daemon
T="$VD_MNT/tasks/box"
D="$T/data"
mkdir "$T"
printf 'settle = 1\n' >"$T/config"
count() { vd_versions "$T" | grep -c . || true; }

# vd_expect_errno WHAT TEXT COMMAND...: COMMAND must fail with message TEXT.
vd_expect_errno() {
	local what="$1" text="$2" out
	shift 2
	if out="$("$@" 2>&1)"; then
		vd_fail "$what succeeded; it must fail with '$text'"
	fi
	case "$out" in
	*"$text"*) vd_ok "$what fails with '$text'" ;;
	*) vd_fail "$what failed, but not with '$text': $out" ;;
	esac
}

# wait_staging_empty: poll until no staging file or tree is left.
wait_staging_empty() {
	local i left
	for ((i = 0; i < 100; i++)); do
		left="$(find "$VD_STATE/staging" -mindepth 1 -maxdepth 1 2>/dev/null | head -n 5)"
		[ -z "$left" ] && return 0
		sleep 0.1
	done
	vd_fail "staging still holds: $left"
}

# wait_count N: poll until the task has N versions.
wait_count() {
	local i
	for ((i = 0; i < 100; i++)); do
		[ "$(count)" = "$1" ] && return 0
		sleep 0.1
	done
	vd_fail "expected $1 versions, have $(count): $(vd_versions "$T" | tr '\n' ' ')"
}

printf 'one\ntwo\n' >"$D/f.txt"
[ "$(count)" = 1 ] || vd_fail "a shell redirect made $(count) versions, expected 1"
vd_ok "a shell redirect into data/ makes exactly one version"

echo three >>"$D/f.txt"
[ "$(count)" = 2 ] || vd_fail ">> made no new version"
printf 'one\ntwo\nthree\n' >"$IN/f3"
cmp -s "$D/f.txt" "$IN/f3" || vd_fail "after >>, data/f.txt reads '$(cat "$D/f.txt")'"
cmp -s "$T/latest/input" "$IN/f3" || vd_fail "after >>, latest/input differs"
vd_ok ">> appends to the sealed content and seals a new version"

truncate -s 4 "$D/f.txt"
[ "$(count)" = 3 ] || vd_fail "truncate -s made no new version"
[ "$(cat "$D/f.txt")" = "one" ] || vd_fail "after truncate, data/f.txt reads '$(cat "$D/f.txt")'"
vd_ok "truncate -s seals the truncated content at once"

touch "$D/empty"
wait_count 4
if [ ! -f "$D/empty" ] || [ -s "$D/empty" ]; then vd_fail "data/empty is not an empty file"; fi
vd_ok "touch makes an empty version"

vd_expect_errno "a name with a control character" "Invalid argument" \
	touch "$D/$(printf 'bad\001name')"
vd_expect_errno "a 300-byte name" "File name too long" touch "$D/$(printf 'x%.0s' $(seq 300))"
vd_expect_errno "ln -s in data/" "Operation not permitted" ln -s f.txt "$D/link"
vd_expect_errno "mkfifo in data/" "Operation not permitted" mkfifo "$D/fifo"
vd_expect_errno "rmdir of tasks/" "Operation not permitted" rmdir "$VD_MNT/tasks"
vd_expect_errno "mkdir over a data name" "File exists" mkdir "$D/f.txt"

mv "$D/f.txt" "$D/g.txt"
if [ -e "$D/f.txt" ] || [ "$(cat "$D/g.txt")" != "one" ]; then
	vd_fail "mv data/f.txt data/g.txt did not move it"
fi
vd_ok "mv between data/ names copies and removes"

# A file removed while open: still readable and statable through the open
# descriptor, never sealed, gone from the listing.
# (Each `echo >&3` closes a duplicate of fd 3, which seals what is there.)
exec 3>"$D/gone"
echo first >&3
n="$(count)"
rm "$D/gone"
echo second >&3
size="$(stat -L -c %s /proc/self/fd/3)"
exec 3>&-
[ "$size" = 13 ] || vd_fail "fstat of a removed open file gave size '$size', expected 13"
[ ! -e "$D/gone" ] || vd_fail "data/gone is still listed after rm"
sleep 0.5
[ "$(count)" = "$n" ] || vd_fail "a file removed while open was sealed"
vd_ok "a file removed while open stays usable and is never sealed"

# Trees.
TREE="$IN/tree"
mkdir -p "$TREE/a/b"
seq 1 5000 >"$TREE/a/one"
seq 1 300 >"$TREE/a/b/two"
echo top >"$TREE/top"
before="$(vd_versions "$T")"
cp -r "$TREE" "$D/"
id1="$(vd_wait_new_version "$T" "$before" 60)"
diff -r "$TREE" "$T/versions/$id1/input" >&2 || vd_fail "versions/$id1/input does not mirror the tree"
diff -r "$TREE" "$D/tree" >&2 || vd_fail "data/tree does not read back the sealed tree"
vd_ok "cp -r makes a tree version; data/tree reads it back"

n="$(count)"
cp -r "$TREE" "$D/"
wait_staging_empty
[ "$(count)" = "$n" ] || vd_fail "cp -r of the same tree again made a new version"
vd_ok "cp -r of the same tree again makes no new version"

before="$(vd_versions "$T")"
echo 5001 >>"$D/tree/a/one"
mv "$D/tree/a/b/two" "$D/tree/a/b/deux"
id2="$(vd_wait_new_version "$T" "$before" 60)"
cp -r "$TREE" "$IN/tree2"
echo 5001 >>"$IN/tree2/a/one"
mv "$IN/tree2/a/b/two" "$IN/tree2/a/b/deux"
diff -r "$IN/tree2" "$T/versions/$id2/input" >&2 || vd_fail "the changed tree's version is not the change"
diff -r "$IN/tree2" "$D/tree" >&2 || vd_fail "data/tree does not read back the changed tree"
diff -r "$TREE" "$T/versions/$id1/input" >&2 || vd_fail "the first tree version changed"
vd_ok "changing a sealed tree in place makes a new version; the old one is unchanged"

rm -r "$D/tree"
[ ! -e "$D/tree" ] || vd_fail "data/tree is still there after rm -r"
vd_ok "rm -r of a tree forgets it"

# Inode numbers: what readdir reports is what stat gives.
while read -r ino name; do
	[ "$(stat -c %i "$T/versions/$id2/input/a/$name")" = "$ino" ] ||
		vd_fail "readdir and stat disagree on the inode of input/a/$name"
done < <(ls -i "$T/versions/$id2/input/a")
vd_ok "readdir and stat agree on inode numbers"

wait_staging_empty
vd_ok "nothing is left in staging"

#!/usr/bin/env bash
# t_tree_meta: a tree keeps what `cp -a` copies. cp -a, rsync -a and tar x
# of a tree with relative symlinks, an absolute and a dangling one, a hard
# link, a 0600 file, a 0755 script, an empty directory and a 0750
# directory each submit one version whose input is the same tree
# (diff -r --no-dereference, equal modes for every entry, the hard link's
# st_nlink); cp -r of that input gives the tree back; a change to the
# sealed tree copies it back faithfully; a FIFO is refused with its name
# in vdfsd.log, or left out with special = skip; symlinks =
# follow-inside-tree cuts units from links that lead to a file inside the
# tree and from no other.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"

IN="$VD_WORK/in"
SRC="$IN/src"
mkdir -p "$SRC/sub/deep" "$SRC/empty" "$SRC/private"
vd_gen_text "$SRC/top.txt" 20000 3 500
vd_gen_text "$SRC/sub/f.txt" 30000 5 500
vd_gen_text "$SRC/private/p.txt" 5000 7 500
printf '#!/bin/sh\necho hello\n' >"$SRC/run.sh"
printf 'not for everyone\n' >"$SRC/secret"
printf 'outside the tree\n' >"$IN/outside.txt"
chmod 0755 "$SRC/run.sh"
chmod 0600 "$SRC/secret"
chmod 0644 "$SRC/top.txt" "$SRC/sub/f.txt" "$SRC/private/p.txt"
chmod 0755 "$SRC" "$SRC/sub" "$SRC/sub/deep" "$SRC/empty"
chmod 0750 "$SRC/private"
ln -s top.txt "$SRC/lnk"
ln -s ../top.txt "$SRC/sub/up"
ln -s ../../sub/f.txt "$SRC/sub/deep/ref"
ln -s sub "$SRC/dl"
ln -s dl/f.txt "$SRC/viadl"
ln -s /etc/passwd "$SRC/abs"
ln -s no/such/file "$SRC/dang"
ln -s ../outside.txt "$SRC/esc"
ln "$SRC/sub/f.txt" "$SRC/hard"
(cd "$IN" && tar -C "$SRC" -cf src.tar .)

# Every entry's path, type, mode and link target, as stat(1) sees them.
listing() {
	(cd "$1" && find . -printf '%P %y %m %l\n' | LC_ALL=C sort)
}
listing "$SRC" >"$IN/src.list"

cat >"$IN/paths.sh" <<'EOF'
#!/bin/sh
# One row per unit: the path inside the tree and the unit's line count.
n=$(wc -l)
echo "$VDFS_PATH,$n"
EOF
chmod +x "$IN/paths.sh"

# What a run sees, computed independently: every regular file (keep), and
# with follow-inside-tree also every link that realpath resolves to a
# regular file inside the tree, under the link's own path.
(cd "$SRC" && find . -type f -printf '%P\n' | LC_ALL=C sort | while read -r p; do
	echo "$p,$(wc -l <"$p")"
done) | LC_ALL=C sort >"$IN/expected-keep.csv"
real_src="$(realpath "$SRC")"
{
	cat "$IN/expected-keep.csv"
	(cd "$SRC" && find . -type l -printf '%P\n' | while read -r p; do
		t="$(realpath -e "$p" 2>/dev/null)" || continue
		case "$t" in "$real_src"/*) ;; *) continue ;; esac
		[ -f "$t" ] && echo "$p,$(wc -l <"$t")"
	done)
} | LC_ALL=C sort >"$IN/expected-follow.csv"
vd_note "expected with follow-inside-tree: $(tr '\n' ' ' <"$IN/expected-follow.csv")"

vd_start_daemon
vd_start_executor e1 --slots 2

# make_task NAME [CONFIG LINES...]
make_task() {
	local t="$VD_MNT/tasks/$1"
	shift
	mkdir "$t"
	cp "$IN/paths.sh" "$t/function"
	printf 'reduce = sum\nsettle = 1\n' >"$IN/config-tmp"
	for l in "$@"; do printf '%s\n' "$l" >>"$IN/config-tmp"; done
	cp "$IN/config-tmp" "$t/config"
}

# check_input TASK_DIR ID WHAT [NLINK]: input is the source tree.
check_input() {
	local t="$1" id="$2" what="$3" nlink="${4:-2}" in="$1/versions/$2/input"
	diff -r --no-dereference "$SRC" "$in" >&2 ||
		vd_fail "$what: versions/$id/input differs from the source (diff -r --no-dereference)"
	vd_ok "$what: diff -r --no-dereference of the source and versions/$id/input is empty"
	listing "$in" >"$IN/got.list"
	vd_same "$IN/got.list" "$IN/src.list" "$what: every entry has the source's type, mode (stat %a) and link target"
	[ "$(readlink "$in/abs")" = /etc/passwd ] || vd_fail "$what: readlink of input/abs is '$(readlink "$in/abs")'"
	[ "$(readlink "$in/dang")" = no/such/file ] || vd_fail "$what: readlink of input/dang is wrong"
	[ -L "$in/dang" ] && [ ! -e "$in/dang" ] || vd_fail "$what: input/dang is not a dangling symlink"
	vd_ok "$what: readlink gives the stored targets (absolute, dangling), never resolved"
	[ "$(stat -c %h "$in/hard")" = "$nlink" ] && [ "$(stat -c %h "$in/sub/f.txt")" = "$nlink" ] ||
		vd_fail "$what: st_nlink of the hard-linked names is $(stat -c %h "$in/hard"), expected $nlink"
	vd_ok "$what: the hard-linked names show st_nlink $nlink"
	vd_expect_erofs "$what: writing a 0644 file under input" sh -c "echo x >>'$in/top.txt'"
}

declare -A ID=()
# copy_in TASK HOW: copy the source into the task's data/tree with HOW.
copy_in() {
	local task="$1" how="$2" t="$VD_MNT/tasks/$1"
	case "$how" in
	cp-a) cp -a "$SRC" "$t/data/tree" ;;
	rsync-a) rsync -a "$SRC/" "$t/data/tree/" ;;
	rsync-aH) rsync -aH "$SRC/" "$t/data/tree/" ;;
	tar-x) mkdir "$t/data/tree" && tar -C "$t/data/tree" -xf "$IN/src.tar" ;;
	esac || vd_fail "$how of the tree into data/ failed"
	ID[$task]="$(vd_wait_new_version "$t" "")"
	sleep 2
	n="$(vd_versions "$t" | wc -l)"
	[ "$n" = 1 ] || vd_fail "$task: $how made $n versions: $(vd_versions "$t" | tr '\n' ' ')"
	vd_ok "$task: $how of the tree became one version, ${ID[$task]}"
}

for how in cp-a tar-x rsync-a rsync-aH; do
	make_task "$how"
	copy_in "$how" "$how"
	# rsync -a keeps no hard links (that is -H): two files of one content.
	nl=2
	[ "$how" = rsync-a ] && nl=1
	check_input "$VD_MNT/tasks/$how" "${ID[$how]}" "$how" "$nl"
done
[ "${ID[cp-a]}" = "${ID[tar-x]}" ] && [ "${ID[cp-a]}" = "${ID[rsync-aH]}" ] ||
	vd_fail "cp -a, tar x and rsync -aH gave different versions: ${ID[cp-a]} ${ID[tar-x]} ${ID[rsync-aH]}"
vd_ok "cp -a, tar x and rsync -aH of one tree are one data ID"
[ "${ID[rsync-a]}" != "${ID[cp-a]}" ] || vd_fail "a hard link is not part of the version's ID"
vd_ok "a hard link is part of the version (rsync -a without -H is another ID)"

# symlinks = keep (the default): links are in the version, no unit's input.
T="$VD_MNT/tasks/cp-a"
vd_wait_status "$T/versions/${ID[cp-a]}" done
vd_same "$T/versions/${ID[cp-a]}/result.csv" "$IN/expected-keep.csv" \
	"symlinks = keep: units come from the regular files only (the hard link's two names included)"

# cp -r of a version's input gives the tree as submitted (issue 11, 7).
mkdir "$IN/out"
cp -r "$T/versions/${ID[cp-a]}/input" "$IN/out/"
diff -r --no-dereference "$SRC" "$IN/out/input" >&2 || vd_fail "cp -r of versions/ID/input differs from the source"
[ "$(find "$IN/out/input" -type l | wc -l)" = "$(find "$SRC" -type l | wc -l)" ] ||
	vd_fail "cp -r of versions/ID/input did not copy the symlinks as symlinks"
vd_ok "cp -r versions/ID/input out/ gives the tree as submitted, symlinks as symlinks"

# A change to the sealed tree copies it back as it was, plus the change.
cp -a "$SRC" "$IN/src2"
printf 'added later\n' >"$IN/src2/added.txt"
echo 'added later' >"$T/data/tree/added.txt" || vd_fail "writing into the sealed tree failed"
id2="$(vd_wait_new_version "$T" "${ID[cp-a]}")"
diff -r --no-dereference "$IN/src2" "$T/versions/$id2/input" >&2 ||
	vd_fail "the changed tree's version $id2 differs from the source plus the change"
listing "$IN/src2" >"$IN/src2.list"
listing "$T/versions/$id2/input" >"$IN/got2.list"
vd_same "$IN/got2.list" "$IN/src2.list" "a changed sealed tree keeps every mode, link and empty directory"
[ "$(stat -c %h "$T/versions/$id2/input/hard")" = 2 ] || vd_fail "the changed tree lost its hard link"
vd_ok "a changed sealed tree keeps its hard link"

# symlinks = follow-inside-tree.
make_task follow 'symlinks = follow-inside-tree'
copy_in follow cp-a
T="$VD_MNT/tasks/follow"
vd_wait_status "$T/versions/${ID[follow]}" done
vd_same "$T/versions/${ID[follow]}/result.csv" "$IN/expected-follow.csv" \
	"follow-inside-tree: links to files inside the tree are cut into units under their own paths"
for l in abs dang esc dl; do
	grep -q "symlink $l -> .* not followed" "$VD_WORK/vdfsd.log" ||
		vd_fail "vdfsd.log does not say that symlink $l was not followed"
done
vd_ok "follow-inside-tree: links outside the tree, dangling or to a directory are not followed, and the log says so"

# A FIFO: refused with its name in the log; special = skip leaves it out.
mkdir -p "$IN/fsrc"
printf 'a\n' >"$IN/fsrc/a.txt"
mkfifo "$IN/fsrc/the-pipe"
make_task fifo
T="$VD_MNT/tasks/fifo"
if cp -a "$IN/fsrc" "$T/data/withfifo" 2>"$IN/cp-fifo.err"; then
	vd_note "cp -a of a tree with a FIFO succeeded; the seal must refuse it"
else
	vd_note "cp -a of a tree with a FIFO failed: $(cat "$IN/cp-fifo.err")"
fi
for ((i = 0; i < 40; i++)); do
	grep -q "the-pipe" "$VD_WORK/vdfsd.log" && break
	sleep 0.5
done
grep "the-pipe" "$VD_WORK/vdfsd.log" >&2 || vd_fail "vdfsd.log does not name the FIFO"
grep -q "the-pipe is a FIFO" "$VD_WORK/vdfsd.log" || vd_fail "vdfsd.log does not say the-pipe is a FIFO"
[ -z "$(vd_versions "$T")" ] || vd_fail "a tree with a FIFO was sealed: $(vd_versions "$T")"
vd_ok "a FIFO in a tree is refused with its name in vdfsd.log; no version"
printf 'reduce = sum\nsettle = 1\nspecial = skip\n' >"$T/config"
printf 'b\n' >"$T/data/withfifo/b.txt"
fid="$(vd_wait_new_version "$T" "")"
[ ! -e "$T/versions/$fid/input/the-pipe" ] || vd_fail "special = skip kept the FIFO"
[ "$(ls "$T/versions/$fid/input" | tr '\n' ' ')" = "a.txt b.txt " ] ||
	vd_fail "special = skip: input holds $(ls "$T/versions/$fid/input" | tr '\n' ' ')"
grep -q "leaving out the-pipe" "$VD_WORK/vdfsd.log" || vd_fail "vdfsd.log does not name the FIFO left out"
vd_ok "special = skip: the FIFO is left out, with a log line naming it"

# data/tree of a sealed tree reads back the tree as well.
T="$VD_MNT/tasks/tar-x"
diff -r --no-dereference "$SRC" "$T/data/tree" >&2 || vd_fail "data/tree does not read back the tree"
listing "$T/data/tree" >"$IN/data.list"
vd_same "$IN/data.list" "$IN/src.list" "data/tree of a sealed tree shows its modes and links"

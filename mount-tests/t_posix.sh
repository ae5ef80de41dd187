#!/usr/bin/env bash
# t_posix: data/ behaves like a POSIX directory. posix_ops.py makes the same
# ~70 calls (open flags, mkdir/rmdir, unlink, rename over files and
# directories and across sub-directories, truncate/ftruncate, chmod,
# utimensat, link, symlink, mkfifo) in a native directory and in data/, and
# prints what each gave (errno, or mode/size/nlink/type after it).
#   - inside a tree in data/ the two outputs must be identical;
#   - at the top of data/ they must be identical except for the calls
#     listed below, each a documented difference (docs/mount.md, "How the
#     top of data/ differs"): a sealed file is its bytes (mode 0644, times
#     of its seal), a name there is a file or a tree (no symlinks, FIFOs),
#     links at the top are names of one version, and renames between the
#     top and the inside of a tree are EXDEV.
# As root, so modes are kept exactly (docs/mount.md, "Modes").
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"
command -v python3 >/dev/null || vd_fail "python3 is needed"
OPS="$(dirname "$0")/posix_ops.py"

vd_start_daemon
mk_task() {
	mkdir "$VD_MNT/tasks/$1"
	vd_write_wc_function "$VD_MNT/tasks/$1/function"
	# Long enough that no tree is sealed (and copied back) while the
	# calls run: what is compared is the staging tree.
	echo 'settle = 300' >"$VD_MNT/tasks/$1/config"
}
mk_task intree
mk_task top
mkdir "$VD_WORK/native" "$VD_MNT/tasks/intree/data/P"

python3 "$OPS" "$VD_WORK/native" >"$VD_WORK/native.out"
python3 "$OPS" "$VD_MNT/tasks/intree/data/P" >"$VD_WORK/intree.out"
python3 "$OPS" "$VD_MNT/tasks/top/data" >"$VD_WORK/top.out"
n="$(wc -l <"$VD_WORK/native.out")"
((n > 60)) || vd_fail "posix_ops.py printed only $n lines"

if ! diff "$VD_WORK/native.out" "$VD_WORK/intree.out" >"$VD_WORK/intree.diff"; then
	cat "$VD_WORK/intree.diff" >&2
	vd_fail "inside a tree in data/, calls gave other results than on a native directory"
fi
vd_ok "inside a tree: all $n calls give what a native directory gives"

# The documented differences at the top of data/ (by call name).
allowed=(
	"create rdwr mode 0" "create mode 0600" "chmod 0" "chmod 4755" "utime explicit mtime"
	"link"
	"rename across subdirs" "rename back" "rename dir over empty dir"
	"symlink relative" "readlink" "through symlink" "symlink dangling"
	"symlink absolute" "unlink symlink" "mkfifo" "unlink fifo"
	"listing" "listing dir"
)
bad=0
while IFS= read -r -u 3 a && IFS= read -r -u 4 b; do
	[ "$a" = "$b" ] && continue
	call="${a%%:*}"
	ok=0
	for x in "${allowed[@]}"; do
		[ "$call" = "$x" ] && ok=1
	done
	if [ "$ok" = 0 ]; then
		echo "# top of data/ differs: native '$a', data/ '$b'" >&2
		bad=1
	fi
done 3<"$VD_WORK/native.out" 4<"$VD_WORK/top.out"
[ "$(wc -l <"$VD_WORK/top.out")" = "$n" ] || vd_fail "the top of data/ gave $(wc -l <"$VD_WORK/top.out") lines, native $n"
[ "$bad" = 0 ] || vd_fail "the top of data/ differs from a native directory beyond the documented differences"
vd_ok "at the top of data/: every call gives what a native directory gives, but for ${#allowed[@]} documented ones"

# What the user was refused at the top is said in the log.
grep -q 'a symlink at the top of data/ is not a file or a tree' "$VD_WORK/vdfsd.log" ||
	vd_fail "the refused symlink at the top of data/ is not explained in the log"
vd_ok "a refused symlink at the top of data/ is explained in vdfsd's log"

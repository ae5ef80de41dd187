#!/usr/bin/env bash
# t_status_cli: `vdfs status` says what is going on, in plain lines.
#   - a tree in data/ that is still settling: its files and bytes so far,
#     and when it will be sealed (or that a file in it is still open);
#     gone from status once sealed;
#   - a run under way: units done, running and queued, consistent with the
#     run's own status file;
#   - cp -r versions/<id>/input out/ gives the tree as submitted.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"
VDFS="$VD_BIN/vdfs"
vd_start_daemon
T="$VD_MNT/tasks/st"
mkdir "$T"
printf 'reduce = sum\nunit_size = 1M\nsettle = 3\n' >"$T/config"
{
	echo '#!/bin/sh'
	echo "while [ -e '$VD_WORK/SLOW' ]; do sleep 0.2; done"
	echo "exec awk '{ for (i = 1; i <= NF; i++) n[\$i]++ } END { for (w in n) print w \",\" n[w] }'"
} >"$T/function"

mkdir -p "$VD_WORK/tree/sub"
for f in a b c; do vd_gen_text "$VD_WORK/tree/$f.txt" 400000 "1$f"; done
vd_gen_text "$VD_WORK/tree/sub/d.txt" 200000 4
bytes=$(cat "$VD_WORK/tree"/*.txt "$VD_WORK/tree/sub/d.txt" | wc -c)
mkdir "$T/data/tr"
exec 7>"$T/data/tr/open.txt"
cp -r "$VD_WORK/tree/." "$T/data/tr/"
: >"$VD_WORK/tree/open.txt"
# What status says follows the tree within the settle thread's tick; the
# copy is done, so wait for all five files to be counted.
line=""
for ((i = 0; i < 100; i++)); do
	line="$("$VDFS" status --state "$VD_STATE" | grep 'st/data/tr: settling' || true)"
	case "$line" in *"settling: 5 files, "*) break ;; esac
	sleep 0.2
done
vd_note "$line"
case "$line" in
*"settling: 5 files, "*"seals once no file in it is open"*) ;;
*) vd_fail "vdfs status on a tree with an open file: '$line'" ;;
esac
exec 7>&-
line=""
for ((i = 0; i < 50; i++)); do
	line="$("$VDFS" status --state "$VD_STATE" | grep 'st/data/tr: settling' || true)"
	case "$line" in *"settling: 5 files, "*"seals in "*) break ;; esac
	sleep 0.2
done
vd_note "$line"
case "$line" in
*"settling: 5 files, "*"seals in "*" s unless it changes") ;;
*) vd_fail "vdfs status on a quiet tree: '$line'" ;;
esac
human="$(awk -v b="$bytes" 'BEGIN { printf "%.1f MB", b / 1000000 }')"
vd_note "the tree holds $bytes bytes ($human)"
id="$(vd_wait_new_version "$T" "" 60)"
for ((i = 0; i < 50; i++)); do
	"$VDFS" status --state "$VD_STATE" | grep -q 'settling' || break
	sleep 0.2
done
"$VDFS" status --state "$VD_STATE" | grep -q 'settling' && vd_fail "status still shows the sealed tree as settling"
vd_ok "vdfs status: a settling tree with its files and when it seals; gone once sealed"

rm -rf "$VD_WORK/out"
cp -r "$T/versions/$id/input" "$VD_WORK/out"
diff -r "$VD_WORK/tree" "$VD_WORK/out" >/dev/null || vd_fail "cp -r of versions/$id/input differs from the tree"
[ -z "$(find "$VD_WORK/out" -type l)" ] || vd_fail "cp -r of input gave symlinks"
vd_ok "cp -r versions/<id>/input out/ gives the tree as submitted"

touch "$VD_WORK/SLOW"
vd_gen_text "$VD_WORK/big.txt" 6000000 5
cp "$VD_WORK/big.txt" "$T/data/big.txt"
L="$(readlink "$T/latest")"
L="${L#versions/}"
# The tree's run waits too; cancel it, so that big.txt's has the executor.
"$VDFS" cancel st "$id" --state "$VD_STATE" >/dev/null || vd_fail "vdfs cancel of the tree's run"
vd_at_exit "rm -f '$VD_WORK/SLOW'"
vd_start_executor e1 --slots 2
line=""
for ((i = 0; i < 100; i++)); do
	line="$("$VDFS" status --state "$VD_STATE" | grep "st/${L:0:12} .*units done, 2 running" || true)"
	[ -n "$line" ] && break
	sleep 0.2
done
vd_note "$line"
case "$line" in
*" 0/"*" units done, 2 running, "*" queued"*) ;;
*) vd_fail "vdfs status of a run under way: '$line'" ;;
esac
units="$(sed -n 's/^.* 0\/\([0-9]*\) units done.*$/\1/p' <<<"$line")"
grep -q "/$units units" "$T/latest/status" || vd_fail "status says $units units, the run's status: $(cat "$T/latest/status")"
rm -f "$VD_WORK/SLOW"
vd_wait_status "$T/latest" done
"$VDFS" status --state "$VD_STATE" | grep -q 'units done' && vd_fail "a done run is still shown as under way"
vd_ok "vdfs status: a run under way with its units done, running and queued"

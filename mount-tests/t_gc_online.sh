#!/usr/bin/env bash
# t_gc_online: gc while a 200 MB cp and a run are in progress.
# The 200 MB file shares its first half with a version that was just
# deleted, so the cp reuses exactly the chunks gc finds unreferenced: the
# race in which other stores' prune deleted chunks a running backup had
# just referenced. vdfs gc runs again and again while the cp goes on and
# while a slow run computes. Afterwards:
#   - vdfs fsck --full is clean;
#   - the new version reads back byte-identical and its result equals what
#     standard tools compute; the run that was going on completes with the
#     right result too.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"
VDFS="$VD_BIN/vdfs"
MB="${VD_GC_ONLINE_MB:-200}"
vd_start_daemon
vd_start_executor e1 --slots 2
FN='#!/bin/sh
while [ -e "'"$VD_WORK"'/SLOW" ]; do sleep 0.1; done
exec awk '"'"'{ n++; b += length($0) + 1 } END { print "lines," n+0; print "bytes," b+0 }'"'"''
expected() {
	echo "bytes,$(wc -c <"$1")"
	echo "lines,$(wc -l <"$1")"
}
T="$VD_MNT/tasks/on"
mkdir "$T"
printf 'reduce = sum\nunit_size = 8M\n' >"$T/config"
printf '%s\n' "$FN" >"$T/function"
vd_gen_text "$VD_WORK/big" $((MB * 1000000)) 3
head -c $((MB * 500000)) "$VD_WORK/big" >"$VD_WORK/half"
vd_gen_text "$VD_WORK/other" 20000000 4

# The half, as a version that is then deleted: its chunks are garbage.
cp "$VD_WORK/half" "$T/data/half.txt"
H="$(readlink "$T/latest")"; H="${H#versions/}"
vd_wait_status "$T/versions/$H" done
"$VDFS" rm "$H" --state "$VD_STATE" >/dev/null || vd_fail "vdfs rm of the half failed"

# A run that stays in progress (slow while SLOW exists).
touch "$VD_WORK/SLOW"
cp "$VD_WORK/other" "$T/data/other.txt"
O="$(readlink "$T/latest")"; O="${O#versions/}"
vd_wait_status "$T/versions/$O" running

# The big cp, with gc after gc while it runs.
cp "$VD_WORK/big" "$T/data/big.txt" &
cp_pid=$!
gcs=0
while vd__alive "$cp_pid"; do
	"$VDFS" gc --state "$VD_STATE" >>"$VD_WORK/gc.out" 2>&1 || vd_fail "vdfs gc during the cp failed"
	gcs=$((gcs + 1))
done
wait "$cp_pid" || vd_fail "cp of $MB MB into data/ failed"
vd_note "$gcs gcs ran during the cp"
[ "$gcs" -ge 2 ] || vd_note "only $gcs gc ran during the cp (a fast disk); the race was still tried"
B="$(readlink "$T/latest")"; B="${B#versions/}"
[ "$B" != "$O" ] || vd_fail "no new version for big.txt"
"$VDFS" gc --state "$VD_STATE" >>"$VD_WORK/gc.out" 2>&1 || vd_fail "vdfs gc during the run failed"
rm -f "$VD_WORK/SLOW"
vd_wait_status "$T/versions/$O" done
vd_wait_status "$T/versions/$B" done
"$VDFS" gc --state "$VD_STATE" >>"$VD_WORK/gc.out" 2>&1 || vd_fail "vdfs gc after the runs failed"

if ! "$VDFS" fsck --full --state "$VD_STATE" >"$VD_WORK/fsck.out" 2>&1; then
	cat "$VD_WORK/fsck.out" >&2
	vd_fail "vdfs fsck --full after gc during cp and run is not clean"
fi
vd_ok "vdfs fsck --full is clean after $gcs gcs during a $MB MB cp and a run"
cmp "$T/versions/$B/input" "$VD_WORK/big" || vd_fail "the version cp made during gc differs from the file"
expected "$VD_WORK/big" >"$VD_WORK/big.expected"
vd_same "$T/versions/$B/result.csv" "$VD_WORK/big.expected" "the result of the version made during gc"
expected "$VD_WORK/other" >"$VD_WORK/other.expected"
vd_same "$T/versions/$O/result.csv" "$VD_WORK/other.expected" "the result of the run that was going on during gc"
# And the same after a restart: what the catalog says is on disk.
vd_kill_daemon
vd_start_daemon
cmp "$T/versions/$B/input" "$VD_WORK/big" || vd_fail "after a restart the version differs"
vd_ok "after a restart the version made during gc still reads back byte-identical"

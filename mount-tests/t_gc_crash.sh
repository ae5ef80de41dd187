#!/usr/bin/env bash
# t_gc_crash: kill -9 of vdfsd while it collects garbage, at random moments.
# A store with 60 versions (each a few lines edited, so that packs end up
# partly live, partly dead) has 40 of them deleted and is saved. Then,
# VD_GC_CRASH_N times (default 20): the saved state is put back, vdfsd
# starts, `vdfs gc` starts, and vdfsd is killed -9 after a random delay:
# half of them within how long the whole request took, half within the
# span of the gc itself (both measured on an uninterrupted run of the same
# gc). After each kill vdfsd starts again and:
#   - vdfs fsck --full finds no problem;
#   - every version that was not deleted reads back byte-identical, input
#     and result, and the deleted ones stay deleted;
#   - a gc then runs to the end and fsck --full is still clean.
# The random seed is printed (VD_GC_CRASH_SEED reproduces a run).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"
VDFS="$VD_BIN/vdfs"
N="${VD_GC_CRASH_N:-20}"
NV=60
SEED="${VD_GC_CRASH_SEED:-$$}"
RANDOM=$SEED
vd_note "seed $SEED, $N kills"

FN='#!/bin/sh
exec awk '"'"'{ n++; b += length($0) + 1 } END { print "lines," n+0; print "bytes," b+0 }'"'"''
expected() {
	echo "bytes,$(wc -c <"$1")"
	echo "lines,$(wc -l <"$1")"
}

# The store is built with raw chunks: the 60 versions are sized so that
# gc both deletes packs and compacts partly dead ones, which zstd's
# smaller chunks would change (packs of compressed chunks are compacted in
# test_store and collected in t_store_format). The gcs below run with the
# default level: what compaction moves it copies as stored.
vd_start_daemon --chunk-size 16384 --compress none
vd_start_executor e1 --slots 2
T="$VD_MNT/tasks/c"
mkdir "$T"
printf 'reduce = sum\nunit_size = 256K\n' >"$T/config"
printf '%s\n' "$FN" >"$T/function"
vd_gen_text "$VD_WORK/base" 3000000 11
lines=$(wc -l <"$VD_WORK/base")
# Version i is the base with four lines of its own edited; a kept version
# (every third) also has one of the edits of the deleted version before
# it. So the packs of deleted versions are mostly, not wholly, dead: gc
# both deletes packs (results, outputs) and compacts them.
edit_of() { echo $(( ($1 * 7919 + $2 * 104729) % lines + 1 )); }
ids=()
for i in $(seq 0 "$((NV - 1))"); do
	script=""
	for j in 1 2 3 4; do
		script="$script$(edit_of "$i" "$j")s/\$/ e$i.$j/;"
	done
	if [ $((i % 3)) = 2 ]; then
		script="$script$(edit_of $((i - 1)) 1)s/\$/ e$((i - 1)).1/;"
	fi
	sed "$script" "$VD_WORK/base" >"$VD_WORK/text"
	cp "$VD_WORK/text" "$T/data/v.txt"
	id="$(readlink "$T/latest")"
	id="${id#versions/}"
	vd_wait_status "$T/versions/$id" done
	ids+=("$id")
	if [ $((i % 3)) = 2 ]; then
		cp "$VD_WORK/text" "$VD_WORK/keep-$id"
		expected "$VD_WORK/text" >"$VD_WORK/keep-$id.expected"
	fi
done
for i in $(seq 0 "$((NV - 1))"); do
	[ $((i % 3)) = 2 ] && continue
	"$VDFS" rm "${ids[$i]}" --state "$VD_STATE" >/dev/null || vd_fail "vdfs rm ${ids[$i]}"
done
kept=(); for f in "$VD_WORK"/keep-*.expected; do f="${f%.expected}"; kept+=("${f##*/keep-}"); done
[ "${#kept[@]}" = $((NV / 3)) ] || vd_fail "expected $((NV / 3)) kept versions, have ${#kept[@]}"
vd_ok "$NV versions made, $((NV - NV / 3)) deleted"
vd_kill_executor e1
vd_kill_daemon
cp -a "$VD_STATE" "$VD_WORK/saved"

restore() {
	rm -rf "$VD_STATE"
	cp -a "$VD_WORK/saved" "$VD_STATE"
}

# Everything a user can see is as it should be.
check_store() {
	local what="$1" id n
	if ! "$VDFS" fsck --full --state "$VD_STATE" >"$VD_WORK/fsck.out" 2>&1; then
		cat "$VD_WORK/fsck.out" >&2
		vd_fail "$what: vdfs fsck --full is not clean"
	fi
	n=$(ls "$T/versions" | wc -l)
	[ "$n" = $((NV / 3)) ] || vd_fail "$what: versions/ lists $n, not the $((NV / 3)) kept"
	for id in "${kept[@]}"; do
		cmp -s "$T/versions/$id/input" "$VD_WORK/keep-$id" ||
			vd_fail "$what: the input of kept version $id differs"
		cmp -s "$T/versions/$id/result.csv" "$VD_WORK/keep-$id.expected" ||
			vd_fail "$what: the result of kept version $id differs"
	done
}

# How long a whole gc takes here, to aim the kills inside it: on a copy
# of the saved state, as every kill below will be.
restore
vd_start_daemon --chunk-size 16384
t0=$(date +%s%N)
"$VDFS" gc --json --state "$VD_STATE" >"$VD_WORK/gc.json" || vd_fail "an uninterrupted gc failed"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
vd_note "a whole gc: $ms ms: $(cat "$VD_WORK/gc.json")"
/usr/bin/python3 -c 'import json,sys; g=json.load(open(sys.argv[1])); assert g["packs_deleted"] > 0 and g["packs_compacted"] > 0, g' \
	"$VD_WORK/gc.json" || vd_fail "the gc to be interrupted neither deletes nor compacts packs"
check_store "after an uninterrupted gc"
vd_kill_daemon
# The daemon's own time for it (the rest of ms is the CLI and HTTP): half
# the kills fall anywhere in the request, half within the gc itself.
gc_ms=$(/usr/bin/python3 -c 'import json,sys; g=json.load(open(sys.argv[1])); print(g["mark_ms"] + g["sweep_ms"] + g["compact_ms"])' "$VD_WORK/gc.json")
[ "$ms" -ge 20 ] || ms=20
[ "$gc_ms" -ge 10 ] || gc_ms=10
[ "$gc_ms" -le "$ms" ] || gc_ms=$ms

mid=0
for k in $(seq 1 "$N"); do
	restore
	vd_start_daemon --chunk-size 16384
	delay=$(( RANDOM * 32768 + RANDOM ))
	if [ $((k % 2)) = 1 ]; then
		delay=$(( delay % (ms + ms / 4) ))
	else
		delay=$(( ms - gc_ms + delay % gc_ms ))
	fi
	log_from=$(wc -l <"$VD_WORK/vdfsd.log")
	"$VDFS" gc --json --state "$VD_STATE" >"$VD_WORK/gc-$k.json" 2>&1 &
	gc_pid=$!
	sleep "$(awk -v d="$delay" 'BEGIN { printf "%.3f", d / 1000 }')"
	vd_kill_daemon KILL
	st=0
	wait "$gc_pid" || st=$?
	# Where the kill fell: before gc began, inside it, or after.
	where=after
	if ! tail -n "+$((log_from + 1))" "$VD_WORK/vdfsd.log" | grep -q 'gc: begins'; then
		where=before
	elif ! tail -n "+$((log_from + 1))" "$VD_WORK/vdfsd.log" | grep -q 'gc: .* swept'; then
		where=inside
		mid=$((mid + 1))
	fi
	vd_note "kill $k after $delay ms ($where the gc): vdfs gc exit $st"
	vd_start_daemon --chunk-size 16384
	check_store "kill $k (after $delay ms)"
	"$VDFS" gc --state "$VD_STATE" >/dev/null || vd_fail "kill $k: gc after the restart failed"
	check_store "kill $k, then a whole gc"
	vd_kill_daemon
done
vd_ok "$N kills -9 around gc, $mid of them inside it: fsck --full clean, every kept version byte-identical"
[ "$mid" -gt 0 ] || vd_fail "no kill fell inside the gc (the machine is too fast or too slow for the aim)"

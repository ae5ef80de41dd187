#!/usr/bin/env bash
# bench-gc.sh - what gc and fsck --full cost on a big store.
#
#   tools/bench-gc.sh [SIZE_MIB] [FILES]    (10240, 20)
#
# Environment: VDFS_BUILD (default build/), CHUNK (vdfsd --chunk-size of
# the new store, default 131072: 10 GiB is then about 80,000 chunks),
# TMPDIR (work directory: needs SIZE_MIB of free space and a little more).
#
# Makes a store of SIZE_MIB MiB of random bytes in FILES versions (written
# straight into data/ from /dev/urandom), deletes every other version, and
# runs `vdfs gc`: it prints the time of its phases (listing and mark, sweep,
# packs) as the daemon measured them and vdfsd's peak memory during the gc
# (VmHWM, reset just before through /proc/PID/clear_refs) against its
# resident memory just before. Then `vdfs fsck --full` against `cat` of
# the same pack files to /dev/null, both with a cold page cache when it can
# drop it (root) and warm, run side by side: MB/s and the ratio.
set -euo pipefail

size_mib=${1:-10240}
nfiles=${2:-20}
chunk=${CHUNK:-131072}
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../mount-tests/lib.sh
. "$root/mount-tests/lib.sh"
VD_TEST_NAME=bench-gc
vd_setup "${VDFS_BUILD:-$root/build}" >&2
VDFS="$VD_BIN/vdfs"

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
jget() { /usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
drop() {
	sync
	if [ -w /proc/sys/vm/drop_caches ]; then
		echo 3 >/proc/sys/vm/drop_caches
		return 0
	fi
	return 1
}

vd_start_daemon --chunk-size "$chunk" >&2
T="$VD_MNT/tasks/bench"
mkdir "$T"
per=$((size_mib / nfiles))
t0=$(now_ms)
ids=()
for i in $(seq 1 "$nfiles"); do
	head -c "$((per * 1048576))" /dev/urandom >"$T/data/f$i.bin"
	id="$(readlink "$T/latest")"
	ids+=("${id#versions/}")
done
t1=$(now_ms)
"$VDFS" du --state "$VD_STATE" >"$VD_WORK/du0.txt"
echo "store: $nfiles versions of $per MiB written in $(( (t1 - t0) / 1000 )) s"
i=0
for id in "${ids[@]}"; do
	[ $((i % 2)) = 0 ] && "$VDFS" rm "$id" --task bench --state "$VD_STATE" >/dev/null
	i=$((i + 1))
done

pid=$VD_DAEMON_PID
rss0=$(status_kb "$pid" VmRSS)
echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true
t0=$(now_ms)
"$VDFS" gc --json --state "$VD_STATE" >"$VD_WORK/gc.json"
t1=$(now_ms)
hwm=$(status_kb "$pid" VmHWM)
echo
echo "gc of $(jget "$VD_WORK/gc.json" chunks_total) chunks in $(jget "$VD_WORK/gc.json" packs_total) packs ($(jget "$VD_WORK/gc.json" store_bytes_before) bytes), half of them deleted:"
printf '  %-28s %8s ms\n' "list + mark" "$(jget "$VD_WORK/gc.json" mark_ms)" \
	"sweep (one batch)" "$(jget "$VD_WORK/gc.json" sweep_ms)" \
	"packs (delete, compact)" "$(jget "$VD_WORK/gc.json" compact_ms)" \
	"whole request (vdfs gc)" "$((t1 - t0))"
printf '  %-28s %8s\n' "chunks swept" "$(jget "$VD_WORK/gc.json" chunks_swept)" \
	"bytes reclaimed" "$(jget "$VD_WORK/gc.json" bytes_reclaimed)" \
	"packs deleted" "$(jget "$VD_WORK/gc.json" packs_deleted)"
printf '  %-28s %8s KiB (resident before: %s KiB, peak during gc: %s KiB)\n' \
	"vdfsd peak - resident before" "$((hwm - rss0))" "$rss0" "$hwm"

packs_bytes=$(cat "$VD_STATE"/packs/*.pack | wc -c)
mb=$(awk -v b="$packs_bytes" 'BEGIN { printf "%.1f", b / 1e6 }')
echo
echo "fsck --full against cat of the packs ($mb MB):"
for cache in cold warm; do
	if [ "$cache" = cold ] && ! drop; then
		echo "  (cannot drop the page cache: cold case skipped)"
		continue
	fi
	[ "$cache" = warm ] && cat "$VD_STATE"/packs/*.pack >/dev/null
	t0=$(now_ms); cat "$VD_STATE"/packs/*.pack >/dev/null; t1=$(now_ms)
	cat_ms=$((t1 - t0 > 0 ? t1 - t0 : 1))
	[ "$cache" = cold ] && drop
	t0=$(now_ms)
	"$VDFS" fsck --full --json --state "$VD_STATE" >"$VD_WORK/fsck.json" ||
		echo "  fsck --full found problems: $(cat "$VD_WORK/fsck.json")"
	t1=$(now_ms)
	fsck_ms=$((t1 - t0 > 0 ? t1 - t0 : 1))
	awk -v c="$cache" -v b="$packs_bytes" -v cm="$cat_ms" -v fm="$fsck_ms" 'BEGIN {
		printf "  %-5s cat %8.1f MB/s (%d ms)   fsck --full %8.1f MB/s (%d ms)   ratio %.2f\n",
			c, b / 1e3 / cm, cm, b / 1e3 / fm, fm, cm / fm }'
done

#!/usr/bin/env bash
# bench-chunks.sh - what the store's average chunk size costs besides the
# bytes it saves (that is `vdfs bench --cases store`, VDFS_BENCH_CHUNK=N):
# the index, the manifests and the operations that walk them.
#
#   tools/bench-chunks.sh [SIZE_MIB] [SIZES]   (default 1024 MiB; sizes
#                                               "65536 131072 262144 1048576")
#
# Per chunk size, on a fresh state dir: cp of SIZE_MIB of text into a task's
# data/ (returns once sealed); the chunks and the catalog's size (du of
# state/catalog after a restart, which flushes and compacts RocksDB's log);
# the restart, from vdfsd's start to the mount being there; the first byte
# of the version's input after a restart and dropped caches (its manifest
# is read whole); `vdfs fsck`, `vdfs fsck --full` and `vdfs gc`, each
# timed. The text is mount-tests/lib.sh's vd_gen_text. VDFS_BUILD picks the
# build (default build/). Run as root to drop caches.
set -euo pipefail

size_mib=${1:-1024}
sizes=${2:-65536 131072 262144 1048576}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${VDFS_BUILD:-$root/build}
[ -x "$build/bin/vdfsd" ] || { echo "bench-chunks: build first (tools/setup.sh)" >&2; exit 2; }

work=$(mktemp -d "${VDFS_BENCH_DIR:-/var/tmp}/vdfs-bench-chunks.XXXXXX")
pid=""
cleanup() {
	fusermount3 -uz "$work/mnt" 2>/dev/null || true
	[ -n "$pid" ] && kill "$pid" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

vd_gen_text() { (. "$root/mount-tests/lib.sh" && vd_gen_text "$@"); }
echo "generating ${size_mib} MiB of text..." >&2
vd_gen_text "$work/text" "$((size_mib * 1048576))" 7
truncate -s "$((size_mib * 1048576))" "$work/text"

now() { date +%s.%N; }
dt() { echo "$2 - $1" | bc; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }

# start CHUNK: vdfsd on $work/state; t_up is the seconds to the mount.
start() {
	local t0
	t0=$(now)
	"$build/bin/vdfsd" --foreground --state "$work/state" --listen 127.0.0.1:0 \
		--chunk-size "$1" "$work/mnt" >/dev/null 2>>"$work/vdfsd.log" &
	pid=$!
	for _ in $(seq 2000); do
		grep -q " $work/mnt fuse" /proc/mounts && break
		sleep 0.01
	done
	t_up=$(dt "$t0" "$(now)")
}
stop() {
	fusermount3 -u "$work/mnt"
	wait "$pid" || true
	pid=""
}
timed() {
	local t0
	t0=$(now)
	"$@" >/dev/null 2>&1 || { echo "bench-chunks: $* failed" >&2; exit 1; }
	dt "$t0" "$(now)"
}

printf '%-9s %8s %8s %11s %9s %10s %8s %9s %7s\n' chunk "cp s" chunks "catalog KiB" \
	"start s" "1st byte s" "fsck s" "--full s" "gc s"
for c in $sizes; do
	rm -rf "$work/state"
	mkdir -p "$work/state" "$work/mnt"
	start "$c"
	mkdir "$work/mnt/tasks/b"
	cat "$work/text" >/dev/null
	t0=$(now)
	cp "$work/text" "$work/mnt/tasks/b/data/f"
	t_cp=$(dt "$t0" "$(now)")
	n=$("$build/bin/vdfs" du --state "$work/state" 2>/dev/null | awk '/^chunks: / { gsub(",", "", $2); print $2 }')
	stop
	# Twice: the first start after the ingest replays RocksDB's log.
	start "$c"
	stop
	kib=$(du -sk "$work/state/catalog" | awk '{ print $1 }')
	drop
	start "$c"
	t_start=$t_up
	v=$(readlink "$work/mnt/tasks/b/latest")
	t0=$(now)
	head -c 1 "$work/mnt/tasks/b/$v/input" >/dev/null
	t_first=$(dt "$t0" "$(now)")
	t_fsck=$(timed "$build/bin/vdfs" fsck --state "$work/state")
	drop
	t_full=$(timed "$build/bin/vdfs" fsck --full --state "$work/state")
	t_gc=$(timed "$build/bin/vdfs" gc --state "$work/state")
	stop
	printf '%-9s %8.2f %8s %11s %9.2f %10.3f %8.2f %9.2f %7.2f\n' "$c" "$t_cp" "${n:-?}" "$kib" \
		"$t_start" "$t_first" "$t_fsck" "$t_full" "$t_gc"
done

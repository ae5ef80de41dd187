#!/usr/bin/env bash
# bench-compress.sh - what per-chunk compression costs at ingest: `cp` of one
# file into a fresh vdfsd task's data/ (cp returns once the version is
# sealed), for random bytes and for text, at each --compress setting.
#
#   tools/bench-compress.sh [SIZE_MIB] [ROUNDS]      (default 256 MiB, 3 rounds)
#
# Per input and setting: the median wall time of the cp, vdfsd's CPU time
# over it (utime + stime from /proc), and the bytes its pack files hold.
# VDFS_BUILD picks the build (default build/); VDFS_COMPRESS the settings
# (default "none zstd:1 zstd:3"; "default" runs vdfsd without the option,
# which is how to measure a build from before compression). The text is
# mount-tests/lib.sh's vd_gen_text (lines of made-up words), the random
# bytes /dev/urandom. Rounds alternate between the settings, so that a
# machine busy with something else weighs on each alike.
set -euo pipefail

size_mib=${1:-256}
rounds=${2:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${VDFS_BUILD:-$root/build}
settings=${VDFS_COMPRESS:-none zstd:1 zstd:3}
[ -x "$build/bin/vdfsd" ] || { echo "bench-compress: build first (tools/setup.sh)" >&2; exit 2; }

work=$(mktemp -d "${VDFS_BENCH_DIR:-/var/tmp}/vdfs-bench-compress.XXXXXX")
pid=""
cleanup() {
	fusermount3 -uz "$work/mnt" 2>/dev/null || true
	[ -n "$pid" ] && kill "$pid" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=../mount-tests/lib.sh
vd_gen_text() { (. "$root/mount-tests/lib.sh" && vd_gen_text "$@"); }
echo "generating ${size_mib} MiB of random bytes and of text..." >&2
head -c "$((size_mib * 1048576))" /dev/urandom >"$work/random"
vd_gen_text "$work/text" "$((size_mib * 1048576))" 7
truncate -s "$((size_mib * 1048576))" "$work/text"

cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# one INPUT SETTING: one round; prints "wall cpu pack_bytes".
one() {
	local args=() c0 c1 t0 t1
	[ "$2" = default ] || args=(--compress "$2")
	rm -rf "$work/state"
	mkdir -p "$work/state" "$work/mnt"
	"$build/bin/vdfsd" --foreground --state "$work/state" --listen 127.0.0.1:0 "${args[@]}" \
		"$work/mnt" 2>>"$work/vdfsd.log" &
	pid=$!
	for _ in $(seq 200); do
		grep -q " $work/mnt fuse" /proc/mounts && break
		sleep 0.05
	done
	mkdir "$work/mnt/tasks/b"
	cat "$work/$1" >/dev/null
	c0=$(cpu "$pid")
	t0=$(date +%s.%N)
	cp "$work/$1" "$work/mnt/tasks/b/data/f"
	t1=$(date +%s.%N)
	c1=$(cpu "$pid")
	fusermount3 -u "$work/mnt"
	wait "$pid" || true
	pid=""
	echo "$(echo "$t1 - $t0" | bc) $(echo "($c1 - $c0) / $(getconf CLK_TCK)" | bc -l) \
$(find "$work/state/packs" -name '*.pack' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')"
}

declare -A res=()
for ((r = 1; r <= rounds; r++)); do
	for input in random text; do
		for s in $settings; do
			res["$input $s"]+="$(one "$input" "$s")"$'\n'
		done
	done
done
med() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
printf '%-7s %-8s %10s %12s %14s %7s\n' input setting "wall s" "vdfsd cpu s" "pack bytes" ratio
for input in random text; do
	for s in $settings; do
		rows="${res["$input $s"]}"
		w=$(printf '%s' "$rows" | awk '{ print $1 }' | med)
		c=$(printf '%s' "$rows" | awk '{ print $2 }' | med)
		p=$(printf '%s' "$rows" | awk '{ print $3 }' | med)
		printf '%-7s %-8s %10.3f %12.3f %14d %6.2fx\n' "$input" "$s" "$w" "$c" "$p" \
			"$(echo "$size_mib * 1048576 / $p" | bc -l)"
	done
done

#!/usr/bin/env bash
# bench-ingest.sh - wall time of `cp` of one file into a vdfs task's data/
# against the same `cp` into libfuse's passthrough_ll example and into a
# native directory, all on the same disk, alternated, several rounds.
#
#   tools/bench-ingest.sh [SIZE_MIB] [ROUNDS]      (default 1024 MiB, 3 rounds)
#
# The vdfs time includes sealing: cp returns only after the version is
# chunked, hashed, written and fsync'd (seal happens in flush). The others
# only reach the page cache. Prints medians and the ratios.
set -euo pipefail

size_mib=${1:-1024}
rounds=${2:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${VDFS_BUILD:-$root/build}
[ -x "$build/bin/vdfsd" ] || { echo "bench-ingest: build first (tools/setup.sh)" >&2; exit 2; }

work=$(mktemp -d "${VDFS_BENCH_DIR:-/var/tmp}/vdfs-bench.XXXXXX")
pids=()
mounts=()
cleanup() {
	for m in "${mounts[@]}"; do fusermount3 -uz "$m" 2>/dev/null || true; done
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

# The baseline is built from the libfuse examples Debian ships.
ex=/usr/share/doc/libfuse3-dev/examples
mkdir -p "$build/bench"
if [ ! -x "$build/bench/passthrough_ll" ]; then
	# pkg-config's output is meant to split into separate flags.
	# shellcheck disable=SC2046
	gcc -O2 -Wall -o "$build/bench/passthrough_ll" "$ex/passthrough_ll.c" \
		$(pkg-config fuse3 --cflags --libs)
fi

wait_mount() {
	for _ in $(seq 200); do
		grep -q " $1 fuse" /proc/mounts && return 0
		sleep 0.05
	done
	echo "bench-ingest: $1 did not mount" >&2
	return 1
}

mkdir -p "$work"/{src,native,pt_src,pt_mnt,state,mnt}
echo "generating a ${size_mib} MiB text file..." >&2
# Text lines of varied length, so the chunker cuts on newlines as it would
# for real data (zeros would be one long record).
awk -v n="$size_mib" 'BEGIN { srand(7); line = "";
	for (i = 0; i < 64; i++) line = line sprintf("%08x ", int(rand() * 2^31));
	total = n * 1048576; done = 0; k = 0;
	while (done < total) { s = k " " substr(line, 1 + (k % 50), 200) "\n";
		printf "%s", s; done += length(s); k++ } }' |
	head -c "$((size_mib * 1048576))" >"$work/src/data.txt"

"$build/bench/passthrough_ll" -o source="$work/pt_src" "$work/pt_mnt" 2>/dev/null &
pids+=($!)
mounts+=("$work/pt_mnt")
wait_mount "$work/pt_mnt"

# vdfs gets a fresh store each round, so that every round seals 1 GiB of
# new chunks (a second cp of known content would only hash and dedup).
start_vdfs() {
	rm -rf "$work/state"
	mkdir -p "$work/state"
	"$build/bin/vdfsd" --foreground --state "$work/state" --listen 127.0.0.1:0 \
		"$work/mnt" 2>>"$work/vdfsd.log" &
	vdfs_pid=$!
	pids+=("$vdfs_pid")
	mounts+=("$work/mnt")
	wait_mount "$work/mnt"
	mkdir "$work/mnt/tasks/bench"
}
stop_vdfs() {
	fusermount3 -u "$work/mnt"
	wait "$vdfs_pid" 2>/dev/null || true
}

now() { date +%s.%N; }
timed() { local t0; t0=$(now); "$@"; awk -v a="$(now)" -v b="$t0" 'BEGIN { printf "%.3f", a - b }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

declare -a t_native t_pt t_vdfs
for r in $(seq "$rounds"); do
	sync
	t_native+=("$(timed cp "$work/src/data.txt" "$work/native/d$r")")
	sync
	t_pt+=("$(timed cp "$work/src/data.txt" "$work/pt_mnt/d$r")")
	sync
	start_vdfs
	t_vdfs+=("$(timed cp "$work/src/data.txt" "$work/mnt/tasks/bench/data/d$r")")
	stop_vdfs
	rm -f "$work/native/d$r" "$work/pt_src/d$r"
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
mn=$(median "${t_native[@]}")
mp=$(median "${t_pt[@]}")
mv=$(median "${t_vdfs[@]}")
printf '\ncp of %d MiB, %d rounds (seconds)\n' "$size_mib" "$rounds"
printf '%-22s %8s   %s\n' case median "all rounds"
printf '%-22s %8.3f   %s\n' native "$mn" "${t_native[*]}"
printf '%-22s %8.3f   %s\n' passthrough_ll "$mp" "${t_pt[*]}"
printf '%-22s %8.3f   %s\n' "vdfs data/ (sealed)" "$mv" "${t_vdfs[*]}"
printf '\nratio vdfs/passthrough_ll: median %s\n' "$(div "$mv" "$mp")"
printf 'ratio vdfs/native:         median %s\n' "$(div "$mv" "$mn")"

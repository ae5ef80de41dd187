#!/usr/bin/env bash
# bench-put.sh - what submitting and fetching over HTTP cost, against the
# local baselines, side by side in one run on one daemon.
#
#   tools/bench-put.sh [SIZE_MIB] [RUNS]    (1024, 3)
#
# Environment: VDFS_BUILD (default build/), CHUNK (vdfsd --chunk-size of the
# new store; default: vdfsd's own, 1 MiB), TMPDIR (work directory: needs
# about 6 x SIZE_MIB of free space).
#
# Rows (each the median of RUNS, the order of the pair alternating):
#   cp into the mount          a fresh text file of SIZE_MIB into data/
#   vdfs put (first)           another fresh file of the same size, nothing
#                              of it stored: every chunk is sent
#   vdfs put (10 lines edited) that file with 10 lines edited at scattered
#                              places: bytes received by the daemon
#                              (vdfs_http_received_bytes_total) and time
#   curl -o result.csv         a SIZE_MIB result (the function is cat)
#   vdfs get result.csv        the same URL through vdfs get -o
# with the ratios put/cp, put-edited/put, get/curl. Loopback only: what a
# LAN adds is its bandwidth, the same for both sides of each pair.
set -euo pipefail

size_mib=${1:-1024}
runs=${2:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../mount-tests/lib.sh
. "$root/mount-tests/lib.sh"
VD_TEST_NAME=bench-put
vd_setup "${VDFS_BUILD:-$root/build}" >&2
VDFS="$VD_BIN/vdfs"

now_ms() { echo $(($(date +%s%N) / 1000000)); }
received() {
	curl -sf -H "Authorization: Bearer $(cat "$VD_STATE/token")" "$VD_URL/metrics" |
		awk '$1 == "vdfs_http_received_bytes_total" { print $2 }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

args=()
[ -n "${CHUNK:-}" ] && args+=(--chunk-size "$CHUNK")
# No executor and no function while put and cp are timed: runs would
# compete for the CPU, and their results count as received bytes.
vd_start_daemon "${args[@]}" >&2
"$VDFS" user add bench --role submitter --state "$VD_STATE" >"$VD_WORK/bench.tok" 2>/dev/null
export VDFS_SERVER="$VD_URL" VDFS_TOKEN_FILE="$VD_WORK/bench.tok"
printf '#!/bin/sh\nexec cat\n' >"$VD_WORK/cat.sh"
"$VDFS" task create put >/dev/null
mkdir "$VD_MNT/tasks/cp"

bytes=$((size_mib * 1048576))
: >"$VD_WORK/cp.ms"
: >"$VD_WORK/put.ms"
: >"$VD_WORK/edit.ms"
: >"$VD_WORK/edit.bytes"
: >"$VD_WORK/put.bytes"
for r in $(seq 1 "$runs"); do
	# Fresh content for each side, so that neither finds chunks stored.
	vd_gen_text "$VD_WORK/a.txt" "$bytes" $((100 + r))
	vd_gen_text "$VD_WORK/b.txt" "$bytes" $((200 + r))
	sync
	one_cp() {
		local t0 t1
		t0=$(now_ms)
		cp "$VD_WORK/a.txt" "$VD_MNT/tasks/cp/data/a$r.txt"
		t1=$(now_ms)
		echo $((t1 - t0)) >>"$VD_WORK/cp.ms"
	}
	one_put() {
		local t0 t1 r0 r1
		r0=$(received)
		t0=$(now_ms)
		"$VDFS" put --task put --quiet --name "b$r.txt" "$VD_WORK/b.txt" >/dev/null
		t1=$(now_ms)
		r1=$(received)
		echo $((t1 - t0)) >>"$VD_WORK/put.ms"
		echo $((r1 - r0)) >>"$VD_WORK/put.bytes"
	}
	if [ $((r % 2)) = 1 ]; then one_cp; one_put; else one_put; one_cp; fi
	lines=$(wc -l <"$VD_WORK/b.txt")
	awk -v n="$lines" 'BEGIN { for (k = 1; k <= 10; k++) at[int(n * k / 11)] = 1 }
		(NR in at) { $0 = "edited line " NR " " $0 } { print }' "$VD_WORK/b.txt" >"$VD_WORK/b2.txt"
	r0=$(received)
	t0=$(now_ms)
	"$VDFS" put --task put --quiet --name "b$r.txt" "$VD_WORK/b2.txt" >/dev/null
	t1=$(now_ms)
	r1=$(received)
	echo $((t1 - t0)) >>"$VD_WORK/edit.ms"
	echo $((r1 - r0)) >>"$VD_WORK/edit.bytes"
done

# A SIZE_MIB result: the last file put, run through cat.
mkdir "$VD_MNT/tasks/res"
cp "$VD_WORK/cat.sh" "$VD_MNT/tasks/res/function"
cp "$VD_WORK/b2.txt" "$VD_MNT/tasks/res/data/b.txt"
ID="$(readlink "$VD_MNT/tasks/res/latest")"; ID="${ID#versions/}"
vd_start_executor e1 --slots 2 >&2
vd_wait_status "$VD_MNT/tasks/res/versions/$ID" done >&2
U="$VD_URL/v1/tasks/res/versions/$ID/result.csv"
: >"$VD_WORK/curl.ms"
: >"$VD_WORK/get.ms"
for r in $(seq 1 "$runs"); do
	one_curl() {
		local t0 t1
		rm -f "$VD_WORK/r.curl"
		t0=$(now_ms)
		curl -sf -H "Authorization: Bearer $(cat "$VD_WORK/bench.tok")" -o "$VD_WORK/r.curl" "$U"
		t1=$(now_ms)
		echo $((t1 - t0)) >>"$VD_WORK/curl.ms"
	}
	one_get() {
		local t0 t1
		rm -f "$VD_WORK/r.get"
		t0=$(now_ms)
		"$VDFS" get "$ID" --task res -o "$VD_WORK/r.get" 2>/dev/null
		t1=$(now_ms)
		echo $((t1 - t0)) >>"$VD_WORK/get.ms"
	}
	if [ $((r % 2)) = 1 ]; then one_curl; one_get; else one_get; one_curl; fi
	cmp -s "$VD_WORK/r.curl" "$VD_WORK/r.get" || { echo "vdfs get and curl -o differ" >&2; exit 1; }
done

cp_ms=$(median <"$VD_WORK/cp.ms")
put_ms=$(median <"$VD_WORK/put.ms")
edit_ms=$(median <"$VD_WORK/edit.ms")
edit_b=$(median <"$VD_WORK/edit.bytes")
put_b=$(median <"$VD_WORK/put.bytes")
curl_ms=$(median <"$VD_WORK/curl.ms")
get_ms=$(median <"$VD_WORK/get.ms")
rate() { awk -v b="$1" -v ms="$2" 'BEGIN { printf "%8.1f MB/s", (ms > 0 ? b / 1e6 / (ms / 1000) : 0) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f x", (b > 0 ? a / b : 0) }'; }
echo "bench-put: $size_mib MiB, median of $runs runs, chunk size ${CHUNK:-default}"
printf '%-28s %8d ms %s\n' "cp into the mount" "$cp_ms" "$(rate "$bytes" "$cp_ms")"
printf '%-28s %8d ms %s   received %d bytes\n' "vdfs put (first)" "$put_ms" "$(rate "$bytes" "$put_ms")" "$put_b"
printf '%-28s %8d ms %s   received %d bytes (%s %% of the file)\n' "vdfs put (10 lines edited)" \
	"$edit_ms" "$(rate "$bytes" "$edit_ms")" "$edit_b" \
	"$(awk -v a="$edit_b" -v b="$bytes" 'BEGIN { printf "%.2f", 100 * a / b }')"
printf '%-28s %8d ms %s\n' "curl -o result.csv" "$curl_ms" "$(rate "$bytes" "$curl_ms")"
printf '%-28s %8d ms %s\n' "vdfs get result.csv" "$get_ms" "$(rate "$bytes" "$get_ms")"
echo "put / cp:                    $(ratio "$put_ms" "$cp_ms")   (target <= 1.5 x)"
echo "put edited / put first:      $(ratio "$edit_ms" "$put_ms")   (target <= 0.1 x)"
echo "get / curl:                  $(ratio "$get_ms" "$curl_ms")"

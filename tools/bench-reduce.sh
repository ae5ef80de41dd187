#!/usr/bin/env bash
# bench-reduce.sh - what reducing costs vdfsd (issue 15): its peak RSS
# while it makes a CONCAT_MIB concat result (the function is `cat` on that
# much text) and a sum over KEYS distinct keys (`cat` again, on KEYS rows
# `key,1` in shuffled order), and the cold read of the concat result.csv
# against passthrough_ll reading the same bytes from the same disk.
#
#   tools/bench-reduce.sh [CONCAT_MIB] [KEYS]      (1024, 10000000)
#
# Environment: VDFS_BUILD (default build/), UNIT (unit_size of both tasks,
# default 8M), EXECUTORS (default 2), ROUNDS (cold reads of each, default
# 3), DAEMON_ARGS (more vdfsd options, e.g. "--compress none"), TMPDIR
# (work directory: state, inputs and passthrough_ll's source).
#
# Peak RSS is VmHWM of a vdfsd started after the input was copied in, so
# that it covers the run and its reduce only (start-up included, about
# 20 MB), not the ingest. A cold read is: restart whoever serves the file
# (vdfsd or passthrough_ll), drop the page cache (echo 3 >
# /proc/sys/vm/drop_caches, as root; skipped otherwise), cat it to
# /dev/null; rounds alternate who goes first, and the median is printed.
# The packs a cold read went through are the pack files vdfsd holds open
# afterwards (its store keeps read descriptors, up to 512).
# Runs the real vdfsd, mount and executors through the mount tests'
# harness (mount-tests/lib.sh), which stops them and cleans up.
set -euo pipefail

concat_mib=${1:-1024}
keys=${2:-10000000}
unit=${UNIT:-8M}
nexec=${EXECUTORS:-2}
rounds=${ROUNDS:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../mount-tests/lib.sh
. "$root/mount-tests/lib.sh"
VD_TEST_NAME=bench-reduce
vd_setup "${VDFS_BUILD:-$root/build}" >&2
IN="$VD_WORK/in"

now_ms() { echo $(($(date +%s%N) / 1000000)); }
hwm_mb() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
median() { tr ' ' '\n' | sed '/^$/d' | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
secs() { awk -v m="$1" 'BEGIN { printf "%.2f", m / 1000 }'; }
can_drop=0
[ -w /proc/sys/vm/drop_caches ] && can_drop=1
drop_caches() {
	sync
	if [ "$can_drop" = 1 ]; then echo 3 >/proc/sys/vm/drop_caches; fi
}
read -r -a daemon_args <<<"${DAEMON_ARGS:-}"
restart_daemon() {
	local n
	for n in "${!VD_EXEC_PID[@]}"; do vd_kill_executor "$n" >&2; done
	vd_kill_daemon >&2
	vd_start_daemon "${daemon_args[@]}" >&2
}
open_packs() { find "/proc/$1/fd" -lname '*.pack' 2>/dev/null | wc -l; }
start_executors() {
	local i
	for ((i = 1; i <= nexec; i++)); do vd_start_executor "e$i" >&2; done
}

# passthrough_ll, built from libfuse's example as tools/vdfs-bench.sh does.
ex=/usr/share/doc/libfuse3-dev/examples
pt_bin="$VD_WORK/passthrough_ll"
pt_pid=""
pt_mnt="$VD_WORK/pt-mnt"
pt_src="$VD_WORK/pt-src"
mkdir -p "$pt_mnt" "$pt_src"
have_pt=0
if [ -f "$ex/passthrough_ll.c" ] && command -v gcc >/dev/null; then
	# pkg-config's output is meant to be split into flags.
	# shellcheck disable=SC2046
	gcc -O2 -w -o "$pt_bin" "$ex/passthrough_ll.c" $(pkg-config fuse3 --cflags --libs) && have_pt=1
fi
pt_mounted() { awk -v m="$pt_mnt" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; }
stop_pt() {
	if [ -n "$pt_pid" ]; then
		kill -TERM "$pt_pid" 2>/dev/null || true
		wait "$pt_pid" 2>/dev/null || true
		pt_pid=""
	fi
	if pt_mounted; then fusermount3 -uz "$pt_mnt" 2>/dev/null || true; fi
}
start_pt() {
	local i
	"$pt_bin" -f -o source="$pt_src" "$pt_mnt" >>"$VD_WORK/passthrough_ll.log" 2>&1 </dev/null &
	pt_pid=$!
	for ((i = 0; i < 200; i++)); do
		pt_mounted && return 0
		sleep 0.1
	done
	vd_fail "passthrough_ll did not mount within 20 s"
}
vd_at_exit stop_pt

# ---------------------------------------------------------------- concat
echo "generating ${concat_mib} MiB of text and ${keys} shuffled keys..." >&2
"$VD_BIN/vdfs" bench gen-text "${concat_mib}M" 7 >"$pt_src/text.txt"
# Row i is key (i * 1000003) mod KEYS: every key once, in scattered order
# (1000003 is a prime that divides no KEYS this script is meant for).
awk -v n="$keys" 'BEGIN { for (i = 0; i < n; i++) printf "key%09d,1\n", (i * 1000003) % n }' \
	>"$IN/keys.txt"
# What the sum must give: every key once, in byte order (the numbers are
# zero-padded to one width, so that is numeric order).
awk -v n="$keys" 'BEGIN { for (i = 0; i < n; i++) printf "key%09d,1\n", i }' >"$IN/keys.expected"
printf '#!/bin/sh\nexec cat\n' >"$IN/cat.sh"
chmod +x "$IN/cat.sh"

vd_start_daemon "${daemon_args[@]}" >&2
TC="$VD_MNT/tasks/concat"
TS="$VD_MNT/tasks/sum"
mkdir "$TC" "$TS"
printf 'unit_size = %s\n' "$unit" >"$TC/config"
printf 'reduce = sum\nunit_size = %s\n' "$unit" >"$TS/config"
cp "$pt_src/text.txt" "$TC/data/text.txt"
cp "$IN/keys.txt" "$TS/data/keys.txt"
ingest_hwm=$(hwm_mb "$VD_DAEMON_PID")

# wait_timed VERSION_DIR: wait for done; print "RUN_MS REDUCE_MS" (the
# reduce: from when status first says it is combining to done; polled).
wait_timed() {
	local t0 tc="" s
	t0=$(now_ms)
	while :; do
		s=$(head -n 1 "$1/status" 2>/dev/null || true)
		case "$s" in
		*combining*) [ -n "$tc" ] || tc=$(now_ms) ;;
		done*) break ;;
		failed*) vd_fail "$1: $s" ;;
		esac
		vd_check_daemon
		(($(now_ms) - t0 < VD_TIMEOUT * 1000)) || vd_fail "$1 not done within ${VD_TIMEOUT}s: $s"
		sleep 0.1
	done
	local t1
	t1=$(now_ms)
	echo "$((t1 - t0)) $((t1 - ${tc:-$t1}))"
}

# A fresh vdfsd for each run: its VmHWM is the run's.
restart_daemon
cp "$IN/cat.sh" "$TC/function"
start_executors
read -r concat_ms concat_reduce_ms < <(wait_timed "$TC/latest")
concat_hwm=$(hwm_mb "$VD_DAEMON_PID")
vc=$(cd "$TC/latest" && pwd -P)
cmp -s "$pt_src/text.txt" "$vc/result.csv" || vd_fail "concat result.csv differs from its input"
vd_ok "concat: result.csv is the ${concat_mib} MiB input"

restart_daemon
cp "$IN/cat.sh" "$TS/function"
start_executors
read -r sum_ms sum_reduce_ms < <(wait_timed "$TS/latest")
sum_hwm=$(hwm_mb "$VD_DAEMON_PID")
vs=$(cd "$TS/latest" && pwd -P)
cmp -s "$IN/keys.expected" "$vs/result.csv" || vd_fail "sum result.csv is not every key once, sorted"
vd_ok "sum: result.csv has the ${keys} keys once each, in order"
spilled=$(grep -c 'did not fit in' "$VD_WORK/vdfsd.log" || true)

# ------------------------------------------------------------ cold reads
cold_result=() cold_input=() cold_pt=() read_hwm=() packs_result="" packs_input=""
for ((r = 0; r < rounds; r++)); do
	parties="result input pt"
	((r % 3 == 1)) && parties="input pt result"
	((r % 3 == 2)) && parties="pt result input"
	for party in $parties; do
		case $party in
		pt)
			[ "$have_pt" = 1 ] || continue
			stop_pt
			start_pt
			file="$pt_mnt/text.txt"
			;;
		result | input)
			restart_daemon
			file="$vc/result.csv"
			[ "$party" = input ] && file="$vc/input"
			;;
		esac
		drop_caches
		t0=$(now_ms)
		cat "$file" >/dev/null
		ms=$(($(now_ms) - t0))
		case $party in
		pt) cold_pt+=("$ms") ;;
		input)
			cold_input+=("$ms")
			packs_input=$(open_packs "$VD_DAEMON_PID")
			;;
		result)
			cold_result+=("$ms")
			read_hwm+=("$(hwm_mb "$VD_DAEMON_PID")")
			packs_result=$(open_packs "$VD_DAEMON_PID")
			;;
		esac
	done
done
stop_pt

m_res=$(echo "${cold_result[*]}" | median)
m_in=$(echo "${cold_input[*]}" | median)
echo
echo "vdfs reduce: concat of ${concat_mib} MiB (cat), sum over ${keys} distinct keys (cat of key,1 rows)"
echo "unit_size $unit, $nexec executors, $(nproc) CPUs; peak RSS = VmHWM of a vdfsd started for that step"
echo
printf '%-52s %12s\n' "vdfsd peak RSS, ingest of both inputs (context)" "$ingest_hwm MB"
printf '%-52s %12s\n' "vdfsd peak RSS, concat run and reduce" "$concat_hwm MB"
printf '%-52s %12s\n' "vdfsd peak RSS, sum run and reduce" "$sum_hwm MB"
printf '%-52s %12s\n' "vdfsd peak RSS, a cold read of result.csv (max)" \
	"$(printf '%s\n' "${read_hwm[@]}" | sort -g | tail -n 1) MB"
printf '%-52s %12s\n' "concat run (first lease to done, polled)" "$(secs "$concat_ms") s"
printf '%-52s %12s\n' "  of which the reduce" "$(secs "$concat_reduce_ms") s"
printf '%-52s %12s\n' "sum run" "$(secs "$sum_ms") s"
printf '%-52s %12s\n' "  of which the reduce" "$(secs "$sum_reduce_ms") s"
printf '%-52s %12s\n' "  spilled to STATE/spill" "$([ "$spilled" -gt 0 ] && echo yes || echo no)"
if [ "$can_drop" = 0 ]; then
	echo "(not root: the page cache was not dropped, so the reads below are not cold)"
fi
printf '%-52s %12s   (rounds: %s)\n' "cold cat of result.csv, median" "$(secs "$m_res") s" "${cold_result[*]}"
printf '%-52s %12s   (rounds: %s)\n' "cold cat of input, median" "$(secs "$m_in") s" "${cold_input[*]}"
if [ "$have_pt" = 1 ]; then
	m_pt=$(echo "${cold_pt[*]}" | median)
	printf '%-52s %12s   (rounds: %s)\n' "cold cat through passthrough_ll, median" "$(secs "$m_pt") s" "${cold_pt[*]}"
	printf '%-52s %12s\n' "result.csv / passthrough_ll" "$(awk -v a="$m_res" -v b="$m_pt" 'BEGIN { printf "%.2f x", b ? a / b : 0 }')"
	printf '%-52s %12s\n' "input / passthrough_ll" "$(awk -v a="$m_in" -v b="$m_pt" 'BEGIN { printf "%.2f x", b ? a / b : 0 }')"
else
	echo "passthrough_ll: skipped (no $ex/passthrough_ll.c: apt-get install libfuse3-dev)"
fi
printf '%-52s %12s\n' "packs a cold cat of result.csv read" "$packs_result"
printf '%-52s %12s\n' "packs a cold cat of input read" "$packs_input"
printf '%-52s %12s\n' "packs in the store at the end" "$(find "$VD_STATE/packs" -name '*.pack' | wc -l)"

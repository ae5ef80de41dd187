#!/usr/bin/env bash
# bench-dispatch-scale.sh - what a unit costs the daemon and the executors
# as the number of executors grows, in exec and in persistent mode, and
# after a restart with a long queue (issue 16, "Measure and report").
#
#   tools/bench-dispatch-scale.sh [UNITS] [EXECUTORS...]   (2000; 1 8 64)
#
# For each mode and each executor count: one daemon (--chunk-size 4096) and
# that many executors of one slot, a run of about UNITS no-op units of
# about 4 KiB (new bytes each time, so nothing is memoized). Prints units/s
# (the run's own duration_ms from meta.json), the wall time per unit, and
# the CPU time (utime + stime from /proc/PID/stat, of the processes
# themselves, not of the functions they start) of vdfsd and of all the
# executors together per 1,000 units.
#
# Then the queue case (QUEUED units, env, default 100000): the input is
# copied in with no executor, vdfsd is stopped and started again on the
# same state, then 8 executors start: the same figures for working through
# the queue the restarted daemon found. Set QUEUED=0 to skip it.
#
# The no-op functions: exec mode `cat >/dev/null`; persistent mode a
# Python loop over the frames of docs/persistent.md that answers "0 0".
# Environment: VDFS_BUILD (default build/), VDFS_BENCH_DIR (work
# directory, default /var/tmp), MODES (default "exec persistent").
set -euo pipefail

units=${1:-2000}
shift || true
counts=("$@")
[ "${#counts[@]}" -gt 0 ] || counts=(1 8 64)
queued=${QUEUED:-100000}
modes=${MODES:-exec persistent}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${VDFS_BUILD:-$root/build}
[ -x "$build/bin/vdfsd" ] || { echo "bench-dispatch-scale: build first (tools/setup.sh)" >&2; exit 2; }

work=$(mktemp -d "${VDFS_BENCH_DIR:-/var/tmp}/vdfs-dscale.XXXXXX")
dpid="" epids=()
stop_all() {
	for p in "${epids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${epids[@]}"; do wait "$p" 2>/dev/null || true; done
	epids=()
	if [ -n "$dpid" ]; then
		kill "$dpid" 2>/dev/null || true
		wait "$dpid" 2>/dev/null || true
		dpid=""
	fi
	fusermount3 -uz "$work/mnt" 2>/dev/null || true
}
cleanup() {
	stop_all
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' TERM INT
mkdir -p "$work/mnt"

cat >"$work/noop-exec" <<'FN'
#!/bin/sh
exec cat >/dev/null
FN
cp "$root/tools/noop-persistent.py" "$work/noop-persistent"
chmod +x "$work/noop-exec" "$work/noop-persistent"

# ticks PID...: utime + stime of the processes, in clock ticks.
ticks() {
	local p t=0 f
	for p in "$@"; do
		f=$(cut -d')' -f2- "/proc/$p/stat" 2>/dev/null) || continue
		# After the ")": state is field 1, utime 12, stime 13.
		t=$((t + $(awk '{ print $12 + $13 }' <<<"$f")))
	done
	echo "$t"
}
hz=$(getconf CLK_TCK)

start_daemon() {
	rm -f "$work/state/url"
	"$build/bin/vdfsd" --foreground --state "$work/state" --listen 127.0.0.1:0 \
		--chunk-size 4096 "$work/mnt" >>"$work/vdfsd.log" 2>&1 </dev/null &
	dpid=$!
	for _ in $(seq 300); do [ -s "$work/state/url" ] && mountpoint -q "$work/mnt" && break; sleep 0.1; done
	[ -s "$work/state/url" ] || { echo "bench-dispatch-scale: vdfsd did not start" >&2; tail "$work/vdfsd.log" >&2; exit 1; }
}
start_executors() {
	local n=$1 i url
	url=$(cat "$work/state/url")
	for i in $(seq "$n"); do
		"$build/bin/vdfs-executor" --server "$url" --token-file "$work/state/token" \
			--name "s$i" --cache "$work/cache-$i" >>"$work/exec.log" 2>&1 </dev/null &
		epids+=($!)
	done
	# Registered before the clock starts.
	for _ in $(seq 600); do
		[ "$(ls "$work/mnt/executors" | wc -l)" -ge "$n" ] && break
		sleep 0.1
	done
}
# make_input FILE N SEED: about N units of about 4 KiB, every line new.
make_input() {
	awk -v n="$2" -v s="$3" 'BEGIN { for (i = 0; i < n * 60; i++)
		printf "%09d seed %s the quick brown fox jumps over the lazy dog\n", i, s }' >"$1"
}
new_task() {
	local T=$work/mnt/tasks/$1 mode=$2
	mkdir "$T"
	{ cat "$work/noop-$mode"; echo "# $1"; } >"$T/function"
	# exec is the default: its config says nothing of a mode.
	{ printf 'unit_size = 4K\nallow_empty = true\n'; [ "$mode" = exec ] || echo "mode = $mode"; } >"$T/config"
}
wait_done() {
	until grep -q '^done' "$1/latest/status" 2>/dev/null; do
		grep -q '^failed' "$1/latest/status" 2>/dev/null &&
			{ echo "bench-dispatch-scale: the run failed: $(cat "$1/latest/status")" >&2; exit 1; }
		sleep 0.05
	done
}
# report LABEL TASK_DIR D0 E0: one line from the run's meta.json and the
# CPU ticks taken since D0 (vdfsd) and E0 (executors).
report() {
	local T=$2 n run_ms d e
	n=$(sed -n 's/^done \([0-9]*\)\/.*/\1/p' "$T/latest/status")
	run_ms=$(awk -F'[:,]' '/"duration_ms"/ { gsub(/ /, "", $2); print $2; exit }' "$T/latest/meta.json")
	d=$(($(ticks "$dpid") - $3))
	e=$(($(ticks "${epids[@]}") - $4))
	awk -v l="$1" -v n="$n" -v t="$run_ms" -v d="$d" -v e="$e" -v hz="$hz" 'BEGIN {
		printf "%-34s %7d units %8.0f ms %9.1f units/s %9.0f us/unit   vdfsd %7.1f ms CPU/1000 units   executors %7.1f ms CPU/1000 units\n",
			l, n, t, n * 1000 / t, t * 1000 / n, d * 1000 / hz * 1000 / n, e * 1000 / hz * 1000 / n }'
}

seq_no=0
for mode in $modes; do
	for n in "${counts[@]}"; do
		seq_no=$((seq_no + 1))
		rm -rf "$work/state" "$work"/cache-*
		mkdir -p "$work/state"
		start_daemon
		start_executors "$n"
		new_task "t$seq_no" "$mode"
		make_input "$work/in.txt" "$units" "$seq_no.$$"
		d0=$(ticks "$dpid") e0=$(ticks "${epids[@]}")
		cp "$work/in.txt" "$work/mnt/tasks/t$seq_no/data/in.txt"
		wait_done "$work/mnt/tasks/t$seq_no"
		report "$mode, $n executor(s)" "$work/mnt/tasks/t$seq_no" "$d0" "$e0"
		stop_all
	done
done

if [ "$queued" -gt 0 ]; then
	for mode in $modes; do
		seq_no=$((seq_no + 1))
		rm -rf "$work/state" "$work"/cache-*
		mkdir -p "$work/state"
		start_daemon
		new_task "q$seq_no" "$mode"
		make_input "$work/in.txt" "$queued" "q$seq_no.$$"
		cp "$work/in.txt" "$work/mnt/tasks/q$seq_no/data/in.txt"
		until grep -q '^running\|^queued\|^pending' "$work/mnt/tasks/q$seq_no/latest/status" 2>/dev/null; do sleep 0.1; done
		stop_all
		t0=$(date +%s%3N)
		start_daemon
		t1=$(date +%s%3N)
		start_executors 8
		d0=$(ticks "$dpid") e0=$(ticks "${epids[@]}")
		wait_done "$work/mnt/tasks/q$seq_no"
		report "$mode, 8 executors, after restart" "$work/mnt/tasks/q$seq_no" "$d0" "$e0"
		echo "  (vdfsd start with the queue of $(sed -n 's/^done [0-9]*\/\([0-9]*\).*/\1/p' "$work/mnt/tasks/q$seq_no/latest/status") units: $((t1 - t0)) ms to the mount; the run's duration_ms counts from its first lease, before the restart)"
		stop_all
	done
fi

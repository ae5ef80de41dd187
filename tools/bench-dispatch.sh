#!/usr/bin/env bash
# bench-dispatch.sh - how fast vdfs hands out units: a run of N units of a
# no-op function (it reads its input and prints nothing) on P executors on
# loopback, against `xargs -P P` running the same function on as many
# pieces of the same input locally, measured side by side, several rounds.
#
#   tools/bench-dispatch.sh [UNITS] [ROUNDS] [EXECUTORS]   (default 2000, 3, 8)
#
# MODE=persistent runs the vdfs side as a persistent function (a process
# per executor slot, units as frames: docs/persistent.md), tools/noop-persistent.py,
# which reads each frame and answers "0 0"; xargs still runs the exec-mode
# function (`cat >/dev/null`) once per piece. MODE=exec (the default): the
# same function on both sides.
#
# vdfs time is the run's own (first lease to the run recorded done, from
# meta.json); xargs time is the wall time of the xargs command. Prints, per
# round and as medians: units/s for both, wall ms per unit, and the
# overhead per unit per worker, P * (T_vdfs - T_xargs) / N, in ms; and
# the daemon's CPU time (user + system, from /proc/<pid>/stat) per 1,000
# units over the round, from the cp to the run done.
set -euo pipefail

units=${1:-2000}
rounds=${2:-3}
nexec=${3:-8}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${VDFS_BUILD:-$root/build}
[ -x "$build/bin/vdfsd" ] || { echo "bench-dispatch: build first (tools/setup.sh)" >&2; exit 2; }

work=$(mktemp -d "${VDFS_BENCH_DIR:-/var/tmp}/vdfs-dispatch.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	fusermount3 -uz "$work/mnt" 2>/dev/null || true
	[ -n "${VDFS_BENCH_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/state" "$work/mnt" "$work/pieces"

cat >"$work/noop.sh" <<'FN'
#!/bin/sh
exec cat >/dev/null
FN
chmod +x "$work/noop.sh"
mode=${MODE:-exec}
case $mode in
exec) cp "$work/noop.sh" "$work/fn" ;;
persistent) cp "$root/tools/noop-persistent.py" "$work/fn" ;;
*) echo "bench-dispatch: MODE is exec or persistent, not '$mode'" >&2; exit 2 ;;
esac

"$build/bin/vdfsd" --foreground --state "$work/state" --listen 127.0.0.1:0 \
	--chunk-size 4096 "$work/mnt" 2>"$work/vdfsd.log" &
pids+=($!)
vdfsd_pid=$!
# utime + stime of vdfsd, in ms.
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print int(($12 + $13) * 1000 / hz) }' "/proc/$vdfsd_pid/stat"; }
for _ in $(seq 200); do [ -s "$work/state/url" ] && break; sleep 0.1; done
url=$(cat "$work/state/url")
for i in $(seq "$nexec"); do
	"$build/bin/vdfs-executor" --server "$url" --token-file "$work/state/token" \
		--name "b$i" --cache "$work/cache-$i" 2>"$work/exec-$i.log" &
	pids+=($!)
done
T="$work/mnt/tasks/noop"
mkdir "$T"
cp "$work/fn" "$T/function"
{ printf 'unit_size = 4K\nallow_empty = true\n'; [ "$mode" = exec ] || echo "mode = $mode"; } >"$T/config"

ms() { date +%s%3N; }
res=()
for r in $(seq "$rounds"); do
	# New content each round, every line different, so that no unit is
	# memoized from an earlier round: numbered lines, about 4 KiB per unit
	# (4 KiB chunks, unit_size 4K). The same bytes go to xargs.
	awk -v n="$units" -v r="$r" -v s="$$" 'BEGIN { for (i = 0; i < n * 60; i++)
		printf "%09d round %d of %d the quick brown fox jumps over the lazy dog\n", i, r, s }' \
		>"$work/in-$r.txt"
	rm -f "$work/pieces"/*
	c0=$(cpu_ms)
	t0=$(ms)
	cp "$work/in-$r.txt" "$T/data/in.txt"
	until grep -q '^done' "$T/latest/status" 2>/dev/null; do sleep 0.05; done
	t1=$(ms)
	c1=$(cpu_ms)
	n=$(sed -n 's/^done \([0-9]*\)\/.*/\1/p' "$T/latest/status")
	run_ms=$(awk -F'[:,]' '/"duration_ms"/ { gsub(/ /, "", $2); print $2; exit }' "$T/latest/meta.json")
	# The same number of pieces of the same bytes, cut on line boundaries.
	split -n "l/$n" -d -a 6 "$work/in-$r.txt" "$work/pieces/p"
	t2=$(ms)
	find "$work/pieces" -type f -print0 |
		xargs -0 -P "$nexec" -I{} sh -c '"$1" <"$2"' _ "$work/noop.sh" {}
	t3=$(ms)
	x_ms=$((t3 - t2))
	res+=("$run_ms $x_ms $n $((c1 - c0))")
	awk -v v="$run_ms" -v x="$x_ms" -v n="$n" -v p="$nexec" -v w=$((t1 - t0)) -v c=$((c1 - c0)) 'BEGIN {
		printf "round: %d units; vdfs %.0f ms (%.0f units/s; cp to done %d ms), xargs -P %d %.0f ms (%.0f units/s); overhead %.2f ms/unit/worker; vdfsd CPU %d ms = %.0f ms per 1000 units\n",
			n, v, n * 1000 / v, w, p, x, n * 1000 / x, p * (v - x) / n, c, c * 1000 / n }'
done
# What the daemon did for it all (every round, and the rounds' ingest).
curl -s -H "Authorization: Bearer $(cat "$work/state/token")" "$url/metrics" |
	awk '/^vdfs_(units_done_total|units_leased_total|catalog_syncs_total|result_requests_total|results_received_total) / { printf "%s %s; ", $1, $2 } END { print "" }'
xs=$(printf '%s\n' "${res[@]}" | awk '{ print $2 }' | sort -n | tr '\n' ' ')
cs=$(printf '%s\n' "${res[@]}" | awk '{ printf "%.1f\n", $4 * 1000 / $3 }' | sort -n | tr '\n' ' ')
printf '%s\n' "${res[@]}" | sort -n | awk -v p="$nexec" -v xs="$xs" -v cs="$cs" '{ v[NR] = $1; u[NR] = $3 } END {
	m = int((NR + 1) / 2)
	n = u[m]
	split(xs, x, " ")
	split(cs, c, " ")
	printf "median of %d: vdfs %d units in %.0f ms = %.0f units/s; xargs -P %d %.0f ms = %.0f units/s; ratio %.1fx; per unit %.2f ms vs %.2f ms wall, overhead %.2f ms/unit/worker; vdfsd CPU %.0f ms per 1000 units\n",
		NR, n, v[m], n * 1000 / v[m], p, x[m], n * 1000 / x[m], v[m] / x[m], v[m] / n, x[m] / n, p * (v[m] - x[m]) / n, c[m] }'

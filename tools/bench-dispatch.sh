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
# overhead per unit per worker, P * (T_vdfs - T_xargs) / N, in ms.
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
	rm -rf "$work"
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
	t0=$(ms)
	cp "$work/in-$r.txt" "$T/data/in.txt"
	until grep -q '^done' "$T/latest/status" 2>/dev/null; do sleep 0.05; done
	t1=$(ms)
	n=$(sed -n 's/^done \([0-9]*\)\/.*/\1/p' "$T/latest/status")
	run_ms=$(awk -F'[:,]' '/"duration_ms"/ { gsub(/ /, "", $2); print $2; exit }' "$T/latest/meta.json")
	# The same number of pieces of the same bytes, cut on line boundaries.
	split -n "l/$n" -d -a 6 "$work/in-$r.txt" "$work/pieces/p"
	t2=$(ms)
	find "$work/pieces" -type f -print0 |
		xargs -0 -P "$nexec" -I{} sh -c '"$1" <"$2"' _ "$work/noop.sh" {}
	t3=$(ms)
	x_ms=$((t3 - t2))
	res+=("$run_ms $x_ms $n")
	awk -v v="$run_ms" -v x="$x_ms" -v n="$n" -v p="$nexec" -v w=$((t1 - t0)) 'BEGIN {
		printf "round: %d units; vdfs %.0f ms (%.0f units/s; cp to done %d ms), xargs -P %d %.0f ms (%.0f units/s); overhead %.2f ms/unit/worker\n",
			n, v, n * 1000 / v, w, p, x, n * 1000 / x, p * (v - x) / n }'
done
xs=$(printf '%s\n' "${res[@]}" | awk '{ print $2 }' | sort -n | tr '\n' ' ')
printf '%s\n' "${res[@]}" | sort -n | awk -v p="$nexec" -v xs="$xs" '{ v[NR] = $1; u[NR] = $3 } END {
	m = int((NR + 1) / 2)
	n = u[m]
	split(xs, x, " ")
	printf "median of %d: vdfs %d units in %.0f ms = %.0f units/s; xargs -P %d %.0f ms = %.0f units/s; ratio %.1fx; per unit %.2f ms vs %.2f ms wall, overhead %.2f ms/unit/worker\n",
		NR, n, v[m], n * 1000 / v[m], p, x[m], n * 1000 / x[m], v[m] / x[m], v[m] / n, x[m] / n, p * (v[m] - x[m]) / n }'

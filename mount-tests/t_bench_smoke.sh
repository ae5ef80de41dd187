#!/usr/bin/env bash
# t_bench_smoke.sh - `vdfs bench --quick` (tiny sizes of every case) runs to
# the end, prints its table and writes its report, so that the benchmark
# cannot rot. No figure is checked: nothing here is timed.
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"

out="$VD_WORK/out"
log="$VD_WORK/bench.log"
rc=0
# The harness's work directory goes inside ours, so cleanup covers it.
VDFS_BENCH_DIR="$VD_WORK" "$VD_BIN/vdfs" bench --quick --no-install --out "$out" \
	>"$log" 2>&1 </dev/null || rc=$?
if [ "$rc" != 0 ]; then
	[ -f "$out/errors.txt" ] && cat "$out/errors.txt" >&2
	tail -n 40 "$log" >&2
	for f in "$out"/logs/*.log; do
		[ -f "$f" ] || continue
		echo "----- tail of $(basename "$f") -----" >&2
		tail -n 15 "$f" >&2
	done
	vd_fail "vdfs bench --quick exited with status $rc"
fi
vd_ok "vdfs bench --quick completed"

grep -q '^case .* ratio .* target .* result$' "$log" || vd_fail "no table header in the output"
for row in 'ingest 8 MiB: cp into data/' 'read warm 8 MiB: cat input' \
	'read warm 8 MiB: cat result.csv' 'browse 1000: ls -l versions/ (warm)' \
	'small: cp -r 200 x 4 KiB' 'dispatch: no-op units, 8 executors, exec' \
	'dispatch: no-op units, 8 executors, persistent' 'e2e wordcount' \
	'memory: vdfsd VmHWM' 'memory: executor VmHWM'; do
	grep -F -- "$row" "$log" | grep -q -E ' (PASS|MISS|info)$' ||
		vd_fail "the table has no row '$row' with a verdict"
done
if [ -w /proc/sys/vm/drop_caches ]; then
	grep -q -F 'read cold 8 MiB: cat input' "$log" || vd_fail "no cold read row (running as root)"
fi
vd_ok "the table has a row with a verdict for every case"

for f in report.md results.tsv rounds.tsv table.txt; do
	[ -s "$out/$f" ] || vd_fail "$out/$f is missing or empty"
done
[ ! -e "$out/errors.txt" ] || vd_fail "errors reported: $(cat "$out/errors.txt")"
grep -q '^| case | vdfs | baseline |' "$out/report.md" || vd_fail "report.md has no table"
[ "$(grep -c '^| ' "$out/report.md")" -ge 20 ] || vd_fail "report.md's table is short"
grep -q 'passthrough_ll' "$out/report.md" || vd_fail "report.md names no baseline"
if command -v gnuplot >/dev/null; then
	[ -s "$out/bench.png" ] || vd_fail "gnuplot is installed but there is no bench.png"
	[ "$(head -c 4 "$out/bench.png" | od -An -c | tr -d ' ')" = '211PNG' ] || vd_fail "bench.png is not a PNG"
	vd_ok "report.md, results, rounds and bench.png written"
else
	vd_ok "report.md, results and rounds written (no gnuplot: no plot)"
fi

# The harness unmounted and stopped everything it started.
if awk -v w="$VD_WORK/" 'index($2, w) == 1 { f = 1 } END { exit !f }' /proc/mounts; then
	vd_fail "a mount under $VD_WORK is left behind"
fi
vd_ok "nothing left mounted"

#!/usr/bin/env bash
# t_bench_web_smoke: tools/bench-web.sh at tiny sizes (200 versions, windows
# of 2 s, 2 loads) runs to the end and prints every row and the ratio, so
# that the benchmark cannot rot. No figure is checked: nothing here is
# timed. Needs what t_web needs (chromium, chromium-driver,
# python3-selenium); fails naming them when they are missing.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$VD_WORK/bench.out"
rc=0
TMPDIR="$VD_WORK" VDFS_BUILD="$VD_BUILD" bash "$root/tools/bench-web.sh" 200 2 2 \
	>"$out" 2>"$VD_WORK/bench.err" || rc=$?
if [ "$rc" != 0 ]; then
	tail -n 40 "$VD_WORK/bench.err" >&2
	cat "$out" >&2
	vd_fail "tools/bench-web.sh 200 2 2 exited with status $rc"
fi
cat "$out"
for row in 'overview (cold)' 'overview (warm)' 'task, 200 versions (cold)' 'task, 200 versions (warm)' \
	'one versions page (limit=100)' '0 dashboards (before)' '5 dashboards' '0 dashboards (after)' \
	'with 5 dashboards / without:'; do
	grep -qF -- "$row" "$out" || vd_fail "no row '$row' in the output"
done
grep -Eq '^overview \(cold\) +[0-9]+ +[0-9]+' "$out" || vd_fail "no first-paint and ready figures for the overview"
grep -Eq '^task, 200 versions \(warm\) +[0-9]+ +[0-9]+' "$out" || vd_fail "no figures for the task page"
grep -Eq '^with 5 dashboards / without: +[0-9]+\.[0-9]+ x' "$out" || vd_fail "no CPU ratio printed"
vd_ok "tools/bench-web.sh completed with every row"

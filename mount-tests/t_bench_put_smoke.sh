#!/usr/bin/env bash
# t_bench_put_smoke: tools/bench-put.sh at a tiny size (16 MiB, one run)
# runs to the end and prints every row, so that the benchmark cannot rot.
# No figure is checked: nothing here is timed.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$VD_WORK/bench.out"
rc=0
TMPDIR="$VD_WORK" VDFS_BUILD="$VD_BUILD" CHUNK=65536 bash "$root/tools/bench-put.sh" 16 1 \
	>"$out" 2>"$VD_WORK/bench.err" || rc=$?
if [ "$rc" != 0 ]; then
	tail -n 30 "$VD_WORK/bench.err" >&2
	cat "$out" >&2
	vd_fail "tools/bench-put.sh 16 1 exited with status $rc"
fi
for row in 'cp into the mount' 'vdfs put (first)' 'vdfs put (10 lines edited)' 'curl -o result.csv' \
	'vdfs get result.csv' 'put / cp:' 'put edited / put first:' 'get / curl:'; do
	grep -qF -- "$row" "$out" || vd_fail "no row '$row' in the output: $(cat "$out")"
done
grep -Eq '^put / cp: +[0-9]+\.[0-9]+ x' "$out" || vd_fail "no ratio printed: $(cat "$out")"
vd_ok "tools/bench-put.sh completed with every row"

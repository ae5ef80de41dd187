#!/usr/bin/env bash
# t_bench_gc_smoke: tools/bench-gc.sh at a tiny size (64 MiB in 8 versions)
# runs to the end and prints every row, so that the benchmark cannot rot.
# No figure is checked: nothing here is timed.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$VD_WORK/bench.out"
rc=0
TMPDIR="$VD_WORK" VDFS_BUILD="$VD_BUILD" CHUNK=65536 bash "$root/tools/bench-gc.sh" 64 8 \
	>"$out" 2>"$VD_WORK/bench.err" || rc=$?
if [ "$rc" != 0 ]; then
	tail -n 30 "$VD_WORK/bench.err" >&2
	cat "$out" >&2
	vd_fail "tools/bench-gc.sh 64 8 exited with status $rc"
fi
for row in 'list + mark' 'sweep (one batch)' 'packs (delete, compact)' 'whole request (vdfs gc)' \
	'chunks swept' 'vdfsd peak - resident before' 'warm  cat'; do
	grep -qF -- "$row" "$out" || vd_fail "no row '$row' in the output: $(cat "$out")"
done
grep -q 'fsck --full found problems' "$out" && vd_fail "the benchmark's store is not clean: $(cat "$out")"
vd_ok "tools/bench-gc.sh completed with every row"

#!/usr/bin/env bash
# t_bench_reduce_smoke.sh - tools/bench-reduce.sh at small sizes (an 8 MiB
# concat, a sum over 1,000,000 keys, one round of cold reads) runs to the
# end and prints every figure, so that the benchmark cannot rot. Nothing
# timed is checked. It does check what the script itself checks (both
# results are right, through the mount) and that the sum spilled: a
# million keys do not fit in reduce = sum's 64 MiB table, so this is also
# the test of spilling in the real daemon.
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"

log="$VD_WORK/bench.log"
rc=0
# The script's own work directory goes inside ours, so cleanup covers it.
TMPDIR="$VD_WORK" VDFS_BUILD="$VD_BUILD" ROUNDS=1 \
	bash "$(dirname "$0")/../tools/bench-reduce.sh" 8 1000000 >"$log" 2>&1 </dev/null || rc=$?
if [ "$rc" != 0 ]; then
	tail -n 60 "$log" >&2
	vd_fail "tools/bench-reduce.sh exited with status $rc"
fi
vd_ok "tools/bench-reduce.sh 8 1000000 completed"

grep -q '^ok - concat: result.csv is the 8 MiB input' "$log" || vd_fail "the concat result was not checked"
grep -q '^ok - sum: result.csv has the 1000000 keys once each, in order' "$log" ||
	vd_fail "the sum result was not checked"
for row in 'vdfsd peak RSS, concat run and reduce' 'vdfsd peak RSS, sum run and reduce' \
	'vdfsd peak RSS, a cold read of result.csv' 'cold cat of result.csv, median' \
	'cold cat of input, median'; do
	grep -F -- "$row" "$log" | grep -q -E ' [0-9.]+ (MB|s)( |$)' ||
		vd_fail "no figure for '$row'"
done
grep -q -E '^  spilled to STATE/spill +yes$' "$log" ||
	vd_fail "the sum over 1,000,000 keys did not spill"
vd_ok "every figure printed; the sum spilled"
if [ -f /usr/share/doc/libfuse3-dev/examples/passthrough_ll.c ]; then
	grep -q -E '^result.csv / passthrough_ll +[0-9.]+ x$' "$log" || vd_fail "no ratio to passthrough_ll"
	vd_ok "compared with passthrough_ll"
fi

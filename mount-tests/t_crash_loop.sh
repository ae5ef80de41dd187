#!/usr/bin/env bash
# t_crash_loop: tools/crash-loop.sh at a small size (VD_CRASH_LOOP_N
# iterations, default 4, seed VD_CRASH_LOOP_SEED, default 4242) runs to the
# end without a violation: vdfsd SIGKILLed once per iteration while copies,
# results, deletes and gc are in flight, checked each time against the
# harness's own model (docs/reliability.md). It fails on the first
# violation, printing the seed that reproduces it.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"
root="$(cd "$(dirname "$0")/.." && pwd)"
n="${VD_CRASH_LOOP_N:-4}"
seed="${VD_CRASH_LOOP_SEED:-4242}"
out="$VD_WORK/loop.out"
rc=0
TMPDIR="$VD_WORK" VDFS_BUILD="$VD_BUILD" bash "$root/tools/crash-loop.sh" "$n" "$seed" \
	>"$out" 2>"$VD_WORK/loop.err" || rc=$?
if [ "$rc" != 0 ]; then
	tail -n 40 "$VD_WORK/loop.err" >&2
	cat "$out" >&2
	vd_fail "tools/crash-loop.sh $n $seed exited with status $rc"
fi
grep -q "^crash-loop: no violation" "$out" || vd_fail "no verdict in the output: $(cat "$out")"
grep -q "vdfsd kills: $n;" "$out" || vd_fail "not $n kills of vdfsd: $(cat "$out")"
vd_ok "tools/crash-loop.sh $n $seed: $(grep "^  " "$out" | tr -s " \n" " ")"

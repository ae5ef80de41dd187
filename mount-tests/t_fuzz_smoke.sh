#!/usr/bin/env bash
# t_fuzz_smoke.sh - tools/fuzz.sh 10: every libFuzzer harness in fuzz/
# builds with clang (in BUILD/fuzz, -DVDFS_FUZZ=ON) and runs 10 s from its
# seeds without a crash, leak or failed property. Nothing is mounted; it
# sits with the mount tests because it runs a tool's script, as
# t_bench_smoke does, and carries the label fuzz-smoke, which tools/test.sh's
# sanitized pass leaves out (the harnesses are ASan + UBSan builds already).
# A finding's inputs are kept in BUILD/fuzz-work/crashes/<name>/.
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"
root="$(cd "$(dirname "$0")/.." && pwd)"

command -v clang >/dev/null || vd_fail "clang is missing (tools/setup.sh installs clang, libclang-rt-14-dev)"
work="$VD_BUILD/fuzz-work"
rm -rf "$work"
log="$VD_WORK/fuzz.log"
rc=0
VDFS_FUZZ_BUILD_DIR="$VD_BUILD/fuzz" VDFS_FUZZ_WORK="$work" \
	"$root/tools/fuzz.sh" 10 >"$log" 2>&1 </dev/null || rc=$?
cat "$log"
[ "$rc" != 2 ] || vd_fail "the harnesses did not build"
[ "$rc" = 0 ] || vd_fail "tools/fuzz.sh 10 found a crash (exit $rc); inputs in $work/crashes"
n="$(ls "$root"/fuzz/fuzz_*.c | wc -l)"
ran="$(grep -cE '^fuzz_[a-z]+: [0-9]+ runs in [0-9]+ s, cov [0-9]+ edges' "$log" || true)"
[ "$ran" = "$((2 * n))" ] || vd_fail "expected $n harnesses to report runs and coverage (twice: as they end and in the summary), got $ran lines"
rm -rf "$work"
vd_ok "tools/fuzz.sh 10: $n harnesses built with clang and ran 10 s each without a finding"

#!/usr/bin/env bash
# tools/test.sh - set up, build, and run every test under ctest: first the
# normal build (build/), then the ASan + UBSan build (build-san/).
#
# Environment:
#   VDFS_TEST_SANITIZE=0   skip the sanitized pass (default 1: run it)
#   VDFS_TEST_ARGS="..."   extra ctest arguments for both passes (e.g. "-L unit")
#   VD_KEEP=1              keep mount tests' work directories (see docs/testing.md)
#   VDFS_BUILD_DIR, VDFS_SAN_BUILD_DIR   build directories (default build, build-san)
#
# Exits non-zero if any test fails. When the normal pass fails, the sanitized
# pass runs the unit tests only, to keep the run bounded.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

sanitize="${VDFS_TEST_SANITIZE:-1}"
build="${VDFS_BUILD_DIR:-$root/build}"
build_san="${VDFS_SAN_BUILD_DIR:-$root/build-san}"
read -r -a extra <<<"${VDFS_TEST_ARGS:-}"
jobs="$(nproc)"
summary=()
failed=0

# run_pass NAME BUILD_DIR [CTEST ARGS...]
run_pass() {
	local name="$1" dir="$2" log rc=0
	shift 2
	log="$(mktemp "${TMPDIR:-/tmp}/vdfs-ctest.XXXXXX")"
	echo "=== $name: ctest in ${dir#"$root"/}"
	ctest --test-dir "$dir" --output-on-failure --no-tests=error -j "$jobs" \
		"${extra[@]}" "$@" </dev/null 2>&1 | tee "$log" || rc=$?
	summary+=("$name: $(grep -E '^[0-9]+% tests passed' "$log" || echo "ctest exited $rc")")
	while IFS= read -r line; do
		summary+=("    $line")
	done < <(sed -n '/^The following tests FAILED:/,$p' "$log" | grep -E '^[[:space:]]+[0-9]+ - ' || true)
	rm -f "$log"
	if [ "$rc" != 0 ]; then
		failed=1
	fi
	return 0
}

echo "=== setup and build (${build#"$root"/})"
tools/setup.sh --build-dir "$build"
# The real Chinese text the counting tests run on (Debian packages, into
# build/data/zh or $VDFS_DATA_DIR/zh; quiet when already there). Without it
# t_count fails with the reason; the other tests still run.
tools/data-zh.sh || echo "test.sh: tools/data-zh.sh failed: t_count will fail" >&2
# The taylor load series the forecasting tests run on (r-cran-forecast, read
# with Rscript, into build/data/taylor.csv or $VDFS_DATA_DIR/taylor.csv).
# Without it t_forecast fails with the reason.
tools/data-taylor.sh || echo "test.sh: tools/data-taylor.sh failed: t_forecast will fail" >&2
run_pass "normal" "$build"

if [ "$sanitize" != 0 ]; then
	echo "=== build with ASan + UBSan (${build_san#"$root"/})"
	tools/setup.sh --sanitize --build-dir "$build_san"
	export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
	export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
	if [ -f "$root/tools/lsan.supp" ]; then
		export LSAN_OPTIONS="suppressions=$root/tools/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
	fi
	# The sanitized pass looks for memory and undefined-behaviour errors,
	# which the same code paths show at smaller sizes: it runs the longest
	# tests shorter (the normal pass keeps the issue sizes). Set one of
	# these to run it at full size.
	export VD_GC_CRASH_N="${VD_GC_CRASH_N:-8}" VD_CHAOS_S="${VD_CHAOS_S:-30}"
	export VD_VERSIONS_MB="${VD_VERSIONS_MB:-64}" VD_GC_ONLINE_MB="${VD_GC_ONLINE_MB:-100}"
	# t_incremental's 64 MB still has 64 units, enough for its "at most
	# 22" (86 s -> 29 s under the sanitizers). t_put stays at 200 MB: its
	# "under 2 % sent" needs the size (at 64 MB 10 edits are 2.7 %).
	export VD_INCR_MB="${VD_INCR_MB:-64}"
	# The benchmark tools' smokes (label bench-smoke) check shell and
	# python scripts, which the normal pass has run; under the sanitizers
	# they would only drive again daemon paths the other tests drive. The
	# fuzzing smoke (fuzz-smoke) builds its own ASan + UBSan harnesses with
	# clang: the normal pass ran it.
	if [ "$failed" = 0 ]; then
		run_pass "asan+ubsan" "$build_san" -LE 'bench-smoke|fuzz-smoke'
	else
		echo "=== the normal pass failed: the sanitized pass runs the unit tests only"
		run_pass "asan+ubsan (unit only)" "$build_san" -L unit
	fi
else
	summary+=("asan+ubsan: skipped (VDFS_TEST_SANITIZE=0)")
fi

echo "=== summary"
printf '%s\n' "${summary[@]}"
if [ "$failed" != 0 ]; then
	echo "tools/test.sh: some tests FAILED" >&2
	exit 1
fi
echo "tools/test.sh: all tests passed"

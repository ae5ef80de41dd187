#!/usr/bin/env bash
# tools/fuzz.sh - build the libFuzzer harnesses (fuzz/fuzz_<name>.c) with
# clang and run each for a while.
#
#   tools/fuzz.sh [SECONDS] [NAMES...]
#
# SECONDS (default 30) is each harness's -max_total_time; NAMES (default:
# every fuzz/fuzz_*.c) are harness names without fuzz_ (results config
# manifest chunker zframe). Each run starts from a copy of its seeds,
# fuzz/corpus/<name>/, in a scratch directory, so the seeds in the tree
# are never rewritten; what libFuzzer adds is left in the scratch
# directory, as are crash, leak and timeout inputs, which are reported
# with their path (the scratch directory is then kept).
#
# Environment:
#   VDFS_FUZZ_BUILD_DIR   build directory (default build-fuzz)
#   VDFS_FUZZ_JOBS        parallel build jobs (default 1)
#   VDFS_FUZZ_WORK        scratch directory (default: a new one in $TMPDIR)
#
# Prints one line per harness (runs, coverage, corpus) and exits 1 when
# any harness found a crash, 2 when the build fails.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
secs=30
if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; then
	secs="$1"
	shift
fi
names=("$@")
if [ "${#names[@]}" = 0 ]; then
	for f in "$root"/fuzz/fuzz_*.c; do
		n="$(basename "$f" .c)"
		names+=("${n#fuzz_}")
	done
fi
build="${VDFS_FUZZ_BUILD_DIR:-$root/build-fuzz}"
jobs="${VDFS_FUZZ_JOBS:-1}"
cc="$(command -v clang || true)"
if [ -z "$cc" ]; then
	echo "fuzz.sh: clang is missing (tools/setup.sh installs clang and libclang-rt-14-dev)" >&2
	exit 2
fi

targets=()
for n in "${names[@]}"; do
	[ -f "$root/fuzz/fuzz_$n.c" ] || { echo "fuzz.sh: no harness fuzz/fuzz_$n.c" >&2; exit 2; }
	targets+=("fuzz_$n")
done

log="$(mktemp "${TMPDIR:-/tmp}/vdfs-fuzz-build.XXXXXX")"
echo "=== build ${build#"$root"/} (clang, -DVDFS_FUZZ=ON): ${targets[*]}"
if ! { cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER="$cc" -DVDFS_FUZZ=ON \
		-DCMAKE_BUILD_TYPE=RelWithDebInfo &&
	nice -n 10 cmake --build "$build" -j"$jobs" --target "${targets[@]}"; } >"$log" 2>&1 </dev/null; then
	grep -E 'error|Error' "$log" | head -n 20 >&2 || true
	tail -n 20 "$log" >&2
	echo "fuzz.sh: build failed (full log: $log)" >&2
	exit 2
fi
rm -f "$log"

work="${VDFS_FUZZ_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/vdfs-fuzz.XXXXXX")}"
mkdir -p "$work"
# Leaks count as findings; a UBSan report stops the run like a crash.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
found=0
summary=()
for n in "${names[@]}"; do
	corpus="$work/corpus/$n" crashes="$work/crashes/$n"
	mkdir -p "$corpus" "$crashes"
	if [ -d "$root/fuzz/corpus/$n" ]; then
		cp -r "$root/fuzz/corpus/$n/." "$corpus/"
	fi
	seeds="$(find "$corpus" -type f | wc -l)"
	echo "=== fuzz_$n: $secs s from $seeds seeds"
	rc=0
	"$build/bin/fuzz_$n" -max_total_time="$secs" -timeout=25 -print_final_stats=1 \
		-artifact_prefix="$crashes/" "$corpus" >"$work/fuzz_$n.log" 2>&1 </dev/null || rc=$?
	runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/fuzz_$n.log" | tail -n 1)"
	last="$(grep -E '^#[0-9]+' "$work/fuzz_$n.log" | tail -n 1)"
	cov="$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")"
	ft="$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")"
	corp="$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$last")"
	took="$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$work/fuzz_$n.log" | tail -n 1)"
	line="fuzz_$n: ${runs:-?} runs in ${took:-?} s, cov ${cov:-?} edges, ft ${ft:-?}, corpus ${corp:-?} (from $seeds seeds)"
	bad="$(find "$crashes" -type f | sort)"
	if [ "$rc" != 0 ] || [ -n "$bad" ]; then
		found=1
		line="$line: FOUND (exit $rc)"
		grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|.*Assertion)' "$work/fuzz_$n.log" | head -n 5 >&2 || true
		for f in $bad; do
			line="$line"$'\n'"    input kept: $f"
		done
		line="$line"$'\n'"    log: $work/fuzz_$n.log"
	fi
	echo "$line"
	summary+=("$line")
done

echo "=== summary (scratch: $work)"
printf '%s\n' "${summary[@]}"
if [ "$found" != 0 ]; then
	echo "fuzz.sh: a harness FOUND a crash, leak or timeout (inputs kept above)" >&2
	exit 1
fi
if [ -z "${VDFS_FUZZ_WORK:-}" ]; then
	rm -rf "$work"
fi
echo "fuzz.sh: no crash"

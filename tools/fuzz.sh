#!/usr/bin/env bash
# tools/fuzz.sh - build the libFuzzer harnesses (fuzz/fuzz_<name>.c) with
# clang and run each for a while.
#
#   tools/fuzz.sh [SECONDS] [NAMES...]
#
# SECONDS (default 30) is each harness's -max_total_time; NAMES (default:
# every fuzz/fuzz_*.c) are harness names without fuzz_ (chunker config
# lease manifest results zframe). Each run starts from a copy of its seeds,
# fuzz/corpus/<name>/, in a scratch directory, so the seeds in the tree
# are never rewritten; what libFuzzer adds is left in the scratch
# directory, as are crash, leak and timeout inputs, which are reported
# with their path (the scratch directory is then kept).
#
# Environment:
#   VDFS_FUZZ_BUILD_DIR   build directory (default build-fuzz)
#   VDFS_FUZZ_JOBS        parallel build jobs (default 1)
#   VDFS_FUZZ_WORK        scratch directory (default: a new one in $TMPDIR)
#   VDFS_FUZZ_COVERAGE=1  then replay each corpus in a source-coverage build
#                         (BUILD-cov, clang -fcoverage-mapping) and print
#                         llvm-cov's line and branch coverage of the
#                         harness's parser files
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

# Which source files each harness is there for, for the coverage report.
declare -A cover=(
	[results]="daemon/http_results.c daemon/http_transfer.c"
	[config]="daemon/engine.c"
	[manifest]="daemon/engine_manifest.c"
	[chunker]="daemon/chunker.c"
	[zframe]="lib/zframe.c"
	[lease]="executors/exec_lease.c"
)
if [ "${VDFS_FUZZ_COVERAGE:-0}" = 1 ]; then
	cbuild="$build-cov"
	echo "=== coverage build ${cbuild#"$root"/}"
	if ! { cmake -S "$root" -B "$cbuild" -DCMAKE_C_COMPILER="$cc" -DVDFS_FUZZ=ON \
			-DCMAKE_BUILD_TYPE=RelWithDebInfo \
			"-DCMAKE_C_FLAGS=-fprofile-instr-generate -fcoverage-mapping" \
			"-DCMAKE_EXE_LINKER_FLAGS=-fprofile-instr-generate" &&
		nice -n 10 cmake --build "$cbuild" -j"$jobs" --target "${targets[@]}"; } \
		>"$work/coverage-build.log" 2>&1 </dev/null; then
		tail -n 20 "$work/coverage-build.log" >&2
		echo "fuzz.sh: coverage build failed" >&2
		exit 2
	fi
	for n in "${names[@]}"; do
		LLVM_PROFILE_FILE="$work/fuzz_$n.profraw" "$cbuild/bin/fuzz_$n" -runs=0 \
			"$work/corpus/$n" >"$work/fuzz_$n.cov.log" 2>&1 </dev/null || true
		llvm-profdata merge -sparse "$work/fuzz_$n.profraw" -o "$work/fuzz_$n.profdata"
		files=()
		for f in ${cover[$n]:-}; do files+=("$root/$f"); done
		# The functions of those files that the corpus reaches (the
		# files hold others the harness never calls), and their sum.
		echo "--- fuzz_$n: coverage by its corpus of the functions it reaches in ${cover[$n]:-?}"
		llvm-cov report -show-functions "$cbuild/bin/fuzz_$n" \
			-instr-profile="$work/fuzz_$n.profdata" "${files[@]}" |
			awk 'NF == 10 && $1 != "Name" && $1 != "TOTAL" && $4 != "0.00%" {
				printf "    %-32s lines %4d/%-4d %7s  branches %4d/%-4d %7s\n",
					$1, $5 - $6, $5, $7, $8 - $9, $8, $10
				l += $5; lm += $6; b += $8; bm += $9 }
			END { if (l) printf "    %-32s lines %4d/%-4d %6.2f%%  branches %4d/%-4d %6.2f%%\n",
				"(together)", l - lm, l, 100 * (l - lm) / l, b - bm, b,
				b ? 100 * (b - bm) / b : 0 }'
	done
fi

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

#!/usr/bin/env bash
# vdfs-bench.sh - the side-by-side benchmark behind `vdfs bench` (issue 6).
#
#   vdfs bench [--quick] [--out DIR] [--cases LIST] [--rounds N] [--perf]
#              [--budget SECONDS] [--no-install] [--keep]
#
# Runs each case against its baselines in the same run, alternating who
# goes first from round to round, several rounds, and prints a table of
# medians and ratios with each target and PASS/MISS. Writes into the output
# directory (default BUILD/bench/<timestamp>/): report.md, bench.png
# (gnuplot), results.tsv (the table), rounds.tsv (every measurement), and
# the tails of the daemons' logs.
#
# Cases (LIST is comma-separated; default all):
#   ingest    cp of 1 GiB and 64 MiB into data/ (cp returns after the seal:
#             chunked, hashed, compressed, fdatasync'd, committed) vs cp into
#             passthrough_ll on the same disk, into a native directory and
#             into a vdfsd that does not compress; 1 GiB of random bytes
#             too (time and pack bytes against that one and the raw size)
#   read      cat of a 1 GiB input and of its result.csv (a concat task
#             running `cat`), cold (remount + drop_caches) and warm, vs
#             native and passthrough_ll; vdfsd's peak memory through the
#             cp, the run and the concat's reduce
#   browse    ls -l versions/ and stat of every entry with 10,000 and
#             100,000 versions vs a native directory with as many entries
#   small     cp -r of a tree of 10,000 files of 4 KiB vs passthrough_ll
#   dispatch  units/s of a no-op function on 8 executors, in exec mode and
#             in persistent mode, vs xargs -P 8 (tools/bench-dispatch.sh)
#   e2e       the word count of docs/examples/wordcount on 1 GB of text,
#             cp into data/ to result.csv, 2 local executors, vs the same
#             program run once over the file
#   store     10 versions of a 100 MiB text, 10 line edits each, with a word
#             count: state directory growth vs one raw version, all raw,
#             gzip -1 and zstd -3 of each version; units computed per edit
#   memory    peak RSS (VmHWM) of vdfsd while ingesting 10 GiB, and of
#             every executor started by the other cases
#
# --quick runs tiny sizes of every case (a smoke run, about a minute).
# --budget: a full run aims to end within SECONDS (default 780): the first
# round of every case always runs; a further round runs only if the time
# left, minus one unloaded round of every case still to come, covers it.
# A case cut short says so in the report. 0: no budget (always --rounds).
# --perf records `perf record -a -g` during each case's vdfs part and writes
# the top symbols to perf/CASE.txt (timings then include perf's overhead).
# --no-install: do not apt-get install gnuplot when it is missing (the plot
# is then skipped). --keep keeps the work directory.
#
# Environment: VDFS_BUILD (build to measure; `vdfs bench` sets it to its
# own), VDFS_BENCH_DIR (where the work directory goes, default /var/tmp:
# baselines, state and inputs all on that disk).
#
# Exit: 0 when every case ran (whatever PASS/MISS says), 1 when a case
# could not run or a daemon misbehaved (see the report), 2 usage.
set -euo pipefail
shopt -s inherit_errexit

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${VDFS_BUILD:-$root/build}
all_cases=ingest,read,browse,small,dispatch,e2e,store,memory
cases=$all_cases
quick=0
out=""
rounds=""
budget=""
perf=0
install=1
keep=0

die() { echo "vdfs bench: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) quick=1 ;;
	--out) [ $# -ge 2 ] || die "--out needs a directory"; out=$2; shift ;;
	--cases) [ $# -ge 2 ] || die "--cases needs a list"; cases=$2; shift ;;
	--rounds) [ $# -ge 2 ] || die "--rounds needs a number"; rounds=$2; shift ;;
	--budget) [ $# -ge 2 ] || die "--budget needs seconds"; budget=$2; shift ;;
	--perf) perf=1 ;;
	--no-install) install=0 ;;
	--keep) keep=1 ;;
	-h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
	*) die "unknown option '$1' (see --help)" ;;
	esac
	shift
done
for c in ${cases//,/ }; do
	case ",$all_cases," in *",$c,"*) ;; *) die "unknown case '$c' (cases: $all_cases)" ;; esac
done
[ -z "$rounds" ] || [[ "$rounds" =~ ^[1-9][0-9]*$ ]] || die "--rounds wants a positive number"
[ -z "$budget" ] || [[ "$budget" =~ ^[0-9]+$ ]] || die "--budget wants a number of seconds"

build=$(cd "$build" 2>/dev/null && pwd) || die "no build directory $build (build first: tools/setup.sh)"
bin=$build/bin
vdfs=${VDFS_BENCH_VDFS:-$bin/vdfs}
for p in "$bin/vdfsd" "$bin/vdfs-executor" "$vdfs"; do
	[ -x "$p" ] || die "$p is not built (tools/setup.sh)"
done
command -v fusermount3 >/dev/null || die "fusermount3 not found (apt-get install fuse3)"
[ -e /dev/fuse ] || die "/dev/fuse is missing: FUSE is not available here"

# Sizes. Full: what issue 6 asks for. Quick: tiny, every code path.
if [ "$quick" = 1 ]; then
	R=${rounds:-1}
	ingest_mib="8 1"; read_mib=8; browse_n="100 1000"; small_n=200
	disp_units=40; disp_rounds=1; e2e_bytes=8000000; e2e_rounds=1; mem_mib=32
	store_mib=4; store_n=3
	budget=${budget:-0}
else
	R=${rounds:-3}
	ingest_mib="1024 64"; read_mib=1024; browse_n="10000 100000"; small_n=10000
	disp_units=2000; disp_rounds=$R; e2e_bytes=1000000000; e2e_rounds=${rounds:-2}; mem_mib=10240
	store_mib=100; store_n=10
	budget=${budget:-780}
fi
small_kib=4
disp_execs=8
wait_limit=900   # seconds any single wait may take before the case errs

stamp=$(date +%Y%m%d-%H%M%S)
out=${out:-$build/bench/$stamp}
mkdir -p "$out" "$out/logs"
out=$(cd "$out" && pwd)
: >"$out/rounds.tsv"
: >"$out/results.tsv"
: >"$out/notes.md"
: >"$out/errors.txt"
work=$(mktemp -d "${VDFS_BENCH_DIR:-/var/tmp}/vdfs-bench.XXXXXX")
mkdir -p "$work/src" "$work/native" "$work/bl"
t_start=$EPOCHREALTIME
t_start_us=${t_start/./}
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

case_pid=""
san_re='ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:'
cleanup() {
	local rc=$? m
	set +e
	trap - EXIT INT TERM
	if [ -n "$case_pid" ]; then
		kill -TERM "$case_pid" 2>/dev/null
		wait "$case_pid" 2>/dev/null
	fi
	# Anything still mounted under our work directory is ours.
	awk -v w="$work/" 'index($2, w) == 1 { print $2 }' /proc/mounts | while read -r m; do
		fusermount3 -uz "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	if [ "$keep" = 1 ]; then
		echo "vdfs bench: kept work directory $work" >&2
	else
		rm -rf --one-file-system "$work"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say() { printf '%s\n' "$*" >&2; }
note() { printf '%s\n' "$*" >>"$out/notes.md"; }
err() { printf '%s\n' "$*" >>"$out/errors.txt"; say "vdfs bench: ERROR: $*"; }
has_case() { case ",$cases," in *",$1,"*) return 0 ;; esac; return 1; }

# The time budget. est1: seconds one round of each case takes unloaded
# (full sizes), kept in reserve for the cases still to run.
declare -A est1=([ingest]=30 [read]=40 [browse]=180 [small]=40 [dispatch]=60 [e2e]=130 [memory]=130)
reserve_after() {
	local x seen=0 sum=0
	for x in ${all_cases//,/ }; do
		if [ "$seen" = 1 ] && has_case "$x"; then sum=$((sum + est1[$x])); fi
		if [ "$x" = "$1" ]; then seen=1; fi
	done
	echo "$sum"
}
# time_left CASE: seconds of budget left once the later cases' reserve is
# set aside (a large number without a budget).
time_left() {
	if [ "$budget" = 0 ]; then echo 999999; return; fi
	echo $(((t_start_us + budget * 1000000 - $(now_us)) / 1000000 - $(reserve_after "$1")))
}
# another_round WHAT CASE ROUND T_PREV: true if round ROUND (> 1) fits, the
# previous one having started at T_PREV (us); else a note, and false.
another_round() {
	local what=$1 c=$2 r=$3 last left
	[ "$r" -gt 1 ] || return 0
	last=$((($(now_us) - $4) / 1000000 + 1))
	left=$(time_left "$c")
	[ "$left" -lt "$last" ] || return 0
	note "- $what: stopped after $((r - 1)) round(s) to stay within the ${budget} s budget (a round takes about ${last} s; ${left} s left after reserving $(reserve_after "$c") s for the cases after it)."
	return 1
}

# ---------------------------------------------------------------- helpers
# Microseconds since the epoch, without a fork.
now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }
# secs T0 T1: the interval in seconds, 4 decimals.
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", (b - a) / 1e6 }'; }
# rec CASE SUBJECT ROUND VALUE: one measurement.
rec() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$out/rounds.tsv"; }
# med CASE SUBJECT: the median of the measurements (empty if none).
med() {
	awk -F'\t' -v c="$1" -v s="$2" '$1 == c && $2 == s { print $4 }' "$out/rounds.tsv" | sort -g |
		awk '{ v[++n] = $1 } END { if (n) printf "%.4f", (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }'
}
allv() { awk -F'\t' -v c="$1" -v s="$2" '$1 == c && $2 == s { printf "%s%s", sep, $4; sep = " " }' "$out/rounds.tsv"; }
# rotate N ITEM...: the items rotated left by N (who goes first changes).
rotate() {
	local n=$1
	shift
	local k=$(($# ? n % $# : 0))
	printf '%s\n' "${@:k+1}" "${@:1:k}"
}
drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}
can_drop=0
if [ -w /proc/sys/vm/drop_caches ]; then can_drop=1; fi
# warm FILE|DIR: read it once so that it is in the page cache.
warm() {
	if [ -d "$1" ]; then
		find "$1" -type f -exec cat {} + >/dev/null
	else
		cat "$1" >/dev/null
	fi
}
gen_text() { "$vdfs" bench gen-text "$2" "$3" >"$1"; }
# drop PATH...: delete a case's files when it is done, inside its own time
# (and so inside the budget), rather than all at the end.
drop() { rm -rf --one-file-system "$@"; }
is_mounted() { awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; }
wait_mount() {
	local i
	for ((i = 0; i < 400; i++)); do
		is_mounted "$1" && return 0
		sleep 0.05
	done
	echo "$1 did not mount within 20 s" >&2
	return 1
}
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || true; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# ---------------------------------------------------------------- baselines
ex=/usr/share/doc/libfuse3-dev/examples
pt_ll=$work/bl/passthrough_ll
pt_hp=""
build_baselines() {
	[ -f "$ex/passthrough_ll.c" ] || { echo "no $ex/passthrough_ll.c (apt-get install libfuse3-dev)" >&2; return 1; }
	# pkg-config's output is meant to be split into flags.
	# shellcheck disable=SC2046
	gcc -O2 -w -o "$pt_ll" "$ex/passthrough_ll.c" $(pkg-config fuse3 --cflags --libs)
	if [ ! -f "$ex/passthrough_hp.cc" ]; then
		note "- passthrough_hp: skipped: Debian's libfuse3-dev $(dpkg-query -W -f '${Version}' libfuse3-dev 2>/dev/null || echo '?') does not ship \`$ex/passthrough_hp.cc\` (only the C examples)."
	elif ! command -v g++ >/dev/null; then
		note "- passthrough_hp: skipped: g++ is not installed."
	else
		# shellcheck disable=SC2046
		if g++ -O2 -w -std=c++17 -o "$work/bl/passthrough_hp" "$ex/passthrough_hp.cc" \
			$(pkg-config fuse3 --cflags --libs) -lpthread 2>"$work/bl/hp.log"; then
			pt_hp=$work/bl/passthrough_hp
			note "- passthrough_hp: built from \`$ex/passthrough_hp.cc\` (not yet used by a case)."
		else
			note "- passthrough_hp: skipped: it did not compile ($(head -n 1 "$work/bl/hp.log"))."
		fi
	fi
	: "$pt_hp"
}

# ------------------------------------------------- processes of one case
# Every case runs in a subshell of its own, with these helpers and a trap
# that stops what the case started, so that a failing case leaves nothing
# behind and the others still run.
C_PIDS=()
C_MOUNTS=()
C_LOGS=()
PERF_PID=""
case_cleanup() {
	local p m i
	set +e
	[ -n "$PERF_PID" ] && perf_stop "aborted"
	for p in "${C_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${C_PIDS[@]}"; do
		for ((i = 0; i < 100; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	for m in "${C_MOUNTS[@]}"; do
		is_mounted "$m" && { fusermount3 -uz "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; }
	done
	# Keep the tails of the logs; a whole log when a sanitizer spoke in it.
	for m in "${C_LOGS[@]}"; do
		[ -f "$m" ] || continue
		if grep -q -E "$san_re" "$m"; then
			cp "$m" "$out/logs/"
		else
			tail -n 300 "$m" >"$out/logs/$(basename "$m")"
		fi
	done
}
forget_pid() {
	local p keep_p=()
	for p in "${C_PIDS[@]}"; do [ "$p" = "$1" ] || keep_p+=("$p"); done
	C_PIDS=("${keep_p[@]}")
}
# stop_pid PID: TERM, wait (KILL after 30 s); ST gets its exit status.
ST=0
stop_pid() {
	local p=$1 i
	ST=0
	kill -TERM "$p" 2>/dev/null || true
	for ((i = 0; i < 300; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$p" 2>/dev/null; then
		echo "pid $p ignored TERM for 30 s: KILL" >&2
		kill -KILL "$p" 2>/dev/null || true
	fi
	wait "$p" 2>/dev/null || ST=$?
	forget_pid "$p"
}

# vdfsd: start_vdfsd NAME [--fresh] [ARGS...] (state $work/NAME/state, mount
# $work/NAME/mnt); sets VPID, VURL, VMNT, VSTATE.
VPID=""
VURL=""
VMNT=""
VSTATE=""
VNAME=""
start_vdfsd() {
	local name=$1 i
	shift
	VNAME=$name
	VSTATE=$work/$name/state
	VMNT=$work/$name/mnt
	if [ "${1:-}" = --fresh ]; then
		shift
		rm -rf --one-file-system "$VSTATE"
	fi
	mkdir -p "$VSTATE" "$VMNT"
	rm -f "$VSTATE/url"
	local log=$work/vdfsd-$name.log
	case " ${C_LOGS[*]} " in *" $log "*) ;; *) C_LOGS+=("$log") ;; esac
	echo "=== start $*" >>"$log"
	"$bin/vdfsd" --foreground --state "$VSTATE" --listen 127.0.0.1:0 "$@" "$VMNT" \
		>>"$log" 2>&1 </dev/null &
	VPID=$!
	C_PIDS+=("$VPID")
	C_MOUNTS+=("$VMNT")
	for ((i = 0; i < 600; i++)); do
		[ -s "$VSTATE/url" ] && is_mounted "$VMNT" && break
		kill -0 "$VPID" 2>/dev/null || { echo "vdfsd ($name) exited during start-up; see $log" >&2; return 1; }
		sleep 0.05
	done
	if ! [ -s "$VSTATE/url" ] || ! is_mounted "$VMNT"; then
		echo "vdfsd ($name) did not come up in 30 s" >&2
		return 1
	fi
	VURL=$(head -n 1 "$VSTATE/url")
}
# stop_vdfsd: TERM; it must exit 0 and unmount. Records its VmHWM.
stop_vdfsd() {
	local kb
	kb=$(hwm_kb "$VPID")
	[ -z "$kb" ] || rec vdfsd_hwm "$VNAME" 0 "$(mb "$kb")"
	stop_pid "$VPID"
	if [ "$ST" != 0 ]; then
		echo "vdfsd ($VNAME) exited with status $ST on SIGTERM" >&2
		return 1
	fi
	if is_mounted "$VMNT"; then
		echo "vdfsd ($VNAME) exited but $VMNT is still mounted" >&2
		fusermount3 -uz "$VMNT" 2>/dev/null || true
		return 1
	fi
	VPID=""
}
# Executors: start_execs N (on the running vdfsd); stop_execs CASE records
# each one's VmHWM.
E_PIDS=()
start_execs() {
	local i
	for ((i = 1; i <= $1; i++)); do
		"$bin/vdfs-executor" --server "$VURL" --token-file "$VSTATE/token" \
			--name "x$i" --cache "$work/$VNAME/cache-$i" \
			>>"$work/exec-$VNAME-$i.log" 2>&1 </dev/null &
		E_PIDS+=("$!")
		C_PIDS+=("$!")
		C_LOGS+=("$work/exec-$VNAME-$i.log")
	done
}
stop_execs() {
	local p kb
	for p in "${E_PIDS[@]}"; do
		kb=$(hwm_kb "$p")
		[ -z "$kb" ] || rec exec_hwm "$1" 0 "$(mb "$kb")"
		stop_pid "$p"
	done
	E_PIDS=()
}
# passthrough_ll: start_pt SRC MNT; stop_pt.
PTPID=""
PTMNT=""
start_pt() {
	mkdir -p "$1" "$2"
	PTMNT=$2
	"$pt_ll" -f -o source="$1" "$2" >>"$work/passthrough_ll.log" 2>&1 </dev/null &
	PTPID=$!
	C_PIDS+=("$PTPID")
	C_MOUNTS+=("$2")
	wait_mount "$2"
}
stop_pt() {
	stop_pid "$PTPID"
	if is_mounted "$PTMNT"; then fusermount3 -uz "$PTMNT"; fi
	PTPID=""
}
# wait_done VERSION_DIR: poll status until done; fail on failed or timeout.
wait_done() {
	local s t0=$SECONDS
	while :; do
		s=$(head -n 1 "$1/status" 2>/dev/null || true)
		case "$s" in
		done*) return 0 ;;
		failed*) echo "run failed: $s" >&2; tail -n 5 "$1/log" >&2 || true; return 1 ;;
		esac
		if ((SECONDS - t0 > wait_limit)); then
			echo "run not done after ${wait_limit}s: $s" >&2
			return 1
		fi
		sleep 0.05
	done
}
# perf_start NAME / perf_stop NAME [PIDS]: with --perf, a system-wide
# profile of the case's vdfs part, summarized into perf/NAME.txt: every
# process by share of CPU (other users' included: the machine is shared),
# then our vdfsd's and executors' symbols (by PID: PIDS, default the running
# vdfsd and executors of this case).
perf_start() {
	[ "$perf" = 1 ] || return 0
	mkdir -p "$out/perf"
	# shellcheck disable=SC2086
	perf record -a ${VDFS_BENCH_PERF_ARGS:--g -F 499} -o "$work/perf-$1.data" \
		>"$work/perf-$1.log" 2>&1 </dev/null &
	PERF_PID=$!
	sleep 0.5
}
perf_stop() {
	[ -n "$PERF_PID" ] || return 0
	kill -INT "$PERF_PID" 2>/dev/null || true
	wait "$PERF_PID" 2>/dev/null || true
	PERF_PID=""
	[ "$1" != aborted ] || return 0
	local d=$work/perf-$1.data daemon=${2:-$VPID} execs=${3:-${E_PIDS[*]:-}}
	# -n: sample counts too; at -F 499, 499 samples are one CPU-second.
	local rep=(perf report -i "$d" --stdio -g none -n)
	execs=${execs// /,}
	{
		echo "# perf record -a ${VDFS_BENCH_PERF_ARGS:--g -F 499} during: $1"
		echo "## CPU samples by process name, whole machine (other users' processes included)"
		"${rep[@]}" --no-children --sort comm --percent-limit 1 2>/dev/null |
			grep -v -e '^#' -e '^$' | sed -n '1,25p'
		if [ -n "$daemon" ]; then
			echo "## our vdfsd (pid $daemon): self time by symbol (% of its samples)"
			"${rep[@]}" --no-children --pid "$daemon" --percentage relative \
				--sort dso,symbol --percent-limit 0.8 2>/dev/null | grep -v -e '^#' -e '^$' | sed -n '1,40p'
			echo "## our vdfsd: inclusive time by symbol (children counted; % of its samples)"
			"${rep[@]}" --children --pid "$daemon" --percentage relative \
				--sort symbol --percent-limit 3 2>/dev/null | grep -v -e '^#' -e '^$' | sed -n '1,50p'
		fi
		if [ -n "$execs" ]; then
			echo "## our executors (pids $execs): self time by symbol (% of their samples)"
			"${rep[@]}" --no-children --pid "$execs" --percentage relative \
				--sort dso,symbol --percent-limit 0.8 2>/dev/null | grep -v -e '^#' -e '^$' | sed -n '1,30p'
		fi
	} >"$out/perf/$1.txt" 2>&1 || true
	rm -f "$d"
}
# CPU accounting, to tell how loaded the machine was by others: busy
# CPU-seconds of the whole machine (/proc/stat) and CPU-seconds of our own
# processes (the children's times of this shell: every process a case
# starts is waited for).
machine_busy() { awk '/^cpu / { printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / 100 }' /proc/stat; }
# (times must run in this shell, not in a $(...) subshell: the file.)
our_cpu() { awk 'NR == 2 { for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] } printf "%.2f", t }' "$work/times.txt"; }

# run_case NAME: run case_NAME in a subshell; note an error if it fails.
run_case() {
	local rc=0 t0 b0 c0 b1 c1 wall
	t0=$(now_us)
	b0=$(machine_busy)
	times >"$work/times.txt"
	c0=$(our_cpu)
	say "== $1"
	(
		trap case_cleanup EXIT
		trap 'exit 143' TERM
		trap 'exit 130' INT
		"case_$1"
	) &
	case_pid=$!
	wait "$case_pid" || rc=$?
	case_pid=""
	wall=$(secs "$t0" "$(now_us)")
	b1=$(machine_busy)
	times >"$work/times.txt"
	c1=$(our_cpu)
	rec case_time "$1" 0 "$wall"
	rec case_cpu_ours "$1" 0 "$(awk -v a="$c0" -v b="$c1" -v w="$wall" -v n="$(nproc)" 'BEGIN { printf "%.0f", 100 * (b - a) / (w * n) }')"
	rec case_cpu_others "$1" 0 "$(awk -v a="$c0" -v b="$c1" -v x="$b0" -v y="$b1" -v w="$wall" -v n="$(nproc)" \
		'BEGIN { o = (y - x) - (b - a); if (o < 0) o = 0; printf "%.0f", 100 * o / (w * n) }')"
	if [ "$rc" != 0 ]; then
		err "case $1 did not complete (exit $rc); its measurements so far are kept. See logs/."
	fi
	say "   $1: $(secs "$t0" "$(now_us)") s"
}

# ---------------------------------------------------------------- cases
# ingest: cp of a text file; fresh vdfs store each round (so that every
# round writes new chunks); native, native + fsync (info), passthrough_ll.
case_ingest() {
	local r s f party t0 n t_r kind tag parties args
	start_pt "$work/pt_src/ingest" "$work/pt_mnt/ingest"
	for s in $ingest_mib; do
		for kind in text random; do
			# Incompressible input at the first (largest) size only:
			# what compression must not slow down or grow.
			[ "$kind" = text ] || [ "$s" = "${ingest_mib%% *}" ] || continue
			if [ "$kind" = text ]; then
				tag=ingest_$s
				f=$work/src/ingest-$s.txt
				[ -f "$f" ] || gen_text "$f" "${s}M" "$((100 + s))"
				parties="native pt vdfs vdfs_none native_fsync"
			else
				tag=ingest_random_$s
				f=$work/src/ingest-$s.rnd
				mkdir -p "$work/src"
				[ -f "$f" ] || head -c "$((s << 20))" /dev/urandom >"$f"
				parties="pt vdfs vdfs_none"
			fi
			t_r=$(now_us)
			for ((r = 1; r <= R; r++)); do
				another_round "ingest $kind $s MiB" ingest "$r" "$t_r" || break
				t_r=$(now_us)
				for party in $(rotate "$r" $parties); do
					warm "$f"
					sync
					case $party in
					native)
						t0=$(now_us); cp "$f" "$work/native/ingest-$r"
						rec "$tag" native "$r" "$(secs "$t0" "$(now_us)")"
						rm -f "$work/native/ingest-$r" ;;
					native_fsync)
						t0=$(now_us); cp "$f" "$work/native/ingest-$r"; sync "$work/native/ingest-$r"
						rec "$tag" native_fsync "$r" "$(secs "$t0" "$(now_us)")"
						rm -f "$work/native/ingest-$r" ;;
					pt)
						t0=$(now_us); cp "$f" "$PTMNT/ingest-$r"
						rec "$tag" passthrough_ll "$r" "$(secs "$t0" "$(now_us)")"
						rm -f "$PTMNT/ingest-$r" ;;
					vdfs | vdfs_none)
						# vdfs_none is the store as it was before
						# compression (--compress none), side by side.
						args=()
						[ "$party" = vdfs ] || args=(--compress none)
						start_vdfsd ingest --fresh "${args[@]}"
						mkdir "$VMNT/tasks/in"
						sync
						[ "$party" = vdfs_none ] || perf_start "$tag"
						t0=$(now_us); cp "$f" "$VMNT/tasks/in/data/"
						rec "$tag" "$party" "$r" "$(secs "$t0" "$(now_us)")"
						[ "$party" = vdfs_none ] || perf_stop "$tag"
						# cp has returned: the version must be there already.
						n=$(find "$VMNT/tasks/in/versions" -mindepth 1 -maxdepth 1 | wc -l)
						[ "$n" = 1 ] || { echo "ingest: $n versions right after cp, expected 1" >&2; return 1; }
						rec "${tag}_bytes" "$party" "$r" "$(find "$VSTATE/packs" -name '*.pack' -printf '%s\n' |
							awk '{ b += $1 } END { printf "%.1f", b / 1e6 }')"
						rec "${tag}_bytes" raw "$r" "$(stat -c %s "$f" | awk '{ printf "%.1f", $1 / 1e6 }')"
						stop_vdfsd ;;
					esac
				done
			done
		done
	done
	stop_pt
	drop "$work/ingest" "$work/pt_src/ingest" "$work/src"/ingest-*
}

# read: one store holding a file and its concat result (function `cat`);
# native and passthrough_ll read the same file on the same disk.
case_read() {
	local f=$work/pt_src/read/read.txt r party t0 v file mode sub
	mkdir -p "$work/pt_src/read"
	gen_text "$f" "${read_mib}M" 7
	start_vdfsd read --fresh
	mkdir "$VMNT/tasks/rd"
	printf '#!/bin/sh\nexec cat\n' >"$work/cat.sh"
	chmod +x "$work/cat.sh"
	cp "$work/cat.sh" "$VMNT/tasks/rd/function"
	start_execs 2
	t0=$(now_us)
	cp "$f" "$VMNT/tasks/rd/data/read.txt"
	v=$VMNT/tasks/rd/latest
	wait_done "$v"
	# The daemon's peak from its start through the ingest, the run and
	# the concat's reduce (issue 15: under 120 MB at 1 GiB).
	rec read_hwm vdfsd 1 "$(mb "$(hwm_kb "$VPID")")"
	note "- read: $read_mib MiB copied in and its \`cat\` run finished $(secs "$t0" "$(now_us)") s after cp started (2 executors): $(head -n 1 "$v/status")."
	stop_execs read
	cmp -s "$f" "$v/input" || { echo "read: input differs from the file copied in" >&2; return 1; }
	cmp -s "$f" "$v/result.csv" || { echo "read: result.csv of cat differs from the input" >&2; return 1; }
	v=$(cd "$v" && pwd -P)
	v=${v#"$VMNT"/}
	start_pt "$work/pt_src/read" "$work/pt_mnt/read"
	local t_r
	t_r=$(now_us)
	for ((r = 1; r <= R; r++)); do
		another_round read read "$r" "$t_r" || break
		t_r=$(now_us)
		for mode in cold warm; do
			if [ "$mode" = cold ] && [ "$can_drop" = 0 ]; then continue; fi
			for party in $(rotate "$r" native pt input result); do
				case $party in
				native) file=$f; sub=native ;;
				pt) file=$PTMNT/read.txt; sub=passthrough_ll ;;
				input) file=$VMNT/$v/input; sub=vdfs_input ;;
				result) file=$VMNT/$v/result.csv; sub=vdfs_result ;;
				esac
				if [ "$mode" = cold ]; then
					# Remount whoever is read, then empty every cache.
					case $party in
					pt) stop_pt; start_pt "$work/pt_src/read" "$work/pt_mnt/read" ;;
					input | result) stop_vdfsd; start_vdfsd read ;;
					esac
					drop_caches
				else
					# Warm: the second of two reads in a row, same mount.
					cat "$file" >/dev/null
				fi
				[ "$party" = native ] || [ "$party" = pt ] || perf_start "read_${mode}_$party"
				t0=$(now_us); cat "$file" >/dev/null
				rec "read_$mode" "$sub" "$r" "$(secs "$t0" "$(now_us)")"
				perf_stop "read_${mode}_$party"
			done
		done
	done
	stop_pt
	stop_vdfsd
	drop "$work/read" "$work/pt_src/read"
}

# browse: N versions made of N tiny distinct files copied into data/
# (parallel cp, 16 at a time, 100 files per cp), against a native
# directory of N files; cold = after remount and drop_caches.
case_browse() {
	local n have=0 src=$work/native/browse-src r party t0 t1 dir d sub k i got
	local max=0
	for n in $browse_n; do if ((n > max)); then max=$n; fi; done
	mkdir -p "$src"
	# The sources: file eN holds "entry N" (distinct, so distinct versions).
	(cd "$src" && awk -v n="$max" 'BEGIN { for (i = 0; i < n; i++) { f = sprintf("e%06d", i); print "entry " i > f; close(f) } }')
	start_vdfsd browse --fresh
	mkdir "$VMNT/tasks/b"
	# How fast one cp after another seals (the plain way), on a sample.
	k=$((quick ? 20 : 300))
	mkdir -p "$work/browse-serial"
	(cd "$work/browse-serial" && awk -v n="$k" 'BEGIN { for (i = 0; i < n; i++) { f = "s" i; print "serial " i > f; close(f) } }')
	t0=$(now_us)
	for ((i = 0; i < k; i++)); do cp "$work/browse-serial/s$i" "$VMNT/tasks/b/data/s$i"; done
	t1=$(now_us)
	rec browse_create serial_per_s 0 "$(awk -v k="$k" -v s="$(secs "$t0" "$t1")" 'BEGIN { printf "%.1f", k / s }')"
	note "- browse: one \`cp\` per file, one after another: $k seals in $(secs "$t0" "$t1") s ($(med browse_create serial_per_s) versions/s); 100,000 that way would take about $(awk -v r="$(med browse_create serial_per_s)" 'BEGIN { printf "%.0f", 100000 / r }') s."
	# The serial sample made versions of task b; the measured directory is
	# task v's.
	mkdir "$VMNT/tasks/v"
	for n in $browse_n; do
		# Native directory with as many entries.
		if [ "$n" = "$max" ]; then
			dir=$src   # exactly max entries already
		else
			dir=$work/native/browse-$n
			mkdir -p "$dir"
			(cd "$src" && find . -maxdepth 1 -type f -name 'e*' | sort | sed -n "1,${n}p" | xargs cp -t "$dir")
		fi
		# Versions have-1 .. n-1: parallel cp, 100 files per process, 16 at once.
		perf_start "browse_create_$n"
		t0=$(now_us)
		(cd "$src" && find . -maxdepth 1 -type f -name 'e*' | sort | sed -n "$((have + 1)),${n}p" |
			xargs -P 16 -n 100 cp -t "$VMNT/tasks/v/data/")
		t1=$(now_us)
		perf_stop "browse_create_$n"
		rec browse_create "to_$n" 0 "$(secs "$t0" "$t1")"
		got=$(find "$VMNT/tasks/v/versions" -mindepth 1 -maxdepth 1 | wc -l)
		[ "$got" = "$n" ] || { echo "browse: $got versions, expected $n" >&2; return 1; }
		note "- browse: versions $have..$((n - 1)) made by parallel \`cp\` (xargs -P 16 -n 100 cp -t data/): $((n - have)) seals in $(secs "$t0" "$t1") s ($(awk -v k=$((n - have)) -v s="$(secs "$t0" "$t1")" 'BEGIN { printf "%.0f", k / s }') versions/s); \`versions/\` then lists $got."
		have=$n
		local t_r
		t_r=$(now_us)
		for ((r = 1; r <= R; r++)); do
			another_round "browse $n" browse "$r" "$t_r" || break
			t_r=$(now_us)
			for party in $(rotate "$r" native vdfs); do
				if [ "$party" = native ]; then d=$dir; sub=native; else d=$VMNT/tasks/v/versions; sub=vdfs; fi
				if [ "$can_drop" = 1 ]; then
					if [ "$party" = vdfs ]; then stop_vdfsd; start_vdfsd browse; d=$VMNT/tasks/v/versions; fi
					drop_caches
					[ "$party" = native ] || perf_start "browse_ls_cold_$n"
					t0=$(now_us); ls -l "$d" >/dev/null
					rec "browse_ls_cold_$n" "$sub" "$r" "$(secs "$t0" "$(now_us)")"
					perf_stop "browse_ls_cold_$n"
				fi
				ls -l "$d" >/dev/null
				[ "$party" = native ] || perf_start "browse_ls_warm_$n"
				t0=$(now_us); ls -l "$d" >/dev/null
				rec "browse_ls_warm_$n" "$sub" "$r" "$(secs "$t0" "$(now_us)")"
				perf_stop "browse_ls_warm_$n"
				t0=$(now_us)
				find "$d" -mindepth 1 -maxdepth 1 -print0 | xargs -0 stat --printf '%s %Y\n' >/dev/null
				rec "browse_stat_$n" "$sub" "$r" "$(secs "$t0" "$(now_us)")"
			done
		done
	done
	stop_vdfsd
	t0=$(now_us)
	drop "$work/browse" "$work/native"/browse-* "$work/browse-serial"
	note "- browse: deleting its files (the store with $max versions, the native directories) took $(secs "$t0" "$(now_us)") s."
}

# small: cp -r of a tree of small files; fresh store each round (settle 0,
# so the time to the sealed version is cp -r plus the seal).
case_small() {
	local src=$work/src/small r party t0 i n per=100 v
	if [ ! -d "$src" ]; then
		mkdir -p "$src"
		for ((i = 0; i * per < small_n; i++)); do
			n=$((small_n - i * per < per ? small_n - i * per : per))
			mkdir -p "$src/d$i"
			"$vdfs" bench gen-text "$((n * small_kib * 1024))" "$((1000 + i))" |
				(cd "$src/d$i" && split -b "$((small_kib * 1024))" -a 3 -d - f)
		done
	fi
	start_pt "$work/pt_src/small" "$work/pt_mnt/small"
	local t_r
	t_r=$(now_us)
	for ((r = 1; r <= R; r++)); do
		another_round small small "$r" "$t_r" || break
		t_r=$(now_us)
		for party in $(rotate "$r" pt vdfs native); do
			warm "$src"
			sync
			case $party in
			native)
				t0=$(now_us); cp -r "$src" "$work/native/small-$r"
				rec small native "$r" "$(secs "$t0" "$(now_us)")"
				rm -rf "$work/native/small-$r" ;;
			pt)
				t0=$(now_us); cp -r "$src" "$PTMNT/small-$r"
				rec small passthrough_ll "$r" "$(secs "$t0" "$(now_us)")"
				rm -rf "$PTMNT/small-$r" ;;
			vdfs)
				start_vdfsd small --fresh
				mkdir "$VMNT/tasks/sm"
				echo 'settle = 0' >"$VMNT/tasks/sm/config"
				sync
				perf_start small
				t0=$(now_us); cp -r "$src" "$VMNT/tasks/sm/data/tree"
				rec small vdfs "$r" "$(secs "$t0" "$(now_us)")"
				i=$SECONDS
				until v=$(find "$VMNT/tasks/sm/versions" -mindepth 1 -maxdepth 1 -print -quit) && [ -n "$v" ]; do
					((SECONDS - i < wait_limit)) || { echo "small: no version after ${wait_limit}s" >&2; return 1; }
					sleep 0.02
				done
				rec small vdfs_sealed "$r" "$(secs "$t0" "$(now_us)")"
				perf_stop small
				n=$(find "$v/input" -type f | wc -l)
				[ "$n" = "$small_n" ] || { echo "small: the version holds $n files, expected $small_n" >&2; return 1; }
				stop_vdfsd ;;
			esac
		done
	done
	stop_pt
	drop "$work/small" "$work/src/small" "$work/pt_src/small"
}

# dispatch: tools/bench-dispatch.sh (its own daemon and 8 executors), once
# with the function in exec mode (a process per unit) and once in
# persistent mode (a process per slot, units as frames: docs/persistent.md),
# each script run with its own xargs -P 8 rounds beside it.
case_dispatch() {
	local script=$root/tools/bench-dispatch.sh sampler r line v x mode key left
	[ -f "$script" ] || { echo "dispatch: $script is missing" >&2; return 1; }
	# Its rounds run inside the script: fit their number to the budget
	# (both modes share the case's estimate).
	left=$(time_left dispatch)
	while ((disp_rounds > 1 && left < disp_rounds * est1[dispatch])); do disp_rounds=$((disp_rounds - 1)); done
	if [ "$disp_rounds" -lt "$R" ]; then
		note "- dispatch: $disp_rounds round(s) instead of $R to stay within the ${budget} s budget (${left} s left after the reserve)."
	fi
	perf_start dispatch
	: >"$work/dispatch-hwm.txt"
	for mode in exec persistent; do
		local log=$out/logs/dispatch-$mode.log
		key=$([ "$mode" = exec ] && echo vdfs || echo persist)
		MODE=$mode VDFS_BUILD=$build VDFS_BENCH_DIR=$work bash "$script" "$disp_units" "$disp_rounds" "$disp_execs" \
			>"$log" 2>&1 &
		local dpid=$!
		C_PIDS+=("$dpid")
		# Its daemon's and executors' PIDs and peak RSS, sampled while they live.
		(
			while kill -0 "$dpid" 2>/dev/null; do
				for p in $(pgrep -P "$dpid" -x vdfs-executor); do
					printf 'x %s %s\n' "$p" "$(hwm_kb "$p")"
				done
				for p in $(pgrep -P "$dpid" -x vdfsd); do
					printf 'd %s %s\n' "$p" "$(hwm_kb "$p")"
				done
				sleep 0.5
			done
		) >>"$work/dispatch-hwm.txt" &
		sampler=$!
		C_PIDS+=("$sampler")
		wait "$dpid" || { forget_pid "$dpid"; echo "dispatch: bench-dispatch.sh ($mode) failed; see logs/dispatch-$mode.log" >&2; return 1; }
		forget_pid "$dpid"
		wait "$sampler" || true
		forget_pid "$sampler"
		# "round: N units; vdfs V ms (...), xargs -P P X ms (...)"
		r=0
		while IFS= read -r line; do
			if [[ "$line" =~ ^round:\ ([0-9]+)\ units\;\ vdfs\ ([0-9.]+)\ ms.*xargs\ -P\ [0-9]+\ ([0-9.]+)\ ms ]]; then
				r=$((r + 1))
				rec dispatch "$key" "$r" "$(awk -v n="${BASH_REMATCH[1]}" -v t="${BASH_REMATCH[2]}" 'BEGIN { printf "%.1f", n * 1000 / t }')"
				rec dispatch "xargs_$mode" "$r" "$(awk -v n="${BASH_REMATCH[1]}" -v t="${BASH_REMATCH[3]}" 'BEGIN { printf "%.1f", n * 1000 / t }')"
				v=${BASH_REMATCH[1]}
			fi
		done <"$log"
		[ "$r" -gt 0 ] || { echo "dispatch: no 'round:' line in bench-dispatch.sh's output (logs/dispatch-$mode.log)" >&2; return 1; }
		x=$(grep -o 'overhead [0-9.-]* ms/unit/worker' "$log" | tail -n 1 || true)
		note "- dispatch ($mode mode): MODE=$mode tools/bench-dispatch.sh $disp_units $disp_rounds $disp_execs: $v units of a no-op function (4 KiB units) per round on $disp_execs executors; vdfs time is the run's own (first lease to done, meta.json); xargs -P $disp_execs runs the exec-mode function (\`cat >/dev/null\`) on as many pieces, in the same script run. ${x:+Median round: $x.} Its output: logs/dispatch-$mode.log."
	done
	perf_stop dispatch "$(awk '$1 == "d" { print $2 }' "$work/dispatch-hwm.txt" | sort -u | paste -sd,)" \
		"$(awk '$1 == "x" { print $2 }' "$work/dispatch-hwm.txt" | sort -u | paste -sd,)"
	awk '$1 == "x" && $3 != "" { if ($3 > m[$2]) m[$2] = $3 } END { for (p in m) printf "%.1f\n", m[p] / 1024 }' \
		"$work/dispatch-hwm.txt" | while read -r v; do rec exec_hwm dispatch 0 "$v"; done
}

# e2e: word count (docs/examples/wordcount/function, reduce = sum) of 1 GB;
# cp into data/ until result.csv is read, 2 executors; vs the same program
# over the whole file in one process. Results are compared.
case_e2e() {
	local f=$work/src/e2e.txt fn=$root/docs/examples/wordcount/function r party t0 t1 t2 v
	[ -x "$fn" ] || { echo "e2e: $fn is missing" >&2; return 1; }
	gen_text "$f" "$e2e_bytes" 42
	local t_r
	t_r=$(now_us)
	for ((r = 1; r <= e2e_rounds; r++)); do
		another_round e2e e2e "$r" "$t_r" || break
		t_r=$(now_us)
		for party in $(rotate "$r" single vdfs); do
			warm "$f"
			sync
			if [ "$party" = single ]; then
				t0=$(now_us); "$fn" <"$f" >"$work/e2e-single.csv"
				rec e2e single "$r" "$(secs "$t0" "$(now_us)")"
				LC_ALL=C sort -o "$work/e2e-single.csv" "$work/e2e-single.csv"
				continue
			fi
			start_vdfsd e2e --fresh
			start_execs 2
			mkdir "$VMNT/tasks/wc"
			cp "$fn" "$VMNT/tasks/wc/function"
			echo 'reduce = sum' >"$VMNT/tasks/wc/config"
			sync
			perf_start e2e
			t0=$(now_us)
			cp "$f" "$VMNT/tasks/wc/data/text.txt"
			t1=$(now_us)
			v=$VMNT/tasks/wc/latest
			wait_done "$v"
			cat "$v/result.csv" >"$work/e2e-vdfs.csv"
			t2=$(now_us)
			perf_stop e2e
			rec e2e vdfs "$r" "$(secs "$t0" "$t2")"
			rec e2e vdfs_ingest "$r" "$(secs "$t0" "$t1")"
			rec e2e vdfs_run "$r" "$(secs "$t1" "$t2")"
			note "- e2e round $r: $(head -n 1 "$v/status")"
			stop_execs e2e
			stop_vdfsd
		done
		cmp -s "$work/e2e-vdfs.csv" "$work/e2e-single.csv" ||
			{ echo "e2e: result.csv differs from the single process's count" >&2; return 1; }
	done
	note "- e2e: result.csv equals the single process's output sorted (LC_ALL=C), $(wc -l <"$work/e2e-single.csv") words."
	drop "$work/e2e" "$f"
}

# store_edit SRC DST SEED TAG: 10 line edits, as mount-tests/lib.sh's
# vd_edit_lines, whose copy this is: `vdfs bench` runs without the source
# tree, where that file lives.
store_edit() {
	local n
	n=$(wc -l <"$1")
	awk -v seed="$3" -v n="$n" -v edits=10 -v tag="$4" '
	BEGIN {
		x = seed
		for (e = 0; e < edits; ) {
			x = (x * 16807) % 2147483647; ln = 1 + x % n
			x = (x * 16807) % 2147483647; k = x % 3
			if (ln in K) continue
			K[ln] = k; e++
		}
	}
	NR in K {
		if (K[NR] == 0) { print "changed by " tag " at line " NR; next }
		if (K[NR] == 1) print "inserted by " tag " before line " NR
		else next
	}
	{ print }' "$1" >"$2"
}

# store: store_n versions of a text of store_mib MiB under one name, each
# made from the one before by 10 random line edits (changed, inserted or
# deleted lines, as tools/bench-versions.sh), with the word count of
# docs/examples/wordcount (reduce = sum). What the state directory grew by
# (du -sb: packs, catalog and all, results included) against the raw
# versions (their bytes summed), against gzip -1 and zstd -3 of each version
# kept whole, as a user would otherwise keep them; the units each edited
# version computed (from its run log); every result.csv equals the single
# process's count of that version.
case_store() {
	local f=$work/src/store.txt fn=$root/docs/examples/wordcount/function i v s0 s1
	local raw=0 gz=0 zs=0 one units ran ran_sum=0 ran_max=0 t_dir t0 chunks
	command -v zstd >/dev/null || { echo "store: zstd is not installed (tools/setup.sh installs it)" >&2; return 1; }
	gen_text "$f" "${store_mib}M" 31
	# VDFS_BENCH_CHUNK: the store's average chunk size (vdfsd --chunk-size),
	# for comparing chunk sizes (docs/versioning.md, "Chunk size").
	start_vdfsd store --fresh ${VDFS_BENCH_CHUNK:+--chunk-size "$VDFS_BENCH_CHUNK"}
	t_dir=$VMNT/tasks/st
	mkdir "$t_dir"
	cp "$fn" "$t_dir/function"
	echo 'reduce = sum' >"$t_dir/config"
	start_execs 2
	sync
	s0=$(du -sb "$VSTATE" | cut -f1)
	for ((i = 1; i <= store_n; i++)); do
		if ((i > 1)); then
			store_edit "$f" "$f.new" $((7000 + i)) "v$i"
			mv "$f.new" "$f"
		fi
		raw=$((raw + $(stat -c %s "$f")))
		gz=$((gz + $(gzip -1 -c "$f" | wc -c)))
		zs=$((zs + $(zstd -3 -q -c "$f" | wc -c)))
		warm "$f"
		t0=$(now_us)
		cp "$f" "$t_dir/data/text.txt"
		rec "store_cp_$([ "$i" = 1 ] && echo first || echo edit)" vdfs "$i" "$(secs "$t0" "$(now_us)")"
		v=$t_dir/latest
		wait_done "$v"
		"$fn" <"$f" | LC_ALL=C sort >"$work/store-single.csv"
		LC_ALL=C sort "$v/result.csv" | cmp -s - "$work/store-single.csv" ||
			{ echo "store: version $i's result.csv differs from the single process's count" >&2; return 1; }
		# "run planned: N units, R reused from earlier runs, C to compute"
		read -r units ran < <(sed -n 's/.*run planned: \([0-9]*\) units, [0-9]* reused from earlier runs, \([0-9]*\) to compute.*/\1 \2/p' "$v/log" | tail -n 1)
		if ((i > 1)); then
			ran_sum=$((ran_sum + ran))
			((ran > ran_max)) && ran_max=$ran
		fi
	done
	chunks=$(curl -s -H "Authorization: Bearer $(cat "$VSTATE/token")" "$VURL/v1/du" |
		sed -n 's/.*"chunks": *\([0-9]*\).*/\1/p' | head -n 1)
	stop_execs store
	stop_vdfsd
	s1=$(du -sb "$VSTATE" | cut -f1)
	one=$((raw / store_n))
	rec store_bytes vdfs 1 "$(mb $(((s1 - s0) / 1024)))"
	rec store_bytes one_raw 1 "$(mb $((one / 1024)))"
	rec store_bytes raw 1 "$(mb $((raw / 1024)))"
	rec store_bytes gzip1 1 "$(mb $((gz / 1024)))"
	rec store_bytes zstd3 1 "$(mb $((zs / 1024)))"
	rec store_units vdfs 1 "$ran_max"
	note "- store: $store_n versions of ${store_mib} MiB, 10 line edits each: the state directory grew by $(((s1 - s0) / 1024)) KiB (one raw version $((one / 1024)) KiB; all raw $((raw / 1024)) KiB; gzip -1 of each $((gz / 1024)) KiB; zstd -3 of each $((zs / 1024)) KiB). Chunk size ${VDFS_BENCH_CHUNK:-the default}: ${chunks:-?} chunks in the store; cp of the first version $(med store_cp_first vdfs) s, of an edited one $(med store_cp_edit vdfs) s (median). Units computed per edited version: $(awk -v a="$ran_sum" -v n="$((store_n - 1))" 'BEGIN { printf "%.1f", a / n }') on average, $ran_max at most, of $units. Every result.csv equals the single process's count."
	drop "$work/store" "$f" "$work/store-single.csv"
}

# memory: vdfsd's VmHWM after writing mem_mib of new text into data/
# (streamed from the generator, so no 10 GiB source file is needed).
case_memory() {
	local t0 t1 kb
	start_vdfsd memory --fresh
	mkdir "$VMNT/tasks/m"
	(
		while kill -0 "$VPID" 2>/dev/null; do
			awk '/^VmRSS:/ { print $2 }' "/proc/$VPID/status" 2>/dev/null || true
			sleep 0.5
		done
	) >"$work/memory-rss.txt" &
	local sampler=$!
	C_PIDS+=("$sampler")
	perf_start memory
	t0=$(now_us)
	"$vdfs" bench gen-text "${mem_mib}M" 99 >"$VMNT/tasks/m/data/big.txt"
	t1=$(now_us)
	perf_stop memory
	kb=$(hwm_kb "$VPID")
	rec memory vdfsd 1 "$(mb "$kb")"
	note "- memory: ${mem_mib} MiB streamed into data/ and sealed in $(secs "$t0" "$t1") s ($(awk -v m="$mem_mib" -v s="$(secs "$t0" "$t1")" 'BEGIN { printf "%.0f", m / s }') MiB/s, generator included); vdfsd VmHWM $(mb "$kb") MB, VmRSS sampled every 0.5 s peaked at $(sort -n "$work/memory-rss.txt" | tail -n 1 | awk '{ printf "%.1f", $1 / 1024 }') MB."
	stop_vdfsd
	kill "$sampler" 2>/dev/null || true
	wait "$sampler" 2>/dev/null || true
	forget_pid "$sampler"
	drop "$work/memory"
}

# ---------------------------------------------------------------- run
say "vdfs bench: build $build, work dir $work, output $out"
say "  mode $([ "$quick" = 1 ] && echo quick || echo full), $R rounds, cases $cases"
[ "$can_drop" = 1 ] || note "- cold rows skipped: /proc/sys/vm/drop_caches is not writable (run as root)."
build_baselines || { err "baselines could not be built"; exit 1; }
for c in ${all_cases//,/ }; do
	has_case "$c" && run_case "$c"
done
t_total=$(secs "${t_start/./}" "$(now_us)")
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- table
# row LABEL UNIT CASE VDFS_SUBJECT BASE_NAME BASE_SUBJECT KIND TARGET
#   KIND: le (vdfs/base <= TARGET), ge_abs (vdfs >= TARGET), le_abs
#   (vdfs <= TARGET), info (no target). Values are medians.
row() {
	local label=$1 unit=$2 c=$3 vs=$4 bname=$5 bs=$6 kind=$7 target=$8 v b ratio="" verdict tt norm=""
	v=$(med "$c" "$vs")
	[ -n "$v" ] || return 0
	b=""
	[ "$bs" = - ] || b=$(med "$c" "$bs")
	if [ "$bs" != - ] && [ -z "$b" ]; then return 0; fi
	[ -z "$b" ] || ratio=$(awk -v v="$v" -v b="$b" 'BEGIN { printf "%.2f", (b > 0 ? v / b : 0) }')
	case $kind in
	le) tt="<= ${target}x $bname"; norm=$(awk -v r="$ratio" -v t="$target" 'BEGIN { printf "%.3f", r / t }') ;;
	ge) tt=">= ${target}x $bname"; norm=$(awk -v r="$ratio" -v t="$target" 'BEGIN { printf "%.3f", (r > 0 ? t / r : 999) }') ;;
	ge_abs) tt=">= $target $unit"; norm=$(awk -v v="$v" -v t="$target" 'BEGIN { printf "%.3f", (v > 0 ? t / v : 999) }') ;;
	le_abs) tt="<= $target $unit"; norm=$(awk -v v="$v" -v t="$target" 'BEGIN { printf "%.3f", v / t }') ;;
	*) tt="-" ;;
	esac
	if [ -z "$norm" ]; then verdict=info
	elif awk -v n="$norm" 'BEGIN { exit !(n <= 1.0000001) }'; then verdict=PASS
	else verdict=MISS; fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$unit" "$v" "$bname" "${b:--}" \
		"${ratio:--}" "$tt" "$verdict" "${norm:--}" "$(allv "$c" "$vs")" "$( [ "$bs" = - ] || allv "$c" "$bs")" \
		>>"$out/results.tsv"
}
for s in $ingest_mib; do
	sz=$([ "$s" -ge 1024 ] && echo "$((s / 1024)) GiB" || echo "$s MiB")
	row "ingest $sz: cp into data/" s "ingest_$s" vdfs passthrough_ll passthrough_ll \
		"$([ "$s" = "${ingest_mib%% *}" ] && echo le || echo info)" 1.25
	row "ingest $sz: cp into data/" s "ingest_$s" vdfs native native info -
	row "ingest $sz: cp into data/" s "ingest_$s" vdfs "native+fsync" native_fsync info -
	row "ingest $sz: cp into data/" s "ingest_$s" vdfs "--compress none" vdfs_none info -
	row "ingest $sz: packs" MB "ingest_${s}_bytes" vdfs "raw" raw info -
done
s=${ingest_mib%% *}
sz=$([ "$s" -ge 1024 ] && echo "$((s / 1024)) GiB" || echo "$s MiB")
row "ingest $sz random: cp into data/" s "ingest_random_$s" vdfs "--compress none" vdfs_none le 1.1
row "ingest $sz random: cp into data/" s "ingest_random_$s" vdfs passthrough_ll passthrough_ll info -
row "ingest $sz random: packs" MB "ingest_random_${s}_bytes" vdfs "raw" raw le 1.02
rsz=$([ "$read_mib" -ge 1024 ] && echo "$((read_mib / 1024)) GiB" || echo "$read_mib MiB")
row "read cold $rsz: cat input" s read_cold vdfs_input passthrough_ll passthrough_ll le 1.0
row "read cold $rsz: cat input" s read_cold vdfs_input native native info -
row "read cold $rsz: cat result.csv" s read_cold vdfs_result passthrough_ll passthrough_ll le 1.0
row "read warm $rsz: cat input" s read_warm vdfs_input native native le 1.1
row "read warm $rsz: cat input" s read_warm vdfs_input passthrough_ll passthrough_ll info -
row "read warm $rsz: cat result.csv" s read_warm vdfs_result native native le 1.1
row "read: vdfsd VmHWM, $rsz cp, concat run and reduce" MB read_hwm vdfsd - - le_abs 120
big_n=${browse_n##* }
for n in $browse_n; do
	kind=$([ "$n" = "$big_n" ] && echo le || echo info)
	row "browse $n: ls -l versions/ (cold)" s "browse_ls_cold_$n" vdfs native native "$kind" 2
	row "browse $n: ls -l versions/ (warm)" s "browse_ls_warm_$n" vdfs native native "$kind" 2
	row "browse $n: stat every entry" s "browse_stat_$n" vdfs native native info -
done
row "small: cp -r $small_n x ${small_kib} KiB" s small vdfs passthrough_ll passthrough_ll le 1.5
row "small: cp -r $small_n x ${small_kib} KiB" s small vdfs native native info -
row "small: cp -r until sealed (settle 0)" s small vdfs_sealed passthrough_ll passthrough_ll info -
row "dispatch: no-op units, $disp_execs executors, persistent" units/s dispatch persist - - ge_abs 5000
row "dispatch: no-op units, $disp_execs executors, persistent" units/s dispatch persist "xargs -P $disp_execs" xargs_persistent info -
row "dispatch: no-op units, $disp_execs executors, exec" units/s dispatch vdfs "xargs -P $disp_execs" xargs_exec ge 0.9
esz=$(awk -v b="$e2e_bytes" 'BEGIN { if (b >= 1e9) printf "%g GB", b / 1e9; else printf "%g MB", b / 1e6 }')
row "e2e wordcount $esz, 2 executors" s e2e vdfs "single process" single le 0.7
row "e2e: of which cp into data/" s e2e vdfs_ingest "single process" single info -
row "e2e: of which run + cat result" s e2e vdfs_run "single process" single info -
row "store: $store_n versions x $store_mib MiB, 10 edits each" MB store_bytes vdfs "one raw version" one_raw le 0.5
row "store: $store_n versions x $store_mib MiB, 10 edits each" MB store_bytes vdfs "all raw (du)" raw info -
row "store: $store_n versions x $store_mib MiB, 10 edits each" MB store_bytes vdfs "gzip -1 each" gzip1 info -
row "store: $store_n versions x $store_mib MiB, 10 edits each" MB store_bytes vdfs "zstd -3 each" zstd3 info -
row "store: units computed per edited version (max)" units store_units vdfs - - le_abs 22
msz=$([ "$mem_mib" -ge 1024 ] && echo "$((mem_mib / 1024)) GiB" || echo "$mem_mib MiB")
row "memory: vdfsd VmHWM, $msz ingest" MB memory vdfsd - - le_abs 200
# Executors: the largest peak of any executor of any case.
if [ -n "$(med exec_hwm read)$(med exec_hwm e2e)$(med exec_hwm dispatch)" ]; then
	m=$(awk -F'\t' '$1 == "exec_hwm" { print $4 }' "$out/rounds.tsv" | sort -g | tail -n 1)
	rec exec_max all 0 "$m"
	row "memory: executor VmHWM (max of all)" MB exec_max all - - le_abs 50
fi

# Terminal table.
{
	printf '\n%-44s %10s  %-16s %10s %8s  %-24s %s\n' case vdfs baseline "baseline" ratio target result
	awk -F'\t' 'function f(x, u) { return x == "-" ? x : sprintf(u == "s" ? "%.3f" : "%.1f", x) }
	{ printf "%-44s %10s  %-16s %10s %8s  %-24s %s\n", $1 " (" $2 ")", f($3, $2), $4, f($5, $2), ($6 == "-" ? "-" : $6 "x"), $7, $8 }' "$out/results.tsv"
	printf '\nmedians of up to %s rounds (e2e up to %s; each row'"'"'s rounds are in rounds.tsv); total %s s%s; load average %s at start, %s at end\n' \
		"$R" "$e2e_rounds" "$t_total" "$([ "$budget" = 0 ] || echo " (budget $budget s)")" "$load_start" "$load_end"
} | tee "$out/table.txt"

# ---------------------------------------------------------------- plot
plot_note=""
if ! command -v gnuplot >/dev/null && [ "$install" = 1 ]; then
	say "vdfs bench: installing gnuplot-nox for the plot"
	sudo=()
	[ "$(id -u)" = 0 ] || sudo=(sudo -n)
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		gnuplot-nox >"$work/apt.log" 2>&1 </dev/null ||
		{ "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
			"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
				--no-install-recommends gnuplot-nox; } >>"$work/apt.log" 2>&1 </dev/null || true
fi
if command -v gnuplot >/dev/null; then
	awk -F'\t' '$9 != "-" { printf "\"%s\"\t%s\t%s\n", $1 ($4 == "-" ? "" : " vs " $4), $9, ($8 == "PASS" ? "0x2ca02c" : "0xd62728") }' \
		"$out/results.tsv" >"$out/plot.dat"
	if [ -s "$out/plot.dat" ] && gnuplot >"$work/gnuplot.log" 2>&1 <<EOF; then
set terminal pngcairo size 1100,680 font ",9" noenhanced
set output "$out/bench.png"
set title "vdfs bench $stamp: measured / target (below 1 meets the target; log scale)"
set logscale y
set yrange [0.05:*]
set grid ytics
set boxwidth 0.6
set style fill solid 0.85
set xtics rotate by -35 nomirror
set bmargin 16
set rmargin 24
set lmargin 16
set key off
plot "$out/plot.dat" using 0:2:3:xtic(1) with boxes lc rgb variable, 1 with lines lw 2 lc rgb "black", \
     "$out/plot.dat" using 0:2:(sprintf("%.2f", \$2)) with labels offset 0,0.7
EOF
		:
	else
		plot_note="the plot failed: $(tail -n 2 "$work/gnuplot.log" | tr '\n' ' ')"
	fi
	rm -f "$out/plot.dat"
else
	plot_note="no plot: gnuplot is not installed (apt-get install gnuplot-nox)"
fi

# ---------------------------------------------------------------- report
# A sanitizer report in any daemon's or executor's log is an error.
if grep -l -E "$san_re" "$out"/logs/*.log >/dev/null 2>&1; then
	err "a sanitizer reported an error in: $(grep -l -E "$san_re" "$out"/logs/*.log | tr '\n' ' ')"
fi
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$root" status --porcelain 2>/dev/null | grep -c . || true)
{
	echo "# vdfs bench $stamp"
	echo
	echo "Machine: $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/^MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r), work directory on $(findmnt -no FSTYPE -T "$work" 2>/dev/null || echo '?') ($(findmnt -no SOURCE -T "$work" 2>/dev/null || echo '?')). Build: \`$build\` ($(awk -F= '/^CMAKE_BUILD_TYPE:/ { print $2 }' "$build/CMakeCache.txt" 2>/dev/null)$(grep -q '^VDFS_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null && echo ', ASan+UBSan')), source at commit $commit with $dirty uncommitted paths."
	echo
	echo "Mode: $([ "$quick" = 1 ] && echo 'quick (tiny sizes: a smoke run, the figures mean nothing)' || echo full); medians of up to $R rounds (e2e up to $e2e_rounds; the rounds of every row are in its columns); who goes first rotates every round. Run time $t_total s$([ "$budget" = 0 ] || echo " (budget $budget s: rounds beyond the first run only while they fit)"). Load average $load_start at start, $load_end at end."
	echo
	echo "| case | vdfs | baseline | baseline value | ratio | target | result | vdfs rounds | baseline rounds |"
	echo "|---|---:|---|---:|---:|---|---|---|---|"
	awk -F'\t' 'function f(x, u) { return x == "-" ? x : sprintf(u == "s" ? "%.3f" : "%.1f", x) }
	{ printf "| %s (%s) | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, f($3, $2), $4, f($5, $2), ($6 == "-" ? "-" : $6 "x"), $7, ($8 == "MISS" ? "**MISS**" : $8), $10, ($11 == "" ? "-" : $11) }' "$out/results.tsv"
	echo
	if [ -f "$out/bench.png" ]; then echo '![measured / target per case](bench.png)'; else echo "($plot_note)"; fi
	echo
	echo "## How each figure was obtained"
	echo
	echo "- Times are wall seconds of the user command (\`cp\`, \`cat FILE >/dev/null\`, \`ls -l DIR >/dev/null\`, \`cp -r\`); sources are read once first so they come from the page cache; \`sync\` before each timed write."
	echo "- ingest: vdfs gets a fresh store every round, so each round writes new chunks; \`cp\` into \`data/\` returns after the seal (chunked, hashed, pack fdatasync'd, catalog committed with sync), checked by counting \`versions/\` right after. \`native\` and \`passthrough_ll\` only reach the page cache; \`native+fsync\` is \`cp\` then \`sync FILE\`."
	echo "- read cold: before each cold read the party being read is remounted (vdfsd restarted on the same state, passthrough_ll restarted) and \`echo 3 > /proc/sys/vm/drop_caches\`; warm: the second of two reads in a row in the same mount. Native and passthrough_ll read the same file (passthrough_ll's source directory). \`input\` and \`result.csv\` are checked byte for byte against the file."
	echo "- browse: \`ls -l versions/\`, cold (vdfsd restarted + drop_caches; native: drop_caches) and warm (a second \`ls -l\`); stat = \`find DIR -mindepth 1 -maxdepth 1 | xargs stat\` right after. The native directory holds as many small files."
	echo "- small: a tree of $small_n files of $small_kib KiB in directories of 100; vdfs fresh store each round, task config \`settle = 0\`; \`until sealed\` is from the start of \`cp -r\` to the version's appearance in \`versions/\`."
	echo "- e2e: \`docs/examples/wordcount/function\` (awk) with \`reduce = sum\` and the default \`unit_size\`; vdfs time is \`cp\` into \`data/\` + the run + \`cat result.csv\`, fresh store and 2 fresh executors (\`--slots 1\`) each round; the single process is the same function with the file on stdin."
	echo "- memory: VmHWM from /proc/PID/status; executors' VmHWM excludes the function's own processes."
	echo "- baselines: passthrough_ll built from \`$ex/passthrough_ll.c\` (gcc -O2), run with its defaults (\`-f -o source=DIR\`: cache=normal, timeout 1 s, no writeback), on the same disk as the vdfs state."
	echo
	echo "## Notes from this run"
	echo
	cat "$out/notes.md"
	[ -z "$plot_note" ] || echo "- $plot_note"
	echo
	echo
	echo "Peak RSS (MB) of vdfsd per case: $(awk -F'\t' '$1 == "vdfsd_hwm" { if ($4 > m[$2]) m[$2] = $4 } END { for (k in m) printf "%s %s; ", k, m[k] }' "$out/rounds.tsv")"
	echo "Peak RSS (MB) of executors per case: $(awk -F'\t' '$1 == "exec_hwm" { if ($4 > m[$2]) m[$2] = $4; n[$2]++ } END { for (k in m) printf "%s %s (max of %d); ", k, m[k], n[k] }' "$out/rounds.tsv")"
	echo
	echo "Each case's wall time, and how busy the $(nproc) CPUs were meanwhile: by our processes (vdfsd, executors, baselines, the tools timed, this script) and by everything else (other users' work and kernel threads such as writeback):"
	echo
	echo "| case | wall (s) | CPU ours | CPU others |"
	echo "|---|---:|---:|---:|"
	awk -F'\t' '$1 == "case_time" { w[$2] = $4; o[++n] = $2 } $1 == "case_cpu_ours" { u[$2] = $4 } $1 == "case_cpu_others" { x[$2] = $4 }
	END { for (i = 1; i <= n; i++) printf "| %s | %.1f | %s%% | %s%% |\n", o[i], w[o[i]], u[o[i]], x[o[i]] }' "$out/rounds.tsv"
	if [ -s "$out/errors.txt" ]; then
		echo
		echo "## Errors"
		echo
		sed 's/^/- /' "$out/errors.txt"
	fi
	if [ -d "$out/perf" ]; then
		echo
		echo "## Profiles (--perf)"
		echo
		echo "perf record -a during each case's vdfs part: perf/*.txt (timings of this run include perf's overhead)."
	fi
} >"$out/report.md"
rm -f "$out/notes.md"
[ -s "$out/errors.txt" ] || rm -f "$out/errors.txt"
say ""
say "vdfs bench: report $out/report.md$([ -f "$out/bench.png" ] && echo ", plot $out/bench.png")"
[ ! -s "$out/errors.txt" ]

#!/usr/bin/env bash
# crash-loop.sh - a reproducible crash loop: vdfsd SIGKILLed N times in the
# middle of submissions, runs and deletions, checked each time against a
# model kept outside vdfsd.
#
#   tools/crash-loop.sh N [SEED]        (N iterations; SEED default $$)
#
# Environment: VDFS_BUILD (default build/), VD_KEEP=1 keeps the work dir,
# TMPDIR picks where it goes.
#
# The model ($VD_WORK/model) holds, for each version the harness saw
# accepted, a line "TASK ID KIND SRC" and a copy of its input (SRC, a file
# or a tree): a file whose `cp` returned 0, a file whose `cp` failed but
# whose version appeared whole anyway, a tree (`cp -r`) once it is sealed
# (a tree still settling when vdfsd dies is lost by design, docs/mount.md:
# its cp returned 0 but nothing was sealed yet). The units answered 200 are
# what the executors log ("lease L: result accepted (TASK unit U/N: exit 0,
# ...)", as in mount-tests/t_batch_crash.sh).
#
# Each iteration, with bash's RANDOM seeded by SEED: for some of the 3
# tasks a background `cp` of a new file or `cp -r` of a small tree into
# data/; sometimes a new function text (a new code version, same output) or
# a config change (unit_size 4K/8K); sometimes `rm -r` of a done version
# (its log saved first) or a `vdfs gc` in the background; sometimes an
# executor killed -9 and restarted (3 run throughout). After 0.1-1.5 s,
# with cp and results in flight, vdfsd is SIGKILLed and restarted on the
# same state dir and port, and:
#   - every model version is listed in tasks/T/versions/ and its input is
#     byte-identical (cmp) to the model's copy; every listed version's
#     status parses and its input reads fully; a version not in the model
#     may only be one whose cp failed, and then it must be whole;
#   - `vdfs fsck` finds no problem (`--full` every 5th iteration and at the end).
# At the end all queued work finishes; each model version's result.csv is
# compared with awk on the model's copy (reduce = concat of
# `length(line) "," line`); every unit answered 200 is recorded done in the
# run logs (logs of deleted versions were saved before the rm), and no run
# logs a unit done twice. A summary is printed; the first violation stops
# the loop (exit 1) with the details and the seed.
set -euo pipefail

N=${1:?usage: tools/crash-loop.sh N [SEED]}
SEED=${2:-$$}
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../mount-tests/lib.sh
. "$root/mount-tests/lib.sh"
VD_TEST_NAME=crash-loop
vd_setup "${VDFS_BUILD:-$root/build}"
VDFS="$VD_BIN/vdfs"
RANDOM=$SEED
M="$VD_WORK/model"
mkdir -p "$M/src" "$M/logs" "$M/ops"
: >"$M/versions"
TASKS=(t1 t2 t3)
EXECS=(e1 e2 e3)
DARGS=(--chunk-size 4096 --lease-ms 4000)

it=0 kills=0 ekills=0 checked=0 results=0 fscks=0 deletes=0 gcs=0 fnchanges=0
cfchanges=0 cps=0 trees=0 adopted=0 lost_trees=0 failed_cps=0 opn=0

summary() {
	echo "crash-loop: seed $SEED, $it of $N iterations"
	echo "  vdfsd kills: $kills; executor kills: $ekills"
	echo "  submitted: $cps files, $trees trees; cp failed (in a kill): $failed_cps;" \
		"appeared whole after a failed cp: $adopted; trees lost before settle: $lost_trees"
	echo "  function changes: $fnchanges; config changes: $cfchanges; deletes: $deletes; gc: $gcs"
	echo "  versions checked: $checked (version checks summed over iterations)"
	echo "  results checked: $results; fsck runs: $fscks"
}

violation() {
	echo "VIOLATION at iteration $it (reproduce: tools/crash-loop.sh $N $SEED): $*" >&2
	summary >&2
	VD_KEEP=1
	vd_fail "violation: $*"
}

fn_text() {
# shellcheck disable=SC2016 # the $0 are awk's
	printf '#!/bin/sh\n# variant %s\nexec awk '"'"'{ print length($0) "," $0 }'"'"'\n' "$1"
}
cf_text() {
	printf 'reduce = concat\nunit_size = %s\nretries = 5\nsettle = 0.2\n' "$1"
}
# expected SRC: the result a version of SRC must have (files of a tree in
# path order, byte order).
expected() {
	if [ -d "$1" ]; then
		(cd "$1" && find . -type f -printf '%P\n' | LC_ALL=C sort |
			while IFS= read -r f; do awk '{ print length($0) "," $0 }' "$f"; done)
	else
		awk '{ print length($0) "," $0 }' "$1"
	fi
}
# same_input SRC DIR: DIR/input is byte-identical to SRC (file or tree).
same_input() {
	if [ -d "$1" ]; then
		[ -d "$2/input" ] || return 1
		diff -r -q "$1" "$2/input" >/dev/null 2>&1
	else
		cmp -s "$1" "$2/input"
	fi
}
# A new source: numbered lines of made-up words, unique by the op number.
gen_src() {
	local out="$1" kind="$2" n f
	if [ "$kind" = tree ]; then
		mkdir -p "$out/sub"
		n=$((2 + RANDOM % 3))
		for ((f = 0; f < n; f++)); do
			vd_gen_text "$VD_WORK/raw" $((5000 + RANDOM % 60000)) $((opn * 10 + f + 1)) 500
			awk -v p="$opn.$f" '{ printf "%s.%05d %s\n", p, NR, $0 }' "$VD_WORK/raw" \
				>"$out/$( ((f % 2)) && echo sub/)f$f.txt"
		done
	else
		vd_gen_text "$VD_WORK/raw" $((50000 + RANDOM % 550000)) $((opn * 10 + 7)) 500
		awk -v p="$opn" '{ printf "%s.%05d %s\n", p, NR, $0 }' "$VD_WORK/raw" >"$out"
	fi
}

model_ids() { awk -v t="$1" '$1 == t { print $2 }' "$M/versions"; }

# The units answered 200: "TASK U N EXECUTOR", one per answer.
accepted() {
	local f e
	for f in "$VD_WORK"/exec-e*.log; do
		[ -f "$f" ] || continue
		e="${f##*/exec-}"; e="${e%.log}"
		sed -n 's/.*lease [0-9a-f]\{32\}: result accepted (\([^ ]*\) unit \([0-9]*\)\/\([0-9]*\): exit 0,.*/\1 \2 \3/p' "$f" |
			awk -v e="$e" '{ print $0, e }'
	done
}
# logged_done LOG TASK: "TASK U N EXECUTOR CODE" per unit the log records done.
logged_done() {
	sed -n 's/.* code=\([0-9a-f]*\) unit \([0-9]*\)\/\([0-9]*\) executor=\([^ ]*\) exit=0 .*/\2 \3 \4 \1/p' "$1" |
		awk -v t="$2" '{ print t, $1, $2, $3, $4 }'
}

restart_daemon() {
	vd_start_daemon "${DARGS[@]}" --listen "127.0.0.1:$PORT" >/dev/null
}

run_fsck() {
	local out="$VD_WORK/fsck.out" st=0
	"$VDFS" fsck "$@" --state "$VD_STATE" >"$out" 2>&1 || st=$?
	fscks=$((fscks + 1))
	[ "$st" = 0 ] || violation "vdfs fsck $* exited $st: $(cat "$out")"
}

# check_all: every model version is there, whole; every listed version is sound.
check_all() {
	local t id kind src v w
	while read -r t id kind src; do
		v="$VD_MNT/tasks/$t/versions/$id"
		[ -d "$v" ] || violation "version $t/$id ($kind, cp returned 0 or seen sealed) is gone after the restart"
		same_input "$M/src/$src" "$v" || violation "version $t/$id input differs from the model's copy $M/src/$src"
		checked=$((checked + 1))
	done <"$M/versions"
	for t in "${TASKS[@]}"; do
		for id in $(vd_versions "$VD_MNT/tasks/$t"); do
			v="$VD_MNT/tasks/$t/versions/$id"
			w="$(vd_status_word "$v/status")" || violation "status of $t/$id does not read"
			case "$w" in
			queued | running | done | failed) ;;
			*) violation "status of $t/$id does not parse: '$(head -n 1 "$v/status")'" ;;
			esac
			if [ -d "$v/input" ]; then
				find "$v/input" -type f -exec cat {} + >/dev/null || violation "input of $t/$id does not read fully"
			else
				cat "$v/input" >/dev/null || violation "input of $t/$id does not read fully"
			fi
			grep -q "^$t $id " "$M/versions" ||
				violation "version $t/$id is listed but not in the model (and no failed cp explains it)"
		done
	done
}

# resolve: after the restart, map each op of this iteration to its version.
resolve() {
	local op t kind src rc before new n v i
	for op in "$M"/ops/*; do
		[ -f "$op" ] || continue
		read -r t kind src rc <"$op"
		before="$op.before"
		[ -f "$op.rc" ] && rc="$(cat "$op.rc")"
		new="$(comm -13 <(LC_ALL=C sort "$before") <(vd_versions "$VD_MNT/tasks/$t" | LC_ALL=C sort))"
		n=$(printf '%s' "$new" | grep -c . || true)
		if [ "$kind" = tree ] && [ "$rc" = 0 ] && [ "$n" = 0 ] && [ -n "${ALIVE_WAIT:-}" ]; then
			# vdfsd was not killed under it: wait for the settle.
			for ((i = 0; i < 100 && n == 0; i++)); do
				sleep 0.2
				new="$(comm -13 <(LC_ALL=C sort "$before") <(vd_versions "$VD_MNT/tasks/$t" | LC_ALL=C sort))"
				n=$(printf '%s' "$new" | grep -c . || true)
			done
		fi
		((n <= 1)) || violation "$kind op on $t made $n new versions: $new"
		if [ "$n" = 1 ]; then
			v="$VD_MNT/tasks/$t/versions/$new"
			same_input "$M/src/$src" "$v" || violation "new version $t/$new (from $kind $src, cp exit $rc) is not byte-identical to what was copied: partly visible"
			echo "$t $new $kind $src" >>"$M/versions"
			[ "$rc" = 0 ] || adopted=$((adopted + 1))
		elif [ "$rc" = 0 ] && [ "$kind" = file ]; then
			violation "cp of $src into $t/data returned 0, but no new version is listed after the restart"
		elif [ "$rc" = 0 ]; then
			lost_trees=$((lost_trees + 1))
		fi
		[ "$rc" = 0 ] || failed_cps=$((failed_cps + 1))
		rm -f "$op" "$op.before" "$op.rc"
	done
}

# ---- set-up ---------------------------------------------------------------
vd_note "seed $SEED, $N iterations"
vd_start_daemon "${DARGS[@]}" >/dev/null
PORT="${VD_URL##*:}"
for t in "${TASKS[@]}"; do
	mkdir "$VD_MNT/tasks/$t"
	fn_text 0 >"$VD_MNT/tasks/$t/function"
	cf_text 4K >"$VD_MNT/tasks/$t/config"
done
for e in "${EXECS[@]}"; do vd_start_executor "$e" --slots 2 >/dev/null; done

# ---- the loop -------------------------------------------------------------
while ((it < N)); do
	it=$((it + 1))
	# Foreground changes, while vdfsd is up and nothing else writes.
	t="${TASKS[RANDOM % 3]}"
	case $((RANDOM % 6)) in
	0)
		fn_text "$it" >"$VD_MNT/tasks/$t/function"
		fnchanges=$((fnchanges + 1))
		;;
	1)
		cf_text "$( ((RANDOM % 2)) && echo 8K || echo 4K)" >"$VD_MNT/tasks/$t/config"
		cfchanges=$((cfchanges + 1))
		;;
	2)
		# Delete a done version; its log is kept for the final check.
		id="$(model_ids "$t" | shuf -n 1 --random-source=<(yes "$RANDOM") || true)"
		if [ -n "$id" ] && [ "$(vd_status_word "$VD_MNT/tasks/$t/versions/$id/status")" = "done" ]; then
			cp "$VD_MNT/tasks/$t/versions/$id/log" "$M/logs/$t.$id.log"
			if rm -r "$VD_MNT/tasks/$t/versions/$id" 2>"$VD_WORK/rm.err"; then
				awk -v t="$t" -v id="$id" '!($1 == t && $2 == id)' "$M/versions" >"$M/versions.new"
				mv "$M/versions.new" "$M/versions"
				deletes=$((deletes + 1))
			else
				rm -f "$M/logs/$t.$id.log"
				vd_note "rm -r $t/$id: $(cat "$VD_WORK/rm.err")"
			fi
		fi
		;;
	esac
	# Background: a submission into some tasks, maybe a gc.
	jobs_bg=()
	for t in "${TASKS[@]}"; do
		((RANDOM % 3)) || continue
		opn=$((opn + 1))
		kind="file"
		((RANDOM % 3)) || kind=tree
		src="s$opn"
		gen_src "$M/src/$src" "$kind"
		op="$M/ops/$opn"
		vd_versions "$VD_MNT/tasks/$t" >"$op.before"
		echo "$t $kind $src x" >"$op"
		# Each copy starts at its own moment, so that some are cut by the kill.
		d="0.$((RANDOM % 10))$((RANDOM % 10))"
		if [ "$kind" = tree ]; then
			trees=$((trees + 1))
			(sleep "$d"; st=0; cp -r "$M/src/$src" "$VD_MNT/tasks/$t/data/$src" 2>/dev/null || st=$?; echo "$st" >"$op.rc") &
		else
			cps=$((cps + 1))
			(sleep "$d"; st=0; cp "$M/src/$src" "$VD_MNT/tasks/$t/data/$src.txt" 2>/dev/null || st=$?; echo "$st" >"$op.rc") &
		fi
		jobs_bg+=($!)
	done
	if ((RANDOM % 5 == 0)); then
		("$VDFS" gc --state "$VD_STATE" >"$VD_WORK/gc.out" 2>&1 || true) &
		jobs_bg+=($!)
		gcs=$((gcs + 1))
	fi
	if ((RANDOM % 3 == 0)); then
		e="${EXECS[RANDOM % 3]}"
		vd_kill_executor "$e" KILL >/dev/null
		vd_start_executor "$e" --slots 2 >/dev/null
		ekills=$((ekills + 1))
	fi
	# The kill: 0.1-1.5 s in, while the copies and results are in flight.
	ms=$((100 + RANDOM % 1401))
	sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
	vd_check_daemon
	vd_kill_daemon KILL >/dev/null
	kills=$((kills + 1))
	for j in "${jobs_bg[@]}"; do wait "$j" || true; done
	restart_daemon
	resolve
	check_all
	if ((it % 5 == 0)); then run_fsck --full; else run_fsck; fi
	vd_note "iteration $it: $(wc -l <"$M/versions") versions in the model, $kills kills"
done

# ---- the end: all work finishes, exactly ------------------------------------
ALIVE_WAIT=1
while read -r t id kind src; do
	v="$VD_MNT/tasks/$t/versions/$id"
	vd_wait_status "$v" "done" >/dev/null
	expected "$M/src/$src" >"$VD_WORK/expected.csv"
	cmp -s "$v/result.csv" "$VD_WORK/expected.csv" ||
		violation "result.csv of $t/$id ($kind $src) differs from awk on the model's input: $(diff "$VD_WORK/expected.csv" "$v/result.csv" | head -n 5)"
	results=$((results + 1))
done <"$M/versions"
check_all
run_fsck --full

# Every unit answered 200 is recorded done; no run records a unit twice.
: >"$VD_WORK/logged"
while read -r t id kind src; do
	logged_done "$VD_MNT/tasks/$t/versions/$id/log" "$t" >>"$VD_WORK/logged"
done <"$M/versions"
for f in "$M"/logs/*.log; do
	[ -f "$f" ] || continue
	b="${f##*/}"
	logged_done "$f" "${b%%.*}" >>"$VD_WORK/logged"
done
twice="$(awk '{ print $0 }' "$VD_WORK/logged" | LC_ALL=C sort | uniq -d | head -n 3 | tr '\n' ';')"
# The same unit of the same code done twice in one version's log: only the
# version tells them apart, so count per version file.
dup=""
while read -r t id kind src; do
	d="$(sed -n 's/.* code=\([0-9a-f]*\) unit \([0-9]*\/[0-9]*\) executor=[^ ]* exit=0 .*/\1 \2/p' \
		"$VD_MNT/tasks/$t/versions/$id/log" | LC_ALL=C sort | uniq -d | head -n 3 | tr '\n' ';')"
	[ -z "$d" ] || dup="$dup $t/$id: $d"
done <"$M/versions"
[ -z "$dup" ] || violation "a run's log records a unit done twice:$dup"
accepted >"$VD_WORK/accepted"
# Units of versions deleted before their log was saved cannot be told apart,
# so the check is per (task, unit, units, executor): no more answers 200
# than units recorded done.
miss="$(awk 'NR == FNR { k = $1 " " $2 " " $3 " " $4; L[k]++; next }
	{ A[$0]++ } END { for (k in A) if (A[k] > L[k]) print k " answered " A[k] " logged " L[k] + 0 }' \
	"$VD_WORK/logged" "$VD_WORK/accepted" | head -n 5 | tr '\n' ';')"
[ -z "$miss" ] || violation "units answered 200 but not recorded done in the runs' logs: $miss"
vd_note "$(wc -l <"$VD_WORK/accepted") results answered 200, $(wc -l <"$VD_WORK/logged") units recorded done${twice:+ (same task/unit/executor/code in several versions: normal)}"
summary
echo "crash-loop: no violation"

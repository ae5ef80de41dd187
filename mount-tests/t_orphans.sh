#!/usr/bin/env bash
# t_orphans: processes a function leaves behind outside its process group
# die with its unit. Each unit starts three strays that leave its session
# and its stdio: a setsid'd loop, a double-forked setsid'd loop, and a
# setsid'd loop that ignores SIGTERM, SIGHUP and SIGINT. They must all be
# gone once the unit ends: when the function exits (several units at once,
# --slots 2), when it is killed for its timeout, and when a fourth stray
# keeps the unit's stdout open (which used to keep the unit from ever
# ending); with --sandbox none and with --sandbox bwrap.
#
# Every stray has a marker unique to this run of the test in its argv
# (MARK-TASK-UNIT-KIND), which is how the test finds them (pgrep -f) and
# all that it ever kills. Each stray writes left.KIND in the unit's
# directory once it has left the session; the function goes on only when
# the test, having seen all three, touches `go` there, so the check is never
# vacuous and nothing is timed.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"

IN="$VD_WORK/in"
MARK="vdfs-orphan-$$-$RANDOM$RANDOM"

# At exit, pass or fail, kill what this test's functions left (only
# processes with the marker), then the harness's own cleanup.
orphans_kill() {
	local p
	for p in $(pgrep -f -- "$MARK" || true); do
		kill -KILL "$p" 2>/dev/null || true
	done
}
orphans_exit() {
	local rc="$1"
	trap - ERR
	set +e
	orphans_kill
	(exit "$rc")
	vd__cleanup
}
trap 'orphans_exit $?' EXIT

cat >"$IN/f.sh" <<'FN'
#!/bin/sh
# Three strays (see t_orphans.sh); TASK names ending in "timeout" then
# sleep past their timeout, "stdout" adds a stray holding stdout; the
# others wait for the test's go and count their input lines.
M="@MARK@-$VDFS_TASK-$VDFS_UNIT"
loop='echo >"$1/left.$2"; while :; do sleep 1; done'
setsid sh -c "$loop" "$M-setsid" "$TMPDIR" setsid </dev/null >/dev/null 2>&1 &
( setsid sh -c "$loop" "$M-double" "$TMPDIR" double </dev/null >/dev/null 2>&1 & )
setsid sh -c "trap '' TERM HUP INT; $loop" "$M-noterm" "$TMPDIR" noterm \
	</dev/null >/dev/null 2>&1 &
case "$VDFS_TASK" in
*stdout) setsid sh -c "$loop" "$M-stdout" "$TMPDIR" stdout </dev/null & ;;
esac
i=0
while ! { [ -e "$TMPDIR/left.setsid" ] && [ -e "$TMPDIR/left.double" ] &&
	[ -e "$TMPDIR/left.noterm" ]; } && [ "$i" -lt 6000 ]; do
	sleep 0.1
	i=$((i + 1))
done
case "$VDFS_TASK" in
*timeout) exec sleep 1000 ;;
esac
i=0
while [ ! -e "$TMPDIR/go" ] && [ "$i" -lt 6000 ]; do
	sleep 0.1
	i=$((i + 1))
done
exec awk 'END { print "lines," NR }'
FN
sed -i "s/@MARK@/$MARK/" "$IN/f.sh"
chmod +x "$IN/f.sh"
# Other data for the bwrap tasks: the same code on the same data and config
# would reuse the results and run nothing.
vd_gen_text "$IN/many.txt" $((24 * 1024)) 5 300
vd_gen_text "$IN/boxed.txt" $((24 * 1024)) 6 300
seq 1 50 >"$IN/one.txt"
seq 1 60 >"$IN/boxed-one.txt"

vd_start_daemon --chunk-size 4096

# task NAME DATA CONFIG: make the task, return once its version is sealed.
task() {
	local T="$VD_MNT/tasks/$1"
	mkdir "$T"
	cp "$IN/f.sh" "$T/function"
	printf '%b' "$3" >"$T/config"
	cp "$IN/$2" "$T/data/$2"
	vd_new_version "$T" "" >/dev/null
}

# drive TASK WANT [TIMEOUT]: until TASK's latest status is WANT, release
# each unit whose three strays the test has seen out of the session (ps
# shows them with the marker, each wrote left.KIND); fail on another end
# state, or if no unit's strays were ever seen.
drive() {
	local task="$1" want="$2" timeout="${3:-$VD_TIMEOUT}" V start word d n seen=0
	V="$VD_MNT/tasks/$task/latest"
	start=$SECONDS
	while :; do
		word="$(vd_status_word "$V/status" || true)"
		[ "$word" = "$want" ] && break
		case "$word" in
		done | failed) vd_fail "$task: status '$(head -n 1 "$V/status")', wanted $want" ;;
		esac
		# The unit's directory is the next-to-last argument of its strays.
		for d in $({ pgrep -af -- "$MARK-$task-" || true; } | awk '{ print $(NF - 1) }' | sort -u); do
			[ -d "$d" ] && [ ! -e "$d/go" ] || continue
			[ -e "$d/left.setsid" ] && [ -e "$d/left.double" ] && [ -e "$d/left.noterm" ] || continue
			n="$(pgrep -f -- "$MARK-$task-.*$d" | wc -l)"
			((n >= 3)) || continue
			touch "$d/go" 2>/dev/null || true
			seen=$((seen + 1))
		done
		vd_check_daemon
		((SECONDS - start < timeout)) ||
			vd_fail "$task: timed out after ${timeout}s waiting for status $want; it is '$(head -n 1 "$V/status")'"
		sleep 0.2
	done
	((seen > 0)) || vd_fail "$task: the test never saw a unit's three strays running"
	vd_note "$task: $want; strays seen running in $seen units"
}

# gone TASK: poll until no process of TASK's units is left (they die as the
# unit ends; 60 s is only a bound for the failing case).
gone() {
	local task="$1" start=$SECONDS left
	while :; do
		left="$(pgrep -af -- "$MARK-$1-" || true)"
		[ -z "$left" ] && break
		if ((SECONDS - start >= 60)); then
			echo "----- processes left by the units of $task -----" >&2
			echo "$left" >&2
			vd_fail "$task: $(echo "$left" | wc -l) processes outlived their units"
		fi
		sleep 0.5
	done
	vd_ok "$task: no process of its units is left"
}

# --sandbox none, two units at a time.
vd_start_executor plain --slots 2
task exits many.txt 'reduce = sum\nunit_size = 4K\nretries = 1\n'
drive exits done
printf 'lines,%s\n' "$(wc -l <"$IN/many.txt")" >"$IN/expected.csv"
vd_same "$VD_MNT/tasks/exits/latest/result.csv" "$IN/expected.csv" "exits: the result counts every line"
gone exits

task timeout one.txt 'timeout = 10\nretries = 1\n'
drive timeout failed
grep -q '^failed: unit 0: timeout' "$VD_MNT/tasks/timeout/latest/status" ||
	vd_fail "timeout: status '$(head -n 1 "$VD_MNT/tasks/timeout/latest/status")'"
vd_ok "timeout: $(head -n 1 "$VD_MNT/tasks/timeout/latest/status")"
gone timeout

task stdout one.txt 'reduce = sum\nretries = 1\n'
drive stdout done 120
echo "lines,50" >"$IN/expected-one.csv"
vd_same "$VD_MNT/tasks/stdout/latest/result.csv" "$IN/expected-one.csv" "stdout: a stray holding stdout does not keep the unit going"
gone stdout
vd_kill_executor plain

# --sandbox bwrap: the unit is also a PID namespace.
vd_start_executor boxed --slots 2 --sandbox bwrap
task boxed boxed.txt 'reduce = sum\nunit_size = 4K\nretries = 1\n'
drive boxed done
printf 'lines,%s\n' "$(wc -l <"$IN/boxed.txt")" >"$IN/expected-boxed.csv"
vd_same "$VD_MNT/tasks/boxed/latest/result.csv" "$IN/expected-boxed.csv" "boxed: the result counts every line"
gone boxed
task boxed-timeout boxed-one.txt 'timeout = 10\nretries = 1\n'
drive boxed-timeout failed
gone boxed-timeout

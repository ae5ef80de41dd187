#!/usr/bin/env bash
# t_exec_state: executors/NAME and `vdfs status` follow what executors do,
# within seconds, and keep their counters across a daemon restart.
#
#  - An executor does a run in which one attempt fails: executors/X counts
#    the units it did and the one that failed; vdfsd is killed with SIGKILL
#    and restarted, and executors/X and `vdfs status` still show the same
#    counts.
#  - An executor stopped with SIGTERM says it leaves as its drain ends:
#    executors/T says `state: gone` at once (polled for at most 10 s).
#  - One killed with SIGKILL while idle (in a long poll), and one killed
#    while running a unit, show `gone` within their lease time (polled for
#    at most the lease time plus 10 s).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"

IN="$VD_WORK/in"
HOLD="$VD_WORK/hold"
MARK="$VD_WORK/failed-once"
LEASE_S=6
DAEMON_ARGS=(--lease-ms $((LEASE_S * 1000)) --chunk-size 4096)
vd_gen_text "$IN/raw.txt" $((40 * 1000)) 5 300
awk '{ printf "%05d %s\n", NR, $0 }' "$IN/raw.txt" >"$IN/lines.txt"
awk '{ print length($0) "," $0 }' "$IN/lines.txt" >"$IN/expected.csv"

# Unit 0 fails its first attempt; every unit waits while the hold file is
# there (at most 2 minutes).
cat >"$IN/fn.sh" <<EOF
#!/bin/sh
if [ "\$VDFS_UNIT" = 0 ] && [ ! -e "$MARK" ]; then
	touch "$MARK"
	echo "unit 0 fails the first time" >&2
	exit 1
fi
i=0
while [ -e "$HOLD" ] && [ "\$i" -lt 1200 ]; do sleep 0.1; i=\$((i + 1)); done
exec awk '{ print length(\$0) "," \$0 }'
EOF
chmod +x "$IN/fn.sh"

field() { # field NAME KEY: the value of "KEY: value" in executors/NAME
	sed -n "s/^$2: //p" "$VD_MNT/executors/$1" 2>/dev/null
}
# status_col NAME COLUMN: that column of NAME's row in `vdfs status`
# (EXECUTOR LEVEL SLOTS STATE ... DONE FAILED; LAST SEEN is two words, or
# "never", so DONE and FAILED are counted from the end).
status_col() {
	"$VD_BIN/vdfs" status --state "$VD_STATE" 2>/dev/null |
		awk -v n="$1" -v c="$2" '$1 == n { print (c == "done" ? $(NF - 1) : c == "failed" ? $NF : $4) }'
}
# wait_state NAME STATE SECONDS: poll executors/NAME until it says STATE.
wait_state() {
	local name="$1" want="$2" limit="$3" start=$SECONDS
	until [ "$(field "$name" state)" = "$want" ]; do
		vd_check_daemon
		((SECONDS - start < limit)) ||
			vd_fail "executors/$name says 'state: $(field "$name" state)' after ${limit}s, not $want"
		sleep 0.2
	done
	vd_note "executors/$name: state $want after $((SECONDS - start)) s"
}

vd_start_daemon "${DAEMON_ARGS[@]}"
URL1="$VD_URL"
PORT="${VD_URL##*:}"

# ---- counters survive a daemon restart -------------------------------
T="$VD_MNT/tasks/count"
mkdir "$T"
cp "$IN/fn.sh" "$T/function"
printf 'reduce = concat\nunit_size = 16K\n' >"$T/config"
cp "$IN/lines.txt" "$T/data/lines.txt"
id="$(vd_new_version "$T" "")"
vd_start_executor X
vd_wait_status "$T/versions/$id" done
vd_same "$T/versions/$id/result.csv" "$IN/expected.csv" "X's run is done, its result exact"
units="$(head -n 1 "$T/versions/$id/status" | sed -n 's|^done \([0-9]*\)/.*|\1|p')"
done1="$(field X units_done)"
failed1="$(field X units_failed)"
[ "$done1" = "$units" ] || vd_fail "executors/X says units_done: $done1; X did all $units units"
[ "$failed1" = 1 ] || vd_fail "executors/X says units_failed: $failed1; one attempt failed"
[ "$(status_col X done)" = "$units" ] && [ "$(status_col X failed)" = 1 ] ||
	vd_fail "vdfs status shows X with DONE $(status_col X done), FAILED $(status_col X failed)"
vd_ok "executors/X and vdfs status: units_done $done1, units_failed $failed1"

vd_kill_executor X TERM
vd_kill_daemon KILL
vd_start_daemon "${DAEMON_ARGS[@]}" --listen "127.0.0.1:$PORT"
[ "$VD_URL" = "$URL1" ] || vd_fail "the restarted daemon is at $VD_URL, not $URL1"
[ "$(field X units_done)" = "$done1" ] && [ "$(field X units_failed)" = "$failed1" ] ||
	vd_fail "after a restart executors/X says units_done $(field X units_done), units_failed $(field X units_failed); before it said $done1 and $failed1"
[ "$(status_col X done)" = "$done1" ] && [ "$(status_col X failed)" = "$failed1" ] ||
	vd_fail "after a restart vdfs status shows X with DONE $(status_col X done), FAILED $(status_col X failed)"
vd_ok "after vdfsd was killed and restarted, executors/X and vdfs status still say $done1 done, $failed1 failed"

# ---- an executor stopped with SIGTERM is gone at once ----------------
vd_start_executor T
vd_start_executor K
wait_state T idle 60
wait_state K idle 60
vd_kill_executor T TERM
wait_state T gone 10
[ "$(status_col T state)" = gone ] || vd_fail "vdfs status shows T as '$(status_col T state)', not gone"
[ "$(field K state)" = idle ] || vd_fail "executors/K says '$(field K state)' while K is still there"
vd_ok "T, stopped with SIGTERM, is gone in executors/T and vdfs status; K is still idle"

# ---- killed while idle, or while running a unit: gone within the lease
vd_kill_executor K KILL
wait_state K gone $((LEASE_S + 10))
[ "$(status_col K state)" = gone ] || vd_fail "vdfs status shows K as '$(status_col K state)', not gone"
vd_ok "K, killed with SIGKILL in its long poll, is gone within its lease time"

touch "$HOLD"
T2="$VD_MNT/tasks/held"
mkdir "$T2"
cp "$IN/fn.sh" "$T2/function"
head -c 3000 "$IN/lines.txt" >"$IN/small.txt"
cp "$IN/small.txt" "$T2/data/small.txt"
vd_start_executor W
wait_state W busy 60
vd_kill_executor W KILL
wait_state W gone $((LEASE_S + 10))
vd_ok "W, killed with SIGKILL while running a unit, is gone within its lease time"
rm -f "$HOLD"

#!/usr/bin/env bash
# t_spool: no computed unit is lost, or computed twice, while vdfsd is down.
#
# Two executors run four units; vdfsd is killed with SIGKILL while they
# run, and the units finish while it is down. Each executor spools its
# results to disk under its --cache and keeps trying. B is then
# killed with SIGKILL too, with its results only on disk. vdfsd comes back
# on the same port, B is started again with the same --cache and --name:
# it lists its spooled results when it registers (the daemon keeps those
# leases instead of putting them back in the queue) and sends them; A's
# are sent by the process that computed them. The run completes with the
# exact result, and the function, which appends its unit number to a side
# file each time it finishes, ran exactly once per unit.
#
# Then an executor whose spool cap is smaller than one result says, while
# the daemon is down, that it takes no new work, and takes work again once
# the daemon took its result. And, with the daemon up: an executor killed
# mid-unit and started again under its name gets its old lease put back in
# the queue at once.
#
# The function waits while a hold file exists, so the test knows (without
# timing) that the units are running when it kills the daemon.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"

IN="$VD_WORK/in"
MARKS="$VD_WORK/marks"
HOLD="$VD_WORK/hold"
RUNS="$VD_WORK/runs"
mkdir -p "$MARKS"
: >"$RUNS"
# ~200 KB of numbered lines (every row of the result is unique), in units
# of about 16 KiB (4 KiB chunks).
vd_gen_text "$IN/raw.txt" $((200 * 1000)) 11 500
awk '{ printf "%06d %s\n", NR, $0 }' "$IN/raw.txt" >"$IN/lines.txt"
awk '{ print length($0) "," $0 }' "$IN/lines.txt" >"$IN/expected.csv"

cat >"$IN/fn.sh" <<EOF
#!/bin/sh
# Mark the unit started; wait (at most 2 minutes) while the hold file
# exists; compute; note in the side file that this unit was computed;
# then print the output.
touch "$MARKS/started.\$VDFS_UNIT.\$\$"
i=0
while [ -e "$HOLD" ] && [ "\$i" -lt 1200 ]; do sleep 0.1; i=\$((i + 1)); done
awk '{ print length(\$0) "," \$0 }' >out.csv
echo "\$VDFS_UNIT" >>"$RUNS"
cat out.csv
EOF
chmod +x "$IN/fn.sh"
# The same, with each row 20 times: even the smallest unit's result (one
# chunk, 1 KiB or more) is then larger than the smallest spool cap, 4 KiB.
sed 's/print length/for (k = 0; k < 20; k++) print length/' "$IN/fn.sh" >"$IN/fn20.sh"
chmod +x "$IN/fn20.sh"
grep -q 'k < 20' "$IN/fn20.sh" || vd_fail "cannot make fn20.sh"

# wait_for WHAT COMMAND...: poll COMMAND until it succeeds.
wait_for() {
	local what="$1" start=$SECONDS
	shift
	until "$@"; do
		((SECONDS - start < VD_TIMEOUT)) || vd_fail "timed out after ${VD_TIMEOUT}s waiting for $what"
		sleep 0.2
	done
}
# count PATTERN FILE: how many lines of FILE match PATTERN (extended).
count() {
	local n
	n="$(grep -c -E -- "$1" "$2" 2>/dev/null)" || true
	echo "${n:-0}"
}
marks() { find "$MARKS" -name 'started.*' | wc -l; }
runs() { wc -l <"$RUNS"; }
# at_least N COMMAND...: COMMAND prints a number, and it is N or more.
at_least() {
	local n="$1"
	shift
	[ "$("$@")" -ge "$n" ]
}

vd_start_daemon --lease-ms 6000 --chunk-size 4096
URL1="$VD_URL"
PORT="${VD_URL##*:}"
T="$VD_MNT/tasks/spool"
mkdir "$T"
cp "$IN/fn.sh" "$T/function"
printf 'reduce = concat\nunit_size = 16K\n' >"$T/config"
touch "$HOLD"
cp "$IN/lines.txt" "$T/data/lines.txt"
id="$(vd_new_version "$T" "")"
V="$T/versions/$id"

vd_start_executor A --slots 2
vd_start_executor B --slots 2
LOGA="$VD_WORK/exec-A.log"
LOGB="$VD_WORK/exec-B.log"
wait_for "four units to start" at_least 4 marks
wait_for "A to hold two leases" at_least 2 count 'lease [0-9a-f]{32}: spool unit' "$LOGA"
wait_for "B to hold two leases" at_least 2 count 'lease [0-9a-f]{32}: spool unit' "$LOGB"
vd_ok "four units are running, two on each executor: $(cd "$MARKS" && echo started.*)"

vd_kill_daemon KILL
rm -f "$HOLD"
wait_for "the four units to finish" at_least 4 runs
vd_ok "the four units finished while vdfsd was down"
# Each executor either spools its two results, or (before the spool) gives
# them up after its few tries.
for e in A B; do
	log="$VD_WORK/exec-$e.log"
	wait_for "$e to deal with its results" at_least 2 count 'spooled it to|result lost after' "$log"
done
# They keep trying (or give up).
wait_for "A to try again" at_least 1 count 'spool: sending the result of lease|result lost after' "$LOGA"

vd_kill_executor B KILL
vd_ok "B killed with SIGKILL; its spool holds $(find "$VD_WORK/cache-B/spool/B" -name '*.result' 2>/dev/null | wc -l) results"

vd_start_daemon --lease-ms 6000 --listen "127.0.0.1:$PORT"
[ "$VD_URL" = "$URL1" ] || vd_fail "the restarted daemon is at $VD_URL, not $URL1"
vd_start_executor B --slots 2
vd_ok "vdfsd restarted on the same port; B started again with the same --cache and --name"

vd_wait_status "$V" done
vd_same "$V/result.csv" "$IN/expected.csv" "the run completes with the exact result"
units="$(head -n 1 "$V/status" | sed -n 's|^done \([0-9]*\)/\([0-9]*\) units.*|\2|p')"
[ -n "$units" ] && ((units > 4)) || vd_fail "cannot tell the number of units from '$(head -n 1 "$V/status")'"
dups="$(sort -n "$RUNS" | uniq -d | paste -sd ' ' -)"
[ -z "$dups" ] || vd_fail "units computed more than once: $dups (side file: $(sort -n "$RUNS" | paste -sd ' ' -))"
[ "$(wc -l <"$RUNS")" = "$units" ] ||
	vd_fail "the function ran $(wc -l <"$RUNS") times for $units units"
vd_ok "each of the $units units was computed exactly once"

grep -E 'result lost after' "$LOGA" "$LOGB" >&2 &&
	vd_fail "an executor gave up results computed while the daemon was down (above)"
vd_ok "A and B spooled their results: $(grep -m 1 'spooled it to' "$LOGA" | sed 's/.*WARN //')"
vd_ok "A kept trying: $(grep -m 1 'spool: sending the result of lease' "$LOGA" | sed 's/.*WARN //')"

grep -q -E 'executor B replaced a process of that name: 0 of its leases back in the queue, 2 kept for the results it has spooled' "$VD_WORK/vdfsd.log" ||
	vd_fail "the daemon did not keep B's two spooled leases when B registered again"
grep -q -E 'registered as B .*2 results spooled' "$LOGB" || vd_fail "B did not list its two spooled results when it registered"
[ "$(count 'result accepted' "$LOGB")" -ge 2 ] || vd_fail "B's spooled results were not accepted"
vd_ok "B, started again, listed its two spooled results, the daemon kept their leases, and took them"
grep -q 'spool: the daemon takes results again' "$LOGA" || vd_fail "A did not send its spooled results"
vd_ok "A sent its spooled results to the restarted daemon"
for e in A B; do
	left="$(find "$VD_WORK/cache-$e/spool/$e" -name '*.result' | wc -l)"
	[ "$left" = 0 ] || vd_fail "$e's spool still holds $left results"
done
vd_ok "both spools are empty"

# A spool cap smaller than one result: at the cap, no new work. Results
# are spooled as they are sent, zstd-compressed: units of 64K make each
# one's output (20 copies of its lines) some 35K as a frame, over 4K.
vd_kill_executor A TERM
vd_kill_executor B TERM
rm -f "$MARKS"/started.*
: >"$RUNS"
touch "$HOLD"
T1="$VD_MNT/tasks/capped"
mkdir "$T1"
cp "$IN/fn20.sh" "$T1/function"
printf 'reduce = concat\nunit_size = 64K\n' >"$T1/config"
head -c 200000 "$IN/lines.txt" >"$IN/some.txt"
awk '{ for (k = 0; k < 20; k++) print length($0) "," $0 }' "$IN/some.txt" >"$IN/some.csv"
cp "$IN/some.txt" "$T1/data/some.txt"
id1="$(vd_new_version "$T1" "")"
vd_start_executor D --spool-size 4K
LOGD="$VD_WORK/exec-D.log"
wait_for "D to start a unit" at_least 1 marks
vd_kill_daemon KILL
rm -f "$HOLD"
wait_for "D to spool its result" at_least 1 count 'spooled it to' "$LOGD"
wait_for "D to say its spool is over its cap" \
	at_least 1 count 'over its cap of [0-9]+ \(--spool-size\): taking no new work' "$LOGD"
vd_ok "D: $(grep -m 1 'over its cap' "$LOGD" | sed 's/.*WARN //')"
vd_start_daemon --lease-ms 6000 --listen "127.0.0.1:$PORT"
vd_wait_status "$T1/versions/$id1" done
vd_same "$T1/versions/$id1/result.csv" "$IN/some.csv" "D's run completes with the exact result"
grep -q 'under its cap again' "$LOGD" || vd_fail "D did not say it takes work again"
dups="$(sort -n "$RUNS" | uniq -d | paste -sd ' ' -)"
[ -z "$dups" ] || vd_fail "units of D's run computed more than once: $dups"
vd_ok "D took work again once the daemon took its result; no unit computed twice"

# An executor killed in the middle of a unit and started again: its old
# lease goes back to the queue at once, not when it expires.
vd_kill_executor D TERM
rm -f "$MARKS"/started.*
: >"$RUNS"
touch "$HOLD"
T2="$VD_MNT/tasks/again"
mkdir "$T2"
cp "$IN/fn.sh" "$T2/function"
printf 'reduce = concat\nunit_size = 16K\n' >"$T2/config"
head -c 10000 "$IN/lines.txt" >"$IN/small.txt"
awk '{ print length($0) "," $0 }' "$IN/small.txt" >"$IN/small.csv"
cp "$IN/small.txt" "$T2/data/small.txt"
id2="$(vd_new_version "$T2" "")"
vd_start_executor C
wait_for "C to start the unit" at_least 1 marks
vd_kill_executor C KILL
rm -f "$HOLD"
vd_start_executor C
vd_wait_status "$T2/versions/$id2" done
vd_same "$T2/versions/$id2/result.csv" "$IN/small.csv" "after C's restart the run completes"
grep -q -E 'executor C replaced a process of that name: 1 of its leases back in the queue, 0 kept' "$VD_WORK/vdfsd.log" ||
	vd_fail "the daemon did not put C's old lease back in the queue when C registered again"
vd_ok "C's old lease went back in the queue when it registered again"

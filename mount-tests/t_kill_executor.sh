#!/usr/bin/env bash
# t_kill_executor: an executor killed with SIGKILL in the middle of its
# units; once its leases expire, another executor finishes the run and
# the result has no duplicate or missing rows.
#
# The function marks each unit it starts in a directory and then waits while
# a hold file exists, so the test knows (without timing) that executor A is
# in the middle of a unit when it kills it.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"

IN="$VD_WORK/in"
MARKS="$VD_WORK/marks"
HOLD="$VD_WORK/hold"
mkdir -p "$MARKS"
# ~16 MB of numbered lines (every row of the result is unique), in units
# of about one 1 MiB chunk each (unit_size = 1M).
vd_gen_text "$IN/raw.txt" $((16 * 1000 * 1000)) 7 1000
awk '{ printf "%08d %s\n", NR, $0 }' "$IN/raw.txt" >"$IN/lines.txt"
rm -f "$IN/raw.txt"
awk '{ print length($0) "," $0 }' "$IN/lines.txt" >"$IN/expected.csv"
vd_note "input $(stat -c %s "$IN/lines.txt") bytes, $(wc -l <"$IN/lines.txt") lines"

cat >"$IN/slow.sh" <<EOF
#!/bin/sh
# Mark the unit as started; wait (at most 2 minutes) while the hold file
# exists; then one row per input line: its length and the line.
touch "$MARKS/started.\$VDFS_UNIT.\$\$"
i=0
while [ -e "$HOLD" ] && [ "\$i" -lt 600 ]; do sleep 0.2; i=\$((i + 1)); done
sleep 1
exec awk '{ print length(\$0) "," \$0 }'
EOF
chmod +x "$IN/slow.sh"
printf 'reduce = concat\nunit_size = 1M\n' >"$IN/config"

vd_start_daemon --lease-ms 3000
T="$VD_MNT/tasks/slow"
mkdir "$T"
cp "$IN/slow.sh" "$T/function"
cp "$IN/config" "$T/config"
cp "$IN/lines.txt" "$T/data/lines.txt"
id="$(vd_new_version "$T" "")"
V="$T/versions/$id"

touch "$HOLD"
vd_start_executor A --slots 2
start=$SECONDS
until compgen -G "$MARKS/started.*" >/dev/null; do
	((SECONDS - start < VD_TIMEOUT)) || vd_fail "executor A started no unit within ${VD_TIMEOUT}s"
	kill -0 "${VD_EXEC_PID[A]}" 2>/dev/null || vd_fail "executor A died"
	vd_check_daemon
	sleep 0.2
done
vd_note "executor A is running: $(cd "$MARKS" && echo started.*)"
vd_kill_executor A KILL
rm -f "$HOLD"
vd_ok "executor A killed with SIGKILL in the middle of a unit"
word="$(vd_status_word "$V/status")"
[ "$word" != "done" ] || vd_fail "the run is already done although A was killed mid-unit"

vd_start_executor B --slots 2
vd_wait_status "$V" "done"
vd_ok "executor B finished the run: $(head -n 1 "$V/status")"
dups="$(cut -d, -f2 "$V/result.csv" | cut -c1-8 | LC_ALL=C sort | uniq -d | head -n 5)"
[ -z "$dups" ] || vd_fail "result.csv has duplicate rows, e.g. lines $dups"
vd_same "$V/result.csv" "$IN/expected.csv" "the result has every row once, in input order"

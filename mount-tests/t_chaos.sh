#!/usr/bin/env bash
# t_chaos: 8 executors on a run of ~500 units while, for a minute, one of
# them at random is SIGKILLed and restarted every 1.5 to 3.5 seconds. The
# result must be byte-identical to the reference computed by awk, with no
# row missing or doubled; the run log must show leases lost to the kills.
#
# Each unit sleeps 0.8 to 1.2 s (sleep costs no CPU on the 2 cores), so the
# run outlasts the chaos. A restarted executor registers
# under its old name: its previous process's leases go back to the queue
# at once; a lease of a process killed for good runs out after 2 s.
#
# VD_CHAOS_MODE=persistent (t_chaos_persistent) runs the same work as a
# persistent function (docs/persistent.md): each kill then takes a process
# that served many units, and the restarted executor starts a new one.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"

IN="$VD_WORK/in"
N_EXEC=8
CHAOS_S="${VD_CHAOS_S:-60}"
MODE="${VD_CHAOS_MODE:-exec}"
# Numbered lines (every result row is unique), ~2 MB: with 4 KiB chunks
# and unit_size = 4K each chunk is a unit.
vd_gen_text "$IN/raw.txt" $((2000 * 1000)) 11 800
awk '{ printf "%07d %s\n", NR, $0 }' "$IN/raw.txt" >"$IN/lines.txt"
rm -f "$IN/raw.txt"
awk '{ print length($0) "," $0 }' "$IN/lines.txt" >"$IN/expected.csv"

cat >"$IN/f.sh" <<'FN'
#!/bin/sh
# 0.8 to 1.2 s of "work", then one row per line: its length and the line.
d=$(( (VDFS_UNIT * 7919) % 5 + 8 ))
sleep "$((d / 10)).$((d % 10))"
exec awk '{ print length($0) "," $0 }'
FN
if [ "$MODE" = persistent ]; then
	# The same rows, one frame at a time; the unit's number comes in the
	# frame's header, and $(...) keeps the output's last newline thanks
	# to the x after it.
	cat >"$IN/f.sh" <<'FN'
#!/bin/bash
while read -r _ hlen dlen; do
	unit=$(head -c "$hlen" | sed -n 's/^VDFS_UNIT=//p')
	d=$(( (unit * 7919) % 5 + 8 ))
	sleep "$((d / 10)).$((d % 10))"
	out=$(head -c "$dlen" | awk '{ print length($0) "," $0 }'; echo x)
	out=${out%x}
	printf '0 %d\n%s' "$(printf '%s' "$out" | wc -c)" "$out"
done
FN
fi
chmod +x "$IN/f.sh"
printf 'reduce = concat\nunit_size = 4K\nretries = 5\nmode = %s\n' "$MODE" >"$IN/config"

vd_start_daemon --chunk-size 4096 --lease-ms 2000
T="$VD_MNT/tasks/chaos"
mkdir "$T"
cp "$IN/f.sh" "$T/function"
cp "$IN/config" "$T/config"
cp "$IN/lines.txt" "$T/data/lines.txt"
id="$(vd_new_version "$T" "")"
V="$T/versions/$id"
units="$(sed -n 's/^queued [0-9]*\/\([0-9]*\) units.*/\1/p' "$V/status")"
vd_note "input $(stat -c %s "$IN/lines.txt") bytes in ${units:-?} units"
[ -n "$units" ] && ((units >= 400)) || vd_fail "wanted at least 400 units, got '${units:-?}' ($(cat "$V/status"))"

for i in $(seq 1 $N_EXEC); do
	vd_start_executor "e$i"
done
kills=0
start=$SECONDS
RANDOM=4242
while ((SECONDS - start < CHAOS_S)); do
	word="$(vd_status_word "$V/status")"
	[ "$word" = done ] && break
	[ "$word" = failed ] && vd_fail "the run failed during the chaos: $(cat "$V/status")"
	vd_check_daemon
	sleep "$((1 + RANDOM % 3)).$((RANDOM % 10))"
	victim="e$((1 + RANDOM % N_EXEC))"
	vd_kill_executor "$victim" KILL >/dev/null
	kills=$((kills + 1))
	sleep 0.$((RANDOM % 10))
	vd_start_executor "$victim" >/dev/null
done
vd_note "$kills executors killed and restarted in $((SECONDS - start)) s; status $(head -n 1 "$V/status")"
((kills >= 10)) || vd_fail "only $kills kills: the run ended before the chaos had a chance"
vd_wait_status "$V" done
vd_ok "the run finished: $(head -n 1 "$V/status")"

lost="$(grep -c -E 'abandoned|lease expired' "$V/log" || true)"
((lost > 0)) || vd_fail "no lease was lost: the kills never hit a running unit"
vd_ok "$lost leases were lost to kills and their units done again"
dups="$(cut -d, -f2 "$V/result.csv" | cut -c1-7 | LC_ALL=C sort | uniq -d | head -n 5)"
[ -z "$dups" ] || vd_fail "result.csv has duplicate rows, e.g. lines $dups"
vd_same "$V/result.csv" "$IN/expected.csv" "the result is byte-identical to the reference, every row once ($MODE mode)"
if [ "$MODE" = persistent ]; then
	# Units went through long-lived processes: fewer starts than units.
	starts="$(cat "$VD_WORK"/exec-*.log | grep -c 'persistent function .* started' || true)"
	vd_note "$starts persistent processes started for $units units"
	((starts > 0 && starts < units)) || vd_fail "$starts persistent processes for $units units"
	vd_ok "the units ran in $starts persistent processes, not one each"
fi

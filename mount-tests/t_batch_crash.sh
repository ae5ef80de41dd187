#!/usr/bin/env bash
# t_batch_crash: results sent several in one POST /v1/results while vdfsd
# is SIGKILLed again and again and restarted on the same state directory
# and port. A result the daemon answered 200 must never be lost: the
# executors log every lease answered 200 with its unit ("result accepted
# (... unit U/N: exit 0 ...)"); a unit accepted, lost in a kill and
# computed again would show two such answers, so every unit must have at
# most one, every unit accepted before the last kill must be done at the
# end, and result.csv must equal the reference (awk on the input), every
# row once: what was lost in the kills (leases, results not yet answered)
# was computed again.
#
# Many tiny units (4 KiB chunks, unit_size = 4K) on 4 executors of 4
# slots each, so that several results finish while a request is in
# flight and go together (the executors' debug log says how many).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"

IN="$VD_WORK/in"
N_EXEC=4
MIN_KILLS=4
# Then the run is left to finish: a restart gives every lease it restores
# a fresh term, so a lease lost with a reply in flight would never run out
# while vdfsd restarts more often than a lease time.
MAX_KILLS=12
# Numbered lines, ~12 MB: ~3000 units of one 4 KiB chunk each.
vd_gen_text "$IN/raw.txt" $((12 * 1000 * 1000)) 23 800
awk '{ printf "%07d %s\n", NR, $0 }' "$IN/raw.txt" >"$IN/lines.txt"
rm -f "$IN/raw.txt"
awk '{ print length($0) "," $0 }' "$IN/lines.txt" >"$IN/expected.csv"
cat >"$IN/f.sh" <<'FN'
#!/bin/sh
exec awk '{ print length($0) "," $0 }'
FN
chmod +x "$IN/f.sh"
printf 'reduce = concat\nunit_size = 4K\nretries = 5\n' >"$IN/config"

vd_start_daemon --chunk-size 4096 --lease-ms 4000
PORT="${VD_URL##*:}"
T="$VD_MNT/tasks/crash"
mkdir "$T"
cp "$IN/f.sh" "$T/function"
cp "$IN/config" "$T/config"
cp "$IN/lines.txt" "$T/data/lines.txt"
id="$(vd_new_version "$T" "")"
V="$T/versions/$id"
units="$(sed -n 's/^queued [0-9]*\/\([0-9]*\) units.*/\1/p' "$V/status")"
[ -n "$units" ] && ((units >= 2000)) || vd_fail "wanted at least 2000 units, got '${units:-?}' ($(cat "$V/status"))"
vd_ok "input $(stat -c %s "$IN/lines.txt") bytes in $units units"

for i in $(seq 1 $N_EXEC); do
	vd_start_executor "e$i" --slots 4
done

# The units answered 200 so far, one line per answer: "UNIT LEASE".
accepted() {
	cat "$VD_WORK"/exec-e*.log |
		sed -n 's/.*lease \([0-9a-f]\{32\}\): result accepted (crash unit \([0-9]*\)\/[0-9]*: exit 0,.*/\2 \1/p'
}

kills=0
RANDOM=977
while :; do
	# A while after the restart, then in the middle of the traffic.
	sleep "0.$((3 + RANDOM % 7))"
	word="$(vd_status_word "$V/status" 2>/dev/null || true)"
	[ "$word" = done ] && break
	[ "$word" = failed ] && vd_fail "the run failed: $(cat "$V/status")"
	vd_check_daemon
	before="$(accepted | wc -l)"
	vd_kill_daemon KILL >/dev/null
	kills=$((kills + 1))
	accepted | awk '{ print $1 }' | LC_ALL=C sort -u >"$VD_WORK/accepted-before-$kills"
	vd_start_daemon --chunk-size 4096 --lease-ms 4000 --listen "127.0.0.1:$PORT" >/dev/null
	vd_note "kill $kills: $before results answered 200 before it; $(head -n 1 "$V/status" 2>/dev/null)"
	((kills < MAX_KILLS)) || break
done
vd_wait_status "$V" done
vd_ok "the run finished after $kills kills of vdfsd: $(head -n 1 "$V/status")"
((kills >= MIN_KILLS)) || vd_fail "only $kills kills: the run ended before the kills had a chance (want $MIN_KILLS)"

batched="$(cat "$VD_WORK"/exec-e*.log | sed -n 's/.*POST \/v1\/results: \([0-9]*\) results in one request answered.*/\1/p' |
	awk '$1 > 1 { n++; r += $1 } END { printf "%d %d", n, r }')"
[ "${batched%% *}" -gt 0 ] || vd_fail "no request carried more than one result: nothing was batched"
vd_ok "${batched%% *} requests carried several results (${batched##* } results in them)"

accepted >"$VD_WORK/accepted"
n_acc="$(wc -l <"$VD_WORK/accepted")"
twice="$(awk '{ print $1 }' "$VD_WORK/accepted" | LC_ALL=C sort | uniq -d | head -n 5 | tr '\n' ' ')"
[ -z "$twice" ] || vd_fail "units answered 200 twice (accepted, lost, computed again): $twice"
vd_ok "$n_acc results answered 200, no unit twice: none was lost in $kills kills"

# Every unit answered 200 before a kill is done: in the catalog (the run
# is done, and its log records each unit's accepted result once).
sed -n 's/.* code=[0-9a-f]* unit \([0-9]*\)\/[0-9]* executor=[^ ]* exit=0 .*/\1/p' "$V/log" |
	LC_ALL=C sort >"$VD_WORK/logged"
n_logged="$(LC_ALL=C sort -u "$VD_WORK/logged" | wc -l)"
[ "$n_logged" = "$units" ] || vd_fail "the run's log records $n_logged units done, not $units"
for f in "$VD_WORK"/accepted-before-*; do
	missing="$(LC_ALL=C comm -23 "$f" <(LC_ALL=C sort -u "$VD_WORK/logged") | head -n 5 | tr '\n' ' ')"
	[ -z "$missing" ] || vd_fail "units answered 200 before ${f##*-} are not recorded in the run's log: $missing"
done
logged_twice="$(uniq -d "$VD_WORK/logged" | head -n 5 | tr '\n' ' ')"
[ -z "$logged_twice" ] || vd_fail "units recorded done twice in the run's log: $logged_twice"
vd_ok "every unit answered 200 before a kill is recorded done, once"

dups="$(cut -d, -f2 "$V/result.csv" | cut -c1-7 | LC_ALL=C sort | uniq -d | head -n 5)"
[ -z "$dups" ] || vd_fail "result.csv has duplicate rows, e.g. lines $dups"
vd_same "$V/result.csv" "$IN/expected.csv" "the result is byte-identical to the reference, every row once"

#!/usr/bin/env bash
# t_levels: a level-4 function is never leased to a level-2 executor. While
# only that executor runs, the version's status says what it waits for and
# the executor gets nothing (a level-1 task meanwhile runs on it); a level-4
# executor then does all of it.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"

IN="$VD_WORK/in"
seq 1 20000 >"$IN/nums.txt"
printf '#!/bin/sh\nawk '"'"'{ print $1 * 2 }'"'"'\n' >"$IN/double.sh"
awk '{ print $1 * 2 }' "$IN/nums.txt" >"$IN/expected.csv"

vd_start_daemon --chunk-size 4096
for t in high low; do
	mkdir "$VD_MNT/tasks/$t"
	cp "$IN/double.sh" "$VD_MNT/tasks/$t/function"
done
printf 'level = 4\nunit_size = 16K\n' >"$VD_MNT/tasks/high/config"
printf 'level = 1\nunit_size = 16K\n' >"$VD_MNT/tasks/low/config"
cp "$IN/nums.txt" "$VD_MNT/tasks/high/data/nums.txt"
cp "$IN/nums.txt" "$VD_MNT/tasks/low/data/nums.txt"
H="$VD_MNT/tasks/high/latest"
L="$VD_MNT/tasks/low/latest"

vd_start_executor lvl2 --level 2 --slots 2
vd_wait_status "$L" done
vd_same "$L/result.csv" "$IN/expected.csv" "the level-1 task ran on the level-2 executor"
start=$SECONDS
until grep -q 'waiting for an executor of level ≥ 4' "$H/status"; do
	((SECONDS - start < 30)) || vd_fail "status does not say what it waits for: $(cat "$H/status")"
	sleep 0.2
done
vd_ok "status: $(cat "$H/status")"
# The level-2 executor long-polls all the while; give it a few polls.
sleep 3
[ "$(vd_status_word "$H/status")" = queued ] || vd_fail "the level-4 run started: $(cat "$H/status")"
grep -q 'executor=lvl2' "$H/log" && vd_fail "the level-4 run's log names lvl2: $(grep executor=lvl2 "$H/log" | head -n 3)"
vd_ok "no unit of the level-4 function went to the level-2 executor"

vd_start_executor lvl4 --level 4
vd_wait_status "$H" done
vd_same "$H/result.csv" "$IN/expected.csv" "a level-4 executor ran the level-4 function"
grep -q 'executor=lvl2' "$H/log" && vd_fail "lvl2 ran a unit of the level-4 function after all"
n4="$(grep -c 'executor=lvl4 exit=0' "$H/log" || true)"
units="$(sed -n 's/^done \([0-9]*\)\/.*/\1/p' "$H/status")"
[ "$n4" = "$units" ] || vd_fail "$n4 of $units units were done by lvl4"
vd_ok "all $units units of the level-4 function ran on lvl4, none on lvl2"

#!/usr/bin/env bash
# t_straggler: near the end of a run an idle executor gets a copy of the
# slowest outstanding unit, and the first result wins. Executor "slow"
# (HOLD=1 in its environment) blocks on a hold file that stays until the
# test ends; its unit can only be finished by the copy that "fast" gets.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"

IN="$VD_WORK/in"
HOLD="$VD_WORK/hold"
MARK="$VD_WORK/marks"
mkdir -p "$MARK"
seq 1 40000 >"$IN/nums.txt"
cat >"$IN/f.sh" <<FN
#!/bin/sh
touch "$MARK/\$VDFS_UNIT"
if [ -n "\${HOLD:-}" ]; then
	i=0
	while [ -e "$HOLD" ] && [ "\$i" -lt 1200 ]; do sleep 0.1; i=\$((i + 1)); done
fi
exec awk '{ print \$1 + 1 }'
FN
chmod +x "$IN/f.sh"
awk '{ print $1 + 1 }' "$IN/nums.txt" >"$IN/expected.csv"

vd_start_daemon --chunk-size 4096
T="$VD_MNT/tasks/strag"
mkdir "$T"
cp "$IN/f.sh" "$T/function"
printf 'unit_size = 32K\n' >"$T/config"
cp "$IN/nums.txt" "$T/data/nums.txt"
V="$T/latest"
touch "$HOLD"
HOLD=1 vd_start_executor slow
start=$SECONDS
until compgen -G "$MARK/*" >/dev/null; do
	((SECONDS - start < 60)) || vd_fail "slow started no unit"
	sleep 0.1
done
held="$(ls "$MARK")"
vd_note "slow holds unit $held"
vd_start_executor fast
vd_wait_status "$V" done 120
[ -e "$HOLD" ] || vd_fail "the hold file is gone"
vd_ok "the run finished while slow still sat on unit $held: $(cat "$V/status")"
grep -q "unit $held/.* straggler: a copy goes to executor=fast" "$V/log" ||
	vd_fail "the log shows no straggler copy of unit $held"
grep -q "unit $held/.* executor=fast exit=0" "$V/log" || vd_fail "unit $held was not done by fast"
vd_same "$V/result.csv" "$IN/expected.csv" "the result is right, unit $held from its copy"
rm -f "$HOLD"
# slow's own result now comes too late: refused, and the result stays.
start=$SECONDS
until grep -q -E 'result not needed|unit dropped' "$VD_WORK/exec-slow.log"; do
	((SECONDS - start < 60)) || vd_fail "slow never learned that its unit was done elsewhere"
	sleep 0.2
done
vd_same "$V/result.csv" "$IN/expected.csv" "the late original changed nothing"

#!/usr/bin/env bash
# t_delete_lease: deleting a task while an executor holds a lease on it.
#   - vdfs rm --task refuses (busy) while its run is going, naming the
#     way out (cancel); nothing is deleted;
#   - after vdfs cancel, vdfs rm --task deletes it while the executor is
#     still computing the unit; the executor's result is then refused
#     (409 or 404), the executor and the daemon keep running, and the
#     executor goes on to compute another task's work correctly;
#   - vdfs gc and fsck --full afterwards are clean.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"
VDFS="$VD_BIN/vdfs"
vd_start_daemon
vd_start_executor e1
HOLD="$VD_WORK/hold"
MARK="$VD_WORK/mark"
T="$VD_MNT/tasks/gone"
mkdir "$T"
cat >"$T/function" <<FN
#!/bin/sh
touch "$MARK"
i=0
while [ -e "$HOLD" ] && [ "\$i" -lt 600 ]; do sleep 0.1; i=\$((i + 1)); done
exec wc -l
FN
touch "$HOLD"
seq 1 1000 >"$VD_WORK/in.txt"
cp "$VD_WORK/in.txt" "$T/data/in.txt"
for ((i = 0; i < 300; i++)); do [ -e "$MARK" ] && break; sleep 0.1; done
[ -e "$MARK" ] || vd_fail "the executor never started the unit"

st=0
"$VDFS" rm --task gone --state "$VD_STATE" >"$VD_WORK/rm.out" 2>&1 || st=$?
[ "$st" != 0 ] || vd_fail "vdfs rm --task of a task with a running unit succeeded"
grep -qi "cancel" "$VD_WORK/rm.out" || vd_fail "the refusal does not say how to go on: $(cat "$VD_WORK/rm.out")"
[ -d "$T" ] || vd_fail "the refused delete removed the task"
vd_ok "vdfs rm --task refuses while a run is going, and says to cancel it"

"$VDFS" cancel gone --state "$VD_STATE" >/dev/null || vd_fail "vdfs cancel failed"
"$VDFS" rm --task gone --state "$VD_STATE" >/dev/null || vd_fail "vdfs rm --task after cancel failed"
ls "$VD_MNT/tasks" | grep -qx gone && vd_fail "tasks/ still lists the deleted task"
vd_ok "after cancel the task is deleted while the executor still holds its unit"

rm -f "$HOLD"
# The executor sends its result and is refused; wait for its log to say so.
for ((i = 0; i < 300; i++)); do
	grep -Eq 'HTTP 40[49]|not needed any more|does not know this lease' "$VD_WORK/exec-e1.log" && break
	sleep 0.1
done
grep -Eq 'HTTP 40[49]|not needed any more|does not know this lease' "$VD_WORK/exec-e1.log" || vd_fail "no 409/404 for the late result in the executor's log"
vd__alive "${VD_EXEC_PID[e1]}" || vd_fail "the executor died on the refused result"
vd_check_daemon
vd_ok "the late result is refused cleanly (409/404); executor and daemon go on"

mkdir "$VD_MNT/tasks/next"
printf '#!/bin/sh\nexec wc -l\n' >"$VD_MNT/tasks/next/function"
cp "$VD_WORK/in.txt" "$VD_MNT/tasks/next/data/in.txt"
vd_wait_status "$VD_MNT/tasks/next/latest" done
[ "$(tr -d ' \n' <"$VD_MNT/tasks/next/latest/result.csv")" = 1000 ] || vd_fail "next task's result: $(cat "$VD_MNT/tasks/next/latest/result.csv")"
"$VDFS" gc --state "$VD_STATE" >/dev/null || vd_fail "gc failed"
"$VDFS" fsck --full --state "$VD_STATE" >"$VD_WORK/fsck.out" || vd_fail "fsck --full: $(cat "$VD_WORK/fsck.out")"
vd_ok "the executor computes the next task; gc and fsck --full are clean"

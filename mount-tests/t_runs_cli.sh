#!/usr/bin/env bash
# t_runs_cli: a failed or stale run can be run again, from a script.
#   - vdfs cancel TASK ends a running run as failed, "cancelled by the
#     operator"; vdfs wait TASK then exits 1;
#   - vdfs rerun TASK runs latest again (memo reused: the log says so),
#     --force computes every unit again; vdfs wait exits 0 when done;
#   - vdfs wait --timeout exits 2 while a run is still going;
#   - ID arguments take unique prefixes (lineage, diff, rerun, wait); a
#     prefix that is too short or names nothing is refused with exit 2;
#   - the HTTP routes want the operator's token (401) and answer a cancel
#     with nothing to cancel 409, a bad body 400, no task 404, in JSON.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"
VDFS="$VD_BIN/vdfs"
vd_start_daemon
vd_start_executor e1 --slots 2
T="$VD_MNT/tasks/rr"
mkdir "$T"
printf 'reduce = sum\nunit_size = 1M\n' >"$T/config"
# Slow while the file SLOW exists, so that a run can be caught running.
{
	echo '#!/bin/sh'
	echo "while [ -e '$VD_WORK/SLOW' ]; do sleep 0.2; done"
	echo "exec awk '{ for (i = 1; i <= NF; i++) n[\$i]++ } END { for (w in n) print w \",\" n[w] }'"
} >"$VD_WORK/fn.sh"
chmod +x "$VD_WORK/fn.sh"
cp "$VD_WORK/fn.sh" "$T/function"
vd_gen_text "$VD_WORK/a.txt" 3000000 9
vd_count_words "$VD_WORK/a.txt" >"$VD_WORK/a.expected"

touch "$VD_WORK/SLOW"
cp "$VD_WORK/a.txt" "$T/data/a.txt"
A="$(readlink "$T/latest")"
A="${A#versions/}"
st=0
"$VDFS" wait rr --timeout 1 --state "$VD_STATE" 2>"$VD_WORK/wait.err" || st=$?
[ "$st" = 2 ] || vd_fail "vdfs wait --timeout 1 on a slow run exited $st, not 2"
grep -q "still '" "$VD_WORK/wait.err" || vd_fail "vdfs wait gave no reason for its timeout"
vd_ok "vdfs wait --timeout exits 2 while the run goes on"

out="$("$VDFS" cancel rr --state "$VD_STATE")" || vd_fail "vdfs cancel failed"
[ "$out" = "$A" ] || vd_fail "vdfs cancel printed '$out', not the version's ID"
st=0
"$VDFS" wait rr --state "$VD_STATE" >"$VD_WORK/wait.out" || st=$?
[ "$st" = 1 ] || vd_fail "vdfs wait on a cancelled run exited $st, not 1"
grep -q '^failed: cancelled by the operator' "$T/latest/status" || vd_fail "status: $(cat "$T/latest/status")"
vd_ok "vdfs cancel: the run fails, 'cancelled by the operator'; vdfs wait exits 1"

st=0
"$VDFS" cancel rr --state "$VD_STATE" 2>"$VD_WORK/cancel.err" || st=$?
[ "$st" = 1 ] || vd_fail "a second cancel exited $st"
grep -q 'no run of the current code' "$VD_WORK/cancel.err" || vd_fail "a cancel of nothing: $(cat "$VD_WORK/cancel.err")"
vd_ok "cancelling nothing is refused with the reason"

rm -f "$VD_WORK/SLOW"
out="$("$VDFS" rerun rr "${A:0:8}" --state "$VD_STATE")" || vd_fail "vdfs rerun rr ${A:0:8} failed"
[ "$out" = "$A" ] || vd_fail "vdfs rerun printed '$out'"
"$VDFS" wait "${A:0:10}" --state "$VD_STATE" >"$VD_WORK/wait.out" || vd_fail "vdfs wait ID exited non-zero after the rerun"
grep -q '^done' "$VD_WORK/wait.out" || vd_fail "vdfs wait printed: $(cat "$VD_WORK/wait.out")"
vd_same "$T/latest/result.csv" "$VD_WORK/a.expected" "vdfs rerun after a cancel: the exact result"
grep -q 'run queued again: asked for by the operator' "$T/latest/log" || vd_fail "the log does not say the operator re-ran it"

# Again: everything from memo. With --force: nothing from memo.
"$VDFS" rerun rr --state "$VD_STATE" >/dev/null || vd_fail "vdfs rerun rr failed"
"$VDFS" wait rr --state "$VD_STATE" -q || vd_fail "vdfs wait after the second rerun"
grep 'run planned' "$T/latest/log" | tail -n 1 | grep -Eq 'run planned: ([0-9]+) units, \1 reused' ||
	vd_fail "a rerun did not take every unit from memo: $(grep 'run planned' "$T/latest/log" | tail -n 1)"
"$VDFS" rerun rr --force --state "$VD_STATE" >/dev/null || vd_fail "vdfs rerun --force failed"
"$VDFS" wait rr --state "$VD_STATE" -q || vd_fail "vdfs wait after the forced rerun"
grep 'run planned' "$T/latest/log" | tail -n 1 | grep -q ', 0 reused' ||
	vd_fail "rerun --force reused units: $(grep 'run planned' "$T/latest/log" | tail -n 1)"
vd_same "$T/latest/result.csv" "$VD_WORK/a.expected" "vdfs rerun --force: the exact result, every unit computed again"

# Prefixes elsewhere.
vd_gen_text "$VD_WORK/b.txt" 200000 10
cp "$VD_WORK/b.txt" "$T/data/b.txt"
B="$(readlink "$T/latest")"
B="${B#versions/}"
"$VDFS" lineage "${A:0:6}" --state "$VD_STATE" | grep -q "${A:0:12}" || vd_fail "vdfs lineage with a 6-digit prefix"
"$VDFS" diff "${A:0:7}" "${B:0:7}" --state "$VD_STATE" >/dev/null || vd_fail "vdfs diff with prefixes"
st=0
"$VDFS" lineage "${A:0:5}" --state "$VD_STATE" 2>"$VD_WORK/p.err" || st=$?
[ "$st" = 2 ] && grep -q '6 to 32' "$VD_WORK/p.err" || vd_fail "a 5-digit prefix: exit $st, $(cat "$VD_WORK/p.err")"
nomatch=000000
[ "${A:0:6}" = "$nomatch" ] && nomatch=ffffff
st=0
"$VDFS" lineage "$nomatch" --state "$VD_STATE" 2>"$VD_WORK/p.err" || st=$?
[ "$st" = 2 ] && grep -q "starts with $nomatch" "$VD_WORK/p.err" || vd_fail "a prefix of nothing: exit $st, $(cat "$VD_WORK/p.err")"
vd_ok "ID prefixes: 6 digits or more resolve; 5 digits or no match exit 2 with the reason"

# The routes.
URL="$(cat "$VD_STATE/url")"
TOKEN="$(cat "$VD_STATE/token")"
code="$(curl -s -o "$VD_WORK/r.json" -w '%{http_code}' -X POST "$URL/v1/tasks/rr/rerun" --data '{}')"
[ "$code" = 401 ] && grep -q '"error"' "$VD_WORK/r.json" || vd_fail "rerun without a token: $code $(cat "$VD_WORK/r.json")"
code="$(curl -s -o "$VD_WORK/r.json" -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" \
	"$URL/v1/tasks/rr/cancel" --data '{}')"
[ "$code" = 409 ] && grep -q '"error"' "$VD_WORK/r.json" || vd_fail "cancel of nothing: $code $(cat "$VD_WORK/r.json")"
code="$(curl -s -o "$VD_WORK/r.json" -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" \
	"$URL/v1/tasks/rr/rerun" --data '{"force": "yes"}')"
[ "$code" = 400 ] || vd_fail "rerun with a bad force: $code"
code="$(curl -s -o "$VD_WORK/r.json" -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" \
	"$URL/v1/tasks/nosuch/rerun" --data '{}')"
[ "$code" = 404 ] || vd_fail "rerun of no task: $code"
vd_ok "the rerun and cancel routes: 401 without a token, 409 for nothing to cancel, 400, 404"

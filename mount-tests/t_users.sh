#!/usr/bin/env bash
# t_users: users, roles and executor enrollment tokens (docs/users.md).
#   - vdfs user add prints the token once (the daemon keeps its hash only:
#     not in vdfs user list, not in the catalog); a live name is refused;
#   - a reader browses (GET) but cannot create a task or run gc: 403 with
#     the role named;
#   - a submitter creates a task it owns (POST /v1/tasks), cancels and
#     deletes on it, but gets 403 on a task it does not own, on metrics and
#     on adding or revoking users; vdfs rm with its token says why (exit 1);
#   - an operator does gc and revokes a user, whose token is refused (401)
#     from its next request; a revoked name may be added again;
#   - vdfs token executor makes a token that enrolls an executor, which then
#     computes a unit correctly, and that can do nothing else (403);
#   - vdfs finds the server and token in VDFS_SERVER / VDFS_TOKEN_FILE or
#     ~/.config/vdfs/client.conf, as a user on another machine has them;
#   - STATE/token works as before.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"
VDFS="$VD_BIN/vdfs"
vd_start_daemon
ADMIN="$(cat "$VD_STATE/token")"

# code METHOD PATH TOKEN [BODY]: the HTTP status; the body in $VD_WORK/body.
code() {
	local args=(-s -o "$VD_WORK/body" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $3")
	[ $# -ge 4 ] && args+=(-H 'Content-Type: application/json' --data "$4")
	curl "${args[@]}" "$VD_URL$2"
}
expect() {   # WANT WHAT METHOD PATH TOKEN [BODY]
	local want="$1" what="$2" got
	shift 2
	got="$(code "$@")"
	[ "$got" = "$want" ] || vd_fail "$what: HTTP $got, not $want: $(cat "$VD_WORK/body")"
}

for u in alice:submitter bob:reader ops:operator carol:submitter; do
	"$VDFS" user add "${u%%:*}" --role "${u#*:}" --state "$VD_STATE" >"$VD_WORK/${u%%:*}.tok" 2>"$VD_WORK/add.err" ||
		vd_fail "vdfs user add ${u%%:*}: $(cat "$VD_WORK/add.err")"
	grep -Eqx '[0-9a-f]{64}' "$VD_WORK/${u%%:*}.tok" || vd_fail "vdfs user add printed '$(cat "$VD_WORK/${u%%:*}.tok")', not one token"
done
ALICE="$(cat "$VD_WORK/alice.tok")"; BOB="$(cat "$VD_WORK/bob.tok")"
OPS="$(cat "$VD_WORK/ops.tok")"; CAROL="$(cat "$VD_WORK/carol.tok")"
"$VDFS" user list --state "$VD_STATE" >"$VD_WORK/list"
grep -Eq '^alice +submitter' "$VD_WORK/list" || vd_fail "vdfs user list: $(cat "$VD_WORK/list")"
grep -Eq '^bob +reader' "$VD_WORK/list" || vd_fail "vdfs user list: $(cat "$VD_WORK/list")"
for t in "$ALICE" "$BOB" "$OPS"; do
	grep -q "$t" "$VD_WORK/list" && vd_fail "vdfs user list shows a token"
	grep -rqa "$t" "$VD_STATE/catalog" && vd_fail "a token is in the catalog as it is"
done
st=0
"$VDFS" user add alice --role reader --state "$VD_STATE" >/dev/null 2>"$VD_WORK/dup.err" || st=$?
[ "$st" = 1 ] || vd_fail "adding a live name again exited $st"
vd_ok "users added: one token each, printed once; list and catalog hold no token; a live name is refused"

mkdir "$VD_MNT/tasks/optask"
expect 200 "a reader lists tasks" GET /v1/tasks "$BOB"
grep -q '"optask"' "$VD_WORK/body" || vd_fail "GET /v1/tasks: $(cat "$VD_WORK/body")"
expect 403 "a reader creates a task" POST /v1/tasks "$BOB" '{"name":"b1"}'
grep -q 'reader' "$VD_WORK/body" || vd_fail "the 403 does not name the role: $(cat "$VD_WORK/body")"
expect 403 "a reader runs gc" POST /v1/gc "$BOB" '{}'
vd_ok "a reader browses; creating a task or gc is 403, naming the role"

expect 200 "a submitter creates a task" POST /v1/tasks "$ALICE" '{"name":"alices"}'
grep -q '"owner": *"alice"' "$VD_WORK/body" || vd_fail "the new task's owner: $(cat "$VD_WORK/body")"
[ -d "$VD_MNT/tasks/alices" ] || vd_fail "the task made over HTTP is not in the mount"
expect 200 "the task list" GET /v1/tasks "$ALICE"
grep -q '"name": *"alices", *"owner": *"alice"\|"owner": *"alice", *"name": *"alices"' "$VD_WORK/body" ||
	vd_fail "GET /v1/tasks does not show alice as the owner: $(cat "$VD_WORK/body")"
expect 404 "the owner cancels (past the role check: no function yet)" POST /v1/tasks/alices/cancel "$ALICE" '{}'
grep -q "no function yet" "$VD_WORK/body" || vd_fail "the owner's cancel: $(cat "$VD_WORK/body")"
expect 403 "a submitter reruns another's task" POST /v1/tasks/optask/rerun "$ALICE" '{}'
grep -q 'own tasks' "$VD_WORK/body" || vd_fail "the 403 does not say why: $(cat "$VD_WORK/body")"
expect 200 "carol creates a task" POST /v1/tasks "$CAROL" '{"name":"carols"}'
expect 403 "a submitter deletes another submitter's task" DELETE /v1/tasks/carols "$ALICE"
grep -q 'owned by carol' "$VD_WORK/body" || vd_fail "the 403 does not name the owner: $(cat "$VD_WORK/body")"
expect 200 "a submitter reads status (the dashboard shows it to every user)" GET /v1/status "$ALICE"
expect 403 "a submitter reads metrics" GET /metrics "$ALICE"
expect 403 "a submitter adds a user" POST /v1/users "$ALICE" '{"name":"eve","role":"operator"}'
expect 403 "a submitter revokes a user" DELETE /v1/users/bob "$ALICE"
echo "$ALICE" >"$VD_WORK/alice.tokfile"
st=0
"$VDFS" rm --task carols --server "$VD_URL" --token-file "$VD_WORK/alice.tokfile" >/dev/null 2>"$VD_WORK/rm.err" || st=$?
[ "$st" = 1 ] || vd_fail "vdfs rm of another's task with a submitter's token exited $st"
grep -q 'owned by carol' "$VD_WORK/rm.err" || vd_fail "vdfs rm does not say why: $(cat "$VD_WORK/rm.err")"
[ -d "$VD_MNT/tasks/carols" ] || vd_fail "the refused delete removed the task"
"$VDFS" rm --task alices --server "$VD_URL" --token-file "$VD_WORK/alice.tokfile" >/dev/null ||
	vd_fail "the owner could not delete its own task"
vd_ok "a submitter creates and deletes its own tasks; another's task, metrics and users are 403"

# From "another machine": only a URL and a token, from the environment or
# from ~/.config/vdfs/client.conf, no --state.
H="$VD_WORK/home"
mkdir -p "$H/.config/vdfs"
cp "$VD_WORK/alice.tokfile" "$H/alice.token"
printf '# alice on her laptop\nserver = %s\ntoken_file = ~/alice.token\n' "$VD_URL" >"$H/.config/vdfs/client.conf"
expect 200 "alice creates another task" POST /v1/tasks "$ALICE" '{"name":"alices2"}'
expect 200 "and a third" POST /v1/tasks "$ALICE" '{"name":"alices3"}'
env -u VDFS_SERVER -u VDFS_TOKEN_FILE HOME="$H" XDG_CONFIG_HOME= "$VDFS" rm --task alices2 >/dev/null ||
	vd_fail "vdfs rm with server and token from client.conf failed"
env HOME=/nonexistent VDFS_SERVER="$VD_URL" VDFS_TOKEN_FILE="$VD_WORK/alice.tokfile" "$VDFS" rm --task alices3 >/dev/null ||
	vd_fail "vdfs rm with VDFS_SERVER and VDFS_TOKEN_FILE failed"
printf 'serve = %s\n' "$VD_URL" >"$H/.config/vdfs/client.conf"
st=0
env -u VDFS_SERVER -u VDFS_TOKEN_FILE HOME="$H" XDG_CONFIG_HOME= "$VDFS" rm --task carols >/dev/null 2>"$VD_WORK/conf.err" || st=$?
[ "$st" = 2 ] && grep -q "unknown key 'serve'" "$VD_WORK/conf.err" ||
	vd_fail "a bad client.conf: exit $st, $(cat "$VD_WORK/conf.err")"
[ -d "$VD_MNT/tasks/carols" ] || vd_fail "a bad client.conf still deleted something"
vd_ok "vdfs takes the server and token from VDFS_SERVER/VDFS_TOKEN_FILE or ~/.config/vdfs/client.conf; a bad key is exit 2"

expect 200 "an operator runs gc" POST /v1/gc "$OPS" '{}'
expect 200 "an operator reads du" GET /v1/du "$OPS"
expect 200 "an operator revokes a user" DELETE /v1/users/bob "$OPS"
expect 401 "the revoked token, at once" GET /v1/tasks "$BOB"
"$VDFS" user list --state "$VD_STATE" | grep -Eq '^bob +reader +[0-9-]+ [0-9:]+ +[0-9-]+ ' ||
	vd_fail "vdfs user list does not show bob revoked: $("$VDFS" user list --state "$VD_STATE")"
"$VDFS" user add bob --role reader --state "$VD_STATE" >"$VD_WORK/bob2.tok" 2>/dev/null ||
	vd_fail "a revoked name could not be added again"
expect 200 "bob's new token" GET /v1/tasks "$(cat "$VD_WORK/bob2.tok")"
expect 401 "bob's old token stays refused" GET /v1/tasks "$BOB"
vd_ok "an operator runs gc and revokes; a revoked token is 401 at once; the name can be given again"

"$VDFS" token executor --state "$VD_STATE" >"$VD_WORK/enroll.tok" 2>/dev/null || vd_fail "vdfs token executor failed"
grep -Eqx '[0-9a-f]{64}' "$VD_WORK/enroll.tok" || vd_fail "vdfs token executor printed '$(cat "$VD_WORK/enroll.tok")'"
ENROLL="$(cat "$VD_WORK/enroll.tok")"
expect 403 "an enrollment token reads status" GET /v1/status "$ENROLL"
grep -q 'only register executors' "$VD_WORK/body" || vd_fail "the 403: $(cat "$VD_WORK/body")"
expect 403 "an enrollment token lists tasks" GET /v1/tasks "$ENROLL"
expect 403 "an enrollment token adds a user" POST /v1/users "$ENROLL" '{"name":"eve","role":"operator"}'
"$VD_BIN/vdfs-executor" --server "$VD_URL" --token-file "$VD_WORK/enroll.tok" --name lent \
	--cache "$VD_WORK/cache-lent" >>"$VD_WORK/exec-lent.log" 2>&1 </dev/null &
VD_EXEC_PID[lent]=$!
T="$VD_MNT/tasks/optask"
printf '#!/bin/sh\nexec wc -l\n' >"$T/function"
seq 1 5000 >"$VD_WORK/in.txt"
cp "$VD_WORK/in.txt" "$T/data/in.txt"
vd_wait_status "$T/latest" done
[ "$(tr -d ' \n' <"$T/latest/result.csv")" = 5000 ] || vd_fail "result: $(cat "$T/latest/result.csv")"
vd_ok "an executor enrolled with an executor token computes; that token can do nothing else"

expect 200 "STATE/token reads status" GET /v1/status "$ADMIN"
"$VDFS" status --state "$VD_STATE" >/dev/null || vd_fail "vdfs status with STATE/token failed"
vd_ok "STATE/token is the owner's operator token, as before"

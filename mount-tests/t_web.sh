#!/usr/bin/env bash
# t_web: the dashboard in a real browser. Debian's chromium, headless,
# driven through chromium-driver by python3-selenium (web_test.py), against
# vdfsd with its mount and two executors on 127.0.0.1; users alice
# (submitter), bob (reader) and olga (operator) made with vdfs user add.
# Fixtures are made through the mount as a user would (cp, cp -r); what the
# page shows is checked against the mount and the API:
#   - GET / without a session redirects to /signin, /v1/tasks is 401 JSON;
#     a wrong token stays on /signin with a reason; alice signs in with her
#     token (cookie HttpOnly, SameSite=Strict; the strict CSP on the pages);
#   - a task made from the form (function file, config); a file uploaded by
#     the page is a version whose input in the mount is byte-identical;
#     vdfs put of the same file then gets (about) no new chunk bytes
#     (vdfs_upload_new_bytes_total): the page cuts as the daemon does;
#   - the overview's progress bar of that task reaches max with status done;
#     its version page's preview table is the first 20 lines of the mount's
#     result.csv (Python's csv module);
#   - three versions ticked on the task page, a#zip: the downloaded zip
#     holds each result byte-identical (cmp) to the mount's;
#   - a version whose data is another task's result: the #lineage picture's
#     nodes and edges (ids, kinds, code IDs) are exactly /v1/lineage's;
#   - a tree file named <img src=x onerror=...>.txt, a function printing
#     <script> and <img onerror> to stderr (in the run log), a task named
#     with markup: all shown as text, no marker set on window, no element
#     made, no CSP violation in any page;
#   - live: a slow run's progress bar on the overview moves and reaches max
#     without a reload;
#   - forged requests: alice's cookie without X-VDFS-CSRF, or from Origin
#     http://evil.example, or with a wrong CSRF token 403; bob (reader) has
#     no #upload-go, form#create-task, button.revoke, button#rerun, and his
#     forged POST /v1/tasks, DELETE /v1/executors/e1, rerun are 403; bob
#     revoked: 401 at once, his page goes to /signin; #signout ends a session;
#   - the operator sees both executors and revokes one with its button: its
#     row says revoked without a reload.
# Screenshots of every page: $VD_ARTIFACTS, else BUILD/web-screenshots/.
# Without chromium, chromedriver or selenium the test fails, naming them.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"
here="$(cd "$(dirname "$0")" && pwd)"
VDFS="$VD_BIN/vdfs"
PY=/usr/bin/python3
export PYTHONDONTWRITEBYTECODE=1

[ -x "$PY" ] || vd_fail "$PY is missing (Debian's python3, which has python3-selenium)"
why="$("$PY" -c 'import sys; sys.path.insert(0, sys.argv[1]); import vdweb; print(vdweb.missing_prerequisites() or "")' "$here")" ||
	vd_fail "$PY cannot load mount-tests/vdweb.py"
[ -z "$why" ] || vd_fail "cannot drive a browser: $why"

# Whatever chromium leaves behind (it should not) is ended by its PID: the
# processes whose command line names this test's own browser profile.
kill_browsers() {
	local p
	for p in /proc/[0-9]*; do
		if tr '\0' '\n' 2>/dev/null <"$p/cmdline" | grep -qxF -- "--user-data-dir=$VD_WORK/chrome-profile"; then
			kill -KILL "${p#/proc/}" 2>/dev/null || true
		fi
	done
}
vd_at_exit kill_browsers

# Small chunks: the slow run below has many units, and the page's chunker
# has many cut points to get right.
vd_start_daemon --chunk-size 16384
vd_start_executor e1 --slots 2
vd_start_executor e2 --slots 2
for u in alice:submitter bob:reader olga:operator; do
	"$VDFS" user add "${u%%:*}" --role "${u#*:}" --state "$VD_STATE" >"$VD_WORK/${u%%:*}.tok" 2>/dev/null ||
		vd_fail "vdfs user add ${u%%:*}"
done

vd_write_wc_function "$VD_WORK/wc.sh"
vd_gen_text "$VD_WORK/in/upload.txt" 600000 7

# Three versions of one task, each done.
T="$VD_MNT/tasks/wc3"
mkdir "$T"
printf 'reduce = sum\n' >"$T/config"
cp "$VD_WORK/wc.sh" "$T/function"
IDS=()
for i in 1 2 3; do
	vd_gen_text "$VD_WORK/in/f$i.txt" $((40000 * i)) $((30 + i))
	cp "$VD_WORK/in/f$i.txt" "$T/data/f$i.txt"
	id="$(readlink "$T/latest")"; id="${id#versions/}"
	vd_is_id "$id" || vd_fail "latest after cp f$i.txt is '$id'"
	IDS+=("$id")
	sleep 0.01 # distinct times, so that newest first is one order
done
for id in "${IDS[@]}"; do
	vd_wait_status "$T/versions/$id" done
done
vd_ok "three versions of wc3 (cp), each done"

# A derived version: task derived's data is wc3's first result.
D="$VD_MNT/tasks/derived"
mkdir "$D"
printf 'reduce = sum\n' >"$D/config"
cp "$VD_WORK/wc.sh" "$D/function"
cp "$T/versions/${IDS[0]}/result.csv" "$D/data/"
DID="$(readlink "$D/latest")"; DID="${DID#versions/}"
vd_is_id "$DID" || vd_fail "no version after cp of a result into derived/data"
vd_wait_status "$D/versions/$DID" done
vd_ok "derived: a version made of wc3's result ($DID), done"

# Escaping: a tree with a file named as markup, and a function that prints
# markup to stderr and fails, so that it is in the log.
E="$VD_MNT/tasks/esc"
EVIL='<img src=x onerror=window.vdxss=1>.txt'
mkdir "$E"
printf 'retries = 1\nsettle = 0.5\n' >"$E/config"
printf '#!/bin/sh\necho "<script>window.vdxss2=1</script>" >&2\necho "<img src=x onerror=window.vdxss3=1>" >&2\nexit 1\n' >"$E/function"
mkdir -p "$VD_WORK/in/evil/sub"
echo "markup in a name" >"$VD_WORK/in/evil/$EVIL"
echo "plain" >"$VD_WORK/in/evil/sub/plain.txt"
before="$(vd_versions "$E")"
cp -r "$VD_WORK/in/evil" "$E/data/"
EID="$(vd_wait_new_version "$E" "$before")"
vd_wait_status "$E/versions/$EID" failed
grep -qF '<script>window.vdxss2=1</script>' "$E/versions/$EID/log" || vd_fail "the function's stderr is not in the log"
[ -f "$E/versions/$EID/input/$EVIL" ] || vd_fail "the tree's input has no '$EVIL'"
vd_ok "esc: a tree holding '$EVIL', its run failed with markup on stderr in the log"

EVIL_TASK='<img src=x onerror=window.vdxss4=1>'
if mkdir "$VD_MNT/tasks/$EVIL_TASK" 2>"$VD_WORK/mkdir.err"; then
	vd_ok "a task named '$EVIL_TASK' (mkdir)"
else
	vd_note "the mount refuses a task named '$EVIL_TASK': $(cat "$VD_WORK/mkdir.err"); not checked"
	EVIL_TASK=""
fi

# The slow task for the live update: about 80 units of 16 KiB, 0.3 s each.
S="$VD_MNT/tasks/slow"
mkdir "$S"
printf 'reduce = sum\nunit_size = 16K\n' >"$S/config"
printf '#!/bin/sh\nsleep 0.3\nexec awk '"'"'{ n++ } END { print "lines," n+0 }'"'"'\n' >"$S/function"
vd_gen_text "$VD_WORK/in/slow.txt" 1300000 5

"$PY" - "$VD_WORK/fixtures.json" "$VD_WORK" "$DID" "${IDS[*]}" "$EID" "$EVIL" "$EVIL_TASK" <<'PY'
import json, sys
out, work, did, ids, eid, evil, evil_task = sys.argv[1:8]
json.dump({"wc_function": work + "/wc.sh", "upload_file": work + "/in/upload.txt",
           "slow_file": work + "/in/slow.txt", "wc3": ids.split(),
           "derived": {"task": "derived", "id": did, "parent": ids.split()[0]},
           "esc": {"task": "esc", "id": eid, "file": evil},
           "evil_task": evil_task or None}, open(out, "w"))
PY

SHOTS="${VD_ARTIFACTS:-$VD_BUILD/web-screenshots}"
mkdir -p "$SHOTS"
vd_note "screenshots into $SHOTS"
# The browser part, under a deadline of its own (within ctest's 900 s);
# web_test.py quits chromium and chromedriver in a finally, also on TERM.
rc=0
VDW_URL="$VD_URL" VDW_MNT="$VD_MNT" VDW_STATE="$VD_STATE" VDW_WORK="$VD_WORK" VDW_VDFS="$VDFS" \
	VDW_SHOTS="$SHOTS" VDW_TIMEOUT="${VD_WEB_TIMEOUT:-120}" VDW_FIX="$VD_WORK/fixtures.json" \
	timeout -k 30 "${VD_WEB_DEADLINE:-700}" "$PY" "$here/web_test.py" || rc=$?
kill_browsers
[ "$rc" = 0 ] || vd_fail "web_test.py failed (status $rc; its FAIL line and the browser console are above)"
vd_check_daemon

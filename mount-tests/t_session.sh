#!/usr/bin/env bash
# t_session: the dashboard's sign-in sessions and its defences, at the HTTP
# level with curl (t_web drives the same in a real browser):
#   - GET / without a session is a redirect to /signin; /signin and the
#     scripts are served to anyone, with a strict Content-Security-Policy
#     (no inline script), nosniff and no framing;
#   - POST /v1/session with a user's token gives an HttpOnly,
#     SameSite=Strict cookie and a CSRF token; a wrong token is 401, an
#     executor enrollment token 403; GET /v1/session says who;
#   - with the cookie, GETs work as with the token; a POST without the
#     X-VDFS-CSRF header, with a wrong one, or from a foreign Origin or
#     Sec-Fetch-Site is 403 and changes nothing; with it, it works;
#   - the cookie carries the user's role: a reader's cookie cannot create
#     a task (403), even with its CSRF token;
#   - revoking the user ends the session at its next request (401), and a
#     user added again under that name does not get it back; signing out
#     ends it too;
#   - a version's bytes are sent with a sandboxing CSP and nosniff, so a
#     data file that is HTML never runs as the dashboard;
#   - GET /v1/diff/A/B/lines answers what diff -u prints.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"
VDFS="$VD_BIN/vdfs"
vd_start_daemon
ADMIN="$(cat "$VD_STATE/token")"
J="$VD_WORK/jar"

for u in alice:submitter bob:reader; do
	"$VDFS" user add "${u%%:*}" --role "${u#*:}" --state "$VD_STATE" >"$VD_WORK/${u%%:*}.tok" 2>/dev/null ||
		vd_fail "vdfs user add ${u%%:*}"
done
ALICE="$(cat "$VD_WORK/alice.tok")"; BOB="$(cat "$VD_WORK/bob.tok")"

# req NAME CURL-ARGS...: the status; the body in $VD_WORK/NAME.body and the
# headers in $VD_WORK/NAME.head.
req() {
	local n="$1"
	shift
	curl -s -o "$VD_WORK/$n.body" -D "$VD_WORK/$n.head" -w '%{http_code}' "$@"
}
want() {   # WANT GOT WHAT
	[ "$2" = "$1" ] || vd_fail "$3: HTTP $2, not $1: $(cat "$VD_WORK/"*.body 2>/dev/null | tail -c 300)"
}
header() { # NAME FIELD: the field's value in NAME.head
	awk -v f="$2" 'BEGIN { f = tolower(f) ":" } tolower($1) == f { sub(/^[^:]*: */, ""); sub(/\r$/, ""); print }' \
		"$VD_WORK/$1.head"
}

# ---- pages ---------------------------------------------------------------
want 303 "$(req root "$VD_URL/")" "GET / without a session"
[ "$(header root Location)" = /signin ] || vd_fail "GET / redirects to '$(header root Location)', not /signin"
want 200 "$(req signin "$VD_URL/signin")" "GET /signin"
grep -qi '<html' "$VD_WORK/signin.body" || vd_fail "/signin is not a page"
csp="$(header signin Content-Security-Policy)"
case "$csp" in
*"script-src 'self'"*"frame-ancestors 'none'"*) ;;
*) vd_fail "/signin has no strict CSP: '$csp'" ;;
esac
case "$csp" in *unsafe-inline* | *unsafe-eval*) vd_fail "the CSP allows inline script: $csp" ;; esac
[ "$(header signin X-Content-Type-Options)" = nosniff ] || vd_fail "/signin without nosniff"
# Every script the sign-in page names is served, as JavaScript, with the CSP.
n=0
for src in $(grep -o 'src="/ui/[^"]*"' "$VD_WORK/signin.body" | sed 's/^src="//; s/"$//'); do
	want 200 "$(req asset "$VD_URL$src")" "GET $src"
	case "$(header asset Content-Type)" in text/javascript*) ;; *) vd_fail "$src is $(header asset Content-Type)" ;; esac
	[ -n "$(header asset Content-Security-Policy)" ] || vd_fail "$src without a CSP"
	n=$((n + 1))
done
[ "$n" -gt 0 ] || vd_fail "the sign-in page loads no script from /ui/"
# No inline script or style attributes in the page itself: the CSP would block them.
grep -Eqi '<script>|<script [^>]*>[^<]|<style|style=| on[a-z]+=' "$VD_WORK/signin.body" &&
	vd_fail "the sign-in page has inline script or style"
want 404 "$(req nope "$VD_URL/ui/nope.js")" "an unknown asset"
vd_ok "GET / redirects to /signin; pages and $n scripts are served with a strict CSP and nosniff"

# ---- signing in ----------------------------------------------------------
want 401 "$(req bad -X POST --data '{"token":"00"}' "$VD_URL/v1/session")" "a wrong token"
"$VDFS" token executor --state "$VD_STATE" >"$VD_WORK/enroll.tok" 2>/dev/null
want 403 "$(req enr -X POST --data "{\"token\":\"$(cat "$VD_WORK/enroll.tok")\"}" "$VD_URL/v1/session")" \
	"an enrollment token signs in"
want 400 "$(req junk -X POST --data 'not json' "$VD_URL/v1/session")" "a junk sign-in body"
want 200 "$(req in -c "$J.alice" -X POST --data "{\"token\":\"$ALICE\"}" "$VD_URL/v1/session")" "alice signs in"
cookie="$(header in Set-Cookie)"
for a in HttpOnly SameSite=Strict Path=/; do
	case "$cookie" in *"$a"*) ;; *) vd_fail "the session cookie lacks $a: $cookie" ;; esac
done
case "$cookie" in *"$ALICE"*) vd_fail "the cookie holds the token" ;; esac
CSRF="$(/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["name"]=="alice" and d["role"]=="submitter", d; print(d["csrf"])' "$VD_WORK/in.body")" ||
	vd_fail "the sign-in reply: $(cat "$VD_WORK/in.body")"
want 200 "$(req who -b "$J.alice" "$VD_URL/v1/session")" "GET /v1/session"
grep -q "\"csrf\":\"$CSRF\"" "$VD_WORK/who.body" || vd_fail "GET /v1/session: $(cat "$VD_WORK/who.body")"
want 303 "$(req noroot -H "Cookie: vdfs_session=0000" "$VD_URL/")" "GET / with a junk cookie"
want 200 "$(req page -b "$J.alice" "$VD_URL/")" "GET / with a session"
grep -qi '<html' "$VD_WORK/page.body" || vd_fail "GET / with a session is not the page"
vd_ok "a user's token signs in: HttpOnly, SameSite=Strict cookie without the token; wrong 401, enrollment 403"

# ---- CSRF ----------------------------------------------------------------
want 200 "$(req list -b "$J.alice" "$VD_URL/v1/tasks")" "GET /v1/tasks with the cookie"
want 403 "$(req c1 -b "$J.alice" -X POST --data '{"name":"t1"}' "$VD_URL/v1/tasks")" "a POST without X-VDFS-CSRF"
grep -q 'cross-site' "$VD_WORK/c1.body" || vd_fail "the 403 does not say why: $(cat "$VD_WORK/c1.body")"
# Change the token's last digit to a different one: appending a fixed "0"
# left it unchanged whenever it already ended in 0 (1 run in 16).
case "$CSRF" in *0) WRONG="${CSRF%?}1" ;; *) WRONG="${CSRF%?}0" ;; esac
want 403 "$(req c2 -b "$J.alice" -H "X-VDFS-CSRF: $WRONG" -X POST --data '{"name":"t1"}' "$VD_URL/v1/tasks")" \
	"a POST with a wrong X-VDFS-CSRF"
want 403 "$(req c3 -b "$J.alice" -H "X-VDFS-CSRF: $CSRF" -H 'Origin: http://evil.example' -X POST \
	--data '{"name":"t1"}' "$VD_URL/v1/tasks")" "a POST from a foreign Origin"
want 403 "$(req c4 -b "$J.alice" -H "X-VDFS-CSRF: $CSRF" -H 'Sec-Fetch-Site: cross-site' -X POST \
	--data '{"name":"t1"}' "$VD_URL/v1/tasks")" "a POST with Sec-Fetch-Site: cross-site"
[ -e "$VD_MNT/tasks/t1" ] && vd_fail "a refused POST made the task"
want 200 "$(req c5 -b "$J.alice" -H "X-VDFS-CSRF: $CSRF" -H "Origin: $VD_URL" -X POST \
	--data '{"name":"t1"}' "$VD_URL/v1/tasks")" "a POST with the CSRF token"
[ -d "$VD_MNT/tasks/t1" ] || vd_fail "the accepted POST made no task"
grep -q '"owner":"alice"' "$VD_WORK/c5.body" || vd_fail "the task is not alice's: $(cat "$VD_WORK/c5.body")"
# A bearer token needs no CSRF token: browsers never add one by themselves.
want 200 "$(req c6 -H "Authorization: Bearer $ALICE" -X POST --data '{"name":"t2"}' "$VD_URL/v1/tasks")" \
	"a POST with the bearer token"
vd_ok "with the cookie a POST needs X-VDFS-CSRF and no foreign Origin (403 and nothing done otherwise)"

# ---- roles ---------------------------------------------------------------
want 200 "$(req bin -c "$J.bob" -X POST --data "{\"token\":\"$BOB\"}" "$VD_URL/v1/session")" "bob signs in"
BCSRF="$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["csrf"])' "$VD_WORK/bin.body")"
want 403 "$(req b1 -b "$J.bob" -H "X-VDFS-CSRF: $BCSRF" -X POST --data '{"name":"t3"}' "$VD_URL/v1/tasks")" \
	"a reader's session creates a task"
grep -q 'reader' "$VD_WORK/b1.body" || vd_fail "the 403 does not name the role: $(cat "$VD_WORK/b1.body")"
want 200 "$(req b2 -b "$J.bob" "$VD_URL/v1/status")" "a reader's session reads status"
want 403 "$(req b3 -b "$J.bob" "$VD_URL/metrics")" "a reader's session reads metrics"
vd_ok "a session has its user's role: a reader's cannot create a task, even with its CSRF token"

# ---- the end of a session --------------------------------------------------
"$VDFS" user revoke bob --state "$VD_STATE" >/dev/null 2>&1 || vd_fail "vdfs user revoke bob"
want 401 "$(req r1 -b "$J.bob" "$VD_URL/v1/tasks")" "a revoked user's session"
"$VDFS" user add bob --role operator --state "$VD_STATE" >/dev/null 2>&1 || vd_fail "adding bob again"
want 401 "$(req r2 -b "$J.bob" "$VD_URL/v1/tasks")" "the old session after bob was added again"
want 200 "$(req out -b "$J.alice" -c "$J.alice" -H "X-VDFS-CSRF: $CSRF" -X DELETE "$VD_URL/v1/session")" "signing out"
case "$(header out Set-Cookie)" in *Max-Age=0*) ;; *) vd_fail "sign-out does not clear the cookie: $(header out Set-Cookie)" ;; esac
sid="$(awk '$6 == "vdfs_session" { print $7 }' "$J.alice" 2>/dev/null || true)"
want 401 "$(req r3 -H "Cookie: vdfs_session=${sid:-$(grep -o 'vdfs_session=[0-9a-f]*' "$VD_WORK/in.head" | cut -d= -f2)}" \
	"$VD_URL/v1/tasks")" "the session after signing out"
vd_ok "revoking the user ends its session (401), adding it again does not revive it; signing out ends it"

# ---- a user's bytes --------------------------------------------------------
mkdir "$VD_MNT/tasks/h"
printf '<script>alert(1)</script>\n' >"$VD_WORK/page.html"
cp "$VD_WORK/page.html" "$VD_MNT/tasks/h/data/"
id="$(vd_wait_new_version "$VD_MNT/tasks/h" "" 60)"
vd_is_id "$id" || vd_fail "no version for page.html: '$id'"
want 200 "$(req dl -H "Authorization: Bearer $ADMIN" "$VD_URL/v1/tasks/h/versions/$id/input")" "downloading page.html"
case "$(header dl Content-Security-Policy)" in *sandbox*) ;; *) vd_fail "a download without a sandboxing CSP" ;; esac
[ "$(header dl X-Content-Type-Options)" = nosniff ] || vd_fail "a download without nosniff"
cmp -s "$VD_WORK/dl.body" "$VD_WORK/page.html" || vd_fail "the download differs from page.html"
vd_ok "a version's bytes come with a sandboxing CSP and nosniff"

# ---- the dashboard's line diff ---------------------------------------------
printf 'one\ntwo\nthree\n' >"$VD_WORK/a.txt"
printf 'one\n2\nthree\nfour\n' >"$VD_WORK/b.txt"
before="$(vd_versions "$VD_MNT/tasks/h")"
cp "$VD_WORK/a.txt" "$VD_MNT/tasks/h/data/a.txt"
ida="$(vd_wait_new_version "$VD_MNT/tasks/h" "$before" 60)"
before="$(vd_versions "$VD_MNT/tasks/h")"
cp "$VD_WORK/b.txt" "$VD_MNT/tasks/h/data/b.txt"
idb="$(vd_wait_new_version "$VD_MNT/tasks/h" "$before" 60)"
want 200 "$(req dif -H "Authorization: Bearer $ALICE" "$VD_URL/v1/diff/$ida/$idb/lines")" "GET /v1/diff/A/B/lines"
case "$(header dif Content-Type)" in text/x-diff*) ;; *) vd_fail "the diff is $(header dif Content-Type)" ;; esac
diff -u "$VD_WORK/a.txt" "$VD_WORK/b.txt" | tail -n +3 >"$VD_WORK/want.diff" || true
tail -n +3 "$VD_WORK/dif.body" | cmp -s - "$VD_WORK/want.diff" ||
	vd_fail "the line diff differs from diff -u: $(cat "$VD_WORK/dif.body")"
want 404 "$(req dif2 -H "Authorization: Bearer $ALICE" "$VD_URL/v1/diff/$ida/$idb/lines?result=1")" \
	"a line diff of results that do not exist"
vd_ok "GET /v1/diff/A/B/lines is diff -u of the two versions (any user may ask)"

#!/usr/bin/env bash
# t_http_bad: the executor API refuses bad requests with the right status
# and a JSON error, and keeps serving: each refusal is followed by a good
# request that succeeds. Covers no or a wrong token (401), unknown IDs and
# leases (404), malformed and ill-typed bodies (400), a wrong method (405),
# a body over the cap (413), and a result body that lies about its size.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"
command -v curl >/dev/null || vd_fail "curl is not installed (tools/setup.sh installs it)"

vd_start_daemon
URL="$(cat "$VD_STATE/url")"
TOKEN="$(cat "$VD_STATE/token")"
OUT="$VD_WORK/body"

# req EXPECTED_STATUS METHOD PATH [curl args...]: one request; the status
# must match, and an error status must come with a JSON {"error": "..."}.
req() {
	local want="$1" method="$2" path="$3" got
	shift 3
	got="$(curl -s -o "$OUT" -w '%{http_code}' -X "$method" "$@" "$URL$path")" ||
		vd_fail "curl $method $path failed to connect"
	[ "$got" = "$want" ] || vd_fail "$method $path: status $got, wanted $want: $(head -c 300 "$OUT")"
	if [ "$want" -ge 400 ]; then
		grep -q '"error"' "$OUT" || vd_fail "$method $path: $got without a JSON error: $(head -c 300 "$OUT")"
	fi
}
auth=(-H "Authorization: Bearer $TOKEN")
good() { req 200 GET /v1/status "${auth[@]}"; }

req 401 GET /v1/status
good
req 401 GET /v1/status -H "Authorization: Bearer not-the-token"
good
req 401 GET /metrics
req 200 GET /metrics "${auth[@]}"
vd_ok "no or wrong token: 401, then a good request succeeds"

req 404 GET /v1/chunks/0123456789abcdef0123456789abcdef "${auth[@]}"
good
req 404 GET /v1/code/0123456789abcdef0123456789abcdef "${auth[@]}"
good
req 400 GET /v1/chunks/not-an-id "${auth[@]}"
good
req 404 GET /v1/nothing-here "${auth[@]}"
good
req 405 DELETE /v1/status "${auth[@]}"
good
vd_ok "unknown chunk and code IDs 404, a bad ID 400, an unknown path 404, a wrong method 405"

req 400 POST /v1/executors "${auth[@]}" --data-binary '{"name": "x", "level": '
good
req 400 POST /v1/executors "${auth[@]}" --data-binary '[1, 2, 3]'
good
req 400 POST /v1/executors "${auth[@]}" --data-binary '{"name": "bad name!", "level": 1}'
good
req 400 POST /v1/executors "${auth[@]}" --data-binary '{"name": "ok", "level": 9}'
good
head -c 4096 /dev/urandom >"$VD_WORK/junk"
req 400 POST /v1/leases "${auth[@]}" --data-binary @"$VD_WORK/junk"
good
vd_ok "malformed JSON, a non-object, a bad name, a level out of range, binary junk: 400"

head -c $((2 * 1024 * 1024)) /dev/zero | tr '\0' ' ' >"$VD_WORK/big"
req 413 POST /v1/executors "${auth[@]}" --data-binary @"$VD_WORK/big"
good
vd_ok "a JSON body over 1 MiB: 413"

req 200 POST /v1/executors "${auth[@]}" --data-binary '{"name": "probe", "level": 1, "slots": 1}'
grep -q '"hash_key"' "$OUT" || vd_fail "register reply has no hash_key: $(cat "$OUT")"
req 404 PUT /v1/results/0123456789abcdef0123456789abcdef "${auth[@]}" \
	--data-binary $'{"exit": 0, "out_bytes": 2}\nok'
good
req 400 PUT /v1/results/0123456789abcdef0123456789abcdef "${auth[@]}" \
	--data-binary $'{"exit": 0, "out_bytes": 99}\nshort'
good
req 404 POST /v1/leases/0123456789abcdef0123456789abcdef/heartbeat "${auth[@]}"
good
vd_ok "results and heartbeats for unknown leases 404, a result shorter than it says 400"

# After all that, real work still flows.
mkdir "$VD_MNT/tasks/echo"
printf '#!/bin/sh\ncat\n' >"$VD_MNT/tasks/echo/function"
seq 1 1000 >"$VD_WORK/in.txt"
cp "$VD_WORK/in.txt" "$VD_MNT/tasks/echo/data/in.txt"
vd_start_executor e1
vd_wait_status "$VD_MNT/tasks/echo/latest" done
vd_same "$VD_MNT/tasks/echo/latest/result.csv" "$VD_WORK/in.txt" "the daemon still runs work after every bad request"

#!/usr/bin/env bash
# t_http_bad: the executor API refuses bad requests with the right status
# and a JSON error, and keeps serving: each refusal is followed by a good
# request that succeeds. Covers no or a wrong token (401), unknown IDs and
# leases (404), malformed and ill-typed bodies (400), a wrong method (405),
# a body over the cap (413), and a result body that lies about its size;
# executors' own tokens: a result for a lease another executor holds (403),
# a late duplicate (409), the wrong kind of token for a route (403), and a
# revoked token (401).
#
# Malformed HTTP (issue 20, defects 3 and 4), sent raw: a garbage request
# line, binary bytes, a TLS hello on the plain port, a request line that
# goes wrong before it ends, a head cut short, an HTTP/2 request line,
# header fields and a request line too long, a field without a colon, a
# malformed or absurd Content-Length, and chunked bodies declaring huge
# chunks: each is answered at once (the client keeps its side open) with
# the fitting status (400, 505, 431, 414, 413, 411) and a JSON error, and
# the connection is closed. Only a request with a valid token keeps its
# connection open.
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
req 400 POST /v1/executors "${auth[@]}" --data-binary @"$VD_WORK/junk"
good
vd_ok "malformed JSON, a non-object, a bad name, a level out of range, binary junk: 400"

head -c $((2 * 1024 * 1024)) /dev/zero | tr '\0' ' ' >"$VD_WORK/big"
req 413 POST /v1/executors "${auth[@]}" --data-binary @"$VD_WORK/big"
good
vd_ok "a JSON body over 1 MiB: 413"

# raw WANT WHAT BYTES [shut]: send BYTES (a Python expression giving bytes)
# on a new connection. Within 2 s, with the client's side still open
# (unless `shut`: then the client shuts it after sending), the daemon must
# answer WANT with a JSON error and close the connection.
PY=/usr/bin/python3
[ -x "$PY" ] || vd_fail "$PY is missing (apt-get install python3)"
PORT="${URL##*:}"
cat >"$VD_WORK/raw.py" <<'PYEOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(2)
try:
    s.sendall(eval(sys.argv[2], {"__builtins__": {"bytes": bytes, "range": range}}))
    if sys.argv[3] == "shut":
        s.shutdown(socket.SHUT_WR)
except OSError:
    pass            # the daemon may close before taking it all
out, end = b"", "open after 2 s"
try:
    while True:
        b = s.recv(65536)
        if not b:
            end = "closed"
            break
        out += b
except socket.timeout:
    pass
except OSError as e:
    end = "closed (%s)" % e.strerror
head, _, body = out.partition(b"\r\n\r\n")
status = head.split(b" ")[1].decode() if head.startswith(b"HTTP/1.1 ") else "none"
json = b"content-type: application/json" in head.lower() and body.startswith(b'{"error":')
print(status, "json" if json else "not-json", end, "|", out[:200].decode("latin-1"))
PYEOF
raw() {
	local want="$1" what="$2" got
	got="$("$PY" "$VD_WORK/raw.py" "$PORT" "$3" "${4:-}")" ||
		vd_fail "$what: the raw client failed: $got"
	case "$got" in
	"$want json closed"*) ;;
	*) vd_fail "$what: wanted $want with a JSON error and the connection closed, got: $got" ;;
	esac
	good
}
raw 400 "a garbage request line" "b'GARBAGE\r\n\r\n'"
raw 400 "binary bytes" "bytes(range(1, 255))"
raw 400 "a TLS hello on the plain port" "b'\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03'"
raw 400 "a request line that goes wrong before it ends" "b'GET /v1/status HTTP/1.1 and more'"
raw 400 "a head cut short by the client" "b'GET /v1/status HTTP/1.1\r\nHost: x\r\n'" shut
raw 505 "an HTTP/2 request line" "b'GET /v1/status HTTP/2.0\r\nHost: x\r\n\r\n'"
vd_ok "garbage, binary, a TLS hello, a broken request line, a head cut short: 400 at once; HTTP/2: 505; all JSON, all closed"

raw 431 "a 100 KB header field" "b'GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Big: ' + b'a' * 100000 + b'\r\n\r\n'"
raw 414 "a 100 KB request line" "b'GET /' + b'a' * 100000 + b' HTTP/1.1\r\nHost: x\r\n\r\n'"
raw 431 "200 header fields" "b'GET /v1/status HTTP/1.1\r\n' + b'X-A: b\r\n' * 200 + b'\r\n'"
raw 400 "a header field without a colon" "b'GET /v1/status HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n'"
raw 400 "a malformed Content-Length" "b'POST /v1/executors HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n'"
raw 413 "a 25-digit Content-Length" "b'POST /v1/executors HTTP/1.1\r\nHost: x\r\nContent-Length: 9999999999999999999999999\r\n\r\n'"
# curl's own over-long header, as the fault probe sent it.
req 431 GET /v1/status "${auth[@]}" -H "X-Big: $(head -c 40000 /dev/zero | tr '\0' a)"
good
vd_ok "header fields or a request line too long: 431 and 414; a field without a colon, a bad Content-Length: 400; an absurd one: 413; all JSON, all closed"

raw 411 "a chunked body declaring a huge chunk" "b'POST /v1/executors HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $TOKEN\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFF\r\nabc'"
raw 411 "a chunked result upload" "b'PUT /v1/results/0123456789abcdef0123456789abcdef HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $TOKEN\r\nTransfer-Encoding: chunked\r\n\r\n7FFFFFFF\r\n'"
req 411 POST /v1/executors "${auth[@]}" -H "Transfer-Encoding: chunked" --data-binary '{"name": "x", "level": 1}'
good
vd_ok "a chunked body, whatever chunk it declares: 411 at once (the body must say its length), JSON, closed"

# Two requests in one curl: a connection survives an answer only if the
# request presented a valid token.
n="$(curl -s -o /dev/null -o /dev/null -w '%{num_connects} ' "$URL/v1/status" "$URL/v1/status")"
[ "$n" = "1 1 " ] || vd_fail "after a 401 the connection must close: connects per request '$n', wanted '1 1 '"
n="$(curl -s -o /dev/null -o /dev/null -w '%{num_connects} ' "${auth[@]}" "$URL/v1/status" "$URL/v1/status")"
[ "$n" = "1 0 " ] || vd_fail "a token holder's connection must stay open: connects per request '$n', wanted '1 0 '"
vd_ok "a 401 closes the connection; a request with a valid token keeps it open"

# register NAME: an executor's own token, from the registration reply.
register() {
	req 200 POST /v1/executors "${auth[@]}" --data-binary "{\"name\": \"$1\", \"level\": 1, \"slots\": 1}"
	grep -q '"hash_key"' "$OUT" || vd_fail "register reply has no hash_key: $(cat "$OUT")"
	sed -n 's/.*"token":"\([0-9a-f]*\)".*/\1/p' "$OUT"
}
PROBE="$(register probe)"
OTHER="$(register other)"
[ -n "$PROBE" ] && [ -n "$OTHER" ] && [ "$PROBE" != "$OTHER" ] ||
	vd_fail "registration gave no executor token, or the same one twice"
[ "$PROBE" != "$TOKEN" ] || vd_fail "the executor token is the enrollment token"
grep -q "$PROBE" "$VD_STATE"/catalog/* 2>/dev/null && vd_fail "the catalog holds an executor token in the clear"
pa=(-H "Authorization: Bearer $PROBE")
oa=(-H "Authorization: Bearer $OTHER")
vd_ok "registration exchanges the enrollment token for an executor's own token (only its hash is stored)"

req 404 PUT /v1/results/0123456789abcdef0123456789abcdef "${pa[@]}" \
	--data-binary $'{"exit": 0, "out_bytes": 2}\nok'
good
req 400 PUT /v1/results/0123456789abcdef0123456789abcdef "${pa[@]}" \
	--data-binary $'{"exit": 0, "out_bytes": 99}\nshort'
good
req 404 POST /v1/leases/0123456789abcdef0123456789abcdef/heartbeat "${pa[@]}"
good
req 400 POST /v1/leases "${pa[@]}" --data-binary @"$VD_WORK/junk"
good
vd_ok "results and heartbeats for unknown leases 404, a result shorter than it says 400"

# POST /v1/results, several in one body: a body that cannot be cut into
# results is 400 as a whole; one that can is answered per result.
L0=0123456789abcdef0123456789abcdef
req 400 POST /v1/results "${pa[@]}" --data-binary ''
good
req 400 POST /v1/results "${pa[@]}" --data-binary $'{"lease": "'$L0$'", "exit": 0, "out_bytes": 2}\nok{"lease": "'$L0$'", "exit": 0, "out_bytes": 50}\nshort'
good
req 400 POST /v1/results "${pa[@]}" --data-binary $'not json\nok'
good
req 400 POST /v1/results "${pa[@]}" --data-binary $'{"lease": "'$L0$'", "exit": 0, "out_bytes": -1}\n'
good
req 400 POST /v1/results "${pa[@]}" --data-binary '{"lease": "no newline"'
good
# 4097 empty results: one over the count a request may carry.
for ((i = 0; i < 4097; i++)); do
	printf '{"lease": "%s", "exit": 0, "out_bytes": 0}\n' "$L0"
done >"$VD_WORK/many.results"
req 400 POST /v1/results "${pa[@]}" --data-binary @"$VD_WORK/many.results"
good
req 403 POST /v1/results "${auth[@]}" --data-binary $'{"lease": "'$L0$'", "exit": 0, "out_bytes": 2}\nok'
good
req 200 POST /v1/results "${pa[@]}" --data-binary $'{"lease": "'$L0$'", "exit": 0, "out_bytes": 2}\nok{"lease": "bad", "exit": 0, "out_bytes": 0}\n{"lease": "'$L0$'", "exit": "x", "out_bytes": 0}\n'
$PY - "$OUT" <<'PY' || vd_fail "POST /v1/results: not one answer per result: $(cat "$OUT")"
import json, sys
r = json.load(open(sys.argv[1]))["results"]
assert [x["status"] for x in r] == [404, 404, 400], r
assert r[0]["lease"] == "0123456789abcdef0123456789abcdef", r
assert all(x.get("error") for x in r), r
PY
good
vd_ok "POST /v1/results: empty, cut short, not JSON, a negative length, no newline, 4097 results: 400; the enrollment token 403; unknown leases and bad metadata answered per result"

req 403 POST /v1/leases "${auth[@]}" --data-binary '{"max": 1, "wait_ms": 0}'
good
req 403 GET /v1/status "${pa[@]}"
good
req 403 POST /v1/executors "${pa[@]}" --data-binary '{"name": "x", "level": 1}'
good
req 403 POST /v1/leases "${pa[@]}" --data-binary '{"executor": "other", "max": 1, "wait_ms": 0}'
good
vd_ok "the enrollment token cannot lease, an executor token cannot read status, register or lease for another: 403"

# A real lease: one unit of `cat`, leased by probe.
mkdir "$VD_MNT/tasks/cat1"
printf '#!/bin/sh\ncat\n' >"$VD_MNT/tasks/cat1/function"
seq 1 100 >"$VD_WORK/one.txt"
cp "$VD_WORK/one.txt" "$VD_MNT/tasks/cat1/data/one.txt"
req 200 POST /v1/leases "${pa[@]}" --data-binary '{"max": 1, "wait_ms": 10000}'
LEASE="$(sed -n 's/.*"lease":"\([0-9a-f]*\)".*/\1/p' "$OUT")"
vd_is_id "$LEASE" || vd_fail "no lease in $(head -c 300 "$OUT")"
n=$(stat -c %s "$VD_WORK/one.txt")
printf '{"exit": 0, "out_bytes": %d}\n' "$n" | cat - "$VD_WORK/one.txt" >"$VD_WORK/result"
req 403 POST "/v1/leases/$LEASE/heartbeat" "${oa[@]}"
good
req 403 PUT "/v1/results/$LEASE" "${oa[@]}" --data-binary @"$VD_WORK/result"
good
req 200 POST "/v1/leases/$LEASE/heartbeat" "${pa[@]}"
req 200 PUT "/v1/results/$LEASE" "${pa[@]}" --data-binary @"$VD_WORK/result"
req 409 PUT "/v1/results/$LEASE" "${pa[@]}" --data-binary @"$VD_WORK/result"
good
req 409 POST "/v1/leases/$LEASE/heartbeat" "${pa[@]}"
good
vd_wait_status "$VD_MNT/tasks/cat1/latest" done
vd_same "$VD_MNT/tasks/cat1/latest/result.csv" "$VD_WORK/one.txt" "the result posted by hand is the run's result"
vd_ok "a heartbeat or result for another executor's lease 403, a duplicate result 409, a heartbeat after it 409"

req 403 DELETE /v1/executors/probe "${oa[@]}"
good
req 404 DELETE /v1/executors/nobody "${auth[@]}"
good
req 200 DELETE /v1/executors/probe "${auth[@]}"
req 401 POST /v1/leases "${pa[@]}" --data-binary '{"max": 1, "wait_ms": 0}'
good
req 204 POST /v1/leases "${oa[@]}" --data-binary '{"max": 1, "wait_ms": 0}'
grep -q '^state: revoked' "$VD_MNT/executors/probe" || vd_fail "executors/probe does not say revoked: $(cat "$VD_MNT/executors/probe")"
vd_ok "a revoked executor's token is refused (401), the others still work; executors/probe says revoked"

# After all that, real work still flows.
mkdir "$VD_MNT/tasks/echo"
printf '#!/bin/sh\ncat\n' >"$VD_MNT/tasks/echo/function"
seq 1 1000 >"$VD_WORK/in.txt"
cp "$VD_WORK/in.txt" "$VD_MNT/tasks/echo/data/in.txt"
vd_start_executor e1
vd_wait_status "$VD_MNT/tasks/echo/latest" done
vd_same "$VD_MNT/tasks/echo/latest/result.csv" "$VD_WORK/in.txt" "the daemon still runs work after every bad request"

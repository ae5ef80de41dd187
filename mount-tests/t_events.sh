#!/usr/bin/env bash
# t_events: GET /v1/events, the live event stream, read with curl -N.
#   - a stream open while a task is made and a run of a dozen units goes:
#     200 text/event-stream, Cache-Control: no-cache, X-Accel-Buffering: no;
#     hello first; every data: line is JSON with exactly the fields of its
#     kind; ids go up; the task's created/config/function, the executor
#     registered, one version sealed with the data ID the mount shows, the
#     run queued, running and done, and unit events whose done grows to
#     the run's units (meta.json);
#   - Last-Event-ID: N (and ?since=N) gets only the events after N; an ID
#     ahead of the daemon's (one from before a restart) gets reset; a
#     malformed one 400; a reader's token may listen, no token 401;
#   - 64 streams at once: the 65th is 503 with Retry-After and a JSON
#     error; once a client hangs up, its place is free again;
#   - a quiet stream gets ": ping" within 15 s or so;
#   - vdfsd exits cleanly on SIGTERM with a stream open, and the stream ends.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"
VDFS="$VD_BIN/vdfs"
PY=/usr/bin/python3
# Small chunks and units: a dozen units from a small file.
vd_start_daemon --chunk-size 16384
TOK="$(cat "$VD_STATE/token")"
auth=(-H "Authorization: Bearer $TOK")
E="$VD_URL/v1/events"
# A first request with a valid token: the address is known from now on,
# so the 64 streams below are not a stranger's, whom the door allows 16.
curl -sf "${auth[@]}" -o /dev/null "$VD_URL/v1/tasks" || vd_fail "GET /v1/tasks failed"
st=$(curl -s -o "$VD_WORK/body" -w '%{http_code}' "$E")
[ "$st" = 401 ] || vd_fail "GET /v1/events without a token: $st, not 401"

STREAMS=()
# stream FILE [CURL ARGS...]: curl -N on /v1/events into FILE, in the
# background; its pid is appended to STREAMS.
stream() {
	local out="$1"
	shift
	curl -sN "${auth[@]}" "$@" -o "$out" "$E" 2>/dev/null &
	STREAMS+=($!)
}
# wait_for FILE PATTERN WHAT: poll FILE until grep -E finds PATTERN.
wait_for() {
	local i
	for ((i = 0; i < VD_TIMEOUT * 10; i++)); do
		grep -Eq -- "$2" "$1" 2>/dev/null && return 0
		vd_check_daemon
		sleep 0.1
	done
	vd_fail "no $3 in $1 within ${VD_TIMEOUT}s: $(tail -c 600 "$1" 2>/dev/null)"
}
stop_streams() {
	local pid
	for pid in "${STREAMS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${STREAMS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	STREAMS=()
}
vd_at_exit stop_streams

# check FILE: every message well-formed (python prints the event kinds
# it saw and fails on anything off).
check_stream() {
	$PY - "$1" <<'PY'
import json, sys
FIELDS = {
    "hello": {"seq"}, "reset": {"seq"},
    "unit": {"seq", "time", "task", "data_id", "code_id", "done", "units"},
    "run": {"seq", "time", "task", "data_id", "code_id", "state"},
    "version": {"seq", "time", "task", "data_id", "name", "what"},
    "task": {"seq", "time", "task", "what"},
    "executor": {"seq", "time", "name", "what"},
}
text = open(sys.argv[1], encoding="utf-8").read()
msgs = [m for m in text.split("\n\n") if m]
if not text.endswith("\n\n") and msgs:
    msgs.pop()   # cut off by the kill
assert msgs, "no messages"
last = None
for i, m in enumerate(msgs):
    lines = m.split("\n")
    if lines == [": ping"]:
        continue
    assert len(lines) == 3, m
    assert lines[0].startswith("id: ") and lines[1].startswith("event: ") and \
        lines[2].startswith("data: "), m
    ident, kind = int(lines[0][4:]), lines[1][7:]
    data = json.loads(lines[2][6:])
    assert kind in FIELDS, kind
    assert set(data) == FIELDS[kind], (kind, sorted(data))
    if i == 0:
        assert kind == "hello", m
    else:
        assert kind != "hello", m
    if kind not in ("hello", "reset"):
        assert data["seq"] == ident, m
        assert last is None or ident > last, (last, m)
    last = ident
print(" ".join(m.split("\n")[1][7:] for m in msgs if not m.startswith(":")))
PY
}

# ---- one run, watched from its start ------------------------------------
stream "$VD_WORK/s1" -D "$VD_WORK/h1"
wait_for "$VD_WORK/s1" '^event: hello' "hello"
grep -q '^HTTP/1.1 200' "$VD_WORK/h1" || vd_fail "status: $(head -n 1 "$VD_WORK/h1")"
grep -qi '^content-type: text/event-stream' "$VD_WORK/h1" || vd_fail "Content-Type: $(grep -i content-type "$VD_WORK/h1")"
grep -qi '^cache-control: no-cache' "$VD_WORK/h1" || vd_fail "no Cache-Control: no-cache"
grep -qi '^x-accel-buffering: no' "$VD_WORK/h1" || vd_fail "no X-Accel-Buffering: no"
vd_ok "200 text/event-stream, no-cache, X-Accel-Buffering: no; hello first"

T="$VD_MNT/tasks/wc"
mkdir "$T"
printf 'reduce = sum\nunit_size = 16K\n' >"$T/config"
vd_write_wc_function "$T/function"
vd_start_executor e1 --slots 2
vd_gen_text "$VD_WORK/in/a.txt" 200000 5
cp "$VD_WORK/in/a.txt" "$T/data/a.txt"
ID="$(readlink "$T/latest")"; ID="${ID#versions/}"
vd_is_id "$ID" || vd_fail "latest after cp is '$ID'"
vd_wait_status "$T/versions/$ID" done
UNITS="$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["units"])' "$T/versions/$ID/meta.json")"
[ "$UNITS" -gt 3 ] || vd_fail "the run has $UNITS units; the test wants several"
wait_for "$VD_WORK/s1" '"state":"done"' "run done event"
stop_streams
kinds="$(check_stream "$VD_WORK/s1")" || vd_fail "a malformed message in the stream"
vd_note "kinds: $(echo "$kinds" | tr ' ' '\n' | sort | uniq -c | tr -s ' \n' ' ')"
$PY - "$VD_WORK/s1" "$ID" "$UNITS" <<'PY' || vd_fail "the run's events are not as they should be"
import json, sys
path, want_id, units = sys.argv[1], sys.argv[2], int(sys.argv[3])
ev = []
for m in open(path, encoding="utf-8").read().split("\n\n"):
    lines = m.split("\n")
    if len(lines) == 3 and lines[1].startswith("event: "):
        ev.append((lines[1][7:], json.loads(lines[2][6:])))
def of(kind, **kw):
    return [d for k, d in ev if k == kind and all(d[x] == y for x, y in kw.items())]
for what in ("created", "config", "function"):
    assert len(of("task", task="wc", what=what)) >= 1, ("task", what)
assert of("executor", name="e1", what="registered"), "executor registered"
sealed = of("version", what="sealed")
assert len(sealed) == 1, sealed
assert sealed[0]["data_id"] == want_id and sealed[0]["task"] == "wc" and \
    sealed[0]["name"] == "a.txt", sealed
runs = [d["state"] for d in of("run", task="wc", data_id=want_id)]
assert runs == ["queued", "running", "done"], runs
code = of("run", state="done")[0]["code_id"]
u = of("unit", task="wc", data_id=want_id, code_id=code)
assert u, "no unit events"
done = [d["done"] for d in u]
assert all(d["units"] == units for d in u), (units, u[:3])
assert done == sorted(done) and len(set(done)) == len(done), done
assert done[-1] == units, (done, units)
seqs = [d["seq"] for d in u]
assert min(seqs) > sealed[0]["seq"] and max(seqs) < of("run", state="done")[0]["seq"]
print(f"{len(u)} unit messages for {units} units: done {done}")
PY
vd_ok "a run watched: task created/config/function, e1 registered, a.txt sealed as $ID, run queued/running/done, unit done up to $UNITS"

# ---- resuming ------------------------------------------------------------
N="$(grep -A1 '^event: version' "$VD_WORK/s1" | sed -n 's/^data: {"seq":\([0-9]*\),.*/\1/p' | head -n 1)"
[ -n "$N" ] || vd_fail "no seq of the version event"
for how in header since; do
	out="$VD_WORK/resume-$how"
	if [ $how = header ]; then
		curl -sN --max-time 2 "${auth[@]}" -H "Last-Event-ID: $N" -o "$out" "$E" || true
	else
		curl -sN --max-time 2 "${auth[@]}" -o "$out" "$E?since=$N" || true
	fi
	check_stream "$out" >/dev/null || vd_fail "$how: a malformed message"
	$PY - "$out" "$N" <<'PY' || vd_fail "resuming after $N ($how) did not get exactly the events after it"
import sys
path, n = sys.argv[1], int(sys.argv[2])
ids = []
for m in open(path, encoding="utf-8").read().split("\n\n"):
    lines = m.split("\n")
    if len(lines) == 3 and lines[0].startswith("id: "):
        ids.append((lines[1][7:], int(lines[0][4:])))
assert ids[0] == ("hello", n), ids[0]
rest = [i for k, i in ids[1:]]
assert rest and min(rest) == n + 1, rest[:5]
assert all(k not in ("hello", "reset") for k, i in ids[1:]), ids
assert "version" not in [k for k, i in ids[1:] if i <= n]
PY
done
vd_ok "Last-Event-ID: $N and ?since=$N resume with the events after $N"

curl -sN --max-time 2 "${auth[@]}" -H "Last-Event-ID: 999999" -o "$VD_WORK/reset" "$E" || true
check_stream "$VD_WORK/reset" >/dev/null || vd_fail "reset: a malformed message"
kinds="$(check_stream "$VD_WORK/reset")"
[ "${kinds%% *}" = hello ] && [ "$(echo "$kinds" | cut -d' ' -f2)" = reset ] ||
	vd_fail "an ID ahead of the daemon's did not get hello then reset: $kinds"
st=$(curl -s --max-time 2 "${auth[@]}" -H "Last-Event-ID: 12x" -o "$VD_WORK/body" -w '%{http_code}' "$E" || true)
[ "$st" = 400 ] || vd_fail "a malformed Last-Event-ID: $st, not 400"
"$VDFS" user add rita --role reader --state "$VD_STATE" >"$VD_WORK/rita.tok" 2>/dev/null
curl -sN --max-time 1 -H "Authorization: Bearer $(cat "$VD_WORK/rita.tok")" -o "$VD_WORK/reader" "$E" || true
grep -q '^event: hello' "$VD_WORK/reader" || vd_fail "a reader's stream has no hello"
vd_ok "an ID ahead of the daemon's gets reset; a malformed one 400; a reader may listen"

# ---- at most 64 streams --------------------------------------------------
# The short streams above hung up, but the daemon frees a place only when
# its reader next looks (within a slice, longer under ASan): wait for the
# gauge to say none are open, or the 64 below would find some still taken.
open_streams() {
	curl -sf "${auth[@]}" "$VD_URL/metrics" | sed -n 's/^vdfs_event_streams //p'
}
for ((i = 0; i < VD_TIMEOUT * 10; i++)); do
	[ "$(open_streams)" = 0 ] && break
	sleep 0.1
done
[ "$(open_streams)" = 0 ] || vd_fail "streams still open after their clients hung up: $(open_streams)"
for i in $(seq 1 64); do
	stream "$VD_WORK/many-$i"
done
for i in $(seq 1 64); do
	wait_for "$VD_WORK/many-$i" '^event: hello' "hello on stream $i"
done
[ "$(open_streams)" = 64 ] || vd_fail "vdfs_event_streams is $(open_streams) with 64 open"
st=$(curl -s --max-time 10 "${auth[@]}" -D "$VD_WORK/h65" -o "$VD_WORK/body65" -w '%{http_code}' "$E" || true)
[ "$st" = 503 ] || vd_fail "the 65th stream: $st, not 503"
grep -qi '^retry-after: [0-9]' "$VD_WORK/h65" || vd_fail "the 503 has no Retry-After"
$PY -c 'import json,sys; assert json.load(open(sys.argv[1])) == {"error": "too many event streams"}' \
	"$VD_WORK/body65" || vd_fail "the 503's body: $(cat "$VD_WORK/body65")"
vd_ok "64 streams open, the 65th is 503 with Retry-After and {\"error\": \"too many event streams\"}"
# One client goes: the daemon notices within a slice and frees its place.
kill "${STREAMS[0]}"
wait "${STREAMS[0]}" 2>/dev/null || true
ok=0
for ((i = 0; i < 50; i++)); do
	st=$(curl -sN --max-time 1 "${auth[@]}" -o "$VD_WORK/again" -w '%{http_code}' "$E" || true)
	if [ "$st" = 200 ]; then ok=1; break; fi
	sleep 0.2
done
[ $ok = 1 ] || vd_fail "a stream's place was not freed after its client hung up (last: $st)"
vd_ok "a client that hangs up frees its place"
# Keep one open (for the ping and the shutdown), end the rest.
KEEP="${STREAMS[1]}"
STREAMS=("${STREAMS[@]:2}")
stop_streams
STREAMS=("$KEEP")

# ---- a quiet stream is pinged --------------------------------------------
wait_for "$VD_WORK/many-2" '^: ping$' "ping"
vd_ok "a quiet stream gets : ping"

# ---- shutting down with a stream open ------------------------------------
vd_kill_executor e1
t0=$(date +%s.%N)
vd_kill_daemon TERM
vd_note "vdfsd exited $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }') s after SIGTERM with a stream open"
for ((i = 0; i < 100; i++)); do
	kill -0 "$KEEP" 2>/dev/null || break
	sleep 0.1
done
kill -0 "$KEEP" 2>/dev/null && vd_fail "the stream's curl is still running after vdfsd exited"
STREAMS=()
vd_ok "vdfsd exits on SIGTERM with a stream open, and the stream ends"

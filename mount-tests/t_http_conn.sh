#!/usr/bin/env bash
# t_http_conn: connections that send nothing (or trickle a request head a
# byte at a time) cannot lock the HTTP API out (issue 20, defect 2).
#
# A small Python script (standard library only) holds 2,000 TCP connections
# to the daemon from 100 loopback addresses, 127.0.0.2 to 127.0.0.101: half
# silent, half trickling. Meanwhile, from 127.0.0.1, which presented the
# token before, `vdfs status` and an executor's registration each succeed
# within a second, and a new vdfs-executor registers; a fresh address is
# turned away with a JSON 503 while strangers hold their share; no address
# holds more than 16; and the daemon closes all 2,000 itself within its
# idle timeout (10 s, the default). Then the per-address limit on its own,
# and the same flood, smaller, over TLS, where the door cannot read heads
# and a trickling client is shut down at its deadline. All on loopback,
# bounded in count and time: the holder stops by itself.
#
# The daemon runs with its default limits, so this test also runs against
# a vdfsd from before them (and fails there, at the first probe).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"
command -v curl >/dev/null || vd_fail "curl is not installed (tools/setup.sh installs it)"
command -v openssl >/dev/null || vd_fail "openssl is not installed (tools/setup.sh installs it)"
# Debian's own: `python3` on PATH may be another one.
PY=/usr/bin/python3
[ -x "$PY" ] || vd_fail "$PY is missing (apt-get install python3)"

IDLE=10          # vdfsd's default --http-idle-timeout
PER_IP=16        # ... --http-max-per-ip
MAX=1024         # ... --http-max-conns
SHARE=$((MAX - MAX / 4))   # what strangers may hold together
OUT="$VD_WORK/body"

cat >"$VD_WORK/hold.py" <<'EOF'
"""Open COUNT connections to 127.0.0.1:PORT from 127.0.0.FIRST onwards
(ADDRS source addresses, round robin), note which the server closes and
what it says, and report. Every SLOW-th connection trickles one byte per
half second: a request head that never ends (or, with --tls, a TLS record
header and then zeros). Writes DIR/ready once all are open (and refusals
had time to arrive), records how many were still open when DIR/probed
appears, and writes DIR/report (key=value lines) when the server closed
them all, or GRACE seconds after the last connect, whichever is first.
--release closes everything right after DIR/ready instead."""
import argparse, os, resource, selectors, socket, time

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--count", type=int, required=True)
ap.add_argument("--first", type=int, default=2)
ap.add_argument("--addrs", type=int, required=True)
ap.add_argument("--slow", type=int, default=2)
ap.add_argument("--grace", type=float, required=True)
ap.add_argument("--dir", required=True)
ap.add_argument("--tls", action="store_true")
ap.add_argument("--release", action="store_true")
a = ap.parse_args()
t0 = time.monotonic()
hard_end = t0 + a.grace + 60          # never longer than this, whatever happens

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
need = a.count + 64
if soft < need:
    if hard != resource.RLIM_INFINITY and hard < need:
        raise SystemExit("hold.py: RLIMIT_NOFILE hard limit %d < %d" % (hard, need))
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))

if a.tls:
    SLOW = b"\x16\x03\x01\x02\x00" + b"\x00" * 4000
else:
    SLOW = b"GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 4000

class Conn:
    __slots__ = ("s", "addr", "slow", "opened", "closed", "answer", "sent")

sel = selectors.DefaultSelector()
conns, failed = [], 0

def close(c):
    c.closed = time.monotonic()
    sel.unregister(c.s)
    c.s.close()

def pump(timeout):
    for key, _ in sel.select(timeout):
        c = key.data
        try:
            data = c.s.recv(4096)
        except OSError:
            data = b""
        if data:
            c.answer += data[: max(0, 600 - len(c.answer))]
        else:
            close(c)

for i in range(a.count):
    addr = "127.0.0.%d" % (a.first + i % a.addrs)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((addr, 0))
        s.settimeout(5)
        s.connect(("127.0.0.1", a.port))
    except OSError:
        failed += 1
        s.close()
        continue
    s.setblocking(False)
    c = Conn()
    c.s, c.addr, c.slow, c.opened, c.closed = s, addr, a.slow > 0 and i % a.slow == 1, time.monotonic(), None
    c.answer, c.sent = b"", 0
    conns.append(c)
    sel.register(s, selectors.EVENT_READ, c)
    if i % 32 == 31:
        pump(0)
last_open = time.monotonic()
settle = last_open + 1.0
while time.monotonic() < settle:
    pump(0.1)
held = [c for c in conns if c.closed is None]
per_addr = {}
for c in held:
    per_addr[c.addr] = per_addr.get(c.addr, 0) + 1
ready = os.path.join(a.dir, "ready")
with open(ready + ".tmp", "w") as f:
    f.write("opened=%d\nheld=%d\n" % (len(conns), len(held)))
os.rename(ready + ".tmp", ready)
if a.release:
    for c in held:
        close(c)

open_when_probed, tick = -1, 0.0
end = min(last_open + a.grace, hard_end)
while time.monotonic() < end and any(c.closed is None for c in conns):
    pump(0.1)
    now = time.monotonic()
    if open_when_probed < 0 and os.path.exists(os.path.join(a.dir, "probed")):
        open_when_probed = sum(1 for c in conns if c.closed is None)
    if now >= tick:
        tick = now + 0.5
        for c in conns:
            if c.slow and c.closed is None and c.sent < len(SLOW):
                try:
                    c.sent += c.s.send(SLOW[c.sent:c.sent + 1])
                except OSError:
                    pass

answers = {}
nonjson = 0
for c in conns:
    if c.answer:
        line = c.answer.split(b"\r\n", 1)[0].decode("latin-1")
        answers[line] = answers.get(line, 0) + 1
        if b"Content-Type: application/json" not in c.answer or b'{"error":' not in c.answer:
            nonjson += 1
still = [c for c in conns if c.closed is None]
life = [c.closed - c.opened for c in held if c.closed is not None]
with open(os.path.join(a.dir, "report"), "w") as f:
    f.write("opened=%d\nconnect_failed=%d\nheld=%d\nheld_addrs=%d\nheld_max_per_addr=%d\n" %
            (len(conns), failed, len(held), len(per_addr), max(per_addr.values(), default=0)))
    f.write("open_when_probed=%d\nstill_open=%d\nmax_held_s=%.1f\nnonjson=%d\n" %
            (open_when_probed, len(still), max(life, default=0.0), nonjson))
    for line, n in sorted(answers.items()):
        f.write("answer=%d %s\n" % (n, line))
for c in still:
    c.s.close()
EOF

# hold NAME ARGS...: start the holder in $VD_WORK/NAME, wait for its ready
# file. Registered with the harness, so a failing test stops it too.
hold() {
	local name="$1" i
	shift
	mkdir -p "$VD_WORK/$name"
	"$PY" "$VD_WORK/hold.py" --dir "$VD_WORK/$name" --port "$PORT" "$@" \
		>>"$VD_WORK/hold-$name.log" 2>&1 </dev/null &
	VD_EXEC_PID[hold-$name]=$!
	for ((i = 0; i < 600; i++)); do
		[ -f "$VD_WORK/$name/ready" ] && break
		vd__alive "${VD_EXEC_PID[hold-$name]}" || vd_fail "the holder exited early: $(cat "$VD_WORK/hold-$name.log")"
		vd_check_daemon
		sleep 0.1
	done
	[ -f "$VD_WORK/$name/ready" ] || vd_fail "the holder did not open its connections within 60 s"
	vd_note "holder $name: $(tr '\n' ' ' <"$VD_WORK/$name/ready")"
}

# unhold NAME: wait for the holder to finish (it stops by itself) and
# check that it did cleanly.
unhold() {
	local name="$1" st=0
	wait "${VD_EXEC_PID[hold-$name]}" || st=$?
	unset "VD_EXEC_PID[hold-$name]"
	[ "$st" = 0 ] && [ -f "$VD_WORK/$name/report" ] ||
		vd_fail "the holder failed (status $st): $(cat "$VD_WORK/hold-$name.log")"
	vd_note "holder $name: $(tr '\n' ' ' <"$VD_WORK/$name/report")"
}

# rep NAME KEY: a number from the holder's report.
rep() {
	sed -n "s/^$2=//p" "$VD_WORK/$1/report"
}

# probe WANT WHAT CURL_ARGS...: one request, answered within a second with
# status WANT (an error status with a JSON error).
probe() {
	local want="$1" what="$2" got
	shift 2
	got="$(curl -s --max-time 1 -o "$OUT" -w '%{http_code}' "$@")" ||
		vd_fail "$what: no answer within a second (curl status $?, HTTP '$got')"
	[ "$got" = "$want" ] || vd_fail "$what: status $got, wanted $want: $(head -c 300 "$OUT")"
	if [ "$want" -ge 400 ]; then
		grep -q '"error"' "$OUT" || vd_fail "$what: $got without a JSON error: $(head -c 300 "$OUT")"
	fi
}

# flood_checks NAME STATUS_ARGS: the probes while holder NAME holds its
# connections, from 127.0.0.1 (known: it presented the token before).
flood_checks() {
	local name="$1" reg
	shift
	timeout 1 "$VD_BIN/vdfs" status --state "$VD_STATE" >"$OUT" 2>&1 ||
		vd_fail "vdfs status failed (or took over a second) while strangers held connections: $(head -c 300 "$OUT")"
	vd_ok "$name: vdfs status answers within a second"
	reg="{\"name\": \"late-$name\", \"level\": 1, \"slots\": 1}"
	probe 200 "$name: registration" "$@" -H "Authorization: Bearer $TOKEN" \
		--data-binary "$reg" "$VD_URL/v1/executors"
	grep -q '"token"' "$OUT" || vd_fail "$name: the registration reply has no token: $(head -c 300 "$OUT")"
	vd_ok "$name: an executor registers within a second"
}

# ---- plain HTTP ---------------------------------------------------------
vd_start_daemon
TOKEN="$(cat "$VD_STATE/token")"
PORT="${VD_URL##*:}"
"$VD_BIN/vdfs" status --state "$VD_STATE" >/dev/null || vd_fail "vdfs status failed on an idle daemon"

hold flood --count 2000 --addrs 100 --grace $((IDLE + 5))
flood_checks flood
probe 503 "a fresh address while strangers hold their share" --interface 127.0.0.250 "$VD_URL/v1/status"
vd_ok "a fresh address is turned away at once with a JSON 503 ($(head -c 120 "$OUT"))"
vd_start_executor newcomer
for ((i = 0; i < 100; i++)); do
	grep -q "registered as newcomer" "$VD_WORK/exec-newcomer.log" 2>/dev/null && break
	sleep 0.1
done
grep -q "registered as newcomer" "$VD_WORK/exec-newcomer.log" ||
	vd_fail "a new vdfs-executor did not register within 10 s while strangers held connections"
vd_ok "a new vdfs-executor registers while strangers hold connections"
touch "$VD_WORK/flood/probed"
unhold flood

[ "$(rep flood opened)" = 2000 ] && [ "$(rep flood connect_failed)" = 0 ] ||
	vd_fail "the holder opened $(rep flood opened) of 2000 connections"
held="$(rep flood held)"
((held > 0 && held <= SHARE)) || vd_fail "strangers held $held connections; their share is $SHARE"
(($(rep flood held_max_per_addr) <= PER_IP)) ||
	vd_fail "an address held $(rep flood held_max_per_addr) connections; the limit is $PER_IP"
(($(rep flood open_when_probed) > 0)) ||
	vd_fail "the strangers' connections were gone before the probes ended: they proved nothing"
vd_ok "strangers held $held of 2000 ($(rep flood held_max_per_addr) at most per address); the rest were refused at once"
[ "$(rep flood still_open)" = 0 ] ||
	vd_fail "$(rep flood still_open) connections were still open $((IDLE + 5)) s after the last connect"
vd_ok "the daemon closed all 2000 connections itself, the held ones within its ${IDLE} s timeout (longest $(rep flood max_held_s) s)"
[ "$(rep flood nonjson)" = 0 ] || vd_fail "$(rep flood nonjson) answers were not JSON errors: $(grep '^answer=' "$VD_WORK/flood/report")"
grep -q '^answer=[0-9]* HTTP/1.1 503 ' "$VD_WORK/flood/report" && grep -q '^answer=[0-9]* HTTP/1.1 408 ' "$VD_WORK/flood/report" ||
	vd_fail "wanted 503 for the refused and 408 for the expired: $(grep '^answer=' "$VD_WORK/flood/report")"
vd_ok "refused connections got a JSON 503, expired ones a JSON 408"
probe 401 "the fresh address once the strangers are gone" --interface 127.0.0.250 "$VD_URL/v1/status"
vd_ok "with the strangers gone, the fresh address is served again (401 without a token)"

# The per-address limit alone: 24 from one address, 16 kept.
hold perip --count 24 --first 77 --addrs 1 --slow 0 --grace 5 --release
unhold perip
[ "$(rep perip held)" = "$PER_IP" ] || vd_fail "one address kept $(rep perip held) of 24 connections; the limit is $PER_IP"
grep -q "^answer=8 HTTP/1.1 503 " "$VD_WORK/perip/report" ||
	vd_fail "the 8 over the limit were not refused with 503: $(grep '^answer=' "$VD_WORK/perip/report")"
vd_ok "one address gets $PER_IP connections, the 8 more a JSON 503 at once"
vd_kill_executor newcomer
vd_kill_daemon

# ---- TLS ------------------------------------------------------------------
IN="$VD_WORK/in"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj "/CN=vdfs test" -addext "subjectAltName=IP:127.0.0.1" \
	-keyout "$IN/key.pem" -out "$IN/cert.pem" 2>/dev/null
vd_start_daemon --tls-cert "$IN/cert.pem" --tls-key "$IN/key.pem"
PORT="${VD_URL##*:}"
PIN="$(cat "$VD_STATE/tls-pin")"
"$VD_BIN/vdfs" status --state "$VD_STATE" >/dev/null || vd_fail "vdfs status failed on an idle TLS daemon"
hold tls --count 1000 --addrs 50 --tls --grace $((IDLE + 5))
flood_checks tls --pinnedpubkey "$PIN" -k
touch "$VD_WORK/tls/probed"
unhold tls
(($(rep tls held) > 0 && $(rep tls held_max_per_addr) <= PER_IP)) ||
	vd_fail "TLS: strangers held $(rep tls held), at most $(rep tls held_max_per_addr) per address"
(($(rep tls open_when_probed) > 0)) || vd_fail "TLS: the strangers' connections were gone before the probes ended"
[ "$(rep tls still_open)" = 0 ] ||
	vd_fail "TLS: $(rep tls still_open) connections were still open $((IDLE + 5)) s after the last connect"
vd_ok "TLS: strangers held $(rep tls held) of 1000; the daemon closed them all, trickling ones too, within its ${IDLE} s (longest $(rep tls max_held_s) s)"

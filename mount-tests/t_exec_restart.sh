#!/usr/bin/env bash
# t_exec_restart: vdfsd killed with SIGKILL while an executor long-polls
# for work, then restarted on the same state directory and port. The
# executor must say in plain words what happened ("the daemon closed the
# connection", "cannot connect to the daemon ... (not running, or
# restarting?)"), never libcurl's "necessary data rewind wasn't possible"
# (a request body that could not be sent again on a new connection), and
# it must get work from the restarted daemon without being restarted
# itself. An executor started while the daemon is down registers once it
# is back, and says why it waited, in words too.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"

IN="$VD_WORK/in"
vd_gen_text "$IN/text.txt" $((256 * 1024)) 42 500
vd_count_words "$IN/text.txt" >"$IN/expected.csv"
vd_write_wc_function "$IN/wc.sh"

# The first start picks a free port; the restart listens on the same one,
# so that the executors, which know only the URL, find the new daemon.
vd_start_daemon
URL1="$VD_URL"
PORT="${VD_URL##*:}"
vd_note "vdfsd listens on port $PORT"

vd_start_executor e1
LOG1="$VD_WORK/exec-e1.log"
# Registered, idle: from now on it is always inside a long poll (each one
# answered 204 after 20 s and sent again at once), on the connection kept
# alive since it registered.
for ((i = 0; i < 600; i++)); do
	grep -q 'registered as e1' "$LOG1" 2>/dev/null && break
	sleep 0.1
done
grep -q 'registered as e1' "$LOG1" || vd_fail "e1 did not register within 60 s"
# Its long poll is the executor's open connection to the daemon's port.
for ((i = 0; i < 600; i++)); do
	ss -Htn state established "( dport = :$PORT )" 2>/dev/null | grep -q . && break
	sleep 0.1
done
vd_ok "e1 registered and is waiting for work"

vd_kill_daemon KILL
# The poll in flight fails; then polls are refused while the daemon is down.
for ((i = 0; i < 600; i++)); do
	grep -q 'lease poll: ' "$LOG1" && break
	sleep 0.1
done
grep -q 'lease poll: ' "$LOG1" || vd_fail "e1 logged nothing about its lease poll within 60 s of the kill"
vd_note "e1: $(grep -m 1 'lease poll: ' "$LOG1" | sed 's/.*WARN //')"

# e2 starts while there is no daemon at all: it must wait and say why.
vd_start_executor e2
LOG2="$VD_WORK/exec-e2.log"
for ((i = 0; i < 600; i++)); do
	grep -q 'register at ' "$LOG2" 2>/dev/null && break
	sleep 0.1
done
grep -q 'register at ' "$LOG2" || vd_fail "e2 logged nothing about registering within 60 s"

vd_start_daemon --listen "127.0.0.1:$PORT"
[ "$VD_URL" = "$URL1" ] || vd_fail "the restarted daemon is at $VD_URL, not $URL1"
vd_ok "vdfsd restarted on the same state directory and port"

T="$VD_MNT/tasks/after"
mkdir "$T"
cp "$IN/wc.sh" "$T/function"
printf 'reduce = sum\n' >"$T/config"
cp "$IN/text.txt" "$T/data/text.txt"
vd_wait_status "$T/latest" done
vd_same "$T/latest/result.csv" "$IN/expected.csv" "the restarted daemon's run is done by the executors that outlived it"
for ((i = 0; i < 600; i++)); do
	grep -q 'registered as e2' "$LOG2" && break
	sleep 0.1
done
grep -q 'registered as e2' "$LOG2" || vd_fail "e2 did not register with the restarted daemon within 60 s"
vd_ok "e2, started while the daemon was down, registered once it was back"

for log in "$LOG1" "$LOG2"; do
	name="$(basename "$log" .log)"
	if grep -n -i 'rewind' "$log" >&2; then
		vd_fail "$name logs libcurl's rewind failure (above)"
	fi
	# Every failure line says what happened in words, not a bare code.
	if grep -E '(lease poll|register at [^ ]+): ' "$log" |
		grep -v -E '(lease poll|register at [^ ]+): (the daemon closed the connection \(restarting\?\)|cannot connect to the daemon at [^ ]+ \(not running, or restarting\?\)); retrying in [0-9]+\.[0-9] s$' >&2; then
		vd_fail "$name logs a failure that is not one of the plain messages (above)"
	fi
done
grep -q -E 'lease poll: (the daemon closed the connection \(restarting\?\)|cannot connect to the daemon at http://127\.0\.0\.1:'"$PORT"' \(not running, or restarting\?\)); retrying in [0-9.]+ s' "$LOG1" ||
	vd_fail "e1 never said in words that the daemon went away"
vd_ok "e1: $(grep -E 'lease poll: ' "$LOG1" | sed 's/.*WARN //' | sort | uniq -c | sed 's/^ *//' | paste -sd ';' -)"
grep -q -E 'register at [^ ]+: cannot connect to the daemon at http://127\.0\.0\.1:'"$PORT"' \(not running, or restarting\?\); retrying in [0-9.]+ s' "$LOG2" ||
	vd_fail "e2 never said in words why it could not register"
vd_ok "e2: $(grep -m 1 'register at ' "$LOG2" | sed 's/.*WARN //')"

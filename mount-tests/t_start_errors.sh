#!/usr/bin/env bash
# t_start_errors: clear errors at start.
#   - a restart after kill -9 on the stale mount point detects ENOTCONN,
#     detaches the dead mount, says so, and mounts;
#   - a second vdfsd on the same state dir: "state dir in use by vdfsd pid N";
#   - a port already in use is named;
#   - a live vdfs mount is not mounted over.
# Each refused start exits 1 at once with the reason, and the running
# daemon is unharmed.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"
VDFSD="$VD_BIN/vdfsd"

vd_start_daemon
mkdir "$VD_MNT/tasks/t"
vd_kill_daemon KILL
# vd_kill_daemon detaches a dead mount; make it dead again the way a user
# meets it: the daemon killed, the mount left behind.
vd_start_daemon
pid="$VD_DAEMON_PID"
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
VD_DAEMON_PID=""
st=0
stat "$VD_MNT" >/dev/null 2>"$VD_WORK/stat.err" || st=$?
grep -q 'Transport endpoint is not connected' "$VD_WORK/stat.err" ||
	vd_fail "the mount point is not dead after kill -9: $(cat "$VD_WORK/stat.err")"
vd_start_daemon
grep -q "$VD_MNT was a dead mount (its daemon was killed); detached it" "$VD_WORK/vdfsd.log" ||
	vd_fail "vdfsd did not say it detached the dead mount"
[ -d "$VD_MNT/tasks/t" ] || vd_fail "the task made before the kill is not there after the restart"
vd_ok "restart on a dead mount: detached, said so, mounted"

# A second daemon on the same state.
mkdir -p "$VD_WORK/mnt2" "$VD_WORK/state2"
st=0
timeout 20 "$VDFSD" --foreground --state "$VD_STATE" --listen 127.0.0.1:0 "$VD_WORK/mnt2" \
	>"$VD_WORK/second.log" 2>&1 || st=$?
[ "$st" = 1 ] || vd_fail "a second vdfsd on the same state exited $st"
grep -q "state dir $VD_STATE in use by vdfsd pid $VD_DAEMON_PID" "$VD_WORK/second.log" ||
	vd_fail "a second vdfsd on the same state: $(tail -n 3 "$VD_WORK/second.log")"
grep -qi 'rocksdb\|LOCK' "$VD_WORK/second.log" && vd_fail "the refusal still speaks of RocksDB's lock"
vd_ok "a second vdfsd on the same state: 'in use by vdfsd pid $VD_DAEMON_PID'"

# The port of the running daemon.
port="${VD_URL##*:}"
st=0
timeout 20 "$VDFSD" --foreground --state "$VD_WORK/state2" --listen "127.0.0.1:$port" \
	"$VD_WORK/mnt2" >"$VD_WORK/port.log" 2>&1 || st=$?
[ "$st" = 1 ] || vd_fail "a vdfsd on a port in use exited $st"
grep -q "port $port on 127.0.0.1 is in use" "$VD_WORK/port.log" ||
	vd_fail "a port in use is not named: $(tail -n 3 "$VD_WORK/port.log")"
awk -v m="$VD_WORK/mnt2" '$2 == m { found = 1 } END { exit found }' /proc/mounts ||
	vd_fail "the refused daemon left a mount behind"
vd_ok "a port in use is named"

# The mount point of the running daemon.
st=0
timeout 20 "$VDFSD" --foreground --state "$VD_WORK/state2" --listen 127.0.0.1:0 "$VD_MNT" \
	>"$VD_WORK/mnt.log" 2>&1 || st=$?
[ "$st" = 1 ] || vd_fail "a vdfsd over a live mount exited $st"
grep -q "$VD_MNT is already a live vdfs mount" "$VD_WORK/mnt.log" ||
	vd_fail "mounting over a live vdfs mount: $(tail -n 3 "$VD_WORK/mnt.log")"
[ -d "$VD_MNT/tasks/t" ] || vd_fail "the running daemon's mount is gone"
vd_ok "a live vdfs mount is not mounted over"
vd_check_daemon

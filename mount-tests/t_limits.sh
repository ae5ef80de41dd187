#!/usr/bin/env bash
# t_limits: a function that sleeps forever, one that allocates without
# bound and one that floods stdout are each stopped, and the run says which
# limit ended it (timeout, memory limit, stdout cap). Then --sandbox bwrap:
# a unit sees no network and cannot write outside its directory, where the
# same function run directly on this machine can.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"

IN="$VD_WORK/in"
seq 1 100 >"$IN/nums.txt"
vd_start_daemon

# task NAME CONFIG BODY: a task whose function is /bin/sh BODY.
task() {
	mkdir "$VD_MNT/tasks/$1"
	printf '%b' "$2" >"$VD_MNT/tasks/$1/config"
	printf '#!/bin/sh\n%s\n' "$3" >"$VD_MNT/tasks/$1/function"
	cp "$IN/nums.txt" "$VD_MNT/tasks/$1/data/nums.txt"
}
task sleeper 'timeout = 2\nretries = 1\n' 'sleep 1000'
task hog 'memory = 64M\nretries = 1\n' 'x=x; while :; do x="$x$x"; done'
task flood 'retries = 1\n' 'yes flood'
vd_start_executor ex --slots 3 --stdout-cap 1M

# expect TASK REASON
expect() {
	vd_wait_status "$VD_MNT/tasks/$1/latest" failed
	local st
	st="$(cat "$VD_MNT/tasks/$1/latest/status")"
	case "$st" in
	"failed: unit 0: $2"*) vd_ok "$1: $st" ;;
	*) vd_fail "$1 failed, but not for '$2': $st" ;;
	esac
	grep -q "failed (attempt 1 of 1): $2" "$VD_MNT/tasks/$1/latest/log" ||
		vd_fail "$1: the log does not give the reason '$2'"
}
expect sleeper timeout
expect hog "memory limit"
expect flood "stdout cap"
vd_kill_executor ex

# The sandbox. The probe says how many network interfaces besides lo it
# sees and whether it can create a file under /usr.
cat >"$IN/probe.sh" <<'FN'
#!/bin/sh
n=$(awk 'NR > 2 && $1 != "lo:"' /proc/net/dev | wc -l)
if touch /usr/vdfs-sandbox-probe.$$ 2>/dev/null; then rm -f /usr/vdfs-sandbox-probe.$$; ro=no; else ro=yes; fi
if touch ./here 2>/dev/null; then cwd=yes; else cwd=no; fi
cat >/dev/null
echo "net=$n,ro=$ro,cwd=$cwd"
FN
chmod +x "$IN/probe.sh"
host="$(cd "$IN" && echo | "$IN/probe.sh")"
vd_note "the probe run directly here: $host"
mkdir "$VD_MNT/tasks/probe"
cp "$IN/probe.sh" "$VD_MNT/tasks/probe/function"
cp "$IN/nums.txt" "$VD_MNT/tasks/probe/data/nums.txt"
vd_start_executor boxed --sandbox bwrap
vd_wait_status "$VD_MNT/tasks/probe/latest" done
got="$(cat "$VD_MNT/tasks/probe/latest/result.csv")"
[ "$got" = "net=0,ro=yes,cwd=yes" ] || vd_fail "inside bwrap the probe says '$got'"
vd_ok "inside bwrap: no network, read-only system, writable unit directory ($got)"
case "$host" in
net=0,*) vd_note "this machine has no interface but lo: the network check shows nothing here" ;;
esac
[ "$(id -u)" != 0 ] || [ "${host#*ro=}" != "${got#*ro=}" ] ||
	vd_fail "run directly as root the probe could not write /usr either ($host): the check proves nothing"

#!/usr/bin/env bash
# tools/demo.sh - see vdfs work: set up, build, mount ./demo/mnt, start two
# local executors, submit the bundled word-count example with cp, wait for
# it and print result.csv. Everything is left running for you to explore.
#
#   tools/demo.sh          start the demo (stops a running one first)
#   tools/demo.sh stop     stop the executors and vdfsd it started, unmount
#
# State lives in demo/state (kept across restarts), logs and PIDs in demo/.
# VDFS_BUILD_DIR picks another build directory (default build/).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
here="$(pwd)"
cd "$root"
demo="$root/demo"
state="$demo/state"
mnt="$demo/mnt"
build="${VDFS_BUILD_DIR:-$root/build}"
bin="$build/bin"
example="$root/docs/examples/wordcount"
task="wordcount"

# show PATH: a path as the user can type it from where they ran us.
show() {
	if [ "$here" = "$root" ]; then echo "${1#"$root"/}"; else echo "$1"; fi
}

is_mounted() {
	awk -v m="$mnt" '$2 == m { found = 1 } END { exit !found }' /proc/mounts
}

# our_pid FILE: print the PID in FILE if that process is still one this
# demo started (its command line names our state directory).
our_pid() {
	local pid
	[ -f "$1" ] || return 1
	pid="$(cat "$1")"
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	[ -r "/proc/$pid/cmdline" ] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$state" || return 1
	echo "$pid"
}

# stop_pid FILE: TERM the process in FILE, KILL it after 15 s.
stop_pid() {
	local f="$1" pid i
	if pid="$(our_pid "$f")"; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 150; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "demo: $(basename "$f" .pid) (pid $pid) ignored SIGTERM; killing it" >&2
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	rm -f "$f"
}

running() {
	local f
	for f in "$demo"/*.pid; do
		[ -e "$f" ] || continue
		our_pid "$f" >/dev/null && return 0
	done
	is_mounted
}

stop_demo() {
	local f
	for f in "$demo"/exec-*.pid; do
		[ -e "$f" ] && stop_pid "$f"
	done
	[ -e "$demo/vdfsd.pid" ] && stop_pid "$demo/vdfsd.pid"
	if is_mounted; then
		fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt"
	fi
	return 0
}

tail_logs() {
	local f
	for f in "$demo"/*.log; do
		[ -f "$f" ] || continue
		echo "----- $(show "$f") (last lines) -----" >&2
		tail -n 15 "$f" >&2
	done
}

die() {
	echo "demo: $*" >&2
	tail_logs
	echo "demo: what was started is left running; stop it with: $(show "$root/tools/demo.sh") stop" >&2
	exit 1
}

case "${1:-start}" in
stop)
	if running; then
		stop_demo
		echo "demo: stopped (state kept in $(show "$state"); rm -rf $(show "$demo") to forget it)"
	else
		stop_demo
		echo "demo: nothing was running"
	fi
	exit 0
	;;
start) ;;
-h | --help)
	sed -n '2,10s/^# \{0,1\}//p' "$0"
	exit 0
	;;
*)
	echo "usage: tools/demo.sh [stop]" >&2
	exit 2
	;;
esac

if running; then
	echo "demo: a demo is already running; stopping it first"
	stop_demo
fi

echo "demo: installing packages and building (the first time takes a few minutes)..."
tools/setup.sh --build-dir "$build"
for p in vdfsd vdfs-executor; do
	[ -x "$bin/$p" ] || { echo "demo: $bin/$p was not built" >&2; exit 1; }
done

mkdir -p "$state" "$mnt" "$demo/input"
rm -f "$state/url"

# One port for the demo's whole life, kept in its state dir, so that
# executors (the demo's, or ones started by hand from the printed line) find
# a restarted daemon where they left it. The first start takes a free one.
listen=127.0.0.1:0
if [ -s "$state/port" ]; then
	listen="127.0.0.1:$(cat "$state/port")"
fi
# setsid: the daemon and executors outlive this script and ignore the
# terminal's Ctrl-C; `tools/demo.sh stop` ends them.
setsid "$bin/vdfsd" --foreground --state "$state" --listen "$listen" "$mnt" \
	>>"$demo/vdfsd.log" 2>&1 </dev/null &
echo "$!" >"$demo/vdfsd.pid"
for ((i = 0; i < 300; i++)); do
	[ -s "$state/url" ] && is_mounted && break
	our_pid "$demo/vdfsd.pid" >/dev/null || die "vdfsd exited during start-up"
	sleep 0.1
done
if [ ! -s "$state/url" ] || ! is_mounted; then
	die "vdfsd did not come up within 30 s"
fi
url="$(head -n 1 "$state/url")"
echo "${url##*:}" >"$state/port"
echo "demo: vdfsd is serving $(show "$mnt") (executors reach it at $url)"
echo "demo: the dashboard is at $url/ (sign in with the token in $(show "$state/token"))"

for n in 1 2; do
	setsid "$bin/vdfs-executor" --server "$url" --token-file "$state/token" \
		--name "demo-$n" --cache "$demo/cache-$n" \
		>>"$demo/exec-$n.log" 2>&1 </dev/null &
	echo "$!" >"$demo/exec-$n.pid"
done
echo "demo: started executors demo-1 and demo-2"

T="$mnt/tasks/$task"
[ -d "$T" ] || mkdir "$T"
cp "$example/function" "$T/function"
cp "$example/config" "$T/config"
book="$demo/input/book.txt"
[ -f "$book" ] || "$example/make-text.sh" "$book"
echo "demo: made task $task; cp $(show "$book") ($(stat -c %s "$book") bytes) into $(show "$T/data/")"

before="$(ls "$T/versions")"
cp "$book" "$T/data/book.txt"
# shellcheck disable=SC2012 # version names are hex
new="$(comm -13 <(printf '%s\n' "$before" | sed '/^$/d' | LC_ALL=C sort) <(ls "$T/versions" | LC_ALL=C sort))"
if [ -n "$new" ]; then
	id="$(head -n 1 <<<"$new")"
	echo "demo: sealed as version $id"
else
	# Known content: find the version holding it.
	id=""
	size="$(stat -c %s "$book")"
	for d in "$T"/versions/*/; do
		f="${d}input"
		if [ -f "$f" ] && [ "$(stat -c %s "$f")" = "$size" ] && cmp -s "$book" "$f"; then
			id="$(basename "$d")"
			break
		fi
	done
	[ -n "$id" ] || die "cp made no new version, and no version holds $(show "$book")"
	echo "demo: this content was known already: no new version, no new work (version $id)"
fi
V="$T/versions/$id"

last=""
start=$SECONDS
while :; do
	st="$(head -n 1 "$V/status" 2>/dev/null || true)"
	if [ "$st" != "$last" ]; then
		echo "demo: [$((SECONDS - start)) s] status: $st"
		last="$st"
	fi
	case "$st" in
	done*) break ;;
	failed*)
		echo "----- $(show "$V/log") -----" >&2
		tail -n 20 "$V/log" >&2 || true
		die "the run failed: $st"
		;;
	esac
	((SECONDS - start < 600)) || die "the run did not finish within 10 minutes: $st"
	if ! our_pid "$demo/exec-1.pid" >/dev/null && ! our_pid "$demo/exec-2.pid" >/dev/null; then
		die "both executors have exited"
	fi
	our_pid "$demo/vdfsd.pid" >/dev/null || die "vdfsd has exited"
	sleep 0.5
done

R="$V/result.csv"
echo
echo "== head of $(show "$R")"
head -n 10 "$R"
echo "== $(wc -l <"$R") rows (one per distinct word); the most frequent:"
LC_ALL=C sort -t, -k2,2nr "$R" | head -n 5
cat <<EOF

The demo is up: vdfsd on $(show "$mnt"), executors demo-1 and demo-2, logs in $(show "$demo")/.
Explore:
  cat $(show "$mnt")/README
  ls $(show "$T")/versions/
  cat $(show "$V")/meta.json      # also: status, log, input, result.csv
  ls $(show "$mnt")/executors/
  $(show "$bin")/vdfs status --state $(show "$state")
Submit an edit: only the changed units run again:
  cp $(show "$book") /tmp/book.txt && echo "one more line" >>/tmp/book.txt
  cp /tmp/book.txt $(show "$T")/data/book.txt && cat $(show "$T")/latest/status
Stop everything:
  $(show "$root/tools/demo.sh") stop
EOF

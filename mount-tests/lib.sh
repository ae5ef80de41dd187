# shellcheck shell=bash
#
# mount-tests/lib.sh - the harness every mount test sources.
#
# A mount test is `bash t_NAME.sh BUILD_DIR` (ctest passes the build
# directory). It runs the real vdfsd on a FUSE mount and real executors on
# 127.0.0.1 with ephemeral ports, each test in its own work directory:
#
#   $VD_WORK/state   vdfsd's state directory
#   $VD_WORK/mnt     the mount point
#   $VD_WORK/*.log   vdfsd.log, exec-NAME.log
#
# Tests act like a user (mkdir, cp, ls, cat, rm) and check what they see
# against standard tools computing the same thing independently. They print
# `ok - WHAT` per check; any failure exits 1 with a message and log tails.
# Nothing is timed: waits are polls with generous timeouts.
#
# On exit (pass or fail) the processes this test started are stopped (TERM,
# then KILL after a grace period), the mount is detached, and the work
# directory is removed unless VD_KEEP=1. A sanitizer report in any log
# fails the test.
#
# Environment: VD_KEEP=1 keeps the work directory; VD_TIMEOUT (seconds,
# default 300) is the default for waits; TMPDIR picks where work dirs go.

set -euo pipefail
shopt -s inherit_errexit
set -E
trap 'echo "# command failed (status $?) at ${BASH_SOURCE[0]##*/}:$LINENO: $BASH_COMMAND" >&2' ERR

VD_BUILD=""
VD_BIN=""
VD_WORK=""
VD_STATE=""
VD_MNT=""
VD_URL=""
VD_DAEMON_PID=""
VD_DAEMON_STARTS=0
VD_TIMEOUT="${VD_TIMEOUT:-300}"
VD_GRACE="${VD_GRACE:-20}"
declare -A VD_EXEC_PID=()
VD_AT_EXIT=()
VD_TEST_NAME="$(basename "${0%.sh}")"

# vd_fail MSG... : print MSG, the tails of the logs, and exit 1.
VD__DUMPED=0
vd_fail() {
	echo "FAIL - $VD_TEST_NAME: $*" >&2
	vd__dump_logs >&2 || true
	VD__DUMPED=1
	exit 1
}

vd_ok() {
	echo "ok - $*"
}

vd_note() {
	echo "# $*"
}

vd__dump_logs() {
	local f
	[ -n "$VD_WORK" ] && [ -d "$VD_WORK" ] || return 0
	for f in "$VD_WORK"/*.log; do
		[ -f "$f" ] || continue
		echo "----- tail of $(basename "$f") -----"
		tail -n 30 "$f" || true
	done
	echo "----- end of logs (work dir $VD_WORK) -----"
}

vd__is_mounted() {
	# /proc/mounts escapes spaces etc.; work dirs from mktemp have none.
	[ -n "$VD_MNT" ] && awk -v m="$VD_MNT" '$2 == m { found = 1 } END { exit !found }' /proc/mounts
}

vd__alive() {
	[ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null
}

# vd_check_daemon: fail at once if the vdfsd we started has died (waits
# call it, so that a crash is not reported as a timeout).
vd_check_daemon() {
	local st=0
	if [ -n "$VD_DAEMON_PID" ] && ! vd__alive "$VD_DAEMON_PID"; then
		wait "$VD_DAEMON_PID" 2>/dev/null || st=$?
		VD_DAEMON_PID=""
		vd_fail "vdfsd died (exit status $st) while the test was waiting"
	fi
}

# vd__stop_pid PID SIGNAL: signal a child of ours and wait for it; KILL
# after the grace period. Sets VD__ST to its exit status. (Not to be run in
# a subshell: only this shell can wait for its children.)
VD__ST=0
vd__stop_pid() {
	local pid="$1" sig="${2:-TERM}" i rc=0
	if vd__alive "$pid"; then
		kill "-$sig" "$pid" 2>/dev/null || true
		for ((i = 0; i < VD_GRACE * 10; i++)); do
			vd__alive "$pid" || break
			sleep 0.1
		done
		if vd__alive "$pid"; then
			echo "# pid $pid did not exit within ${VD_GRACE}s of SIG$sig; sending KILL" >&2
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	wait "$pid" 2>/dev/null || rc=$?
	VD__ST=$rc
}

vd__cleanup() {
	local rc=$? name pid st
	set +e
	trap - EXIT INT TERM ERR
	for name in "${!VD_EXEC_PID[@]}"; do
		pid="${VD_EXEC_PID[$name]}"
		vd__stop_pid "$pid" TERM
	done
	VD_EXEC_PID=()
	if [ -n "$VD_DAEMON_PID" ]; then
		vd__stop_pid "$VD_DAEMON_PID" TERM
		st=$VD__ST
		VD_DAEMON_PID=""
		if [ "$st" != 0 ] && [ "$rc" = 0 ]; then
			echo "FAIL - $VD_TEST_NAME: vdfsd exited with status $st on SIGTERM" >&2
			rc=1
		fi
	fi
	if vd__is_mounted; then
		fusermount3 -uz "$VD_MNT" 2>/dev/null || umount -l "$VD_MNT" 2>/dev/null
	fi
	for name in "${VD_AT_EXIT[@]}"; do
		eval "$name" || echo "# at exit: '$name' failed" >&2
	done
	VD_AT_EXIT=()
	if [ -n "$VD_WORK" ] && [ -d "$VD_WORK" ]; then
		if grep -l -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' \
			"$VD_WORK"/*.log >/dev/null 2>&1; then
			echo "FAIL - $VD_TEST_NAME: a sanitizer reported an error:" >&2
			grep -B2 -A40 -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' \
				"$VD_WORK"/*.log >&2
			rc=1
		fi
		if [ "$rc" != 0 ] && [ "$VD__DUMPED" = 0 ]; then
			vd__dump_logs >&2
		fi
		if [ "${VD_KEEP:-0}" = 1 ]; then
			echo "# kept work dir: $VD_WORK" >&2
		else
			# --one-file-system: never descend into a mount left behind.
			rm -rf --one-file-system "$VD_WORK"
		fi
	fi
	if [ "$rc" = 0 ]; then
		echo "# $VD_TEST_NAME: all passed"
	fi
	exit "$rc"
}

# vd_at_exit COMMAND: run COMMAND (eval'd) at exit, pass or fail, after
# the daemon and executors are stopped and the mount detached, before the
# work dir is removed (e.g. to unmount a small file system the test put
# under its state dir).
vd_at_exit() {
	VD_AT_EXIT+=("$1")
}

# vd_setup BUILD_DIR: make the work dir and install the cleanup trap.
vd_setup() {
	local b="${1:-}"
	if [ -z "$b" ]; then
		b="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build"
	fi
	[ -d "$b" ] || { echo "usage: bash $0 BUILD_DIR (no such dir: $b)" >&2; exit 2; }
	VD_BUILD="$(cd "$b" && pwd)"
	VD_BIN="$VD_BUILD/bin"
	local p
	for p in vdfsd vdfs-executor; do
		[ -x "$VD_BIN/$p" ] || { echo "FAIL - $VD_TEST_NAME: $VD_BIN/$p is not built" >&2; exit 1; }
	done
	command -v fusermount3 >/dev/null || { echo "FAIL - fusermount3 not found (apt-get install fuse3)" >&2; exit 1; }
	[ -e /dev/fuse ] || { echo "FAIL - /dev/fuse is missing: FUSE is not available here" >&2; exit 1; }
	VD_WORK="$(mktemp -d "${TMPDIR:-/tmp}/vdfs-$VD_TEST_NAME.XXXXXX")"
	VD_STATE="$VD_WORK/state"
	VD_MNT="$VD_WORK/mnt"
	mkdir -p "$VD_STATE" "$VD_MNT" "$VD_WORK/in"
	trap vd__cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	vd_note "work dir $VD_WORK, binaries $VD_BIN"
}

# vd_start_daemon [ARGS...]: start vdfsd --foreground on the work dir's
# state and mount, wait for STATE/url and for the mount.
vd_start_daemon() {
	local i
	[ -z "$VD_DAEMON_PID" ] || vd_fail "vd_start_daemon: vdfsd already running"
	# A url left by a killed daemon names a dead port; the new one writes it anew.
	rm -f "$VD_STATE/url"
	VD_DAEMON_STARTS=$((VD_DAEMON_STARTS + 1))
	echo "=== vdfsd start #$VD_DAEMON_STARTS: $*" >>"$VD_WORK/vdfsd.log"
	"$VD_BIN/vdfsd" --foreground --state "$VD_STATE" --listen 127.0.0.1:0 \
		"$@" "$VD_MNT" >>"$VD_WORK/vdfsd.log" 2>&1 </dev/null &
	VD_DAEMON_PID=$!
	for ((i = 0; i < 200; i++)); do
		if [ -s "$VD_STATE/url" ] && vd__is_mounted; then
			break
		fi
		if ! vd__alive "$VD_DAEMON_PID"; then
			wait "$VD_DAEMON_PID" 2>/dev/null || i=$?
			VD_DAEMON_PID=""
			vd_fail "vdfsd exited during start-up (status $i)"
		fi
		sleep 0.1
	done
	[ -s "$VD_STATE/url" ] || vd_fail "vdfsd wrote no $VD_STATE/url within 20 s"
	vd__is_mounted || vd_fail "$VD_MNT is not mounted within 20 s"
	VD_URL="$(head -n 1 "$VD_STATE/url")"
	case "$VD_URL" in
	http://127.0.0.1:[0-9]* | https://127.0.0.1:[0-9]*) ;;
	*) vd_fail "unexpected url in $VD_STATE/url: '$VD_URL'" ;;
	esac
	[ -f "$VD_STATE/token" ] || vd_fail "vdfsd wrote no $VD_STATE/token"
	vd_note "vdfsd pid $VD_DAEMON_PID at $VD_URL"
}

# vd_kill_daemon [SIGNAL]: stop vdfsd. TERM (default) expects a clean exit
# and unmount; anything else (KILL) then detaches the dead mount.
vd_kill_daemon() {
	local sig="${1:-TERM}" st i
	[ -n "$VD_DAEMON_PID" ] || vd_fail "vd_kill_daemon: vdfsd is not running"
	vd__stop_pid "$VD_DAEMON_PID" "$sig"
	st=$VD__ST
	VD_DAEMON_PID=""
	if [ "$sig" = TERM ] || [ "$sig" = INT ]; then
		[ "$st" = 0 ] || vd_fail "vdfsd exited with status $st on SIG$sig"
		for ((i = 0; i < 100; i++)); do
			vd__is_mounted || break
			sleep 0.1
		done
		vd__is_mounted && vd_fail "vdfsd exited on SIG$sig but $VD_MNT is still mounted"
	else
		vd_note "vdfsd ended by SIG$sig (status $st)"
		if vd__is_mounted; then
			fusermount3 -uz "$VD_MNT" || vd_fail "fusermount3 -uz $VD_MNT failed"
		fi
	fi
	return 0
}

# vd_start_executor NAME [ARGS...]: start vdfs-executor named NAME.
vd_start_executor() {
	local name="$1"
	shift
	[ -n "$VD_URL" ] || vd_fail "vd_start_executor: no daemon url"
	[ -z "${VD_EXEC_PID[$name]:-}" ] || vd_fail "executor $name already running"
	"$VD_BIN/vdfs-executor" --server "$VD_URL" --token-file "$VD_STATE/token" \
		--name "$name" --cache "$VD_WORK/cache-$name" --verbose "$@" \
		>>"$VD_WORK/exec-$name.log" 2>&1 </dev/null &
	VD_EXEC_PID[$name]=$!
	vd_note "executor $name pid ${VD_EXEC_PID[$name]}"
}

# vd_kill_executor NAME [SIGNAL]: stop (default TERM) or kill an executor.
vd_kill_executor() {
	local name="$1" sig="${2:-TERM}" pid st
	pid="${VD_EXEC_PID[$name]:-}"
	[ -n "$pid" ] || vd_fail "vd_kill_executor: no executor $name"
	vd__alive "$pid" || vd_fail "executor $name (pid $pid) died before SIG$sig"
	vd__stop_pid "$pid" "$sig"
	st=$VD__ST
	unset "VD_EXEC_PID[$name]"
	vd_note "executor $name ended by SIG$sig (status $st)"
}

# vd_status_word FILE: the first word of a status file, without a colon.
vd_status_word() {
	local s
	s="$(head -n 1 "$1" 2>/dev/null)" || return 1
	s="${s%%[[:space:]]*}"
	echo "${s%:}"
}

# vd_wait_status VERSION_DIR WANT [TIMEOUT]: poll VERSION_DIR/status until
# its first word is WANT, or fail when it reaches another end state
# (done/failed) or the timeout passes.
vd_wait_status() {
	local dir="$1" want="$2" timeout="${3:-$VD_TIMEOUT}" word last="" cur start now
	start=$SECONDS
	while :; do
		cur="$(head -n 1 "$dir/status" 2>/dev/null || true)"
		if [ "$cur" != "$last" ]; then
			vd_note "status: ${cur:-<unreadable>}"
			last="$cur"
		fi
		word="${cur%%[[:space:]]*}"
		word="${word%:}"
		[ "$word" = "$want" ] && return 0
		case "$word" in
		done | failed)
			[ -f "$dir/log" ] && { echo "----- $dir/log -----"; tail -n 20 "$dir/log"; } >&2
			vd_fail "$dir/status is '$cur', wanted $want"
			;;
		esac
		vd_check_daemon
		now=$SECONDS
		if ((now - start >= timeout)); then
			[ -f "$dir/log" ] && { echo "----- $dir/log -----"; tail -n 20 "$dir/log"; } >&2
			vd_fail "timed out after ${timeout}s waiting for $dir/status to be $want; it is '$cur'"
		fi
		sleep 0.5
	done
}

# vd_versions TASK_DIR: the version IDs, one per line (ls order).
vd_versions() {
	ls -1 "$1/versions"
}

# vd_new_version TASK_DIR BEFORE_LIST: print the one version ID that is in
# `ls versions` now and not in BEFORE_LIST (newline-separated); fail unless
# there is exactly one.
vd_new_version() {
	local now new n
	now="$(vd_versions "$1")"
	new="$(comm -13 <(printf '%s\n' "$2" | sed '/^$/d' | LC_ALL=C sort) \
		<(printf '%s\n' "$now" | sed '/^$/d' | LC_ALL=C sort))"
	n=$(printf '%s' "$new" | grep -c . || true)
	[ "$n" = 1 ] || vd_fail "expected exactly one new version in $1/versions, found $n: $(echo "$new" | tr '\n' ' ')"
	echo "$new"
}

# vd_wait_new_version TASK_DIR BEFORE_LIST [TIMEOUT]: wait until a version
# not in BEFORE_LIST appears (trees appear after the settle time); print it.
vd_wait_new_version() {
	local dir="$1" before="$2" timeout="${3:-$VD_TIMEOUT}" start now n
	start=$SECONDS
	while :; do
		n="$(comm -13 <(printf '%s\n' "$before" | sed '/^$/d' | LC_ALL=C sort) \
			<(vd_versions "$dir" | LC_ALL=C sort) | grep -c . || true)"
		((n > 0)) && break
		vd_check_daemon
		now=$SECONDS
		((now - start < timeout)) || vd_fail "no new version in $dir/versions within ${timeout}s"
		sleep 0.5
	done
	vd_new_version "$dir" "$before"
}

# vd_is_id STRING: a data ID is 32 lowercase hex characters.
vd_is_id() {
	[[ "$1" =~ ^[0-9a-f]{32}$ ]]
}

# vd_edit_lines SRC DST SEED TAG [EDITS]: DST is SRC with EDITS (default
# 10) single-line edits at distinct lines drawn from SEED (a Park-Miller
# sequence, so a seed always gives the same edits): each one changes the
# line to "changed by TAG at line N", inserts "inserted by TAG before line
# N" before it, or deletes it, a third of the time each. The versioning
# tests and tools/bench-versions.sh share it; tools/vdfs-bench.sh keeps a
# copy, since `vdfs bench` runs without the source tree.
vd_edit_lines() {
	local n
	n=$(wc -l <"$1")
	awk -v seed="$3" -v n="$n" -v edits="${5:-10}" -v tag="$4" '
	BEGIN {
		x = seed
		for (e = 0; e < edits; ) {
			x = (x * 16807) % 2147483647; ln = 1 + x % n
			x = (x * 16807) % 2147483647; k = x % 3
			if (ln in K) continue
			K[ln] = k; e++
		}
	}
	NR in K {
		if (K[NR] == 0) { print "changed by " tag " at line " NR; next }
		if (K[NR] == 1) print "inserted by " tag " before line " NR
		else next
	}
	{ print }' "$1" >"$2"
}

# vd_gen_text FILE BYTES SEED [WORDS]: write deterministic text of at least
# BYTES bytes: lines of 4-15 words drawn (skewed, a few very common, many
# rare) from a vocabulary of WORDS (default 3000) made-up words. The
# generator is a Park-Miller LCG in awk, so the output is the same on every
# machine and awk.
vd_gen_text() {
	awk -v bytes="$2" -v seed="$3" -v words="${4:-3000}" '
	BEGIN {
		x = seed + 0; if (x <= 0) x = 1
		split("b d f g k l m n p r s t v z", C, " "); nc = 14
		split("a e i o u", V, " ")
		ns = 0
		for (c = 1; c <= nc; c++) for (v = 1; v <= 5; v++) S[ns++] = C[c] V[v]
		nw = 0
		for (i = 0; i < ns && nw < words; i++) W[nw++] = S[i]
		for (i = 0; i < ns && nw < words; i++) for (j = 0; j < ns && nw < words; j++) W[nw++] = S[i] S[j]
		for (i = 0; i < ns && nw < words; i++) for (j = 0; j < ns && nw < words; j++) for (k = 0; k < ns && nw < words; k++) W[nw++] = S[i] S[j] S[k]
		total = 0
		while (total < bytes) {
			x = (x * 16807) % 2147483647
			n = 4 + x % 12
			line = ""
			for (k = 0; k < n; k++) {
				x = (x * 16807) % 2147483647
				r = x / 2147483647
				w = W[int(nw * r * r * r)]
				line = (k ? line " " w : w)
			}
			print line
			total += length(line) + 1
		}
	}' >"$1"
}

# vd_count_words FILE...: the word count computed with standard tools,
# `word,count` rows sorted by word in byte order (what reduce = sum gives).
vd_count_words() {
	cat -- "$@" | tr -s ' \n' '\n' | grep -v '^$' | LC_ALL=C sort | uniq -c |
		awk '{ print $2 "," $1 }'
}

# vd_write_wc_function FILE: the word-count function used by the tests.
vd_write_wc_function() {
	cat >"$1" <<'EOF'
#!/bin/sh
# One "word,count" row per distinct word of this unit; reduce = sum adds them up.
exec awk '{ for (i = 1; i <= NF; i++) n[$i]++ } END { for (w in n) print w "," n[w] }'
EOF
	chmod +x "$1"
}

# vd_same FILE EXPECTED WHAT: cmp two files; on a difference show a diff.
vd_same() {
	if ! cmp -s "$1" "$2"; then
		echo "----- diff (expected vs got), first lines -----" >&2
		diff "$2" "$1" | head -n 20 >&2 || true
		echo "got $(wc -l <"$1") lines, expected $(wc -l <"$2")" >&2
		vd_fail "$3: $1 differs from the expected $2"
	fi
	vd_ok "$3"
}

# vd_expect_erofs WHAT COMMAND...: COMMAND must fail with EROFS.
vd_expect_erofs() {
	local what="$1" out
	shift
	if out="$("$@" 2>&1)"; then
		vd_fail "$what succeeded; it must fail with EROFS"
	fi
	case "$out" in
	*"Read-only file system"*) vd_ok "$what fails with EROFS" ;;
	*) vd_fail "$what failed, but not with EROFS: $out" ;;
	esac
}

#!/usr/bin/env bash
# bench-web.sh - what the web dashboard costs: page loads in headless
# Chromium, and the daemon's CPU with dashboards open on a running task.
#
#   tools/bench-web.sh [N] [WINDOW_S] [LOADS]    (10000, 20, 5)
#
# Environment: VDFS_BUILD (default build/), TABS (dashboards open at once,
# 5), SLEEP (seconds each unit of the running task sleeps, 0.2), TMPDIR
# (work directory).
#
# One daemon (--chunk-size 4096, so that a run has many small units) with
# two executors of two slots each. The python half (tools/bench-web.py,
# /usr/bin/python3 with python3-selenium) prints:
#   - the overview and the task page of a task with N one-line versions
#     (made through the upload API; the time that takes is printed):
#     first contentful paint and ready (window.vdfsReadyAt, once
#     document.body.dataset.ready is "1"), cold (a fresh browser profile
#     per load) and warm (the same browser again), the median of LOADS; the
#     JSON each view fetched; one versions page (100 rows) against the
#     whole list;
#   - vdfsd's CPU time (utime + stime from /proc) in ms per second over
#     WINDOW_S seconds of a running task: with no dashboard, with TABS
#     dashboards on the overview (never throttled as background tabs), and
#     with none again; units done per second in each window; the ratio.
# Loopback only; the browser shares the machine's cores with the daemon and
# the executors, so the CPU rows also give the units/s each window made.
set -euo pipefail

n=${1:-10000}
window=${2:-20}
loads=${3:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../mount-tests/lib.sh
. "$root/mount-tests/lib.sh"
VD_TEST_NAME=bench-web
vd_setup "${VDFS_BUILD:-$root/build}" >&2
VDFS="$VD_BIN/vdfs"
PY=/usr/bin/python3
export PYTHONDONTWRITEBYTECODE=1
why="$("$PY" -c 'import sys; sys.path.insert(0, sys.argv[1]); import vdweb; print(vdweb.missing_prerequisites() or "")' "$root/mount-tests")" ||
	vd_fail "$PY cannot load mount-tests/vdweb.py"
[ -z "$why" ] || vd_fail "cannot drive a browser: $why"
kill_browsers() {
	local p
	for p in /proc/[0-9]*; do
		if tr '\0' '\n' 2>/dev/null <"$p/cmdline" | grep -qF -- "--user-data-dir=$VD_WORK/"; then
			kill -KILL "${p#/proc/}" 2>/dev/null || true
		fi
	done
}
vd_at_exit kill_browsers

vd_start_daemon --chunk-size 4096 >&2
vd_start_executor e1 --slots 2 >&2
vd_start_executor e2 --slots 2 >&2
"$VDFS" user add bench --role submitter --state "$VD_STATE" >"$VD_WORK/bench.tok" 2>/dev/null
"$VDFS" user add viewer --role reader --state "$VD_STATE" >"$VD_WORK/viewer.tok" 2>/dev/null
# The running task: every unit sleeps, then counts its lines.
mkdir "$VD_MNT/tasks/slow"
printf 'reduce = sum\nunit_size = 4K\n' >"$VD_MNT/tasks/slow/config"
printf '#!/bin/sh\nsleep %s\nexec awk '"'"'{ n++ } END { print "lines," n+0 }'"'"'\n' "${SLEEP:-0.2}" \
	>"$VD_MNT/tasks/slow/function"

BW_URL="$VD_URL" BW_MNT="$VD_MNT" BW_STATE="$VD_STATE" BW_WORK="$VD_WORK" BW_PID="$VD_DAEMON_PID" \
	BW_N="$n" BW_WINDOW="$window" BW_LOADS="$loads" BW_TABS="${TABS:-5}" BW_SLEEP="${SLEEP:-0.2}" \
	BW_SLOTS=4 "$PY" "$root/tools/bench-web.py" || vd_fail "tools/bench-web.py failed"

#!/usr/bin/env bash
# t_fail: a function that exits 1 with a message on stderr ends the run
# `failed: unit N: ...` with the reason in status and the stderr in log;
# after the function is replaced by a good one, new data on the same
# daemon runs to done with the right result.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"

IN="$VD_WORK/in"
vd_gen_text "$IN/one.txt" 400000 21 800
vd_gen_text "$IN/two.txt" 400000 22 800
vd_count_words "$IN/two.txt" >"$IN/expected-two.csv"
cat >"$IN/bad.sh" <<'EOF'
#!/bin/sh
# Reads its input, then fails.
cat >/dev/null
echo "vdfs-test-boom: cannot go on (unit $VDFS_UNIT)" >&2
exit 1
EOF
chmod +x "$IN/bad.sh"
vd_write_wc_function "$IN/good.sh"
printf 'reduce = sum\nretries = 2\n' >"$IN/config"

vd_start_daemon
vd_start_executor e1
T="$VD_MNT/tasks/flaky"
mkdir "$T"
cp "$IN/bad.sh" "$T/function"
cp "$IN/config" "$T/config"
cp "$IN/one.txt" "$T/data/one.txt"
id1="$(vd_new_version "$T" "")"
V1="$T/versions/$id1"
vd_wait_status "$V1" failed
st="$(head -n 1 "$V1/status")"
[[ "$st" =~ ^failed:\ unit\ [0-9]+:\ .+ ]] || vd_fail "status '$st' is not 'failed: unit N: <reason>'"
vd_ok "the run failed: $st"
case "$st" in
*"exit"*1* | *vdfs-test-boom*) vd_ok "status gives the reason" ;;
*) vd_fail "status '$st' does not give the reason (exit 1 or the stderr)" ;;
esac
grep -q 'vdfs-test-boom: cannot go on' "$V1/log" || vd_fail "log does not hold the function's stderr: $(cat "$V1/log")"
vd_ok "log holds the function's stderr"
[ ! -e "$V1/result.csv" ] || vd_fail "a failed run has a result.csv"
vd_ok "a failed run has no result.csv"

# Fix the function; submit new data on the same daemon.
cp "$IN/good.sh" "$T/function"
cmp -s "$T/function" "$IN/good.sh" || vd_fail "function does not read back the good code"
before="$(vd_versions "$T")"
cp "$IN/two.txt" "$T/data/two.txt"
id2="$(vd_new_version "$T" "$before")"
vd_wait_status "$T/versions/$id2" "done"
vd_same "$T/versions/$id2/result.csv" "$IN/expected-two.csv" "with the good function, a new run succeeds with the right result"
kill -0 "$VD_DAEMON_PID" 2>/dev/null || vd_fail "vdfsd died"
vd_ok "vdfsd kept serving"

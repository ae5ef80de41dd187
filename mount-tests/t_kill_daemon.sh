#!/usr/bin/env bash
# t_kill_daemon: vdfsd killed with SIGKILL after a version is sealed and
# while its run is queued (no executor yet). After a restart on the same
# state directory the version reads back byte-identical, and the run
# completes once an executor comes.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"

IN="$VD_WORK/in"
vd_gen_text "$IN/text.txt" $((6 * 1024 * 1024)) 99 3000
vd_count_words "$IN/text.txt" >"$IN/expected.csv"
sum="$(sha256sum <"$IN/text.txt")"
vd_write_wc_function "$IN/wc.sh"
printf 'reduce = sum\n' >"$IN/config"

vd_start_daemon
T="$VD_MNT/tasks/crash"
mkdir "$T"
cp "$IN/wc.sh" "$T/function"
cp "$IN/config" "$T/config"
cp "$IN/text.txt" "$T/data/text.txt"
id="$(vd_new_version "$T" "")"
V="$T/versions/$id"
[ "$(vd_status_word "$V/status")" = queued ] || vd_fail "with no executor, status is '$(head -n 1 "$V/status")', expected queued"
vd_ok "version $id sealed, its run queued: $(head -n 1 "$V/status")"

vd_kill_daemon KILL
vd_ok "vdfsd killed with SIGKILL"
vd_start_daemon
vd_ok "vdfsd restarted on the same state directory"

vd_versions "$T" | grep -qx "$id" || vd_fail "version $id is gone after the restart: $(vd_versions "$T")"
[ "$(sha256sum <"$V/input")" = "$sum" ] || vd_fail "versions/$id/input has changed after the restart"
cmp "$V/input" "$IN/text.txt" || vd_fail "versions/$id/input differs from the original"
vd_ok "after the restart versions/$id/input reads back byte-identical"
cmp -s "$T/function" "$IN/wc.sh" || vd_fail "function changed after the restart"
cmp -s "$T/config" "$IN/config" || vd_fail "config changed after the restart"
vd_ok "function and config survived"
[ "$(basename "$(readlink "$T/latest")")" = "$id" ] || vd_fail "latest -> $(readlink "$T/latest") after the restart"
vd_ok "latest still points to $id"

vd_start_executor e1
vd_wait_status "$V" "done"
vd_same "$V/result.csv" "$IN/expected.csv" "the queued run completes after the restart with the right result"

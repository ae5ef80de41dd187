#!/usr/bin/env bash
# t_config: a bad config line is refused where the user sees it.
#   - `echo 'reduce = bogus' > config` from bash fails (write(2) gets
#     EINVAL: bash ignores close errors, so the check must be at write);
#   - an unknown key is refused with the list of known keys in the log;
#   - unit_size below a chunk of the store is refused, not quietly a chunk;
#   - a bad last line without a newline fails at close (cp sees it);
#   - the reason is in vdfsd's log and in the task's latest log; the config
#     keeps what it was; a good config is taken.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"

vd_start_daemon
T="$VD_MNT/tasks/cf"
mkdir "$T"
vd_write_wc_function "$T/function"
printf 'reduce = sum\n' >"$T/config"
printf 'one two\n' >"$T/data/x.txt"

# bash_write TEXT: what bash says for `printf TEXT > config`, and its status.
bash_write() {
	local out st=0
	out="$(bash -c 'printf "$1" > "$2"' _ "$1" "$T/config" 2>&1)" || st=$?
	echo "$st:$out"
}

got="$(bash_write 'reduce = bogus\n')"
case "$got" in
0:*) vd_fail "bash wrote 'reduce = bogus' into config without an error" ;;
*"Invalid argument"*) ;;
*) vd_fail "bash failed, but not with EINVAL: $got" ;;
esac
[ "$(cat "$T/config")" = "reduce = sum" ] || vd_fail "config changed after a refused line: $(cat "$T/config")"
grep -q "config line refused: line 1: reduce: 'bogus' is not one of" "$VD_WORK/vdfsd.log" ||
	vd_fail "vdfsd's log does not give the reason"
grep -q "config line refused: line 1: reduce" "$T/latest/log" ||
	vd_fail "the task's latest log does not give the reason"
vd_ok "echo 'reduce = bogus' > config fails in bash (EINVAL), the reason in both logs"

got="$(bash_write 'reduce = sum\ncolour = blue\n')"
case "$got" in
0:*) vd_fail "an unknown key was taken" ;;
esac
grep -q "line 2: unknown key 'colour' (known: .*reduce.*settle" "$VD_WORK/vdfsd.log" ||
	vd_fail "an unknown key is not refused with the list of known keys"
vd_ok "an unknown key on line 2 is refused with the known keys listed"

got="$(bash_write 'unit_size = 32K\n')"
case "$got" in
0:*) vd_fail "unit_size = 32K on a store of 64 KiB chunks was taken" ;;
esac
grep -q "unit_size: 32768 bytes is smaller than a chunk of this store" "$VD_WORK/vdfsd.log" ||
	vd_fail "unit_size = 32K is not refused with the reason"
got="$(bash_write 'reduce = sum\nunit_size = 2M\n')"
[ "${got%%:*}" = 0 ] || vd_fail "unit_size = 2M was refused: $got"
vd_ok "unit_size = 32K is refused (smaller than a chunk), 2M is taken"

printf 'reduce = sum\nretries = lots' >"$VD_WORK/bad.cfg"
if cp "$VD_WORK/bad.cfg" "$T/config" 2>"$VD_WORK/cp.err"; then
	vd_fail "cp of a config whose last line is bad succeeded"
fi
grep -q "Invalid argument" "$VD_WORK/cp.err" || vd_fail "cp failed, but not with EINVAL: $(cat "$VD_WORK/cp.err")"
[ "$(cat "$T/config")" = "$(printf 'reduce = sum\nunit_size = 2M')" ] ||
	vd_fail "the config changed after a refused last line: $(cat "$T/config")"
vd_ok "a bad last line without a newline fails the close"

printf 'reduce = sum\nretries = 5\n' >"$T/config" || vd_fail "a good config was refused"
[ "$(cat "$T/config")" = "$(printf 'reduce = sum\nretries = 5')" ] || vd_fail "the good config was not stored"
vd_ok "a good config is stored"

# A config change re-runs latest, as a new code does (rerun = latest, the
# default); with rerun = none it does not.
vd_start_executor e1
E="$VD_MNT/tasks/envrun"
mkdir "$E"
printf '#!/bin/sh\ncat >/dev/null\nprintf "%%s,1\\n" "$WORD"\n' >"$VD_WORK/word.sh"
chmod +x "$VD_WORK/word.sh"
cp "$VD_WORK/word.sh" "$E/function"
printf 'reduce = sum\nenv.WORD = alpha\n' >"$E/config"
printf 'x\n' >"$E/data/x.txt"
vd_wait_status "$E/latest" done
[ "$(cat "$E/latest/result.csv")" = "alpha,1" ] || vd_fail "first result: $(cat "$E/latest/result.csv")"
printf 'reduce = sum\nenv.WORD = beta\n' >"$E/config"
for ((i = 0; i < 600; i++)); do
	[ "$(cat "$E/latest/result.csv" 2>/dev/null)" = "beta,1" ] && break
	vd_check_daemon
	sleep 0.2
done
[ "$(cat "$E/latest/result.csv")" = "beta,1" ] || vd_fail "a config change did not re-run latest: $(cat "$E/latest/status")"
grep -q "run queued again: the config changed" "$E/latest/log" || vd_fail "the log does not say why latest ran again"
vd_ok "a config change re-runs latest (the log says why)"
printf 'reduce = sum\nenv.WORD = gamma\nrerun = none\n' >"$E/config"
sleep 3
[ "$(cat "$E/latest/result.csv")" = "beta,1" ] || vd_fail "rerun = none, yet the config change re-ran latest"
vd_ok "with rerun = none a config change re-runs nothing"

# The mount's README lists every key the parser takes (it is made from
# daemon/config_keys.c's table, as vdfs help config is).
keys="$("$VD_BIN/vdfs" help config | sed -n '/^keys:/,/^example:/p' | awk '/^  [A-Za-z_.]+ = / { print $1 }')"
[ "$(echo "$keys" | wc -l)" -ge 15 ] || vd_fail "vdfs help config lists too few keys: $keys"
for key in $keys; do
	grep -q "[(, ]${key}[,)]" "$VD_MNT/README" || vd_fail "the mount's README does not list config key '$key'"
done
vd_ok "the mount's README lists every config key"

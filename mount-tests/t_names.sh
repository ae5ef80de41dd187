#!/usr/bin/env bash
# t_names: what is refused is said in plain words, in vdfsd's log and in
# the task's latest log: a function without a #! line (executors could not
# run it), a name in data/ with a newline or a control character, a name
# longer than 255 bytes.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"
vd_start_daemon
T="$VD_MNT/tasks/nm"
mkdir "$T"
vd_write_wc_function "$T/function"
printf 'a b\n' >"$T/data/first.txt"

printf 'wc -l\n' >"$VD_WORK/noshebang"
cp "$VD_WORK/noshebang" "$T/function"
grep -q "task nm: the function has no #! line and is not a binary" "$VD_WORK/vdfsd.log" ||
	vd_fail "vdfsd's log does not say the function has no #! line"
grep -q "the function has no #! line" "$T/latest/log" || vd_fail "the task's log does not say it"
vd_ok "a function without #! is explained in both logs"

if touch "$T/data/$(printf 'bad\nname')" 2>/dev/null; then
	vd_fail "a name with a newline was taken"
fi
grep -q 'data/bad\\nname refused: it has a newline or another control character' "$VD_WORK/vdfsd.log" ||
	vd_fail "the refused name with a newline is not explained"
grep -q 'data/bad\\nname refused' "$T/latest/log" || vd_fail "the task's log does not name the refused name"
if touch "$T/data/$(printf 'tab\there')" 2>/dev/null; then
	vd_fail "a name with a tab was taken"
fi
grep -q 'data/tab\\x09here refused' "$VD_WORK/vdfsd.log" || vd_fail "the refused name with a tab is not explained"
long="$(printf 'x%.0s' $(seq 300))"
if touch "$T/data/$long" 2>/dev/null; then
	vd_fail "a name of 300 bytes was taken"
fi
grep -q 'refused: longer than 255 bytes' "$VD_WORK/vdfsd.log" || vd_fail "the long name is not explained"
vd_ok "names with a newline, a tab, or over 255 bytes are refused, each explained"

#!/usr/bin/env bash
# t_replicas: with replicas = 2 every unit runs on two different executors
# and is accepted only when their outputs agree. Of three executors one
# corrupts its output on purpose (the function sees LIE=1 in that
# executor's environment only): the result is still exactly the reference,
# and that executor is flagged (executors/liar, the run log).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"

IN="$VD_WORK/in"
vd_gen_text "$IN/raw.txt" $((120 * 1000)) 5 500
awk '{ printf "%06d %s\n", NR, $0 }' "$IN/raw.txt" >"$IN/lines.txt"
awk '{ print length($0) "," $0 }' "$IN/lines.txt" >"$IN/expected.csv"
cat >"$IN/f.sh" <<'FN'
#!/bin/sh
# One row per line; an executor started with LIE=1 changes one of them.
if [ -n "${LIE:-}" ]; then
	exec awk '{ print length($0) "," $0 (NR == 3 ? " (corrupted)" : "") }'
fi
exec awk '{ print length($0) "," $0 }'
FN
chmod +x "$IN/f.sh"
printf 'reduce = concat\nunit_size = 8K\nreplicas = 2\n' >"$IN/config"

vd_start_daemon --chunk-size 4096
T="$VD_MNT/tasks/rep"
mkdir "$T"
cp "$IN/f.sh" "$T/function"
cp "$IN/config" "$T/config"
cp "$IN/lines.txt" "$T/data/lines.txt"
id="$(vd_new_version "$T" "")"
V="$T/versions/$id"
vd_note "status: $(cat "$V/status")"

LIE=1 vd_start_executor liar --slots 2
vd_start_executor h1 --slots 2
vd_start_executor h2 --slots 2
vd_wait_status "$V" done
vd_same "$V/result.csv" "$IN/expected.csv" "with one lying executor of three, the result is still exact"

flagged="$(sed -n 's/^flagged: //p' "$VD_MNT/executors/liar")"
vd_note "executors/liar: $(tr '\n' ' ' <"$VD_MNT/executors/liar")"
[ -n "$flagged" ] && ((flagged > 0)) || vd_fail "executors/liar is not flagged: $(cat "$VD_MNT/executors/liar")"
grep -q 'executor=liar disagreed' "$V/log" || vd_fail "the run log does not name the liar"
for h in h1 h2; do
	f="$(sed -n 's/^flagged: //p' "$VD_MNT/executors/$h")"
	[ "$f" = 0 ] || vd_fail "honest executor $h is flagged ($f)"
done
vd_ok "the liar is flagged ($flagged disagreements), the honest executors are not"
# Every accepted unit was vouched for by two different executors.
units="$(sed -n 's/^done \([0-9]*\)\/.*/\1/p' "$V/status")"
agreed="$(grep -c 'exit=0 .* agreed by [A-Za-z0-9._-]*,[A-Za-z0-9._-]*$' "$V/log" || true)"
[ "$agreed" = "$units" ] || vd_fail "$agreed of $units units were accepted with two agreeing executors"
vd_ok "all $units units were accepted on the agreement of two executors"

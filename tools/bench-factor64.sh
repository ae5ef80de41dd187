#!/usr/bin/env bash
# bench-factor64.sh - many cheap units: factoring N random 64-bit integers
# through vdfs with two executors, in persistent mode and in exec mode,
# against gp (pari-gp) factoring the same list in one process, in the same
# run (issue 16: "persistent vs PARI/gp one process, goal <= 1.5 x").
#
#   tools/bench-factor64.sh [N] [ROUNDS]        (defaults 100000, 3)
#
# Each round, in turn: gp alone on the list (wall time), then the list as one
# file `cp` into a new persistent task, then into a new exec task (each
# task's function differs by a comment, so nothing is reused from another
# round or mode); vdfs time is the wall time from the cp to `done`. The
# file is cut into units of one chunk each (`unit_size` = the chunk size),
# CHUNK bytes on average: with the default 4096, about 200 numbers per unit
# and some 500 units per mode, the "many cheap units" case where a process
# per unit (PARI set up each time) costs most; CHUNK=65536 gives some 30
# units of 3,000 numbers. Every result is compared with gp's rows (equal,
# or the script fails). Prints each round and the best of ROUNDS for each,
# with vdfs time / gp time.
#
# Environment: VDFS_BUILD (default build/), TMPDIR (work directory),
# CHUNK (default 4096).
set -euo pipefail

n="${1:-100000}"
chunk="${CHUNK:-4096}"
rounds="${2:-3}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${VDFS_BUILD:-$root/build}"
for p in vdfs-factor vdfsd vdfs-executor; do
	[ -x "$build/bin/$p" ] || { echo "bench-factor64: $build/bin/$p is not built" >&2; exit 2; }
done
command -v gp >/dev/null || { echo "bench-factor64: needs gp (apt-get install pari-gp)" >&2; exit 2; }

# shellcheck source=../mount-tests/lib.sh
. "$root/mount-tests/lib.sh"
VD_TEST_NAME=bench-factor64
vd_setup "$build"
W="$VD_WORK/in"
mkdir -p "$W"

# gp_factor IN OUT: gp's rows "n,p1,p2,..." for every line of IN, in one
# process (what a user with PARI would run instead).
gp_factor() {
	cat >"$1.gp" <<EOF
default(debugmem, 0); default(parisizemax, 1000000000);
v = readvec("$1");
{
for (i = 1, #v,
  f = factor(v[i]); s = Str(v[i]);
  for (j = 1, #f~, for (k = 1, f[j, 2], s = concat(s, concat(",", Str(f[j, 1])))));
  print(s));
}
EOF
	gp -q -f "$1.gp" </dev/null >"$2"
}
secs() { date +%s.%N; }
dt() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
min() { sort -n | head -n 1; }

# Uniform in [2, 2^64): most have a large prime factor, some are hard
# (two factors near 2^32), all are cheap for PARI.
echo "setrand(1604); for (i = 1, $n, print(2 + random(2^64 - 2)))" | gp -q -f >"$W/list.txt"
gp_factor "$W/list.txt" "$W/gp.csv"
[ "$(wc -l <"$W/gp.csv")" = "$n" ] || vd_fail "gp gave $(wc -l <"$W/gp.csv") rows for $n numbers"

vd_start_daemon --chunk-size "$chunk"
vd_start_executor e1
vd_start_executor e2
for ((i = 0; i < 100; i++)); do
	[ "$(ls "$VD_MNT/executors" | wc -l)" -ge 2 ] && break
	sleep 0.1
done

# through MODE ROUND: the list through a new task in MODE; sets T_WALL to
# the seconds from the cp to done and T_UNITS, and checks the result
# against gp's rows (in this shell, so that a failure ends the script).
T_WALL="" T_UNITS=""
through() {
	local mode="$1" r="$2" T id s t0 t1
	T="$VD_MNT/tasks/f64-$mode-$r"
	mkdir "$T"
	{ cat "$root/docs/examples/factor/function"; echo "# bench round $r, $mode"; } >"$T/function"
	printf 'reduce = concat\nmode = %s\ntimeout = 600\nunit_size = %s\n' "$mode" "$chunk" >"$T/config"
	t0="$(secs)"
	cp "$W/list.txt" "$T/data/list.txt"
	id=""
	while :; do
		[ -z "$id" ] && id="$(vd_versions "$T" | head -n 1)"
		if [ -n "$id" ]; then
			s="$(vd_status_word "$T/versions/$id/status" || true)"
			[ "$s" = done ] && break
			[ "$s" = failed ] && vd_fail "$mode round $r failed: $(cat "$T/versions/$id/status")"
		fi
		vd_check_daemon
		sleep 0.02
	done
	t1="$(secs)"
	cmp -s "$T/versions/$id/result.csv" "$W/gp.csv" || vd_fail "$mode round $r: the result differs from gp's rows"
	T_UNITS="$(sed -n 's/^done \([0-9]*\)\/.*/\1/p' "$T/versions/$id/status")"
	T_WALL="$(dt "$t0" "$t1")"
}

: >"$W/gp.t"
: >"$W/persistent.t"
: >"$W/exec.t"
for ((r = 1; r <= rounds; r++)); do
	t0="$(secs)"
	gp_factor "$W/list.txt" /dev/null
	tg="$(dt "$t0" "$(secs)")"
	echo "$tg" >>"$W/gp.t"
	through persistent "$r"
	tp=$T_WALL up=$T_UNITS
	echo "$tp" >>"$W/persistent.t"
	through exec "$r"
	te=$T_WALL ue=$T_UNITS
	echo "$te" >>"$W/exec.t"
	echo "round $r: $n numbers: gp one process ${tg} s; vdfs persistent ${tp} s ($up units), exec ${te} s ($ue units), 2 executors; rows equal to gp's"
done
g="$(min <"$W/gp.t")"
p="$(min <"$W/persistent.t")"
e="$(min <"$W/exec.t")"
awk -v n="$n" -v r="$rounds" -v g="$g" -v p="$p" -v e="$e" 'BEGIN {
	printf "best of %d: %d random 64-bit integers: gp one process %.2f s; vdfs persistent %.2f s = %.2f x gp; vdfs exec %.2f s = %.2f x gp\n",
		r, n, g, p, p / g, e, e / g }'
echo "units of one chunk, $chunk bytes on average (CHUNK)"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
vd_ok "bench-factor64 done"

#!/usr/bin/env bash
# bench-workloads.sh - the factoring and forecasting workloads against what a
# user would pick instead, on the same inputs in the same run:
#
#   (a) vdfs-factor's throughput per core against gp (pari-gp) on balanced
#       128-bit semiprimes (two random 64-bit primes): numbers per CPU
#       second, each program run alone, best of ROUNDS; and the same on
#       easy numbers, where a per-number overhead would show (100,000
#       integers below 10^12, 5,000 of 25 digits);
#   (b) the same kind of list through vdfs (cp -r of FILES files into a task,
#       two executors on this machine) against gp alone on the whole list:
#       wall time from the cp to `done` (the tree's 1 s settle time
#       included), against gp's wall time, best of ROUNDS alternated runs;
#   (c) vdfs-forecast's day-ahead MAPE on the last 14 days of the taylor
#       series (model trained on the first 70 days) against the seasonal
#       naive forecast (the same half-hour a week earlier) and the naive one
#       (a day earlier).
#
#   tools/bench-workloads.sh [N_A] [N_B] [FILES] [ROUNDS]
#                            (defaults 200 semiprimes, 400, 20 files, 3 rounds)
#
# Every factor output is compared with gp's own rows (they must be equal),
# so a fast wrong answer cannot pass. Environment: VDFS_BUILD (default
# build), VDFS_DATA_DIR (see tools/data-taylor.sh). Prints a table.
set -euo pipefail

n_a="${1:-200}"
n_b="${2:-400}"
files="${3:-20}"
rounds="${4:-3}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${VDFS_BUILD:-$root/build}"
for p in vdfs-factor vdfs-forecast vdfsd vdfs-executor; do
	[ -x "$build/bin/$p" ] || { echo "bench-workloads: $build/bin/$p is not built" >&2; exit 2; }
done
command -v gp >/dev/null || { echo "bench-workloads: needs gp (apt-get install pari-gp)" >&2; exit 2; }

# The harness of the mount tests starts and stops vdfsd and executors (only
# the processes it started) and removes its work directory.
# shellcheck source=../mount-tests/lib.sh
. "$root/mount-tests/lib.sh"
vd_setup "$build"
W="$VD_WORK/in"

# semiprimes N SEED FILE: N products of two random 64-bit primes.
semiprimes() {
	echo "setrand($2); for (i = 1, $1, print(randomprime([2^63, 2^64 - 1]) * randomprime([2^63, 2^64 - 1])))" |
		gp -q -f >"$3"
}
# gp_factor IN OUT: gp's rows "n,p1,p2,..." for every line of IN.
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
# gp_pair: gp on the two halves of the (b) list at once, two processes: how
# much two cores give right now, whatever else runs on them.
gp_pair() {
	local pid
	gp_factor "$W/b-half1.txt" /dev/null &
	pid=$!
	gp_factor "$W/b-half2.txt" /dev/null
	wait "$pid"
}
tv="" tg="" tp=""
# timed VAR CMD...: run CMD, set VAR to "wall cpu" seconds (cpu: user +
# system of the command and its children).
timed() {
	local __var="$1" t
	shift
	t="$( { TIMEFORMAT='%R %U %S'; time "$@" >/dev/null; } 2>&1 | tail -n 1)"
	printf -v "$__var" '%s' "$(awk '{ printf "%.3f %.3f", $1, $2 + $3 }' <<<"$t")"
}
min() { awk 'NR == 1 || $1 < m { m = $1 } END { print m }'; }

# ---- (a) throughput per core ---------------------------------------------
# per_core NAME FILE: check vdfs-factor's rows against gp's on FILE, then
# time both ROUNDS times, alternated; appends "NAME count vdfs_cpu gp_cpu"
# (best CPU seconds of each) to $W/a.res.
per_core() {
	local name="$1" f="$2" r tv tg
	gp_factor "$f" "$W/$name-gp.csv"
	"$build/bin/vdfs-factor" <"$f" >"$W/$name-vdfs.csv"
	cmp -s "$W/$name-gp.csv" "$W/$name-vdfs.csv" || vd_fail "vdfs-factor's rows differ from gp's on $name"
	: >"$W/$name-vdfs.t"
	: >"$W/$name-gp.t"
	for ((r = 1; r <= rounds; r++)); do
		timed tv "$build/bin/vdfs-factor" <"$f"
		timed tg gp_factor "$f" /dev/null
		echo "${tv#* }" >>"$W/$name-vdfs.t"
		echo "${tg#* }" >>"$W/$name-gp.t"
		vd_note "(a) $name, round $r: vdfs-factor $tv, gp $tg (wall cpu, s)"
	done
	echo "$name $(wc -l <"$f") $(min <"$W/$name-vdfs.t") $(min <"$W/$name-gp.t")" >>"$W/a.res"
}
: >"$W/a.res"
semiprimes "$n_a" 1001 "$W/a.txt"
per_core semiprimes "$W/a.txt"
# Easy numbers, where a per-number overhead would show: below 10^12 (they
# are factored in vdfs-factor's own process) and of 25 digits (they go to
# its worker process, a pipe round trip each).
echo "setrand(1002); for (i = 1, 100000, print(2 + random(10^12)))" | gp -q -f >"$W/small.txt"
per_core small "$W/small.txt"
echo "setrand(1003); for (i = 1, 5000, print(10^24 + random(9 * 10^24)))" | gp -q -f >"$W/d25.txt"
per_core d25 "$W/d25.txt"

# ---- (b) distributed -----------------------------------------------------
# Each round: gp alone on the whole list, then the list through vdfs as a
# new task whose function differs by a comment (a new code ID, so nothing is
# reused from the round before), alternated so that both see the same load.
semiprimes "$n_b" 2002 "$W/b.txt"
mkdir -p "$W/b"
split -n "l/$files" -d -a 3 --additional-suffix=.txt "$W/b.txt" "$W/b/part-"
head -n $((n_b / 2)) "$W/b.txt" >"$W/b-half1.txt"
tail -n +$((n_b / 2 + 1)) "$W/b.txt" >"$W/b-half2.txt"
gp_factor "$W/b.txt" "$W/b-gp.csv"
vd_start_daemon
vd_start_executor e1
vd_start_executor e2
# Let both executors register before any clock starts.
for ((i = 0; i < 100; i++)); do
	[ "$(ls "$VD_MNT/executors" | wc -l)" -ge 2 ] && break
	sleep 0.1
done
: >"$W/b-vdfs.t"
: >"$W/b-gp.t"
: >"$W/b-pair.t"
for ((r = 1; r <= rounds; r++)); do
	timed tg gp_factor "$W/b.txt" /dev/null
	echo "${tg% *}" >>"$W/b-gp.t"
	timed tp gp_pair
	echo "${tp% *}" >>"$W/b-pair.t"
	T="$VD_MNT/tasks/factor-$r"
	mkdir "$T"
	{ cat "$root/docs/examples/factor/function"; echo "# bench round $r"; } >"$T/function"
	printf 'reduce = concat\nsettle = 1\n' >"$T/config"
	before="$(vd_versions "$T")"
	t0="$(date +%s.%N)"
	cp -r "$W/b" "$T/data/"
	# vd_wait_new_version polls every 0.5 s; poll finer here for the clock.
	while [ "$(vd_versions "$T" | wc -l)" = 0 ]; do
		vd_check_daemon
		sleep 0.05
	done
	ts="$(date +%s.%N)"
	id="$(vd_new_version "$T" "$before")"
	while :; do
		s="$(vd_status_word "$T/versions/$id/status" || true)"
		[ "$s" = "done" ] && break
		[ "$s" = failed ] && vd_fail "the run failed: $(cat "$T/versions/$id/status")"
		vd_check_daemon
		sleep 0.05
	done
	t1="$(date +%s.%N)"
	tv="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
	echo "$tv" >>"$W/b-vdfs.t"
	cmp -s "$T/versions/$id/result.csv" "$W/b-gp.csv" || vd_fail "the distributed result differs from gp's rows"
	units="$(grep ' exit=' "$T/versions/$id/log" | grep -o 'executor=[^ ]*' | sort | uniq -c | tr -s ' \n' ' ')"
	vd_note "(b) round $r: $n_b semiprimes in $files files: vdfs ${tv}s wall ($(awk -v a="$t0" -v b="$ts" 'BEGIN { printf "%.2f", b - a }')s of it until the tree was a version; units:$units), gp alone ${tg% *}s wall, two gp on halves ${tp% *}s wall; rows equal"
done
b_v="$(min <"$W/b-vdfs.t")"
b_gp="$(min <"$W/b-gp.t")"
b_pair="$(min <"$W/b-pair.t")"

# ---- (c) forecast --------------------------------------------------------
data="${VDFS_DATA_DIR:-$root/build/data}/taylor.csv"
"$root/tools/data-taylor.sh" "$data" || vd_fail "cannot fetch the taylor series"
head -n 3361 "$data" | "$build/bin/vdfs-forecast" train >"$W/model.txt" 2>/dev/null
"$build/bin/vdfs-forecast" features --from 2000-08-14T00:00 <"$data" >"$W/rows.csv"
"$build/bin/vdfs-forecast" predict --model "$W/model.txt" <"$W/rows.csv" >"$W/pred.csv"
read -r c_m c_sn c_n < <(paste -d, "$W/rows.csv" <(echo time,prediction; cat "$W/pred.csv") |
	awk -F, 'function ape(f, y) { return (f > y ? f - y : y - f) / y }
	NR > 1 { m += ape($7, $5); s += ape($3, $5); d += ape($2, $5); n++ }
	END { printf "%.3f %.3f %.3f\n", 100 * m / n, 100 * s / n, 100 * d / n }')

# ---- the table -----------------------------------------------------------
echo
echo "| measure | vdfs | baseline | ratio |"
echo "|---|---|---|---|"
awk 'BEGIN { d["semiprimes"] = "balanced 128-bit semiprimes"; d["small"] = "random integers below 10^12";
	d["d25"] = "random 25-digit integers" }
{ printf "| (a) factor %d %s, per core (best CPU time) | %.1f /s (%.2f s) | gp %.1f /s (%.2f s) | %.2f x gp |\n",
	$2, d[$1], $2 / $3, $3, $2 / $4, $4, $4 / $3 }' "$W/a.res"
awk -v n="$n_b" -v f="$files" -v v="$b_v" -v g="$b_gp" -v p="$b_pair" 'BEGIN {
	printf "| (b) %d semiprimes in %d files through vdfs, 2 executors, 2 cores (best wall, from cp -r to done, settle 1 s included) | %.2f s | gp alone %.2f s | speed-up %.2f (gp time / vdfs time) |\n",
		n, f, v, g, g / v
	printf "| (b) control: the same list as two halves, two gp processes at once (best wall) | | %.2f s | speed-up %.2f: what two cores give now |\n",
		p, g / p }'
echo "| (c) forecast MAPE, last 14 days of taylor (trained on the first 70) | $c_m % | seasonal naive $c_sn % (naive day $c_n %) | $(awk -v a="$c_m" -v b="$c_sn" 'BEGIN { printf "%.2f", a / b }') x the seasonal naive error |"
echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg)"

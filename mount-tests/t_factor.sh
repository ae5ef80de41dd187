#!/usr/bin/env bash
# t_factor: the factoring example (docs/examples/factor) run through the
# mount as a user would: its function and config copied into a new task,
# 1,000 lines from its make-numbers.sh (balanced semiprimes of 64 to 128
# bits, primes, prime powers, ordinary and negative integers, 0, 1, a
# 10,000-digit number, and lines that are not integers) copied with `cp -r`
# as 10 files, two executors. Checked independently:
#   - one row per non-blank line, in input order; each row's number is the
#     line's integer in canonical form (awk), or the row is the line with
#     ",error: not an integer";
#   - gp (pari-gp): every row's factors multiply to n, ascend, and each is
#     a proven prime (isprime), -1 only leading a negative n, 0 only for 0;
#   - the documented conventions for 0, 1, -1, -12, signs, zeros, spaces.
# Then a task with env.FACTOR_TIME_LIMIT = 1 gets a 200-digit semiprime
# between two easy numbers: its row is "n,error: time limit", the others
# are right, and the run log has the function's note on it.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EX="$ROOT/docs/examples/factor"
IN="$VD_WORK/in"
command -v gp >/dev/null || vd_fail "gp is not installed (apt-get install pari-gp; tools/setup.sh does)"
[ -x "$VD_BIN/vdfs-factor" ] || vd_fail "$VD_BIN/vdfs-factor is not built"

"$EX/make-numbers.sh" "$IN/numbers" 1000 10
cat "$IN"/numbers/part-*.txt >"$IN/all.txt"
[ "$(wc -l <"$IN/all.txt")" = 1000 ] || vd_fail "make-numbers.sh wrote $(wc -l <"$IN/all.txt") lines, not 1000"
vd_note "1000 lines in $(ls "$IN/numbers" | wc -l) files, $(wc -c <"$IN/all.txt") bytes"

# What each non-blank line must give, from the line alone: "I <canonical
# integer>" or "E <the whole error row>".
awk '{
	t = $0
	gsub(/^[ \t\r]+|[ \t\r]+$/, "", t)
	if (t == "") next
	if (t ~ /^[+-]?[0-9]+$/) {
		neg = substr(t, 1, 1) == "-"
		d = t
		sub(/^[+-]/, "", d)
		sub(/^0+/, "", d)
		if (d == "") { d = "0"; neg = 0 }
		print "I " (neg ? "-" : "") d
	} else {
		f = $0
		if (f ~ /[,"]/) { gsub(/"/, "\"\"", f); f = "\"" f "\"" }
		print "E " f ",error: not an integer"
	}
}' "$IN/all.txt" >"$IN/expected.txt"
nexp="$(wc -l <"$IN/expected.txt")"
nbad="$(grep -c '^E ' "$IN/expected.txt" || true)"
((nbad >= 20)) || vd_fail "the input has only $nbad lines that are not integers"

vd_start_daemon
T="$VD_MNT/tasks/factor"
mkdir "$T"
cp "$EX/function" "$T/function"
cp "$EX/config" "$T/config"
vd_ok "the example's function and config copied into tasks/factor"
before="$(vd_versions "$T")"
cp -r "$IN/numbers" "$T/data/"
id="$(vd_wait_new_version "$T" "$before")"
vd_ok "cp -r of 10 files of numbers became version $id"
vd_start_executor e1
vd_start_executor e2
vd_wait_status "$T/versions/$id" "done"
R="$IN/result.csv"
cp "$T/versions/$id/result.csv" "$R"
vd_note "units per executor (from the run log):$(grep ' exit=' "$T/versions/$id/log" | grep -o 'executor=[^ ]*' | sort | uniq -c | tr -s ' \n' ' ' || true)"

nres="$(wc -l <"$R")"
[ "$nres" = "$nexp" ] || vd_fail "result.csv has $nres rows; the input has $nexp non-blank lines"
vd_ok "one row per non-blank input line ($nres rows, $nbad of them errors)"

# Row by row against the expectations (the integer rows by their first
# field: the factors are gp's to check).
awk 'NR == FNR { want[FNR] = $0; next }
{
	w = want[FNR]
	if (substr(w, 1, 2) == "E ") {
		if ($0 != substr(w, 3)) { print "row " FNR ": got [" $0 "], want [" substr(w, 3) "]"; bad++ }
	} else {
		n = $0
		sub(/,.*/, "", n)
		if (n != substr(w, 3) || $0 ~ /error/) { print "row " FNR ": got [" substr($0, 1, 80) "], want n = " substr(w, 3, 80); bad++ }
	}
}
END { exit bad > 0 }' "$IN/expected.txt" "$R" >"$IN/order.txt" ||
	{ head -n 10 "$IN/order.txt" >&2; vd_fail "$(wc -l <"$IN/order.txt") rows are not what their input line asks for"; }
vd_ok "rows are in input order; each names its line's integer in canonical form, or is the line's error row"

# The factors, checked with gp: rows "n,p1,p2,..." become [n,[p1,p2,...]].
grep -v ',error: ' "$R" |
	awk -F, '{ printf "[%s,[", $1; for (i = 2; i <= NF; i++) printf "%s%s", (i > 2 ? "," : ""), $i; print "]]" }' \
	>"$IN/rows.gp"
nint="$(wc -l <"$IN/rows.gp")"
cat >"$IN/check.gp" <<EOF
default(debugmem, 0); default(parisizemax, 1000000000);
v = readvec("$IN/rows.gp");
{
bad = 0;
for (i = 1, #v,
  n = v[i][1]; f = v[i][2]; ok = (vecprod(f) == n) && (vecsort(f) == f);
  for (j = 1, #f,
    p = f[j];
    ok = ok && if (p == -1, j == 1 && n < 0, p == 0, n == 0 && #f == 1, isprime(p)));
  if (!ok, bad++; if (bad <= 5, print("BAD row ", i, ": ", n, " -> ", f))));
print(#v, " ", bad);
}
EOF
out="$(gp -q -f "$IN/check.gp" </dev/null 2>&1)"
last="$(tail -n 1 <<<"$out")"
[ "$last" = "$nint 0" ] || { echo "$out" | tail -n 8 >&2; vd_fail "gp: the factor rows do not check out (rows, bad: $last; expected $nint 0)"; }
vd_ok "gp: in all $nint integer rows the factors multiply to n, ascend, and are proven primes"

for row in "0,0" "1" "-1,-1" "-12,-1,2,2,3" "84,2,2,3,7" "9973,9973" "42,2,3,7" "65537,65537" \
	"18446744073709551557,18446744073709551557" \
	"18446744073709551616$(printf ',2%.0s' $(seq 64))"; do
	grep -qxF -- "$row" "$R" || vd_fail "no row '$row' in result.csv"
done
big="$(awk -F, 'length($1) == 10000 { print NF - 1; exit }' "$R")"
[ "$big" = 33217 ] || vd_fail "the 10,000-digit 3*2^33216 should have 33217 factors; its row has '${big:-no row}'"
vd_ok "conventions: 0,0 / 1 / -1,-1 / -12,-1,2,2,3; '+84', '0042', ' 9973 ', tab-padded '+65537' read as integers; a 10,000-digit number factored"

# A per-number time limit from the config reaches vdfs-factor.
L="$VD_MNT/tasks/factor-limit"
mkdir "$L"
cp "$EX/function" "$L/function"
sed 's/^env\.FACTOR_TIME_LIMIT = .*/env.FACTOR_TIME_LIMIT = 1/' "$EX/config" >"$IN/limit-config"
grep -qx 'env.FACTOR_TIME_LIMIT = 1' "$IN/limit-config" || vd_fail "the example config has no env.FACTOR_TIME_LIMIT line to change"
cp "$IN/limit-config" "$L/config"
hard="$(echo 'setrand(5); print(randomprime(10^99) * randomprime(10^99))' | gp -q -f)"
printf '12\n%s\n35\n' "$hard" >"$IN/limit.txt"
printf '12,2,2,3\n%s,error: time limit\n35,5,7\n' "$hard" >"$IN/limit-expected.csv"
before="$(vd_versions "$L")"
cp "$IN/limit.txt" "$L/data/limit.txt"
lid="$(vd_new_version "$L" "$before")"
vd_wait_status "$L/versions/$lid" "done"
vd_same "$L/versions/$lid/result.csv" "$IN/limit-expected.csv" \
	"env.FACTOR_TIME_LIMIT = 1: a 200-digit semiprime gets 'n,error: time limit', the rest go on"
grep -q 'vdfs-factor: line 2: time limit of 1 s passed' "$L/versions/$lid/log" ||
	vd_fail "the run log does not have vdfs-factor's note on the line that ran out of time"
vd_ok "the run log has vdfs-factor's note naming the line that ran out of time"

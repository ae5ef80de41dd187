#!/usr/bin/env bash
# t_forecast: the forecasting example (docs/examples/forecast) on real data,
# through the mount, as a user would run it:
#   - the `taylor` series is fetched from Debian (tools/data-taylor.sh; the
#     test fails, not skips, when it cannot be had);
#   - `vdfs-forecast train --script` on the first 70 days makes exactly the
#     example's function (the README's command);
#   - the example's make-input.sh writes the last 14 days' rows, whose lags
#     equal the series' own values 48, 336 and 384 rows earlier (awk);
#   - through the mount with two executors, result.csv has one row per input
#     row, in order, each a number, and equal (to 1e-6 relative) to what R's
#     lm() predicts with the same per-half-hour regression, fitted
#     independently on the same 70 days;
#   - rows with a missing or non-numeric lag or a bad time get an empty
#     prediction, the row count is kept, the other rows are unchanged, and
#     the run log has a note for each;
#   - a model retrained on 63 days, copied in as the function, is a new code
#     version: the latest version is forecast again, both runs stay under
#     runs/CODE-ID/, and code/CODE-ID holds each run's model.
# MAPE against the seasonal-naive forecast is printed, not asserted (that
# is tools/bench-workloads.sh's to report).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EX="$ROOT/docs/examples/forecast"
IN="$VD_WORK/in"
FC="$VD_BIN/vdfs-forecast"
[ -x "$FC" ] || vd_fail "$FC is not built"
DATA="${VDFS_DATA_DIR:-$ROOT/build/data}/taylor.csv"
"$ROOT/tools/data-taylor.sh" "$DATA" ||
	vd_fail "the taylor series could not be fetched (tools/data-taylor.sh $DATA); this test needs it"
[ "$(wc -l <"$DATA")" = 4033 ] || vd_fail "$DATA does not hold 4,032 rows"
vd_ok "the taylor series is at $DATA ($(cat "$DATA.version" 2>/dev/null || echo 'version unknown'))"
command -v Rscript >/dev/null || vd_fail "Rscript is missing (tools/data-taylor.sh installs r-base-core)"

# Train as the README says, and compare with the example's function.
head -n 3361 "$DATA" | "$FC" train --script >"$IN/function" 2>"$IN/train.err"
vd_note "$(cat "$IN/train.err")"
cmp -s "$IN/function" "$EX/function" ||
	vd_fail "train on the first 70 days does not make docs/examples/forecast/function (regenerate it with the README's command)"
vd_ok "vdfs-forecast train --script on the first 70 days makes the example's function"

VDFS_BIN="$VD_BIN" VDFS_DATA_DIR="$(dirname "$DATA")" "$EX/make-input.sh" "$IN/rows.csv"
awk -F, 'NR > 1 { t[NR - 1] = $1; y[NR - 1] = $2 }
END {
	print "time,lag48,lag336,lag384,load"
	for (i = 3361; i <= 4032; i++) print t[i] "," y[i - 48] "," y[i - 336] "," y[i - 384] "," y[i]
}' "$DATA" >"$IN/rows-awk.csv"
vd_same "$IN/rows.csv" "$IN/rows-awk.csv" "make-input.sh's rows hold the loads 48, 336 and 384 half-hours earlier (awk)"

vd_start_daemon
T="$VD_MNT/tasks/forecast"
mkdir "$T"
cp "$EX/function" "$T/function"
cp "$EX/config" "$T/config"
before="$(vd_versions "$T")"
cp "$IN/rows.csv" "$T/data/last14.csv"
id="$(vd_new_version "$T" "$before")"
vd_start_executor e1
vd_start_executor e2
vd_wait_status "$T/versions/$id" "done"
cp "$T/versions/$id/result.csv" "$IN/result.csv"

n="$(wc -l <"$IN/result.csv")"
[ "$n" = 672 ] || vd_fail "result.csv has $n rows; the input has 672"
tail -n +2 "$IN/rows.csv" | cut -d, -f1 >"$IN/times.txt"
cut -d, -f1 "$IN/result.csv" >"$IN/result-times.txt"
vd_same "$IN/result-times.txt" "$IN/times.txt" "result.csv has one row per input row, same times, same order"
bad="$(awk -F, 'NF != 2 || $2 !~ /^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$/' "$IN/result.csv" | head -n 3)"
[ -z "$bad" ] || vd_fail "rows without a numeric prediction: $bad"
vd_ok "every prediction is a number"

# The same regression fitted by R: per half-hour, load on day-type dummies
# and the loads 1, 7 and 8 days earlier, on the first 70 days.
cat >"$IN/check.R" <<'EOF'
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1]); got <- read.csv(args[2], header = FALSE)
y <- d$load; n <- length(y); i <- seq_len(n)
lag <- function(k) c(rep(NA, k), y[seq_len(n - k)])
slot <- (i - 1) %% 48
dow <- ((i - 1) %/% 48) %% 7                  # the series starts on a Monday
dt <- factor(ifelse(dow == 0, "mon", ifelse(dow == 5, "sat", ifelse(dow == 6, "sun", "wk"))))
df <- data.frame(y = y, dt = dt, l48 = lag(48), l336 = lag(336), l384 = lag(384))
tr <- 1:3360; te <- 3361:4032; p <- rep(NA, length(te))
for (s in 0:47) {
  rt <- tr[slot[tr] == s & !is.na(df$l384[tr])]
  m <- lm(y ~ dt + l48 + l336 + l384, data = df[rt, ])
  k <- which(slot[te] == s)
  p[k] <- predict(m, df[te[k], ])
}
rel <- max(abs(got$V2 - p) / abs(p))
cat(sprintf("%.3g %.4f %.4f\n", rel, 100 * mean(abs(got$V2 - y[te]) / y[te]),
            100 * mean(abs(df$l336[te] - y[te]) / y[te])))
EOF
read -r rel mape naive < <(Rscript --vanilla "$IN/check.R" "$DATA" "$IN/result.csv" 2>"$IN/r.err") ||
	{ cat "$IN/r.err" >&2; vd_fail "the R check did not run"; }
awk -v r="$rel" 'BEGIN { exit !(r + 0 < 1e-6) }' ||
	vd_fail "predictions differ from R's lm() by up to $rel (relative)"
vd_ok "predictions equal R's lm() on the same regression (largest relative difference $rel)"
vd_note "MAPE of the forecasts on the last 14 days: $mape %; seasonal naive (a week earlier): $naive %"

# Bad rows: a missing lag, a non-numeric lag, a bad time, a short row.
awk -F, -v OFS=, 'NR == 6 { $2 = "" } NR == 101 { $3 = "n/a" } NR == 201 { $1 = "yesterday" }
	NR == 301 { $0 = $1 "," $2 } { print }' "$IN/rows.csv" >"$IN/rows-bad.csv"
before="$(vd_versions "$T")"
cp "$IN/rows-bad.csv" "$T/data/last14-bad.csv"
id2="$(vd_new_version "$T" "$before")"
vd_wait_status "$T/versions/$id2" "done"
cp "$T/versions/$id2/result.csv" "$IN/result-bad.csv"
awk -F, 'NR == FNR { good[FNR] = $0; next }
	FNR == 5 || FNR == 100 || FNR == 200 || FNR == 300 { if ($2 != "" || NF != 2) { print "row " FNR ": " $0; bad++ }; next }
	$0 != good[FNR] { print "row " FNR ": " $0 " vs " good[FNR]; bad++ }
	END { if (FNR != 672) { print FNR " rows"; bad++ }; exit bad > 0 }' \
	"$IN/result.csv" "$IN/result-bad.csv" >"$IN/bad-diff.txt" ||
	{ head "$IN/bad-diff.txt" >&2; vd_fail "rows with bad features are not handled as documented"; }
[ "$(sed -n 200p "$IN/result-bad.csv")" = "yesterday," ] || vd_fail "the bad time's row is '$(sed -n 200p "$IN/result-bad.csv")'"
vd_ok "rows with a missing or non-numeric lag or a bad time get an empty prediction; 672 rows kept, the others unchanged"
nnotes="$(grep -o 'no prediction' "$T/versions/$id2/log" | wc -l)"
[ "$nnotes" = 4 ] || vd_fail "expected 4 'no prediction' notes in the run log, got $nnotes: $(cat "$T/versions/$id2/log")"
vd_ok "the run log has the forecaster's note for each of those rows"

# Retrain on 63 days: a new code version, the latest version runs again.
code1="$(ls "$T/code")"
head -n $((63 * 48 + 1)) "$DATA" | "$FC" train --script >"$IN/function63" 2>/dev/null
cp "$IN/function63" "$T/function"
for ((i = 0; i < 600; i++)); do
	[ "$(ls "$T/versions/$id2/runs" | wc -l)" -ge 2 ] && break
	sleep 0.1
done
code2=""
for c in "$T"/code/*; do
	[ "${c##*/}" = "$code1" ] || code2="${c##*/}"
done
[ -n "$code2" ] || vd_fail "the retrained function made no new code version"
vd_is_id "$code2" || vd_fail "code/ lists '$code2'"
[ "$(ls "$T/versions/$id2/runs" | wc -l)" = 2 ] || vd_fail "versions/$id2/runs/ has $(ls "$T/versions/$id2/runs" | tr '\n' ' ')"
vd_wait_status "$T/versions/$id2/runs/$code2" "done"
cmp -s "$T/code/$code1" "$EX/function" || vd_fail "code/$code1 is not the 70-day model"
cmp -s "$T/code/$code2" "$IN/function63" || vd_fail "code/$code2 is not the 63-day model"
vd_same "$T/versions/$id2/runs/$code1/result.csv" "$IN/result-bad.csv" "runs/$code1 keeps the 70-day model's forecasts"
grep -q "$code2" "$T/versions/$id2/runs/$code2/meta.json" || vd_fail "runs/$code2/meta.json does not name its code"
cmp -s "$T/versions/$id2/runs/$code2/result.csv" "$IN/result-bad.csv" &&
	vd_fail "the 63-day model forecast exactly what the 70-day one did"
[ "$(wc -l <"$T/versions/$id2/runs/$code2/result.csv")" = 672 ] || vd_fail "the 63-day model's result does not have 672 rows"
vd_ok "a retrained model is code version $code2: the latest version is forecast again, each run under runs/CODE-ID/ with its model in code/"

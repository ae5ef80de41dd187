#!/usr/bin/env bash
# t_latest: `latest` and results follow what the user did last.
#   - re-submitting content that is already known makes it latest again,
#     with no new version and no new work;
#   - going back to an older code shows that code's result again (its run,
#     or memo), not the newer code's;
#   - code/ and runs/ list every code ID once, however often it came back;
#   - meta.json gives duration_ms and ISO 8601 times, and the duration is
#     no longer than the time the run really had;
#   - ls -l times are real: function and config when written, a version
#     when sealed, latest when it last moved, code/ID when first written.
# Results are checked against awk computing the same counts.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"

vd_start_daemon
vd_start_executor e1
T="$VD_MNT/tasks/lt"
mkdir "$T"
printf 'reduce = sum\n' >"$T/config"
vd_write_wc_function "$VD_WORK/v1.sh"
# v2 counts words longer than three letters only: another result.
cat >"$VD_WORK/v2.sh" <<'EOF'
#!/bin/sh
exec awk '{ for (i = 1; i <= NF; i++) if (length($i) > 3) n[$i]++ } END { for (w in n) print w "," n[w] }'
EOF
chmod +x "$VD_WORK/v2.sh"
cp "$VD_WORK/v1.sh" "$T/function"

vd_gen_text "$VD_WORK/a.txt" 300000 5
vd_gen_text "$VD_WORK/b.txt" 300000 6
vd_count_words "$VD_WORK/a.txt" >"$VD_WORK/a.v1"
vd_count_words "$VD_WORK/b.txt" >"$VD_WORK/b.v1"
tr -s ' \n' '\n' <"$VD_WORK/a.txt" | awk 'length($0) > 3' | LC_ALL=C sort | uniq -c |
	awk '{ print $2 "," $1 }' >"$VD_WORK/a.v2"

t0=$(date +%s%N)
cp "$VD_WORK/a.txt" "$T/data/a.txt"
A="$(readlink "$T/latest")"
A="${A#versions/}"
vd_wait_status "$T/versions/$A" done
t1=$(date +%s%N)
vd_same "$T/latest/result.csv" "$VD_WORK/a.v1" "a.txt with code 1"

# meta.json: duration_ms and ISO times, honest.
meta="$T/versions/$A/meta.json"
d="$(sed -n 's/^  "duration_ms": \([0-9]*\),*$/\1/p' "$meta")"
[ -n "$d" ] || vd_fail "meta.json has no duration_ms: $(cat "$meta")"
wall=$(((t1 - t0) / 1000000))
((d <= wall)) || vd_fail "meta.json says the run took $d ms; it had $wall ms from cp to done"
for k in sealed_at started_at finished_at; do
	grep -Eq "\"$k\": \"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?Z\"" "$meta" ||
		vd_fail "meta.json has no ISO 8601 $k: $(grep "$k" "$meta" || echo none)"
done
vd_ok "meta.json: duration_ms $d (at most the $wall ms it had) and ISO 8601 times"

cp "$VD_WORK/b.txt" "$T/data/b.txt"
B="$(readlink "$T/latest")"
B="${B#versions/}"
[ "$B" != "$A" ] || vd_fail "latest did not move to b.txt's version"
vd_wait_status "$T/versions/$B" done
vd_same "$T/latest/result.csv" "$VD_WORK/b.v1" "b.txt with code 1"

# Known content again: latest goes back, nothing new.
nv="$(vd_versions "$T" | wc -l)"
cp "$VD_WORK/a.txt" "$T/data/a-again.txt"
[ "$(readlink "$T/latest")" = "versions/$A" ] ||
	vd_fail "re-submitting a.txt's content left latest on $(readlink "$T/latest")"
[ "$(vd_versions "$T" | wc -l)" = "$nv" ] || vd_fail "re-submitting known content made a version"
vd_same "$T/latest/result.csv" "$VD_WORK/a.v1" "re-submitted content: latest is a.txt's version again, result at once"

# A new code re-runs latest; going back to the old code shows its result.
cp "$VD_WORK/v2.sh" "$T/function"
vd_wait_status "$T/latest" done
vd_same "$T/latest/result.csv" "$VD_WORK/a.v2" "code 2 re-ran latest"
cp "$VD_WORK/v1.sh" "$T/function"
vd_wait_status "$T/latest" done
vd_same "$T/latest/result.csv" "$VD_WORK/a.v1" "back to code 1: latest shows code 1's result again"
cp "$VD_WORK/v2.sh" "$T/function"
vd_wait_status "$T/latest" done
vd_same "$T/latest/result.csv" "$VD_WORK/a.v2" "and code 2's again"

# Every listing names each ID once.
dups="$(ls "$T/code" | sort | uniq -d)"
[ -z "$dups" ] || vd_fail "code/ lists an ID twice: $dups"
[ "$(ls "$T/code" | wc -l)" = 2 ] || vd_fail "code/ lists $(ls "$T/code" | wc -l) codes, not 2"
dups="$(ls "$T/versions/$A/runs" | sort | uniq -d)"
[ -z "$dups" ] || vd_fail "runs/ lists an ID twice: $dups"
[ "$(ls "$T/versions/$A/runs" | wc -l)" = 2 ] || vd_fail "runs/ of a.txt lists $(ls "$T/versions/$A/runs" | wc -l) runs, not 2"
vd_ok "code/ and runs/ list each code ID once"

# ls -l times (to the second, against the clock when each thing was done;
# 5 s of slack for a loaded machine: this checks the times are the right
# ones, not how fast anything is).
near() { # near WHAT EXPECTED GOT
	local d=$(($3 - $2))
	((d >= -5 && d <= 5)) || vd_fail "$1: time $3 is $d s from when it was made ($2)"
}
sleep 2
tf=$(date +%s)
cp "$VD_WORK/v1.sh" "$T/function"
near "function" "$tf" "$(stat -c %Y "$T/function")"
sleep 2
tc=$(date +%s)
printf 'reduce = sum\nretries = 4\n' >"$T/config"
near "config" "$tc" "$(stat -c %Y "$T/config")"
[ "$(stat -c %Y "$T/function")" -lt "$tc" ] || vd_fail "writing config moved function's time"
sleep 2
tl=$(date +%s)
cp "$VD_WORK/b.txt" "$T/data/b-again.txt"
near "latest (moved back to b.txt's version)" "$tl" "$(stat -c %Y "$T/latest")"
near "versions/$B (sealed before)" "$(stat -c %Y "$T/versions/$B/input")" "$(stat -c %Y "$T/versions/$B")"
[ "$(stat -c %Y "$T/versions/$A")" -lt "$tf" ] || vd_fail "versions/$A shows a time after it was sealed"
c1="$(ls "$T/code" | head -n 1)"
[ "$(stat -c %Y "$T/code/$c1")" -lt "$tf" ] || vd_fail "code/$c1 shows the time it was last made current, not written"
vd_ok "ls -l times: function, config, latest when changed; versions and code when made"

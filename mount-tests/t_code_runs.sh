#!/usr/bin/env bash
# t_code_runs: code versions and the runs of a version.
#
# Part 1: a task gets function v1 (word count) and a data file, runs to done;
# then function v2 (the same count of upper-cased words). With the default
# `rerun = latest` v2 runs on the version too. tasks/NAME/code/ lists both
# code versions with their bytes; versions/ID/runs/ has one directory per
# code, each with its own result; versions/ID/result.csv is v2's; nothing
# under code/ or runs/ can be changed (EROFS).
#
# Part 2: a function replaced while its run is in flight. The run has many
# small units (small chunks, unit_size = 16K) and the executor two slots;
# the function waits while a hold file exists, so the test knows, without
# timing, that the run is under way and that most of its units have not
# started. The config is changed to `rerun = none` and the function
# replaced; after the release the remaining units start, and the run
# finishes with the code it started with: v1's result, and meta.json names
# v1's code ID.

# `ls` is what a user runs here, and every name it lists is a hex ID.
# shellcheck disable=SC2012
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"

IN="$VD_WORK/in"
MARKS="$VD_WORK/marks"
HOLD="$VD_WORK/hold"
mkdir -p "$MARKS"

# The top-level "code_id" of a meta.json (jansson indents keys by 2).
meta_code_id() {
	sed -n 's/^  "code_id": "\([0-9a-f]\{32\}\)",\{0,1\}$/\1/p' "$1"
}

# Expected results, computed with standard tools: v1 counts words, v2
# counts upper-cased words; reduce = sum sorts rows by key, bytewise.
count_upper() {
	cat -- "$@" | tr -s ' \n' '\n' | grep -v '^$' | LC_ALL=C tr '[:lower:]' '[:upper:]' | LC_ALL=C sort |
		uniq -c | awk '{ print $2 "," $1 }'
}

vd_gen_text "$IN/a.txt" 300000 11 800
vd_gen_text "$IN/b.txt" 300000 23 800
vd_count_words "$IN/a.txt" >"$IN/a.v1.csv"
count_upper "$IN/a.txt" >"$IN/a.v2.csv"
vd_count_words "$IN/b.txt" >"$IN/b.v1.csv"
cmp -s "$IN/a.v1.csv" "$IN/a.v2.csv" && vd_fail "v1 and v2 must give different results"

vd_write_wc_function "$IN/v1.sh"
cat >"$IN/v2.sh" <<'EOF'
#!/bin/sh
# One "WORD,count" row per distinct upper-cased word of this unit.
exec awk '{ for (i = 1; i <= NF; i++) n[toupper($i)]++ } END { for (w in n) print w "," n[w] }'
EOF
chmod +x "$IN/v2.sh"
printf 'reduce = sum\n' >"$IN/config"

vd_start_daemon --chunk-size 16384
vd_start_executor A --slots 2

# ---- part 1: two code versions, two runs on one version -----------------
T="$VD_MNT/tasks/words"
mkdir "$T"
[ -d "$T/code" ] || vd_fail "$T/code is not a directory"
[ -z "$(ls -A "$T/code")" ] || vd_fail "code/ is not empty before any function"
vd_ok "a new task has an empty code/"
cp "$IN/config" "$T/config"
cp "$IN/v1.sh" "$T/function"
cp "$IN/a.txt" "$T/data/a.txt"
id="$(vd_new_version "$T" "")"
V="$T/versions/$id"
vd_wait_status "$V" "done"
vd_same "$V/result.csv" "$IN/a.v1.csv" "v1's result is the word count"

c1="$(ls "$T/code")"
vd_is_id "$c1" || vd_fail "code/ should hold one code ID, has: $(echo "$c1" | tr '\n' ' ')"
vd_same "$T/code/$c1" "$IN/v1.sh" "code/<v1> holds v1's bytes"
[ "$(meta_code_id "$V/meta.json")" = "$c1" ] ||
	vd_fail "meta.json names code $(meta_code_id "$V/meta.json"), code/ lists $c1"
vd_ok "meta.json names the code ID that code/ lists"
[ "$(stat -c %a "$T/code/$c1")" = 555 ] || vd_fail "code/$c1 has mode $(stat -c %a "$T/code/$c1")"
if [ ! -x "$T/code/$c1" ] || [ -w "$T/code/$c1" ]; then
	vd_fail "code/$c1 is not r-x"
fi
vd_ok "a code version is a read-only executable file (0555)"
[ "$(ls "$V/runs")" = "$c1" ] || vd_fail "runs/ should list $c1, lists: $(ls "$V/runs" | tr '\n' ' ')"
vd_ok "runs/ lists the one code that ran"

cp "$IN/v2.sh" "$T/function"
ls -1 "$T/code" | LC_ALL=C sort >"$IN/codes"
[ "$(wc -l <"$IN/codes")" = 2 ] || vd_fail "code/ should list 2 code IDs, lists: $(tr '\n' ' ' <"$IN/codes")"
c2="$(grep -vx "$c1" "$IN/codes")"
vd_is_id "$c2" || vd_fail "the second code ID is not an ID: '$c2'"
vd_ok "code/ lists both code versions"
vd_same "$T/code/$c1" "$IN/v1.sh" "code/<v1> still holds v1's bytes"
vd_same "$T/code/$c2" "$IN/v2.sh" "code/<v2> holds v2's bytes"
vd_same "$T/function" "$IN/v2.sh" "function reads the newest code"

# rerun = latest (the default): v2 runs on the version too.
ls -1 "$V/runs" | LC_ALL=C sort >"$IN/runs"
vd_same "$IN/runs" "$IN/codes" "runs/ lists both codes once v2 is written"
vd_wait_status "$V/runs/$c2" "done"
vd_wait_status "$V" "done"
vd_same "$V/runs/$c1/result.csv" "$IN/a.v1.csv" "runs/<v1>/result.csv is v1's result"
vd_same "$V/runs/$c2/result.csv" "$IN/a.v2.csv" "runs/<v2>/result.csv is v2's result"
vd_same "$V/result.csv" "$IN/a.v2.csv" "versions/<id>/result.csv is the newest code's"
[ "$(meta_code_id "$V/runs/$c1/meta.json")" = "$c1" ] || vd_fail "runs/$c1/meta.json names another code"
[ "$(meta_code_id "$V/runs/$c2/meta.json")" = "$c2" ] || vd_fail "runs/$c2/meta.json names another code"
[ "$(meta_code_id "$V/meta.json")" = "$c2" ] || vd_fail "meta.json does not name the newest code"
vd_ok "each run's meta.json names its own code ID; the version's the newest"
[ "$(vd_status_word "$V/runs/$c1/status")" = "done" ] || vd_fail "runs/$c1/status is not done"
grep -q . "$V/runs/$c2/log" || vd_fail "runs/$c2/log is empty"
ls -1 "$V/runs/$c1" | LC_ALL=C sort | tr '\n' ' ' >"$IN/runfiles"
[ "$(cat "$IN/runfiles")" = "log meta.json result.csv status " ] ||
	vd_fail "runs/<code>/ should hold log meta.json result.csv status, holds: $(cat "$IN/runfiles")"
vd_ok "a done run's directory holds status, log, meta.json and result.csv"
vd_same "$T/latest/runs/$c2/result.csv" "$IN/a.v2.csv" "latest/runs/<v2>/result.csv is v2's result"
ls -lR "$T/code" "$V/runs" >"$IN/ls-lR" || vd_fail "ls -lR of code/ and runs/ failed"
[ "$(grep -c '^-r-xr-xr-x' "$IN/ls-lR")" = 2 ] || vd_fail "ls -l should show two r-x code files: $(cat "$IN/ls-lR")"
[ "$(grep -c '^-r--r--r--' "$IN/ls-lR")" = 8 ] || vd_fail "ls -l should show 8 read-only run files: $(cat "$IN/ls-lR")"
vd_ok "ls -lR shows code files r-x and run files r--"

# Nothing under code/ or runs/ can be changed.
vd_expect_erofs "overwriting code/<v1>" sh -c "echo x >'$T/code/$c1'"
vd_expect_erofs "appending to code/<v1>" sh -c "echo x >>'$T/code/$c1'"
vd_expect_erofs "creating a file in code/" touch "$T/code/new"
vd_expect_erofs "copying a file into code/" cp "$IN/v1.sh" "$T/code/$(printf '%032d' 0)"
# unlink and rmdir answer 0 and remove nothing, so that rm -r of a task or
# version gets to its directory (docs/lifecycle.md).
rm -f "$T/code/$c1" && [ -f "$T/code/$c1" ] || vd_fail "rm of code/<v1> failed or removed it"
vd_expect_erofs "renaming code/<v1>" mv "$T/code/$c1" "$T/code/renamed"
vd_expect_erofs "mkdir in code/" mkdir "$T/code/dir"
vd_expect_erofs "chmod of code/<v1>" chmod 0777 "$T/code/$c1"
vd_expect_erofs "truncating code/<v1>" truncate -s 0 "$T/code/$c1"
vd_expect_erofs "overwriting runs/<v1>/result.csv" sh -c "echo x >'$V/runs/$c1/result.csv'"
vd_expect_erofs "appending to runs/<v1>/status" sh -c "echo x >>'$V/runs/$c1/status'"
vd_expect_erofs "creating a file in runs/<v1>/" touch "$V/runs/$c1/new"
rm -f "$V/runs/$c1/result.csv" && [ -f "$V/runs/$c1/result.csv" ] ||
	vd_fail "rm of runs/<v1>/result.csv failed or removed it"
vd_expect_erofs "mkdir in runs/" mkdir "$V/runs/$(printf '%032d' 0)"
rmdir "$V/runs/$c1" && [ -d "$V/runs/$c1" ] || vd_fail "rmdir of runs/<v1>/ failed or removed it"
vd_ok "rm of code/<v1>, runs/<v1>/result.csv and rmdir of runs/<v1>/ answer 0 and remove nothing"
vd_expect_erofs "renaming runs/<v1>/" mv "$V/runs/$c1" "$V/runs/$(printf '%032d' 1)"
vd_same "$T/code/$c1" "$IN/v1.sh" "code/<v1> is unchanged after the refused writes"
vd_same "$V/runs/$c1/result.csv" "$IN/a.v1.csv" "runs/<v1>/result.csv is unchanged after the refused writes"
[ ! -e "$T/code/$(printf '%032d' 0)" ] || vd_fail "an unknown code ID exists in code/"
[ ! -e "$V/runs/$(printf '%032d' 0)" ] || vd_fail "an unknown code ID exists in runs/"
vd_ok "unknown code IDs are absent from code/ and runs/"

# ---- part 2: the function is replaced while a run is in flight -----------
cat >"$IN/held.sh" <<EOF
#!/bin/sh
# Mark the unit as started; wait (at most 2 minutes) while the hold file
# exists; then count words.
touch "$MARKS/started.\$VDFS_UNIT.\$\$"
i=0
while [ -e "$HOLD" ] && [ "\$i" -lt 600 ]; do sleep 0.2; i=\$((i + 1)); done
exec awk '{ for (i = 1; i <= NF; i++) n[\$i]++ } END { for (w in n) print w "," n[w] }'
EOF
chmod +x "$IN/held.sh"

H="$VD_MNT/tasks/held"
mkdir "$H"
printf 'reduce = sum\nunit_size = 16K\n' >"$H/config"
cp "$IN/held.sh" "$H/function"
h1="$(ls "$H/code")"
vd_is_id "$h1" || vd_fail "code/ of the held task should hold one ID: $h1"
touch "$HOLD"
cp "$IN/b.txt" "$H/data/b.txt"
hid="$(vd_new_version "$H" "")"
HV="$H/versions/$hid"
start=$SECONDS
until compgen -G "$MARKS/started.*" >/dev/null; do
	((SECONDS - start < VD_TIMEOUT)) || vd_fail "no unit of the held run started within ${VD_TIMEOUT}s"
	vd_check_daemon
	sleep 0.2
done
vd_ok "the held run is in flight"

# Units started so far (at most the executor's two slots, all held).
units_started() {
	ls "$MARKS" | cut -d. -f2 | LC_ALL=C sort -u | wc -l
}
before="$(units_started)"
printf 'reduce = sum\nunit_size = 16K\nrerun = none\n' >"$H/config"
cp "$IN/v2.sh" "$H/function"
[ "$(ls "$H/code" | wc -l)" = 2 ] || vd_fail "code/ should list 2 code IDs: $(ls "$H/code" | tr '\n' ' ')"
vd_same "$H/function" "$IN/v2.sh" "the function is replaced while the run is in flight"
[ "$(ls "$HV/runs")" = "$h1" ] ||
	vd_fail "with rerun = none only $h1 should have a run; runs/ lists: $(ls "$HV/runs" | tr '\n' ' ')"
vd_ok "with rerun = none the new code starts no run on the version"
word="$(vd_status_word "$HV/status")"
[ "$word" != "done" ] || vd_fail "the held run is done before its hold was released"

rm -f "$HOLD"
vd_wait_status "$HV/runs/$h1" "done"
vd_wait_status "$HV" "done"
after="$(units_started)"
((after > before)) || vd_fail "no unit started after the function was replaced ($before before, $after in all)"
vd_ok "$((after - before)) of $after units started after the function was replaced"
vd_same "$HV/runs/$h1/result.csv" "$IN/b.v1.csv" "the run finished with the code it started with"
vd_same "$HV/result.csv" "$IN/b.v1.csv" "versions/<id>/result.csv is that run's result"
[ "$(meta_code_id "$HV/meta.json")" = "$h1" ] ||
	vd_fail "meta.json names code $(meta_code_id "$HV/meta.json"), not the one the run started with ($h1)"
[ "$(meta_code_id "$HV/runs/$h1/meta.json")" = "$h1" ] || vd_fail "runs/$h1/meta.json names another code"
vd_ok "meta.json names the code the run started with"

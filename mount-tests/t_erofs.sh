#!/usr/bin/env bash
# t_erofs: everything under versions/ is read-only: writes, creates, mkdir,
# rename, touch and chmod fail with EROFS and change nothing; rm of a file
# inside a version answers 0 and removes nothing (only the whole version
# goes, with rm -r: docs/lifecycle.md, tested in t_delete). A bad
# config line is refused on close (cp fails with EINVAL), the old config
# stays, and the daemon keeps serving.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"

IN="$VD_WORK/in"
vd_gen_text "$IN/small.txt" 300000 5 500
vd_gen_text "$IN/other.txt" 200000 6 500
vd_count_words "$IN/small.txt" >"$IN/expected-small.csv"
vd_count_words "$IN/other.txt" >"$IN/expected-other.csv"
vd_write_wc_function "$IN/wc.sh"
printf 'reduce = sum\n' >"$IN/config"

vd_start_daemon
vd_start_executor e1
T="$VD_MNT/tasks/ro"
mkdir "$T"
cp "$IN/wc.sh" "$T/function"
cp "$IN/config" "$T/config"
cp "$IN/small.txt" "$T/data/small.txt"
id="$(vd_new_version "$T" "")"
V="$T/versions/$id"
vd_wait_status "$V" "done"
vd_same "$V/result.csv" "$IN/expected-small.csv" "the version's result is right"
listing="$(ls -la "$V")"

# shellcheck disable=SC2016 # $1 is expanded by sh -c
vd_expect_erofs "truncating versions/ID/input" sh -c ': >"$1"' sh "$V/input"
# shellcheck disable=SC2016
vd_expect_erofs "appending to versions/ID/result.csv" sh -c 'echo x >>"$1"' sh "$V/result.csv"
vd_expect_erofs "cp over versions/ID/input" cp "$IN/other.txt" "$V/input"
vd_expect_erofs "touch of a new file in versions/ID/" touch "$V/new-file"
vd_expect_erofs "touch of versions/ID/status" touch "$V/status"
vd_expect_erofs "chmod of versions/ID/input" chmod 600 "$V/input"
vd_expect_erofs "mkdir in versions/ID/" mkdir "$V/subdir"
vd_expect_erofs "mkdir in versions/" mkdir "$T/versions/0123456789abcdef0123456789abcdef"
rm -f "$V/log" || vd_fail "rm of versions/ID/log failed; it must answer 0 and remove nothing"
[ -f "$V/log" ] || vd_fail "rm of versions/ID/log removed it"
vd_ok "rm of versions/ID/log answers 0 and removes nothing (it goes with the version)"
vd_expect_erofs "mv inside versions/ID/" mv "$V/meta.json" "$V/meta2.json"
vd_expect_erofs "ln -s in versions/ID/" ln -s input "$V/link"

[ "$(ls -la "$V")" = "$listing" ] || vd_fail "versions/$id changed: $(ls -la "$V")"
cmp -s "$V/input" "$IN/small.txt" || vd_fail "versions/$id/input changed"
vd_same "$V/result.csv" "$IN/expected-small.csv" "after all that, versions/ID is unchanged"

# Bad config lines: refused on close with EINVAL; the old config stays.
i=0
for bad in 'this is not a config line' 'reduce = bogus' 'timeout = soon' 'no_such_key = 1'; do
	i=$((i + 1))
	printf 'reduce = sum\n%s\n' "$bad" >"$IN/bad$i"
	if out="$(cp "$IN/bad$i" "$T/config" 2>&1)"; then
		vd_fail "cp of a config with the bad line '$bad' succeeded"
	fi
	case "$out" in
	*"Invalid argument"*) vd_ok "a config with '$bad' is refused: $out" ;;
	*) vd_fail "cp of a config with '$bad' failed, but not with EINVAL: $out" ;;
	esac
	cmp -s "$T/config" "$IN/config" || vd_fail "after a refused config, config reads '$(cat "$T/config")'"
done
vd_ok "after refused configs, config still reads the old one"
if grep -q 'line 2' "$VD_WORK/vdfsd.log"; then
	vd_ok "vdfsd.log gives the reason (line 2)"
else
	vd_note "the refused config's reason ('line 2: ...') was not found in vdfsd.log"
fi

# The daemon keeps serving: a good config, a new submission, a right result.
kill -0 "$VD_DAEMON_PID" 2>/dev/null || vd_fail "vdfsd died"
printf 'reduce = sum\nretries = 2\n' >"$IN/config2"
cp "$IN/config2" "$T/config" || vd_fail "a good config is refused after bad ones"
cmp -s "$T/config" "$IN/config2" || vd_fail "config does not read back the good one"
before="$(vd_versions "$T")"
cp "$IN/other.txt" "$T/data/other.txt"
id2="$(vd_new_version "$T" "$before")"
vd_wait_status "$T/versions/$id2" "done"
vd_same "$T/versions/$id2/result.csv" "$IN/expected-other.csv" "the daemon keeps serving: a new version runs right"

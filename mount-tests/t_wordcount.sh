#!/usr/bin/env bash
# t_wordcount: the user flow. mkdir a task, cp a word-count function and a
# config, cp a 50+ MB text into data/, run two executors; result.csv equals
# what tr | sort | uniq -c compute on the same file. Then: the same content
# again makes no new version; a changed copy makes a second one, latest
# points to it, data/NAME reads back the latest content, and its result is
# right too.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"

IN="$VD_WORK/in"
vd_gen_text "$IN/words.txt" $((52 * 1024 * 1024)) 20240601 3000
size=$(stat -c %s "$IN/words.txt")
((size >= 50 * 1024 * 1024)) || vd_fail "generated text is only $size bytes"
vd_count_words "$IN/words.txt" >"$IN/expected1.csv"
vd_note "generated $size bytes, $(wc -l <"$IN/expected1.csv") distinct words"
# A changed copy: the same text with a few lines appended.
cp "$IN/words.txt" "$IN/words2.txt"
printf '%s\n' "zzappended lines at the end" "zzappended once more" "ba be bi" >>"$IN/words2.txt"
vd_count_words "$IN/words2.txt" >"$IN/expected2.csv"
vd_write_wc_function "$IN/wc.sh"
printf 'reduce = sum\n' >"$IN/config"

vd_start_daemon
T="$VD_MNT/tasks/wc"

mkdir "$T"
if [ ! -d "$T/data" ] || [ ! -d "$T/versions" ]; then
	vd_fail "mkdir $T did not make data/ and versions/"
fi
vd_ok "mkdir tasks/wc makes a task with data/ and versions/"
cp "$IN/wc.sh" "$T/function"
cmp -s "$T/function" "$IN/wc.sh" || vd_fail "tasks/wc/function does not read back what was copied"
cp "$IN/config" "$T/config"
cmp -s "$T/config" "$IN/config" || vd_fail "tasks/wc/config does not read back what was copied"
vd_ok "cp function and config"

before="$(vd_versions "$T")"
[ -z "$before" ] || vd_fail "a new task already has versions: $before"
t0=$(date +%s%N)
cp "$IN/words.txt" "$T/data/words.txt"
vd_note "cp of $size bytes into data/ took $((($(date +%s%N) - t0) / 1000000)) ms"
id1="$(vd_new_version "$T" "$before")"
vd_is_id "$id1" || vd_fail "version name '$id1' is not a 32-hex data ID"
vd_ok "cp into data/ has sealed version $id1 when it returns"
for f in input status meta.json log; do
	[ -e "$T/versions/$id1/$f" ] || vd_fail "versions/$id1/$f is missing"
done
vd_ok "versions/$id1 has input, status, meta.json, log"
[ "$(basename "$(readlink "$T/latest")")" = "$id1" ] ||
	vd_fail "latest -> $(readlink "$T/latest"), expected versions/$id1"
vd_ok "latest points to $id1"

vd_start_executor e1
vd_start_executor e2
vd_wait_status "$T/versions/$id1" "done"
vd_same "$T/versions/$id1/result.csv" "$IN/expected1.csv" \
	"result.csv of the ${size}-byte text equals tr | sort | uniq -c"
cmp -s "$T/versions/$id1/input" "$IN/words.txt" || vd_fail "versions/$id1/input differs from the submitted file"
vd_ok "versions/$id1/input reads back byte-identical"
grep -q "$id1" "$T/versions/$id1/meta.json" || vd_fail "meta.json does not name the data ID $id1"
vd_ok "meta.json names the data ID"

# The same content again, under the same name and under another: no new version.
n1="$(vd_versions "$T" | wc -l)"
cp "$IN/words.txt" "$T/data/words.txt"
cp "$IN/words.txt" "$T/data/same-again.txt"
n2="$(vd_versions "$T" | wc -l)"
[ "$n1" = "$n2" ] || vd_fail "copying known content changed the version count from $n1 to $n2"
vd_ok "copying the same content again makes no new version ($n2 versions)"

# A changed copy under the same name: a second version.
before="$(vd_versions "$T")"
cp "$IN/words2.txt" "$T/data/words.txt"
id2="$(vd_new_version "$T" "$before")"
[ "$id2" != "$id1" ] || vd_fail "the changed copy got the old ID"
listing="$(ls "$T/versions/")"
if ! grep -qx "$id1" <<<"$listing" || ! grep -qx "$id2" <<<"$listing"; then
	vd_fail "ls versions/ does not show both $id1 and $id2: $listing"
fi
vd_ok "a changed copy makes a second version $id2; ls versions/ shows both"
[ "$(basename "$(readlink "$T/latest")")" = "$id2" ] ||
	vd_fail "latest -> $(readlink "$T/latest"), expected versions/$id2"
vd_ok "latest points to the newest version"
cmp -s "$T/data/words.txt" "$IN/words2.txt" || vd_fail "data/words.txt does not read back the latest content"
vd_ok "data/words.txt reads back the latest content"

vd_wait_status "$T/versions/$id2" "done"
vd_same "$T/versions/$id2/result.csv" "$IN/expected2.csv" "the second version's result.csv is right"
vd_same "$T/versions/$id1/result.csv" "$IN/expected1.csv" "the first version's result.csv is unchanged"

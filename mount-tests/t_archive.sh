#!/usr/bin/env bash
# t_archive: several versions' results (or inputs) as one zip, with a
# reader's token, checked with unzip, Python's zipfile, cmp and diff -r.
#   - vdfs get --zip of 3 word-count results (IDs as prefixes): unzip -t
#     passes, Python's zipfile too, the entries are exactly
#     TASK/ID/result.csv and each is byte-identical to the mount's
#     result.csv; no OUT.part is left; without -o it is vdfs-results.zip in
#     the current directory, never over an existing one; -o - is stdout;
#   - the same through curl: Content-Type, Content-Disposition,
#     Cache-Control; an ID given twice is packed once;
#   - an input zip of a tree (cp -r of nested dirs with UTF-8 names, an
#     empty dir and a symlink) and a file version: extracted, diff -r
#     equals the source, the symlink is one, names are flagged UTF-8;
#   - a 64 MB input is streamed: vdfsd's peak memory stays within 32 MiB;
#   - refusals before the stream: no ids, a malformed ID, what=bogus 400;
#     an unknown ID, a version without a result, a task that lacks the
#     ID 404; each followed by a good request that succeeds;
#   - a client hanging up mid-zip, and the next request;
#   - a chunk that cannot be read mid-stream cuts the zip short (curl and
#     vdfs get fail, no OUT is left) and vdfsd's log names the chunk;
#   - an ID two tasks hold: the first in name order, or task=.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"
VDFS="$VD_BIN/vdfs"
PY=/usr/bin/python3
export LC_ALL=C.UTF-8   # unzip writes UTF-8 names as they are only in a UTF-8 locale
vd_start_daemon
vd_start_executor e1 --slots 2
"$VDFS" user add rita --role reader --state "$VD_STATE" >"$VD_WORK/rita.tok" 2>/dev/null
R="$(cat "$VD_WORK/rita.tok")"
auth=(-H "Authorization: Bearer $R")
G=(--server "$VD_URL" --token-file "$VD_WORK/rita.tok")
A="$VD_URL/v1/archive"

# Three results of the word-count task.
T="$VD_MNT/tasks/wc"
mkdir "$T"
printf 'reduce = sum\n' >"$T/config"
vd_write_wc_function "$T/function"
IDS=()
for i in 1 2 3; do
	vd_gen_text "$VD_WORK/in/f$i.txt" 300000 "$i"
	cp "$VD_WORK/in/f$i.txt" "$T/data/f$i.txt"
	id="$(readlink "$T/latest")"; id="${id#versions/}"
	vd_is_id "$id" || vd_fail "latest after cp f$i.txt is '$id'"
	IDS+=("$id")
done
for id in "${IDS[@]}"; do
	vd_wait_status "$T/versions/$id" done
done
[ "$(printf '%s\n' "${IDS[@]}" | sort -u | wc -l)" = 3 ] || vd_fail "three files made fewer versions"
vd_ok "three results of the word-count task"

# check_results ZIP WHAT: unzip -t, Python's zipfile, exactly the three
# entries, each byte-identical to the mount's result.csv.
check_results() {
	local zip="$1" what="$2" x="$VD_WORK/x.$RANDOM" id
	unzip -tq "$zip" >"$VD_WORK/unzip.out" 2>&1 || vd_fail "$what: unzip -t: $(cat "$VD_WORK/unzip.out")"
	$PY - "$zip" wc "${IDS[@]}" <<'PY' || vd_fail "$what: Python's zipfile refuses it or its entries are not the three results"
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None
want = sorted(f"{sys.argv[2]}/{i}/result.csv" for i in sys.argv[3:])
got = sorted(i.filename for i in z.infolist())
assert got == want, (got, want)
for i in z.infolist():
    assert i.compress_type == zipfile.ZIP_DEFLATED, i
    assert (i.external_attr >> 16) & 0o777 == 0o644, oct(i.external_attr >> 16)
PY
	mkdir "$x"
	(cd "$x" && unzip -q "$zip") || vd_fail "$what: unzip failed"
	for id in "${IDS[@]}"; do
		cat "$T/versions/$id/result.csv" >"$VD_WORK/want.csv"
		[ -s "$VD_WORK/want.csv" ] || vd_fail "the mount's result.csv of $id is empty"
		cmp "$x/wc/$id/result.csv" "$VD_WORK/want.csv" || vd_fail "$what: wc/$id/result.csv differs from the mount's"
	done
	rm -rf "$x"
}

# vdfs get --zip, as a user on another machine types it: IDs as prefixes.
"$VDFS" get --zip "${IDS[0]:0:10}" "${IDS[1]}" "${IDS[2]:0:8}" -o "$VD_WORK/results.zip" "${G[@]}" ||
	vd_fail "vdfs get --zip -o failed"
[ ! -e "$VD_WORK/results.zip.part" ] || vd_fail "vdfs get --zip left results.zip.part"
check_results "$VD_WORK/results.zip" "vdfs get --zip -o"
vd_ok "vdfs get --zip ID... -o: unzip -t and zipfile pass; TASK/ID/result.csv each equals the mount's"

mkdir "$VD_WORK/cwd"
(cd "$VD_WORK/cwd" && "$VDFS" get --zip "${IDS[@]}" "${G[@]}" 2>"$VD_WORK/get.err") ||
	vd_fail "vdfs get --zip without -o failed: $(cat "$VD_WORK/get.err")"
check_results "$VD_WORK/cwd/vdfs-results.zip" "vdfs get --zip without -o"
cp "$VD_WORK/cwd/vdfs-results.zip" "$VD_WORK/first.zip"
st=0
(cd "$VD_WORK/cwd" && "$VDFS" get --zip "${IDS[0]}" "${G[@]}" 2>"$VD_WORK/get.err") || st=$?
[ "$st" != 0 ] || vd_fail "vdfs get --zip without -o replaced an existing vdfs-results.zip"
cmp -s "$VD_WORK/cwd/vdfs-results.zip" "$VD_WORK/first.zip" || vd_fail "vdfs get --zip changed an existing vdfs-results.zip"
grep -q 'exists' "$VD_WORK/get.err" || vd_fail "no word of the existing file: $(cat "$VD_WORK/get.err")"
"$VDFS" get --zip "${IDS[@]}" -o - "${G[@]}" >"$VD_WORK/stdout.zip" || vd_fail "vdfs get --zip -o - failed"
check_results "$VD_WORK/stdout.zip" "vdfs get --zip -o -"
vd_ok "vdfs get --zip: vdfs-results.zip in the current dir, never over an existing one; -o - to stdout"

ids="${IDS[0]},${IDS[1]},${IDS[2]}"
curl -sf "${auth[@]}" -D "$VD_WORK/h1" -o "$VD_WORK/curl.zip" "$A?ids=$ids" || vd_fail "GET /v1/archive failed"
check_results "$VD_WORK/curl.zip" "curl -o"
grep -qi '^content-type: application/zip' "$VD_WORK/h1" || vd_fail "Content-Type: $(grep -i content-type "$VD_WORK/h1")"
grep -qi '^content-disposition: attachment; filename="vdfs-results.zip"' "$VD_WORK/h1" ||
	vd_fail "Content-Disposition: $(grep -i content-disposition "$VD_WORK/h1")"
grep -qi '^cache-control: no-cache' "$VD_WORK/h1" || vd_fail "Cache-Control: $(grep -i cache-control "$VD_WORK/h1")"
curl -sf "${auth[@]}" -o "$VD_WORK/dup.zip" "$A?ids=${IDS[1]},${IDS[1]},${IDS[2]}&what=result&task=wc" ||
	vd_fail "GET /v1/archive with an ID twice and task=wc failed"
$PY - "$VD_WORK/dup.zip" "${IDS[1]}" "${IDS[2]}" <<'PY' || vd_fail "an ID given twice is not packed once"
import sys, zipfile
got = [i.filename for i in zipfile.ZipFile(sys.argv[1]).infolist()]
assert got == [f"wc/{sys.argv[2]}/result.csv", f"wc/{sys.argv[3]}/result.csv"], got
PY
vd_ok "curl: application/zip, attachment vdfs-results.zip, no-cache; an ID twice is packed once"

# Inputs: a tree with UTF-8 names, nested, with an empty directory, in a
# task without a function (so its versions have no result).
N="$VD_MNT/tasks/keep"
mkdir "$N"
printf 'settle = 1\n' >"$N/config"
SRC="$VD_WORK/src/données"
mkdir -p "$SRC/日本/深い/もっと" "$SRC/Ünï cødé" "$SRC/empty dir"
printf 'naïve,1\ncafé,2\n' >"$SRC/naïve.csv"
seq 1 20000 >"$SRC/日本/数.txt"
printf 'deep\n' >"$SRC/日本/深い/もっと/x.txt"
: >"$SRC/Ünï cødé/empty file"
vd_gen_text "$SRC/Ünï cødé/text.txt" 200000 9
ln -s ../naïve.csv "$SRC/日本/lien"
before="$(vd_versions "$N")"
cp -r "$SRC" "$N/data/"
TID="$(vd_wait_new_version "$N" "$before")"
diff -r "$N/versions/$TID/input" "$SRC" >/dev/null || vd_fail "the tree version's input differs from the source"
curl -sf "${auth[@]}" -D "$VD_WORK/h2" -o "$VD_WORK/in.zip" "$A?ids=$TID,${IDS[0]}&what=input" ||
	vd_fail "GET /v1/archive?what=input failed"
grep -qi '^content-disposition: attachment; filename="vdfs-inputs.zip"' "$VD_WORK/h2" ||
	vd_fail "inputs' Content-Disposition: $(grep -i content-disposition "$VD_WORK/h2")"
unzip -tq "$VD_WORK/in.zip" >"$VD_WORK/unzip.out" 2>&1 || vd_fail "input zip: unzip -t: $(cat "$VD_WORK/unzip.out")"
$PY - "$VD_WORK/in.zip" "$TID" <<'PY' || vd_fail "the input zip's names are not flagged UTF-8 or Python refuses it"
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None
names = [i.filename for i in z.infolist()]
assert f"keep/{sys.argv[2]}/données/日本/数.txt" in names, names
for i in z.infolist():
    if not i.filename.isascii():
        assert i.flag_bits & 0x800, (i.filename, hex(i.flag_bits))
PY
mkdir "$VD_WORK/xin"
(cd "$VD_WORK/xin" && unzip -q "$VD_WORK/in.zip") || vd_fail "unzip of the input zip failed"
diff -r "$VD_WORK/xin/keep/$TID/données" "$SRC" || vd_fail "the extracted tree differs from the source"
cmp "$VD_WORK/xin/wc/${IDS[0]}/f1.txt" "$VD_WORK/in/f1.txt" || vd_fail "the extracted file version differs from f1.txt"
[ "$(readlink "$VD_WORK/xin/keep/$TID/données/日本/lien")" = ../naïve.csv ] ||
	vd_fail "the symlink did not come out as a symlink to ../naïve.csv"
[ "$(find "$VD_WORK/xin" -type f | wc -l)" = 6 ] || vd_fail "the input zip holds other files: $(cd "$VD_WORK/xin" && find . -type f)"
"$VDFS" get --zip --input "${TID:0:10}" -o "$VD_WORK/in2.zip" "${G[@]}" || vd_fail "vdfs get --zip --input failed"
mkdir "$VD_WORK/xin2"
(cd "$VD_WORK/xin2" && unzip -q "$VD_WORK/in2.zip") || vd_fail "unzip of vdfs get --zip --input failed"
diff -r "$VD_WORK/xin2/keep/$TID/données" "$SRC" || vd_fail "vdfs get --zip --input: the tree differs from the source"
vd_ok "an input zip of a tree (UTF-8 names, nested, an empty dir, a symlink) and a file: extracted, they equal the sources"

# A big input is streamed, not gathered: base64 of random bytes, which
# deflate shrinks only by a quarter.
head -c 48000000 /dev/urandom | base64 -w 76 >"$VD_WORK/big.txt"
cp "$VD_WORK/big.txt" "$N/data/big.txt"
BIG="$(readlink "$N/latest")"; BIG="${BIG#versions/}"
pid=$VD_DAEMON_PID
rss0=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$pid/status")
echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true
curl -sf "${auth[@]}" -o "$VD_WORK/big.zip" "$A?ids=$BIG&what=input" || vd_fail "the zip of a big input failed"
hwm=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$pid/status")
unzip -p "$VD_WORK/big.zip" "keep/$BIG/big.txt" | cmp - "$VD_WORK/big.txt" || vd_fail "the big input out of the zip is not the file"
vd_note "vdfsd resident before $rss0 KiB, peak while zipping $hwm KiB; zip $(stat -c %s "$VD_WORK/big.zip") bytes"
[ $((hwm - rss0)) -lt 32768 ] || vd_fail "zipping a $(stat -c %s "$VD_WORK/big.txt")-byte file took vdfsd from $rss0 to $hwm KiB: not streamed"
vd_ok "a 64 MB input is zipped as it is sent (vdfsd peak +$((hwm - rss0)) KiB)"
# A client that hangs up mid-zip: vdfsd drops the rest and keeps serving
# (under ASan a leak or a bad free of the half-made zip fails the test).
curl -s "${auth[@]}" "$A?ids=$BIG&what=input" | head -c 1000000 >/dev/null || true
curl -sf "${auth[@]}" -o "$VD_WORK/after.zip" "$A?ids=$ids" || vd_fail "a good request after a hang-up failed"
unzip -tq "$VD_WORK/after.zip" >/dev/null || vd_fail "the zip after a hang-up is broken"
vd_ok "a client hanging up mid-zip; the next request is served"


# Refusals, all before the stream starts, each followed by a good request.
good() {
	curl -sf "${auth[@]}" -o "$VD_WORK/good.zip" "$A?ids=$ids&task=wc" || vd_fail "a good request after $1 failed"
	unzip -tq "$VD_WORK/good.zip" >/dev/null || vd_fail "the zip after $1 is broken"
}
refuse() {   # refuse WANT WHAT QUERY
	local st
	st=$(curl -s "${auth[@]}" -o "$VD_WORK/body" -w '%{http_code}' "$A$3")
	[ "$st" = "$1" ] || vd_fail "$2: $st, not $1: $(cat "$VD_WORK/body")"
	$PY -c 'import json,sys; e=json.load(open(sys.argv[1]))["error"]; assert e, e' "$VD_WORK/body" ||
		vd_fail "$2: no JSON error body: $(cat "$VD_WORK/body")"
	good "$2"
}
refuse 400 "no ids" ""
refuse 400 "a malformed ID" "?ids=${IDS[0]},xyz"
refuse 400 "an ID of 31 digits" "?ids=${IDS[0]:0:31}"
refuse 400 "a trailing comma" "?ids=${IDS[0]},"
refuse 400 "junk bytes in ids" "?ids=%FF%FE%01x,${IDS[0]}"
refuse 400 "what=bogus" "?ids=${IDS[0]}&what=bogus"
refuse 404 "an unknown ID" "?ids=${IDS[0]},0123456789abcdef0123456789abcdef"
refuse 404 "a version without a result" "?ids=${IDS[0]},$TID"
refuse 404 "task= a task without that version" "?ids=${IDS[0]}&task=keep"
refuse 404 "task= no such task" "?ids=${IDS[0]}&task=nosuch"
st=0
"$VDFS" get --zip "${IDS[0]}" "$TID" -o "$VD_WORK/nores.zip" "${G[@]}" 2>"$VD_WORK/get.err" || st=$?
[ "$st" = 2 ] || vd_fail "vdfs get --zip of a version without a result exited $st, not 2"
grep -q 'no result' "$VD_WORK/get.err" || vd_fail "vdfs get --zip: $(cat "$VD_WORK/get.err")"
[ ! -e "$VD_WORK/nores.zip" ] && [ ! -e "$VD_WORK/nores.zip.part" ] || vd_fail "a refused vdfs get --zip left a file"
vd_ok "no ids, malformed IDs, what=bogus: 400; unknown ID, no result, wrong task: 404; good requests between succeed"

# A chunk that cannot be read once the zip has begun: a bit flipped in
# the pack of a file submitted last (each submission is one pack).
vd_gen_text "$VD_WORK/doomed.txt" 3000000 33
packs0="$(ls "$VD_STATE"/packs/*.pack)"
cp "$VD_WORK/doomed.txt" "$N/data/doomed.txt"
DOOM="$(readlink "$N/latest")"; DOOM="${DOOM#versions/}"
pack="$(comm -13 <(printf '%s\n' "$packs0" | sort) <(ls "$VD_STATE"/packs/*.pack | sort))"
[ "$(printf '%s\n' "$pack" | grep -c .)" = 1 ] || vd_fail "cp of doomed.txt made not one pack: $pack"
$PY - "$pack" <<'PY'
import os, sys
off = os.path.getsize(sys.argv[1]) // 2
with open(sys.argv[1], "r+b") as f:
    f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0x01]))
PY
st=0
curl -s "${auth[@]}" -o "$VD_WORK/cut.zip" "$A?ids=$TID,$DOOM&what=input" || st=$?
[ "$st" != 0 ] || vd_fail "a zip with an unreadable chunk came whole to curl"
grep -Eq "http: archive: chunk [0-9a-f]{32} of keep/$DOOM/doomed.txt cannot be read" "$VD_WORK/vdfsd.log" ||
	vd_fail "vdfsd's log does not name the unreadable chunk"
st=0
"$VDFS" get --zip --input "$TID" "$DOOM" -o "$VD_WORK/cut2.zip" "${G[@]}" 2>"$VD_WORK/get.err" || st=$?
[ "$st" = 1 ] || vd_fail "vdfs get --zip of a zip cut short exited $st, not 1"
[ ! -e "$VD_WORK/cut2.zip" ] && [ ! -e "$VD_WORK/cut2.zip.part" ] || vd_fail "vdfs get --zip cut short left a file"
good "a zip cut short"
vd_ok "an unreadable chunk cuts the zip short (curl fails, vdfs get exits 1 and leaves no file), the log names it"

# The same content in two tasks: without task= the first task in name
# order (keep, which has no result of it); task= picks.
cp "$VD_WORK/in/f1.txt" "$N/data/f1.txt"
[ "$(readlink "$N/latest")" = "versions/${IDS[0]}" ] || vd_fail "f1.txt in keep is not version ${IDS[0]}"
curl -sf "${auth[@]}" -o "$VD_WORK/two.zip" "$A?ids=${IDS[0]}&what=input" || vd_fail "the input zip of an ID of two tasks failed"
$PY - "$VD_WORK/two.zip" keep "${IDS[0]}" <<'PY' || vd_fail "an ID of two tasks is not taken from the first in name order"
import sys, zipfile
got = [i.filename for i in zipfile.ZipFile(sys.argv[1]).infolist()]
assert got == [f"{sys.argv[2]}/{sys.argv[3]}/f1.txt"], got
PY
refuse 404 "the result of an ID whose first task has none" "?ids=${IDS[0]}"
curl -sf "${auth[@]}" -o "$VD_WORK/two.zip" "$A?ids=${IDS[0]}&task=wc" || vd_fail "task=wc of an ID of two tasks failed"
$PY - "$VD_WORK/two.zip" wc "${IDS[0]}" <<'PY' || vd_fail "task=wc does not pick wc"
import sys, zipfile
got = [i.filename for i in zipfile.ZipFile(sys.argv[1]).infolist()]
assert got == [f"{sys.argv[2]}/{sys.argv[3]}/result.csv"], got
PY
"$VDFS" get --zip "${IDS[0]}" --task wc -o "$VD_WORK/two2.zip" "${G[@]}" || vd_fail "vdfs get --zip --task wc failed"
[ "$(unzip -Z1 "$VD_WORK/two2.zip")" = "wc/${IDS[0]}/result.csv" ] || vd_fail "vdfs get --zip --task wc: $(unzip -Z1 "$VD_WORK/two2.zip")"
vd_ok "an ID in two tasks: the first in name order without task=, the one named with task= (vdfs get --task)"

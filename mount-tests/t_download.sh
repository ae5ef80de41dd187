#!/usr/bin/env bash
# t_download: a version's files over HTTP, with a reader's token, checked
# against the files themselves with curl, cmp, tail and head.
#   - input (100 MB) comes whole and byte-identical, streamed: vdfsd's peak
#     memory while sending it stays within 32 MiB of what it had before;
#   - ETag is the content ID; If-None-Match with it is 304; Accept-Ranges;
#   - Range: a middle slice, a suffix, an open end (curl -C - resumes a cut
#     download to the identical file); past the end is 416 with
#     Content-Range: bytes */SIZE;
#   - result.csv (text/csv), meta.json (JSON), log; one path of a tree;
#     a tree without a path is 400, a missing path or file 404;
#   - vdfs get (server and token only): result.csv to stdout, --input -o,
#     a tree's file; a cut download (a tagged OUT.part) resumes, a part of
#     other content is started again;
#   - no token 401, an enrollment token 403.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"
VDFS="$VD_BIN/vdfs"
vd_start_daemon
vd_start_executor e1 --slots 2
"$VDFS" user add rita --role reader --state "$VD_STATE" >"$VD_WORK/rita.tok" 2>/dev/null
R="$(cat "$VD_WORK/rita.tok")"
T="$VD_MNT/tasks/dl"
mkdir "$T"
printf 'reduce = sum\nunit_size = 8M\n' >"$T/config"
printf '#!/bin/sh\nexec awk '"'"'{ n++; b += length($0) + 1 } END { print "lines," n+0; print "bytes," b+0 }'"'"'\n' >"$T/function"
vd_gen_text "$VD_WORK/big.txt" 100000000 7
cp "$VD_WORK/big.txt" "$T/data/big.txt"
ID="$(readlink "$T/latest")"; ID="${ID#versions/}"
vd_wait_status "$T/versions/$ID" done
size=$(stat -c %s "$VD_WORK/big.txt")
U="$VD_URL/v1/tasks/dl/versions/$ID"
auth=(-H "Authorization: Bearer $R")

pid=$VD_DAEMON_PID
rss0=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$pid/status")
echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true
curl -sf "${auth[@]}" -D "$VD_WORK/h1" -o "$VD_WORK/got.txt" "$U/input" || vd_fail "GET input failed"
hwm=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$pid/status")
cmp "$VD_WORK/got.txt" "$VD_WORK/big.txt" || vd_fail "GET input is not the file"
vd_note "vdfsd resident before the download $rss0 KiB, peak during it $hwm KiB"
[ $((hwm - rss0)) -lt 32768 ] || vd_fail "sending a $size-byte file took vdfsd from $rss0 to $hwm KiB: not streamed"
grep -qi "^etag: \"$ID\"" "$VD_WORK/h1" || vd_fail "no ETag of the ID: $(cat "$VD_WORK/h1")"
grep -qi '^accept-ranges: bytes' "$VD_WORK/h1" || vd_fail "no Accept-Ranges"
grep -qi '^content-type: text/plain' "$VD_WORK/h1" || vd_fail "Content-Type of a .txt: $(grep -i content-type "$VD_WORK/h1")"
vd_ok "GET input: $size bytes, byte-identical, streamed (peak +$((hwm - rss0)) KiB), ETag is the ID"

st=$(curl -s "${auth[@]}" -o /dev/null -w '%{http_code}' -H "If-None-Match: \"$ID\"" "$U/input")
[ "$st" = 304 ] || vd_fail "If-None-Match with the ETag: $st, not 304"
st=$(curl -s "${auth[@]}" -o /dev/null -w '%{http_code}' -H 'If-None-Match: "0000"' "$U/input")
[ "$st" = 200 ] || vd_fail "If-None-Match with another ETag: $st, not 200"
vd_ok "If-None-Match: 304 for the version's ETag, 200 for another"

curl -sf "${auth[@]}" -D "$VD_WORK/h2" -r 1000000-1999999 -o "$VD_WORK/mid" "$U/input" || vd_fail "a range failed"
dd if="$VD_WORK/big.txt" of="$VD_WORK/mid.want" bs=1000000 skip=1 count=1 status=none
cmp "$VD_WORK/mid" "$VD_WORK/mid.want" || vd_fail "the range 1000000-1999999 is not those bytes"
grep -q '^HTTP/1.1 206' "$VD_WORK/h2" || vd_fail "a range is not 206: $(head -n 1 "$VD_WORK/h2")"
grep -qi "^content-range: bytes 1000000-1999999/$size" "$VD_WORK/h2" || vd_fail "Content-Range: $(grep -i content-range "$VD_WORK/h2")"
curl -sf "${auth[@]}" -r -100 -o "$VD_WORK/tail" "$U/input" || vd_fail "a suffix range failed"
tail -c 100 "$VD_WORK/big.txt" | cmp - "$VD_WORK/tail" || vd_fail "bytes=-100 is not the last 100 bytes"
head -c 3000000 "$VD_WORK/big.txt" >"$VD_WORK/part"
curl -sf "${auth[@]}" -C - -o "$VD_WORK/part" "$U/input" || vd_fail "curl -C - (resume) failed"
cmp "$VD_WORK/part" "$VD_WORK/big.txt" || vd_fail "a resumed download is not the file"
st=$(curl -s "${auth[@]}" -D "$VD_WORK/h3" -o /dev/null -w '%{http_code}' -r "$size-" "$U/input")
[ "$st" = 416 ] || vd_fail "a range past the end: $st, not 416"
grep -qi "^content-range: bytes \*/$size" "$VD_WORK/h3" || vd_fail "416 without Content-Range: bytes */$size"
vd_ok "Range: a slice (206, Content-Range), a suffix, a resume with curl -C -; past the end 416"

{ echo "bytes,$size"; echo "lines,$(wc -l <"$VD_WORK/big.txt")"; } >"$VD_WORK/result.want"
curl -sf "${auth[@]}" -D "$VD_WORK/h4" -o "$VD_WORK/result.csv" "$U/result.csv" || vd_fail "GET result.csv failed"
vd_same "$VD_WORK/result.csv" "$VD_WORK/result.want" "GET result.csv"
grep -qi '^content-type: text/csv' "$VD_WORK/h4" || vd_fail "result.csv Content-Type: $(grep -i content-type "$VD_WORK/h4")"
cmp -s "$VD_WORK/result.csv" "$T/versions/$ID/result.csv" || vd_fail "result.csv over HTTP differs from the mount's"
curl -sf "${auth[@]}" -o "$VD_WORK/meta.json" "$U/meta.json" || vd_fail "GET meta.json failed"
/usr/bin/python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); assert m["data_id"] == sys.argv[2], m' \
	"$VD_WORK/meta.json" "$ID" || vd_fail "meta.json: $(cat "$VD_WORK/meta.json")"
curl -sf "${auth[@]}" "$U/log" | grep -q 'run done' || vd_fail "GET log has no 'run done'"
vd_ok "result.csv (text/csv, as in the mount), meta.json, log"

mkdir -p "$VD_WORK/tree/sub"
seq 1 1000 >"$VD_WORK/tree/sub/n.csv"
echo hello >"$VD_WORK/tree/a.txt"
cp -r "$VD_WORK/tree" "$T/data/tree"
TID=""
for ((i = 0; i < 300; i++)); do
	TID="$(readlink "$T/latest")"; TID="${TID#versions/}"
	[ "$TID" != "$ID" ] && break
	sleep 0.1
done
[ "$TID" != "$ID" ] || vd_fail "the tree was not sealed"
TU="$VD_URL/v1/tasks/dl/versions/$TID"
curl -sf "${auth[@]}" -D "$VD_WORK/h5" -o "$VD_WORK/n.csv" "$TU/input/sub/n.csv" || vd_fail "GET input/sub/n.csv failed"
cmp "$VD_WORK/n.csv" "$VD_WORK/tree/sub/n.csv" || vd_fail "input/sub/n.csv is not the file"
grep -qi '^content-type: text/csv' "$VD_WORK/h5" || vd_fail "a .csv's Content-Type"
st=$(curl -s "${auth[@]}" -o "$VD_WORK/body" -w '%{http_code}' "$TU/input")
[ "$st" = 400 ] || vd_fail "input of a tree without a path: $st, not 400"
st=$(curl -s "${auth[@]}" -o /dev/null -w '%{http_code}' "$TU/input/nope.txt")
[ "$st" = 404 ] || vd_fail "a missing path: $st, not 404"
st=$(curl -s "${auth[@]}" -o /dev/null -w '%{http_code}' "$U/nothing")
[ "$st" = 404 ] || vd_fail "an unknown file of a version: $st, not 404"
vd_ok "one path of a tree; the tree itself 400, a missing path or file 404"

# vdfs get, as a user on another machine types it: server and token only.
G=(--server "$VD_URL" --token-file "$VD_WORK/rita.tok")
"$VDFS" get "${ID:0:10}" "${G[@]}" >"$VD_WORK/get.csv" || vd_fail "vdfs get ID failed"
vd_same "$VD_WORK/get.csv" "$VD_WORK/result.want" "vdfs get ID prints result.csv"
"$VDFS" get "$ID" --input -o "$VD_WORK/get.txt" "${G[@]}" || vd_fail "vdfs get --input -o failed"
cmp "$VD_WORK/get.txt" "$VD_WORK/big.txt" || vd_fail "vdfs get --input -o is not the file"
[ ! -e "$VD_WORK/get.txt.part" ] && [ ! -e "$VD_WORK/get.txt.part.etag" ] || vd_fail "vdfs get left its part behind"
"$VDFS" get "$TID" sub/n.csv --input -o "$VD_WORK/get-n.csv" "${G[@]}" || vd_fail "vdfs get TREE PATH --input failed"
cmp "$VD_WORK/get-n.csv" "$VD_WORK/tree/sub/n.csv" || vd_fail "vdfs get of a tree's file"
# A cut download: OUT.part holds the first 3 MB, tagged with the ETag.
head -c 3000000 "$VD_WORK/big.txt" >"$VD_WORK/cut.txt.part"
echo "\"$ID\"" >"$VD_WORK/cut.txt.part.etag"
"$VDFS" get "$ID" --input -o "$VD_WORK/cut.txt" "${G[@]}" 2>"$VD_WORK/get.err" || vd_fail "a resumed vdfs get failed"
grep -q 'resuming .* at byte 3000000' "$VD_WORK/get.err" || vd_fail "vdfs get did not resume: $(cat "$VD_WORK/get.err")"
cmp "$VD_WORK/cut.txt" "$VD_WORK/big.txt" || vd_fail "a resumed vdfs get is not the file"
# A part of other content (its tag another): started again, still right.
head -c 1000 /dev/zero >"$VD_WORK/other.txt.part"
echo '"00000000000000000000000000000000"' >"$VD_WORK/other.txt.part.etag"
"$VDFS" get "$ID" --input -o "$VD_WORK/other.txt" "${G[@]}" 2>/dev/null || vd_fail "vdfs get over a stale part failed"
cmp "$VD_WORK/other.txt" "$VD_WORK/big.txt" || vd_fail "vdfs get over a part of other content is not the file"
st=0
"$VDFS" get "$ID" nope --input -o "$VD_WORK/nope" "${G[@]}" 2>"$VD_WORK/get.err" || st=$?
[ "$st" = 2 ] || vd_fail "vdfs get of a missing path exited $st, not 2"
vd_ok "vdfs get: result to stdout, --input -o, a tree's file, resume from a tagged part, a stale part started again"

st=$(curl -s -o /dev/null -w '%{http_code}' "$U/input")
[ "$st" = 401 ] || vd_fail "no token: $st, not 401"
"$VDFS" token executor --state "$VD_STATE" >"$VD_WORK/enroll.tok" 2>/dev/null
st=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(cat "$VD_WORK/enroll.tok")" "$U/input")
[ "$st" = 403 ] || vd_fail "an enrollment token: $st, not 403"
curl -sf "${auth[@]}" -o "$VD_WORK/again" -r 0-99 "$U/input" || vd_fail "a good request after the refusals failed"
vd_ok "no token 401, an enrollment token 403; the next good request succeeds"

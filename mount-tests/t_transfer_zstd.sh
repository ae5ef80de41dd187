#!/usr/bin/env bash
# t_transfer_zstd: compressed transfer (docs/protocol.md, "GET
# /v1/chunks/<chunk-id>", "PUT /v1/results/<lease>"). A word count of 12 MB
# of text with one executor over 127.0.0.1:
#   - result.csv equals what tr | sort | uniq -c compute;
#   - the chunk bytes sent (GET /metrics) are fewer than their raw bytes
#     (every chunk sent once, each as the frame the store keeps), and so are
#     the result bytes received; the figures and ratios are printed;
#   - the executor keeps the frames in its cache as chunks/<id>.zst, byte
#     for byte what the daemon sends with Accept-Encoding: zstd
#     (Content-Encoding: zstd, X-VDFS-Length the chunk's length, and zstd -d
#     gives the file's slice);
#   - curl without Accept-Encoding gets raw bytes: the chunks of the
#     manifest, fetched so, are the file (sha256sum), with no
#     Content-Encoding;
#   - a frame corrupted in the executor's cache is found at the next run
#     (--force), removed, fetched again (only that chunk: its raw length is
#     what the counter grows by) and the result is right again;
# then 4 MB of random bytes through `cat`: result.csv is the input, the
# chunks and the result went raw (the counters grow by as many bytes as
# they stand for) and the cache holds them raw. Last, an executor played
# with curl sends a compressed result by hand: a frame that is not what
# its metadata says (another encoding, body_bytes, out_id, out_bytes,
# other bytes, over the cap) is 400 or 413; the right one is 200 (then
# 409) and result.csv is the output.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"
command -v zstd >/dev/null || vd_fail "zstd (the command) is missing: apt-get install zstd"

IN="$VD_WORK/in"
vd_gen_text "$IN/words.txt" $((12 * 1024 * 1024)) 20250115 3000
size=$(stat -c %s "$IN/words.txt")
vd_count_words "$IN/words.txt" >"$IN/expected.csv"
vd_write_wc_function "$IN/wc.sh"

vd_start_daemon
TOKEN="$(cat "$VD_STATE/token")"
auth=(-H "Authorization: Bearer $TOKEN")
VDFS="$VD_BIN/vdfs"
CACHE="$VD_WORK/cache-e1"

# metrics: the four transfer counters as "chunk_sent chunk_raw result_recv result_raw".
metrics() {
	curl -sf "${auth[@]}" "$VD_URL/metrics" | awk '
		$1 == "vdfs_chunk_bytes_sent_total" { cs = $2 }
		$1 == "vdfs_chunk_raw_bytes_sent_total" { cr = $2 }
		$1 == "vdfs_result_bytes_received_total" { rs = $2 }
		$1 == "vdfs_result_raw_bytes_received_total" { rr = $2 }
		END { if (cs == "" || cr == "" || rs == "" || rr == "") exit 1; print cs, cr, rs, rr }'
}
# chunks ID: "chunk-id length" lines of a version's manifest, in file order.
chunks() {
	curl -sf "${auth[@]}" "$VD_URL/v1/versions/$1" | python3 -c '
import json, sys
m = json.load(sys.stdin)["manifest"]
for f in m["files"]:
    for c in f.get("chunks", []):
        print(c[0], c[1])'
}
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'
}

read -r cs0 cr0 rs0 rr0 <<<"$(metrics)" || vd_fail "GET /metrics has no transfer counters"
[ "$cs0 $cr0 $rs0 $rr0" = "0 0 0 0" ] || vd_fail "a fresh daemon's transfer counters are $cs0 $cr0 $rs0 $rr0"

# ---- text: a word count ----------------------------------------------------
T="$VD_MNT/tasks/wc"
mkdir "$T"
cp "$IN/wc.sh" "$T/function"
printf 'reduce = sum\nunit_size = 1M\n' >"$T/config"
cp "$IN/words.txt" "$T/data/words.txt"
ID="$(readlink "$T/latest")"
ID="${ID#versions/}"
vd_start_executor e1 --slots 2
vd_wait_status "$T/versions/$ID" done
vd_same "$T/versions/$ID/result.csv" "$IN/expected.csv" \
	"result.csv of $size bytes of text equals tr | sort | uniq -c"

read -r cs1 cr1 rs1 rr1 <<<"$(metrics)"
chunks "$ID" >"$VD_WORK/chunks"
nchunks=$(wc -l <"$VD_WORK/chunks")
((nchunks >= 8)) || vd_fail "12 MB of text made only $nchunks chunks"
[ "$cr1" = "$size" ] || vd_fail "the chunks sent stand for $cr1 raw bytes; every chunk once is $size"
((cs1 < cr1)) || vd_fail "chunk bytes sent $cs1 are not fewer than their raw bytes $cr1"
((rs1 < rr1)) || vd_fail "result bytes received $rs1 are not fewer than their raw bytes $rr1"
vd_note "text: chunks $cs1 bytes on the wire for $cr1 raw (ratio $(ratio "$cr1" "$cs1")); results $rs1 for $rr1 (ratio $(ratio "$rr1" "$rs1"))"
vd_ok "the chunks went as frames ($cs1 bytes for $cr1, every chunk once) and the results too ($rs1 for $rr1)"

nzst=$(find "$CACHE/chunks" -name '*.zst' | wc -l)
nraw=$(find "$CACHE/chunks" -regextype posix-extended -regex '.*/[0-9a-f]{32}' | wc -l)
[ "$nzst" = "$nchunks" ] && [ "$nraw" = 0 ] ||
	vd_fail "the executor's cache holds $nzst frames and $nraw raw chunks for $nchunks chunks"
ondisk=$(find "$CACHE/chunks" -name '*.zst' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
[ "$ondisk" = "$cs1" ] || vd_fail "the cached frames take $ondisk bytes; $cs1 came over the wire"
vd_ok "the executor keeps all $nchunks chunks as frames ($ondisk bytes on disk for $size)"

# The daemon's frame, asked for as the executor asks: the cached file.
read -r c0 len0 < <(head -n 1 "$VD_WORK/chunks")
curl -sf "${auth[@]}" -H 'Accept-Encoding: zstd' -D "$VD_WORK/h.zst" -o "$VD_WORK/c0.zst" \
	"$VD_URL/v1/chunks/$c0" || vd_fail "GET /v1/chunks/$c0 with Accept-Encoding: zstd failed"
grep -qi '^content-encoding: zstd' "$VD_WORK/h.zst" ||
	vd_fail "no Content-Encoding: zstd for a text chunk: $(cat "$VD_WORK/h.zst")"
grep -qi "^x-vdfs-length: $len0"$'\r'"\?$" "$VD_WORK/h.zst" ||
	vd_fail "X-VDFS-Length is not the chunk's $len0 bytes: $(grep -i x-vdfs "$VD_WORK/h.zst")"
cmp -s "$VD_WORK/c0.zst" "$CACHE/chunks/$c0.zst" || vd_fail "the cached frame of $c0 is not what the daemon sends"
zstd -q -d -c "$VD_WORK/c0.zst" >"$VD_WORK/c0.raw" || vd_fail "zstd -d refuses the daemon's frame of $c0"
head -c "$len0" "$IN/words.txt" | cmp -s - "$VD_WORK/c0.raw" || vd_fail "zstd -d of chunk $c0 is not the file's first $len0 bytes"
vd_ok "Accept-Encoding: zstd gets the stored frame (Content-Encoding, X-VDFS-Length $len0), the cached file byte for byte; zstd -d gives the file's slice"

# Without the header: raw bytes, which are the file.
: >"$VD_WORK/raw.all"
while read -r c len; do
	curl -sf "${auth[@]}" -D "$VD_WORK/h.raw" "$VD_URL/v1/chunks/$c" >>"$VD_WORK/raw.all" ||
		vd_fail "GET /v1/chunks/$c failed"
	if grep -qi '^content-encoding' "$VD_WORK/h.raw"; then
		vd_fail "a GET without Accept-Encoding came encoded: $(grep -i content-encoding "$VD_WORK/h.raw")"
	fi
done <"$VD_WORK/chunks"
[ "$(sha256sum <"$VD_WORK/raw.all" | cut -d' ' -f1)" = "$(sha256sum <"$IN/words.txt" | cut -d' ' -f1)" ] ||
	vd_fail "the raw chunks of $ID, in order, do not hash to the file's sha256"
vd_ok "curl without Accept-Encoding gets the raw chunks: together they hash to the file's sha256"

# ---- a corrupted frame in the cache ----------------------------------------
read -r cbad lenbad < <(sed -n 3p "$VD_WORK/chunks")
bad="$CACHE/chunks/$cbad.zst"
[ -f "$bad" ] || vd_fail "no cached frame $bad"
zsize=$(stat -c %s "$bad")
printf '\x5a\xa5\x5a\xa5\x5a\xa5\x5a\xa5' | dd of="$bad" bs=1 seek=$((zsize / 2)) conv=notrunc status=none
cmp -s "$bad" <(curl -sf "${auth[@]}" -H 'Accept-Encoding: zstd' "$VD_URL/v1/chunks/$cbad") &&
	vd_fail "the frame was not altered"
read -r cs2 cr2 rs2 rr2 <<<"$(metrics)"
"$VDFS" rerun wc --force --state "$VD_STATE" >/dev/null || vd_fail "vdfs rerun wc --force failed"
"$VDFS" wait wc --state "$VD_STATE" -q || vd_fail "vdfs wait after the forced rerun"
vd_same "$T/latest/result.csv" "$IN/expected.csv" "after the corrupted frame, result.csv is right again"
grep -q "cache: $bad does not decompress and hash to its name; fetching again" "$VD_WORK/exec-e1.log" ||
	vd_fail "the executor did not say that $bad failed verification"
read -r cs3 cr3 rs3 rr3 <<<"$(metrics)"
[ $((cr3 - cr2)) = "$lenbad" ] ||
	vd_fail "after the corruption the chunks sent grew by $((cr3 - cr2)) raw bytes; only chunk $cbad ($lenbad) was to go again"
cmp -s "$bad" <(curl -sf "${auth[@]}" -H 'Accept-Encoding: zstd' "$VD_URL/v1/chunks/$cbad") ||
	vd_fail "the frame fetched again is not the daemon's"
vd_ok "a corrupted frame in the cache is found, removed and fetched again (only it: $((cs3 - cs2)) bytes for $lenbad), and the rerun is right"
# (that curl counted too)
read -r cs3 cr3 rs3 rr3 <<<"$(metrics)"

# ---- random bytes: incompressible, still right ------------------------------
head -c $((4 * 1024 * 1024)) /dev/urandom >"$IN/random.bin"
echo >>"$IN/random.bin"
R="$VD_MNT/tasks/cat"
mkdir "$R"
printf '#!/bin/sh\nexec cat\n' >"$R/function"
printf 'unit_size = 1M\n' >"$R/config"
cp "$IN/random.bin" "$R/data/random.bin"
RID="$(readlink "$R/latest")"
RID="${RID#versions/}"
vd_wait_status "$R/versions/$RID" done
cmp -s "$R/versions/$RID/result.csv" "$IN/random.bin" || vd_fail "cat of random bytes: result.csv is not the input"
vd_ok "random bytes through cat: result.csv is the input"
read -r cs4 cr4 rs4 rr4 <<<"$(metrics)"
rsize=$(stat -c %s "$IN/random.bin")
[ $((cr4 - cr3)) = "$rsize" ] || vd_fail "the random chunks sent stand for $((cr4 - cr3)) bytes, not $rsize"
# Raw: the store kept them raw (a frame would not save 3 %), and so went
# the result; each costs at most what it stands for.
[ $((cs4 - cs3)) = $((cr4 - cr3)) ] ||
	vd_fail "random chunks went as $((cs4 - cs3)) bytes for $((cr4 - cr3)): not raw"
[ $((rs4 - rs3)) = $((rr4 - rr3)) ] ||
	vd_fail "random results came as $((rs4 - rs3)) bytes for $((rr4 - rr3)): not raw"
chunks "$RID" >"$VD_WORK/rchunks"
while read -r c len; do
	[ -f "$CACHE/chunks/$c" ] && [ ! -e "$CACHE/chunks/$c.zst" ] ||
		vd_fail "random chunk $c is not cached raw"
done <"$VD_WORK/rchunks"
vd_ok "random chunks and results went raw ($((cs4 - cs3)) bytes each way as they stand for) and are cached raw"

vd_kill_executor e1
grep -q "stopped; chunks: [0-9]* bytes received for [0-9]* raw, results: [0-9]* bytes sent for [0-9]* raw" \
	"$VD_WORK/exec-e1.log" || vd_fail "the executor did not log its transfer totals at exit"
vd_note "executor: $(grep -o 'stopped; chunks:.*' "$VD_WORK/exec-e1.log" | tail -n 1)"
vd_ok "the executor logs its transfer totals when it stops"

# ---- a compressed result by hand ---------------------------------------------
OUT="$VD_WORK/out.json"
req() {
	local want="$1" method="$2" path="$3" got
	shift 3
	got="$(curl -s -o "$OUT" -w '%{http_code}' -X "$method" "$@" "$VD_URL$path")" ||
		vd_fail "curl $method $path failed to connect"
	[ "$got" = "$want" ] || vd_fail "$method $path: status $got, wanted $want: $(head -c 300 "$OUT")"
}
req 200 POST /v1/executors "${auth[@]}" --data-binary '{"name": "hand", "level": 1, "slots": 1}'
grep -q '"result_encodings":\["zstd"\]' "$OUT" || vd_fail "the registration reply does not offer zstd results: $(cat "$OUT")"
HAND="$(sed -n 's/.*"token":"\([0-9a-f]*\)".*/\1/p' "$OUT")"
ha=(-H "Authorization: Bearer $HAND")
H="$VD_MNT/tasks/hand"
mkdir "$H"
printf '#!/bin/sh\nexec cat\n' >"$H/function"
vd_gen_text "$IN/small.txt" 12000 99 300   # under a chunk's minimum (16 KiB): one chunk
cp "$IN/small.txt" "$H/data/small.txt"
HID="$(readlink "$H/latest")"
HID="${HID#versions/}"
req 200 POST /v1/leases "${ha[@]}" --data-binary '{"max": 1, "wait_ms": 10000}'
LEASE="$(sed -n 's/.*"lease":"\([0-9a-f]*\)".*/\1/p' "$OUT")"
vd_is_id "$LEASE" || vd_fail "no lease in $(head -c 300 "$OUT")"
# One chunk: the output of cat is the chunk, whose ID is then the output's.
CID="$(python3 -c 'import json, sys; l = json.load(open(sys.argv[1]))["leases"][0]; assert len(l["chunks"]) == 1; print(l["chunks"][0]["id"])' "$OUT")" ||
	vd_fail "the hand unit is not one chunk: $(head -c 300 "$OUT")"
n=$(stat -c %s "$IN/small.txt")
zstd -q -c "$IN/small.txt" >"$VD_WORK/small.zst"
zn=$(stat -c %s "$VD_WORK/small.zst")
head -c "$n" "$IN/words.txt" | zstd -q -c >"$VD_WORK/other.zst"
on=$(stat -c %s "$VD_WORK/other.zst")
# body META FRAME: the metadata line and a frame, as a file to PUT.
body() {
	printf '%s\n' "$1" | cat - "$2" >"$VD_WORK/result"
}
put() {
	req "$1" PUT "/v1/results/$LEASE" "${ha[@]}" --data-binary @"$VD_WORK/result"
	[ "$1" = 200 ] || [ "$1" = 409 ] || grep -q "$2" "$OUT" || vd_fail "status $1 without '$2': $(cat "$OUT")"
}
read -r hs0 hr0 < <(metrics | awk '{ print $3, $4 }')
body "{\"exit\": 0, \"out_bytes\": $n, \"encoding\": \"gzip\", \"body_bytes\": $zn, \"out_id\": \"$CID\"}" "$VD_WORK/small.zst"
put 400 'encoding must be'
body "{\"exit\": 0, \"out_bytes\": $n, \"encoding\": \"zstd\", \"body_bytes\": $((zn + 1)), \"out_id\": \"$CID\"}" "$VD_WORK/small.zst"
put 400 'body_bytes must be'
body "{\"exit\": 0, \"out_bytes\": $n, \"encoding\": \"zstd\", \"body_bytes\": $zn}" "$VD_WORK/small.zst"
put 400 'out_id must be'
body "{\"exit\": 0, \"out_bytes\": $((n - 1)), \"encoding\": \"zstd\", \"body_bytes\": $zn, \"out_id\": \"$CID\"}" "$VD_WORK/small.zst"
put 400 'does not decompress to the out_bytes'
body "{\"exit\": 0, \"out_bytes\": $n, \"encoding\": \"zstd\", \"body_bytes\": $on, \"out_id\": \"$CID\"}" "$VD_WORK/other.zst"
put 400 'does not decompress to the out_bytes'
head -c $((zn / 2)) "$VD_WORK/small.zst" >"$VD_WORK/cut.zst"
body "{\"exit\": 0, \"out_bytes\": $n, \"encoding\": \"zstd\", \"body_bytes\": $((zn / 2)), \"out_id\": \"$CID\"}" "$VD_WORK/cut.zst"
put 400 'does not decompress to the out_bytes'
body "{\"exit\": 0, \"out_bytes\": $((1 << 31)), \"encoding\": \"zstd\", \"body_bytes\": $zn, \"out_id\": \"$CID\"}" "$VD_WORK/small.zst"
put 413 'larger than the limit'
read -r hs1 hr1 < <(metrics | awk '{ print $3, $4 }')
[ "$hs1 $hr1" = "$hs0 $hr0" ] || vd_fail "refused results were counted: $hs0 $hr0 -> $hs1 $hr1"
vd_ok "a compressed result that is not what its metadata says is refused (400: encoding, body_bytes, out_id, out_bytes, other bytes, cut short; 413 over the cap) and not counted"
body "{\"exit\": 0, \"out_bytes\": $n, \"encoding\": \"zstd\", \"body_bytes\": $zn, \"out_id\": \"$CID\"}" "$VD_WORK/small.zst"
put 200
put 409
vd_wait_status "$H/versions/$HID" done
cmp -s "$H/versions/$HID/result.csv" "$IN/small.txt" || vd_fail "the hand result.csv is not the output"
read -r hs2 hr2 < <(metrics | awk '{ print $3, $4 }')
[ $((hs2 - hs1)) = "$zn" ] && [ $((hr2 - hr1)) = "$n" ] ||
	vd_fail "the hand result counted $((hs2 - hs1)) bytes for $((hr2 - hr1)); it was $zn for $n"
vd_ok "the right frame is taken (then 409), counted as $zn bytes for $n, and result.csv is the output"

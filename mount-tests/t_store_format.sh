#!/usr/bin/env bash
# t_store_format: a state dir written by the store format before compression
# (tests/fixtures/store-v1.tar.gz: 32-byte index records, raw chunks, no
# meta/store_format; made by the old code, see tests/fixtures/README.md)
# under today's vdfsd, which compresses new chunks (zstd:2 by default):
#   - it mounts, and every file, both inputs (a file and a tree) and both
#     result.csv read back with the sha256 recorded when it was made;
#     vdfs fsck --full finds it whole;
#   - a new version of compressible text reads back, runs to the right
#     result, and is stored compressed (vdfs du: COMPRESSED well under
#     DEDUPED); 4 MB of random bytes cost at most 1.02 x their size;
#   - after a restart, old and new read back still, and gc plus a full
#     fsck are clean with both kinds of records side by side;
#   - a byte flipped in the compressed version's pack: reading it gives
#     EIO, never other bytes, and vdfs fsck --full names the chunk and the
#     version.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"
VDFS="$VD_BIN/vdfs"
FIX="$(cd "$(dirname "$0")/../tests/fixtures" && pwd)"
T="$VD_MNT/tasks/wc"

tar -xzf "$FIX/store-v1.tar.gz" -C "$VD_WORK"
check_fixture() {
	local sum path n=0
	while read -r sum path; do
		[ -f "$T/$path" ] || vd_fail "$1: $path is missing from the mount"
		[ "$(sha256sum <"$T/$path" | cut -d' ' -f1)" = "$sum" ] ||
			vd_fail "$1: $path does not read back as the old code wrote it"
		n=$((n + 1))
	done <"$FIX/store-v1.sha256"
	[ "$n" = 8 ] || vd_fail "store-v1.sha256 lists $n files, expected 8"
	vd_ok "$1: the $n files of the format-1 state read back byte-identical (sha256)"
}

vd_start_daemon
[ "$(vd_versions "$T" | wc -l)" = 2 ] || vd_fail "the fixture's task has versions: $(vd_versions "$T" | tr '\n' ' ')"
check_fixture "format 1 under today's vdfsd"
"$VDFS" fsck --full --state "$VD_STATE" >"$VD_WORK/fsck0.txt" ||
	vd_fail "fsck --full of the format-1 state: $(cat "$VD_WORK/fsck0.txt")"
vd_ok "vdfs fsck --full finds the format-1 state whole"

# A new version, compressed: it reads back and computes as any other.
vd_gen_text "$VD_WORK/new.txt" 600000 31 3000
# Pack files committed so far (a writer's tmp- file is not one).
packs() { ls "$VD_STATE/packs" | grep -v '^tmp-' || true; }
packs >"$VD_WORK/packs0"
before="$(vd_versions "$T")"
cp "$VD_WORK/new.txt" "$T/data/new.txt"
v3="$(vd_new_version "$T" "$before")"
packs >"$VD_WORK/packs1"
newpack="$(comm -13 "$VD_WORK/packs0" "$VD_WORK/packs1")"
[ "$(printf '%s\n' "$newpack" | grep -c .)" = 1 ] || vd_fail "the new version made packs: $newpack"
cmp "$T/versions/$v3/input" "$VD_WORK/new.txt" || vd_fail "the new version does not read back"
# Only now: the run's results go to packs of their own.
vd_start_executor e1
vd_wait_status "$T/versions/$v3" done
vd_count_words "$VD_WORK/new.txt" >"$VD_WORK/expected.csv"
vd_same "$T/versions/$v3/result.csv" "$VD_WORK/expected.csv" "the new version's result is the word count of its input"
packsize=$(stat -c %s "$VD_STATE/packs/$newpack")
((packsize * 2 < 600000)) || vd_fail "the new version's pack holds $packsize bytes for 600000 of text: not compressed"
vd_ok "the new version's 600000 bytes of text take $packsize in their pack"

"$VDFS" du --bytes --state "$VD_STATE" >"$VD_WORK/du.txt"
read -r dlogical ddedup dzstd < <(awk '$1 == "wc" { print $3, $4, $5 }' "$VD_WORK/du.txt")
old=$((40000 + 20000 + 8192 + 20))
[ "$dlogical" -ge $((old + 600000)) ] || vd_fail "vdfs du: logical $dlogical: $(cat "$VD_WORK/du.txt")"
((dzstd + 200000 < ddedup)) ||
	vd_fail "vdfs du: compressed $dzstd against deduped $ddedup: $(cat "$VD_WORK/du.txt")"
grep -q '^chunks: [0-9]*, [0-9]* after dedup, [0-9]* after compression' "$VD_WORK/du.txt" ||
	vd_fail "vdfs du gives no line for the store's chunks: $(cat "$VD_WORK/du.txt")"
vd_ok "vdfs du: logical $dlogical, after dedup $ddedup, after compression $dzstd"

# Random bytes stay raw: at most 1.02 x.
head -c 4000000 /dev/urandom >"$VD_WORK/random.bin"
packs >"$VD_WORK/packs2"
before="$(vd_versions "$T")"
cp "$VD_WORK/random.bin" "$T/data/random.bin"
v4="$(vd_new_version "$T" "$before")"
packs >"$VD_WORK/packs3"
rpack="$(comm -13 "$VD_WORK/packs2" "$VD_WORK/packs3")"
[ "$(printf '%s\n' "$rpack" | grep -c .)" = 1 ] || vd_fail "the random version made packs: $rpack"
rsize=$(stat -c %s "$VD_STATE/packs/$rpack")
((rsize * 100 <= 4000000 * 102)) || vd_fail "4000000 random bytes take $rsize in their pack"
cmp "$T/versions/$v4/input" "$VD_WORK/random.bin" || vd_fail "the random version does not read back"
vd_ok "4000000 random bytes take $rsize in their pack (at most 1.02 x) and read back"
vd_wait_status "$T/versions/$v4" done

vd_kill_executor e1
vd_kill_daemon TERM
vd_start_daemon
check_fixture "after a restart"
cmp "$T/versions/$v3/input" "$VD_WORK/new.txt" || vd_fail "after a restart the new version does not read back"
vd_same "$T/versions/$v3/result.csv" "$VD_WORK/expected.csv" "after a restart the new version's result reads back"
"$VDFS" gc --state "$VD_STATE" >"$VD_WORK/gc.txt" || vd_fail "gc: $(cat "$VD_WORK/gc.txt")"
"$VDFS" fsck --full --state "$VD_STATE" >"$VD_WORK/fsck1.txt" ||
	vd_fail "fsck --full with old and new records: $(cat "$VD_WORK/fsck1.txt")"
check_fixture "after gc"
vd_ok "gc and vdfs fsck --full are clean with raw and compressed chunks side by side"

# A corrupted compressed chunk: EIO and fsck, never other bytes. Flipped
# with the daemon stopped, so that no page the kernel cached from an
# earlier read hides it.
vd_kill_daemon TERM
size=$(stat -c %s "$VD_STATE/packs/$newpack")
/usr/bin/python3 - "$VD_STATE/packs/$newpack" $((size / 2)) <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0x10]))
PY
vd_start_daemon
st=0
cat "$T/versions/$v3/input" >"$VD_WORK/got.txt" 2>"$VD_WORK/cat.err" || st=$?
[ "$st" != 0 ] && grep -q "Input/output error" "$VD_WORK/cat.err" ||
	vd_fail "reading a version with a corrupt compressed chunk: status $st, $(cat "$VD_WORK/cat.err")"
cmp -s "$VD_WORK/got.txt" "$VD_WORK/new.txt" && vd_fail "the corrupt version read back whole"
cmp -n "$(stat -c %s "$VD_WORK/got.txt")" "$VD_WORK/got.txt" "$VD_WORK/new.txt" ||
	vd_fail "what was read of the corrupt version before the EIO is not its bytes"
st=0
"$VDFS" fsck --full --json --state "$VD_STATE" >"$VD_WORK/fsck2.json" || st=$?
[ "$st" = 1 ] || vd_fail "fsck --full on a corrupt compressed chunk exited $st, not 1"
/usr/bin/python3 - "$VD_WORK/fsck2.json" "$v3" <<'PY' || vd_fail "fsck --full did not name the chunk and its version: $(cat "$VD_WORK/fsck2.json")"
import json, sys
r = json.load(open(sys.argv[1]))
p = [x for x in r["problems"] if x["kind"] == "corrupt_chunk"]
assert len(p) == 1 and len(r["problems"]) == 1, r["problems"]
assert [v["data_id"] for v in p[0]["versions"]] == [sys.argv[2]], p
PY
grep -q "is corrupt\|does not decompress\|is not a zstd frame" "$VD_WORK/vdfsd.log" ||
	vd_fail "vdfsd's log does not say which chunk is corrupt"
check_fixture "with one corrupt new chunk"
vd_ok "a corrupt compressed chunk: EIO (never other bytes), vdfs fsck --full names it and its version"

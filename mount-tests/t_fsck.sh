#!/usr/bin/env bash
# t_fsck: a flipped byte in a pack file.
#   - vdfs fsck (references only) does not read chunks and finds nothing;
#   - vdfs fsck --full exits 1 naming the corrupt chunk and the version
#     that holds it; the other version, in another pack, is not named;
#   - reading the damaged version's input fails with EIO, never wrong bytes;
#   - vdfs fsck --full --repair marks it damaged: its status says DAMAGED,
#     reading still gives EIO; the other version reads back as it was;
#   - the same file copied in again is stored anew, and a full check then
#     finds the version whole (the mark goes).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"
VDFS="$VD_BIN/vdfs"
vd_start_daemon
T="$VD_MNT/tasks/f"
mkdir "$T"
vd_gen_text "$VD_WORK/a.txt" 3000000 21
vd_gen_text "$VD_WORK/b.txt" 3000000 22
cp "$VD_WORK/a.txt" "$T/data/a.txt"
A="$(readlink "$T/latest")"; A="${A#versions/}"
cp "$VD_WORK/b.txt" "$T/data/b.txt"
B="$(readlink "$T/latest")"; B="${B#versions/}"
"$VDFS" fsck --full --state "$VD_STATE" >"$VD_WORK/fsck0.out" || vd_fail "fsck --full of a sound store: $(cat "$VD_WORK/fsck0.out")"

# Each submission is one pack: a's is the older file of the two.
pack="$(ls -tr "$VD_STATE"/packs/*.pack | head -n 1)"
size=$(stat -c %s "$pack")
off=$((size / 2))
/usr/bin/python3 - "$pack" "$off" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0x01]))
PY
vd_note "flipped one bit at byte $off of $pack"

"$VDFS" fsck --state "$VD_STATE" >/dev/null || vd_fail "fsck without --full read chunks (or found something else)"
st=0
"$VDFS" fsck --full --json --state "$VD_STATE" >"$VD_WORK/fsck.json" || st=$?
[ "$st" = 1 ] || vd_fail "fsck --full on a flipped byte exited $st, not 1"
/usr/bin/python3 - "$VD_WORK/fsck.json" "$A" "$B" <<'PY' || vd_fail "fsck --full did not name the chunk and its version: $(cat "$VD_WORK/fsck.json")"
import json, re, sys
r = json.load(open(sys.argv[1])); a, b = sys.argv[2], sys.argv[3]
p = r["problems"]
assert len(p) == 1, p
assert p[0]["kind"] == "corrupt_chunk" and re.fullmatch("[0-9a-f]{32}", p[0]["chunk"]), p
vs = [v["data_id"] for v in p[0]["versions"]]
assert vs == [a], (vs, a, b)
PY
"$VDFS" fsck --full --state "$VD_STATE" >"$VD_WORK/fsck.txt" 2>&1 || true
chunk="$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["problems"][0]["chunk"])' "$VD_WORK/fsck.json")"
grep -q "${chunk:0:12}" "$VD_WORK/fsck.txt" || vd_fail "vdfs fsck --full does not print the chunk: $(cat "$VD_WORK/fsck.txt")"
grep -q "${A:0:12}" "$VD_WORK/fsck.txt" || vd_fail "vdfs fsck --full does not print the version: $(cat "$VD_WORK/fsck.txt")"
vd_ok "vdfs fsck --full exits 1 naming the corrupt chunk and the one version holding it"

st=0
cat "$T/versions/$A/input" >/dev/null 2>"$VD_WORK/cat.err" || st=$?
[ "$st" != 0 ] || vd_fail "reading the damaged version succeeded"
grep -q "Input/output error" "$VD_WORK/cat.err" || vd_fail "reading the damaged version: $(cat "$VD_WORK/cat.err"), not EIO"
cmp -s "$T/versions/$B/input" "$VD_WORK/b.txt" || vd_fail "the undamaged version does not read back"
vd_ok "reading the damaged version gives EIO; the other reads back intact"

st=0
"$VDFS" fsck --full --repair --state "$VD_STATE" >"$VD_WORK/repair.txt" 2>&1 || st=$?
[ "$st" = 1 ] || vd_fail "fsck --full --repair exited $st (it found a problem: 1)"
grep -q DAMAGED "$T/versions/$A/status" || vd_fail "status after repair: $(cat "$T/versions/$A/status")"
grep -q DAMAGED "$T/versions/$B/status" && vd_fail "the sound version is marked damaged too"
st=0
cat "$T/versions/$A/input" >/dev/null 2>"$VD_WORK/cat.err" || st=$?
[ "$st" != 0 ] && grep -q "Input/output error" "$VD_WORK/cat.err" || vd_fail "after repair, reading the damaged version: $(cat "$VD_WORK/cat.err")"
vd_ok "fsck --repair marks the version damaged (status says so), reads still give EIO"

# Heal: the same bytes again are stored anew, not deduplicated against the bad copy.
cp "$VD_WORK/a.txt" "$T/data/a-again.txt"
cmp -s "$T/versions/$A/input" "$VD_WORK/a.txt" || vd_fail "after copying the file in again, the version still does not read back"
"$VDFS" fsck --full --repair --state "$VD_STATE" >"$VD_WORK/heal.txt" 2>&1 || vd_fail "fsck after healing: $(cat "$VD_WORK/heal.txt")"
grep -q DAMAGED "$T/versions/$A/status" && vd_fail "the healed version is still marked damaged"
vd_ok "copied in again, the version is whole; a full fsck clears the mark"

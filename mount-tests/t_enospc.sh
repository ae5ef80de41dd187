#!/usr/bin/env bash
# t_enospc: a full state disk never seals a prefix and never loses a run.
#
# The state dir is a 64 MiB tmpfs; a ballast file on it leaves only a few
# MiB free. Then, as a user would see it:
#   - a write into a staged file fails with ENOSPC; space comes back before
#     the file is closed (another program freed it): fsync and close still
#     fail, and nothing of the file is sealed (the reported defect: the
#     prefix was sealed and close returned 0), for a file rewritten in place
#     and for a new file streamed into the store;
#   - the same inside a tree being copied: the file's close fails and the
#     tree is not sealed until the file is written again;
#   - a tree whose seal fails for want of space seals by itself once space
#     is back (no change to the tree, no restart);
#   - results refused for want of space: status and log say `waiting: state
#     disk full`, /metrics says so, the daemon answers 507, and the run
#     completes once space is back, with the exact result.
# Everything afterwards works without a restart.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"
command -v python3 >/dev/null || vd_fail "python3 is needed"
command -v curl >/dev/null || vd_fail "curl is needed"

mount -t tmpfs -o size=64m vdfs-enospc "$VD_STATE" || vd_fail "cannot mount a tmpfs on $VD_STATE"
vd_at_exit "umount -l '$VD_STATE'"
BALLAST="$VD_STATE/ballast"

# leave_free MIB: fill the state disk with ballast until MIB MiB are free.
leave_free() {
	local avail want
	rm -f "$BALLAST"
	avail=$(df --output=avail -B1 "$VD_STATE" | tail -n 1)
	want=$((avail - $1 * 1048576))
	((want > 0)) || return 0
	fallocate -l "$want" "$BALLAST"
	vd_note "state disk: $(df --output=avail -B1 "$VD_STATE" | tail -n 1) bytes free"
}

# The writer: 1 MiB blocks of distinct lines (no two chunks alike, so the
# store cannot dedup them away) until a write fails; then it frees the
# space (removes the ballast) before fsync and close, and says what each
# call returned.
cat >"$VD_WORK/writer.py" <<'EOF'
import errno, os, sys
path, mode, ballast, dofsync = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if mode == "trunc" else 0)
fd = os.open(path, flags, 0o644)
if mode == "append":
    os.lseek(fd, 0, os.SEEK_END)
res = []
failed = False
for blk in range(200):
    data = b"".join(b"block %06d line %06d %s\n" % (blk, i, b"x" * 40) for i in range(16384))
    try:
        os.write(fd, data)
    except OSError as e:
        res.append("write_failed:" + errno.errorcode[e.errno])
        failed = True
        break
if not failed:
    res.append("write_ok")
try:
    os.unlink(ballast)
except FileNotFoundError:
    pass
if dofsync:
    try:
        os.fsync(fd)
        res.append("fsync_ok")
    except OSError as e:
        res.append("fsync_failed:" + errno.errorcode[e.errno])
try:
    os.close(fd)
    res.append("close_ok")
except OSError as e:
    res.append("close_failed:" + errno.errorcode[e.errno])
print(" ".join(res))
EOF

vd_start_daemon
T="$VD_MNT/tasks/wc"
mkdir "$T"
vd_write_wc_function "$VD_WORK/wc.sh"
cp "$VD_WORK/wc.sh" "$T/function"
printf 'reduce = sum\nsettle = 1\n' >"$T/config"

# --- a staged file rewritten in place (the plain staging path) ----------
printf 'seed\n' >"$VD_WORK/seed.txt"
cp "$VD_WORK/seed.txt" "$T/data/P.txt"
before="$(vd_versions "$T")"
leave_free 6
got="$(python3 "$VD_WORK/writer.py" "$T/data/P.txt" append "$BALLAST" 1)"
vd_note "appending to data/P.txt: $got"
case "$got" in
"write_failed:ENOSPC fsync_failed:ENOSPC close_failed:ENOSPC") ;;
*) vd_fail "appending to a staged file on a full disk: '$got'; wanted write, fsync and close to fail with ENOSPC" ;;
esac
vd_same "$T/data/P.txt" "$VD_WORK/seed.txt" "after a failed write data/P.txt still reads the sealed content"
[ "$(vd_versions "$T")" = "$before" ] || vd_fail "a version was sealed from the failed write: $(vd_versions "$T" | tr '\n' ' ')"
vd_ok "a failed write in place: fsync and close fail, nothing is sealed"

# --- a new file, streamed into the store ---------------------------------
leave_free 6
got="$(python3 "$VD_WORK/writer.py" "$T/data/S.txt" trunc "$BALLAST" 0)"
vd_note "writing data/S.txt: $got"
case "$got" in
"write_failed:ENOSPC close_failed:ENOSPC") ;;
*) vd_fail "writing a new file on a full disk: '$got'; wanted write and close to fail with ENOSPC" ;;
esac
[ ! -e "$T/data/S.txt" ] || vd_fail "data/S.txt exists after its failed write"
[ "$(vd_versions "$T")" = "$before" ] || vd_fail "a version was sealed from the failed stream"
vd_ok "a failed write to a new file: close fails, nothing is sealed"

# With space back, the same names work at once.
vd_gen_text "$VD_WORK/s.txt" 3000000 7
cp "$VD_WORK/s.txt" "$T/data/S.txt"
vd_same "$T/data/S.txt" "$VD_WORK/s.txt" "with space back, cp of data/S.txt works"
cp "$VD_WORK/s.txt" "$T/data/P.txt"
vd_same "$T/data/P.txt" "$VD_WORK/s.txt" "with space back, data/P.txt can be replaced"
before="$(vd_versions "$T")"

# --- inside a tree ------------------------------------------------------------
mkdir -p "$VD_WORK/tree"
vd_gen_text "$VD_WORK/tree/a.txt" 100000 11
vd_gen_text "$VD_WORK/tree/big.txt" 2000000 12
mkdir "$T/data/T"
# An open file keeps the tree from settling before the writer gets to it.
: >"$VD_WORK/tree/hold.txt"
exec 8>"$T/data/T/hold.txt"
cp "$VD_WORK/tree/a.txt" "$T/data/T/"
leave_free 6
got="$(python3 "$VD_WORK/writer.py" "$T/data/T/big.txt" trunc "$BALLAST" 1)"
exec 8>&-
vd_note "writing data/T/big.txt: $got"
case "$got" in
"write_failed:ENOSPC fsync_failed:ENOSPC close_failed:ENOSPC") ;;
*) vd_fail "writing a file in a tree on a full disk: '$got'; wanted write, fsync and close to fail with ENOSPC" ;;
esac
# The tree is quiet now; it must not be sealed with the failed file. Wait
# for several settle times for the daemon to say it refuses.
for ((i = 0; i < 100; i++)); do
	grep -q 'data/T not sealed: a write to a file in it failed' "$VD_WORK/vdfsd.log" && break
	vd_check_daemon
	sleep 0.2
done
grep -q 'data/T not sealed: a write to a file in it failed' "$VD_WORK/vdfsd.log" ||
	vd_fail "the daemon did not say why data/T is not sealed"
[ "$(vd_versions "$T")" = "$before" ] || vd_fail "the tree was sealed with a file whose write failed"
vd_ok "a failed write in a tree: fsync and close fail, the tree is not sealed"
# Writing the file again from the start lets the tree seal, exactly.
cp "$VD_WORK/tree/big.txt" "$T/data/T/big.txt"
id="$(vd_wait_new_version "$T" "$before" 60)"
diff -r "$VD_WORK/tree" "$T/versions/$id/input" >/dev/null ||
	vd_fail "versions/$id/input differs from the tree: $(diff -r "$VD_WORK/tree" "$T/versions/$id/input" | head -5)"
vd_ok "written again, the tree seals as version ${id:0:12} with exactly the tree"
before="$(vd_versions "$T")"

# --- a tree whose seal fails for want of space -------------------------------
mkdir -p "$VD_WORK/utree"
for f in 1 2 3; do vd_gen_text "$VD_WORK/utree/u$f.txt" 3000000 "2$f"; done
printf 'hold\n' >"$VD_WORK/utree/hold.txt"
mkdir "$T/data/U"
# A file open in the tree keeps it from settling while the disk is filled.
exec 7>"$T/data/U/hold.txt"
printf 'hold\n' >&7
cp "$VD_WORK/utree"/u*.txt "$T/data/U/"
leave_free 1
exec 7>&-
for ((i = 0; i < 150; i++)); do
	grep -q 'data/U not sealed' "$VD_WORK/vdfsd.log" && break
	vd_check_daemon
	sleep 0.2
done
grep -q 'data/U not sealed' "$VD_WORK/vdfsd.log" || vd_fail "the seal of data/U did not fail on the full disk"
[ "$(vd_versions "$T")" = "$before" ] || vd_fail "data/U was sealed on a full disk"
vd_ok "the seal of a tree fails on a full disk and says so"
rm -f "$BALLAST"
id="$(vd_wait_new_version "$T" "$before" 60)"
diff -r "$VD_WORK/utree" "$T/versions/$id/input" >/dev/null || vd_fail "versions/$id/input differs from data/U's tree"
vd_ok "with space back, data/U seals by itself as ${id:0:12}, exactly"

# --- results refused for want of space ------------------------------------------
R="$VD_MNT/tasks/cat"
mkdir "$R"
# Upper case, so that no output is a chunk the store already has.
printf '#!/bin/sh\nexec tr a-z A-Z\n' >"$VD_WORK/cat.sh"
chmod +x "$VD_WORK/cat.sh"
cp "$VD_WORK/cat.sh" "$R/function"
printf 'unit_size = 1M\n' >"$R/config"
vd_gen_text "$VD_WORK/r.txt" 8000000 31
cp "$VD_WORK/r.txt" "$R/data/r.txt"
rid="$(vd_versions "$R")"
vd_is_id "$rid" || vd_fail "no version for data/r.txt"
leave_free 2
vd_start_executor e1 --slots 2
for ((i = 0; i < 300; i++)); do
	grep -q 'state disk full' "$R/versions/$rid/status" 2>/dev/null && break
	vd_check_daemon
	sleep 0.2
done
st="$(head -n 1 "$R/versions/$rid/status")"
case "$st" in
"queued "*" units: waiting: state disk full ("*" bytes free)" | \
	"running "*" units: waiting: state disk full ("*" bytes free)") ;;
*) vd_fail "status while results are refused for want of space: '$st'" ;;
esac
vd_ok "status says: $st"
grep -q 'waiting: state disk full' "$R/versions/$rid/log" || vd_fail "the run's log does not say the state disk is full"
vd_ok "the run's log says the state disk is full"
TOKEN="$(cat "$VD_STATE/token")"
curl -s -H "Authorization: Bearer $TOKEN" "$VD_URL/metrics" | grep -q '^vdfs_state_disk_full 1$' ||
	vd_fail "/metrics does not say vdfs_state_disk_full 1"
vd_ok "/metrics: vdfs_state_disk_full 1"
grep -q -- '-> 507' "$VD_WORK/vdfsd.log" || vd_fail "no result was answered 507"
vd_ok "results are answered 507 while the disk is full"
rm -f "$BALLAST"
vd_wait_status "$R/versions/$rid" done
tr a-z A-Z <"$VD_WORK/r.txt" >"$VD_WORK/r.expected"
vd_same "$R/versions/$rid/result.csv" "$VD_WORK/r.expected" "with space back the run completes with the exact result"
curl -s -H "Authorization: Bearer $TOKEN" "$VD_URL/metrics" | grep -q '^vdfs_state_disk_full 0$' ||
	vd_fail "/metrics still says the state disk is full"
vd_ok "/metrics: vdfs_state_disk_full 0 again"

# --- a disk filled to the last byte by another program -------------------------
# The catalog's own writes now fail too; RocksDB then refuses every write
# until it is reopened, which the daemon does by itself once there is room.
# RocksDB preallocates its write-ahead log (about 18 MB, catalog.c), so
# writes go on into that room for a while: each config carries a 60 KB
# comment, so that a few hundred of them are past it.
leave_free 0
full=0
pad="# $(head -c 60000 /dev/zero | tr '\0' x)"
for ((i = 0; i < 1000; i++)); do
	# cp, since it checks what close says (bash does not).
	printf '%s\nreduce = sum\nsettle = 1\ntimeout = %d\n' "$pad" $((100 + i)) >"$VD_WORK/config.new"
	if ! out="$(cp "$VD_WORK/config.new" "$T/config" 2>&1)"; then
		vd_note "config write $i on a full disk: $out"
		full=1
		break
	fi
done
[ "$full" = 1 ] || vd_fail "1000 config writes of 60 KB on a disk without a free byte all succeeded"
case "$out" in
*"No space left"*) ;;
*) vd_fail "a config write on a full disk failed, but not with ENOSPC: $out" ;;
esac
vd_ok "on a disk without a free byte, a config write fails with ENOSPC"
rm -f "$BALLAST"
printf 'reduce = sum\nsettle = 1\ntimeout = 60\n' >"$VD_WORK/config.new"
cp "$VD_WORK/config.new" "$T/config" || vd_fail "with space back, the config cannot be written"
mkdir "$VD_MNT/tasks/after" || vd_fail "with space back, a task cannot be made"
vd_ok "with space back, the catalog takes writes again (no restart)"

# Everything still works, without a restart.
before="$(vd_versions "$T")"
vd_gen_text "$VD_WORK/last.txt" 500000 41
cp "$VD_WORK/last.txt" "$T/data/last.txt"
id="$(vd_new_version "$T" "$before")"
vd_wait_status "$T/versions/$id" done
vd_count_words "$VD_WORK/last.txt" >"$VD_WORK/last.expected"
vd_same "$T/versions/$id/result.csv" "$VD_WORK/last.expected" "a new submission runs to the right result without a restart"

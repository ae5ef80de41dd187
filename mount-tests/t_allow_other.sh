#!/usr/bin/env bash
# t_allow_other: with vdfsd --allow-other, other local users use the mount
# and owners behave as on a normal file system, checked against a native
# directory with the same calls by the same users:
#   - root's chown of a file in a tree is kept (stat shows the new owner);
#   - a non-owner's chmod, and utimensat with explicit times, are EPERM
#     (not EACCES); the owner's succeed;
#   - a non-owner cannot create in a directory of mode 0755;
#   - any user may submit into data/ (sticky, as /tmp), and what a user
#     makes is theirs.
# Users: 65534 (nobody) and 65533, run with setpriv; as root.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"
[ "$(id -u)" = 0 ] || vd_fail "t_allow_other runs as root (it switches users)"
command -v setpriv >/dev/null || vd_fail "setpriv (util-linux) is needed"
[ -x /usr/bin/python3 ] || vd_fail "/usr/bin/python3 is needed (other users cannot run root's python3)"
# Other users must reach the mount point and the native directory.
chmod 0755 "$VD_WORK"
vd_start_daemon --allow-other
T="$VD_MNT/tasks/ao"
mkdir "$T"
vd_write_wc_function "$T/function"
echo 'settle = 300' >"$T/config"
N="$VD_WORK/native"
mkdir -p "$N/tree" "$T/data/tree"
chmod 0755 "$N" "$N/tree" "$T/data/tree"

as() { # as UID COMMAND...: run COMMAND as UID (group the same).
	local u="$1"
	shift
	setpriv --reuid "$u" --regid "$u" --clear-groups "$@"
}
# one DIR: the calls, one result a line.
one() {
	local d="$1"
	echo "root creates: $(touch "$d/tree/f" && echo ok)"
	echo "root chowns to 65534: $(chown 65534:65534 "$d/tree/f" && stat -c '%u:%g' "$d/tree/f")"
	echo "65533 chmod: $(as 65533 /usr/bin/python3 -c 'import os,sys
try:
    os.chmod(sys.argv[1], 0o600); print("ok")
except OSError as e: print(os.strerror(e.errno))' "$d/tree/f")"
	echo "65533 utime explicit: $(as 65533 /usr/bin/python3 -c 'import os,sys
try:
    os.utime(sys.argv[1], (1, 2)); print("ok")
except OSError as e: print(os.strerror(e.errno))' "$d/tree/f")"
	echo "65533 utime now: $(as 65533 /usr/bin/python3 -c 'import os,sys
try:
    os.utime(sys.argv[1]); print("ok")
except OSError as e: print(os.strerror(e.errno))' "$d/tree/f")"
	echo "65534 chmod: $(as 65534 /usr/bin/python3 -c 'import os,sys
os.chmod(sys.argv[1], 0o600); print("ok %o" % (os.stat(sys.argv[1]).st_mode & 0o7777))' "$d/tree/f")"
	echo "65533 creates in 0755 dir: $(as 65533 /usr/bin/python3 -c 'import os,sys
try:
    open(sys.argv[1], "w").close(); print("ok")
except OSError as e: print(os.strerror(e.errno))' "$d/tree/g")"
	echo "65534 chown to 65533: $(as 65534 /usr/bin/python3 -c 'import os,sys
try:
    os.chown(sys.argv[1], 65533, 65533); print("ok")
except OSError as e: print(os.strerror(e.errno))' "$d/tree/f")"
}
one "$N" >"$VD_WORK/native.out"
one "$T/data" >"$VD_WORK/vdfs.out"
if ! diff "$VD_WORK/native.out" "$VD_WORK/vdfs.out" >"$VD_WORK/diff.out"; then
	cat "$VD_WORK/diff.out" >&2
	vd_fail "owners and permissions in a tree differ from a native directory"
fi
grep -q '^65533 chmod: Operation not permitted$' "$VD_WORK/vdfs.out" || vd_fail "a non-owner's chmod is not EPERM: $(cat "$VD_WORK/vdfs.out")"
vd_ok "chown by root, EPERM for a non-owner's chmod and utimensat, the owner's chmod: as on a native directory"

# Any user submits into data/; what they make is theirs.
as 65534 sh -c "printf 'one two\n' > '$T/data/nobody.txt'" || vd_fail "user 65534 cannot submit into data/"
as 65534 sh -c "mkdir '$T/data/ntree' && printf 'x\n' > '$T/data/ntree/x.txt'" ||
	vd_fail "user 65534 cannot make a tree in data/"
[ "$(stat -c %u "$T/data/ntree/x.txt")" = 65534 ] || vd_fail "a file user 65534 made shows owner $(stat -c %u "$T/data/ntree/x.txt")"
[ "$(stat -c %a "$T/data")" = 1777 ] || vd_fail "data/ is $(stat -c %a "$T/data"), not 1777"
if as 65533 sh -c "rm -rf '$T/data/ntree'" 2>/dev/null; then
	vd_fail "user 65533 removed user 65534's tree"
fi
vd_ok "any user submits into data/ (1777); what they make is theirs; others cannot remove it"

# Who submitted a version is in its meta.json: the file's writer.
nid=""
for d in "$T"/versions/*/; do
	grep -q '"name": *"nobody.txt"' "$d/meta.json" && nid="$d"
done
[ -n "$nid" ] || vd_fail "no version of nobody.txt"
who65534="$(getent passwd 65534 | cut -d: -f1 || true)"
grep -q "\"submitted_by\": *\"${who65534:-uid 65534}\"" "$nid/meta.json" ||
	vd_fail "meta.json of user 65534's file: $(cat "$nid/meta.json")"
vd_ok "meta.json records who submitted: user 65534 (${who65534:-uid 65534})"

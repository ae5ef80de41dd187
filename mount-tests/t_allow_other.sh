#!/usr/bin/env bash
# t_allow_other: with vdfsd --allow-other, other local users use the mount;
# files and tasks belong to the uid that made them, and a task is writable
# only by its owner and root (docs/remote-access.md):
#   - a task made before (no uid recorded) shows as the daemon's, and
#     another user cannot submit into it;
#   - tasks/ is 1777; user 65534 makes a task: the task dir, data/,
#     function and config show owner 65534, modes 755, 755, 644, 644;
#     65534 writes the function and config and submits a file;
#   - user 65533 cannot create in that task's data/ (file or directory),
#     write its function or config, remove or rename its data, or remove
#     the task; root can create, write and remove there;
#   - the same refusals (EACCES) come from the daemon itself for a 65533
#     holding CAP_DAC_OVERRIDE and CAP_FOWNER, which pass the kernel's
#     checks; that process cannot chmod in the task either;
#   - 65533 reads the result (and the input), byte-identical to root's
#     and equal to the count of standard tools;
#   - inside a tree the task's owner made in data/, owners behave as on a
#     native directory made the same way, checked with the same calls by
#     the same users: root's chown is kept, a non-owner's chmod and
#     utimensat with explicit times are EPERM, the owner's chmod works, a
#     non-owner cannot create in a 0755 directory;
#   - what a user makes is theirs, and meta.json names the submitter;
#   - vdfsd --allow-other as a user other than root, with /etc/fuse.conf
#     lacking user_allow_other, fails naming the line to add.
# Users: 65534 (nobody) and 65533, run with setpriv; as root.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"
[ "$(id -u)" = 0 ] || vd_fail "t_allow_other runs as root (it switches users)"
command -v setpriv >/dev/null || vd_fail "setpriv (util-linux) is needed"
[ -x /usr/bin/python3 ] || vd_fail "/usr/bin/python3 is needed (other users cannot run root's python3)"
# Other users must reach the mount point, the native directory and the inputs.
chmod 0755 "$VD_WORK" "$VD_WORK/in"
IN="$VD_WORK/in"
vd_write_wc_function "$IN/wc.sh"
printf 'reduce = sum\nsettle = 300\n' >"$IN/config"
vd_gen_text "$IN/words.txt" 40000 11 400
vd_count_words "$IN/words.txt" >"$IN/expected.csv"
chmod 0644 "$IN"/*

as() { # as UID COMMAND...: run COMMAND as UID (group the same).
	local u="$1"
	shift
	setpriv --reuid "$u" --regid "$u" --clear-groups "$@"
}
# as_caps UID COMMAND...: as UID, but holding the capabilities that let a
# process past the kernel's permission checks (modes, sticky bit, owner).
as_caps() {
	local u="$1"
	shift
	setpriv --reuid "$u" --regid "$u" --clear-groups --inh-caps +dac_override,+fowner \
		--ambient-caps +dac_override,+fowner "$@"
}
# refused WHAT ERR COMMAND...: COMMAND must fail, saying ERR.
refused() {
	local what="$1" err="$2" out
	shift 2
	if out="$("$@" 2>&1)"; then
		vd_fail "$what succeeded"
	fi
	case "$out" in
	*"$err"*) ;;
	*) vd_fail "$what failed, but not with '$err': $out" ;;
	esac
}
owner_mode() { stat -c '%u:%g %a' "$1"; }

# A task from before owners were recorded (made without --allow-other).
vd_start_daemon
mkdir "$VD_MNT/tasks/old"
vd_kill_daemon
vd_start_daemon --allow-other
O="$VD_MNT/tasks/old"
[ "$(owner_mode "$O")" = "0:0 755" ] || vd_fail "a task with no recorded owner shows $(owner_mode "$O"), not the daemon's 0:0 755"
refused "user 65534 submitting into a task of the daemon's" "Permission denied" \
	as 65534 sh -c "printf 'x\n' > '$O/data/x.txt'"
[ ! -e "$O/data/x.txt" ] || vd_fail "data/x.txt exists after a refused create"
vd_ok "a task with no recorded owner is the daemon's (0:0); another user cannot submit into it"

[ "$(stat -c %a "$VD_MNT/tasks")" = 1777 ] || vd_fail "tasks/ is $(stat -c %a "$VD_MNT/tasks"), not 1777"
T="$VD_MNT/tasks/ao"
as 65534 mkdir "$T" || vd_fail "user 65534 cannot make a task"
for x in "$T:755" "$T/data:755" "$T/function:644" "$T/config:644"; do
	p="${x%:*}"
	got="$(owner_mode "$p")"
	[ "$got" = "65534:65534 ${x##*:}" ] || vd_fail "${p#"$VD_MNT"/} shows $got, not 65534:65534 ${x##*:}"
done
vd_ok "tasks/ is 1777; the task 65534 made, its data/, function and config are 65534's (755, 755, 644, 644)"

as 65534 cp "$IN/wc.sh" "$T/function" || vd_fail "the task's owner cannot write its function"
as 65534 cp "$IN/config" "$T/config" || vd_fail "the task's owner cannot write its config"
cmp -s "$T/function" "$IN/wc.sh" || vd_fail "function does not read back what 65534 wrote"
cmp -s "$T/config" "$IN/config" || vd_fail "config does not read back what 65534 wrote"
before="$(vd_versions "$T")"
as 65534 cp "$IN/words.txt" "$T/data/words.txt" || vd_fail "the task's owner cannot submit into data/"
id="$(vd_new_version "$T" "$before")"
[ "$(stat -c %u "$T/data/words.txt")" = 65534 ] || vd_fail "data/words.txt shows owner $(stat -c %u "$T/data/words.txt")"
vd_ok "65534 writes its task's function and config and submits data/words.txt (version $id)"

# Another user, stopped by the kernel (the modes shown).
refused "65533 creating in 65534's data/" "Permission denied" \
	as 65533 sh -c "printf 'x\n' > '$T/data/evil.txt'"
refused "65533 mkdir in 65534's data/" "Permission denied" as 65533 mkdir "$T/data/evil"
refused "65533 writing 65534's function" "Permission denied" \
	as 65533 sh -c "printf '#!/bin/sh\necho evil\n' > '$T/function'"
refused "65533 writing 65534's config" "Permission denied" \
	as 65533 sh -c "printf 'reduce = concat\n' > '$T/config'"
refused "65533 removing 65534's data" "Permission denied" as 65533 rm -f "$T/data/words.txt"
refused "65533 renaming 65534's data" "Permission denied" \
	as 65533 mv "$T/data/words.txt" "$T/data/moved.txt"
refused "65533 removing 65534's task" "Operation not permitted" as 65533 rmdir "$T"
[ ! -e "$T/data/evil.txt" ] && [ ! -e "$T/data/evil" ] && [ -f "$T/data/words.txt" ] &&
	[ ! -e "$T/data/moved.txt" ] || vd_fail "data/ changed after refused changes: $(ls "$T/data")"
cmp -s "$T/function" "$IN/wc.sh" && cmp -s "$T/config" "$IN/config" ||
	vd_fail "function or config changed after refused writes"
vd_ok "65533 cannot create (file, directory) in 65534's data/, write its function or config, remove or rename its data, remove the task"

# The same user past the kernel's checks: the daemon refuses by itself.
refused "65533 (with CAP_DAC_OVERRIDE) creating in data/" "Permission denied" \
	as_caps 65533 sh -c "printf 'x\n' > '$T/data/evil.txt'"
refused "65533 (with CAP_DAC_OVERRIDE) mkdir in data/" "Permission denied" \
	as_caps 65533 mkdir "$T/data/evil"
refused "65533 (with CAP_DAC_OVERRIDE) writing the function" "Permission denied" \
	as_caps 65533 sh -c "printf '#!/bin/sh\necho evil\n' > '$T/function'"
refused "65533 (with CAP_DAC_OVERRIDE) writing the config" "Permission denied" \
	as_caps 65533 sh -c "printf 'reduce = concat\n' > '$T/config'"
refused "65533 (with CAP_DAC_OVERRIDE) removing data" "Permission denied" \
	as_caps 65533 rm -f "$T/data/words.txt"
refused "65533 (with CAP_FOWNER) chmod of data" "Permission denied" \
	as_caps 65533 chmod 0600 "$T/data/words.txt"
refused "65533 (with CAP_FOWNER) removing the task" "Permission denied" as_caps 65533 rmdir "$T"
[ -d "$T" ] && [ ! -e "$T/data/evil.txt" ] && [ ! -e "$T/data/evil" ] && [ -f "$T/data/words.txt" ] ||
	vd_fail "the task changed after changes the daemon refused: $(ls "$T/data")"
cmp -s "$T/function" "$IN/wc.sh" && cmp -s "$T/config" "$IN/config" ||
	vd_fail "function or config changed after writes the daemon refused"
grep -q "uid 65533 may not change it" "$VD_WORK/vdfsd.log" || vd_fail "vdfsd.log says nothing of the refusals"
vd_ok "past the kernel's checks (CAP_DAC_OVERRIDE, CAP_FOWNER) the daemon itself refuses 65533 with EACCES, and logs why"

# Root may change anyone's task.
printf 'from root\n' >"$T/data/root.txt" || vd_fail "root cannot create in 65534's data/"
cp "$IN/config" "$T/config" || vd_fail "root cannot write 65534's config"
cp "$IN/wc.sh" "$T/function" || vd_fail "root cannot write 65534's function"
rm "$T/data/root.txt" || vd_fail "root cannot remove from 65534's data/"
[ ! -e "$T/data/root.txt" ] || vd_fail "data/root.txt is still there after root removed it"
vd_ok "root creates in, writes and removes from 65534's task"

# Everyone reads everything.
vd_start_executor e1
vd_wait_status "$T/versions/$id" "done"
as 65533 cat "$T/versions/$id/result.csv" >"$VD_WORK/result-65533.csv" ||
	vd_fail "user 65533 cannot read the result"
cat "$T/versions/$id/result.csv" >"$VD_WORK/result-root.csv"
cmp -s "$VD_WORK/result-65533.csv" "$VD_WORK/result-root.csv" ||
	vd_fail "what 65533 reads of result.csv differs from what root reads"
vd_same "$VD_WORK/result-65533.csv" "$IN/expected.csv" "65533 reads 65534's result.csv, byte-identical to root's and to tr | sort | uniq -c"
as 65533 cmp -s "$T/versions/$id/input" "$IN/words.txt" || vd_fail "user 65533 cannot read the input, or it differs"
as 65533 ls "$T/versions" | grep -qx "$id" || vd_fail "user 65533 cannot list versions/"
as 65533 grep -q "$id" "$T/versions/$id/meta.json" || vd_fail "user 65533 cannot read meta.json"
vd_ok "65533 reads the input, versions/ and meta.json"

# Inside a tree the owner made: as on a native directory made the same way.
N="$VD_WORK/native"
mkdir "$N"
chown 65534:65534 "$N"
as 65534 mkdir -m 0755 "$N/tree" "$T/data/tree" || vd_fail "65534 cannot make a tree in its data/"
# one DIR: the calls, one result a line.
one() {
	local d="$1"
	echo "tree: $(stat -c '%u:%g %a' "$d/tree")"
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
	echo "65534 creates: $(as 65534 /usr/bin/python3 -c 'import os,sys
open(sys.argv[1], "w").close(); print("ok %d" % os.stat(sys.argv[1]).st_uid)' "$d/tree/h")"
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
grep -q '^65533 creates in 0755 dir: Permission denied$' "$VD_WORK/vdfs.out" || vd_fail "a non-owner created in a 0755 directory: $(cat "$VD_WORK/vdfs.out")"
vd_ok "in 65534's tree: chown by root, EPERM for a non-owner's chmod and utimensat, the owner's chmod and create: as on a native directory"

# What a user makes is theirs; meta.json names who submitted.
as 65534 sh -c "printf 'one two\n' > '$T/data/nobody.txt'" || vd_fail "user 65534 cannot submit nobody.txt"
as 65534 sh -c "mkdir '$T/data/ntree' && printf 'x\n' > '$T/data/ntree/x.txt'" ||
	vd_fail "user 65534 cannot make a tree in its data/"
[ "$(stat -c %u "$T/data/ntree/x.txt")" = 65534 ] || vd_fail "a file user 65534 made shows owner $(stat -c %u "$T/data/ntree/x.txt")"
refused "65533 removing 65534's tree" "Permission denied" as 65533 rm -rf "$T/data/ntree"
[ -f "$T/data/ntree/x.txt" ] || vd_fail "65534's tree lost x.txt to a refused rm"
nid=""
for d in "$T"/versions/*/; do
	grep -q '"name": *"nobody.txt"' "$d/meta.json" && nid="$d"
done
[ -n "$nid" ] || vd_fail "no version of nobody.txt"
who65534="$(getent passwd 65534 | cut -d: -f1 || true)"
grep -q "\"submitted_by\": *\"${who65534:-uid 65534}\"" "$nid/meta.json" ||
	vd_fail "meta.json of user 65534's file: $(cat "$nid/meta.json")"
vd_ok "what 65534 makes is theirs, 65533 cannot remove it; meta.json names the submitter (${who65534:-uid 65534})"

# A sealed tree is the task owner's, and stays so when root changes it
# (the copy made for the change is given to the owner).
S="$VD_MNT/tasks/st"
as 65534 mkdir "$S"
as 65534 sh -c "printf 'settle = 1\n' > '$S/config'"
before="$(vd_versions "$S")"
as 65534 sh -c "mkdir '$S/data/tr' && printf 'x\n' > '$S/data/tr/x.txt'"
vd_wait_new_version "$S" "$before" >/dev/null
[ "$(stat -c %u:%g "$S/data/tr/x.txt")" = 65534:65534 ] || vd_fail "a sealed tree's file shows $(stat -c %u:%g "$S/data/tr/x.txt")"
printf 'root\n' >"$S/data/tr/r.txt"
for p in tr tr/x.txt; do
	[ "$(stat -c %u:%g "$S/data/$p")" = 65534:65534 ] || vd_fail "after root's change data/$p shows $(stat -c %u:%g "$S/data/$p"), not 65534's"
done
[ "$(stat -c %u "$S/data/tr/r.txt")" = 0 ] || vd_fail "root's new file shows owner $(stat -c %u "$S/data/tr/r.txt")"
as 65534 sh -c "printf 'y\n' > '$S/data/tr/y.txt'" || vd_fail "65534 cannot add to its sealed tree after root changed it"
vd_ok "a sealed tree shows the task owner's; after root changes it, it (not root's new file) is still 65534's, who adds to it"

# Root gives a task away: chown of tasks/T is recorded.
refused "65534 chown of a task it does not own" "Operation not permitted" as 65534 chown 65534 "$O"
chown 65533:65533 "$O" || vd_fail "root cannot chown tasks/old"
[ "$(owner_mode "$O/data")" = "65533:65533 755" ] || vd_fail "after chown tasks/old/data shows $(owner_mode "$O/data")"
as 65533 sh -c "printf 'x\n' > '$O/data/x.txt'" || vd_fail "65533 cannot submit into the task root gave it"
refused "65534 submitting into 65533's task" "Permission denied" as 65534 sh -c "printf 'x\n' > '$O/data/y.txt'"
vd_ok "root's chown of tasks/old gives it to 65533, who then submits into it and 65534 cannot"
as 65533 rmdir "$O" || vd_fail "65533 cannot rmdir the task it owns"
[ ! -e "$O" ] || vd_fail "tasks/old is still there after its owner's rmdir"
vd_ok "the owner removes its task with rmdir tasks/old"

# Not root, and /etc/fuse.conf without user_allow_other: say what to add.
# In a mount namespace of its own, with a fuse.conf of the test's and a
# /dev/fuse a user may open (here it may be root's alone), bound over the
# real ones only there.
if command -v unshare >/dev/null; then
	F="$VD_WORK/fc"
	mkdir -p "$F/st" "$F/mnt"
	chown 65534:65534 "$F/st" "$F/mnt"
	printf '# no user_allow_other here\n#user_allow_other\n' >"$F/fuse.conf"
	mknod "$F/fuse" c 10 229
	chmod 0666 "$F/fuse"
	st=0
	unshare -m --propagation private sh -c '
		mount --bind "$1/fuse.conf" /etc/fuse.conf && mount --bind "$1/fuse" /dev/fuse &&
		exec timeout 60 setpriv --reuid 65534 --regid 65534 --clear-groups "$2" --foreground \
			--state "$1/st" --listen 127.0.0.1:0 --allow-other "$1/mnt"' sh "$F" "$VD_BIN/vdfsd" \
		>"$VD_WORK/fuseconf.log" 2>&1 </dev/null || st=$?
	[ "$st" != 0 ] || vd_fail "vdfsd --allow-other as 65534 without user_allow_other did not fail"
	grep -q "has the line user_allow_other; add it (as root: echo user_allow_other >> /etc/fuse.conf)" \
		"$VD_WORK/fuseconf.log" || vd_fail "vdfsd's error does not say what to add to /etc/fuse.conf: $(cat "$VD_WORK/fuseconf.log")"
	vd_ok "vdfsd --allow-other as a user without user_allow_other in /etc/fuse.conf fails, naming the line to add"
else
	vd_note "no unshare: the /etc/fuse.conf message is not checked"
fi

#!/usr/bin/env bash
# t_delete: deleting versions and tasks (docs/lifecycle.md, "From the mount").
#   - rm -r of a version whose run is queued (no executor yet): EBUSY, the
#     version stays, the reason in vdfsd.log and latest/log; vdfs rm says
#     why too (exit 1); after vdfs cancel, rm -r deletes it, ls versions/
#     no longer lists it and latest points to the newest version left;
#   - a pinned version: rm -r is EPERM, vdfs rm exit 1; after vdfs unpin,
#     vdfs rm PREFIX deletes it, and the kernel's cached entry goes too;
#   - rm -rf, find -delete, rmdir, and rm -r (stdin not a terminal) of a
#     tree version with read-only files: each deletes the version;
#   - an ID held by two tasks: vdfs rm without --task exit 2 naming both;
#   - vdfs lineage of a child whose parent was deleted shows
#     "deleted <time>", and --dot draws it dashed and grey (valid for dot);
#   - rmdir of a task with a tree settling in data/ is EBUSY; rm -r of it
#     (which empties data/ first) deletes it; rm -r tasks/T removes a task
#     with versions and data names; vdfs rm --task; ls tasks/ follows;
#   - the routes: 401 without a token, 404, 400 for a bad ID, 405 with
#     Allow for a wrong method on /pin.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"

IN="$VD_WORK/in"
VDFS="$VD_BIN/vdfs"
vdfs() { "$VDFS" "$1" --state "$VD_STATE" "${@:2}"; }
# expect_fail WHAT TEXT COMMAND...: COMMAND fails and says TEXT.
expect_fail() {
	local what="$1" text="$2" out
	shift 2
	if out="$("$@" 2>&1 </dev/null)"; then
		vd_fail "$what succeeded; it must fail with '$text'"
	fi
	case "$out" in
	*"$text"*) vd_ok "$what fails: ${out%%$'\n'*}" ;;
	*) vd_fail "$what failed, but not with '$text': $out" ;;
	esac
}
# gone PATH WHAT: PATH no longer exists (polled: a deletion made over HTTP
# reaches the kernel's cache within a moment, docs/lifecycle.md).
gone() {
	local i
	for ((i = 0; i < 50; i++)); do
		[ -e "$1" ] || { vd_ok "$2"; return 0; }
		sleep 0.1
	done
	vd_fail "$2: $1 still exists"
}
latest_of() {
	local l
	l="$(readlink "$1/latest")" || return 1
	echo "${l#versions/}"
}
listed() {
	vd_versions "$1" | grep -qx "$2"
}

for i in 1 2 3 4 5; do
	vd_gen_text "$IN/v$i.txt" 200000 "$((40 + i))" 400
done
vd_write_wc_function "$IN/wc.sh"

vd_start_daemon
T="$VD_MNT/tasks/dl"
mkdir "$T"
cp "$IN/wc.sh" "$T/function"
printf 'reduce = sum\n' >"$T/config"
cp "$IN/v1.txt" "$T/data/v1.txt"
A="$(vd_new_version "$T" "")"
cp "$IN/v2.txt" "$T/data/v2.txt"
B="$(vd_new_version "$T" "$A")"
cp "$IN/v3.txt" "$T/data/v3.txt"
C="$(vd_new_version "$T" "$(printf '%s\n%s' "$A" "$B")")"
[ "$(latest_of "$T")" = "$C" ] || vd_fail "latest is not the last version sealed"
vd_ok "three versions A=${A:0:12} B=${B:0:12} C=${C:0:12}, runs queued (no executor)"

# 1. A version a queued run reads: EBUSY, until the run is cancelled.
ls -l "$T/versions/$C/" >/dev/null
expect_fail "rm -r of a version with a queued run" "Device or resource busy" rm -r "$T/versions/$C"
listed "$T" "$C" || vd_fail "the refused version is no longer listed"
cmp -s "$T/versions/$C/input" "$IN/v3.txt" || vd_fail "the refused version's input changed"
grep -q "versions/$C: refused: .*queued run" "$VD_WORK/vdfsd.log" ||
	vd_fail "vdfsd.log does not say why rm -r was refused"
grep -q "rm of version ${C:0:12} refused" "$T/latest/log" || vd_fail "latest/log does not say rm was refused"
vd_ok "the refused version is whole; vdfsd.log and latest/log say why"
expect_fail "vdfs rm of a version with a queued run" "cancel it first" vdfs rm "$C"
vdfs cancel dl "$C" >/dev/null || vd_fail "vdfs cancel dl C failed"
rm -r "$T/versions/$C" </dev/null || vd_fail "rm -r of the version after vdfs cancel failed"
! listed "$T" "$C" || vd_fail "ls versions/ still lists the deleted version"
[ ! -e "$T/versions/$C" ] || vd_fail "versions/C still exists after rm -r"
[ "$(latest_of "$T")" = "$B" ] || vd_fail "latest is $(latest_of "$T"), not B, the newest left"
vd_ok "after vdfs cancel, rm -r deletes it; latest moves to B, the newest version left"

# 2. A pinned version: EPERM until unpinned. The executor finishes the runs.
vd_start_executor e1
vd_wait_status "$T/versions/$A" done
vd_wait_status "$T/versions/$B" done
vdfs pin "$B" >"$VD_WORK/pin.out" || vd_fail "vdfs pin B failed"
grep -q "^pinned version $B of task dl$" "$VD_WORK/pin.out" || vd_fail "vdfs pin printed: $(cat "$VD_WORK/pin.out")"
expect_fail "rm -r of a pinned version" "Operation not permitted" rm -r "$T/versions/$B"
expect_fail "vdfs rm of a pinned version" "is pinned" vdfs rm "$B"
listed "$T" "$B" || vd_fail "the pinned version is gone"
vdfs unpin "$B" >/dev/null || vd_fail "vdfs unpin B failed"
ls -l "$T/versions/$B/" >/dev/null   # the kernel caches the entry for an hour
vdfs rm "${B:0:8}" >"$VD_WORK/rm.out" || vd_fail "vdfs rm of the unpinned version failed"
grep -q "^deleted version $B of task dl$" "$VD_WORK/rm.out" || vd_fail "vdfs rm printed: $(cat "$VD_WORK/rm.out")"
! listed "$T" "$B" || vd_fail "ls versions/ still lists the version vdfs rm deleted"
gone "$T/versions/$B" "after vdfs unpin, vdfs rm PREFIX deletes it, and the kernel's cached entry goes"
[ "$(latest_of "$T")" = "$A" ] || vd_fail "latest is $(latest_of "$T"), not A"
vd_ok "latest moves to A"

expect_fail "rmdir of a version that does not exist" "No such file or directory" \
	rmdir "$T/versions/0123456789abcdef0123456789abcdef"
rm -f "$T/versions/0123456789abcdef0123456789abcdef/log" || vd_fail "rm -f of nothing failed"

# 3. rm -rf, find -delete, rmdir; a tree with read-only files and rm -r.
cp "$IN/v4.txt" "$T/data/v4.txt"
D="$(vd_new_version "$T" "$A")"
cp "$IN/v5.txt" "$T/data/v5.txt"
E="$(vd_new_version "$T" "$(printf '%s\n%s' "$A" "$D")")"
cp "$IN/v3.txt" "$T/data/v3.txt"
F="$(vd_new_version "$T" "$(printf '%s\n%s\n%s' "$A" "$D" "$E")")"
mkdir -p "$IN/tree/sub"
cp "$IN/v1.txt" "$IN/tree/ro.txt"
cp "$IN/v2.txt" "$IN/tree/sub/ro2.txt"
printf 'x\n' >"$IN/tree/sub/small"
chmod 0444 "$IN/tree/ro.txt" "$IN/tree/sub/ro2.txt"
ln -s ro.txt "$IN/tree/link"
cp -a "$IN/tree" "$T/data/"
G="$(vd_wait_new_version "$T" "$(printf '%s\n' "$A" "$D" "$E" "$F")")"
for v in "$D" "$E" "$F" "$G"; do vd_wait_status "$T/versions/$v" done; done
[ "$(stat -c %a "$T/versions/$G/input/ro.txt")" = 444 ] || vd_fail "the tree's file is not read-only"
rm -rf "$T/versions/$D" || vd_fail "rm -rf of a version failed"
find "$T/versions/$E" -delete || vd_fail "find -delete of a version failed"
rmdir "$T/versions/$F" || vd_fail "rmdir of a version failed"
rm -r "$T/versions/$G" </dev/null 2>"$VD_WORK/rm-tree.err" ||
	vd_fail "rm -r of a tree version failed: $(cat "$VD_WORK/rm-tree.err")"
[ ! -s "$VD_WORK/rm-tree.err" ] || vd_fail "rm -r of a tree version said: $(cat "$VD_WORK/rm-tree.err")"
for v in "$D" "$E" "$F" "$G"; do
	! listed "$T" "$v" || vd_fail "version $v is still listed"
	[ ! -e "$T/versions/$v" ] || vd_fail "versions/$v still exists"
done
[ "$(latest_of "$T")" = "$A" ] || vd_fail "latest is $(latest_of "$T"), not A"
[ "$(vd_versions "$T")" = "$A" ] || vd_fail "versions/ lists $(vd_versions "$T" | tr '\n' ' ')"
vd_ok "rm -rf, find -delete, rmdir, and rm -r of a tree with read-only files each delete the version"

# 4. One content in two tasks: vdfs rm wants --task.
mkdir "$VD_MNT/tasks/two"
cp "$IN/v1.txt" "$VD_MNT/tasks/two/data/v1.txt"
listed "$VD_MNT/tasks/two" "$A" || vd_fail "the same content in task two is not version A"
st=0
vdfs rm "$A" 2>"$VD_WORK/two.err" || st=$?
[ "$st" = 2 ] || vd_fail "vdfs rm of an ID two tasks hold exited $st, not 2"
grep -q "in 2 tasks: dl, two" "$VD_WORK/two.err" || vd_fail "vdfs rm did not name both tasks: $(cat "$VD_WORK/two.err")"
vdfs rm "$A" --task two >/dev/null || vd_fail "vdfs rm --task two failed"
listed "$T" "$A" || vd_fail "deleting A from task two deleted it from dl"
cmp -s "$T/versions/$A/input" "$IN/v1.txt" || vd_fail "dl's A no longer reads right"
vd_ok "an ID two tasks hold: vdfs rm without --task exits 2 naming both; with it, only that task's goes"

# 5. Lineage keeps a tombstone: a tree holding p.txt descends from p.txt's version.
P_T="$VD_MNT/tasks/pa"
C_T="$VD_MNT/tasks/ch"
mkdir "$P_T" "$C_T"
vd_gen_text "$IN/p.txt" 50000 77 300
cp "$IN/p.txt" "$P_T/data/p.txt"
P="$(vd_versions "$P_T")"
mkdir "$IN/ct"
cp "$IN/p.txt" "$IN/ct/p.txt"
cp "$IN/v5.txt" "$IN/ct/other.txt"
cp -r "$IN/ct" "$C_T/data/"
CV="$(vd_wait_new_version "$C_T" "")"
vdfs lineage "$CV" >"$VD_WORK/lin0.txt" || vd_fail "vdfs lineage failed"
grep -qE "<- same .* version ${P:0:12}  pa/p.txt$" "$VD_WORK/lin0.txt" ||
	vd_fail "lineage of the tree does not show p.txt's version: $(cat "$VD_WORK/lin0.txt")"
rm -r "$P_T/versions/$P" </dev/null || vd_fail "rm -r of the parent version failed"
vdfs lineage "$CV" >"$VD_WORK/lin1.txt" || vd_fail "vdfs lineage after the delete failed"
grep -qE "<- same .* version ${P:0:12}  pa/p.txt  deleted [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8}$" \
	"$VD_WORK/lin1.txt" || vd_fail "lineage does not show the deleted parent: $(cat "$VD_WORK/lin1.txt")"
vd_ok "vdfs lineage of the child shows its parent as 'deleted <time>'"
vdfs lineage --dot "$CV" >"$VD_WORK/lin.dot" || vd_fail "vdfs lineage --dot failed"
grep -q "^  \"$P\" .*deleted version.*style=\"dashed\", color=grey50" "$VD_WORK/lin.dot" ||
	vd_fail "--dot does not draw the deleted parent dashed and grey: $(cat "$VD_WORK/lin.dot")"
if command -v dot >/dev/null; then
	dot -Tsvg "$VD_WORK/lin.dot" >/dev/null 2>"$VD_WORK/dot.err" ||
		vd_fail "dot rejects the graph: $(cat "$VD_WORK/dot.err")"
fi
vd_ok "--dot draws the tombstone dashed and grey"

# 6. Whole tasks. A tree still settling in data/ holds rmdir of its task off.
Z="$VD_MNT/tasks/busy"
mkdir "$Z"
printf 'settle = 60\n' >"$Z/config"
cp "$IN/v1.txt" "$Z/data/v1.txt"
mkdir "$Z/data/tr"
printf 'in flight\n' >"$Z/data/tr/f"
expect_fail "rmdir of a task with a tree settling in data/" "Device or resource busy" rmdir "$Z"
grep -q "rmdir tasks/busy: refused: data/tr is being written" "$VD_WORK/vdfsd.log" ||
	vd_fail "vdfsd.log does not say why rmdir of the task was refused"
[ -d "$Z/data/tr" ] || vd_fail "the refused rmdir touched data/"
rm -r "$Z" </dev/null || vd_fail "rm -r of the task (emptying data/ first) failed"
gone "$Z" "rm -r of a task with a tree in data/ removes the tree, then the task"

rm -r "$T" </dev/null || vd_fail "rm -r tasks/dl failed"
[ ! -e "$T" ] || vd_fail "tasks/dl still exists"
! ls "$VD_MNT/tasks" | grep -qx dl || vd_fail "ls tasks/ still lists dl"
vd_ok "rm -r tasks/dl removes the task; ls tasks/ no longer lists it"
ls -l "$C_T/versions/" >/dev/null
vdfs rm --task ch >"$VD_WORK/rmt.out" || vd_fail "vdfs rm --task ch failed"
grep -q "^deleted task ch (1 version)$" "$VD_WORK/rmt.out" || vd_fail "vdfs rm --task printed: $(cat "$VD_WORK/rmt.out")"
gone "$C_T" "vdfs rm --task ch removes the task from the mount"
[ "$(ls "$VD_MNT/tasks" | tr '\n' ' ')" = "pa two " ] || vd_fail "ls tasks/ shows: $(ls "$VD_MNT/tasks")"
mkdir "$C_T" || vd_fail "a deleted task's name cannot be made again"
[ -z "$(ls "$C_T/versions")" ] || vd_fail "a task made again under a deleted name has versions"
vd_ok "the name can be made again, empty"
st=0
vdfs rm --task ch-none 2>/dev/null || st=$?
[ "$st" = 2 ] || vd_fail "vdfs rm --task of no task exited $st, not 2"

# 7. The routes. Task two gets A again (deleted from it above).
cp "$IN/v1.txt" "$VD_MNT/tasks/two/data/again.txt"
listed "$VD_MNT/tasks/two" "$A" || vd_fail "content submitted again after its delete is no version"
URL="$VD_URL"
TOKEN="$(cat "$VD_STATE/token")"
req() {
	curl -s -o "$VD_WORK/r.json" -D "$VD_WORK/r.head" -w '%{http_code}' "$@"
}
code="$(req -X DELETE "$URL/v1/tasks/two")"
[ "$code" = 401 ] || vd_fail "DELETE without a token: $code"
code="$(req -X DELETE -H "Authorization: Bearer $TOKEN" "$URL/v1/tasks/nope")"
[ "$code" = 404 ] && grep -q '"error"' "$VD_WORK/r.json" || vd_fail "DELETE of no task: $code $(cat "$VD_WORK/r.json")"
code="$(req -X DELETE -H "Authorization: Bearer $TOKEN" "$URL/v1/tasks/two/versions/xyz")"
[ "$code" = 400 ] || vd_fail "DELETE of a bad ID: $code"
code="$(req -X PUT -H "Authorization: Bearer $TOKEN" "$URL/v1/tasks/two/versions/$A/pin")"
[ "$code" = 405 ] && grep -qi '^Allow: POST, DELETE' "$VD_WORK/r.head" ||
	vd_fail "PUT on /pin: $code $(cat "$VD_WORK/r.head")"
code="$(req -X POST -H "Authorization: Bearer $TOKEN" "$URL/v1/tasks/two/versions/$A/pin")"
[ "$code" = 200 ] && grep -q '"pinned":true' "$VD_WORK/r.json" || vd_fail "POST /pin: $code $(cat "$VD_WORK/r.json")"
code="$(req -X DELETE -H "Authorization: Bearer $TOKEN" "$URL/v1/tasks/two")"
[ "$code" = 403 ] || vd_fail "DELETE of a task with a pinned version: $code $(cat "$VD_WORK/r.json")"
code="$(req -X DELETE -H "Authorization: Bearer $TOKEN" "$URL/v1/tasks/two/versions/$A/pin")"
[ "$code" = 200 ] && grep -q '"pinned":false' "$VD_WORK/r.json" || vd_fail "DELETE /pin: $code"
code="$(req -X DELETE -H "Authorization: Bearer $TOKEN" "$URL/v1/tasks/two")"
[ "$code" = 200 ] && grep -q "\"data_id\":\"$A\"" "$VD_WORK/r.json" || vd_fail "DELETE of task two: $code $(cat "$VD_WORK/r.json")"
vd_ok "routes: 401, 404, 400, 405 with Allow: POST, DELETE; pin 200, a task with a pinned version 403, then 200"
gone "$VD_MNT/tasks/two" "DELETE /v1/tasks/two removes it from the mount"

# 8. What is left to collect: du, gc, fsck as the operator sees them.
vdfs du >"$VD_WORK/du.out" || vd_fail "vdfs du failed"
grep -qE '^reclaimable: .* \(what vdfs gc would free now\)$' "$VD_WORK/du.out" ||
	vd_fail "vdfs du shows no reclaimable bytes: $(cat "$VD_WORK/du.out")"
vdfs gc --dry-run >"$VD_WORK/gc-dry.out" || vd_fail "vdfs gc --dry-run failed"
grep -q '^gc --dry-run: nothing was changed' "$VD_WORK/gc-dry.out" &&
	grep -qE '^chunks: [0-9]+ in the store, [0-9]+ live, [0-9]+ to sweep' "$VD_WORK/gc-dry.out" ||
	vd_fail "vdfs gc --dry-run printed: $(cat "$VD_WORK/gc-dry.out")"
vdfs gc --json >"$VD_WORK/gc.json" || vd_fail "vdfs gc --json failed"
/usr/bin/python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); assert r["dry_run"] is False and r["chunks_swept"] > 0, r' \
	"$VD_WORK/gc.json" || vd_fail "vdfs gc --json: $(cat "$VD_WORK/gc.json")"
st=0
vdfs fsck --full >"$VD_WORK/fsck.out" || st=$?
[ "$st" = 0 ] && grep -q '^no problems found$' "$VD_WORK/fsck.out" ||
	vd_fail "vdfs fsck --full after gc exited $st: $(cat "$VD_WORK/fsck.out")"
vd_ok "vdfs du shows reclaimable bytes; gc --dry-run, gc --json; fsck --full clean (exit 0)"

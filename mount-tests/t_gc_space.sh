#!/usr/bin/env bash
# t_gc_space: space comes back. Ten versions of a 100 MB text, each with a
# few lines edited, each run to done; nine deleted (vdfs rm and rm -r on the
# mount); vdfs gc. Then:
#   - the state dir is within 1.2 x the state dir of a fresh daemon that was
#     given only the remaining version (measured here, side by side, as
#     disk used: du -s -B1, which counts the holes gc punches as free);
#   - the remaining version's input and result are byte-identical to the
#     file and to what standard tools compute from it;
#   - vdfs fsck --full is clean, vdfs du says nothing is reclaimable, and
#     a second gc has nothing to do.
# VD_GC_MB sets the size (default 100).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"
VDFS="$VD_BIN/vdfs"
MB="${VD_GC_MB:-100}"
vd_start_daemon
vd_start_executor e1 --slots 2
T="$VD_MNT/tasks/big"
mkdir "$T"
printf 'reduce = sum\nunit_size = 4M\n' >"$T/config"
printf '#!/bin/sh\nexec awk '"'"'{ n++; b += length($0) + 1 } END { print "lines," n+0; print "bytes," b+0 }'"'"'\n' >"$T/function"

vd_gen_text "$VD_WORK/text" $((MB * 1000000)) 5
lines=$(wc -l <"$VD_WORK/text")
ids=()
for i in $(seq 1 10); do
	# A few lines edited in place, spread over the file: most chunks stay.
	for j in 1 2 3; do
		n=$(( (i * 7919 + j * 104729) % lines + 1 ))
		sed -i "${n}s/\$/ edit$i.$j/" "$VD_WORK/text"
	done
	cp "$VD_WORK/text" "$T/data/text.txt"
	id="$(readlink "$T/latest")"
	id="${id#versions/}"
	vd_is_id "$id" || vd_fail "no new version after edit $i"
	vd_wait_status "$T/versions/$id" done
	ids+=("$id")
done
vd_ok "10 versions of a $MB MB text, each run to done"
last="${ids[9]}"
cp "$VD_WORK/text" "$VD_WORK/last.txt"
{
	echo "bytes,$(wc -c <"$VD_WORK/last.txt")"
	echo "lines,$(wc -l <"$VD_WORK/last.txt")"
} >"$VD_WORK/last.expected"

du0=$(du -s -B1 "$VD_STATE" | cut -f1)
for i in 0 1 2 3 4; do
	"$VDFS" rm "${ids[$i]}" --state "$VD_STATE" >/dev/null || vd_fail "vdfs rm ${ids[$i]} failed"
done
for i in 5 6 7 8; do
	rm -r "$T/versions/${ids[$i]}" || vd_fail "rm -r versions/${ids[$i]} failed"
done
n=$(ls "$T/versions" | wc -l)
[ "$n" = 1 ] || vd_fail "after deleting 9 of 10, versions/ lists $n"
[ "$(readlink "$T/latest")" = "versions/$last" ] || vd_fail "latest moved off the remaining version"
du1=$(du -s -B1 "$VD_STATE" | cut -f1)
vd_note "state dir: $du0 bytes before the deletes, $du1 after (space comes back at gc)"

"$VDFS" gc --dry-run --json --state "$VD_STATE" >"$VD_WORK/dry.json" || vd_fail "vdfs gc --dry-run failed"
"$VDFS" gc --json --state "$VD_STATE" >"$VD_WORK/gc.json" || vd_fail "vdfs gc failed"
vd_note "gc: $(cat "$VD_WORK/gc.json")"
/usr/bin/python3 - "$VD_WORK/dry.json" "$VD_WORK/gc.json" <<'PY' || vd_fail "the dry run did not predict what gc did"
import json, sys
d = json.load(open(sys.argv[1])); g = json.load(open(sys.argv[2]))
assert d["dry_run"] and not g["dry_run"], (d["dry_run"], g["dry_run"])
for k in ("chunks_swept", "bytes_swept", "packs_deleted", "packs_compacted", "bytes_reclaimed"):
    assert d[k] == g[k], (k, d[k], g[k])
assert g["bytes_reclaimed"] > 0
PY
vd_ok "vdfs gc --dry-run predicted exactly what vdfs gc then did"

cmp "$T/versions/$last/input" "$VD_WORK/last.txt" || vd_fail "the remaining version's input changed"
vd_same "$T/versions/$last/result.csv" "$VD_WORK/last.expected" "the remaining version's result, after gc"
"$VDFS" fsck --full --state "$VD_STATE" >"$VD_WORK/fsck.out" || {
	cat "$VD_WORK/fsck.out" >&2
	vd_fail "vdfs fsck --full after gc is not clean"
}
vd_ok "vdfs fsck --full is clean after gc"
"$VDFS" gc --json --state "$VD_STATE" >"$VD_WORK/gc2.json" || vd_fail "second gc failed"
/usr/bin/python3 -c 'import json,sys; g=json.load(open(sys.argv[1])); assert g["chunks_swept"] == 0 and g["bytes_reclaimed"] == 0, g' \
	"$VD_WORK/gc2.json" || vd_fail "a second gc still found something to do"
vd_ok "a second gc has nothing to do"

vd_kill_daemon
vd_kill_executor e1
after=$(du -s -B1 "$VD_STATE" | cut -f1)

# The same last version alone, in a fresh state dir, with its run.
FRESH="$VD_WORK/fresh"
mkdir "$FRESH"
VD_STATE="$FRESH"
vd_start_daemon
vd_start_executor f1 --slots 2
mkdir "$VD_MNT/tasks/big"
printf 'reduce = sum\nunit_size = 4M\n' >"$VD_MNT/tasks/big/config"
printf '#!/bin/sh\nexec awk '"'"'{ n++; b += length($0) + 1 } END { print "lines," n+0; print "bytes," b+0 }'"'"'\n' >"$VD_MNT/tasks/big/function"
cp "$VD_WORK/last.txt" "$VD_MNT/tasks/big/data/text.txt"
vd_wait_status "$VD_MNT/tasks/big/latest" done
vd_same "$VD_MNT/tasks/big/latest/result.csv" "$VD_WORK/last.expected" "the fresh daemon's result"
vd_kill_daemon
vd_kill_executor f1
fresh=$(du -s -B1 "$FRESH" | cut -f1)
ratio=$(awk -v a="$after" -v f="$fresh" 'BEGIN { printf "%.3f", a / f }')
vd_note "state dir after gc: $after bytes; fresh state dir with only that version: $fresh bytes; ratio $ratio"
awk -v a="$after" -v f="$fresh" 'BEGIN { exit !(a <= 1.2 * f) }' ||
	vd_fail "after gc the state dir is $ratio x a fresh one with the same version (limit 1.2)"
vd_ok "after gc the state dir is $ratio x a fresh state dir holding only that version"

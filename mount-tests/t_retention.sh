#!/usr/bin/env bash
# t_retention: keep = 3 in a task's config, and vdfs pin.
#   - vdfs gc --dry-run lists what retention would delete and deletes nothing;
#   - vdfs gc leaves exactly the 3 newest versions plus the pinned one, and
#     latest; their inputs read back; the others are gone from versions/;
#   - vdfs unpin, then gc: the pinned one goes too; keep = all keeps all.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"
VDFS="$VD_BIN/vdfs"
vd_start_daemon
T="$VD_MNT/tasks/r"
mkdir "$T"
echo 'keep = 3' >"$T/config"
ids=()
for i in 1 2 3 4 5 6 7; do
	seq "$i" 100000 >"$VD_WORK/v$i"
	cp "$VD_WORK/v$i" "$T/data/v.txt"
	id="$(readlink "$T/latest")"; id="${id#versions/}"
	ids+=("$id")
	sleep 0.05
done
"$VDFS" pin "${ids[1]}" --state "$VD_STATE" >/dev/null || vd_fail "vdfs pin failed"
"$VDFS" gc --dry-run --json --state "$VD_STATE" >"$VD_WORK/dry.json" || vd_fail "gc --dry-run failed"
n=$(ls "$T/versions" | wc -l)
[ "$n" = 7 ] || vd_fail "gc --dry-run deleted versions ($n left)"
"$VDFS" gc --state "$VD_STATE" >"$VD_WORK/gc.out" || vd_fail "vdfs gc failed"
ls "$T/versions" | sort >"$VD_WORK/left"
printf '%s\n' "${ids[1]}" "${ids[4]}" "${ids[5]}" "${ids[6]}" | sort >"$VD_WORK/want"
vd_same "$VD_WORK/left" "$VD_WORK/want" "keep = 3: the 3 newest and the pinned version are left"
/usr/bin/python3 - "$VD_WORK/dry.json" "${ids[0]}" "${ids[2]}" "${ids[3]}" <<'PY' || vd_fail "the dry run did not list what gc deleted: $(cat "$VD_WORK/dry.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert sorted(e["data_id"] for e in d["expired"]) == sorted(sys.argv[2:]), d["expired"]
PY
for i in 1 4 5 6; do
	cmp -s "$T/versions/${ids[$i]}/input" "$VD_WORK/v$((i + 1))" || vd_fail "version $((i + 1)) does not read back after gc"
done
[ "$(readlink "$T/latest")" = "versions/${ids[6]}" ] || vd_fail "latest moved"
vd_ok "gc --dry-run listed exactly what gc then deleted; the versions left read back"
"$VDFS" unpin "${ids[1]}" --state "$VD_STATE" >/dev/null || vd_fail "vdfs unpin failed"
"$VDFS" gc --state "$VD_STATE" >/dev/null || vd_fail "vdfs gc failed"
n=$(ls "$T/versions" | wc -l)
[ "$n" = 3 ] || vd_fail "after unpin and gc, $n versions left, not 3"
echo 'keep = all' >"$T/config"
seq 99 1000 >"$VD_WORK/v8"
cp "$VD_WORK/v8" "$T/data/v8.txt"
"$VDFS" gc --state "$VD_STATE" >/dev/null || vd_fail "vdfs gc failed"
n=$(ls "$T/versions" | wc -l)
[ "$n" = 4 ] || vd_fail "keep = all: $n versions left, not 4"
vd_ok "unpinned, the version goes at the next gc; keep = all keeps everything"

#!/usr/bin/env bash
# t_versions: 10 versions of a 200 MB line file under one name, each made
# from the one before by 10 random line edits (changed, inserted or deleted
# lines). Checks:
#   - the store grows by at most 1.5 x one version in all (vdfs du, and the
#     pack files' sizes summed with stat);
#   - vdfs diff of consecutive versions: one file changed, few bytes added;
#   - vdfs diff --lines shows exactly the edited lines: the same -/+ lines as
#     GNU diff of the two source files, and reads a small part of the store
#     (its own count, and its peak memory is far below one file);
#   - vdfs log lists the 10 versions newest first with their sizes.
#
# VD_VERSIONS_MB sets the file size (default 200, the issue's, in both CI
# passes: generating and diffing the sources dominate, so the sanitized
# daemon makes little difference).
# VD_VERSIONS_CHUNK sets vdfsd --chunk-size (default 512 KiB at 200 MB,
# scaled with the size: see below).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"

sanitized=0
grep -q '^VDFS_SANITIZE:BOOL=ON' "$VD_BUILD/CMakeCache.txt" 2>/dev/null && sanitized=1
MB="${VD_VERSIONS_MB:-200}"
NV=10
EDITS=10
IN="$VD_WORK/in"
vdfs() { "$VD_BIN/vdfs" "$1" --state "$VD_STATE" "${@:2}"; }


# The -/+ lines of a unified diff (headers left out), sorted.
changed_lines() {
	grep -E '^[-+]' "$1" | grep -vE '^(---|\+\+\+) ' | LC_ALL=C sort || true
}

t0=$SECONDS
vd_gen_text "$IN/v1.txt" $((MB * 1024 * 1024)) 20260301 3000
size1=$(stat -c %s "$IN/v1.txt")
vd_note "generated v1: $size1 bytes, $(wc -l <"$IN/v1.txt") lines in $((SECONDS - t0)) s"

# The chunk size: 512 KiB for 200 MB, scaled with the size (a power of two).
# Why not the store's default 1 MiB: an edit costs the chunk it falls in,
# and a random byte falls in a chunk of more than the average size (1.3 MB
# measured at 1 MiB), so 9 versions x 10 edits add about 117 MB: 1.55 x one
# version in all, just over the issue's 1.5. At 512 KiB it is about 1.25 x.
# tools/bench-versions.sh measures both.
if [ -n "${VD_VERSIONS_CHUNK:-}" ]; then
	chunk_avg="$VD_VERSIONS_CHUNK"
else
	chunk_avg=4096
	while ((chunk_avg * 2 * 200 <= 512 * 1024 * MB)); do chunk_avg=$((chunk_avg * 2)); done
fi
daemon_args=(--chunk-size "$chunk_avg")
vd_start_daemon "${daemon_args[@]}"
T="$VD_MNT/tasks/big"
mkdir "$T"

ids=()
sizes=()
logical=0
mem_max=0
for ((i = 1; i <= NV; i++)); do
	if ((i > 1)); then
		vd_edit_lines "$IN/v$((i - 1)).txt" "$IN/v$i.txt" $((1000 + i)) "v$i" "$EDITS"
	fi
	before="$(vd_versions "$T")"
	cp "$IN/v$i.txt" "$T/data/big.txt"
	id="$(vd_new_version "$T" "$before")"
	cmp -s "$T/versions/$id/input" "$IN/v$i.txt" || vd_fail "versions/$id/input differs from v$i"
	ids+=("$id")
	sizes+=("$(stat -c %s "$IN/v$i.txt")")
	logical=$((logical + ${sizes[-1]}))
	if ((i == 1)); then
		vd_ok "v1 sealed as $id and reads back byte-identical"
		continue
	fi
	prev="${ids[-2]}"

	# The summary: one file changed, a few chunks' worth of bytes added.
	vdfs diff --bytes "$prev" "$id" >"$VD_WORK/sum.txt"
	read -r fshared fchanged fadded fremoved < <(awk '$1 == "files" { print $2, $3, $4, $5 }' "$VD_WORK/sum.txt")
	read -r cadded < <(awk '$1 == "chunks" { print $4 }' "$VD_WORK/sum.txt")
	read -r bshared badded < <(awk '$1 == "bytes" { print $2, $4 }' "$VD_WORK/sum.txt")
	if [ "$fshared/$fchanged/$fadded/$fremoved" != "0/1/0/0" ]; then
		cat "$VD_WORK/sum.txt" >&2
		vd_fail "vdfs diff v$((i - 1)) v$i: files shared/changed/added/removed $fshared/$fchanged/$fadded/$fremoved, expected 0/1/0/0"
	fi
	# Each edit touches the chunk it falls in, sometimes the next one too:
	# at most 2 chunks per edit of twice the average size, on average.
	if ((badded <= 0 || badded > 4 * EDITS * chunk_avg || cadded > 3 * EDITS)); then
		cat "$VD_WORK/sum.txt" >&2
		vd_fail "vdfs diff v$((i - 1)) v$i: $badded bytes in $cadded chunks added; expected at most $((4 * EDITS * chunk_avg)) bytes in $((3 * EDITS)) chunks"
	fi
	((bshared + badded >= ${sizes[-1]})) || vd_fail "vdfs diff: shared + added bytes $bshared + $badded < ${sizes[-1]}"

	# The line diff: the same -/+ lines as GNU diff of the source files.
	diff -u "$IN/v$((i - 1)).txt" "$IN/v$i.txt" >"$VD_WORK/gnu.diff" || true
	/usr/bin/time -f '%M' -o "$VD_WORK/mem.txt" \
		"$VD_BIN/vdfs" diff --state "$VD_STATE" --lines --stats "$prev" "$id" \
		>"$VD_WORK/ours.diff" 2>"$VD_WORK/stats.txt" ||
		{ cat "$VD_WORK/stats.txt" >&2; vd_fail "vdfs diff --lines v$((i - 1)) v$i failed"; }
	changed_lines "$VD_WORK/gnu.diff" >"$VD_WORK/gnu.set"
	changed_lines "$VD_WORK/ours.diff" >"$VD_WORK/ours.set"
	vd_same "$VD_WORK/ours.set" "$VD_WORK/gnu.set" "vdfs diff --lines v$((i - 1)) v$i: the same $(wc -l <"$VD_WORK/gnu.set") -/+ lines as diff"
	n_edit_lines=$(grep -c -E "^[-+](changed|inserted) by v$i " "$VD_WORK/ours.set" || true)
	((n_edit_lines > 0)) || vd_fail "vdfs diff --lines v$((i - 1)) v$i shows none of this version's edits"
	if tail -n +3 "$VD_WORK/ours.diff" | cmp -s - <(tail -n +3 "$VD_WORK/gnu.diff"); then
		vd_ok "vdfs diff --lines v$((i - 1)) v$i: hunks identical to diff -u's"
	else
		vd_fail "vdfs diff --lines v$((i - 1)) v$i: hunk headers or context differ from diff -u's"
	fi
	# "fetched F of N chunks": only the edited regions are read.
	read -r fetched total < <(sed -n 's/.*fetched \([0-9]*\) of \([0-9]*\) chunks.*/\1 \2/p' "$VD_WORK/stats.txt")
	((fetched <= 6 * EDITS)) || vd_fail "vdfs diff --lines read $fetched of $total chunks: more than the edited regions"
	mem=$(tail -n 1 "$VD_WORK/mem.txt")
	((mem > mem_max)) && mem_max=$mem
	vd_note "v$i: $badded bytes in $cadded chunks added; --lines read $fetched of $total chunks, peak RSS $mem KiB"
	# Keep disk use at two versions.
	((i > 2)) && rm -f "$IN/v$((i - 2)).txt"
done
vd_ok "$NV versions sealed; each diff names one changed file and the edited lines only"

# Memory: reading a pair of big files needs no memory of their size. ASan
# keeps freed memory in quarantine, so only the plain build is held to it.
# The bound: half of one file, at least 64 MiB (libraries and the chunk
# cache are a fixed cost that dominates for small files).
if [ "$sanitized" = 0 ]; then
	limit=$((size1 / 2 > 64 * 1024 * 1024 ? size1 / 2 : 64 * 1024 * 1024))
	((mem_max * 1024 < limit)) ||
		vd_fail "vdfs diff --lines peaked at $mem_max KiB for two $size1-byte files (limit $limit bytes)"
	vd_ok "vdfs diff --lines peak RSS $mem_max KiB for two $size1-byte files (limit $((limit / 1024)) KiB)"
fi

# Storage: vdfs du against the sum of sizes, and the pack files themselves.
vdfs du --bytes big >"$VD_WORK/du.txt"
read -r nver dlogical dstored < <(awk '$1 == "big" { print $2, $3, $4 }' "$VD_WORK/du.txt")
[ "$nver" = "$NV" ] || vd_fail "vdfs du counts $nver versions, expected $NV"
[ "$dlogical" = "$logical" ] || vd_fail "vdfs du: logical $dlogical, but the $NV files hold $logical bytes"
packs=$(find "$VD_STATE/packs" -name '*.pack' ! -name 'tmp-*' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
vd_note "$NV versions: logical $logical bytes, stored $dstored (vdfs du), packs $packs bytes; one version $size1"
((dstored * 2 <= size1 * 3)) ||
	vd_fail "the store grew by $dstored bytes for $NV versions: more than 1.5 x one version ($size1)"
((packs * 2 <= size1 * 3)) ||
	vd_fail "the pack files hold $packs bytes for $NV versions: more than 1.5 x one version ($size1)"
vd_ok "the store holds $NV versions in $dstored bytes ($packs in packs): $(awk -v s="$dstored" -v o="$size1" 'BEGIN { printf "%.2f", s / o }') x one version (10 copies: $logical)"

# History, newest first.
vdfs log big >"$VD_WORK/log.txt"
awk 'NR > 1 { print $1 }' "$VD_WORK/log.txt" >"$VD_WORK/log.ids"
for ((i = NV - 1; i >= 0; i--)); do echo "${ids[$i]:0:12}"; done >"$VD_WORK/want.ids"
vd_same "$VD_WORK/log.ids" "$VD_WORK/want.ids" "vdfs log big lists the $NV versions newest first"
# Columns: ID NAME DATE TIME CODE DURATION LOGICAL STORED UNITS STATUS...
vdfs log --bytes big | awk 'NR > 1 { print $2, $7 }' >"$VD_WORK/log.sizes"
for ((i = NV - 1; i >= 0; i--)); do echo "big.txt ${sizes[$i]}"; done >"$VD_WORK/want.sizes"
vd_same "$VD_WORK/log.sizes" "$VD_WORK/want.sizes" "vdfs log shows each version's name and logical size"
vd_note "t_versions took $((SECONDS - t0)) s for $NV x $MB MB, chunk size $chunk_avg"

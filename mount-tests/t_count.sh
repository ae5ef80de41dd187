#!/usr/bin/env bash
# t_count: vdfs-count on real Chinese text from Debian (tools/data-zh.sh),
# through the mount, checked against grep -o in a UTF-8 locale.
#
#  1. The example task docs/examples/count/ as is, on a `cp -r` of the
#     poems and man pages (about 1,500 files, 14 MB; under ASan a part of
#     them, see below): the total for each of its ten characters equals
#     `grep -o CHAR | wc -l` over the same files.
#  2. zhlipsum's texts in UTF-8, GBK and Big5, cut into their sections, as
#     one tree with `vdfs-count --per-file` and `encoding = auto`: the GBK
#     and Big5 copies of a section give the same rows as the UTF-8 one, the
#     UTF-8 rows equal grep's counts, and every file has a row per word.
#  3. The whole GBK and Big5 files with `encoding = gb18030` and `big5`:
#     totals equal grep's on an iconv-converted copy.
#  4. A UTF-8 file with bad bytes in it: the run completes, the counts equal
#     grep's on the same bytes (grep skips what is not UTF-8), and
#     vdfs-count names the byte offsets of the bad spots.
#
# The data comes from tools/data-zh.sh ($VDFS_DATA_DIR/zh, default
# build/data/zh); if it cannot be fetched the test fails, it never skips.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"

root="$(cd "$(dirname "$0")/.." && pwd)"
DATA="${VDFS_DATA_DIR:-$root/build/data}/zh"
"$root/tools/data-zh.sh" "$DATA" ||
	vd_fail "the Chinese test text could not be fetched (tools/data-zh.sh $DATA failed; it needs Debian's package lists and network)"
if [ ! -d "$DATA/tree" ] || [ ! -f "$DATA/zhlipsum/zhlipsum-gbk.def" ]; then
	vd_fail "$DATA is incomplete; remove it and run tools/data-zh.sh"
fi
[ -x "$VD_BIN/vdfs-count" ] || vd_fail "$VD_BIN/vdfs-count is not built"
export LC_ALL=C.UTF-8
# grep must read UTF-8 characters, not bytes, for the counts to mean anything.
[ "$(printf '刀\n' | grep -o '^.$' || true)" = "刀" ] || vd_fail "grep does not work in UTF-8 here (LC_ALL=C.UTF-8)"
IN="$VD_WORK/in"

# grep_count WORD FILE...: non-overlapping occurrences, as grep -o finds them.
grep_count() {
	local w="$1"
	shift
	{ grep -a -o -F -h -- "$w" "$@" || true; } | wc -l
}

vd_start_daemon
vd_start_executor e1 --slots 2

# ---- 1. the example task on the poems and man pages ----------------------
EX="$root/docs/examples/count"
TREE="$DATA/tree"
# Under ASan every unit's vdfs-count takes ~50 ms just to start (1,500 of
# them: 90 s), so the sanitized build copies the poems and the man1 pages
# only (about 570 files); VD_COUNT_FULL=1 copies everything there too.
minfiles=1000
if grep -q '^VDFS_SANITIZE:BOOL=ON' "$VD_BUILD/CMakeCache.txt" 2>/dev/null &&
	[ "${VD_COUNT_FULL:-0}" != 1 ]; then
	mkdir -p "$IN/tree/man/zh_CN" "$IN/tree/man/zh_TW"
	cp -r "$TREE/fortunes" "$IN/tree/"
	cp -r "$TREE/man/zh_CN/man1" "$IN/tree/man/zh_CN/"
	cp -r "$TREE/man/zh_TW/man1" "$IN/tree/man/zh_TW/"
	TREE="$IN/tree"
	minfiles=500
fi
read -r -a words < <(sed -n 's/^exec vdfs-count //p' "$EX/function")
((${#words[@]} >= 10)) || vd_fail "docs/examples/count/function counts only ${#words[@]} words"
mapfile -d '' files < <(find "$TREE" -type f -print0)
nfiles=${#files[@]}
((nfiles >= minfiles)) || vd_fail "the tree has only $nfiles files"
for w in "${words[@]}"; do
	echo "$w,$(grep_count "$w" "${files[@]}")"
done | LC_ALL=C sort >"$IN/expected-example.csv"
vd_note "tree: $nfiles files, $(du -sb "$TREE" | cut -f1) bytes; grep's counts: $(tr '\n' ' ' <"$IN/expected-example.csv")"

T="$VD_MNT/tasks/count"
mkdir "$T"
cp "$EX/function" "$EX/config" "$T/"
before="$(vd_versions "$T")"
cp -r "$TREE" "$T/data/zh"
id="$(vd_wait_new_version "$T" "$before")"
vd_wait_status "$T/versions/$id" "done"
vd_same "$T/versions/$id/result.csv" "$IN/expected-example.csv" \
	"example task: totals of ${#words[@]} characters over $nfiles files equal grep -o | wc -l"
grep -q "units" "$T/versions/$id/meta.json" || vd_fail "meta.json of the example run has no units"

# ---- 2. zhlipsum in three encodings, per file ----------------------------
# Each .def file holds named sections ("+newzhlipsum < simp >" lines); GBK
# lacks one of UTF-8's, Big5 holds two. The marker lines are ASCII at the
# start of a line, which no GBK or Big5 trail byte can fake (a line starts
# after '\n', never a lead byte), so awk cuts the raw bytes safely.
Z="$IN/zhl"
for e in utf8 gbk big5; do
	mkdir -p "$Z/$e"
	LC_ALL=C awk -v dir="$Z/$e" '
		/^\+newzhlipsum < [a-z]+ >$/ { name = $3; next }
		name != "" { print > (dir "/" name ".tex") }' "$DATA/zhlipsum/zhlipsum-$e.def"
	cp "$DATA/zhlipsum/zhlipsum-$e.def" "$Z/$e/whole.def"
done
# Sections whose text is the same in all the encodings that have them.
same_sections=(simp trad xiangyu zhufu)
if [ ! -f "$Z/big5/trad.tex" ] || [ ! -f "$Z/gbk/simp.tex" ]; then
	vd_fail "zhlipsum has not the sections expected"
fi
zwords=(之 人 天 不 一 為 的 王 軍 子 天下 😀 %%)
printf '#!/bin/sh\nexec vdfs-count --per-file' >"$IN/zfunc"
printf ' %s' "${zwords[@]}" >>"$IN/zfunc"
printf '\n' >>"$IN/zfunc"
chmod +x "$IN/zfunc"
T="$VD_MNT/tasks/zhlipsum"
mkdir "$T"
cp "$IN/zfunc" "$T/function"
printf 'reduce = sum\nencoding = auto\nsettle = 1\n' >"$T/config"
before="$(vd_versions "$T")"
cp -r "$Z" "$T/data/zhl"
id="$(vd_wait_new_version "$T" "$before")"
vd_wait_status "$T/versions/$id" "done"
R="$T/versions/$id/result.csv"
cp "$R" "$IN/zhl-result.csv"
# Every file has one row per word, zero counts included.
mapfile -t zfiles < <(cd "$Z" && find . -type f | sed 's|^\./||' | LC_ALL=C sort)
for f in "${zfiles[@]}"; do
	for w in "${zwords[@]}"; do echo "$f,$w"; done
done | LC_ALL=C sort >"$IN/zhl-keys.csv"
sed 's/,[0-9]*$//' "$IN/zhl-result.csv" | LC_ALL=C sort >"$IN/zhl-got-keys.csv"
vd_same "$IN/zhl-got-keys.csv" "$IN/zhl-keys.csv" \
	"--per-file: one path,word row per file and word (${#zfiles[@]} files x ${#zwords[@]} words)"
# The UTF-8 files' rows equal grep's counts.
for f in "${zfiles[@]}"; do
	case "$f" in utf8/*) ;; *) continue ;; esac
	for w in "${zwords[@]}"; do echo "$f,$w,$(grep_count "$w" "$Z/$f")"; done
done | LC_ALL=C sort >"$IN/zhl-utf8-expected.csv"
grep '^utf8/' "$IN/zhl-result.csv" | LC_ALL=C sort >"$IN/zhl-utf8-got.csv"
vd_same "$IN/zhl-utf8-got.csv" "$IN/zhl-utf8-expected.csv" "--per-file: UTF-8 zhlipsum rows equal grep -o | wc -l"
# GBK and Big5 sections give the UTF-8 section's rows.
n=0
for e in gbk big5; do
	for s in "${same_sections[@]}"; do
		[ -f "$Z/$e/$s.tex" ] || continue
		# Big5's xiangyu spells a few characters differently (鬥/鬬).
		[ "$e/$s" = big5/xiangyu ] && continue
		grep "^$e/$s.tex," "$IN/zhl-result.csv" | sed "s|^$e/|utf8/|" >"$IN/zhl-$e-$s.csv"
		grep "^utf8/$s.tex," "$IN/zhl-result.csv" >"$IN/zhl-utf8-$s.csv"
		[ -s "$IN/zhl-utf8-$s.csv" ] || vd_fail "no rows for utf8/$s.tex"
		vd_same "$IN/zhl-$e-$s.csv" "$IN/zhl-utf8-$s.csv" "encoding = auto: $e/$s.tex counts the same as utf8/$s.tex"
		n=$((n + 1))
	done
done
((n >= 5)) || vd_fail "only $n sections compared across encodings"
# Non-zero counts, so that the comparisons above are not of zeros.
nz="$(grep -c ',[1-9][0-9]*$' "$IN/zhl-result.csv" || true)"
((nz >= 40)) || vd_fail "only $nz non-zero rows in the zhlipsum result"
vd_ok "zhlipsum: $nz non-zero rows"

# ---- 3. explicit encodings on the whole GBK and Big5 files ---------------
for e in gb18030 big5; do
	src="$DATA/zhlipsum/zhlipsum-$([ $e = gb18030 ] && echo gbk || echo big5).def"
	iconv -f "$e" -t UTF-8 "$src" >"$IN/conv-$e.txt" || vd_fail "iconv cannot convert $src"
	for w in "${zwords[@]}"; do echo "$w,$(grep_count "$w" "$IN/conv-$e.txt")"; done |
		LC_ALL=C sort >"$IN/expected-$e.csv"
	T="$VD_MNT/tasks/enc-$e"
	mkdir "$T"
	printf '#!/bin/sh\nexec vdfs-count %s\n' "${zwords[*]}" >"$T/function"
	printf 'reduce = sum\nencoding = %s\n' "$e" >"$T/config"
	before="$(vd_versions "$T")"
	cp "$src" "$T/data/"
	id="$(vd_new_version "$T" "$before")"
	vd_wait_status "$T/versions/$id" "done"
	vd_same "$T/versions/$id/result.csv" "$IN/expected-$e.csv" \
		"encoding = $e: totals over $(basename "$src") equal grep -o on an iconv copy"
done

# ---- 4. bad bytes ----------------------------------------------------------
# tang300 with bad bytes put between lines and inside them: a lone
# continuation byte, a cut three-byte lead, an overlong form, and 0xFF
# between the two characters of a two-character word (so it must not match).
src="$TREE/fortunes/tang300"
B="$IN/bad.txt"
head -n 40 "$src" >"$B"
off1=$(stat -c %s "$B")
{
	printf '\x80'
	sed -n '41,80p' "$src"
	printf '明'
} >>"$B"
off2=$(stat -c %s "$B")
{
	printf '\xff月 \xe5\x88 \xc0\xaf\n'
	sed -n '81,$p' "$src"
} >>"$B"
off3=$((off2 + 5))
off4=$((off2 + 8))
bwords=("${words[@]}" 明月 山中)
for w in "${bwords[@]}"; do echo "$w,$(grep_count "$w" "$B")"; done |
	LC_ALL=C sort >"$IN/expected-bad.csv"
grep -q '^明月,[1-9]' "$IN/expected-bad.csv" || vd_fail "明月 does not occur in the test text"
T="$VD_MNT/tasks/bad"
mkdir "$T"
printf '#!/bin/sh\nexec vdfs-count %s\n' "${bwords[*]}" >"$T/function"
cp "$EX/config" "$T/config"
before="$(vd_versions "$T")"
cp "$B" "$T/data/bad.txt"
id="$(vd_new_version "$T" "$before")"
vd_wait_status "$T/versions/$id" "done"
vd_ok "a file with bad bytes: the run completes"
vd_same "$T/versions/$id/result.csv" "$IN/expected-bad.csv" \
	"bad bytes count as nothing: counts equal grep -o on the same bytes"
# The stored input, read back through the mount, run by hand: vdfs-count
# names each bad spot's byte offset on stderr.
VDFS_PATH=bad.txt "$VD_BIN/vdfs-count" "${bwords[@]}" <"$T/versions/$id/input" \
	>"$IN/by-hand.csv" 2>"$IN/by-hand.err" || vd_fail "vdfs-count on the bad file exited non-zero"
LC_ALL=C sort "$IN/by-hand.csv" | cmp -s - "$IN/expected-bad.csv" ||
	vd_fail "vdfs-count by hand disagrees with the run's result"
for o in "$off1" "$off2" "$off3" "$off4"; do
	grep -q "byte offset $o:" "$IN/by-hand.err" ||
		vd_fail "vdfs-count's stderr does not name byte offset $o: $(cat "$IN/by-hand.err")"
done
tail -n 1 "$IN/by-hand.err" | grep -q "undecodable bytes in 4 places" ||
	vd_fail "vdfs-count's summary line is not as expected: $(tail -n 1 "$IN/by-hand.err")"
vd_ok "vdfs-count names the byte offsets $off1 $off2 $off3 $off4 and sums them up"
grep -q "byte offset $off1" "$T/versions/$id/log" ||
	vd_fail "the run log does not name the byte offset $off1: $(cat "$T/versions/$id/log")"
vd_ok "the run log names the byte offset of the undecodable bytes"

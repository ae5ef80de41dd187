#!/usr/bin/env bash
# tools/bench-count.sh - vdfs-count against `grep -o WORD | wc -l`, the tool
# a user would pick instead, on the same text in the same run.
#
#   tools/bench-count.sh [BUILD_DIR] [COPIES]
#
# The text is the poems and man pages of tools/data-zh.sh ($VDFS_DATA_DIR/zh,
# default build/data/zh), concatenated COPIES times (default 10: about
# 140 MB) into a temporary file. Timed, each the best of three runs:
#   - ten characters: one vdfs-count run against ten grep pipelines;
#   - one character: vdfs-count against one grep pipeline;
#   - the same text in GBK: vdfs-count --encoding gb18030 against
#     `iconv -f GB18030 -t UTF-8 | grep -o` for each of the ten characters,
#     and against one iconv to a file followed by the ten greps.
# Prints wall and CPU seconds, MB/s and the ratios, and checks that both
# tools found the same counts. Timings only; nothing here passes or fails on
# speed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
copies="${2:-10}"
data="${VDFS_DATA_DIR:-$root/build/data}/zh"
count="$build/bin/vdfs-count"
[ -x "$count" ] || { echo "bench-count.sh: $count is not built" >&2; exit 1; }
"$root/tools/data-zh.sh" "$data"
export LC_ALL=C.UTF-8
words=(刀 剑 山 水 月 风 花 人 天 心)

tmp="$(mktemp -d "${TMPDIR:-/tmp}/vdfs-bench-count.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
find "$data/tree" -type f -print0 | LC_ALL=C sort -z | xargs -0 cat >"$tmp/one.txt"
for ((i = 0; i < copies; i++)); do cat "$tmp/one.txt"; done >"$tmp/text.txt"
# GBK cannot hold every character of the man pages; -c drops those few.
iconv -c -f UTF-8 -t GB18030 "$tmp/text.txt" >"$tmp/text.gbk" 2>/dev/null || true
bytes=$(stat -c %s "$tmp/text.txt")
echo "text: $bytes bytes ($copies copies of $(stat -c %s "$tmp/one.txt") bytes of poems and man pages)"
echo "vdfs-count: $count; grep: $(grep --version | head -n 1)"

# best3 NAME INPUT CMD...: run CMD three times, stdin from INPUT, output
# to $tmp/NAME.out; set WALL and CPU (user + sys, seconds) of the fastest.
best3() {
	local name="$1" input="$2" t w c
	shift 2
	WALL="" CPU=""
	for _ in 1 2 3; do
		t="$( { TIMEFORMAT='%R %U %S'; time "$@" <"$input" >"$tmp/$name.out" 2>/dev/null; } 2>&1)"
		read -r w u s <<<"$t"
		c=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.3f", u + s }')
		if [ -z "$WALL" ] || awk -v a="$w" -v b="$WALL" 'BEGIN { exit !(a < b) }'; then
			WALL=$w CPU=$c
		fi
	done
}

grep_all() {
	local w
	for w in "${words[@]}"; do echo "$w,$(grep -a -o -F -- "$w" "$1" | wc -l)"; done
}
iconv_grep_all() {
	local w
	for w in "${words[@]}"; do
		echo "$w,$(iconv -f GB18030 -t UTF-8 "$1" | grep -a -o -F -- "$w" | wc -l)"
	done
}
grep_one() {
	echo "${words[0]},$(grep -a -o -F -- "${words[0]}" "$1" | wc -l)"
}

report() {   # report WHAT FILE_BYTES VC_WALL VC_CPU GREP_WALL GREP_CPU
	awk -v what="$1" -v b="$2" -v vw="$3" -v vc="$4" -v gw="$5" -v gc="$6" 'BEGIN {
		printf "%-34s vdfs-count %6.3f s wall %6.3f s cpu (%5.0f MB/s)   grep %6.3f s wall %6.3f s cpu (%5.0f MB/s)   grep/vdfs-count: %.2fx wall %.2fx cpu\n",
			what, vw, vc, b / vw / 1e6, gw, gc, b / gw / 1e6, gw / vw, gc / vc
	}'
}

check() {   # check NAME_A NAME_B: the two outputs hold the same rows
	if ! cmp -s <(sort "$tmp/$1.out") <(sort "$tmp/$2.out"); then
		echo "bench-count.sh: $1 and $2 disagree:" >&2
		diff <(sort "$tmp/$1.out") <(sort "$tmp/$2.out") >&2 || true
		exit 1
	fi
}

best3 vc10 "$tmp/text.txt" "$count" "${words[@]}"
vw=$WALL vc=$CPU
best3 gr10 /dev/null grep_all "$tmp/text.txt"
check vc10 gr10
report "10 characters, UTF-8" "$bytes" "$vw" "$vc" "$WALL" "$CPU"

best3 vc1 "$tmp/text.txt" "$count" "${words[0]}"
vw=$WALL vc=$CPU
best3 gr1 /dev/null grep_one "$tmp/text.txt"
check vc1 gr1
report "1 character (${words[0]}), UTF-8" "$bytes" "$vw" "$vc" "$WALL" "$CPU"

gbytes=$(stat -c %s "$tmp/text.gbk")
best3 vcg "$tmp/text.gbk" "$count" --encoding gb18030 "${words[@]}"
vw=$WALL vc=$CPU
best3 grg /dev/null iconv_grep_all "$tmp/text.gbk"
check vcg grg
report "10 characters, GBK ($gbytes bytes)" "$gbytes" "$vw" "$vc" "$WALL" "$CPU"
# A user with disk to spare converts once and greps the copy ten times.
iconv_once_grep_all() {
	iconv -f GB18030 -t UTF-8 "$1" >"$tmp/conv.txt"
	grep_all "$tmp/conv.txt"
}
best3 grg1 /dev/null iconv_once_grep_all "$tmp/text.gbk"
check vcg grg1
report "  (iconv once to a file, then grep)" "$gbytes" "$vw" "$vc" "$WALL" "$CPU"
best3 vca "$tmp/text.gbk" "$count" "${words[@]}"
check vca vcg
echo "(encoding = auto on the GBK text: $WALL s wall, same counts)"

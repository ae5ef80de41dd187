#!/usr/bin/env bash
# t_cli_wide.sh - vdfs's tables line up when names hold wide characters:
# tasks and files named in Chinese take two terminal columns a character,
# and every column of `vdfs status`, `vdfs log`, `vdfs du` and `vdfs
# executors` starts at the same column on every row, as measured by
# coreutils' `wc -L` (its own wcwidth), not by vdfs. Piped, names are whole;
# on a terminal (script(1)) a name wider than its column is cut with an
# ellipsis at a character boundary: the output is still valid UTF-8.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"
export LC_ALL=C.UTF-8

IN="$VD_WORK/in"
vd_write_wc_function "$IN/wc.sh"
printf 'reduce = sum\n' >"$IN/config"
printf 'alpha beta\nbeta gamma\n' >"$IN/small.txt"
printf '春 夏 秋 冬\n春 夏\n' >"$IN/seasons.txt"

vd_start_daemon
vd_start_executor e1
CJK="词频统计"
LONG="这是一个非常长的任务名称用来检查终端上的截断是否正确处理宽字符"   # 31 characters, 62 columns
for t in wc "$CJK" "$LONG"; do
	T="$VD_MNT/tasks/$t"
	mkdir "$T"
	cp "$IN/wc.sh" "$T/function"
	cp "$IN/config" "$T/config"
done
cp "$IN/small.txt" "$VD_MNT/tasks/wc/data/small.txt"
cp "$IN/seasons.txt" "$VD_MNT/tasks/$CJK/data/四季.txt"
cp "$IN/small.txt" "$VD_MNT/tasks/$CJK/data/数据文件.txt"
cp "$IN/seasons.txt" "$VD_MNT/tasks/$LONG/data/s.txt"
for t in wc "$CJK" "$LONG"; do
	for id in $(vd_versions "$VD_MNT/tasks/$t"); do
		vd_wait_status "$VD_MNT/tasks/$t/versions/$id" done
	done
done
vd_ok "three tasks, two named in Chinese, each with its versions done"

# The display columns at which the fields of a line start: a field is what
# follows a run of two or more spaces (cells hold single spaces at most).
starts() {
	local line="$1" rest prefix col=0 out=0
	rest="$line"
	while :; do
		# strip the first field and the run of spaces after it
		case "$rest" in
		*"  "*) ;;
		*) break ;;
		esac
		prefix="${rest%%  *}"
		rest="${rest#"$prefix"}"
		col=$((col + $(printf '%s' "$prefix" | wc -L)))
		local sp="${rest%%[! ]*}"
		col=$((col + ${#sp}))
		rest="${rest#"$sp"}"
		out="$out $col"
	done
	echo "$out"
}
# aligned NAME FILE: every table in FILE (blocks of lines between empty
# lines, of more than one line, with runs of 2+ spaces) has its columns
# start at the same display columns on every line.
aligned() {
	local name="$1" file="$2" want="" got line n=0 tables=0
	while IFS= read -r line || [ -n "$line" ]; do
		if [ -z "$line" ]; then
			want=""
			continue
		fi
		case "$line" in *"  "*) ;; *) continue ;; esac
		got="$(starts "$line")"
		if [ -z "$want" ]; then
			want="$got"
			tables=$((tables + 1))
			continue
		fi
		n=$((n + 1))
		[ "$got" = "$want" ] || {
			cat "$file" >&2
			vd_fail "$name: '$line' has its columns at [$got], the header at [$want]"
		}
	done <"$file"
	[ "$n" -gt 0 ] || { cat "$file" >&2; vd_fail "$name: no table rows"; }
	vd_ok "$name: $tables table(s), $n rows, every column at the same display column"
}

V=("$VD_BIN/vdfs")
"${V[@]}" status --state "$VD_STATE" >"$VD_WORK/status.txt"
grep -q -F "$CJK" "$VD_WORK/status.txt" || vd_fail "vdfs status does not list $CJK"
grep -q -F "$LONG" "$VD_WORK/status.txt" || vd_fail "vdfs status, piped, cuts the long name"
aligned "vdfs status" "$VD_WORK/status.txt"
"${V[@]}" log "$CJK" --state "$VD_STATE" >"$VD_WORK/log.txt"
grep -q -F "数据文件.txt" "$VD_WORK/log.txt" || vd_fail "vdfs log does not show 数据文件.txt"
aligned "vdfs log $CJK" "$VD_WORK/log.txt"
"${V[@]}" du --state "$VD_STATE" >"$VD_WORK/du.txt"
aligned "vdfs du" "$VD_WORK/du.txt"
"${V[@]}" executors --state "$VD_STATE" >"$VD_WORK/executors.txt"
aligned "vdfs executors" "$VD_WORK/executors.txt"

# On a terminal: the long name is cut, at a character, with an ellipsis;
# the table still lines up, and nothing is half a character.
script -qec "'$VD_BIN/vdfs' status --state '$VD_STATE'" /dev/null | tr -d '\r' >"$VD_WORK/tty.txt"
grep -q -F "…" "$VD_WORK/tty.txt" || { cat "$VD_WORK/tty.txt" >&2; vd_fail "on a terminal the long name is not cut"; }
grep -q -F "$LONG" "$VD_WORK/tty.txt" && vd_fail "on a terminal the 62-column name is printed whole"
iconv -f UTF-8 -t UTF-8 "$VD_WORK/tty.txt" >/dev/null || vd_fail "on a terminal the output is not valid UTF-8"
cut="$(grep -o -E '这是[^ ]*…' "$VD_WORK/tty.txt" | head -n 1)"
w="$(printf '%s' "$cut" | wc -L)"
[ "$w" -le 40 ] || vd_fail "the cut name '$cut' is $w columns, more than 40"
case "$LONG" in "${cut%…}"*) ;; *) vd_fail "'$cut' is not the start of the name" ;; esac
vd_ok "on a terminal the long name is cut to '$cut' ($w columns), valid UTF-8"
aligned "vdfs status on a terminal" "$VD_WORK/tty.txt"

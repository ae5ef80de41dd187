#!/usr/bin/env bash
# t_lineage: derivations recorded and shown. Task wc counts words of a.txt
# and b.txt; wc's result for a.txt is copied into task sq's data/ (one to
# one), and a tree of both results into task many's data/ (many to one).
#   - meta.json of the derived versions names their parents with wc's code;
#   - vdfs lineage (text) shows each edge with its kind and code ID, both
#     ways (ancestors of the tree, descendants of a.txt);
#   - vdfs lineage --dot is valid Graphviz (dot -Tsvg) and has exactly the
#     expected edges (dot -Tplain);
#   - an unknown or malformed ID: exit 2 and one line on stderr (lineage
#     and diff).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"

IN="$VD_WORK/in"
vdfs() { "$VD_BIN/vdfs" "$1" --state "$VD_STATE" "${@:2}"; }
# result_of VERSION_DIR: the result's data ID from meta.json.
result_of() {
	awk '/^  "result": \{/ { r = 1; next } r && /"data_id"/ { gsub(/[",]/, ""); print $2; exit }' "$1/meta.json"
}
# expect_line FILE REGEX WHAT: FILE has a line matching the extended REGEX.
expect_line() {
	grep -qE -- "$2" "$1" || { echo "----- $1 -----" >&2; cat "$1" >&2; vd_fail "$3: no line matching '$2'"; }
	vd_ok "$3"
}

vd_gen_text "$IN/a.txt" 400000 11 500
vd_gen_text "$IN/b.txt" 300000 12 500
vd_write_wc_function "$IN/wc.sh"
printf '#!/bin/sh\nexec wc -l\n' >"$IN/lc.sh"
chmod +x "$IN/lc.sh"

vd_start_daemon
vd_start_executor e1
W="$VD_MNT/tasks/wc"
mkdir "$W"
cp "$IN/wc.sh" "$W/function"
printf 'reduce = sum\n' >"$W/config"
cp "$IN/a.txt" "$W/data/a.txt"
va="$(vd_versions "$W")"
cp "$IN/b.txt" "$W/data/b.txt"
vb="$(vd_new_version "$W" "$va")"
vd_wait_status "$W/versions/$va" done
vd_wait_status "$W/versions/$vb" done
code="$(ls "$W/code")"
vd_is_id "$code" || vd_fail "tasks/wc/code lists '$code', expected one code ID"
ra="$(result_of "$W/versions/$va")"
rb="$(result_of "$W/versions/$vb")"
vd_is_id "$ra" && vd_is_id "$rb" || vd_fail "no result IDs in meta.json: '$ra' '$rb'"
vd_ok "wc: a.txt $va -> result $ra, b.txt $vb -> result $rb, code $code"

# One to one: the result of a.txt becomes task sq's input.
S="$VD_MNT/tasks/sq"
mkdir "$S"
cp "$IN/lc.sh" "$S/function"
cp "$W/versions/$va/result.csv" "$S/data/r.csv"
vs="$(vd_versions "$S")"
# Same bytes, same data ID: the version is the result itself.
[ "$vs" = "$ra" ] || vd_fail "the copied result got ID $vs, not the result's $ra"
grep -q "\"code_id\": \"$code\"" "$S/versions/$vs/meta.json" ||
	vd_fail "meta.json of sq's version does not name code $code on its parent edge"
vd_wait_status "$S/versions/$vs" done
rs="$(result_of "$S/versions/$vs")"
scode="$(ls "$S/code")"
vd_ok "one to one: sq/r.csv is version $vs; meta.json names its parent's code"

# Many to one: a tree of both results.
mkdir "$IN/tree"
cp "$W/versions/$va/result.csv" "$IN/tree/ra.csv"
cp "$W/versions/$vb/result.csv" "$IN/tree/rb.csv"
M="$VD_MNT/tasks/many"
mkdir "$M"
cp -r "$IN/tree" "$M/data/"
vc="$(vd_wait_new_version "$M" "")"
for r in "$ra" "$rb"; do
	grep -q "\"id\": \"$r\"" "$M/versions/$vc/meta.json" ||
		vd_fail "meta.json of the tree version does not list parent $r"
done
[ "$(grep -c "\"code_id\": \"$code\"" "$M/versions/$vc/meta.json")" -ge 2 ] ||
	vd_fail "meta.json of the tree version does not name code $code on both parent edges"
vd_ok "many to one: tree version $vc; meta.json lists both results as parents with wc's code"

c12="${code:0:12}"
vdfs lineage "$vc" >"$VD_WORK/lin-tree.txt"
expect_line "$VD_WORK/lin-tree.txt" "^version ${vc:0:12}  many/tree" "lineage of the tree starts at the tree"
expect_line "$VD_WORK/lin-tree.txt" "^  <- same \[code $c12, file ra\.csv\] (result|version) ${ra:0:12} " \
	"lineage: ra.csv came from a.txt's result, made by code $c12"
expect_line "$VD_WORK/lin-tree.txt" "^  <- same \[code $c12, file rb\.csv\] result ${rb:0:12}  of task wc" \
	"lineage: rb.csv came from b.txt's result, made by code $c12"
expect_line "$VD_WORK/lin-tree.txt" "^     <- run \[code $c12\] version ${va:0:12}  wc/a\.txt" \
	"lineage: a.txt's result came from a run of code $c12 on a.txt"
expect_line "$VD_WORK/lin-tree.txt" "^     <- run \[code $c12\] version ${vb:0:12}  wc/b\.txt" \
	"lineage: b.txt's result came from a run of code $c12 on b.txt"
expect_line "$VD_WORK/lin-tree.txt" "^descendants:$" "lineage lists descendants"
grep -A1 '^descendants:' "$VD_WORK/lin-tree.txt" | grep -q '(none)' || vd_fail "the tree has descendants: $(cat "$VD_WORK/lin-tree.txt")"

vdfs lineage "$va" >"$VD_WORK/lin-a.txt"
expect_line "$VD_WORK/lin-a.txt" "^  -> run \[code $c12\] version ${ra:0:12}  sq/r\.csv  \(= a result of task wc\)" \
	"lineage of a.txt: its run made the result that is sq's input"
expect_line "$VD_WORK/lin-a.txt" "^     -> run \[code ${scode:0:12}\] result ${rs:0:12}  of task sq" \
	"lineage of a.txt: sq's run on it, with sq's code"
expect_line "$VD_WORK/lin-a.txt" "^     -> same \[code $c12, file ra\.csv\] version ${vc:0:12}  many/tree" \
	"lineage of a.txt: the tree holds its result"
grep -A1 '^ancestors:' "$VD_WORK/lin-a.txt" | grep -q '(none)' || vd_fail "a.txt has ancestors: $(cat "$VD_WORK/lin-a.txt")"

# --dot: valid Graphviz with exactly the expected edges.
vdfs lineage --dot "$vc" >"$VD_WORK/lin.dot"
if command -v dot >/dev/null; then
	dot -Tsvg "$VD_WORK/lin.dot" >"$VD_WORK/lin.svg" 2>"$VD_WORK/dot.err" ||
		vd_fail "dot -Tsvg rejects vdfs lineage --dot: $(cat "$VD_WORK/dot.err")"
	grep -q '<svg' "$VD_WORK/lin.svg" || vd_fail "dot -Tsvg made no SVG"
	dot -Tplain "$VD_WORK/lin.dot" | awk '$1 == "edge" { gsub(/"/, "", $2); gsub(/"/, "", $3); print $2, $3 }' | LC_ALL=C sort >"$VD_WORK/edges.got"
	printf '%s\n' "$va $ra" "$vb $rb" "$ra $vc" "$rb $vc" "$ra $rs" | LC_ALL=C sort >"$VD_WORK/edges.want"
	vd_same "$VD_WORK/edges.got" "$VD_WORK/edges.want" "vdfs lineage --dot parses with dot and has the 5 expected edges"
else
	vd_note "dot (graphviz) is not installed: --dot checked by shape only (tools/setup.sh installs it)"
	grep -q '^digraph lineage {$' "$VD_WORK/lin.dot" || vd_fail "--dot does not start a digraph"
	[ "$(grep -c -- ' -> ' "$VD_WORK/lin.dot")" = 5 ] || vd_fail "--dot does not have 5 edges"
fi

# Unknown and malformed IDs: exit 2, one line on stderr, nothing on stdout.
expect_exit2() {
	local what="$1" st=0
	shift
	"$@" >"$VD_WORK/out.txt" 2>"$VD_WORK/err.txt" || st=$?
	[ "$st" = 2 ] || vd_fail "$what: exit $st, expected 2 (stderr: $(cat "$VD_WORK/err.txt"))"
	[ "$(wc -l <"$VD_WORK/err.txt")" = 1 ] || vd_fail "$what: stderr is not one line: $(cat "$VD_WORK/err.txt")"
	[ ! -s "$VD_WORK/out.txt" ] || vd_fail "$what printed to stdout: $(cat "$VD_WORK/out.txt")"
	vd_ok "$what: exit 2, one line: $(cat "$VD_WORK/err.txt")"
}
unknown=0123456789abcdef0123456789abcdef
expect_exit2 "vdfs lineage of an unknown ID" vdfs lineage "$unknown"
expect_exit2 "vdfs lineage --dot of an unknown ID" vdfs lineage --dot "$unknown"
expect_exit2 "vdfs lineage of a malformed ID" vdfs lineage not-an-id
expect_exit2 "vdfs diff with an unknown first ID" vdfs diff "$unknown" "$va"
expect_exit2 "vdfs diff --lines with an unknown second ID" vdfs diff --lines "$va" "$unknown"
expect_exit2 "vdfs diff --result with an unknown ID" vdfs diff --result "$unknown" "$va"
expect_exit2 "vdfs log of an unknown task" vdfs log no-such-task

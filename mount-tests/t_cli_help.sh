#!/usr/bin/env bash
# t_cli_help.sh - every program documents itself, and its manual page says
# the same:
#  - each shipped program exits 0 on --help with text on stdout, and
#    non-zero with exactly one line on stderr for an unknown option;
#  - `vdfs help CMD` is `vdfs CMD --help` for every subcommand `vdfs --help`
#    lists, and each subcommand refuses an unknown option in one line;
#  - every option --help names is accepted by the program's parser;
#  - the pages vdfs(1), vdfsd(8), vdfs-executor(1) and vdfs-config(5) are
#    in BUILD/man/, render without a groff warning, and name exactly the
#    options --help names (for vdfs, subcommand by subcommand);
#  - vdfs bench documents exactly the options its harness script takes;
#  - vdfs-config(5) against a live vdfsd: each key's documented default is
#    accepted in a task's config, each key it lists as not accepted yet is
#    refused, and every config key DESIGN.md names is one or the other;
#  - `cmake --install BUILD --prefix DIR` puts the programs and the pages
#    there, and man finds the pages.
# Checks are reported one by one (not ok - ...) and the test fails at the
# end if any did, so that one run shows everything that is wrong.
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"

SRC="$(cd "$(dirname "$0")/.." && pwd)"
BAD=0
bad() {
	echo "not ok - $*"
	BAD=$((BAD + 1))
}
check() {   # check WHAT COMMAND...: ok or not ok, never exits
	local what="$1"
	shift
	if "$@"; then vd_ok "$what"; else bad "$what"; fi
}

# The --flags a text names, sorted and unique.
flags_of() {
	grep -o -E -- '--[a-z][a-z0-9-]*[a-z0-9]' | LC_ALL=C sort -u || true
}
# A manual page as plain text: wide lines, no overstrikes or escapes.
render() {
	GROFF_NO_SGR=1 groff -man -Tascii -rLL=200n "$1" 2>/dev/null | col -b -x
}
# Lines of a rendered page from the heading matching $2 to the next one of
# the same level (sections at column 0; subsections "   vdfs NAME").
section() {
	awk -v start="$2" '
		on && ($0 ~ /^[A-Z]/ || (sub_ && $0 ~ /^   vdfs [a-z]/)) { exit }
		$0 ~ start { on = 1; sub_ = ($0 ~ /^   /); next }
		on { print }' "$1"
}
same_flags() {   # same_flags WHAT A B: the two flag lists are equal
	if [ "$2" = "$3" ]; then
		vd_ok "$1"
	else
		bad "$1"
		diff <(printf '%s\n' "$2") <(printf '%s\n' "$3") | sed 's/^/#   /' >&2 || true
	fi
}

PROGS="vdfs vdfsd vdfs-executor vdfs-count vdfs-factor vdfs-forecast"
OUT="$VD_WORK/out"
ERR="$VD_WORK/err"

# ---- --help and an unknown option, every program -------------------------
for p in $PROGS; do
	if [ ! -x "$VD_BIN/$p" ]; then
		bad "$p is built"
		continue
	fi
	rc=0
	"$VD_BIN/$p" --help >"$OUT" 2>"$ERR" </dev/null || rc=$?
	check "$p --help exits 0 (it exited $rc)" [ "$rc" = 0 ]
	check "$p --help prints its help on stdout" [ -s "$OUT" ]
	rc=0
	"$VD_BIN/$p" --no-such-flag >"$OUT" 2>"$ERR" </dev/null || rc=$?
	n=$(wc -l <"$ERR")
	check "$p --no-such-flag exits non-zero (it exited $rc)" [ "$rc" != 0 ]
	check "$p --no-such-flag says so in one line on stderr ($n lines: $(head -c 160 "$ERR" | tr '\n' '|'))" \
		[ "$n" = 1 ]
	check "$p --no-such-flag prints nothing on stdout" [ ! -s "$OUT" ]
done

# ---- vdfs subcommands ---------------------------------------------------------
"$VD_BIN/vdfs" --help >"$VD_WORK/vdfs.help"
# The list: the lines of the "subcommands:" block that start with a name.
CMDS="$(awk '/^subcommands:/ { on = 1; next } on && /^$/ { exit }
	on && /^  [a-z]/ { print $1 }' "$VD_WORK/vdfs.help")"
check "vdfs --help lists subcommands ($(echo $CMDS))" [ "$(echo "$CMDS" | wc -w)" -ge 7 ]
for c in $CMDS; do
	rc=0
	"$VD_BIN/vdfs" help "$c" >"$VD_WORK/help-$c" 2>"$ERR" || rc=$?
	ok=0
	[ "$rc" = 0 ] && [ -s "$VD_WORK/help-$c" ] && ok=1
	check "vdfs help $c exits 0 with text" [ "$ok" = 1 ]
	rc=0 ok=0
	"$VD_BIN/vdfs" "$c" --help >"$OUT" 2>"$ERR" || rc=$?
	[ "$rc" = 0 ] && cmp -s "$OUT" "$VD_WORK/help-$c" && ok=1
	check "vdfs $c --help exits 0 and says what vdfs help $c says" [ "$ok" = 1 ]
	rc=0 ok=0
	"$VD_BIN/vdfs" "$c" --no-such-flag >"$OUT" 2>"$ERR" || rc=$?
	[ "$rc" = 2 ] && [ "$(wc -l <"$ERR")" = 1 ] && ok=1
	check "vdfs $c --no-such-flag: exit 2 and one line on stderr (exit $rc, $(wc -l <"$ERR") lines)" \
		[ "$ok" = 1 ]
done

# ---- every option in --help is one the parser takes ---------------------------
# An option row of --help: "  -x, --name ARG" or "      --name ARG". Run
# the program with that option alone (and a dummy value): whatever else it
# says, it must not be "unknown option" or "needs a value". Nothing starts:
# each lacks what it needs (--state, a mount point, --server, a task).
# vdfs bench would run the harness: it gets a stub that prints its arguments.
STUB="$VD_WORK/bench-stub.sh"
printf '#!/bin/sh\necho "bench-args: $*"\n' >"$STUB"
option_rows() {   # option_rows HELPFILE: "name arg" per row (arg may be empty)
	sed -n -E 's/^  (-[A-Za-z], |    )--([a-z][a-z0-9-]*)( ([^ ]+))?.*/\2 \4/p' "$1"
}
accepts() {   # accepts WHAT PROG [ARGS...]
	local what="$1" rc=0
	shift
	VDFS_BENCH_SCRIPT="$STUB" timeout 20 "$@" >"$OUT" 2>"$ERR" </dev/null || rc=$?
	if grep -q -E "unknown option|needs a value|unrecognized" "$ERR" || [ "$rc" = 124 ]; then
		bad "$what is accepted (exit $rc: $(head -n 1 "$ERR"))"
		return
	fi
	ACCEPTED=$((ACCEPTED + 1))
}
for p in vdfsd vdfs-executor; do
	[ -x "$VD_BIN/$p" ] || continue
	"$VD_BIN/$p" --help >"$VD_WORK/$p.help"
	ACCEPTED=0
	while read -r name arg; do
		[ "$name" = help ] || [ "$name" = man ] && continue
		if [ -n "$arg" ]; then
			accepts "$p --$name" "$VD_BIN/$p" "--$name" "$VD_WORK/nothing"
		else
			accepts "$p --$name" "$VD_BIN/$p" "--$name"
		fi
	done < <(option_rows "$VD_WORK/$p.help")
	check "$p accepts each of the $ACCEPTED options its --help lists" [ "$ACCEPTED" -ge 10 ]
done
ACCEPTED=0
for c in $CMDS; do
	while read -r name arg; do
		[ "$name" = help ] && continue
		if [ -n "$arg" ]; then
			accepts "vdfs $c --$name" "$VD_BIN/vdfs" "$c" "--$name" "$VD_WORK/nothing"
		else
			accepts "vdfs $c --$name" "$VD_BIN/vdfs" "$c" "--$name"
		fi
	done < <(option_rows "$VD_WORK/help-$c")
done
check "the vdfs subcommands accept each of the $ACCEPTED options their --help lists" \
	[ "$ACCEPTED" -ge 20 ]

# vdfs bench: the table is the harness's options, passed on by full name.
BH="$(bash "$SRC/tools/vdfs-bench.sh" --help | flags_of)"
VH="$(option_rows "$VD_WORK/help-bench" | awk '$1 != "help" { print "--" $1 }' | LC_ALL=C sort -u)"
same_flags "vdfs bench --help lists exactly the options tools/vdfs-bench.sh takes" "$BH" "$VH"
VDFS_BENCH_SCRIPT="$STUB" "$VD_BIN/vdfs" bench --qui --rounds 2 >"$OUT" 2>&1 || true
check "vdfs bench passes its options on by their full names ($(cat "$OUT"))" \
	grep -q -x -- 'bench-args: --quick --rounds 2' "$OUT"

# ---- the manual pages -------------------------------------------------------------
MAN="$VD_BUILD/man"
PAGES="vdfs.1 vdfsd.8 vdfs-executor.1 vdfs-config.5"
for page in $PAGES; do
	if [ ! -s "$MAN/$page" ]; then
		bad "$MAN/$page exists"
		continue
	fi
	vd_ok "$MAN/$page exists"
	warn="$(groff -man -Tutf8 -ww -z "$MAN/$page" 2>&1 || echo "groff failed")"
	check "groff renders $page without a warning${warn:+ ($warn)}" [ -z "$warn" ]
	check "man -l renders $page" sh -c "man -l '$MAN/$page' 2>/dev/null | grep -q NAME"
	render "$MAN/$page" >"$VD_WORK/$page.txt"
done
# vdfsd and vdfs-executor: the same options in --help and the page; each
# option row of --help is an entry of the page's OPTIONS.
for pair in vdfsd:vdfsd.8 vdfs-executor:vdfs-executor.1; do
	p="${pair%%:*}"
	page="${pair#*:}"
	[ -s "$VD_WORK/$page.txt" ] && [ -s "$VD_WORK/$p.help" ] || continue
	same_flags "$page names the options $p --help names" \
		"$(flags_of <"$VD_WORK/$p.help")" "$(flags_of <"$VD_WORK/$page.txt")"
	missing=""
	# grep -q reads a here-string, not a pipe: under pipefail a writer that
	# grep -q left early (SIGPIPE) would fail the check at random.
	opts_sect="$(section "$VD_WORK/$page.txt" '^OPTIONS')"
	while read -r name arg; do
		grep -q -E -- "^ {7}(-[A-Za-z], )?--$name( |$)" <<<"$opts_sect" ||
			missing="$missing --$name"
	done < <(option_rows "$VD_WORK/$p.help")
	check "every option of $p --help is an entry in $page's OPTIONS${missing:+ (missing:$missing)}" \
		[ -z "$missing" ]
done
# vdfs: each subcommand's options in its own subsection of vdfs(1), and
# the tool's own (and the connection options) in the rest of the page.
if [ -s "$VD_WORK/vdfs.1.txt" ]; then
	for c in $CMDS; do
		sect="$(section "$VD_WORK/vdfs.1.txt" "^   vdfs $c( |\$)")"
		check "vdfs(1) has a subsection for vdfs $c" [ -n "$sect" ]
		same_flags "vdfs(1)'s vdfs $c names the options vdfs $c --help names" \
			"$(flags_of <"$VD_WORK/help-$c")" "$(printf '%s\n' "$sect" | flags_of)"
	done
	same_flags "vdfs(1) outside SUBCOMMANDS names the options vdfs --help names" \
		"$(flags_of <"$VD_WORK/vdfs.help")" \
		"$(awk '/^SUBCOMMANDS/ { skip = 1; next } skip && /^[A-Z]/ { skip = 0 }
			!skip' "$VD_WORK/vdfs.1.txt" | flags_of)"
fi

# ---- vdfs-config(5) against the daemon ------------------------------------------
"$VD_BIN/vdfs" help config >"$VD_WORK/config.help"
# "  KEY = VALUES  (default D)" rows, and the "not accepted yet" block.
KEYS="$(awk '/^keys:/ { on = 1; next } on && /^$/ { exit }
	on && /^  [a-z]/ { print $1 }' "$VD_WORK/config.help")"
PLANNED="$(awk '/^not accepted yet/ { on = 1; next } on && /^$/ { exit }
	on && /^  [a-z]/ { print $1 }' "$VD_WORK/config.help")"
check "vdfs help config lists keys ($(echo $KEYS))" [ "$(echo "$KEYS" | wc -w)" -ge 8 ]
if [ -s "$VD_WORK/vdfs-config.5.txt" ]; then
	keys_sect="$(section "$VD_WORK/vdfs-config.5.txt" '^KEYS')"
	for k in $KEYS; do
		grep -q -E "^ {7}$k = " <<<"$keys_sect" ||
			bad "vdfs-config(5) KEYS has an entry for $k"
	done
	planned_sect="$(section "$VD_WORK/vdfs-config.5.txt" '^NOT ACCEPTED YET')"
	for k in $PLANNED; do
		grep -q -E "^ {7}$k( |$)" <<<"$planned_sect" ||
			bad "vdfs-config(5) lists $k as not accepted yet"
	done
	vd_ok "vdfs-config(5) has every key vdfs help config lists"
fi
# Every key DESIGN.md's config paragraph names is documented one way or
# the other; the list is DESIGN.md's, written here so that this test does
# not depend on a file outside the repository.
for k in level reduce format timeout retries replicas settle rerun keep mode input; do
	grep -q -x -E "$k(\.NAME)?" <<<"$(echo "$KEYS $PLANNED" | tr ' ' '\n')" ||
		bad "DESIGN.md's config key $k is documented (as accepted or not yet)"
done
vd_start_daemon
T="$VD_MNT/tasks/doc"
mkdir "$T"
while read -r line; do
	k="$(echo "$line" | awk '{ print $1 }')"
	def="$(echo "$line" | sed -n -E 's/.*\(default ([^)]*)\)$/\1/p')"
	case "$k" in env.NAME) k=env.DOCTEST def=1 ;; esac
	[ -n "$def" ] || { bad "$k has a documented default"; continue; }
	printf '%s = %s\n' "$k" "$def" >"$VD_WORK/cfg"
	check "config '$k = $def' (the documented default) is accepted" cp "$VD_WORK/cfg" "$T/config"
done < <(awk '/^keys:/ { on = 1; next } on && /^$/ { exit } on && /^  [a-z]/' "$VD_WORK/config.help")
for k in $PLANNED; do
	printf '%s = all\n' "$k" >"$VD_WORK/cfg"
	if cp "$VD_WORK/cfg" "$T/config" 2>/dev/null; then
		bad "config key $k, documented as not accepted yet, is refused"
	else
		vd_ok "config key $k, documented as not accepted yet, is refused"
	fi
done
sed -n '/^example:/,$p' "$VD_WORK/config.help" | sed '1d; s/^  //' >"$VD_WORK/cfg"
check "the documented example config is accepted" cp "$VD_WORK/cfg" "$T/config"

# ---- cmake --install ------------------------------------------------------------------
PREFIX="$VD_WORK/prefix"
if cmake --install "$VD_BUILD" --prefix "$PREFIX" >"$VD_WORK/install.log" 2>&1; then
	vd_ok "cmake --install $VD_BUILD --prefix DIR"
else
	bad "cmake --install $VD_BUILD --prefix DIR ($(tail -n 3 "$VD_WORK/install.log" | tr '\n' '|'))"
fi
for p in $PROGS; do
	check "$p is installed and runs from there" sh -c "'$PREFIX/bin/$p' --help >/dev/null"
done
for page in $PAGES; do
	sec="${page##*.}"
	f="$PREFIX/share/man/man$sec/$page"
	check "$page is installed in share/man/man$sec" cmp -s "$f" "$MAN/$page"
	check "man -M finds $page" sh -c "man -M '$PREFIX/share/man' $sec '${page%.*}' 2>/dev/null |
		grep -q NAME"
done

[ "$BAD" = 0 ] || vd_fail "$BAD checks failed (not ok above)"

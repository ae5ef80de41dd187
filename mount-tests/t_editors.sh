#!/usr/bin/env bash
# t_editors: editors and sync tools save into data/ the way they do on any
# file system (write a temporary, rename it over the name), and the content
# ends up as a version under the final name; no version is ever named after
# a temporary and no temporary is left in data/.
#
# Tools: sed -i, vim (ex mode), nano (in tmux), Python's tempfile +
# os.replace, a plain rename of a just-written file, rsync -a of a tree and
# of single files (a second rsync reads the first as its basis), and ln,
# touch and truncate on names in data/. Each result is checked against the
# same tool run on a native directory.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"
for tool in sed rsync python3; do
	command -v "$tool" >/dev/null || vd_fail "$tool is needed (tools/setup.sh installs it)"
done
VIM="$(command -v vim || command -v vim.tiny || true)"
[ -n "$VIM" ] || vd_fail "vim or vim.tiny is needed (tools/setup.sh installs vim-tiny)"
command -v nano >/dev/null || vd_fail "nano is needed (tools/setup.sh installs it)"
command -v tmux >/dev/null || vd_fail "tmux is needed"

vd_start_daemon
T="$VD_MNT/tasks/ed"
D="$T/data"
N="$VD_WORK/native"
mkdir "$T" "$N"
vd_write_wc_function "$VD_WORK/wc.sh"
cp "$VD_WORK/wc.sh" "$T/function"
printf 'settle = 1\n' >"$T/config"

# newest_name: the name the newest version was recorded under.
newest_name() {
	local id
	id="$(ls -t "$T/versions" | head -n 1)"
	sed -n 's/^ *"name": "\(.*\)",*$/\1/p' "$T/versions/$id/meta.json" | head -n 1
}
# same_as_native NAME WHAT: data/NAME reads what the native copy holds.
same_as_native() {
	vd_same "$D/$1" "$N/$1" "$2"
}

# --- sed -i ---------------------------------------------------------------
printf 'alpha\nbeta\ngamma\n' >"$N/s.txt"
cp "$N/s.txt" "$D/s.txt"
before="$(vd_versions "$T")"
sed -i 's/alpha/ALPHA/' "$N/s.txt"
sed -i 's/alpha/ALPHA/' "$D/s.txt" || vd_fail "sed -i in data/ failed"
same_as_native s.txt "sed -i: data/s.txt has the edit"
id="$(vd_new_version "$T" "$before")"
vd_same "$T/versions/$id/input" "$N/s.txt" "sed -i: the new version holds the edited text"
[ "$(newest_name)" = s.txt ] || vd_fail "sed -i: the version is named '$(newest_name)', not s.txt"
vd_ok "sed -i: one new version, named s.txt"

# --- vim --------------------------------------------------------------------
before="$(vd_versions "$T")"
"$VIM" -u NONE -i NONE -N -es -c '%s/beta/BETA/' -c 'wq' "$N/s.txt" </dev/null
"$VIM" -u NONE -i NONE -N -es -c '%s/beta/BETA/' -c 'wq' "$D/s.txt" </dev/null ||
	vd_fail "vim could not save data/s.txt"
same_as_native s.txt "vim: data/s.txt has the edit"
id="$(vd_new_version "$T" "$before")"
[ "$(newest_name)" = s.txt ] || vd_fail "vim: the version is named '$(newest_name)'"
vd_ok "vim: one new version, named s.txt"

# --- nano, typed into a terminal ------------------------------------------------
sock="$VD_WORK/tmux.sock"
vd_at_exit "tmux -S '$sock' kill-server 2>/dev/null || true"
# nano_edit FILE: open FILE in nano, go to its end, type a line, save, quit.
nano_edit() {
	local i
	tmux -S "$sock" new-session -d -x 80 -y 24 "nano --ignorercfiles '$1'"
	sleep 1
	tmux -S "$sock" send-keys M-/ "second" Enter C-o
	sleep 0.5
	tmux -S "$sock" send-keys Enter
	sleep 0.5
	tmux -S "$sock" send-keys C-x
	for ((i = 0; i < 100; i++)); do
		tmux -S "$sock" has-session 2>/dev/null || return 0
		sleep 0.1
	done
	vd_fail "nano did not exit: $(tmux -S "$sock" capture-pane -p | tail -n 3)"
}
before="$(vd_versions "$T")"
printf 'first\n' >"$N/n.txt"
cp "$N/n.txt" "$D/n.txt"
before="$(vd_versions "$T")"
nano_edit "$N/n.txt"
nano_edit "$D/n.txt"
grep -q second "$N/n.txt" || vd_fail "nano typed nothing into the native file"
same_as_native n.txt "nano: data/n.txt has what was typed"
vd_new_version "$T" "$before" >/dev/null
vd_ok "nano: one new version"

# --- Python: tempfile in data/, then os.replace ---------------------------------
before="$(vd_versions "$T")"
printf 'replaced by python\n' >"$N/p.txt"
python3 - "$D" <<'EOF'
import os, sys, tempfile
d = sys.argv[1]
fd, tmp = tempfile.mkstemp(dir=d)
os.write(fd, b"replaced by python\n")
os.close(fd)
os.replace(tmp, os.path.join(d, "p.txt"))
EOF
same_as_native p.txt "os.replace: data/p.txt"
vd_new_version "$T" "$before" >/dev/null
[ "$(newest_name)" = p.txt ] || vd_fail "os.replace: the version is named '$(newest_name)'"
vd_ok "tempfile + os.replace: one new version, named p.txt"

# A name no pattern knows, renamed a moment after it was written: the
# version is recorded under the final name.
before="$(vd_versions "$T")"
printf 'written then moved\n' >"$N/q.txt"
cp "$N/q.txt" "$D/q.txt.new"
mv "$D/q.txt.new" "$D/q.txt"
same_as_native q.txt "mv right after cp: data/q.txt"
vd_new_version "$T" "$before" >/dev/null
[ "$(newest_name)" = q.txt ] || vd_fail "mv right after cp: the version is named '$(newest_name)'"
[ ! -e "$D/q.txt.new" ] || vd_fail "data/q.txt.new is still there after mv"
vd_ok "cp then mv: the version is named q.txt"

# --- rsync -a of a tree ---------------------------------------------------------
mkdir -p "$VD_WORK/src/sub/deep"
vd_gen_text "$VD_WORK/src/a.txt" 200000 1
vd_gen_text "$VD_WORK/src/b.txt" 100000 2
vd_gen_text "$VD_WORK/src/sub/c.txt" 150000 3
vd_gen_text "$VD_WORK/src/sub/deep/d.txt" 50000 4
before="$(vd_versions "$T")"
rsync -a "$VD_WORK/src/" "$D/" || vd_fail "rsync -a src/ data/ failed"
rsync -a "$VD_WORK/src/" "$N/"
for f in a.txt b.txt; do same_as_native "$f" "rsync -a: data/$f"; done
sub="$(vd_wait_new_version "$T" "$(printf '%s\n%s\n' "$before" "$(vd_versions "$T")")" 60)"
diff -r "$VD_WORK/src/sub" "$T/versions/$sub/input" >/dev/null ||
	vd_fail "rsync -a: the tree sub/ sealed as $sub differs from the source"
vd_ok "rsync -a src/ data/: the files and the tree sub/ arrive exactly"

# --- rsync of single files, the second one a delta against the first ---------------
cp "$VD_WORK/src/a.txt" "$VD_WORK/one.txt"
rsync "$VD_WORK/one.txt" "$D/one.txt" || vd_fail "rsync of a single file failed"
vd_same "$D/one.txt" "$VD_WORK/one.txt" "rsync FILE data/one.txt"
sed -i '100s/^/CHANGED /' "$VD_WORK/one.txt"
rsync --no-whole-file "$VD_WORK/one.txt" "$D/one.txt" || vd_fail "rsync of a changed file failed"
vd_same "$D/one.txt" "$VD_WORK/one.txt" "rsync of a changed file (delta against data/one.txt)"

# --- ln, touch, truncate ------------------------------------------------------------
ln "$D/one.txt" "$D/two.txt" || vd_fail "ln data/one.txt data/two.txt failed"
vd_same "$D/two.txt" "$VD_WORK/one.txt" "ln: data/two.txt reads one.txt's content"
touch -d '2020-01-02 03:04:05' "$D/two.txt" || vd_fail "touch -d on data/two.txt failed"
touch "$D/new-empty.txt" || vd_fail "touch of a new name failed"
[ -f "$D/new-empty.txt" ] && [ ! -s "$D/new-empty.txt" ] || vd_fail "touch did not make an empty data/new-empty.txt"
truncate -s 1000 "$D/two.txt" || vd_fail "truncate of data/two.txt failed"
head -c 1000 "$VD_WORK/one.txt" >"$VD_WORK/two.expected"
vd_same "$D/two.txt" "$VD_WORK/two.expected" "truncate -s 1000 data/two.txt"
vd_same "$D/one.txt" "$VD_WORK/one.txt" "data/one.txt is unchanged by truncating its link"
vd_ok "ln, touch and truncate behave as on a normal file system"

# --- no temporaries anywhere ------------------------------------------------------
left="$(ls -A "$D" | grep -E '^\.|^sed|^tmp|~$|\.swp$|^4913$|\.new$' || true)"
[ -z "$left" ] || vd_fail "temporaries left in data/: $left"
for v in "$T/versions"/*; do
	name="$(sed -n 's/^ *"name": "\(.*\)",*$/\1/p' "$v/meta.json" | head -n 1)"
	case "$name" in
	.* | sed?????? | tmp* | *~ | *.swp | 4913 | *.new)
		vd_fail "version $(basename "$v") is named after a temporary: $name" ;;
	esac
done
vd_ok "no version is named after a temporary, and none is left in data/"

#!/usr/bin/env bash
# tools/data-zh.sh - fetch the real Chinese text that vdfs-count is checked
# on, from Debian packages, into a data directory (never into the repository).
#
#   tools/data-zh.sh [DIR]     default: $VDFS_DATA_DIR/zh, else build/data/zh
#
# DIR gets:
#   tree/fortunes/{chinese,tang300,song100}   fortunes-zh: poems, UTF-8
#   tree/man/zh_CN/manN/*, tree/man/zh_TW/manN/*
#                                             manpages-zh, gunzipped, UTF-8
#   zhlipsum/zhlipsum-{utf8,gbk,big5}.def     the same dummy texts in UTF-8,
#                                             GBK and Big5 (texlive-lang-chinese)
#   VERSIONS                                  the package versions used
#
# Nothing is installed: the packages are fetched with `apt-get download` and
# unpacked into a temporary directory (`dpkg-deb -x`, or just the three
# zhlipsum files out of texlive-lang-chinese's 49 MB .deb with
# `dpkg-deb --fsys-tarfile | tar -x`). The man pages' symbolic links (86
# aliases such as rgview.1 -> vim.1) become copies of what they point to, as
# `cp -rL` would make them, so that the tree is plain files only.
#
# Idempotent and quiet on success: a complete DIR (it has VERSIONS) is left
# alone; a new one is built beside it and renamed into place, so an
# interrupted run never leaves a half tree that looks complete. `apt-get
# update` runs only when a download fails for want of package lists (none,
# or stale), as root or through sudo. Exits non-zero with one line on stderr when the data
# cannot be had.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${1:-${VDFS_DATA_DIR:-$root/build/data}/zh}"
packages=(fortunes-zh manpages-zh texlive-lang-chinese)
zhlipsum=./usr/share/texlive/texmf-dist/tex/latex/zhlipsum

die() {
	echo "data-zh.sh: $*" >&2
	exit 1
}

[ -f "$dir/VERSIONS" ] && exit 0
for t in apt-get dpkg-deb tar gzip; do
	command -v "$t" >/dev/null || die "needs $t (this script fetches Debian packages)"
done

mkdir -p "$(dirname "$dir")"
tmp="$(mktemp -d "$(dirname "$dir")/.data-zh.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
log="$tmp/log"

# apt-get download writes into the current directory. As root it warns that
# the _apt user cannot write there; that is harmless, and the log is shown
# only on failure.
download() {
	(cd "$tmp" && apt-get download -q "${packages[@]}") >>"$log" 2>&1 </dev/null
}
if ! download; then
	# No package lists yet (a fresh machine), or lists older than the
	# mirror (404): update them once and try again. Anything else (no
	# network) is reported as it is.
	grep -qE 'Unable to locate package|no installation candidate|select candidate|404' "$log" ||
		{ tail -n 10 "$log" >&2; die "apt-get download ${packages[*]} failed"; }
	sudo=()
	if [ "$(id -u)" != 0 ]; then
		command -v sudo >/dev/null || { tail -n 5 "$log" >&2; die "apt-get download failed and apt-get update needs root"; }
		sudo=(sudo)
	fi
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$log" 2>&1 </dev/null ||
		{ tail -n 10 "$log" >&2; die "apt-get update failed: cannot fetch ${packages[*]}"; }
	download || { tail -n 10 "$log" >&2; die "apt-get download ${packages[*]} failed"; }
fi

new="$tmp/new"
mkdir -p "$new/tree/fortunes" "$new/tree/man" "$new/zhlipsum" "$tmp/x"
for p in "${packages[@]}"; do
	debs=("$tmp/${p}"_*.deb)
	deb="${debs[0]}"
	[ -f "$deb" ] || die "apt-get download gave no .deb for $p"
	echo "$p $(dpkg-deb -f "$deb" Version)" >>"$new/VERSIONS.tmp"
	case "$p" in
	texlive-lang-chinese)
		dpkg-deb --fsys-tarfile "$deb" |
			tar -x -C "$tmp/x" "$zhlipsum/zhlipsum-utf8.def" \
				"$zhlipsum/zhlipsum-gbk.def" "$zhlipsum/zhlipsum-big5.def" ||
			die "the zhlipsum files are not where expected in $(basename "$deb")"
		;;
	*) dpkg-deb -x "$deb" "$tmp/x" || die "cannot unpack $(basename "$deb")" ;;
	esac
done

for f in chinese tang300 song100; do
	cp "$tmp/x/usr/share/games/fortunes/$f" "$new/tree/fortunes/$f" ||
		die "fortunes-zh has no $f"
done
cp "$tmp/x/$zhlipsum"/zhlipsum-*.def "$new/zhlipsum/"

# The man pages: every regular file or link under zh_CN/ and zh_TW/,
# decompressed, same nested layout, without the .gz.
n=0
while IFS= read -r -d '' f; do
	rel="${f#"$tmp/x/usr/share/man/"}"
	out="$new/tree/man/${rel%.gz}"
	mkdir -p "$(dirname "$out")"
	# gzip -dc follows a link to its target (all of them resolve within
	# the package).
	gzip -dc "$f" >"$out" || die "cannot decompress $rel"
	n=$((n + 1))
done < <(find "$tmp/x/usr/share/man/zh_CN" "$tmp/x/usr/share/man/zh_TW" \
	\( -type f -o -type l \) -name '*.gz' -print0)
[ "$n" -ge 1000 ] || die "manpages-zh gave only $n man pages"

mv "$new/VERSIONS.tmp" "$new/VERSIONS"
rm -rf "$dir"
mv "$new" "$dir"

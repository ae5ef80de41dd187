#!/usr/bin/env bash
# tools/data-taylor.sh - fetch the real load series vdfs-forecast is checked
# on, from Debian packages, into a data directory (never into the repository).
#
#   tools/data-taylor.sh [FILE]   default: $VDFS_DATA_DIR/taylor.csv, else
#                                 build/data/taylor.csv
#
# FILE gets the `taylor` series of R's forecast package (r-cran-forecast):
# half-hourly electricity demand in England and Wales, in megawatts, from
# Monday 5 June 2000 to Sunday 27 August 2000 (J. W. Taylor, 2003), 4,032
# rows "time,load" under a header, times as 2000-06-05T00:00 (wall clock, no
# zone: the series has no clock change).
#
# r-cran-forecast is not installed: its .deb is fetched with `apt-get
# download` and unpacked into a temporary directory, and R reads the data
# from the package's lazy-load database (data/Rdata.rdb) with lazyLoad().
# That needs Rscript, from r-base-core, which is installed (apt-get, as root
# or through sudo) when missing: R's serialization format is R's to read.
# The package's version goes to FILE.version.
#
# Idempotent and quiet on success: a FILE with 4,032 rows is left alone; a
# new one is written beside it and renamed into place. Exits non-zero with a
# line on stderr when the data cannot be had.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-${VDFS_DATA_DIR:-$root/build/data}/taylor.csv}"
rows=4032

die() {
	echo "data-taylor.sh: $*" >&2
	exit 1
}

complete() {
	[ -f "$1" ] && [ "$(wc -l <"$1")" = $((rows + 1)) ]
}

complete "$out" && exit 0
for t in apt-get dpkg-deb; do
	command -v "$t" >/dev/null || die "needs $t (this script fetches Debian packages)"
done

mkdir -p "$(dirname "$out")"
tmp="$(mktemp -d "$(dirname "$out")/.data-taylor.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
log="$tmp/log"

sudo=()
if [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null && sudo=(sudo)
fi
apt_update() {
	[ "$(id -u)" = 0 ] || [ "${#sudo[@]}" -gt 0 ] ||
		{ tail -n 5 "$log" >&2; die "apt-get update needs root or sudo"; }
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$log" 2>&1 </dev/null ||
		{ tail -n 10 "$log" >&2; die "apt-get update failed"; }
}

if ! command -v Rscript >/dev/null; then
	[ "$(id -u)" = 0 ] || [ "${#sudo[@]}" -gt 0 ] ||
		die "needs Rscript (r-base-core); run as root or install sudo"
	echo "data-taylor.sh: installing r-base-core (Rscript reads the data)" >&2
	install() {
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			--no-install-recommends r-base-core >>"$log" 2>&1 </dev/null
	}
	install || { apt_update && install; } ||
		{ tail -n 10 "$log" >&2; die "cannot install r-base-core"; }
fi

# apt-get download writes into the current directory. As root it warns that
# the _apt user cannot write there; that is harmless, and the log is shown
# only on failure.
download() {
	(cd "$tmp" && apt-get download -q r-cran-forecast) >>"$log" 2>&1 </dev/null
}
if ! download; then
	# Most often there are no package lists yet: update them once, retry.
	apt_update
	download || { tail -n 10 "$log" >&2; die "apt-get download r-cran-forecast failed"; }
fi
deb="$(ls "$tmp"/r-cran-forecast_*.deb 2>/dev/null | head -n 1)"
[ -n "$deb" ] || die "apt-get download gave no .deb for r-cran-forecast"
dpkg-deb -x "$deb" "$tmp/x" || die "cannot unpack $(basename "$deb")"
rdata="$tmp/x/usr/lib/R/site-library/forecast/data/Rdata"
[ -f "$rdata.rdb" ] || die "$(basename "$deb") has no data/Rdata.rdb"

# The series is a ts of 4,032 numbers; its times are not stored (only the
# seasonal periods 48 and 336), so they are laid out from the documented
# start, half an hour apart.
cat >"$tmp/read.R" <<'EOF'
args <- commandArgs(trailingOnly = TRUE)
e <- new.env()
invisible(lazyLoad(args[1], envir = e))
if (!exists("taylor", envir = e)) stop("no taylor in the package data")
y <- as.numeric(get("taylor", envir = e))
if (length(y) != as.integer(args[3]) || any(!is.finite(y)))
	stop("taylor has ", length(y), " values, expected ", args[3])
t0 <- as.POSIXct("2000-06-05 00:00", tz = "UTC")
tm <- format(t0 + 1800 * (seq_along(y) - 1), "%Y-%m-%dT%H:%M", tz = "UTC")
write.csv(data.frame(time = tm, load = y), args[2], row.names = FALSE, quote = FALSE)
EOF
Rscript --vanilla "$tmp/read.R" "$rdata" "$tmp/taylor.csv" "$rows" >>"$log" 2>&1 ||
	{ tail -n 10 "$log" >&2; die "R could not read taylor from $(basename "$deb")"; }
complete "$tmp/taylor.csv" || die "the written series does not have $rows rows"
[ "$(sed -n 2p "$tmp/taylor.csv")" = "2000-06-05T00:00,22262" ] ||
	die "the series does not start as documented (2000-06-05T00:00,22262): $(sed -n 2p "$tmp/taylor.csv")"
echo "r-cran-forecast $(dpkg-deb -f "$deb" Version)" >"$out.version"
mv "$tmp/taylor.csv" "$out"

#!/usr/bin/env bash
# tools/setup.sh - install what vdfs needs on Debian 12 and build it.
#
#   tools/setup.sh                 packages, then build/ (RelWithDebInfo)
#   tools/setup.sh --sanitize      packages, then build-san/ (ASan + UBSan)
#   tools/setup.sh --build-dir D   build into D instead
#   tools/setup.sh --deps-only     packages only
#
# Idempotent and quiet on success: packages are checked with dpkg first and
# `apt-get update` runs only when something is missing. Works as root, or
# through sudo when it is available.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
sanitize=0
build_dir=""
deps_only=0
while [ $# -gt 0 ]; do
	case "$1" in
	--sanitize) sanitize=1 ;;
	--build-dir)
		[ $# -ge 2 ] || { echo "setup.sh: --build-dir needs a directory" >&2; exit 2; }
		build_dir="$2"
		shift
		;;
	--deps-only) deps_only=1 ;;
	-h | --help)
		sed -n '2,12s/^# \{0,1\}//p' "$0"
		exit 0
		;;
	*)
		echo "setup.sh: unknown option '$1' (try --help)" >&2
		exit 2
		;;
	esac
	shift
done

# graphviz: t_lineage parses `vdfs lineage --dot` with dot; time: t_versions
# measures `vdfs diff --lines`' peak memory with /usr/bin/time.
# rsync, nano, vim-tiny: t_editors and t_posix save and sync into data/ with
# them, as users do. libarchive-dev: the daemon's zip archives; unzip:
# t_archive checks them with unzip -t. man-db (with groff-base and col): t_cli_help renders
# the manual pages and looks them up. libjs-cryptojs: vdfsd embeds its SHA-256
# at build time, the dashboard's fallback where crypto.subtle is missing.
# chromium, chromium-driver, python3-selenium: t_web and tools/bench-web.sh
# drive the dashboard in headless Chromium through chromedriver.
# libzstd-dev: chunks and results travel as zstd frames (lib/zframe.c); zstd
# (the command): t_transfer_zstd decodes a chunk the daemon sends so.
# clang, libclang-rt-14-dev (libFuzzer and the sanitizers' runtimes for
# clang 14, Debian 12's): tools/fuzz.sh and t_fuzz_smoke build the
# harnesses in fuzz/ with them.
packages=(libfuse3-dev fuse3 librocksdb-dev libxxhash-dev libcurl4-openssl-dev
	libmicrohttpd-dev libjansson-dev libcmocka-dev cmake pkg-config gcc make curl
	libgnutls28-dev bubblewrap openssl libpari-dev pari-gp
	graphviz time rsync nano vim-tiny man-db libarchive-dev unzip
	libjs-cryptojs chromium chromium-driver python3-selenium libzstd-dev zstd
	clang libclang-rt-14-dev)

missing=()
for p in "${packages[@]}"; do
	if ! dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed'; then
		missing+=("$p")
	fi
done

if [ "${#missing[@]}" -gt 0 ]; then
	if [ "$(id -u)" = 0 ]; then
		sudo=()
	elif command -v sudo >/dev/null; then
		sudo=(sudo)
	else
		echo "setup.sh: missing packages (${missing[*]}); run as root or install sudo" >&2
		exit 1
	fi
	echo "setup.sh: installing ${missing[*]}" >&2
	log="$(mktemp "${TMPDIR:-/tmp}/vdfs-apt.XXXXXX")"
	if ! { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			--no-install-recommends "${missing[@]}"; } >"$log" 2>&1 </dev/null; then
		tail -n 40 "$log" >&2
		echo "setup.sh: package installation failed (full log: $log)" >&2
		exit 1
	fi
	rm -f "$log"
fi

if [ ! -e /dev/fuse ]; then
	echo "setup.sh: warning: /dev/fuse is missing; vdfsd cannot mount here" >&2
fi

[ "$deps_only" = 1 ] && exit 0

if [ -z "$build_dir" ]; then
	if [ "$sanitize" = 1 ]; then build_dir="$root/build-san"; else build_dir="$root/build"; fi
fi
cmake_args=(-S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo)
if [ "$sanitize" = 1 ]; then
	cmake_args+=(-DVDFS_SANITIZE=ON)
fi

log="$(mktemp "${TMPDIR:-/tmp}/vdfs-build.XXXXXX")"
if ! { cmake "${cmake_args[@]}" && cmake --build "$build_dir" -j"$(nproc)"; } >"$log" 2>&1 </dev/null; then
	# Show the first errors, then the end of the log.
	grep -n -m 20 -E 'error|Error|undefined reference' "$log" >&2 || true
	echo "..." >&2
	tail -n 40 "$log" >&2
	echo "setup.sh: build in $build_dir failed (full log: $log)" >&2
	exit 1
fi
rm -f "$log"

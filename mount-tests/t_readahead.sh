#!/usr/bin/env bash
# t_readahead: a version's input and result.csv read through the mount in
# ways that stress a handle's extent slots and the decode-ahead workers
# (fs/view_fhread.c): 8 threads of random preads on one descriptor, front
# to back, back to front, leaps, two descriptors alternating; every byte
# compared with the file copied in (readahead.py). The function is `cat`
# with 4 MiB units, so result.csv is the input again, in many extents of
# unit outputs, and input is many chunks; both are compressed in the store.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"
vd_start_daemon
vd_start_executor e1 --slots 2
T="$VD_MNT/tasks/ra"
mkdir "$T"
printf 'unit_size = 4M\n' >"$T/config"
printf '#!/bin/sh\nexec cat\n' >"$T/function"
vd_gen_text "$VD_WORK/src.txt" 48000000 11
cp "$VD_WORK/src.txt" "$T/data/src.txt"
V="$T/$(readlink "$T/latest")"
vd_wait_status "$V" done
cmp "$V/input" "$VD_WORK/src.txt" || vd_fail "input is not the file copied in"
cmp "$V/result.csv" "$VD_WORK/src.txt" || vd_fail "result.csv of cat is not the file copied in"
vd_ok "input and result.csv read front to back equal the file"
for f in input result.csv; do
	out="$(python3 "$(dirname "$0")/readahead.py" "$V/$f" "$VD_WORK/src.txt" 2>&1)" ||
		vd_fail "$f: $out"
	vd_note "$f: $(echo "$out" | tr '\n' ';')"
done
vd_check_daemon
vd_ok "input and result.csv: random preads from 8 threads, backward, leaping and two descriptors all read the file's bytes"

#!/usr/bin/env bash
# bench-versions.sh - what versioning costs in vdfs: a text file of SIZE MiB
# submitted VERSIONS times under one name, each version made from the one
# before by EDITS random line edits (a changed, inserted or deleted line
# each), with a word-count function that logs every invocation.
#
#   tools/bench-versions.sh [SIZE_MIB] [VERSIONS] [EDITS]   (200, 10, 10)
#
# Environment: VDFS_BUILD (default build/), CHUNK (vdfsd --chunk-size of
# the new store; default the store's own, 1 MiB), UNIT (the task's
# unit_size, default 2M), EXECUTORS (default 2), TMPDIR (work directory).
#
# Prints, per version, the bytes sealing it added to the store, the units
# computed against the units it has, the cp time (sealing included: cp
# returns once the version is durable) and the run's time as the daemon
# measured it (first lease to result); then the totals against what keeping
# VERSIONS whole copies and recomputing everything would cost. It runs the
# real vdfsd, mount and executors through the mount tests' harness
# (mount-tests/lib.sh), which also stops them and cleans up.
set -euo pipefail

size_mib=${1:-200}
nver=${2:-10}
edits=${3:-10}
unit=${UNIT:-2M}
nexec=${EXECUTORS:-2}
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../mount-tests/lib.sh
. "$root/mount-tests/lib.sh"
VD_TEST_NAME=bench-versions
vd_setup "${VDFS_BUILD:-$root/build}" >&2
IN="$VD_WORK/in"
COUNTER="$VD_WORK/counter"
: >"$COUNTER"

meta_int() {   # VERSION_DIR KEY: a top-level integer of meta.json
	sed -n "s/^  \"$2\": \\([0-9]*\\),*\$/\\1/p" "$1/meta.json" | head -n 1
}
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

echo "generating a ${size_mib} MiB text..." >&2
vd_gen_text "$IN/v1.txt" $((size_mib * 1024 * 1024)) 20260303 3000
daemon_args=()
[ -n "${CHUNK:-}" ] && daemon_args+=(--chunk-size "$CHUNK")
vd_start_daemon "${daemon_args[@]}" >&2
T="$VD_MNT/tasks/bench"
mkdir "$T"
cat >"$IN/wc.sh" <<EOF
#!/bin/sh
echo "\$VDFS_DATA_ID \$VDFS_UNIT" >>'$COUNTER'
exec awk '{ for (i = 1; i <= NF; i++) n[\$i]++ } END { for (w in n) print w "," n[w] }'
EOF
chmod +x "$IN/wc.sh"
cp "$IN/wc.sh" "$T/function"
printf 'reduce = sum\nunit_size = %s\n' "$unit" >"$T/config"
for ((e = 1; e <= nexec; e++)); do vd_start_executor "e$e" >&2; done

rows=()
stored_total=0
logical_total=0
edit_units=0
edit_total_units=0
edit_run_ms=0
edit_cp_ms=0
for ((i = 1; i <= nver; i++)); do
	if ((i > 1)); then
		vd_edit_lines "$IN/v$((i - 1)).txt" "$IN/v$i.txt" $((7000 + i)) "v$i" "$edits"
		rm -f "$IN/v$((i - 1)).txt"
	fi
	before="$(vd_versions "$T")"
	k=$(wc -l <"$COUNTER")
	t0=$(date +%s%N)
	cp "$IN/v$i.txt" "$T/data/text.txt"
	cp_ms=$((($(date +%s%N) - t0) / 1000000))
	id="$(vd_new_version "$T" "$before")"
	vd_wait_status "$T/versions/$id" done >&2
	ran=$(($(wc -l <"$COUNTER") - k))
	units=$(meta_int "$T/versions/$id" units)
	run_ms=$(meta_int "$T/versions/$id" duration_ms)
	stored=$(meta_int "$T/versions/$id" stored)
	size=$(meta_int "$T/versions/$id" size)
	stored_total=$((stored_total + stored))
	logical_total=$((logical_total + size))
	if ((i == 1)); then
		full_units=$units full_run_ms=$run_ms full_cp_ms=$cp_ms size1=$size
	else
		edit_units=$((edit_units + ran))
		edit_total_units=$((edit_total_units + units))
		edit_run_ms=$((edit_run_ms + run_ms))
		edit_cp_ms=$((edit_cp_ms + cp_ms))
	fi
	rows+=("$(printf 'v%-7s %12s %8s %10s %10s' "$i" "$(mib "$stored")" "$ran/$units" \
		"$(awk -v m="$cp_ms" 'BEGIN { printf "%.2f s", m / 1000 }')" \
		"$(awk -v m="$run_ms" 'BEGIN { printf "%.2f s", m / 1000 }')")")
done
n_edit=$((nver - 1))
chunk_desc="${CHUNK:-1048576 (default)}"

echo
echo "vdfs versioning: $nver versions of a $size_mib MiB text, $edits random line edits each"
echo "chunk size $chunk_desc, unit_size $unit, $nexec executors, $(nproc) CPUs"
echo
printf '%-8s %12s %8s %10s %10s\n' version "new stored" units "cp+seal" run
printf '%s\n' "${rows[@]}"
echo
printf '%-34s %16s %22s %8s\n' "" vdfs "whole copies / full" ratio
printf '%-34s %16s %22s %7.1f%%\n' "stored bytes, $nver versions" "$(mib "$stored_total")" \
	"$(mib "$logical_total")" "$(awk -v a="$stored_total" -v b="$logical_total" 'BEGIN { print 100 * a / b }')"
printf '%-34s %16s %22s\n' "  as a multiple of one version" \
	"$(awk -v a="$stored_total" -v b="$size1" 'BEGIN { printf "%.2f x", a / b }')" "$nver.00 x"
printf '%-34s %16s %22s %7.1f%%\n' "units computed per edited version" \
	"$(awk -v a="$edit_units" -v n="$n_edit" 'BEGIN { printf "%.1f", a / n }')" \
	"$(awk -v a="$edit_total_units" -v n="$n_edit" 'BEGIN { printf "%.1f", a / n }')" \
	"$(awk -v a="$edit_units" -v b="$edit_total_units" 'BEGIN { print 100 * a / b }')"
printf '%-34s %16s %22s %7.1f%%\n' "run time per edited version" \
	"$(awk -v a="$edit_run_ms" -v n="$n_edit" 'BEGIN { printf "%.2f s", a / n / 1000 }')" \
	"$(awk -v a="$full_run_ms" 'BEGIN { printf "%.2f s", a / 1000 }')" \
	"$(awk -v a="$edit_run_ms" -v n="$n_edit" -v b="$full_run_ms" 'BEGIN { print 100 * a / n / b }')"
printf '%-34s %16s %22s %7.1f%%\n' "cp+seal + run per edited version" \
	"$(awk -v a="$((edit_run_ms + edit_cp_ms))" -v n="$n_edit" 'BEGIN { printf "%.2f s", a / n / 1000 }')" \
	"$(awk -v a="$((full_run_ms + full_cp_ms))" 'BEGIN { printf "%.2f s", a / 1000 }')" \
	"$(awk -v a="$((edit_run_ms + edit_cp_ms))" -v n="$n_edit" -v b="$((full_run_ms + full_cp_ms))" 'BEGIN { print 100 * a / n / b }')"
echo "(the full run computed $full_units units; \"whole copies / full\" is v1's cost for the times)"

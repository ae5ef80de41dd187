#!/usr/bin/env bash
# make-input.sh OUT [FROM]: the rows to forecast, for the example task: one
# per half-hour of the last 14 days of the `taylor` series (from FROM,
# default 2000-08-14T00:00, to its end), each with the loads 1, 7 and 8 days
# earlier and, last, the actual load (which the forecaster ignores; it is
# there to score the forecasts). Fetches the series first if needed
# (tools/data-taylor.sh).
#
# Environment: VDFS_BIN (default build/bin), VDFS_DATA_DIR (default
# build/data), as for tools/data-taylor.sh.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
out="${1:?usage: make-input.sh OUT [FROM]}"
from="${2:-2000-08-14T00:00}"
bin="${VDFS_BIN:-$root/build/bin}"
data="${VDFS_DATA_DIR:-$root/build/data}/taylor.csv"
[ -x "$bin/vdfs-forecast" ] || { echo "make-input.sh: no $bin/vdfs-forecast (build first, or set VDFS_BIN)" >&2; exit 1; }
"$root/tools/data-taylor.sh" "$data"
"$bin/vdfs-forecast" features --from "$from" <"$data" >"$out"

#!/usr/bin/env bash
# tools/vdfs-slurm.sh - lend a Slurm cluster's nodes to a vdfsd: submit a
# job array (sbatch --array=1-N) whose every task runs one vdfs-executor
# that leaves by itself once there is no work (--idle-exit).
#
#   tools/vdfs-slurm.sh --server URL --token-file FILE [options] [-- SBATCH ARGS...]
#
#   --count N          array tasks (executors), default 4
#   --level N          executor level, default 1
#   --slots N          units per executor (and --cpus-per-task), default 1
#   --idle-exit S      seconds without work before an executor leaves, default 300
#   --time T           Slurm time limit, default 12:00:00
#   --executor PATH    vdfs-executor on the nodes (default: the one beside
#                      this script's build, build/bin/vdfs-executor)
#   --pin P, --cacert F, --insecure   passed on to the executors
#   --print            print the job script instead of submitting it
#
# The token file must be readable on the nodes (a shared home, say): it is
# the enrollment token, exchanged by each executor for its own. Executors
# are named slurm-<job>-<task>; each caches in $TMPDIR of its node.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
server="" token="" count=4 level=1 slots=1 idle=300 time_limit=12:00:00
exe="$root/build/bin/vdfs-executor" print=0
extra=()
sbatch_args=()
die() { echo "vdfs-slurm.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
	case "$1" in
	--server) server="${2:?}"; shift ;;
	--token-file) token="${2:?}"; shift ;;
	--count) count="${2:?}"; shift ;;
	--level) level="${2:?}"; shift ;;
	--slots) slots="${2:?}"; shift ;;
	--idle-exit) idle="${2:?}"; shift ;;
	--time) time_limit="${2:?}"; shift ;;
	--executor) exe="${2:?}"; shift ;;
	--pin | --cacert) extra+=("$1" "${2:?}"); shift ;;
	--insecure) extra+=("$1") ;;
	--print) print=1 ;;
	--) shift; sbatch_args=("$@"); break ;;
	-h | --help) sed -n '2,23s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) die "unknown option '$1' (try --help)" ;;
	esac
	shift
done
{ [ -n "$server" ] && [ -n "$token" ]; } || die "--server and --token-file are required"
[[ "$count" =~ ^[1-9][0-9]*$ ]] || die "--count wants a positive number"
[[ "$slots" =~ ^[1-9][0-9]*$ ]] || die "--slots wants a positive number"
[[ "$idle" =~ ^[1-9][0-9]*$ ]] || die "--idle-exit wants seconds"
token="$(cd "$(dirname "$token")" && pwd)/$(basename "$token")"

job="$(mktemp "${TMPDIR:-/tmp}/vdfs-slurm.XXXXXX")"
trap 'rm -f "$job"' EXIT
{
	echo "#!/usr/bin/env bash"
	echo "#SBATCH --job-name=vdfs-executor"
	echo "#SBATCH --array=1-$count"
	echo "#SBATCH --cpus-per-task=$slots"
	echo "#SBATCH --time=$time_limit"
	echo "# One vdfs-executor per array task; it exits 0 after $idle s without work,"
	echo "# and on SIGTERM (scancel, the time limit) it finishes what it runs first."
	printf 'exec %q --server %q --token-file %q --level %q --slots %q --idle-exit %q' \
		"$exe" "$server" "$token" "$level" "$slots" "$idle"
	[ "${#extra[@]}" -eq 0 ] || printf ' %q' "${extra[@]}"
	# shellcheck disable=SC2016
	printf ' --name "slurm-${SLURM_ARRAY_JOB_ID:-0}-${SLURM_ARRAY_TASK_ID:-0}"'
	# shellcheck disable=SC2016
	printf ' --cache "${TMPDIR:-/tmp}/vdfs-executor-cache-$(id -u)"\n'
} >"$job"
if [ "$print" = 1 ]; then
	cat "$job"
	exit 0
fi
command -v sbatch >/dev/null || die "sbatch not found: is this a Slurm login node? (--print shows the job script)"
sbatch "${sbatch_args[@]}" "$job"

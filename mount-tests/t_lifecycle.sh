#!/usr/bin/env bash
# t_lifecycle: SIGTERM drains an executor (it finishes the unit it runs,
# reports it, and exits 0); --idle-exit makes one leave by itself; the job
# script of tools/vdfs-slurm.sh, run here as Slurm would run an array task,
# registers as slurm-<job>-<task>, works and leaves; the cache stays under
# --cache-size, and a restarted executor tells the daemon what it caches.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"

IN="$VD_WORK/in"
HOLD="$VD_WORK/hold"
MARK="$VD_WORK/mark"
vd_start_daemon --chunk-size 4096

# 1. Drain on SIGTERM.
mkdir "$VD_MNT/tasks/drain"
cat >"$VD_MNT/tasks/drain/function" <<FN
#!/bin/sh
touch "$MARK"
i=0
while [ -e "$HOLD" ] && [ "\$i" -lt 1200 ]; do sleep 0.1; i=\$((i + 1)); done
exec cat
FN
seq 1 100 >"$IN/small.txt"
touch "$HOLD"
cp "$IN/small.txt" "$VD_MNT/tasks/drain/data/small.txt"
vd_start_executor d1
start=$SECONDS
until [ -e "$MARK" ]; do
	((SECONDS - start < 60)) || vd_fail "d1 started no unit"
	sleep 0.1
done
pid="${VD_EXEC_PID[d1]}"
kill -TERM "$pid"
sleep 1
kill -0 "$pid" 2>/dev/null || vd_fail "d1 exited on SIGTERM while its unit was still running"
rm -f "$HOLD"
vd_kill_executor d1 TERM
[ "$VD__ST" = 0 ] || vd_fail "d1 exited with status $VD__ST after draining"
vd_wait_status "$VD_MNT/tasks/drain/latest" done 30
grep -q 'executor=d1 exit=0' "$VD_MNT/tasks/drain/latest/log" || vd_fail "the drained unit's result is not d1's"
vd_same "$VD_MNT/tasks/drain/latest/result.csv" "$IN/small.txt" "SIGTERM: d1 finished its unit, reported it, and exited 0"

# 2. --idle-exit.
vd_start_executor idler --idle-exit 2
pid="${VD_EXEC_PID[idler]}"
start=$SECONDS
while kill -0 "$pid" 2>/dev/null; do
	((SECONDS - start < 60)) || vd_fail "idler did not leave with --idle-exit 2"
	sleep 0.2
done
st=0
wait "$pid" || st=$?
unset "VD_EXEC_PID[idler]"
[ "$st" = 0 ] || vd_fail "idler exited with status $st"
grep -q 'leaving (--idle-exit)' "$VD_WORK/exec-idler.log" || vd_fail "idler did not say why it left"
vd_ok "--idle-exit 2: the executor left by itself, status 0"

# 3. The Slurm job script, run as array task 3 of job 77.
mkdir "$VD_MNT/tasks/slurm"
printf '#!/bin/sh\nexec tr a-z A-Z\n' >"$VD_MNT/tasks/slurm/function"
vd_gen_text "$IN/text.txt" 50000 3 200
tr a-z A-Z <"$IN/text.txt" >"$IN/upper.txt"
cp "$IN/text.txt" "$VD_MNT/tasks/slurm/data/text.txt"
"$(dirname "$0")/../tools/vdfs-slurm.sh" --server "$VD_URL" --token-file "$VD_STATE/token" \
	--executor "$VD_BIN/vdfs-executor" --idle-exit 3 --print >"$IN/job.sh"
grep -q '^#SBATCH --array=1-4$' "$IN/job.sh" || vd_fail "the job script has no --array: $(cat "$IN/job.sh")"
st=0
SLURM_ARRAY_JOB_ID=77 SLURM_ARRAY_TASK_ID=3 TMPDIR="$VD_WORK" \
	timeout 120 bash "$IN/job.sh" >"$VD_WORK/exec-slurm.log" 2>&1 </dev/null || st=$?
[ "$st" = 0 ] || vd_fail "the Slurm job script exited with status $st"
vd_wait_status "$VD_MNT/tasks/slurm/latest" done 30
vd_same "$VD_MNT/tasks/slurm/latest/result.csv" "$IN/upper.txt" "the Slurm array task did the work"
[ -e "$VD_MNT/executors/slurm-77-3" ] || vd_fail "no executor slurm-77-3 in $(ls "$VD_MNT/executors")"
vd_ok "the Slurm array task registered as slurm-77-3 and left after 3 idle seconds"

# 4. The cache cap, and what a restarted executor says it holds.
mkdir "$VD_MNT/tasks/cache"
printf '#!/bin/sh\nexec wc -l\n' >"$VD_MNT/tasks/cache/function"
printf 'unit_size = 4K\nreduce = concat\n' >"$VD_MNT/tasks/cache/config"
vd_gen_text "$IN/many.txt" 400000 9 300
cp "$IN/many.txt" "$VD_MNT/tasks/cache/data/many.txt"
# --inline-max 0: chunks this small would otherwise come inside the
# lease, and never be cached.
vd_start_executor cachey --cache-size 64K --inline-max 0
vd_wait_status "$VD_MNT/tasks/cache/latest" done
total="$(awk -F, '{ s += $1 } END { print s }' "$VD_MNT/tasks/cache/latest/result.csv")"
[ "$total" = "$(wc -l <"$IN/many.txt")" ] || vd_fail "the per-unit line counts add up to $total"
bytes="$(find "$VD_WORK/cache-cachey" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')"
vd_note "cache holds $bytes bytes after a run over $(stat -c %s "$IN/many.txt") bytes"
((bytes <= 65536 + 16384)) || vd_fail "the cache holds $bytes bytes, over the 64K cap (plus one pinned chunk)"
grep -q 'cache: evicted' "$VD_WORK/exec-cachey.log" || vd_fail "the executor never evicted"
vd_ok "the cache stayed within --cache-size 64K ($bytes bytes), evicting as it went"
vd_kill_executor cachey
vd_start_executor cachey --cache-size 64K --inline-max 0
start=$SECONDS
until grep -q 'executor cachey registered (level 1, 1 slots, [1-9][0-9]* chunks cached' "$VD_WORK/vdfsd.log"; do
	((SECONDS - start < 30)) || vd_fail "the restarted executor did not report its cached chunks"
	sleep 0.2
done
vd_ok "$(grep -o 'executor cachey registered ([^)]*)' "$VD_WORK/vdfsd.log" | tail -n 1)"

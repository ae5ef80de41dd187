#!/usr/bin/env bash
# t_persistent: tasks with `mode = persistent` (docs/persistent.md) on a
# real daemon with two executors, against what standard tools compute:
#  - the two examples of docs/examples/persistent (bash and Python) count
#    the lines of a ~100-unit input: the sum equals wc -l, and the units
#    ran in one process per slot, not one each;
#  - a persistent function that kills itself (SIGSEGV) on every 50th unit
#    it is given still yields the exact result (it echoes its input: the
#    result is the input, byte for byte), the crashes recorded as failed
#    attempts in the run log;
#  - vdfs-factor and vdfs-count give byte-identical result.csv in
#    persistent and in exec mode (each task's function differs by a
#    comment, so that nothing is reused between them);
#  - a unit over its timeout fails alone: the process is killed, the unit
#    retried in a new process, and the result is still exact.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"

root="$(cd "$(dirname "$0")/.." && pwd)"
IN="$VD_WORK/in"
EX="$root/docs/examples/persistent"

# ~400 KB of numbered lines: with 4 KiB chunks and unit_size = 4K, about
# 100 units.
vd_gen_text "$IN/raw.txt" 400000 7 120
awk '{ printf "%06d %s\n", NR, $0 }' "$IN/raw.txt" >"$IN/lines.txt"
rm -f "$IN/raw.txt"

vd_start_daemon --chunk-size 4096
vd_start_executor e1
vd_start_executor e2

# run_task NAME FUNCTION_FILE CONFIG_TEXT INPUT: a task whose version of
# INPUT runs to done; prints the version directory.
run_task() {
	local T="$VD_MNT/tasks/$1" id
	mkdir "$T"
	cp "$2" "$T/function"
	printf '%s\n' "$3" >"$T/config"
	cp "$4" "$T/data/$(basename "$4")"
	id="$(vd_wait_new_version "$T" "")"
	vd_wait_status "$T/versions/$id" done >&2
	echo "$T/versions/$id"
}
starts() { cat "$VD_WORK"/exec-*.log | grep -c "persistent function .* started for task $1\$" || true; }
units_of() { sed -n 's/^done \([0-9]*\)\/.*/\1/p' "$1/status"; }

# ---- the documented examples ----------------------------------------------
want="lines,$(wc -l <"$IN/lines.txt")"
for ex in lines.sh lines.py; do
	name="ex-${ex/./-}"
	V="$(run_task "$name" "$EX/$ex" "$(cat "$EX/config")
unit_size = 4K" "$IN/lines.txt")"
	got="$(cat "$V/result.csv")"
	[ "$got" = "$want" ] || vd_fail "$ex: result.csv is '$got', wc -l says '$want'"
	n="$(units_of "$V")"
	s="$(starts "$name")"
	vd_note "$ex: $n units in $s processes"
	((n >= 50)) || vd_fail "$ex: only $n units; the input should make about 100"
	((s >= 1 && s <= 2)) || vd_fail "$ex: $s processes started for $n units on 2 one-slot executors"
	vd_ok "$ex (docs/examples/persistent) counts $want over $n units in $s processes"
done

# ---- a function that crashes on every 50th unit it gets ---------------------
cat >"$IN/crash.py" <<'FN'
#!/usr/bin/env python3
# Echoes each unit; dies of SIGSEGV on the 50th, 100th, ... unit it is
# given (counted by this process: a new one starts from 0).
import os, signal, sys
inp, out = sys.stdin.buffer, sys.stdout.buffer
served = 0
while True:
    frame = inp.readline()
    if not frame:
        break
    _, hlen, dlen = frame.split()
    inp.read(int(hlen))
    data = inp.read(int(dlen))
    served += 1
    if served % 50 == 0:
        os.kill(os.getpid(), signal.SIGSEGV)
    out.write(b"0 %d\n%s" % (len(data), data))
    out.flush()
FN
V="$(run_task crash "$IN/crash.py" "mode = persistent
unit_size = 4K
retries = 5" "$IN/lines.txt")"
vd_same "$V/result.csv" "$IN/lines.txt" "a function crashing on every 50th unit: the result is the input, exactly"
crashes="$(grep -c 'signal 11' "$V/log" || true)"
vd_note "$crashes crashes in the run log"
((crashes >= 1)) || vd_fail "no crash recorded in the run log: the 50th unit never came?"
vd_ok "$crashes crashed units were recorded as failed attempts and retried"

# ---- the shipped programs: persistent = exec -------------------------------
"$VD_BIN/vdfs-factor" </dev/null >/dev/null || vd_fail "vdfs-factor is not built"
awk 'BEGIN { for (i = 1; i <= 6000; i++) print (i * 7919) % 1000003 * 1000 + i }' >"$IN/numbers.txt"
for mode in exec persistent; do
	{ cat "$root/docs/examples/factor/function"; echo "# $mode"; } >"$IN/factor-$mode"
	run_task "factor-$mode" "$IN/factor-$mode" "reduce = concat
unit_size = 4K
mode = $mode" "$IN/numbers.txt" >"$IN/factor-$mode.dir"
done
vd_same "$(cat "$IN/factor-persistent.dir")/result.csv" "$(cat "$IN/factor-exec.dir")/result.csv" \
	"vdfs-factor: persistent result.csv = exec result.csv"
[ "$(wc -l <"$(cat "$IN/factor-persistent.dir")/result.csv")" = 6000 ] || vd_fail "vdfs-factor: not 6000 rows"
"$VD_BIN/vdfs-factor" <"$IN/numbers.txt" >"$IN/factor-local.csv"
vd_same "$(cat "$IN/factor-persistent.dir")/result.csv" "$IN/factor-local.csv" \
	"vdfs-factor: persistent result.csv = vdfs-factor run once over the file"

printf '刀光剑影\n山水之间，月下风中花与人\n天心月圆，刀剑无情\n' >"$IN/zh1.txt"
for _ in $(seq 12); do cat "$IN/zh1.txt" "$IN/zh1.txt" "$IN/zh1.txt"; done >"$IN/zh.txt"
for _ in $(seq 4); do cat "$IN/zh.txt"; done >"$IN/zh2.txt"
for _ in $(seq 6); do cat "$IN/zh2.txt"; done >"$IN/zh.txt"
for mode in exec persistent; do
	{ cat "$root/docs/examples/count/function"; echo "# $mode"; } >"$IN/count-$mode"
	run_task "count-$mode" "$IN/count-$mode" "reduce = sum
unit_size = 4K
mode = $mode" "$IN/zh.txt" >"$IN/count-$mode.dir"
done
vd_same "$(cat "$IN/count-persistent.dir")/result.csv" "$(cat "$IN/count-exec.dir")/result.csv" \
	"vdfs-count: persistent result.csv = exec result.csv"
want_dao="$(grep -o '刀' "$IN/zh.txt" | wc -l)"
grep -qx "刀,$want_dao" "$(cat "$IN/count-persistent.dir")/result.csv" ||
	vd_fail "vdfs-count: 刀 is not $want_dao (grep -o): $(head -n 3 "$(cat "$IN/count-persistent.dir")/result.csv")"
vd_ok "vdfs-count persistent: 刀 counted $want_dao times, as grep -o counts"

# ---- a unit over its timeout ------------------------------------------------
# Hangs on the 5th unit a process gets (a new process does not): the
# unit times out, the process is killed, and the retry in a new one works.
cat >"$IN/hang.py" <<'FN'
#!/usr/bin/env python3
import sys, time
inp, out = sys.stdin.buffer, sys.stdout.buffer
served = 0
while True:
    frame = inp.readline()
    if not frame:
        break
    _, hlen, dlen = frame.split()
    inp.read(int(hlen))
    data = inp.read(int(dlen))
    served += 1
    if served == 5:
        time.sleep(3600)
    out.write(b"0 %d\n%s" % (len(data), data))
    out.flush()
FN
head -c 60000 "$IN/lines.txt" | sed '$d' >"$IN/short.txt"
V="$(run_task hang "$IN/hang.py" "mode = persistent
unit_size = 4K
timeout = 2
retries = 5" "$IN/short.txt")"
vd_same "$V/result.csv" "$IN/short.txt" "a unit over its timeout: the result is still exact"
grep -q 'timeout' "$V/log" || vd_fail "no timeout recorded in the run log"
vd_ok "the hung unit timed out, its process was killed and the unit retried"

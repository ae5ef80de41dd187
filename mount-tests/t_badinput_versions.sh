#!/usr/bin/env bash
# t_badinput_versions: what bad input gets, on a store with tiny chunks
# (vdfsd --chunk-size 4096: 1 KiB min, 16 KiB max; the record cap stays
# 64 MiB, fixed by the chunker).
#   - a record over the 64 MiB cap: cp fails (EFBIG), nothing is stored
#     (STATE/packs unchanged, no version), the daemon keeps serving; a 5 MiB
#     record, far over the chunk maximum but under the cap, is accepted;
#   - binary data with format = lines (random bytes, and zeros with no
#     newline at all): stored byte-exact, every byte reaches the function;
#     vdfs diff --lines says "Binary files ... differ";
#   - an empty file: a version with zero units and an empty result;
#   - the function replaced while a run is in flight: that run finishes with
#     the code it started with, and rerun = latest then makes the new code's
#     result under runs/.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"

IN="$VD_WORK/in"
vdfs() { "$VD_BIN/vdfs" "$1" --state "$VD_STATE" "${@:2}"; }
packs() { find "$VD_STATE/packs" -type f -printf '%f %s\n' | LC_ALL=C sort; }
result_is() {   # FILE EXPECTED-TEXT WHAT
	printf '%s\n' "$2" >"$VD_WORK/want.txt"
	vd_same "$1" "$VD_WORK/want.txt" "$3"
}
# Deterministic pseudo-random bytes: AES-CTR of zeros with a fixed key.
random_bytes() {   # FILE BYTES
	head -c "$2" /dev/zero |
		openssl enc -aes-128-ctr -nosalt -K 000102030405060708090a0b0c0d0e0f \
			-iv 00000000000000000000000000000000 >"$1"
}

vd_start_daemon --chunk-size 4096
vd_start_executor e1

# ---- records over the cap --------------------------------------------------
R="$VD_MNT/tasks/rec"
mkdir "$R"
printf '#!/bin/sh\nexec wc -c | awk '"'"'{ print "bytes," $1 }'"'"'\n' >"$IN/bytes.sh"
chmod +x "$IN/bytes.sh"
cp "$IN/bytes.sh" "$R/function"
printf 'reduce = sum\n' >"$R/config"
printf 'short line\n' >"$IN/small.txt"
cp "$IN/small.txt" "$R/data/small.txt"
vd_wait_status "$R/versions/$(vd_versions "$R")" done
# Two short lines, then 65 MiB of 'x' and a newline: a record over the cap
# starting at byte 18.
printf 'first line\nsecond\n' >"$IN/huge.txt"
head -c $((65 * 1024 * 1024)) /dev/zero | tr '\0' x >>"$IN/huge.txt"
printf '\n' >>"$IN/huge.txt"
packs_before="$(packs)"
before="$(vd_versions "$R")"
if cp "$IN/huge.txt" "$R/data/huge.txt" 2>"$VD_WORK/cp.err"; then
	vd_fail "cp of a 65 MiB record succeeded; the cap is 64 MiB"
fi
grep -q "File too large" "$VD_WORK/cp.err" || vd_fail "cp failed, but not with EFBIG: $(cat "$VD_WORK/cp.err")"
vd_ok "cp of a 65 MiB record fails: $(head -n 1 "$VD_WORK/cp.err")"
[ "$(vd_versions "$R")" = "$before" ] || vd_fail "the refused record made a version"
[ "$(packs)" = "$packs_before" ] || vd_fail "the refused record changed STATE/packs: $(diff <(echo "$packs_before") <(packs) | head)"
vd_ok "nothing stored: no version, STATE/packs unchanged"
grep -E 'huge\.txt.*(offset|byte) 18[^0-9]' "$VD_WORK/vdfsd.log" >/dev/null ||
	vd_fail "the daemon log does not give the offending record's offset (18) for huge.txt"
vd_ok "the daemon log names the byte offset: $(grep -m 1 -E 'huge\.txt' "$VD_WORK/vdfsd.log" | cut -c 1-200)"
# Still serving: a 5 MiB record (320 x the chunk maximum) is accepted.
head -c $((5 * 1024 * 1024)) /dev/zero | tr '\0' y >"$IN/long.txt"
printf '\nand a short line\n' >>"$IN/long.txt"
cp "$IN/long.txt" "$R/data/long.txt"
idl="$(vd_new_version "$R" "$before")"
cmp -s "$R/versions/$idl/input" "$IN/long.txt" || vd_fail "the 5 MiB record does not read back"
vd_wait_status "$R/versions/$idl" done
result_is "$R/versions/$idl/result.csv" "bytes,$(stat -c %s "$IN/long.txt")" \
	"after the refusal the daemon serves on: a 5 MiB record is stored and computed"
vdfs status >/dev/null || vd_fail "vdfs status failed after the refusal"

# ---- binary data with format = lines ---------------------------------------
B="$VD_MNT/tasks/bin"
mkdir "$B"
cp "$IN/bytes.sh" "$B/function"
printf 'reduce = sum\nformat = lines\nunit_size = 64K\n' >"$B/config"
random_bytes "$IN/rand.bin" $((3 * 1024 * 1024))
head -c $((2 * 1024 * 1024)) /dev/zero >"$IN/zeros.bin"
cp "$IN/rand.bin" "$B/data/rand.bin"
idr="$(vd_versions "$B")"
before="$idr"
cp "$IN/zeros.bin" "$B/data/zeros.bin"
idz="$(vd_new_version "$B" "$before")"
for pair in "$idr:rand.bin" "$idz:zeros.bin"; do
	id="${pair%%:*}"
	f="${pair#*:}"
	cmp -s "$B/versions/$id/input" "$IN/$f" || vd_fail "$f does not read back byte-exact"
	vd_wait_status "$B/versions/$id" done
	result_is "$B/versions/$id/result.csv" "bytes,$(stat -c %s "$IN/$f")" \
		"binary $f with format = lines: stored byte-exact, every byte reached the function"
done
# A changed copy of the random bytes: diff --lines calls it binary.
cp "$IN/rand.bin" "$IN/rand2.bin"
printf 'XYZ' | dd of="$IN/rand2.bin" bs=1 seek=1000000 conv=notrunc status=none
before="$(vd_versions "$B")"
cp "$IN/rand2.bin" "$B/data/rand.bin"
idr2="$(vd_new_version "$B" "$before")"
vdfs diff --lines "$idr" "$idr2" >"$VD_WORK/bin.diff"
grep -q '^Binary files a/rand.bin and b/rand.bin differ$' "$VD_WORK/bin.diff" ||
	vd_fail "vdfs diff --lines of binary versions: $(head -c 300 "$VD_WORK/bin.diff")"
vd_ok "vdfs diff --lines of two binary versions: Binary files ... differ"

# ---- an empty file -----------------------------------------------------------
: >"$IN/empty.txt"
before="$(vd_versions "$R")"
cp "$IN/empty.txt" "$R/data/empty.txt"
ide="$(vd_wait_new_version "$R" "$before" 60)"
vd_wait_status "$R/versions/$ide" done
[ -f "$R/versions/$ide/result.csv" ] && [ ! -s "$R/versions/$ide/result.csv" ] ||
	vd_fail "the empty version's result.csv is missing or not empty"
[ ! -s "$R/versions/$ide/input" ] || vd_fail "the empty version's input is not empty"
grep -q '^  "units": 0,' "$R/versions/$ide/meta.json" ||
	vd_fail "meta.json of the empty version does not say 0 units: $(grep units "$R/versions/$ide/meta.json")"
vd_ok "an empty file: version $ide with 0 units, status done, an empty result.csv"

# ---- the function replaced while a run is in flight ---------------------------
# Every unit logs itself, then waits for a gate file: the test replaces the
# function while a unit is surely running, then opens the gate.
G="$VD_MNT/tasks/gate"
mkdir "$G"
gate_function() {   # FILE FACTOR
	cat >"$1" <<EOF
#!/bin/sh
echo "\$VDFS_UNIT \$VDFS_CODE_ID" >>'$VD_WORK/gate.log'
while [ ! -e '$VD_WORK/gate.open' ]; do sleep 0.1; done
exec awk 'END { print "lines," NR * $2 }'
EOF
	chmod +x "$1"
}
gate_function "$IN/g1.sh" 1
gate_function "$IN/g2.sh" 10
: >"$VD_WORK/gate.log"
cp "$IN/g1.sh" "$G/function"
code1="$(ls "$G/code")"
printf 'reduce = sum\nunit_size = 64K\nrerun = latest\n' >"$G/config"
vd_gen_text "$IN/g.txt" $((1024 * 1024)) 5 300
nl=$(wc -l <"$IN/g.txt")
cp "$IN/g.txt" "$G/data/g.txt"
idg="$(vd_versions "$G")"
for ((i = 0; i < 600; i++)); do
	[ -s "$VD_WORK/gate.log" ] && break
	vd_check_daemon
	sleep 0.1
done
[ -s "$VD_WORK/gate.log" ] || vd_fail "no unit of the gated run started"
[ "$(vd_status_word "$G/versions/$idg/status")" = running ] || vd_fail "the gated run is not running: $(cat "$G/versions/$idg/status")"
cp "$IN/g2.sh" "$G/function"
code2="$(ls "$G/code" | grep -vx "$code1" || true)"
vd_is_id "$code2" || vd_fail "replacing the function made no new code version"
vd_ok "function replaced (code $code1 -> $code2) while unit $(head -n 1 "$VD_WORK/gate.log" | cut -d' ' -f1) of the run is in flight"
touch "$VD_WORK/gate.open"
vd_wait_status "$G/versions/$idg/runs/$code1" done
result_is "$G/versions/$idg/runs/$code1/result.csv" "lines,$nl" \
	"the in-flight run finished with the code it started with"
units1=$(sed -n 's/^  "units": \([0-9]*\),*$/\1/p' "$G/versions/$idg/runs/$code1/meta.json" | head -n 1)
ran1=$(grep -c " $code1\$" "$VD_WORK/gate.log" || true)
((units1 > 1 && ran1 >= units1)) || vd_fail "the first code ran $ran1 times for its run's $units1 units"
vd_ok "all $units1 units of that run ran with code $code1"
for ((i = 0; i < 600; i++)); do
	[ -d "$G/versions/$idg/runs/$code2" ] && break
	vd_check_daemon
	sleep 0.5
done
vd_wait_status "$G/versions/$idg/runs/$code2" done
result_is "$G/versions/$idg/runs/$code2/result.csv" "lines,$((nl * 10))" \
	"rerun = latest: the new code's result under runs/$code2"
result_is "$G/versions/$idg/result.csv" "lines,$((nl * 10))" "result.csv is the newest code's"

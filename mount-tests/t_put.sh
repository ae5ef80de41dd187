#!/usr/bin/env bash
# t_put: submitting from "another machine" (its own HOME, only a URL and a
# token in ~/.config/vdfs/client.conf), with users and roles.
#   - a submitter creates a task (vdfs task create), puts a function and a
#     VD_PUT_MB (200) MB file with --wait: the result it prints is
#     byte-identical to that of a cp of the same file into the mount (in
#     another task), both agree with wc and stat, and both are the same
#     version (same data ID);
#   - the same file with 10 lines edited at scattered places: the daemon's
#     vdfs_http_received_bytes_total grows by under 2 % of the file;
#   - a put killed with -9 half-way, run again, sends only what is missing
#     (the two runs together receive about one file), and the version's
#     input downloads byte-identical;
#   - a tree put is the version cp -r makes;
#   - uploaded but uncommitted chunks survive a gc and commit afterwards;
#   - roles: a reader cannot put (403, role named), a submitter cannot put
#     into another's task or revoke users (403), a revoked token is 401 at
#     once;
#   - bad input (an independent client, upload.py, and raw HTTP): absolute,
#     '..', NUL and control-character paths are 400 with nothing stored, a
#     chunk that does not match its fingerprint is 400 and not stored, a
#     manifest naming chunks not uploaded is 409 with exactly those listed,
#     an oversized body 413; after each a good request succeeds.
# The store is made with --chunk-size 131072: a re-submission sends about
# one chunk per edited place, so 10 edits in 200 MB are under 2 % only with
# chunks of this size (at the default 1 MiB that holds from about 1 GiB up;
# docs/upload.md, tools/bench-put.sh).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"
VDFS="$VD_BIN/vdfs"
MB="${VD_PUT_MB:-200}"
PY=/usr/bin/python3
UP=("$PY" "$(dirname "$0")/upload.py")
vd_start_daemon --chunk-size 131072
vd_start_executor e1 --slots 2

# Users, made by the operator on the daemon's machine.
for u in alice:submitter bob:submitter rita:reader; do
	"$VDFS" user add "${u%%:*}" --role "${u#*:}" --state "$VD_STATE" >"$VD_WORK/${u%%:*}.tok" 2>/dev/null ||
		vd_fail "vdfs user add ${u%%:*}"
done
# A client's home: the server and its token file, nothing else.
home_for() {
	local h="$VD_WORK/home-$1"
	mkdir -p "$h/.config/vdfs"
	cp "$VD_WORK/$1.tok" "$h/.config/vdfs/token"
	printf 'server = %s\ntoken_file = ~/.config/vdfs/token\n' "$VD_URL" >"$h/.config/vdfs/client.conf"
}
for u in alice bob rita; do home_for "$u"; done
as() { # as USER COMMAND...: run a vdfs command as that user's client
	local u="$1"
	shift
	(cd "$VD_WORK/home-$u" && exec env -u VDFS_SERVER -u VDFS_TOKEN_FILE HOME="$VD_WORK/home-$u" \
		XDG_CONFIG_HOME= "$VDFS" "$@")
}
durable() {
	curl -sf -H "Authorization: Bearer $(cat "$VD_STATE/token")" "$VD_URL/metrics" |
		awk '$1 == "vdfs_upload_chunk_bytes_total" { print $2 }'
}
received() {
	curl -sf -H "Authorization: Bearer $(cat "$VD_STATE/token")" "$VD_URL/metrics" |
		awk '$1 == "vdfs_http_received_bytes_total" { print $2 }'
}

# The function: lines and bytes of its unit; reduce = sum adds them up.
printf '#!/bin/sh\nexec awk '"'"'{ n++; b += length($0) + 1 } END { print "bytes," b+0; print "lines," n+0 }'"'"'\n' >"$VD_WORK/lb.sh"
as alice task create lb --function "$VD_WORK/lb.sh" -c reduce=sum -c unit_size=8M >"$VD_WORK/create.out" 2>&1 ||
	vd_fail "vdfs task create: $(cat "$VD_WORK/create.out")"
[ "$(cat "$VD_MNT/tasks/lb/function")" = "$(cat "$VD_WORK/lb.sh")" ] || vd_fail "the function put over HTTP is not the task's"
grep -q '^reduce = sum' "$VD_MNT/tasks/lb/config" || vd_fail "the config put over HTTP: $(cat "$VD_MNT/tasks/lb/config")"
as alice tasks >"$VD_WORK/tasks.out" || vd_fail "vdfs tasks"
grep -q '^lb  *alice' "$VD_WORK/tasks.out" || vd_fail "vdfs tasks does not show lb owned by alice: $(cat "$VD_WORK/tasks.out")"
vd_ok "a submitter made task lb with its function and config over HTTP; vdfs tasks shows it as alice's"

# ---- a big file: put --wait against cp into the mount -------------------
vd_gen_text "$VD_WORK/load.txt" $((MB * 1000000)) 11
size=$(stat -c %s "$VD_WORK/load.txt")
r0=$(received)
as alice put --task lb --wait "$VD_WORK/load.txt" >"$VD_WORK/put1.out" 2>"$VD_WORK/put1.err" ||
	vd_fail "vdfs put --wait: $(cat "$VD_WORK/put1.err")"
r1=$(received)
ID1="$(head -n 1 "$VD_WORK/put1.out" | awk '{ print $1 }')"
vd_is_id "$ID1" || vd_fail "vdfs put printed no ID first: $(head -n 3 "$VD_WORK/put1.out")"
tail -n +2 "$VD_WORK/put1.out" >"$VD_WORK/put1.csv"
vd_note "first put: $size bytes of content, $((r1 - r0)) bytes received; $(tail -n 1 "$VD_WORK/put1.err")"
mkdir "$VD_MNT/tasks/lbcp"
cp "$VD_WORK/lb.sh" "$VD_MNT/tasks/lbcp/function"
printf 'reduce = sum\nunit_size = 8M\n' >"$VD_MNT/tasks/lbcp/config"
cp "$VD_WORK/load.txt" "$VD_MNT/tasks/lbcp/data/load.txt"
IDC="$(readlink "$VD_MNT/tasks/lbcp/latest")"; IDC="${IDC#versions/}"
[ "$IDC" = "$ID1" ] || vd_fail "put made version $ID1, cp of the same bytes $IDC"
vd_wait_status "$VD_MNT/tasks/lbcp/versions/$IDC" done
vd_same "$VD_WORK/put1.csv" "$VD_MNT/tasks/lbcp/versions/$IDC/result.csv" "the result vdfs put --wait printed is the cp run's result, and the same version $ID1"
printf 'bytes,%s\nlines,%s\n' "$size" "$(wc -l <"$VD_WORK/load.txt")" >"$VD_WORK/want.csv"
sort "$VD_WORK/put1.csv" | vd_same /dev/stdin "$VD_WORK/want.csv" "the result agrees with stat and wc -l"
grep -q '"submitted_by": "alice"' "$VD_MNT/tasks/lb/versions/$ID1/meta.json" ||
	vd_fail "meta.json does not say alice submitted it: $(grep submitted "$VD_MNT/tasks/lb/versions/$ID1/meta.json")"

# ---- 10 lines edited: under 2 % sent -----------------------------------
lines=$(wc -l <"$VD_WORK/load.txt")
awk -v n="$lines" 'BEGIN { for (k = 1; k <= 10; k++) at[int(n * k / 11)] = 1 }
	(NR in at) { $0 = "edited line " NR " " $0 } { print }' "$VD_WORK/load.txt" >"$VD_WORK/load2.txt"
[ "$(cmp -l "$VD_WORK/load.txt" "$VD_WORK/load2.txt" 2>/dev/null | wc -l)" -gt 0 ] || vd_fail "the edit changed nothing"
r0=$(received)
as alice put --task lb --name load.txt "$VD_WORK/load2.txt" >"$VD_WORK/put2.out" 2>"$VD_WORK/put2.err" ||
	vd_fail "the second put: $(cat "$VD_WORK/put2.err")"
r1=$(received)
sent=$((r1 - r0))
size2=$(stat -c %s "$VD_WORK/load2.txt")
pct=$(awk -v s="$sent" -v n="$size2" 'BEGIN { printf "%.2f", 100 * s / n }')
vd_note "second put (10 lines edited): $sent of $size2 bytes received ($pct %)"
[ $((sent * 50)) -lt "$size2" ] || vd_fail "10 edited lines sent $sent bytes of $size2 ($pct %), not under 2 %"
ID2="$(awk '{ print $1; exit }' "$VD_WORK/put2.out")"
vd_is_id "$ID2" && [ "$ID2" != "$ID1" ] || vd_fail "the edited file is no new version: $(cat "$VD_WORK/put2.out")"
as alice get "$ID2" --input -o "$VD_WORK/back2.txt" 2>/dev/null || vd_fail "vdfs get --input of the edited version"
cmp -s "$VD_WORK/back2.txt" "$VD_WORK/load2.txt" || vd_fail "the edited version's input is not the edited file"
vd_ok "10 edited lines: $pct % of the file received (vdfs_http_received_bytes_total); the version holds the edited file"

# ---- kill -9 half-way, then again ----------------------------------------
# Killed as soon as its first batch of chunks is durable (a batch is
# about 16 MiB; over loopback the whole file takes a second or two).
vd_gen_text "$VD_WORK/other.txt" $((MB * 1000000)) 23
osize=$(stat -c %s "$VD_WORK/other.txt")
r0=$(received)
d0=$(durable)
# Not through as(): a function run in the background is a shell of its
# own, and $! would be that shell, not vdfs.
(cd "$VD_WORK/home-alice" && exec env -u VDFS_SERVER -u VDFS_TOKEN_FILE HOME="$VD_WORK/home-alice" \
	XDG_CONFIG_HOME= "$VDFS" put --task lb "$VD_WORK/other.txt") >"$VD_WORK/put3.out" 2>"$VD_WORK/put3.err" &
pp=$!
for ((i = 0; i < 6000; i++)); do
	[ "$(durable)" -gt "$d0" ] && break
	vd__alive "$pp" || break
done
kill -9 "$pp" 2>/dev/null || vd_fail "vdfs put ended before it could be killed half-way (raise VD_PUT_MB)"
wait "$pp" 2>/dev/null || true
r1=$(received)
[ $((r1 - r0)) -lt "$osize" ] || vd_fail "the put had sent everything ($((r1 - r0)) bytes) before the kill"
as alice put --task lb "$VD_WORK/other.txt" >"$VD_WORK/put4.out" 2>"$VD_WORK/put4.err" ||
	vd_fail "the put after kill -9: $(cat "$VD_WORK/put4.err")"
r2=$(received)
vd_note "kill -9 after $((r1 - r0)) bytes received; the second run received $((r2 - r1)) (chunks: $(($(durable) - d0)) in both); the file is $osize"
# Together about one file: what the first run sent durably is not sent
# again (a batch cut by the kill is; 16 MiB and the manifests of slack).
[ $((r2 - r0)) -lt $((osize + 20 * 1048576)) ] || vd_fail "the runs together received $((r2 - r0)) bytes for a $osize-byte file: the second sent again what the first had"
[ $((r2 - r1)) -lt $((osize - (r1 - r0) + 20 * 1048576)) ] || vd_fail "the second run received $((r2 - r1)) bytes"
ID3="$(awk '{ print $1; exit }' "$VD_WORK/put4.out")"
vd_is_id "$ID3" || vd_fail "no ID from the resumed put"
curl -sf -H "Authorization: Bearer $(cat "$VD_WORK/rita.tok")" -o "$VD_WORK/back3.txt" \
	"$VD_URL/v1/tasks/lb/versions/$ID3/input" || vd_fail "GET input of the resumed version"
cmp -s "$VD_WORK/back3.txt" "$VD_WORK/other.txt" || vd_fail "the resumed version's input is not the file"
vd_ok "kill -9 part-way ($((r1 - r0)) of $osize bytes), then again: $((r2 - r1)) more received, the version is complete"

# ---- a tree: the version cp -r makes --------------------------------------
S="$VD_WORK/novels"
mkdir -p "$S/武侠/金庸" "$S/empty" "$S/ro"
printf '刀光剑影\n剑\n' >"$S/武侠/金庸/书.txt"
head -c 3000000 "$VD_WORK/load.txt" >"$S/武侠/big.txt"
printf 'x\n' >"$S/ro/f"
chmod 0700 "$S/ro"
chmod 0600 "$S/武侠/big.txt"
ln -s 武侠/金庸/书.txt "$S/link"
as alice put --task lb "$S" >"$VD_WORK/put5.out" 2>"$VD_WORK/put5.err" || vd_fail "put of a tree: $(cat "$VD_WORK/put5.err")"
IDT="$(awk '{ print $1; exit }' "$VD_WORK/put5.out")"
cp -r "$S" "$VD_MNT/tasks/lbcp/data/novels"
for ((i = 0; i < 100; i++)); do
	t="$(readlink "$VD_MNT/tasks/lbcp/latest")"
	[ "${t#versions/}" != "$IDC" ] && break
	sleep 0.2
done
t="$(readlink "$VD_MNT/tasks/lbcp/latest")"
[ "${t#versions/}" = "$IDT" ] || vd_fail "put of a tree made $IDT, cp -r of it ${t#versions/}"
vd_ok "a tree (UTF-8 names, an empty dir, modes 0700 and 0600, a symlink) put is the version cp -r makes"

# ---- uploaded, not committed: gc keeps it --------------------------------
vd_gen_text "$VD_WORK/late.txt" 2000000 31
"${UP[@]}" "$VD_URL" "$VD_WORK/alice.tok" send "$VD_WORK/late.txt" >"$VD_WORK/late.json" || vd_fail "upload.py send"
"$VDFS" gc --state "$VD_STATE" >"$VD_WORK/gc.out" 2>&1 || vd_fail "vdfs gc: $(cat "$VD_WORK/gc.out")"
$PY -c 'import json,sys; m=json.load(open(sys.argv[1])); m["name"]="late.txt"; json.dump(m, open(sys.argv[2], "w"))' \
	"$VD_WORK/late.json" "$VD_WORK/late.commit"
out="$("${UP[@]}" "$VD_URL" "$VD_WORK/alice.tok" raw POST /v1/tasks/lb/versions "$VD_WORK/late.commit")"
[ "${out%% *}" = 200 ] || vd_fail "committing chunks uploaded before a gc: $out"
vd_ok "chunks uploaded but not committed survive a gc, and commit after it"

# ---- roles -------------------------------------------------------------------
printf 'r\n' >"$VD_WORK/r.txt"
if as rita put --task lb "$VD_WORK/r.txt" >/dev/null 2>"$VD_WORK/rita.err"; then
	vd_fail "a reader could put"
fi
grep -q 'reader' "$VD_WORK/rita.err" || vd_fail "the reader's refusal does not name the role: $(cat "$VD_WORK/rita.err")"
if as bob put --task lb "$VD_WORK/r.txt" >/dev/null 2>"$VD_WORK/bob.err"; then
	vd_fail "bob put into alice's task"
fi
grep -q 'owned by alice' "$VD_WORK/bob.err" || vd_fail "bob's refusal: $(cat "$VD_WORK/bob.err")"
if as bob user revoke alice >/dev/null 2>"$VD_WORK/bob2.err"; then
	vd_fail "a submitter revoked a user"
fi
grep -q '403\|submitter may not' "$VD_WORK/bob2.err" || vd_fail "bob's revoke refusal: $(cat "$VD_WORK/bob2.err")"
"$VDFS" user revoke bob --state "$VD_STATE" >/dev/null || vd_fail "revoking bob"
st=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(cat "$VD_WORK/bob.tok")" "$VD_URL/v1/upload")
[ "$st" = 401 ] || vd_fail "a revoked token got $st, not 401"
vd_ok "a reader cannot put (403, role named); a submitter cannot put into another's task or revoke (403); a revoked token is 401"

# ---- bad input -----------------------------------------------------------
raw() { "${UP[@]}" "$VD_URL" "$VD_WORK/alice.tok" raw "$@"; }
nver() { ls "$VD_MNT/tasks/lb/versions" | wc -l; }
good() { # the next good request succeeds
	local o
	o="$(raw GET /v1/upload)"
	[ "${o%% *}" = 200 ] || vd_fail "after $1, a good request got: $o"
}
printf 'hello\n' >"$VD_WORK/h.txt"
hfp=$(sha256sum "$VD_WORK/h.txt" | cut -c1-64)
{ printf '%s 6\n' "$hfp"; cat "$VD_WORK/h.txt"; } >"$VD_WORK/h.frames"
o="$(raw POST /v1/chunks "$VD_WORK/h.frames")"
[ "${o%% *}" = 200 ] || vd_fail "uploading one good chunk: $o"
n0=$(nver)
for p in '/etc/passwd' 'a/../b' '../b' 'a//b' './a' 'a/.' "$(printf 'a\tb')" 'a\u0000b' 'a\u0001b' ''; do
	$PY -c 'import json,sys; p=json.loads("\"" + sys.argv[1] + "\"", strict=False); print(json.dumps({"name": "bad", "kind": "tree", "files": [{"path": p, "type": "file", "size": 6, "chunks": [sys.argv[2]]}]}))' \
		"$p" "$hfp" >"$VD_WORK/bad.json"
	o="$(raw POST /v1/tasks/lb/versions "$VD_WORK/bad.json")"
	[ "${o%% *}" = 400 ] || vd_fail "a tree path '$p' got: $o"
	good "path '$p'"
done
[ "$(nver)" = "$n0" ] || vd_fail "a refused manifest made a version"
vd_ok "tree paths absolute, with '..', '.', an empty component, a tab, NUL, \\u0001 or empty: 400, nothing stored"

{ printf '%s 6\n' "$(printf 'other\n' | sha256sum | cut -c1-64)"; cat "$VD_WORK/h.txt"; } >"$VD_WORK/mismatch"
o="$(raw POST /v1/chunks "$VD_WORK/mismatch")"
[ "${o%% *}" = 400 ] || vd_fail "a chunk that does not match its fingerprint got: $o"
mfp=$(printf 'other\n' | sha256sum | cut -c1-64)
printf '{"fingerprints": ["%s"]}' "$mfp" >"$VD_WORK/q.json"
o="$(raw POST /v1/chunks/missing "$VD_WORK/q.json")"
case "$o" in *"$mfp"*) ;; *) vd_fail "a mismatched chunk was stored: $o" ;; esac
good "a fingerprint mismatch"
for f in 'zz 3\nabc' "$hfp 99\nhello\n" "$hfp\nhello\n" "$hfp 0\n" "$hfp -1\nhello\n"; do
	printf "$f" >"$VD_WORK/badframe"
	o="$(raw POST /v1/chunks "$VD_WORK/badframe")"
	[ "${o%% *}" = 400 ] || vd_fail "a bad frame got: $o"
	good "a bad frame"
done
vd_ok "a chunk that does not match its fingerprint, and bad or short frames: 400, not stored"

f1=$(printf 'never1\n' | sha256sum | cut -c1-64)
f2=$(printf 'never2\n' | sha256sum | cut -c1-64)
printf '{"name": "m.txt", "kind": "file", "size": 20, "chunks": ["%s", "%s", "%s", "%s"]}' "$f1" "$hfp" "$f2" "$f1" >"$VD_WORK/m.json"
o="$(raw POST /v1/tasks/lb/versions "$VD_WORK/m.json")"
[ "${o%% *}" = 409 ] || vd_fail "a manifest with chunks not uploaded got: $o"
got=$(printf '%s' "${o#* }" | $PY -c 'import json,sys; print(" ".join(json.load(sys.stdin)["missing"]))')
[ "$got" = "$f1 $f2" ] || vd_fail "409 listed '$got', not the two missing chunks"
good "a 409"
[ "$(nver)" = "$n0" ] || vd_fail "a 409 made a version"
# A body declared over the cap: answered before it is sent.
o="$($PY - "$VD_URL" "$(cat "$VD_WORK/alice.tok")" <<'EOF'
import socket, sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
s = socket.create_connection((u.hostname, u.port))
s.sendall(("POST /v1/chunks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
           "Content-Length: 200000000\r\n\r\n" % sys.argv[2]).encode())
print(s.recv(4096).split(b"\r\n")[0].decode())
EOF
)"
case "$o" in *" 413 "*) ;; *) vd_fail "a 200 MB chunk batch got: $o" ;; esac
good "a 413"
vd_ok "a manifest naming chunks not uploaded: 409 listing exactly them; a body over the limit: 413; each time the next request succeeds"

#!/usr/bin/env bash
# t_tls: vdfsd --tls-cert/--tls-key with a self-signed certificate made by
# openssl. An executor that pins the key (the pin computed by openssl, and
# the one vdfsd writes to STATE/tls-pin, must agree) runs the work; one
# with --cacert does too; one with a wrong pin exits 1 with a clear message
# and nothing done. Plain HTTP on an address other than loopback is refused
# without --insecure, by vdfsd and by the executor, before any connection.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
vd_setup "${1:-}"
command -v openssl >/dev/null || vd_fail "openssl is not installed (tools/setup.sh installs it)"

IN="$VD_WORK/in"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj "/CN=vdfs test" -addext "subjectAltName=IP:127.0.0.1" \
	-keyout "$IN/key.pem" -out "$IN/cert.pem" 2>/dev/null
PIN="sha256//$(openssl x509 -in "$IN/cert.pem" -pubkey -noout |
	openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64)"
vd_note "pin $PIN"

# Refusals first: they happen before anything listens or connects.
if out="$("$VD_BIN/vdfsd" --foreground --state "$VD_WORK/state2" --listen 0.0.0.0:0 "$VD_MNT" 2>&1)"; then
	vd_fail "vdfsd served plain HTTP on 0.0.0.0 without --insecure"
fi
case "$out" in *"--insecure"*) vd_ok "vdfsd refuses plain HTTP on 0.0.0.0: $out" ;;
*) vd_fail "vdfsd refused 0.0.0.0 without saying why: $out" ;; esac
if out="$("$VD_BIN/vdfs-executor" --server http://0.0.0.0:9 --token-file /dev/null 2>&1)"; then
	vd_fail "the executor used plain HTTP to 0.0.0.0 without --insecure"
fi
case "$out" in *"--insecure"*) vd_ok "the executor refuses plain HTTP off loopback: $out" ;;
*) vd_fail "the executor refused without saying why: $out" ;; esac

vd_start_daemon --tls-cert "$IN/cert.pem" --tls-key "$IN/key.pem"
case "$VD_URL" in https://*) ;; *) vd_fail "url is not https: $VD_URL" ;; esac
[ "$(cat "$VD_STATE/tls-pin")" = "$PIN" ] || vd_fail "STATE/tls-pin is $(cat "$VD_STATE/tls-pin"), openssl says $PIN"
vd_ok "vdfsd serves https and its pin matches openssl's"
if curl -sf -o /dev/null -H "Authorization: Bearer $(cat "$VD_STATE/token")" "$VD_URL/v1/status"; then
	vd_fail "curl trusted the self-signed certificate without being told to"
fi
curl -sf -o /dev/null --pinnedpubkey "$PIN" -k -H "Authorization: Bearer $(cat "$VD_STATE/token")" \
	"$VD_URL/v1/status" || vd_fail "curl with the pin could not reach /v1/status"
"$VD_BIN/vdfs" status --state "$VD_STATE" >/dev/null || vd_fail "vdfs status --state over TLS failed"
vd_ok "curl refuses the unknown certificate, accepts it pinned; vdfs status pins it from STATE"

mkdir "$VD_MNT/tasks/t"
printf '#!/bin/sh\nawk '"'"'{ print $1 * 3 }'"'"'\n' >"$VD_MNT/tasks/t/function"
seq 1 5000 >"$IN/nums.txt"
awk '{ print $1 * 3 }' "$IN/nums.txt" >"$IN/expected.csv"

BAD="sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
if out="$("$VD_BIN/vdfs-executor" --server "$VD_URL" --token-file "$VD_STATE/token" \
	--name wrongpin --cache "$VD_WORK/cache-wrong" --pin "$BAD" 2>&1 </dev/null)"; then
	vd_fail "an executor with a wrong pin did not fail"
fi
case "$out" in *"not trusted"*"does not match --pin"*) vd_ok "a wrong pin: $(echo "$out" | grep 'not trusted')" ;;
*) vd_fail "a wrong pin failed without a clear message: $out" ;; esac
[ ! -e "$VD_MNT/executors/wrongpin" ] || vd_fail "the executor with a wrong pin registered"

cp "$IN/nums.txt" "$VD_MNT/tasks/t/data/nums.txt"
vd_start_executor pinned --pin "$PIN"
vd_wait_status "$VD_MNT/tasks/t/latest" done
vd_same "$VD_MNT/tasks/t/latest/result.csv" "$IN/expected.csv" "an executor pinning the key ran the work over TLS"
vd_kill_executor pinned
seq 5001 8000 >>"$IN/nums.txt"
awk '{ print $1 * 3 }' "$IN/nums.txt" >"$IN/expected.csv"
cp "$IN/nums.txt" "$VD_MNT/tasks/t/data/nums.txt"
vd_start_executor withca --cacert "$IN/cert.pem"
vd_wait_status "$VD_MNT/tasks/t/latest" done
vd_same "$VD_MNT/tasks/t/latest/result.csv" "$IN/expected.csv" "an executor trusting the certificate as its CA ran the work"

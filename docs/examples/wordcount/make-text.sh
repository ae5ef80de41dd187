#!/usr/bin/env bash
# make-text.sh OUT [BYTES]: write BYTES (default 8 MiB) of deterministic
# English-like prose to OUT: sentences drawn from a list of common words,
# a few very frequent and many rare, wrapped into paragraphs. The same bytes
# on every machine (a Park-Miller generator in awk).
set -euo pipefail
out="${1:?usage: make-text.sh OUT [BYTES]}"
bytes="${2:-8388608}"
awk -v bytes="$bytes" '
function rnd() { x = (x * 16807) % 2147483647; return x / 2147483647 }
BEGIN {
	x = 20240101
	nw = split("the of and to a in that is was he for it with as his on be at by " \
		"i this had not are but from or have an they which one you were her all she " \
		"there would their we him been has when who will more no if out so said what " \
		"up its about into than them can only other new some could time these two may " \
		"then do first any my now such like our over man me even most made after also " \
		"did many before must through back years where much your way well down should " \
		"because each just those people how too little state good very make world still " \
		"own see men work long get here between both life being under never day same " \
		"another know while last might us great old year off come since against go came " \
		"right used take three small house water river field garden window letter road " \
		"morning evening winter summer city village mountain forest machine engine " \
		"number question answer reason story voice light night stone bread horse ship " \
		"island harbour market table chair door wall paper book page word line song " \
		"friend mother father brother sister child children doctor teacher farmer " \
		"sailor captain king queen soldier stranger neighbour master servant " \
		"walked looked turned spoke opened closed carried wrote read counted waited " \
		"followed listened remembered forgot wondered promised believed answered " \
		"quiet quick slow bright dark cold warm heavy empty full strange simple " \
		"careful patient sudden gentle narrow broad ancient modern distant certain " \
		"again always often almost perhaps together already across along around " \
		"behind beyond during without within toward upon among", W, " ")
	total = 0; line = ""; sent = 0
	while (total < bytes) {
		n = 5 + int(rnd() * 14)
		for (k = 0; k < n; k++) {
			r = rnd()
			w = W[1 + int(nw * r * r)]
			if (k == 0) w = toupper(substr(w, 1, 1)) substr(w, 2)
			if (k == n - 1) w = w "."
			else if (rnd() < 0.06) w = w ","
			if (length(line) + length(w) + 1 > 72) {
				print line; total += length(line) + 1; line = w
			} else
				line = (line == "" ? w : line " " w)
		}
		if (++sent % (4 + int(rnd() * 6)) == 0) {
			print line; print ""; total += length(line) + 2; line = ""
		}
	}
	if (line != "") print line
}' >"$out"

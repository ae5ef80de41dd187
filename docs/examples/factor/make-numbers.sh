#!/usr/bin/env bash
# make-numbers.sh DIR [COUNT] [FILES]: write COUNT (default 1000) lines for
# vdfs-factor into FILES (default 10) files DIR/part-00.txt, part-01.txt, ...
# The same lines on every machine (gp, from pari-gp, with a fixed seed):
#   50 %  balanced semiprimes of 64 to 128 bits (two primes of half the size)
#   15 %  primes of 2 to 128 bits
#   10 %  prime powers
#   10 %  ordinary integers of up to 40 digits, a third of them negative
#   15 %  special lines, in turn: 0, 1, -1, -12, a 10,000-digit number,
#         numbers at the 64-bit edge, signs, spaces, leading zeros, and
#         lines that are not integers ("12a", "1,5", "0x1f", "1e6", "", ...)
# Several small files, copied with `cp -r`, make several units, so that
# executors share the work (a unit is at least one ~1 MiB chunk of a file).
set -euo pipefail
dir="${1:?usage: make-numbers.sh DIR [COUNT] [FILES]}"
count="${2:-1000}"
files="${3:-10}"
command -v gp >/dev/null || { echo "make-numbers.sh: needs gp (apt-get install pari-gp)" >&2; exit 1; }
[ "$count" -ge "$files" ] && [ "$files" -ge 1 ] || { echo "make-numbers.sh: COUNT must be >= FILES >= 1" >&2; exit 2; }
mkdir -p "$dir"
tmp="$(mktemp "${TMPDIR:-/tmp}/make-numbers.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
# gp reads a statement per line unless it is in braces, and compiles a
# braced block whole: rp() must be defined before it.
gp -q -f -D parisizemax=256000000 >"$tmp" <<GP
rp(k) = randomprime([2^(k-1), 2^k - 1]);
{
setrand(20240605);
sp = ["0", "1", "-1", "-12", "BIG", "+84", "  9973  ", "0042", "-0", "12a",
      "1,5", "0x1f", "1e6", "3.0", "--5", "one", "\"7\"", "", "2^61-1",
      "1 000", "-", "+", "42.", "\t+65537\t", "18446744073709551616",
      "18446744073709551557", "9999999999999999999", "-18446744073709551617"];
ns = 0;
for (i = 0, $count - 1,
  r = i % 20;
  if (r < 10,
    b = 64 + random(65); print(rp(b \\ 2) * rp(b - b \\ 2)),
  r < 13,
    print(rp(2 + random(127))),
  r < 15,
    print(rp(2 + random(20))^(2 + random(6))),
  r < 17,
    x = random(10^(1 + random(40))); print(if (r == 16 && i % 3 == 0, -x, x)),
    s = sp[ns % #sp + 1]; ns++;
    if (s == "BIG", print(3 * 2^33216), print(s))));
}
GP
[ "$(wc -l <"$tmp")" = "$count" ] || { echo "make-numbers.sh: gp wrote $(wc -l <"$tmp") lines, expected $count" >&2; exit 1; }
per=$(((count + files - 1) / files))
rm -f "$dir"/part-*.txt
split -l "$per" -d -a 2 --additional-suffix=.txt "$tmp" "$dir/part-"

#!/bin/bash
# Persistent function in bash: counts each unit's lines (docs/persistent.md).
export LC_ALL=C                        # ${#out} counts bytes
while read -r _ hlen dlen; do          # "unit HLEN DLEN"
	head -c "$hlen" >/dev/null         # the NAME=value lines: not needed
	n=$(head -c "$dlen" | wc -l)       # the unit's input (head stops at dlen)
	out="lines,$n"$'\n'
	printf '0 %d\n%s' "${#out}" "$out" # "STATUS LEN" and the output
done

#!/usr/bin/env python3
"""The persistent no-op of the dispatch benches (docs/persistent.md): reads
each frame and answers "0 0" (success, no output)."""
import sys

i, o = sys.stdin.buffer, sys.stdout.buffer
while True:
    h = i.readline()
    if not h:
        break
    _, hlen, dlen = h.split()
    i.read(int(hlen))
    i.read(int(dlen))
    o.write(b"0 0\n")
    o.flush()

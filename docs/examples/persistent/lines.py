#!/usr/bin/env python3
"""Persistent function in Python: counts each unit's lines (docs/persistent.md)."""
import sys

inp, out = sys.stdin.buffer, sys.stdout.buffer
while True:
    frame = inp.readline()                       # b"unit HLEN DLEN\n"
    if not frame:
        break                                    # stdin closed: leave
    _, hlen, dlen = frame.split()
    env = dict(l.split(b"=", 1) for l in inp.read(int(hlen)).splitlines())
    data = inp.read(int(dlen))                   # the unit's input
    answer = b"lines,%d\n" % data.count(b"\n")
    out.write(b"0 %d\n%s" % (len(answer), answer))
    out.flush()

#!/usr/bin/env python3
"""readahead.py FILE REFERENCE - read FILE through one descriptor the ways
that stress vdfs's per-handle extent slots and decode-ahead workers, and
compare every byte with REFERENCE (a native copy):

  - 8 threads, 400 preads each at random offsets and lengths (up to 3 MiB,
    so many span extents) on one shared descriptor;
  - front to back in 1 MiB steps, then back to front, then leaping by
    large strides both ways (the workers' jobs go stale under it);
  - two descriptors of the same file read alternately.

Before each pass the file's page cache is dropped (POSIX_FADV_DONTNEED on
the descriptor), so the reads reach the daemon. Prints one line per pass;
exits 1 at the first difference, naming the offset.
"""
import os
import random
import sys
import threading

path, ref_path = sys.argv[1], sys.argv[2]
with open(ref_path, "rb") as f:
    ref = f.read()
size = len(ref)
failures = []


def check(fd, off, n, what):
    got = os.pread(fd, n, off)
    want = ref[off:off + n]
    if got != want:
        i = next((k for k in range(min(len(got), len(want))) if got[k] != want[k]),
                 min(len(got), len(want)))
        failures.append(f"{what}: pread({n} at {off}) differs at byte {off + i} "
                        f"(got {len(got)} bytes, want {len(want)})")
        return False
    return True


def drop(fd):
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


fd = os.open(path, os.O_RDONLY)
if os.fstat(fd).st_size != size:
    print(f"{path}: {os.fstat(fd).st_size} bytes, the reference {size}")
    sys.exit(1)

# Threads on one descriptor.
drop(fd)


def worker(seed):
    r = random.Random(seed)
    for _ in range(400):
        off = r.randrange(size)
        n = r.randrange(1, 3 << 20)
        if not check(fd, off, n, f"thread {seed}"):
            return


ts = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
for t in ts:
    t.start()
for t in ts:
    t.join()
if failures:
    print(failures[0])
    sys.exit(1)
print("ok 8 threads x 400 random preads on one descriptor")

step = 1 << 20
drop(fd)
for off in range(0, size, step):
    if not check(fd, off, step, "forward"):
        break
drop(fd)
for off in reversed(range(0, size, step)):
    if not check(fd, off, step, "backward"):
        break
drop(fd)
stride = max(step, size // 7)
for k in range(0, 14):
    off = (k * stride) % size if k % 2 == 0 else size - 1 - (k * stride) % size
    if not check(fd, off, 200000, "leaps"):
        break
if failures:
    print(failures[0])
    sys.exit(1)
print("ok front to back, back to front, leaping both ways")

fd2 = os.open(path, os.O_RDONLY)
drop(fd)
a, b = 0, size // 2
while a < size // 2 or b < size:
    if a < size // 2 and not check(fd, a, 300000, "first descriptor"):
        break
    if b < size and not check(fd2, b, 300000, "second descriptor"):
        break
    a += 300000
    b += 300000
os.close(fd2)
os.close(fd)
if failures:
    print(failures[0])
    sys.exit(1)
print("ok two descriptors read alternately")

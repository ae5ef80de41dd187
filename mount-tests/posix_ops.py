#!/usr/bin/env python3
"""posix_ops.py DIR: run a fixed list of file-system calls inside DIR (which
must exist and be empty) and print one line per call: its name and what it
gave (an errno name, or what it returned and the stat fields that matter).

t_posix.sh runs it in a native directory and in a tree in data/ and
compares the two outputs line by line. Only the standard library is used,
so any python3 will do. Every call is made relative to DIR; nothing outside
it is touched.
"""
import errno
import os
import stat
import sys

D = sys.argv[1]
out = []


def p(*parts):
    return os.path.join(D, *parts)


def desc(path, follow=False):
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except OSError as e:
        return "stat " + errno.errorcode[e.errno]
    kind = ("dir" if stat.S_ISDIR(st.st_mode) else "file" if stat.S_ISREG(st.st_mode)
            else "link" if stat.S_ISLNK(st.st_mode) else "fifo" if stat.S_ISFIFO(st.st_mode)
            else "other")
    fields = [kind]
    if kind != "link":
        fields.append("mode=%04o" % stat.S_IMODE(st.st_mode))
    if kind == "file":
        fields.append("size=%d" % st.st_size)
        fields.append("nlink=%d" % st.st_nlink)
    return " ".join(fields)


def run(name, fn, show=None):
    try:
        r = fn()
        res = "ok" if r is None else "ok %s" % (r,)
    except OSError as e:
        res = errno.errorcode.get(e.errno, str(e.errno))
    if show:
        res += " | " + desc(show)
    out.append("%s: %s" % (name, res))


def creat(path, flags, mode=0o644):
    fd = os.open(path, flags, mode)
    os.close(fd)


def write(path, data, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC):
    fd = os.open(path, flags, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


os.umask(0)

# open(2) and its flags
run("create excl rdonly", lambda: creat(p("a"), os.O_CREAT | os.O_EXCL | os.O_RDONLY), p("a"))
run("create excl again", lambda: creat(p("a"), os.O_CREAT | os.O_EXCL | os.O_RDONLY))
run("create excl wronly", lambda: creat(p("b"), os.O_CREAT | os.O_EXCL | os.O_WRONLY), p("b"))
run("create rdwr mode 0", lambda: creat(p("m0"), os.O_CREAT | os.O_RDWR, 0), p("m0"))
run("create mode 0600", lambda: creat(p("m600"), os.O_CREAT | os.O_WRONLY, 0o600), p("m600"))
run("open missing", lambda: creat(p("nope"), os.O_RDONLY))
run("write 10", lambda: write(p("a"), b"0123456789"), p("a"))
run("open trunc", lambda: creat(p("a"), os.O_WRONLY | os.O_TRUNC), p("a"))
run("append", lambda: write(p("b"), b"xy\n", os.O_WRONLY | os.O_APPEND), p("b"))
run("append again", lambda: write(p("b"), b"z\n", os.O_WRONLY | os.O_APPEND), p("b"))


def mode_while_open(path):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, b"w\n")
        return "mode=%04o" % stat.S_IMODE(os.fstat(fd).st_mode)
    finally:
        os.close(fd)


run("append, fstat while open", lambda: mode_while_open(p("b")))

# directories
run("mkdir 0151", lambda: os.mkdir(p("d151"), 0o151), p("d151"))
run("mkdir 0100", lambda: os.mkdir(p("d100"), 0o100), p("d100"))
run("mkdir 0755", lambda: os.mkdir(p("dir"), 0o755), p("dir"))
run("mkdir exists", lambda: os.mkdir(p("dir")))
run("mkdir over file", lambda: os.mkdir(p("a")))
run("mkdir missing parent", lambda: os.mkdir(p("no", "such")))
run("mkdir sub", lambda: os.mkdir(p("dir", "sub")), p("dir", "sub"))
run("open dir wronly", lambda: creat(p("dir"), os.O_WRONLY))
run("create in sub", lambda: write(p("dir", "sub", "f"), b"in sub\n"), p("dir", "sub", "f"))
run("rmdir nonempty", lambda: os.rmdir(p("dir")))
run("rmdir file", lambda: os.rmdir(p("a")))
run("rmdir missing", lambda: os.rmdir(p("nope")))
run("unlink dir", lambda: os.unlink(p("dir")))
run("unlink missing", lambda: os.unlink(p("nope")))
run("mkdir empty", lambda: os.mkdir(p("empty"), 0o755))
run("rmdir empty", lambda: os.rmdir(p("empty")), p("empty"))

# rename(2)
write(p("r1"), b"r1\n")
write(p("r2"), b"r2 longer\n")
run("rename to new", lambda: os.rename(p("r1"), p("r3")), p("r3"))
run("rename over file", lambda: os.rename(p("r3"), p("r2")), p("r2"))
run("rename missing", lambda: os.rename(p("r1"), p("r4")))
run("rename across subdirs", lambda: os.rename(p("r2"), p("dir", "sub", "r2")), p("dir", "sub", "r2"))
run("rename back", lambda: os.rename(p("dir", "sub", "r2"), p("r2")), p("r2"))
os.mkdir(p("e1"))
os.mkdir(p("e2"))
write(p("e2", "x"), b"x\n")
run("rename dir over empty dir", lambda: os.rename(p("e1"), p("dir", "e1")), p("dir", "e1"))
os.mkdir(p("e3"))
run("rename dir over nonempty dir", lambda: os.rename(p("e3"), p("e2")))
run("rename file over dir", lambda: os.rename(p("r2"), p("e2")))
run("rename dir over file", lambda: os.rename(p("e3"), p("r2")))
run("rename dir into itself", lambda: os.rename(p("e2"), p("e2", "inner")))
run("rename dir", lambda: os.rename(p("e2"), p("e4")), p("e4", "x"))

# sizes
run("truncate grow", lambda: os.truncate(p("r2"), 100), p("r2"))
run("truncate shrink", lambda: os.truncate(p("r2"), 3), p("r2"))
run("truncate dir", lambda: os.truncate(p("dir"), 0))


def ftrunc():
    fd = os.open(p("r2"), os.O_RDWR)
    try:
        os.ftruncate(fd, 7)
    finally:
        os.close(fd)


run("ftruncate", ftrunc, p("r2"))

# modes and times
run("chmod 0", lambda: os.chmod(p("r2"), 0), p("r2"))
run("chmod 4755", lambda: os.chmod(p("r2"), 0o4755), p("r2"))
run("chmod dir 0700", lambda: os.chmod(p("dir"), 0o700), p("dir"))
run("utime explicit", lambda: os.utime(p("r2"), ns=(1_000_000_000_123, 1_500_000_000_456)))
run("utime explicit mtime", lambda: os.stat(p("r2")).st_mtime_ns)
run("utime now", lambda: os.utime(p("r2")))
run("utime missing", lambda: os.utime(p("nope")))

# links
run("link", lambda: os.link(p("r2"), p("r2.link")), p("r2"))
run("link over existing", lambda: os.link(p("r2"), p("b")))
run("link dir", lambda: os.link(p("dir"), p("dir.link")))
run("link missing", lambda: os.link(p("nope"), p("nope.link")))
run("symlink relative", lambda: os.symlink("dir/sub/f", p("sl")), p("sl"))
run("readlink", lambda: os.readlink(p("sl")))
out.append("through symlink: %s" % desc(p("sl"), follow=True))
run("symlink dangling", lambda: os.symlink("no/where", p("dangling")), p("dangling"))
run("symlink absolute", lambda: os.symlink("/etc/passwd", p("abs")), p("abs"))
run("symlink over existing", lambda: os.symlink("x", p("b")))
run("readlink file", lambda: os.readlink(p("b")))
run("unlink symlink", lambda: os.unlink(p("dangling")), p("dangling"))
run("mkfifo", lambda: os.mkfifo(p("fifo"), 0o644), p("fifo"))
run("unlink fifo", lambda: os.unlink(p("fifo")))

# listing
out.append("listing: %s" % " ".join(sorted(os.listdir(D))))
out.append("listing dir: %s" % " ".join(sorted(os.listdir(p("dir")))))

print("\n".join(out))

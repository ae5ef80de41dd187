#!/usr/bin/env python3
"""upload.py - a small, independent client of the upload routes, for tests.

It speaks docs/protocol.md ("Upload") with the standard library only, so
that the daemon's side is checked by something other than `vdfs put`. It
cuts files at line ends near a fixed size, not with the daemon's chunker:
the daemon re-cuts what it is given, so the version must come out the same
anyway (that is one of the things t_put checks).

  upload.py URL TOKEN_FILE put TASK NAME FILE       a file version
  upload.py URL TOKEN_FILE put-tree TASK NAME DIR   a tree version
  upload.py URL TOKEN_FILE send FILE               only the chunks; prints the
                                                    manifest a commit would take
  upload.py URL TOKEN_FILE raw METHOD PATH [BODY_FILE]
                                                    one request; prints
                                                    "STATUS BODY"
Prints the commit's reply (JSON) for put and put-tree; exits 1 on an HTTP
error, after printing "STATUS BODY".
"""
import hashlib
import http.client
import json
import os
import stat
import sys
import urllib.parse

CUT = 300 * 1024


def conn(url):
    u = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=600)


def request(c, token, method, path, body=None, ctype="application/json"):
    h = {"Authorization": "Bearer " + token}
    if body is not None:
        h["Content-Type"] = ctype
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    return r.status, r.read()


def cuts(path):
    """(offset, length) pieces ending at a newline after CUT bytes."""
    out = []
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos + CUT)
        end = len(data) if end < 0 else end + 1
        out.append(data[pos:end])
        pos = end
    return out


def send_chunks(c, token, pieces):
    fps = [hashlib.sha256(p).hexdigest() for p in pieces]
    st, body = request(c, token, "POST", "/v1/chunks/missing",
                       json.dumps({"fingerprints": fps}))
    if st != 200:
        fail(st, body)
    missing = set(json.loads(body)["missing"])
    frames = b""
    sent = set()
    for fp, p in zip(fps, pieces):
        if fp in missing and fp not in sent:
            frames += fp.encode() + b" " + str(len(p)).encode() + b"\n" + p
            sent.add(fp)
    if frames:
        st, body = request(c, token, "POST", "/v1/chunks", frames,
                           "application/octet-stream")
        if st != 200:
            fail(st, body)
    return fps


def fail(st, body):
    print(st, body.decode(errors="replace"))
    sys.exit(1)


def commit(c, token, task, manifest):
    st, body = request(c, token, "POST",
                       "/v1/tasks/%s/versions" % urllib.parse.quote(task, safe=""),
                       json.dumps(manifest))
    if st != 200:
        fail(st, body)
    print(body.decode())


def main():
    url, token_file, cmd = sys.argv[1:4]
    token = open(token_file).read().strip()
    c = conn(url)
    if cmd == "put":
        task, name, path = sys.argv[4:7]
        pieces = cuts(path)
        fps = send_chunks(c, token, pieces)
        commit(c, token, task, {"name": name, "kind": "file",
                                "size": os.path.getsize(path), "chunks": fps})
    elif cmd == "send":
        path = sys.argv[4]
        fps = send_chunks(c, token, cuts(path))
        print(json.dumps({"kind": "file", "size": os.path.getsize(path), "chunks": fps}))
    elif cmd == "put-tree":
        task, name, top = sys.argv[4:7]
        files = []
        for d, dirs, names in os.walk(top):
            dirs.sort()
            for n in sorted(names) + [x for x in dirs if os.path.islink(os.path.join(d, x))]:
                p = os.path.join(d, n)
                rel = os.path.relpath(p, top)
                st = os.lstat(p)
                if stat.S_ISLNK(st.st_mode):
                    files.append({"path": rel, "type": "symlink",
                                  "target": os.readlink(p)})
                elif stat.S_ISREG(st.st_mode):
                    fps = send_chunks(c, token, cuts(p))
                    files.append({"path": rel, "type": "file", "size": st.st_size,
                                  "mode": stat.S_IMODE(st.st_mode), "chunks": fps})
            for n in dirs:
                p = os.path.join(d, n)
                if os.path.islink(p):
                    continue
                st = os.lstat(p)
                if not os.listdir(p) or stat.S_IMODE(st.st_mode) != 0o755:
                    files.append({"path": os.path.relpath(p, top), "type": "dir",
                                  "mode": stat.S_IMODE(st.st_mode)})
        commit(c, token, task, {"name": name, "kind": "tree",
                                "mode": stat.S_IMODE(os.stat(top).st_mode),
                                "files": files})
    elif cmd == "raw":
        method, path = sys.argv[4:6]
        body = open(sys.argv[6], "rb").read() if len(sys.argv) > 6 else None
        st, out = request(c, token, method, path, body,
                          "application/octet-stream")
        print(st, out.decode(errors="replace"))
    else:
        sys.exit("upload.py: unknown command " + cmd)


if __name__ == "__main__":
    main()

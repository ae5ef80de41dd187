#!/usr/bin/python3
"""bench-web.py - what the dashboard costs (run by tools/bench-web.sh).

(a) Page loads in headless Chromium: first contentful paint (the browser's
    performance.getEntriesByType('paint')) and ready (window.vdfsReadyAt,
    the page's performance.now() at its first full render, once
    document.body.dataset.ready is "1") of the overview and of the task
    page of a task with N versions; cold (a fresh browser profile for each
    load: nothing cached) and warm (the same browser, loaded again), the
    median of LOADS loads each; and the JSON the view fetched, and the size
    of one versions page (100 rows) against the whole list.
(b) vdfsd's CPU time (/proc/PID/stat utime + stime) over WINDOW seconds of
    a running task with no dashboard, with TABS dashboards open on the
    overview (tabs of one headless Chromium that are never throttled in
    the background), and with none again, in that order in one run.

Environment (set by bench-web.sh): BW_URL, BW_MNT, BW_STATE, BW_WORK,
BW_PID (vdfsd), BW_N, BW_WINDOW, BW_LOADS, BW_TABS, BW_SLEEP (seconds per
unit of the running task), BW_SLOTS (executor slots in all).
"""
import hashlib
import http.client
import json
import math
import os
import statistics
import sys
import time
import urllib.parse

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "mount-tests"))
import vdweb  # noqa: E402

URL = os.environ["BW_URL"].rstrip("/")
MNT = os.environ["BW_MNT"]
STATE = os.environ["BW_STATE"]
WORK = os.environ["BW_WORK"]
PID = int(os.environ["BW_PID"])
N = int(os.environ.get("BW_N", "10000"))
WINDOW = float(os.environ.get("BW_WINDOW", "20"))
LOADS = int(os.environ.get("BW_LOADS", "5"))
TABS = int(os.environ.get("BW_TABS", "5"))
SLEEP = float(os.environ.get("BW_SLEEP", "0.2"))
SLOTS = int(os.environ.get("BW_SLOTS", "4"))
T = 300
ROOT = open(os.path.join(STATE, "token")).read().strip()
SUBMIT = open(os.path.join(WORK, "bench.tok")).read().strip()
VIEW = open(os.path.join(WORK, "viewer.tok")).read().strip()
TICK = os.sysconf("SC_CLK_TCK")
api = vdweb.Http(URL)


def log(msg):
    print("# " + msg, file=sys.stderr, flush=True)


def cpu_ms(pid):
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    f = s[s.rindex(")") + 2:].split()
    return (int(f[11]) + int(f[12])) * 1000.0 / TICK   # utime, stime


def browser_cpu_ms(b):
    """CPU time of the browser's living processes (chromedriver, chromium
    and its renderers)."""
    t = 0.0
    for p in b.pids():
        try:
            t += cpu_ms(p)
        except OSError:
            pass
    return t


def make_versions(task, n):
    """n one-line file versions of task through the upload API (docs/protocol.md
    "Upload"): all chunks in a few batches, then one commit each, on one
    connection. Returns the seconds it took."""
    t0 = time.monotonic()
    st, _, b = api.request("POST", "/v1/tasks", token=SUBMIT, body={"name": task})
    if st != 200:
        raise RuntimeError("POST /v1/tasks: %d %s" % (st, b[:200]))
    u = urllib.parse.urlsplit(URL)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    H = {"Authorization": "Bearer " + SUBMIT, "Content-Type": "application/octet-stream"}
    chunks = []
    for i in range(n):
        data = ("version %d of %d: %s\n" % (i, n, hashlib.md5(str(i).encode()).hexdigest())).encode()
        chunks.append((hashlib.sha256(data).hexdigest(), data))
    for k in range(0, n, 5000):
        body = b"".join(b"%s %d\n%s" % (fp.encode(), len(d), d) for fp, d in chunks[k:k + 5000])
        c.request("POST", "/v1/chunks", body=body, headers=H)
        r = c.getresponse()
        rb = r.read()
        if r.status != 200:
            raise RuntimeError("POST /v1/chunks: %d %s" % (r.status, rb[:200]))
    H["Content-Type"] = "application/json"
    for i, (fp, d) in enumerate(chunks):
        m = json.dumps({"name": "v%05d.txt" % i, "kind": "file", "size": len(d), "chunks": [fp]})
        c.request("POST", "/v1/tasks/%s/versions" % task, body=m, headers=H)
        r = c.getresponse()
        rb = r.read()
        if r.status != 200:
            raise RuntimeError("commit %d: %d %s" % (i, r.status, rb[:200]))
    c.close()
    return time.monotonic() - t0


def set_cookie(b, cookie):
    b.d.execute_cdp_cmd("Network.enable", {})
    b.d.execute_cdp_cmd("Network.setCookie", {"name": "vdfs_session", "value": cookie, "url": URL + "/",
                                              "httpOnly": True, "sameSite": "Strict"})


READ = """
  var b = document.body;
  if (!b || b.dataset.view !== arguments[0] || b.dataset.ready !== '1' || typeof window.vdfsReadyAt !== 'number')
    return null;
  if (arguments[0] === 'task' && !document.querySelector('table#versions tr[data-id]')) return null;
  var fcp = null, fp = null;
  performance.getEntriesByType('paint').forEach(function (e) {
    if (e.name === 'first-contentful-paint') fcp = e.startTime;
    if (e.name === 'first-paint') fp = e.startTime; });
  var js = 0, n = 0;
  performance.getEntriesByType('resource').forEach(function (e) {
    if (e.name.indexOf('/v1/') >= 0 && e.name.indexOf('/v1/events') < 0) { js += e.decodedBodySize; n++; } });
  return {fcp: fcp, fp: fp, ready: window.vdfsReadyAt, json: js, requests: n,
          rows: document.querySelectorAll('table#versions tr[data-id]').length,
          info: (document.querySelector('#page-info') || {}).textContent || ''};
"""


def load(b, hash_, view):
    b.d.get("about:blank")
    b.d.get(URL + "/" + hash_)
    r = vdweb.wait_for("%s to be ready" % hash_, lambda: b.d.execute_script(READ, view), T, every=0.05)
    if r["fcp"] is None:   # painted, but the entry may lag the render by a frame
        time.sleep(0.3)
        r = b.d.execute_script(READ, view) or r
    return r


def measure(cookie, hash_, view):
    cold, warm = [], []
    for k in range(LOADS):
        b = vdweb.Browser(WORK, name="cold%d" % k)
        try:
            set_cookie(b, cookie)
            cold.append(load(b, hash_, view))
        finally:
            b.quit()
    b = vdweb.Browser(WORK, name="warm")
    try:
        set_cookie(b, cookie)
        load(b, hash_, view)
        for k in range(LOADS):
            warm.append(load(b, hash_, view))
        ver = b.d.capabilities.get("browserVersion")
    finally:
        b.quit()
    return cold, warm, ver


def med(rs, k):
    v = [r[k] for r in rs if r.get(k) is not None]
    return statistics.median(v) if v else float("nan")


def units_done():
    return api.metric(ROOT, "vdfs_units_done_total")


def window(label, browser=None):
    c0, u0, t0 = cpu_ms(PID), units_done(), time.monotonic()
    b0 = browser_cpu_ms(browser) if browser else 0.0
    time.sleep(WINDOW)
    c1, u1, t1 = cpu_ms(PID), units_done(), time.monotonic()
    b1 = browser_cpu_ms(browser) if browser else 0.0
    dt = t1 - t0
    r = {"label": label, "cpu": (c1 - c0) / dt, "units": (u1 - u0) / dt, "browser": (b1 - b0) / dt, "s": dt}
    log("window %s: vdfsd %.1f ms CPU/s, %.1f units/s" % (label, r["cpu"], r["units"]))
    return r


def run_status():
    try:
        with open(os.path.join(MNT, "tasks/slow/latest/status")) as f:
            return f.readline().strip()
    except OSError as e:
        return "(%s)" % e


def main():
    why = vdweb.missing_prerequisites()
    if why:
        print("bench-web: " + why, file=sys.stderr)
        return 1
    # ---- setup -----------------------------------------------------------
    setup_s = make_versions("big", N)
    log("%d versions of task big in %.1f s (upload API, one commit each)" % (N, setup_s))
    cookie, who = api.sign_in(VIEW)
    log("dashboards sign in as %s (%s)" % (who["name"], who["role"]))
    page100 = api.request("GET", "/v1/tasks/big/versions?offset=0&limit=100", token=VIEW)
    whole = api.request("GET", "/v1/tasks/big/versions", token=VIEW)
    tasks = api.request("GET", "/v1/tasks", token=VIEW)
    status = api.request("GET", "/v1/status", token=VIEW)
    for name, r in (("versions?limit=100", page100), ("versions", whole), ("tasks", tasks), ("status", status)):
        if r[0] != 200:
            raise RuntimeError("GET /v1/%s: %d %s" % (name, r[0], r[2][:200]))
    total = json.loads(page100[2]).get("total")

    # ---- (a) page loads --------------------------------------------------
    res = {}
    for key, hash_, view in (("overview", "#/", "overview"), ("task", "#/tasks/big", "task")):
        cold, warm, ver = measure(cookie, hash_, view)
        res[key] = (cold, warm)
        log("%s: cold FCP %s, warm FCP %s" % (key, [round(r["fcp"] or -1) for r in cold],
                                             [round(r["fcp"] or -1) for r in warm]))
    last = res["task"][1][-1]

    # ---- (b) daemon CPU with dashboards on a running task ---------------
    need = 3 * WINDOW + 60     # three windows, opening the tabs, slack
    units = int(math.ceil(need * SLOTS / SLEEP))
    line = b"x" * 63 + b"\n"
    with open(os.path.join(WORK, "slow.txt"), "wb") as f:
        for i in range(units * 4096 // 64):
            f.write(b"%08d" % i + line[8:])
    t0 = time.monotonic()
    with open(os.path.join(WORK, "slow.txt"), "rb") as src, \
            open(os.path.join(MNT, "tasks/slow/data/slow.txt"), "wb") as dst:
        dst.write(src.read())
    vdweb.wait_for("the slow run to be running", lambda: units_done() > 0 and run_status().startswith("running"),
                   T, every=0.2)
    log("slow run: %s" % run_status())
    w = [window("0 dashboards (before)")]
    b = vdweb.Browser(WORK, name="dash", background_ok=True)
    try:
        set_cookie(b, cookie)
        handles = []
        for k in range(TABS):
            if k:
                b.d.switch_to.new_window("tab")
            b.d.get(URL + "/#/")
            handles.append(b.d.current_window_handle)
        for h in handles:
            b.d.switch_to.window(h)
            vdweb.wait_for("a dashboard tab to be ready", lambda: b.d.execute_script(READ, "overview"), T)
        time.sleep(2)   # their first fetches done, streams open
        w.append(window("%d dashboards" % TABS, b))
        still = []
        for h in handles:
            b.d.switch_to.window(h)
            still.append(b.d.execute_script("return document.body.dataset.view"))
    finally:
        b.quit()
    time.sleep(2)
    w.append(window("0 dashboards (after)"))
    end_status = run_status()
    ran_through = end_status.startswith("running") and all(x["units"] > 0 for x in w)
    try:
        api.request("POST", "/v1/tasks/slow/cancel", token=ROOT, body={})
    except Exception:
        pass
    log("run at the end: %s (%.0f s after it started)" % (end_status, time.monotonic() - t0))

    # ---- report ----------------------------------------------------------
    out = []
    out.append("bench-web: headless Chromium %s, task big with %d versions (made in %.1f s through the "
               "upload API), median of %d loads" % (ver, N, setup_s, LOADS))
    out.append("%-34s %10s %10s %12s %9s" % ("page", "FCP ms", "ready ms", "JSON bytes", "requests"))
    for key, name in (("overview", "overview"), ("task", "task, %d versions" % N)):
        for kind, rs in (("cold", res[key][0]), ("warm", res[key][1])):
            out.append("%-34s %10.0f %10.0f %12.0f %9.0f" % ("%s (%s)" % (name, kind), med(rs, "fcp"),
                                                          med(rs, "ready"), med(rs, "json"), med(rs, "requests")))
    out.append("task page: %d rows shown, #page-info %r" % (last["rows"], last["info"].strip()))
    out.append("one versions page (limit=100): %d bytes; the whole list of %s: %d bytes (%.0f x); "
               "/v1/tasks %d bytes, /v1/status %d bytes" % (len(page100[2]), total, len(whole[2]),
                                                              len(whole[2]) / max(1, len(page100[2])),
                                                              len(tasks[2]), len(status[2])))
    out.append("vdfsd CPU during a run (%.1f s per unit, %d slots), windows of %.0f s:" % (SLEEP, SLOTS, WINDOW))
    out.append("%-28s %14s %10s %18s" % ("dashboards", "vdfsd ms CPU/s", "units/s", "browser ms CPU/s"))
    for x in w:
        out.append("%-28s %14.1f %10.1f %18.1f" % (x["label"], x["cpu"], x["units"], x["browser"]))
    base = (w[0]["cpu"] + w[2]["cpu"]) / 2
    extra = w[1]["cpu"] - base
    out.append("with %d dashboards / without: %.2f x (%+.1f ms CPU/s in all, %+.1f per dashboard)"
               % (TABS, w[1]["cpu"] / base if base > 0 else float("nan"), extra, extra / TABS))
    if not ran_through:
        out.append("warning: the run did not go on through every window (%s); raise BW_SLEEP or shorten "
                   "the window" % end_status)
    if any(v != "overview" for v in still):
        out.append("warning: a dashboard tab left the overview: %s" % still)
    print("\n".join(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""web_test.py - the dashboard in headless Chromium (run by t_web.sh).

Drives Debian's chromium through chromedriver (python3-selenium) against
the vdfsd, mount and executors t_web.sh started, using only the DOM
contract of the dashboard (ids, classes, data attributes) and its routes.
Everything the page shows is checked against what the mount or the API
says, computed here independently of the page. Prints `ok - ...` per
check; the first failure prints `FAIL - ...`, the page's state and the
browser's console, and exits 1.

Environment (set by t_web.sh): VDW_URL, VDW_MNT, VDW_STATE, VDW_WORK,
VDW_VDFS (the vdfs binary), VDW_SHOTS (screenshot dir), VDW_TIMEOUT (the
deadline of each wait, seconds), VDW_FIX (fixtures.json: what t_web.sh
made through the mount).
"""
import csv
import glob
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import traceback
import urllib.parse
import zipfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vdweb  # noqa: E402

URL = os.environ["VDW_URL"].rstrip("/")
MNT = os.environ["VDW_MNT"]
STATE = os.environ["VDW_STATE"]
WORK = os.environ["VDW_WORK"]
VDFS = os.environ["VDW_VDFS"]
SHOTS = os.environ["VDW_SHOTS"]
T = int(os.environ.get("VDW_TIMEOUT", "300"))
FIX = json.load(open(os.environ["VDW_FIX"]))
ROOT_TOKEN = open(os.path.join(STATE, "token")).read().strip()
TOK = {u: open(os.path.join(WORK, u + ".tok")).read().strip() for u in ("alice", "bob", "olga")}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
CSP_LOG = re.compile(r"Content.Security.Policy|Refused to")
DL = os.path.join(WORK, "downloads")
os.makedirs(DL, exist_ok=True)
os.makedirs(SHOTS, exist_ok=True)
if os.path.exists(os.path.join(SHOTS, "failure.png")):
    os.unlink(os.path.join(SHOTS, "failure.png"))   # from an earlier run

http = vdweb.Http(URL)
B = None            # the Browser
d = None            # its WebDriver
csp_seen = []       # CSP violations recorded in the pages
step = "start"


def ok(msg):
    print("ok - " + msg, flush=True)


def note(msg):
    print("# " + msg, flush=True)


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def js(src, *args):
    return d.execute_script(src, *args)


def state():
    """What the page looks like now, for failure messages."""
    try:
        return js("""return {url: location.href, view: document.body && document.body.dataset.view,
                     ready: document.body && document.body.dataset.ready,
                     text: document.body ? document.body.innerText.slice(0, 1500) : ''}""")
    except Exception as e:
        return "(no page state: %s)" % e


def wait(what, fn, timeout=None, every=0.2):
    return vdweb.wait_for(what, fn, timeout or T, every=every)


def collect_csp():
    try:
        v = js("var v = window.__vdcsp || []; window.__vdcsp = []; return v;")
    except Exception:
        v = []
    for x in v or []:
        csp_seen.append("%s: %s" % (step, x))


def path_now():
    return urllib.parse.urlsplit(d.current_url).path


def view_ready(view):
    return js("return document.body && document.body.dataset.view === arguments[0] && "
              "document.body.dataset.ready === '1'", view)


def goto(hash_, view, extra=None, what=None):
    """Go to a view by its hash route, without reloading, and wait until
    it is rendered (and extra(), when given, holds)."""
    global step
    collect_csp()
    step = hash_
    if js("return location.hash") != hash_:
        js("document.body.dataset.ready = '0'; location.hash = arguments[0];", hash_)
    wait("view %s (%s) to be ready" % (view, hash_),
         lambda: view_ready(view) and (extra is None or extra()))


def shot(name):
    p = os.path.join(SHOTS, name)
    d.save_screenshot(p)
    note("screenshot %s" % p)


def exists(css):
    return len(d.find_elements("css selector", css)) > 0


def sign_in(user, token):
    """From wherever the browser is: /signin, the token, then the overview."""
    global step
    collect_csp()
    step = "sign in " + user
    d.get(URL + "/signin")
    wait("the sign-in form", lambda: exists("input#token") and exists("button#signin"))
    el = d.find_element("css selector", "input#token")
    check(el.get_attribute("type") == "password", "input#token is not type=password")
    el.clear()
    el.send_keys(token)
    d.find_element("css selector", "button#signin").click()
    wait("the overview after %s signs in" % user,
         lambda: path_now() == "/" and view_ready("overview"))
    who = d.find_element("css selector", "#whoami").text
    check(user in who, "#whoami says %r after %s signed in" % (who, user))


def sign_out():
    global step
    collect_csp()
    step = "sign out"
    d.find_element("css selector", "#signout").click()
    wait("/signin after #signout", lambda: path_now() == "/signin")


def session_cookie():
    for c in d.get_cookies():
        if c["name"] == "vdfs_session":
            return c
    raise Fail("no vdfs_session cookie in the browser: %s" % d.get_cookies())


def mount_id(task):
    t = os.readlink(os.path.join(MNT, "tasks", task, "latest"))
    return t.split("/")[-1]


def status_word(s):
    return (s or "").strip().split(" ", 1)[0].rstrip(":")


def row_progress(task):
    """[value attr, max attr, status text, progress text] of the overview's
    row of task, or None."""
    return js("""
        var rows = document.querySelectorAll('table#tasks tr[data-task]'), r = null;
        for (var i = 0; i < rows.length; i++) if (rows[i].dataset.task === arguments[0]) r = rows[i];
        if (!r) return null;
        var p = r.querySelector('progress.units'), s = r.querySelector('td.status'),
            t = r.querySelector('span.progress-text');
        return [p ? p.getAttribute('value') : null, p ? p.getAttribute('max') : null,
                s ? s.textContent : null, t ? t.textContent : null];""", task)


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def markers():
    return js("return [window.vdxss === undefined ? null : window.vdxss,"
              " window.vdxss2 === undefined ? null : window.vdxss2,"
              " window.vdxss3 === undefined ? null : window.vdxss3,"
              " window.vdxss4 === undefined ? null : window.vdxss4]")


def no_script_ran(where):
    m = markers()
    check(m == [None, None, None, None], "%s: a payload ran: [vdxss, vdxss2, vdxss3, vdxss4] = %s" % (where, m))
    bad = js("""return Array.prototype.map.call(
        document.querySelectorAll('img[onerror], img[src="x"], script:not([src]), [onload], [onclick]'),
        function (e) { return e.outerHTML.slice(0, 200); })""")
    check(not bad, "%s: the page holds elements a payload made: %s" % (where, bad))


def first_lines_csv(path, n):
    with open(path, newline="") as f:
        text = f.read()
    lines = text.splitlines(keepends=True)[:n]
    return [row for row in csv.reader(io.StringIO("".join(lines)))]


# ---------------------------------------------------------------------------

def t_signin():
    global step
    step = "signin"
    st, h, _ = http.request("GET", "/")
    st0 = st
    check(st in (302, 303) and h.get("location", "").endswith("/signin"),
          "GET / without a session: %d Location %r, want a redirect to /signin" % (st, h.get("location")))
    st, h, b = http.request("GET", "/v1/tasks")
    check(st == 401, "GET /v1/tasks with no cookie and no token: %d, want 401" % st)
    try:
        j = json.loads(b)
    except ValueError:
        j = None
    check(isinstance(j, dict) and "error" in j, "the 401 is not JSON with an error: %r" % b[:200])
    check(h.get("content-type", "").startswith("application/json"), "the 401's Content-Type is %r" % h.get("content-type"))
    ok("no session: GET / redirects to /signin (%d), GET /v1/tasks is 401 JSON" % st0)

    d.get(URL + "/")
    wait("the browser to land on /signin", lambda: path_now() == "/signin" and exists("input#token"))
    st, h, _ = http.request("GET", "/signin")
    check(st == 200, "GET /signin: %d" % st)
    check(h.get("content-security-policy") == CSP, "/signin's CSP is %r" % h.get("content-security-policy"))
    for k, v in (("x-content-type-options", "nosniff"), ("referrer-policy", "no-referrer"), ("x-frame-options", "DENY")):
        check(h.get(k) == v, "/signin's %s is %r, want %r" % (k, h.get(k), v))
    shot("signin.png")
    d.find_element("css selector", "input#token").send_keys("f" * 64)
    d.find_element("css selector", "button#signin").click()
    wait("#signin-error to say why a wrong token failed",
         lambda: d.find_element("css selector", "#signin-error").text.strip())
    check(path_now() == "/signin", "a wrong token left /signin for %s" % d.current_url)
    ok("the browser is sent to /signin; a wrong token stays there with #signin-error: %r"
       % d.find_element("css selector", "#signin-error").text.strip()[:80])
    sign_in("alice", TOK["alice"])
    # The detector of CSP violations works, and the policy holds: an inline
    # handler (made here, not by the page) is refused and reported.
    js("var i = document.createElement('img'); i.setAttribute('onerror', 'window.vdprobe = 1');"
       " i.src = 'data:,not-an-image'; window.__vdprobeimg = i;")
    wait("the probe's CSP violation to be recorded", lambda: js("return (window.__vdcsp || []).length") > 0, timeout=20)
    check(js("return window.vdprobe === undefined"), "an inline onerror handler ran: the CSP does not hold")
    js("window.__vdcsp = []; delete window.__vdprobeimg;")
    wait("the probe's CSP violation in the console", lambda: any(CSP_LOG.search(e.get("message", ""))
                                                                for e in B.drain_log()), timeout=20)
    B.logs = []
    ok("an inline handler is refused by the page's CSP and the refusal is seen "
       "(securitypolicyviolation event and console)")
    c = session_cookie()
    check(c.get("httpOnly") is True, "the session cookie is not HttpOnly: %s" % c)
    check((c.get("sameSite") or "").lower() == "strict", "the session cookie is not SameSite=Strict: %s" % c)
    check(not js("return document.cookie.indexOf('vdfs_session') >= 0"), "the page's script can read the session cookie")
    who = d.find_element("css selector", "#whoami").text
    check("submitter" in who, "#whoami is %r, want alice (submitter)" % who)
    st, h, _ = http.request("GET", "/", cookie=c["value"])
    check(st == 200 and h.get("content-security-policy") == CSP,
          "GET / with the session: %d, CSP %r" % (st, h.get("content-security-policy")))
    ok("alice signs in with her token: overview, #whoami %r, cookie HttpOnly SameSite=Strict, strict CSP on /" % who)


def t_create_and_upload():
    global step
    goto("#/upload", "upload", lambda: exists("form#create-task"))
    step = "create task"
    d.find_element("css selector", "input#new-task-name").send_keys("webwc")
    d.find_element("css selector", "input#new-task-function").send_keys(FIX["wc_function"])
    cfg = d.find_element("css selector", "textarea#new-task-config")
    cfg.clear()
    cfg.send_keys("reduce = sum\n")
    d.find_element("css selector", "button#new-task-go").click()
    wait("#new-task-status data-done=1",
         lambda: d.find_element("css selector", "#new-task-status").get_attribute("data-done") == "1")
    tasks = {t["name"]: t for t in http.json("GET", "/v1/tasks", token=ROOT_TOKEN)["tasks"]}
    check("webwc" in tasks and tasks["webwc"].get("owner") == "alice",
          "GET /v1/tasks after the form: %s" % tasks.get("webwc"))
    fn = open(os.path.join(MNT, "tasks/webwc/function"), "rb").read()
    check(fn == open(FIX["wc_function"], "rb").read(), "the mount's tasks/webwc/function is not the file given to the form")
    conf = open(os.path.join(MNT, "tasks/webwc/config")).read()
    check(re.search(r"^\s*reduce\s*=\s*sum\s*$", conf, re.M), "the mount's tasks/webwc/config is %r" % conf)
    ok("a task made from form#create-task: owned by alice, the mount has its function and config (reduce = sum)")

    step = "upload"
    from selenium.webdriver.support.ui import Select

    def has_option():
        return "webwc" in [o.get_attribute("value") for o in
                           d.find_elements("css selector", "select#upload-task option")]
    try:
        wait("webwc in select#upload-task", has_option, timeout=15)
    except AssertionError:
        note("webwc is not in select#upload-task 15 s after the form: going to the overview and back")
        goto("#/", "overview")
        goto("#/upload", "upload", has_option)
    Select(d.find_element("css selector", "select#upload-task")).select_by_value("webwc")
    up = FIX["upload_file"]
    size = os.path.getsize(up)
    d.find_element("css selector", "input#upload-files").send_keys(up)
    n0 = http.metric(ROOT_TOKEN, "vdfs_upload_new_bytes_total")
    d.find_element("css selector", "button#upload-go").click()
    wait("#upload-status data-done=1",
         lambda: d.find_element("css selector", "#upload-status").get_attribute("data-done") == "1")
    n1 = http.metric(ROOT_TOKEN, "vdfs_upload_new_bytes_total")
    stat = d.find_element("css selector", "#upload-status")
    pid = stat.get_attribute("data-id")
    check(re.fullmatch(r"[0-9a-f]{32}", pid or ""), "#upload-status data-id is %r" % pid)
    check(stat.text.strip().endswith(pid), "#upload-status text %r does not end with the data ID" % stat.text)
    pv = js("var p = document.querySelector('progress#upload-progress'); return p ? [p.value, p.max] : null")
    check(pv and pv[0] == pv[1], "progress#upload-progress at the end: %s" % pv)
    shot("upload.png")
    vdir = os.path.join(MNT, "tasks/webwc/versions", pid)
    check(os.path.isdir(vdir), "the mount has no %s" % vdir)
    r = subprocess.run(["cmp", os.path.join(vdir, "input"), up], capture_output=True, text=True)
    check(r.returncode == 0, "the uploaded version's input differs from the file: %s" % r.stdout + r.stderr)
    check(n1 - n0 >= size * 9 // 10, "the page's upload of %d fresh bytes added only %d new chunk bytes: "
          "it did not go through the chunk upload" % (size, n1 - n0))
    ok("a %d-byte file uploaded by the page (input#upload-files, #upload-go) is version %s; "
       "its input in the mount is byte-identical; the page sent %d new chunk bytes" % (size, pid, n1 - n0))

    # The page cut the file with the daemon's chunker: vdfs put of the same
    # file finds every chunk by its fingerprint and sends nothing new.
    step = "vdfs put after the page"
    env = dict(os.environ, VDFS_SERVER=URL, VDFS_TOKEN_FILE=os.path.join(WORK, "alice.tok"))
    m0 = http.metric(ROOT_TOKEN, "vdfs_upload_new_bytes_total")
    c0 = http.metric(ROOT_TOKEN, "vdfs_upload_chunk_bytes_total")
    r = subprocess.run([VDFS, "put", "--task", "webwc", up], capture_output=True, text=True, env=env, timeout=T)
    check(r.returncode == 0, "vdfs put of the same file: %s %s" % (r.stdout, r.stderr))
    m1 = http.metric(ROOT_TOKEN, "vdfs_upload_new_bytes_total")
    c1 = http.metric(ROOT_TOKEN, "vdfs_upload_chunk_bytes_total")
    put_id = (r.stdout.split() or [""])[0]
    note("vdfs put after the page: %d new chunk bytes, %d chunk bytes sent, of %d; it says %s"
         % (m1 - m0, c1 - c0, size, r.stdout.strip()[:120]))
    check(put_id == pid, "vdfs put of the same file made %r, the page %s" % (put_id, pid))
    check(m1 - m0 <= size // 100, "vdfs put of the file the page uploaded got %d new chunk bytes of %d: "
          "the page does not cut as the daemon does" % (m1 - m0, size))
    ok("vdfs put of the same file after the page: %d new chunk bytes of %d (the page's chunks are the "
       "daemon's), same data ID" % (m1 - m0, size))
    return pid


def t_overview_done(pid):
    global step
    goto("#/", "overview")
    step = "overview progress webwc"

    def done():
        p = row_progress("webwc")
        return p and num(p[1]) and num(p[0]) == num(p[1]) and "done" in (p[2] or "")
    wait("the overview's webwc row: progress.units value == max and status done", done)
    p = row_progress("webwc")
    st = open(os.path.join(MNT, "tasks/webwc/versions", pid, "status")).read()
    check(status_word(st) == "done", "the mount's status of %s is %r" % (pid, st))
    ok("the overview's progress bar for webwc reached %s/%s and its status says %r" % (p[0], p[1], p[2].strip()[:60]))
    n = js("return document.querySelector('#executors-online').textContent.trim()")
    check(re.fullmatch(r"\d+", n or "") and int(n) == 2, "#executors-online is %r, want 2" % n)
    su = js("return document.querySelector('#store-usage').textContent.trim()")
    check(su, "#store-usage is empty")
    ok("#executors-online says %s; #store-usage says %r" % (n, su[:60]))


def t_version_preview(pid):
    global step
    goto("#/tasks/webwc/" + pid, "version",
         lambda: pid in d.find_element("css selector", "#version-id").text
         and len(d.find_elements("css selector", "table#preview tbody tr")) > 0)
    step = "version preview"
    res = os.path.join(MNT, "tasks/webwc/versions", pid, "result.csv")
    want = first_lines_csv(res, 20)
    got = js("""return Array.prototype.map.call(document.querySelectorAll('table#preview tbody tr'),
        function (tr) { return Array.prototype.map.call(tr.querySelectorAll('td'),
                                function (td) { return td.textContent; }); })""")
    if got != want:
        for i in range(max(len(got), len(want))):
            g = got[i] if i < len(got) else None
            w = want[i] if i < len(want) else None
            if g != w:
                raise Fail("table#preview row %d is %r, result.csv's line %d is %r (%d rows vs %d)"
                           % (i + 1, g, i + 1, w, len(got), len(want)))
    vs = d.find_element("css selector", "#version-status").text
    check("done" in vs, "#version-status is %r" % vs)
    href = d.find_element("css selector", "a#download-result").get_attribute("href")
    check(urllib.parse.urlsplit(href).path == "/v1/tasks/webwc/versions/%s/result.csv" % pid,
          "a#download-result is %r" % href)
    href = d.find_element("css selector", "a#download-input").get_attribute("href")
    check(urllib.parse.urlsplit(href).path.startswith("/v1/tasks/webwc/versions/%s/input" % pid),
          "a#download-input is %r" % href)
    meta = d.find_element("css selector", "pre#meta").text
    check(pid in meta, "pre#meta does not name the data ID")
    ok("the version page: table#preview is the first %d lines of the mount's result.csv (csv module), "
       "#version-status %r, download links to input and result.csv" % (len(want), vs.strip()[:40]))


def t_rerun_owner():
    goto("#/tasks/webwc", "task", lambda: d.find_element("css selector", "#task-name").text.strip() == "webwc")
    check(exists("button#rerun"), "alice's own task webwc has no button#rerun")
    ok("alice's own task page has button#rerun")


def t_zip():
    global step
    ids = FIX["wc3"]
    goto("#/tasks/wc3", "task",
         lambda: all(exists('table#versions tr[data-id="%s"]' % i) for i in ids))
    step = "zip"
    name = d.find_element("css selector", "#task-name").text.strip()
    check(name == "wc3", "#task-name is %r" % name)
    order = js("return Array.prototype.map.call(document.querySelectorAll('table#versions tr[data-id]'),"
               " function (r) { return r.dataset.id; })")
    check(order[:3] == list(reversed(ids)), "table#versions is not newest first: %s, made in order %s" % (order, ids))
    for i in ids:
        s = d.find_element("css selector", 'table#versions tr[data-id="%s"] td.status' % i).text
        check("done" in s, "the status cell of %s is %r" % (i, s))
    fn = d.find_element("css selector", "pre#function").get_attribute("textContent")
    check(fn.rstrip("\n") == open(FIX["wc_function"]).read().rstrip("\n"), "pre#function is not the task's function: %r" % fn[:200])
    cf = d.find_element("css selector", "pre#config").get_attribute("textContent")
    check("reduce = sum" in cf, "pre#config is %r" % cf)
    z = d.find_element("css selector", "a#zip")
    check(z.get_attribute("aria-disabled") == "true" and not z.get_attribute("href"),
          "a#zip before any pick: aria-disabled %r href %r" % (z.get_attribute("aria-disabled"), z.get_attribute("href")))
    for i in ids:
        d.find_element("css selector", 'input.pick[type="checkbox"][value="%s"]' % i).click()
    wait("a#zip to get an href", lambda: d.find_element("css selector", "a#zip").get_attribute("href"))
    z = d.find_element("css selector", "a#zip")
    href = z.get_attribute("href")
    check(z.get_attribute("aria-disabled") != "true", "a#zip stays aria-disabled after three picks")
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(href).query)
    check(set(",".join(q.get("ids", [])).split(",")) == set(ids), "a#zip's href %r does not name the three IDs" % href)
    shot("task.png")
    for f in glob.glob(os.path.join(DL, "*")):
        os.unlink(f)
    z.click()

    def downloaded():
        fs = os.listdir(DL)
        if not fs or any(f.endswith(".crdownload") or f.endswith(".tmp") for f in fs):
            return None
        zs = [f for f in fs if f.endswith(".zip")]
        if len(zs) != 1:
            return None
        p = os.path.join(DL, zs[0])
        s1 = os.path.getsize(p)
        time.sleep(0.3)
        return p if s1 > 0 and os.path.getsize(p) == s1 and not os.path.exists(p + ".crdownload") else None
    zp = wait("the zip in the download directory (no .crdownload left)", downloaded)
    zf = zipfile.ZipFile(zp)
    check(zf.testzip() is None, "the zip fails its CRC check")
    names = sorted(i.filename for i in zf.infolist())
    want = sorted("wc3/%s/result.csv" % i for i in ids)
    check(names == want, "the zip holds %s, want %s" % (names, want))
    out = os.path.join(WORK, "zipout")
    zf.extractall(out)
    for i in ids:
        r = subprocess.run(["cmp", os.path.join(out, "wc3", i, "result.csv"),
                            os.path.join(MNT, "tasks/wc3/versions", i, "result.csv")],
                           capture_output=True, text=True)
        check(r.returncode == 0, "the zip's result of %s differs from the mount's: %s" % (i, r.stdout + r.stderr))
    ok("three versions ticked, a#zip downloaded %s: exactly wc3/ID/result.csv, each byte-identical (cmp) "
       "to the mount's" % os.path.basename(zp))


def t_lineage():
    global step
    bt, bid, aid = FIX["derived"]["task"], FIX["derived"]["id"], FIX["derived"]["parent"]
    api = http.json("GET", "/v1/lineage/" + bid, token=ROOT_TOKEN)
    want_nodes = {(n["id"], n["kind"]) for n in api["nodes"]}
    want_edges = {(e["from"], e["to"], e["kind"], e.get("code_id") or "") for e in api["edges"]}
    check(any(n[0] == aid for n in want_nodes), "the API's lineage of %s does not hold its parent %s" % (bid, aid))
    check(any(e[1] == bid and e[2] == "same" for e in want_edges),
          "the API's lineage has no 'same' edge into %s: %s" % (bid, want_edges))

    def page():
        return js("""var s = document.querySelector('#lineage svg'); if (!s) return null;
            return {nodes: Array.prototype.map.call(s.querySelectorAll('g.node'), function (g) {
                        return [g.dataset.id, g.dataset.kind]; }),
                    edges: Array.prototype.map.call(s.querySelectorAll('g.edge'), function (g) {
                        return [g.dataset.from, g.dataset.to, g.dataset.kind, g.dataset.code,
                                g.textContent]; })};""")
    goto("#/tasks/%s/%s" % (urllib.parse.quote(bt, safe=""), bid), "version",
         lambda: (page() or {}).get("nodes"))
    step = "lineage"
    try:
        wait("the lineage picture to hold the API's nodes and edges", lambda: (
            {tuple(n) for n in page()["nodes"]} == want_nodes
            and {tuple(e[:4]) for e in page()["edges"]} == want_edges), timeout=30)
    except AssertionError:
        pass
    p = page()
    got_nodes = [tuple(n) for n in p["nodes"]]
    got_edges = [tuple(e[:4]) for e in p["edges"]]
    check(set(got_nodes) == want_nodes, "#lineage g.node (id, kind): page %s, API %s"
          % (sorted(got_nodes), sorted(want_nodes)))
    check(len(got_nodes) == len(want_nodes), "#lineage draws a node twice: %s" % got_nodes)
    check(set(got_edges) == want_edges, "#lineage g.edge (from, to, kind, code): page %s, API %s"
          % (sorted(got_edges), sorted(want_edges)))
    check(len(got_edges) == len(want_edges), "#lineage draws an edge twice: %s" % got_edges)
    for e in p["edges"]:
        if e[3]:
            check(e[3][:8] in e[4], "edge %s->%s does not show its code ID %s as a label (text %r)"
                  % (e[0][:8], e[1][:8], e[3][:8], e[4]))
    shot("version.png")
    ok("a derived version's #lineage svg: %d nodes and %d edges, exactly the ones /v1/lineage/%s lists "
       "(ids, kinds, code IDs; labels show the code's first 8 hex)" % (len(got_nodes), len(got_edges), bid[:8]))


def t_escaping():
    global step
    et, eid, fname = FIX["esc"]["task"], FIX["esc"]["id"], FIX["esc"]["file"]
    goto("#/tasks/%s/%s" % (et, eid), "version")
    step = "escaping: version page"
    try:
        wait("the file name %r as text on the version page" % fname,
             lambda: fname in js("return document.body.textContent"), timeout=30)
    except AssertionError:
        raise Fail("the version page of tree %s does not show its file name %r as text anywhere "
                   "(page: %s)" % (eid, fname, state()))
    no_script_ran("the version page of a tree holding %r" % fname)
    ok("a tree's file named %r shows as text on its version page; no payload ran, no element made" % fname)
    goto("#/tasks/" + et, "task", lambda: d.find_element("css selector", "#task-name").text.strip() == et)
    step = "escaping: run log"
    want = ["<script>window.vdxss2=1</script>", "<img src=x onerror=window.vdxss3=1>"]

    def runlog():
        t = d.find_element("css selector", "pre#runlog").get_attribute("textContent")
        return all(w in t for w in want) and t
    try:
        wait("pre#runlog to hold the function's stderr", runlog, timeout=60)
    except AssertionError:
        raise Fail("pre#runlog does not show the function's stderr %s as text: %r"
                   % (want, d.find_element("css selector", "pre#runlog").get_attribute("textContent")[:500]))
    kids = js("return Array.prototype.map.call(document.querySelectorAll('pre#runlog script, pre#runlog img'),"
              " function (e) { return e.outerHTML; })")
    check(not kids, "pre#runlog holds elements: %s" % kids)
    no_script_ran("the task page whose log holds <script>")
    ok("pre#runlog shows the literal <script>...</script> and <img onerror> the function printed to stderr")
    if FIX.get("evil_task"):
        ev = FIX["evil_task"]
        goto("#/", "overview")

        def cell():
            return js("""var rows = document.querySelectorAll('table#tasks tr[data-task]');
                for (var i = 0; i < rows.length; i++) if (rows[i].dataset.task === arguments[0])
                    return rows[i].querySelector('td.name').textContent; return null;""", ev)
        wait("the task named %r on the overview" % ev, cell)
        check(cell().strip() == ev, "its td.name is %r" % cell())
        goto("#/tasks/" + urllib.parse.quote(ev, safe=""), "task")
        tn = d.find_element("css selector", "#task-name").get_attribute("textContent").strip()
        check(tn == ev, "#task-name of the evil task is %r" % tn)
        no_script_ran("the task named %r" % ev)
        ok("a task named %r shows as text on the overview and its page" % ev)


def t_live():
    global step
    goto("#/", "overview", lambda: row_progress("slow") is not None)
    step = "live update"
    js("window.__vdmark = 'no reload';")
    shutil.copyfile(FIX["slow_file"], os.path.join(MNT, "tasks/slow/data/slow.txt"))
    sid = mount_id("slow")
    seen = []
    end = time.monotonic() + T
    while True:
        p = row_progress("slow")
        if p:
            v, m = num(p[0]), num(p[1])
            if m and (not seen or seen[-1] != (v, m)):
                seen.append((v, m))
                note("overview, slow: progress %s/%s, %r, %r" % (p[0], p[1], (p[2] or "").strip()[:50],
                                                                (p[3] or "").strip()[:60]))
            if m and v == m and "done" in (p[2] or ""):
                break
        if time.monotonic() > end:
            raise Fail("the slow run's progress on the overview did not reach done within %ds; seen %s"
                       % (T, seen))
        time.sleep(0.25)
    check(js("return window.__vdmark") == "no reload", "the overview reloaded during the run")
    st = open(os.path.join(MNT, "tasks/slow/versions", sid, "status")).read()
    check(status_word(st) == "done", "the mount's status of the slow run is %r" % st)
    # Seen under way: at least one value below the run's max, then max.
    partial = [s for s in seen if s[1] == seen[-1][1] and s[0] is not None and s[0] < s[1]]
    check(partial, "the overview's progress.units went to %s with no value in between: it did not move "
          "while the run went (%s)" % (seen[-1], seen))
    ok("live: during a run of %d units the overview's progress.units showed %s without a reload, "
       "ending at max with status done" % (seen[-1][1], ", ".join("%d" % s[0] for s in partial + seen[-1:])))
    shot("overview.png")


def t_forged_alice():
    global step
    step = "forged requests (alice)"
    c = session_cookie()["value"]
    me = http.json("GET", "/v1/session", cookie=c)
    check(me.get("name") == "alice" and me.get("role") == "submitter" and re.fullmatch(r"[0-9a-f]{64}", me.get("csrf", "")),
          "GET /v1/session with alice's cookie: %s" % me)
    csrf = me["csrf"]
    st, _, b = http.request("POST", "/v1/tasks", cookie=c, body={"name": "forged-a"})
    check(st == 403, "a cookie POST without X-VDFS-CSRF: %d %r, want 403" % (st, b[:200]))
    check("cross-site" in b.decode("utf-8", "replace"), "the 403 does not say cross-site: %r" % b[:200])
    st, _, b = http.request("POST", "/v1/tasks", cookie=c, csrf=csrf, origin="http://evil.example",
                            body={"name": "forged-b"})
    check(st == 403, "a cookie POST with the CSRF header from Origin http://evil.example: %d %r, want 403" % (st, b[:200]))
    st, _, b = http.request("POST", "/v1/tasks", cookie=c, csrf="0" * 64, origin=http.origin,
                            body={"name": "forged-c"})
    check(st == 403, "a cookie POST with a wrong CSRF token: %d %r, want 403" % (st, b[:200]))
    names = [t["name"] for t in http.json("GET", "/v1/tasks", token=ROOT_TOKEN)["tasks"]]
    check(not any(n.startswith("forged-") for n in names), "a refused request made a task: %s" % names)
    st, _, b = http.request("POST", "/v1/tasks", cookie=c, csrf=csrf, origin=http.origin,
                            body={"name": "by-cookie"})
    check(st == 200, "the same POST with the CSRF header from the daemon's own origin: %d %r" % (st, b[:200]))
    ok("alice's cookie: POST /v1/tasks without X-VDFS-CSRF 403 (cross-site), with it from Origin "
       "http://evil.example 403, a wrong CSRF 403, nothing made; with it from the own origin 200")
    sign_out()
    st, _, _ = http.request("GET", "/v1/session", cookie=c)
    check(st == 401, "the cookie after #signout: GET /v1/session %d, want 401" % st)
    ok("#signout goes to /signin and ends the session (its cookie is 401)")


def t_reader():
    global step
    sign_in("bob", TOK["bob"])
    check("reader" in d.find_element("css selector", "#whoami").text, "#whoami for bob")
    goto("#/upload", "upload")
    check(not exists("#upload-go"), "a reader's upload page has #upload-go")
    check(not exists("form#create-task"), "a reader's upload page has form#create-task")
    goto("#/executors", "executors", lambda: exists('table#executor-list tr[data-executor]'))
    check(not exists("button.revoke"), "a reader's executors page has button.revoke")
    goto("#/tasks/webwc", "task", lambda: exists("table#versions tr[data-id]"))
    check(not exists("button#rerun"), "a reader's task page has button#rerun")
    goto("#/", "overview")
    check(not exists("#upload-go") and not exists("form#create-task") and not exists("button.revoke")
          and not exists("button#rerun"), "a reader's overview has a control it may not use")
    ok("bob (reader): no #upload-go, form#create-task, button.revoke or button#rerun in the DOM")
    step = "forged requests (bob)"
    c = session_cookie()["value"]
    me = http.json("GET", "/v1/session", cookie=c)
    check(me.get("role") == "reader", "GET /v1/session for bob: %s" % me)
    csrf = me["csrf"]
    for m, p, body in (("POST", "/v1/tasks", {"name": "bobs"}),
                       ("DELETE", "/v1/executors/e1", None),
                       ("POST", "/v1/tasks/webwc/rerun", {})):
        st, _, b = http.request(m, p, cookie=c, csrf=csrf, origin=http.origin, body=body)
        check(st == 403, "bob's forged %s %s: %d %r, want 403" % (m, p, st, b[:200]))
    ex = {e["name"]: e for e in http.json("GET", "/v1/status", token=ROOT_TOKEN)["executors"]}
    check(ex.get("e1", {}).get("state") != "revoked", "bob's refused DELETE revoked e1: %s" % ex.get("e1"))
    ok("bob's session with its CSRF token: POST /v1/tasks, DELETE /v1/executors/e1, rerun are 403; e1 stays")
    step = "revoked reader"
    r = subprocess.run([VDFS, "user", "revoke", "bob", "--state", STATE], capture_output=True, text=True)
    check(r.returncode == 0, "vdfs user revoke bob: %s" % r.stderr)
    st, _, _ = http.request("GET", "/v1/session", cookie=c)
    check(st == 401, "bob's cookie after vdfs user revoke bob: %d, want 401" % st)
    js("location.hash = '#/executors';")
    wait("the page of a revoked user to go to /signin", lambda: path_now() == "/signin")
    ok("bob revoked: his session is 401 at once and his open page goes to /signin")


def t_operator():
    global step
    sign_in("olga", TOK["olga"])
    goto("#/executors", "executors",
         lambda: exists('table#executor-list tr[data-executor="e1"]') and exists('table#executor-list tr[data-executor="e2"]'))
    step = "executors"
    api = {e["name"]: e for e in http.json("GET", "/v1/status", token=ROOT_TOKEN)["executors"]}
    for n in ("e1", "e2"):
        row = 'table#executor-list tr[data-executor="%s"]' % n
        for cell in ("td.level", "td.slots", "td.state", "td.done", "td.failed", "td.seen", "td.quarantined"):
            check(exists(row + " " + cell), "executor %s's row has no %s" % (n, cell))
        sl = d.find_element("css selector", row + " td.slots").text.strip()
        check(sl == str(api[n]["slots"]), "executor %s: td.slots %r, the API says %s" % (n, sl, api[n]["slots"]))
        check(exists(row + " button.revoke"), "the operator sees no button.revoke for %s" % n)
    ok("the executors page lists e1 and e2 (level, slots, state, done, failed, seen, quarantined); "
       "an operator has button.revoke")
    js("window.__vdmark = 'no reload';")
    d.find_element("css selector", 'table#executor-list tr[data-executor="e2"] button.revoke').click()
    try:
        wait("a confirm dialog", lambda: d.switch_to.alert, timeout=3, every=0.1)
        note("revoke asked to confirm: %r" % d.switch_to.alert.text)
        d.switch_to.alert.accept()
    except AssertionError:
        pass
    wait("e2's row to say revoked", lambda: d.find_element(
        "css selector", 'table#executor-list tr[data-executor="e2"] td.state').text.strip().startswith("revoked"))
    check(js("return window.__vdmark") == "no reload", "the executors page reloaded to show the revoke")
    api = {e["name"]: e for e in http.json("GET", "/v1/status", token=ROOT_TOKEN)["executors"]}
    check(api["e2"]["state"] == "revoked", "the API says e2 is %r" % api["e2"]["state"])
    check(api["e1"]["state"] != "revoked", "e1 was revoked too")
    shot("executors.png")
    ok("the operator revoked e2 with its button: its row says revoked without a reload; the API agrees")


def main():
    global B, d, step
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    why = vdweb.missing_prerequisites()
    if why:
        print("FAIL - web_test: " + why, flush=True)
        return 1
    rc = 1
    try:
        B = vdweb.Browser(WORK, download_dir=DL, log=note)
        d = B.d
        B.watch_csp()
        note("browser: %s %s" % (d.capabilities.get("browserName"), d.capabilities.get("browserVersion")))
        t_signin()
        pid = t_create_and_upload()
        t_overview_done(pid)
        t_version_preview(pid)
        t_rerun_owner()
        t_zip()
        t_lineage()
        t_escaping()
        t_live()
        no_script_ran("the overview at the end of alice's session")
        t_forged_alice()
        t_reader()
        t_operator()
        collect_csp()
        step = "console"
        logs = B.drain_log()
        bad = [e for e in B.logs if CSP_LOG.search(e.get("message", ""))]
        check(not csp_seen and not bad, "CSP violations: %s %s" % (csp_seen, [e["message"] for e in bad]))
        sev = [e["message"] for e in B.logs if e.get("level") == "SEVERE"]
        for m in sev:
            note("console (expected: refused requests): " + m[:200])
        ok("no Content-Security-Policy violation in any page (securitypolicyviolation events, console); "
           "%d console errors, none about CSP" % len(sev))
        del logs
        rc = 0
    except BaseException as e:  # noqa: B036 - report anything, then clean up
        if isinstance(e, SystemExit) and e.code == 143:
            print("FAIL - web_test: terminated at step %s" % step, flush=True)
        else:
            msg = str(e) if isinstance(e, (Fail, AssertionError)) else traceback.format_exc()
            print("FAIL - web_test at step %s: %s" % (step, msg), flush=True)
        if d is not None:
            try:
                print("# page state: %s" % json.dumps(state(), ensure_ascii=False)[:3000], flush=True)
                d.save_screenshot(os.path.join(SHOTS, "failure.png"))
                print("# screenshot of the failure: %s" % os.path.join(SHOTS, "failure.png"))
                collect_csp()
                B.drain_log()
                for x in csp_seen:
                    print("# CSP violation: %s" % x)
                for e in B.logs[-60:]:
                    print("# console %s: %s" % (e.get("level"), e.get("message", "")[:400]))
            except Exception as e2:
                print("# (could not read the page: %s)" % e2)
        rc = 1
    finally:
        if B is not None:
            B.quit()
    return rc


if __name__ == "__main__":
    sys.exit(main())

"""vdweb.py - headless Chromium for the dashboard's tests and benchmark.

Shared by mount-tests/web_test.py (t_web) and tools/bench-web.py. Debian's
chromium through chromium-driver, with python3-selenium (run these with
/usr/bin/python3, which has it). Each browser gets a fresh profile under the
caller's work directory and its own process group, so that quit() can end
exactly what it started, even when chromedriver or chromium hang.

Also: plain HTTP helpers (http.client, no redirects followed) that speak
to vdfsd with a bearer token or a session cookie, independently of the
page.
"""
import http.client
import json
import os
import signal
import threading
import time
import urllib.parse

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def missing_prerequisites():
    """A sentence naming what is missing, or None."""
    why = []
    for p, pkg in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(p, os.X_OK):
            why.append("%s is missing (package %s)" % (p, pkg))
    try:
        import selenium  # noqa: F401
    except ImportError:
        why.append("python module selenium is missing (package python3-selenium)")
    if why:
        return "; ".join(why) + ": run tools/setup.sh --deps-only"
    return None


class Browser:
    """One headless Chromium. b.d is the selenium WebDriver."""

    def __init__(self, work, name="chrome", download_dir=None, width=1280, height=900,
                 background_ok=False, log=None):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.work = work
        self.profile = os.path.join(work, name + "-profile")
        os.makedirs(self.profile, exist_ok=True)
        self.download_dir = download_dir
        o = webdriver.ChromeOptions()
        o.binary_location = CHROMIUM
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--user-data-dir=" + self.profile, "--window-size=%d,%d" % (width, height),
                  "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                  "--disable-sync", "--disable-background-networking",
                  "--disable-component-update", "--password-store=basic"):
            o.add_argument(a)
        if background_ok:
            # Tabs that are not in front keep running their timers and
            # streams at full speed, as five dashboards on five screens do.
            for a in ("--disable-background-timer-throttling",
                      "--disable-backgrounding-occluded-windows",
                      "--disable-renderer-backgrounding"):
                o.add_argument(a)
        prefs = {"credentials_enable_service": False,
                 "profile.password_manager_enabled": False}
        if download_dir:
            prefs.update({"download.default_directory": download_dir,
                          "download.prompt_for_download": False,
                          "download.directory_upgrade": True,
                          "safebrowsing.enabled": False})
        o.add_experimental_option("prefs", prefs)
        o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        # Own session and process group: quit() can kill the lot by group.
        self.service = Service(executable_path=CHROMEDRIVER,
                               log_path=os.path.join(work, name + "-chromedriver.out"),
                               env=dict(os.environ, TMPDIR=work),   # its scratch dirs too
                               popen_kw={"start_new_session": True})
        self.d = None
        try:
            self.d = webdriver.Chrome(service=self.service, options=o)
        except Exception:
            self.quit()
            raise
        self.d.set_page_load_timeout(120)
        self.d.set_script_timeout(60)
        if download_dir:
            try:
                self.d.execute_cdp_cmd("Browser.setDownloadBehavior",
                                       {"behavior": "allow", "downloadPath": download_dir})
            except Exception as e:  # the prefs alone do it in most versions
                if log:
                    log("# Browser.setDownloadBehavior: %s" % e)
        self.logs = []

    def pids(self):
        """chromedriver and everything it started that is still running."""
        proc = getattr(self.service, "process", None)
        return [proc.pid] + descendants(proc.pid) if proc is not None else []

    def watch_csp(self):
        """Record every Content-Security-Policy violation of every document
        this browser loads from now on into window.__vdcsp (the script is
        the DevTools protocol's, not the page's, so CSP does not stop it)."""
        self.d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": """
            window.__vdcsp = [];
            document.addEventListener('securitypolicyviolation', function (e) {
              window.__vdcsp.push(e.violatedDirective + ' blocked ' + (e.blockedURI || '(inline)') +
                                  ' at ' + (e.sourceFile || '') + ':' + (e.lineNumber || 0) +
                                  ' sample ' + (e.sample || ''));
            }, true);
        """})

    def drain_log(self):
        """The browser console entries since the last call (also kept in
        self.logs)."""
        try:
            new = self.d.get_log("browser")
        except Exception:
            new = []
        self.logs.extend(new)
        return new

    def quit(self):
        """End chromium and chromedriver: quit(), then KILL the process
        group and any process still using this profile, if they hang."""
        if self.d is not None:
            t = threading.Thread(target=self._quiet_quit, daemon=True)
            t.start()
            t.join(30)
            self.d = None
        proc = getattr(self.service, "process", None)
        tree = descendants(proc.pid) if proc is not None else []
        if proc is not None:
            try:
                proc.wait(timeout=10)
            except Exception:
                pass
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except OSError:
                    pass
                try:
                    proc.wait(timeout=10)
                except Exception:
                    pass
        # Chromium's own helpers could outlive chromedriver; they name our
        # profile on their command line, which is unique to this browser.
        for pid in tree + pids_with_arg("--user-data-dir=" + self.profile):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def _quiet_quit(self):
        try:
            self.d.quit()
        except Exception:
            pass


def descendants(pid):
    """The PIDs of pid's living descendants (by parent PID, from /proc)."""
    kids = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(p))
    out, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def pids_with_arg(arg):
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if arg.encode() in argv:
            out.append(int(p))
    return out


class Http:
    """Requests to vdfsd that follow no redirect: (status, headers, body)."""

    def __init__(self, url):
        self.url = url.rstrip("/")
        u = urllib.parse.urlsplit(self.url)
        self.host, self.port = u.hostname, u.port
        self.origin = "%s://%s:%d" % (u.scheme, u.hostname, u.port)

    def request(self, method, path, token=None, cookie=None, csrf=None, origin=None,
                body=None, headers=None):
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        if cookie:
            h["Cookie"] = "vdfs_session=" + cookie
        if csrf:
            h["X-VDFS-CSRF"] = csrf
        if origin:
            h["Origin"] = origin
        if body is not None and not isinstance(body, (bytes, bytearray)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        c = http.client.HTTPConnection(self.host, self.port, timeout=120)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def json(self, method, path, **kw):
        st, h, b = self.request(method, path, **kw)
        if st != 200:
            raise RuntimeError("%s %s: %d %s" % (method, path, st, b[:300]))
        return json.loads(b)

    def metric(self, token, name):
        st, _, b = self.request("GET", "/metrics", token=token)
        if st != 200:
            raise RuntimeError("GET /metrics: %d" % st)
        for line in b.decode().splitlines():
            f = line.split()
            if len(f) == 2 and f[0] == name:
                return float(f[1])
        raise RuntimeError("no metric %s in /metrics" % name)

    def sign_in(self, token):
        """POST /v1/session: (cookie value, reply)."""
        st, h, b = self.request("POST", "/v1/session", body={"token": token})
        if st != 200:
            raise RuntimeError("POST /v1/session: %d %s" % (st, b[:200]))
        sc = h.get("set-cookie", "")
        cookie = sc.split(";", 1)[0].split("=", 1)[1] if sc.startswith("vdfs_session=") else None
        return cookie, json.loads(b)


def wait_for(what, fn, timeout, every=0.2, on_fail=None):
    """Poll fn() until it returns a true value (returned); fail with what
    after timeout seconds. Exceptions from fn count as not yet."""
    end = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # an element not there yet, a stale one
            last = e
        if time.monotonic() >= end:
            msg = "timed out after %ds waiting for %s" % (timeout, what)
            if last is not None:
                msg += " (last error: %s)" % str(last).splitlines()[0] if str(last) else ""
            if on_fail:
                on_fail()
            raise AssertionError(msg)
        time.sleep(every)

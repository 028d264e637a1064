"""browser.py - Debian's headless Chromium for the integration tests, driven over its DevTools
protocol through ``--remote-debugging-pipe`` (file descriptors 3 and 4, messages ended by NUL):
no WebDriver, no third-party package, nothing downloaded; the browser is the one
scripts/install-deps.sh installs (package chromium, /usr/bin/chromium, or $CASSETTE_CHROMIUM).

    with Browser(tmp_path / "chromium") as b:
        page = b.new_page(1280, 900)
        page.goto("http://127.0.0.1:7630/")
        page.wait_for("document.querySelector('#clusters tr') !== null", timeout=30)
        value = page.evaluate("document.title")
        page.screenshot(path)
        assert not page.errors, page.errors   # console errors, exceptions, failed loads, CSP

Waiting is on a condition evaluated in the page (polled there every 100 ms), never a fixed sleep.
"""

import base64
import fcntl
import json
import os
import pathlib
import subprocess
import threading
import time

CHROMIUM = os.environ.get("CASSETTE_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium tries to reach Google's hosts at every start.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--no-default-browser-check",
         "--remote-debugging-pipe"]


class BrowserError(AssertionError):
    pass


def _high(fd):
    """fd moved to a number of 10 or more."""
    new = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return new


class Browser:
    def __init__(self, directory, timeout=30):
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        self.proc = None
        self.next_id = 0
        self.results = {}
        self.events = []
        self.cond = threading.Condition()
        self.closed = False
        self.log_path = self.dir / "chromium.log"

    # ---- the process and the pipe ----

    def start(self):
        if not os.access(CHROMIUM, os.X_OK):
            raise BrowserError(f"{CHROMIUM} is missing: scripts/install-deps.sh installs Debian's chromium")
        to_r, to_w = os.pipe()      # commands: we write, Chromium reads fd 3
        from_r, from_w = os.pipe()  # answers and events: Chromium writes fd 4, we read
        to_r, from_w = _high(to_r), _high(from_w)  # never 3 or 4 themselves
        profile = self.dir / "profile"
        profile.mkdir(exist_ok=True)
        # bash (dash takes single-digit fds only) puts the pipe ends at 3 and 4 and closes the
        # originals before Chromium starts.
        wrapper = f'exec "$0" "$@" 3<&{to_r} 4>&{from_w} {to_r}<&- {from_w}>&-'
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(["/bin/bash", "-c", wrapper, CHROMIUM, *FLAGS,
                                          f"--user-data-dir={profile}", "about:blank"],
                                         pass_fds=(to_r, from_w), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log)
        os.close(to_r)
        os.close(from_w)
        self.w, self.r = to_w, from_r
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.send("Browser.getVersion")  # answers once the browser is up
        return self

    def _read(self):
        buf = b""
        while True:
            try:
                chunk = os.read(self.r, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buf += chunk
            *messages, buf = buf.split(b"\0")
            with self.cond:
                for m in messages:
                    if not m:
                        continue
                    msg = json.loads(m)
                    if "id" in msg:
                        self.results[msg["id"]] = msg
                    else:
                        self.events.append(msg)
                self.cond.notify_all()
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def send(self, method, params=None, session=None, timeout=None):
        """The result of one DevTools command (BrowserError on an error answer)."""
        with self.cond:
            self.next_id += 1
            mid = self.next_id
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        data = json.dumps(msg).encode() + b"\0"
        while data:
            n = os.write(self.w, data)
            data = data[n:]
        deadline = time.monotonic() + (timeout or self.timeout)
        with self.cond:
            while mid not in self.results:
                left = deadline - time.monotonic()
                if self.closed or left <= 0:
                    raise BrowserError(f"{method}: no answer from Chromium"
                                       f"{' (it exited)' if self.closed else ''}: {self.log()[-2000:]}")
                self.cond.wait(left)
            answer = self.results.pop(mid)
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def new_page(self, width=1280, height=900):
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=session)
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
        return page

    def close(self):
        if self.proc is None:
            return
        try:
            if self.proc.poll() is None and not self.closed:
                self.send("Browser.close", timeout=10)
        except BrowserError:
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self.w, self.r):
            try:
                os.close(fd)
            except OSError:
                pass
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


class Page:
    def __init__(self, browser, session):
        self.b, self.session = browser, session

    def send(self, method, params=None, timeout=None):
        return self.b.send(method, params, session=self.session, timeout=timeout)

    def goto(self, url):
        r = self.send("Page.navigate", {"url": url})
        if r.get("errorText"):
            raise BrowserError(f"{url}: {r['errorText']}")
        self.wait_for("document.readyState === 'complete'")

    def evaluate(self, expression, timeout=None):
        """The value of a JavaScript expression in the page (a promise is awaited)."""
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                           "awaitPromise": True}, timeout=timeout)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise BrowserError(f"{expression[:200]}: {d.get('exception', {}).get('description') or d.get('text')}")
        return r.get("result", {}).get("value")

    def wait_for(self, expression, timeout=30):
        """The first truthy value of expression (as JSON gives it back: an element is {}),
        evaluated in the page every 100 ms; BrowserError after timeout seconds."""
        js = ("new Promise(done => { const t0 = Date.now(); (function check() { let v = null;"
              f" try {{ v = ({expression}); }} catch (e) {{ v = null; }}"
              f" if (v) done({{value: v}}); else if (Date.now() - t0 > {int(timeout * 1000)}) done(null);"
              " else setTimeout(check, 100); })(); })")
        r = self.evaluate(js, timeout=timeout + 10)  # {value} (an element arrives as {}), or null
        if r is None:
            text = self.evaluate("document.body ? document.body.innerText : ''") or ""
            raise BrowserError(f"not true after {timeout} s: {expression}\npage: {text[:3000]}\n"
                               f"errors: {self.errors}")
        return r.get("value")

    def screenshot(self, path):
        """A PNG of the whole page (the viewport grown to the page's height) at path."""
        height = self.evaluate("Math.max(document.documentElement.scrollHeight, window.innerHeight)")
        width = self.evaluate("window.innerWidth")
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": int(width), "height": int(height), "deviceScaleFactor": 1, "mobile": False})
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    @property
    def errors(self):
        """What the page reported as errors: console.error, uncaught exceptions, and the browser's
        own error entries (a failed load, an HTTP error status, a Content-Security-Policy
        violation)."""
        out = []
        with self.b.cond:
            events = [e for e in self.b.events if e.get("sessionId") == self.session]
        for e in events:
            p = e.get("params", {})
            if e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
            elif e["method"] == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                out.append("exception: " + str(d.get("exception", {}).get("description") or d.get("text")))
            elif e["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                entry = p["entry"]
                out.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}".strip())
        return out

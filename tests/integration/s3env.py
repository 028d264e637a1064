"""The S3 side of cassette's test environment: a real versitygw on loopback
(tests/env/s3.sh), our fault-injecting proxy in front of it (tests/env/faultproxy.py), and
awscli as the independent client. Nothing here needs Cassandra.

Fixtures (register them with ``pytest_plugins = ["s3env"]`` in conftest.py, or import them
into a test module):

- ``s3_server`` (session): the versitygw of tests/env/s3.sh, started if it is not running
  and then stopped at the end of the session; an :class:`S3Server`.
- ``s3_bucket`` (function): a fresh bucket with a unique name; emptied and deleted after the
  test (pending multipart uploads aborted too). Its value is the name.
- ``faultproxy`` (function): a :class:`FaultProxy` in front of the server, on free ports,
  stopped by pid after the test; ``faultproxy.endpoint`` is the URL to give a client,
  ``faultproxy.set("503", every=2)`` switches modes, ``faultproxy.counters()`` reads counters.

Functions: ``aws(*args, ...)`` runs awscli against the server and returns stdout;
``signed_request(...)`` sends one SigV4-signed request of our own (http.client).
"""

import datetime
import hashlib
import hmac
import http.client
import json
import os
import pathlib
import re
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

import pytest

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
S3_SH = ROOT / "tests" / "env" / "s3.sh"
FAULTPROXY_PY = ROOT / "tests" / "env" / "faultproxy.py"
BASE = pathlib.Path(os.environ.get("CASSETTE_TEST_DIR", "/tmp/cassette-test"))


def _aws_bin():
    for b in (os.environ.get("CASSETTE_AWS"), "/usr/bin/aws", shutil.which("aws")):
        if b and os.access(b, os.X_OK):
            return b
    raise AssertionError("no awscli (run scripts/install-deps.sh, or set CASSETTE_AWS)")


class AwsError(AssertionError):
    def __init__(self, args, proc):
        self.proc = proc
        super().__init__(f"aws {' '.join(map(str, args))} failed (exit {proc.returncode}):\n"
                         f"stdout: {proc.stdout[-3000:]}\nstderr: {proc.stderr[-3000:]}")


class S3Server:
    """The versitygw of tests/env/s3.sh under DIR (default $CASSETTE_TEST_DIR/s3)."""

    def __init__(self, dir=None, port=None, env=None):
        self.dir = pathlib.Path(dir) if dir else BASE / "s3"
        self.port_opt = port
        self.sh_env = env  # extra environment for s3.sh (e.g. CASSETTE_S3_META)
        self._env = None

    def sh(self, *args, check=True, timeout=180):
        cmd = [str(S3_SH), "--dir", str(self.dir)]
        if self.port_opt:
            cmd += ["--port", str(self.port_opt)]
        cmd += [str(a) for a in args]
        env = dict(os.environ, **self.sh_env) if self.sh_env else None
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL, env=env)
        if check and p.returncode != 0:
            raise AssertionError(f"s3.sh {' '.join(map(str, args))} failed (exit {p.returncode}):"
                                 f"\n{p.stdout}\n{p.stderr}")
        return p

    def is_running(self):
        return self.sh("status", check=False).returncode == 0

    def pid(self):
        p = self.sh("pid", check=False)
        return int(p.stdout) if p.returncode == 0 else None

    def start(self):
        self._env = None
        return self.sh("start").stdout.strip()

    def stop(self):
        self._env = None
        return self.sh("stop").stdout.strip()

    def env(self):
        """{AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_DEFAULT_REGION,
        AWS_ENDPOINT_URL} for clients of the running server (from `s3.sh env`)."""
        if self._env is None:
            out = {}
            for line in self.sh("env").stdout.splitlines():
                m = re.fullmatch(r"export ([A-Z_]+)=(.*)", line.strip())
                if m:
                    out[m.group(1)] = m.group(2)
            self._env = out
        return dict(self._env)

    @property
    def endpoint(self):
        return self.env()["AWS_ENDPOINT_URL"]

    @property
    def port(self):
        return urllib.parse.urlsplit(self.endpoint).port

    @property
    def access_key(self):
        return self.env()["AWS_ACCESS_KEY_ID"]

    @property
    def secret_key(self):
        return self.env()["AWS_SECRET_ACCESS_KEY"]

    @property
    def region(self):
        return self.env()["AWS_REGION"]

    @property
    def root(self):
        """The posix backend's top directory: bucket B, key K is the file root/B/K."""
        return self.dir / "root"

    def object_path(self, bucket, key):
        return self.root / bucket / key

    def aws_run(self, *args, endpoint=None, env=None, s3_config=None, timeout=600):
        """Runs awscli; returns the CompletedProcess (text). ``endpoint`` replaces the server's
        URL (e.g. a faultproxy), ``env`` adds/overrides variables (e.g. a wrong secret),
        ``s3_config`` is a dict of the config file's ``s3`` section (e.g.
        multipart_threshold)."""
        e = {k: v for k, v in os.environ.items()
             if not (k.startswith("AWS_") or k.startswith("BOTO"))}
        e.update(self.env())
        e.pop("AWS_ENDPOINT_URL", None)  # awscli 2.9 ignores it; newer ones must not mix it
        s3 = {"addressing_style": "path"}
        s3.update(s3_config or {})
        with tempfile.NamedTemporaryFile("w", prefix="cassette-aws-", suffix=".cfg",
                                         delete=False) as f:
            f.write(f"[default]\nregion = {self.region}\ns3 =\n")
            for k, v in s3.items():
                f.write(f"    {k} = {v}\n")
            cfg = f.name
        e.update({"AWS_CONFIG_FILE": cfg, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                  "AWS_EC2_METADATA_DISABLED": "true", "AWS_PAGER": "",
                  "AWS_CLI_AUTO_PROMPT": "off"})
        if env:
            e.update({k: str(v) for k, v in env.items()})
        cmd = [_aws_bin(), "--endpoint-url", endpoint or self.endpoint, *map(str, args)]
        try:
            return subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        finally:
            os.unlink(cfg)

    def aws(self, *args, **kw):
        """awscli against the server; stdout, or AwsError when it fails."""
        p = self.aws_run(*args, **kw)
        if p.returncode != 0:
            raise AwsError(args, p)
        return p.stdout

    def aws_json(self, *args, **kw):
        out = self.aws(*args, "--output", "json", **kw)
        return json.loads(out) if out.strip() else None

    def buckets(self):
        data = self.aws_json("s3api", "list-buckets") or {}
        return sorted(b["Name"] for b in data.get("Buckets", []))

    def client(self, endpoint=None, secret_key=None):
        """An in-process S3 client of our own (SigV4, http.client) for this server."""
        return S3Client(self, endpoint=endpoint, secret_key=secret_key)

    def mkbucket(self, name):
        with self.client() as c:
            c.create_bucket(name)
        return name

    def rmbucket(self, name):
        """Aborts the bucket's multipart uploads, deletes its objects, then the bucket."""
        with self.client() as c:
            c.delete_bucket(name, force=True)


_default_server = None


def default_server():
    global _default_server
    if _default_server is None:
        _default_server = S3Server()
    return _default_server


def aws(*args, **kw):
    """Runs awscli against the test server ($CASSETTE_TEST_DIR/s3) and returns its stdout;
    raises AwsError if it fails. Keywords: endpoint, env, s3_config, timeout (see
    S3Server.aws_run)."""
    return default_server().aws(*args, **kw)


def unique_bucket_name(hint="t"):
    """A valid, unique bucket name (3-63 of [a-z0-9-]) with a readable hint."""
    h = re.sub(r"[^a-z0-9]+", "-", hint.lower()).strip("-")[:40] or "t"
    return f"ct-{h}-{secrets.token_hex(4)}"


# ---- SigV4 requests of our own -------------------------------------------------------

def _hmac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sigv4_sign(method, url, headers, payload_hash, access_key, secret_key, region,
               service="s3", now=None):
    """Headers (a new dict) for a SigV4-signed request: every header of ``headers`` is
    signed, plus host, x-amz-date and x-amz-content-sha256 (``payload_hash``: the body's
    hex SHA-256, or "UNSIGNED-PAYLOAD")."""
    u = urllib.parse.urlsplit(url)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    h = {k.lower(): " ".join(str(v).split()) for k, v in headers.items()}
    h["host"] = u.netloc
    h["x-amz-date"] = amz_date
    h["x-amz-content-sha256"] = payload_hash
    path = urllib.parse.quote(urllib.parse.unquote(u.path) or "/", safe="/~")
    q = urllib.parse.parse_qsl(u.query, keep_blank_values=True)
    query = "&".join(f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
                     for k, v in sorted(q))
    names = sorted(h)
    creq = "\n".join([method, path, query, "".join(f"{k}:{h[k]}\n" for k in names),
                      ";".join(names), payload_hash])
    scope = f"{day}/{region}/{service}/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                     hashlib.sha256(creq.encode()).hexdigest()])
    k = _hmac(("AWS4" + secret_key).encode(), day)
    for part in (region, service, "aws4_request"):
        k = _hmac(k, part)
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    h["authorization"] = (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
                          f"SignedHeaders={';'.join(names)}, Signature={sig}")
    return h


def signed_request(server, method, path, body=b"", headers=None, endpoint=None,
                   secret_key=None, unsigned_headers=None, conn=None, chunked=False,
                   timeout=60):
    """Sends one signed request (path like "/bucket/key?x=y") to the server or ``endpoint``;
    returns (status, {header: value}, body bytes). ``conn`` reuses an http.client connection
    (keep-alive); ``chunked`` sends the body with Transfer-Encoding: chunked;
    ``unsigned_headers`` are added after signing (e.g. Expect)."""
    base = endpoint or server.endpoint
    url = base.rstrip("/") + path
    payload = "UNSIGNED-PAYLOAD" if chunked else hashlib.sha256(body).hexdigest()
    h = sigv4_sign(method, url, headers or {}, payload, server.access_key,
                   secret_key or server.secret_key, server.region)
    h.update(unsigned_headers or {})
    own = conn is None
    if own:
        u = urllib.parse.urlsplit(base)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        if chunked:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for k, v in h.items():
                conn.putheader(k, v)
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            step = 1000
            for i in range(0, len(body), step):
                piece = body[i:i + step]
                conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            conn.send(b"0\r\n\r\n")
        else:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for k, v in h.items():
                conn.putheader(k, v)
            if body or method in ("PUT", "POST"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body if body else None)
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        if own:
            conn.close()


class S3Error(AssertionError):
    def __init__(self, what, status, body):
        self.status = status
        m = re.search(rb"<Code>([^<]*)</Code>", body or b"")
        self.code = m.group(1).decode() if m else None
        super().__init__(f"{what}: HTTP {status} {self.code or ''} {body[:500]!r}")


class S3Client:
    """A small S3 client of our own on one keep-alive connection: quicker than awscli for
    fixtures, and a second independent reader of what was stored."""

    def __init__(self, server, endpoint=None, secret_key=None, timeout=60):
        self.server = server
        self.endpoint = endpoint or server.endpoint
        self.secret_key = secret_key
        u = urllib.parse.urlsplit(self.endpoint)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.conn.close()

    def request(self, method, bucket, key=None, body=b"", query=None, headers=None,
                ok=(200, 204)):
        path = "/" + urllib.parse.quote(bucket, safe="")
        if key is not None:
            path += "/" + urllib.parse.quote(key, safe="/-_.~")
        if query:
            path += "?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
        try:
            st, hdrs, data = signed_request(self.server, method, path, body, headers=headers,
                                            endpoint=self.endpoint, secret_key=self.secret_key,
                                            conn=self.conn)
        except (http.client.HTTPException, ConnectionError):
            self.conn.close()  # one retry on a fresh connection (the server may drop idle ones)
            st, hdrs, data = signed_request(self.server, method, path, body, headers=headers,
                                            endpoint=self.endpoint, secret_key=self.secret_key,
                                            conn=self.conn)
        if ok and st not in ok:
            raise S3Error(f"{method} {path}", st, data)
        return st, hdrs, data

    def create_bucket(self, bucket):
        self.request("PUT", bucket)

    def put(self, bucket, key, data):
        return self.request("PUT", bucket, key, data)[1].get("etag")

    def get(self, bucket, key):
        return self.request("GET", bucket, key)[2]

    def head(self, bucket, key):
        """The object's headers, or None if there is no such object."""
        st, hdrs, _ = self.request("HEAD", bucket, key, ok=(200, 404))
        return hdrs if st == 200 else None

    def delete(self, bucket, key):
        self.request("DELETE", bucket, key)

    def list_keys(self, bucket, prefix=""):
        keys, token = [], None
        while True:
            q = {"list-type": "2", "prefix": prefix}
            if token:
                q["continuation-token"] = token
            root = ET.fromstring(self.request("GET", bucket, query=q)[2])
            keys += [e.text for e in root.iterfind("{*}Contents/{*}Key")]
            token = root.findtext("{*}NextContinuationToken")
            if root.findtext("{*}IsTruncated") != "true" or not token:
                return keys

    def list_uploads(self, bucket):
        """[(key, upload id)] of the bucket's multipart uploads in progress."""
        root = ET.fromstring(self.request("GET", bucket, query={"uploads": ""})[2])
        return [(u.findtext("{*}Key"), u.findtext("{*}UploadId"))
                for u in root.iterfind("{*}Upload")]

    def delete_bucket(self, bucket, force=False):
        if force:
            for key, upload_id in self.list_uploads(bucket):
                self.request("DELETE", bucket, key, query={"uploadId": upload_id})
            for key in self.list_keys(bucket):
                self.delete(bucket, key)
        self.request("DELETE", bucket)


# ---- faultproxy ------------------------------------------------------------------------

class FaultProxy:
    """A running tests/env/faultproxy.py and a client of its control endpoint."""

    def __init__(self, upstream_port, log_path=None, start_timeout=30):
        self.log_path = pathlib.Path(log_path) if log_path else None
        err = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(
                [sys.executable, str(FAULTPROXY_PY), "--upstream", f"127.0.0.1:{upstream_port}",
                 "--port", "0", "--control-port", "0"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        finally:
            if self.log_path:
                err.close()
        self.pid = self.proc.pid
        try:
            info = self._ready_line(start_timeout)
        except BaseException:
            self.stop()
            raise
        self.port = info["port"]
        self.control_port = info["control_port"]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.control = f"http://127.0.0.1:{self.control_port}"

    def _ready_line(self, timeout):
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        buf = b""
        try:
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"faultproxy (pid {self.pid}) not ready after {timeout}s"
                                         f"{self._log_tail()}")
                if sel.select(left):
                    chunk = os.read(self.proc.stdout.fileno(), 4096)
                    if not chunk:
                        raise AssertionError(f"faultproxy exited while starting (exit "
                                             f"{self.proc.wait(5)}){self._log_tail()}")
                    buf += chunk
        finally:
            sel.close()
        return json.loads(buf.split(b"\n", 1)[0])

    def _log_tail(self):
        if self.log_path and self.log_path.exists():
            return "\n" + self.log_path.read_text(errors="replace")[-3000:]
        return ""

    def _call(self, method, path, body=None, timeout=10):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.control + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise AssertionError(f"faultproxy {method} {path}: HTTP {e.code} "
                                 f"{e.read().decode(errors='replace')}") from None

    def set(self, mode, **kw):
        """Switches the mode: set("pass"), set("503", every=2), set("reset", after=K,
        where="response"|"request", how="rst"|"fin"), set("stall", seconds=S, after=K);
        common keys every, limit, method, path. Returns the new state."""
        return self._call("POST", "/mode", dict(kw, mode=mode))

    def passthrough(self):
        return self.set("pass")

    def state(self):
        return self._call("GET", "/state")

    def counters(self):
        return self._call("GET", "/counters")

    def log(self):
        return self._call("GET", "/log")

    def reset(self):
        return self._call("POST", "/reset")

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=10):
        """SIGTERM by pid, then SIGKILL after the deadline; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout:
            self.proc.stdout.close()
        return self.proc.returncode


# ---- fixtures --------------------------------------------------------------------------

@pytest.fixture(scope="session")
def s3_server():
    srv = default_server()
    started = not srv.is_running()
    print(f"\n[s3env] {srv.start()}")
    yield srv
    if started:
        print(f"\n[s3env] {srv.stop()}")


@pytest.fixture
def s3_bucket(s3_server, request):
    name = s3_server.mkbucket(unique_bucket_name(request.node.name))
    yield name
    try:
        s3_server.rmbucket(name)
    except AssertionError as e:
        print(f"[s3env] deleting bucket {name} failed: {e}")
        path = s3_server.root / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def faultproxy(s3_server, tmp_path):
    fp = FaultProxy(s3_server.port, log_path=tmp_path / "faultproxy.log")
    yield fp
    rc = fp.stop()
    assert rc == 0, f"faultproxy exited with {rc}{fp._log_tail()}"

"""`cassette server` for the integration tests (issue 20).

- ``ServerProc``: one `cassette server` process with its own state and config: ``start()`` waits
  until GET /healthz answers, ``call(method, path, body)`` -> (status, JSON document) with urllib
  (no third-party HTTP client; with ``token``, as that bearer token), ``runs(**filters)``, ``wait_run(pred)``, ``kill()`` (SIGKILL),
  ``stop()`` (SIGTERM, waits). Its stderr goes to ``<dir>/server.log``.
- ``single_cluster`` (session fixture): node 19 of tests/env/cassandra.sh as a one-node cluster
  of its own ("cassette-single") with its agent, like clusterenv.py's fixtures (a ClusterEnv);
  tests that take it are marked ``cluster`` (conftest.py).
- ``overlaps(a, b)`` and ``intervals(runs)``: run records as [started, ended] intervals.
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from clusterenv import ClusterEnv, _ensure_bucket, _finish


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProc:
    """`cassette server --config <dir>/server.ini ARGS` on 127.0.0.1:<port>."""

    def __init__(self, cassette_bin, directory, cluster_env, args=(), env=None, port=None,
                 server_id="srv", state=None, settings=None, token=None):
        self.bin = cassette_bin
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cluster_env = cluster_env
        self.args = [str(a) for a in args]
        self.extra_env = dict(env or {})
        self.server_id = server_id
        self.state = state or f"sqlite:{self.dir / 'server.db'}"
        self.settings = dict(settings or {})  # more [server] rows: lease, export_repo, ...
        self.token = token  # sent as a bearer token by call() (a server started with --tokens-file)
        self.proc = None
        self.log_path = self.dir / "server.log"

    def config(self):
        c = self.cluster_env
        ini = self.dir / "server.ini"
        ini.write_text("[server]\n"
                       f"listen = 127.0.0.1:{self.port}\n"
                       f"state = {self.state}\n"
                       f"server_id = {self.server_id}\n"
                       "workers = 2\n"
                       + "".join(f"{k} = {v}\n" for k, v in self.settings.items()) +
                       "[cluster]\n"
                       f"agent_token_file = {c.token_file}\n"
                       f"agent_ca_file = {c.ca}\n"
                       f"agent_cert = {c.client_cert}\n"
                       f"agent_key = {c.client_key}\n")
        return ini

    def env(self):
        e = {k: v for k, v in os.environ.items() if not k.startswith("CASSETTE_")}
        e["CASSETTE_STATE_DIR"] = str(self.dir / "state")
        e["XDG_CACHE_HOME"] = str(self.dir / "cache")
        e.update(self.cluster_env.s3_env())
        e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        e.update(self.extra_env)
        return e

    def start(self, timeout=60):
        cmd = [str(self.bin), "server", "--config", str(self.config()), "-v", *self.args]
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                     env=self.env())
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"cassette server exited {self.proc.returncode}:\n{self.log()}")
            try:
                if self.call("GET", "/healthz", timeout=2)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"cassette server does not answer /healthz:\n{self.log()}")

    def info(self):
        """GET /v1/server: leader, epoch, the lease."""
        return self.ok("GET", "/v1/server")

    def log(self):
        return self.log_path.read_text() if self.log_path.exists() else ""

    def call(self, method, path, body=None, timeout=120):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                text = r.read().decode()
                status = r.status
        except urllib.error.HTTPError as e:
            text = e.read().decode()
            status = e.code
        return status, (json.loads(text) if text else None)

    def ok(self, method, path, body=None, want=(200, 201, 202, 204)):
        st, doc = self.call(method, path, body)
        assert st in want, f"{method} {path}: {st} {doc}\n{self.log()[-3000:]}"
        return doc

    def runs(self, **filters):
        q = "&".join(f"{k}={v}" for k, v in filters.items())
        return self.ok("GET", "/v1/runs" + (f"?{q}" if q else ""))["runs"]

    def wait_run(self, pred, timeout=300, what="a run", **filters):
        """The first run (of those filters give) for which pred is true, waiting for it."""
        deadline = time.monotonic() + timeout
        while True:
            for r in self.runs(**filters):
                if pred(r):
                    return r
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} after {timeout} s: {json.dumps(self.runs(**filters))[:3000]}"
                                     f"\n{self.log()[-3000:]}")
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"cassette server exited {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.5)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, timeout=120):
        if self.proc is None or self.proc.poll() is not None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"cassette server did not stop on SIGTERM:\n{self.log()[-3000:]}")


def intervals(runs):
    """[(started, ended, run)] of the runs that started (ended: now when still running)."""
    now = time.time()
    return [(r["started"], r["ended"] or now, r) for r in runs if r.get("started")]


def overlaps(a, b):
    return a[0] < b[1] and b[0] < a[1]


@pytest.fixture(scope="session")
def single_cluster(cassette_bin, s3_server, tmp_path_factory):
    """Node 19 (CASSETTE_TEST_SINGLE_NODE), "cassette-single": a one-node cluster of its own with
    its agent and a driver session (single_cluster.session); a ClusterEnv."""
    _ensure_bucket(s3_server)
    n = int(os.environ.get("CASSETTE_TEST_SINGLE_NODE") or 19)  # another number: a second one side by side
    c = ClusterEnv("cassette-single", n, n, cassette_bin, s3_server, tmp_path_factory)
    c.start()
    c.connect()
    yield c
    _finish(c)

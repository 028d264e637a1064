"""A running `cassette server`, every route of docs/server-openapi.yaml, each answer checked.

A real `cassette server` (build/asan/cassette) with a tokens file (an admin, an operator limited
to cluster c1, a viewer) and a SQLite state in the test's directory is called over HTTP on every
route, including the 400/401/403/404/405/409/502 cases, and every answer is held to the OpenAPI
file with openapi_check.py (our own checker). The audit log must hold every change made past
authentication, and no token, neither does the server's output.

- test_server_without_a_cluster: no Cassandra; a cluster whose contact cannot be reached is 502
  and nothing is stored; every route of a cluster, task or run that does not exist is 404.
- test_server_with_the_node: the test node (CASSETTE_TEST_NODE) and an agent beside it
  (plain HTTP on loopback): registration discovers it, backups list its repository, a backup
  run is queued and runs, a restore is queued, cancel, the 409s, removal.
"""
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from openapi_check import OpenAPI  # noqa: E402

TOKENS = {"admin": "srv-admin-token-0123456789", "oper": "srv-oper-token-0123456789",
          "view": "srv-view-token-0123456789"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, proc, port, out, err, api):
        self.proc, self.port, self.out, self.err, self.api = proc, port, out, err, api
        self.changes = 0

    def call(self, method, path, body=None, token="admin", query=None, raw=None, expect=None):
        """(status, JSON body or None, or the text of a page); the answer is checked against the
        OpenAPI file, its Content-Type too; self.headers: the answer's headers."""
        url = f"http://127.0.0.1:{self.port}{path}" + (f"?{query}" if query else "")
        data = raw.encode() if raw is not None else (json.dumps(body).encode() if body is not None else None)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {TOKENS.get(token, token)}"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                status, text, self.headers = r.status, r.read().decode(), r.headers
        except urllib.error.HTTPError as e:
            status, text, self.headers = e.code, e.read().decode(), e.headers
        ctype = (self.headers.get("Content-Type") or "").split(";")[0]
        doc = (json.loads(text) if ctype == "application/json" else text) if text.strip() else None
        if text.strip():
            known = self.api.route(path)[1] is not None
            types = self.api.media_types(method, path, status) if known else ["application/json"]
            assert ctype in types, (method, path, status, ctype)
        assert self.headers.get("X-Content-Type-Options") == "nosniff", (method, path)
        self.api.check(method, path, status, doc)
        if token in TOKENS and method != "GET" and status != 401:
            self.changes += 1
        if expect is not None:
            assert status == expect, f"{method} {path}: {status} {doc}"
        return status, doc


@pytest.fixture
def start_server(cassette_bin, tmp_path):
    started = []

    def start(*extra, config=None):
        d = tmp_path / f"server{len(started)}"
        d.mkdir()
        tokens = d / "tokens"
        tokens.write_text("# test tokens\nroot admin {admin}\nops operator {oper} c1\nlook viewer {view}\n"
                          .format(**TOKENS))
        tokens.chmod(0o600)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CASSETTE_")}
        env["CASSETTE_STATE_DIR"] = str(d / "state")
        env["XDG_CACHE_HOME"] = str(d / "cache")
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        cmd = [str(cassette_bin)] + (["--config", str(config)] if config else []) + [
            "server", "--listen", f"127.0.0.1:{port}", "--tokens-file", str(tokens),
            "--state", f"sqlite:{d / 'server.db'}", "--server-id", "test-api", "--workers", "1", *extra]
        out, err = d / "out", d / "err"
        with open(out, "w") as fo, open(err, "w") as fe:
            proc = subprocess.Popen(cmd, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL, env=env)
        s = Server(proc, port, out, err, OpenAPI())
        started.append(s)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"cassette server exited {proc.returncode}: {err.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    if r.status == 200:
                        return s
            except OSError:
                time.sleep(0.2)
        pytest.fail(f"cassette server did not answer: {err.read_text()[-2000:]}")

    yield start
    for s in started:
        if s.proc.poll() is None:
            s.proc.send_signal(signal.SIGTERM)
            try:
                s.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                s.proc.kill()
                s.proc.wait()
        for f in (s.out, s.err):
            text = f.read_text()
            assert not any(t in text for t in TOKENS.values()), f"a token is in the server's {f.name}"
            assert "runtime error" not in text and "AddressSanitizer" not in text, text[-3000:]


def audit_holds_every_change(s):
    st, doc = s.call("GET", "/v1/audit", query="limit=1000", expect=200)
    entries = doc["audit"]
    assert len(entries) == s.changes, [(e["method"], e["path"], e["status"]) for e in entries]
    text = json.dumps(entries)
    assert not any(t in text for t in TOKENS.values())
    assert all(e["who"] in ("root", "ops", "look") and e["what"] for e in entries)
    return entries


def test_server_without_a_cluster(start_server):
    s = start_server()
    s.call("GET", "/healthz", token=None, expect=200)
    st, doc = s.call("GET", "/version", token=None, expect=200)
    assert doc["version"] and doc["tokens"] is True
    # the status page: no token, its type and a strict policy (test_status_page.py loads it in Chromium)
    for path in ("/", "/status", "/status.js", "/status.css"):
        st, text = s.call("GET", path, token=None, expect=200)
        assert "charset=utf-8" in s.headers["Content-Type"]
        csp = s.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe" not in csp, csp
        assert s.headers["Cache-Control"] == "no-store"
    s.call("POST", "/status", token=None, expect=405)
    s.call("GET", "/v1/server", token="view", expect=200)
    st, text = s.call("GET", "/metrics", token="view", expect=200)
    assert "cassette_clusters 0\n" in text and "cassette_server_leader" in text, text
    for method, path in (("GET", "/metrics"), ("GET", "/v1/server"), ("GET", "/v1/clusters"), ("POST", "/v1/clusters"),
                         ("GET", "/v1/tasks"), ("GET", "/v1/runs"), ("GET", "/v1/audit"),
                         ("DELETE", "/v1/clusters/c1")):
        s.call(method, path, body={} if method == "POST" else None, token=None, expect=401)
        s.call(method, path, body={} if method == "POST" else None, token="wrong-token-0123456789",
               expect=401)
    s.call("GET", "/v1/clusters", token="view", expect=200)
    # 502: a cluster that cannot be reached, nothing stored
    st, doc = s.call("POST", "/v1/clusters", body={"id": "c1", "contact": "127.0.0.1:1",
                                                     "agents": ["http://127.0.0.1:1"], "repo": "/nonexistent/r"})
    assert st == 502, doc
    s.call("GET", "/v1/clusters/c1", expect=404)
    # 400s and 403s
    s.call("POST", "/v1/clusters", raw='{"id": "c1", ', expect=400)
    st, doc = s.call("POST", "/v1/clusters", body={"id": "c1", "contact": "h", "repo": "/r", "x": 1}, expect=400)
    assert doc["field"] == "x"
    s.call("POST", "/v1/clusters", body={"id": "c1", "contact": "h", "repo": "/r"}, token="view", expect=403)
    s.call("POST", "/v1/clusters", body={"id": "c2", "contact": "h", "repo": "/r"}, token="oper", expect=403)
    s.call("POST", "/v1/tasks", body={"cluster": "c1", "kind": "backup"}, token="view", expect=403)
    st, doc = s.call("POST", "/v1/tasks", body={"cluster": "c1", "kind": "backup"}, expect=404)
    s.call("GET", "/v1/runs", token="view", query="state=asleep", expect=400)
    s.call("GET", "/v1/audit", token="oper", expect=403)
    # 404 for every route of an unknown cluster, task, run (403 for the operator's other clusters)
    for method, path, body in (
            ("GET", "/v1/clusters/c9", None), ("PATCH", "/v1/clusters/c9", {"labels": {}}),
            ("DELETE", "/v1/clusters/c9", None), ("POST", "/v1/clusters/c9/discover", None),
            ("GET", "/v1/clusters/c9/backups", None), ("GET", "/v1/clusters/c9/backups/b1", None),
            ("POST", "/v1/clusters/c9/backups", {}), ("GET", "/v1/clusters/c9/restores", None),
            ("POST", "/v1/clusters/c9/restores", {"backup": "b1"}), ("GET", "/v1/tasks/t9", None),
            ("PATCH", "/v1/tasks/t9", {"enabled": False}), ("DELETE", "/v1/tasks/t9", None),
            ("POST", "/v1/tasks/t9/run", None), ("GET", "/v1/runs/r9", None), ("POST", "/v1/runs/r9/cancel", None),
            ("GET", "/v1/nowhere", None)):
        s.call(method, path, body=body, expect=404)
    s.call("GET", "/v1/clusters/c9", token="oper", expect=403)
    s.call("POST", "/v1/clusters/c9/backups", body={}, token="oper", expect=403)
    s.call("PUT", "/v1/clusters", body={}, expect=405)
    s.call("GET", "/v1/tasks", token="view", expect=200)
    s.call("GET", "/v1/runs", token="view", query="limit=5", expect=200)
    audit_holds_every_change(s)


def wait_final(s, run_id, deadline_s=300):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        st, doc = s.call("GET", f"/v1/runs/{run_id}", token="view", expect=200)
        if doc["state"] in ("done", "failed", "cancelled", "interrupted"):
            return doc
        time.sleep(1)
    pytest.fail(f"run {run_id} did not end: {doc}")


def test_server_with_the_node(start_server, cassette, node, tmp_path):
    repo = tmp_path / "repo"
    assert cassette("init", "--repo", repo, "--no-encryption").ok
    aport = free_port()
    aerr = tmp_path / "agent.err"
    env = cassette.env()
    with open(tmp_path / "agent.out", "w") as fo, open(aerr, "w") as fe:
        agent = subprocess.Popen([str(cassette.bin), "--config", str(node.ini), "agent", "--listen",
                                  f"127.0.0.1:{aport}", "--insecure-loopback", "--allow-repo", str(repo)],
                                 stdout=fo, stderr=fe, stdin=subprocess.DEVNULL, env=env)
    try:
        time.sleep(1)
        s = start_server(config=node.ini)
        cluster = {"id": "c1", "agents": [f"http://127.0.0.1:{aport}"], "repo": str(repo),
                   "labels": {"env": "test"}}
        st, doc = s.call("POST", "/v1/clusters", body=cluster)
        assert st == 201, (doc, aerr.read_text()[-2000:])
        assert doc["nodes"] and doc["name"]
        s.call("POST", "/v1/clusters", body=cluster, expect=409)
        s.call("GET", "/v1/clusters", token="oper", expect=200)
        s.call("GET", "/v1/clusters/c1", token="oper", expect=200)
        s.call("PATCH", "/v1/clusters/c1", body={"labels": {"env": "prod"}}, expect=200)
        s.call("PATCH", "/v1/clusters/c1", body={"name": "x"}, expect=400)
        s.call("POST", "/v1/clusters/c1/discover", expect=200)
        s.call("GET", "/v1/clusters/c1/backups", token="view", expect=200)
        s.call("GET", "/v1/clusters/c1/backups/nope", token="view", expect=404)
        # tasks
        task = {"id": "t1", "cluster": "c1", "kind": "purge", "schedule": "0 3 * * *",
                "timezone": "Europe/Berlin", "window": ["01:00-05:00"], "params": {"keep_last": 5}}
        s.call("POST", "/v1/tasks", body=task, expect=201)
        s.call("POST", "/v1/tasks", body=task, expect=409)
        s.call("POST", "/v1/tasks", body={"cluster": "c1", "kind": "backup", "schedule": "0 0 30 2 *"}, expect=400)
        s.call("POST", "/v1/tasks", body={"cluster": "c1", "kind": "backup",
                                          "window": ["01:00-05:00", "04:00-06:00"]}, expect=400)
        s.call("GET", "/v1/tasks", token="view", query="cluster=c1", expect=200)
        s.call("GET", "/v1/tasks/t1", token="oper", expect=200)
        s.call("PATCH", "/v1/tasks/t1", body={"enabled": False, "window": None}, expect=200)
        # runs
        s.call("POST", "/v1/clusters/c1/backups", body={"type": "cluster_consistent"}, token="oper", expect=400)
        st, run = s.call("POST", "/v1/clusters/c1/backups", body={"type": "snapshot"}, token="oper", expect=202)
        st, doc = s.call("DELETE", "/v1/clusters/c1")
        assert st == 409, doc  # the backup is queued or running
        done = wait_final(s, run["id"])
        assert done["state"] == "done", done
        st, text = s.call("GET", "/metrics", token="oper", expect=200)  # the runner counted it once
        assert 'cassette_task_runs_total{cluster="c1",kind="backup",state="done"} 1\n' in text, text
        s.call("POST", f"/v1/runs/{run['id']}/cancel", token="oper", expect=409)
        st, backups = s.call("GET", "/v1/clusters/c1/backups", token="view", expect=200)
        assert backups["backups"], backups
        name = backups["backups"][0]["name"]
        s.call("GET", f"/v1/clusters/c1/backups/{name}", token="view", expect=200)
        st, prun = s.call("POST", "/v1/tasks/t1/run", token="oper", expect=202)
        st, rrun = s.call("POST", "/v1/clusters/c1/restores", token="oper",
                          body={"backup": name, "keyspaces": ["no_such_keyspace"], "plan": True}, expect=202)
        st, c = s.call("POST", f"/v1/runs/{rrun['id']}/cancel", token="oper")
        assert st in (202, 409), c
        s.call("GET", "/v1/clusters/c1/restores", token="view", expect=200)
        s.call("GET", "/v1/runs", token="view", query="cluster=c1&limit=10", expect=200)
        s.call("GET", f"/v1/runs/{prun['id']}", token="oper", expect=200)
        for r in (prun, rrun):
            wait_final(s, r["id"])
        s.call("DELETE", "/v1/tasks/t1", token="oper", expect=403)
        s.call("DELETE", "/v1/tasks/t1", expect=204)
        s.call("DELETE", "/v1/clusters/c1", expect=204)
        s.call("GET", "/v1/clusters/c1", expect=404)
        audit_holds_every_change(s)
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(timeout=60)
        except subprocess.TimeoutExpired:
            agent.kill()

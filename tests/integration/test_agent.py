"""`cassette agent` (issue 19, first step): the op table of the test node over HTTPS.

Each test starts the ASan binary as an agent beside the real node (`--config` the node's
cassette.ini, so its host settings are the CLI's: in the secured pass the login, TLS and JMX
login too), with a self-signed certificate made here by the openssl CLI and a bearer token in a
file of mode 600, waits until it answers, calls it with http.client over TLS (the certificate
checked), and stops it with SIGTERM at the end (exit 0; its output never holds the token).

- GET /v1/node matches the node as the Python driver reads system.local.
- GET /v1/ops lists what an agent serves with the request fields.
- A backup job: progress polled until done, its result document has the shape of
  `cassette backup --json`; a restore job after a TRUNCATE gives every row back, row by row.
- A backup canceled at once ends "canceled" (exit code 130, as SIGINT does in the CLI); the next
  backup succeeds.
- No token / a wrong token: 401 and nothing done; malformed JSON, unknown op, an operation the
  agent does not serve, an oversized body: one clear error each; a restore naming an unknown
  backup: the job fails saying so.
- The token is in neither the agent's stdout/stderr nor /proc/PID/cmdline.
- --allow-repo: a request's repository must be an allowed one or below it (a sibling sharing a
  prefix and a ".." component are refused: 403); an agent without it serves no request that names
  a repository; init over the agent is refused (403); a ".." in --allow-repo stops the start.
- snapshot -> backup with `snapshot` -> the tag is gone from disk; snapshot clear of it then says
  cleared false.
- GET /v1/node when the node is stopped: 200 with "live": false and the facts read before (the
  node facts cache); 503 from an agent with no cache; snapshot clear on the stopped node removes
  the tag's directories. The node is started again at the end.
- Fencing (issue 20): a command carrying X-Cassette-Epoch N runs; a replay carrying N-1 is 409
  ("fenced: epoch N-1 is older than N") and runs nothing (no job, no snapshot); the highest
  epoch is kept in <state_dir>/agent-epoch across a restart; a malformed epoch is 400; a request
  without the header (the CLI's) is served."""

import http.client
import json
import os
import pathlib
import re
import signal
import socket
import ssl
import subprocess
import time

import pytest
from conftest import wait_cql

TOKEN_BYTES = 32


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Agent:
    def __init__(self, proc, port, token, ctx, out, err):
        self.proc, self.port, self.token, self.ctx = proc, port, token, ctx
        self.out, self.err = out, err

    def call(self, method, path, body=None, token=True, raw=None, epoch=None):
        """(status, JSON document) of one request; token=False sends none, a string sends it;
        epoch: the X-Cassette-Epoch header's value (None: none)."""
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=60)
        headers = {"Content-Type": "application/json"}
        if epoch is not None:
            headers["X-Cassette-Epoch"] = str(epoch)
        if token:
            headers["Authorization"] = f"Bearer {self.token if token is True else token}"
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        try:
            conn.request(method, path, body=data, headers=headers)
            r = conn.getresponse()
            text = r.read().decode()
            return r.status, json.loads(text)
        finally:
            conn.close()

    def start_job(self, op, request):
        st, doc = self.call("POST", f"/v1/ops/{op.replace(' ', '%20')}", request)
        assert st == 202, (st, doc)
        return doc["job"]

    def wait_job(self, job, deadline_s=300):
        """Polls the job until it is over; (final document, progress records seen)."""
        seen = []
        deadline = time.monotonic() + deadline_s
        while True:
            st, doc = self.call("GET", f"/v1/jobs/{job}")
            assert st == 200, (st, doc)
            seen.append(doc["progress"])
            if doc["state"] != "running":
                return doc, seen
            assert time.monotonic() < deadline, f"job {job} still running: {doc}"
            time.sleep(0.1)


def _openssl(*args):
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def _cert(d, name, issuer=None, san="IP:127.0.0.1"):
    """A certificate and key (PEM) named name in d: self-signed, or signed by issuer (a pair)."""
    cert, key = d / f"{name}.pem", d / f"{name}.key"
    if issuer is None:
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", key, "-out", cert, "-days", "1", "-subj", f"/CN={name}", "-addext",
                 f"subjectAltName={san}")
    else:
        csr = d / f"{name}.csr"
        _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", key, "-out", csr, "-subj", f"/CN={name}")
        _openssl("x509", "-req", "-in", csr, "-CA", issuer[0], "-CAkey", issuer[1], "-CAcreateserial",
                 "-out", cert, "-days", "1")
    return cert, key


@pytest.fixture
def start_agent(cassette, node, tmp_path):
    """start(*extra_args, client_cert=None) -> a running Agent over HTTPS with a token; every
    agent started is stopped with SIGTERM at the end and must exit 0 without the token in its
    output."""
    started = []

    def start(*extra, client_cert=None, allow=(tmp_path,), env=None):
        d = tmp_path / f"agent{len(started)}"
        d.mkdir()
        token = os.urandom(TOKEN_BYTES).hex()
        tok = d / "token"
        tok.write_text(token + "\n")
        tok.chmod(0o600)
        cert, key = _cert(d, "server")
        ctx = ssl.create_default_context(cafile=str(cert))
        if client_cert:
            ctx.load_cert_chain(*map(str, client_cert))
        port = _free_port()
        out, err = d / "stdout", d / "stderr"
        cmd = [str(cassette.bin), "--config", str(node.ini), "agent", "--listen", f"127.0.0.1:{port}",
               "--token-file", str(tok), "--tls-cert", str(cert), "--tls-key", str(key), *map(str, extra)]
        for loc in allow:
            cmd += ["--allow-repo", str(loc)]
        with open(out, "w") as fo, open(err, "w") as fe:
            proc = subprocess.Popen(cmd, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL,
                                    env={**cassette.env(), **(env or {})})
        a = Agent(proc, port, token, ctx, out, err)
        a.server_cert = cert
        started.append(a)
        deadline = time.monotonic() + 30
        while True:  # readiness: the port takes connections
            assert proc.poll() is None, f"agent exited {proc.returncode}: {err.read_text()}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"agent did not listen: {err.read_text()}"
            time.sleep(0.05)
        return a

    yield start
    for a in started:
        if a.proc.poll() is None:
            a.proc.send_signal(signal.SIGTERM)
            try:
                rc = a.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                a.proc.kill()
                raise
            assert rc == 0, f"agent exited {rc} on SIGTERM: {a.err.read_text()}"
        for f in (a.out, a.err):
            assert a.token not in f.read_text(), f"the token is in the agent's {f.name}"
        assert "ERROR: AddressSanitizer" not in a.err.read_text(), a.err.read_text()


@pytest.fixture
def agent(start_agent):
    return start_agent()


def _openapi_requests():
    """{op name: (request properties, required ones)} from docs/agent-openapi.yaml, read as
    text (its layout: the enum of /v1/ops/{name}, and one <Op>Request schema per operation)."""
    text = (pathlib.Path(__file__).parents[2] / "docs" / "agent-openapi.yaml").read_text()
    ops = re.search(r"enum: \[(backup[^\]]*)\]", text).group(1).split(", ")
    out = {}
    for op in ops:
        schema = "".join(w.capitalize() for w in op.split()) + "Request"
        block = re.search(rf"\n    {schema}:\n((?:      .*\n|\n)+)", text).group(1)
        required = re.search(r"^      required: \[([^\]]*)\]", block, re.M)
        props = block.split("      properties:\n", 1)[1]
        out[op] = (set(re.findall(r"^        (\w+):", props, re.M)),
                   set(required.group(1).split(", ")) if required else set())
    return out


def _host_id(session):
    return str(session.execute("SELECT host_id FROM system.local").one().host_id)


def test_node_and_ops(agent, session, node):
    st, facts = agent.call("GET", "/v1/node")
    assert st == 200, facts
    assert facts["live"] is True
    local = session.execute("SELECT host_id, cluster_name, data_center, rack, tokens, release_version"
                            " FROM system.local").one()
    assert facts["host_id"] == str(local.host_id)
    assert facts["cluster_name"] == local.cluster_name
    assert facts["datacenter"] == local.data_center and facts["rack"] == local.rack
    assert facts["release_version"] == local.release_version
    assert sorted(facts["tokens"]) == sorted(local.tokens)
    assert [d["path"] for d in facts["data_dirs"]] == [str(p) for p in node.data_dirs]
    assert all(d["free_bytes"] > 0 and d["total_bytes"] >= d["free_bytes"] for d in facts["data_dirs"])

    st, ops = agent.call("GET", "/v1/ops")
    assert st == 200
    by_name = {o["name"]: o for o in ops}
    assert {"backup", "restore", "verify", "list", "status", "snapshot", "snapshot clear"} <= set(by_name)
    assert "key generate" not in by_name and "purge" not in by_name
    fields = {f["name"]: f for f in by_name["restore"]["fields"]}
    assert fields["repo"]["required"] and fields["mode"]["values"] == "import|replace"

    # docs/agent-openapi.yaml describes every operation served, with its request's fields
    api = _openapi_requests()
    assert set(api) == set(by_name), sorted(api)
    for name, op in by_name.items():
        props, required = api[name]
        assert props == {f["name"] for f in op["fields"]}, name
        assert required == {f["name"] for f in op["fields"] if f["required"]}, name

    # the token never on the command line
    with open(f"/proc/{agent.proc.pid}/cmdline", "rb") as f:
        assert agent.token.encode() not in f.read()


def test_backup_restore_through_agent(agent, cassette, session, make_small_data, tmp_path):
    ds = make_small_data("ag")
    repo = str(tmp_path / "repo")
    cassette("init", "--repo", repo, "--no-encryption").ok()  # the agent never makes one
    job = agent.start_job("backup", {"repo": repo, "name": "ag-1", "keyspaces": ds.keyspaces, "jobs": 2})
    doc, seen = agent.wait_job(job)
    assert doc["state"] == "succeeded", doc
    assert doc["op"] == "backup" and doc["request"]["name"] == "ag-1"
    assert "error" not in doc
    phases = {p["phase"] for p in seen} | {doc["progress"]["phase"]}
    assert phases & {"snapshot", "upload", "store"}, phases
    keys = {"op", "phase", "files_done", "files_total", "bytes_done", "bytes_total", "item", "elapsed",
            "bytes_per_second", "eta"}
    assert keys <= set(doc["progress"]), doc["progress"]
    result = doc["result"]
    assert result["name"] == "ag-1" and result["host_id"] == _host_id(session), result

    # the same document as the CLI's --json (the keys, recursively at the top level)
    cli = cassette("backup", "--repo", repo, "--name", "cli-1", "--keyspace", ds.main, "--keyspace", ds.side,
                   "--json").ok().json()
    assert set(cli) == set(result), (sorted(cli), sorted(result))

    # restore through the agent after losing a table's rows
    types = ds.table("types")
    session.execute(f"TRUNCATE {types.full_name}", timeout=120)
    assert list(session.execute(f"SELECT id FROM {types.full_name} LIMIT 1")) == []
    job = agent.start_job("restore", {"repo": repo, "backup": "ag-1", "keyspaces": ds.keyspaces})
    doc, _ = agent.wait_job(job)
    assert doc["state"] == "succeeded", doc
    assert doc["result"]["backup"] == "ag-1" and doc["result"]["mode"] == "import", doc["result"]
    assert ds.check(session) == ds.total_rows

    st, jobs = agent.call("GET", "/v1/jobs")
    assert st == 200 and [j["op"] for j in jobs] == ["restore", "backup"], jobs


def test_cancel_then_backup(agent, cassette, session, make_small_data, tmp_path):
    ds = make_small_data("ac")
    repo = str(tmp_path / "repo")
    cassette("init", "--repo", repo, "--no-encryption").ok()
    job = agent.start_job("backup", {"repo": repo, "name": "c-1", "keyspaces": ds.keyspaces})
    st, doc = agent.call("POST", f"/v1/jobs/{job}/cancel")
    assert st == 202 and doc["id"] == job, doc
    doc, _ = agent.wait_job(job)
    assert doc["state"] == "canceled", doc
    assert doc["error"]["code"] == "interrupted" and doc["error"]["exit_code"] == 130, doc["error"]
    assert "result" not in doc
    # the next backup is fine
    job = agent.start_job("backup", {"repo": repo, "name": "c-2", "keyspaces": ds.keyspaces})
    doc, _ = agent.wait_job(job)
    assert doc["state"] == "succeeded", doc


def test_refusals(agent, tmp_path):
    repo = tmp_path / "repo-never"
    backup = {"repo": str(repo), "name": "x"}
    for token in (False, "wrong-" + "0" * 20, agent.token[:-1]):
        for method, path, body in (("GET", "/v1/node", None), ("GET", "/v1/jobs", None),
                                   ("POST", "/v1/ops/backup", backup), ("POST", "/v1/jobs/1/cancel", None)):
            st, doc = agent.call(method, path, body, token=token)
            assert st == 401 and "bearer token" in doc["error"] and set(doc) == {"error"}, (method, path, doc)
    assert not repo.exists()
    st, jobs = agent.call("GET", "/v1/jobs")
    assert st == 200 and jobs == []  # nothing was started

    st, doc = agent.call("POST", "/v1/ops/backup", raw='{"repo": "/x", ')
    assert st == 400 and doc["error"].startswith("malformed JSON"), doc
    st, doc = agent.call("POST", "/v1/ops/nope", {})
    assert st == 404 and "no operation" in doc["error"], doc
    st, doc = agent.call("POST", "/v1/ops/purge", {"repo": str(repo)})
    assert st == 403 and "does not serve" in doc["error"], doc
    st, doc = agent.call("POST", "/v1/ops/backup", {"repo": str(repo), "jobs": 1000})
    assert st == 400 and doc["field"] == "jobs", doc
    st, doc = agent.call("POST", "/v1/ops/backup", {"repo": str(repo), "cql_password": "x"})
    assert st == 400 and doc["field"] == "cql_password", doc  # host settings never come from a request
    st, doc = agent.call("POST", "/v1/ops/backup", raw='{"repo": "' + "a" * (2 << 20) + '"}')
    assert st == 413 and "larger than" in doc["error"], doc
    st, doc = agent.call("GET", "/v1/nothing")
    assert st == 404
    st, doc = agent.call("DELETE", "/v1/jobs")
    assert st == 405
    st, doc = agent.call("GET", "/v1/jobs/12345")
    assert st == 404 and "no job" in doc["error"]
    assert not repo.exists()

    # a restore naming a backup the repository does not hold: the job says so
    good = tmp_path / "repo"
    job = agent.start_job("list", {"repo": str(good)})
    doc, _ = agent.wait_job(job)
    assert doc["state"] == "failed" and "not a cassette repository" in doc["error"]["message"], doc
    subprocess.run([str(agent.proc.args[0]), "init", "--repo", str(good), "--no-encryption"], check=True,
                   capture_output=True)
    job = agent.start_job("restore", {"repo": str(good), "backup": "no-such-backup"})
    doc, _ = agent.wait_job(job)
    assert doc["state"] == "failed", doc
    assert "no-such-backup" in doc["error"]["message"], doc["error"]


def _client_ctx(agent, cert=None):
    ctx = ssl.create_default_context(cafile=str(agent.server_cert))
    if cert:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    return ctx


def test_mutual_tls(start_agent, tmp_path):
    """With --tls-client-ca a client needs a certificate that CA signed, token or not."""
    d = tmp_path / "pki"
    d.mkdir()
    ca = _cert(d, "client-ca", san="DNS:client-ca")
    client = _cert(d, "client", issuer=ca)
    stranger = _cert(d, "stranger", san="DNS:stranger")
    a = start_agent("--tls-client-ca", ca[0], client_cert=client)
    st, ops = a.call("GET", "/v1/ops")
    assert st == 200 and ops, ops
    for who in (None, stranger):
        other = Agent(a.proc, a.port, a.token, _client_ctx(a, who), a.out, a.err)
        try:
            st, doc = other.call("GET", "/v1/ops")
        except (ssl.SSLError, ConnectionError):
            continue  # refused during the handshake: as good
        assert st == 401 and "client certificate" in doc["error"], (who, st, doc)


def test_start_refusals(cassette, tmp_path):
    """No token and no --insecure-loopback, --insecure-loopback off loopback, a token file others
    may read, a certificate without its key: one line each, and no agent."""
    tok = tmp_path / "token"
    tok.write_text("t" * 40 + "\n")
    tok.chmod(0o644)
    cases = [
        ([], "needs --token-file"),
        (["--insecure-loopback", "--listen", "0.0.0.0:7620"], "loopback address only"),
        (["--token-file", tok], "chmod 600"),
        (["--token-file", tok, "--listen", "127.0.0.1:x"], "--listen"),
        (["--repo", tmp_path], "does not take --repo"),  # requests come over HTTP, not from flags
    ]
    for args, want in cases:
        res = cassette("agent", *args, timeout=60)
        assert res.rc in (1, 2) and want in res.err and res.err.count("\n") == 1, res.describe()
        assert "t" * 40 not in res.err
    tok.chmod(0o600)
    res = cassette("agent", "--token-file", tok, "--tls-cert", tmp_path / "cert.pem", timeout=60)
    assert res.rc == 2 and "--tls-cert and --tls-key go together" in res.err, res.describe()


def test_allow_repo(start_agent, cassette, tmp_path):
    allowed = tmp_path / "allowed"
    cassette("init", "--repo", allowed / "r1", "--no-encryption").ok()
    a = start_agent(allow=(allowed,))
    job = a.start_job("list", {"repo": str(allowed / "r1")})  # below an allowed location
    doc, _ = a.wait_job(job)
    assert doc["state"] == "succeeded", doc
    for repo in (tmp_path / "allowed2", tmp_path, allowed / ".." / "elsewhere", f"{allowed}/r1/../../x"):
        st, doc = a.call("POST", "/v1/ops/list", {"repo": str(repo)})
        assert st == 403 and doc["error"] == f"repository {repo} is not allowed on this agent (--allow-repo)", doc
    st, doc = a.call("POST", "/v1/ops/backup", {"repo": str(allowed / "new"), "init": True, "no_encryption": True})
    assert st == 403 and "the agent does not create repositories; run cassette init" in doc["error"], doc
    assert not (allowed / "new").exists()
    st, jobs = a.call("GET", "/v1/jobs")
    assert st == 200 and len(jobs) == 1, jobs  # nothing else was started

    # no --allow-repo: no request that names a repository; the node's own ops still run
    b = start_agent(allow=())
    st, doc = b.call("POST", "/v1/ops/list", {"repo": str(allowed / "r1")})
    assert st == 403 and "start it with --allow-repo" in doc["error"], doc
    st, doc = b.call("POST", "/v1/ops/snapshot%20clear", {"tag": "never-taken"})
    assert st == 202, doc

    # a ".." in --allow-repo: no start
    tok = tmp_path / "tok"
    tok.write_text("t" * 40 + "\n")
    tok.chmod(0o600)
    res = cassette("agent", "--token-file", tok, "--listen", "127.0.0.1:1", "--allow-repo", f"{allowed}/../x",
                   timeout=60)
    assert res.rc == 2 and '".." component' in res.err and res.err.count("\n") == 1, res.describe()


def _tag_dirs(node, tag):
    return sorted(p for d in node.data_dirs for p in d.glob(f"*/*/snapshots/{tag}"))


def test_snapshot_backup_through_agent(agent, cassette, node, session, make_small_data, tmp_path):
    """What a coordinator does on each node: snapshot, back the snapshot up, clear."""
    ds = make_small_data("as")
    repo = str(tmp_path / "repo")
    cassette("init", "--repo", repo, "--no-encryption").ok()
    tag = "cassette-set-1"
    job = agent.start_job("snapshot", {"tag": tag, "keyspaces": ds.keyspaces})
    doc, _ = agent.wait_job(job)
    assert doc["state"] == "succeeded", doc
    snap = doc["result"]
    assert snap["tag"] == tag and snap["host_id"] == _host_id(session), snap
    assert 0 < snap["started"] <= snap["finished"], snap
    assert _tag_dirs(node, tag)

    job = agent.start_job("backup", {"repo": repo, "name": "set-1", "snapshot": tag, "keyspaces": ds.keyspaces})
    doc, _ = agent.wait_job(job)
    assert doc["state"] == "succeeded", doc
    assert doc["request"]["snapshot"] == tag and doc["result"]["name"] == "set-1", doc
    assert not _tag_dirs(node, tag), "the snapshot is still on disk after the backup"

    job = agent.start_job("snapshot clear", {"tag": tag})
    doc, _ = agent.wait_job(job)
    assert doc["state"] == "succeeded" and doc["result"] == {"tag": tag, "host_id": snap["host_id"],
                                                              "cleared": False}, doc

    # a backup of a snapshot the node does not have: the job says so
    job = agent.start_job("backup", {"repo": repo, "name": "set-2", "snapshot": "no-such-tag"})
    doc, _ = agent.wait_job(job)
    assert doc["state"] == "failed" and "is on no data directory" in doc["error"]["message"], doc


def test_node_facts_when_stopped(start_agent, node, session, tmp_path):
    """Stops the test node and starts it again (the tests after this one need it)."""
    a = start_agent()
    st, live = a.call("GET", "/v1/node")
    assert st == 200 and live["live"] is True, live  # read: cached
    st, doc = a.call("POST", "/v1/ops/snapshot", {"tag": "down-1"})
    assert st == 202, doc
    doc, _ = a.wait_job(doc["job"])
    assert doc["state"] == "succeeded", doc
    fresh = start_agent(env={"CASSETTE_STATE_DIR": str(tmp_path / "empty-state")})  # no cache
    node.stop()
    try:
        st, facts = a.call("GET", "/v1/node")
        assert st == 200 and facts["live"] is False, facts
        for k in ("host_id", "address", "cluster_name", "datacenter", "rack", "release_version", "tokens"):
            assert facts[k] == live[k], k
        assert [d["path"] for d in facts["data_dirs"]] == [d["path"] for d in live["data_dirs"]]
        st, doc = fresh.call("GET", "/v1/node")
        assert st == 503 and doc["error"], doc
        # a snapshot cleared on the stopped node: its directories
        job = a.start_job("snapshot clear", {"tag": "down-1"})
        doc, _ = a.wait_job(job)
        assert doc["state"] == "succeeded" and doc["result"]["cleared"] is True, doc
        assert doc["result"]["host_id"] == live["host_id"]
        assert not _tag_dirs(node, "down-1")
    finally:
        node.start()
        wait_cql(session)
    st, facts = a.call("GET", "/v1/node")
    assert st == 200 and facts["live"] is True, facts


def test_fencing_replay(start_agent, node, state_dir):
    """A server's command with epoch N, then a replay with N-1: refused, and nothing runs."""
    agent = start_agent()
    n = int(time.time() * 1000)  # as a lease epoch: never below the time in milliseconds
    st, doc = agent.call("POST", "/v1/ops/snapshot", {"tag": "fence-n"}, epoch=n)
    assert st == 202, (st, doc)
    first = doc["job"]
    done, _ = agent.wait_job(first)
    assert done["state"] == "succeeded", done
    assert (state_dir / "agent-epoch").read_text() == f"{n}\n"

    _, jobs_before = agent.call("GET", "/v1/jobs")
    st, doc = agent.call("POST", "/v1/ops/snapshot", {"tag": "fence-replay"}, epoch=n - 1)
    assert st == 409 and doc == {"error": f"fenced: epoch {n - 1} is older than {n}"}, (st, doc)
    _, jobs_after = agent.call("GET", "/v1/jobs")
    assert jobs_after == jobs_before, "the fenced command started a job"
    assert not _tag_dirs(node, "fence-replay"), "the fenced snapshot was taken"
    # every route is fenced, polls too
    st, doc = agent.call("GET", f"/v1/jobs/{first}", epoch=n - 1)
    assert st == 409, (st, doc)

    for bad in ("x", "-1", "1.5", "99999999999999999999"):
        st, doc = agent.call("GET", "/v1/jobs", epoch=bad)
        assert st == 400 and "X-Cassette-Epoch" in doc["error"], (bad, st, doc)
    st, _ = agent.call("GET", "/v1/jobs")  # no header: the CLI
    assert st == 200

    # a restarted agent remembers the highest epoch; a newer server's epoch passes
    agent.proc.send_signal(signal.SIGTERM)
    assert agent.proc.wait(timeout=120) == 0
    again = start_agent()
    st, doc = again.call("GET", "/v1/jobs", epoch=n - 1)
    assert st == 409 and doc["error"] == f"fenced: epoch {n - 1} is older than {n}", (st, doc)
    st, doc = again.call("POST", "/v1/ops/snapshot%20clear", {"tag": "fence-n"}, epoch=n + 1)
    assert st == 202, (st, doc)
    cleared, _ = again.wait_job(doc["job"])
    assert cleared["state"] == "succeeded", cleared
    assert (state_dir / "agent-epoch").read_text() == f"{n + 1}\n"

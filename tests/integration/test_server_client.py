"""The CLI as a client of `cassette server` (issue 20, Done-when 6): `cassette --server URL ...`
runs the user journey of the local commands against a real server on the one-node cluster
(serverenv.single_cluster): register the cluster, back up now (--wait), list, restore a table,
each compared with the local commands' outcome: the same backup names listed by `list --cluster`
and by `list --repo`, the restored rows checked with the Python driver (dataset.py). Also: task
and run commands, an unknown id -> one line with HTTP 404, a viewer's token on a write -> one
line with HTTP 403 (the token never printed), task/run without --server -> one line.
"""
import os
import re
import secrets

import pytest
from cassandra.query import SimpleStatement

from dataset import Dataset

from serverenv import ServerProc, single_cluster  # noqa: F401 (the fixture: node 19, a one-node cluster)

pytestmark = pytest.mark.cluster

CLUSTER_ID = "single"


def _agent_opts(c):
    return ["--agent-ca-file", c.ca, "--agent-token-file", c.token_file, "--agent-cert", c.client_cert,
            "--agent-key", c.client_key]


@pytest.fixture(scope="module")
def env(cassette_bin, single_cluster, tmp_path_factory):  # noqa: F811
    """A server with an admin and a viewer token, the cluster's data set and repository."""
    c = single_cluster
    d = tmp_path_factory.mktemp("server-client")
    admin_tok, viewer_tok = secrets.token_hex(16), secrets.token_hex(16)
    tokens = d / "tokens"
    tokens.write_text(f"root admin {admin_tok}\nlooker viewer {viewer_tok}\n")
    os.chmod(tokens, 0o600)
    admin, viewer = d / "admin.token", d / "viewer.token"
    admin.write_text(admin_tok + "\n")
    viewer.write_text(viewer_tok + "\n")
    srv = ServerProc(cassette_bin, d / "srv", c, args=["--tokens-file", tokens]).start()
    ds = Dataset("cli", seed=23, scale=0.003, compaction=False)
    ds.drop(c.session)
    ds.load(c.session)
    env = {"c": c, "srv": srv, "admin": admin, "viewer": viewer, "tokens": (admin_tok, viewer_tok),
           "ds": ds, "repo": c.new_repo("client")}
    yield env
    srv.stop()
    ds.drop(c.session)


def _client(env, *args, token="admin"):
    opts = ["--server", env["srv"].url]
    if token:
        opts += ["--server-token-file", env[token]]
    r = env["c"].run(*opts, *args)
    for tok in env["tokens"]:  # never printed
        assert tok not in r.out and tok not in r.err, r.describe()
    return r


def _one_line_error(r, rc, status):
    assert r.rc == rc, r.describe()
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.describe()
    assert re.fullmatch(rf"cassette: server: .+ \(HTTP {status}\)", lines[0]), r.describe()
    assert r.out == "", r.describe()


def _names(doc):
    return sorted({b["name"] for b in doc})


def test_journey(env):
    c, srv, ds, repo = env["c"], env["srv"], env["ds"], env["repo"]

    c.run("init", "--repo", repo, "--no-encryption").ok()
    # register: the server discovers the node from the contact point
    r = _client(env, "cluster", "register", "--id", CLUSTER_ID, "--contact", c.addresses[0], "--repo", repo,
                "--agent-template", c.agent_template).ok()
    assert r.out.startswith(f"registered cluster {CLUSTER_ID}: "), r.describe()
    assert c.addresses[0] in r.out
    shown = _client(env, "cluster", "show", CLUSTER_ID, "--json").ok().json()
    assert shown["id"] == CLUSTER_ID and len(shown["nodes"]) == 1
    listed = _client(env, "cluster", "list").ok()
    assert re.search(rf"^{CLUSTER_ID}\s", listed.out, re.M), listed.describe()

    # back up now, through the server, and locally
    r = _client(env, "backup", "--cluster", CLUSTER_ID, "--name", "via-server", "--keyspace", ds.main,
                "--wait").ok()
    assert re.search(r"^run \S+: backup of cluster single, done", r.out), r.describe()
    local = c.run("cluster", "backup", "--contact", c.addresses[0], "--repo", repo, "--name", "local",
                  "--keyspace", ds.main, *_agent_opts(c)).ok()
    assert local.rc == 0

    # list: the server's answer names the same backups as the local list of the repository
    via = _client(env, "list", "--cluster", CLUSTER_ID, "--json").ok().json()
    here = c.run("list", "--repo", repo, "--json").ok().json()
    backups = via["backups"]
    assert _names(backups) == _names(here) == ["local", "via-server"], (backups, here)
    text_via = _client(env, "list", "--cluster", CLUSTER_ID).ok().out
    text_here = c.run("list", "--repo", repo).ok().out
    assert text_via == text_here, (text_via, text_here)  # the same formatter over the same document

    # restore a table: its rows gone, restored through the server, checked row by row
    table = ds.tables_of(ds.main)[0]
    c.session.execute(SimpleStatement(f"TRUNCATE {table.full_name}"), timeout=120)
    assert not list(c.session.execute(SimpleStatement(f"SELECT * FROM {table.full_name} LIMIT 1")))
    r = _client(env, "restore", "--cluster", CLUSTER_ID, "--backup", "via-server", "--table", table.full_name,
                "--wait").ok()
    assert re.search(r"^run \S+: restore of cluster single, done", r.out), r.describe()
    assert ds.check_table(c.session, table) == table.count

    # the runs, as the server recorded them
    runs = _client(env, "run", "list", "--cluster", CLUSTER_ID, "--json").ok().json()["runs"]
    assert sorted(r["kind"] for r in runs) == ["backup", "restore"]
    assert all(r["state"] == "done" for r in runs)
    one = _client(env, "run", "show", runs[0]["id"]).ok()
    assert one.out.startswith(f"run {runs[0]['id']}: ")


def test_tasks(env):
    r = _client(env, "task", "add", "--cluster", CLUSTER_ID, "--id", "hourly", "--kind", "backup", "--schedule",
                "0 * * * *", "--timezone", "Europe/Paris", "--param", f'keyspaces=["{env["ds"].main}"]').ok()
    assert r.out.startswith("added task hourly: backup on cluster single, schedule 0 * * * * Europe/Paris, "
                            "enabled"), r.describe()
    assert re.search(r"^hourly\s+single\s+backup\s+yes", _client(env, "task", "list").ok().out, re.M)
    assert "disabled" in _client(env, "task", "disable", "hourly").ok().out
    doc = _client(env, "task", "show", "hourly", "--json").ok().json()
    assert doc["enabled"] is False and doc["params"] == {"keyspaces": [env["ds"].main]}
    assert _client(env, "task", "enable", "hourly").ok().out.startswith("enabled task hourly")
    assert _client(env, "task", "remove", "hourly").ok().out == "removed task hourly\n"
    assert _client(env, "task", "list", "--cluster", CLUSTER_ID).ok().out == "no tasks\n"


def test_errors(env):
    # an unknown id: one line with the server's sentence and 404; exit 1
    _one_line_error(_client(env, "run", "show", "r-nope"), 1, 404)
    _one_line_error(_client(env, "task", "show", "nope"), 1, 404)
    _one_line_error(_client(env, "list", "--cluster", "nope"), 1, 404)
    # a viewer's token on a write: 403, a usage refusal (exit 2); reading is fine
    _one_line_error(_client(env, "backup", "--cluster", CLUSTER_ID, token="viewer"), 2, 403)
    _one_line_error(_client(env, "task", "add", "--cluster", CLUSTER_ID, "--kind", "purge", token="viewer"), 2, 403)
    _client(env, "cluster", "list", token="viewer").ok()
    # no token at all: 401
    _one_line_error(_client(env, "cluster", "list", token=None), 2, 401)
    # task and run exist only with --server
    r = env["c"].run("task", "list")
    assert r.rc == 2 and len(r.err.strip().splitlines()) == 1 and "needs --server" in r.err, r.describe()
    # the environment names the server as well as the flag
    r = env["c"].run("run", "list", "--server-token-file", env["admin"],
                     env={"CASSETTE_SERVER": env["srv"].url}).ok()
    assert r.out.splitlines()[0].split()[:4] == ["ID", "CLUSTER", "KIND", "STATE"]


def test_remove_cluster(env):
    """Last (pytest runs a module's tests in order): the cluster goes, then it is unknown."""
    assert _client(env, "cluster", "remove", CLUSTER_ID).ok().out == f"removed cluster {CLUSTER_ID}\n"
    _one_line_error(_client(env, "cluster", "show", CLUSTER_ID), 1, 404)

"""The server's state store in Cassandra (server/state_cql.c, issue 20), on the test node.

Driven through tests/tools/state_tool.c (one cs_state_* call per process, JSON out), in a
keyspace of its own per test (created by the store: SimpleStrategy, RF 1), with the node's
login and TLS in the secured pass:
- clusters and tasks: create, conflicts, replace, list by id, delete (a cluster's tasks go too);
- runs: add, update (a state change refused: conflict), cas queued -> running exactly once under
  two processes racing for the same runs, cancel of a queued and of a running run, the list's
  filters and order;
- the leader lease: take, renew, another owner refused, lapse, takeover with a larger epoch,
  release; epochs only grow and are never below the time in milliseconds;
- export -> import into a fresh keyspace;
- every run version and audit entry carries a TTL (read back with the Python driver)."""

import json
import os
import pathlib
import subprocess
import time
import uuid

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOOL = pathlib.Path(os.environ.get("CASSETTE_STATE_TOOL", ROOT / "build" / "asan" / "tools" / "state_tool"))

pytestmark = pytest.mark.cassandra


class Store:
    def __init__(self, node, keyspace):
        self.url = f"cassandra://{node.addr}:9042/{keyspace}"
        self.keyspace = keyspace
        c = node.config()
        self.env = {**os.environ, "STATE_HISTORY": "86400"}
        for key, var in (("username", "STATE_CQL_USER"), ("password", "STATE_CQL_PASSWORD"),
                         ("ca_file", "STATE_CQL_CA"), ("cert_file", "STATE_CQL_CERT"),
                         ("key_file", "STATE_CQL_KEY")):
            if c.get(key):
                self.env[var] = c[key]

    def popen(self, *args):
        return subprocess.Popen([str(TOOL), self.url, *map(self._arg, args)], env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    @staticmethod
    def _arg(a):
        return json.dumps(a) if isinstance(a, (dict, list)) else str(a)

    def raw(self, *args):
        p = self.popen(*args)
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert "ERROR: AddressSanitizer" not in err, err
        return json.loads(out)

    def ok(self, *args):
        doc = self.raw(*args)
        assert doc["rc"] == 0, (args, doc)
        return doc["result"]


def run_doc(rid, task, cluster, kind, state, queued_at, **more):
    return {"id": rid, "task": task, "cluster": cluster, "kind": kind, "state": state,
            "queued_at": queued_at, **more}


@pytest.fixture
def store(node, session):
    ks = "cs_state_" + uuid.uuid4().hex[:12]
    s = Store(node, ks)
    assert s.ok("kind") == "cassandra"
    yield s
    session.execute(f"DROP KEYSPACE IF EXISTS {ks}")


def test_clusters_tasks(store):
    store.ok("cluster-put", "create", {"id": "prod", "contact": "a"})
    assert store.raw("cluster-put", "create", {"id": "prod"})["rc"] != 0
    assert "exists" in store.raw("cluster-put", "create", {"id": "prod"})["error"]
    store.ok("cluster-put", "replace", {"id": "prod", "contact": "b"})
    assert store.ok("cluster-get", "prod") == {"id": "prod", "contact": "b"}
    assert "not found" in store.raw("cluster-put", "replace", {"id": "none"})["error"]
    store.ok("cluster-put", "create", {"id": "dev", "it's": "quoted 'text'"})
    assert [c["id"] for c in store.ok("cluster-list")] == ["dev", "prod"]
    assert store.ok("cluster-get", "dev")["it's"] == "quoted 'text'"

    store.ok("task-put", "create", {"id": "t-2", "cluster": "prod"})
    store.ok("task-put", "create", {"id": "t-1", "cluster": "prod"})
    store.ok("task-put", "create", {"id": "t-3", "cluster": "dev"})
    bad = store.raw("task-put", "create", {"id": "t-9", "cluster": "none"})
    assert bad["rc"] != 0 and "not registered" in bad["error"], bad
    assert [t["id"] for t in store.ok("task-list")] == ["t-1", "t-2", "t-3"]
    assert [t["id"] for t in store.ok("task-list", "prod")] == ["t-1", "t-2"]
    store.ok("task-delete", "t-2")
    assert "not found" in store.raw("task-get", "t-2")["error"]
    store.ok("cluster-delete", "prod")
    assert [t["id"] for t in store.ok("task-list")] == ["t-3"]
    assert "not found" in store.raw("cluster-delete", "prod")["error"]


def test_runs_cas_cancel_list(store, session):
    store.ok("run-add", run_doc("r-1", "t-1", "prod", "backup", "queued", 100))
    assert "exists" in store.raw("run-add", run_doc("r-1", "t-1", "prod", "backup", "queued", 100))["error"]
    r = run_doc("r-1", "t-1", "prod", "backup", "queued", 100, progress={"files_done": 3})
    store.ok("run-update", r)
    assert store.ok("run-get", "r-1") == r
    bad = store.raw("run-update", {**r, "state": "done"})
    assert bad["rc"] != 0 and "conflict" in bad["error"], bad
    assert "not found" in store.raw("run-update", run_doc("r-2", "t", "prod", "backup", "queued", 1))["error"]

    running = run_doc("r-1", "t-1", "prod", "backup", "running", 100, started=101)
    assert store.ok("run-cas", "queued", running) == {"applied": True}
    assert store.ok("run-cas", "queued", running) == {"applied": False}
    assert store.ok("run-get", "r-1") == running
    assert store.ok("run-cancel", "r-1") == {"state": "running"}
    assert store.ok("run-cancel-asked", "r-1") == {"asked": True}
    done = run_doc("r-1", "t-1", "prod", "backup", "cancelled", 100)
    assert store.ok("run-cas", "running", done) == {"applied": True}
    assert store.ok("run-get", "r-1")["state"] == "cancelled"
    assert store.ok("run-cancel", "r-1") == {"state": "cancelled"}

    store.ok("run-add", run_doc("r-q", "t-1", "prod", "backup", "queued", 105))
    assert store.ok("run-cancel", "r-q") == {"state": "cancelled"}
    assert store.ok("run-cancel-asked", "r-q") == {"asked": False}

    # the unit tests' list, over day buckets (and a run in a later day)
    for rid, task, cluster, kind, state, at in (
            ("l-1", "t-1", "p", "backup", "done", 10), ("l-2", "t-2", "p", "purge", "failed", 20),
            ("l-3", "t-1", "p", "backup", "running", 30), ("l-4", None, "d", "restore", "queued", 40),
            ("l-5", "t-3", "d", "backup", "queued", 30), ("l-6", "t-1", "p", "backup", "interrupted", 86400 * 3)):
        doc = run_doc(rid, task, cluster, kind, state, at)
        if task is None:
            del doc["task"]
        store.ok("run-add", doc)

    def ids(f):
        return ",".join(r["id"] for r in store.ok("run-list", {"cluster": None, **f}) if r["id"].startswith("l-"))

    assert ids({"cluster": "p"}) == "l-6,l-3,l-2,l-1"
    assert ids({"cluster": "p", "oldest_first": True}) == "l-1,l-2,l-3,l-6"
    assert ids({"task": "t-1"}) == "l-6,l-3,l-1"
    assert ids({"kind": "backup", "since": 10}) == "l-6,l-5,l-3,l-1"
    assert ids({"state": "queued"}) == "l-4,l-5"
    assert ids({"state": "open", "oldest_first": True}) == "l-3,l-5,l-4"
    assert ids({"since": 30}) == "l-6,l-4,l-5,l-3"
    assert [r["id"] for r in store.ok("run-list", {"limit": 2})] == ["l-6", "r-q"]

    # every run version carries the TTL; no version is ever written over
    rows = list(session.execute(f"SELECT id, n, seq, TTL(doc) AS ttl FROM {store.keyspace}.runs"))
    assert rows and all(r.ttl is not None and 0 < r.ttl <= 86400 for r in rows), rows
    assert len([r for r in rows if r.id == "r-1"]) == 4  # added, progress, running, cancelled


def test_cas_two_processes(store):
    n = 12
    for i in range(n):
        store.ok("run-add", run_doc(f"c-{i:02d}", "t", "prod", "backup", "queued", 1000 + i))
    wins = {}
    for i in range(n):
        rid = f"c-{i:02d}"
        procs = [store.popen("run-cas", "queued", run_doc(rid, "t", "prod", "backup", "running", 1000 + i,
                                                            owner=who)) for who in ("a", "b")]
        results = []
        for who, p in zip(("a", "b"), procs):
            out, err = p.communicate(timeout=300)
            doc = json.loads(out)
            assert doc["rc"] == 0, (doc, err)
            results.append((who, doc["result"]["applied"]))
        winners = [who for who, applied in results if applied]
        assert len(winners) == 1, (rid, results)
        wins[rid] = winners[0]
        assert store.ok("run-get", rid)["owner"] == winners[0]


def test_lease(store):
    t0 = int(time.time() * 1000)
    a = store.ok("lease", "server-a", 3)
    assert a["held"] and a["epoch"] >= t0, a
    b = store.ok("lease", "server-b", 3)
    assert not b["held"] and b["epoch"] == a["epoch"], b
    again = store.ok("lease", "server-a", 3)
    assert again == {"held": True, "epoch": a["epoch"]}  # renewed: same epoch
    got = store.ok("lease-get")
    assert got["owner"] == "server-a" and got["epoch"] == a["epoch"], got
    time.sleep(3.5)  # lapsed
    b = store.ok("lease", "server-b", 3)
    assert b["held"] and b["epoch"] > a["epoch"], (a, b)
    assert not store.ok("lease", "server-a", 3)["held"]
    store.ok("lease-release", "server-a")  # not the holder: nothing changes
    assert store.ok("lease-get")["owner"] == "server-b"
    store.ok("lease-release", "server-b")
    assert store.ok("lease-get") == {"owner": None, "epoch": b["epoch"]}
    a2 = store.ok("lease", "server-a", 3)
    assert a2["held"] and a2["epoch"] > b["epoch"], (b, a2)

    # two processes at once on a free lease: exactly one holds it
    store.ok("lease-release", "server-a")
    procs = [store.popen("lease", who, 30) for who in ("x", "y")]
    held = [json.loads(p.communicate(timeout=300)[0])["result"]["held"] for p in procs]
    assert sorted(held) == [False, True], held


def test_export_import_audit(store, node, session):
    store.ok("cluster-put", "create", {"id": "prod"})
    store.ok("task-put", "create", {"id": "t-1", "cluster": "prod", "schedule": "@every 1h"})
    now = time.time()
    store.ok("run-add", run_doc("e-1", "t-1", "prod", "backup", "done", now - 60))
    store.ok("run-add", run_doc("e-2", "t-1", "prod", "backup", "running", now - 30))
    store.ok("audit-add", {"who": "alice", "role": "admin", "method": "POST", "path": "/v1/clusters",
                           "status": 201, "what": "prod"})
    store.ok("audit-add", {"at": now + 1, "who": "bob", "role": "operator", "method": "DELETE",
                           "path": "/v1/tasks/t-9", "status": 404, "what": "t-9"})
    audit = store.ok("audit-list", 10)
    assert [a["who"] for a in audit] == ["bob", "alice"], audit
    rows = list(session.execute(f"SELECT TTL(doc) AS ttl FROM {store.keyspace}.audit"))
    assert len(rows) == 2 and all(r.ttl and r.ttl > 0 for r in rows), rows

    exp = store.ok("export")
    assert [c["id"] for c in exp["clusters"]] == ["prod"]
    assert [t["id"] for t in exp["tasks"]] == ["t-1"]
    assert [r["id"] for r in exp["runs"]] == ["e-1"]  # final runs only

    fresh = Store(node, "cs_state_" + uuid.uuid4().hex[:12])
    try:
        assert fresh.ok("import", exp)["added"] == 3
        assert fresh.ok("import", exp)["added"] == 0
        assert fresh.ok("task-get", "t-1")["schedule"] == "@every 1h"
        assert fresh.ok("run-get", "e-1")["state"] == "done"
        assert fresh.ok("prune", time.time()) is None  # the TTL does it
        assert fresh.ok("run-get", "e-1")["state"] == "done"
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {fresh.keyspace}")


def test_bad_urls(node):
    for url in ("cassandra://", f"cassandra://{node.addr}/", f"cassandra://{node.addr}/Bad-Name",
                f"cassandra://{node.addr}:0/ks"):
        p = subprocess.run([str(TOOL), url, "kind"], capture_output=True, text=True, timeout=60)
        doc = json.loads(p.stdout)
        assert doc["rc"] != 0 and doc["error"], (url, doc)

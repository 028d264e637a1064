"""Restore drills of a whole cluster (issue 21, Done-when 2): `cassette cluster drill` and the
server's drill task, on the shared 3-node cluster with an agent per node (HTTPS, a token).

A small dataset (a keyspace at RF 3 with a user type and an index, one at RF 1: rows that live on
one node only), a cluster backup into a local-directory repository, then rows updated, deleted
and added after it.

- `cassette cluster drill`: every table of the backup restored by each node's agent into a
  scratch keyspace of the same node and checked over CQL against the live table: nothing lost or
  different (what changed after the backup is told apart), an RTO above 0; afterwards no scratch
  keyspace is left, no snapshot of one on any node (`nodetool listsnapshots` and the data
  directories), not even their empty directories, and the live tables are unchanged, row by row
  (the Python driver, at ALL).
- Interrupted (SIGINT) once the scratch keyspaces exist: exit 130, the scratch keyspaces dropped,
  and the warning's command clears the snapshots Cassandra took of them.
- The server's drill task (kind "drill"): the run is done with the op's document as its result
  (rto_seconds), GET /metrics (parsed with prometheus_client) shows the drill's last success
  and RTO for the cluster, and the status page (headless Chromium) shows that RTO. Then one stored object of the backup is damaged on purpose: the next
  drill run fails, its error names the node, the table and the file, and /metrics shows the
  last failure; every cassette_drill_* name the shipped alert rules and dashboard use is in
  those scrapes.
"""

import json
import pathlib
import re
import signal
import subprocess
import time
import urllib.request
from types import SimpleNamespace

import pytest
from cassandra import ConsistencyLevel
from cassandra.query import SimpleStatement
from prometheus_client.parser import text_string_to_metric_families

import promnames
from browser import Browser
from conftest import _base_env
from serverenv import ServerProc

pytestmark = pytest.mark.cluster

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROWS = 200
TABLES = {"cdr3.users", "cdr1.events"}
SCRATCH = "cassette_drill_"
BACKUP = "drill-base"
CID = "drilled"


def _agent_opts(c):
    return ["--agent-ca-file", c.ca, "--agent-token-file", c.token_file, "--agent-cert", c.client_cert,
            "--agent-key", c.client_key]


def _ddl(s, stmt):
    s.execute(SimpleStatement(stmt), timeout=120)


def _at_all(s, stmt, args=()):
    return s.execute(SimpleStatement(stmt, consistency_level=ConsistencyLevel.ALL), args, timeout=120)


def _live(c):
    """{table: sorted rows} of the live tables, read at ALL."""
    out = {}
    for table in sorted(TABLES):
        st = SimpleStatement(f"SELECT * FROM {table}", consistency_level=ConsistencyLevel.ALL, fetch_size=500)
        out[table] = sorted((tuple(r) for r in c.session.execute(st, timeout=120)), key=repr)
    return out


def _drop_data(s):
    for ks in ("cdr3", "cdr1"):
        _ddl(s, f"DROP KEYSPACE IF EXISTS {ks}")


def _scratch_keyspaces(c):
    rows = c.session.execute("SELECT keyspace_name FROM system_schema.keyspaces")
    return sorted(r.keyspace_name for r in rows if r.keyspace_name.startswith(SCRATCH))


def _scratch_snapshots(c, drill_id):
    """[(node, what)] of every snapshot of a scratch keyspace of that drill: as nodetool
    listsnapshots lists them, and as the data directories hold them."""
    left, prefix = [], f"{SCRATCH}{drill_id}_"
    for node in c.nodes:
        for line in node.nodetool("listsnapshots").stdout.splitlines():
            words = line.split()
            if len(words) >= 3 and words[1].startswith(prefix):
                left.append((node.n, line.strip()))
        for d in node.data_dirs:
            left += [(node.n, str(p)) for p in d.glob(f"{prefix}*/*/snapshots/*")]
    return left


@pytest.fixture(scope="module")
def drilled(cluster):
    """The dataset, a cluster backup of it, then changes after the backup."""
    s = cluster.session
    _drop_data(s)
    _ddl(s, "CREATE KEYSPACE cdr3 WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 3}")
    _ddl(s, "CREATE KEYSPACE cdr1 WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}")
    _ddl(s, "CREATE TYPE cdr3.addr (street text, zip int)")
    _ddl(s, "CREATE TABLE cdr3.users (id int PRIMARY KEY, name text, home frozen<addr>, tags set<text>)")
    _ddl(s, "CREATE INDEX users_by_name ON cdr3.users (name)")
    _ddl(s, "CREATE TABLE cdr1.events (id int, seq int, body text, PRIMARY KEY (id, seq))")
    ins_u = s.prepare("INSERT INTO cdr3.users (id, name, home, tags) VALUES (?, ?, ?, ?)")
    ins_u.consistency_level = ConsistencyLevel.ALL
    ins_e = s.prepare("INSERT INTO cdr1.events (id, seq, body) VALUES (?, ?, ?)")
    ins_e.consistency_level = ConsistencyLevel.ALL
    for i in range(ROWS):
        s.execute(ins_u, (i, f"user{i % 20}", (f"street {i}", 10000 + i), {f"t{i % 7}", "x"}))
        s.execute(ins_e, (i % 30, i, f"event {i} " + "e" * (i % 60)))
    repo = cluster.new_repo("drill", "dir")
    cluster.run("init", "--repo", repo, "--no-encryption").ok()
    # Of these keyspaces only: the shared cluster holds other tests' keyspaces too.
    doc = cluster.run("cluster", "backup", "--contact", cluster.addresses[0], "--repo", repo, "--name", BACKUP,
                      "--keyspace", "cdr3", "--keyspace", "cdr1", "--json", *_agent_opts(cluster)).ok().json()
    assert doc["complete"] and doc["nodes_complete"] == 3, doc
    # After the backup: updated, deleted and new rows (the drill tells them from lost ones).
    for i in range(0, 30, 3):
        _at_all(s, "UPDATE cdr3.users SET name = %s WHERE id = %s", (f"renamed{i}", i))
    for i in range(1, 30, 6):
        _at_all(s, "DELETE FROM cdr3.users WHERE id = %s", (i,))
    for i in range(ROWS, ROWS + 10):
        s.execute(ins_u, (i, "late", ("late street", i), {"late"}))
        s.execute(ins_e, (i % 30, i, "late event"))
    yield SimpleNamespace(repo=repo)
    _drop_data(s)  # later modules back up the cluster without it


def test_cluster_drill(cluster, drilled):
    before = _live(cluster)
    t0 = time.monotonic()
    r = cluster.run("cluster", "drill", "--contact", cluster.addresses[0], "--repo", drilled.repo,
                    "--sample-rows", "50", "--json", *_agent_opts(cluster)).ok()
    took = time.monotonic() - t0
    doc = r.json()
    assert doc["backup"] == BACKUP and doc["cluster"] == "cassette-cluster", doc
    assert doc["nodes_restored"] == 3 and all(n["target"]["ok"] for n in doc["nodes"]), doc
    assert {t["table"] for t in doc["tables"]} == TABLES, doc["tables"]
    for t in doc["tables"]:
        assert t["lost"] == 0 and t["mismatched"] == 0 and not t.get("reason"), t
        assert t["rows_backup"] > 0 and t["sampled"] > 0, t
    # What changed after the backup is told apart from damage.
    by_name = {t["table"]: t for t in doc["tables"]}
    assert by_name["cdr3.users"]["new_since"] == 10 and by_name["cdr3.users"]["deleted_since"] == 5, by_name
    assert by_name["cdr1.events"]["new_since"] == 10, by_name
    assert 0 < doc["rto_seconds"] < doc["seconds"], doc
    assert len(doc["scratch_keyspaces"]) == 2 and all(k.startswith(SCRATCH + doc["drill_id"])
                                                       for k in doc["scratch_keyspaces"]), doc
    assert doc["kept"] is False and doc["cleanup_problems"] == [], doc
    assert doc["snapshots_cleared"] > 0, doc
    # Nothing of the drill is left, and the live tables are as they were.
    assert _scratch_keyspaces(cluster) == []
    assert _scratch_snapshots(cluster, doc["drill_id"]) == []
    left = [p for n in cluster.nodes for d in n.data_dirs for p in d.glob(f"{SCRATCH}{doc['drill_id']}_*")]
    assert left == [], left  # not even the empty directories of the dropped keyspaces
    assert _live(cluster) == before
    # The text output says the same in a few lines.
    text = cluster.run("cluster", "drill", "--contact", cluster.addresses[0], "--repo", drilled.repo,
                       "--table", "cdr1.events", *_agent_opts(cluster)).ok().out
    assert "cdr1.events" in text and "RTO" in text and "cdr3.users" not in text, text
    print(f"\n[drill] cluster drill {took:.1f} s, RTO {doc['rto_seconds']:.1f} s\n{text}")


def _dropped_everywhere(c, drill_id, timeout=60):
    """Waits until no node's own schema has a scratch keyspace of that drill any more."""
    deadline = time.monotonic() + timeout
    for h in c.driver.metadata.all_hosts():
        while any(r.keyspace_name.startswith(f"{SCRATCH}{drill_id}_") for r in
                  c.session.execute("SELECT keyspace_name FROM system_schema.keyspaces", host=h, timeout=30)):
            assert time.monotonic() < deadline, f"{h} still has the scratch keyspaces of drill {drill_id}"
            time.sleep(0.1)


def test_cluster_drill_interrupted(cluster, drilled, tmp_path):
    """SIGINT once the scratch keyspaces exist: exit 130, and they are dropped on the way out."""
    assert _scratch_keyspaces(cluster) == [], "scratch keyspaces left by an earlier drill"
    env = _base_env(tmp_path / "state")
    env.update(cluster.s3_env())
    cmd = [str(cluster.cassette_bin), "cluster", "drill", "--contact", cluster.addresses[0], "--repo", drilled.repo,
           *map(str, _agent_opts(cluster))]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not _scratch_keyspaces(cluster):
            assert p.poll() is None, p.communicate()
            assert time.monotonic() < deadline, "no scratch keyspace after 120 s"
            time.sleep(0.1)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 130, (p.returncode, out, err)
    assert "interrupted" in err and len(err.strip().splitlines()) <= 2, err
    # The agents' restore jobs stopped before the command ended: none works on under the drop
    # (one that did re-created a dropped scratch keyspace on its node, 2026-12-07).
    running = [(n, j) for n in cluster.numbers for j in cluster.agent_call(n, "GET", "/v1/jobs")[1]
               if j.get("state") == "running"]
    assert running == [], running
    assert _scratch_keyspaces(cluster) == []
    # The warning says how to clear the snapshots Cassandra took of them: that works, node by node.
    m = re.search(r"--prefix dropped- --keyspace (\S+), on each node", err)
    if m:
        drill_id = m.group(1).split(",")[0][len(SCRATCH):].split("_")[0]
        _dropped_everywhere(cluster, drill_id)
        # A node takes the snapshot of a dropped table just after its schema lost it: clear
        # until none is left (each pass is a real clear; nothing is waited for but that).
        deadline = time.monotonic() + 60
        while True:
            for node in cluster.nodes:
                cluster.run("snapshot", "clear", "--prefix", "dropped-", "--keyspace", m.group(1),
                            config=node.ini).ok()
            left = _scratch_snapshots(cluster, drill_id)
            if not left:
                break
            assert time.monotonic() < deadline, left
    print(f"\n[drill] interrupted: {err.strip()}")


# ---- the server's drill task ---------------------------------------------------------------

def _scrape(srv):
    with urllib.request.urlopen(srv.url + "/metrics", timeout=30) as r:
        text = r.read().decode()
    samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return text, samples


def _value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def _data_object(repo, keyspace, table):
    """(object path, file name) of the largest Data.db file of keyspace.table in the backup."""
    best = None
    for m in pathlib.Path(repo, "backups", BACKUP).glob("*.manifest"):
        for t in json.loads(m.read_text())["tables"]:
            if t["keyspace"] != keyspace or t["table"] != table:
                continue
            for f in t["files"]:
                if f["name"].endswith("-Data.db") and (best is None or f["size"] > best[1]["size"]):
                    best = (m, f)
    assert best, f"no Data.db file of {keyspace}.{table} in backup {BACKUP}"
    objects = list(pathlib.Path(repo, "objects").glob(f"*/{best[1]['object']}"))
    assert len(objects) == 1, (best, objects)
    return objects[0], best[1]["name"]


def _flip_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.chmod(0o644)
    path.write_bytes(bytes(data))


def test_drill_task_metrics_and_a_damaged_object(cassette_bin, cluster, drilled, tmp_path):
    srv = ServerProc(cassette_bin, tmp_path / "srv", cluster, server_id="drill").start()
    try:
        srv.ok("POST", "/v1/clusters", {"id": CID, "contact": cluster.addresses[0],
                                        "agent_template": cluster.agent_template, "repo": drilled.repo})
        srv.ok("POST", "/v1/tasks", {"id": "weekly-drill", "cluster": CID, "kind": "drill",
                                     "schedule": "0 3 * * 0", "retries": 0, "params": {"sample_rows": 20}})
        run = srv.ok("POST", "/v1/tasks/weekly-drill/run")
        run = srv.wait_run(lambda x: x["id"] == run["id"] and x["state"] in ("done", "failed"), timeout=300,
                           what="the drill ending")
        assert run["state"] == "done", run
        assert run["kind"] == "drill" and run["op"] == "cluster drill", run
        res = run["result"]
        assert res["backup"] == BACKUP and {t["table"] for t in res["tables"]} == TABLES, res
        assert res["rto_seconds"] > 0, res
        texts = []
        text, s = _scrape(srv)
        texts.append(text)
        ok_at = _value(s, "cassette_drill_last_success_timestamp_seconds", cluster=CID)
        assert ok_at is not None and run["started"] <= ok_at <= run["ended"] + 0.01, (ok_at, run)
        assert _value(s, "cassette_drill_rto_seconds", cluster=CID) == pytest.approx(res["rto_seconds"], abs=1e-3)
        assert _value(s, "cassette_drill_last_failure_timestamp_seconds", cluster=CID) is None
        assert _scratch_keyspaces(cluster) == []
        # The status page shows the drill and the RTO its result gives (not the run's duration).
        with Browser(tmp_path / "chromium") as b:
            page = b.new_page(1280, 900)
            page.goto(srv.url + "/")
            shown = page.wait_for("document.body.dataset.ready === '1' && "
                                  "document.getElementById('drill').textContent.includes('RTO') && "
                                  "document.getElementById('drill').textContent", timeout=60)
            assert f"drill of {CID}: done" in shown and f"RTO {int(res['rto_seconds'] + 0.5)} s" in shown, shown
            assert page.errors == [], page.errors

        # One object of the backup damaged on purpose: the drill fails and names the file.
        obj, name = _data_object(drilled.repo, "cdr1", "events")
        _flip_byte(obj)
        run = srv.ok("POST", "/v1/tasks/weekly-drill/run")
        run = srv.wait_run(lambda x: x["id"] == run["id"] and x["state"] in ("done", "failed"), timeout=300,
                           what="the drill of the damaged backup ending")
        assert run["state"] == "failed", run
        err = run["error"]
        assert name in err and "cdr1.events" in err and "node 127.0.0." in err, err
        assert len(err.splitlines()) == 1, err
        print(f"\n[drill] damaged: {err}")
        text, s = _scrape(srv)
        texts.append(text)
        failed_at = _value(s, "cassette_drill_last_failure_timestamp_seconds", cluster=CID)
        assert failed_at is not None and run["started"] <= failed_at <= run["ended"] + 0.01, (failed_at, run)
        assert _value(s, "cassette_drill_last_success_timestamp_seconds", cluster=CID) == ok_at
        assert _scratch_keyspaces(cluster) == []  # cleaned up after a failed drill too
        # Every drill metric the shipped rules and dashboard use is in a real scrape.
        used = {n for n in promnames.used_metric_names(ROOT) if n.startswith("cassette_drill_")}
        have = set().union(*(promnames.exposition_names(t) for t in texts))
        assert used and not promnames.missing_names(used, have), promnames.missing_names(used, have)
        srv.stop()
        log = srv.log()  # leak reports at its exit included
        assert not any(w in log for w in ("runtime error", "AddressSanitizer", "LeakSanitizer")), log[-3000:]
    finally:
        srv.stop()

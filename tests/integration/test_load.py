"""`cassette load`: a node's backup streamed into a cluster of another topology with
Cassandra's own bulk loader (issue 19, restore mode 3, the node side).

A real single node (the session's node, RF 1) is backed up; its keyspace is loaded into the
2-node ``small_cluster`` (nodes 17-18, another cluster name, other tokens) at RF 2, once with
the CLI and once through the agent of node 17; every row is read back with the Python driver at
CONSISTENCY ALL, row by row. The loader is tests/env/sstableloader.sh (BulkLoader from the
cached Cassandra jars), named by `sstableloader =` in every node's cassette.ini.
"""

import time

import pytest
from cassandra import ConsistencyLevel
from cassandra.query import SimpleStatement

pytestmark = pytest.mark.cluster

ROWS = 1500
EVENTS = 400


def _ddl(s, stmt):
    s.execute(SimpleStatement(stmt), timeout=120)


def _schema(ks, rf_options):
    return [
        f"CREATE KEYSPACE {ks} WITH replication = {rf_options}",
        f"CREATE TYPE {ks}.addr (street text, zip int)",
        f"CREATE TABLE {ks}.users (id int PRIMARY KEY, name text, score bigint, home frozen<addr>)",
        f"CREATE TABLE {ks}.events (uid int, at int, kind text, tags set<text>, PRIMARY KEY (uid, at))",
        f"CREATE INDEX events_kind ON {ks}.events (kind)",
    ]


def _fill(s, ks):
    ins = s.prepare(f"INSERT INTO {ks}.users (id, name, score, home) VALUES (?, ?, ?, {{street: ?, zip: ?}})")
    for i in range(ROWS):
        s.execute(ins, (i, f"user-{i}", i * 7919, f"{i} main st", 10000 + i))
    ev = s.prepare(f"INSERT INTO {ks}.events (uid, at, kind, tags) VALUES (?, ?, ?, ?)")
    for i in range(EVENTS):
        s.execute(ev, (i % 50, i, "k%d" % (i % 3), {f"t{i % 5}", "all"}))


def _rows(s, ks, cl=ConsistencyLevel.ONE):
    """{table: sorted rows} of the keyspace, read at cl."""
    out = {}
    for table in ("users", "events"):
        st = SimpleStatement(f"SELECT * FROM {ks}.{table}", consistency_level=cl, fetch_size=500)
        out[table] = sorted(tuple(r) for r in s.execute(st, timeout=120))
    return out


def _assert_rows_equal(want, got):
    for table, rows in want.items():
        assert len(got[table]) == len(rows), (table, len(got[table]), len(rows))
        for a, b in zip(rows, got[table]):
            assert a == b, (table, a, b)


@pytest.fixture(scope="module")
def source(node, cluster_session, cassette_bin, small_cluster, tmp_path_factory):
    """A keyspace at RF 1 on the single node, filled and backed up into a repository the
    small cluster's agents allow; (keyspace, repo, backup name, rows read at ONE)."""
    import conftest
    s = cluster_session[1]
    ks = "loadsrc"
    _ddl(s, f"DROP KEYSPACE IF EXISTS {ks}")
    for stmt in _schema(ks, "{'class': 'SimpleStrategy', 'replication_factor': 1}"):
        _ddl(s, stmt)
    _fill(s, ks)
    rows = _rows(s, ks)
    repo = small_cluster.new_repo("load")
    state = tmp_path_factory.mktemp("load-backup") / "state"
    import subprocess
    p = subprocess.run([str(cassette_bin), "--config", str(node.ini), "backup", "--repo", repo, "--init",
                        "--no-encryption", "--name", "load-1", "--keyspace", ks],
                       capture_output=True, text=True, env=conftest._base_env(state), timeout=600,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, (p.stdout, p.stderr)
    yield ks, repo, "load-1", rows
    _ddl(s, f"DROP KEYSPACE IF EXISTS {ks}")


def _target_schema(small_cluster, ks):
    s = small_cluster.session
    _ddl(s, f"DROP KEYSPACE IF EXISTS {ks}")
    for stmt in _schema(ks, "{'class': 'SimpleStrategy', 'replication_factor': 2}"):
        _ddl(s, stmt)


def test_load_needs_the_schema(source, small_cluster, node):
    ks, repo, name, _ = source
    small_cluster.session.execute(f"DROP KEYSPACE IF EXISTS {ks}", timeout=120)
    r = small_cluster.run("load", "--repo", repo, "--backup", name, "--target", small_cluster.addresses[0],
                          config=node.ini)
    assert r.rc != 0, r.describe()
    lines = [l for l in r.err.splitlines() if l.strip()]
    assert len(lines) == 1, r.describe()
    assert f"{ks}.events does not exist on the target cluster" in lines[0] or \
        f"{ks}.users does not exist on the target cluster" in lines[0], r.describe()
    assert "create its schema first" in lines[0]


def test_load_cli_into_two_nodes(source, small_cluster, node):
    ks, repo, name, rows = source
    _target_schema(small_cluster, ks)
    t0 = time.monotonic()
    r = small_cluster.run("load", "--repo", repo, "--backup", name, "--target", small_cluster.addresses[0],
                          "--target", small_cluster.addresses[1], "--json", "-v", config=node.ini).ok()
    took = time.monotonic() - t0
    doc = r.json()
    assert doc["complete"] is True, doc
    assert doc["tables"] == 2 and {t["table"] for t in doc["per_table"]} == {f"{ks}.users", f"{ks}.events"}
    assert all(t["loaded"] and t["files"] > 0 for t in doc["per_table"]), doc
    assert doc["targets"] == small_cluster.addresses[:2]
    print(f"\n[test_load] load of {doc['files']} files, {doc['bytes']} bytes: {doc['seconds']:.1f} s "
          f"(cassette's document), {took:.1f} s wall; per table: "
          + ", ".join(f"{t['table']} {t['seconds']:.1f} s" for t in doc["per_table"]))
    _assert_rows_equal(rows, _rows(small_cluster.session, ks, ConsistencyLevel.ALL))
    # The secondary index was built on the target from the streamed rows.
    got = small_cluster.session.execute(
        SimpleStatement(f"SELECT uid, at FROM {ks}.events WHERE kind = 'k1'",
                        consistency_level=ConsistencyLevel.ALL), timeout=120)
    assert len(list(got)) == sum(1 for i in range(EVENTS) if i % 3 == 1)
    # Nothing is left in the staging root (the node's first data directory).
    left = [p for d in node.data_dirs for p in d.glob(".cassette-staging-*")]
    assert not left, left


def test_load_through_agent(source, small_cluster):
    ks, repo, name, rows = source
    _target_schema(small_cluster, ks)
    n = small_cluster.numbers[0]
    st, doc = small_cluster.agent_call(n, "POST", "/v1/ops/load",
                                       {"repo": repo, "backup": name, "tables": [f"{ks}.users"],
                                        "targets": small_cluster.addresses})
    assert st == 202, (st, doc)
    job = doc["job"]
    phases = set()
    deadline = time.monotonic() + 600
    while True:
        st, doc = small_cluster.agent_call(n, "GET", f"/v1/jobs/{job}")
        assert st == 200, (st, doc)
        phases.add(doc["progress"]["phase"])
        if doc["state"] != "running":
            break
        assert time.monotonic() < deadline, doc
        time.sleep(0.2)
    assert doc["state"] == "succeeded", doc
    res = doc["result"]
    assert res["tables"] == 1 and res["per_table"][0]["table"] == f"{ks}.users", res
    assert {"load"} <= phases | {doc["progress"]["phase"]}, phases
    got = _rows(small_cluster.session, ks, ConsistencyLevel.ALL)
    _assert_rows_equal({"users": rows["users"]}, got)
    assert got["events"] == [], "only the table asked for is loaded"

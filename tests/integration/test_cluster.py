"""`cassette cluster backup / restore / status / tokens` on the shared 3-node cluster (issue 19).

Every byte of a node goes through that node's agent (HTTPS, a token, as in production); the
coordinator is the ASan binary run here. What the tests assert about restored data is read with
the Python driver at CONSISTENCY ALL, row by row.

- In place: keyspaces at RF 3 (a UDT, a secondary index) and RF 1 (rows that exist only on one
  node and in its backup) -> cluster backup -> every node stopped, its data, commitlog and hints
  deleted -> cluster restore --mode replace -> every row equal.
- An agent killed (SIGKILL) during a cluster backup: the backup is listed incomplete naming the
  node; the next one completes and stores nothing twice; verify passes; purge keeps the
  complete one.
- A node down: the backup names it and ends with a non-zero exit having written nothing;
  with --allow-partial the others are backed up and the backup says it is incomplete; the
  stopped node's files are untouched either way.
- Pause hooks: every node's snapshot lies inside the window the test application recorded;
  resume runs when the snapshots fail.
- status, tokens, the plan and its confirmation, and the refusals of a bad token.
"""

import json
import os
import pathlib
import signal
import stat
import subprocess
import sys
import time

import pytest
from cassandra import ConsistencyLevel
from cassandra.query import SimpleStatement

pytestmark = pytest.mark.cluster

ROWS = 600


def _agent_opts(c):
    return ["--agent-ca-file", c.ca, "--agent-token-file", c.token_file, "--agent-cert", c.client_cert,
            "--agent-key", c.client_key]


def _run(c, *args, **kw):
    r = c.run(*args, *_agent_opts(c), **kw)
    return r


def _contact(c):
    return ["--contact", c.addresses[0]]


def _ddl(s, stmt):
    s.execute(SimpleStatement(stmt), timeout=120)


def _load(c):
    """rf3 (UDT, secondary index) and rf1 keyspaces; returns {table: rows} read back at ALL."""
    s = c.session
    _ddl(s, "DROP KEYSPACE IF EXISTS crf3")
    _ddl(s, "DROP KEYSPACE IF EXISTS crf1")
    _ddl(s, "CREATE KEYSPACE crf3 WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 3}")
    _ddl(s, "CREATE KEYSPACE crf1 WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}")
    _ddl(s, "CREATE TYPE crf3.addr (street text, zip int)")
    _ddl(s, "CREATE TABLE crf3.users (id int PRIMARY KEY, name text, home frozen<addr>, tags set<text>)")
    _ddl(s, "CREATE INDEX users_by_name ON crf3.users (name)")
    _ddl(s, "CREATE TABLE crf1.events (id int, seq int, body text, PRIMARY KEY (id, seq))")
    ins_u = s.prepare("INSERT INTO crf3.users (id, name, home, tags) VALUES (?, ?, ?, ?)")
    ins_u.consistency_level = ConsistencyLevel.ALL
    ins_e = s.prepare("INSERT INTO crf1.events (id, seq, body) VALUES (?, ?, ?)")
    ins_e.consistency_level = ConsistencyLevel.ALL
    for i in range(ROWS):
        s.execute(ins_u, (i, f"user{i % 50}", (f"street {i}", 10000 + i), {f"t{i % 7}", "x"}))
        s.execute(ins_e, (i % 40, i, f"event {i} " + "e" * (i % 90)))
    return _read_all(c)


def _read_all(c):
    s = c.session
    out = {}
    for table, key in (("crf3.users", "id"), ("crf1.events", "id, seq")):
        st = SimpleStatement(f"SELECT * FROM {table}", consistency_level=ConsistencyLevel.ALL, fetch_size=500)
        rows = sorted((tuple(r) for r in s.execute(st, timeout=120)), key=repr)
        out[table] = rows
    st = SimpleStatement("SELECT id FROM crf3.users WHERE name = 'user7'", consistency_level=ConsistencyLevel.ALL)
    out["index user7"] = sorted(r.id for r in s.execute(st, timeout=120))
    return out


def _assert_same(before, after):
    assert set(before) == set(after)
    for table in before:
        assert len(after[table]) == len(before[table]), table
        for want, got in zip(before[table], after[table]):
            assert got == want, (table, want, got)


def _init_repo(c, kind="dir"):
    repo = c.new_repo("cl", kind)
    c.run("init", "--repo", repo, "--no-encryption").ok()
    return repo


def _set_state(c, repo, name):
    r = c.run("list", "--repo", repo, "--json").ok()
    doc = r.json()
    entries = doc["backups"] if isinstance(doc, dict) else doc
    sets = [b.get("set") for b in entries if b["name"] == name and b.get("set")]
    assert sets, (name, doc)
    return sets[0]


def _stored_again(repo, first, then):
    """Files of backup `then` that a node stored anew although its part of backup `first`
    holds the same file with the same content (a plaintext local repository): [(host, file)]."""
    def files(path):
        out = {}
        for t in json.loads(path.read_text())["tables"]:
            for f in t["files"]:
                out[(t["keyspace"], t["table"], f["name"], f["hash"])] = f["object"]
        return out
    again = []
    for m in pathlib.Path(repo, "backups", then).glob("*.manifest"):
        old = pathlib.Path(repo, "backups", first, m.name)
        if old.exists():
            held = files(old)
            again += [(m.stem, k) for k, obj in files(m).items() if k in held and held[k] != obj]
    return again


def _node_files(node, keyspaces=None):
    """The files under the node's data directory (of these keyspaces only, when given)."""
    roots = [node.dir / "data" / ks for ks in keyspaces] if keyspaces else [node.dir / "data"]
    return sorted(str(p.relative_to(node.dir)) for r in roots for p in r.rglob("*"))


def test_status_and_refusals(cluster):
    r = _run(cluster, "cluster", "status", *_contact(cluster), "--json").ok()
    doc = r.json()
    assert doc["cluster"] == "cassette-cluster"
    assert sorted(n["address"] for n in doc["nodes"]) == sorted(cluster.addresses)
    assert all(n["reachable"] and n["cassandra_up"] for n in doc["nodes"]), doc
    assert set(n["host_id"] for n in doc["nodes"]) == set(cluster.host_ids().values())
    text = _run(cluster, "cluster", "status", *_contact(cluster)).ok().out
    assert "3 of 3 agents reachable" in text

    # A wrong token: one line naming the refusal, nothing done, the token nowhere in the output.
    bad = cluster.tmp_factory.mktemp("badtoken") / "token"
    bad.write_text("not-the-token-0123456789abcdef\n")
    bad.chmod(0o600)
    r = cluster.run("cluster", "status", *_contact(cluster), "--agent-ca-file", cluster.ca, "--agent-token-file",
                    bad, "--agent-cert", cluster.client_cert, "--agent-key", cluster.client_key)
    assert r.rc != 0, r.describe()
    assert "401" in r.out + r.err, r.describe()
    token = cluster.token_file.read_text().strip()
    assert token not in r.out + r.err
    # A typo in the agent template: one line.
    r = _run(cluster, "cluster", "status", *_contact(cluster), "--agent-template", "ftp://{rpc}:1")
    assert r.rc == 2 and len(r.err.strip().splitlines()) == 1, r.describe()


def test_backup_and_restore_in_place(cluster):
    before = _load(cluster)
    repo = _init_repo(cluster, "s3")
    r = _run(cluster, "cluster", "backup", *_contact(cluster), "--repo", repo, "--name", "inplace", "--json").ok()
    doc = r.json()
    assert doc["complete"] and doc["nodes_complete"] == 3, doc
    assert doc["snapshot_spread"] < 5, doc
    starts = [n["snapshot_started"] for n in doc["nodes"]]
    assert max(starts) - min(starts) == pytest.approx(doc["snapshot_spread"], abs=0.01)
    st = _set_state(cluster, repo, "inplace")
    assert st["complete"] and st["expected"] == 3 and st["complete_hosts"] == 3, st
    text = cluster.run("list", "--repo", repo).ok().out
    assert "complete 3/3" in text, text

    # tokens of the backup, for a cluster that carries them
    tok = _run(cluster, "cluster", "tokens", "--repo", repo, "--backup", "inplace", "--json").ok().json()
    by_host = {n["host_id"]: n["tokens"] for n in tok["nodes"]}
    for h in cluster.driver.metadata.all_hosts():
        local = cluster.session.execute("SELECT host_id, tokens FROM system.local", host=h).one()
        assert sorted(by_host[str(local.host_id)]) == sorted(local.tokens)

    # Disaster: every node stopped, its data, commitlog and hints gone (the agents stay).
    cluster.close()
    cluster.sh("stop-cluster")
    for node in cluster.nodes:
        for d in ("data", "commitlog", "hints"):
            subprocess.run(["rm", "-rf", str(node.dir / d)], check=True)
            (node.dir / d).mkdir()

    # No confirmation, no restore; the plan says what would happen.
    r = _run(cluster, "cluster", "restore", "--repo", repo, "--backup", "inplace", "--mode", "replace")
    assert r.rc == 2 and "--yes" in r.err, r.describe()
    r = _run(cluster, "cluster", "restore", "--repo", repo, "--backup", "inplace", "--mode", "replace", "--plan").ok()
    assert "in place" in r.out and r.out.count("->") == 3, r.out
    r = _run(cluster, "cluster", "restore", "--repo", repo, "--backup", "inplace", "--mode", "replace", "--yes",
             "--json").ok()
    doc = r.json()
    assert doc["in_place"] and doc["nodes_restored"] == 3, doc

    cluster.sh("start-cluster")
    cluster.connect()
    _assert_same(before, _read_all(cluster))


def test_agent_killed_during_backup(cluster):
    _load(cluster)
    repo = _init_repo(cluster)
    victim = cluster.numbers[-1]
    victim_addr = f"127.0.0.{victim}"
    cmd = [str(cluster.cassette_bin), "cluster", "backup", *_contact(cluster), "--repo", repo, "--name", "killed",
           "--parallel-nodes", "1", "--retries", "1", "--json", *map(str, _agent_opts(cluster))]
    env = dict(os.environ)
    env.update(cluster.s3_env())
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    # Kill the victim's agent once the set is begun (the snapshots or uploads are under way).
    record = pathlib.Path(repo, "sets", "killed.set")
    deadline = time.monotonic() + 120
    while not record.exists():
        assert p.poll() is None, p.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(cluster.agent_pid(victim), signal.SIGKILL)
    out, err = p.communicate(timeout=600)
    assert p.returncode != 0, (out, err)
    assert victim_addr in err, err
    doc = json.loads(out)
    assert not doc["complete"] and doc["nodes_complete"] == 2, doc
    st = _set_state(cluster, repo, "killed")
    assert not st["complete"] and st["complete_hosts"] == 2, st
    assert [m["address"] for m in st["missing"]] == [victim_addr], st
    text = cluster.run("list", "--repo", repo).ok().out
    assert f"incomplete 2/3 (node {victim_addr}:" in text, text

    cluster.start_agents()
    r = _run(cluster, "cluster", "backup", *_contact(cluster), "--repo", repo, "--name", "after", "--json").ok()
    assert r.json()["complete"]
    # Nothing stored twice: what a node's part of the incomplete backup holds is reused.
    assert not _stored_again(repo, "killed", "after")
    cluster.run("verify", "--repo", repo).ok()
    r = cluster.run("purge", "--repo", repo, "--keep-last", "1", "--grace", "0s", "--json").ok()
    text = cluster.run("list", "--repo", repo).ok().out
    assert "after" in text and "complete 3/3" in text, text


def test_node_down(cluster):
    _load(cluster)
    repo = _init_repo(cluster)
    down = cluster.nodes[-1]
    cluster.close()
    down.stop()
    try:
        files = _node_files(down)
        r = _run(cluster, "cluster", "backup", *_contact(cluster), "--repo", repo, "--name", "down")
        assert r.rc != 0, r.describe()
        assert down.addr in r.err and "--allow-partial" in r.err, r.describe()
        assert len(r.err.strip().splitlines()) <= 2, r.describe()
        assert not pathlib.Path(repo, "sets").exists() or not list(pathlib.Path(repo, "sets").iterdir())
        r = _run(cluster, "cluster", "backup", *_contact(cluster), "--repo", repo, "--name", "partial",
                 "--allow-partial").ok()
        assert "incomplete 2/3" in r.out, r.out
        text = cluster.run("list", "--repo", repo).ok().out
        assert f"incomplete 2/3 (node {down.addr}:" in text, text
        assert _node_files(down) == files
    finally:
        down.start()
        cluster.connect()


def test_pause_hooks(cluster, tmp_path):
    repo = _init_repo(cluster)
    app = tmp_path / "app.py"
    log = tmp_path / "app.log"
    app.write_text("import sys, time\nopen(sys.argv[2], 'a').write(f'{sys.argv[1]} {time.time():.6f}\\n')\n")
    pause = f"{sys.executable} {app} paused {log}"
    resume = f"{sys.executable} {app} resumed {log}"
    r = _run(cluster, "cluster", "backup", *_contact(cluster), "--repo", repo, "--name", "paused", "--pause-cmd",
             pause, "--resume-cmd", resume, "--json").ok()
    doc = r.json()
    events = dict(line.split() for line in log.read_text().splitlines())
    t_pause, t_resume = float(events["paused"]), float(events["resumed"])
    for n in doc["nodes"]:
        assert t_pause <= n["snapshot_started"] <= n["snapshot_finished"] <= t_resume, (n, events)
    assert doc["pause_seconds"] >= t_resume - t_pause - 0.5
    # Snapshots that fail (a keyspace no node has): resume runs all the same.
    log.unlink()
    r = _run(cluster, "cluster", "backup", *_contact(cluster), "--repo", repo, "--name", "paused2", "--pause-cmd",
             pause, "--resume-cmd", resume, "--keyspace", "no_such_keyspace")
    assert r.rc != 0, r.describe()
    assert [line.split()[0] for line in log.read_text().splitlines()] == ["paused", "resumed"]


def test_restore_into_new_cluster(cluster, new_cluster):
    """Another cluster (another name, the source's tokens carried): every row equal; the source
    is untouched."""
    before = _load(cluster)
    repo = _init_repo(cluster, "s3")
    _run(cluster, "cluster", "backup", *_contact(cluster), "--repo", repo, "--name", "tonew").ok()
    tok = _run(cluster, "cluster", "tokens", "--repo", repo, "--backup", "tonew", "--json").ok().json()
    text = _run(cluster, "cluster", "tokens", "--repo", repo, "--backup", "tonew").ok().out
    assert text.count("initial_token:") == 3, text
    # The source's nodes in token order; the new cluster's nodes get them in the same order.
    tokens = sorted((n["tokens"] for n in tok["nodes"]), key=lambda t: int(t[0]))
    # What the source holds of the restored keyspaces (its system tables change as it restarts).
    source_files = {n.n: _node_files(n, ["crf1", "crf3"]) for n in cluster.nodes}
    cluster.stop()   # five nodes at most at once on this machine; its data stays
    try:
        new_cluster.start(tokens=tokens, fresh=True)
        new_cluster.connect()
        args = ["cluster", "restore", "--contact", new_cluster.addresses[0], "--repo", repo, "--backup", "tonew"]
        plan = _run(new_cluster, *args, "--plan").ok().out
        assert "into another cluster" in plan and plan.count("->") == 3, plan
        r = _run(new_cluster, *args, "--yes", "--json").ok()
        doc = r.json()
        assert not doc["in_place"] and doc["nodes_restored"] == 3, doc
        got = _read_all(new_cluster)
        _assert_same(before, got)
        assert new_cluster.session.execute("SELECT cluster_name FROM system.local").one().cluster_name == \
            "cassette-restored"
    finally:
        new_cluster.stop()
        cluster.start()
        cluster.connect()
    assert {n.n: _node_files(n, ["crf1", "crf3"]) for n in cluster.nodes} == source_files
    _assert_same(before, _read_all(cluster))


def test_restore_into_other_topology(cluster, small_cluster):
    """A 2-node cluster (another node count): the backup is streamed in by the agents with
    Cassandra's bulk loader, one replica of each range (a replica cover of the source): every
    row equal at CONSISTENCY ALL."""
    before = _load(cluster)
    repo = _init_repo(cluster, "s3")
    _run(cluster, "cluster", "backup", *_contact(cluster), "--repo", repo, "--name", "toload").ok()
    # The operator makes the schema for the smaller cluster (RF 2 at most on two nodes).
    s = small_cluster.session
    for stmt in ("DROP KEYSPACE IF EXISTS crf3", "DROP KEYSPACE IF EXISTS crf1",
                 "CREATE KEYSPACE crf3 WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 2}",
                 "CREATE KEYSPACE crf1 WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}",
                 "CREATE TYPE crf3.addr (street text, zip int)",
                 "CREATE TABLE crf3.users (id int PRIMARY KEY, name text, home frozen<addr>, tags set<text>)",
                 "CREATE INDEX users_by_name ON crf3.users (name)",
                 "CREATE TABLE crf1.events (id int, seq int, body text, PRIMARY KEY (id, seq))"):
        _ddl(s, stmt)
    args = ["cluster", "restore", "--contact", small_cluster.addresses[0], "--repo", repo, "--backup", "toload",
            "--keyspace", "crf3", "--keyspace", "crf1"]
    plan = _run(small_cluster, *args, "--plan", "--json").ok().json()
    assert plan["mode"] == "load", plan
    streams = {n["source"]["host_id"]: n["keyspaces"] for n in plan["nodes"]}
    # RF 3 on three nodes: one node holds every range of crf3; RF 1: every node streams crf1.
    assert sum("crf3" in ks for ks in streams.values()) == 1, streams
    assert sum("crf1" in ks for ks in streams.values()) == 3, streams
    r = _run(small_cluster, *args, "--yes").ok()
    assert "repair" in r.out, r.out
    _assert_same(before, _read_all(small_cluster))

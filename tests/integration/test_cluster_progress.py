"""What a cluster backup and restore show on a terminal (issue 21, Done-when 4).

`cassette cluster backup` and then `cassette cluster restore` of one table (import, in place)
run on the shared 3-node cluster under a pseudo-terminal (--progress auto: a tty), the agents
limited to 1 MB/s so that each lasts some seconds. The screen must show, redrawn in place, a
line per node (phase, bytes done/total, %, rate, ETA, state) and an overall line; in every
redraw the overall is the sum of the nodes' figures (to the precision shown), a node's bytes
never go down within its phase nor exceed its total, the block is cleared before the result,
and the restored rows are read back with the driver, row by row. With --progress=json the
events carry the nodes, whose counters add up to the event's exactly; a restore of one node
shows the others as skipped."""

import json
import random
import re

import pytest
from cassandra import ConsistencyLevel
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.query import SimpleStatement

import clusterenv
from test_progress import _run_pty

pytestmark = pytest.mark.cluster

KS, TABLE = "cprog", "blobs"
ROWS, BLOB = 2400, 2048    # about 4.7 MiB on each node (RF 3), incompressible
RATE = "1M"                # per agent: about 5 s of upload or download per node

UNITS = {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3}
SIZE = r"(\d+(?:\.\d)?) (B|KiB|MiB|GiB)"
# A block's redraw: from its carriage return to the erase of what is below it.
REDRAW = re.compile(r"\r((?:[^\r\n\x1b]*\x1b\[K\r\n)*[^\r\n\x1b]*)\x1b\[K\x1b\[J")
BYTES = re.compile(rf"{SIZE}/{SIZE}")


def _rows(seed=21):
    rnd = random.Random(seed)
    return {i: rnd.randbytes(BLOB) for i in range(ROWS)}


@pytest.fixture(scope="module")
def slow_cluster(cluster):
    """The cluster's agents at RATE to and from S3, and a table of ROWS blobs at RF 3."""
    c = cluster
    c.start_agents(c.allow_repo_args() + ["--rate-limit", RATE], c.s3_env())
    s = c.session
    s.execute(SimpleStatement(f"DROP KEYSPACE IF EXISTS {KS}"), timeout=120)
    s.execute(SimpleStatement(f"CREATE KEYSPACE {KS} WITH replication = "
                              "{'class': 'SimpleStrategy', 'replication_factor': 3}"), timeout=120)
    s.execute(SimpleStatement(f"CREATE TABLE {KS}.{TABLE} (id int PRIMARY KEY, v blob)"), timeout=120)
    insert = s.prepare(f"INSERT INTO {KS}.{TABLE} (id, v) VALUES (?, ?)")
    insert.consistency_level = ConsistencyLevel.ALL
    for ok, res in execute_concurrent_with_args(s, insert, list(_rows().items()), concurrency=64):
        assert ok, res
    yield c
    s.execute(SimpleStatement(f"DROP KEYSPACE IF EXISTS {KS}"), timeout=120)
    c.start_agents(c.allow_repo_args(), c.s3_env())


def _run_tty(c, tmp_path, *args):
    """`cassette ARGS` (with the agents' options) under an 160-column pty: (rc, text)."""
    env = clusterenv._conftest()._base_env(tmp_path / "state")
    env.update(c.s3_env())
    cmd = [str(c.cassette_bin), *map(str, args), "--agent-ca-file", c.ca, "--agent-token-file", c.token_file,
           "--agent-cert", c.client_cert, "--agent-key", c.client_key]
    rc, raw = _run_pty([str(a) for a in cmd], env, timeout=300, cols=160)
    (tmp_path.parent / f"{tmp_path.name}-screen.txt").write_bytes(raw)  # kept for a look
    return rc, raw.decode(errors="replace")


def _bytes(num, unit):
    return float(num) * UNITS[unit]


def _slack(unit):
    """What a size shown with one decimal may be off by."""
    return 0.05 * UNITS[unit] if unit != "B" else 0


def _redraws(text, nodes):
    """Each block redraw as ({node: row}, overall row); a row: dict of its columns."""
    out = []
    for m in REDRAW.finditer(text):
        rows = {}
        overall = None
        for line in m.group(1).split("\x1b[K\r\n"):
            # Columns: name, phase, amount, [percent], rate, ETA, state; two spaces or more apart.
            cols = re.split(r" {2,}", line.strip())
            assert len(cols) in (6, 7), f"a line of the block not as expected: {line!r}"
            name, phase, amount, rate, eta, state = cols[0], cols[1], cols[2], cols[-3], cols[-2], cols[-1]
            sizes = BYTES.fullmatch(amount)
            dn, du, tn, tu = sizes.groups() if sizes else (None,) * 4
            row = {"phase": phase, "rate": rate, "eta": eta, "state": state, "line": line,
                   "done": _bytes(dn, du) if dn else None, "total": _bytes(tn, tu) if tn else None,
                   "slack": (_slack(du) + _slack(tu)) if dn else 0}
            if name == "overall":
                overall = row
            else:
                assert name in nodes, line
                rows[name] = row
        assert overall is not None and rows, m.group(1)
        out.append((rows, overall))
    return out


def _check_screen(text, nodes, phase, result_prefix):
    redraws = _redraws(text, nodes)
    assert redraws, f"no block drawn: {text[-3000:]!r}"
    seen = {n for rows, _ in redraws for n in rows}
    assert seen == set(nodes), (seen, nodes)
    working = [(rows, o) for rows, o in redraws if o["phase"] == phase]
    # Rate and ETA, per node and overall, while the bytes move.
    assert any(r["rate"].endswith("/s") and r["eta"].startswith("ETA ") for rows, _ in working
               for r in rows.values()), [o["line"] for _, o in working][:5]
    assert any(o["rate"].endswith("/s") and o["eta"].startswith("ETA ") for _, o in working), \
        [o["line"] for _, o in working][-5:]
    last = {}
    for rows, overall in working:
        if len(rows) == len(nodes) and overall["done"] is not None:
            # The overall is the sum of the nodes' figures of the same redraw.
            done = sum(r["done"] or 0 for r in rows.values())
            total = sum(r["total"] or 0 for r in rows.values())
            slack = overall["slack"] + sum(r["slack"] for r in rows.values())
            assert abs(overall["done"] - done) <= slack, ([r["line"] for r in rows.values()], overall["line"])
            assert abs(overall["total"] - total) <= slack, ([r["line"] for r in rows.values()], overall["line"])
        for name, r in rows.items():
            if r["done"] is None:
                continue
            assert r["done"] <= r["total"] + r["slack"], r["line"]
            before = last.get(name)
            if before and before["phase"] == r["phase"]:
                assert r["done"] >= before["done"] - r["slack"], (before["line"], r["line"])
            last[name] = r
    # The block is cleared (cursor up, erase below) after its last redraw, and the result comes
    # after the last clear, on lines of its own.
    last_block = list(REDRAW.finditer(text))[-1].end()
    assert text.rfind("\r\x1b[J") > last_block, repr(text[last_block:last_block + 300])
    cleared = max(text.rfind("\r\x1b[J") + 4, text.rfind("\r\x1b[K") + 4)
    tail = text[cleared:]
    assert result_prefix in tail, repr(tail[:300])
    assert "\x1b" not in tail and "ETA" not in tail, repr(tail)
    print(f"\n{len(redraws)} redraws; e.g.\n" + "\n".join(r["line"] for r in working[len(working) // 2][0].values())
          + "\n" + working[len(working) // 2][1]["line"])


def test_cluster_backup_and_restore_on_a_terminal(slow_cluster, tmp_path):
    c = slow_cluster
    nodes = c.addresses
    repo = c.new_repo("progress", kind="s3")
    r = c.run("init", "--repo", repo, "--no-encryption")
    assert r.rc == 0, (r.out, r.err)

    rc, text = _run_tty(c, tmp_path / "b", "cluster", "backup", "--contact", nodes[0], "--repo", repo,
                        "--name", "tty", "--parallel-nodes", "3", "--keyspace", KS)
    assert rc == 0, text[-3000:]
    _check_screen(text, nodes, "upload", "cluster backup tty of ")

    s = c.session
    s.execute(SimpleStatement(f"TRUNCATE {KS}.{TABLE}"), timeout=120)
    assert list(s.execute(f"SELECT id FROM {KS}.{TABLE} LIMIT 1")) == []
    rc, text = _run_tty(c, tmp_path / "r", "cluster", "restore", "--contact", nodes[0], "--repo", repo,
                        "--backup", "tty", "--table", f"{KS}.{TABLE}", "--parallel-nodes", "3", "--yes")
    assert rc == 0, text[-3000:]
    _check_screen(text, nodes, "restore", "restore of cluster backup tty ")

    want = _rows()
    got = {}
    for row in s.execute(SimpleStatement(f"SELECT id, v FROM {KS}.{TABLE}", fetch_size=500,
                                         consistency_level=ConsistencyLevel.ALL)):
        got[row.id] = row.v
    assert len(got) == ROWS, len(got)
    bad = [i for i in want if got.get(i) != want[i]]
    assert not bad, f"{len(bad)} rows differ, e.g. {bad[:5]}"

    # --progress=json: the events carry the nodes, and their counters add up to the event's exactly
    # (a second backup: nothing new to upload, the nodes count the files they scan and check).
    r = c.run("cluster", "backup", "--contact", nodes[0], "--repo", repo, "--name", "json", "--keyspace", KS,
              "--progress=json", "--agent-ca-file", c.ca, "--agent-token-file", c.token_file,
              "--agent-cert", c.client_cert, "--agent-key", c.client_key)
    assert r.rc == 0, (r.out[-2000:], r.err[-2000:])
    events = [json.loads(line) for line in r.out.splitlines()]
    with_nodes = [e for e in events if e.get("event") in ("phase", "progress") and e.get("nodes")]
    assert with_nodes and {n["name"] for e in with_nodes for n in e["nodes"]} == set(nodes), events[:5]
    for e in with_nodes:
        for key in ("files_done", "files_total", "bytes_done", "bytes_total"):
            assert e[key] == sum(n[key] for n in e["nodes"]), (key, e)
    assert events[-1]["complete"] is True, events[-1]

    # A restore of one node only: the others are "skipped" in its restore phase (not shown).
    r = c.run("cluster", "restore", "--contact", nodes[0], "--repo", repo, "--backup", "tty", "--table",
              f"{KS}.{TABLE}", "--nodes", nodes[1], "--yes", "--progress=json", "--agent-ca-file", c.ca,
              "--agent-token-file", c.token_file, "--agent-cert", c.client_cert, "--agent-key", c.client_key)
    assert r.rc == 0, (r.out[-2000:], r.err[-2000:])
    events = [json.loads(line) for line in r.out.splitlines()]
    # (the "phase" event is sent as the phase begins: before the restore says which nodes it leaves alone)
    restoring = [e for e in events if e.get("event") == "progress" and e.get("phase") == "restore"]
    assert restoring, events[:5]
    for e in restoring:
        states = {n["name"]: n["state"] for n in e["nodes"]}
        assert all(states[n] == "skipped" for n in nodes if n != nodes[1]), states
    assert {n["name"]: n["state"] for n in restoring[-1]["nodes"]}[nodes[1]] == "done", restoring[-1]
    assert restoring[-1]["bytes_done"] == sum(n["bytes_done"] for n in restoring[-1]["nodes"]) > 0, restoring[-1]

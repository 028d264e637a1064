"""Restore drills on the node (issue 21, done-when 2's core): `cassette drill` and
`restore --keyspace-map`.

On the session's node: a small data set is backed up to a local-directory repository, then
changed (rows updated, deleted and inserted after the backup). Then:

- `drill` restores the backup's tables into scratch keyspaces, checks them against the live
  tables and succeeds: the report's counts are those of the changes (new, deleted, changed and
  gone rows seen, nothing lost or different), rto_seconds > 0; the scratch keyspace and the
  snapshot Cassandra takes of a dropped table are gone afterwards (the driver's schema,
  nodetool listsnapshots, the data directory); the live tables are untouched, row by row;
- `drill --keep` leaves the scratch keyspace, whose rows are the backup's, row by row; the next
  drill drops it, and its `--metrics-file` holds the RTO;
- a drill against a copy of the repository whose one object (a Data.db of one table) has bytes
  flipped fails (exit 3), its one line naming the file, and leaves no scratch keyspace;
- rows written after the backup with timestamps from before its start (as if the backup had
  missed them) are found: one lost, one different; exit 3, the line names table and key;
- `restore --keyspace-map` of one table beside the live one: its rows are the backup's, the
  live table is untouched, the result names the target;
- bad input (--keyspace-map without "=", into a system keyspace, with --mode replace): one
  line, exit 2.
"""

import copy
import json
import re
import shutil

import pytest

from conftest import _base_env, assert_one_error_line

PREFIX = "cassette_drill_"
SCALE = 0.005  # types 200 rows, wide 200, events 100


@pytest.fixture(scope="module")
def drilled(node, cluster_session, cassette_bin, tmp_path_factory):
    """The data set, its backup (before the changes), the changes; what the tests compare."""
    import subprocess
    from dataset import Dataset

    session = cluster_session[1]
    base = tmp_path_factory.mktemp("drill")
    ds = Dataset("drl", seed=23, scale=SCALE, compaction=False)
    ds.drop(session)
    ds.load(session)
    repo = base / "repo"

    def run(*args):
        env = _base_env(base / "state")
        p = subprocess.run([str(cassette_bin), "--config", str(node.ini), *map(str, args)], capture_output=True,
                           text=True, env=env, timeout=600, stdin=subprocess.DEVNULL)
        assert p.returncode == 0, f"{args}: exit {p.returncode}\n{p.stderr}"
        return p

    run("backup", "--repo", repo, "--init", "--no-encryption", "--name", "drill-1", "--keyspace", ds.main,
        "--keyspace", ds.side)
    types = ds.table("types")
    backup_rows = {t.name: ds.read_table(session, t) for t in ds.tables}
    # After the backup: 3 rows updated, 2 deleted, 2 inserted (types); 1 deleted (events).
    for i in (3, 4, 5):
        session.execute(f"UPDATE {types.full_name} SET name = 'changed after the backup' WHERE id = {i}")
    for i in (7, 8):
        session.execute(f"DELETE FROM {types.full_name} WHERE id = {i}")
    for i in (types.count + 1, types.count + 2):
        session.execute(f"INSERT INTO {types.full_name} (id, name) VALUES ({i}, 'new after the backup')")
    events = ds.table("events")
    first = session.execute(f"SELECT bucket, ts, seq FROM {events.full_name} LIMIT 1").one()
    session.execute(f"DELETE FROM {events.full_name} WHERE bucket = %s AND ts = %s AND seq = %s", tuple(first))
    live_rows = {t.name: ds.read_table(session, t) for t in ds.tables}
    yield {"ds": ds, "repo": repo, "backup": backup_rows, "live": live_rows}
    ds.drop(session)
    for ks in _scratch_keyspaces(session):
        session.execute(f"DROP KEYSPACE IF EXISTS {ks}", timeout=120)
    session.execute(f"DROP KEYSPACE IF EXISTS {ds.main}_copy", timeout=120)
    # The snapshots Cassandra took of the dropped tables, in these keyspaces only.
    node.nodetool("clearsnapshot", "--all", "--", ds.main, ds.side, f"{ds.main}_copy", check=False)


def _scratch_keyspaces(session):
    return [r.keyspace_name for r in session.execute("SELECT keyspace_name FROM system_schema.keyspaces")
            if r.keyspace_name.startswith(PREFIX)]


def _scratch_snapshots(node):
    out = node.nodetool("listsnapshots").stdout
    return [line for line in out.splitlines() if PREFIX in line]


def _scratch_dirs(node):
    data = node.dir / "data"
    return [p.name for p in data.iterdir() if p.name.startswith(PREFIX)]


def _rows_of(session, ds, table, keyspace):
    t = copy.copy(ds.table(table))
    t.keyspace = keyspace
    return ds.read_table(session, t)


def _report(doc, table):
    reports = [t for t in doc["tables"] if t["table"] == table]
    assert len(reports) == 1, doc
    return reports[0]


def test_drill_after_changes(cassette, drilled, session, node):
    ds = drilled["ds"]
    res = cassette("drill", "--repo", drilled["repo"], "--sample-rows", "1000", "--json").ok()
    doc = res.json()
    assert doc["backup"] == "drill-1" and len(doc["drill_id"]) == 8 and not doc["kept"]
    assert doc["rto_seconds"] > 0 and doc["seconds"] >= doc["rto_seconds"]
    assert set(doc["scratch_keyspaces"]) == {f"{PREFIX}{doc['drill_id']}_{ds.main}",
                                             f"{PREFIX}{doc['drill_id']}_{ds.side}"}, doc
    assert {t["table"] for t in doc["tables"]} == {t.full_name for t in ds.tables}
    types = _report(doc, f"{ds.main}.types")
    n = ds.table("types").count
    assert (types["rows_backup"], types["rows_live"]) == (n, n), types
    assert (types["new_since"], types["deleted_since"], types["lost"]) == (2, 2, 0), types
    # Every row of the restored table is small enough to be compared: 3 changed, 2 gone.
    assert (types["sampled"], types["changed_since"], types["gone_since"], types["mismatched"]) == (n, 3, 2, 0), types
    assert types["matched"] == n - 5 and types["problems"] == [], types
    events = _report(doc, f"{ds.side}.events")
    assert (events["rows_backup"], events["rows_live"], events["deleted_since"], events["gone_since"]) == \
        (ds.table("events").count, ds.table("events").count - 1, 1, 1), events
    wide = _report(doc, f"{ds.main}.wide")
    assert wide["rows_backup"] == wide["rows_live"] == wide["matched"] == ds.table("wide").count, wide
    for t in doc["tables"]:
        assert t["lost"] == 0 and t["mismatched"] == 0, t
    # Cleaned up: no scratch keyspace, no snapshot of its dropped tables, no directory.
    assert _scratch_keyspaces(session) == []
    assert _scratch_snapshots(node) == []
    assert _scratch_dirs(node) == []
    # The live tables are as they were, row by row.
    for t in ds.tables:
        assert ds.read_table(session, t) == drilled["live"][t.name], t.full_name
    text = cassette("drill", "--repo", drilled["repo"], "--table", f"{ds.main}.wide", "--sample-rows", "5").ok()
    assert "RTO" in text.out and f"{ds.main}.wide" in text.out, text.describe()


def test_drill_keep(cassette, drilled, session, node, tmp_path):
    ds = drilled["ds"]
    doc = cassette("drill", "--repo", drilled["repo"], "--keyspace", ds.main, "--sample-tables", "1", "--keep",
                   "--json").ok().json()
    assert doc["kept"] and len(doc["tables"]) == 1 and len(doc["scratch_keyspaces"]) == 1, doc
    scratch = doc["scratch_keyspaces"][0]
    table = doc["tables"][0]["table"].split(".")[1]
    assert _scratch_keyspaces(session) == [scratch]
    assert _rows_of(session, ds, table, scratch) == drilled["backup"][table]
    # The next drill drops it (and says so with -v).
    metrics = tmp_path / "drill.prom"
    res = cassette("drill", "-v", "--repo", drilled["repo"], "--table", f"{ds.side}.events", "--sample-rows", "3",
                   "--metrics-file", metrics)
    res.ok()
    assert f"dropping scratch keyspace {scratch}, left by an earlier drill" in res.err, res.describe()
    prom = metrics.read_text()
    rto = re.search(r'^cassette_last_rto_seconds\{op="drill",repo="[^"]+"\} ([0-9.e+-]+)$', prom, re.M)
    assert rto and float(rto.group(1)) > 0, prom
    assert re.search(r'^cassette_last_success_timestamp_seconds\{op="drill",', prom, re.M), prom
    assert _scratch_keyspaces(session) == [] and _scratch_dirs(node) == [] and _scratch_snapshots(node) == []


def _data_object(repo, table_full):
    """The stored object of the table's Data.db (unencrypted repository: the manifest is JSON)."""
    ks, table = table_full.split(".")
    manifest = next((repo / "backups" / "drill-1").glob("*.manifest"))
    m = json.loads(manifest.read_text())
    for t in m["tables"]:
        if (t["keyspace"], t["table"]) == (ks, table):
            f = next(f for f in t["files"] if f["name"].endswith("-Data.db") and "/" not in f["name"])
            return f["name"], repo / "objects" / f["object"][:2] / f["object"]
    raise AssertionError(f"no {table_full} in {manifest}")


def test_drill_corrupted_object(cassette, drilled, session, node, tmp_path):
    ds = drilled["ds"]
    repo = tmp_path / "repo"
    shutil.copytree(drilled["repo"], repo)
    name, obj = _data_object(repo, f"{ds.main}.wide")
    data = bytearray(obj.read_bytes())
    for i in range(len(data) // 2, min(len(data), len(data) // 2 + 8)):
        data[i] ^= 0xFF
    obj.write_bytes(bytes(data))
    res = cassette("drill", "--repo", repo, "--keyspace", ds.main)
    assert res.rc == 3, res.describe()
    assert_one_error_line(res)
    assert f"{ds.main}.wide" in res.err and name in res.err, res.describe()
    assert _scratch_keyspaces(session) == [] and _scratch_dirs(node) == []
    for t in ds.tables:
        assert ds.read_table(session, t) == drilled["live"][t.name], t.full_name


def test_restore_keyspace_map(cassette, drilled, session):
    ds = drilled["ds"]
    copy_ks = f"{ds.main}_copy"
    session.execute(f"DROP KEYSPACE IF EXISTS {copy_ks}", timeout=120)
    doc = cassette("restore", "--repo", drilled["repo"], "--backup", "drill-1", "--table", f"{ds.main}.types",
                   "--keyspace-map", f"{ds.main}={copy_ks}", "--json").ok().json()
    assert doc["restored_into"] == [{"table": f"{ds.main}.types", "keyspace": copy_ks, "into": f"{copy_ks}.types"}]
    assert _rows_of(session, ds, "types", copy_ks) == drilled["backup"]["types"]
    assert ds.read_table(session, ds.table("types")) == drilled["live"]["types"]
    # Into a keyspace that holds other tables: refused, one line.
    session.execute(f"CREATE TABLE {copy_ks}.other (id int PRIMARY KEY)", timeout=60)
    res = cassette("restore", "--repo", drilled["repo"], "--backup", "drill-1", "--table", f"{ds.main}.types",
                   "--keyspace-map", f"{ds.main}={copy_ks}")
    assert_one_error_line(res)
    assert "holds table other" in res.err
    session.execute(f"DROP KEYSPACE {copy_ks}", timeout=120)


@pytest.mark.parametrize("args, says", [
    (["--keyspace-map", "shop"], "SOURCE=TARGET"),
    (["--keyspace-map", "shop=system_auth"], "Cassandra's own keyspaces"),
    (["--keyspace-map", "shop=shop2", "--mode", "replace"], "only with --mode import"),
])
def test_keyspace_map_bad_input(cassette, tmp_path, args, says):
    res = cassette("restore", "--repo", tmp_path / "none", "--backup", "b", *args)
    assert res.rc == 2, res.describe()
    assert_one_error_line(res)
    assert says in res.err, res.describe()


def test_drill_finds_lost_and_different_rows(cassette, session, node, tmp_path):
    """Rows the backup should hold but does not: written after it, with timestamps from before its
    start (as if the backup had missed them), one new (lost) and one changed (different)."""
    ks = "drl_probe"
    session.execute(f"DROP KEYSPACE IF EXISTS {ks}", timeout=120)
    session.execute(f"CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', "
                    "'replication_factor': 1}", timeout=60)
    session.execute(f"CREATE TABLE {ks}.t (id int PRIMARY KEY, v text)", timeout=60)
    for i in range(20):
        session.execute(f"INSERT INTO {ks}.t (id, v) VALUES ({i}, 'row {i}')")
    t0 = session.execute(f"SELECT writetime(v) FROM {ks}.t WHERE id = 1").one()[0]
    repo = tmp_path / "repo"
    try:
        cassette("backup", "--repo", repo, "--init", "--no-encryption", "--keyspace", ks).ok()
        session.execute(f"INSERT INTO {ks}.t (id, v) VALUES (100, 'ghost') USING TIMESTAMP {t0}")
        session.execute(f"UPDATE {ks}.t USING TIMESTAMP {t0 + 1} SET v = 'tampered' WHERE id = 1")
        res = cassette("drill", "--repo", repo)
        assert res.rc == 3, res.describe()
        assert_one_error_line(res)
        assert f"{ks}.t" in res.err and "(id=" in res.err, res.describe()
        doc = cassette("drill", "--repo", repo, "--json").json()
        (report,) = doc["tables"]
        assert (report["lost"], report["mismatched"], report["matched"]) == (1, 1, 19), report
        assert any("(id=100)" in p for p in report["problems"]), report
        assert any("(id=1)" in p and "column v" in p and "tampered" in p for p in report["problems"]), report
        assert _scratch_keyspaces(session) == []
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {ks}", timeout=120)
        node.nodetool("clearsnapshot", "--all", "--", ks, check=False)

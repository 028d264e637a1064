"""cassette migrate on a real node: Fluxer's example file and files of our own, applied in
timestamp order, each once, recorded in KS.cassette_migrations; changed files refused; a failing
statement named by file and line with nothing after it applied; two runs at once; --dry-run and
status. Rows are read back with the Python driver."""

import hashlib
import subprocess
import uuid

import pytest

from conftest import assert_one_error_line, connect

FLUXER_EXAMPLE = """CREATE TABLE IF NOT EXISTS fluxer . instance_configuration (
key text PRIMARY KEY ,
value text ,
updated_at timestamp
);
INSERT INTO fluxer . instance_configuration ( key , value , updated_at)
VALUES ( 'manual_review_enabled' , 'true' , toTimestamp( now ()));
INSERT INTO fluxer . instance_configuration ( key , value , updated_at)
VALUES ( 'manual_review_schedule_enabled' , 'false' , toTimestamp( now ()));
"""


def _keyspace(session, ks):
    session.execute(f"DROP KEYSPACE IF EXISTS {ks}", timeout=120)
    session.execute(f"CREATE KEYSPACE {ks} WITH replication ="
                    " {'class': 'SimpleStrategy', 'replication_factor': 1}", timeout=120)


def _write(d, name, text):
    p = d / name
    p.write_text(text)
    return p


def _tracking(session, ks):
    rows = session.execute(f"SELECT version, name, checksum, applied_at, duration_ms FROM {ks}.cassette_migrations")
    return {r.version: r for r in rows}


def _blake2b(path):
    return hashlib.blake2b(path.read_bytes(), digest_size=32).hexdigest()


def test_fluxer_example_order_and_idempotence(cassette, session, tmp_path):
    _keyspace(session, "fluxer")
    d = tmp_path / "migrations"
    d.mkdir()
    f1 = _write(d, "20251224122758_instance_configuration.cql", FLUXER_EXAMPLE)
    # Named so that listing order differs from version order.
    f3 = _write(d, "20260207160233_add_note.cql",
                "ALTER TABLE fluxer.instance_configuration ADD note text;\n"
                "UPDATE fluxer.instance_configuration SET note = 'second; with a semicolon' "
                "WHERE key = 'manual_review_enabled';\n")
    f2 = _write(d, "20251230000000_more_config.cql",
                "-- a comment; with a semicolon\n"
                "INSERT INTO fluxer.instance_configuration (key, value) VALUES ('it''s', $$a;b$$);\n"
                "/* block; comment */ INSERT INTO instance_configuration (key, value) VALUES ('unqualified', 'x')\n")
    (d / "README.md").write_text("not a migration")

    res = cassette("migrate", "--dir", d, "--keyspace", "fluxer", "--json").ok()
    out = res.json()
    assert [m["file"] for m in out["migrations"]] == [f1.name, f2.name, f3.name]
    assert out["applied_now"] == 3
    assert [m["statements"] for m in out["migrations"]] == [3, 2, 2]

    rows = {r.key: r for r in session.execute("SELECT key, value, note, updated_at FROM fluxer.instance_configuration")}
    assert set(rows) == {"manual_review_enabled", "manual_review_schedule_enabled", "it's", "unqualified"}
    assert rows["manual_review_enabled"].value == "true"
    assert rows["manual_review_enabled"].note == "second; with a semicolon"
    assert rows["manual_review_schedule_enabled"].value == "false"
    assert rows["it's"].value == "a;b"
    assert rows["unqualified"].value == "x"
    stamp = rows["manual_review_enabled"].updated_at

    tracked = _tracking(session, "fluxer")
    assert set(tracked) == {"20251224122758", "20251230000000", "20260207160233"}
    for f in (f1, f2, f3):
        version, name = f.stem.split("_", 1)
        assert tracked[version].name == name
        assert tracked[version].checksum == _blake2b(f)
        assert tracked[version].applied_at is not None and tracked[version].duration_ms >= 0

    # Again: nothing is applied twice.
    res = cassette("migrate", "--dir", d, "--keyspace", "fluxer", "--json").ok()
    assert res.json()["applied_now"] == 0
    row = session.execute("SELECT updated_at FROM fluxer.instance_configuration WHERE key = 'manual_review_enabled'").one()
    assert row.updated_at == stamp

    # status lists applied and pending; --dry-run changes nothing.
    f4 = _write(d, "20260301000000_pending.cql", "INSERT INTO fluxer.instance_configuration (key) VALUES ('p');")
    res = cassette("migrate", "status", "--dir", d, "--keyspace", "fluxer", "--json").ok()
    states = {m["file"]: m["applied"] for m in res.json()["migrations"]}
    assert states == {f1.name: True, f2.name: True, f3.name: True, f4.name: False}
    res = cassette("migrate", "--dry-run", "--dir", d, "--keyspace", "fluxer").ok()
    assert "would apply" in res.out and f4.name in res.out
    assert session.execute("SELECT key FROM fluxer.instance_configuration WHERE key = 'p'").one() is None
    assert "20260301000000" not in _tracking(session, "fluxer")


def test_changed_file_is_refused(cassette, session, tmp_path):
    _keyspace(session, "mig_changed")
    d = tmp_path / "m"
    d.mkdir()
    f = _write(d, "20260101000000_t.cql", "CREATE TABLE mig_changed.t (k int PRIMARY KEY);")
    cassette("migrate", "--dir", d, "--keyspace", "mig_changed").ok()
    f.write_text("CREATE TABLE mig_changed.t (k int PRIMARY KEY, v int);")
    later = _write(d, "20260102000000_u.cql", "CREATE TABLE mig_changed.u (k int PRIMARY KEY);")
    res = cassette("migrate", "--dir", d, "--keyspace", "mig_changed")
    assert_one_error_line(res)
    assert f.name in res.err and "--force-checksum" in res.err, res.describe()
    tables = {r.table_name for r in session.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = 'mig_changed'")}
    assert "u" not in tables, "a later file ran although an applied one changed"
    cassette("migrate", "--dir", d, "--keyspace", "mig_changed", "--force-checksum").ok()
    tracked = _tracking(session, "mig_changed")
    assert tracked["20260101000000"].checksum == _blake2b(f)
    assert "20260102000000" in tracked


def test_failing_statement_names_file_and_line(cassette, session, tmp_path):
    _keyspace(session, "mig_fail")
    d = tmp_path / "m"
    d.mkdir()
    bad = _write(d, "20260101000000_bad.cql",
                 "CREATE TABLE mig_fail.a (k int PRIMARY KEY);\n"
                 "\n"
                 "-- the next one is wrong\n"
                 "CREATE TABLE mig_fail.b (k int PRIMARY KEY, v nosuchtype);\n"
                 "CREATE TABLE mig_fail.c (k int PRIMARY KEY);\n")
    _write(d, "20260102000000_after.cql", "CREATE TABLE mig_fail.d (k int PRIMARY KEY);")
    res = cassette("migrate", "--dir", d, "--keyspace", "mig_fail")
    assert_one_error_line(res)
    assert f"{bad.name}:4" in res.err, res.describe()
    tables = {r.table_name for r in session.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = 'mig_fail'")}
    assert "a" in tables and not {"b", "c", "d"} & tables, tables
    assert not {"20260101000000", "20260102000000"} & set(_tracking(session, "mig_fail"))


def test_two_runs_at_once_apply_each_file_once(cassette, node, session, tmp_path):
    _keyspace(session, "mig_race")
    session.execute("CREATE TABLE mig_race.log (id timeuuid PRIMARY KEY, file text)", timeout=60)
    d = tmp_path / "m"
    d.mkdir()
    names = [f"2026010100000{i}_step{i}.cql" for i in range(6)]
    for i, n in enumerate(names):
        _write(d, n, f"INSERT INTO mig_race.log (id, file) VALUES (now(), '{n}');\n"
                     f"CREATE TABLE IF NOT EXISTS mig_race.t{i} (k int PRIMARY KEY);\n")
    env = cassette.env()
    cmd = [str(cassette.bin), "--config", str(node.ini), "migrate", "--dir", str(d), "--keyspace", "mig_race",
           "--lock-wait", "2m"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    files = [r.file for r in session.execute("SELECT file FROM mig_race.log")]
    assert sorted(files) == sorted(names), files
    assert len(_tracking(session, "mig_race")) == len(names)


@pytest.mark.parametrize("case", ["no-dir", "no-keyspace", "bad-name", "missing-keyspace", "unterminated",
                                  "same-version", "status-extra"])
def test_migrate_bad_input(cassette, session, tmp_path, case):
    d = tmp_path / "m"
    d.mkdir()
    _write(d, "20260101000000_ok.cql", "SELECT now() FROM system.local;")
    args = ["migrate", "--dir", d, "--keyspace", "system_auth"]
    if case == "no-dir":
        args = ["migrate", "--keyspace", "x"]
    elif case == "no-keyspace":
        args = ["migrate", "--dir", d]
    elif case == "bad-name":
        _write(d, "add_users.cql", "SELECT now() FROM system.local;")
    elif case == "missing-keyspace":
        args = ["migrate", "--dir", d, "--keyspace", "no_such_keyspace_here"]
    elif case == "unterminated":
        _write(d, "20260102000000_bad.cql", "INSERT INTO t (k) VALUES ('oops);")
    elif case == "same-version":
        _write(d, "20260101000000_twin.cql", "SELECT now() FROM system.local;")
    elif case == "status-extra":
        args = ["migrate", "statuz", "--dir", d, "--keyspace", "x"]
    res = cassette(*args)
    assert_one_error_line(res)
    if case == "unterminated":
        assert "20260102000000_bad.cql" in res.err and "line 1" in res.err, res.describe()
    if case == "missing-keyspace":
        assert "no_such_keyspace_here" in res.err and "does not exist" in res.err, res.describe()


def test_schema_dump_replays_into_an_empty_node(cassette, session, spare_node, tmp_path):
    """A schema with UDTs (one nested in another), a legacy secondary index and an SAI index,
    a materialized view, user functions and an aggregate: dumped from the session's node,
    replayed with cassette migrate into an empty node of another cluster, dumped there
    again: the same text."""
    ks = "dump_ks"
    _keyspace(session, ks)
    for stmt in (
        f"CREATE TYPE {ks}.geo (lat double, lon double)",
        f"CREATE TYPE {ks}.address (street text, zip int, \"where\" frozen<geo>)",
        f"CREATE TABLE {ks}.users (id uuid PRIMARY KEY, name text, email text, home frozen<address>,"
        " tags set<text>, score int) WITH comment = 'it''s; a comment' AND gc_grace_seconds = 3600",
        f"CREATE TABLE {ks}.events (user uuid, at timeuuid, kind text, data map<text, blob>,"
        " PRIMARY KEY ((user), at)) WITH CLUSTERING ORDER BY (at DESC)",
        f"CREATE INDEX users_email ON {ks}.users (email)",
        f"CREATE INDEX events_kind ON {ks}.events (kind) USING 'sai'",
        f"CREATE MATERIALIZED VIEW {ks}.users_by_name AS SELECT * FROM {ks}.users"
        " WHERE name IS NOT NULL AND id IS NOT NULL PRIMARY KEY (name, id)",
        f"CREATE FUNCTION {ks}.twice (x int) RETURNS NULL ON NULL INPUT RETURNS int LANGUAGE java"
        " AS $$ return x * 2; $$",
        f"CREATE FUNCTION {ks}.acc (state int, x int) CALLED ON NULL INPUT RETURNS int"
        " LANGUAGE java AS $$ return x == null ? state : state + x; $$",
        f"CREATE AGGREGATE {ks}.total (int) SFUNC acc STYPE int INITCOND 0",
    ):
        session.execute(stmt, timeout=120)
    first = cassette("schema", "dump", "--keyspace", ks).ok().out
    for word in ("CREATE KEYSPACE", "CREATE TYPE", "CREATE TABLE", "CREATE INDEX", "USING 'sai'",
                 "CREATE MATERIALIZED VIEW", "CREATE FUNCTION", "CREATE AGGREGATE"):
        assert word in first, first

    spare_cluster, spare = connect(spare_node)
    try:
        assert ks not in spare_cluster.metadata.keyspaces
        _keyspace(spare, "mig_replay")
        d = tmp_path / "replay"
        d.mkdir()
        (d / "20260101000000_schema.cql").write_text(first)
        on_spare = ["--config", spare_node.ini]
        cassette(*on_spare, "migrate", "--dir", d, "--keyspace", "mig_replay", config=False).ok()
        second = cassette(*on_spare, "schema", "dump", "--keyspace", ks, config=False).ok().out
        assert second == first
        # The replayed schema works: the view, the index and the aggregate answer.
        uid = uuid.uuid4()
        spare.execute(f"INSERT INTO {ks}.users (id, name, email, home, score) VALUES"
                      " (%s, 'ann', 'a@x', {street: 's', zip: 1, \"where\": {lat: 1.5, lon: 2}}, 20)",
                      (uid,))
        assert [tuple(r) for r in spare.execute(
            f"SELECT name, id FROM {ks}.users_by_name WHERE name = 'ann'")] == [("ann", uid)]
        assert [r.id for r in spare.execute(
            f"SELECT id FROM {ks}.users WHERE email = 'a@x'")] == [uid]
        assert spare.execute(f"SELECT {ks}.total(score) AS t FROM {ks}.users").one().t == 20
    finally:
        spare_cluster.shutdown()
    session.execute(f"DROP KEYSPACE {ks}", timeout=120)


def test_contact_points(cassette, node, session, tmp_path):
    """migrate and schema dump take a list of contact points and go on past one that does not
    answer; when none answers, one line names each; backup wants the node's own address."""
    ks = "mig_contact"
    _keyspace(session, ks)
    d = tmp_path / "m"
    d.mkdir()
    _write(d, "20260101000000_t.cql", "CREATE TABLE t (k int PRIMARY KEY);\n")
    nobody = "127.0.0.77"  # nothing listens there: refused at once
    res = cassette("migrate", "--dir", d, "--keyspace", ks, "--cql-host", f"{nobody}, {node.addr}",
                   "--verbose").ok()
    assert f"contact point {nobody}:9042" in res.err, res.describe()
    assert set(_tracking(session, ks)) == {"20260101000000"}
    out = cassette("schema", "dump", "--keyspace", ks, "--cql-host", f"[{nobody}]:9042,{node.addr}").ok().out
    assert f"CREATE TABLE {ks}.t" in out

    res = cassette("schema", "dump", "--cql-host", f"{nobody},127.0.0.78:9043")
    assert_one_error_line(res)
    assert "no contact point answered" in res.err and f"{nobody}:9042" in res.err \
        and "127.0.0.78:9043" in res.err, res.describe()
    res = cassette("backup", "--repo", tmp_path / "repo", "--cql-host", f"{node.addr},{nobody}")
    assert_one_error_line(res)
    assert "not a list of contact points" in res.err, res.describe()
    res = cassette("schema", "dump", "--cql-host", f"{node.addr},,")
    assert_one_error_line(res)
    assert "empty contact point" in res.err, res.describe()
    session.execute(f"DROP KEYSPACE {ks}", timeout=120)

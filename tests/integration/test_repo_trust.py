"""The repository's trust (issue 17, points 3 to 5), on disk and on the real S3 server, against
the real node:

- one damaged (truncated) manifest does not block the repository: list and status call that
  backup damaged, verify (all, or --backup another) and purge --dry-run go on with the others;
  `cassette delete` removes one backup the safe way (--dry-run, the newest one only with
  --force), and the next purge sweeps what only it used;
- each backup records its scope: after `backup --keyspace`, `purge --keep-last 1` keeps the
  newest full backup (a partial one never stands in for it);
- purge (also --dry-run) and the fast verify work on an encrypted repository with only the
  public key: they read the plaintext, checksummed index of each backup, which names no
  keyspace or table; the local catalog is then fed from the indexes;
- a repository of format 1 (tests/data/repo-v1, made by the cassette before the change) still
  lists, verifies, restores row by row and purges.
"""

import glob
import json
import os
import shutil
import sqlite3
import subprocess
import time

import pytest

from conftest import ROOT, assert_one_error_line, cql_slug, tree_state, wait_cql

V1_REPO = ROOT / "tests" / "data" / "repo-v1"
V1_KEY = ROOT / "tests" / "data" / "repo-v1.key"


# ---- helpers ----------------------------------------------------------------------------

def _keypair(path):
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True, timeout=30)
    return subprocess.run(["age-keygen", "-y", str(path)], check=True, capture_output=True,
                          text=True, timeout=30).stdout.strip()


@pytest.fixture
def key(tmp_path):
    path = tmp_path / "key.txt"
    return {"path": path, "pub": _keypair(path)}


class Tiny:
    """A keyspace of the test's own with one small table whose rows the test knows."""

    def __init__(self, session, node, ks):
        self.session, self.node, self.ks = session, node, ks
        self.table = "items"
        self.rows = {}

    def create(self):
        self.session.execute(f"DROP KEYSPACE IF EXISTS {self.ks}", timeout=120)
        self.session.execute(f"CREATE KEYSPACE {self.ks} WITH replication ="
                             " {'class': 'SimpleStrategy', 'replication_factor': 1}", timeout=60)
        self.session.execute(f"CREATE TABLE {self.ks}.{self.table} (id int PRIMARY KEY, v text)"
                             " WITH compaction = {'class': 'SizeTieredCompactionStrategy',"
                             " 'enabled': 'false'}", timeout=60)
        return self

    def write(self, ids, gen):
        stmt = self.session.prepare(f"INSERT INTO {self.ks}.{self.table} (id, v) VALUES (?, ?)")
        for i in ids:
            v = f"row {i} gen {gen}"
            self.session.execute(stmt, (i, v))
            self.rows[i] = v

    def read(self):
        return {r.id: r.v for r in self.session.execute(
            f"SELECT id, v FROM {self.ks}.{self.table}", timeout=120)}

    def check(self, expected):
        got = self.read()
        assert got == expected, (f"{self.ks}.{self.table}: {len(got)} rows read,"
                                 f" {len(expected)} expected; differ at"
                                 f" {sorted(set(got.items()) ^ set(expected.items()))[:10]}")

    def drop(self):
        wait_cql(self.session, 60)
        self.node.nodetool("clearsnapshot", "--all", "--", self.ks, check=False)
        self.session.execute(f"DROP KEYSPACE IF EXISTS {self.ks}", timeout=120)


@pytest.fixture
def tiny(session, node, request):
    """make(tag) -> a created Tiny keyspace, dropped at the end of the test."""
    made = []

    def make(tag):
        t = Tiny(session, node, f"{tag}_{cql_slug(request)[:30]}").create()
        made.append(t)
        return t

    yield make
    for t in made:
        try:
            t.drop()
        except Exception as e:  # cleanup only
            print(f"[test_repo_trust] dropping {t.ks} failed: {e}")


def backup(cassette, repo, name, *args):
    res = cassette("backup", "--repo", repo, "--name", name, *args, "--json").ok()
    assert res.json()["complete"] is True, res.describe()
    return res.json()


def listing(cassette, repo):
    res = cassette("list", "--repo", repo, "--json").ok()
    return {e["name"]: e for e in res.json()}


def backup_file(repo, name, suffix):
    paths = glob.glob(os.path.join(repo.path, "backups", name, f"*.{suffix}"))
    assert len(paths) == 1, f"backup {name}: {paths}"
    return paths[0]


def past_this_second():
    """Waits on the clock until the current second is over: objects written before are then
    older than the cutoff of a purge --grace 0 (stored times have whole seconds)."""
    now = int(time.time())
    while int(time.time()) <= now:
        time.sleep(0.01)


def object_ids(repo):
    return {os.path.basename(p) for p in glob.glob(os.path.join(repo.path, "objects", "*", "*"))
            if not os.path.basename(p).startswith(".")}


def plaintext_files(repo):
    """Every file of the repository that is not an age file (objects and manifests are)."""
    out = []
    for root, _dirs, files in os.walk(repo.path):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                if fh.read(21) != b"age-encryption.org/v1":
                    out.append(p)
    return out


def catalog_db(cassette, state_dir):
    dbs = glob.glob(str(state_dir.parent / "cache" / "cassette" / "catalog" / "*.db"))
    assert len(dbs) == 1, dbs
    return sqlite3.connect(dbs[0])


# ---- point 3: a damaged manifest, and delete ---------------------------------------------

def test_damaged_manifest_does_not_block(cassette, repo, key, tiny, node, session):
    t = tiny("dmg")
    cassette("init", "--repo", repo, "--recipient", key["pub"]).ok()
    t.write(range(0, 20), 1)
    backup(cassette, repo, "dm-1", "--keyspace", t.ks)
    rows_1 = dict(t.rows)
    t.write(range(20, 40), 2)
    backup(cassette, repo, "dm-2", "--keyspace", t.ks)
    t.write(range(40, 60), 3)
    backup(cassette, repo, "dm-3", "--keyspace", t.ks)

    victim = backup_file(repo, "dm-2", "manifest")
    os.chmod(victim, 0o644)
    with open(victim, "r+b") as f:
        f.truncate(os.path.getsize(victim) // 2)

    # list and status: damaged, not complete; the others are untouched.
    entries = listing(cassette, repo)
    assert entries["dm-2"]["damaged"] is True and entries["dm-2"]["complete"] is False, entries
    assert "truncated" in entries["dm-2"]["damage"], entries["dm-2"]
    assert all(entries[n]["complete"] and not entries[n]["damaged"] for n in ("dm-1", "dm-3"))
    res = cassette("list", "--repo", repo).ok()
    assert "DAMAGED" in res.out and "dm-2" in res.out, res.describe()
    status = cassette("status", "--repo", repo, "--json").ok().json()
    assert [d["name"] for d in status["damaged"]] == ["dm-2"], status
    assert status["nodes"][0]["complete"] == 2 and status["nodes"][0]["damaged"] == 1, status
    assert status["nodes"][0]["newest"]["name"] == "dm-3", status
    res = cassette("status", "--repo", repo).ok()
    assert "DAMAGED" in res.out and "dm-2" in res.out, res.describe()

    # verify: every backup (the damaged one reported, the others checked), or another one.
    for extra in ([], ["--identity", key["path"]]):
        res = cassette("verify", "--repo", repo, "--json", *extra)
        assert res.rc == 3, res.describe()
        problems = res.json()["problems"]
        assert [p["backup"] for p in problems] == ["dm-2"], res.describe()
        assert res.json()["backups"] == 2, res.describe()
        assert "dm-2" in res.err and "damaged" in res.err, res.describe()
    for args in (["--backup", "dm-3"], ["--backup", "dm-1", "--deep", "--identity", key["path"]]):
        cassette("verify", "--repo", repo, *args).ok()
    res = cassette("verify", "--repo", repo, "--backup", "dm-2")
    assert res.rc == 3 and "dm-2" in res.err, res.describe()

    # purge --dry-run goes on, keeps the damaged backup and says so; nothing changes.
    before = tree_state(repo.path)
    res = cassette("purge", "--repo", repo, "--dry-run", "--keep-last", "1", "--json").ok()
    verdict = {b["name"]: (b["remove"], b["reason"]) for b in res.json()["backups"]}
    assert verdict["dm-1"][0] is True and verdict["dm-3"][0] is False, verdict
    assert verdict["dm-2"][0] is False and "DAMAGED" in verdict["dm-2"][1], verdict
    assert res.json()["damaged"] == 1, res.describe()

    # delete: --dry-run changes nothing; the newest complete backup only with --force.
    res = cassette("delete", "--repo", repo, "--backup", "dm-2", "--dry-run").ok()
    assert "would delete backup dm-2" in res.out, res.describe()
    assert tree_state(repo.path) == before, "a dry run changed the repository"
    res = cassette("delete", "--repo", repo, "--backup", "dm-3")
    assert_one_error_line(res)
    assert "newest complete backup" in res.err and "--force" in res.err, res.describe()
    res = cassette("delete", "--repo", repo, "--backup", "no-such-backup")
    assert_one_error_line(res)
    assert tree_state(repo.path) == before, "a refused delete changed the repository"

    objects_before = object_ids(repo)
    cassette("delete", "--repo", repo, "--backup", "dm-2").ok()
    assert not os.path.exists(os.path.join(repo.path, "backups", "dm-2")) or \
        not os.listdir(os.path.join(repo.path, "backups", "dm-2")), "files of dm-2 are left"
    assert object_ids(repo) == objects_before, "delete removed objects (purge's job)"
    res = cassette("delete", "--repo", repo, "--backup", "dm-3", "--force", "--json").ok()
    assert res.json()["forced"] is True, res.describe()
    assert set(listing(cassette, repo)) == {"dm-1"}

    # The next purge (no grace) sweeps what only the deleted backups used; dm-1 restores whole.
    past_this_second()
    res = cassette("purge", "--repo", repo, "--grace", "0", "--json").ok()
    assert res.json()["objects_deleted"] > 0, res.describe()
    cassette("verify", "--repo", repo, "--deep", "--identity", key["path"]).ok()
    session.execute(f"TRUNCATE {t.ks}.{t.table}", timeout=120)
    cassette("restore", "--repo", repo, "--backup", "dm-1", "--identity", key["path"]).ok()
    t.check(rows_1)


# ---- point 4: scope and retention -------------------------------------------------------

def test_partial_backup_never_stands_for_full(cassette, repo, key, tiny, state_dir):
    a, b = tiny("sca"), tiny("scb")
    a.write(range(10), 1)
    b.write(range(10), 1)
    cassette("init", "--repo", repo, "--recipient", key["pub"]).ok()
    backup(cassette, repo, "full-1")
    backup(cassette, repo, "full-2")
    backup(cassette, repo, "part-1", "--keyspace", a.ks)
    backup(cassette, repo, "part-b", "--keyspace", b.ks)

    entries = listing(cassette, repo)
    assert entries["full-1"]["scope"] == "all" and entries["full-2"]["scope"] == "all", entries
    for name in ("part-1", "part-b"):
        assert entries[name]["scope"] == "partial", entries[name]
        # Encrypted: the plaintext summary names no keyspace, only an opaque id.
        assert entries[name]["scope_names"] is None, entries[name]
    assert entries["part-1"]["scope_id"] != entries["part-b"]["scope_id"], entries
    res = cassette("list", "--repo", repo).ok()
    assert "partial:" in res.out and a.ks not in res.out, res.describe()
    for p in plaintext_files(repo):
        data = open(p, "rb").read()
        assert a.ks.encode() not in data and b.ks.encode() not in data, f"a keyspace name in {p}"

    # The same scope again gets the same id (retention counts them together).
    backup(cassette, repo, "part-2", "--keyspace", a.ks)
    entries = listing(cassette, repo)
    assert entries["part-2"]["scope_id"] == entries["part-1"]["scope_id"], entries

    res = cassette("purge", "--repo", repo, "--keep-last", "1", "--dry-run", "--json").ok()
    verdict = {x["name"]: x["remove"] for x in res.json()["backups"]}
    assert verdict == {"full-1": True, "full-2": False, "part-1": True, "part-b": False,
                       "part-2": False}, res.describe()
    cassette("purge", "--repo", repo, "--keep-last", "1").ok()
    assert set(listing(cassette, repo)) == {"full-2", "part-b", "part-2"}

    # With the identity, the scope's names come from the manifest (kept in the local cache).
    cassette("verify", "--repo", repo, "--identity", key["path"]).ok()
    entries = listing(cassette, repo)
    assert entries["part-2"]["scope_names"] == [a.ks], entries["part-2"]


def test_unencrypted_scope_is_readable(cassette, tmp_path, tiny):
    a = tiny("scu")
    a.write(range(5), 1)
    repo = tmp_path / "plain"
    cassette("init", "--repo", repo, "--no-encryption").ok()
    res = cassette("backup", "--repo", repo, "--name", "p-1", "--keyspace", a.ks, "--json").ok()
    assert res.json()["complete"] is True
    e = cassette("list", "--repo", repo, "--json").ok().json()[0]
    assert e["scope"] == "partial" and e["scope_names"] == [a.ks], e
    res = cassette("list", "--repo", repo).ok()
    assert a.ks[:12] in res.out, res.describe()  # the column is narrow: the start of it


# ---- point 5: purge and the fast verify without the private key -------------------------

def test_purge_and_verify_without_identity(cassette, repo, key, tiny, node, session, state_dir):
    t = tiny("nokey")
    cassette("init", "--repo", repo, "--recipient", key["pub"]).ok()
    t.write(range(0, 30), 1)
    backup(cassette, repo, "nk-1", "--keyspace", t.ks)
    session.execute(f"TRUNCATE {t.ks}.{t.table}", timeout=120)  # nk-1's SSTables go
    t.rows = {}
    t.write(range(100, 130), 2)
    backup(cassette, repo, "nk-2", "--keyspace", t.ks)
    rows_2 = dict(t.rows)

    # Each backup has a plaintext index beside its manifest, checked by its own checksum,
    # naming no keyspace or table; the manifest stays an age file.
    for name in ("nk-1", "nk-2"):
        index = json.load(open(backup_file(repo, name, "index")))
        assert index["type"] == "cassette-index" and len(index["blake2b"]) == 64, index
        assert index["body"]["scope"] == "partial" and index["body"]["objects"], index
        with open(backup_file(repo, name, "manifest"), "rb") as f:
            assert f.read(21) == b"age-encryption.org/v1"
    for p in plaintext_files(repo):
        data = open(p, "rb").read()
        for secret in (t.ks, t.table, "Data.db", "CREATE TABLE"):
            assert secret.encode() not in data, f"{secret!r} appears in {p}"

    # Fast verify and purge --dry-run with no identity at all.
    res = cassette("verify", "--repo", repo).ok()
    assert "all good" in res.out, res.describe()
    objects_before = object_ids(repo)
    past_this_second()
    res = cassette("purge", "--repo", repo, "--keep-last", "1", "--grace", "0", "--dry-run",
                   "--json").ok()
    data = res.json()
    assert data["removed"] == 1 and data["objects_deleted"] > 0, res.describe()
    assert object_ids(repo) == objects_before

    # The catalog was fed from the indexes: references known, plaintext hashes not.
    db = catalog_db(cassette, state_dir)
    refs = db.execute("SELECT name, refs FROM backups ORDER BY name").fetchall()
    assert refs == [("nk-1", 1), ("nk-2", 1)], refs
    assert db.execute("SELECT count(*) FROM objects WHERE hash IS NOT NULL").fetchone()[0] == 0
    db.close()

    # The real purge, still without the key: nk-1 and the objects only it used go.
    past_this_second()
    res = cassette("purge", "--repo", repo, "--keep-last", "1", "--grace", "0", "--json").ok()
    assert res.json()["removed"] == 1 and res.json()["objects_deleted"] == data["objects_deleted"]
    assert set(listing(cassette, repo)) == {"nk-2"}
    assert len(object_ids(repo)) == len(objects_before) - data["objects_deleted"]
    cassette("verify", "--repo", repo).ok()

    # A missing object is found by the keyless fast verify (moved to a name that is not an
    # object id, which cassette ignores, and back).
    victim = sorted(glob.glob(os.path.join(repo.path, "objects", "*", "*")))[0]
    os.rename(victim, victim + ".away")
    res = cassette("verify", "--repo", repo)
    assert res.rc == 3 and os.path.basename(victim) in res.err, res.describe()
    os.rename(victim + ".away", victim)

    # The deep verify and the restore still need the key, and say so; with it, every row.
    res = cassette("verify", "--repo", repo, "--deep")
    assert_one_error_line(res)
    assert "--identity" in res.err, res.describe()
    cassette("verify", "--repo", repo, "--deep", "--identity", key["path"]).ok()
    session.execute(f"TRUNCATE {t.ks}.{t.table}", timeout=120)
    cassette("restore", "--repo", repo, "--backup", "nk-2", "--identity", key["path"]).ok()
    t.check(rows_2)


def test_damaged_index(cassette, repo, key, tiny):
    """A damaged index is found by its checksum: that backup is damaged (its objects are then
    unknown without the key, so purge keeps every object and says why); the others go on."""
    t = tiny("idx")
    cassette("init", "--repo", repo, "--recipient", key["pub"]).ok()
    t.write(range(10), 1)
    backup(cassette, repo, "ix-1", "--keyspace", t.ks)
    t.write(range(10, 20), 2)
    backup(cassette, repo, "ix-2", "--keyspace", t.ks)
    index = backup_file(repo, "ix-1", "index")
    os.chmod(index, 0o644)
    text = open(index).read()
    with open(index, "w") as f:  # one stored size changed: still valid JSON
        f.write(text.replace("]]", "1]]", 1))

    res = cassette("verify", "--repo", repo, "--json")
    assert res.rc == 3, res.describe()
    assert [p["backup"] for p in res.json()["problems"]] == ["ix-1"], res.describe()
    assert "checksum" in res.json()["problems"][0]["reason"], res.describe()
    assert listing(cassette, repo)["ix-1"]["damaged"] is True

    objects = object_ids(repo)
    past_this_second()
    res = cassette("purge", "--repo", repo, "--grace", "0", "--json").ok()
    assert res.json()["sweep_skipped"] and "ix-1" in res.json()["sweep_skipped"], res.describe()
    assert object_ids(repo) == objects

    # With the key, its manifest (sound) says which objects it uses: the sweep goes on.
    past_this_second()
    res = cassette("purge", "--repo", repo, "--grace", "0", "--json", "--identity", key["path"]).ok()
    assert res.json()["sweep_skipped"] is None, res.describe()
    assert object_ids(repo) == objects  # every object is still used


def test_interrupted_backup_and_removal_leftovers(cassette, tmp_path, key, tiny):
    """What a crash between the index and the manifest leaves is an incomplete backup, and
    what a purge or delete killed between its deletes leaves (an index alone) is cleaned by
    the next purge."""
    t = tiny("crash")
    repo = tmp_path / "repo"
    cassette("init", "--repo", repo, "--recipient", key["pub"]).ok()
    t.write(range(10), 1)
    backup(cassette, repo, "cr-1", "--keyspace", t.ks)
    backup(cassette, repo, "cr-2", "--keyspace", t.ks)
    # cr-2 as a crash right after its index was written: no manifest, no summary.
    for suffix in ("manifest", "summary"):
        os.remove(glob.glob(str(repo / "backups" / "cr-2" / f"*.{suffix}"))[0])
    # A leftover of a killed removal: an index alone.
    ghost = repo / "backups" / "ghost"
    ghost.mkdir()
    shutil.copy(glob.glob(str(repo / "backups" / "cr-1" / "*.index"))[0], ghost / "x.index")

    entries = listing(cassette, repo)
    assert set(entries) == {"cr-1", "cr-2"}, entries
    assert entries["cr-2"]["complete"] is False and entries["cr-2"]["damaged"] is False
    cassette("verify", "--repo", repo).ok()
    past_this_second()
    res = cassette("purge", "--repo", repo, "--grace", "0", "--json").ok()
    assert res.json()["removed_incomplete"] == 1 and res.json()["leftovers_deleted"] == 1, \
        res.describe()
    assert not glob.glob(str(repo / "backups" / "cr-2" / "*"))
    assert not glob.glob(str(repo / "backups" / "ghost" / "*"))
    cassette("verify", "--repo", repo, "--identity", key["path"], "--deep").ok()


# ---- the format-1 repository of tests/data ----------------------------------------------

V1_KS = "cassette_v1"


def v1_rows(n=20):
    """Row i of tests/data/README.md, as the driver returns it (name, amount, tags, seen)."""
    import datetime
    epoch = datetime.datetime(1970, 1, 1)
    return {i: (f"row {i:02d}", i * 1000003 - 7, {f"t{i % 3}", f"u{i % 5}"},
                epoch + datetime.timedelta(milliseconds=1767225600000 + i * 3600000))
            for i in range(n)}


def read_v1(session):
    return {r.id: (r.name, r.amount, set(r.tags), r.seen)
            for r in session.execute(f"SELECT * FROM {V1_KS}.rows", timeout=120)}


def test_format1_repository(cassette, tmp_path, node, session):
    repo = tmp_path / "repo-v1"
    shutil.copytree(V1_REPO, repo)
    assert json.load(open(repo / "cassette.repo"))["format"] == 1

    entries = {e["name"]: e for e in cassette("list", "--repo", repo, "--json").ok().json()}
    assert set(entries) == {"v1-first", "v1-second"}, entries
    assert all(e["complete"] and e["scope"] is None for e in entries.values()), entries
    cassette("status", "--repo", repo).ok()

    # Format 1 has no index: purge and verify need the key, as before, and say so.
    for args in (["verify"], ["purge", "--dry-run"]):
        res = cassette(*args, "--repo", repo)
        assert_one_error_line(res)
        assert "--identity" in res.err and "v1-" in res.err, res.describe()
    cassette("verify", "--repo", repo, "--identity", V1_KEY).ok()
    cassette("verify", "--repo", repo, "--deep", "--identity", V1_KEY).ok()

    try:
        session.execute(f"DROP KEYSPACE IF EXISTS {V1_KS}", timeout=120)
        cassette("restore", "--repo", repo, "--backup", "v1-second", "--identity", V1_KEY).ok()
        assert read_v1(session) == v1_rows(20)

        past_this_second()
        res = cassette("purge", "--repo", repo, "--keep-last", "1", "--grace", "0",
                       "--identity", V1_KEY, "--json").ok()
        assert res.json()["removed"] == 1, res.describe()
        assert set(e["name"] for e in cassette("list", "--repo", repo, "--json").ok().json()) \
            == {"v1-second"}
        cassette("verify", "--repo", repo, "--deep", "--identity", V1_KEY).ok()
        session.execute(f"TRUNCATE {V1_KS}.rows", timeout=120)
        cassette("restore", "--repo", repo, "--backup", "v1-second", "--identity", V1_KEY).ok()
        assert read_v1(session) == v1_rows(20)
        assert json.load(open(repo / "cassette.repo"))["format"] == 1, "the format changed"
    finally:
        wait_cql(session, 60)
        node.nodetool("clearsnapshot", "--all", "--", V1_KS, check=False)
        session.execute(f"DROP KEYSPACE IF EXISTS {V1_KS}", timeout=120)

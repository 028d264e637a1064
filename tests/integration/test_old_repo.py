"""Repositories written by older cassettes stay readable by this one:

- tests/data/repo-format1: manifest format 1 (every file's content hash BLAKE2b-256, bare hex),
  written by the cassette of f8e4bf3 (before issue 22);
- tests/data/repo-format2: manifest format 2 (content hashes "sha256:<hex>", one object per
  file), written by the cassette of 9a65129 (before packs, manifest format 3, where one object
  may hold several small files of one SSTable).

Both were made by tests/data/make-old-repo.py against a Cassandra 5.0 node, each encrypted to
its checked-in test key (tests/data/repo-formatN.test-key); see tests/data/README.md.

On a copy of each, with the cassette under test: list shows the backup, verify (fast and deep)
passes, restore after dropping the keyspace brings back exactly the rows (read back row by row
and compared with the values below, which the fixtures were made from); a new backup into the
same repository writes a manifest of the format this cassette writes (CS_MANIFEST_FORMAT of
src/repo/manifest.h, SHA-256 hashes) beside the old one, a deep verify of both backups (together
and each alone) passes, and restoring either of them brings back every row; one byte changed in
an old object makes the deep verify fail naming that object: in its ciphertext (age's tag) and
in its zstd frame, whose XXH64 checksum cassette no longer computes (format 1) or never wrote
(format 2): the content hash catches it.

The rows are defined here (FMT1_TABLES, fmt1_rows; the same for both fixtures, in keyspaces
cassette_fmt1 and cassette_fmt2) and imported by the script that made the fixtures: never
change them without remaking both.
"""

import dataclasses
import datetime
import decimal
import json
import pathlib
import re
import shutil
import subprocess
import uuid

import pytest
from conftest import ROOT, wait_cql

_DATA = ROOT / "tests" / "data"


@dataclasses.dataclass(frozen=True)
class OldRepo:
    """A repository of tests/data written by an old cassette: one backup of one keyspace
    holding the tables and rows below."""
    manifest_format: int  # what the old cassette wrote
    commit: str           # the old cassette's
    repo: pathlib.Path
    key: pathlib.Path     # the age identity it is encrypted to
    keyspace: str
    backup: str


OLD_REPOS = {
    1: OldRepo(1, "f8e4bf3", _DATA / "repo-format1", _DATA / "repo-format1.test-key",
               "cassette_fmt1", "format1"),
    2: OldRepo(2, "9a65129", _DATA / "repo-format2", _DATA / "repo-format2.test-key",
               "cassette_fmt2", "format2"),
}
FMT1_KS = OLD_REPOS[1].keyspace

# Compaction off: the backup's SSTables stay as they were written.
_NO_COMPACTION = " WITH compaction = {'class': 'SizeTieredCompactionStrategy', 'enabled': 'false'}"
FMT1_TABLES = {
    "scalars": "CREATE TABLE {ks}.scalars (id int PRIMARY KEY, name text, amount bigint,"
               " ratio double, flag boolean, born date, seen timestamp, uid uuid, raw blob,"
               " price decimal, big varint, small smallint, ip inet)" + _NO_COMPACTION,
    "collections": "CREATE TABLE {ks}.collections (id int, seq int, tags set<text>,"
                   " scores list<int>, attrs map<text, int>, PRIMARY KEY (id, seq))"
                   + _NO_COMPACTION + " AND CLUSTERING ORDER BY (seq DESC)",
    "readings": "CREATE TABLE {ks}.readings (sensor text, at timestamp, reading float,"
                " site text static, pos frozen<tuple<int, int>>, PRIMARY KEY (sensor, at))"
                + _NO_COMPACTION,
}
_COLUMNS = {
    "scalars": ("id", "name", "amount", "ratio", "flag", "born", "seen", "uid", "raw", "price",
                "big", "small", "ip"),
    "collections": ("id", "seq", "tags", "scores", "attrs"),
    "readings": ("sensor", "at", "reading", "site", "pos"),
}
_EPOCH = datetime.datetime(2026, 1, 1)


def fmt1_rows():
    """{table: {primary key: row tuple in _COLUMNS order}}, as inserted and as read back."""
    scalars = {}
    for i in range(30):
        scalars[(i,)] = (
            i, None if i % 10 == 9 else f"name {i:02d}", i * 1000003 - 7, i / 8, i % 2 == 0,
            datetime.date(2000, 1, 1) + datetime.timedelta(days=37 * i),
            _EPOCH + datetime.timedelta(minutes=61 * i),
            uuid.uuid5(uuid.NAMESPACE_URL, f"cassette-fmt1-{i}"), bytes([i, i * 7 % 256, 255 - i]),
            decimal.Decimal(f"{i}.{i:02d}"), 10 ** 20 + i, i * 100 - 1000, f"10.0.{i}.{i + 1}")
    collections = {}
    for i in range(8):
        for s in range(4):
            collections[(i, s)] = (i, s, {f"t{(i + s) % 3}", f"u{s}"}, [i, s, i * s],
                                   {"a": i, f"k{s}": s * 10})
    readings = {}
    for n in range(3):
        for k in range(10):
            at = _EPOCH + datetime.timedelta(seconds=3600 * k + n)
            readings[(f"sensor-{n}", at)] = (f"sensor-{n}", at, n + k * 0.25, f"site {n}",
                                             (n, k))
    return {"scalars": scalars, "collections": collections, "readings": readings}


def fmt1_insert(session, ks=FMT1_KS):
    """Create the keyspace, its tables and every row (what the fixture was made from)."""
    session.execute(f"CREATE KEYSPACE {ks} WITH replication ="
                    " {'class': 'SimpleStrategy', 'replication_factor': 1}", timeout=60)
    for table, cql in FMT1_TABLES.items():
        session.execute(cql.replace("{ks}", ks), timeout=60)
    for table, rows in fmt1_rows().items():
        cols = _COLUMNS[table]
        ins = session.prepare(f"INSERT INTO {ks}.{table} ({', '.join(cols)})"
                              f" VALUES ({', '.join('?' * len(cols))})")
        for row in rows.values():
            session.execute(ins, row, timeout=60)


def _plain(v):
    """A value as the driver returns it, in the types fmt1_rows uses."""
    if v is None or isinstance(v, (int, float, str, bytes, decimal.Decimal, uuid.UUID,
                                   datetime.datetime)):
        return v
    if hasattr(v, "date") and type(v).__name__ == "Date":  # cassandra.util.Date
        return v.date()
    if isinstance(v, (set, frozenset)) or type(v).__name__ == "SortedSet":
        return set(v)
    if isinstance(v, tuple):
        return tuple(v)
    if isinstance(v, list):
        return list(v)
    if hasattr(v, "items"):  # OrderedMapSerializedKey
        return dict(v.items())
    return v


def read_rows(session, ks=FMT1_KS):
    """Every row of every table, read back one by one, in fmt1_rows' form."""
    out = {}
    for table, cols in _COLUMNS.items():
        key_len = 2 if table != "scalars" else 1
        rows = {}
        for r in session.execute(f"SELECT {', '.join(cols)} FROM {ks}.{table}", timeout=120):
            row = tuple(_plain(v) for v in r)
            rows[row[:key_len]] = row
        out[table] = rows
    return out


def assert_rows_equal(got, want):
    for table in want:
        assert set(got[table]) == set(want[table]), (table, set(want[table]) ^ set(got[table]))
        for k, row in want[table].items():
            assert got[table][k] == row, (table, k, got[table][k], row)


def _manifests(repo, name, key):
    """The decrypted manifests (JSON) of backup `name`: age -d then zstd -d of each object the
    backup's directory holds (NAME/<id>.manifest)."""
    out = []
    for f in sorted((repo / "backups" / name).glob("*.manifest")):
        plain = subprocess.run(["age", "-d", "-i", str(key), str(f)], check=True,
                               capture_output=True, timeout=60).stdout
        if plain[:4] == b"\x28\xb5\x2f\xfd":  # a zstd frame
            plain = subprocess.run(["zstd", "-dc"], input=plain, check=True,
                                   capture_output=True, timeout=60).stdout
        out.append(json.loads(plain))
    return out


def _file_hashes(manifest):
    return [f["hash"] for t in manifest["tables"] for f in t["files"]]


def _written_manifest_format():
    """The manifest format this cassette writes: CS_MANIFEST_FORMAT of src/repo/manifest.h."""
    text = (ROOT / "src" / "repo" / "manifest.h").read_text()
    m = re.search(r"^#define CS_MANIFEST_FORMAT (\d+)\b", text, re.M)
    assert m, "no #define CS_MANIFEST_FORMAT in src/repo/manifest.h"
    return int(m.group(1))


def _plaintext_flip_is_caught(cassette, repo, victim, old):
    """One byte changed inside the zstd frame of an old object (re-encrypted by hand with the age
    CLI, so age's tag holds). Format 1's frames carry zstd's XXH64 content checksum, which
    cassette no longer computes; format 2's carry none (`zstd -d` takes the changed frame).
    Either way the content hash catches the change."""
    key = ["--identity", old.key]
    original = victim.read_bytes()
    plain = bytearray(subprocess.run(["age", "-d", "-i", str(old.key), str(victim)], check=True,
                                     capture_output=True, timeout=60).stdout)
    checksum = old.manifest_format == 1
    # Frame header descriptor: the checksum flag (format 1) or nothing; then a window descriptor.
    assert plain[:4] == b"\x28\xb5\x2f\xfd" and plain[4] == (0x04 if checksum else 0x00), \
        plain[:6].hex()
    block = int.from_bytes(plain[6:9], "little")
    assert (block >> 1) & 3 == 0 and block >> 3 > 100, hex(block)  # a raw block: nothing to decode
    plain[9 + (block >> 3) // 2] ^= 0x01
    recipient = subprocess.run(["age-keygen", "-y", str(old.key)], check=True, capture_output=True,
                               text=True, timeout=60).stdout.strip()
    damaged = subprocess.run(["age", "-e", "-r", recipient], input=bytes(plain), check=True,
                             capture_output=True, timeout=60).stdout
    assert len(damaged) == len(original)
    victim.write_bytes(damaged)
    res = cassette("verify", "--repo", repo, "--deep", *key)
    assert res.rc == 3, res.describe()  # README: exit 3, damage found
    assert victim.name in res.out + res.err and "content hash mismatch" in res.out + res.err, res.describe()
    zstd = subprocess.run(["zstd", "-d", "-c", "-q"], input=bytes(plain), capture_output=True, timeout=60)
    if checksum:
        assert zstd.returncode != 0 and b"checksum" in zstd.stderr.lower(), zstd.stderr
    else:
        assert zstd.returncode == 0, zstd.stderr
    victim.write_bytes(original)
    cassette("verify", "--repo", repo, "--deep", *key).ok()


def _restore_and_check(cassette, session, repo, backup, old):
    """Drop the keyspace, restore `backup` and read every row back."""
    session.execute(f"DROP KEYSPACE IF EXISTS {old.keyspace}", timeout=120)
    cassette("restore", "--repo", repo, "--backup", backup, "--identity", old.key).ok()
    assert_rows_equal(read_rows(session, old.keyspace), fmt1_rows())


NEW_BACKUP = "new"


@pytest.mark.parametrize("old", OLD_REPOS.values(), ids=lambda o: f"format{o.manifest_format}")
def test_old_repository_stays_readable(cassette, tmp_path, node, session, old):
    repo = tmp_path / old.repo.name
    shutil.copytree(old.repo, repo)
    key = ["--identity", old.key]
    manifests = _manifests(repo, old.backup, old.key)
    assert manifests and all(m["format"] == old.manifest_format for m in manifests), manifests
    hashes = [h for m in manifests for h in _file_hashes(m)]
    if old.manifest_format == 1:
        assert all(len(h) == 64 for h in hashes), hashes
    else:
        assert hashes and all(h.startswith("sha256:") and len(h) == 71 for h in hashes), hashes
    # One object per file, and SSTables of several (small) files: what a cassette that packs
    # small files must still read.
    files = [f for m in manifests for t in m["tables"] for f in t["files"]]
    assert len({f["object"] for f in files}) == len(files), files
    sstables = {}
    for m in manifests:
        for t in m["tables"]:
            for f in t["files"]:
                sstables.setdefault((t["keyspace"], t["table"], f["name"].rsplit("-", 1)[0]),
                                    []).append(f)
    assert max(len(fs) for fs in sstables.values()) >= 4, sstables

    entries = {e["name"]: e for e in cassette("list", "--repo", repo, "--json").ok().json()}
    assert set(entries) == {old.backup} and entries[old.backup]["complete"], entries
    cassette("verify", "--repo", repo, *key).ok()
    cassette("verify", "--repo", repo, "--deep", *key).ok()
    old_objects = {p.name for p in (repo / "objects").rglob("*") if p.is_file()}

    try:
        _restore_and_check(cassette, session, repo, old.backup, old)

        # A new backup of the restored keyspace beside the old one: this cassette's manifest
        # format, SHA-256 hashes.
        cassette("backup", "--repo", repo, "--name", NEW_BACKUP, "--keyspace", old.keyspace).ok()
        new = _manifests(repo, NEW_BACKUP, old.key)
        assert new and all(m["format"] == _written_manifest_format() for m in new), new
        hashes = [h for m in new for h in _file_hashes(m)]
        assert hashes and all(h.startswith("sha256:") and len(h) == 71 for h in hashes), hashes
        names = {e["name"] for e in cassette("list", "--repo", repo, "--json").ok().json()}
        assert names == {old.backup, NEW_BACKUP}, names
        cassette("verify", "--repo", repo, *key).ok()
        cassette("verify", "--repo", repo, "--deep", *key).ok()
        cassette("verify", "--repo", repo, "--deep", "--backup", old.backup, *key).ok()
        cassette("verify", "--repo", repo, "--deep", "--backup", NEW_BACKUP, *key).ok()

        # Either backup, restored from the repository that now holds both, brings back every row.
        _restore_and_check(cassette, session, repo, old.backup, old)
        _restore_and_check(cassette, session, repo, NEW_BACKUP, old)

        # One byte changed in an old object (the largest: an SSTable's): the deep verify
        # fails and names it.
        victim = max((p for p in (repo / "objects").rglob("*")
                      if p.is_file() and p.name in old_objects), key=lambda p: p.stat().st_size)
        _plaintext_flip_is_caught(cassette, repo, victim, old)
        data = bytearray(victim.read_bytes())
        data[len(data) // 2] ^= 0x01
        victim.write_bytes(bytes(data))
        res = cassette("verify", "--repo", repo, "--deep", *key)
        assert res.rc != 0, res.describe()
        assert victim.name in res.out + res.err, res.describe()
    finally:
        wait_cql(session, 60)
        node.nodetool("clearsnapshot", "--all", "--", old.keyspace, check=False)
        session.execute(f"DROP KEYSPACE IF EXISTS {old.keyspace}", timeout=120)

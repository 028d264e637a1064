"""Encrypted repositories against a real node: what is stored reveals nothing, an object
can be recovered by hand with the real age and zstd CLIs, and a wrong key, a flipped byte
or a truncated object fails clearly and places nothing of its table."""

import hashlib
import os
import subprocess

import pytest

from conftest import object_files, tree_state


def _keypair(path):
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True, timeout=30)
    return subprocess.run(["age-keygen", "-y", str(path)], check=True, capture_output=True,
                          text=True, timeout=30).stdout.strip()


@pytest.fixture
def keys(tmp_path):
    good, other = tmp_path / "key.txt", tmp_path / "other.txt"
    return {"key": good, "pub": _keypair(good), "other": other, "other_pub": _keypair(other)}


@pytest.fixture
def encrypted(cassette, repo, keys, make_small_data):
    """An encrypted repository holding backup enc-1 of a small data set, taken with only
    the public key at hand."""
    cassette("init", "--repo", repo, "--recipient", keys["pub"]).ok()
    ds = make_small_data("enc", scale=0.02)  # compaction off: live files == backed-up files
    res = cassette("backup", "--repo", repo, "--name", "enc-1", "--keyspace", ds.main,
                   "--keyspace", ds.side, "--json").ok()
    assert res.json()["files_new"] > 0, res.describe()
    return ds


def _objects(repo):
    return sorted(os.path.join(r, f) for r, _d, fs in os.walk(repo / "objects") for f in fs)


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def _table_dirs(node, ds):
    """Every file under the data directories of the data set's keyspaces."""
    out = {}
    for d in node.data_dirs:
        for ks in ds.keyspaces:
            out.update({f"{d}/{ks}/{k}": v for k, v in tree_state(d / ks).items()})
    return out


def test_recover_by_hand_and_nothing_in_clear(cassette, repo, keys, node, encrypted):
    ds = encrypted
    objects = _objects(repo)
    assert objects

    # Recovery by hand: age -d | zstd -d of one object is an SSTable component, or the small
    # components of one SSTable one after the other (a pack), byte for byte.
    victim = max(objects, key=os.path.getsize)
    age = subprocess.run(["age", "-d", "-i", str(keys["key"]), victim], capture_output=True,
                         check=True, timeout=120)
    plain = subprocess.run(["zstd", "-d", "-c", "-q"], input=age.stdout, capture_output=True,
                           check=True, timeout=120).stdout
    live = {p: p.read_bytes() for ks in ds.keyspaces for p in node.table_file_paths(ks)}
    assert object_files(plain, live), f"{victim} decrypts to no live SSTable component"

    # Every object and every manifest is an age file.
    manifests = [os.path.join(r, f) for r, _d, fs in os.walk(repo / "backups") for f in fs
                 if f.endswith(".manifest")]
    assert manifests
    for path in objects + manifests:
        with open(path, "rb") as f:
            assert f.read(22) == b"age-encryption.org/v1\n", f"{path} is not an age file"

    # No keyspace, table or file name anywhere in the repository, in names or content.
    secrets = set(ds.keyspaces) | {t.name for t in ds.tables} | {"Data.db", "-big-", "CREATE TABLE"}
    for root, dirs, files in os.walk(repo):
        for name in dirs + files:
            for s in secrets:
                assert s not in name, f"{s!r} appears in the name {os.path.join(root, name)}"
        for name in files:
            data = open(os.path.join(root, name), "rb").read()
            for s in secrets:
                assert s.encode() not in data, f"{s!r} appears in {os.path.join(root, name)}"


def test_wrong_identity_writes_nothing(cassette, repo, keys, node, session, encrypted):
    ds = encrypted
    t = ds.tables[0]
    session.execute(f"TRUNCATE {t.full_name}", timeout=120)
    before = _table_dirs(node, ds)
    staging = node.dir / "cassette-staging"

    res = cassette("restore", "--repo", repo, "--backup", "enc-1", "--identity", keys["other"])
    assert res.rc == 5, res.describe()  # README: exit 5, no key
    assert "no identity matches" in res.err, res.describe()
    assert "enc-1" in res.err, res.describe()
    assert _table_dirs(node, ds) == before, "the data directories changed"
    assert not staging.exists() or not any(staging.iterdir())
    assert list(session.execute(f"SELECT * FROM {t.full_name} LIMIT 1")) == []

    res = cassette("verify", "--repo", repo, "--identity", keys["other"])
    assert res.rc == 5 and "no identity matches" in res.err, res.describe()

    # Without any identity the error says what to do.
    res = cassette("restore", "--repo", repo, "--backup", "enc-1")
    assert res.rc == 5 and "--identity" in res.err, res.describe()

    # The right key restores every row.
    cassette("restore", "--repo", repo, "--backup", "enc-1", "--table", t.full_name,
             "--identity", keys["key"]).ok()
    assert ds.check_table(session, t) == t.count


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_object_places_nothing(cassette, repo, keys, node, session, encrypted, damage):
    ds = encrypted
    victim = max(_objects(repo), key=os.path.getsize)
    object_id = os.path.basename(victim)
    size = os.path.getsize(victim)
    os.chmod(victim, 0o644)
    with open(victim, "r+b") as f:
        if damage == "flip":
            f.seek(size // 2)
            b = f.read(1)
            f.seek(size // 2)
            f.write(bytes([b[0] ^ 0x01]))
        else:
            f.truncate(size - 100)

    for t in ds.tables:
        session.execute(f"TRUNCATE {t.full_name}", timeout=120)
    before = _table_dirs(node, ds)

    # --fail-fast: the first damaged object stops the restore before anything is placed.
    res = cassette("restore", "--repo", repo, "--backup", "enc-1", "--identity", keys["key"],
                   "--fail-fast")
    assert res.rc == 3, res.describe()  # README: exit 3, damage found
    assert object_id in res.err, res.describe()
    if damage == "flip":
        assert "authentication" in res.err, res.describe()
    assert _table_dirs(node, ds) == before, "files were placed although an object was damaged"
    for t in ds.tables:
        assert list(session.execute(f"SELECT * FROM {t.full_name} LIMIT 1")) == [], \
            f"{t.full_name} got rows from a damaged backup"

    # By default the damaged table places nothing and is named; the healthy ones come back.
    res = cassette("restore", "--repo", repo, "--backup", "enc-1", "--identity", keys["key"],
                   "--json")
    assert res.rc == 3, res.describe()
    assert object_id in res.err, res.describe()
    failed = [f["table"] for f in res.json()["not_restored"]]
    assert len(failed) == 1, res.describe()
    for t in ds.tables:
        if t.full_name in failed:
            assert list(session.execute(f"SELECT * FROM {t.full_name} LIMIT 1")) == [], \
                f"{t.full_name} got rows from a damaged object"
        else:
            assert ds.check_table(session, t) == t.count

    res = cassette("verify", "--deep", "--repo", repo, "--identity", keys["key"])
    assert res.rc == 3 and object_id in res.err, res.describe()

"""What a backup may trust (issue 17, points 1, 2 and 8), on the real node and S3 server.

- A location that holds no repository (a typo, a missing mount, an empty S3 prefix) is refused
  with one line saying to run `cassette init`, and nothing is stored; `backup --init` makes it
  as `init` does; an unencrypted repository is only made on purpose and every backup into it
  says so.
- A backup reuses only objects it has seen in the repository during its run: one lost is
  stored again, with or without the local state.
- After an import restore the restored files are not stored again (nodetool import renames
  them; the restore tells the state which contents it placed).
"""

import json
import pathlib
import shutil
import subprocess

import pytest

from conftest import assert_one_error_line
from s3env import S3Client

AGE_MAGIC = b"age-encryption.org/v1\n"


def _keypair(path):
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True, timeout=30)
    return subprocess.run(["age-keygen", "-y", str(path)], check=True, capture_output=True,
                          text=True, timeout=30).stdout.strip()


def _objects(root):
    d = pathlib.Path(root) / "objects"
    return sorted(p for p in d.rglob("*") if p.is_file()) if d.is_dir() else []


def _snapshot_tags(node, ks):
    """cassette-* snapshot tags left on the node for keyspace ks."""
    tags = set()
    for d in node.data_dirs:
        for snaps in (d / ks).glob("*/snapshots"):
            tags |= {p.name for p in snaps.iterdir() if p.name.startswith("cassette-")}
    return tags


def _backup(cassette, repo, name, *args):
    res = cassette("backup", "--repo", repo, "--name", name, "--json", *args).ok()
    out = res.json()
    assert out["complete"] is True, res.describe()
    print(f"\n{name}: files={out['files']} new={out['files_new']} read={out['bytes_read']}"
          f" stored={out['bytes_stored']} ({res.seconds:.1f}s)")
    return out, res


def _files_of(path, backup, object_id):
    """The files ("ks/table/name") that backup's manifest (an unencrypted repository's: plain
    JSON) stores in object_id: one, or the files of an SSTable packed together."""
    manifest = json.loads(next((pathlib.Path(path) / "backups" / backup).glob("*.manifest")).read_text())
    return sorted(f"{t['keyspace']}/{t['table']}/{f['name']}" for t in manifest["tables"]
                  for f in t["files"] if f["object"] == object_id)


def _lose(path):
    """Delete one stored object (the largest: a Data.db, or a small table's SSTable packed
    whole) as an operator or a bucket's lifecycle rule might; returns its id."""
    victim = max(_objects(path), key=lambda p: p.stat().st_size)
    victim.unlink()
    try:  # versitygw would list an empty objects/ab/ as a key of its own
        victim.parent.rmdir()
    except OSError:
        pass
    return victim.name


# ---- point 1: no repository is made unasked --------------------------------------------------

@pytest.mark.parametrize("where", ["typo", "empty"])
def test_backup_refuses_a_location_without_repository(cassette, repo, node, make_small_data, where,
                                                      request):
    """A typo beside a real repository (a directory that does not exist, an S3 prefix that
    holds nothing), an empty directory (a mount point with nothing mounted), an empty S3
    prefix: refused with one line that says to run cassette init, exit 1 (not a usage
    error); nothing stored, no snapshot left on the node."""
    ds = make_small_data("nr", scale=0.005)
    target, target_path = str(repo), repo.path
    if where == "typo":
        cassette("init", "--repo", repo, "--no-encryption").ok()
        target, target_path = str(repo) + "0", pathlib.Path(str(repo.path) + "0")
    elif repo.kind == "dir":
        repo.path.mkdir()
    res = cassette("backup", "--repo", target, "--keyspace", ds.main)
    assert_one_error_line(res)
    assert res.rc == 1, res.describe()
    assert "cassette init" in res.err and target in res.err, res.describe()
    assert "not a cassette repository" in res.err, res.describe()
    if repo.kind == "s3":
        prefix = target.split("/", 3)[3] + "/"
        with S3Client(request.getfixturevalue("s3_server")) as c:
            keys = c.list_keys(request.getfixturevalue("s3_bucket"), prefix)
        assert keys == [], f"the refused backup stored {keys[:5]}"
    elif where == "typo":
        assert not target_path.exists(), "the refused backup created the directory"
    else:
        assert list(target_path.iterdir()) == [], "the refused backup stored something"
    assert _snapshot_tags(node, ds.main) == set()
    # The location works once made on purpose.
    cassette("init", "--repo", target, "--no-encryption").ok()
    res = cassette("backup", "--repo", target, "--name", "after-init", "--keyspace", ds.main,
                   "--json").ok()
    assert res.json()["files_new"] == res.json()["files"] > 0


def test_backup_init_encrypts(cassette, repo, node, make_small_data, tmp_path):
    """backup --init makes the repository as init does: to its recipients (only the public
    key at hand); without --recipient or --no-encryption it refuses and makes nothing."""
    ds = make_small_data("bi", scale=0.005)
    key = tmp_path / "key.txt"
    pub = _keypair(key)

    res = cassette("backup", "--init", "--repo", repo, "--keyspace", ds.main)
    assert_one_error_line(res)
    assert "--recipient" in res.err and "--no-encryption" in res.err, res.describe()
    res = cassette("backup", "--init", "--no-encryption", "--recipient", pub, "--repo", repo,
                   "--keyspace", ds.main)
    assert_one_error_line(res)
    assert not repo.path.exists() or not any(repo.path.iterdir()), "a refused --init stored something"

    out, res = _backup(cassette, repo, "bi-1", "--init", "--recipient", pub, "--keyspace", ds.main)
    assert out["encrypted"] is True and out["files_new"] > 0
    meta = json.loads((repo.path / "cassette.repo").read_text())
    assert meta["encryption"]["recipients"] == [pub]
    for obj in _objects(repo.path):
        assert obj.read_bytes().startswith(AGE_MAGIC), f"{obj} is not an age file"
    # --init on a repository that exists is a plain backup into it.
    out, res = _backup(cassette, repo, "bi-2", "--init", "--recipient", pub, "--keyspace", ds.main)
    assert out["files_new"] == 0 and out["encrypted"] is True
    res = cassette("backup", "--repo", repo, "--name", "bi-3", "--keyspace", ds.main).ok()
    assert "not encrypted" not in res.out
    res = cassette("verify", "--deep", "--repo", repo, "--identity", key)
    assert res.rc == 0, res.describe()


def test_init_needs_a_recipient_or_no_encryption(cassette, tmp_path):
    """An unencrypted repository is only made on purpose."""
    loc = tmp_path / "r"
    for args in ([], ["--no-encryption", "--recipient", _keypair(tmp_path / "k.txt")]):
        res = cassette("init", "--repo", loc, *args)
        assert_one_error_line(res)
        assert not loc.exists(), res.describe()
    res = cassette("init", "--repo", loc)
    assert "--no-encryption" in res.err and "--recipient" in res.err, res.describe()
    cassette("init", "--repo", loc, "--no-encryption").ok()
    assert json.loads((loc / "cassette.repo").read_text())["encryption"] is None


def test_unencrypted_backup_says_so(cassette, repo, make_small_data):
    ds = make_small_data("ue", scale=0.005)
    cassette("init", "--repo", repo, "--no-encryption").ok()
    res = cassette("backup", "--repo", repo, "--name", "ue-1", "--keyspace", ds.main).ok()
    assert "not encrypted" in res.out and "plaintext" in res.out, res.describe()
    out, _ = _backup(cassette, repo, "ue-2", "--keyspace", ds.main)
    assert out["encrypted"] is False


# ---- point 2: a lost object is stored again --------------------------------------------------

def test_lost_object_is_stored_again(cassette, repo, node, session, make_small_data, state_dir):
    """Delete one object: the next backup stores that file again (one listing of objects/, or
    a stat each when that is cheaper) and verifies; verify names the damaged backups and says
    the next backup stores the lost files again. The same with the local state deleted
    (rebuilt from the newest manifest). The last backup restores row by row."""
    ds = make_small_data("lo", scale=0.02)  # compaction off: the files stay the same
    ks = ds.main
    cassette("init", "--repo", repo, "--no-encryption").ok()
    first, _ = _backup(cassette, repo, "lo-1", "--keyspace", ks)
    again, _ = _backup(cassette, repo, "lo-2", "--keyspace", ks)
    assert again["files_new"] == 0 and again["bytes_stored"] == 0

    lost = _lose(repo.path)
    res = cassette("verify", "--repo", repo)
    assert res.rc == 3, res.describe()  # damage found
    assert lost in res.err and "lo-1" in res.err and "lo-2" in res.err, res.describe()
    hint = [l for l in res.err.splitlines() if "damaged backups" in l]
    assert len(hint) == 1 and "lo-1" in hint[0] and "lo-2" in hint[0], res.describe()
    assert "the next backup" in hint[0] and "stores the lost files again" in hint[0], res.describe()

    n_objects = len(_objects(repo.path))
    held = _files_of(repo.path, "lo-2", lost)
    assert held, lost
    out, res = _backup(cassette, repo, "lo-3", "--keyspace", ks, "--verbose", "--jobs", "1")
    assert out["files_new"] == len(held) and sorted(out["new_files"]) == held, res.describe()
    assert "one listing of objects/" in res.err, res.describe()  # 1 job: listing is cheaper
    assert "stored again" in res.err, res.describe()
    assert len(_objects(repo.path)) == n_objects + 1
    assert lost not in {p.name for p in _objects(repo.path)}  # a new object, not the old id
    res = cassette("verify", "--repo", repo, "--backup", "lo-3")
    assert res.rc == 0, res.describe()

    # Lose another one and the local state too: rebuilt from lo-3's manifest, checked all
    # the same (64 jobs: a stat per object is cheaper than a listing here).
    lost = _lose(repo.path)
    held = _files_of(repo.path, "lo-3", lost)
    shutil.rmtree(state_dir)
    out, res = _backup(cassette, repo, "lo-4", "--keyspace", ks, "--verbose", "--jobs", "64")
    assert "rebuilding the dedup cache from backup lo-3" in res.err, res.describe()
    assert "a stat each" in res.err, res.describe()
    assert out["files_new"] == len(held) and sorted(out["new_files"]) == held, res.describe()
    assert out["files"] == first["files"]
    res = cassette("verify", "--deep", "--repo", repo, "--backup", "lo-4")
    assert res.rc == 0, res.describe()

    for t in ds.tables_of(ks):
        session.execute(f"TRUNCATE {t.full_name}", timeout=120)
    cassette("restore", "--repo", repo, "--backup", "lo-4", "--keyspace", ks).ok()
    assert ds.check(session, [ks]) > 0


# ---- point 8: restored files are not stored again ---------------------------------------------

def test_import_restore_is_not_stored_again(cassette, repo, node, session, make_small_data):
    """After an import restore (TRUNCATE then nodetool import, which renames the files; and a
    dropped keyspace created again with its files), the next backup stores nothing: each
    restored file is hashed once and its object reused. A backup after that reads nothing.
    What it references restores row by row."""
    ds = make_small_data("ir", scale=0.02)
    cassette("init", "--repo", repo, "--no-encryption").ok()
    kss = ["--keyspace", ds.main, "--keyspace", ds.side]
    first, _ = _backup(cassette, repo, "ir-1", *kss)
    names_before = node.table_files(ds.main)

    for t in ds.tables_of(ds.main):
        session.execute(f"TRUNCATE {t.full_name}", timeout=120)
    session.execute(f"DROP KEYSPACE {ds.side}", timeout=120)
    cassette("restore", "--repo", repo, "--backup", "ir-1", *kss).ok()
    assert ds.check(session) > 0
    assert node.table_files(ds.main).isdisjoint(names_before), "import kept the file names"

    n_objects = len(_objects(repo.path))
    out, res = _backup(cassette, repo, "ir-2", *kss, "--verbose")
    assert out["files"] == first["files"], res.describe()
    assert out["files_new"] == 0 and out["new_files"] == [], out["new_files"]
    assert out["bytes_stored"] == 0, res.describe()
    assert out["bytes_read"] == out["size"], res.describe()  # each hashed once, nothing sent
    assert len(_objects(repo.path)) == n_objects
    out, _ = _backup(cassette, repo, "ir-3", *kss)
    assert out["files_new"] == 0 and out["bytes_read"] == 0

    for t in ds.tables_of(ds.main):
        session.execute(f"TRUNCATE {t.full_name}", timeout=120)
    session.execute(f"DROP KEYSPACE {ds.side}", timeout=120)
    cassette("restore", "--repo", repo, "--backup", "ir-3", *kss).ok()
    assert ds.check(session) > 0
    res = cassette("verify", "--repo", repo)
    assert res.rc == 0, res.describe()

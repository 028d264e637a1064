"""Backup and restore round trips against a real node: import mode and replace mode."""

import os
import pathlib
import shutil
import subprocess

import pytest

from conftest import (BIG_SCALE, assert_one_error_line, assert_tree_unchanged,
                      backup_entries, mark_dirty, tree_state, wait_cql)


class RepoKind:
    """A plain repository, or one encrypted with age to a key made by age-keygen: backups
    then need only the public key (nothing extra is passed), reads need the identity."""

    def __init__(self, kind, cassette, repo, tmp_path):
        self.kind = kind
        self.read_args = []
        if kind == "plain":
            cassette("init", "--repo", repo, "--no-encryption").ok()
        if kind == "age":
            key = tmp_path / "key.txt"
            subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True, timeout=30)
            pub = subprocess.run(["age-keygen", "-y", str(key)], check=True, capture_output=True,
                                 text=True, timeout=30).stdout.strip()
            cassette("init", "--repo", repo, "--recipient", pub).ok()
            self.read_args = ["--identity", key]


# Where and how: every store with and without encryption costs minutes, so the big round
# trips run on the combinations that cover each part once: a plain and an encrypted
# directory, and an encrypted S3 repository (test_s3.py and the smaller tests cover S3
# without encryption).
IMPORT_COMBOS = [("dir", "plain"), ("dir", "age"), ("s3", "age")]
REPLACE_COMBOS = [("dir", "plain"), ("s3", "age")]


@pytest.fixture
def repo_kind(request, cassette, repo, tmp_path):
    return RepoKind(request.param, cassette, repo, tmp_path)


def _backup(cassette, repo, name, *extra):
    res = cassette("backup", "--repo", repo, "--name", name, "--json", *extra).ok()
    summary = res.json()
    assert summary.get("name") == name, res.describe()
    assert summary.get("complete") is True, res.describe()
    assert summary.get("files", 0) > 0, res.describe()
    print(f"\nbackup {name}: {summary.get('files')} files,"
          f" {summary.get('bytes_read')} bytes read, {summary.get('bytes_stored')} stored,"
          f" {res.seconds:.1f}s")
    return summary


@pytest.mark.parametrize("repo,repo_kind", IMPORT_COMBOS, indirect=True, ids=["-".join(c) for c in IMPORT_COMBOS])
def test_import_round_trip(cassette, repo, repo_kind, session, big_data):
    """Back up 100k rows (at BIG_SCALE 1.0), TRUNCATE a table and DROP a keyspace, restore
    everything with import, and compare every row; then restore one table with --table."""
    ds = big_data
    assert ds.total_rows >= 100000 * BIG_SCALE
    _backup(cassette, repo, "full-1")

    entries = [e for e in backup_entries(cassette, repo) if e.get("name") == "full-1"]
    assert len(entries) == 1 and entries[0].get("complete") is True, entries

    mark_dirty(ds)
    session.execute(f"TRUNCATE {ds.main}.types", timeout=120)
    session.execute(f"DROP KEYSPACE {ds.side}", timeout=120)
    assert list(session.execute(f"SELECT id FROM {ds.main}.types LIMIT 1")) == []

    res = cassette("restore", "--repo", repo, "--backup", "full-1", "--json", *repo_kind.read_args).ok()
    out = res.json()
    assert out.get("backup") == "full-1" and out.get("mode") == "import", res.describe()
    print(f"restore (import, everything): {res.seconds:.1f}s")
    assert ds.check(session) == ds.total_rows

    # One table only.
    wide = ds.table("wide")
    session.execute(f"TRUNCATE {wide.full_name}", timeout=120)
    assert list(session.execute(f"SELECT pk FROM {wide.full_name} LIMIT 1")) == []
    res = cassette("restore", "--repo", repo, "--backup", "full-1",
                   "--table", wide.full_name, *repo_kind.read_args).ok()
    print(f"restore (import, --table {wide.full_name}): {res.seconds:.1f}s")
    assert ds.check_table(session, wide) == wide.count
    assert ds.check(session) == ds.total_rows
    mark_dirty(ds, False)


@pytest.mark.parametrize("repo,repo_kind", REPLACE_COMBOS, indirect=True, ids=["-".join(c) for c in REPLACE_COMBOS])
def test_replace_after_disk_loss(cassette, repo, repo_kind, node, session, big_data):
    """Back up, stop the node, lose the data directory, restore --mode replace, start:
    every row is back and the old commitlog was moved aside, not deleted."""
    ds = big_data
    _backup(cassette, repo, "before-loss")

    mark_dirty(ds)
    node.stop()
    data_dirs = node.data_dirs
    commitlog = node.commitlog_dir
    old_segments = {f.name for f in commitlog.iterdir() if f.is_file()}
    entries_before = set(os.listdir(node.dir))
    for d in data_dirs:
        shutil.rmtree(d)

    res = cassette("restore", "--repo", repo, "--backup", "before-loss",
                   "--mode", "replace", "--json", *repo_kind.read_args)
    assert res.rc == 0, res.describe()
    out = res.json()
    assert out.get("mode") == "replace", res.describe()
    print(f"\nrestore (replace): {res.seconds:.1f}s")
    for d in data_dirs:
        assert d.is_dir(), f"{d} not recreated by restore --mode replace"

    # The commitlog segments of before still exist somewhere under the node directory.
    found = set()
    for root, _dirs, files in os.walk(node.dir):
        if pathlib.Path(root) != commitlog:
            found.update(f for f in files if f in old_segments)
    assert old_segments <= found, (f"commitlog segments deleted, not moved aside:"
                                   f" {sorted(old_segments - found)[:5]}")

    print(node.start())
    wait_cql(session)
    assert ds.check(session) == ds.total_rows
    mark_dirty(ds, False)

    # Tidy what cassette moved aside in this test (only new entries of the node dir).
    keep = entries_before | {p.name for p in data_dirs}
    for name in set(os.listdir(node.dir)) - keep:
        p = node.dir / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)


def test_replace_refused_while_running(cassette, repo, node, session, make_small_data):
    """restore --mode replace against a running node fails with one line and changes
    nothing: not the repository, not the node's directories, not its data."""
    ds = make_small_data("rr")
    cassette("init", "--repo", repo, "--no-encryption").ok()
    _backup(cassette, repo, "rr", "--keyspace", ds.main, "--keyspace", ds.side)
    repo_before = tree_state(repo)
    node_entries = sorted(os.listdir(node.dir))
    data_entries = {d: sorted(os.listdir(d)) for d in node.data_dirs}
    pid = node.pid()

    res = cassette("restore", "--repo", repo, "--backup", "rr", "--mode", "replace")
    assert_one_error_line(res)

    assert_tree_unchanged(repo_before, tree_state(repo), "repository")
    assert sorted(os.listdir(node.dir)) == node_entries
    for d, entries in data_entries.items():
        assert sorted(os.listdir(d)) == entries, f"{d} changed"
    assert node.pid() == pid, "the node was stopped or restarted"
    assert ds.check(session) == ds.total_rows

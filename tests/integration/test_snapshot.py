"""`cassette snapshot` / `snapshot clear` and `backup --snapshot TAG` (issue 19: what a cluster
coordinator asks of each node) on the real test node.

- snapshot --tag T --keyspace KS: the tag is on disk for the keyspace's tables only; its --json
  document names the tag, the node and when nodetool was asked and returned; the same tag again
  is refused in one line.
- backup --snapshot T backs up that snapshot, not the live data (a row written after it is not
  in the backup: a restore gives the snapshot's rows, row by row), although the tag starts with
  cassette- as the ones killed backups leave (never swept as stale); the tag is gone afterwards.
- backup --snapshot naming a tag the node does not have, or a snapshot of some keyspaces for a
  backup of all (or of a keyspace it lacks): one line, the repository untouched; the snapshot
  the backup was given stays for its taker (a cluster backup tries again with it, then clears it).
- snapshot clear: cleared true, then (not there any more) cleared false, exit 0 both times.
- A bad tag (a path) is a usage error naming --tag.
- snapshot clear --older-than D [--prefix P] (issue 20's snapshot cleanup): the old snapshots of the
  prefix go, the younger ones and other prefixes stay, checked with nodetool listsnapshots."""

import time


def _tag_dirs(node, tag, keyspace=None):
    return sorted(p for d in node.data_dirs for p in d.glob(f"{keyspace or '*'}/*/snapshots/{tag}"))


def test_snapshot_backup_clear(cassette, node, session, make_small_data, tmp_path):
    ds = make_small_data("sn")
    repo = tmp_path / "repo"
    cassette("init", "--repo", repo, "--no-encryption").ok()
    tag = "cassette-coordinated-1"
    for t in (tag, "t-part", "t-clear"):  # left by an earlier run that failed
        node.nodetool("clearsnapshot", "-t", t, check=False)

    doc = cassette("snapshot", "--tag", tag, "--keyspace", ds.main, "--json").ok().json()
    host_id = str(session.execute("SELECT host_id FROM system.local").one().host_id)
    assert doc["tag"] == tag and doc["host_id"] == host_id and doc["address"], doc
    assert 0 < doc["started"] <= doc["finished"], doc
    assert set(doc) == {"tag", "host_id", "address", "started", "finished"}, doc
    assert _tag_dirs(node, tag, ds.main) and not _tag_dirs(node, tag, ds.side)

    res = cassette("snapshot", "--tag", tag, "--keyspace", ds.main)
    assert res.rc == 1 and "already" in res.err and res.err.count("\n") == 1, res.describe()

    # written after the snapshot: not in a backup of it
    types = ds.table("types")
    session.execute(f"INSERT INTO {types.full_name} (id, name) VALUES (-1, 'after the snapshot')")

    # a backup of the snapshot (its tag looks like a killed backup's: not swept)
    out = cassette("backup", "--repo", repo, "--name", "from-snap", "--snapshot", tag, "--keyspace", ds.main,
                   "--json").ok().json()
    assert out["name"] == "from-snap", out
    assert not _tag_dirs(node, tag), "the snapshot is still on disk after the backup"

    session.execute(f"TRUNCATE {types.full_name}", timeout=120)
    cassette("restore", "--repo", repo, "--backup", "from-snap", "--table", types.full_name).ok()
    assert ds.check_table(session, types) == types.count
    assert not list(session.execute(f"SELECT id FROM {types.full_name} WHERE id = -1"))

    # a tag the node does not have: one line, nothing stored
    listed = cassette("list", "--repo", repo, "--json").ok().json()
    res = cassette("backup", "--repo", repo, "--name", "none", "--snapshot", "no-such-tag")
    assert res.rc != 0 and "snapshot no-such-tag is on no data directory" in res.err, res.describe()
    assert res.err.count("\n") == 1, res.describe()
    assert cassette("list", "--repo", repo, "--json").ok().json() == listed

    # a snapshot of some keyspaces: not a backup of everything, nor of a keyspace it lacks
    for extra, want in (([], "taken of some keyspaces only"), (["--keyspace", ds.side], f"keyspace {ds.side}")):
        cassette("snapshot", "--tag", "t-part", "--keyspace", ds.main).ok()
        res = cassette("backup", "--repo", repo, "--name", "part", "--snapshot", "t-part", *extra)
        assert res.rc == 2 and want in res.err and res.err.count("\n") == 1, res.describe()
        assert _tag_dirs(node, "t-part"), "a failed backup leaves the snapshot it was given to its taker"
        cassette("snapshot", "clear", "--tag", "t-part").ok()
    assert cassette("list", "--repo", repo, "--json").ok().json() == listed

    # clear: there, then not there
    cassette("snapshot", "--tag", "t-clear", "--keyspace", ds.side).ok()
    assert _tag_dirs(node, "t-clear")
    doc = cassette("snapshot", "clear", "--tag", "t-clear", "--json").ok().json()
    assert doc == {"tag": "t-clear", "host_id": host_id, "cleared": True}, doc
    assert not _tag_dirs(node, "t-clear")
    res = cassette("snapshot", "clear", "--tag", "t-clear").ok()
    assert "nothing to clear" in res.out, res.describe()


def test_snapshot_usage(cassette):
    for args, want in ((["snapshot"], "--tag"), (["snapshot", "--tag", "a/b"], "invalid snapshot tag"),
                       (["snapshot", "clear", "--tag", ".."], "invalid snapshot tag"),
                       (["backup", "--repo", "/nonexistent", "--snapshot", "x/../y"], "--snapshot")):
        res = cassette(*args)
        assert res.rc == 2 and want in res.err and res.err.count("\n") == 1, res.describe()


def _listed_tags(node):
    """The snapshot tags `nodetool listsnapshots` shows (Cassandra's own view, not the disk's)."""
    out = node.nodetool("listsnapshots").stdout
    tags = set()
    for line in out.splitlines()[2:]:
        words = line.split()
        if len(words) >= 3 and not line.startswith(("Total", "There are no")):
            tags.add(words[0])
    return tags


def test_snapshot_clear_older_than(cassette, node, session, make_small_data):
    """snapshot clear --older-than D (the server's snapshot_cleanup, on each node): clears every
    snapshot of --prefix (cassette- by default) taken longer ago than D, by the creation time
    Cassandra records (what nodetool listsnapshots shows), and keeps the younger ones and those of
    other prefixes; --json names what it cleared and kept."""
    ds = make_small_data("so")
    old, young, other = "cassette-cleanup-old", "cassette-cleanup-young", "mine-cleanup-old"
    for t in (old, young, other):  # left by an earlier run that failed
        node.nodetool("clearsnapshot", "-t", t, check=False)
    cassette("snapshot", "--tag", old, "--keyspace", ds.main).ok()
    cassette("snapshot", "--tag", other, "--keyspace", ds.main).ok()
    time.sleep(6)
    cassette("snapshot", "--tag", young, "--keyspace", ds.main).ok()
    assert {old, young, other} <= _listed_tags(node)

    doc = cassette("snapshot", "clear", "--older-than", "4s", "--json").ok().json()
    host_id = str(session.execute("SELECT host_id FROM system.local").one().host_id)
    assert doc["host_id"] == host_id and doc["prefix"] == "cassette-" and doc["older_than"] == 4, doc
    assert old in doc["cleared_tags"] and young not in doc["cleared_tags"], doc
    assert young in doc["kept_tags"] and other not in doc["kept_tags"] + doc["cleared_tags"], doc
    listed = _listed_tags(node)
    assert old not in listed and young in listed and other in listed, listed
    assert not _tag_dirs(node, old) and _tag_dirs(node, young)

    # another prefix, asked for by name; the text output names what went
    res = cassette("snapshot", "clear", "--older-than", "4s", "--prefix", "mine-").ok()
    assert other in res.out and "cleared" in res.out, res.describe()
    listed = _listed_tags(node)
    assert other not in listed and young in listed, listed

    # nothing old left: an empty list, exit 0
    doc = cassette("snapshot", "clear", "--older-than", "1h", "--json").ok().json()
    assert doc["cleared_tags"] == [] and young in doc["kept_tags"], doc
    cassette("snapshot", "clear", "--tag", young).ok()
    assert young not in _listed_tags(node)


def test_snapshot_clear_usage(cassette):
    for args, want in ((["snapshot", "clear"], "--tag"),
                       (["snapshot", "clear", "--tag", "t", "--older-than", "1d"], "exclude each other"),
                       (["snapshot", "clear", "--older-than", "soon"], "--older-than"),
                       (["snapshot", "clear", "--older-than", "1d", "--prefix", "a/b"], "--prefix"),
                       (["cluster", "snapshot-cleanup"], "--older-than")):
        res = cassette(*args)
        assert res.rc == 2 and want in res.err and res.err.count("\n") == 1, res.describe()

"""Restore where production runs it, and restore that trusts nothing it reads (issue 17).

- replace restore into a node whose data, commitlog, hints and saved caches directories are
  mount points (tmpfs mounts made here): staged and moved aside inside each mount, never the
  mount itself; restores back to back get distinct aside names (within one second too: the
  unit test of cs_restore_unique); a failure half way puts everything back; what was moved aside is listed by status and removed by cleanup --aside;
- a multi-keyspace restore with one corrupt object restores every healthy table, names the
  damaged one and exits non-zero; --fail-fast restores nothing;
- a manifest whose directories point elsewhere does not choose where restore writes;
- a staging path that is a symbolic link is never written through.

Everything runs on the real node of this session (stopped and started again for replace) and
real storage; rows are checked one by one with the Python driver.
"""

import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import time

import pytest

from conftest import assert_one_error_line, assert_tree_unchanged, object_files, tree_state, wait_cql

ASIDE = ".cassette-aside-"
STAGING = ".cassette-staging-"
# ".cassette-aside-20261205-091256.749978-24305-1d44": the time to the second, then the rest.
ASIDE_NAME = re.compile(r"^\.cassette-aside-(\d{8}-\d{6})\.\d{6}-\d+-[0-9a-f]{4}$")


def _init(cassette, repo, encrypted, tmp_path):
    """A repository made on purpose: encrypted to a fresh age key (returns the arguments a
    read needs), or unencrypted (init --no-encryption where that option exists)."""
    if encrypted:
        key = tmp_path / "key.txt"
        subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True, timeout=30)
        pub = subprocess.run(["age-keygen", "-y", str(key)], check=True, capture_output=True,
                             text=True, timeout=30).stdout.strip()
        cassette("init", "--repo", repo, "--recipient", pub).ok()
        return ["--identity", key]
    cassette("init", "--repo", repo, "--no-encryption").ok()
    return []


def _node_dirs(node):
    c = node.config()
    return [pathlib.Path(p) for p in c["data_dirs"].split(",")] + \
        [pathlib.Path(c[k]) for k in ("commitlog_dir", "hints_dir", "saved_caches_dir")]


def _left_by_restores(dirs):
    """Names of the aside and staging directories inside dirs."""
    out = []
    for d in dirs:
        if d.is_dir():
            out += [d / n for n in os.listdir(d) if n.startswith((ASIDE, STAGING))]
    return out


def _mount_tmpfs(path, size="1g"):
    path.mkdir(parents=True, exist_ok=True)
    assert not _is_mount(path), f"{path} is a mount point already (left by an earlier run?)"
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True,
                   timeout=30)


def _is_mount(path):
    return subprocess.run(["mountpoint", "-q", str(path)], timeout=30).returncode == 0


def _umount(path, deadline_s=120):
    """Unmounts path, waiting while the file system is still busy (a process that just
    stopped may hold it a moment longer)."""
    deadline = time.monotonic() + deadline_s
    while _is_mount(path):
        p = subprocess.run(["umount", str(path)], capture_output=True, text=True, timeout=60)
        if p.returncode == 0:
            break
        if "busy" not in p.stderr or time.monotonic() > deadline:
            raise AssertionError(f"umount {path}: {p.stderr.strip()}")
        time.sleep(0.2)


def _flip_byte(path):
    size = os.path.getsize(path)
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(size // 2)
        b = f.read(1)
        f.seek(size // 2)
        f.write(bytes([b[0] ^ 0xFF]))


def _objects(repo):
    return {os.path.join(r, f) for r, _d, fs in os.walk(repo / "objects") for f in fs}


def _object_of_table(objects, key, node, keyspace, table):
    """The largest of objects whose content (age -d | zstd -d) is a live file of the table, or
    live files of it one after the other (a pack)."""
    live = {path: path.read_bytes() for path, (_ks, t) in node.table_file_paths(keyspace).items()
            if t == table}
    for obj in sorted(objects, key=os.path.getsize, reverse=True):
        age = subprocess.run(["age", "-d", "-i", str(key), obj], capture_output=True, check=True,
                             timeout=120)
        plain = subprocess.run(["zstd", "-d", "-c", "-q"], input=age.stdout, capture_output=True,
                               check=True, timeout=120).stdout
        if object_files(plain, live):
            return obj
    raise AssertionError(f"no object of {keyspace}.{table} among {sorted(objects)}")


# ---- 6: replace on mount points -------------------------------------------------------------

@pytest.mark.parametrize("repo", ["dir"], indirect=True)
def test_replace_on_mount_points(cassette, repo, node, session, make_small_data, tmp_path):
    """The node's four directories are tmpfs mount points. A whole-node replace stages and
    moves aside inside each mount; one that fails half way (a mount inside the hints
    directory cannot be moved) puts everything back; three replace restores back to back
    each get their own aside directory; the node
    starts on the restored data with every row; status lists what was moved aside with
    size and age, cleanup --aside --dry-run removes nothing, cleanup --aside removes it."""
    ds = make_small_data("mp", scale=0.01)
    read = _init(cassette, repo, False, tmp_path)
    cassette("backup", "--repo", repo, "--name", "mp-1").ok()
    dirs = _node_dirs(node)
    data, commitlog, hints = dirs[0], dirs[-3], dirs[-2]
    busy = hints / "busy"
    node.stop()
    try:
        for d in dirs:
            _mount_tmpfs(d)

        def replace():
            return cassette("restore", "--repo", repo, "--backup", "mp-1", "--mode", "replace",
                            "--json", *read)

        first = replace()
        assert first.rc == 0, first.describe()
        assert first.json()["moved_aside"] == [], first.describe()  # the mounts were empty
        assert _left_by_restores(dirs) == []
        for d in dirs:
            assert _is_mount(d), f"{d} is no longer a mount point"

        # A failure after the data directory's contents were moved: all of it comes back.
        before = {d: tree_state(d) for d in dirs}
        _mount_tmpfs(busy, "1m")
        res = replace()
        assert_one_error_line(res)
        assert "busy" in res.err, res.describe()
        _umount(busy)
        busy.rmdir()
        for d in dirs:
            assert_tree_unchanged(before[d], tree_state(d), f"{d} after a failed replace")
        assert _left_by_restores(dirs) == []

        # Back to back: each gets its own aside directory. (Names made within one second
        # differ too: the unit test of cs_restore_unique makes 64 in a row; here a replace
        # takes ~0.3-1.3 s, so whether two fall in one second depends on the machine's load.)
        asides = []
        for _ in range(3):
            res = replace()
            assert res.rc == 0, res.describe()
            moved = res.json()["moved_aside"]
            assert len(moved) == 1 and moved[0].startswith(str(data) + "/"), res.describe()
            asides.append(pathlib.Path(moved[0]))
            assert ASIDE_NAME.match(asides[-1].name), asides
        assert len(set(asides)) == len(asides)
        for p in asides:
            assert p.is_dir() and any(p.iterdir()), f"{p} is empty"
        assert set(_left_by_restores(dirs)) == set(asides), "a staging directory was left behind"
        for d in dirs:
            assert _is_mount(d), f"{d} is no longer a mount point"

        node.start()
        wait_cql(session)
        assert ds.check(session) == ds.total_rows
        # The node wrote its commitlog into the mount; the asides stayed where they were.
        assert any(f.name.startswith("CommitLog") for f in commitlog.iterdir())

        res = cassette("status", "--repo", repo, "--json").ok()
        listed = {a["path"]: a for a in res.json()["aside"]}
        assert set(listed) == {str(p) for p in asides}, res.describe()
        for a in listed.values():
            assert a["kind"] == "aside" and a["bytes"] > 0 and a["files"] > 0 and a["age_s"] >= 0, a
        text = cassette("status", "--repo", repo).ok().out
        for p in asides:
            assert f"aside: {p} (moved aside by a replace restore; " in text, text
        assert "cassette cleanup --aside" in text, text

        res = cassette("cleanup", "--aside", "--dry-run", "--json").ok()
        assert {a["path"] for a in res.json()["removed"]} == {str(p) for p in asides}, res.describe()
        assert res.json()["dry_run"] is True
        assert all(p.is_dir() for p in asides), "cleanup --dry-run removed something"

        res = cassette("cleanup", "--aside").ok()
        assert f"removed {len(asides)} directories" in res.out, res.describe()
        assert not any(p.exists() for p in asides)
        assert cassette("status", "--repo", repo, "--json").ok().json()["aside"] == []
        assert ds.check(session) == ds.total_rows
    finally:
        try:
            if node.is_running():
                node.stop()
            _umount(busy)
            for d in dirs:
                _umount(d)
        finally:
            node.start()
            wait_cql(session)


# ---- 7: one damaged object ------------------------------------------------------------------

def test_damaged_table_does_not_stop_the_others(cassette, repo, node, session, make_small_data,
                                                tmp_path):
    """Two keyspaces, one corrupt object of side.events: restore brings back every row of the
    healthy tables, names the damaged table on one line and exits non-zero; --fail-fast stops
    at it and restores nothing."""
    ds = make_small_data("dm", scale=0.02)
    read = _init(cassette, repo, True, tmp_path)
    cassette("backup", "--repo", repo, "--name", "dm-main", "--keyspace", ds.main).ok()
    main_objects = _objects(repo)
    cassette("backup", "--repo", repo, "--name", "dm-both", "--keyspace", ds.main,
             "--keyspace", ds.side).ok()
    events = ds.table("events")
    new_objects = _objects(repo) - main_objects  # the side keyspace's files: main's are reused
    _flip_byte(_object_of_table(new_objects, read[1], node, ds.side, events.name))

    ds.drop(session)
    res = cassette("restore", "--repo", repo, "--backup", "dm-both", "--json", *read)
    assert_one_error_line(res)
    assert events.full_name in res.err and "not restored" in res.err, res.describe()
    out = res.json()
    assert out["complete"] is False and out["tables"] == 2, res.describe()
    assert [f["table"] for f in out["not_restored"]] == [events.full_name], res.describe()
    assert ds.check(session, keyspaces=[ds.main]) == sum(t.count for t in ds.tables_of(ds.main))
    rows = session.execute("SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s",
                           (ds.side,))
    assert list(rows) == [], "the damaged table was created"

    ds.drop(session)
    res = cassette("restore", "--repo", repo, "--backup", "dm-both", "--fail-fast", *read)
    assert_one_error_line(res)
    assert events.full_name in res.err, res.describe()
    rows = session.execute("SELECT keyspace_name FROM system_schema.keyspaces")
    assert not {r.keyspace_name for r in rows} & set(ds.keyspaces), "--fail-fast restored something"
    data = node.data_dirs[0]
    assert not [n for n in os.listdir(data) if n.startswith(STAGING)], "staging left behind"


# ---- 10: the node's directories, not the manifest's -----------------------------------------

def _forge(repo, backup, change):
    """Rewrite the backup's manifest (an unencrypted repository's: plain JSON) with change(m)."""
    manifests = list((repo / "backups" / backup).glob("*.manifest"))
    assert len(manifests) == 1, manifests
    m = json.loads(manifests[0].read_text())
    change(m)
    os.chmod(manifests[0], 0o644)
    manifests[0].write_text(json.dumps(m))
    _refit_index(manifests[0])


def _refit_index(manifest):
    """What a repository writer does next: the index beside the manifest names the manifest's
    size and BLAKE2b-256 and checksums its own body; none of it is secret, so it is redone."""
    index = manifest.with_suffix(".index")
    doc = json.loads(index.read_text())
    data = manifest.read_bytes()
    doc["body"]["manifest"] = {"size": len(data),
                               "blake2b": hashlib.blake2b(data, digest_size=32).hexdigest()}
    body = json.dumps(doc["body"], sort_keys=True, separators=(",", ":")).encode()
    doc["blake2b"] = hashlib.blake2b(body, digest_size=32).hexdigest()
    os.chmod(index, 0o644)
    index.write_text(json.dumps(doc))


def _forge_directories(repo, backup, forged):
    def change(m):
        m["data_dirs"] = [str(forged / "data")]
        for key in ("commitlog_dir", "hints_dir", "saved_caches_dir"):
            m[key] = str(forged / key)
    _forge(repo, backup, change)


@pytest.mark.parametrize("repo", ["dir"], indirect=True)
def test_manifest_directories_are_not_a_destination(cassette, repo, node, session, make_small_data,
                                                     tmp_path):
    """A manifest whose directories point elsewhere: import writes into the node's own data
    directory, replace with nothing configured refuses in one line naming --data-dir, and
    replace with the node's configuration writes there; the forged directories (full of
    files that must stay) are never touched."""
    ds = make_small_data("fm", scale=0.01)
    read = _init(cassette, repo, False, tmp_path)
    cassette("backup", "--repo", repo, "--name", "fm-1", "--keyspace", ds.main).ok()
    forged = tmp_path / "forged"
    for sub in ("data", "commitlog_dir", "hints_dir", "saved_caches_dir"):
        (forged / sub).mkdir(parents=True)
        (forged / sub / "precious").write_text("do not move me\n")
    _forge_directories(repo, "fm-1", forged)
    forged_before = tree_state(forged)
    types = ds.table("types")

    # import: the running node says where its data is
    session.execute(f"TRUNCATE {types.full_name}", timeout=120)
    res = cassette("restore", "--repo", repo, "--backup", "fm-1", "--json", *read)
    assert res.rc == 0, res.describe()
    assert res.json()["data_dirs"] == [str(p) for p in node.data_dirs], res.describe()
    assert res.json()["backup_data_dirs"] == [str(forged / "data")], res.describe()
    assert ds.check(session, keyspaces=[ds.main]) > 0
    assert_tree_unchanged(forged_before, tree_state(forged), "forged directories after import")

    # replace, nothing configured: refused before anything is read or moved
    res = cassette("restore", "--repo", repo, "--backup", "fm-1", "--mode", "replace",
                   "--table", types.full_name, "--cql-host", node.addr, *read, config=False)
    assert_one_error_line(res)
    assert "--data-dir" in res.err, res.describe()
    assert_tree_unchanged(forged_before, tree_state(forged), "forged directories after a refusal")

    # replace, the node's configuration (its cassette.ini): its own directories only
    session.execute(f"TRUNCATE {types.full_name}", timeout=120)
    node.stop()
    try:
        res = cassette("restore", "--repo", repo, "--backup", "fm-1", "--mode", "replace",
                       "--table", types.full_name, "--json", *read)
        assert res.rc == 0, res.describe()
        for p in res.json()["moved_aside"]:
            assert p.startswith(str(node.data_dirs[0]) + "/"), res.describe()
        assert_tree_unchanged(forged_before, tree_state(forged), "forged directories after replace")
    finally:
        node.start()
        wait_cql(session)
    assert ds.check_table(session, types) == types.count
    res = cassette("cleanup", "--aside").ok()
    assert_tree_unchanged(forged_before, tree_state(forged), "forged directories after cleanup")

    # A schema row whose statement creates something other than what the row names is not run.
    evil = f"{ds.main}_evil"

    def evil_keyspace(m):
        for row in m["schema"]:
            if row["type"] == "keyspace" and row["keyspace"] == ds.main:
                row["cql"] = (f"CREATE KEYSPACE {evil} WITH replication ="
                              " {'class': 'SimpleStrategy', 'replication_factor': 1};")
    _forge(repo, "fm-1", evil_keyspace)
    session.execute(f"DROP KEYSPACE {ds.main}", timeout=120)
    res = cassette("restore", "--repo", repo, "--backup", "fm-1", *read)
    assert_one_error_line(res)
    assert "forged" in res.err, res.describe()
    rows = session.execute("SELECT keyspace_name FROM system_schema.keyspaces")
    assert not {r.keyspace_name for r in rows} & {evil, ds.main}, "a forged schema row was run"


def test_symlinked_staging_is_never_written_through(cassette, repo, node, session, make_small_data,
                                                    tmp_path):
    """--staging-dir that is a link is refused in one line; links planted where restores
    stage (the old cassette-staging beside the data directory, a stale
    .cassette-staging-* inside it) are never followed: the restore works, the link's target
    keeps exactly what it had."""
    ds = make_small_data("sl", scale=0.01)
    read = _init(cassette, repo, True, tmp_path)
    cassette("backup", "--repo", repo, "--name", "sl-1", "--keyspace", ds.main).ok()
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep\n")
    victim_before = tree_state(victim)
    link = tmp_path / "staging-link"
    link.symlink_to(victim)

    res = cassette("restore", "--repo", repo, "--backup", "sl-1", "--staging-dir", link, *read)
    assert_one_error_line(res)
    assert "symbolic link" in res.err, res.describe()
    assert_tree_unchanged(victim_before, tree_state(victim), "the link's target")

    data = node.data_dirs[0]
    old_style = data.parent / "cassette-staging"
    planted = data / f"{STAGING}20200101-000000.000000-999999-abcd"  # a dead restore's name
    created = []
    try:
        for p in (old_style, planted):
            if not os.path.lexists(p):
                p.symlink_to(victim)
                created.append(p)
        session.execute(f"TRUNCATE {ds.table('wide').full_name}", timeout=120)
        res = cassette("restore", "--repo", repo, "--backup", "sl-1", *read)
        assert res.rc == 0, res.describe()
        assert ds.check(session, keyspaces=[ds.main]) > 0
        assert_tree_unchanged(victim_before, tree_state(victim), "the link's target")
        assert not os.path.lexists(planted), "the stale staging link was left in place"
        assert not [n for n in os.listdir(data) if n.startswith(STAGING)], "staging left behind"
    finally:
        for p in created:
            if os.path.islink(p):
                p.unlink()
    shutil.rmtree(victim)

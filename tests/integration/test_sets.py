"""Backup sets on one real node, without a cluster: the set record and commit are written
with tests/tools/settool (the repo/set.h API the coordinator uses), the real node joins the set
with `backup --set`, and a second host's part is fabricated by copying the node's backup files
under another host id (in a local-directory repository: the files are rewritten with their
names, checksums and sizes made consistent, as that host's cassette would have written them),
or left missing to make an incomplete set. Checked: list text and JSON (`complete 2/2`,
`incomplete 1/2 (node ADDR: reason)`), status, the name rules of backup --set, restore with
--source-host, its default and its one-line error, purge keeping and dropping sets whole,
delete --backup of a set. The set of one runs on both a directory and the real S3 server.
"""

import hashlib
import json
import os
import pathlib
import sqlite3
import subprocess

import pytest

from conftest import ROOT, assert_one_error_line

SETTOOL = pathlib.Path(os.environ.get("CASSETTE_SETTOOL", ROOT / "build" / "asan" / "tools" / "settool"))

FAKE = {"h2": ("11111111-2222-3333-4444-555555555555", "127.0.0.98"),
        "h3": ("66666666-7777-8888-9999-000000000000", "127.0.0.97")}


def settool(cassette, repo, *args, check=True):
    p = subprocess.run([str(SETTOOL), str(repo), *map(str, args)], capture_output=True, text=True,
                       env=cassette.env(), timeout=120)
    if check:
        assert p.returncode == 0, f"settool {args}: {p.stderr}"
    return p


@pytest.fixture
def own(session):
    return str(session.execute("SELECT host_id FROM system.local").one().host_id)


def canonical_hash(body):
    return hashlib.blake2b(json.dumps(body, sort_keys=True, separators=(",", ":")).encode(),
                           digest_size=32).hexdigest()


def fabricate(repo, name, host, new_name, new_host, address):
    """Copy backup `name` of `host` to `new_name` of `new_host` (an unencrypted directory
    repository), as that host would have written it."""
    src, dst = pathlib.Path(repo) / "backups" / name, pathlib.Path(repo) / "backups" / new_name
    dst.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((src / f"{host}.manifest").read_text())
    manifest.update(backup=new_name, host_id=new_host, address=address)
    mbytes = json.dumps(manifest).encode()
    (dst / f"{new_host}.manifest").write_bytes(mbytes)
    index = json.loads((src / f"{host}.index").read_text())
    body = index["body"]
    body.update(backup=new_name, host_id=new_host, address=address,
                manifest={"size": len(mbytes), "blake2b": hashlib.blake2b(mbytes, digest_size=32).hexdigest()})
    index["blake2b"] = canonical_hash(body)
    (dst / f"{new_host}.index").write_text(json.dumps(index))
    for kind in ("started", "summary"):
        doc = json.loads((src / f"{host}.{kind}").read_text())
        doc.update(name=new_name, host_id=new_host, address=address)
        if kind == "summary":
            doc["manifest_size"] = len(mbytes)
        (dst / f"{new_host}.{kind}").write_text(json.dumps(doc))


def list_json(cassette, repo):
    return cassette("list", "--repo", repo, "--json").ok().json()


def set_of(entries, name):
    sets = [e["set"] for e in entries if e["name"] == name]
    assert sets, f"no entry named {name}"
    return sets[0]


def row_of(text, name):
    rows = [line for line in text.splitlines() if line.split() and line.split()[0] == name]
    assert len(rows) == 1, f"{name} listed {len(rows)} times:\n{text}"
    return rows[0]


def backup(cassette, repo, name, ks, *extra):
    return cassette("backup", "--repo", repo, "--name", name, "--keyspace", ks, *extra)


def test_sets_on_one_node(cassette, session, node, own, make_small_data, tmp_path):
    ds = make_small_data("sets")
    repo = tmp_path / "repo"
    cassette("init", "--repo", repo, "--no-encryption").ok()
    addr = node.addr
    h2, a2 = FAKE["h2"]

    # s1: complete (this node, and a second host made from its files)
    set_id = settool(cassette, repo, "begin", "s1", "Test Cluster", f"{own}={addr}/dc1/rack1",
                     f"{h2}={a2}/dc1/rack2").stdout.strip()
    assert len(set_id) == 32
    # The name is the set's: refused alone, with another id, or for a second start.
    res = backup(cassette, repo, "s1", ds.main)
    assert_one_error_line(res)
    assert "belongs to a cluster backup set" in res.err
    res = backup(cassette, repo, "s1", ds.main, "--set", "f" * 32)
    assert_one_error_line(res)
    assert "another set id" in res.err
    res = backup(cassette, repo, "s1", ds.main, "--set", "xyz")
    assert_one_error_line(res)
    res = cassette("backup", "--repo", repo, "--set", set_id)
    assert_one_error_line(res)
    assert "--name" in res.err
    res = backup(cassette, repo, "nosuchset", ds.main, "--set", set_id)
    assert_one_error_line(res)
    assert "no backup set named nosuchset" in res.err
    backup(cassette, repo, "s1", ds.main, "--set", set_id).ok()
    res = backup(cassette, repo, "s1", ds.main, "--set", set_id)
    assert_one_error_line(res)
    assert "backup s1 of set" in res.err and "complete already" in res.err
    # a set name is taken for any node backup, and a node backup's name for a set
    res = settool(cassette, repo, "begin", "s1", "c", f"{own}={addr}", check=False)
    assert res.returncode != 0 and "already exists" in res.stderr

    # before the commit, a young set is running
    text = cassette("list", "--repo", repo).ok().out
    assert "incomplete 1/2 (node 127.0.0.98: running)" in row_of(text, "s1"), text
    fabricate(repo, "s1", own, "s1", h2, a2)
    settool(cassette, repo, "commit", "s1")
    text = cassette("list", "--repo", repo).ok().out
    assert "complete 2/2" in row_of(text, "s1") and "Test Cluster" in row_of(text, "s1"), text
    s1 = set_of(list_json(cassette, repo), "s1")
    assert s1 == {"id": set_id, "cluster": "Test Cluster", "expected": 2, "complete_hosts": 2,
                  "complete": True, "missing": []}
    # the cluster manifest is opaque to the repository, and read back as written
    (tmp_path / "cm.json").write_text('{"cluster": "Test Cluster"}')
    settool(cassette, repo, "put-manifest", "s1", tmp_path / "cm.json")
    assert settool(cassette, repo, "get-manifest", "s1").stdout == '{"cluster": "Test Cluster"}'

    # a node backup alone lists as before (no set)
    backup(cassette, repo, "solo", ds.main).ok()

    # s2: complete, this node alone expected
    id2 = settool(cassette, repo, "begin", "s2", "Test Cluster", f"{own}={addr}").stdout.strip()
    backup(cassette, repo, "s2", ds.main, "--set", id2).ok()
    settool(cassette, repo, "commit", "s2")

    # s3: incomplete, the second host failed
    id3 = settool(cassette, repo, "begin", "s3", "Test Cluster", f"{own}={addr}",
                  f"{h2}={a2}").stdout.strip()
    backup(cassette, repo, "s3", ds.main, "--set", id3).ok()
    settool(cassette, repo, "commit", "s3", f"{h2}=agent killed")

    entries = list_json(cassette, repo)
    assert [e["set"] for e in entries if e["name"] == "solo"] == [None]
    s3 = set_of(entries, "s3")
    assert s3["complete"] is False and s3["complete_hosts"] == 1 and s3["expected"] == 2
    assert s3["missing"] == [{"host_id": h2, "address": a2, "reason": "agent killed"}]
    text = cassette("list", "--repo", repo).ok().out
    assert "incomplete 1/2 (node 127.0.0.98: agent killed)" in row_of(text, "s3"), text
    assert row_of(text, "solo").rstrip().endswith("complete"), text
    assert "complete 1/1" in row_of(text, "s2"), text
    # the local catalog knows the sets
    repo_id = json.loads((pathlib.Path(repo) / "cassette.repo").read_text())["id"]
    db = tmp_path / "cache" / "cassette" / "catalog" / f"{repo_id}.db"
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT name, set_id, cluster, expected, complete_hosts, complete FROM sets"
                           " ORDER BY name").fetchall()
    assert rows == [("s1", set_id, "Test Cluster", 2, 2, 1), ("s2", id2, "Test Cluster", 1, 1, 1),
                    ("s3", id3, "Test Cluster", 2, 1, 0)], rows
    status = cassette("status", "--repo", repo).ok().out
    assert "set s3 (cluster Test Cluster" in status and "incomplete 1/2" in status, status
    sets = cassette("status", "--repo", repo, "--json").ok().json()["sets"]
    assert [s["name"] for s in sets] == ["s1", "s2", "s3"]

    # restore: s1 holds two hosts; the default is the node's own
    res = cassette("restore", "--repo", repo, "--backup", "s1", "--keyspace", ds.main, "--json").ok()
    assert ds.check(session, [ds.main]) > 0
    # a backup of two hosts, neither of them this node: say which
    h3, a3 = FAKE["h3"]
    fabricate(repo, "solo", own, "fab", h2, a2)
    fabricate(repo, "solo", own, "fab", h3, a3)
    res = cassette("restore", "--repo", repo, "--backup", "fab", "--keyspace", ds.main)
    assert_one_error_line(res)
    assert f"holds 2 nodes; say which with --source-host: {h2} ({a2}), {h3} ({a3})" in res.err, res.err
    res = cassette("restore", "--repo", repo, "--backup", "fab", "--source-host", "no-such-host")
    assert_one_error_line(res)
    assert "holds no node with host id no-such-host" in res.err
    # a node restores another host's files
    cassette("restore", "--repo", repo, "--backup", "fab", "--keyspace", ds.main, "--source-host", h3).ok()
    assert ds.check(session, [ds.main]) > 0
    cassette("delete", "--repo", repo, "--backup", "fab", "--force").ok()

    # purge: per set, whole. keep-last 1: s2 (the newest complete set) stays, s1 goes with
    # its two node backups and its files, s3 (incomplete, young) stays; solo is a node's own.
    res = cassette("purge", "--repo", repo, "--keep-last", "1", "--json").ok().json()
    assert res["sets_removed"] == 1
    names = {e["name"] for e in list_json(cassette, repo)}
    assert names == {"solo", "s2", "s3"}, names
    assert not list((pathlib.Path(repo) / "backups" / "s1").glob("*"))
    assert not list((pathlib.Path(repo) / "sets").glob("s1.*"))
    # once older than the grace period, the incomplete set goes whole too
    res = cassette("purge", "--repo", repo, "--keep-last", "1", "--grace", "0s").ok()
    assert "removed 1 backup sets whole" in res.out, res.out
    names = {e["name"] for e in list_json(cassette, repo)}
    assert names == {"solo", "s2"}, names
    # the newest complete set is never removed by retention
    cassette("purge", "--repo", repo, "--keep-within", "1s", "--grace", "0s").ok()
    assert {e["name"] for e in list_json(cassette, repo)} == {"solo", "s2"}

    # verify reports per set
    res = cassette("verify", "--repo", repo).ok()
    assert "set s2: complete 1/1; its backups are good" in res.out, res.out
    doc = cassette("verify", "--repo", repo, "--json").ok().json()
    assert [(s["name"], s["set"]["complete"], s["problems"]) for s in doc["sets"]] == [("s2", True, 0)]

    # delete: the newest complete set needs --force, then goes whole
    res = cassette("delete", "--repo", repo, "--backup", "s2")
    assert_one_error_line(res)
    assert "newest complete backup set" in res.err
    res = cassette("delete", "--repo", repo, "--backup", "s2", "--force").ok()
    assert "deleted backup set s2 whole" in res.out
    assert not list((pathlib.Path(repo) / "sets").glob("s2.*"))
    assert {e["name"] for e in list_json(cassette, repo)} == {"solo"}
    # a set none of whose hosts started is listed, and deleted whole
    settool(cassette, repo, "begin", "s4", "Test Cluster", f"{own}={addr}")
    text = cassette("list", "--repo", repo).ok().out
    assert "incomplete 0/1 (node %s: running)" % addr in row_of(text, "s4"), text
    cassette("delete", "--repo", repo, "--backup", "s4").ok()
    assert {e["name"] for e in list_json(cassette, repo)} == {"solo"}
    cassette("verify", "--repo", repo).ok()

    # a damaged record: a warning, its node backups count alone; delete removes it on purpose
    id5 = settool(cassette, repo, "begin", "s5", "Test Cluster", f"{own}={addr}").stdout.strip()
    backup(cassette, repo, "s5", ds.main, "--set", id5).ok()
    (pathlib.Path(repo) / "sets" / "s5.set").write_text('{"type": "cassette-set", "format": 1, "name": "s5"')
    res = cassette("list", "--repo", repo).ok()
    assert "backup set s5 is damaged" in res.err, res.err
    assert row_of(res.out, "s5").rstrip().endswith("complete"), res.out
    assert set_of(list_json(cassette, repo), "s5") is None
    res = cassette("delete", "--repo", repo, "--backup", "s5", "--force").ok()
    assert "deleted backup set s5 whole" in res.out
    assert not list((pathlib.Path(repo) / "sets").glob("s5.*"))
    assert {e["name"] for e in list_json(cassette, repo)} == {"solo"}


def test_set_of_one(cassette, repo, own, node, make_small_data):
    """A set whose only host is this node, on a directory and on the real S3 server."""
    ds = make_small_data("one")
    cassette("init", "--repo", repo, "--no-encryption").ok()
    set_id = settool(cassette, repo, "begin", "one", "c1", f"{own}={node.addr}").stdout.strip()
    backup(cassette, repo, "one", ds.main, "--set", set_id).ok()
    settool(cassette, repo, "commit", "one")
    record = json.loads(settool(cassette, repo, "read", "one").stdout)
    assert record["committed"] and record["commit"]["hosts"] == [{"host_id": own, "ok": True, "reason": None}]
    assert "complete 1/1" in row_of(cassette("list", "--repo", repo).ok().out, "one")
    # the only host's manifest is restored without --source-host
    cassette("restore", "--repo", repo, "--backup", "one", "--keyspace", ds.main).ok()
    cassette("verify", "--repo", repo, "--backup", "one").ok()
    res = cassette("delete", "--repo", repo, "--backup", "one", "--force", "--json").ok().json()
    assert res["set"] is True
    assert list_json(cassette, repo) == []
    res = settool(cassette, repo, "read", "one", check=False)
    assert res.returncode == 1 and "no backup set named one" in res.stderr

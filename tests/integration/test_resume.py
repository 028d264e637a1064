"""Interrupted backups resume their large uploads (issue 17, point 9).

A table with one ~50 MiB Data.db is backed up to an encrypted repository on the real S3
server, through the fault proxy (to count the bytes sent), with 5 MiB parts and a rate
limit so that the interruption lands in the middle of the file. The backup is stopped
once its upload journal and the server both show stored parts of the upload in progress
(a readiness signal, not a sleep). SIGINT: the backup says so on one line, exits 130,
releases its lock and clears its snapshot, and leaves the upload open; SIGKILL: nothing
runs at all. Either way the next backup keeps the parts the server holds, sends only the
rest of the file, and the backup verifies byte for byte and restores row by row."""

import datetime
import os
import random
import signal
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest
from cassandra.concurrent import execute_concurrent_with_args

from s3env import S3Client

KS = "resume_ks"
ROWS = 3200
ROW_BYTES = 16 * 1024        # ~50 MiB of incompressible rows in one SSTable
PART = 5 << 20


def _row(i):
    return random.Random(i).randbytes(ROW_BYTES)


@pytest.fixture(scope="module")
def big_table(node, cluster_session):
    """KS.blobs: ROWS rows, flushed and compacted into one large Data.db."""
    session = cluster_session[1]
    session.execute(f"DROP KEYSPACE IF EXISTS {KS}", timeout=120)
    session.execute(f"CREATE KEYSPACE {KS} WITH replication ="
                    " {'class': 'SimpleStrategy', 'replication_factor': 1}", timeout=60)
    session.execute(f"CREATE TABLE {KS}.blobs (id int PRIMARY KEY, data blob)", timeout=60)
    stmt = session.prepare(f"INSERT INTO {KS}.blobs (id, data) VALUES (?, ?)")
    for ok, res in execute_concurrent_with_args(session, stmt, ((i, _row(i)) for i in range(ROWS)),
                                                concurrency=32, results_generator=True):
        if not ok:
            raise res
    node.nodetool("flush", KS)
    node.nodetool("compact", KS)
    yield f"{KS}.blobs"
    node.nodetool("clearsnapshot", "--all", "--", KS, check=False)
    session.execute(f"DROP KEYSPACE IF EXISTS {KS}", timeout=120)


def _check_rows(session):
    seen = 0
    for row in session.execute(f"SELECT id, data FROM {KS}.blobs", timeout=120):
        assert row.data == _row(row.id), f"row {row.id} differs"
        seen += 1
    assert seen == ROWS


@pytest.fixture
def s3_repo(s3_server, s3_bucket, faultproxy, cassette, tmp_path):
    """An encrypted repository on S3, reached through the fault proxy; (location, env)."""
    key = tmp_path / "key.txt"
    cassette("key", "generate", "-o", key, config=False).ok()
    public = cassette("key", "public", key, config=False).ok().out.strip()
    env = {"AWS_ACCESS_KEY_ID": s3_server.access_key, "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
           "AWS_REGION": s3_server.region, "AWS_ENDPOINT_URL": faultproxy.endpoint,
           "CASSETTE_S3_PART_SIZE": "5M", "CASSETTE_IDENTITY": str(key)}
    loc = f"s3://{s3_bucket}/repo"
    cassette("init", "--repo", loc, "--recipient", public, env=env).ok()
    return loc, env


def _journal(state_dir):
    found = list(state_dir.glob("*/*.uploads"))
    return found[0] if found else None


def _journal_parts(path):
    """{part number: size} of the journal's upload (one upload in these tests)."""
    parts = {}
    if path and path.exists():
        import json
        for line in path.read_text().splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                continue  # a torn last line
            if "part" in doc:
                parts[doc["part"]["n"]] = doc["part"]["size"]
    return parts


def _uploads(client, bucket):
    return client.list_uploads(bucket)


def _server_parts(client, bucket, key, upload_id):
    """{part number: size} the server holds for the upload."""
    root = ET.fromstring(client.request("GET", bucket, key, query={"uploadId": upload_id})[2])
    return {int(p.findtext("{*}PartNumber")): int(p.findtext("{*}Size")) for p in root.iterfind("{*}Part")}


def _kept_bytes(journal, server):
    """What the next backup can keep: parts 1, 2, ... in both, whole."""
    n = 1
    while journal.get(n) == PART and server.get(n) == PART:
        n += 1
    return (n - 1) * PART


def _start_backup(cassette, node, loc, env, name):
    cmd = [str(cassette.bin), "--config", str(node.ini), "backup", "--repo", loc, "--name", name,
           "--keyspace", KS, "--jobs", "4", "--rate-limit", "3M", "--json"]
    proc_env = cassette.env()
    proc_env.update(env)
    return subprocess.Popen(cmd, env=proc_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)


def _wait_for_stored_parts(proc, state_dir, client, bucket, want=2, timeout=180):
    """Until the journal records `want` parts of an upload and the server holds them."""
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"the backup ended (exit {proc.returncode}) too soon: {proc.stderr.read()}"
        assert time.monotonic() < deadline, f"no {want} parts stored within {timeout} s"
        journal = _journal_parts(_journal(state_dir))
        if len(journal) >= want:
            ups = _uploads(client, bucket)
            if ups and len(_server_parts(client, bucket, *ups[0])) >= want:
                return
        time.sleep(0.05)


def _interrupt(cassette, node, s3_repo, s3_server, s3_bucket, state_dir, sig):
    """Back up, stop the backup with sig mid-file; (process, stdout, stderr, kept bytes)."""
    loc, env = s3_repo
    proc = _start_backup(cassette, node, loc, env, "interrupted")
    try:
        with S3Client(s3_server) as client:
            _wait_for_stored_parts(proc, state_dir, client, s3_bucket)
            t0 = time.monotonic()
            os.kill(proc.pid, sig)
            out, err = proc.communicate(timeout=120)
            stopped_in = time.monotonic() - t0
            ups = _uploads(client, s3_bucket)
            assert len(ups) == 1, f"expected the large upload to stay open: {ups}"
            kept = _kept_bytes(_journal_parts(_journal(state_dir)), _server_parts(client, s3_bucket, *ups[0]))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    print(f"\n{signal.Signals(sig).name}: stopped in {stopped_in:.2f} s, {kept >> 20} MiB kept")
    assert kept >= PART
    return proc, out, err, stopped_in, kept


def _resume_and_check(cassette, s3_repo, s3_server, s3_bucket, faultproxy, state_dir, kept):
    loc, env = s3_repo
    faultproxy.reset()
    res = cassette("backup", "--repo", loc, "--name", "resumed", "--keyspace", KS, "--jobs", "4", "--json",
                   env=env).ok()
    summary = res.json()
    sent = faultproxy.counters()["bytes_in"]
    print(f"resumed: {summary['bytes_resumed'] >> 20} MiB kept, {sent / 2**20:.1f} MiB sent for"
          f" {summary['bytes_stored'] / 2**20:.1f} MiB of new objects")
    assert summary["complete"] is True
    assert summary["bytes_resumed"] == kept, summary
    rest = summary["bytes_stored"] - kept
    # Only the rest of the file crossed the network (plus requests' heads, the manifest, the lock).
    assert rest <= sent <= rest + (2 << 20), (sent, summary)
    with S3Client(s3_server) as client:
        assert _uploads(client, s3_bucket) == []
    assert _journal(state_dir) is None, "the upload journal outlived its uploads"
    res = cassette("verify", "--repo", loc, "--backup", "resumed", "--deep", env=env)
    assert res.rc == 0, res.describe()
    return summary


def test_sigint_then_resume(cassette, node, session, big_table, s3_repo, s3_server, s3_bucket, faultproxy,
                            state_dir):
    proc, out, err, stopped_in, kept = _interrupt(cassette, node, s3_repo, s3_server, s3_bucket, state_dir,
                                                  signal.SIGINT)
    assert proc.returncode == 130, (out, err)
    assert err == "cassette: interrupted; run backup again to resume\n", err
    assert out == ""
    assert stopped_in < 15, f"took {stopped_in:.1f} s to stop"
    # Nothing left behind but the open upload: no lock, no snapshot; the journal is private.
    with S3Client(s3_server) as client:
        assert client.list_keys(s3_bucket, "repo/locks/") == []
    assert not list(node.dir.glob(f"data/{KS}/*/snapshots/cassette-*")), "the snapshot was not cleared"
    journal = _journal(state_dir)
    assert journal is not None and (journal.stat().st_mode & 0o777) == 0o600

    loc, env = s3_repo
    listed = cassette("list", "--repo", loc, "--json", env=env).ok().json()
    assert not any(b["name"] == "interrupted" and b["complete"] for b in listed), listed

    _resume_and_check(cassette, s3_repo, s3_server, s3_bucket, faultproxy, state_dir, kept)
    session.execute(f"TRUNCATE {big_table}", timeout=120)
    res = cassette("restore", "--repo", loc, "--backup", "resumed", "--table", big_table, env=env)
    assert res.rc == 0, res.describe()
    _check_rows(session)


def test_sigkill_then_resume(cassette, node, session, big_table, s3_repo, s3_server, s3_bucket, faultproxy,
                             state_dir):
    proc, out, err, _, kept = _interrupt(cassette, node, s3_repo, s3_server, s3_bucket, state_dir,
                                         signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL, (out, err)
    summary = _resume_and_check(cassette, s3_repo, s3_server, s3_bucket, faultproxy, state_dir, kept)
    assert summary["files_new"] >= 1


def test_purge_drops_unfinished_uploads(cassette, node, session, big_table, s3_repo, s3_server, s3_bucket,
                                        faultproxy, state_dir):
    """An upload that no backup resumed goes with purge once older than the grace period; the
    next backup then stores the file from its start."""
    proc, out, err, _, _ = _interrupt(cassette, node, s3_repo, s3_server, s3_bucket, state_dir, signal.SIGINT)
    assert proc.returncode == 130, (out, err)
    loc, env = s3_repo
    # No grace period, but the clock must have passed the upload's time as the server says it
    # (versitygw says when its last part came, whole seconds; S3 says when it began).
    with S3Client(s3_server) as client:
        root = ET.fromstring(client.request("GET", s3_bucket, query={"uploads": ""})[2])
    stamp = root.findtext("{*}Upload/{*}Initiated")
    initiated = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    while time.time() < initiated + 1.05:
        time.sleep(0.05)
    res = cassette("-v", "purge", "--repo", loc, "--keep-last", "1", "--grace", "0", "--dry-run", env=env).ok()
    assert "would drop 1 unfinished uploads" in res.err, res.describe()
    with S3Client(s3_server) as client:
        assert len(_uploads(client, s3_bucket)) == 1
    res = cassette("-v", "purge", "--repo", loc, "--keep-last", "1", "--grace", "0", env=env).ok()
    assert "dropped 1 unfinished uploads" in res.err, res.describe()
    with S3Client(s3_server) as client:
        assert _uploads(client, s3_bucket) == []
    summary = cassette("backup", "--repo", loc, "--name", "after-purge", "--keyspace", KS, "--json",
                       env=env).ok().json()
    assert summary["complete"] is True and summary["bytes_resumed"] == 0, summary
    assert _journal(state_dir) is None
    res = cassette("verify", "--repo", loc, "--backup", "after-purge", "--deep", env=env)
    assert res.rc == 0, res.describe()

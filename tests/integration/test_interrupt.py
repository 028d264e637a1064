"""A backup killed with SIGKILL half-way leaves no complete backup behind, and the next
backup succeeds."""

import os
import random
import signal
import subprocess
import time

from cassandra.concurrent import execute_concurrent_with_args

from conftest import backup_entries

BLOB_ROWS = 6000
BLOB_SIZE = 16 * 1024   # ~96 MiB of incompressible data


def _load_blobs(session, ks):
    session.execute(f"DROP KEYSPACE IF EXISTS {ks}", timeout=120)
    session.execute(f"CREATE KEYSPACE {ks} WITH replication ="
                    " {'class': 'SimpleStrategy', 'replication_factor': 1}", timeout=60)
    session.execute(f"CREATE TABLE {ks}.blobs (id int PRIMARY KEY, data blob)", timeout=60)
    stmt = session.prepare(f"INSERT INTO {ks}.blobs (id, data) VALUES (?, ?)")
    rows = ((i, random.Random(i).randbytes(BLOB_SIZE)) for i in range(BLOB_ROWS))
    for ok, res in execute_concurrent_with_args(session, stmt, rows, concurrency=32,
                                                results_generator=True):
        if not ok:
            raise res


def _objects(repo):
    d = repo / "objects"
    if not d.is_dir():
        return []
    return [os.path.join(r, f) for r, _d, fs in os.walk(d) for f in fs]


def test_sigkill_half_way(cassette, repo, node, session, tmp_path):
    ks = "kill_bulk"
    t0 = time.monotonic()
    _load_blobs(session, ks)
    print(f"\nloaded {BLOB_ROWS} x {BLOB_SIZE} B in {time.monotonic() - t0:.1f}s")
    cassette("init", "--repo", repo, "--no-encryption").ok()
    try:
        cmd = [str(cassette.bin), "--config", str(node.ini), "backup", "--repo", str(repo),
               "--name", "killed", "--keyspace", ks]
        out_path, err_path = tmp_path / "killed.out", tmp_path / "killed.err"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(cmd, env=cassette.env(), stdout=out, stderr=err,
                                    stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        try:
            while not _objects(repo):
                assert proc.poll() is None, (
                    f"backup ended (exit {proc.returncode}) before any object appeared:"
                    f" {err_path.read_text(errors='replace')[-2000:]}")
                assert time.monotonic() < deadline, "no object appeared within 300 s"
                time.sleep(0.01)
            running = proc.poll() is None
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=60)
        assert running, "the backup finished before it could be killed; grow the data set"
        assert proc.returncode == -signal.SIGKILL
        print(f"killed after {len(_objects(repo))} object(s)")

        complete = [e for e in backup_entries(cassette, repo)
                    if e.get("name") == "killed" and e.get("complete") is not False]
        assert not complete, f"the killed backup is listed as complete: {complete}"

        res = cassette("backup", "--repo", repo, "--name", "after-kill", "--keyspace", ks,
                       "--json").ok()
        assert res.json().get("complete") is True, res.describe()
        after = [e for e in backup_entries(cassette, repo) if e.get("name") == "after-kill"]
        assert len(after) == 1 and after[0].get("complete") is True, after
        killed = [e for e in backup_entries(cassette, repo) if e.get("name") == "killed"]
        assert all(e.get("complete") is False for e in killed), killed
    finally:
        node.nodetool("clearsnapshot", "--all", "--", ks, check=False)
        session.execute(f"DROP KEYSPACE IF EXISTS {ks}", timeout=120)

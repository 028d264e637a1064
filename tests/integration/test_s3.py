"""The S3 driver against a real S3 server (versitygw, SigV4 verified), with our
fault-injecting proxy in between where a test needs a network that misbehaves."""

import hashlib
import os
import pathlib
import subprocess
import time

import pytest

from conftest import ROOT, assert_one_error_line
from s3env import S3Client, aws

STORETOOL = pathlib.Path(os.environ.get("CASSETTE_STORETOOL", ROOT / "build" / "asan" / "tools" / "storetool"))


def s3_env(server, endpoint=None, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CASSETTE_", "AWS_", "B2_"))}
    env.update({"AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key,
                "AWS_REGION": server.region, "AWS_ENDPOINT_URL": endpoint or server.endpoint,
                "ASAN_OPTIONS": "detect_leaks=1"})
    env.update({k: str(v) for k, v in extra.items()})
    return env


def storetool(location, *args, env, timeout=600):
    assert os.access(STORETOOL, os.X_OK), f"{STORETOOL} missing: make VARIANT=asan all"
    return subprocess.run([str(STORETOOL), location, *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout, stdin=subprocess.DEVNULL)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def test_multipart_in_parallel_round_trips(s3_server, s3_bucket, faultproxy, tmp_path):
    src = tmp_path / "big.bin"
    with open(src, "wb") as f:
        for _ in range(210):
            f.write(os.urandom(1 << 20))
    env = s3_env(s3_server, faultproxy.endpoint, CASSETTE_S3_PART_SIZE="8M", CASSETTE_S3_CONCURRENCY=4)
    loc = f"s3://{s3_bucket}/mp"
    p = storetool(loc, "put", "big.bin", src, env=env)
    assert p.returncode == 0, p.stderr
    c = faultproxy.counters()
    # 210 MiB in 8 MiB parts: 27 part uploads, and several of them at once.
    puts = [e for e in faultproxy.log() if e["method"] == "PUT" and "partNumber=" in e["target"]]
    assert len(puts) == 27, puts[:3]
    assert c["max_active"] >= 3, c
    head = aws("s3api", "head-object", "--bucket", s3_bucket, "--key", "mp/big.bin")
    assert '"ContentLength": 220200960' in head and '-27\\"' in head, head

    dst = tmp_path / "back.bin"
    p = storetool(loc, "get", "big.bin", dst, env=env)
    assert p.returncode == 0, p.stderr
    assert sha256_file(dst) == sha256_file(src)
    with S3Client(s3_server) as client:
        assert client.list_uploads(s3_bucket) == []


def test_listing_pages_and_deletes_are_batched(s3_server, s3_bucket, faultproxy):
    with S3Client(s3_server) as client:
        for i in range(1203):
            client.put(s3_bucket, f"many/k{i:05d}", b"x" * (i % 7))
    env = s3_env(s3_server, faultproxy.endpoint)
    p = storetool(f"s3://{s3_bucket}/many", "list", env=env)
    assert p.returncode == 0, p.stderr
    keys = [line.split()[0] for line in p.stdout.splitlines()]
    assert sorted(keys) == [f"k{i:05d}" for i in range(1203)]
    lists = [e for e in faultproxy.log() if e["method"] == "GET" and "list-type=2" in e["target"]]
    assert len(lists) >= 3, lists  # the probe, then two pages of at most 1000

    faultproxy.reset()
    p = storetool(f"s3://{s3_bucket}/many", "delmany", "", env=env)
    assert p.returncode == 0 and "deleted 1203" in p.stdout, p.stderr
    deletes = [e for e in faultproxy.log() if e["method"] == "POST" and "delete" in e["target"]]
    single = [e for e in faultproxy.log() if e["method"] == "DELETE"]
    assert len(deletes) == 2 and not single, faultproxy.log()[-5:]
    with S3Client(s3_server) as client:
        assert client.list_keys(s3_bucket, "many/") == []


def _s3_repo(s3_server, bucket, prefix, endpoint, **extra):
    env = {"AWS_ACCESS_KEY_ID": s3_server.access_key, "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
           "AWS_REGION": s3_server.region, "AWS_ENDPOINT_URL": endpoint}
    env.update({k: str(v) for k, v in extra.items()})
    return f"s3://{bucket}/{prefix}", env


@pytest.mark.parametrize("fault", [
    {"mode": "503", "every": 2},
    {"mode": "reset", "where": "request", "after": 100, "every": 2, "method": "PUT"},
    {"mode": "reset", "where": "response", "after": 500, "every": 3, "method": "GET"},
    {"mode": "stall", "where": "request", "after": 200, "seconds": 6, "every": 2, "limit": 3, "method": "PUT", "path": "/objects/"},
], ids=["503", "reset-request", "reset-response", "stall"])
def test_faults_are_retried(cassette, session, make_small_data, s3_server, s3_bucket, faultproxy, fault):
    """Through a network that fails on purpose, backup, verify and restore still succeed with
    exactly the original content (verify checks every byte, the driver reads rows back)."""
    ds = make_small_data("flt", scale=0.02)
    repo, env = _s3_repo(s3_server, s3_bucket, "repo", faultproxy.endpoint, CASSETTE_S3_TIMEOUT=2,
                         CASSETTE_S3_RETRIES=8)
    cassette("init", "--repo", repo, "--no-encryption", env=env).ok()
    faultproxy.set(**fault)
    res = cassette("backup", "--repo", repo, "--name", "f1", "--keyspace", ds.main, "--json", env=env)
    assert res.rc == 0, res.describe()
    assert res.json()["complete"] is True
    res = cassette("verify", "--deep", "--repo", repo, env=env)
    assert res.rc == 0, res.describe()
    t = ds.tables_of(ds.main)[0]
    session.execute(f"TRUNCATE {t.full_name}", timeout=120)
    res = cassette("restore", "--repo", repo, "--backup", "f1", "--table", t.full_name, env=env)
    assert res.rc == 0, res.describe()
    assert ds.check_table(session, t) == t.count
    assert faultproxy.counters()["faults"] > 0, faultproxy.counters()
    with S3Client(s3_server) as client:
        assert client.list_uploads(s3_bucket) == []
    listing = aws("s3", "ls", "--recursive", f"s3://{s3_bucket}/repo/")
    assert "repo/cassette.repo" in listing and "repo/objects/" in listing and ".manifest" in listing


def _free_port():
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_server_killed_then_back(cassette, cassette_bin, node, state_dir, session, make_small_data, tmp_path):
    """The S3 server is killed in the middle of a backup: the backup fails with a clear error
    and is not listed as complete; once the server is back the next backup completes and
    stores only what was missing."""
    from s3env import S3Server
    server = S3Server(dir=tmp_path / "s3", port=_free_port())
    server.start()
    try:
        bucket = server.mkbucket("killed")
        ds = make_small_data("kill", scale=0.05)
        repo, env = _s3_repo(server, bucket, "repo", server.endpoint, CASSETTE_S3_TIMEOUT=3,
                             CASSETTE_S3_RETRIES=2, CASSETTE_RATE_LIMIT="128K")
        cassette("init", "--repo", repo, "--no-encryption", env=env).ok()
        objects = server.object_path(bucket, "repo/objects")
        # One object at a time (each table's SSTable is one pack here): killed after the first.
        cmd = [str(cassette_bin), "--config", str(node.ini), "backup", "--repo", repo, "--name", "k1",
               "--keyspace", ds.main, "--json", "--jobs", "1"]
        proc_env = {k: v for k, v in os.environ.items() if not k.startswith("CASSETTE_")}
        proc_env.update(env, CASSETTE_STATE_DIR=str(state_dir))
        proc = subprocess.Popen(cmd, env=proc_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if objects.is_dir() and sum(1 for _ in objects.rglob("*") if _.is_file()) >= 1:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the backup ended before the server could be killed"
        os.kill(server.pid(), 9)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 1, (out, err)
        lines = err.strip().split("\n")
        assert len(lines) == 1 and lines[0].startswith("cassette: "), err
        assert "cannot reach S3" in err, err
        assert server.secret_key not in err + out

        server.start()
        listed = cassette("list", "--repo", repo, "--json", env=env).ok().json()
        assert not any(b["name"] == "k1" and b["complete"] for b in listed), listed
        with S3Client(server) as client:
            before = client.list_keys(bucket, "repo/objects/")
        assert before, "nothing was stored before the server was killed"

        env.pop("CASSETTE_RATE_LIMIT")
        res = cassette("backup", "--repo", repo, "--name", "k2", "--keyspace", ds.main, "--json", env=env).ok()
        summary = res.json()
        assert summary["complete"] is True
        reused = summary["files"] - summary["files_new"]
        # Every object the killed backup stored whole is used again (one may have been
        # stored by the server just as it died, before cassette heard back).
        assert reused >= len(before) - 1, (summary, len(before))
        with S3Client(server) as client:
            after = client.list_keys(bucket, "repo/objects/")
        assert len(after) <= summary["files"] + 1, "objects were stored twice"
        res = cassette("verify", "--repo", repo, "--backup", "k2", env=env)
        assert res.rc == 0, res.describe()
    finally:
        server.stop()


def test_bad_credentials_bucket_and_endpoint(cassette, s3_server, s3_bucket):
    repo, env = _s3_repo(s3_server, s3_bucket, "r", s3_server.endpoint)
    cassette("init", "--repo", repo, "--no-encryption", env=env).ok()

    wrong = dict(env, AWS_SECRET_ACCESS_KEY="not-the-secret-at-all-0000")
    res = cassette("list", "--repo", repo, env=wrong)
    assert_one_error_line(res)
    assert "access denied" in res.err and s3_bucket in res.err, res.describe()
    assert "not-the-secret" not in res.err and s3_server.secret_key not in res.err

    res = cassette("list", "--repo", "s3://no-such-bucket-cassette/r", env=env)
    assert_one_error_line(res)
    assert "does not exist" in res.err, res.describe()

    t0 = time.monotonic()
    res = cassette("list", "--repo", repo, env=dict(env, AWS_ENDPOINT_URL="http://127.0.0.1:1",
                                                       CASSETTE_S3_RETRIES="1"))
    assert_one_error_line(res)
    assert "cannot reach" in res.err, res.describe()
    assert time.monotonic() - t0 < 30
    assert s3_server.secret_key not in res.err

    res = cassette("list", "--repo", repo, env={k: v for k, v in env.items() if k != "AWS_SECRET_ACCESS_KEY"}
                   | {"AWS_SECRET_ACCESS_KEY": ""})
    assert_one_error_line(res)
    assert "credentials" in res.err, res.describe()


def test_rate_limit_holds(s3_server, s3_bucket, tmp_path):
    """A 30-second upload: 30 MiB at 1 MiB/s takes 30 s, within 10 %."""
    src = tmp_path / "r.bin"
    src.write_bytes(os.urandom(30 << 20))
    env = s3_env(s3_server, CASSETTE_RATE_LIMIT="1M", CASSETTE_S3_PART_SIZE="5M")
    t0 = time.monotonic()
    p = storetool(f"s3://{s3_bucket}/rl", "put", "r.bin", src, env=env)
    elapsed = time.monotonic() - t0
    assert p.returncode == 0, p.stderr
    assert 27.0 <= elapsed <= 33.0, f"30 MiB at 1 MiB/s took {elapsed:.1f} s"


def test_failed_multipart_is_aborted(s3_server, s3_bucket, faultproxy, tmp_path):
    """Parts that keep failing end the upload with an error, and the multipart upload is
    aborted: nothing stays open on the server."""
    src = tmp_path / "m.bin"
    src.write_bytes(os.urandom(30 << 20))
    env = s3_env(s3_server, faultproxy.endpoint, CASSETTE_S3_PART_SIZE="5M", CASSETTE_S3_RETRIES=1)
    faultproxy.set(mode="503", every=1, method="PUT", path="partNumber=")
    p = storetool(f"s3://{s3_bucket}/fail", "put", "m.bin", src, env=env)
    assert p.returncode == 1, p.stderr
    assert p.stderr.count("\n") == 1 and "SlowDown" in p.stderr, p.stderr
    assert any(e["method"] == "POST" and "uploads" in e["target"] for e in faultproxy.log())
    assert any(e["method"] == "DELETE" and "uploadId=" in e["target"] for e in faultproxy.log())
    with S3Client(s3_server) as client:
        assert client.list_uploads(s3_bucket) == []
        assert client.list_keys(s3_bucket, "fail/") == []

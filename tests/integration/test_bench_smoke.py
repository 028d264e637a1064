"""The benchmark's smoke run: bench/run --smoke on the shared test node and S3 server.

Not a measurement (a tiny data set, no Medusa): it proves that bench/run still drives every
step it measures (cassette backups, restore and deep verify, Fluxer's runbook backup and
restore, the machine's limits) and prints its tables. The real benchmark is `make bench`."""

import os
import pathlib
import subprocess
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.bench
def test_bench_smoke_run(node, s3_server):
    env = dict(os.environ, BENCH_NO_INSTALL="1")
    t0 = time.monotonic()
    p = subprocess.run([str(ROOT / "bench" / "run"), "--smoke", "--no-append"], env=env,
                       capture_output=True, text=True, timeout=300)
    seconds = time.monotonic() - t0
    assert p.returncode == 0, f"bench/run --smoke failed:\n{p.stderr[-3000:]}"
    out = p.stdout
    assert "### side by side: smoke run" in out
    for row in ("full backup, MiB/s", "no-change backup, MiB stored", "5% backup, stored / new SSTable bytes",
                "restore, MiB/s", "storage after the 3 backups, MiB", "cassette verify (every object"):
        assert row in out, f"row {row!r} missing from:\n{out}"
    print(f"bench smoke run: {seconds:.1f} s")


def test_repo_scale_smoke_run():
    """bench/repo_scale --smoke: synthetic repositories, then list, catalog rebuild, verify
    (fast and deep) and purge on them; every command must succeed."""
    env = dict(os.environ, BENCH_NO_INSTALL="1")
    p = subprocess.run([str(ROOT / "bench" / "repo_scale"), "--smoke", "--no-append", "--no-build"], env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"bench/repo_scale --smoke failed:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    assert "did not succeed" not in p.stdout and "failed (exit" not in p.stdout, p.stdout
    for row in ("list --json", "catalog rebuild", "verify --deep", "purge"):
        assert row in p.stdout, f"row {row!r} missing from:\n{p.stdout}"

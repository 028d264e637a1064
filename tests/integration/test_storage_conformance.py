"""The storage driver conformance suite (tests/conformance) against the drivers that need a
server: S3 on a real versitygw, Azure Blob on a real Azurite, and the same through our fault
proxy (503s, connection resets, stalls), where every check must still pass because the driver
retries. No Cassandra.

The unit test test_storage_conformance runs the same checks over posix and mem. A new driver
adds one target below: a function that returns a Target for a fresh, empty location of a
running server (and, for the fault cases, how to point the driver at the proxy instead)."""

import dataclasses
import os
import pathlib
import subprocess
from typing import Callable, Dict

import pytest

from azenv import azurite  # noqa: F401  (fixture)
from conftest import ROOT
from s3env import FaultProxy, unique_bucket_name

RUNNER = pathlib.Path(os.environ.get("CASSETTE_CONFORMANCE",
                                     ROOT / "build" / "asan" / "conformance" / "storage-conformance"))


@dataclasses.dataclass
class Target:
    """A fresh location of one driver on a running server."""
    location: str                              # what the runner opens, e.g. s3://BUCKET/PREFIX
    env: Dict[str, str]                        # the driver's settings, as cassette reads them
    upstream_port: int                         # where the server listens (the proxy forwards there)
    via: Callable[[str], Dict[str, str]]       # env overrides that send the driver to a proxy URL
    faulty: Dict[str, str]                     # env for a run through faults: short timeouts, more retries


def s3_target(request):
    """A fresh bucket of the versitygw of tests/env/s3.sh; 5M parts, the smallest S3 allows,
    so the large objects go up in 4 parts."""
    server = request.getfixturevalue("s3_server")
    bucket = request.getfixturevalue("s3_bucket")
    env = {"AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key,
           "AWS_REGION": server.region, "AWS_ENDPOINT_URL": server.endpoint,
           "CASSETTE_S3_PART_SIZE": "5M"}
    return Target(f"s3://{bucket}/conformance", env, server.port,
                  lambda url: {"AWS_ENDPOINT_URL": url},
                  {"CASSETTE_S3_TIMEOUT": "2", "CASSETTE_S3_RETRIES": "8"})


def az_target(request):
    """A fresh container of the Azurite of tests/env/azurite.sh; 1M blocks, the smallest the
    driver takes, so the large objects go up in many blocks. No resumable writers (an
    interrupted upload is sent again): the resumable check tests the ordinary writer that
    stands in."""
    server = request.getfixturevalue("azurite")
    container = server.mkcontainer(unique_bucket_name(request.node.name))
    request.addfinalizer(lambda: server.rmcontainer(container))
    env = dict(server.env(), CASSETTE_AZ_BLOCK_SIZE="1M")
    return Target(f"az://{container}/conformance", env, server.port,
                  lambda url: {"CASSETTE_AZ_ENDPOINT": server.endpoint_via(url)},
                  {"CASSETTE_AZ_TIMEOUT": "2", "CASSETTE_AZ_RETRIES": "8"})


# One entry per driver that needs a server.
TARGETS = {"s3": s3_target, "az": az_target}


def run_suite(target, env_extra=None, checks=(), timeout=900):
    assert os.access(RUNNER, os.X_OK), f"{RUNNER} missing: make VARIANT=asan"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CASSETTE_", "AWS_", "B2_", "AZURE_"))}
    env.update(target.env)
    env.update(env_extra or {})
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    p = subprocess.run([str(RUNNER), target.location, *checks], capture_output=True, text=True,
                       env=env, timeout=timeout, stdin=subprocess.DEVNULL)
    return p


def all_checks():
    p = subprocess.run([str(RUNNER), "--list"], capture_output=True, text=True, check=True)
    return [line.split()[0] for line in p.stdout.splitlines() if line.strip()]


def assert_passed(p, target, checks):
    """Every check ran and passed (a skip is a failure); the runner said so too."""
    out = f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr[-4000:]}"
    results = {}
    for line in p.stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word in ("ok", "FAIL", "skip"):
            results[rest.split(":")[0].split(" (")[0]] = word
    for name in checks:
        assert results.get(name) == "ok", f"{name}: {results.get(name)}\n{out}"
    assert p.returncode == 0, out


@pytest.mark.parametrize("driver", list(TARGETS))
def test_conformance(driver, request):
    """Every check of the suite, against the real server."""
    target = TARGETS[driver](request)
    checks = all_checks()
    p = run_suite(target)
    assert_passed(p, target, checks)


# The checks that move data or depend on retries being safe; the 1100-key listing would only
# make a faulty run long (listing pages are covered by test_s3.py through the proxy).
FAULT_CHECKS = ("exclusive_create", "invisible_until_close", "free_without_close", "list_prefixes",
                "delete", "missing_keys", "large_object", "small_objects", "resumable",
                "parallel_writers")

FAULTS = {
    "503": {"mode": "503", "every": 3},
    "reset-request": {"mode": "reset", "where": "request", "after": 1000, "every": 4},
    "reset-response": {"mode": "reset", "where": "response", "after": 500, "every": 3,
                       "method": "GET"},
    "stall": {"mode": "stall", "where": "request", "after": 200, "seconds": 4, "every": 5,
              "limit": 3, "method": "PUT"},
}


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("driver", list(TARGETS))
def test_conformance_through_faults(driver, fault, request, tmp_path):
    """The same checks through a network that fails on purpose: the driver's retries must
    keep every rule (no lost or doubled object, no upload left behind)."""
    target = TARGETS[driver](request)
    proxy = FaultProxy(target.upstream_port, log_path=tmp_path / "faultproxy.log")
    try:
        proxy.set(**FAULTS[fault])
        env = dict(target.via(proxy.endpoint), **target.faulty)
        p = run_suite(target, env, FAULT_CHECKS)
        assert_passed(p, target, FAULT_CHECKS)
        assert proxy.counters()["faults"] > 0, proxy.counters()
    finally:
        assert proxy.stop() == 0, proxy._log_tail()

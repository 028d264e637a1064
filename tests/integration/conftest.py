"""Fixtures for cassette's integration tests against a real Cassandra 5.0 node.

- ``node``: node $CASSETTE_TEST_NODE (default 1) of tests/env/cassandra.sh, started with the
  options in $CASSETTE_TEST_NODE_OPTIONS (default --plain; e.g. "--auth --tls-required
  --tls-client-auth --jmx-auth") if it is not running (and then stopped at the end of the session); never a
  fake. The driver and cassette log in and use TLS as the node's cassette.ini says.
- ``spare_node``: another node of the same options, empty, its own cluster (node 9).
- ``session``: a Python driver session on that node.
- ``cassette_bin`` / ``cassette``: the binary under test (env CASSETTE_BIN, default
  build/asan/cassette) and a runner that gives it the node's cassette.ini and a per-test
  state directory, returning (rc, stdout, stderr).
- ``repo``: a fresh repository path per test (not created).
- ``big_data``: the 100k-row data set, loaded once per session.
- ``small_data``: a small data set in keyspaces of the test's own, dropped afterwards.
- ``cluster``, ``new_cluster``, ``small_cluster``: multi-node clusters with an agent per node
  (clusterenv.py); a test that takes one is marked ``cluster``.
"""

import hashlib
import inspect
import json
import os
import pathlib
import re
import shlex
import ssl
import subprocess
import sys
import time

import pytest
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable
from cassandra.policies import ConstantReconnectionPolicy, RoundRobinPolicy

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from dataset import Dataset  # noqa: E402

from s3env import faultproxy, s3_bucket, s3_server  # noqa: E402,F401  (S3 fixtures)
from clusterenv import cluster, new_cluster, small_cluster  # noqa: E402,F401  (cluster fixtures)
from serverenv import single_cluster  # noqa: E402,F401  (the server's one-node cluster)

ROOT = HERE.parent.parent
CASSANDRA_SH = ROOT / "tests" / "env" / "cassandra.sh"
BASE = pathlib.Path(os.environ.get("CASSETTE_TEST_DIR", "/tmp/cassette-test"))
NODE_NUMBER = int(os.environ.get("CASSETTE_TEST_NODE", "1"))
NODE_OPTIONS = shlex.split(os.environ.get("CASSETTE_TEST_NODE_OPTIONS", "--plain"))
SPARE_NODE_NUMBER = 9
SYSTEM_KEYSPACES = {"system", "system_schema", "system_auth", "system_distributed",
                    "system_traces", "system_views", "system_virtual_schema"}


class Result:
    def __init__(self, args, rc, out, err, seconds):
        self.args, self.rc, self.out, self.err, self.seconds = args, rc, out, err, seconds

    def __iter__(self):  # rc, out, err = cassette(...)
        return iter((self.rc, self.out, self.err))

    def json(self):
        try:
            return json.loads(self.out)
        except ValueError as e:
            raise AssertionError(f"not JSON ({e}) from {self.describe()}") from None

    def describe(self):
        return (f"cassette {' '.join(map(str, self.args))}\n  exit {self.rc}"
                f" after {self.seconds:.1f}s\n  stdout: {self.out[-3000:]!r}\n"
                f"  stderr: {self.err[-3000:]!r}")

    def ok(self):
        assert self.rc == 0, self.describe()
        return self


class Node:
    """Node N of tests/env/cassandra.sh."""

    def __init__(self, n=1, base=BASE, options=()):
        self.n = n
        self.options = list(options)
        self.base = pathlib.Path(base)
        self.addr = f"127.0.0.{n}"
        self.dir = self.base / f"node{n}"
        self.ini = self.dir / "cassette.ini"
        self.jmx_port = 7000 + 100 * n if n <= 9 else 10000 + 100 * (n - 10)  # cassandra.sh's rule

    def sh(self, *args, check=True, timeout=400):
        p = subprocess.run([str(CASSANDRA_SH), "--base", str(self.base), *map(str, args)],
                           capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"cassandra.sh {' '.join(map(str, args))} failed"
                                 f" (exit {p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    def is_running(self):
        return self.sh("status", self.n, check=False).returncode == 0

    def pid(self):
        p = self.sh("pid", self.n, check=False)
        return int(p.stdout) if p.returncode == 0 else None

    def start(self):
        return self.sh("start", self.n, *self.options).stdout.strip()

    def stop(self):
        return self.sh("stop", self.n).stdout.strip()

    def nodetool(self, *args, check=True):
        return self.sh("nodetool", self.n, *args, check=check, timeout=300)

    def config(self):
        """The [cassandra]/[cassette] keys of cassette.ini as a flat dict."""
        out = {}
        for line in self.ini.read_text().splitlines():
            m = re.match(r"\s*([a-z_]+)\s*=\s*(.*?)\s*$", line)
            if m:
                out[m.group(1)] = m.group(2)
        return out

    @property
    def secured(self):
        """True when CQL needs a login or TLS (the node was started with --auth/--tls*)."""
        c = self.config()
        return bool(c.get("username") or c.get("ca_file"))

    def driver_options(self):
        """Cluster() keyword arguments to reach this node as its cassette.ini says: the
        login, and TLS checked against its CA (host name included)."""
        c, kw = self.config(), {}
        if c.get("username"):
            kw["auth_provider"] = PlainTextAuthProvider(c["username"], c.get("password", ""))
        if c.get("ca_file"):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(c["ca_file"])
            if c.get("cert_file"):
                ctx.load_cert_chain(c["cert_file"], c.get("key_file") or None)
            kw["ssl_context"] = ctx
        return kw

    @property
    def data_dirs(self):
        return [pathlib.Path(p) for p in self.config()["data_dirs"].split(",")]

    @property
    def commitlog_dir(self):
        return pathlib.Path(self.config()["commitlog_dir"])

    def table_files(self, keyspace):
        """{(ks, table, file name)} of the live files (not snapshots/backups) of a keyspace."""
        out = set()
        for d in self.data_dirs:
            ksdir = d / keyspace
            if not ksdir.is_dir():
                continue
            for tdir in ksdir.iterdir():
                if not tdir.is_dir() or "-" not in tdir.name:
                    continue
                table = tdir.name.rsplit("-", 1)[0]
                for f in tdir.iterdir():
                    if f.is_file():
                        out.add((keyspace, table, f.name))
        return out

    def table_file_paths(self, keyspace):
        """{path: (ks, table)} of the live files of a keyspace."""
        out = {}
        for d in self.data_dirs:
            ksdir = d / keyspace
            if not ksdir.is_dir():
                continue
            for tdir in ksdir.iterdir():
                if tdir.is_dir() and "-" in tdir.name:
                    for f in tdir.iterdir():
                        if f.is_file():
                            out[f] = (keyspace, tdir.name.rsplit("-", 1)[0])
        return out


def object_files(plain, files):
    """The files whose contents, one after the other, are plain: an object's plaintext (age -d |
    zstd -d) is one file, or the small files of one SSTable in name order (a pack, manifest
    format 3). files: {path: bytes} of the candidates (e.g. node.table_file_paths' files).
    Returns their paths in order, [] when plain is no such sequence."""
    by_len = sorted(((p, b) for p, b in files.items() if b), key=lambda pb: -len(pb[1]))
    out, pos = [], 0
    while pos < len(plain):
        hit = next((p for p, b in by_len if plain.startswith(b, pos)), None)
        if hit is None:
            return []
        out.append(hit)
        pos += len(files[hit])
    return out


def connect(node, deadline_s=120):
    """A driver Cluster and Session on the node, retried until the deadline."""
    deadline = time.monotonic() + deadline_s
    while True:
        profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(),
                                   request_timeout=120)
        cluster = Cluster([node.addr], port=9042, protocol_version=5,
                          execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                          reconnection_policy=ConstantReconnectionPolicy(0.5, None),
                          connect_timeout=10, control_connection_timeout=10,
                          **node.driver_options())
        try:
            return cluster, cluster.connect()
        except NoHostAvailable:
            cluster.shutdown()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def wait_cql(session, deadline_s=120):
    """Waits until the session answers a query (e.g. after the node restarted)."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            session.execute("SELECT release_version FROM system.local", timeout=10)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.25)


def tree_state(path):
    """{relative path: (size, sha256)} of every file, and {relative dir: None}, under path."""
    path = pathlib.Path(path)
    out = {}
    if not path.exists():
        return out
    for root, dirs, files in os.walk(path):
        r = pathlib.Path(root)
        for d in dirs:
            out[str((r / d).relative_to(path)) + "/"] = None
        for f in files:
            p = r / f
            h = hashlib.sha256()
            with open(p, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            out[str(p.relative_to(path))] = (p.stat().st_size, h.hexdigest())
    return out


def assert_tree_unchanged(before, after, what):
    if before == after:
        return
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    raise AssertionError(f"{what} changed: added {added[:10]}, removed {removed[:10]},"
                         f" modified {changed[:10]}")


def assert_one_error_line(res):
    """Non-zero exit with exactly one 'cassette: ...' line on stderr."""
    assert res.rc != 0, res.describe()
    lines = res.err.rstrip("\n").split("\n")
    assert len(lines) == 1 and lines[0].strip(), \
        f"expected exactly one line on stderr\n{res.describe()}"
    assert lines[0].startswith("cassette: "), \
        f"stderr line must start with 'cassette: '\n{res.describe()}"


def backup_entries(cassette, repo):
    res = cassette("list", "--repo", repo, "--json").ok()
    data = res.json()
    assert isinstance(data, list), res.describe()
    return data


# ---- fixtures ---------------------------------------------------------------

def pytest_configure(config):
    config.addinivalue_line("markers", "cassandra: talks to the Cassandra node (set on every"
                            " test that takes node, session or a data set fixture); the secured"
                            " pass of tests/run.sh runs these")
    config.addinivalue_line("markers", "bench: runs the benchmark harness, which drives node 1"
                            " as it is (plain) on its own; never in the secured pass")
    config.addinivalue_line("markers", "secure_node: needs a node started with --auth"
                            " --tls-required --tls-client-auth --jmx-auth (the secured pass of tests/run.sh)")
    config.addinivalue_line("markers", "cluster: runs on the multi-node test clusters (nodes 11-18,"
                            " agents); set on every test that takes a cluster fixture; only the"
                            " cluster pass of tests/run.sh runs these")


# Tests that use one of these, directly or through another fixture, talk to Cassandra; so do
# tests that take ``node`` themselves (every test takes ``cassette``, which needs ``node`` only
# for its cassette.ini, so that one counts only as a direct argument).
_CASSANDRA_FIXTURES = {"session", "cluster_session", "big_data", "make_small_data", "spare_node"}


_CLUSTER_FIXTURES = {"cluster", "new_cluster", "small_cluster", "single_cluster"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if set(getattr(item, "fixturenames", ())) & _CLUSTER_FIXTURES:
            item.add_marker(pytest.mark.cluster)
        if item.get_closest_marker("bench"):
            continue
        fn = getattr(item, "function", None)
        direct = set(inspect.signature(fn).parameters) if fn else set()
        if "node" in direct or set(getattr(item, "fixturenames", ())) & _CASSANDRA_FIXTURES:
            item.add_marker(pytest.mark.cassandra)


@pytest.fixture(scope="session")
def node():
    n = Node(NODE_NUMBER, options=NODE_OPTIONS)
    started = not n.is_running()
    # Idempotent: waits for a running node and rewrites its cassette.ini for this checkout.
    print(f"\n[conftest] {n.start()}")
    yield n
    if started:
        n.stop()


@pytest.fixture(scope="session")
def spare_node(node):
    """An empty node of its own cluster with the session node's options: started fresh
    (its old directory removed) for the tests that need one, stopped at the end."""
    spare = Node(SPARE_NODE_NUMBER, options=NODE_OPTIONS)
    if spare.is_running():
        spare.stop()
    subprocess.run(["rm", "-rf", str(spare.dir)], check=True)
    print(f"\n[conftest] {spare.start()}")
    yield spare
    spare.stop()


@pytest.fixture(scope="session")
def cluster_session(node):
    cluster, session = connect(node)
    yield cluster, session
    cluster.shutdown()


@pytest.fixture
def session(cluster_session, node):
    """The shared driver session, known to answer (the node may have been restarted)."""
    if not node.is_running():
        node.start()
    wait_cql(cluster_session[1])
    return cluster_session[1]


@pytest.fixture(scope="session")
def cassette_bin():
    path = pathlib.Path(os.environ.get("CASSETTE_BIN", ROOT / "build" / "asan" / "cassette"))
    if not path.is_absolute():
        path = ROOT / path
    if not os.access(path, os.X_OK):
        pytest.fail(f"cassette binary {path} is missing: build it first"
                    " (make VARIANT=asan, or set CASSETTE_BIN)")
    return path


def _base_env(state_dir):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASSETTE_")}
    env["CASSETTE_STATE_DIR"] = str(state_dir)
    # The catalog's default place is under $XDG_CACHE_HOME: one per test.
    env["XDG_CACHE_HOME"] = str(state_dir.parent / "cache")
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    return env


@pytest.fixture
def state_dir(tmp_path):
    d = tmp_path / "state"
    return d


@pytest.fixture
def cassette(cassette_bin, node, state_dir, request):
    """run(*args, config=True, env=None, timeout=900, prefix=None) -> Result.

    Runs the binary with --config <node>/cassette.ini (unless config=False) and
    CASSETTE_STATE_DIR set to a per-test directory; ``prefix`` wraps the command
    (e.g. valgrind); ``bin`` replaces the binary."""

    def run(*args, config=True, env=None, timeout=900, prefix=None, bin=None):
        cmd = list(prefix or []) + [str(bin or cassette_bin)]
        if config:
            cmd += ["--config", str(node.ini)]
        cmd += [str(a) for a in args]
        e = base_env()  # an S3 repository needs the server's credentials
        if env:
            e.update(env)
        t0 = time.monotonic()
        p = subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        return Result(args, p.returncode, p.stdout, p.stderr, time.monotonic() - t0)

    def base_env():
        e = _base_env(state_dir)
        if "repo" in request.fixturenames:
            e.update(request.getfixturevalue("repo").env)
        return e

    run.bin = cassette_bin
    run.env = base_env
    run.ini = node.ini
    return run


class RepoLoc(os.PathLike):
    """Where a test's repository lives. str() is what cassette is given (a directory, or
    s3://BUCKET/PREFIX); as a path it is the directory holding the stored files (for S3, the
    one versitygw keeps the bucket's objects in), so tests can inspect and damage them."""

    def __init__(self, url, path, env=None, kind="dir"):
        self.url, self.path, self.env, self.kind = url, pathlib.Path(path), env or {}, kind

    def __str__(self):
        return self.url

    def __repr__(self):
        return f"RepoLoc({self.url!r})"

    def __fspath__(self):
        return str(self.path)

    def __truediv__(self, other):
        return self.path / other

    def exists(self):
        return self.path.exists()


@pytest.fixture(params=["dir", "s3"])
def repo(request, tmp_path):
    """A fresh repository location, not created: a local directory, or a prefix in a fresh
    bucket of the real S3 server (versitygw, SigV4 checked) of tests/env/s3.sh."""
    if request.param == "dir":
        return RepoLoc(str(tmp_path / "repo"), tmp_path / "repo")
    server = request.getfixturevalue("s3_server")
    bucket = request.getfixturevalue("s3_bucket")
    env = {"AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key,
           "AWS_REGION": server.region, "AWS_ENDPOINT_URL": server.endpoint,
           "CASSETTE_S3_RETRIES": "2", "CASSETTE_S3_TIMEOUT": "20"}
    return RepoLoc(f"s3://{bucket}/repo", server.object_path(bucket, "repo"), env, "s3")


# The big data set's scale: 1.0 (100k rows) unless CASSETTE_TEST_BIG_SCALE says otherwise
# (tests/run.sh's secured pass uses less: it proves the connection, pass 1 the size).
BIG_SCALE = float(os.environ.get("CASSETTE_TEST_BIG_SCALE") or 1.0)


class BigData:
    """The session's 100k-row data set (at BIG_SCALE 1.0), with a flag for tests that change
    it."""

    def __init__(self, node, session):
        self.node = node
        self.ds = Dataset("it", seed=11, scale=BIG_SCALE)
        self.dirty = True
        self.session = session

    def ensure(self, session):
        if self.dirty:
            self.ds.drop(session)
            rows, secs = self.ds.load(session)
            print(f"\n[conftest] loaded {rows} rows into {self.ds.keyspaces} in {secs:.1f}s")
            self.dirty = False
        return self.ds


@pytest.fixture(scope="session")
def _big_data_holder(node, cluster_session):
    holder = BigData(node, cluster_session[1])
    yield holder
    try:
        wait_cql(cluster_session[1], 60)
        holder.ds.drop(cluster_session[1])
        node.nodetool("clearsnapshot", "--all", check=False)
    except Exception as e:  # cleanup only
        print(f"[conftest] cleanup of the big data set failed: {e}")


@pytest.fixture
def big_data(_big_data_holder, session):
    """The 100k-row Dataset, loaded and intact. A test that changes it sets
    ``big_data.dirty = True`` first and back to False once it has checked every row."""
    ds = _big_data_holder.ensure(session)
    ds.holder = _big_data_holder
    return ds


def mark_dirty(ds, dirty=True):
    ds.holder.dirty = dirty


def cql_slug(request):
    """The running test's name in the letters and digits CQL names may use."""
    return re.sub(r"[^a-z0-9]", "", request.node.name.lower())


@pytest.fixture
def make_small_data(session, node, request):
    """make(tag, scale=0.01, compaction=False) -> a loaded Dataset with keyspaces of the
    test's own; dropped at the end of the test."""
    made = []

    def make(tag="sm", scale=0.01, compaction=False, seed=7):
        name = cql_slug(request)[:20]
        ds = Dataset(f"{tag}_{name}", seed=seed, scale=scale, compaction=compaction)
        ds.drop(session)
        ds.load(session)
        made.append(ds)
        return ds

    yield make
    for ds in made:
        try:
            wait_cql(session, 60)
            ds.drop(session)
        except Exception as e:  # cleanup only
            print(f"[conftest] dropping {ds.keyspaces} failed: {e}")

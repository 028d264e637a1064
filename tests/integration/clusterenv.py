"""Real multi-node Cassandra 5.0 clusters for the cluster tests (issue 19), each node with its
`cassette agent` over HTTPS with a bearer token, as in production.

Fixtures (imported by conftest.py; a test that takes one is marked ``cluster`` there, and only
tests/run.sh's cluster pass runs those):

- ``cluster`` (session): nodes 11-13 of tests/env/cassandra.sh (cluster_name
  "cassette-cluster", balanced single tokens), started with ``start-cluster`` when not running
  and stopped at the end if this session started them; an agent per node (tests/env/agent.sh)
  allowed the repositories under ``cluster.repo_dir`` and ``cluster.s3_prefix`` (a bucket of the
  session's S3 server); a driver session with all three contact points (``cluster.session``).
- ``new_cluster`` (session): nodes 14-16, cluster_name "cassette-restored", not started:
  the test calls ``new_cluster.start(tokens=...)`` with the tokens of the source nodes (a fresh,
  empty cluster each time it is started with ``fresh=True``, the default).
- ``small_cluster`` (session): nodes 17-18, cluster_name "cassette-small", balanced tokens,
  started fresh and empty (another topology for the bulk loader).

Started clusters are stopped at the end of the session, agents first. At most five nodes of
these fixtures should run at once on the 2-core test machine: stop ``cluster`` before starting
``new_cluster`` when both are not needed together (``cluster.stop()``; ``cluster.start()``
brings it back with its data).
"""

import http.client
import json
import os
import pathlib
import secrets
import shutil
import ssl
import subprocess
import time

import pytest

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
ENV_DIR = ROOT / "tests" / "env"
CASSANDRA_SH = ENV_DIR / "cassandra.sh"
AGENT_SH = ENV_DIR / "agent.sh"
BASE = pathlib.Path(os.environ.get("CASSETTE_TEST_DIR", "/tmp/cassette-test"))
AGENT_PORT = 7620
# The coordinator's address template for the agents (the address a node serves CQL on).
AGENT_TEMPLATE = "https://{rpc_address}:%d" % AGENT_PORT
CLUSTER_BUCKET = "ct-cluster"   # one name, so that agents kept running stay allowed


def _conftest():
    # conftest imports this module: its classes are read once both are loaded.
    import conftest
    return conftest


class AgentError(AssertionError):
    pass


class TestCluster:
    """Nodes FIRST..LAST of tests/env/cassandra.sh as one cluster, with an agent per node."""

    __test__ = False  # not a test class for pytest

    def __init__(self, name, first, last, base=BASE):
        self.name, self.first, self.last = name, first, last
        self.base = pathlib.Path(base)
        self.numbers = list(range(first, last + 1))
        self.nodes = [_conftest().Node(n, base=self.base) for n in self.numbers]
        self.addresses = [n.addr for n in self.nodes]
        self.agent_urls = [f"https://{a}:{AGENT_PORT}" for a in self.addresses]
        self.agent_template = AGENT_TEMPLATE
        self.tokens = None          # {node number: [token, ...]} given to the last start
        self.agent_args = []        # what the agents were started with (after the common ones)
        self.agent_env = {}         # their extra environment (storage credentials)
        self.started = False        # this session started the nodes: stop them at the end
        self.started_agents = set() # the agents this session started (of nodes it found running)
        self.default_fresh = False  # start() without fresh=: keep the nodes' data
        self.driver = None          # cassandra.cluster.Cluster of connect()
        self.session = None

    # -- paths of the agents' shared TLS material and token (tests/env/agent.sh) --
    @property
    def agent_dir(self):
        return self.base / "agent"

    @property
    def ca(self):
        return self.agent_dir / "ca.pem"

    @property
    def token_file(self):
        return self.agent_dir / "token"

    @property
    def client_cert(self):
        return self.agent_dir / "client.pem"

    @property
    def client_key(self):
        return self.agent_dir / "client.key"

    @property
    def range(self):
        return f"{self.first}-{self.last}"

    def node(self, n):
        """The Node of node number n."""
        return self.nodes[self.numbers.index(n)]

    # -- the scripts --
    def sh(self, *args, check=True, timeout=600):
        env = dict(os.environ, CASSETTE_TEST_CLUSTER=self.name)
        env.pop("CASSETTE_TEST_CLUSTER_NODES", None)
        env.pop("CASSETTE_TEST_TOKENS", None)
        if self.tokens:
            env["CASSETTE_TEST_TOKENS"] = " ".join(
                f"{n}={','.join(str(t) for t in toks)}" for n, toks in self.tokens.items())
        p = subprocess.run([str(CASSANDRA_SH), "--base", str(self.base), "--cluster", self.range,
                            *map(str, args)], capture_output=True, text=True, timeout=timeout,
                           env=env, stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise AssertionError(f"cassandra.sh --cluster {self.range} {' '.join(map(str, args))}"
                                 f" failed (exit {p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    def agent_sh(self, *args, check=True, env=None, timeout=300):
        e = dict(os.environ)
        e.update(env or {})
        p = subprocess.run([str(AGENT_SH), "--base", str(self.base), *map(str, args)],
                           capture_output=True, text=True, timeout=timeout, env=e,
                           stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise AssertionError(f"agent.sh {' '.join(map(str, args))} failed (exit {p.returncode}):"
                                 f"\n{p.stdout}\n{p.stderr}")
        return p

    def running(self):
        """The node numbers whose Cassandra runs."""
        return [n.n for n in self.nodes if n.is_running()]

    # -- life cycle --
    def start(self, tokens=None, fresh=None, agents=True):
        """Starts every node at once and waits until each sees the others UP, then the agents.
        tokens: {node number: token or [tokens]} or a list in node order (the source nodes'
        tokens for a cluster that carries them); fresh: stop and delete the nodes' directories
        first (an empty cluster; default self.default_fresh)."""
        if fresh is None:
            fresh = self.default_fresh
        if tokens is not None:
            if not isinstance(tokens, dict):
                tokens = dict(zip(self.numbers, tokens))
            self.tokens = {n: list(t) if isinstance(t, (list, tuple, set)) else [t]
                           for n, t in tokens.items()}
        if fresh:
            self.wipe()
        if len(self.running()) < len(self.nodes):
            self.started = True
        out = self.sh("start-cluster").stdout.strip()
        print(f"\n[clusterenv] {out}")
        if agents:
            self.start_agents()
        return out

    def stop(self):
        """Stops the agents, then every node at once; the data stays."""
        self.close()
        self.stop_agents()
        return self.sh("stop-cluster").stdout.strip()

    def wipe(self):
        """Stops everything and removes the nodes' directories (data, logs, certificates)."""
        self.stop()
        for n in self.nodes:
            shutil.rmtree(n.dir, ignore_errors=True)

    def start_agents(self, args=None, env=None):
        """Starts (or keeps) an agent per node: `cassette agent` with ARGS (default: the ones
        given before) and the environment ENV added (storage credentials). An agent that runs
        with other arguments is restarted."""
        if args is not None:
            self.agent_args = [str(a) for a in args]
        if env is not None:
            self.agent_env = dict(env)
        for n in self.numbers:
            if self.agent_pid(n) is None:
                self.started_agents.add(n)
            p = self.agent_sh("start", n, *self.agent_args, env=self.agent_env, check=False)
            if p.returncode != 0 and "runs with other arguments" in p.stderr:
                self.agent_sh("stop", n)
                p = self.agent_sh("start", n, *self.agent_args, env=self.agent_env, check=False)
            if p.returncode != 0:
                raise AssertionError(f"agent.sh start {n} failed (exit {p.returncode}):\n"
                                     f"{p.stdout}\n{p.stderr}")
            print(f"[clusterenv] {p.stdout.strip()}")

    def stop_agents(self, numbers=None):
        for n in self.numbers if numbers is None else numbers:
            self.agent_sh("stop", n)
            self.started_agents.discard(n)

    def agent_pid(self, n):
        p = self.agent_sh("pid", n, check=False)
        return int(p.stdout) if p.returncode == 0 else None

    def agent_log(self, n):
        return pathlib.Path(self.agent_sh("log", n).stdout.strip())

    # -- clients --
    def connect(self, deadline_s=120):
        """A driver session with every node as a contact point, once the driver sees every
        node up; kept as self.driver / self.session (closed by stop())."""
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable
        from cassandra.policies import ConstantReconnectionPolicy, DCAwareRoundRobinPolicy, TokenAwarePolicy
        self.close()
        deadline = time.monotonic() + deadline_s
        while True:
            profile = ExecutionProfile(load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
                                       request_timeout=120)
            c = Cluster(self.addresses, port=9042, protocol_version=5,
                        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                        reconnection_policy=ConstantReconnectionPolicy(0.5, None),
                        connect_timeout=10, control_connection_timeout=10,
                        **self.nodes[0].driver_options())
            try:
                s = c.connect()
            except NoHostAvailable:
                c.shutdown()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
                continue
            while True:
                # Up in the driver's metadata, and answering a query sent to it (a host just
                # marked up may still have no connection pool).
                up = [h for h in c.metadata.all_hosts() if h.is_up and self._answers(s, h)]
                if len(up) == len(self.nodes):
                    self.driver, self.session = c, s
                    return s
                if time.monotonic() > deadline:
                    c.shutdown()
                    raise AssertionError(f"the driver reaches {len(up)} of {len(self.nodes)} nodes")
                time.sleep(0.25)

    @staticmethod
    def _answers(session, host):
        try:
            session.execute("SELECT release_version FROM system.local", host=host, timeout=10)
            return True
        except Exception:
            return False

    def close(self):
        if self.driver is not None:
            self.driver.shutdown()
        self.driver = self.session = None

    def ssl_context(self, client_cert=True):
        """TLS context that checks an agent's certificate against the base directory's CA (and
        shows the client certificate of that CA, for agents started with --tls-client-ca)."""
        ctx = ssl.create_default_context(cafile=str(self.ca))
        if client_cert:
            ctx.load_cert_chain(str(self.client_cert), str(self.client_key))
        return ctx

    def agent_call(self, n, method, path, body=None, token=True, raw=None, timeout=60, headers=None):
        """(status, JSON document) of one request to node n's agent; token=False sends none,
        a string sends that one; headers: more of them (X-Cassette-Epoch)."""
        conn = http.client.HTTPSConnection(f"127.0.0.{n}", AGENT_PORT, context=self.ssl_context(),
                                           timeout=timeout)
        extra_headers, headers = headers, {"Content-Type": "application/json"}
        if token:
            tok = self.token_file.read_text().strip() if token is True else token
            headers["Authorization"] = f"Bearer {tok}"
        headers.update(extra_headers or {})
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        try:
            conn.request(method, path, body=data, headers=headers)
            r = conn.getresponse()
            text = r.read().decode()
        finally:
            conn.close()
        try:
            return r.status, json.loads(text)
        except ValueError:
            raise AgentError(f"{method} {path} on agent {n}: {r.status}, not JSON: {text[:500]!r}") from None

    def host_ids(self):
        """{node number: host id} as each agent reports it (GET /v1/node)."""
        out = {}
        for n in self.numbers:
            st, doc = self.agent_call(n, "GET", "/v1/node")
            assert st == 200, (n, st, doc)
            out[n] = doc["host_id"]
        return out


class ClusterEnv(TestCluster):
    """A TestCluster with the session's cassette binary and S3 server: ``run`` executes
    `cassette` the way the tests run it (ASan build, a fresh state directory per call, the S3
    credentials in its environment)."""

    __test__ = False

    def __init__(self, name, first, last, cassette_bin, s3_server, tmp_factory, base=BASE):
        super().__init__(name, first, last, base=base)
        self.cassette_bin = cassette_bin
        self.s3_server = s3_server
        self.tmp_factory = tmp_factory
        self.repo_dir = self.base / "cluster-repos"          # allowed on the agents
        self.s3_bucket = CLUSTER_BUCKET
        self.s3_prefix = f"s3://{CLUSTER_BUCKET}/cluster"   # allowed on the agents

    def s3_env(self):
        return self.s3_server.env()

    def new_repo(self, hint="r", kind="dir"):
        """A fresh repository location the agents allow: a directory under repo_dir, or a prefix
        under s3_prefix (kind "s3"). Not created."""
        tag = f"{hint}-{secrets.token_hex(4)}"
        if kind == "s3":
            return f"{self.s3_prefix}/{tag}"
        self.repo_dir.mkdir(parents=True, exist_ok=True)
        return str(self.repo_dir / tag)

    def run(self, *args, env=None, timeout=900, config=None):
        """Runs `cassette ARGS` -> conftest.Result. config: a cassette.ini to give it (e.g. a
        node's ini); the agents' CA, client certificate and token are this object's ca,
        client_cert/client_key and token_file, for the options of the command run."""
        c = _conftest()
        state = self.tmp_factory.mktemp("cluster-run") / "state"
        e = c._base_env(state)
        e.update(self.s3_env())
        if env:
            e.update({k: str(v) for k, v in env.items()})
        cmd = [str(self.cassette_bin)]
        if config:
            cmd += ["--config", str(config)]
        cmd += [str(a) for a in args]
        t0 = time.monotonic()
        p = subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        return c.Result(args, p.returncode, p.stdout, p.stderr, time.monotonic() - t0)

    def allow_repo_args(self):
        """--allow-repo for the cluster's repositories when the agent has that option."""
        help_text = subprocess.run([str(self.cassette_bin), "agent", "--help"], capture_output=True,
                                   text=True, stdin=subprocess.DEVNULL).stdout
        if "--allow-repo" not in help_text:
            return []
        return ["--allow-repo", str(self.repo_dir), "--allow-repo", self.s3_prefix]

    def start(self, tokens=None, fresh=None, agents=True):
        out = super().start(tokens=tokens, fresh=fresh, agents=False)
        if agents:
            self.start_agents(self.allow_repo_args(), self.s3_env())
        return out


def _ensure_bucket(s3_server):
    if CLUSTER_BUCKET not in s3_server.buckets():
        s3_server.mkbucket(CLUSTER_BUCKET)


def _finish(c):
    """Stops what the session started: the whole cluster, or the agents it added to nodes it
    found running."""
    c.close()
    try:
        if c.started:
            print(f"\n[clusterenv] {c.stop()}")
        elif c.started_agents:
            c.stop_agents(sorted(c.started_agents))
    except AssertionError as e:
        print(f"\n[clusterenv] stopping cluster {c.name} failed: {e}")


@pytest.fixture(scope="session")
def cluster(cassette_bin, s3_server, tmp_path_factory):
    """The shared 3-node cluster (nodes 11-13, "cassette-cluster") with an agent per node and a
    driver session (cluster.session); a ClusterEnv."""
    _ensure_bucket(s3_server)
    # CASSETTE_TEST_CLUSTER_NODES=21-23: another 3-node cluster side by side (same name, own nodes).
    first, last = (int(x) for x in (os.environ.get("CASSETTE_TEST_CLUSTER_NODES") or "11-13").split("-"))
    c = ClusterEnv("cassette-cluster", first, last, cassette_bin, s3_server, tmp_path_factory)
    c.start()
    c.connect()
    yield c
    _finish(c)


@pytest.fixture(scope="session")
def new_cluster(cassette_bin, s3_server, tmp_path_factory):
    """Nodes 14-16, "cassette-restored": not started; new_cluster.start(tokens=..., fresh=True)
    makes it a fresh, empty cluster with those tokens (and agents); connect() for a session."""
    _ensure_bucket(s3_server)
    c = ClusterEnv("cassette-restored", 14, 16, cassette_bin, s3_server, tmp_path_factory)
    c.default_fresh = True
    yield c
    _finish(c)


@pytest.fixture(scope="session")
def small_cluster(cassette_bin, s3_server, tmp_path_factory):
    """Nodes 17-18, "cassette-small": a fresh, empty 2-node cluster with agents and a driver
    session."""
    _ensure_bucket(s3_server)
    c = ClusterEnv("cassette-small", 17, 18, cassette_bin, s3_server, tmp_path_factory)
    c.start(fresh=True)
    c.connect()
    yield c
    _finish(c)

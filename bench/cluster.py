"""bench/cluster.sh: a cluster backup and a cluster restore of a real 3-node Cassandra 5.0
cluster, timed against the same work done node by node (bench/README.md).

One run, on a cluster of its own (nodes 21-23 of tests/env/cassandra.sh under --base,
cluster_name "cassette-bench-cluster", balanced single tokens), an agent per node
(tests/env/agent.sh: HTTPS with a token and a CA, the release build) and a versitygw of its
own over https (tests/env/s3.sh --tls, bucket "bench-cluster"):

  load     keyspace bench_cluster at RF 3 (wide rows of random blobs and word text, and many
           small rows), written at CONSISTENCY ALL with the Python driver, flushed on every
           node, compactions waited for
  (a)      cassette cluster backup (snapshots on all nodes at once, uploads by the agents)
  (b)      the baseline: cassette backup of each node, one after another, into another
           repository (what an operator runs without the cluster commands)
  (c)      Medusa backup-cluster / restore-cluster: not run here (RESULTS.md says why)
  (d)      TRUNCATE of the tables, then cassette cluster restore --mode import into the running
           nodes; then the baseline: TRUNCATE again, cassette restore --mode import of each
           node, one after another. After each restore the row counts are read at
           CONSISTENCY ALL and a sample of rows is compared with the generator.

Measured per command: wall time, CPU seconds (user+sys) and peak RSS of the command itself
(GNU time's %e %U %S %M: the coordinator, or the node backup), the CPU seconds the agents
spent meanwhile (/proc/PID/stat). Each agent's peak RSS is its VmHWM (/proc/PID/status),
read after the backups and again just before it is stopped (the whole run). The load
average is read before each timed step. Ratios: the baseline's wall time over cassette's
cluster command's (above 1: the cluster command is faster).

Usage: bench/cluster.sh [--mib 96] [--base DIR] [--s3-port P] [--keep] [--no-append] [--force]"""

import argparse
import datetime
import os
import platform
import random
import re
import signal
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = ROOT / "tests" / "env"
CASSETTE = ROOT / "build" / "cassette"
FIRST, LAST = 21, 23
NODES = list(range(FIRST, LAST + 1))
CLUSTER_NAME = "cassette-bench-cluster"
BUCKET = "bench-cluster"
KEYSPACE = "bench_cluster"
SEED = 19
BLOB = 16 << 10          # random (incompressible) bytes per wide row
TEXT_WORDS = 600         # compressible words per wide row (~4 KiB)
SMALL_PER_WIDE = 10      # small rows per wide row
MIB = 1 << 20


def say(msg):
    print(f"bench-cluster: {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


def run(argv, env=None, check=True, timeout=900):
    p = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    if check and p.returncode != 0:
        tail = " | ".join((p.stderr or p.stdout).strip().splitlines()[-4:])
        raise BenchError(f"{' '.join(map(str, argv[:5]))}... failed (exit {p.returncode}): {tail}")
    return p


def proc_cpu(pid):
    """user+sys seconds of a live process and of its children it waited for (an agent's
    nodetool JVMs), 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def vm_hwm_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise BenchError(f"no VmHWM for pid {pid}")


def loadavg():
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# ---- the environment: cluster, agents, S3 server -----------------------------------------

class Env:
    def __init__(self, base, s3_port):
        self.base = Path(base)
        self.s3_dir = self.base / "s3"
        self.s3_port = s3_port
        self.s3_started = False
        self.cluster_started = False
        self.agents_started = False
        self.s3_env = {}

    def cassandra(self, *args, check=True):
        env = dict(os.environ, CASSETTE_TEST_CLUSTER=CLUSTER_NAME)
        for k in ("CASSETTE_TEST_CLUSTER_NODES", "CASSETTE_TEST_TOKENS", "CASSETTE_TEST_NODES"):
            env.pop(k, None)
        return run([ENV / "cassandra.sh", "--base", self.base, "--cluster", f"{FIRST}-{LAST}", "--plain",
                    *args], env=env, check=check)

    def agent(self, *args, check=True):
        env = dict(os.environ, CASSETTE_BIN=str(CASSETTE), **self.s3_env)
        return run([ENV / "agent.sh", "--base", self.base, *args], env=env, check=check)

    def s3(self, *args, check=True):
        return run([ENV / "s3.sh", "--dir", self.s3_dir, "--port", self.s3_port, *args], check=check)

    def node_dir(self, n):
        return self.base / f"node{n}"

    def ini(self, n):
        return self.node_dir(n) / "cassette.ini"

    def agent_pid(self, n):
        p = self.agent("pid", n, check=False)
        return int(p.stdout) if p.returncode == 0 else None

    def start(self, allow_repos):
        self.base.mkdir(parents=True, exist_ok=True)
        if self.s3("status", check=False).returncode != 0:
            self.s3_started = True
        say(self.s3("--tls", "start").stdout.strip())
        self.s3("mkbucket", BUCKET)
        self.s3("aws", "s3", "rm", "--recursive", "--only-show-errors", f"s3://{BUCKET}/", check=False)
        for line in self.s3("env").stdout.splitlines():
            line = line.strip()
            if line.startswith("export "):
                k, v = line[len("export "):].split("=", 1)
                self.s3_env[k] = v.strip("'\"")
        self.s3_env["AWS_CA_BUNDLE"] = self.s3("ca").stdout.strip()
        # A fresh, empty cluster: nothing of an earlier run is kept.
        self.stop_agents()
        self.stop_cluster()
        for n in NODES:
            shutil.rmtree(self.node_dir(n), ignore_errors=True)
        self.cluster_started = True
        say(self.cassandra("start-cluster").stdout.strip())
        self.agents_started = True
        args = [a for r in allow_repos for a in ("--allow-repo", r)]
        for n in NODES:
            say(self.agent("start", n, *args).stdout.strip())

    def stop_agents(self):
        for n in NODES:
            self.agent("stop", n, check=False)
        self.agents_started = False

    def stop_cluster(self):
        self.cassandra("stop-cluster", check=False)
        self.cluster_started = False

    def cleanup(self):
        if self.agents_started:
            self.stop_agents()
        if self.cluster_started:
            self.stop_cluster()
        if self.s3_started:
            self.s3("stop", check=False)
            self.s3_started = False

    def agent_opts(self):
        shared = self.base / "agent"
        return ["--agent-ca-file", shared / "ca.pem", "--agent-token-file", shared / "token",
                "--agent-cert", shared / "client.pem", "--agent-key", shared / "client.key"]

    def cassette_env(self, state):
        env = {k: v for k, v in os.environ.items() if not k.startswith("CASSETTE_")}
        env.update(self.s3_env)
        env["CASSETTE_STATE_DIR"] = str(state)
        env["XDG_CACHE_HOME"] = str(state.parent / "cache")
        return env


# ---- the data ------------------------------------------------------------------------------

WORDS = ("message channel guild member reply thread emoji voice stream attachment invite role "
         "permission webhook reaction mention server moderator pinned edited deleted typing").split()


def wide_row(i):
    rng = random.Random(SEED * 1_000_003 + i)
    return (i % 997, i, rng.randbytes(BLOB), " ".join(rng.choice(WORDS) for _ in range(TEXT_WORDS)))


def small_row(j):
    rng = random.Random(SEED * 7_000_003 + j)
    return (j % 4999, j, f"event {j} " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 30))))


def connect():
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
    from cassandra import ConsistencyLevel
    profile = ExecutionProfile(load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
                               request_timeout=120, consistency_level=ConsistencyLevel.ALL)
    c = Cluster([f"127.0.0.{n}" for n in NODES], port=9042, protocol_version=5,
                execution_profiles={EXEC_PROFILE_DEFAULT: profile}, connect_timeout=10)
    deadline = time.monotonic() + 120
    while True:
        try:
            s = c.connect()
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    while sum(1 for h in c.metadata.all_hosts() if h.is_up) < len(NODES):
        if time.monotonic() > deadline:
            raise BenchError("the driver does not see every node up")
        time.sleep(0.25)
    return c, s


def load(session, mib):
    from cassandra.concurrent import execute_concurrent_with_args
    wide = max(1, (mib * MIB) // (BLOB + TEXT_WORDS * 8))
    small = wide * SMALL_PER_WIDE
    session.execute(f"DROP KEYSPACE IF EXISTS {KEYSPACE}", timeout=120)
    session.execute(f"CREATE KEYSPACE {KEYSPACE} WITH replication = "
                    "{'class': 'SimpleStrategy', 'replication_factor': 3}", timeout=120)
    session.execute(f"CREATE TABLE {KEYSPACE}.wide (p int, i int, payload blob, body text, "
                    "PRIMARY KEY (p, i))", timeout=120)
    session.execute(f"CREATE TABLE {KEYSPACE}.events (p int, j int, body text, PRIMARY KEY (p, j))",
                    timeout=120)
    ins_w = session.prepare(f"INSERT INTO {KEYSPACE}.wide (p, i, payload, body) VALUES (?, ?, ?, ?)")
    ins_s = session.prepare(f"INSERT INTO {KEYSPACE}.events (p, j, body) VALUES (?, ?, ?)")
    step = 500
    for lo in range(0, wide, step):
        hi = min(wide, lo + step)
        for ok, res in execute_concurrent_with_args(session, ins_w, [wide_row(i) for i in range(lo, hi)],
                                                    concurrency=32, raise_on_first_error=True):
            pass
        execute_concurrent_with_args(session, ins_s, [small_row(j) for j in
                                                      range(lo * SMALL_PER_WIDE, hi * SMALL_PER_WIDE)],
                                     concurrency=64, raise_on_first_error=True)
    return {"wide": wide, "events": small}


def counts(session, attempts=5):
    """Rows of each table at CONSISTENCY ALL. A replica that answers a page too late (the
    server's range read timeout, on a busy machine) is asked again."""
    from cassandra import OperationTimedOut, ReadTimeout
    from cassandra.query import SimpleStatement
    out = {}
    for t in ("wide", "events"):
        # Small pages: the node pages an aggregate by the client's page size, and at ALL every
        # replica sends its rows; 5000 wide rows a page from three replicas filled a test node's
        # 512 MiB heap (OutOfMemoryError on node 21 under load, 2026-12-07).
        count = SimpleStatement(f"SELECT count(*) FROM {KEYSPACE}.{t}", fetch_size=200)
        for attempt in range(attempts):
            try:
                out[t] = session.execute(count, timeout=300).one()[0]
                break
            except (ReadTimeout, OperationTimedOut) as e:
                if attempt == attempts - 1:
                    raise BenchError(f"count of {KEYSPACE}.{t} at ALL timed out {attempts} times: {e}")
                say(f"count of {KEYSPACE}.{t} timed out ({e.__class__.__name__}); again")
    return out


def check_rows(session, want, sample=40):
    """Row counts at ALL equal to what was loaded, and a sample of rows equal value by value."""
    got = counts(session)
    if got != want:
        raise BenchError(f"row counts after the restore: {got}, loaded {want}")
    sel_w = session.prepare(f"SELECT p, i, payload, body FROM {KEYSPACE}.wide WHERE p = ? AND i = ?")
    sel_s = session.prepare(f"SELECT p, j, body FROM {KEYSPACE}.events WHERE p = ? AND j = ?")
    rng = random.Random(time.time_ns())
    for _ in range(sample):
        i = rng.randrange(want["wide"])
        w = wide_row(i)
        if tuple(session.execute(sel_w, w[:2]).one() or ()) != w:
            raise BenchError(f"wide row {i} differs after the restore")
        j = rng.randrange(want["events"])
        s = small_row(j)
        if tuple(session.execute(sel_s, s[:2]).one() or ()) != s:
            raise BenchError(f"events row {j} differs after the restore")
    return got


def live_bytes(env, n):
    """On-disk bytes of node n's live SSTables of the bench keyspace (snapshots not counted)."""
    total = 0
    for line in env.ini(n).read_text().splitlines():
        if line.replace(" ", "").startswith("data_dirs="):
            for d in line.split("=", 1)[1].split(","):
                for table_dir in Path(d.strip()).glob(f"{KEYSPACE}/*"):
                    total += sum(f.stat().st_size for f in table_dir.iterdir() if f.is_file())
    return total


def settle(env):
    """Flushes every node and waits until no compaction is pending or running."""
    for n in NODES:
        env.cassandra("nodetool", n, "flush", KEYSPACE)
    deadline = time.monotonic() + 300
    for n in NODES:
        while True:
            out = env.cassandra("nodetool", n, "compactionstats").stdout
            m = re.search(r"pending tasks:?\s+(\d+)", out)
            if m and m.group(1) == "0":
                break
            if time.monotonic() > deadline:
                raise BenchError(f"node {n}: compactions still pending after 300 s")
            time.sleep(1)


# ---- measuring -----------------------------------------------------------------------------

class Results:
    def __init__(self):
        self.rows = []

    def measure(self, env, label, argv, state_name, agents=True):
        state = Path(tempfile.mkdtemp(prefix="bcl-", dir=env.base)) / state_name
        state.mkdir(parents=True)
        pids = {n: env.agent_pid(n) for n in NODES}
        before = {n: proc_cpu(p) for n, p in pids.items() if p}
        load_before = loadavg()
        tfile = state.parent / "time"
        say(f"{label} ...")
        t0 = time.monotonic()
        p = subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", "-o", str(tfile), *map(str, argv)],
                           capture_output=True, text=True, env=env.cassette_env(state),
                           stdin=subprocess.DEVNULL, timeout=1800)
        wall = time.monotonic() - t0
        (state.parent / "stdout").write_text(p.stdout)
        (state.parent / "stderr").write_text(p.stderr)
        agents_cpu = sum(proc_cpu(p) - before[n] for n, p in pids.items() if p)
        if p.returncode != 0:
            tail = " | ".join(p.stderr.strip().splitlines()[-5:])
            raise BenchError(f"{label}: exit {p.returncode}: {tail}")
        fields = tfile.read_text().strip().splitlines()[-1].split()
        row = {"label": label, "wall": wall, "cpu": float(fields[1]) + float(fields[2]),
               "rss_mib": int(fields[3]) / 1024, "agents_cpu": agents_cpu if agents else None,
               "load": load_before, "out": p.stdout}
        self.rows.append(row)
        say(f"{label}: {wall:.2f} s, CPU {row['cpu']:.2f} s, peak RSS {row['rss_mib']:.0f} MiB, "
            f"agents' CPU {agents_cpu:.2f} s (load {load_before})")
        return row

    def total(self, label, parts):
        row = {"label": label, "wall": sum(r["wall"] for r in parts), "cpu": sum(r["cpu"] for r in parts),
               "rss_mib": max(r["rss_mib"] for r in parts), "agents_cpu": None, "load": parts[0]["load"]}
        self.rows.append(row)
        return row


def machine():
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kib / (1 << 20):.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), {mem} RAM, Linux {platform.release()}"


def report(res, data, hwm, ratios, notes):
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = [f"## {now}: cluster backup and restore, 3 nodes (bench/cluster.sh)", "",
           f"Machine: {machine()}. Cluster: nodes {FIRST}-{LAST} of tests/env/cassandra.sh "
           f"(127.0.0.{FIRST}-{LAST}, Cassandra 5.0, one token each), an agent per node (release "
           "build, HTTPS with a token and a client certificate), versitygw over https on loopback, "
           "repositories unencrypted (--no-encryption) for both sides.", "",
           f"Data: keyspace {KEYSPACE} at RF 3, {data['rows']['wide']} wide rows (16 KiB random blob + "
           f"~4 KiB text) and {data['rows']['events']} small rows, written at CONSISTENCY ALL; live "
           f"SSTables per node {', '.join(f'{b / MIB:.1f}' for b in data['node_bytes'])} MiB "
           f"({sum(data['node_bytes']) / MIB:.1f} MiB in all; every keyspace of each node is backed "
           f"up, the system ones included). Load: {data['load_s']:.0f} s.", "",
           "| step | wall s | CPU s (command) | peak RSS MiB (command) | agents' CPU s | load avg before |",
           "|---|---|---|---|---|---|"]
    for r in res.rows:
        ac = "" if r["agents_cpu"] is None else f"{r['agents_cpu']:.2f}"
        out.append(f"| {r['label']} | {r['wall']:.2f} | {r['cpu']:.2f} | {r['rss_mib']:.0f} | {ac} | {r['load']} |")
    out += ["", "| ratio (baseline wall / cassette cluster wall) | |", "|---|---|"]
    out += [f"| {k} | {v:.2f}x |" for k, v in ratios.items()]
    out += ["", "| agent (peak RSS, VmHWM) | after the backups, MiB | whole run, MiB |", "|---|---|---|"]
    for n in NODES:
        a, b = hwm["backup"].get(n), hwm["end"].get(n)
        out.append(f"| node {n} (127.0.0.{n}) | {a / 1024:.0f} | {b / 1024:.0f} |")
    out += ["", "Where the time went (the commands' --json): " + " ".join(data.get("breakdown", []))]
    out += [""] + notes + [""]
    return "\n".join(out)


def breakdown(a, parts_b, d, parts_d):
    """What the commands' own --json documents say of where the time went."""
    import json
    out = []
    try:
        doc = json.loads(a["out"])
        nodes = doc["nodes"]
        window = max(n["snapshot_finished"] for n in nodes) - min(n["snapshot_started"] for n in nodes)
        ups = ", ".join(f"{n['backup']['seconds']:.1f}" for n in nodes)
        out.append(f"(a) cluster backup {doc['seconds']:.1f} s: snapshots on all nodes {window:.1f} s "
                   f"(start spread {doc['snapshot_spread']:.2f} s), the agents' uploads {ups} s "
                   f"(--parallel-nodes at a time); nodes complete {doc['nodes_complete']}/{doc['nodes_expected']}.")
        secs = ", ".join(f"{json.loads(r['out'])['seconds']:.1f}" for r in parts_b)
        out.append(f"(b) node backups (snapshot included) {secs} s.")
        doc = json.loads(d["out"])
        rs = ", ".join(f"{n['target']['restore']['seconds']:.1f}" for n in doc["nodes"])
        out.append(f"(d) cluster restore {doc['seconds']:.1f} s: the agents' restores {rs} s; node restores "
                   + ", ".join(f"{json.loads(r['out'])['seconds']:.1f}" for r in parts_d) + " s.")
    except (ValueError, KeyError, TypeError) as e:
        out.append(f"(the commands' --json documents could not be read for a breakdown: {e!r})")
    return out


# ---- the run -------------------------------------------------------------------------------

def bench(args, env, res):
    cl_repo = f"s3://{BUCKET}/cluster"
    node_repo = f"s3://{BUCKET}/nodes"
    one_repo = f"s3://{BUCKET}/cluster-one"   # the cluster commands one node at a time
    one = not args.no_one_at_a_time and args.parallel_nodes != 1
    env.start([cl_repo, node_repo, one_repo])
    c, s = connect()
    try:
        say(f"loading ~{args.mib} MiB at RF 3 (load average {loadavg()}) ...")
        t0 = time.monotonic()
        rows = load(s, args.mib)
        settle(env)
        load_s = time.monotonic() - t0
        data = {"rows": rows, "load_s": load_s, "node_bytes": [live_bytes(env, n) for n in NODES]}
        say(f"loaded {rows} in {load_s:.0f} s; live bytes per node "
            f"{[round(b / MIB, 1) for b in data['node_bytes']]} MiB")
        state = Path(tempfile.mkdtemp(prefix="bcl-init-", dir=env.base))
        for r in (cl_repo, node_repo, one_repo):
            run([CASSETTE, "init", "--repo", r, "--no-encryption"], env=env.cassette_env(state))
        contact = ["--contact", f"127.0.0.{FIRST}"]
        pn = ["--parallel-nodes", str(args.parallel_nodes)] if args.parallel_nodes else []

        # (a) and (b): backups
        a = res.measure(env, "(a) cassette cluster backup", [CASSETTE, "cluster", "backup", *contact, "--repo",
                                                             cl_repo, "--name", "full", *pn, *env.agent_opts(),
                                                             "--json"], "a")
        parts = [res.measure(env, f"(b) cassette backup node {n}", [CASSETTE, "--config", env.ini(n), "backup",
                                                                    "--repo", node_repo, "--name", f"full-{n}",
                                                                    "--json"], f"b{n}", agents=False)
                 for n in NODES]
        b = res.total("(b) three node backups, one after another", parts)
        parts_b = parts
        if one:
            a1 = res.measure(env, "(a1) cassette cluster backup --parallel-nodes 1", [
                CASSETTE, "cluster", "backup", *contact, "--repo", one_repo, "--name", "full",
                "--parallel-nodes", "1", *env.agent_opts(), "--json"], "a1")
        hwm_backup = {n: vm_hwm_kib(env.agent_pid(n)) for n in NODES}

        # (d): restores into the running nodes, after TRUNCATE
        def truncate():
            for t in ("wide", "events"):
                s.execute(f"TRUNCATE {KEYSPACE}.{t}", timeout=300)
            left = counts(s)
            if any(left.values()):
                raise BenchError(f"rows left after TRUNCATE: {left}")

        truncate()
        d = res.measure(env, "(d) cassette cluster restore --mode import", [
            CASSETTE, "cluster", "restore", *contact, "--repo", cl_repo, "--backup", "full", "--mode", "import",
            "--keyspace", KEYSPACE, *pn, "--yes", *env.agent_opts(), "--json"], "d")
        say(f"rows after the cluster restore: {check_rows(s, rows)} (CONSISTENCY ALL, a sample compared)")
        truncate()
        parts = [res.measure(env, f"(d) cassette restore node {n} --mode import", [
            CASSETTE, "--config", env.ini(n), "restore", "--repo", node_repo, "--backup", f"full-{n}",
            "--mode", "import", "--keyspace", KEYSPACE, "--json"], f"dr{n}", agents=False) for n in NODES]
        db = res.total("(d) three node restores, one after another", parts)
        say(f"rows after the node restores: {check_rows(s, rows)}")
        if one:
            truncate()
            d1 = res.measure(env, "(d1) cassette cluster restore --mode import --parallel-nodes 1", [
                CASSETTE, "cluster", "restore", *contact, "--repo", one_repo, "--backup", "full", "--mode",
                "import", "--keyspace", KEYSPACE, "--parallel-nodes", "1", "--yes", *env.agent_opts(), "--json"],
                "d1")
            say(f"rows after the cluster restore --parallel-nodes 1: {check_rows(s, rows)}")
    finally:
        c.shutdown()
    hwm_end = {n: vm_hwm_kib(env.agent_pid(n)) for n in NODES}
    data["breakdown"] = breakdown(a, parts_b, d, parts)
    ratios = {"backup: three node backups / cluster backup": b["wall"] / a["wall"],
              "restore: three node restores / cluster restore": db["wall"] / d["wall"]}
    if one:
        ratios["backup: three node backups / cluster backup --parallel-nodes 1"] = b["wall"] / a1["wall"]
        ratios["restore: three node restores / cluster restore --parallel-nodes 1"] = db["wall"] / d1["wall"]
    return data, {"backup": hwm_backup, "end": hwm_end}, ratios


ONE_MACHINE_NOTE = (
    "All three nodes, their agents, the coordinator and the S3 server share this machine's CPUs "
    "(and other helpers' work: see the load average). Work done on several nodes at once competes "
    "for the same cores, so here a cluster command can at best match the node-by-node baseline: "
    "the ratios measure what the coordination costs (snapshots taken at once, the agents' HTTPS "
    "round trips and polling, the cluster manifest), not the speed-up of a real cluster, where "
    "each node's snapshot, upload and import run on that node's own CPUs and disks and the "
    "cluster command takes about the slowest node's time times (nodes / --parallel-nodes).")


MEDUSA_NOTE = (
    "(c) Medusa's `backup-cluster` / `restore-cluster` were not run. Medusa (0.31.0) orchestrates "
    "them over ssh (parallel-ssh) and sends every host the same command line, built on the "
    "coordinator from its one config file: `nodetool snapshot` with the coordinator's own JMX "
    "host and port, then `medusa --config-file <the coordinator's file> backup-node` (no per-host "
    "option: the node's name, JMX port, cassandra.yaml and data directory all come from that file); "
    "`restore-node` gets a per-host `--fqdn` but the same file (and stops and starts Cassandra with "
    "its commands). Here the three nodes share one machine and differ only by address and JMX port "
    "(127.0.0.21-23, JMX 11100/11200/11300 on 127.0.0.1), so every ssh session would snapshot and "
    "upload the same node under the same name: Medusa's cluster mode needs one host (or container) "
    "per node with a local config each. Nor does an ssh server run in this container (the client "
    "is installed, openssh-server is not; Debian's package could be). Making it work would take "
    "per-address shims of nodetool and medusa behind an sshd on loopback, which is no longer Medusa "
    "as shipped; the baseline is therefore the same backups and restores run node by node with "
    "cassette, one after another. Medusa's single-node numbers are in the bench/run sections above.")


def main():
    ap = argparse.ArgumentParser(prog="bench/cluster.sh", description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=int, default=96, help="MiB of rows written (each stored 3 times at RF 3)")
    ap.add_argument("--base", default="/tmp/cassette-bench-cluster", help="the cluster's base directory")
    ap.add_argument("--s3-port", type=int, default=7076, help="port of the benchmark's versitygw")
    ap.add_argument("--parallel-nodes", type=int, default=0, help="--parallel-nodes of the cluster commands "
                    "(default: theirs)")
    ap.add_argument("--no-one-at-a-time", action="store_true", help="skip the cluster backup and restore "
                    "with --parallel-nodes 1 (measured by default beside the default parallelism)")
    ap.add_argument("--keep", action="store_true", help="leave the cluster, agents and server running")
    ap.add_argument("--no-append", action="store_true", help="print the results, do not append them")
    ap.add_argument("--force", action="store_true", help="run even while a full test run (tests/run.sh) goes")
    args = ap.parse_args()
    if not args.force and run(["pgrep", "-f", "tests/run.sh"], check=False).returncode == 0:
        say("a full test run (tests/run.sh) is going: the numbers would mean little; try later (or --force)")
        return 2
    if not CASSETTE.is_file():
        say(f"{CASSETTE} is missing: run make first")
        return 2
    env = Env(args.base, args.s3_port)
    load_start = loadavg()
    # SIGTERM and SIGHUP end the run the way Ctrl-C does: through the cleanup below.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    res = Results()
    t0 = time.monotonic()
    try:
        data, hwm, ratios = bench(args, env, res)
    except (Exception, KeyboardInterrupt) as e:  # the driver's errors too: report, clean up, exit 1
        if not isinstance(e, (BenchError, subprocess.TimeoutExpired, KeyboardInterrupt)):
            import traceback
            traceback.print_exc()
        say(f"error: {e!r}" if isinstance(e, KeyboardInterrupt) else f"error: {e}")
        for r in res.rows:
            say(f"  measured before the failure: {r['label']}: {r['wall']:.2f} s")
        say(f"the nodes' directories, logs and each command's output stay in {env.base}")
        return 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)   # a second signal must not cut the cleanup short
        if not args.keep:
            env.cleanup()
    if not args.keep:
        shutil.rmtree(env.base, ignore_errors=True)   # ~2 GB of nodes and objects
    notes = [f"Whole run {time.monotonic() - t0:.0f} s; load average before it started {load_start}, at the "
             f"end {loadavg()} (the benchmark's own nodes and load count in it).", "", ONE_MACHINE_NOTE,
             "", MEDUSA_NOTE]
    text = report(res, data, hwm, ratios, notes)
    print(text)
    if not args.no_append:
        with open(ROOT / "bench" / "RESULTS.md", "a") as f:
            f.write("\n" + text)
        say("appended to bench/RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

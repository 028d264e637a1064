"""bench/run: cassette side by side with Medusa and Fluxer's shell pipeline.

One run, one dataset (bench/dataset), one S3 server (versitygw on loopback), one node:
every tool backs up the same node into its own bucket of the same server, three times
(full; nothing changed; after 5% new data), restores, and is measured the same way:

  wall      time.monotonic() around the command
  CPU       user+sys of the command and every process under it (nodetool JVMs included:
            every tool runs nodetool), from getrusage(RUSAGE_CHILDREN) before and after
  server    CPU seconds versitygw spent meanwhile (/proc/PID/stat)
  node      CPU seconds the Cassandra nodes spent meanwhile (/proc/PID/stat; a node restarted
            during the run counts from its new start: its CPU before it stopped is lost)
  RSS       the peak resident set (VmHWM) of the tool's own main process, sampled every
            20 ms (nodetool JVMs not counted); for the shell pipeline, the largest of its
            processes (GNU time's %M of each)
  stored    bytes the run added to its bucket (the server's files on disk)
  requests  S3 requests the run made (lines of the server's request log)

MiB/s is the dataset's live SSTable bytes over the wall time. Ratios are cassette over
the peer in throughput (above 1: cassette faster) and in bytes or seconds where the row
says so. The limits of the machine are measured in the same run on the same files.

Usage: bench/run [--size 2G] [--smoke] [--skip-medusa] [--keep] [--no-append]
See bench/README.md."""

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
ENV = ROOT / "tests" / "env"
CACHE = Path(os.environ.get("CASSETTE_CACHE", Path.home() / ".cache" / "cassette"))
VENV = Path(os.environ.get("CASSETTE_VENV", CACHE / "venv"))
# BENCH_CASSETTE: another build (an older tree's, say) measured by this same harness.
CASSETTE = Path(os.environ.get("BENCH_CASSETTE", ROOT / "build" / "cassette"))
GNU_TIME = "/usr/bin/time"
S3_KEY = "cassette-test"
S3_SECRET = "cassette-test-secret-key-0123456789abcdef"
MIB = 1 << 20


def say(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


def run(argv, **kw):
    """Run a helper command (not measured); its failure ends the benchmark."""
    kw.setdefault("check", True)
    kw.setdefault("text", True)
    try:
        return subprocess.run([str(a) for a in argv], **kw)
    except subprocess.CalledProcessError as e:
        detail = (e.stderr or "").strip().splitlines()[-3:] if isinstance(e.stderr, str) else []
        raise BenchError(f"{' '.join(map(str, argv[:4]))}... failed (exit {e.returncode}) "
                         + " | ".join(detail))


# ---- measuring --------------------------------------------------------------------

def proc_cpu(pid):
    """user+sys seconds of a live process, 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def vm_hwm_kib(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def tree_bytes(path):
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = [d for d in dirnames if d != ".sgwtmp"]
        for f in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


class Measured:
    def __init__(self, label):
        self.label = label
        self.wall = self.cpu = self.server_cpu = self.node_cpu = 0.0
        self.rss_kib = 0
        self.stored = None
        self.requests = None
        self.read = None
        self.stdout = ""
        self.note = ""

    def mibs(self, nbytes):
        return nbytes / MIB / self.wall if self.wall > 0 else 0.0


class Bench:
    def __init__(self, args):
        self.args = args
        self.base = Path(args.base)
        self.work = self.base / "work"
        self.s3_dir = self.base / "s3"
        self.results = {}
        self.notes = []
        self.gw_pid = None
        self.started_nodes = []
        self.started_s3 = False
        self.profiles = {}

    # -- S3 server --
    def s3(self, *a, **kw):
        return run([ENV / "s3.sh", "--dir", self.s3_dir, *a], **kw)

    def requests_so_far(self):
        try:
            with open(self.s3_dir / "versitygw.log", "rb") as f:
                return sum(1 for line in f if b" | vgw | " in line)
        except OSError:
            return 0

    def bucket_bytes(self, bucket):
        return tree_bytes(self.s3_dir / "root" / bucket)

    def node_cpus(self):
        """{pid: CPU seconds} of the Cassandra nodes running now (the bench's and the smoke
        run's node, node 4 when started)."""
        out = {}
        for n in {self.node, *self.started_nodes}:
            try:
                pid = int((self.node_base / f"node{n}" / "cassandra.pid").read_text().strip())
            except (OSError, ValueError):
                continue
            out[pid] = proc_cpu(pid)
        return out

    def warm_node(self):
        """A node just started pays for its first JMX calls (measured: its first flush cost it
        0.55 CPU-s, the next 0.29; its first snapshot 0.49, the next 0.22), and its memtables
        hold what it wrote since the start. Whichever tool ran first paid for both (cassette:
        1.7 CPU-s of node time during its full backup, 0.3 in the same backup later in the
        run). A node in service has answered JMX before: one flush, snapshot and clearsnapshot
        here, unmeasured, so that every tool meets the node in the same state."""
        if self.args.smoke:
            return
        nt = self.nodetool_argv(self.node)
        for step in (["flush"], ["snapshot", "-t", "bench-warmup"], ["clearsnapshot", "-t", "bench-warmup"]):
            run(nt + step, capture_output=True)
        self.settle_node("after the warm-up")

    def settle_node(self, why, quiet=0.1, window=1.0, limit=120.0):
        """Wait until the nodes are quiet: a node that just flushed or compacted, or was just
        loaded, may spend seconds of CPU that would land in whichever tool runs first. Quiet:
        under `quiet` CPU seconds per second in two windows in a row. A readiness signal, not
        a fixed sleep; after `limit` seconds it goes on and says so in the notes."""
        if self.args.smoke:
            return
        t0 = time.monotonic()
        calm = 0
        before = sum(self.node_cpus().values())
        while calm < 2:
            if time.monotonic() - t0 > limit:
                self.notes.append(f"{why}: the node was still busy after {limit:.0f} s; measured anyway")
                return
            time.sleep(window)
            now = sum(self.node_cpus().values())
            calm = calm + 1 if now - before < quiet * window else 0
            before = now
        say(f"{why}: the node settled in {time.monotonic() - t0:.1f} s")

    def measure(self, label, argv, env=None, cwd=None, bucket=None, stdin=None):
        """Run argv to completion and record what it cost."""
        m = Measured(label)
        before_nodes = self.node_cpus()
        before_req = self.requests_so_far()
        before_bytes = self.bucket_bytes(bucket) if bucket else 0
        before_gw = proc_cpu(self.gw_pid) if self.gw_pid else 0.0
        before_cpu = children_cpu()
        say(f"{label}: {' '.join(str(a) for a in argv[:6])}{' ...' if len(argv) > 6 else ''}")
        t0 = time.monotonic()
        p = subprocess.Popen([str(a) for a in argv], env=env, cwd=cwd, stdin=stdin,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        peak = [0]
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], vm_hwm_kib(p.pid))
                done.wait(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        out, err = p.communicate()
        m.wall = time.monotonic() - t0
        done.set()
        sampler.join()
        m.cpu = children_cpu() - before_cpu
        m.server_cpu = (proc_cpu(self.gw_pid) - before_gw) if self.gw_pid else 0.0
        m.node_cpu = sum(cpu - before_nodes.get(pid, 0.0) for pid, cpu in self.node_cpus().items())
        m.rss_kib = peak[0]
        m.requests = self.requests_so_far() - before_req if self.gw_pid else None
        if bucket:
            m.stored = self.bucket_bytes(bucket) - before_bytes
        m.stdout, m.stderr = out, err
        if p.returncode != 0:
            tail = " | ".join(err.strip().splitlines()[-4:])
            raise BenchError(f"{label} failed (exit {p.returncode}): {tail}")
        say(f"{label}: {m.wall:.2f} s, CPU {m.cpu:.2f} s, RSS {m.rss_kib // 1024} MiB")
        self.results[label] = m
        return m

    # -- environment --
    def start(self):
        self.work.mkdir(parents=True, exist_ok=True)
        if self.args.smoke:
            # The test suite's node and server, already running: nothing to start.
            self.s3_dir = Path(os.environ.get("CASSETTE_TEST_DIR", "/tmp/cassette-test")) / "s3"
            self.gw_pid = int(self.s3("pid", capture_output=True).stdout.strip())
            self.node_base = Path(os.environ.get("CASSETTE_TEST_DIR", "/tmp/cassette-test"))
            self.node = 1
            for b in self.buckets():  # what an earlier smoke run left
                shutil.rmtree(self.s3_dir / "root" / b, ignore_errors=True)
        else:
            self.node_base = self.base
            self.node = 3
            self.s3("stop", check=False, capture_output=True)  # a --keep run's server
            shutil.rmtree(self.s3_dir, ignore_errors=True)
            # https, as AWS S3 and B2 are: every client then sends UNSIGNED-PAYLOAD bodies
            # under TLS (cassette, awscli and Medusa's boto3 alike).
            self.s3("--port", str(self.args.s3_port), "--tls", "start", capture_output=True)
            self.started_s3 = True
            self.gw_pid = int(self.s3("pid", capture_output=True).stdout.strip())
        for b in self.buckets():
            self.s3("mkbucket", b, capture_output=True)
        self.s3_port = int(self.s3("port", capture_output=True).stdout.strip())
        self.endpoint = self.s3("endpoint", capture_output=True).stdout.strip()
        self.ca = None
        if self.endpoint.startswith("https:"):
            self.ca = self.s3("ca", capture_output=True).stdout.strip()

    def ca_args(self, flag):
        return [flag, self.ca] if self.ca else []

    def buckets(self):
        bs = ["bench-cassette", "bench-fluxer"]
        if self.with_medusa():
            bs += ["bench-medusa-default", "bench-medusa-tuned"]
        return bs

    def with_medusa(self):
        return not self.args.smoke and not self.args.skip_medusa

    def cassandra(self, *a, **kw):
        return run([ENV / "cassandra.sh", "--base", self.node_base, *a], **kw)

    def nodetool_argv(self, node):
        return [ENV / "nodetool.sh", "-h", "127.0.0.1", "-p", f"7{node}00"]

    def stop(self):
        for n in self.started_nodes:
            self.cassandra("stop", str(n), check=False, capture_output=True)
        if self.started_s3:
            self.s3("stop", check=False, capture_output=True)

    # -- dataset --
    def dataset(self, *a):
        return json.loads(run([ROOT / "bench" / "dataset", *a], capture_output=True).stdout)

    def provision(self):
        if self.args.smoke:
            return self.smoke_dataset()
        say(f"dataset {self.args.size}: provisioning node {self.node} in {self.base}")
        d = self.dataset("provision", "--size", self.args.size, "--base", self.base, "--node",
                         str(self.node), "--force")
        self.started_nodes.append(self.node)
        self.keyspaces = d["keyspaces"]
        self.data_dirs = d["data_dirs"]
        self.dataset_info = d
        return d

    def smoke_dataset(self):
        py = VENV / "bin" / "python"
        run([py, ROOT / "tests/integration/dataset.py", "--prefix", "bsmoke", "--scale", "0.01", "load"],
            capture_output=True)
        self.keyspaces = ["bsmoke_main", "bsmoke_side"]
        self.data_dirs = [str(self.node_base / "node1" / "data")]
        self.dataset_info = {"size": "smoke"}
        return self.dataset_info

    def grow(self):
        if self.args.smoke:
            py = VENV / "bin" / "python"
            before = self.live_files()
            run([py, ROOT / "tests/integration/dataset.py", "--prefix", "bsmoke", "--seed", "2",
                 "--scale", "0.001", "load"], capture_output=True)
            after = self.live_files()  # unflushed yet: the smoke run's figures mean nothing
            return sum(after[k] for k in after.keys() - before.keys())
        g = self.dataset("grow", "--base", self.base, "--node", str(self.node), "--percent", "5",
                         "--round", "1")
        return g["new_bytes"]

    def live_files(self):
        """{path: size} of the live SSTable files of the dataset's keyspaces."""
        out = {}
        for d in self.data_dirs:
            for ks in self.keyspaces:
                ksdir = Path(d) / ks
                if not ksdir.is_dir():
                    continue
                for tdir in ksdir.iterdir():
                    if not tdir.is_dir():
                        continue
                    for dirpath, dirnames, filenames in os.walk(tdir):
                        dirnames[:] = [x for x in dirnames if x not in ("snapshots", "backups")]
                        for f in filenames:
                            p = os.path.join(dirpath, f)
                            out[p] = os.lstat(p).st_size
        return out

    def evict(self):
        """Take the dataset's files and the S3 server's objects out of the page cache (cold
        reads for every tool, backups and restores alike). Written pages are synced first:
        drop_caches drops clean pages only, and an object just written would stay warm."""
        os.sync()
        try:
            Path("/proc/sys/vm/drop_caches").write_text("1\n")
            return
        except OSError:
            pass
        for p in self.live_files():
            try:
                fd = os.open(p, os.O_RDONLY)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                os.close(fd)
            except OSError:
                pass

    # -- cassette --
    def cassette_env(self):
        env = dict(os.environ)
        env.update({"AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET,
                    "AWS_REGION": "us-east-1", "CASSETTE_S3_ADDRESSING": "path"})
        return env

    def cassette(self, label, cmd, *a, node=None, bucket="bench-cassette", prefix=()):
        node = node or self.node
        ini = self.cassandra("ini", str(node), capture_output=True).stdout.strip()
        argv = [*prefix, CASSETTE, cmd, "--config", ini, "--s3-endpoint", self.endpoint, *self.ca_args("--s3-ca-file"), *a]
        if cmd in ("backup", "restore", "verify"):
            argv.append("--json")
        return self.measure(label, argv, env=self.cassette_env(), bucket=bucket)

    def ks_args(self, flag="--keyspace"):
        out = []
        for k in self.keyspaces:
            out += [flag, k]
        return out

    def run_cassette(self, key_pub, key_file):
        repo = "s3://bench-cassette/repo"
        ks = self.ks_args() if self.args.smoke else []
        run([CASSETTE, "init", "--repo", repo, "--recipient", key_pub, "--s3-endpoint", self.endpoint,
             *self.ca_args("--s3-ca-file")],
            env=self.cassette_env(), capture_output=True)
        self.evict()
        c1 = self.cassette("cassette full", "backup", "--repo", repo, "--name", "b1", *ks)
        c1.read = json.loads(c1.stdout)["bytes_read"]
        if not self.args.smoke:
            self.full_again(key_pub, ks, c1)
        self.files_at_b2 = self.live_files()
        c2 = self.cassette("cassette no change", "backup", "--repo", repo, "--name", "b2", *ks)
        c2.read = json.loads(c2.stdout)["bytes_read"]
        c2.data_stored = json.loads(c2.stdout)["bytes_stored"]
        return repo

    def full_again(self, key_pub, ks, first):
        """Two more full backups, each into a repository of its own from a cold page cache: one
        run moved by +-10% between runs on the bench VM (the S3 server's CPU for the same bytes
        most of all), so "cassette full" is the median of three (rows #1-#3 are each run). The
        repository of the first goes on (no change, 5%, restore)."""
        runs = [first]
        for k in (2, 3):
            repo = f"s3://bench-cassette/again-{k}"
            run([CASSETTE, "init", "--repo", repo, "--recipient", key_pub, "--s3-endpoint", self.endpoint,
                 *self.ca_args("--s3-ca-file")], env=self.cassette_env(), capture_output=True)
            self.evict()
            m = self.cassette(f"cassette full #{k}", "backup", "--repo", repo, "--name", "b1", *ks)
            m.read = json.loads(m.stdout)["bytes_read"]
            runs.append(m)
            run([ENV / "s3.sh", "--dir", self.s3_dir, "aws", "s3", "rm", "--recursive", "--only-show-errors",
                 f"{repo}/"], capture_output=True)
        self.results["cassette full #1"] = first
        self.results["cassette full"] = sorted(runs, key=lambda m: m.wall)[1]

    def cassette_after_grow(self, repo):
        """The third backup; returns the bytes of the live SSTable files that were not
        there at the second one (what any incremental backup has to store)."""
        ks = self.ks_args() if self.args.smoke else []
        now = self.live_files()
        new_bytes = sum(size for path, size in now.items() if path not in self.files_at_b2)
        c3 = self.cassette("cassette after 5%", "backup", "--repo", repo, "--name", "b3", *ks)
        c3.read = json.loads(c3.stdout)["bytes_read"]
        c3.data_stored = json.loads(c3.stdout)["bytes_stored"]
        return new_bytes

    def cassette_dir(self, key_pub):
        """cassette into a repository on the data's own filesystem: a full backup (cold
        cache) and one with nothing changed. The repository stays for the local restore."""
        repo = self.work / "cassette-dir-repo"
        shutil.rmtree(repo, ignore_errors=True)
        ks = self.ks_args() if self.args.smoke else []
        run([CASSETTE, "init", "--repo", repo, "--recipient", key_pub], capture_output=True)
        self.evict()
        m = self.cassette("cassette full, local directory", "backup", "--repo", str(repo), "--name", "d1",
                          *ks, bucket=None)
        m.stored = tree_bytes(repo)
        m.read = json.loads(m.stdout)["bytes_read"]
        n = self.cassette("cassette no change, local directory", "backup", "--repo", str(repo), "--name", "d2",
                          *ks, bucket=None)
        n.stored = tree_bytes(repo) - m.stored
        return repo

    def local_peers(self, key_pub, key_file):
        """The same bytes copied by `cp` and by `tar | zstd -1 | age`, and back, each from a
        cold page cache and made durable (sync) as cassette's objects are (it fsyncs each);
        the local limit: a cold read of the files written once into one file, synced."""
        files = sorted(self.live_files())
        listing = self.work / "local-files.txt"
        listing.write_text("".join(f.lstrip("/") + "\n" for f in files))
        out = self.work / "local-peer"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        sh = lambda script, *a: ["bash", "-c", "set -euo pipefail; " + script, "_", *map(str, a)]
        self.evict()
        self.measure("local limit: cold read + write", sh('cd / && xargs -d "\\n" cat < "$1" > "$2/all" && sync -f "$2/all"',
                                                          listing, out))
        (out / "all").unlink()
        self.evict()
        self.measure("local cp, backup",
                     sh('mkdir -p "$2/cp" && cd / && xargs -d "\\n" cp --parents -t "$2/cp" < "$1" && sync -f "$2/cp"',
                        listing, out))
        self.evict()
        self.measure("local cp, restore", sh('cp -r "$1/cp" "$1/cp-back" && sync -f "$1/cp-back"', out))
        shutil.rmtree(out / "cp", ignore_errors=True)
        shutil.rmtree(out / "cp-back", ignore_errors=True)
        self.evict()
        procs = out / "procs.txt"
        pipe = ('p() { local n=$1; shift; /usr/bin/time -a -o "$PROCS" -f "$n %M" "$@"; }; '
                'p tar tar -C / -cf - -T "$1" | p zstd zstd -1 -q -c | p age age -r "$2" -o "$3/b.tar.zst.age" '
                '&& sync -f "$3/b.tar.zst.age"')
        t = self.measure("local tar | zstd -1 | age, backup", sh(pipe, listing, key_pub, out),
                         env=dict(os.environ, PROCS=str(procs)))
        t.rss_kib = max(int(line.split()[1]) for line in procs.read_text().splitlines())
        t.stored = os.lstat(out / "b.tar.zst.age").st_size
        self.evict()
        (out / "x").mkdir()
        self.measure("local tar | zstd -1 | age, restore",
                     sh('age -d -i "$2" "$1/b.tar.zst.age" | zstd -d -q -c | tar -C "$1/x" -xf - && sync -f "$1/x"',
                        out, key_file))
        shutil.rmtree(out, ignore_errors=True)

    def fresh_node4(self):
        """An empty node 4: restore creates the schema (another cluster, as after a loss)."""
        self.cassandra("stop", "4", check=False, capture_output=True)
        shutil.rmtree(self.base / "node4", ignore_errors=True)
        self.cassandra("start", "4", capture_output=True)
        if 4 not in self.started_nodes:
            self.started_nodes.append(4)

    def stop_node4(self):
        self.cassandra("stop", "4", capture_output=True)
        self.started_nodes.remove(4)

    def restore_cassette(self, repo, key_file, label="cassette restore (import)", backup="b3", rounds=1,
                         deep_verify=True):
        # In the smoke run, into the same node under other keyspace names is not possible:
        # restore imports into the test node's own tables again (a no-op for the rows, a real
        # restore run).
        target = 1 if self.args.smoke else 4
        if not self.args.smoke:
            self.fresh_node4()
        self.evict()
        self.cassette(label, "restore", "--repo", repo, "--backup", backup, "--identity", key_file,
                      *self.ks_args(), node=target, bucket=None)
        if deep_verify:
            self.cassette("cassette verify (deep)", "verify", "--deep", "--repo", repo, "--identity", key_file)
        if not self.args.smoke:
            self.check_rows(f"127.0.0.{target}", label, rounds)
            self.stop_node4()

    def profile(self, key_pub, key_file):
        """One more full backup of cassette after the 5% grow (a new repository in its bucket, cold cache) and a
        restore of it into an empty node 4, each under `perf record`: where the CPU goes.
        Timed apart from the tables above (perf costs a little)."""
        if not shutil.which("perf"):
            self.notes.append("no perf on this machine: no CPU profile")
            return
        repo = "s3://bench-cassette/profile"
        run([CASSETTE, "init", "--repo", repo, "--recipient", key_pub, "--s3-endpoint", self.endpoint,
             *self.ca_args("--s3-ca-file")], env=self.cassette_env(), capture_output=True)
        ks = self.ks_args() if self.args.smoke else []
        data = self.work / "perf-backup.data"
        self.evict()
        self.cassette("cassette full (perf)", "backup", "--repo", repo, "--name", "p1", *ks,
                      prefix=("perf", "record", "-q", "-F", "999", "-o", data, "--"))
        self.profiles["full backup"] = perf_summary(data)
        data = self.work / "perf-restore.data"
        target = 1 if self.args.smoke else 4
        if not self.args.smoke:
            self.fresh_node4()
        self.evict()
        self.cassette("cassette restore (perf)", "restore", "--repo", repo, "--backup", "p1", "--identity", key_file,
                      *self.ks_args(), node=target, bucket=None,
                      prefix=("perf", "record", "-q", "-F", "999", "-o", data, "--"))
        self.profiles["restore (import)"] = perf_summary(data)
        if not self.args.smoke:
            self.check_rows(f"127.0.0.{target}", "cassette restore (perf)", rounds=1)
            self.stop_node4()

    def check_rows(self, host, what, rounds=1):
        r = run([ROOT / "bench" / "dataset", "verify", "--host", host, "--size", self.args.size, "--rounds", str(rounds),
                 "--sample", str(self.args.verify_sample)], check=False, capture_output=True)
        if r.returncode != 0:
            raise BenchError(f"{what}: the restored rows differ: {r.stdout.strip()} {r.stderr.strip()[-500:]}")
        say(f"{what}: rows check out ({r.stdout.strip()})")

    # -- Fluxer's runbook --
    def fluxer_backup(self, label, key_pub, bucket="bench-fluxer"):
        """Fluxer's backup runbook step by step, each step measured; returns the object key."""
        wd = self.work / "fluxer"
        shutil.rmtree(wd, ignore_errors=True)
        wd.mkdir(parents=True)
        tag = "backup-" + datetime.datetime.utcnow().strftime("%Y%m%d-%H%M%S-%f")
        stage = wd / ("cassandra-backup-" + tag[len("backup-"):])
        nt = self.nodetool_argv(self.node)
        steps = []
        ks = self.keyspaces if self.args.smoke else []
        steps.append(self.measure(f"{label}: nodetool snapshot", nt + ["snapshot", "-t", tag, *ks]))
        script = ('set -euo pipefail; tag=$1 stage=$2; shift 2; mkdir -p "$stage"; '
                  'for d in "$@"; do (cd "$d" && find . -type d -name "$tag" -prune '
                  '-exec cp -r --parents {} "$stage" \\;); done')
        steps.append(self.measure(f"{label}: find + cp -r", ["bash", "-c", script, "_", tag, stage, *self.data_dirs]))
        py = VENV / "bin" / "python"
        schema = ("import sys\nfrom cassandra.cluster import Cluster\n"
                  "c = Cluster([sys.argv[1]], port=9042)\n"
                  "try:\n    rows = c.connect().execute('DESCRIBE SCHEMA', timeout=60)\n"
                  "    open(sys.argv[2], 'w').write(''.join(r.create_statement + '\\n' for r in rows))\n"
                  "finally:\n    c.shutdown()\n")
        steps.append(self.measure(f"{label}: DESC SCHEMA", [py, "-c", schema, f"127.0.0.{self.node}",
                                                             stage / "schema.cql"]))
        steps.append(self.measure(f"{label}: nodetool describecluster", nt + ["describecluster"]))
        steps.append(self.measure(f"{label}: nodetool status", nt + ["status"]))
        out = wd / "backup.tar.age"
        procs = wd / "procs.txt"
        pipe = ('set -o pipefail; p() { local n=$1; shift; /usr/bin/time -a -o "$PROCS" -f "$n %M" "$@"; }; '
                'p tar tar -C "$1" -cf - . | p age age -r "$2" -o "$3"')
        enc = self.measure(f"{label}: tar | age", ["bash", "-c", pipe, "_", stage, key_pub, out],
                           env=dict(os.environ, PROCS=str(procs)))
        enc.rss_kib = max(int(line.split()[1]) for line in procs.read_text().splitlines())
        steps.append(enc)
        key = f"{tag}.tar.age"
        aws = [ENV / "s3.sh", "--dir", self.s3_dir, "aws", "s3", "cp", "--only-show-errors", out, f"s3://{bucket}/{key}"]
        up = self.measure(f"{label}: aws s3 cp", [GNU_TIME, "-f", "%M", "-o", wd / "aws.rss", *aws], bucket=bucket)
        up.rss_kib = int((wd / "aws.rss").read_text().split()[-1])
        steps.append(up)
        steps.append(self.measure(f"{label}: nodetool clearsnapshot", nt + ["clearsnapshot", "-t", tag]))
        steps.append(self.measure(f"{label}: rm", ["rm", "-rf", out, stage]))
        total = Measured(label)
        for s in steps:
            total.wall += s.wall
            total.cpu += s.cpu
            total.server_cpu += s.server_cpu
            total.node_cpu += s.node_cpu
            total.rss_kib = max(total.rss_kib, s.rss_kib if "nodetool" not in s.label else 0)
            total.requests = (total.requests or 0) + (s.requests or 0)
        total.stored = up.stored
        total.read = tree_bytes(stage) if stage.exists() else None
        total.steps = steps
        self.results[label] = total
        say(f"{label}: {total.wall:.2f} s in all")
        return key

    def fluxer_restore(self, key, key_file, bucket="bench-fluxer"):
        wd = self.work / "fluxer-restore"
        shutil.rmtree(wd, ignore_errors=True)
        wd.mkdir(parents=True)
        obj = wd / "backup.tar.age"
        aws = [ENV / "s3.sh", "--dir", self.s3_dir, "aws", "s3", "cp", "--only-show-errors", f"s3://{bucket}/{key}", obj]
        self.evict()
        a = self.measure("Fluxer restore: aws s3 cp", [GNU_TIME, "-f", "%M", "-o", wd / "aws.rss", *aws])
        a.rss_kib = int((wd / "aws.rss").read_text().split()[-1])
        procs = wd / "procs.txt"
        pipe = ('set -o pipefail; p() { local n=$1; shift; /usr/bin/time -a -o "$PROCS" -f "$n %M" "$@"; }; '
                'p age age -d -i "$2" "$1" | p tar tar -C "$3" -xf -')
        (wd / "out").mkdir()
        b = self.measure("Fluxer restore: age -d | tar -x", ["bash", "-c", pipe, "_", obj, key_file, wd / "out"],
                         env=dict(os.environ, PROCS=str(procs)))
        b.rss_kib = max(int(line.split()[1]) for line in procs.read_text().splitlines())
        total = Measured("Fluxer restore")
        for s in (a, b):
            total.wall += s.wall
            total.cpu += s.cpu
            total.server_cpu += s.server_cpu
            total.node_cpu += s.node_cpu
            total.rss_kib = max(total.rss_kib, s.rss_kib)
            total.requests = (total.requests or 0) + (s.requests or 0)
        total.steps = [a, b]
        self.results["Fluxer restore"] = total
        shutil.rmtree(wd, ignore_errors=True)

    # -- Medusa --
    def medusa_setups(self):
        import medusa as medusa_peer  # bench/medusa.py
        exe = medusa_peer.install(str(CACHE))
        setups = {}
        for profile in ("tuned", "default"):
            setups[profile] = medusa_peer.MedusaSetup(
                work_dir=str(self.work / f"medusa-{profile}"), node_base=str(self.base), node=self.node,
                s3_host="127.0.0.1", s3_port=self.s3_port, bucket=f"bench-medusa-{profile}",
                access_key=S3_KEY, secret_key=S3_SECRET, profile=profile, medusa=exe,
                # https without checking the certificate: Medusa cannot be given a CA file
                # (its ssl_verify is off "until we work out how to specify custom certs").
                overrides={"storage": {"secure": "True"}} if self.ca else {})
            setups[profile].write()
        return medusa_peer, setups

    def medusa(self, peer, setup, label, args, bucket=None):
        argv, env = peer.argv_env(setup, *args)
        m = self.measure(label, argv, env=env, cwd=setup.work_dir, bucket=bucket)
        if peer.SNAPSHOT_FAILED in m.stdout + m.stderr:
            raise BenchError(f"{label}: Medusa's nodetool snapshot failed (it exits 0 anyway)")
        return m

    # -- the machine's limits --
    def limits(self, key_pub):
        files = sorted(self.live_files())
        total = sum(os.lstat(f).st_size for f in files)
        listing = self.work / "files.txt"
        listing.write_text("".join(f + "\n" for f in files))
        cat = ["bash", "-c", 'xargs -d "\\n" cat < "$1" > /dev/null', "_", listing]
        self.evict()
        self.measure("limit: read, cold cache", cat)
        tries = 1 if self.args.smoke else 3
        best = min((self.measure(f"limit: read, warm cache #{i}", cat) for i in range(tries)), key=lambda m: m.wall)
        self.results["limit: read, warm cache"] = best
        self.measure("limit: zstd -1", ["bash", "-c", 'xargs -d "\\n" cat < "$1" | zstd -1 -q -c > /dev/null', "_", listing])
        self.measure("limit: age", ["bash", "-c", 'xargs -d "\\n" cat < "$1" | age -r "$2" > /dev/null', "_", listing, key_pub])
        # Raw PUTs with curl (not our S3 code): the dataset's bytes in 8 MiB objects, N at once.
        blob = Path("/dev/shm/cassette-bench-put.bin")
        with open(blob, "wb") as f:
            f.write(os.urandom(8 * MIB))
        nobj = max(1, min(256, total // (8 * MIB)))
        best_put = None
        for par in (1,) if self.args.smoke else (1, 2, 4, 8, 16):
            script = ('seq "$1" | xargs -P "$2" -I{} curl -sf -o /dev/null --aws-sigv4 aws:amz:us-east-1:s3 '
                      '--user "$3" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -T "$4" $6 "$5/bench-fluxer/raw/{}"')
            m = self.measure(f"limit: raw PUT x{par}", ["bash", "-c", script, "_", str(nobj), str(par),
                                                         f"{S3_KEY}:{S3_SECRET}", blob, self.endpoint,
                                                         f"--cacert {self.ca}" if self.ca else ""])
            m.put_bytes = nobj * 8 * MIB
            if best_put is None or m.wall < best_put.wall:
                best_put = m
                best_put.par = par
            elif m.wall > best_put.wall * 1.05:
                break
        blob.unlink()
        self.results["limit: raw PUT"] = best_put
        # Raw GETs of the same objects, N at once (what a restore could get at best), each round
        # from a cold page cache as every restore below reads its objects: the S3 server's reads
        # of objects not in the page cache cost it ~3.5 CPU-s per GiB more on this VM (a fresh
        # page-cache page is costly here), on the CPUs the restore shares with it.
        best_get = None
        for par in (1,) if self.args.smoke else (1, 2, 4, 8, 16):
            self.evict()
            script = ('seq "$1" | xargs -P "$2" -I{} curl -sf -o /dev/null --aws-sigv4 aws:amz:us-east-1:s3 '
                      '--user "$3" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" $5 "$4/bench-fluxer/raw/{}"')
            m = self.measure(f"limit: raw GET x{par}", ["bash", "-c", script, "_", str(nobj), str(par),
                                                         f"{S3_KEY}:{S3_SECRET}", self.endpoint,
                                                         f"--cacert {self.ca}" if self.ca else ""])
            if best_get is None or m.wall < best_get.wall:
                best_get = m
                best_get.par = par
            elif m.wall > best_get.wall * 1.05:
                break
        self.results["limit: raw GET"] = best_get
        # The same GETs again with the objects in the page cache: what the limit was taken as
        # before the restores read cold (information only).
        warm = self.measure(f"limit: raw GET warm x{best_get.par}", ["bash", "-c", script, "_", str(nobj),
                                                                   str(best_get.par), f"{S3_KEY}:{S3_SECRET}",
                                                                   self.endpoint, f"--cacert {self.ca}" if self.ca else ""])
        warm.par = best_get.par
        run([ENV / "s3.sh", "--dir", self.s3_dir, "aws", "s3", "rm", "--recursive", "--only-show-errors",
             "s3://bench-fluxer/raw/"], capture_output=True)
        return total, nobj * 8 * MIB


def perf_summary(data):
    """The shares of a perf.data: by library (cassette's own threads; every thread of the
    nodetool JVMs counted as one), and the top symbols."""
    def rows(sort):
        out = run(["perf", "report", "-i", data, "--no-children", "--stdio", "-q", "--sort", sort,
                   "--field-separator", "\t"], capture_output=True).stdout
        for line in out.splitlines():
            parts = [x.strip() for x in line.split("\t")]
            if len(parts) >= 2 and parts[0].endswith("%"):
                yield float(parts[0][:-1]), parts[1:]
    by_dso = {}
    for pct, (comm, dso, *_) in rows("comm,dso"):
        key = ("cassette", dso) if comm == "cassette" else ("nodetool JVM", "(all)")
        by_dso[key] = by_dso.get(key, 0.0) + pct
    top = sorted(((pct, k) for k, pct in by_dso.items()), reverse=True)
    syms = [(pct, f) for pct, f in rows("comm,dso,sym") if f[0] == "cassette"]
    return {"by_dso": [(pct, list(k)) for pct, k in top if pct >= 0.5][:12],
            "by_sym": [(pct, f[1:]) for pct, f in syms][:15]}


def profile_report(b):
    lines = []
    for what, prof in b.profiles.items():
        lines.append(f"#### where the CPU goes: cassette {what} (perf record -F 999 of cassette and the nodetool "
                     "JVMs it starts; S3 server not included)")
        lines.append("")
        lines.append("| share % | process | library |")
        lines.append("|---:|---|---|")
        for pct, f in prof["by_dso"]:
            lines.append(f"| {pct:.1f} | {f[0]} | {' '.join(f[1:])} |")
        lines.append("")
        lines.append("| share % (cassette's top symbols) | library | symbol |")
        lines.append("|---:|---|---|")
        for pct, f in prof["by_sym"]:
            sym = " ".join(f[1:]).replace("[.] ", "").replace("[k] ", "").replace("|", "\\|")
            lines.append(f"| {pct:.1f} | {f[0]} | {sym} |")
        lines.append("")
    return lines


def local_report(b, data_bytes):
    R = b.results
    gib = data_bytes / (1 << 30)
    full, nochg = R.get("cassette full, local directory"), R.get("cassette no change, local directory")
    rest = R.get("cassette restore (import), local directory")
    cp_b, cp_r = R.get("local cp, backup"), R.get("local cp, restore")
    tz_b, tz_r = R.get("local tar | zstd -1 | age, backup"), R.get("local tar | zstd -1 | age, restore")
    lim = R.get("local limit: cold read + write")
    if not (full and lim):
        return []
    lines = [f"### a local-directory repository: the same {data_bytes / MIB:.1f} MiB, cold page cache, "
             "written durably (cassette fsyncs each object; the others end with sync)", "",
             "| | cassette | cp | tar \\| zstd -1 \\| age | local limit (cold read + write) |",
             "|---|---:|---:|---:|---:|"]
    cols = [full, cp_b, tz_b, lim]
    rcols = [rest, cp_r, tz_r, lim]
    def row(name, ms, fn):
        lines.append(f"| {name} | " + " | ".join(fn(m) if m else "" for m in ms) + " |")
    row("backup, wall s", cols, lambda m: fmt(m.wall))
    row("backup, MiB/s", cols, lambda m: fmt(m.mibs(data_bytes), 1))
    row("backup, CPU s per GiB", cols, lambda m: fmt(m.cpu / gib))
    row("backup, peak RSS MiB", cols, lambda m: str(m.rss_kib // 1024))
    row("backup, MiB written", cols[:3], lambda m: "" if m.stored is None else fmt(m.stored / MIB, 1))
    if nochg:
        lines.append(f"| no-change backup, wall s (% of full) | {nochg.wall:.2f} ({100 * nochg.wall / full.wall:.1f}) "
                     "| | | |")
    row("restore, wall s", rcols, lambda m: fmt(m.wall))
    row("restore, MiB/s", rcols, lambda m: fmt(m.mibs(data_bytes), 1))
    row("restore, CPU s per GiB", rcols, lambda m: fmt(m.cpu / gib))
    row("restore, peak RSS MiB", rcols, lambda m: str(m.rss_kib // 1024))
    lines.append("")
    lines.append(f"cassette's local backup at {full.mibs(data_bytes) / lim.mibs(data_bytes):.2f} of the local limit"
                 + (f", restore at {rest.mibs(data_bytes) / lim.mibs(data_bytes):.2f}" if rest else "")
                 + (f"; {tz_b.wall / full.wall:.2f}x the speed of tar | zstd -1 | age" if tz_b else "")
                 + ". cassette's restore includes creating the schema on an empty node and the import;"
                 " the peers only write files.")
    lines.append("")
    return lines


def machine_line():
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    return f"{os.cpu_count()} CPUs ({cpu}), {mem:.0f} GiB RAM, Linux {platform.release()}"


def fmt(v, digits=2):
    return "" if v is None else f"{v:.{digits}f}"


def report(b, data_bytes, new_bytes, put_bytes):
    R = b.results
    gib = data_bytes / (1 << 30)
    medusa = b.with_medusa()
    lines = []
    add = lines.append
    title = "smoke run (not a measurement)" if b.args.smoke else f"dataset {b.args.size}"
    add(f"### side by side: {title}, {data_bytes / MIB:.1f} MiB of live SSTables")
    add("")
    fluxer = ["Fluxer pipeline"] if "Fluxer full" in b.results else []
    cols = ["cassette"] + (["Medusa tuned", "Medusa default"] if medusa else []) + fluxer + ["machine limit"]
    add("| | " + " | ".join(cols) + " |")
    add("|---|" + "---:|" * len(cols))

    def row(name, values):
        add(f"| {name} | " + " | ".join(values) + " |")

    def get(label):
        return R.get(label)

    full = {"cassette": get("cassette full"), "Medusa tuned": get("Medusa tuned full"),
            "Medusa default": get("Medusa default full"), "Fluxer pipeline": get("Fluxer full")}
    nochg = {"cassette": get("cassette no change"), "Medusa tuned": get("Medusa tuned no change"),
             "Medusa default": get("Medusa default no change"), "Fluxer pipeline": get("Fluxer no change")}
    grow = {"cassette": get("cassette after 5%"), "Medusa tuned": get("Medusa tuned after 5%"),
            "Medusa default": get("Medusa default after 5%"), "Fluxer pipeline": get("Fluxer after 5%")}
    rest = {"cassette": get("cassette restore (import)"), "Medusa tuned": get("Medusa tuned restore"),
            "Medusa default": get("Medusa default restore"), "Fluxer pipeline": get("Fluxer restore")}
    lim_cold, lim_warm = get("limit: read, cold cache"), get("limit: read, warm cache")
    lim_put = get("limit: raw PUT")

    def per(d, fn, limit=""):
        return [fn(d[c]) if d.get(c) else "" for c in cols if c != "machine limit"] + [limit]

    row("full backup, wall s", per(full, lambda m: fmt(m.wall)))
    row("full backup, MiB/s", per(full, lambda m: fmt(m.mibs(data_bytes), 1),
                                  f"read {lim_cold.mibs(data_bytes):.0f} cold / {lim_warm.mibs(data_bytes):.0f} warm; "
                                  f"PUT {lim_put.mibs(put_bytes):.0f} (x{lim_put.par})"))
    row("full backup, CPU s per GiB", per(full, lambda m: fmt(m.cpu / gib)))
    row("full backup, S3 server CPU s", per(full, lambda m: fmt(m.server_cpu)))
    row("full backup, S3 requests", per(full, lambda m: str(m.requests)))
    row("full backup, peak RSS MiB", per(full, lambda m: str(m.rss_kib // 1024)))
    row("no-change backup, wall s", per(nochg, lambda m: fmt(m.wall)))
    row("no-change backup, % of full time", per(nochg, lambda m: fmt(100 * m.wall / full_of(full, m).wall, 1)))
    row("no-change backup, MiB stored", per(nochg, lambda m: fmt(m.stored / MIB, 1)))
    row("5% backup, wall s", per(grow, lambda m: fmt(m.wall)))
    row(f"5% backup, MiB stored (new SSTables: {new_bytes / MIB:.1f})", per(grow, lambda m: fmt(m.stored / MIB, 1)))
    row("5% backup, stored / new SSTable bytes", per(grow, lambda m: fmt(m.stored / new_bytes)))
    row("restore, wall s", per(rest, lambda m: fmt(m.wall)))
    lim_get = get("limit: raw GET")
    lim_get_warm = get(f"limit: raw GET warm x{lim_get.par}")
    row("restore, MiB/s", per(rest, lambda m: fmt(m.mibs(data_bytes), 1),
                              f"GET {lim_get.mibs(put_bytes):.0f} cold (x{lim_get.par})"
                              + (f" / {lim_get_warm.mibs(put_bytes):.0f} warm" if lim_get_warm else "")))
    row("restore, peak RSS MiB", per(rest, lambda m: str(m.rss_kib // 1024)))
    row("restore, CPU s (tool / S3 server / Cassandra node)",
        per(rest, lambda m: f"{m.cpu:.1f} / {m.server_cpu:.1f} / {m.node_cpu:.1f}"))
    stored3 = {c: sum(x[c].stored for x in (full, nochg, grow) if x.get(c)) for c in cols if full.get(c)}
    row("storage after the 3 backups, MiB", [fmt(stored3[c] / MIB, 1) if c in stored3 else "" for c in cols[:-1]] + [""])
    peak = {c: max(x[c].rss_kib for x in (full, nochg, grow, rest) if x.get(c)) for c in cols if full.get(c)}
    if "cassette" in peak:  # the median full backup's two other runs count too
        peak["cassette"] = max([peak["cassette"]] + [R[f"cassette full #{k}"].rss_kib for k in (1, 2, 3)
                                                     if f"cassette full #{k}" in R])
    row("peak RSS of all its runs, MiB", [str(peak[c] // 1024) if c in peak else "" for c in cols[:-1]] + [""])
    add("")
    # ratios
    peers = [c for c in cols[1:-1]]
    add("| cassette / ... | " + " | ".join(peers + ["machine limit"]) + " |")
    add("|---|" + "---:|" * (len(peers) + 1))
    c_full, c_rest = full["cassette"], rest["cassette"]
    row("full backup throughput (> 1: cassette faster)",
        [fmt(full[p].wall / c_full.wall) for p in peers] + [f"{c_full.mibs(data_bytes) / lim_cold.mibs(data_bytes):.2f} of cold read"])
    row("restore throughput (> 1: cassette faster)", [fmt(rest[p].wall / c_rest.wall) for p in peers]
        + [f"{c_rest.mibs(data_bytes) / lim_get.mibs(put_bytes):.2f} of raw GET"])
    row("CPU per GiB, full backup (< 1: cassette uses less)", [fmt(c_full.cpu / full[p].cpu) for p in peers] + [""])
    row("storage after 3 backups (< 1: cassette stores less)",
        [fmt(stored3["cassette"] / stored3[p]) for p in peers] + [""])
    add("")
    add(f"Limits on the same files: zstd -1 {get('limit: zstd -1').mibs(data_bytes):.0f} MiB/s, "
        f"age {get('limit: age').mibs(data_bytes):.0f} MiB/s (one core each, page cache warm); raw PUT with curl, "
        f"8 MiB objects: PUT " + ", ".join(f"x{p} {R[f'limit: raw PUT x{p}'].mibs(put_bytes):.0f}"
                                           for p in (1, 2, 4, 8, 16) if f"limit: raw PUT x{p}" in R)
        + "; GET (objects not in the page cache, as every restore here reads them) "
        + ", ".join(f"x{p} {R[f'limit: raw GET x{p}'].mibs(put_bytes):.0f}"
                    for p in (1, 2, 4, 8, 16) if f"limit: raw GET x{p}" in R) + " MiB/s.")
    if get("cassette verify (deep)"):
        v = get("cassette verify (deep)")
        add(f"cassette verify (every object downloaded, decrypted, decompressed, hashed): {v.wall:.2f} s, "
            f"{v.mibs(data_bytes):.0f} MiB/s, CPU {v.cpu:.2f} s, peak RSS {v.rss_kib // 1024} MiB.")
    add("")
    lines.extend(local_report(b, data_bytes))
    lines.extend(profile_report(b))
    add("Every run (CPU includes the nodetool JVMs each tool starts; server = versitygw's CPU; node = the "
        "Cassandra nodes' CPU meanwhile, a restarted node's from its new start):")
    add("")
    add("| run | wall s | CPU s | server CPU s | node CPU s | peak RSS MiB | stored MiB | requests |")
    add("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, m in R.items():
        if label.startswith("limit: read, warm cache #"):
            continue
        add(f"| {label.replace('|', chr(92) + '|')} | {m.wall:.2f} | {m.cpu:.2f} | {m.server_cpu:.2f} | {m.node_cpu:.2f} | {m.rss_kib // 1024} | "
            f"{'' if m.stored is None else f'{m.stored / MIB:.1f}'} | {'' if m.requests is None else m.requests} |")
    for n in b.notes:
        add(f"- {n}")
    return "\n".join(lines) + "\n"


def full_of(full, m):
    for k, v in full.items():
        if v and k.split()[0] == m.label.split()[0]:
            return v
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default=os.environ.get("BENCH_SIZE", "2G"))
    ap.add_argument("--smoke", action="store_true", help="tiny data on the running test node; no Medusa")
    ap.add_argument("--skip-medusa", action="store_true")
    ap.add_argument("--skip-fluxer", action="store_true",
                    help="leave out Fluxer's shell pipeline (a 10G run: it stages three copies of the data)")
    ap.add_argument("--skip-local", action="store_true",
                    help="leave out the local-directory repository and its peers (cp, tar | zstd -1 | age)")
    ap.add_argument("--profile", action="store_true",
                    help="one more full backup and restore of cassette under perf record: where the CPU goes")
    ap.add_argument("--keep", action="store_true", help="leave the node, the server and the work files")
    ap.add_argument("--no-append", action="store_true", help="print the tables, do not append them to RESULTS.md")
    ap.add_argument("--base", default=os.environ.get("CASSETTE_BENCH_DIR", "/tmp/cassette-bench"))
    ap.add_argument("--s3-port", type=int, default=7073)
    ap.add_argument("--verify-sample", type=float, default=2.0)
    args = ap.parse_args()
    if not args.smoke and not re.fullmatch(r"[1-9][0-9]*[MG]", args.size):
        sys.exit(f"bench: --size must be like 64M, 500M, 2G or 20G, not {args.size!r}")
    if not CASSETTE.exists():
        sys.exit(f"bench: {CASSETTE} is missing (make)")
    for tool in ("age", "age-keygen", "tar", "zstd", "curl", GNU_TIME):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is not installed (scripts/install-deps.sh)")
    b = Bench(args)
    t_start = time.monotonic()
    try:
        if not args.smoke:
            shutil.rmtree(b.work, ignore_errors=True)
        b.start()
        key_file = b.work / "age-key.txt"
        key_file.unlink(missing_ok=True)
        run(["age-keygen", "-o", key_file], capture_output=True)
        key_pub = run(["age-keygen", "-y", key_file], capture_output=True).stdout.strip()
        b.provision()
        b.warm_node()
        live = b.live_files()
        data_bytes = sum(live.values())
        say(f"dataset: {data_bytes / MIB:.1f} MiB in {len(live)} files")
        peer = setups = None
        if b.with_medusa():
            peer, setups = b.medusa_setups()
        repo = b.run_cassette(key_pub, key_file)
        dir_repo = None
        if not args.smoke and not args.skip_local:
            dir_repo = b.cassette_dir(key_pub)
            b.local_peers(key_pub, key_file)
        fx1 = None
        if not args.skip_fluxer:
            fx1 = b.fluxer_backup("Fluxer full", key_pub)
            if not args.smoke:  # the same steps again: the smoke run has proved them once
                b.fluxer_backup("Fluxer no change", key_pub)
        # Medusa: differential mode throughout (its command line's default, and the only mode in
        # which backups share files); the first differential backup uploads everything.
        if peer:
            for prof in ("tuned", "default"):
                b.evict()
                b.medusa(peer, setups[prof], f"Medusa {prof} full", peer.backup_args("m1", "differential"),
                         bucket=f"bench-medusa-{prof}")
                b.medusa(peer, setups[prof], f"Medusa {prof} no change", peer.backup_args("m2", "differential"),
                         bucket=f"bench-medusa-{prof}")
        grown = b.grow()
        b.settle_node("after the 5% grow")
        new_bytes = b.cassette_after_grow(repo)
        say(f"grew by {grown / MIB:.1f} MiB of new SSTables; {new_bytes / MIB:.1f} MiB of live SSTables "
            "are new since the second backup")
        if abs(new_bytes - grown) > 0.05 * grown:
            b.notes.append(f"the 5% grow flushed {grown / MIB:.1f} MiB of new SSTables; by the third backup "
                           f"{new_bytes / MIB:.1f} MiB of live SSTables were new (compaction in between)")
        fx3 = fx1 if args.smoke or args.skip_fluxer else b.fluxer_backup("Fluxer after 5%", key_pub)
        if peer:
            for prof in ("tuned", "default"):
                b.medusa(peer, setups[prof], f"Medusa {prof} after 5%", peer.backup_args("m3", "differential"),
                         bucket=f"bench-medusa-{prof}")
        _, put_bytes = b.limits(key_pub)
        b.restore_cassette(repo, key_file)
        if dir_repo:
            # The local directory's full backup was taken before the 5% grow: round 0 only.
            b.restore_cassette(dir_repo, key_file, "cassette restore (import), local directory", "d1", rounds=0,
                               deep_verify=False)
            shutil.rmtree(dir_repo, ignore_errors=True)
        if args.profile:
            b.profile(key_pub, key_file)
        if fx3:
            b.fluxer_restore(fx3, key_file)
        if peer:
            for prof in ("tuned", "default"):
                b.evict()
                b.medusa(peer, setups[prof], f"Medusa {prof} restore", peer.restore_args(setups[prof], "m3"))
                b.check_rows(f"127.0.0.{b.node}", f"Medusa {prof} restore")
        del fx1
        if args.smoke:  # unflushed tiny data: keep the arithmetic defined, the figures mean nothing
            data_bytes, new_bytes = max(data_bytes, 1), max(new_bytes, 1)
        text = report(b, data_bytes, new_bytes, put_bytes)
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        b.stop() if not args.keep else None
        return 1
    finally:
        if args.smoke:
            run([VENV / "bin" / "python", ROOT / "tests/integration/dataset.py", "--prefix", "bsmoke", "drop"],
                check=False, capture_output=True)
            for bucket in b.buckets():
                shutil.rmtree(b.s3_dir / "root" / bucket, ignore_errors=True)
            shutil.rmtree(b.work, ignore_errors=True)
    if not args.keep:
        b.stop()
        if not args.smoke:
            shutil.rmtree(b.work, ignore_errors=True)
    elapsed = time.monotonic() - t_start
    print(text)
    if not args.smoke and not args.no_append:
        rev = run(["git", "-C", CASSETTE.parent.parent, "describe", "--always", "--dirty"],
                  capture_output=True).stdout.strip()
        stamp = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC")
        with open(ROOT / "bench" / "RESULTS.md", "a") as f:
            f.write(f"\n## {stamp} — bench/run, cassette {rev}\n\n- machine: {machine_line()}\n"
                    f"- the whole run took {elapsed / 60:.1f} min\n\n{text}")
        say("appended to bench/RESULTS.md")
    say(f"done in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    sys.exit(main())

#!/usr/bin/env python3
"""Cassandra Medusa (the ``cassandra-medusa`` package) for the benchmark: installing it, the
files it needs for one test node, and the command lines of its backups and restores.

The benchmark orchestrator imports this module; the command line is for trying it by hand.
Only the standard library is used here (Medusa itself runs from its own venv).

API
---
- ``MEDUSA_VERSION``; ``install(cache_dir=None) -> str``: makes sure
  ``<cache_dir>/medusa-venv`` holds exactly that version (a venv and a pip install when it does
  not; a directory lookup when it does) and returns the path of its ``medusa`` executable.
  ``cache_dir`` defaults to ``$CASSETTE_CACHE`` or ``~/.cache/cassette``.
- ``MedusaSetup(work_dir, node_base, node, s3_port, bucket, ...)``: everything Medusa needs for
  node N of a ``tests/env/cassandra.sh --base NODE_BASE`` directory and one S3 bucket;
  ``.write()`` (re)writes under ``work_dir``: ``medusa.ini``, ``credentials`` (AWS shared
  credentials file, the ini's ``key_file``), ``aws-config`` (empty, so no ~/.aws is read),
  ``bin/nodetool`` (execs tests/env/nodetool.sh -h 127.0.0.1 -p 7N00), ``tmp/`` (TMPDIR),
  ``restore-tmp/`` (restore-node's --temp-dir) and ``setup.json`` (``MedusaSetup.load(work_dir)``
  reads it back). ``profile`` is "default" or "tuned", see ``PROFILES``; ``overrides`` replaces
  single ini settings, e.g. ``{"storage": {"concurrent_transfers": "8"}}``.
- ``argv_env(setup, *medusa_args) -> (argv, env)``: the command line and the whole environment
  of one Medusa command (run it with ``cwd=setup.work_dir``; the caller times it).
- ``run(setup, *medusa_args, check=True, capture=True) -> Result`` (argv, returncode, seconds,
  output): runs one command and times it (wall seconds).
- ``backup(setup, name, mode="full"|"differential")``, ``restore(setup, name)`` (restore-node in
  place: download, stop_cmd, data swapped, start_cmd), ``list_backups(setup)`` (list of dicts,
  Medusa's JSON), ``status(setup, name)`` (dict: size = bytes that backup's manifest refers to),
  ``stored_bytes(setup) -> (bytes, objects)``: what the bucket holds under the setup's prefix
  (listed with boto3 from Medusa's venv), ``clear_bucket_prefix(setup)``.

Command line: ``python bench/medusa.py install [--cache DIR]``;
``python bench/medusa.py config --work DIR --node-base B --node N --s3-port P --bucket NAME
[--prefix P] [--profile default|tuned] [--set section.key=value ...]`` (writes the work dir and
prints the ini); then ``backup --work DIR NAME [--mode full|differential]``,
``restore --work DIR NAME``, ``list --work DIR``, ``stored --work DIR``,
``medusa --work DIR -- ARGS...`` (any Medusa command).

Things the orchestrator must know (Medusa 0.31.0 as read from its source and seen running):
- backup-node renices itself to nice 19 and ionice class idle (``throttle_backup``, not
  configurable) and its nodetool children inherit that: on a loaded machine it is starved.
- Medusa runs under gevent's monkey.patch_all: its "threads" are greenlets of one OS thread,
  so concurrent_transfers overlaps network waits but never uses a second CPU.
- concurrent_transfers applies per table (uploads: a semaphore over one table's files;
  downloads: synchronous groups of that many files); tables go one after another.
- transfer_max_bandwidth (default 50MB/s = 50 MiB/s) is boto3's max_bandwidth, which s3transfer
  applies per upload_file/download_file call, that is per file, uploads and downloads.
- Objects: ``<prefix>/<fqdn>/<name>/meta/{schema.cql,manifest.json,tokenmap.json,
  server_version.json,differential}``, ``<prefix>/index/...`` and the SSTable components under
  ``<prefix>/<fqdn>/data/<ks>/<table-id>/`` (differential: shared by all differential backups)
  or ``<prefix>/<fqdn>/<name>/data/...`` (full: one complete copy per backup). The two never
  share files: the first differential backup after full ones uploads everything again; only
  differential after differential skips what is stored (same name and size). fqdn is
  127.0.0.N here (resolve_ip_addresses = False, so the tokenmap is keyed by the address and
  restore finds the node's tokens under the same name).
- A failed ``nodetool snapshot`` is only logged: Medusa then stores an empty backup and exits 0
  (``backup()`` raises on it).
- Backups snapshot every keyspace but system_traces (system ones included), with
  ``nodetool snapshot -t medusa-<name>`` and clear it afterwards; Medusa supports one data
  directory only.
- restore-node --in-place downloads the whole backup into ``<work>/restore-tmp/medusa-restore-
  <uuid>`` (needs that much free space; keep it on the data directory's filesystem so the
  final ``mv`` is a rename), then runs stop_cmd (cassandra.sh stop N), waits for ports 9042
  and 7000 of 127.0.0.N to close, empties the commitlog directory, replaces every backed-up
  table directory (``rm -rf`` + ``mv``; system keyspaces too, tables not in the backup are left
  alone), runs start_cmd (cassandra.sh start N, which returns once CQL is served) and removes
  the download. The restarted Cassandra is a child of Medusa's process (setsid), with Medusa's
  environment. Hints and saved caches are left as they were. Seen here: stop ~5 s, start
  6-15 s (2 CPUs, other work running), whatever the data size.
"""

import argparse
import configparser
import dataclasses
import io
import json
import os
import pathlib
import shlex
import subprocess
import sys
import time

MEDUSA_VERSION = "0.31.0"
MEDUSA_PACKAGE = "cassandra-medusa"

ROOT = pathlib.Path(__file__).resolve().parent.parent
ENV_DIR = ROOT / "tests" / "env"
CASSANDRA_SH = ENV_DIR / "cassandra.sh"
NODETOOL_SH = ENV_DIR / "nodetool.sh"

# tests/env/s3.sh's fixed test account.
S3_ACCESS_KEY = "cassette-test"
S3_SECRET_KEY = "cassette-test-secret-key-0123456789abcdef"
S3_REGION = "us-east-1"

# What Medusa logs when `nodetool snapshot` fails (it then uploads an empty backup, exit 0).
SNAPSHOT_FAILED = "Creating snapshot failed"

# Medusa 0.31.0's own defaults for what the profiles set (medusa/config.py,
# _build_default_config; medusa/storage/s3_base_storage.py). "default" writes them out
# explicitly, so the ini says what ran.
MEDUSA_DEFAULTS = {
    "storage": {
        "concurrent_transfers": "1",           # files of one table in flight
        "transfer_max_bandwidth": "50MB/s",    # per file (boto3 max_bandwidth), up and down
        "multi_part_upload_threshold": "20MB",
        "multipart_chunksize": "50MB",
        "multipart_max_concurrency": "4",      # boto3 threads per multipart file
        "read_timeout": "",                    # not set: botocore's 60 s
    },
    "checks": {
        "enable_md5_checks": "False",          # differential: compare sizes only
        "md5_check_concurrency": "1",
    },
}

PROFILES = {
    "default": MEDUSA_DEFAULTS,
    # The fastest found on the benchmark machine (2 CPUs, versitygw on loopback, a node of
    # ~210 MiB: system tables, 3 small tables and one of 64 KiB blobs in ~64 MiB SSTables) without
    # changing what is stored: concurrent_transfers 16 beat 8, 4 and 1 (full backup + download,
    # alternating runs; 16 vs 8 head to head: backup 8.3 vs 10.4 s, download 5.2 vs 11.4 s,
    # medians of 4, on a machine loaded by other work) and no bandwidth cap. Multipart
    # settings (threshold 1GB, or 10 threads per file) made no difference that showed, so
    # they stay Medusa's.
    "tuned": {
        "storage": {
            "concurrent_transfers": "16",
            "transfer_max_bandwidth": "",       # empty: no max_bandwidth at all
            "multi_part_upload_threshold": "20MB",
            "multipart_chunksize": "50MB",
            "multipart_max_concurrency": "4",
            "read_timeout": "",
        },
        "checks": {
            "enable_md5_checks": "False",
            "md5_check_concurrency": "1",
        },
    },
}


def default_cache_dir():
    return pathlib.Path(os.environ.get("CASSETTE_CACHE") or pathlib.Path.home() / ".cache" / "cassette")


def _venv_medusa_version(venv):
    """The cassandra-medusa version installed in venv (from its dist-info), or None."""
    found = None
    for sp in venv.glob("lib/python3*/site-packages"):
        for d in sp.glob("cassandra_medusa-*.dist-info"):
            found = d.name[len("cassandra_medusa-"):-len(".dist-info")]
    return found


def install(cache_dir=None):
    """Makes sure <cache_dir>/medusa-venv has cassandra-medusa MEDUSA_VERSION; returns the path
    of its medusa executable. Quick (a directory listing) when it is there already."""
    venv = pathlib.Path(cache_dir or default_cache_dir()) / "medusa-venv"
    exe = venv / "bin" / "medusa"
    if exe.is_file() and os.access(exe, os.X_OK) and _venv_medusa_version(venv) == MEDUSA_VERSION:
        return str(exe)
    venv.parent.mkdir(parents=True, exist_ok=True)
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable if sys.executable else "python3", "-m", "venv", str(venv)],
                       check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", f"{MEDUSA_PACKAGE}=={MEDUSA_VERSION}"],
                   check=True)
    got = _venv_medusa_version(venv)
    if got != MEDUSA_VERSION or not exe.is_file():
        raise RuntimeError(f"{venv}: {MEDUSA_PACKAGE} is {got}, wanted {MEDUSA_VERSION}")
    return str(exe)


@dataclasses.dataclass
class MedusaSetup:
    """Medusa's configuration for node `node` of a cassandra.sh base and one S3 bucket."""
    work_dir: str
    node_base: str
    node: int
    s3_port: int
    bucket: str
    prefix: str = ""
    s3_host: str = "127.0.0.1"
    access_key: str = S3_ACCESS_KEY
    secret_key: str = S3_SECRET_KEY
    region: str = S3_REGION
    profile: str = "default"
    overrides: dict = dataclasses.field(default_factory=dict)
    cassandra_sh_nodes: int = 0        # cassandra.sh --nodes K (0: its default)
    medusa: str = ""                   # medusa executable (default: install())

    def __post_init__(self):
        self.work_dir = str(pathlib.Path(self.work_dir).resolve())
        self.node_base = str(pathlib.Path(self.node_base).resolve())
        self.node = int(self.node)
        self.s3_port = int(self.s3_port)
        if not 1 <= self.node <= 9:
            raise ValueError(f"node must be 1..9, got {self.node}")
        if self.profile not in PROFILES:
            raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {self.profile!r}")
        if "/" in self.prefix or "/" in self.bucket:
            raise ValueError("Medusa refuses a bucket name or prefix with a slash")
        if not self.medusa:
            self.medusa = install()

    # ---- derived paths and addresses -------------------------------------------------------
    @property
    def work(self):
        return pathlib.Path(self.work_dir)

    @property
    def node_dir(self):
        return pathlib.Path(self.node_base) / f"node{self.node}"

    @property
    def cassandra_yaml(self):
        return self.node_dir / "conf" / "cassandra.yaml"

    @property
    def data_dir(self):
        return self.node_dir / "data"

    @property
    def cql_host(self):
        return f"127.0.0.{self.node}"

    @property
    def jmx_port(self):
        return 7000 + 100 * self.node

    @property
    def fqdn(self):
        return self.cql_host

    @property
    def ini(self):
        return self.work / "medusa.ini"

    @property
    def credentials(self):
        return self.work / "credentials"

    @property
    def aws_config(self):
        return self.work / "aws-config"

    @property
    def bin_dir(self):
        return self.work / "bin"

    @property
    def tmp_dir(self):
        return self.work / "tmp"

    @property
    def restore_tmp(self):
        return self.work / "restore-tmp"

    @property
    def venv(self):
        return pathlib.Path(self.medusa).resolve().parent.parent

    @property
    def endpoint(self):
        return f"http://{self.s3_host}:{self.s3_port}"

    @property
    def object_prefix(self):
        """Where Medusa's objects start in the bucket ("" or "prefix/")."""
        return f"{self.prefix}/" if self.prefix else ""

    def cassandra_cmd(self, action):
        argv = [str(CASSANDRA_SH), "--base", self.node_base]
        if self.cassandra_sh_nodes:
            argv += ["--nodes", str(self.cassandra_sh_nodes)]
        return shlex.join(argv + [action, str(self.node)])

    def settings(self):
        """The ini as {section: {key: value}}."""
        prof = PROFILES[self.profile]
        nodetool = str(self.bin_dir / "nodetool")
        s = {
            "cassandra": {
                "config_file": str(self.cassandra_yaml),
                "stop_cmd": self.cassandra_cmd("stop"),
                "start_cmd": self.cassandra_cmd("start"),
                "check_running": f"{nodetool} version",
                "nodetool_executable": nodetool,
                # default -Dcom.sun.jndi.rmiURLParsing=legacy would reach NodeTool as an argument
                "nodetool_flags": "",
                "use_sudo": "False",
                "resolve_ip_addresses": "False",
                "is_ccm": "0",
            },
            "storage": {
                "storage_provider": "s3_compatible",
                "bucket_name": self.bucket,
                "key_file": str(self.credentials),
                "fqdn": self.fqdn,
                "host": self.s3_host,
                "port": str(self.s3_port),
                "secure": "False",
                "ssl_verify": "False",
                "region": self.region,
                "s3_addressing_style": "path",
                "use_sudo_for_restore": "False",
                "max_backup_age": "0",
                "max_backup_count": "0",
                **prof["storage"],
            },
            "checks": {"health_check": "cql", **prof["checks"]},
            "monitoring": {"monitoring_provider": "None"},
            "logging": {"enabled": "False"},
            "grpc": {"enabled": "False"},
            "kubernetes": {"enabled": "False"},
        }
        if self.prefix:
            s["storage"]["prefix"] = self.prefix
        for section, kv in (self.overrides or {}).items():
            s.setdefault(section, {}).update({k: str(v) for k, v in kv.items()})
        return s

    def ini_text(self):
        cp = configparser.ConfigParser(interpolation=None)
        cp.optionxform = str
        cp.read_dict(self.settings())
        buf = io.StringIO()
        buf.write(f"; Written by bench/medusa.py for node {self.node} of {self.node_base}, "
                  f"profile {self.profile}.\n")
        cp.write(buf)
        return buf.getvalue()

    def write(self):
        """(Re)writes every file Medusa needs under work_dir; returns self."""
        for d in (self.work, self.bin_dir, self.tmp_dir, self.restore_tmp):
            d.mkdir(parents=True, exist_ok=True)
        _write(self.ini, self.ini_text())
        _write(self.credentials, "[default]\n"
                                 f"aws_access_key_id = {self.access_key}\n"
                                 f"aws_secret_access_key = {self.secret_key}\n", mode=0o600)
        _write(self.aws_config, f"[default]\nregion = {self.region}\n")
        _write(self.bin_dir / "nodetool",
               "#!/bin/sh\n# Written by bench/medusa.py: nodetool of node "
               f"{self.node} ({self.node_base}).\n"
               f"exec {shlex.quote(str(NODETOOL_SH))} -h 127.0.0.1 -p {self.jmx_port} \"$@\"\n",
               mode=0o755)
        _write(self.work / "setup.json", json.dumps(dataclasses.asdict(self), indent=2) + "\n")
        return self

    @classmethod
    def load(cls, work_dir):
        with open(pathlib.Path(work_dir) / "setup.json") as f:
            return cls(**json.load(f))


def _write(path, text, mode=0o644):
    tmp = pathlib.Path(f"{path}.tmp")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def argv_env(setup, *medusa_args):
    """(argv, env) of `medusa --config-file <ini> ARGS...` for this setup. env is complete (not
    an update): no AWS_* of the caller, the credentials file, TMPDIR in the work dir, and the
    nodetool wrapper first on PATH."""
    argv = [setup.medusa, "--config-file", str(setup.ini), *map(str, medusa_args)]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "BOTO_", "MEDUSA_", "PYTHON", "VIRTUAL_ENV"))}
    env.update({
        "PATH": os.pathsep.join([str(setup.bin_dir), str(setup.venv / "bin"),
                                 os.environ.get("PATH", "/usr/bin:/bin")]),
        "TMPDIR": str(setup.tmp_dir),
        "AWS_SHARED_CREDENTIALS_FILE": str(setup.credentials),
        "AWS_CONFIG_FILE": str(setup.aws_config),
        "AWS_EC2_METADATA_DISABLED": "true",
        # Medusa's S3 client sets these itself (when_required); said again for boto3 calls
        # that do not go through its client config.
        "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
        "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
        "PYTHONUNBUFFERED": "1",
    })
    return argv, env


@dataclasses.dataclass
class Result:
    argv: list
    returncode: int
    seconds: float
    output: str


def run(setup, *medusa_args, check=True, capture=True, timeout=None):
    """Runs one Medusa command in the work dir; Result with its wall seconds. With capture,
    stdout and stderr are kept together in .output (else they go to ours)."""
    argv, env = argv_env(setup, *medusa_args)
    t0 = time.monotonic()
    p = subprocess.run(argv, env=env, cwd=setup.work_dir, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE if capture else None,
                       stderr=subprocess.STDOUT if capture else None,
                       text=True, timeout=timeout)
    r = Result(argv, p.returncode, time.monotonic() - t0, p.stdout or "")
    if check and p.returncode != 0:
        raise RuntimeError(f"medusa {' '.join(map(str, medusa_args))} failed (exit {p.returncode})"
                           f" after {r.seconds:.1f} s:\n{_tail(r.output)}")
    return r


def _tail(text, lines=40):
    return "\n".join(text.splitlines()[-lines:])


def backup_args(name, mode="full"):
    if mode not in ("full", "differential"):
        raise ValueError(f"mode must be full or differential, got {mode!r}")
    return ["backup-node", "--backup-name", name, "--mode", mode]


def restore_args(setup, name):
    # --in-place (the default, said anyway): the node the backup came from; no --seeds: a lone
    # node waits for nobody; --temp-dir next to the data so the final mv is a rename.
    return ["restore-node", "--backup-name", name, "--in-place", "--temp-dir", str(setup.restore_tmp)]


def backup(setup, name, mode="full", **kw):
    """backup-node. Medusa logs a failed `nodetool snapshot` and goes on to store an empty
    backup with exit status 0; with capture (the default) and check, that raises here."""
    r = run(setup, *backup_args(name, mode), **kw)
    if kw.get("check", True) and kw.get("capture", True) and SNAPSHOT_FAILED in r.output:
        raise RuntimeError(f"medusa backup-node {name}: nodetool snapshot failed (Medusa exited "
                           f"{r.returncode} anyway):\n{_tail(r.output)}")
    return r


def restore(setup, name, **kw):
    return run(setup, *restore_args(setup, name), **kw)


def list_backups(setup):
    """Medusa's list-backups --output json: a list of dicts (name, started, finished, nodes
    with size and num_objects, ...)."""
    r = run(setup, "list-backups", "--output", "json")
    return json.loads(_json_line(r.output))


def status(setup, name):
    """Medusa's status --output json for one backup (size: bytes of the files its manifest
    lists, shared ones included)."""
    r = run(setup, "status", "--backup-name", name, "--output", "json")
    return json.loads(_json_line(r.output))


def _json_line(output):
    for line in reversed(output.splitlines()):
        line = line.strip()
        if line.startswith(("[", "{")):
            return line
    raise RuntimeError(f"no JSON in Medusa's output:\n{_tail(output)}")


_S3_SCRIPT = r"""
import json, sys, boto3
from botocore.config import Config
a = json.loads(sys.argv[1])
c = boto3.client("s3", endpoint_url=a["endpoint"], region_name=a["region"],
                 aws_access_key_id=a["key"], aws_secret_access_key=a["secret"],
                 config=Config(s3={"addressing_style": "path"},
                               request_checksum_calculation="when_required",
                               response_checksum_validation="when_required"))
n = size = 0
keys = []
for page in c.get_paginator("list_objects_v2").paginate(Bucket=a["bucket"], Prefix=a["prefix"]):
    for o in page.get("Contents", []):
        n += 1
        size += o["Size"]
        keys.append(o["Key"])
if a["delete"]:
    for i in range(0, len(keys), 1000):
        c.delete_objects(Bucket=a["bucket"],
                         Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]], "Quiet": True})
print(json.dumps({"bytes": size, "objects": n}))
"""


def _s3_call(setup, delete):
    args = {"endpoint": setup.endpoint, "region": setup.region, "key": setup.access_key,
            "secret": setup.secret_key, "bucket": setup.bucket, "prefix": setup.object_prefix,
            "delete": delete}
    _, env = argv_env(setup)
    p = subprocess.run([str(setup.venv / "bin" / "python"), "-c", _S3_SCRIPT, json.dumps(args)],
                       env=env, capture_output=True, text=True, check=True)
    d = json.loads(p.stdout)
    return d["bytes"], d["objects"]


def stored_bytes(setup):
    """(bytes, objects) in the bucket under the setup's prefix (everything Medusa wrote there:
    data, metadata, index), as S3 lists them."""
    return _s3_call(setup, delete=False)


def clear_bucket_prefix(setup):
    """Deletes every object under the setup's prefix (the whole bucket without a prefix);
    returns what was there as (bytes, objects)."""
    return _s3_call(setup, delete=True)


# ---- command line ------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(prog="bench/medusa.py", description="Cassandra Medusa "
                                 f"{MEDUSA_VERSION} for the benchmark (see the module docstring).")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("install", help="make sure Medusa's venv is there; print medusa's path")
    p.add_argument("--cache", default=None)
    p = sub.add_parser("config", help="write the work dir of one node; print the ini")
    p.add_argument("--work", required=True)
    p.add_argument("--node-base", required=True)
    p.add_argument("--node", type=int, required=True)
    p.add_argument("--nodes", type=int, default=0, help="cassandra.sh --nodes")
    p.add_argument("--s3-host", default="127.0.0.1")
    p.add_argument("--s3-port", type=int, required=True)
    p.add_argument("--bucket", required=True)
    p.add_argument("--prefix", default="")
    p.add_argument("--profile", choices=sorted(PROFILES), default="default")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    for name, hlp in (("backup", "backup-node"), ("restore", "restore-node in place"),
                      ("list", "list-backups"), ("stored", "bytes and objects under the prefix"),
                      ("status", "status of one backup"), ("medusa", "any medusa command")):
        p = sub.add_parser(name, help=hlp)
        p.add_argument("--work", required=True)
        if name in ("backup", "restore", "status"):
            p.add_argument("name")
        if name == "backup":
            p.add_argument("--mode", choices=["full", "differential"], default="full")
        if name == "medusa":
            p.add_argument("args", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv)

    if a.cmd == "install":
        print(install(a.cache))
        return 0
    if a.cmd == "config":
        overrides = {}
        for item in a.set:
            key, _, value = item.partition("=")
            section, _, k = key.partition(".")
            if not k:
                ap.error(f"--set wants SECTION.KEY=VALUE, got {item!r}")
            overrides.setdefault(section, {})[k] = value
        s = MedusaSetup(a.work, a.node_base, a.node, a.s3_port, a.bucket, prefix=a.prefix,
                        s3_host=a.s3_host, profile=a.profile, overrides=overrides,
                        cassandra_sh_nodes=a.nodes).write()
        sys.stdout.write(s.ini_text())
        print(f"; work dir {s.work_dir}; medusa {s.medusa}", file=sys.stderr)
        return 0
    s = MedusaSetup.load(a.work)
    if a.cmd == "backup":
        r = backup(s, a.name, a.mode, check=False, capture=False)
    elif a.cmd == "restore":
        r = restore(s, a.name, check=False, capture=False)
    elif a.cmd == "list":
        print(json.dumps(list_backups(s), indent=2))
        return 0
    elif a.cmd == "status":
        print(json.dumps(status(s, a.name), indent=2))
        return 0
    elif a.cmd == "stored":
        b, n = stored_bytes(s)
        print(f"{b} bytes in {n} objects under s3://{s.bucket}/{s.object_prefix}")
        return 0
    else:
        args = a.args[1:] if a.args[:1] == ["--"] else a.args
        r = run(s, *args, check=False, capture=False)
    print(f"medusa exit {r.returncode} in {r.seconds:.1f} s", file=sys.stderr)
    return r.returncode


if __name__ == "__main__":
    sys.exit(main())

"""Exit codes, as README.md's table documents them: every documented bad-input case (CASES,
the one list of them) exits with its code, says so in one 'cassette: ' line on stderr and
leaves the repository exactly as it was; the codes README.md documents are exactly those of
`cassette --help` and of CASES."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import (ROOT, assert_one_error_line, assert_tree_unchanged, tree_state,
                      _base_env)
from dataset import Dataset

OK, FAILURE, USAGE, DAMAGED, LOCKED, NOKEY, STALE, INTERRUPTED = 0, 1, 2, 3, 4, 5, 6, 130

# (code, what it shows, arguments, a piece of the one stderr line). In the arguments, "{repo}"
# is an encrypted repository holding backup b1 (changed by nothing below), "{key}" its
# identity, "{other}" another identity, "{missing}" a path that does not exist.
CASES = [
    # 2: usage
    (USAGE, "unknown command", ["frobnicate"], "unknown command"),
    (USAGE, "unknown option", ["list", "--repo", "{repo}", "--no-such-option"], "unknown option"),
    (USAGE, "option the command does not take", ["list", "--repo", "{repo}", "--keyspace", "k"],
     "list does not take --keyspace"),
    (USAGE, "option without its value", ["list", "--repo"], "needs a value"),
    (USAGE, "list without --repo", ["list"], "list needs --repo"),
    (USAGE, "init without --repo", ["init"], "init needs --repo"),
    (USAGE, "init with --recipient and --no-encryption",
     ["init", "--repo", "{missing}", "--no-encryption", "--recipient",
      "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"], "contradict"),
    (USAGE, "init that chooses no encryption", ["init", "--repo", "{missing}"], "--no-encryption"),
    (USAGE, "backup --init that chooses no encryption",
     ["backup", "--repo", "{missing}", "--init"], "--no-encryption"),
    (USAGE, "backup --jobs 0", ["backup", "--repo", "{repo}", "--jobs", "0"], "--jobs"),
    (USAGE, "restore --jobs 65", ["restore", "--repo", "{repo}", "--backup", "b1", "--jobs", "65"],
     "--jobs"),
    (USAGE, "verify --jobs 0", ["verify", "--repo", "{repo}", "--jobs", "0"], "--jobs"),
    (USAGE, "backup --zstd-level 20", ["backup", "--repo", "{repo}", "--zstd-level", "20"],
     "zstd level"),
    (USAGE, "backup --name with a space", ["backup", "--repo", "{repo}", "--name", "a b"],
     "invalid backup name"),
    (USAGE, "backup --keyspace that is no name", ["backup", "--repo", "{repo}", "--keyspace", "k!"],
     "invalid keyspace name"),
    (USAGE, "delete without --backup", ["delete", "--repo", "{repo}"], "delete needs --backup"),
    (USAGE, "delete --backup with a slash", ["delete", "--repo", "{repo}", "--backup", "../b1"],
     "invalid backup name"),
    (USAGE, "cleanup without --aside", ["cleanup"], "cleanup needs --aside"),
    (USAGE, "restore without --backup", ["restore", "--repo", "{repo}"], "restore needs --backup"),
    (USAGE, "restore --mode sideways",
     ["restore", "--repo", "{repo}", "--backup", "b1", "--mode", "sideways"], "--mode"),
    (USAGE, "verify --sample without --deep", ["verify", "--repo", "{repo}", "--sample", "10"],
     "--sample needs --deep"),
    (USAGE, "verify --sample 0", ["verify", "--repo", "{repo}", "--deep", "--sample", "0"],
     "--sample"),
    (USAGE, "purge --keep-last -1", ["purge", "--repo", "{repo}", "--keep-last", "-1"], "keep-last"),
    (USAGE, "purge --grace soon", ["purge", "--repo", "{repo}", "--grace", "soon"], "grace"),
    (USAGE, "status --max-age soon", ["status", "--repo", "{repo}", "--max-age", "soon"],
     "max-age"),
    (USAGE, "--lock-stale 1s", ["backup", "--repo", "{repo}", "--lock-stale", "1s"],
     "--lock-stale"),
    (USAGE, "--cql-port 0", ["backup", "--repo", "{repo}", "--cql-port", "0"], "port"),
    (USAGE, "-q with -v", ["list", "--repo", "{repo}", "-q", "-v"], "--quiet and --verbose"),
    (USAGE, "migrate without --dir", ["migrate", "--keyspace", "k"], "migrate needs --dir"),
    (USAGE, "key without a sub-command", ["key"], "usage: cassette key"),
    (USAGE, "catalog frobnicate", ["catalog", "frobnicate", "--repo", "{repo}"],
     "catalog rebuild"),
    (USAGE, "help of no command", ["help", "frobnicate"], "unknown command"),
    (USAGE, "--config of a missing file", ["--config", "{missing}", "list", "--repo", "{repo}"],
     "config file"),
    (USAGE, "backup --keyspace the node does not have",
     ["backup", "--repo", "{repo}", "--keyspace", "no_such_keyspace_ec"], "does not exist"),
    (USAGE, "schema dump --keyspace the node does not have",
     ["schema", "dump", "--keyspace", "no_such_keyspace_ec"], "does not exist"),
    # 1: failure
    (FAILURE, "restore of a backup that does not exist",
     ["restore", "--repo", "{repo}", "--backup", "no-such-backup", "--identity", "{key}"],
     "no-such-backup"),
    (FAILURE, "--repo that is not a repository", ["list", "--repo", "{missing}"], "{missing}"),
    (FAILURE, "backup into a location that is no repository",
     ["backup", "--repo", "{missing}"], "cassette init"),
    # 5: no key
    (NOKEY, "restore of an encrypted repository without --identity",
     ["restore", "--repo", "{repo}", "--backup", "b1"], "--identity"),
    (NOKEY, "restore with an identity it is not encrypted to",
     ["restore", "--repo", "{repo}", "--backup", "b1", "--identity", "{other}"],
     "no identity matches"),
    # 3, 4, 6 and 130 need a changed repository or time: see the tests below, named by code.
]
OTHER_CODES = {DAMAGED: "test_damage_found_is_3", LOCKED: "test_locked_is_4",
               STALE: "test_status_max_age_is_6", INTERRUPTED: "test_sigint_is_130"}


def _readme_codes():
    """{code: meaning} from README.md's table under '## Exit codes and conventions'."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Exit codes and conventions", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\|\s*(\d+)\s*\|\s*([^|]*?)\s*\|", section, re.M)
    assert rows, "no exit code table in README.md"
    return {int(code): meaning for code, meaning in rows}


def _run(cassette_bin, node, state_dir, *args, config=True, env=None):
    cmd = [str(cassette_bin)] + (["--config", str(node.ini)] if config else [])
    e = _base_env(state_dir)
    e.update(env or {})
    p = subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, env=e,
                       timeout=600, stdin=subprocess.DEVNULL)
    return p


@pytest.fixture(scope="module")
def base(cassette_bin, node, cluster_session, tmp_path_factory):
    """{repo, key, other, ds}: an encrypted repository (made with init) holding backup b1 of
    a small keyspace, made once for the module; tests that change a repository copy it."""
    d = tmp_path_factory.mktemp("exit_codes")
    state = d / "state"
    key, other, repo = d / "key.txt", d / "other.txt", d / "repo"

    def run(*args):
        p = _run(cassette_bin, node, state, *args)
        assert p.returncode == 0, f"cassette {args}: exit {p.returncode}\n{p.stderr}"
        return p.stdout.strip()

    run("key", "generate", "-o", key)
    run("key", "generate", "-o", other)
    run("init", "--repo", repo, "--recipient", run("key", "public", key))
    session = cluster_session[1]
    ds = Dataset("ec", seed=17, scale=0.005, compaction=False)
    ds.drop(session)
    ds.load(session)
    run("backup", "--repo", repo, "--name", "b1", "--keyspace", ds.main)
    yield {"repo": repo, "key": key, "other": other, "ds": ds, "dir": d}
    ds.drop(session)


def _fill(args, base, tmp_path):
    subs = {"{repo}": str(base["repo"]), "{key}": str(base["key"]),
            "{other}": str(base["other"]), "{missing}": str(tmp_path / "missing")}
    out = []
    for a in args:
        for k, v in subs.items():
            a = a.replace(k, v)
        out.append(a)
    return out


def test_readme_table_matches_help_and_cases(cassette):
    documented = _readme_codes()
    res = cassette("--help").ok()
    in_help = {int(c) for c in re.findall(r"^\s+(\d+)\s\s", res.out.split("exit codes:", 1)[1], re.M)}
    assert set(documented) == in_help, (documented, in_help)
    tested = {code for code, *_ in CASES} | set(OTHER_CODES)
    assert set(documented) - {OK} == tested, (
        f"documented {sorted(documented)}, tested {sorted(tested)}: every documented code needs"
        " a case here, every case a row in README.md")
    assert all(name in globals() for name in OTHER_CODES.values())


@pytest.mark.parametrize("code, what, args, says", CASES, ids=[c[1] for c in CASES])
def test_bad_input(cassette, node, base, tmp_path, code, what, args, says):
    marker = tmp_path / "nodetool-ran"
    nodetool = tmp_path / "nodetool.sh"  # never runs for a bad input: it would leave a mark
    nodetool.write_text(f"#!/bin/sh\ntouch '{marker}'\nexit 1\n")
    nodetool.chmod(0o755)
    args = _fill(args, base, tmp_path)
    if args[0] == "backup":
        args += ["--nodetool", str(nodetool)]
    before = tree_state(base["repo"])
    res = cassette(*args)
    assert_one_error_line(res)
    assert res.rc == code, f"{what}: expected exit {code}\n{res.describe()}"
    assert _fill([says], base, tmp_path)[0] in res.err, f"{says!r} not in stderr\n{res.describe()}"
    assert not marker.exists(), f"{what}: nodetool ran\n{res.describe()}"
    assert_tree_unchanged(before, tree_state(base["repo"]), str(base["repo"]))


def _copy(base, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(base["repo"], repo)
    return repo


def _objects(repo):
    return sorted(os.path.join(r, f) for r, _d, fs in os.walk(repo / "objects") for f in fs)


def test_damage_found_is_3(cassette, base, tmp_path):
    repo = _copy(base, tmp_path)
    key = base["key"]
    cassette("verify", "--repo", repo, "--deep", "--identity", key).ok()
    objects = _objects(repo)
    flipped, missing = max(objects, key=os.path.getsize), min(objects, key=os.path.getsize)
    os.chmod(flipped, 0o644)
    with open(flipped, "r+b") as f:
        f.seek(os.path.getsize(flipped) // 2)
        b = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([b[0] ^ 0x01]))
    res = cassette("verify", "--repo", repo, "--deep", "--identity", key)
    assert res.rc == DAMAGED, res.describe()
    assert os.path.basename(flipped) in res.err and "damaged" in res.err, res.describe()
    os.unlink(missing)
    res = cassette("verify", "--repo", repo, "--identity", key)  # the fast one
    assert res.rc == DAMAGED, res.describe()
    assert os.path.basename(missing) in res.err, res.describe()


def _hand_lock(repo, kind, pid, purpose):
    now = time.time()
    body = {"kind": kind, "host": socket.gethostname(), "pid": pid, "created": now,
            "refreshed": now, "purpose": purpose}
    (repo / "locks").mkdir(exist_ok=True)
    path = repo / "locks" / f"{os.urandom(16).hex()}.lock"
    path.write_text(json.dumps(body))
    return path


def test_locked_is_4(cassette, base, tmp_path):
    repo = _copy(base, tmp_path)
    _hand_lock(repo, "exclusive", os.getpid(), "test_exit_codes holder")
    before = tree_state(repo)
    for args in (["verify", "--repo", repo, "--identity", base["key"]],
                 ["backup", "--repo", repo, "--keyspace", base["ds"].main, "--name", "b2"]):
        res = cassette(*args, "--lock-wait", "0")
        assert_one_error_line(res)
        assert res.rc == LOCKED, res.describe()
        assert "repository is locked by test_exit_codes holder" in res.err, res.describe()
    res = cassette("purge", "--repo", repo, "--identity", base["key"], "--lock-wait", "1s")
    assert res.rc == LOCKED and "after waiting" in res.err, res.describe()
    assert_tree_unchanged(before, tree_state(repo), str(repo))


def _newest_age(cassette, repo):
    nodes = cassette("status", "--repo", repo, "--json").ok().json()["nodes"]
    return min(n["newest_age_seconds"] for n in nodes)


def test_status_max_age_is_6(cassette, base, node, tmp_path):
    repo = base["repo"]
    res = cassette("status", "--repo", repo, "--max-age", "1h").ok()
    assert re.search(r"newest b1 \S+ \(\d+[smh][0-9ms]* ago\)", res.out), res.describe()

    # Wait (on the clock, not a fixed sleep) until b1 is older than 1 s.
    deadline = time.monotonic() + 60
    while _newest_age(cassette, repo) < 2:
        assert time.monotonic() < deadline, "the backup's age does not grow"
        time.sleep(0.2)
    res = cassette("status", "--repo", repo, "--max-age", "1s")
    assert_one_error_line(res)
    assert res.rc == STALE, res.describe()
    assert f"node {node.addr}" in res.err and "b1" in res.err and "--max-age 1s" in res.err, \
        res.describe()
    assert "newest b1" in res.out, "status is still printed"
    assert cassette("status", "--repo", repo, "--json", "--max-age", "1s").rc == STALE

    empty = tmp_path / "empty"
    pub = cassette("key", "public", base["key"]).ok().out.strip()
    cassette("init", "--repo", empty, "--recipient", pub).ok()
    res = cassette("status", "--repo", empty, "--max-age", "1h")
    assert res.rc == STALE and "no complete backup" in res.err, res.describe()


def test_sigint_is_130(cassette, base, tmp_path, state_dir, node):
    """SIGINT while waiting for a lock: a shell sees 130 (a process killed by SIGINT, or one
    that exits 130 itself; Python reports the former as -2)."""
    repo = _copy(base, tmp_path)
    _hand_lock(repo, "exclusive", os.getpid(), "test_exit_codes holder")
    cmd = [str(cassette.bin), "--config", str(node.ini), "verify", "-v", "--repo", str(repo),
           "--identity", str(base["key"]), "--lock-wait", "10m"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=_base_env(state_dir), stdin=subprocess.DEVNULL)
    try:
        seen = []
        for line in p.stderr:  # until the process says it waits (or ends)
            seen.append(line)
            if "waiting for lock held by test_exit_codes holder" in line:
                break
        assert "waiting for lock" in seen[-1], seen
        p.send_signal(signal.SIGINT)
        rc = p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert rc in (INTERRUPTED, -signal.SIGINT), f"exit {rc}: {p.stderr.read()}"

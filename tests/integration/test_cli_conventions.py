"""Operator conventions of the command line: --version, help CMD, the default config files,
-q / -v / -vv, no escape codes, and the locks killed backups of this host leave behind."""

import json
import os
import re
import socket
import subprocess
import time

import pytest

from conftest import _base_env


def _run(cassette, *args, env=None, config=True):
    return cassette(*args, env=env, config=config)


def test_version(cassette):
    res = cassette("--version").ok()
    assert re.fullmatch(r"cassette \S+ \(git ([0-9a-f]{7,}(-dirty)?|unknown)\)\n", res.out), res.out
    assert cassette("backup", "--version").ok().out == res.out  # anywhere on the line


def test_help_of_a_command_lists_its_own_options_first(cassette):
    for args in (["help", "purge"], ["purge", "--help"]):
        res = cassette(*args).ok()
        out = res.out
        assert out.startswith("usage: cassette purge "), out
        own, shared, glob = (out.index("options of purge:"),
                             out.index("options it shares with other commands:"),
                             out.index("global options:"))
        assert own < out.index("--keep-last", own) < out.index("--grace", own) < shared, out
        assert shared < out.index("--s3-endpoint", own) < glob < out.index("--verbose", own), out
        assert "--keyspace" not in out  # purge does not take it
    assert cassette("help").ok().out == cassette("--help").ok().out


def test_default_config_files(cassette, node, repo, tmp_path):
    """Without --config or CASSETTE_CONFIG, ~/.config/cassette/cassette.ini (or under
    $XDG_CONFIG_HOME) is read: the node's settings from there reach it."""
    home = tmp_path / "home"
    cfg = home / ".config" / "cassette" / "cassette.ini"
    cfg.parent.mkdir(parents=True)
    cfg.write_text(node.ini.read_text() + f"\n[repository]\npath = {repo}\n")
    env = {"HOME": str(home), "XDG_CONFIG_HOME": ""}
    res = cassette("schema", "dump", env=env, config=False)
    assert res.rc == 0, res.describe()
    cfg.write_text(cfg.read_text() + "\n[cassandra]\nport = 1\n")  # host and port from the file
    res = cassette("schema", "dump", env=env, config=False)
    assert res.rc == 1 and f"{node.addr}:1" in res.err, res.describe()
    cfg.write_text(node.ini.read_text() + f"\n[repository]\npath = {repo}\n")
    # The repository came from the file too: init and list without --repo.
    pub = cassette("key", "generate", "-o", tmp_path / "key.txt").ok().out.strip()
    cassette("init", "--recipient", pub, env=env, config=False).ok()
    assert cassette("list", "--json", env=env, config=False).ok().json() == []
    # $XDG_CONFIG_HOME takes the place of ~/.config.
    xdg = tmp_path / "xdg"
    (xdg / "cassette").mkdir(parents=True)
    (xdg / "cassette" / "cassette.ini").write_text("[cassandra]\nprot = 1\n")
    res = cassette("list", env={"HOME": str(home), "XDG_CONFIG_HOME": str(xdg)}, config=False)
    assert res.rc == 2 and "cassette.ini:2: unknown setting [cassandra] prot" in res.err, \
        res.describe()
    # CASSETTE_CONFIG names another file: the default ones are not read.
    res = cassette("list", env={"HOME": str(home), "CASSETTE_CONFIG": str(node.ini)},
                   config=False)
    assert res.rc == 2 and "list needs --repo" in res.err, res.describe()


def _hand_lock(repo_dir, kind, pid, purpose, pidstart=None):
    now = time.time()
    body = {"kind": kind, "host": socket.gethostname(), "pid": pid, "created": now,
            "refreshed": now, "purpose": purpose}
    if pidstart is not None:
        body["pidstart"] = pidstart
    (repo_dir / "locks").mkdir(exist_ok=True)
    path = repo_dir / "locks" / f"{os.urandom(16).hex()}.lock"
    path.write_text(json.dumps(body))
    return path


def _dead_pid():
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_levels_and_lock_sweep(cassette, node, session, make_small_data, tmp_path):
    """A backup clears the locks killed backups of this host left (dead pid, or a pid that now
    runs another process), says so as a warning (-q: not), keeps a live holder's lock; -v
    logs progress, -vv debug detail; nothing on stdout or stderr has an escape code."""
    ds = make_small_data("cc", scale=0.005)
    repo = tmp_path / "repo"
    key = tmp_path / "key.txt"
    pub = cassette("key", "generate", "-o", key).ok().out.strip()
    cassette("init", "--repo", repo, "--recipient", pub).ok()

    dead = _hand_lock(repo, "shared", _dead_pid(), "backup killed-1 of here")
    reused = _hand_lock(repo, "shared", os.getppid(), "backup killed-2 of here", pidstart=1)
    live = _hand_lock(repo, "shared", os.getpid(), "backup running here")
    res = cassette("backup", "--repo", repo, "--name", "b1", "--keyspace", ds.main).ok()
    assert not dead.exists() and not reused.exists(), "the killed backups' locks are still there"
    assert live.exists(), "a live process's lock was broken"
    assert res.err.count("cassette: warning: breaking stale lock") == 2, res.describe()
    assert "its process is no longer running on this host" in res.err, res.describe()

    dead = _hand_lock(repo, "shared", _dead_pid(), "backup killed-3 of here")
    res = cassette("backup", "-q", "--repo", repo, "--name", "b2", "--keyspace", ds.main).ok()
    assert not dead.exists() and res.err == "", res.describe()

    res = cassette("verify", "-v", "--repo", repo, "--identity", key).ok()
    assert "cassette: info: verify: " in res.err and "cassette: debug: " not in res.err, \
        res.describe()
    res = cassette("backup", "-vv", "--repo", repo, "--name", "b3", "--keyspace", ds.main).ok()
    assert "cassette: debug: running nodetool" in res.err, res.describe()

    for args in (["list", "--repo", repo], ["status", "--repo", repo],
                 ["verify", "-v", "--repo", repo, "--identity", key], ["--help"]):
        res = cassette(*args).ok()
        assert "\x1b" not in res.out and "\x1b" not in res.err, res.describe()
    live.unlink()


def test_purge_says_what_waits_for_the_grace_period(cassette, session, make_small_data, tmp_path):
    """Objects only a removed backup used stay while younger than --grace: purge says how
    many and how large (text and JSON); with --grace 0 they go, and nothing waits."""
    ds = make_small_data("pg", scale=0.005)
    repo = tmp_path / "repo"
    key = tmp_path / "key.txt"
    pub = cassette("key", "generate", "-o", key).ok().out.strip()
    cassette("init", "--repo", repo, "--recipient", pub).ok()
    cassette("backup", "--repo", repo, "--name", "p1", "--keyspace", ds.main).ok()
    for t in ds.tables:
        if t.keyspace == ds.main:
            session.execute(f"TRUNCATE {t.full_name}", timeout=120)
    cassette("backup", "--repo", repo, "--name", "p2", "--keyspace", ds.main).ok()

    res = cassette("purge", "--repo", repo, "--identity", key, "--keep-last", "1", "--dry-run").ok()
    m = re.search(r"^(\d+) unreferenced objects \((\S+ \S+)\) wait for the grace period", res.out,
                  re.M)
    assert m and int(m.group(1)) > 0, res.describe()
    data = cassette("purge", "--repo", repo, "--identity", key, "--keep-last", "1",
                    "--json").ok().json()
    assert data["removed"] == 1 and data["objects_deleted"] == 0, data
    assert data["objects_waiting"] == int(m.group(1)) and data["bytes_waiting"] > 0, data
    # Stored times are whole seconds: with --grace 0 an object is old once the clock has left
    # the second it was written in (this test runs within two seconds).
    second = int(time.time())
    while int(time.time()) == second:
        time.sleep(0.05)
    data = cassette("purge", "--repo", repo, "--identity", key, "--grace", "0",
                    "--json").ok().json()
    assert data["objects_deleted"] == int(m.group(1)), data
    assert data["objects_waiting"] == 0 and data["bytes_waiting"] == 0, data
    res = cassette("purge", "--repo", repo, "--identity", key).ok()
    assert "wait for the grace period" not in res.out, res.describe()

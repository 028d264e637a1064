#!/usr/bin/env python3
"""Makes an old repository of tests/data (see tests/data/README.md) with an old cassette:
repo-format1 (manifest format 1) with the cassette of f8e4bf3, repo-format2 (manifest format 2)
with that of 9a65129.

    git worktree add /tmp/before COMMIT && make -C /tmp/before -j2
    tests/env/cassandra.sh --base BASE start N
    ~/.cache/cassette/venv/bin/python tests/data/make-old-repo.py --format F \\
        --cassette /tmp/before/build/cassette --base BASE --node N

Creates the keyspace of that fixture (cassette_fmt1, cassette_fmt2) on the node with the tables
and rows of tests/integration/test_old_repo.py (FMT1_TABLES, fmt1_rows), makes its age test key
(repo-formatF.test-key) if it is missing, initialises the repository (a local directory,
encrypted to that key) and backs the keyspace up once under the fixture's backup name (format1,
format2), then drops the keyspace. --keyspace, --name, --out and --key override the fixture's.
Refuses to overwrite an existing repository.
"""

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from conftest import Node, connect  # noqa: E402
from test_old_repo import OLD_REPOS, fmt1_insert  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--format", type=int, required=True, choices=sorted(OLD_REPOS),
                    help="the fixture: its manifest format")
    ap.add_argument("--cassette", required=True,
                    help="the old cassette binary (README: the commit of each fixture)")
    ap.add_argument("--base", required=True, help="tests/env/cassandra.sh's base directory")
    ap.add_argument("--node", type=int, required=True)
    ap.add_argument("--keyspace", help="default: the fixture's")
    ap.add_argument("--name", help="the backup's name; default: the fixture's")
    ap.add_argument("--out", help="the repository; default: the fixture's")
    ap.add_argument("--key", help="the age identity; default: the fixture's")
    a = ap.parse_args()
    fixture = OLD_REPOS[a.format]
    ks, name = a.keyspace or fixture.keyspace, a.name or fixture.backup
    out, key = pathlib.Path(a.out or fixture.repo), pathlib.Path(a.key or fixture.key)
    if out.exists():
        sys.exit(f"{out} exists: remove it first")
    if not key.exists():
        subprocess.run(["age-keygen", "-o", str(key)], check=True)
    pub = subprocess.run(["age-keygen", "-y", str(key)], check=True, capture_output=True,
                         text=True).stdout.strip()

    node = Node(a.node, base=a.base)
    cluster, session = connect(node)
    try:
        session.execute(f"DROP KEYSPACE IF EXISTS {ks}", timeout=120)
        fmt1_insert(session, ks)
        with tempfile.TemporaryDirectory() as state:
            env = {k: v for k, v in os.environ.items() if not k.startswith("CASSETTE_")}
            env["CASSETTE_STATE_DIR"] = state
            env["XDG_CACHE_HOME"] = state
            run = [a.cassette, "--config", str(node.ini)]
            subprocess.run(run + ["init", "--repo", str(out), "--recipient", pub], check=True, env=env)
            subprocess.run(run + ["backup", "--repo", str(out), "--name", name, "--keyspace", ks],
                           check=True, env=env)
        node.nodetool("clearsnapshot", "--all", "--", ks, check=False)
        session.execute(f"DROP KEYSPACE IF EXISTS {ks}", timeout=120)
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    main()

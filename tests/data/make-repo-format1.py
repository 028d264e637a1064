#!/usr/bin/env python3
"""Makes tests/data/repo-format1 (see tests/data/README.md) with the cassette of before issue 22.

    git worktree add /tmp/before f8e4bf3 && make -C /tmp/before -j2
    tests/env/cassandra.sh --base BASE start N
    ~/.cache/cassette/venv/bin/python tests/data/make-repo-format1.py \\
        --cassette /tmp/before/build/cassette --base BASE --node N

Creates keyspace cassette_fmt1 on the node with the tables and rows of
tests/integration/test_old_repo.py (FMT1_TABLES, fmt1_rows), makes the age test key
tests/data/repo-format1.test-key if it is missing, initialises the repository (a local
directory, encrypted to that key) and backs the keyspace up once as "format1", then drops the
keyspace. Refuses to overwrite an existing repository.
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
from test_old_repo import FMT1_BACKUP, FMT1_KS, fmt1_insert  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cassette", required=True, help="the cassette binary of before issue 22")
    ap.add_argument("--base", required=True, help="tests/env/cassandra.sh's base directory")
    ap.add_argument("--node", type=int, required=True)
    ap.add_argument("--out", default=str(HERE / "repo-format1"))
    ap.add_argument("--key", default=str(HERE / "repo-format1.test-key"))
    a = ap.parse_args()
    out, key = pathlib.Path(a.out), pathlib.Path(a.key)
    if out.exists():
        sys.exit(f"{out} exists: remove it first")
    if not key.exists():
        subprocess.run(["age-keygen", "-o", str(key)], check=True)
    pub = subprocess.run(["age-keygen", "-y", str(key)], check=True, capture_output=True,
                         text=True).stdout.strip()

    node = Node(a.node, base=a.base)
    cluster, session = connect(node)
    try:
        session.execute(f"DROP KEYSPACE IF EXISTS {FMT1_KS}", timeout=120)
        fmt1_insert(session)
        with tempfile.TemporaryDirectory() as state:
            env = {k: v for k, v in os.environ.items() if not k.startswith("CASSETTE_")}
            env["CASSETTE_STATE_DIR"] = state
            env["XDG_CACHE_HOME"] = state
            run = [a.cassette, "--config", str(node.ini)]
            subprocess.run(run + ["init", "--repo", str(out), "--recipient", pub], check=True, env=env)
            subprocess.run(run + ["backup", "--repo", str(out), "--name", FMT1_BACKUP,
                                  "--keyspace", FMT1_KS], check=True, env=env)
        node.nodetool("clearsnapshot", "--all", "--", FMT1_KS, check=False)
        session.execute(f"DROP KEYSPACE IF EXISTS {FMT1_KS}", timeout=120)
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    main()

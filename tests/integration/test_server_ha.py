"""Two `cassette server`s sharing their state in a Cassandra keyspace (issue 20, Done-when 3).

The state lives in a keyspace of the 3-node test cluster (nodes 11-13, replication factor 3);
the task backs up serverenv.py's one-node cluster (node 19). Checked from run records (GET
/v1/runs) and each server's own view (GET /v1/server):
- only the leader runs tasks; SIGKILL it in the middle of a backup and the other takes the lease
  within the lease's time, interrupts the dead leader's run, retries it and runs the next
  scheduled backup; no run ever runs twice;
- node 19's agent, having seen the new leader's epoch, refuses a command carrying the old one;
- a fresh server with empty state (SQLite) and the repository as its export_repo imports the
  exported clusters, tasks and history and carries on with the schedule.
"""

import time
import uuid

import pytest

from serverenv import ServerProc
from test_server import never_two_running, new_repo, no_broken_complete, register, single_data, slow_agent  # noqa: F401

pytestmark = pytest.mark.cluster

LEASE = 6  # seconds


def leader_of(*servers):
    return [s for s in servers if s.info()["leader"]]


def wait_for(pred, timeout, what, servers=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.25)
    raise AssertionError(f"no {what} after {timeout} s\n" + "\n".join(s.log()[-3000:] for s in servers))


def test_two_servers_one_leader_takeover_fencing_import(cassette_bin, cluster, single_cluster, single_data,
                                                         slow_agent, tmp_path):
    t0 = time.monotonic()
    env = single_cluster
    repo = new_repo(env, "dw3")
    ks = f"cassette_state_{uuid.uuid4().hex[:8]}"
    state = f"cassandra://{cluster.addresses[0]}:9042/{ks}"
    common = {"lease": f"{LEASE}s", "state_rf": 3, "export_repo": repo, "export_every": "10s"}
    a = ServerProc(cassette_bin, tmp_path / "a", env, server_id="a", state=state, settings=common).start()
    wait_for(lambda: leader_of(a), 3 * LEASE, "leader", [a])
    b = ServerProc(cassette_bin, tmp_path / "b", env, server_id="b", state=state, settings=common).start()
    try:
        # Both serve the API on the same state; b follows.
        register(b, "single", env, repo, env.addresses[0])
        b.ok("POST", "/v1/tasks", {"id": "every20", "cluster": "single", "kind": "backup",
                                   "schedule": "@every 20s", "retries": 1, "retry_backoff": 1})
        assert a.ok("GET", "/v1/tasks/every20")["schedule"] == "@every 20s"
        ia, ib = a.info(), b.info()
        assert ia["leader"] and not ib["leader"], (ia, ib)
        epoch_a = ia["epoch"]

        # The first scheduled run (a slow one: the agent uploads at 60 KB/s), run by a: SIGKILL a
        # in its middle.
        running = wait_for(lambda: [r for r in b.runs(task="every20", state="running")
                                    if (r.get("progress") or {}).get("bytes_done", 0) > 0], 120,
                           "a run uploading", [a, b])[0]
        assert not b.info()["leader"]
        before = b.runs(limit=1000)
        assert all(r["server"].startswith("a#") for r in before if r.get("started")), before
        assert running["server"].startswith("a#") and running["epoch"] == epoch_a, running
        a.kill()
        killed = time.monotonic()
        wait_for(lambda: b.info()["leader"], LEASE + 10, "takeover by b", [b])
        took = time.monotonic() - killed
        ib = b.info()
        assert ib["epoch"] > epoch_a, (ib, epoch_a)
        assert took <= LEASE + LEASE / 3 + 3, f"b took over {took:.1f} s after a died (lease {LEASE} s)"

        # a's run: interrupted and retried once by b; then b runs the next scheduled backup.
        retry = b.wait_run(lambda r: r.get("retry_of") == running["id"] and r["state"] in ("done", "failed"),
                           timeout=300, what="the retry of a's run")
        assert retry["state"] == "done" and retry["server"].startswith("b#"), retry
        old = [r for r in b.runs(limit=1000) if r["id"] == running["id"]][0]
        assert old["state"] == "interrupted", old
        b.wait_run(lambda r: r["task"] == "every20" and r.get("retry_of") is None and r["state"] == "done"
                   and r["server"].startswith("b#") and r["started"] > retry["started"],
                   timeout=120, what="b's own scheduled run")

        # The agent has seen b's epoch: a replay of a's command with a's epoch is refused.
        st, doc = env.agent_call(env.numbers[0], "GET", "/v1/jobs", headers={"X-Cassette-Epoch": str(epoch_a)})
        assert st == 409 and "fenced" in doc["error"], (st, doc)
        st, doc = env.agent_call(env.numbers[0], "POST", "/v1/ops/backup", {"repo": repo, "tag": "replayed"},
                                 headers={"X-Cassette-Epoch": str(epoch_a)})
        assert st == 409, (st, doc)

        runs = b.runs(limit=1000)
        never_two_running(runs)
        ids = [r["id"] for r in runs]
        assert len(ids) == len(set(ids))
        assert {r["server"][0] for r in runs if r.get("started")} == {"a", "b"}

        # Let b export what it has (an export after the runs above were read), then stop it.
        exports = b.log().count("state exported")
        wait_for(lambda: b.log().count("state exported") > exports, 40, "an export by b", [b])
        b.stop()
    finally:
        a.stop()
        b.stop()

    # A fresh server, its own empty SQLite state, the repository as export_repo: it imports
    # the cluster, the task and the history, and carries on with the schedule.
    since = time.time()
    c = ServerProc(cassette_bin, tmp_path / "c", env, server_id="c", settings={"export_repo": repo}).start()
    try:
        assert "imported" in c.log(), c.log()[-2000:]
        assert [x["id"] for x in c.ok("GET", "/v1/clusters")["clusters"]] == ["single"]
        assert c.ok("GET", "/v1/tasks/every20")["schedule"] == "@every 20s"
        mine = {r["id"] for r in c.runs(limit=1000)}
        done_before = {r["id"] for r in runs if r["state"] == "done"}
        assert done_before <= mine, sorted(done_before - mine)
        c.wait_run(lambda r: r["task"] == "every20" and r["state"] == "done" and r["server"].startswith("c#")
                   and r["started"] >= since, timeout=180, what="the fresh server's scheduled run")
        c.ok("PATCH", "/v1/tasks/every20", {"enabled": False})
        wait_for(lambda: not c.runs(state="open"), 300, "the open runs ending", [c])
        never_two_running(c.runs(limit=1000))
    finally:
        c.stop()
    no_broken_complete(env, repo)
    print(f"\n[dw3] {time.monotonic() - t0:.0f} s; takeover in {took:.1f} s")

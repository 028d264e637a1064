"""`cassette server` on real nodes (issue 20's Done-when 1, 2 and 5).

Every check reads the server's run records (GET /v1/runs): start and end times, states,
attempts, retry_of / resumed_from, progress. The clusters are serverenv.py's ``single_cluster``
(node 19) and clusterenv.py's ``cluster`` (nodes 11-13), each node with its agent; the
repositories are S3 prefixes of the session's S3 server.
"""

import datetime
import json
import time

import pytest

from dataset import Dataset
from serverenv import ServerProc, intervals, overlaps

pytestmark = pytest.mark.cluster


def register(srv, cid, env, repo, contact):
    return srv.ok("POST", "/v1/clusters", {"id": cid, "contact": contact, "agent_template": env.agent_template,
                                          "repo": repo})


def new_repo(env, hint):
    repo = env.new_repo(hint, kind="s3")
    r = env.run("init", "--repo", repo, "--no-encryption")
    assert r.rc == 0, (r.args, r.rc, r.out, r.err)
    return repo


def backups_of(env, repo):
    r = env.run("list", "--repo", repo, "--json")
    assert r.rc == 0, (r.args, r.rc, r.out, r.err)
    doc = json.loads(r.out)
    return doc["backups"] if isinstance(doc, dict) else doc


def no_broken_complete(env, repo):
    """Every backup the repository lists complete verifies; returns the complete ones' names."""
    names = sorted({b["name"] for b in backups_of(env, repo) if b.get("complete")})
    for name in names:
        r = env.run("verify", "--repo", repo, "--backup", name)
        assert r.rc == 0, (name, r.rc, r.out, r.err)
    return names


def never_two_running(runs):
    """No two runs of one cluster overlap in time."""
    iv = sorted(intervals(runs), key=lambda x: x[0])
    for a, b in zip(iv, iv[1:]):
        if a[2]["cluster"] == b[2]["cluster"]:
            assert not overlaps(a, b), (a[2]["id"], b[2]["id"], a[:2], b[:2])


@pytest.fixture
def slow_agent(single_cluster):
    """Node 19's agent uploading at 60 KB/s (a backup of the dataset takes tens of seconds)."""
    c = single_cluster
    c.start_agents(c.allow_repo_args() + ["--rate-limit", "60K"], c.s3_env())
    yield c
    c.start_agents(c.allow_repo_args(), c.s3_env())


@pytest.fixture(scope="module")
def single_data(single_cluster):
    ds = Dataset(prefix="srv", seed=20, scale=0.05, replication=1)
    ds.drop(single_cluster.session)
    ds.create_schema(single_cluster.session)
    ds.load(single_cluster.session)
    return ds


def test_sigkill_mid_backup_interrupted_retried_once(cassette_bin, single_cluster, single_data, slow_agent,
                                                       tmp_path):
    """Done-when 2: SIGKILL the server in the middle of a cluster backup, start it again: the run
    is interrupted, retried once (and the retry completes), the repository holds no broken
    complete backup, no run is ever running twice."""
    t0 = time.monotonic()
    env = single_cluster
    repo = new_repo(env, "dw2")
    srv = ServerProc(cassette_bin, tmp_path / "srv", env, server_id="dw2").start()
    register(srv, "single", env, repo, env.addresses[0])
    srv.ok("POST", "/v1/tasks", {"id": "nightly", "cluster": "single", "kind": "backup", "retries": 1,
                                 "retry_backoff": 1})
    first = srv.ok("POST", "/v1/tasks/nightly/run")
    srv.wait_run(lambda r: r["id"] == first["id"] and r["state"] == "running"
                 and (r.get("progress") or {}).get("bytes_done", 0) > 0,
                 timeout=120, what="the backup uploading")
    srv.kill()
    srv.start()
    done = srv.wait_run(lambda r: r.get("retry_of") == first["id"] and r["state"] in ("done", "failed"),
                        timeout=300, what="the retry ending")
    assert done["state"] == "done", done
    assert done["attempt"] == 2 and done["task"] == "nightly"
    runs = srv.runs()
    by_id = {r["id"]: r for r in runs}
    assert by_id[first["id"]]["state"] == "interrupted", by_id[first["id"]]
    assert len([r for r in runs if r.get("retry_of") == first["id"]]) == 1  # retried once
    assert done["started"] >= by_id[first["id"]]["ended"]
    never_two_running(runs)
    srv.stop()
    names = no_broken_complete(env, repo)
    # The retry's backup is complete; the killed one's node backup may have been finished by the
    # agent on its own (then it verifies too: every complete backup does).
    assert done["result"]["name"] in names, (done["result"]["name"], names)
    print(f"\n[dw2] {time.monotonic() - t0:.0f} s")


def hms(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%H:%M:%S")


def test_window_stops_and_resumes(cassette_bin, single_cluster, single_data, slow_agent, tmp_path):
    """Done-when 5: a task whose window lasts a few seconds is stopped at the window's end (its
    run interrupted with its progress kept) and resumes in the next opening."""
    t0 = time.monotonic()
    env = single_cluster
    repo = new_repo(env, "dw5")
    srv = ServerProc(cassette_bin, tmp_path / "srv", env, server_id="dw5").start()
    register(srv, "single", env, repo, env.addresses[0])
    now = int(time.time())
    if (now % 86400) > 86400 - 300:
        pytest.skip("too close to midnight UTC for same-day windows")
    w1 = (now + 5, now + 15)
    w2 = (now + 45, now + 200)
    window = [f"{hms(w1[0])}-{hms(w1[1])}", f"{hms(w2[0])}-{hms(w2[1])}"]
    srv.ok("POST", "/v1/tasks", {"id": "windowed", "cluster": "single", "kind": "backup", "window": window})
    first = srv.ok("POST", "/v1/tasks/windowed/run")
    stopped = srv.wait_run(lambda r: r["id"] == first["id"] and r["state"] not in ("queued", "running"),
                           timeout=120, what="the first run ending")
    assert stopped["state"] == "interrupted", stopped
    assert stopped["started"] >= w1[0] - 1 and stopped["ended"] <= w1[1] + 10, (stopped, w1)
    assert stopped["progress"]["bytes_done"] > 0 or stopped["bytes"] > 0, stopped  # progress kept
    resumed = srv.wait_run(lambda r: r.get("resumed_from") == first["id"] and r["state"] in ("done", "failed"),
                           timeout=400, what="the resumption ending")
    assert resumed["state"] == "done", resumed
    assert resumed["not_before"] >= w2[0] - 1 and resumed["started"] >= w2[0] - 1, (resumed, w2)
    never_two_running(srv.runs())
    srv.stop()
    assert no_broken_complete(env, repo)
    print(f"\n[dw5] {time.monotonic() - t0:.0f} s")

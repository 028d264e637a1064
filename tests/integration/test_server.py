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


def test_two_clusters_scheduled_for_minutes(cassette_bin, single_cluster, single_data, cluster, tmp_path):
    """Done-when 1: a server with two registered clusters (node 19 alone, nodes 11-13) runs backup
    and purge tasks @every 20s for two minutes: the runs of one cluster never overlap, the two
    clusters' runs do, and a backup restores row by row."""
    t0 = time.monotonic()
    ds3 = Dataset(prefix="srv3", seed=21, scale=0.02, replication=3)
    ds3.drop(cluster.session)
    ds3.create_schema(cluster.session)
    ds3.load(cluster.session)
    repo1, repo3 = new_repo(single_cluster, "dw1-single"), new_repo(cluster, "dw1-three")
    srv = ServerProc(cassette_bin, tmp_path / "srv", single_cluster, server_id="dw1").start()
    register(srv, "single", single_cluster, repo1, single_cluster.addresses[0])
    register(srv, "three", cluster, repo3, cluster.addresses[0])
    for c in ("single", "three"):
        srv.ok("POST", "/v1/tasks", {"id": f"backup-{c}", "cluster": c, "kind": "backup", "schedule": "@every 20s"})
        srv.ok("POST", "/v1/tasks", {"id": f"purge-{c}", "cluster": c, "kind": "purge", "schedule": "@every 20s",
                                     "params": {"keep_last": 3}})
    time.sleep(120)
    for c in ("single", "three"):
        for kind in ("backup", "purge"):
            srv.ok("PATCH", f"/v1/tasks/{kind}-{c}", {"enabled": False})
    deadline = time.monotonic() + 300
    while srv.runs(state="open") and time.monotonic() < deadline:
        time.sleep(1)
    runs = srv.runs(limit=1000)
    assert not srv.runs(state="open"), srv.runs(state="open")
    bad = [r for r in runs if r["state"] != "done"]
    assert not bad, json.dumps(bad, indent=1)[:4000]
    never_two_running(runs)
    per = {c: [r for r in runs if r["cluster"] == c] for c in ("single", "three")}
    for c, rs in per.items():
        kinds = {k: sum(1 for r in rs if r["kind"] == k) for k in ("backup", "purge")}
        assert kinds["backup"] >= 3 and kinds["purge"] >= 3, (c, kinds)
    cross = [(a[2]["id"], b[2]["id"]) for a in intervals(per["single"]) for b in intervals(per["three"])
             if overlaps(a, b)]
    assert cross, "the two clusters' runs never overlapped"
    # Restore the newest backup of node 19 over its emptied tables, row by row.
    newest = max((r for r in per["single"] if r["kind"] == "backup"), key=lambda r: r["ended"])
    name = newest["result"]["name"]
    for t in single_data.tables:
        single_cluster.session.execute(f"TRUNCATE {t.full_name}", timeout=120)
    run = srv.ok("POST", "/v1/clusters/single/restores",
                 {"backup": name, "keyspaces": sorted({t.keyspace for t in single_data.tables})})
    done = srv.wait_run(lambda r: r["id"] == run["id"] and r["state"] not in ("queued", "running"),
                        timeout=600, what="the restore")
    assert done["state"] == "done", done
    single_data.check(single_cluster.session)
    srv.stop()
    print(f"\n[dw1] {time.monotonic() - t0:.0f} s: {len(runs)} runs, {len(cross)} overlapping pairs across "
          f"clusters")

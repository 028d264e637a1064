"""`cassette server`'s GET /metrics on a real cluster (issue 21, Done-when 1: the server's part).

The single cluster (serverenv.py's ``single_cluster``: node $CASSETTE_TEST_SINGLE_NODE with its
agent, uploads slowed so that a backup runs for a while) is registered with a server; every
scrape is parsed with the Prometheus text parser (prometheus_client) and its families are held
to docs/metrics.md's "Server" rows. During a backup: running 1, the queued runs counted; a queued
run cancelled counts as cancelled. After it: the last success is the run's end, the byte and
file counters are the sums of the run's result document (GET /v1/runs/{id}), runs_total and the
duration histogram count it once, the newest complete backup's time is the repository listing's
(GET /v1/clusters/{id}/backups). A verify that finds the backup whole sets damaged objects to 0;
a verify of a backup that does not exist fails: last failure, failed runs and errors move. A
restarted server starts its counters at 0 but still knows the last success (from the history).
"""

import calendar
import json
import pathlib
import re
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dataset import Dataset
from serverenv import ServerProc

pytestmark = pytest.mark.cluster

ROOT = pathlib.Path(__file__).resolve().parents[2]
CID = "single"


def server_rows():
    """The metric names docs/metrics.md's "Server" table gives."""
    text = (ROOT / "docs" / "metrics.md").read_text()
    section = text.split("## Server", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(cassette_\w+)`", section, re.M))


class Scrape:
    """One GET /metrics, parsed: families by name, samples by (name, labels)."""

    def __init__(self, srv):
        with urllib.request.urlopen(srv.url + "/metrics", timeout=30) as r:
            assert r.status == 200
            ctype = r.headers.get("Content-Type", "")
            assert ctype.startswith("text/plain") and "version=0.0.4" in ctype, ctype
            self.text = r.read().decode()
        self.families = {f.name: f for f in text_string_to_metric_families(self.text)}
        self.samples = {}
        for f in self.families.values():
            for s in f.samples:
                self.samples[(s.name, tuple(sorted(s.labels.items())))] = s.value

    def names(self):
        """The exposed metric names as docs/metrics.md spells them (counters with _total)."""
        return {n + "_total" if f.type == "counter" else n for n, f in self.families.items()}

    def get(self, name, **labels):
        return self.samples.get((name, tuple(sorted(labels.items()))))

    def value(self, name, **labels):
        v = self.get(name, **labels)
        assert v is not None, f"no {name}{labels} in:\n{self.text}"
        return v

    def total(self, name, **labels):
        """The sum of name's samples whose labels include labels."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and want <= set(ls))


def wait_scrape(srv, pred, what, timeout=120):
    deadline = time.monotonic() + timeout
    while True:
        s = Scrape(srv)
        if pred(s):
            return s
        if time.monotonic() > deadline:
            raise AssertionError(f"no scrape with {what} after {timeout} s:\n{s.text}\n{srv.log()[-3000:]}")
        time.sleep(0.5)


def iso(t):
    return calendar.timegm(time.strptime(t, "%Y-%m-%dT%H:%M:%SZ"))


def node_backups(run):
    return [n["backup"] for n in run["result"]["nodes"] if n.get("backup")]


def newest_complete(listing):
    """When the newest complete backup of a listing finished (as the server's listing says)."""
    by_name = {}
    for b in listing:
        by_name.setdefault(b["name"], []).append(b)
    ends = [max(iso(b["finished"]) for b in bs) for bs in by_name.values()
            if all(b["complete"] for b in bs) and all((b.get("set") or {"complete": True})["complete"] for b in bs)]
    return max(ends) if ends else None


@pytest.fixture
def slow_agent(single_cluster):
    """The node's agent uploading at 100 KB/s (a backup of the dataset runs for a while)."""
    c = single_cluster
    c.start_agents(c.allow_repo_args() + ["--rate-limit", "100K"], c.s3_env())
    yield c
    c.start_agents(c.allow_repo_args(), c.s3_env())


@pytest.fixture(scope="module")
def metrics_data(single_cluster):
    ds = Dataset(prefix="met", seed=21, scale=0.05, replication=1)
    ds.drop(single_cluster.session)
    ds.create_schema(single_cluster.session)
    ds.load(single_cluster.session)
    yield ds
    ds.drop(single_cluster.session)  # the tests after this one back up the node without it


def test_server_metrics_during_and_after_runs(cassette_bin, single_cluster, metrics_data, slow_agent, tmp_path):
    env = single_cluster
    repo = env.new_repo("metrics", kind="s3")
    r = env.run("init", "--repo", repo, "--no-encryption")
    assert r.rc == 0, (r.args, r.rc, r.out, r.err)
    srv = ServerProc(cassette_bin, tmp_path / "srv", env, server_id="metrics").start()
    try:
        srv.ok("POST", "/v1/clusters", {"id": CID, "contact": env.addresses[0],
                                        "agent_template": env.agent_template, "repo": repo})
        srv.ok("POST", "/v1/tasks", {"id": "check", "cluster": CID, "kind": "verify"})
        srv.ok("POST", "/v1/tasks", {"id": "check-missing", "cluster": CID, "kind": "verify", "retries": 0,
                                     "params": {"backup": "no-such-backup"}})
        s = Scrape(srv)
        assert s.names() <= server_rows(), s.names() - server_rows()
        info = srv.info()
        assert s.value("cassette_server_leader") == 1
        assert s.value("cassette_server_lease_epoch") == info["epoch"]
        assert s.value("cassette_server_lease_changes_total") == 1
        assert s.value("cassette_clusters") == 1
        assert s.value("cassette_server_info", version=srv.ok("GET", "/version")["version"], server=info["server"]) == 1
        # a task's series are there, at 0, before its first run
        assert s.value("cassette_task_runs_total", cluster=CID, kind="verify", state="done") == 0
        assert s.value("cassette_backup_bytes_read_total", cluster=CID) == 0
        assert s.get("cassette_task_last_success_timestamp_seconds", cluster=CID, kind="backup") is None

        # ---- during a backup ----
        run = srv.ok("POST", f"/v1/clusters/{CID}/backups", {})
        srv.wait_run(lambda x: x["id"] == run["id"] and x["state"] == "running", timeout=120,
                     what="the backup running")
        srv.ok("POST", "/v1/tasks/check/run")
        extra = srv.ok("POST", f"/v1/clusters/{CID}/backups", {})
        s = Scrape(srv)
        assert srv.ok("GET", f"/v1/runs/{run['id']}")["state"] == "running", "the backup ended too soon"
        assert s.value("cassette_tasks_running", cluster=CID) == 1
        assert s.value("cassette_queue_length", cluster=CID) == 2
        srv.ok("POST", f"/v1/runs/{extra['id']}/cancel")  # queued: cancelled at once, by the API
        s = Scrape(srv)
        assert s.value("cassette_queue_length", cluster=CID) == 1
        assert s.value("cassette_task_runs_total", cluster=CID, kind="backup", state="cancelled") == 1
        assert s.value("cassette_task_duration_seconds_count", cluster=CID, kind="backup") == 0  # never started

        # ---- after it ----
        done = srv.wait_run(lambda x: x["id"] == run["id"] and x["state"] in ("done", "failed"), timeout=600,
                            what="the backup ending")
        assert done["state"] == "done", done
        nodes = node_backups(done)
        assert nodes, done["result"]
        s = Scrape(srv)
        last = s.value("cassette_task_last_success_timestamp_seconds", cluster=CID, kind="backup")
        assert done["started"] <= last <= done["ended"] + 0.01 and abs(last - done["ended"]) < 0.01, (last, done)
        assert s.get("cassette_task_last_failure_timestamp_seconds", cluster=CID, kind="backup") is None
        assert s.value("cassette_task_runs_total", cluster=CID, kind="backup", state="done") == 1
        assert s.value("cassette_task_runs_total", cluster=CID, kind="backup", state="failed") == 0
        assert s.total("cassette_task_errors_total", cluster=CID, kind="backup") == 0
        assert s.value("cassette_task_duration_seconds_count", cluster=CID, kind="backup") == 1
        took = done["ended"] - done["started"]
        assert abs(s.value("cassette_task_duration_seconds_sum", cluster=CID, kind="backup") - took) < 0.01
        assert s.value("cassette_task_duration_seconds_bucket", cluster=CID, kind="backup", le="+Inf") == 1
        read = sum(b["bytes_read"] for b in nodes)
        stored = sum(b["bytes_stored"] for b in nodes)
        assert read > 0 and stored > 0, nodes
        assert s.value("cassette_backup_bytes_read_total", cluster=CID) == read
        assert s.value("cassette_backup_bytes_stored_total", cluster=CID) == stored
        assert s.value("cassette_backup_bytes_uploaded_total", cluster=CID) == stored - sum(
            b["bytes_resumed"] for b in nodes)
        files_new = sum(b["files_new"] for b in nodes)
        files_unchanged = sum(b["files_unchanged"] for b in nodes)
        assert files_new > 0 and files_new + files_unchanged == sum(b["files"] for b in nodes)
        assert s.value("cassette_backup_files_new_total", cluster=CID) == files_new
        assert s.value("cassette_backup_files_unchanged_total", cluster=CID) == files_unchanged
        size = sum(b["size"] for b in nodes)
        assert s.value("cassette_backup_last_size_bytes", cluster=CID) == size
        ratio = (size - sum(b["size_new"] for b in nodes)) / size
        assert abs(s.value("cassette_backup_last_dedup_ratio", cluster=CID) - ratio) < 1e-9
        # the repository, as listed after the backup ended (by housekeeping, not by the scrape)
        listing = srv.ok("GET", f"/v1/clusters/{CID}/backups")["backups"]
        assert done["result"]["name"] in {b["name"] for b in listing}
        want = newest_complete(listing)
        s = wait_scrape(srv, lambda x: x.get("cassette_backup_newest_complete_timestamp_seconds",
                                             cluster=CID) == want, f"the newest complete backup at {want}")
        assert s.value("cassette_repository_size_bytes", cluster=CID) >= stored
        # every key of the repository: its stored objects (a file each, or an SSTable's small
        # files in one) and the backups' own files
        bucket, _, prefix = repo.removeprefix("s3://").partition("/")
        objects = [p for p in env.s3_server.object_path(bucket, f"{prefix}/objects").rglob("*")
                   if p.is_file() and not p.name.startswith(".")]
        assert objects
        assert s.value("cassette_repository_objects", cluster=CID) > len(objects)

        # ---- a verify that finds it whole, one that fails ----
        ok = srv.wait_run(lambda x: x["task"] == "check" and x["state"] in ("done", "failed"), timeout=300,
                          what="the verify ending")
        assert ok["state"] == "done", ok
        s = Scrape(srv)
        assert s.value("cassette_verify_damaged_objects", cluster=CID) == 0
        assert s.value("cassette_task_runs_total", cluster=CID, kind="verify", state="done") == 1
        bad = srv.ok("POST", "/v1/tasks/check-missing/run")
        bad = srv.wait_run(lambda x: x["id"] == bad["id"] and x["state"] in ("done", "failed"), timeout=300,
                           what="the failing verify ending")
        assert bad["state"] == "failed", bad
        s = Scrape(srv)
        failed_at = s.value("cassette_task_last_failure_timestamp_seconds", cluster=CID, kind="verify")
        assert bad["started"] <= failed_at <= bad["ended"] + 0.01, (failed_at, bad)
        assert s.value("cassette_task_runs_total", cluster=CID, kind="verify", state="failed") == 1
        assert s.total("cassette_task_errors_total", cluster=CID, kind="verify") == 1
        assert s.value("cassette_verify_damaged_objects", cluster=CID) == 0  # a failed verify found nothing
        assert s.value("cassette_tasks_running", cluster=CID) == 0
        assert s.value("cassette_queue_length", cluster=CID) == 0
        # every Server row is in a real scrape (the drill rows: test_cluster_drill.py's scrapes)
        missing = {n for n in server_rows() if not n.startswith("cassette_drill_")} - s.names()
        assert not missing, missing

        # ---- a restarted server: counters at 0, the last success from the history ----
        srv.stop()
        srv.start()
        s = Scrape(srv)
        assert abs(s.value("cassette_task_last_success_timestamp_seconds", cluster=CID, kind="backup") - last) < 0.01
        assert abs(s.value("cassette_task_last_failure_timestamp_seconds", cluster=CID, kind="verify")
                   - failed_at) < 0.01
        assert s.value("cassette_backup_last_size_bytes", cluster=CID) == size
        assert s.value("cassette_backup_bytes_read_total", cluster=CID) == 0
        assert s.get("cassette_task_runs_total", cluster=CID, kind="backup", state="done") in (None, 0)
        print("\n[metrics] " + json.dumps({"read": read, "stored": stored, "files_new": files_new,
                                           "took": round(took, 1)}))
        srv.stop()
        log = srv.log()  # both servers' lines, leak reports at their exits included
        assert not any(w in log for w in ("runtime error", "AddressSanitizer", "LeakSanitizer")), log[-3000:]
    finally:
        srv.stop()

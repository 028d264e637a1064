"""The server's status page in a real browser (issue 21, Done-when 3).

A `cassette server` with a tokens file has the one-node cluster of serverenv.py's
``single_cluster`` registered, with a scheduled backup task; its agent uploads slowly (60 KB/s)
so that a backup runs for tens of seconds. Debian's headless Chromium
(tests/integration/browser.py: its DevTools protocol over a pipe) loads the page from the
server: the page asks for a token before it reads anything and takes a viewer token in its
field; then a backup starts (POST /v1/tasks/{id}/run) and, while it runs, the page shows the
cluster's id, a progress bar of the running backup with a value above 0, the task with its next
run and "no drill yet". A screenshot goes to
build/test-results/status-page.png. When the backup has ended the page shows it as the newest
complete backup with its age, and a failed run among the recent failures. The browser reports
no console error, no exception, no failed load and no Content-Security-Policy violation, and the
token is in the tab's sessionStorage only. Every wait is on a condition, in the page or in the
server's runs.
"""

import json
import os
import pathlib
import time

import pytest

from browser import Browser
from dataset import Dataset
from serverenv import ServerProc

pytestmark = pytest.mark.cluster

ROOT = pathlib.Path(__file__).resolve().parents[2]
RESULTS = ROOT / "build" / "test-results"
ADMIN = "page-admin-token-0123456789"
VIEWER = "page-viewer-token-0123456789"


@pytest.fixture
def slow_agent(single_cluster):
    """The single node's agent uploading at 60 KB/s (a backup of the dataset takes tens of seconds)."""
    c = single_cluster
    c.start_agents(c.allow_repo_args() + ["--rate-limit", "60K"], c.s3_env())
    yield c
    c.start_agents(c.allow_repo_args(), c.s3_env())


@pytest.fixture(scope="module")
def page_data(single_cluster):
    ds = Dataset(prefix="page", seed=22, scale=0.05, replication=1)
    ds.drop(single_cluster.session)
    ds.create_schema(single_cluster.session)
    ds.load(single_cluster.session)
    return ds


def js(value):
    return json.dumps(value)


# What the page shows, once it shows the running backup's progress above 0 (null before).
RUNNING = """(() => {
  if (document.body.dataset.ready !== '1') return null;
  const box = document.querySelector('.run[data-run=' + %s + ']');
  const bar = box && box.querySelector('progress.bytes');
  if (!bar || !(bar.value > 0)) return null;
  return {
    clusters: [...document.querySelectorAll('#clusters .cluster-id')].map(e => e.textContent),
    value: bar.value, max: bar.max, files: box.querySelectorAll('progress.files').length,
    nodes: [...box.querySelectorAll('progress.node')].map(e => [e.dataset.node, e.value, e.max]),
    text: box.innerText,
    tasks: [...document.querySelectorAll('#tasks tr')].map(r => [...r.cells].map(c => c.textContent)),
    drill: document.getElementById('drill').textContent,
  };
})()"""

# The newest complete backup of the cluster, once the page shows one (null before).
NEWEST = """(() => {
  const row = [...document.querySelectorAll('#clusters tr')].find(r => r.querySelector('.cluster-id'));
  const name = row && row.querySelector('.backup-name');
  const age = row && row.querySelector('.backup-age');
  return name && age ? {name: name.textContent, age: age.textContent} : null;
})()"""


def test_status_page_during_a_backup(cassette_bin, single_cluster, page_data, slow_agent, tmp_path):
    t0 = time.monotonic()
    env = single_cluster
    repo = env.new_repo("page", kind="s3")
    r = env.run("init", "--repo", repo, "--no-encryption")
    assert r.rc == 0, (r.args, r.rc, r.out, r.err)
    tokens = tmp_path / "tokens"
    tokens.write_text(f"root admin {ADMIN}\nlook viewer {VIEWER}\n")
    tokens.chmod(0o600)
    srv = ServerProc(cassette_bin, tmp_path / "srv", env, args=["--tokens-file", tokens], server_id="page",
                     token=ADMIN).start()
    try:
        srv.ok("POST", "/v1/clusters", {"id": "single", "contact": env.addresses[0],
                                        "agent_template": env.agent_template, "repo": repo})
        srv.ok("POST", "/v1/tasks", {"id": "nightly", "cluster": "single", "kind": "backup",
                                     "schedule": "0 3 * * *"})
        task = srv.ok("GET", "/v1/tasks/nightly")
        assert time.time() < task["next"] <= time.time() + 86400, task

        with Browser(tmp_path / "chromium") as b:
            page = b.new_page(1280, 900)
            page.goto(srv.url + "/")
            # A server with tokens: the page asks for one before it reads anything.
            note = page.wait_for("!document.getElementById('note').hidden && document.getElementById('note').textContent")
            assert "token" in note
            assert page.evaluate("document.querySelectorAll('#clusters .cluster-id').length") == 0
            assert page.errors == [], page.errors
            page.evaluate(f"document.getElementById('token').value = {js(VIEWER)};"
                          " document.getElementById('auth').requestSubmit(); true")
            page.wait_for("document.body.dataset.ready === '1' && document.querySelector('#clusters .cluster-id')")
            # The page is up before the backup starts: it sees the backup while it runs, however
            # long the browser took to start.
            run = srv.ok("POST", "/v1/tasks/nightly/run")
            shown = page.wait_for(RUNNING % js(js(run["id"])), timeout=120)
            assert shown["clusters"] == ["single"], shown
            assert 0 < shown["value"] <= shown["max"], shown
            assert shown["files"] == 1, shown
            # The cluster's one node, its own bar (the run's progress "nodes").
            assert [n[0] for n in shown["nodes"]] == single_cluster.addresses, shown
            nightly = [row for row in shown["tasks"] if row[0] == "nightly"]
            assert nightly and nightly[0][1] == "single" and nightly[0][3] == "0 3 * * *", shown["tasks"]
            assert "UTC" in nightly[0][5], nightly  # the next run, from the task's "next"
            assert shown["drill"] == "no drill yet", shown
            RESULTS.mkdir(parents=True, exist_ok=True)
            png = page.screenshot(RESULTS / "status-page.png")
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10000
            # The token: in this tab's sessionStorage, nowhere else.
            kept = page.evaluate("JSON.stringify([sessionStorage.getItem('cassette.token'),"
                                 " localStorage.length, document.cookie])")
            assert json.loads(kept) == [VIEWER, 0, ""], kept

            # After the backup: the newest complete backup and its age; a failed run.
            done = srv.wait_run(lambda x: x["id"] == run["id"] and x["state"] not in ("queued", "running"),
                                timeout=600, what="the backup ending")
            assert done["state"] == "done", done
            newest = page.wait_for(NEWEST, timeout=60)
            assert newest["name"].startswith(done["result"]["name"]), (newest, done["result"])
            assert newest["age"].endswith((" s", " min")), newest
            bad = srv.ok("POST", "/v1/clusters/single/restores", {"backup": "no-such-backup"})
            srv.wait_run(lambda x: x["id"] == bad["id"] and x["state"] == "failed", timeout=120,
                         what="the restore of a backup that does not exist failing")
            page.wait_for(f"[...document.querySelectorAll('#failures tr')].some(r => r.textContent.includes({js(bad['id'])}))",
                          timeout=30)
            page.screenshot(RESULTS / "status-page-after.png")
            assert page.errors == [], page.errors
    finally:
        srv.stop()
    log = srv.log()
    assert ADMIN not in log and VIEWER not in log, "a token is in the server's log"
    print(f"\n[status page] {time.monotonic() - t0:.0f} s")

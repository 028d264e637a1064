"""Metrics of the node side (issue 21; the names are docs/metrics.md's): `--metrics-file` of the
one-shot commands and the agent's `GET /metrics`. Every exposition is read with a real parser
(prometheus_client's, in the venv by scripts/install-deps.sh), never with regular expressions.

- A backup with --metrics-file writes the textfile rows (mode 0644, nothing else left in the
  directory): its bytes and files are the backup's own --json result's, its timestamp lies
  within the run, its duration is the result's; a second backup stores nothing new (dedup ratio
  1). A failing backup of the same repository (its location holds no repository any more) keeps
  the last success, sets the last failure within its run and the error kind (storage), without
  the rows of a result it does not have; a success after it keeps that failure. verify writes
  the bytes of its result.
- An agent's GET /metrics (its bearer token; text/plain; version=0.0.4) during a backup job
  that is slowed down (an S3 repository with --rate-limit): the job's phase, bytes done and to
  do and rate, the one running job, bytes done no more than the job's own record says a moment
  later; after it: no job series, jobs_total{op="backup",state="succeeded"} one more, a canceled
  job counted as canceled; the info's host id is the node's, the epoch follows X-Cassette-Epoch,
  each data directory has its free ratio, the resident memory is there.
- Every name of those families that the shipped alert rules and dashboard use (promnames.py) is
  in what was written and scraped.
Each exposition also passes `promtool check metrics`."""

import http.client
import os
import pathlib
import shutil
import subprocess
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from promnames import exposition_names, missing_names, used_metric_names
from test_agent import start_agent  # noqa: F401  (the fixture: an agent over HTTPS with a token)

ROOT = pathlib.Path(__file__).resolve().parents[2]
RATE = "2M"  # bytes per second to S3: the agent's backup lasts some seconds whatever the machine


def parse(text):
    """({(sample name, frozenset of labels): value}, {family name: type}) of an exposition."""
    samples, types = {}, {}
    for fam in text_string_to_metric_families(text):
        types[fam.name] = fam.type
        for s in fam.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in samples, f"sample {key} twice"
            samples[key] = s.value
    return samples, types


# promtool's lint of a name docs/metrics.md fixed (a gauge of the bytes a phase has to do).
KNOWN_LINT = set()


def promtool_ok(text):
    """promtool (Debian's prometheus package, scripts/install-deps.sh) parses the exposition
    (exit 1 on an error) and finds no lint problem (exit 3) but the known ones."""
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    lint = {line.strip() for line in (p.stdout + p.stderr).splitlines() if line.strip()}
    assert p.returncode == 0 or (p.returncode == 3 and lint <= KNOWN_LINT), \
        f"promtool check metrics (exit {p.returncode}): {p.stdout}{p.stderr}\n{text}"


def assert_rules_names(texts, *prefixes):
    """The names with these prefixes that the shipped alert rules and dashboard use are all in
    the expositions texts (docs/metrics.md's contract, seen from both ends)."""
    used = {n for n in used_metric_names(ROOT) if n.startswith(prefixes)}
    assert used, prefixes
    have = set().union(*(exposition_names(t) for t in texts))
    assert not missing_names(used, have), missing_names(used, have)


def get(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def series(samples, name):
    """[(labels dict, value)] of every sample of name."""
    return [(dict(k[1]), v) for k, v in samples.items() if k[0] == name]


# ---- --metrics-file ----------------------------------------------------------------------

def _timed(run):
    t0 = time.time()
    res = run()
    return res, t0, time.time()


def test_metrics_file(cassette, make_small_data, tmp_path):
    ds = make_small_data("mf")
    repo = tmp_path / "repo"
    cassette("init", "--repo", repo, "--no-encryption").ok()
    textdir = tmp_path / "textfile"
    textdir.mkdir()
    prom = textdir / "cassette-backup.prom"
    lab = {"op": "backup", "repo": str(repo)}
    backup = ["backup", "--repo", repo, "--keyspace", ds.main, "--keyspace", ds.side, "--metrics-file", prom,
              "--json"]

    texts = []
    res, t0, t1 = _timed(lambda: cassette(*backup, "--name", "mf-1").ok())
    doc = res.json()
    texts.append(prom.read_text())
    m, types = parse(texts[-1])
    assert all(types[f] == "gauge" for f in types), types
    ok1 = get(m, "cassette_last_success_timestamp_seconds", **lab)
    assert ok1 is not None and t0 <= ok1 <= t1, (ok1, t0, t1)
    assert get(m, "cassette_last_failure_timestamp_seconds", **lab) is None
    assert get(m, "cassette_last_duration_seconds", **lab) == pytest.approx(doc["seconds"], abs=1e-3)
    assert get(m, "cassette_last_bytes_read", **lab) == doc["bytes_read"] > 0
    assert get(m, "cassette_last_bytes_stored", **lab) == doc["bytes_stored"] > 0
    assert get(m, "cassette_last_files_new", **lab) == doc["files_new"] == doc["files"] > 0
    assert get(m, "cassette_last_files_unchanged", **lab) == doc["files_unchanged"] == 0
    assert get(m, "cassette_last_dedup_ratio", **lab) == pytest.approx((doc["size"] - doc["size_new"]) / doc["size"])
    assert series(m, "cassette_last_error_info") == []
    promtool_ok(prom.read_text())
    assert prom.stat().st_mode & 0o777 == 0o644
    assert os.listdir(textdir) == [prom.name], "a temporary file was left beside the textfile"

    # the same data again: nothing new stored, every file found stored already
    res = cassette(*backup, "--name", "mf-2").ok()
    doc = res.json()
    m, _ = parse(prom.read_text())
    ok2 = get(m, "cassette_last_success_timestamp_seconds", **lab)
    assert ok2 > ok1
    assert get(m, "cassette_last_files_new", **lab) == doc["files_new"] == 0
    assert get(m, "cassette_last_files_unchanged", **lab) == doc["files_unchanged"] == doc["files"] > 0
    assert get(m, "cassette_last_dedup_ratio", **lab) == 1

    # the location holds no repository for a while: the backup fails, the success is kept
    away = tmp_path / "repo.away"
    repo.rename(away)
    try:
        res, t0, t1 = _timed(lambda: cassette(*backup, "--name", "mf-3"))
        assert res.rc == 1, res.describe()
    finally:
        if repo.exists():
            shutil.rmtree(repo)
        away.rename(repo)
    m, _ = parse(prom.read_text())
    assert get(m, "cassette_last_success_timestamp_seconds", **lab) == ok2
    failed = get(m, "cassette_last_failure_timestamp_seconds", **lab)
    assert failed is not None and t0 <= failed <= t1, (failed, t0, t1)
    assert series(m, "cassette_last_error_info") == [({**lab, "error": "storage"}, 1.0)], res.err
    texts.append(prom.read_text())
    promtool_ok(texts[-1])
    assert_rules_names(texts, "cassette_last_")
    assert get(m, "cassette_last_duration_seconds", **lab) >= 0
    for name in ("cassette_last_bytes_read", "cassette_last_bytes_stored", "cassette_last_files_new"):
        assert series(m, name) == [], name  # this run has no result

    # a success again keeps the failure, and the error is gone
    cassette(*backup, "--name", "mf-4").ok()
    m, _ = parse(prom.read_text())
    assert get(m, "cassette_last_failure_timestamp_seconds", **lab) == failed
    assert get(m, "cassette_last_success_timestamp_seconds", **lab) > ok2
    assert series(m, "cassette_last_error_info") == []

    # verify: the bytes of its result
    vprom = textdir / "cassette-verify.prom"
    res = cassette("verify", "--repo", repo, "--metrics-file", vprom, "--json").ok()
    m, _ = parse(vprom.read_text())
    vlab = {"op": "verify", "repo": str(repo)}
    assert get(m, "cassette_last_bytes_read", **vlab) == res.json()["bytes"] > 0
    assert get(m, "cassette_last_success_timestamp_seconds", **vlab) is not None
    assert series(m, "cassette_last_files_new") == []


# ---- the agent's GET /metrics ----------------------------------------------------------

def scrape(agent, token=True, epoch=None):
    """(status, Content-Type, text) of GET /metrics."""
    conn = http.client.HTTPSConnection("127.0.0.1", agent.port, context=agent.ctx, timeout=60)
    headers = {"Authorization": f"Bearer {agent.token}"} if token else {}
    if epoch is not None:
        headers["X-Cassette-Epoch"] = str(epoch)
    try:
        conn.request("GET", "/metrics", headers=headers)
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type"), r.read().decode()
    finally:
        conn.close()


def metrics(agent, epoch=None):
    """parse() of GET /metrics; the text is kept in agent.scraped."""
    st, ctype, text = scrape(agent, epoch=epoch)
    assert st == 200, (st, text)
    assert ctype.startswith("text/plain; version=0.0.4"), ctype
    promtool_ok(text)
    agent.scraped = getattr(agent, "scraped", []) + [text]
    return parse(text)


def _ended(m, state):
    return get(m, "cassette_agent_jobs_total", op="backup", state=state) or 0


# s3_bucket before start_agent: the agent is stopped (its jobs with it) before the bucket goes
def test_agent_metrics(s3_server, s3_bucket, start_agent, cassette, node, session, big_data):  # noqa: F811
    env = {"AWS_ACCESS_KEY_ID": s3_server.access_key, "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
           "AWS_REGION": s3_server.region, "AWS_ENDPOINT_URL": s3_server.endpoint}
    loc = f"s3://{s3_bucket}/repo"
    cassette("init", "--repo", loc, "--no-encryption", env=env).ok()
    agent = start_agent(allow=(loc,), env={**env, "CASSETTE_RATE_LIMIT": RATE, "CASSETTE_S3_CONCURRENCY": "1"})

    st, _, _ = scrape(agent, token=False)
    assert st == 401
    m, types = metrics(agent)
    assert types["cassette_agent_jobs"] == "counter"  # the parser names a counter without _total
    assert types["cassette_agent_job_bytes_done"] == "gauge"
    host_id = str(session.execute("SELECT host_id FROM system.local").one().host_id)
    (info, one), = series(m, "cassette_agent_info")
    assert info["host_id"] == host_id and info["version"] and one == 1
    assert get(m, "cassette_agent_epoch") == 0
    assert get(m, "cassette_agent_jobs_running") == 0
    ratios = dict((lab["path"], v) for lab, v in series(m, "cassette_data_directory_free_ratio"))
    assert set(ratios) == {str(p) for p in node.data_dirs}, ratios
    assert all(0 < v <= 1 for v in ratios.values()), ratios
    assert get(m, "process_resident_memory_bytes") > 1 << 20
    succeeded0 = _ended(m, "succeeded")

    # during a backup: the job's series, from its progress record
    job = agent.start_job("backup", {"repo": loc, "name": "am-1", "keyspaces": big_data.keyspaces})
    jid = str(job)
    seen = None
    deadline = time.monotonic() + 300
    while seen is None:
        m, _ = metrics(agent)
        done = get(m, "cassette_agent_job_bytes_done", job_id=jid, op="backup")
        if done:  # bytes moving in some phase
            seen = m
            break
        st, doc = agent.call("GET", f"/v1/jobs/{job}")
        assert doc["state"] == "running", f"the job ended before a scrape saw it move: {doc}"
        assert time.monotonic() < deadline, "no bytes done within 300 s"
        time.sleep(0.05)
    assert get(seen, "cassette_agent_jobs_running") == 1
    (ph, one), = series(seen, "cassette_agent_job_phase")
    assert ph["job_id"] == jid and ph["op"] == "backup" and ph["phase"] and one == 1, ph
    total = get(seen, "cassette_agent_job_bytes_planned", job_id=jid, op="backup")
    assert total is not None and (total == 0 or done <= total), (done, total)
    assert get(seen, "cassette_agent_job_bytes_per_second", job_id=jid, op="backup") >= 0
    st, doc = agent.call("GET", f"/v1/jobs/{job}")  # the record a moment later: never behind
    if doc["state"] == "running" and doc["progress"]["phase"] == ph["phase"]:
        assert doc["progress"]["bytes_done"] >= done, (doc["progress"], done)

    doc, _ = agent.wait_job(job, deadline_s=900)
    assert doc["state"] == "succeeded", doc
    m, _ = metrics(agent)
    assert series(m, "cassette_agent_job_phase") == []
    assert series(m, "cassette_agent_job_bytes_done") == []
    assert get(m, "cassette_agent_jobs_running") == 0
    assert _ended(m, "succeeded") == succeeded0 + 1

    # a canceled job counts as canceled; the epoch follows the highest X-Cassette-Epoch
    job = agent.start_job("backup", {"repo": loc, "name": "am-2", "keyspaces": big_data.keyspaces})
    st, _ = agent.call("POST", f"/v1/jobs/{job}/cancel")
    assert st == 202
    doc, _ = agent.wait_job(job)
    assert doc["state"] == "canceled", doc
    m, _ = metrics(agent, epoch=7)
    assert _ended(m, "canceled") == 1
    assert _ended(m, "succeeded") == succeeded0 + 1
    assert get(m, "cassette_agent_epoch") == 7
    assert_rules_names(agent.scraped, "cassette_agent_", "cassette_data_directory_", "process_")

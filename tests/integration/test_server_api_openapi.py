"""The server's REST API held to docs/server-openapi.yaml, route by route, without Cassandra.

build/asan/tools/server_api_answers (tests/tools/server_api_answers.c) runs requests through
the server's API (server/api.c: tokens, roles, routes, audit; a real SQLite state; fake
discovery and repository hooks) exactly as `cassette server` serves them, and prints each
answer. Every answer here, including the 400/401/403/404/405/409/502 ones, is checked
against the OpenAPI file with tests/integration/openapi_check.py, and the audit log is
checked to hold every change (never a token). test_server_openapi.py does the same against a
running `cassette server`.
"""
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from openapi_check import OpenAPI  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOOL = pathlib.Path(os.environ.get("CASSETTE_SERVER_API_ANSWERS",
                                   ROOT / "build" / "asan" / "tools" / "server_api_answers"))
TOKENS = ("admin-token-0123456789", "oper-token-0123456789ab", "view-token-0123456789ab")


@pytest.fixture(scope="module")
def api():
    return OpenAPI()


def run_requests(tmp_path, requests):
    if not os.access(TOOL, os.X_OK):
        pytest.fail(f"{TOOL} is missing: build it first (make VARIANT=asan all)")
    text = "".join(json.dumps({k: v for k, v in r.items() if k in ("method", "path", "query", "token", "body")})
                   + "\n" for r in requests)
    p = subprocess.run([str(TOOL), str(tmp_path)], input=text, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    answers = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(answers) == len(requests), p.stderr
    return answers


def R(method, path, status, token="admin", body=None, query=None, check=None):
    r = {"method": method, "path": path, "token": token, "expect": status}
    if body is not None:
        r["body"] = body
    if query is not None:
        r["query"] = query
    if token is None:
        del r["token"]
    if check:
        r["check"] = check
    return r


CLUSTER = {"id": "c1", "contact": "127.0.0.4:9042", "repo": "s3://bucket/c1", "labels": {"env": "test"}}
CLUSTER2 = {"id": "c2", "agents": ["http://127.0.0.5:7620"], "repo": "s3://bucket/c2"}
TASK = {"id": "t1", "cluster": "c1", "kind": "backup", "schedule": "@every 20s",
        "window": ["mon-00:00-sun-23:59"], "params": {"keyspaces": ["ks"]}}
TASK2 = {"id": "t2", "cluster": "c2", "kind": "purge", "schedule": "0 3 * * *",
         "timezone": "Europe/Berlin", "params": {"keep_last": 3}}

SCRIPT = [
    R("GET", "/healthz", 200, token=None),
    R("GET", "/version", 200, token=None, check=lambda b: b["tokens"] is True),
    # the status page: no token
    R("GET", "/", 200, token=None, check=lambda b: b.startswith("<!doctype html>")),
    R("GET", "/status", 200, token=None, check=lambda b: '<script src="/status.js"' in b),
    R("GET", "/status.js", 200, token=None, check=lambda b: "textContent" in b),
    R("GET", "/status.css", 200, token=None),
    R("POST", "/", 405, token=None),
    R("POST", "/healthz", 405, token=None),
    R("GET", "/metrics", 401, token=None),
    R("GET", "/metrics", 401, token="not-a-token-0123456789"),
    R("GET", "/metrics", 200, token="view", check=lambda b: "cassette_clusters 0\n" in b),
    R("GET", "/metrics", 200, token="oper", check=lambda b: "cassette_clusters 1\n" in b),  # limited to c1
    R("POST", "/metrics", 405, token="view"),
    R("GET", "/v1/server", 200, token="view"),
    R("GET", "/v1/server", 401, token=None),
    R("GET", "/v1/clusters", 401, token="not-a-token-0123456789"),
    # clusters
    R("POST", "/v1/clusters", 201, body=CLUSTER),
    R("POST", "/v1/clusters", 201, body=CLUSTER2),
    R("POST", "/v1/clusters", 409, body=CLUSTER),
    R("POST", "/v1/clusters", 400, body='{"id": "c3", '),
    R("POST", "/v1/clusters", 400, body={"id": "c3", "contact": "h", "repo": "s3://b", "colour": "red"}),
    R("POST", "/v1/clusters", 400, body={"id": "c3", "contact": "h"}),
    R("POST", "/v1/clusters", 502, body={"id": "c3", "contact": "unreachable:9042", "repo": "s3://b"}),
    R("POST", "/v1/clusters", 403, token="view", body={"id": "c3", "contact": "h", "repo": "s3://b"}),
    R("POST", "/v1/clusters", 403, token="oper", body={"id": "c3", "contact": "h", "repo": "s3://b"}),
    R("GET", "/v1/clusters", 200, token="view"),
    R("GET", "/v1/clusters", 200, token="oper", check=lambda b: [c["id"] for c in b["clusters"]] == ["c1"]),
    R("GET", "/v1/clusters/c1", 200, token="oper"),
    R("GET", "/v1/clusters/c2", 403, token="oper"),
    R("GET", "/v1/clusters/c3", 404),
    R("PATCH", "/v1/clusters/c2", 200, body={"labels": {"team": "a"}}),
    R("PATCH", "/v1/clusters/c2", 400, body={"name": "x"}),
    R("PATCH", "/v1/clusters/c2", 403, token="oper", body={"labels": {}}),
    R("PATCH", "/v1/clusters/c3", 404, body={"labels": {}}),
    R("POST", "/v1/clusters/c1/discover", 200),
    R("POST", "/v1/clusters/c3/discover", 404),
    R("GET", "/v1/clusters/c1/backups", 200, token="view"),
    R("GET", "/v1/clusters/c1/backups/b1", 200, token="view"),
    R("GET", "/v1/clusters/c1/backups/nope", 404, token="view"),
    R("GET", "/v1/clusters/c2/backups", 403, token="oper"),
    # tasks
    R("POST", "/v1/tasks", 201, body=TASK),
    R("POST", "/v1/tasks", 201, body=TASK2),
    R("POST", "/v1/tasks", 409, body=TASK),
    R("POST", "/v1/tasks", 400, body={"cluster": "c1", "kind": "backup", "schedule": "0 0 30 2 *"}),
    R("POST", "/v1/tasks", 400, body={"cluster": "c1", "kind": "backup",
                                      "window": ["01:00-05:00", "04:00-06:00"]}),
    R("POST", "/v1/tasks", 400, body={"cluster": "c1", "kind": "backup", "params": {"repo": "s3://x"}}),
    R("POST", "/v1/tasks", 400, body={"cluster": "c1", "kind": "backup", "owner": "me"}),
    R("POST", "/v1/tasks", 404, body={"cluster": "c3", "kind": "backup"}),
    R("POST", "/v1/tasks", 403, token="oper", body={"cluster": "c1", "kind": "backup"}),
    R("GET", "/v1/tasks", 200, token="view"),
    R("GET", "/v1/tasks", 200, token="view", query="cluster=c2"),
    R("GET", "/v1/tasks", 403, token="oper", query="cluster=c2"),
    R("GET", "/v1/tasks/t1", 200, token="oper", check=lambda b: b["next"] > b["created"]),
    R("GET", "/v1/tasks/t2", 403, token="oper"),
    R("GET", "/v1/tasks/t9", 404, token="view"),
    R("PATCH", "/v1/tasks/t1", 200, body={"enabled": False}, check=lambda b: b["next"] is None),
    R("PATCH", "/v1/tasks/t1", 400, body={"cluster": "c2"}),
    R("PATCH", "/v1/tasks/t1", 400, body={"schedule": "99 * * * *"}),
    R("PATCH", "/v1/tasks/t9", 404, body={"enabled": True}),
    R("POST", "/v1/tasks/t1/run", 202, token="oper"),
    R("POST", "/v1/tasks/t2/run", 403, token="oper"),
    R("POST", "/v1/tasks/t1/run", 403, token="view"),
    R("POST", "/v1/tasks/t9/run", 404, token="oper"),
    # runs: backups and restores
    R("POST", "/v1/clusters/c1/backups", 202, token="oper", body={}),
    R("POST", "/v1/clusters/c1/backups", 202, token="oper",
      body={"type": "cluster_consistent", "pause_cmd": "true", "resume_cmd": "true"}),
    R("POST", "/v1/clusters/c1/backups", 400, token="oper", body={"type": "cluster_consistent"}),
    R("POST", "/v1/clusters/c2/backups", 403, token="oper", body={}),
    R("POST", "/v1/clusters/c3/backups", 404, body={}),
    R("POST", "/v1/clusters/c1/restores", 202, token="oper", body={"backup": "b1", "nodes": ["127.0.0.4"]}),
    R("POST", "/v1/clusters/c1/restores", 400, token="oper", body={}),
    R("GET", "/v1/clusters/c1/restores", 200, token="view"),
    R("GET", "/v1/runs", 200, token="view"),
    R("GET", "/v1/runs", 200, token="view", query="cluster=c1&kind=backup&state=queued&limit=2&since=0"),
    R("GET", "/v1/runs", 400, token="view", query="state=asleep"),
    R("GET", "/v1/runs", 400, token="view", query="limit=0"),
    R("GET", "/v1/runs", 403, token="oper", query="cluster=c2"),
    R("GET", "/v1/runs/r-nope", 404, token="view"),
    R("POST", "/v1/runs/r-nope/cancel", 404, token="oper"),
    R("DELETE", "/v1/clusters/c1", 409),
    R("DELETE", "/v1/tasks/t2", 403, token="oper"),
    R("DELETE", "/v1/tasks/t2", 204),
    R("DELETE", "/v1/tasks/t2", 404),
    R("DELETE", "/v1/clusters/c2", 204),
    R("GET", "/v1/audit", 403, token="oper"),
    R("GET", "/v1/audit", 400, query="limit=x"),
    R("GET", "/v1/audit", 200, query="limit=1000"),
    R("GET", "/v1/nowhere", 404, token="view"),
    R("PUT", "/v1/clusters", 405),
]


def test_every_route_answers_as_the_openapi_file_says(tmp_path, api):
    answers = run_requests(tmp_path, SCRIPT)
    routes = set()
    for req, ans in zip(SCRIPT, answers):
        where = f"{req['method']} {req['path']}?{req.get('query', '')}"
        assert ans["status"] == req["expect"], f"{where}: {ans}"
        api.check(req["method"], req["path"], ans["status"], ans["body"])
        if ans.get("content_type"):  # a text answer (a page, /metrics): of a type the file gives
            assert ans["content_type"].split(";")[0] in api.media_types(req["method"], req["path"], ans["status"]), \
                (where, ans["content_type"])
        if "check" in req:
            assert req["check"](ans["body"]), f"{where}: {ans['body']}"
        template, _ = api.route(req["path"])
        routes.add((req["method"].lower(), template))
    # every route of the file was called
    for template, item in api.spec["paths"].items():
        for method in item:
            if method in ("get", "post", "patch", "delete", "put"):
                assert (method, template) in routes, f"{method.upper()} {template} was not called"


CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def test_status_page_types_and_policy(tmp_path, api):
    """Each file of the status page has the Content-Type the OpenAPI file gives it and the
    strict policy; the page loads nothing from elsewhere and runs nothing inline; its script
    puts data into the page as text only."""
    paths = ["/", "/status", "/status.js", "/status.css"]
    answers = run_requests(tmp_path, [R("GET", p, 200, token=None) for p in paths])
    for path, ans in zip(paths, answers):
        assert ans["status"] == 200, ans
        assert ans["content_type"].split(";")[0] in api.media_types("GET", path, 200), (path, ans["content_type"])
        assert "charset=utf-8" in ans["content_type"]
        assert ans["csp"] == CSP
    html, js = answers[0]["body"], answers[2]["body"]
    assert answers[1]["body"] == html
    assert "<script>" not in html and "<style" not in html and not re.search(r"<[^>]*\s(on\w+|style)\s*=", html)
    assert "http://" not in html + js and "https://" not in html + js
    for bad in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert bad not in js, bad
    assert "localStorage" not in js and "sessionStorage" in js  # the token: this tab only


def test_cancel_and_the_audit_log(tmp_path, api):
    first = run_requests(tmp_path, [
        R("POST", "/v1/clusters", 201, body=CLUSTER),
        R("POST", "/v1/clusters/c1/backups", 202, token="oper", body={}),
    ])
    run_id = first[1]["body"]["id"]
    answers = run_requests(tmp_path, [
        R("POST", f"/v1/runs/{run_id}/cancel", 202, token="oper"),
        R("POST", f"/v1/runs/{run_id}/cancel", 409, token="oper"),
        R("GET", f"/v1/runs/{run_id}", 200, token="view"),
        R("DELETE", "/v1/clusters/c1", 204),
        R("GET", "/v1/audit", 200),
    ])
    for (method, path), ans in zip([("POST", f"/v1/runs/{run_id}/cancel")] * 2 +
                                   [("GET", f"/v1/runs/{run_id}"), ("DELETE", "/v1/clusters/c1"),
                                    ("GET", "/v1/audit")], answers):
        api.check(method, path, ans["status"], ans["body"])
    assert [a["status"] for a in answers] == [202, 409, 200, 204, 200]
    assert answers[0]["body"]["state"] == "cancelled"
    audit = answers[-1]["body"]["audit"]
    # newest first: delete, refused cancel, cancel, backup, register
    assert [(a["method"], a["status"], a["who"]) for a in audit] == [
        ("DELETE", 204, "root"), ("POST", 409, "ops"), ("POST", 202, "ops"), ("POST", 202, "ops"),
        ("POST", 201, "root")]
    assert all(a["what"] for a in audit)
    text = json.dumps(audit)
    assert not any(t in text for t in TOKENS)

"""The alert rules, their example scrape configuration and the Grafana dashboard (deploy/prometheus/,
deploy/grafana/; README.md, "Alerts and dashboard"). No Cassandra: files and promtool only
(Debian's prometheus package, scripts/install-deps.sh).

- `promtool check rules` accepts deploy/prometheus/cassette-alerts.yml, and `promtool test rules`
  passes tests/prometheus/cassette-alerts.test.yml, which evaluates every alert at a time it
  must fire and at a time it must not (checked here: no alert goes untested);
- every alert has a severity (critical or warning, as the README says) and a summary and a
  description;
- deploy/prometheus/prometheus.yml passes `promtool check config` (its paths pointed at
  temporary files) and has exactly the scrape jobs the rules and the dashboard name;
- every metric name the rules and the dashboard's queries use is in docs/metrics.md's tables
  (tests/integration/promnames.py extracts them; a scrape test can import it to check them
  against a real /metrics);
- the dashboard is a Grafana JSON model whose queries all go to the `datasource` variable,
  parse as PromQL (promtool, each query as a recording rule, variables given values) and use
  only variables it defines or Grafana's own.
"""

import json
import re
import shutil
import subprocess

import pytest
import yaml

from conftest import ROOT
import promnames

RULES = ROOT / "deploy" / "prometheus" / "cassette-alerts.yml"
PROM_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
RULE_TESTS = ROOT / "tests" / "prometheus" / "cassette-alerts.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "cassette-dashboard.json"
METRICS_DOC = ROOT / "docs" / "metrics.md"

# The README's severities (section "Alerts and dashboard").
SEVERITY = {
    "CassetteBackupTooOld": "critical", "CassetteNoCompleteBackup": "critical",
    "CassetteTextfileBackupTooOld": "critical", "CassetteUploadErrors": "critical",
    "CassetteTextfileUploadErrors": "critical", "CassetteDrillFailed": "critical",
    "CassetteVerifyFoundDamage": "critical",
    "CassetteBackupSizeAnomaly": "warning", "CassetteTextfileBackupSizeAnomaly": "warning",
    "CassetteAgentDown": "warning", "CassetteServerDown": "warning",
    "CassetteLeaseFlapping": "warning", "CassetteDataDirectoryLowSpace": "warning",
}
SCRAPE_JOBS = {"cassette-server", "cassette-agent", "node"}
GRAFANA_VARIABLES = {"__rate_interval", "__interval", "__range", "__range_s", "__interval_ms",
                     "__range_ms", "__from", "__to"}


def promtool(*args, timeout=120):
    tool = shutil.which("promtool")
    assert tool, "promtool is missing (scripts/install-deps.sh installs Debian's prometheus package)"
    return subprocess.run([tool, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def alert_rules():
    doc = yaml.safe_load(RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def test_promtool_checks_the_rules():
    p = promtool("check", "rules", RULES)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in p.stdout, p.stdout


def test_promtool_unit_tests_pass():
    p = promtool("test", "rules", RULE_TESTS)
    assert p.returncode == 0 and "SUCCESS" in p.stdout, p.stdout + p.stderr


def test_every_alert_is_tested_firing_and_not_firing():
    doc = yaml.safe_load(RULE_TESTS.read_text())
    fires, silent = set(), set()
    for t in doc["tests"]:
        for case in t.get("alert_rule_test") or ():
            (fires if case.get("exp_alerts") else silent).add(case["alertname"])
    names = {r["alert"] for r in alert_rules()}
    assert names - fires == set(), f"alerts never shown firing: {sorted(names - fires)}"
    assert names - silent == set(), f"alerts never shown silent: {sorted(names - silent)}"
    assert (fires | silent) - names == set(), "tests of alerts that do not exist"


def test_alerts_have_severity_and_annotations():
    rules = alert_rules()
    assert {r["alert"] for r in rules} == set(SEVERITY), "an alert without its README severity"
    for r in rules:
        assert r["labels"]["severity"] == SEVERITY[r["alert"]], r["alert"]
        ann = r.get("annotations") or {}
        assert ann.get("summary") and len(ann.get("description", "")) > 60, r["alert"]


def test_example_prometheus_config(tmp_path):
    text = PROM_CONFIG.read_text()
    doc = yaml.safe_load(text)
    jobs = {s["job_name"] for s in doc["scrape_configs"]}
    assert jobs == SCRAPE_JOBS, jobs
    header = RULES.read_text().split("groups:", 1)[0]
    for j in SCRAPE_JOBS:
        assert f'job="{j}"' in header, f"the rules' header does not name the scrape job {j}"
    used = set()
    for _, expr in promnames.rules_expressions(RULES) + promnames.dashboard_expressions(DASHBOARD):
        used |= set(re.findall(r'\bjob="([^"]+)"', expr))
    assert used <= SCRAPE_JOBS, used - SCRAPE_JOBS
    # promtool wants the files it names to exist: the same configuration, pointed at copies.
    (tmp_path / "cassette-alerts.yml").write_text(RULES.read_text())
    for f in set(re.findall(r"/etc/prometheus/([\w.-]+)", text)) - {"cassette-alerts.yml"}:
        (tmp_path / f).write_text("x\n")
        (tmp_path / f).chmod(0o600)
    conf = tmp_path / "prometheus.yml"
    conf.write_text(text.replace("/etc/prometheus/", f"{tmp_path}/"))
    p = promtool("check", "config", conf)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "SUCCESS: 1 rule files found" in p.stdout + p.stderr, p.stdout + p.stderr


@pytest.mark.parametrize("what", ["rules", "dashboard"])
def test_metric_names_are_documented(what):
    names = (promnames.rules_metric_names(RULES) if what == "rules"
             else promnames.dashboard_metric_names(DASHBOARD))
    assert len(names) > 10, names
    documented = promnames.documented_metrics(METRICS_DOC)
    assert len(documented) > 40, "docs/metrics.md's tables were not read"
    missing = promnames.missing_names(names, documented)
    assert not missing, f"{what} use metric names docs/metrics.md does not list: {sorted(missing)}"


def test_metric_name_extraction():
    f = promnames.expr_metric_names
    assert f('histogram_quantile(0.95, sum by (le, cluster) (rate(a_bucket{cluster=~"$cluster"}'
             '[$__rate_interval])))') == {"a_bucket"}
    assert f('(increase(b_total{error="storage"}[1h]) > 0) or (b_total > 0 unless b_total offset 1h)'
             ) == {"b_total"}
    assert f('count by (cluster) (c{kind="backup"}) unless on (cluster) d') == {"c", "d"}
    assert f('sum(rate(e[5m])) by (le) / ignoring (x) group_left (y) f > bool 2e3') == {"e", "f"}
    assert f('label_replace(g, "dst", "$1", "src", "(.*)") and time() - h{a="b{c}"}') == {"g", "h"}
    assert f('up{job="cassette-agent"} == 0') == {"up"}
    assert promnames.missing_names({"a_bucket", "a_sum", "up", "b"}, {"a": "histogram", "b": "gauge"}) == set()
    assert promnames.missing_names({"b_count"}, {"b": "gauge"}) == {"b_count"}
    assert promnames.missing_names({"a"}, {"a_bucket", "a_sum", "a_count"}) == set()
    assert promnames.used_metric_names(ROOT) == (promnames.rules_metric_names(RULES)
                                                 | promnames.dashboard_metric_names(DASHBOARD))
    assert promnames.exposition_names('# HELP x X.\n# TYPE x counter\nx{a="1"} 2\ny 3\n') == {"x", "y"}


def dashboard():
    return json.loads(DASHBOARD.read_text())


def all_panels(doc):
    out = []
    for p in doc["panels"]:
        out.append(p)
        out.extend(p.get("panels") or ())
    return out


def test_dashboard_model():
    doc = dashboard()
    assert doc["title"] and doc["uid"] and doc["schemaVersion"] >= 30
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    ds = variables["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    panels = all_panels(doc)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    queries = 0
    for p in panels:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        if p["type"] == "row":
            continue
        assert p.get("title") and p.get("description"), p
        assert p["targets"], p["title"]
        for t in [p] + p["targets"]:
            assert t["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        for t in p["targets"]:
            queries += 1
            used = set(re.findall(r"\$\{?(\w+)", t["expr"]))
            unknown = used - set(variables) - GRAFANA_VARIABLES
            assert not unknown, (p["title"], unknown)
    for v in variables.values():
        if v["type"] == "query":
            assert v["datasource"]["uid"] == "${datasource}", v["name"]
    assert queries >= 30, queries


def test_dashboard_covers_the_wanted_views():
    exprs = " ".join(e for _, e in promnames.dashboard_expressions(DASHBOARD))
    for wanted in ["time() - cassette_backup_newest_complete_timestamp_seconds",
                   "histogram_quantile(0.95, sum by (le, cluster, kind) (rate(cassette_task_duration_seconds_bucket",
                   "rate(cassette_backup_bytes_stored_total", "rate(cassette_backup_bytes_read_total",
                   "cassette_backup_last_dedup_ratio", "cassette_queue_length", "cassette_tasks_running",
                   "increase(cassette_task_errors_total", "cassette_repository_size_bytes",
                   "cassette_repository_objects", "cassette_agent_job_bytes_done",
                   "cassette_agent_job_bytes_planned", "cassette_data_directory_free_ratio",
                   "process_resident_memory_bytes", "cassette_drill_rto_seconds"]:
        assert wanted in exprs, wanted


def test_dashboard_queries_parse(tmp_path):
    """Each query, its variables given values, as a recording rule: promtool parses it."""
    values = {"__rate_interval": "5m", "__interval": "1m", "__range": "1d"}
    rules = []
    for i, (where, expr) in enumerate(promnames.dashboard_expressions(DASHBOARD)):
        e = re.sub(r"\$\{?(\w+)\}?", lambda m: values.get(m.group(1), "x"), expr)
        rules.append({"record": f"dashboard:query_{i}", "expr": e})
    f = tmp_path / "dashboard-queries.yml"
    f.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    p = promtool("check", "rules", f)
    assert p.returncode == 0, p.stdout + p.stderr

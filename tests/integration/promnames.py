"""The metric names that PromQL expressions use, the names docs/metrics.md documents, and the
names an exposition (a scrape) has: what test_alert_rules.py compares, and what a scrape test
can import to check that the rules' and the dashboard's names really exist.

- ``expr_metric_names(expr)``: the metric names one PromQL expression selects (a small
  PromQL-aware tokenizer: strings, label matchers, ranges, grouping label lists, template
  variables, numbers and durations, keywords and functions are not names);
- ``rules_metric_names(path)``: those of every rule of a Prometheus rules file;
- ``dashboard_expressions(path)`` / ``dashboard_metric_names(path)``: the queries of a Grafana
  dashboard (panels, rows' panels, template variables' label_values()) and their names;
- ``used_metric_names(root)``: the names of the shipped rules and dashboard together;
- ``documented_metrics(path)``: {name: type} of docs/metrics.md's tables;
- ``exposition_names(text)``: the sample names of a Prometheus text exposition;
- ``missing_names(used, available)``: the used names that are not available, a histogram's
  _bucket/_sum/_count counting as its family's name (and the other way round).
"""

import json
import pathlib
import re

import yaml

# Prometheus' own series, not cassette's (up: one per scrape target).
PROMETHEUS_OWN = {"up", "scrape_duration_seconds", "scrape_samples_scraped",
                  "scrape_samples_post_metric_relabeling", "scrape_series_added"}
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
            "group_right", "offset", "bool", "inf", "nan"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[\w+\]\]")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_TOKEN = re.compile(r"\d[\w.]*|[A-Za-z_:][\w:]*|.", re.S)


def expr_metric_names(expr):
    """The metric names a PromQL expression selects (a set)."""
    s = _STRING.sub('""', expr)
    s = re.sub(r"#[^\n]*", " ", s)             # comments
    s = _VARIABLE.sub("0", s)                  # Grafana's $var, ${var}, [[var]]
    s = _MATCHERS.sub(" ", s)                  # {label="value", ...}
    s = _RANGE.sub(" ", s)                     # [5m], [1h:1m]
    s = _GROUPING.sub(" ", s)                  # by (a, b), on (c), group_left (d)
    tokens = _TOKEN.findall(s)
    names = set()
    for i, tok in enumerate(tokens):
        if not re.fullmatch(r"[A-Za-z_:][\w:]*", tok) or tok.lower() in KEYWORDS:
            continue
        after = next((t for t in tokens[i + 1:] if not t.isspace()), "")
        if after == "(":                       # a function or an aggregation
            continue
        names.add(tok)
    return names


def rules_expressions(path):
    """[(rule name, expression)] of a Prometheus rules file."""
    doc = yaml.safe_load(open(path).read())
    return [(r.get("alert") or r.get("record"), r["expr"])
            for g in doc["groups"] for r in g["rules"]]


def rules_metric_names(path):
    names = set()
    for _, expr in rules_expressions(path):
        names |= expr_metric_names(str(expr))
    return names


def _panels(panels):
    for p in panels or ():
        yield p
        yield from _panels(p.get("panels"))


def dashboard_expressions(path):
    """[(where, expression)]: every panel target's expr, and the metric selector of each
    template variable's label_values(SELECTOR, label) / query_result(EXPR) query."""
    doc = json.loads(open(path).read())
    out = []
    for p in _panels(doc.get("panels")):
        for t in p.get("targets") or ():
            if t.get("expr"):
                out.append((f"panel {p.get('title')!r} {t.get('refId')}", t["expr"]))
    for v in doc.get("templating", {}).get("list", ()):
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else (q or "")
        m = re.fullmatch(r"\s*label_values\((.*),\s*[\w]+\s*\)\s*", q, re.S) or \
            re.fullmatch(r"\s*query_result\((.*)\)\s*", q, re.S)
        if m:
            out.append((f"variable {v.get('name')!r}", m.group(1)))
    return out


def dashboard_metric_names(path):
    names = set()
    for _, expr in dashboard_expressions(path):
        names |= expr_metric_names(expr)
    return names


def used_metric_names(root):
    """The metric names the shipped rules and dashboard use (root: the checkout), for a scrape
    test: ``missing_names(used_metric_names(ROOT), exposition_names(text))``."""
    root = pathlib.Path(root)
    return (rules_metric_names(root / "deploy" / "prometheus" / "cassette-alerts.yml")
            | dashboard_metric_names(root / "deploy" / "grafana" / "cassette-dashboard.json"))


def documented_metrics(path):
    """{name: type} of the tables of docs/metrics.md (rows "| `name` | type | ...")."""
    out = {}
    for line in open(path).read().splitlines():
        m = re.match(r"\|\s*`([a-zA-Z_:][\w:]*)`\s*\|\s*(\w+)\s*\|", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def exposition_names(text):
    """The sample names of a Prometheus text exposition (0.0.4), with the families of its
    # TYPE lines."""
    names = set()
    for line in text.splitlines():
        m = re.match(r"#\s*TYPE\s+(\S+)", line)
        if m:
            names.add(m.group(1))
            continue
        m = re.match(r"([a-zA-Z_:][\w:]*)(?:\{|\s)", line)
        if m and not line.startswith("#"):
            names.add(m.group(1))
    return names


def missing_names(used, available):
    """The names of ``used`` that ``available`` lacks, Prometheus' own series left out.
    ``available``: a set of names (a scrape's: a histogram's NAME_bucket, _sum and _count are
    there, and NAME counts as present with them), or documented_metrics()' {name: type}, where
    NAME_bucket, _sum and _count count as present when NAME is a histogram (or a summary)."""
    types = available if isinstance(available, dict) else {}
    available = set(available)
    missing = set()
    for n in used:
        if n in PROMETHEUS_OWN or n in available:
            continue
        base = next((n[:-len(s)] for s in HISTOGRAM_SUFFIXES if n.endswith(s)), None)
        if base in available and (not types or types[base] in ("histogram", "summary")):
            continue
        if not types and any(n + s in available for s in HISTOGRAM_SUFFIXES):
            continue
        missing.add(n)
    return missing

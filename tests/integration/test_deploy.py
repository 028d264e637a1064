"""The deployment files of the agent (deploy/; README.md, "Running an agent on every node").

- deploy/cassette-agent.service passes `systemd-analyze verify` (the binary under test in place
  of /usr/local/bin/cassette: the check wants an executable there), and its hardening keeps
  `systemd-analyze security` exposure low; it runs as the cassandra user, its token comes
  through LoadCredential, and the node's data directory is writable.
- deploy/compose.yaml parses (YAML): Cassandra 5.0 and a cassette agent sharing its data volume
  and its network, the token a secret.
- Each of them names only options that `cassette agent --help` lists, and deploy/cassette.ini
  only keys it lists ([file: section.key]).
"""

import re
import shutil
import subprocess

import pytest
import yaml

from conftest import ROOT

DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "cassette-agent.service"
COMPOSE = DEPLOY / "compose.yaml"
INI = DEPLOY / "cassette.ini"


@pytest.fixture(scope="module")
def agent_help(cassette_bin):
    p = subprocess.run([str(cassette_bin), "agent", "--help"], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=60)
    assert p.returncode == 0, p.stderr
    options = set(re.findall(r"^\s+(?:-\w, )?(--[a-z0-9-]+)", p.stdout, re.M))
    keys = set(re.findall(r"\[file: ([a-z0-9_]+\.[a-z0-9_]+)\]", p.stdout))
    assert "--token-file" in options and "agent.listen" in keys, p.stdout
    return options, keys


def unit_directives():
    """[(key, value)] of the unit file, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", UNIT.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            k, _, v = line.partition("=")
            out.append((k, v))
    return out


def options_of(args):
    """The --options of an argument list (a value after '=' dropped)."""
    return [a.split("=", 1)[0] for a in args if a.startswith("--")]


def test_systemd_unit_verifies(cassette_bin, tmp_path):
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze is missing (scripts/install-deps.sh installs systemd)"
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/cassette", str(cassette_bin)))
    p = subprocess.run([tool, "verify", "--man=no", str(unit)], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0 and not p.stderr.strip(), (p.returncode, p.stdout, p.stderr)
    p = subprocess.run([tool, "security", "--offline=true", str(unit)], capture_output=True,
                       text=True, timeout=120)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", p.stdout + p.stderr)
    assert m, (p.stdout, p.stderr)
    assert float(m.group(1)) <= 2.5, f"exposure {m.group(1)}:\n{p.stdout}"


def test_systemd_unit_runs_the_agent_as_the_node(agent_help):
    d = unit_directives()
    keys = dict(d)
    assert keys["User"] == "cassandra" and keys["NoNewPrivileges"] == "yes"
    assert keys["ProtectSystem"] == "strict"
    assert "/var/lib/cassandra" in keys["ReadWritePaths"].split()
    creds = [v for k, v in d if k == "LoadCredential"]
    assert "agent.token:/etc/cassette/agent.token" in creds
    args = keys["ExecStart"].split()
    assert args[:2] == ["/usr/local/bin/cassette", "agent"]
    assert args[args.index("--token-file") + 1] == "%d/agent.token"
    unknown = set(options_of(args)) - agent_help[0]
    assert not unknown, f"{UNIT.name} names options `cassette agent --help` does not list: {unknown}"


def test_compose_file(agent_help):
    doc = yaml.safe_load(COMPOSE.read_text())
    services = doc["services"]
    cass, agent = services["cassandra"], services["cassette-agent"]
    assert cass["image"] == "cassandra:5.0"

    def data_volume(svc):
        return [v.split(":")[0] for v in svc["volumes"] if v.split(":")[1] == "/var/lib/cassandra"]
    assert data_volume(cass) == data_volume(agent) == ["cassandra_data"]
    assert "cassandra_data" in doc["volumes"]
    assert agent["network_mode"] == "service:cassandra"
    assert agent["user"] == "cassandra"
    assert 7620 in [p["target"] for p in cass["ports"]]

    cmd = agent["command"]
    assert cmd[0] == "agent"
    unknown = set(options_of(cmd)) - agent_help[0]
    assert not unknown, f"{COMPOSE.name} names options `cassette agent --help` does not list: {unknown}"
    token = [a.split("=", 1)[1] for a in cmd if a.startswith("--token-file=")]
    assert token and token[0].startswith("/run/secrets/")
    for s in agent["secrets"]:
        assert s in doc["secrets"], s
    assert token[0].rsplit("/", 1)[1] in agent["secrets"]


def test_example_ini_names_only_known_keys(agent_help):
    section, unknown = None, []
    for line in INI.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        m = re.fullmatch(r"\[([a-z0-9_]+)\]", line)
        if m:
            section = m.group(1)
            continue
        key = line.split("=", 1)[0].strip()
        if f"{section}.{key}" not in agent_help[1]:
            unknown.append(f"{section}.{key}")
    assert not unknown, f"{INI.name} has keys `cassette agent --help` does not list: {unknown}"

"""The deployment files of the agent (deploy/; README.md, "Running an agent on every node").

- deploy/cassette-agent.service passes `systemd-analyze verify` (the binary under test in place
  of /usr/local/bin/cassette: the check wants an executable there), and its hardening keeps
  `systemd-analyze security` exposure low; it runs as the cassandra user, its token comes
  through LoadCredential, and the node's data directory is writable.
- deploy/compose.yaml parses (YAML): Cassandra 5.0 and a cassette agent sharing its data volume
  and its network, the token a secret.
- Each of them names only options that `cassette agent --help` lists, and deploy/cassette.ini
  only keys it lists ([file: section.key]).
- The server's (README.md, "Running the server"): deploy/cassette-server.service passes
  `systemd-analyze verify` with a low exposure, runs as a user of its own that may write only its
  state directory, its secrets through LoadCredential; compose.yaml's cassette-server reaches the
  node's CQL and agent by the service name, its tokens and key are secrets; deploy/server.ini's
  keys (the commented ones too) are real: those outside [server] are keys `cassette cluster
  --help` lists; [server]'s, once the binary has the server command, keys `cassette server
  --help` lists or the config loader takes ([server] listen and tls_* are the agent's rows),
  and the whole file loads (`--check-config` when the server has it, else the
  config loader through `cassette --config FILE --version`); the unit's and compose's options
  are options `cassette server --help` lists.
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
SERVER_UNIT = DEPLOY / "cassette-server.service"
SERVER_INI = DEPLOY / "server.ini"


def command_help(cassette_bin, command):
    """(options, INI keys) `cassette COMMAND --help` lists, or None when there is no such command."""
    p = subprocess.run([str(cassette_bin), command, "--help"], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=60)
    if p.returncode != 0 and "unknown command" in p.stderr:
        return None
    assert p.returncode == 0, p.stderr
    options = set(re.findall(r"^\s+(?:-\w, )?(--[a-z0-9-]+)", p.stdout, re.M))
    keys = set(re.findall(r"\[file: ([a-z0-9_]+\.[a-z0-9_]+)\]", p.stdout))
    return options, keys


@pytest.fixture(scope="module")
def agent_help(cassette_bin):
    options, keys = command_help(cassette_bin, "agent")
    assert "--token-file" in options and "agent.listen" in keys, (options, keys)
    return options, keys


@pytest.fixture(scope="module")
def cluster_help(cassette_bin):
    options, keys = command_help(cassette_bin, "cluster")
    assert "cluster.agent_ca_file" in keys, keys
    return options, keys


@pytest.fixture(scope="module")
def server_help(cassette_bin):
    """`cassette server --help`'s options and keys, or None while the binary has no server."""
    return command_help(cassette_bin, "server")


def unit_directives(unit=UNIT):
    """[(key, value)] of the unit file, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", unit.read_text())
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


@pytest.mark.parametrize("source", [UNIT, SERVER_UNIT], ids=["agent", "server"])
def test_systemd_unit_verifies(cassette_bin, tmp_path, source):
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze is missing (scripts/install-deps.sh installs systemd)"
    unit = tmp_path / source.name
    unit.write_text(source.read_text().replace("/usr/local/bin/cassette", str(cassette_bin)))
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


def ini_entries(path):
    """[(section, key, line number)] of an INI file, with the keys of commented-out settings
    ("# key = value") too: the examples a reader uncomments must be real keys as well."""
    section, out = None, []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        m = re.fullmatch(r"\[([a-z0-9_]+)\]", line)
        if m:
            section = m.group(1)
            continue
        m = re.fullmatch(r"[#;]\s*([a-z0-9_]+)\s*=\s*\S.*", line) or \
            re.fullmatch(r"([a-z0-9_]+)\s*=.*", line)
        if m:
            out.append((section, m.group(1), n))
    return out


def test_server_unit_runs_apart_from_the_nodes(server_help):
    d = unit_directives(SERVER_UNIT)
    keys = dict(d)
    assert keys["DynamicUser"] == "yes" and "User" not in keys
    assert keys["NoNewPrivileges"] == "yes" and keys["ProtectSystem"] == "strict"
    assert "ReadWritePaths" not in keys, "the server writes no node's files"
    assert keys["StateDirectory"] == "cassette-server"
    creds = {v.split(":", 1)[0]: v.split(":", 1)[1] for k, v in d if k == "LoadCredential"}
    assert creds == {"server.tokens": "/etc/cassette/server.tokens",
                     "server.key": "/etc/cassette/server.key",
                     "agent.token": "/etc/cassette/agent.token"}, creds
    args = keys["ExecStart"].split()
    assert args[:2] == ["/usr/local/bin/cassette", "server"]
    assert args[args.index("--config") + 1] == "/etc/cassette/server.ini"
    assert args[args.index("--tokens-file") + 1] == "%d/server.tokens"
    assert args[args.index("--agent-token-file") + 1] == "%d/agent.token"
    if server_help is None:
        pytest.skip("this binary has no server command yet: its options are not checked")
    unknown = set(options_of(args)) - server_help[0]
    assert not unknown, f"{SERVER_UNIT.name} names options `cassette server --help` does not list: {unknown}"


def test_compose_server(server_help):
    doc = yaml.safe_load(COMPOSE.read_text())
    services = doc["services"]
    server = services["cassette-server"]
    assert server["depends_on"]["cassandra"]["condition"] == "service_healthy"
    assert "network_mode" not in server, "the server has a network of its own"
    assert not any(v.split(":")[1] == "/var/lib/cassandra" for v in server["volumes"]), \
        "the server never touches a node's files"
    state = [v.split(":")[0] for v in server["volumes"] if v.split(":")[1] == "/var/lib/cassette-server"]
    assert state == ["cassette_server"] and "cassette_server" in doc["volumes"]
    assert 7630 in [p["target"] for p in server["ports"]]
    env = dict(e.split("=", 1) for e in server["environment"] if "=" in e)
    assert env["CASSETTE_STATE_DIR"] == "/var/lib/cassette-server"
    cmd = server["command"]
    assert cmd[0] == "server"
    for s in server["secrets"]:
        assert s in doc["secrets"], s
    for flag in ("--tokens-file", "--tls-key", "--agent-token-file"):
        value = [a.split("=", 1)[1] for a in cmd if a.startswith(flag + "=")]
        assert value and value[0].startswith("/run/secrets/"), (flag, cmd)
        assert value[0].rsplit("/", 1)[1] in server["secrets"], (flag, cmd)
    # the agent's token is the one the agent serves with
    agent_cmd = services["cassette-agent"]["command"]
    assert "--token-file=/run/secrets/cassette_agent_token" in agent_cmd
    assert "--agent-token-file=/run/secrets/cassette_agent_token" in cmd
    # the file the compose mounts as server.ini is deploy/server.ini's layout
    mounts = {v.split(":")[1]: v.split(":")[0] for v in server["volumes"]}
    assert mounts["/etc/cassette/server.ini"] == "./server.ini"
    ini = SERVER_INI.read_text()
    assert "/etc/cassette/agent-ca.pem" in ini and "/etc/cassette/agent-ca.pem" in mounts
    assert "/etc/cassette/server.pem" in ini and "/etc/cassette/server.pem" in mounts
    if server_help is None:
        pytest.skip("this binary has no server command yet: its options are not checked")
    unknown = set(options_of(cmd)) - server_help[0]
    assert not unknown, f"{COMPOSE.name} names options `cassette server --help` does not list: {unknown}"


def test_server_ini_names_only_known_keys(cassette_bin, cluster_help, server_help, tmp_path):
    entries = ini_entries(SERVER_INI)
    sections = {s for s, _, _ in entries}
    assert {"server", "cluster", "cassandra", "s3"} <= sections, sections
    assert {("server", k) for k in ("listen", "state", "workers", "export_repo")} <= \
        {(s, k) for s, k, _ in entries}
    unknown = [f"{s}.{k} (line {n})" for s, k, n in entries
               if s != "server" and f"{s}.{k}" not in cluster_help[1]]
    assert not unknown, f"{SERVER_INI.name} has keys `cassette cluster --help` does not list: {unknown}"
    if server_help is None:
        pytest.skip("this binary has no server command yet: the [server] keys are not checked")
    # each [server] key through the binary's own loader ([server] listen and tls_* are the agent's
    # rows, which --help lists as agent.*: the loader is what knows the file)
    lines = SERVER_INI.read_text().splitlines()
    unknown = []
    for section, key, n in entries:
        if section != "server" or f"{section}.{key}" in server_help[1]:
            continue
        one = tmp_path / f"{key}.ini"
        one.write_text(f"[{section}]\n" + re.sub(r"^[#;]\s*", "", lines[n - 1].strip()) + "\n")
        p = subprocess.run([str(cassette_bin), "--config", str(one), "--version"], capture_output=True,
                           text=True, stdin=subprocess.DEVNULL, timeout=60)
        if p.returncode != 0:
            unknown.append(f"{section}.{key} (line {n}): {p.stderr.strip()}")
    assert not unknown, f"{SERVER_INI.name} has keys `cassette server` does not take: {unknown}"
    # the whole file, commented settings uncommented, through the binary's own loader
    text = re.sub(r"(?m)^#\s*([a-z0-9_]+\s*=\s*\S)", r"\1", SERVER_INI.read_text())
    ini = tmp_path / "server.ini"
    ini.write_text(text)
    if "--check-config" in server_help[0]:
        args = [str(cassette_bin), "server", "--config", str(ini), "--check-config"]
    else:
        args = [str(cassette_bin), "--config", str(ini), "--version"]
    p = subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert p.returncode == 0, (args, p.stdout, p.stderr)

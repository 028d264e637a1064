"""A secured node: PasswordAuthenticator, client TLS required (no plaintext on 9042) with client
certificates, and JMX authentication (tests/env/cassandra.sh --auth --tls-required
--tls-client-auth --jmx-auth). The secured pass of
tests/run.sh runs the whole Cassandra part of the suite against such a node; this module adds
what only it can show: each way of getting the login or TLS wrong gives one clear line, and no
secret reaches a command line, a log or the repository."""

import os
import pathlib
import re
import subprocess

import pytest

from conftest import assert_one_error_line

pytestmark = pytest.mark.secure_node

SECRET = "Pw-of-the-backup-role-4c1d"  # distinctive, so a leak is found by a plain search


@pytest.fixture(scope="module", autouse=True)
def _secured(node):
    c = node.config()
    if not (c.get("username") and c.get("ca_file") and c.get("cert_file") and c.get("jmx_user")):
        pytest.fail("these tests need the session's node started with --auth --tls-required"
                    " --tls-client-auth --jmx-auth: run them as tests/run.sh's secured pass"
                    " does (CASSETTE_TEST_NODE=8 CASSETTE_TEST_NODE_OPTIONS=\"--auth"
                    " --tls-required --tls-client-auth --jmx-auth\")")


def ini_with(node, tmp_path, name="cassette.ini", **changes):
    """A copy of the node's cassette.ini with [cassandra] keys changed (None removes one)."""
    out, seen = [], set()
    for line in node.ini.read_text().splitlines():
        m = re.match(r"\s*([a-z_]+)\s*=", line)
        if m and m.group(1) in changes:
            seen.add(m.group(1))
            if changes[m.group(1)] is None:
                continue
            line = f"{m.group(1)} = {changes[m.group(1)]}"
        out.append(line)
        if line.strip() == "[cassandra]":
            insert_at = len(out)
    extra = [f"{k} = {v}" for k, v in changes.items() if k not in seen and v is not None]
    out[insert_at:insert_at] = extra
    p = tmp_path / name
    p.write_text("\n".join(out) + "\n")
    p.chmod(0o600)
    return p


def run_with(cassette, ini, *args, **kw):
    return cassette("--config", ini, *args, config=False, **kw)


def test_wrong_password(cassette, node, tmp_path):
    ini = ini_with(node, tmp_path, password="not-the-password-9f2e")
    cassette("init", "--repo", tmp_path / "repo", "--no-encryption").ok()
    for args in (["schema", "dump"], ["backup", "--repo", tmp_path / "repo"]):
        res = run_with(cassette, ini, *args)
        assert_one_error_line(res)
        assert "authentication failed for user cassandra" in res.err, res.describe()
        assert "not-the-password-9f2e" not in res.err + res.out, res.describe()
    assert not (tmp_path / "repo" / "backups").exists() or not any((tmp_path / "repo" / "backups").iterdir())


def test_wrong_password_from_the_environment(cassette, node, tmp_path):
    ini = ini_with(node, tmp_path, password=None)
    res = run_with(cassette, ini, "schema", "dump", env={"CASSETTE_CQL_PASSWORD": "env-pw-71aa"})
    assert_one_error_line(res)
    assert "authentication failed for user cassandra" in res.err, res.describe()
    assert "env-pw-71aa" not in res.err + res.out


def test_no_credentials(cassette, node, tmp_path):
    ini = ini_with(node, tmp_path, username=None, password=None)
    res = run_with(cassette, ini, "schema", "dump")
    assert_one_error_line(res)
    assert "requires authentication" in res.err, res.describe()


def test_plaintext_to_a_tls_only_port(cassette, node, tmp_path):
    ini = ini_with(node, tmp_path, ca_file=None)
    res = run_with(cassette, ini, "schema", "dump", timeout=120)
    assert_one_error_line(res)
    assert "TLS" in res.err, res.describe()


def test_certificate_of_another_ca(cassette, node, tmp_path):
    other = tmp_path / "other-ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    tmp_path / "other-ca.key", "-out", other, "-days", "2", "-subj",
                    "/CN=some other CA"], check=True, capture_output=True)
    ini = ini_with(node, tmp_path, ca_file=other)
    res = run_with(cassette, ini, "schema", "dump")
    assert_one_error_line(res)
    assert "certificate" in res.err and "verif" in res.err, res.describe()


def test_no_client_certificate(cassette, node, tmp_path):
    ini = ini_with(node, tmp_path, cert_file=None, key_file=None)
    for _ in range(3):  # the alert, or the reset that may overtake it: both say what to set
        res = run_with(cassette, ini, "schema", "dump")
        assert_one_error_line(res)
        assert "client certificate" in res.err and "cert_file" in res.err, res.describe()


def test_client_certificate_without_its_key(cassette, node, tmp_path):
    ini = ini_with(node, tmp_path, key_file=None)
    res = run_with(cassette, ini, "schema", "dump")
    assert_one_error_line(res)
    assert "no usable private key" in res.err and "key_file" in res.err, res.describe()


def test_ca_file_missing(cassette, node, tmp_path):
    ini = ini_with(node, tmp_path, ca_file=tmp_path / "nope.pem")
    res = run_with(cassette, ini, "schema", "dump")
    assert_one_error_line(res)
    assert "nope.pem" in res.err, res.describe()


def _nodetool_recorder(node, tmp_path):
    """A nodetool wrapper that records its arguments and the password file it is given
    (mode, whether it holds the password) before running the node's real nodetool."""
    log = tmp_path / "nodetool-calls.log"
    wrapper = tmp_path / "nodetool-recorder.sh"
    wrapper.write_text(f"""#!/usr/bin/env bash
log={log}
printf 'ARGS' >>"$log"; printf ' %q' "$@" >>"$log"; printf '\\n' >>"$log"
prev=""
for a in "$@"; do
  if [ "$prev" = -pwf ]; then
    printf 'PWF %s mode=%s has_password=%s\\n' "$a" "$(stat -c %a "$a")" \\
      "$(grep -c ' cassandra$' "$a")" >>"$log"
    echo "$a" >>"{tmp_path}/pwf-paths"
  fi
  prev="$a"
done
exec "$@"
""")
    wrapper.chmod(0o755)
    return log, wrapper


def test_jmx_password_goes_through_a_file(cassette, node, session, make_small_data, tmp_path):
    ds = make_small_data("jx", scale=0.005)
    log, wrapper = _nodetool_recorder(node, tmp_path)
    ini = ini_with(node, tmp_path, nodetool=f"{wrapper} {node.config()['nodetool']}")
    cassette("init", "--repo", tmp_path / "repo", "--no-encryption").ok()
    res = run_with(cassette, ini, "backup", "--repo", tmp_path / "repo", "--keyspace", ds.main,
                   "--verbose").ok()
    calls = log.read_text()
    assert "ARGS" in calls and "PWF" in calls, calls
    for line in calls.splitlines():
        if line.startswith("ARGS"):
            assert "-u cassandra" in line and "-pwf" in line, line
            # The test node's JMX password is "cassandra" too: only the user name may be there.
            assert line.count("cassandra") == 1, line
        if line.startswith("PWF"):
            assert "mode=600" in line and "has_password=1" in line, line
    for p in (tmp_path / "pwf-paths").read_text().split():
        assert not os.path.exists(p), f"password file {p} left behind after the run"
    assert res.rc == 0


def test_wrong_jmx_password(cassette, node, make_small_data, tmp_path):
    ds = make_small_data("jw", scale=0.005)
    ini = ini_with(node, tmp_path, jmx_password="wrong-jmx-pw-55e1")
    cassette("init", "--repo", tmp_path / "repo", "--no-encryption").ok()
    res = run_with(cassette, ini, "backup", "--repo", tmp_path / "repo", "--keyspace", ds.main)
    assert_one_error_line(res)
    assert "nodetool" in res.err, res.describe()
    assert "wrong-jmx-pw-55e1" not in res.err + res.out


@pytest.fixture
def backup_role(session):
    """A login role of its own with a distinctive password, allowed what backup and migrate
    need on the test's keyspaces."""
    session.execute("DROP ROLE IF EXISTS cassette_op")
    session.execute(f"CREATE ROLE cassette_op WITH PASSWORD = '{SECRET}' AND LOGIN = true")
    yield "cassette_op"
    session.execute("DROP ROLE IF EXISTS cassette_op")


def test_secrets_never_written(cassette, node, session, make_small_data, backup_role, tmp_path):
    ds = make_small_data("sx", scale=0.005)
    # What README's "A role for cassette" gives: reading everything (the node's settings in
    # the virtual keyspace system_views, which ALL KEYSPACES does not cover), creating the
    # keyspaces a restore brings back (their creator then holds every permission on them,
    # which migrate needs).
    session.execute(f"GRANT SELECT ON ALL KEYSPACES TO {backup_role}")
    session.execute(f"GRANT SELECT ON KEYSPACE system_views TO {backup_role}")
    session.execute(f"GRANT CREATE ON ALL KEYSPACES TO {backup_role}")
    ini = ini_with(node, tmp_path, username=backup_role, password=SECRET)
    repo = tmp_path / "repo"
    cassette("init", "--repo", repo, "--no-encryption").ok()
    mig = tmp_path / "mig"
    mig.mkdir()
    (mig / "20260101000000_t.cql").write_text(f"CREATE TABLE IF NOT EXISTS {ds.main}.sx_extra"
                                              " (k int PRIMARY KEY, v text);\n")
    outputs = []
    debug = {"CASSETTE_DEBUG": "1"}

    def step(*args):
        res = run_with(cassette, ini, *args, env=debug).ok()
        outputs.append(res.out + res.err)

    step("backup", "--repo", repo, "--name", "sx-1", "--keyspace", ds.main, "--verbose")
    step("list", "--repo", repo)
    step("verify", "--repo", repo, "--deep")
    session.execute(f"DROP KEYSPACE {ds.main}", timeout=120)
    step("restore", "--repo", repo, "--backup", "sx-1", "--keyspace", ds.main, "--verbose")
    assert ds.check(session, [ds.main]) > 0
    step("schema", "dump", "--keyspace", ds.main)
    step("migrate", "--dir", mig, "--keyspace", ds.main, "--verbose")
    text = "\n".join(outputs)
    assert SECRET not in text
    leaks = []
    for root in (repo, pathlib.Path(cassette.env()["CASSETTE_STATE_DIR"]),
                 pathlib.Path(cassette.env()["XDG_CACHE_HOME"])):
        for dirpath, _, files in os.walk(root):
            for f in files:
                p = pathlib.Path(dirpath) / f
                if SECRET.encode() in p.read_bytes():
                    leaks.append(str(p))
    assert not leaks, f"the password is written in {leaks}"
    # The tracking table says who applied the migration: the role, not its password.
    rows = list(session.execute(f"SELECT applied_by FROM {ds.main}.cassette_migrations"))
    assert rows and all(SECRET not in (r.applied_by or "") for r in rows)

"""Bad input: every case exits non-zero with exactly one 'cassette: ' line on stderr and
leaves the repository (or the directory passed as one) exactly as it was."""

import pathlib
import socket
import threading
import time

import pytest

from conftest import (assert_one_error_line, assert_tree_unchanged, cql_slug, tree_state,
                      wait_cql)
from dataset import Dataset

BACKUP = "good-1"


@pytest.fixture(scope="module")
def bad_data(cluster_session):
    """The small keyspaces every test here backs up: made once for the module (creating and
    dropping keyspaces is most of what a test here would otherwise cost). No test changes
    them: each one fails before it could."""
    session = cluster_session[1]
    ds = Dataset("bad_shared", seed=7, scale=0.005, compaction=False)
    ds.drop(session)
    ds.load(session)
    yield ds
    try:
        wait_cql(session, 60)
        ds.drop(session)
    except Exception as e:  # cleanup only
        print(f"[test_bad_input] dropping {ds.keyspaces} failed: {e}")


@pytest.fixture
def good_repo(cassette, repo, session, bad_data, request):
    """(repository, data set, table): a repository holding one complete backup of the small
    keyspace, and a table of that keyspace created after the backup (named for the test, so
    the next test's backup holding it does not matter)."""
    ds = bad_data
    cassette("init", "--repo", repo, "--no-encryption").ok()
    res = cassette("backup", "--repo", repo, "--name", BACKUP, "--keyspace", ds.main,
                   "--json").ok()
    assert res.json().get("complete") is True, res.describe()
    later = "later_" + cql_slug(request)[-30:]
    session.execute(f"CREATE TABLE {ds.main}.{later} (k int PRIMARY KEY, v text)")
    return repo, ds, f"{ds.main}.{later}"


def _check(cassette, path, args, rc):
    before = tree_state(path)
    assert before, f"{path} is empty, nothing to compare"
    res = cassette(*args)
    assert_one_error_line(res)
    assert res.rc == rc, f"expected exit {rc}\n{res.describe()}"
    assert_tree_unchanged(before, tree_state(path), str(path))
    return res


def test_restore_unknown_backup(cassette, good_repo):
    repo, _, _ = good_repo
    _check(cassette, repo, ["restore", "--repo", repo, "--backup", "no-such-backup"], 1)


@pytest.mark.parametrize("command", ["list", "verify", "restore", "backup"])
def test_not_a_repository(cassette, tmp_path, command):
    """--repo naming a non-empty directory without cassette.repo is refused."""
    d = tmp_path / "not-a-repo"
    (d / "sub").mkdir(parents=True)
    (d / "notes.txt").write_text("precious, not a repository\n")
    (d / "sub" / "data.bin").write_bytes(bytes(range(256)) * 8)
    args = {"list": ["list", "--repo", d],
            "verify": ["verify", "--repo", d],
            "restore": ["restore", "--repo", d, "--backup", BACKUP],
            "backup": ["backup", "--repo", d, "--keyspace", "system_schema"]}[command]
    _check(cassette, d, args, 1)


def test_unreachable_node(cassette, good_repo):
    repo, ds, _ = good_repo
    _check(cassette, repo, ["backup", "--repo", repo, "--cql-port", "1",
                            "--keyspace", ds.main], 1)


def test_failing_nodetool(cassette, good_repo):
    repo, ds, _ = good_repo
    _check(cassette, repo, ["backup", "--repo", repo, "--nodetool", "/bin/false",
                            "--keyspace", ds.main], 1)


@pytest.mark.parametrize("which", ["later", "nosuch"])
def test_restore_table_not_in_backup(cassette, good_repo, which):
    repo, _, later = good_repo
    table = later if which == "later" else "nosuch_ks.nosuch_table"
    _check(cassette, repo, ["restore", "--repo", repo, "--backup", BACKUP,
                            "--table", table], 1)


def test_unknown_command(cassette, good_repo):
    repo, _, _ = good_repo
    _check(cassette, repo, ["frobnicate", "--repo", repo], 2)


def test_unknown_option(cassette, good_repo):
    repo, _, _ = good_repo
    _check(cassette, repo, ["list", "--repo", repo, "--no-such-option"], 2)
    _check(cassette, repo, ["--no-such-option", "backup", "--repo", repo], 2)


@pytest.mark.parametrize("answer", ["silent", "http"])
def test_not_a_cql_server(cassette, good_repo, answer):
    """A port that accepts connections but never answers ends at --cql-timeout; one that
    answers something else than CQL is named. Either way one line, the repository as it was."""
    repo, ds, _ = good_repo
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]
    stop = threading.Event()

    def serve():  # "http": answer every connection like a web server, then close
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.recv(64)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")

    t = threading.Thread(target=serve, daemon=True)
    if answer == "http":
        t.start()
    try:
        t0 = time.monotonic()
        res = _check(cassette, repo, ["backup", "--repo", repo, "--cql-host", "127.0.0.1",
                                      "--cql-port", port, "--cql-timeout", "2s",
                                      "--keyspace", ds.main], 1)
        took = time.monotonic() - t0
    finally:
        stop.set()
        if t.is_alive():
            t.join()
        srv.close()
    assert f"127.0.0.1:{port}" in res.err, res.describe()
    if answer == "silent":
        assert "timed out after 2000 ms" in res.err, res.describe()
        assert 1.5 < took < 30, res.describe()
    elif cassette_uses_tls(cassette):
        assert "does not speak TLS on this port" in res.err, res.describe()
    else:
        assert "not a CQL frame" in res.err and "native transport port" in res.err, res.describe()


def cassette_uses_tls(cassette):
    return "ca_file" in pathlib.Path(cassette.ini).read_text()

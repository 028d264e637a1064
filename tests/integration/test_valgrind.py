"""The release build under valgrind: a backup and an import restore, no leaks, no errors."""

import os
import pathlib
import shutil

import pytest

from conftest import ROOT

VALGRIND = ["valgrind", "--quiet", "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99",
            "--track-fds=no"]


@pytest.fixture
def release_bin():
    path = pathlib.Path(os.environ.get("CASSETTE_RELEASE_BIN", ROOT / "build" / "cassette"))
    if not os.access(path, os.X_OK):
        pytest.fail(f"release binary {path} is missing: run make first")
    if shutil.which("valgrind") is None:
        pytest.fail("valgrind is not installed: run scripts/install-deps.sh")
    return path


def test_backup_and_restore_under_valgrind(cassette, release_bin, repo, session,
                                           make_small_data):
    ds = make_small_data("vg", scale=0.005)
    cassette("init", "--repo", repo, "--no-encryption").ok()
    res = cassette("backup", "--repo", repo, "--name", "vg-1", "--keyspace", ds.main,
                   prefix=VALGRIND, bin=release_bin, timeout=1200)
    assert res.rc == 0, res.describe()
    print(f"\nbackup under valgrind: {res.seconds:.1f}s")

    for t in ds.tables_of(ds.main):
        session.execute(f"TRUNCATE {t.full_name}", timeout=120)
    res = cassette("restore", "--repo", repo, "--backup", "vg-1", "--keyspace", ds.main,
                   prefix=VALGRIND, bin=release_bin, timeout=1200)
    assert res.rc == 0, res.describe()
    print(f"restore under valgrind: {res.seconds:.1f}s")
    assert ds.check(session, keyspaces=[ds.main]) > 0

"""The Azure side of cassette's test environment: a real Azurite (Microsoft's Azure Storage
emulator) on loopback, run by tests/env/azurite.sh, and tests/env/azblob.py as the
independent client. Nothing here needs Cassandra.

Fixtures (imported into conftest.py):

- ``azurite`` (session): the Azurite of tests/env/azurite.sh (port $CASSETTE_AZURITE_PORT,
  directory $CASSETTE_TEST_DIR/azurite), started if it is not running and then stopped at
  the end of the session; an :class:`Azurite`.
- ``az_container`` (function): a fresh container with a unique name, deleted after the
  test. Its value is the name.
"""

import os
import pathlib
import subprocess

import pytest

from s3env import unique_bucket_name

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
AZURITE_SH = ROOT / "tests" / "env" / "azurite.sh"
BASE = pathlib.Path(os.environ.get("CASSETTE_TEST_DIR", "/tmp/cassette-test"))


class Azurite:
    """The Azurite of tests/env/azurite.sh under $CASSETTE_TEST_DIR/azurite."""

    def __init__(self, dir=None):
        self.dir = pathlib.Path(dir) if dir else BASE / "azurite"
        self._env = None

    def sh(self, *args, check=True, timeout=180):
        cmd = [str(AZURITE_SH), "--dir", str(self.dir), *[str(a) for a in args]]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise AssertionError(f"azurite.sh {' '.join(map(str, args))} failed (exit "
                                 f"{p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    def is_running(self):
        return self.sh("status", check=False).returncode == 0

    def start(self):
        self._env = None
        return self.sh("start").stdout.strip()

    def stop(self):
        self._env = None
        return self.sh("stop").stdout.strip()

    @property
    def port(self):
        return int(self.sh("port").stdout.strip())

    def env(self):
        """{AZURE_STORAGE_ACCOUNT, AZURE_STORAGE_KEY, CASSETTE_AZ_ENDPOINT} for cassette (from
        `azurite.sh env`)."""
        if self._env is None:
            out = self.sh("env").stdout
            env = {}
            for line in out.splitlines():
                line = line.strip()
                if line.startswith("export "):
                    line = line[len("export "):]
                name, sep, value = line.partition("=")
                if sep and name in ("AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY", "CASSETTE_AZ_ENDPOINT"):
                    env[name] = value.strip("'\"")
            assert set(env) == {"AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY",
                                "CASSETTE_AZ_ENDPOINT"}, out
            self._env = env
        return dict(self._env)

    def endpoint_via(self, base_url):
        """The Blob endpoint as seen through a proxy at base_url (the account stays in the
        path)."""
        return base_url + "/" + self.env()["AZURE_STORAGE_ACCOUNT"]

    def blob(self, *args):
        """tests/env/azblob.py against the server; its stdout."""
        return self.sh("blob", *args).stdout

    def mkcontainer(self, name):
        self.sh("mkcontainer", name)
        return name

    def rmcontainer(self, name):
        self.blob("rmcontainer", name)


_default = None


def default_azurite():
    global _default
    if _default is None:
        _default = Azurite()
    return _default


@pytest.fixture(scope="session")
def azurite():
    srv = default_azurite()
    started = not srv.is_running()
    print(f"\n[azenv] {srv.start()}")
    yield srv
    if started:
        print(f"\n[azenv] {srv.stop()}")


@pytest.fixture
def az_container(azurite, request):
    name = azurite.mkcontainer(unique_bucket_name(request.node.name))
    yield name
    try:
        azurite.rmcontainer(name)
    except AssertionError as e:
        print(f"[azenv] deleting container {name} failed: {e}")

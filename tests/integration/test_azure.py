"""An encrypted az:// repository on the real test node and a real Azurite (tests/env/azurite.sh):
init, backup, list, verify (and --deep), purge and restore, rows read back one by one through
the Python driver; what the container holds is read with our own client (azblob.py). Then a SAS
token instead of the key, and the Azure driver's errors: one line, the right exit code, never a
secret in it."""

import base64
import datetime
import hashlib
import hmac
import json
import subprocess
import urllib.parse

from azenv import az_container, azurite  # noqa: F401  (fixtures)
from conftest import assert_one_error_line


def _keypair(path):
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True, timeout=30)
    return subprocess.run(["age-keygen", "-y", str(path)], check=True, capture_output=True,
                          text=True, timeout=30).stdout.strip()


def _listing(azurite, container, prefix):
    """{name: size} of the committed blobs under prefix, as our own client sees them."""
    out = azurite.blob("list", container, prefix)
    return {name: int(size) for name, size in (line.rsplit(" ", 1) for line in out.splitlines() if line)}


def _backups(cassette, repo, env):
    res = cassette("list", "--repo", repo, "--json", env=env).ok()
    return {b["name"]: b for b in res.json()}


def test_encrypted_repository_round_trip(cassette, session, make_small_data, azurite, az_container,
                                         tmp_path):
    key = tmp_path / "key.txt"
    pub = _keypair(key)
    # 1M blocks: the larger SSTable components go up as several blocks in parallel.
    env = dict(azurite.env(), CASSETTE_AZ_BLOCK_SIZE="1M", CASSETTE_AZ_RETRIES="2")
    repo = f"az://{az_container}/cluster/repo"
    ds = make_small_data("az", scale=0.12)

    cassette("init", "--repo", repo, "--recipient", pub, env=env).ok()
    res = cassette("backup", "--repo", repo, "--name", "az-1", "--keyspace", ds.main,
                   "--keyspace", ds.side, "--json", env=env).ok()
    assert res.json()["complete"] is True and res.json()["files_new"] > 0, res.describe()
    first = _listing(azurite, az_container, "cluster/repo/")
    assert "cluster/repo/cassette.repo" in first, sorted(first)[:20]
    objects = [n for n in first if n.startswith("cluster/repo/objects/")]
    assert objects and any(n.endswith(".manifest") for n in first), sorted(first)[:20]
    assert max(first[n] for n in objects) > 1 << 20, "no object went up in blocks"

    # The side keyspace's rows go: a second backup of the same scope no longer needs its
    # objects, which purge then deletes once az-1 is not kept.
    for t in ds.tables_of(ds.side):
        session.execute(f"TRUNCATE {t.full_name}", timeout=120)
    res = cassette("backup", "--repo", repo, "--name", "az-2", "--keyspace", ds.main,
                   "--keyspace", ds.side, "--json", env=env).ok()
    assert res.json()["complete"] is True, res.describe()
    backups = _backups(cassette, repo, env)
    assert {"az-1", "az-2"} <= set(backups) and all(b["complete"] for b in backups.values()), backups

    cassette("verify", "--repo", repo, "--identity", key, env=env).ok()
    res = cassette("verify", "--deep", "--repo", repo, "--identity", key, "--json", env=env).ok()
    print(f"verify --deep: {res.seconds:.1f}s {res.out.strip()[:300]}")

    res = cassette("purge", "--repo", repo, "--keep-last", "1", "--grace", "0", "--identity", key,
                   "--json", env=env).ok()
    purged = res.json()
    assert purged["objects_deleted"] > 0 and purged["bytes_deleted"] > 0, res.describe()
    assert set(_backups(cassette, repo, env)) == {"az-2"}
    after = _listing(azurite, az_container, "cluster/repo/")
    gone = set(first) - set(after)
    assert len([n for n in gone if n.startswith("cluster/repo/objects/")]) == purged["objects_deleted"], \
        (purged, sorted(gone)[:20])
    cassette("verify", "--deep", "--repo", repo, "--identity", key, env=env).ok()

    # Lose the main keyspace's rows; restore them from az-2 and read every one back.
    for t in ds.tables_of(ds.main):
        session.execute(f"TRUNCATE {t.full_name}", timeout=120)
    res = cassette("restore", "--repo", repo, "--backup", "az-2", "--keyspace", ds.main,
                   "--identity", key, "--json", env=env).ok()
    assert res.json().get("backup") == "az-2", res.describe()
    assert ds.check(session, [ds.main]) == sum(t.count for t in ds.tables_of(ds.main))


def test_errors_are_one_line_without_secrets(cassette, azurite, az_container, tmp_path):
    env = azurite.env()
    secret = env["AZURE_STORAGE_KEY"]
    repo = f"az://{az_container}/r"

    # A wrong key (well-formed): access denied, exit non-zero, the key nowhere.
    wrong = base64.b64encode(b"\x01" * 64).decode()
    res = cassette("init", "--repo", repo, "--no-encryption", env=dict(env, AZURE_STORAGE_KEY=wrong))
    assert res.rc != 0 and "access denied" in res.err, res.describe()
    assert_one_error_line(res)
    assert wrong not in res.err + res.out and secret not in res.err + res.out

    # A key that is not base64: a usage error naming the flag.
    res = cassette("init", "--repo", repo, "--no-encryption", env=dict(env, AZURE_STORAGE_KEY="not*base64"))
    assert res.rc == 2 and "--az-key" in res.err and "not*base64" not in res.err, res.describe()
    assert_one_error_line(res)

    # A bad block size: a usage error naming the flag.
    res = cassette("init", "--repo", repo, "--no-encryption", "--az-block-size", "10K", env=env)
    assert res.rc == 2 and "--az-block-size" in res.err, res.describe()
    assert_one_error_line(res)

    # No credentials at all.
    bare = {k: v for k, v in env.items() if k != "AZURE_STORAGE_KEY"}
    res = cassette("init", "--repo", repo, "--no-encryption", env=dict(bare, AZURE_STORAGE_KEY=""))
    assert res.rc != 0 and "AZURE_STORAGE_KEY" in res.err, res.describe()
    assert_one_error_line(res)

    # A repository in a container that does not exist: list says so (init makes containers).
    res = cassette("list", "--repo", f"az://{az_container}-gone/r", env=env)
    assert res.rc != 0 and "does not exist" in res.err, res.describe()
    assert_one_error_line(res)
    cassette("init", "--repo", f"az://{az_container}x/r", "--no-encryption", env=env).ok()
    azurite.rmcontainer(f"{az_container}x")

    # An invalid container name.
    res = cassette("list", "--repo", "az://No_Such/r", env=env)
    assert res.rc != 0 and "container name" in res.err, res.describe()
    assert_one_error_line(res)

    # The SAS token is a secret too: a malformed one is refused without being quoted.
    sas = "sv=2021-08-06&sig=" + "A" * 20 + "<bad>"
    res = cassette("list", "--repo", repo, env=dict(bare, AZURE_STORAGE_SAS_TOKEN=sas))
    assert res.rc != 0 and sas not in res.err and "A" * 20 not in res.err, res.describe()
    assert_one_error_line(res)
    json.dumps(env)  # the env stays plain strings


def _container_sas(env, container, permissions="racwdl"):
    """A service SAS for the whole container (sr=c), signed with the account key as Azure's
    string-to-sign of version 2020-12-06 and later says."""
    version = "2021-08-06"
    expiry = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)) \
        .strftime("%Y-%m-%dT%H:%M:%SZ")
    account = env["AZURE_STORAGE_ACCOUNT"]
    to_sign = "\n".join([permissions, "", expiry, f"/blob/{account}/{container}", "", "", "", version,
                         "c", "", "", "", "", "", "", ""])
    sig = base64.b64encode(hmac.new(base64.b64decode(env["AZURE_STORAGE_KEY"]), to_sign.encode(),
                                    hashlib.sha256).digest()).decode()
    return urllib.parse.urlencode({"sv": version, "sr": "c", "sp": permissions, "se": expiry, "sig": sig})


def test_sas_token_instead_of_the_key(cassette, azurite, az_container, tmp_path):
    """A repository reached with a container SAS token alone: init, a small object round trip
    through the repository's own files, list; a read-only token cannot take a lock."""
    env = azurite.env()
    sas_env = {k: v for k, v in env.items() if k != "AZURE_STORAGE_KEY"}
    sas_env["AZURE_STORAGE_KEY"] = ""
    sas_env["AZURE_STORAGE_SAS_TOKEN"] = _container_sas(env, az_container)
    repo = f"az://{az_container}/sas"
    cassette("init", "--repo", repo, "--no-encryption", env=sas_env).ok()
    assert cassette("list", "--repo", repo, "--json", env=sas_env).ok().json() == []
    assert "sas/cassette.repo" in azurite.blob("list", az_container, "sas/")

    ro_env = dict(sas_env, AZURE_STORAGE_SAS_TOKEN=_container_sas(env, az_container, "rl"))
    res = cassette("init", "--repo", f"az://{az_container}/ro", "--no-encryption", env=ro_env)
    assert res.rc != 0 and "sig=" not in res.err, res.describe()
    assert_one_error_line(res)

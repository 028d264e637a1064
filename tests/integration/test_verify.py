"""verify: a good repository passes; one flipped byte in one object is found and named."""

import os
import subprocess

from conftest import object_files


def test_verify_detects_a_flipped_byte(cassette, repo, node, session, make_small_data):
    ds = make_small_data("vf", scale=0.02)  # compaction off: live files == backed-up files
    cassette("init", "--repo", repo, "--no-encryption").ok()
    res = cassette("backup", "--repo", repo, "--name", "vf-1", "--keyspace", ds.main,
                   "--keyspace", ds.side, "--json").ok()
    assert res.json()["complete"] is True

    res = cassette("verify", "--repo", repo)
    assert res.rc == 0, res.describe()
    res = cassette("verify", "--repo", repo, "--backup", "vf-1")
    assert res.rc == 0, res.describe()

    objects = [os.path.join(r, f) for r, _d, fs in os.walk(repo / "objects") for f in fs]
    assert objects, "no objects in the repository"
    victim = max(objects, key=os.path.getsize)

    # Which SSTable files does this object hold? Decompress it and match the live files' content
    # (one file, or the small files of one SSTable one after the other: a pack).
    plain = subprocess.run(["zstd", "-d", "-c", "-q", victim], capture_output=True, check=True,
                           timeout=120).stdout
    tables = {path: (k, table) for ks in ds.keyspaces for path, (k, table) in node.table_file_paths(ks).items()}
    held = object_files(plain, {path: path.read_bytes() for path in tables})
    owners = [(f"{tables[p][0]}.{tables[p][1]}", p.name) for p in held]
    assert owners, f"object {victim} matches no live SSTable file"

    size = os.path.getsize(victim)
    os.chmod(victim, 0o644)
    with open(victim, "r+b") as f:
        f.seek(size // 2)
        b = f.read(1)
        f.seek(size // 2)
        f.write(bytes([b[0] ^ 0xFF]))

    # A fast verify compares listings only: the object is there with its size.
    res = cassette("verify", "--repo", repo)
    assert res.rc == 0, res.describe()
    for args in (["verify", "--deep", "--repo", repo], ["verify", "--deep", "--repo", repo, "--backup", "vf-1"]):
        res = cassette(*args)
        assert res.rc == 3, res.describe()  # README: exit 3, damage found
        assert any(t in res.err and name in res.err for t, name in owners), \
            f"stderr names none of {owners}\n{res.describe()}"

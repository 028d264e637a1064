"""Deduplication: an unchanged keyspace costs nothing to back up again, and after new
writes only the components of new SSTables are stored."""

from conftest import assert_tree_unchanged, tree_state

# Components Cassandra may rewrite in place (index summary redistribution, repair).
REWRITTEN_IN_PLACE = ("Statistics.db", "Summary.db")


def _backup(cassette, repo, name, ks):
    res = cassette("backup", "--repo", repo, "--name", name, "--keyspace", ks, "--json").ok()
    out = res.json()
    for key in ("files", "files_new", "files_unchanged", "bytes_read", "bytes_stored",
                "new_files", "complete"):
        assert key in out, f"backup --json lacks {key!r}\n{res.describe()}"
    assert out["complete"] is True, res.describe()
    assert out["files_new"] == len(out["new_files"]), res.describe()
    print(f"\n{name}: files={out['files']} new={out['files_new']}"
          f" unchanged={out['files_unchanged']} read={out['bytes_read']}"
          f" stored={out['bytes_stored']} ({res.seconds:.1f}s)")
    return out


def test_dedup(cassette, repo, node, session, make_small_data):
    ds = make_small_data("dd", scale=0.05)  # compaction disabled: files only appear
    ks = ds.main
    cassette("init", "--repo", repo, "--no-encryption").ok()

    first = _backup(cassette, repo, "dd-1", ks)
    assert first["files_new"] > 0 and first["bytes_stored"] > 0

    objects_before = tree_state(repo / "objects")
    second = _backup(cassette, repo, "dd-2", ks)
    assert second["files_new"] == 0, second["new_files"][:20]
    assert second["new_files"] == []
    assert second["bytes_stored"] == 0
    assert second["bytes_read"] == 0
    assert second["files"] == first["files"]
    assert second["files_unchanged"] == second["files"]
    assert_tree_unchanged(objects_before, tree_state(repo / "objects"), "objects/")

    before = node.table_files(ks)
    for t in ds.tables_of(ks):
        ds.load_table(session, t, start=t.count, stop=t.count + 300)
    node.nodetool("flush", ks)
    third = _backup(cassette, repo, "dd-3", ks)
    after = node.table_files(ks)
    created = after - before
    assert created, "the flush made no new SSTable files"
    assert third["files_new"] > 0

    wrong = []
    for entry in third["new_files"]:
        parts = entry.split("/")
        assert len(parts) == 3, f"new_files entry {entry!r} is not ks/table/filename"
        key = tuple(parts)
        if key in created:
            continue
        if key in before and key[2].endswith(REWRITTEN_IN_PLACE):
            continue
        wrong.append(entry)
    assert not wrong, (f"stored again though they existed before the writes: {wrong[:20]}"
                       f"\nnew SSTable files: {sorted(created)[:20]}")
    # The new Data.db files, unique content, are certainly stored.
    new_data = {f"{k}/{t}/{f}" for (k, t, f) in created if f.endswith("-Data.db")}
    missing = new_data - set(third["new_files"])
    assert not missing, f"new SSTable data files not stored: {sorted(missing)[:20]}"
    assert third["files_unchanged"] > 0

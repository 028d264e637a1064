"""The repository's lifecycle against the real S3 server (versitygw): backups and purges
killed with SIGKILL at random points, backups and purges racing for the repository lock,
the local catalog rebuilt from the repository alone, and the error paths of purge, verify,
catalog and the locks.

Every test here uses an S3 repository (the module's own ``repo`` fixture replaces conftest's
dir|s3 one), so that the lock objects, the listings and the deletes go through the S3 driver.
The random kill points come from one seed per test, printed; set CASSETTE_TEST_SEED to replay.
"""

import json
import os
import random
import signal
import socket
import subprocess
import time

import pytest
from cassandra.concurrent import execute_concurrent_with_args

from conftest import RepoLoc, Result, assert_one_error_line, wait_cql
from s3env import S3Client

JOBS = 4  # cassette's default --jobs: at most this many uploads in flight when killed


# ---- fixtures and helpers ---------------------------------------------------------------

@pytest.fixture
def repo(s3_server, s3_bucket):
    """Always an S3 repository: a prefix in a fresh bucket of the real server (as conftest's
    s3 case, whose environment the ``cassette`` fixture then passes to every run)."""
    env = {"AWS_ACCESS_KEY_ID": s3_server.access_key, "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
           "AWS_REGION": s3_server.region, "AWS_ENDPOINT_URL": s3_server.endpoint,
           "CASSETTE_S3_RETRIES": "2", "CASSETTE_S3_TIMEOUT": "20"}
    loc = RepoLoc(f"s3://{s3_bucket}/repo", s3_server.object_path(s3_bucket, "repo"), env, "s3")
    loc.bucket = s3_bucket
    loc.server = s3_server
    return loc


@pytest.fixture
def keyspace(session, node, request):
    """make(name) -> name: a keyspace of the test's own, dropped (and its snapshots cleared)
    at the end."""
    made = []

    def make(name):
        session.execute(f"DROP KEYSPACE IF EXISTS {name}", timeout=120)
        session.execute(f"CREATE KEYSPACE {name} WITH replication ="
                        " {'class': 'SimpleStrategy', 'replication_factor': 1}", timeout=60)
        made.append(name)
        return name

    yield make
    for ks in made:
        try:
            wait_cql(session, 60)
            node.nodetool("clearsnapshot", "--all", "--", ks, check=False)
            session.execute(f"DROP KEYSPACE IF EXISTS {ks}", timeout=120)
        except Exception as e:  # cleanup only
            print(f"[test_lifecycle] dropping {ks} failed: {e}")


@pytest.fixture
def rng(request):
    seed = int(os.environ.get("CASSETTE_TEST_SEED") or random.SystemRandom().randrange(1 << 32))
    print(f"\n[{request.node.name}] seed {seed} (CASSETTE_TEST_SEED={seed} replays it)")
    return random.Random(seed)


def create_table(session, ks, table, compaction="'enabled': 'false'"):
    session.execute(f"CREATE TABLE {ks}.{table} (id int PRIMARY KEY, gen int, data blob)"
                    f" WITH compaction = {{'class': 'SizeTieredCompactionStrategy', {compaction}}}",
                    timeout=60)


def write_rows(session, ks, table, ids, gen, size, rng):
    """Writes rows (id, gen, size random bytes): incompressible, so stored bytes are real."""
    stmt = session.prepare(f"INSERT INTO {ks}.{table} (id, gen, data) VALUES (?, ?, ?)")
    rows = [(i, gen, rng.randbytes(size)) for i in ids]
    for ok, res in execute_concurrent_with_args(session, stmt, rows, concurrency=32,
                                                results_generator=True):
        if not ok:
            raise res


def read_rows(session, ks, table):
    """{id: (gen, data)} of every row, read with the driver."""
    return {r.id: (r.gen, bytes(r.data))
            for r in session.execute(f"SELECT id, gen, data FROM {ks}.{table}", timeout=120)}


def assert_rows_equal(got, expected, what):
    if got == expected:
        return
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    wrong = sorted(k for k in set(got) & set(expected) if got[k] != expected[k])
    example = ""
    if wrong:
        k = wrong[0]
        example = f" (e.g. id {k}: gen {got[k][0]}, expected gen {expected[k][0]})"
    raise AssertionError(f"{what}: {len(got)} rows read, {len(expected)} expected; missing ids"
                         f" {missing[:10]}, unexpected ids {extra[:10]},"
                         f" different rows {wrong[:10]}{example}")


def restore_and_compare(cassette, repo, session, ks, table, backup, expected):
    session.execute(f"TRUNCATE {ks}.{table}", timeout=120)
    res = cassette("restore", "--repo", repo, "--backup", backup, "--table", f"{ks}.{table}",
                   "--mode", "import").ok()
    assert_rows_equal(read_rows(session, ks, table), expected,
                      f"{ks}.{table} restored from backup {backup}")
    return res


def files_under(path):
    if not os.path.isdir(path):
        return []
    return [os.path.join(r, f) for r, _d, fs in os.walk(path) for f in fs]


def count_objects(repo):
    """Objects in place (not the temporary files of uploads in flight)."""
    return sum(not os.path.basename(p).startswith(".tmp-") for p in files_under(repo / "objects"))


def lock_keys(repo):
    return sorted(os.path.basename(p) for p in files_under(repo / "locks"))


def entries(cassette, repo, *extra):
    """list --json: succeeds, and every entry is a complete or an incomplete backup."""
    res = cassette("list", "--repo", repo, "--json", *extra).ok()
    data = res.json()
    assert isinstance(data, list), res.describe()
    seen = set()
    for e in data:
        assert isinstance(e.get("complete"), bool), f"entry without a complete flag: {e}"
        assert e.get("name") and e.get("host_id"), f"entry without a name: {e}"
        key = (e["name"], e["host_id"])
        assert key not in seen, f"backup {key} listed twice\n{res.describe()}"
        seen.add(key)
    return data


def complete_names(listing):
    return [e["name"] for e in listing if e["complete"]]


def deep_verify(cassette, repo, *extra, limit=60):
    res = cassette("verify", "--repo", repo, "--deep", "--lock-wait", "30s", *extra)
    assert res.rc == 0, res.describe()
    assert res.seconds < limit, f"verify took {res.seconds:.1f}s\n{res.describe()}"
    return res


def purge_json(cassette, repo, *args):
    res = cassette("purge", "--repo", repo, "--json", *args).ok()
    data = res.json()
    for k in ("dry_run", "removed", "removed_incomplete", "objects_deleted", "bytes_deleted",
              "seconds", "backups"):
        assert k in data, f"purge --json lacks {k!r}\n{res.describe()}"
    return data, res


class Run:
    """A cassette process of our own, in a session of its own (so that whatever it started,
    such as the nodetool JVM of a snapshot, can be ended with it by process group)."""

    def __init__(self, cassette, node, args, tmp_path, tag, env=None):
        self.args = [str(a) for a in args]
        cmd = [str(cassette.bin), "--config", str(node.ini), *self.args]
        e = cassette.env()
        e.update(env or {})
        self.out_path, self.err_path = tmp_path / f"{tag}.out", tmp_path / f"{tag}.err"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(cmd, env=e, stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self.t0 = time.monotonic()
        self.killed = False
        self.seconds = None

    def running(self):
        return self.proc.poll() is None

    def _end_group(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its children (nodetool), if any are left
        except (ProcessLookupError, PermissionError):
            pass

    def kill(self):
        """SIGKILL if still running; True if it was killed (False: it had ended already)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)  # not reaped yet: the pid is still ours
        self.proc.wait(timeout=60)
        self.seconds = time.monotonic() - self.t0
        self._end_group()
        # It may have exited on its own just before the signal (then it ends as it would).
        self.killed = self.proc.returncode == -signal.SIGKILL
        return self.killed

    def wait(self, timeout=600):
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"cassette {' '.join(self.args)} still running after {timeout}s")
        self.seconds = time.monotonic() - self.t0
        self._end_group()
        return self.result()

    def result(self):
        return Result(self.args, self.proc.returncode, self.out_path.read_text(errors="replace"),
                      self.err_path.read_text(errors="replace"), self.seconds or 0.0)

    def cleanup(self):
        if self.proc.poll() is None:
            self.kill()


def wait_for(cond, what, proc=None, timeout=120, step=0.005):
    """Polls cond() until true; fails if proc ends first or after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if proc is not None and not proc.running():
            r = proc.wait()
            raise AssertionError(f"{what}: the process ended first\n{r.describe()}")
        assert time.monotonic() < deadline, f"{what}: not after {timeout}s"
        time.sleep(step)


def wait_while_running(cond, proc, step=0.005):
    """Polls cond() until true or until proc ends (which is allowed); returns cond()."""
    while proc.running() and not cond():
        time.sleep(step)
    return cond()


def kill_backup_after_start_mark(cassette, node, repo, ks, name, tmp_path):
    """A backup killed once its start mark is in the repository: an incomplete backup. The
    rate limit keeps it uploading for seconds after the mark."""
    run = Run(cassette, node, ["backup", "--repo", repo, "--name", name, "--keyspace", ks],
              tmp_path, f"killed-{name}", env={"CASSETTE_RATE_LIMIT": "512K"})
    try:
        marks = repo / "backups" / name
        wait_for(lambda: any(p.endswith(".started") for p in files_under(marks)),
                 f"start mark of backup {name}", proc=run)
        assert run.kill(), "the backup ended before it could be killed"
    finally:
        run.cleanup()


def repo_id(cassette, repo):
    res = cassette("status", "--repo", repo, "--json").ok()
    return res.json()["id"]


# ---- 1. backups killed at random points ---------------------------------------------------

KILL_TABLES = ("t0", "t1", "t2")
KILL_ROWS = 240          # per table, 16 KiB each: ~11 MiB of incompressible data to start
KILL_CHANGED = 90        # rows rewritten per table and iteration: ~4 MiB new per backup
KILL_ROW_SIZE = 16 * 1024
KILL_RATE = "3M"         # the killed backups upload at 3 MiB/s: ~1.5 s of uploads each
# Kill points per SIGKILL test: 22 unless CASSETTE_TEST_KILL_ITERATIONS says otherwise
# (tests/run.sh's secured pass runs fewer: what it adds is the connection, not the points).
KILL_ITERATIONS = int(os.environ.get("CASSETTE_TEST_KILL_ITERATIONS") or 22)
# Of those, how many must land where they matter (after an object was stored, while a purge
# held its lock): 5 of 22, in proportion for fewer, at least 2. Half the kill points of each
# test are anchored on what the process has done (objects stored, its lock taken), so that
# this holds however slow the machine is that day.
KILLS_THAT_MATTER = max(2, KILL_ITERATIONS * 5 // 22)


def test_backup_sigkill_points(cassette, repo, node, session, keyspace, rng, tmp_path):
    """A backup SIGKILLed at a random point never leaves a broken complete backup, the next
    backup completes and reuses what the killed one stored (nothing it stored is left
    unreferenced, but for the uploads in flight), and after a final purge everything
    deep-verifies and the newest backup restores row by row."""
    ks = keyspace("lc_kill")
    cassette("init", "--repo", repo, "--no-encryption").ok()
    for t in KILL_TABLES:
        create_table(session, ks, t)  # compaction off: files only appear
    for t in KILL_TABLES:
        write_rows(session, ks, t, range(KILL_ROWS), 0, KILL_ROW_SIZE, rng)
    node.nodetool("flush", ks)
    cassette("backup", "--repo", repo, "--name", "base", "--keyspace", ks).ok()

    def change(gen):
        for t in KILL_TABLES:
            write_rows(session, ks, t, rng.sample(range(KILL_ROWS), KILL_CHANGED), gen,
                       KILL_ROW_SIZE, rng)
        node.nodetool("flush", ks)

    # T: one whole backup run under the conditions of the killed ones (same amount of new
    # data, same rate limit), from the start of the process to its end.
    change(1)
    objects_before = count_objects(repo)
    t0 = time.monotonic()
    res = cassette("backup", "--repo", repo, "--name", "measure", "--keyspace", ks, "--json",
                   env={"CASSETTE_RATE_LIMIT": KILL_RATE}).ok()
    T = time.monotonic() - t0
    measured = res.json()
    # Objects, not files: an SSTable's small files are one object (a pack).
    objects_new = count_objects(repo) - objects_before
    print(f"a backup of one change takes {T:.2f}s ({measured['files_new']} files in {objects_new}"
          f" objects, {measured['bytes_stored']} bytes stored)")

    orphans_before = purge_json(cassette, repo, "--dry-run", "--grace", "0",
                                "--keep-last", "100000")[0]["objects_deleted"]
    stats = {"killed": 0, "mid_upload": 0, "finished": 0}
    last = None
    t_loop = time.monotonic()
    for i in range(KILL_ITERATIONS):
        change(i + 2)
        before = count_objects(repo)
        # Even iterations: a random time from the start (flush, snapshot, schema, uploads);
        # odd ones: once a random number of its objects are in place (mid-upload).
        after_objects = rng.randint(1, max(1, objects_new - 2)) if i % 2 else 0
        delay = 0.0 if after_objects else rng.uniform(0, T)
        run = Run(cassette, node, ["backup", "--repo", repo, "--name", f"k{i}", "--keyspace", ks],
                  tmp_path, f"k{i}", env={"CASSETTE_RATE_LIMIT": KILL_RATE})
        try:
            if after_objects:  # waiting for its objects to appear
                wait_while_running(lambda: count_objects(repo) - before >= after_objects, run)
            time.sleep(delay)  # the random kill point: the test's intent
            killed = run.kill()
        finally:
            run.cleanup()
        at = f"once {after_objects} objects were in place" if after_objects else f"at {delay:.2f}s"
        stored = count_objects(repo) - before
        if killed:
            stats["killed"] += 1
            if stored > 0:
                stats["mid_upload"] += 1
        else:
            stats["finished"] += 1
            r = run.wait()
            assert r.rc == 0, r.describe()

        listing = entries(cassette, repo)
        mine = [e for e in listing if e["name"] == f"k{i}"]
        assert killed or (mine and mine[0]["complete"]), (listing, run.result().describe())
        deep_verify(cassette, repo)

        res = cassette("backup", "--repo", repo, "--name", f"c{i}", "--keyspace", ks,
                       "--json").ok()
        out = res.json()
        assert out["complete"] is True, res.describe()
        last = f"c{i}"
        orphans = purge_json(cassette, repo, "--dry-run", "--grace", "0",
                             "--keep-last", "100000")[0]["objects_deleted"]
        print(f"{i:2d}: kill {at} ({run.seconds:.2f}s/{T:.2f}s):"
              f" {'killed' if killed else 'had ended'},"
              f" {stored} objects stored by it; the next backup stored {out['files_new']} of"
              f" {out['files']} files; unreferenced objects {orphans_before} -> {orphans}")
        assert orphans - orphans_before <= JOBS, (
            f"the backup after the kill left {orphans - orphans_before} objects of the killed"
            f" one unreferenced (it stored {stored}): they were stored again, not reused")
        orphans_before = orphans
    print(f"{KILL_ITERATIONS} iterations in {time.monotonic() - t_loop:.0f}s: {stats}")
    assert stats["mid_upload"] >= KILLS_THAT_MATTER, (
        f"only {stats['mid_upload']} kills landed after an object was stored: {stats}")

    expected = read_rows(session, ks, "t1")  # unchanged since the last backup
    # The killed backups' shared locks conflict with nothing that came since; the purge's
    # exclusive lock breaks every one of them (their pids are dead on this host).
    dead_locks = len(lock_keys(repo))
    data, res = purge_json(cassette, repo, "--grace", "0", "--lock-wait", "30s")
    assert res.seconds < 60, res.describe()
    assert res.err.count("breaking stale lock") == dead_locks, res.describe()
    assert lock_keys(repo) == [], lock_keys(repo)
    print(f"final purge: {dead_locks} dead locks broken, {data['removed_incomplete']} incomplete"
          f" backups and {data['objects_deleted']} objects removed")
    assert data["objects_deleted"] == orphans_before, data
    assert data["removed"] == 0, data  # the default keep-last 168 keeps every complete one
    listing = entries(cassette, repo)
    assert all(e["complete"] for e in listing), [e for e in listing if not e["complete"]]
    deep_verify(cassette, repo)
    again, _ = purge_json(cassette, repo, "--dry-run", "--grace", "0")
    assert again["objects_deleted"] == 0 and again["removed_incomplete"] == 0, again
    restore_and_compare(cassette, repo, session, ks, "t1", last, expected)


# ---- 2. purges killed at random points ----------------------------------------------------

PURGE_HISTORY = 12
PURGE_ITERATIONS = KILL_ITERATIONS
PURGE_ROW_SIZE = 2048


def test_purge_sigkill_points(cassette, repo, node, session, keyspace, rng, tmp_path):
    """A purge SIGKILLed at a random point leaves a repository where every complete backup is
    whole, the newest backups retention keeps are all there, and its lock (its pid is dead on
    this host) is broken by the next process at once; the next purge finishes the job."""
    ks = keyspace("lc_purge")
    cassette("init", "--repo", repo, "--no-encryption").ok()
    # Compaction merges every two SSTables: files come and go, so removing old backups
    # leaves objects no backup needs, and every purge has objects to sweep too.
    for t in ("a", "b"):
        create_table(session, ks, t, compaction="'min_threshold': '2'")
        write_rows(session, ks, t, range(200), 0, PURGE_ROW_SIZE, rng)
    gen = [0]

    def add_backup():
        gen[0] += 1
        for t in ("a", "b"):
            write_rows(session, ks, t, rng.sample(range(200), 20) + [1000 + gen[0]], gen[0],
                       PURGE_ROW_SIZE, rng)
        res = cassette("backup", "--repo", repo, "--name", f"h{gen[0]:03d}", "--keyspace", ks,
                       "--lock-wait", "30s").ok()
        assert res.seconds < 60, res.describe()

    t0 = time.monotonic()
    for _ in range(PURGE_HISTORY):
        add_backup()
    print(f"{PURGE_HISTORY} backups in {time.monotonic() - t0:.1f}s")

    # T: a purge run from the start of the process to its end, and how long it holds its
    # lock, measured on dry runs (the same reading and locking, without the deletes; the
    # first one also fills the catalog with every manifest, so the second is measured).
    first_k = PURGE_HISTORY - 1
    for _ in range(2):
        run = Run(cassette, node, ["purge", "--repo", repo, "--dry-run", "--keep-last", first_k,
                                   "--grace", "0"], tmp_path, "measure")
        seen = gone = None
        while run.running():
            now = time.monotonic() - run.t0
            if lock_keys(repo):
                seen = seen if seen is not None else now
            elif seen is not None and gone is None:
                gone = now
            time.sleep(0.0005)
        r = run.wait()
        assert r.rc == 0, r.describe()
    T = max(1.25 * r.seconds, 0.02)
    T_hold = max(1.25 * ((gone or r.seconds) - (seen or 0)), 0.01)
    print(f"purge --dry-run: {r.seconds * 1000:.0f}ms, holding its lock from"
          f" {(seen or 0) * 1000:.0f}ms to {(gone or r.seconds) * 1000:.0f}ms;"
          f" kill delays in [0, {T * 1000:.0f}ms] from the start, or in"
          f" [0, {T_hold * 1000:.0f}ms] from the lock's appearance")

    stats = {"killed": 0, "holding_lock": 0, "after_deletes": 0, "finished": 0}
    for i in range(PURGE_ITERATIONS):
        if i:
            add_backup()  # so that every purge has a backup to remove
        k = max(2, first_k - i)
        before = entries(cassette, repo)
        keep = complete_names(before)[-k:]  # the newest k complete ones: never removed
        args = ["purge", "--repo", repo, "--keep-last", k, "--grace", "0", "--lock-wait", "30s"]
        from_lock = (i // 2) % 2 == 1
        delay = rng.uniform(0, T_hold if from_lock else T)
        run = Run(cassette, node, args, tmp_path, f"p{i}")
        try:
            if from_lock:  # waiting for the purge's lock to appear
                wait_while_running(lambda: lock_keys(repo), run, step=0.0005)
            time.sleep(delay)  # the random kill point: the test's intent
            holding = bool(lock_keys(repo))
            killed = run.kill()
        finally:
            run.cleanup()
        if killed:
            stats["killed"] += 1
            stats["holding_lock"] += holding
        else:
            stats["finished"] += 1
            r = run.wait()
            assert r.rc == 0, r.describe()

        res = cassette("status", "--repo", repo, "--json").ok()  # takes no lock: never waits
        assert res.seconds < 10, res.describe()
        left = res.json()["locks"]
        after = entries(cassette, repo)
        gone = [e["name"] for e in before if e["complete"]
                and e["name"] not in complete_names(after)]
        stats["after_deletes"] += bool(killed and gone)
        missing = [n for n in keep if n not in complete_names(after)]
        assert not missing, f"purge --keep-last {k} removed backups it keeps: {missing}"

        # Whoever comes next breaks the dead purge's lock at once: every other iteration a
        # verify, every other a purge finishing the job (both wait 30 s at most for a live
        # holder, and must not wait at all here).
        if i % 2 == 0:
            r = deep_verify(cassette, repo, limit=20)
        else:
            r = cassette(*args)
            assert r.rc == 0, r.describe()
            assert r.seconds < 20, r.describe()
            deep_verify(cassette, repo, limit=20)
        if left:
            assert "breaking stale lock" in r.err and "no longer running" in r.err, (
                f"status listed {left} after the kill\n{r.describe()}")
        res = cassette("status", "--repo", repo, "--json").ok()
        assert res.json()["locks"] == [], res.describe()
        assert lock_keys(repo) == [], lock_keys(repo)
        print(f"{i:2d}: keep-last {k}, kill {delay * 1000:.0f}ms after"
              f" {'its lock appeared' if from_lock else 'its start'}:"
              f" {'killed' if killed else 'had ended'}{' holding its lock' if holding else ''};"
              f" {len(gone)} backups gone, {len(complete_names(after))} complete left,"
              f" lock left: {bool(left)}")
    print(f"{PURGE_ITERATIONS} iterations: {stats}")
    assert stats["holding_lock"] >= KILLS_THAT_MATTER, f"too few kills landed while the purge ran: {stats}"

    k = 2
    data, res = purge_json(cassette, repo, "--keep-last", k, "--grace", "0", "--lock-wait", "30s")
    assert res.seconds < 20, res.describe()
    listing = entries(cassette, repo)
    assert len(listing) == k and all(e["complete"] for e in listing), listing
    data, _ = purge_json(cassette, repo, "--dry-run", "--keep-last", k, "--grace", "0")
    assert data["objects_deleted"] == 0 and data["bytes_deleted"] == 0, data
    assert data["removed"] == 0 and data["removed_incomplete"] == 0, data
    assert not any(b["remove"] for b in data["backups"]), data["backups"]
    deep_verify(cassette, repo)


# ---- 3. backups and purges at the same time ----------------------------------------------

def test_backups_and_purges_concurrently(cassette, repo, node, session, keyspace, rng, tmp_path):
    """A backup and a purge --keep-last 2 --grace 0 started together: one waits for the
    other's lock and both succeed; every backup left deep-verifies and restores exactly the
    rows the table had when it was taken."""
    ks = keyspace("lc_conc")
    create_table(session, ks, "t", compaction="'min_threshold': '2'")
    write_rows(session, ks, "t", range(300), 0, 4096, rng)
    cassette("init", "--repo", repo, "--no-encryption").ok()  # else the first purge finds no repository
    expected = {}
    waited = 0
    rounds = 6
    for r in range(rounds):
        write_rows(session, ks, "t", rng.sample(range(300), 40) + [1000 + r], r + 1, 4096, rng)
        session.execute(f"DELETE FROM {ks}.t WHERE id = {rng.randrange(300)}", timeout=60)
        name = f"b{r}"
        expected[name] = read_rows(session, ks, "t")
        backup = Run(cassette, node, ["-v", "backup", "--repo", repo, "--name", name,
                                      "--keyspace", ks, "--lock-wait", "120s", "--json"],
                     tmp_path, f"backup-{r}")
        try:
            if r % 2:
                # The purge comes while the backup holds its lock: it must wait.
                wait_for(lambda: lock_keys(repo), "the backup's lock", proc=backup)
            purge = Run(cassette, node, ["-v", "purge", "--repo", repo, "--keep-last", "2",
                                         "--grace", "0", "--lock-wait", "120s", "--json"],
                        tmp_path, f"purge-{r}")
            try:
                rp = purge.wait(300)
            finally:
                purge.cleanup()
            rb = backup.wait(300)
        finally:
            backup.cleanup()
        assert rb.rc == 0 and rb.json()["complete"] is True, rb.describe()
        assert rp.rc == 0, rp.describe()
        w = "waiting for lock" in rp.err + rb.err
        waited += w
        if r % 2:
            assert "waiting for lock" in rp.err, rp.describe()
        names = complete_names(entries(cassette, repo))
        print(f"round {r}: backup {rb.seconds:.1f}s, purge {rp.seconds:.1f}s"
              f" ({rp.json()['removed']} removed, {rp.json()['objects_deleted']} objects),"
              f" {'one waited' if w else 'no wait'}; complete: {names}")
        assert name in names, names
        assert min(r + 1, 2) <= len(names) <= 3 and names[-1] == name, names
        deep_verify(cassette, repo)
    assert waited >= rounds // 2, waited

    listing = entries(cassette, repo)
    assert all(e["complete"] for e in listing), listing
    for e in listing:
        deep_verify(cassette, repo, "--backup", e["name"])
        restore_and_compare(cassette, repo, session, ks, "t", e["name"], expected[e["name"]])


# ---- 4. the catalog is a cache ------------------------------------------------------------

def test_catalog_rebuild_same_list(cassette, repo, node, session, keyspace, rng, tmp_path,
                                   state_dir):
    """The catalog is a cache: deleted, rebuilt from the repository alone, or unreadable, it
    lists the same backups (an incomplete one too), field for field."""
    ks = keyspace("lc_cat")
    cassette("init", "--repo", repo, "--no-encryption").ok()
    create_table(session, ks, "t")
    for n in range(3):
        write_rows(session, ks, "t", range(n * 50, n * 50 + 50), n, 4096, rng)
        cassette("backup", "--repo", repo, "--name", f"c{n}", "--keyspace", ks).ok()
    write_rows(session, ks, "t", range(150, 1150), 9, 4096, rng)  # ~4 MiB: slow at 512K/s
    kill_backup_after_start_mark(cassette, node, repo, ks, "dead", tmp_path)

    first = entries(cassette, repo)
    assert [(e["name"], e["complete"]) for e in first] == \
        [("c0", True), ("c1", True), ("c2", True), ("dead", False)], first

    catalog_dir = state_dir.parent / "cache" / "cassette" / "catalog"
    path = catalog_dir / f"{repo_id(cassette, repo)}.db"
    assert path.is_file(), sorted(os.listdir(catalog_dir)) if catalog_dir.is_dir() else catalog_dir
    for p in catalog_dir.glob(path.name + "*"):  # the database and any -wal/-shm/-journal
        p.unlink()

    res = cassette("catalog", "rebuild", "--repo", repo, "--json").ok()
    assert res.json() == first, res.describe()
    assert path.is_file()
    assert entries(cassette, repo) == first

    # A catalog SQLite cannot read is started over, not an error.
    path.write_bytes(b"this is not a database" * 100)
    assert entries(cassette, repo) == first
    res = cassette("catalog", "rebuild", "--repo", repo).ok()
    assert "4 backups" in res.out, res.describe()
    assert entries(cassette, repo) == first

    # --catalog elsewhere: built from nothing, the same list.
    other = state_dir.parent / "other.db"
    assert entries(cassette, repo, "--catalog", other) == first
    assert other.is_file()


# ---- 5. error paths -----------------------------------------------------------------------

def _hand_lock(repo, kind, pid, purpose="test_lifecycle holder", age=0.0):
    """Writes a lock object as src/repo/lock.c does; returns its key."""
    now = time.time() - age
    body = json.dumps({"kind": kind, "host": socket.gethostname(), "pid": pid, "created": now,
                       "refreshed": now, "purpose": purpose}).encode()
    key = f"repo/locks/{os.urandom(16).hex()}.lock"
    with S3Client(repo.server) as c:
        c.put(repo.bucket, key, body)
    if age:  # the storage's time is a sign of life too: the server's file says when
        path = repo.server.object_path(repo.bucket, key)
        os.utime(path, (now, now))
    return key


def _drop_hand_lock(repo, key):
    with S3Client(repo.server) as c:
        c.delete(repo.bucket, key)


def test_error_paths(cassette, repo, node, session, keyspace, rng, tmp_path):
    """Bad options of purge, verify and catalog, a missing and an incomplete backup, and
    locks held by live processes: one 'cassette: ...' line on stderr and a non-zero exit
    each, the repository unchanged. Locks of dead or silent holders are broken."""
    ks = keyspace("lc_err")
    cassette("init", "--repo", repo, "--no-encryption").ok()
    create_table(session, ks, "t")
    write_rows(session, ks, "t", range(40), 0, 1024, rng)
    cassette("backup", "--repo", repo, "--name", "ok1", "--keyspace", ks).ok()
    write_rows(session, ks, "t", range(40, 1040), 1, 4096, rng)
    kill_backup_after_start_mark(cassette, node, repo, ks, "half", tmp_path)
    listing = entries(cassette, repo)
    assert [(e["name"], e["complete"]) for e in listing] == [("ok1", True), ("half", False)]

    wrong_rc = []  # checked at the end, so that every other check runs first

    def one_line(*args, rc=None, has=()):
        res = cassette(*args)
        assert_one_error_line(res)
        print(f"{' '.join(map(str, args[:1] + args[3:]))}: exit {res.rc}: {res.err.strip()}")
        if rc is not None and res.rc != rc:
            wrong_rc.append(f"exit {res.rc}, not {rc}: {res.describe()}")
        for h in has:
            assert h in res.err, f"{h!r} not in stderr\n{res.describe()}"
        return res

    one_line("purge", "--repo", repo, "--keep-within", "7x", has=("keep-within",))
    one_line("purge", "--repo", repo, "--keep-within", "soon", has=("keep-within",))
    one_line("purge", "--repo", repo, "--grace", "abc", has=("grace",))
    one_line("purge", "--repo", repo, "--grace", "-1h", has=("grace",))
    one_line("purge", "--repo", repo, "--keep-last", "-1", has=("keep-last",))
    one_line("purge", "--repo", repo, "--keep-last", "many", has=("keep-last",))
    one_line("verify", "--repo", repo, "--sample", "10", rc=2, has=("--deep",))
    one_line("verify", "--repo", repo, "--deep", "--sample", "0", rc=2, has=("sample",))
    one_line("verify", "--repo", repo, "--deep", "--sample", "101", rc=2, has=("sample",))
    one_line("verify", "--repo", repo, "--backup", "no-such-backup", rc=1,
             has=("no-such-backup",))
    one_line("verify", "--repo", repo, "--backup", "half", rc=1, has=("half", "incomplete"))
    one_line("verify", "--repo", repo, "--deep", "--backup", "half", rc=1, has=("half",))
    one_line("catalog", "frobnicate", "--repo", repo, rc=2, has=("catalog rebuild",))
    one_line("catalog", "--repo", repo, rc=2, has=("catalog rebuild",))
    # Nothing above changed the repository.
    assert entries(cassette, repo) == listing

    # The killed backup's shared lock is still there (nothing so far conflicted with it): a
    # purge breaks it, its pid being dead on this host, and keeps both backups (grace 24h).
    assert len(lock_keys(repo)) == 1, lock_keys(repo)
    data, res = purge_json(cassette, repo, "--lock-wait", "30s")
    assert data["removed"] == 0 and data["removed_incomplete"] == 0, data
    assert "breaking stale lock" in res.err and "backup half" in res.err, res.describe()
    assert lock_keys(repo) == [] and res.seconds < 15, res.describe()

    # A live holder of an exclusive lock: purge, verify and backup fail at once with
    # --lock-wait 0, and after the wait with --lock-wait 2s, naming the holder.
    key = _hand_lock(repo, "exclusive", os.getpid())
    try:
        for args in (["purge", "--repo", repo, "--grace", "0"],
                     ["verify", "--repo", repo],
                     ["backup", "--repo", repo, "--keyspace", ks, "--name", "blocked"]):
            res = one_line(*args, "--lock-wait", "0", has=("repository is locked by",
                                                          "test_lifecycle holder",
                                                          f"pid {os.getpid()}"))
            assert res.seconds < 15, res.describe()
        res = one_line("purge", "--repo", repo, "--lock-wait", "2s",
                       has=("repository is locked by", "after waiting"))
        assert 2 <= res.seconds < 20, res.describe()
        res = cassette("status", "--repo", repo, "--json").ok()
        assert any("test_lifecycle holder" in line for line in res.json()["locks"]), res.describe()
    finally:
        _drop_hand_lock(repo, key)
    # A live shared holder blocks purge but not verify.
    key = _hand_lock(repo, "shared", os.getpid())
    try:
        one_line("purge", "--repo", repo, "--lock-wait", "0", has=("repository is locked by",))
        cassette("verify", "--repo", repo, "--lock-wait", "0").ok()
    finally:
        _drop_hand_lock(repo, key)
    assert entries(cassette, repo) == listing

    # A lock whose process is gone on this host is broken with a warning, without waiting.
    dead = subprocess.Popen(["true"])
    dead.wait()
    _hand_lock(repo, "exclusive", dead.pid, purpose="a dead purge")
    res = cassette("purge", "--repo", repo, "--dry-run", "--lock-wait", "30s", "--json")
    assert res.rc == 0 and res.seconds < 15, res.describe()
    assert "breaking stale lock" in res.err and "a dead purge" in res.err, res.describe()
    assert lock_keys(repo) == []
    # ... and so is one not refreshed for longer than --lock-stale, whoever held it.
    _hand_lock(repo, "exclusive", os.getpid(), purpose="a hung purge", age=120)
    res = cassette("verify", "--repo", repo, "--lock-stale", "60s", "--lock-wait", "30s")
    assert res.rc == 0 and res.seconds < 15, res.describe()
    assert "breaking stale lock" in res.err and "not refreshed" in res.err, res.describe()
    assert lock_keys(repo) == []
    # verify documents "2: usage" (cassette --help): a bad --sample is a usage error.
    assert not wrong_rc, "\n".join(wrong_rc)

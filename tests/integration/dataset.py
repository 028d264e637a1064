"""Deterministic test data for cassette's integration tests and demo.

A Dataset owns two keyspaces, ``<prefix>_main`` and ``<prefix>_side``:

- ``<prefix>_main.types``: one row per id covering text, int, bigint, uuid, timestamp,
  blob, list<int>, set<text>, map<text,int> and a frozen UDT (with nulls here and there);
- ``<prefix>_main.wide``: clustering key; one wide partition ('hot') of >= 20k rows at
  full scale plus many small partitions;
- ``<prefix>_side.events``: compound clustering key (ts DESC, seq), blobs and a map.

Every value comes from (seed, table, row number), so the expected rows are known without
reading them anywhere (made once per table and kept for the checks).  ``load`` writes with
prepared statements in unlogged batches (``execute_concurrent``); ``check_table`` reads every
row back and compares column by column, failing with a readable diff of the first mismatches.
"""

import datetime
import random
import time
import uuid

from cassandra.concurrent import execute_concurrent
from cassandra.query import BatchStatement, BatchType, SimpleStatement

EPOCH = datetime.datetime(1970, 1, 1)
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
         "india", "juliett", "kilo", "lima", "mike", "november", "oscar", "papa",
         "quebec", "romeo", "sierra", "tango", "ünïcødé", "日本語", "emoji-✓", "o'quote",
         "semi;colon", "comma,", "space d", "x" * 40]

# Rows per table at scale 1.0 (100k in all).
FULL_COUNTS = {"types": 40000, "wide": 40000, "events": 20000}
HOT_ROWS = 25000          # rows of the one wide partition at scale 1.0
EVENT_BUCKETS = 200
LOAD_BATCH_ROWS = 20      # rows per unlogged batch when loading (types: about 15 KiB)


def _ms(n):
    return EPOCH + datetime.timedelta(milliseconds=n)


class Table:
    """One table: its keyspace, columns (in order), key columns and row generator."""

    def __init__(self, dataset, keyspace, name, columns, key, create, gen, count):
        self.dataset = dataset
        self.keyspace = keyspace
        self.name = name
        self.columns = columns
        self.key = key
        self.create = create
        self.gen = gen
        self.count = count
        self._expected = None

    @property
    def full_name(self):
        return f"{self.keyspace}.{self.name}"

    def row(self, i):
        """The expected row number i, as a tuple in column order."""
        return self.gen(random.Random(f"{self.dataset.seed}/{self.name}/{i}"), i)

    def rows(self):
        for i in range(self.count):
            yield self.row(i)

    def key_of(self, row):
        return tuple(row[self.columns.index(k)] for k in self.key)

    def expected(self):
        """{primary key tuple: normalized row tuple} of every expected row. Made once per
        table: the rows never change, and the session's big data set is checked about ten
        times a run (4 s of Python each time at full scale)."""
        if self._expected is None:
            self._expected = {self.key_of(r): tuple(normalize(v) for v in r) for r in self.rows()}
        return self._expected

    def insert_cql(self):
        cols = ", ".join(self.columns)
        marks = ", ".join("?" for _ in self.columns)
        return f"INSERT INTO {self.full_name} ({cols}) VALUES ({marks})"

    def select_cql(self):
        return f"SELECT {', '.join(self.columns)} FROM {self.full_name}"


class Dataset:
    """The test data set; scale 1.0 is 100k rows, 0.2 is 20k."""

    def __init__(self, prefix="ds", seed=1, scale=1.0, compaction=True, replication=1):
        self.prefix = prefix
        self.seed = seed
        self.scale = scale
        self.replication = replication
        self.main = f"{prefix}_main"
        self.side = f"{prefix}_side"
        self.keyspaces = [self.main, self.side]
        counts = {t: max(1, int(n * scale)) for t, n in FULL_COUNTS.items()}
        self.hot_rows = min(counts["wide"], max(1, int(HOT_ROWS * scale)))
        opts = ""
        if not compaction:
            opts = (" WITH compaction = {'class': 'SizeTieredCompactionStrategy',"
                    " 'enabled': 'false'}")
        self.tables = [
            Table(self, self.main, "types",
                  ["id", "name", "n_int", "n_big", "uid", "ts", "data", "nums", "tags",
                   "attrs", "addr"],
                  ["id"],
                  f"CREATE TABLE IF NOT EXISTS {self.main}.types (id int PRIMARY KEY,"
                  " name text, n_int int, n_big bigint, uid uuid, ts timestamp, data blob,"
                  " nums list<int>, tags set<text>, attrs map<text, int>,"
                  f" addr frozen<address>){opts}",
                  self._gen_types, counts["types"]),
            Table(self, self.main, "wide",
                  ["pk", "ck", "val", "amount", "seen"],
                  ["pk", "ck"],
                  f"CREATE TABLE IF NOT EXISTS {self.main}.wide (pk text, ck int, val text,"
                  f" amount bigint, seen timestamp, PRIMARY KEY ((pk), ck)){opts}",
                  self._gen_wide, counts["wide"]),
            Table(self, self.side, "events",
                  ["bucket", "ts", "seq", "kind", "payload", "props"],
                  ["bucket", "ts", "seq"],
                  f"CREATE TABLE IF NOT EXISTS {self.side}.events (bucket int, ts timestamp,"
                  " seq int, kind text, payload blob, props map<text, int>,"
                  " PRIMARY KEY ((bucket), ts, seq)) WITH CLUSTERING ORDER BY (ts DESC, seq ASC)"
                  + (opts.replace(" WITH", " AND") if opts else ""),
                  self._gen_events, counts["events"]),
        ]

    # ---- generators --------------------------------------------------------
    @staticmethod
    def _text(rng, maxwords=6):
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, maxwords)))

    def _gen_types(self, rng, i):
        name = None if i % 50 == 7 else ("" if i % 97 == 3 else self._text(rng))
        n_int = rng.randint(-2**31, 2**31 - 1)
        n_big = rng.randint(-2**63, 2**63 - 1)
        uid = uuid.UUID(int=rng.getrandbits(128), version=4)
        ts = _ms(rng.randint(0, 4102444800000))
        data = None if i % 13 == 5 else rng.randbytes(rng.randint(0, 300))
        nums = None if i % 7 == 2 else [rng.randint(-1000, 1000) for _ in range(rng.randint(1, 8))]
        tags = None if i % 9 == 4 else {rng.choice(WORDS) for _ in range(rng.randint(1, 5))}
        attrs = None if i % 8 == 1 else {rng.choice(WORDS): rng.randint(-99999, 99999)
                                         for _ in range(rng.randint(1, 5))}
        addr = None if i % 11 == 6 else (self._text(rng, 3), rng.choice(WORDS),
                                         rng.randint(10000, 99999))
        return (i, name, n_int, n_big, uid, ts, data, nums, tags, attrs, addr)

    def _gen_wide(self, rng, i):
        if i < self.hot_rows:
            pk, ck = "hot", i
        else:
            j = i - self.hot_rows
            pk, ck = f"p{j % 300:03d}", j // 300
        val = self._text(rng, 10)
        amount = rng.randint(-2**40, 2**40)
        seen = _ms(1700000000000 + i * 1000)
        return (pk, ck, val, amount, seen)

    def _gen_events(self, rng, i):
        bucket = i % EVENT_BUCKETS
        ts = _ms(1600000000000 + (i // EVENT_BUCKETS) * 60000 + rng.randint(0, 59999))
        kind = rng.choice(["created", "updated", "deleted", "viewed"])
        payload = rng.randbytes(rng.randint(1, 200))
        props = None if i % 5 == 0 else {rng.choice(WORDS): rng.randint(0, 1000)
                                         for _ in range(rng.randint(1, 3))}
        return (bucket, ts, i, kind, payload, props)

    # ---- schema and load ---------------------------------------------------
    def table(self, name):
        for t in self.tables:
            if t.name == name or t.full_name == name:
                return t
        raise KeyError(name)

    def tables_of(self, keyspace):
        return [t for t in self.tables if t.keyspace == keyspace]

    @property
    def total_rows(self):
        return sum(t.count for t in self.tables)

    def create_schema(self, session):
        for ks in self.keyspaces:
            session.execute(
                f"CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication ="
                f" {{'class': 'SimpleStrategy', 'replication_factor': {self.replication}}}",
                timeout=60)
        session.execute(f"CREATE TYPE IF NOT EXISTS {self.main}.address"
                        " (street text, city text, zip int)", timeout=60)
        for t in self.tables:
            session.execute(t.create, timeout=60)

    def drop(self, session):
        for ks in self.keyspaces:
            session.execute(f"DROP KEYSPACE IF EXISTS {ks}", timeout=120)

    def load_table(self, session, table, concurrency=16, start=0, stop=None):
        """Writes rows start..stop-1 (default: the table's rows) of the table, in unlogged
        batches of up to LOAD_BATCH_ROWS rows, the rows of a partition together: a quarter
        of the time one insert per row takes, and each batch well under Cassandra's
        batch_size_fail_threshold (50 KiB)."""
        stop = table.count if stop is None else stop
        stmt = session.prepare(table.insert_cql())
        pk_at = table.columns.index(table.key[0])
        partitions = {}
        for i in range(start, stop):
            row = table.row(i)
            partitions.setdefault(row[pk_at], []).append(row)
        rows = [r for part in partitions.values() for r in part]
        batches = []
        for b in range(0, len(rows), LOAD_BATCH_ROWS):
            batch = BatchStatement(batch_type=BatchType.UNLOGGED)
            for r in rows[b:b + LOAD_BATCH_ROWS]:
                batch.add(stmt, r)
            batches.append((batch, ()))
        for ok, res in execute_concurrent(session, batches, concurrency=concurrency,
                                          raise_on_first_error=True, results_generator=True):
            if not ok:
                raise res
        return len(rows)

    def load(self, session, tables=None):
        """Creates the schema and writes every row; returns (rows, seconds)."""
        t0 = time.monotonic()
        self.create_schema(session)
        n = 0
        for t in self.tables:
            if tables is None or t.name in tables or t.full_name in tables:
                n += self.load_table(session, t)
        return n, time.monotonic() - t0

    # ---- read back and compare ---------------------------------------------
    def read_table(self, session, table):
        """{primary key tuple: row tuple} of every row the node returns."""
        stmt = SimpleStatement(table.select_cql(), fetch_size=5000)
        out = {}
        for r in session.execute(stmt, timeout=120):
            row = tuple(normalize(v) for v in r)
            out[table.key_of(row)] = row
        return out

    def check_table(self, session, table, max_report=10):
        """Asserts that the table holds exactly the expected rows; returns the row count."""
        if isinstance(table, str):
            table = self.table(table)
        expected = table.expected()
        actual = self.read_table(session, table)
        problems = []
        missing = [k for k in expected if k not in actual]
        extra = [k for k in actual if k not in expected]
        for k in missing[:max_report]:
            problems.append(f"  missing row {k}")
        for k in extra[:max_report]:
            problems.append(f"  unexpected row {k}: {actual[k]!r}")
        mismatched = 0
        for k, exp in expected.items():
            got = actual.get(k)
            if got is None:
                continue
            for col, e, g in zip(table.columns, exp, got):
                if e != g:
                    mismatched += 1
                    if mismatched <= max_report:
                        problems.append(f"  row {k} column {col}: expected {e!r}, got {g!r}")
        if missing or extra or mismatched:
            head = (f"{table.full_name}: {len(actual)} rows read, {len(expected)} expected;"
                    f" {len(missing)} missing, {len(extra)} unexpected,"
                    f" {mismatched} column values differ. First problems:")
            raise AssertionError("\n".join([head] + problems))
        return len(actual)

    def check(self, session, keyspaces=None):
        """Checks every table (or those of the given keyspaces); returns the row count."""
        n = 0
        for t in self.tables:
            if keyspaces is None or t.keyspace in keyspaces:
                n += self.check_table(session, t)
        return n


# Driver values that compare as they are (most of them: the check reads 100k rows a time).
_PLAIN_TYPES = frozenset({str, int, float, bool, bytes, uuid.UUID, datetime.date})


def normalize(v):
    """Driver values -> plain comparable Python values (sets, dicts, tuples)."""
    if v is None or type(v) in _PLAIN_TYPES:
        return v
    name = type(v).__name__
    if name == "SortedSet" or isinstance(v, (set, frozenset)):
        return frozenset(normalize(x) for x in v)
    if name in ("OrderedMapSerializedKey", "OrderedMap") or isinstance(v, dict):
        return {normalize(k): normalize(x) for k, x in v.items()}
    if isinstance(v, list):
        return [normalize(x) for x in v]
    if isinstance(v, tuple):
        return tuple(normalize(x) for x in v)
    if isinstance(v, datetime.datetime) and v.tzinfo is not None:
        return v.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return v


def main(argv=None):
    """Command line: python dataset.py [--host H] [--prefix P] [--seed S] [--scale X]
    load|check|drop  (used by scripts/demo.sh; handy by hand)."""
    import argparse
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import RoundRobinPolicy

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9042)
    ap.add_argument("--prefix", default="demo")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--scale", type=float, default=0.2)
    ap.add_argument("action", choices=["load", "check", "drop"])
    a = ap.parse_args(argv)
    profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(), request_timeout=120)
    cluster = Cluster([a.host], port=a.port, protocol_version=5,
                      execution_profiles={EXEC_PROFILE_DEFAULT: profile})
    try:
        session = cluster.connect()
        ds = Dataset(a.prefix, seed=a.seed, scale=a.scale)
        if a.action == "load":
            rows, secs = ds.load(session)
            print(f"loaded {rows} rows into {', '.join(ds.keyspaces)} in {secs:.1f} s")
        elif a.action == "drop":
            ds.drop(session)
            print(f"dropped keyspaces {', '.join(ds.keyspaces)}")
        else:
            try:
                n = ds.check(session)
            except AssertionError as e:
                print(f"MISMATCH: {e}")
                return 1
            print(f"all {n} rows came back")
    finally:
        cluster.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

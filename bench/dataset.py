#!/usr/bin/env python3
"""Reproducible benchmark dataset on a real Cassandra 5.0 node (run it through bench/dataset).

  build      load a dataset of SIZE on-disk bytes into a fresh node once and cache the node dir
  provision  lay a cached dataset out as DIR/nodeN (hard links) and start the node
  grow       insert about P% more rows (round R) into a running node, flush, list the new SSTables
  verify     read rows back and compare them with the generator

The data imitate a chat application (Fluxer): keyspace bench_big holds ~90% of the bytes in three
tables with wide partitions (messages, attachments, audit_events: compressible word text, random
blobs up to 64 KiB, collections); keyspace bench_small holds 30 small tables of many column types
(a UDT, a tuple, a static column, a secondary index) plus bench_small.dataset_meta, which records
what was loaded (the base counts and every grow round) so that verify needs only a host.

Every value is a function of (SEED, stream, table, partition or row number): stream 0 is the
base data set, stream R is grow round R, and partition keys embed the stream so rounds never
collide. The base data are a prefix of one fixed stream of "batches" (one partition of each big
table per batch); build loads batches until the measured size of the live SSTables reaches SIZE,
so the number of batches is set by a measurement (it is recorded in dataset.json and in
dataset_meta). The small tables' row counts are a function of SIZE alone.

Loading: prepared statements, rows of one partition grouped into single-partition unlogged
batches, many requests in flight; a None is left unset (no null tombstones, so no tombstone
compaction can start on a provisioned node later). Compaction is size-tiered (the default), with
min_sstable_size scaled down below 2G (see compaction_options). After the load and compactions,
a table left with fewer than 3 SSTables gets a few of its rows written again (same values) and
flushed, until every table has at least 3. Then drain, stop, and the node dir moves to the cache.

Cache: $CASSETTE_CACHE/bench/dataset-<SIZE>-v<GENERATOR_VERSION>/{dataset.json, files.json, nodeN/}.
provision hard-links the data files: nothing may write into them in place (Cassandra never does);
files.json (sizes, mtimes) lets provision refuse a cache that was written through a link.
stdout carries only JSON; progress goes to stderr as "dataset: ..." lines; errors are one line
"dataset: error: ..." and exit status 2 (verify: 1 for mismatches).
"""

import argparse
import collections
import datetime
import decimal
import fcntl
import itertools
import json
import logging
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import uuid
import zlib

GENERATOR_VERSION = 1
SEED = 20250711
CLUSTER_NAME = "cassette-test"      # tests/env/cassandra.sh's default, so a plain restart works
BIG = "bench_big"
SMALL = "bench_small"
KEYSPACES = (BIG, SMALL)
META_TABLE = "dataset_meta"
SMALL_SHARE = 0.10                  # bench_small's share of SIZE ...
SMALL_CAP = 256 << 20               # ... up to this many bytes
SMALL_CHUNKS = 7                    # the small tables load in this many flushed rounds
SMALL_MAX_ROWS = 6000               # at most this many rows in one small table
MIN_SSTABLES = 3                    # every table ends with at least this many SSTables
CONCURRENCY = 128
BATCH_ROWS = 64                     # rows per single-partition batch ...
BATCH_BYTES = 128 << 10             # ... or about this many bytes
MAX_INFLIGHT = 6 << 20              # request bytes in flight (Cassandra's per-client cap: heap/40)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASSANDRA_SH = os.path.join(ROOT, "tests", "env", "cassandra.sh")
CACHE = os.environ.get("CASSETTE_CACHE") or os.path.expanduser("~/.cache/cassette")
BENCH_CACHE = os.path.join(CACHE, "bench")


class Fail(Exception):
    """An error to report as one line."""


def say(msg):
    print(f"dataset: {msg}", file=sys.stderr, flush=True)


def emit(obj):
    print(json.dumps(obj, indent=1, sort_keys=False), flush=True)


# ---- sizes -----------------------------------------------------------------------------------

UNITS = "KMGT"


def parse_size(text):
    """'2G', '500M', '1.5G', '64MiB' -> (bytes, canonical label)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGTkmgt]?)(?:i?[Bb])?\s*", text or "")
    if not m:
        raise Fail(f"bad size '{text}' (want e.g. 64M, 500M, 2G, 20G)")
    n = float(m.group(1))
    if m.group(2):
        n *= 1024 ** (UNITS.index(m.group(2).upper()) + 1)
    n = int(n)
    if n < (8 << 20):
        raise Fail(f"size '{text}' is below the 8M minimum")
    label = f"{n}B"
    for i in range(len(UNITS), 0, -1):
        if n % (1024 ** i) == 0:
            label = f"{n // 1024 ** i}{UNITS[i - 1]}"
            break
    return n, label


def mib(n):
    return n / (1 << 20)


# ---- the generator -----------------------------------------------------------------------------

EPOCH = datetime.datetime(1970, 1, 1)
SNOWFLAKE_EPOCH = 1420070400000
T0 = 1_600_000_000_000              # ms; the base stream's first message
CHAN0 = 1 << 50
GUILD0 = 2 << 50
USER0 = 3 << 50
ID0 = 4 << 50


def sid(s, i, base=ID0):
    """A bigint id unique to (stream, number)."""
    return base + (s << 40) + i


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def _make_corpus(seed):
    """~2 MiB of chat-like text from a Zipf-distributed vocabulary (compresses like real text)."""
    rng = random.Random(f"{seed}/corpus")
    cons, vows = "bcdfghjklmnprstvwz", "aeiouy"
    vocab = ["the", "a", "to", "and", "I", "you", "it", "is", "of", "that", "in", "lol", "ok",
             "this", "for", "on", "we", "just", "be", "with", "have", "not", "are", "so",
             "was", "can", "but", "what", "do", "my", "if", "like", "yeah", "me", "get", "no"]
    seen = set(vocab)
    while len(vocab) < 4000:
        w = "".join(rng.choice(cons) + rng.choice(vows) for _ in range(rng.randint(1, 4)))
        if rng.random() < 0.3:
            w += rng.choice(cons)
        if w not in seen:
            seen.add(w)
            vocab.append(w)
    vocab += ["héllo", "naïve", "日本語", "привет", "😀", "🎉", "👍", "café", "straße"]
    nv = len(vocab)
    out, n = [], 0
    while n < 2 << 20:
        words = []
        for _ in range(rng.randint(3, 25)):
            x = rng.random()
            if x < 0.01:
                words.append(f"<@{rng.randrange(10**17, 10**18)}>")
            elif x < 0.015:
                words.append(f"https://fluxer.example/{vocab[rng.randrange(nv)]}/{rng.getrandbits(40):x}")
            else:
                words.append(vocab[int(nv * rng.random() ** 3)])
        s = " ".join(words)
        s = s[0].upper() + s[1:] + rng.choice([".", ".", "!", "?", "", "\n"]) + " "
        out.append(s)
        n += len(s)
    return "".join(out), vocab


class Gen:
    """Values of one generator version: a pure function of (seed, stream, table, number)."""

    def __init__(self, seed=SEED):
        self.seed = seed
        self.corpus, self.words = _make_corpus(seed)
        self.clen = len(self.corpus)

    # -- helpers
    def rng(self, *parts):
        return random.Random("/".join(str(p) for p in (self.seed,) + parts))

    def text(self, rng, n):
        n = max(0, min(n, 60000))
        o = rng.randrange(self.clen - n)
        return self.corpus[o:o + n]

    def word(self, rng):
        return rng.choice(self.words)

    @staticmethod
    def ts(rng, lo=1_450_000_000_000, hi=1_800_000_000_000):
        return rng.randrange(lo, hi)

    @staticmethod
    def uuid4(rng):
        return uuid.UUID(int=rng.getrandbits(128), version=4)

    @staticmethod
    def blob_log(rng, lo_bits, hi_bits):
        """Random bytes, log-uniform size between 2**lo_bits and 2**hi_bits."""
        return rng.randbytes(int(2 ** rng.uniform(lo_bits, hi_bits)))

    # -- bench_big: one batch = one partition of each big table
    def batch_counts(self, s, b):
        r = self.rng(s, "batch", b)
        if r.random() < 0.04:
            nm = r.randint(500, 1500)              # a hot channel
        else:
            nm = 20 + int(250 * r.random() ** 2)
        return {"messages": nm, "attachments": r.randint(4, 40), "audit_events": r.randint(15, 90)}

    @staticmethod
    def msg_key(s, b):
        return (sid(s, b // 4, CHAN0), b % 4)

    @staticmethod
    def audit_key(s, b):
        from cassandra.util import Date
        return (sid(s, b // 8, GUILD0), Date(18000 + (s * 7919 + b) % 8))

    def big_rows(self, table, s, b):
        """Yields (row, approximate raw bytes) of one big partition, in generation order."""
        n = self.batch_counts(s, b)[table]
        rng = self.rng(s, table, b)
        if table == "messages":
            ch, bucket = self.msg_key(s, b)
            t = T0 + (s * 100_000 + b) * 3_600_000
            authors = [sid(s, rng.randrange(1 << 20), USER0) for _ in range(rng.randint(2, 40))]
            for j in range(n):
                t += rng.randint(100, 30_000)
                mid = ((t - SNOWFLAKE_EPOCH) << 22) | (j & 0x3FFFFF)
                clen = min(16000, int(rng.lognormvariate(6.8, 1.2)))
                content = self.text(rng, clen)
                edited = t + rng.randint(1000, 10**7) if rng.random() < 0.12 else None
                mentions = ({rng.choice(authors) for _ in range(rng.randint(1, 4))}
                            if rng.random() < 0.2 else None)
                meta = ({self.word(rng): self.text(rng, rng.randint(5, 80))
                         for _ in range(rng.randint(1, 5))} if rng.random() < 0.3 else None)
                names = ([f"{self.word(rng)}.{rng.choice(['png', 'jpg', 'gif', 'mp4', 'txt'])}"
                          for _ in range(rng.randint(1, 4))] if rng.random() < 0.1 else None)
                embed = self.blob_log(rng, 11, 16) if rng.random() < 0.5 else None
                row = (ch, bucket, mid, rng.choice(authors), content, t, edited,
                       self.uuid4(rng), mentions, meta, names, embed,
                       rng.choice([0, 0, 0, 4, 32]), rng.random() < 0.01,
                       sid(s, rng.randrange(1000), ID0) if rng.random() < 0.05 else None)
                yield row, 120 + len(content) + (len(embed) if embed else 0)
        elif table == "attachments":
            ch, bucket = self.msg_key(s, b)
            t = T0 + (s * 100_000 + b) * 3_600_000
            for j in range(n):
                t += rng.randint(1000, 200_000)
                aid = ((t - SNOWFLAKE_EPOCH) << 22) | (j & 0x3FFFFF)
                ext, ctype = rng.choice([("png", "image/png"), ("jpg", "image/jpeg"),
                                         ("gif", "image/gif"), ("pdf", "application/pdf"),
                                         ("txt", "text/plain"), ("zip", "application/zip")])
                data = self.blob_log(rng, 12, 16)
                img = ctype.startswith("image/")
                row = (ch, bucket, aid, aid + rng.randint(0, 4096),
                       f"{self.word(rng)}_{self.word(rng)}.{ext}", ctype, len(data),
                       rng.randint(16, 4096) if img else None,
                       rng.randint(16, 4096) if img else None,
                       data, rng.randbytes(16),
                       {self.word(rng) for _ in range(rng.randint(1, 3))} if rng.random() < 0.3 else None,
                       t, rng.random() < 0.05)
                yield row, 200 + len(data)
        elif table == "audit_events":
            guild, day = self.audit_key(s, b)
            t0 = day.days_from_epoch * 86_400_000
            actions = ["MEMBER_KICK", "MEMBER_BAN_ADD", "CHANNEL_UPDATE", "ROLE_UPDATE",
                       "MESSAGE_DELETE", "GUILD_UPDATE", "INVITE_CREATE", "WEBHOOK_UPDATE"]
            for _ in range(n):
                et = t0 + rng.randrange(86_400_000)
                plen = min(40000, int(rng.lognormvariate(8.0, 0.8)))
                before = self.text(rng, plen // 2)
                after = self.text(rng, plen - plen // 2)
                payload = json.dumps({"before": before, "after": after}, ensure_ascii=False)
                changes = {self.word(rng): self.text(rng, rng.randint(3, 60))
                           for _ in range(rng.randint(1, 6))}
                row = (guild, day, et, self.uuid4(rng), sid(s, rng.randrange(1 << 20), USER0),
                       rng.choice(actions), rng.choice(["user", "channel", "role", "message"]),
                       sid(s, rng.randrange(1 << 30)), changes,
                       self.text(rng, rng.randint(0, 200)) if rng.random() < 0.4 else None,
                       payload,
                       f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}")
                yield row, 150 + len(payload)
        else:
            raise KeyError(table)

    def big_partition_key(self, table, s, b):
        return self.audit_key(s, b) if table == "audit_events" else self.msg_key(s, b)


class BigTable:
    def __init__(self, name, columns, pk, ck, order=""):
        self.name = name
        self.columns = columns              # [(name, cql type)]
        self.pk = pk                        # partition key column names
        self.ck = ck                        # clustering column names
        self.order = order
        self.names = [c for c, _ in columns]
        self.ck_idx = [self.names.index(c) for c in ck]
        self.pk_idx = [self.names.index(c) for c in pk]

    def create(self, ks, opts=()):
        cols = ", ".join(f"{c} {t}" for c, t in self.columns)
        key = f"PRIMARY KEY (({', '.join(self.pk)}), {', '.join(self.ck)})"
        opts = ([f"CLUSTERING ORDER BY ({self.order})"] if self.order else []) + list(opts)
        extra = f" WITH {' AND '.join(opts)}" if opts else ""
        return f"CREATE TABLE IF NOT EXISTS {ks}.{self.name} ({cols}, {key}){extra}"


BIG_TABLES = [
    BigTable("messages", [
        ("channel_id", "bigint"), ("bucket", "int"), ("message_id", "bigint"),
        ("author_id", "bigint"), ("content", "text"), ("created_at", "timestamp"),
        ("edited_at", "timestamp"), ("nonce", "uuid"), ("mention_ids", "set<bigint>"),
        ("metadata", "map<text, text>"), ("attachment_names", "list<text>"), ("embed", "blob"),
        ("flags", "int"), ("pinned", "boolean"), ("webhook_id", "bigint")],
        ["channel_id", "bucket"], ["message_id"], "message_id DESC"),
    BigTable("attachments", [
        ("channel_id", "bigint"), ("bucket", "int"), ("attachment_id", "bigint"),
        ("message_id", "bigint"), ("filename", "text"), ("content_type", "ascii"),
        ("size", "int"), ("width", "int"), ("height", "int"), ("data", "blob"),
        ("md5", "blob"), ("tags", "set<text>"), ("uploaded_at", "timestamp"),
        ("spoiler", "boolean")],
        ["channel_id", "bucket"], ["attachment_id"]),
    BigTable("audit_events", [
        ("guild_id", "bigint"), ("day", "date"), ("event_time", "timestamp"),
        ("event_id", "uuid"), ("actor_id", "bigint"), ("action", "text"),
        ("target_type", "text"), ("target_id", "bigint"), ("changes", "map<text, text>"),
        ("reason", "text"), ("payload", "text"), ("ip", "inet")],
        ["guild_id", "day"], ["event_time", "event_id"], "event_time DESC, event_id ASC"),
]


# ---- bench_small ------------------------------------------------------------------------------

class SmallTable:
    def __init__(self, name, columns, key, gen, weight=0.0, fixed=None, minimum=1, post=()):
        self.name = name
        self.columns = columns              # [(name, cql type)]; "static" allowed in the type
        self.key = key                      # "PRIMARY KEY (...)" body
        self.gen = gen                      # gen(g, rng, s, i) -> row tuple
        self.weight = weight
        self.fixed = fixed
        self.minimum = minimum
        self.post = post                    # extra statements after CREATE TABLE
        self.names = [c for c, _ in columns]
        keycols = [k.strip() for k in key.replace("(", ",").replace(")", ",").split(",") if k.strip()]
        self.key_idx = [self.names.index(k) for k in keycols]
        part = key[1:key.index(")")] if key.startswith("(") else keycols[0]
        self.pk_idx = [self.names.index(k.strip()) for k in part.split(",")]

    def create(self, ks, opts=()):
        cols = ", ".join(f"{c} {t}" for c, t in self.columns)
        extra = f" WITH {' AND '.join(opts)}" if opts else ""
        return f"CREATE TABLE IF NOT EXISTS {ks}.{self.name} ({cols}, PRIMARY KEY ({self.key})){extra}"

    def row(self, g, s, i):
        return self.gen(g, g.rng(s, self.name, i), s, i)


def _opt(rng, p, fn):
    return fn() if rng.random() < p else None


def _ip(rng):
    return f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _pins_static(g, s, pidx):
    r = g.rng(s, "channel_pins", "p", pidx)
    return f"#{g.word(r)}-{g.word(r)}"


S = SmallTable
SMALL_TABLES = [
    S("users", [("user_id", "bigint"), ("username", "text"), ("discriminator", "smallint"),
                ("email", "text"), ("global_name", "text"), ("avatar_hash", "ascii"),
                ("flags", "bigint"), ("premium_type", "tinyint"), ("created_at", "timestamp"),
                ("bot", "boolean"), ("locale", "text"), ("date_of_birth", "date"),
                ("phone", "text"), ("password_hash", "blob")],
      "user_id",
      lambda g, r, s, i: (
          sid(s, i, USER0), f"{g.word(r)}{g.word(r)}{i}", r.randrange(10000),
          f"{g.word(r)}.{i}.{s}@mail.example", _opt(r, 0.7, lambda: g.text(r, r.randint(3, 30))),
          _opt(r, 0.8, lambda: f"{r.getrandbits(128):032x}"), r.getrandbits(62),
          r.randrange(4), g.ts(r), r.random() < 0.02, r.choice(["en-US", "fr", "de", "ja", "pt-BR"]),
          _opt(r, 0.5, lambda: _date(r.randrange(-20000, 15000))),
          _opt(r, 0.3, lambda: f"+{r.randrange(10**10, 10**12)}"), r.randbytes(60)),
      weight=3, post=["CREATE INDEX IF NOT EXISTS users_email_idx ON {ks}.users (email)"]),
    S("user_settings", [("user_id", "bigint"), ("theme", "text"), ("locale", "text"),
                        ("guild_positions", "list<bigint>"), ("muted_channels", "set<bigint>"),
                        ("custom_status", "map<text, text>"), ("developer_mode", "boolean"),
                        ("afk_timeout", "int"), ("settings_proto", "blob")],
      "user_id",
      lambda g, r, s, i: (
          sid(s, i, USER0), r.choice(["dark", "light", "ash"]), r.choice(["en-US", "fr", "de"]),
          [sid(0, r.randrange(10**6), GUILD0) for _ in range(r.randint(1, 30))],
          _opt(r, 0.5, lambda: {sid(0, r.randrange(10**6), CHAN0) for _ in range(r.randint(1, 10))}),
          _opt(r, 0.3, lambda: {"text": g.text(r, r.randint(1, 60)), "emoji": g.word(r)}),
          r.random() < 0.1, r.choice([60, 300, 900, 3600]), r.randbytes(r.randint(200, 2000))),
      weight=4),
    S("user_profiles", [("user_id", "bigint"), ("bio", "text"), ("pronouns", "text"),
                        ("banner", "blob"), ("accent_color", "int"),
                        ("connections", "list<frozen<connection>>"),
                        ("primary_connection", "frozen<connection>")],
      "user_id",
      lambda g, r, s, i: (
          sid(s, i, USER0), _opt(r, 0.6, lambda: g.text(r, r.randint(10, 190))),
          _opt(r, 0.3, lambda: r.choice(["he/him", "she/her", "they/them"])),
          _opt(r, 0.4, lambda: Gen.blob_log(r, 13, 15.6)), r.randrange(1 << 24),
          _opt(r, 0.5, lambda: [(r.choice(["github", "steam", "twitch"]), g.word(r),
                                 r.random() < 0.5, r.randrange(3)) for _ in range(r.randint(1, 4))]),
          _opt(r, 0.3, lambda: ("github", g.word(r), True, 1))),
      weight=12),
    S("guilds", [("guild_id", "bigint"), ("name", "text"), ("owner_id", "bigint"),
                 ("icon", "blob"), ("region", "text"), ("features", "set<text>"),
                 ("verification_level", "tinyint"), ("vanity_url", "text"),
                 ("created_at", "timestamp"), ("member_count", "int"),
                 ("system_channel_id", "bigint"), ("description", "text")],
      "guild_id",
      lambda g, r, s, i: (
          sid(s, i, GUILD0), g.text(r, r.randint(3, 40)), sid(0, r.randrange(10**6), USER0),
          _opt(r, 0.8, lambda: Gen.blob_log(r, 11, 14)), r.choice(["eu", "us-east", "asia"]),
          _opt(r, 0.6, lambda: {r.choice(["COMMUNITY", "NEWS", "BANNER", "VANITY_URL", "INVITE_SPLASH"])
                                for _ in range(r.randint(1, 4))}),
          r.randrange(5), _opt(r, 0.1, lambda: f"{g.word(r)}{i}"), g.ts(r), r.randrange(1, 10**6),
          _opt(r, 0.7, lambda: sid(s, r.randrange(10**6), CHAN0)),
          _opt(r, 0.5, lambda: g.text(r, r.randint(10, 300)))),
      weight=8),
    S("guild_members", [("guild_id", "bigint"), ("user_id", "bigint"), ("nick", "text"),
                        ("roles", "set<bigint>"), ("joined_at", "timestamp"),
                        ("premium_since", "timestamp"), ("deaf", "boolean"), ("mute", "boolean"),
                        ("timeout_until", "timestamp")],
      "(guild_id), user_id",
      lambda g, r, s, i: (
          sid(s, i // 40, GUILD0), sid(s, i, USER0), _opt(r, 0.3, lambda: g.text(r, r.randint(2, 32))),
          _opt(r, 0.7, lambda: {sid(0, r.randrange(1000)) for _ in range(r.randint(1, 8))}),
          g.ts(r), _opt(r, 0.05, lambda: g.ts(r)), r.random() < 0.01, r.random() < 0.01,
          _opt(r, 0.02, lambda: g.ts(r))),
      weight=2),
    S("channels", [("channel_id", "bigint"), ("guild_id", "bigint"), ("type", "tinyint"),
                   ("name", "text"), ("topic", "text"), ("position", "int"),
                   ("permission_overwrites", "map<bigint, frozen<tuple<bigint, bigint>>>"),
                   ("nsfw", "boolean"), ("rate_limit_per_user", "int"), ("parent_id", "bigint"),
                   ("last_message_id", "bigint")],
      "channel_id",
      lambda g, r, s, i: (
          sid(s, i, CHAN0), sid(s, i // 20, GUILD0), r.randrange(16), f"{g.word(r)}-{g.word(r)}",
          _opt(r, 0.4, lambda: g.text(r, r.randint(10, 1000))), r.randrange(100),
          _opt(r, 0.5, lambda: {sid(0, r.randrange(1000)): (r.getrandbits(40), r.getrandbits(40))
                                for _ in range(r.randint(1, 6))}),
          r.random() < 0.05, r.choice([0, 0, 5, 30]), _opt(r, 0.6, lambda: sid(s, r.randrange(10**6), CHAN0)),
          r.getrandbits(62)),
      weight=2),
    S("roles", [("guild_id", "bigint"), ("role_id", "bigint"), ("name", "text"), ("color", "int"),
                ("hoist", "boolean"), ("position", "smallint"), ("permissions", "bigint"),
                ("icon", "blob"), ("mentionable", "boolean")],
      "(guild_id), role_id",
      lambda g, r, s, i: (
          sid(s, i // 15, GUILD0), sid(s, i), g.text(r, r.randint(2, 30)), r.randrange(1 << 24),
          r.random() < 0.3, r.randrange(250), r.getrandbits(50),
          _opt(r, 0.2, lambda: Gen.blob_log(r, 10, 13)), r.random() < 0.5),
      weight=2),
    S("emojis", [("guild_id", "bigint"), ("emoji_id", "bigint"), ("name", "text"),
                 ("image", "blob"), ("animated", "boolean"), ("roles", "set<bigint>"),
                 ("creator_id", "bigint")],
      "(guild_id), emoji_id",
      lambda g, r, s, i: (
          sid(s, i // 50, GUILD0), sid(s, i), f"{g.word(r)}_{i}", Gen.blob_log(r, 10, 14.6),
          r.random() < 0.2, _opt(r, 0.1, lambda: {sid(0, r.randrange(1000)) for _ in range(2)}),
          sid(0, r.randrange(10**6), USER0)),
      weight=14),
    S("stickers", [("guild_id", "bigint"), ("sticker_id", "bigint"), ("name", "text"),
                   ("description", "text"), ("tags", "list<text>"), ("format_type", "tinyint"),
                   ("asset", "blob")],
      "(guild_id), sticker_id",
      lambda g, r, s, i: (
          sid(s, i // 20, GUILD0), sid(s, i), g.word(r), _opt(r, 0.7, lambda: g.text(r, r.randint(5, 100))),
          [g.word(r) for _ in range(r.randint(1, 5))], r.randrange(1, 5), Gen.blob_log(r, 12, 15.6)),
      weight=12),
    S("invites", [("code", "ascii"), ("guild_id", "bigint"), ("channel_id", "bigint"),
                  ("inviter_id", "bigint"), ("uses", "int"), ("max_uses", "int"),
                  ("max_age", "int"), ("temporary", "boolean"), ("created_at", "timestamp"),
                  ("expires_at", "timestamp")],
      "code",
      lambda g, r, s, i: (
          f"{s:x}{i:x}{r.getrandbits(30):x}", sid(0, r.randrange(10**6), GUILD0),
          sid(0, r.randrange(10**6), CHAN0), sid(0, r.randrange(10**6), USER0), r.randrange(500),
          r.choice([0, 1, 5, 10, 100]), r.choice([0, 3600, 86400, 604800]), r.random() < 0.1,
          g.ts(r), _opt(r, 0.6, lambda: g.ts(r))),
      weight=1),
    S("bans", [("guild_id", "bigint"), ("user_id", "bigint"), ("reason", "text"),
               ("moderator_id", "bigint"), ("banned_at", "timestamp")],
      "(guild_id), user_id",
      lambda g, r, s, i: (
          sid(s, i // 30, GUILD0), sid(s, i, USER0), _opt(r, 0.6, lambda: g.text(r, r.randint(5, 300))),
          sid(0, r.randrange(10**6), USER0), g.ts(r)),
      weight=0.5),
    S("webhooks", [("webhook_id", "bigint"), ("guild_id", "bigint"), ("channel_id", "bigint"),
                   ("name", "text"), ("avatar", "blob"), ("webhook_token", "ascii"), ("created_by", "bigint")],
      "webhook_id",
      lambda g, r, s, i: (
          sid(s, i), sid(0, r.randrange(10**6), GUILD0), sid(0, r.randrange(10**6), CHAN0),
          g.text(r, r.randint(3, 40)), _opt(r, 0.5, lambda: Gen.blob_log(r, 10, 13)),
          f"{r.getrandbits(256):064x}", sid(0, r.randrange(10**6), USER0)),
      weight=2),
    S("read_states", [("user_id", "bigint"), ("channel_id", "bigint"),
                      ("last_message_id", "bigint"), ("mention_count", "int"),
                      ("last_pin_ts", "timestamp")],
      "(user_id), channel_id",
      lambda g, r, s, i: (
          sid(s, i // 25, USER0), sid(s, i, CHAN0), r.getrandbits(62), r.randrange(50),
          _opt(r, 0.3, lambda: g.ts(r))),
      weight=0.5),
    S("relationships", [("user_id", "bigint"), ("target_id", "bigint"), ("type", "tinyint"),
                        ("nickname", "text"), ("since", "timestamp")],
      "(user_id), target_id",
      lambda g, r, s, i: (
          sid(s, i // 12, USER0), sid(s, i, USER0), r.randrange(1, 5),
          _opt(r, 0.2, lambda: g.word(r)), g.ts(r)),
      weight=0.3),
    S("user_notes", [("owner_id", "bigint"), ("target_id", "bigint"), ("note", "text")],
      "(owner_id), target_id",
      lambda g, r, s, i: (sid(s, i // 5, USER0), sid(s, i, USER0), g.text(r, r.randint(1, 250))),
      weight=0.5),
    S("sessions", [("session_id", "uuid"), ("user_id", "bigint"), ("client_info", "map<text, text>"),
                   ("ip", "inet"), ("created_at", "timestamp"), ("last_seen", "timestamp"),
                   ("session_token", "blob")],
      "session_id",
      lambda g, r, s, i: (
          uuid.UUID(int=(s << 96) | (i << 32) | r.getrandbits(32), version=4),
          sid(0, r.randrange(10**6), USER0),
          {"os": r.choice(["linux", "windows", "macos", "ios", "android"]),
           "browser": r.choice(["firefox", "chrome", "safari", "app"]),
           "version": f"{r.randrange(1, 200)}.{r.randrange(10)}"},
          _ip(r), g.ts(r), g.ts(r), r.randbytes(32)),
      weight=1),
    S("oauth_apps", [("app_id", "bigint"), ("name", "text"), ("description", "text"),
                     ("redirect_uris", "list<text>"), ("secret", "blob"), ("scopes", "set<ascii>"),
                     ("is_public", "boolean"), ("icon", "blob")],
      "app_id",
      lambda g, r, s, i: (
          sid(s, i), g.text(r, r.randint(3, 30)), g.text(r, r.randint(20, 400)),
          [f"https://{g.word(r)}.example/cb{k}" for k in range(r.randint(1, 3))], r.randbytes(32),
          {r.choice(["identify", "guilds", "email", "bot", "messages.read"]) for _ in range(3)},
          r.random() < 0.5, _opt(r, 0.7, lambda: Gen.blob_log(r, 11, 14))),
      weight=1, minimum=3),
    S("feature_flags", [("flag", "text"), ("enabled", "boolean"), ("rollout", "float"),
                        ("allow_guilds", "set<bigint>"), ("updated_at", "timestamp")],
      "flag",
      lambda g, r, s, i: (
          f"flag_{s}_{i}_{g.word(r)}", r.random() < 0.6, f32(r.random()),
          _opt(r, 0.4, lambda: {sid(0, r.randrange(10**6), GUILD0) for _ in range(r.randint(1, 5))}),
          g.ts(r)),
      fixed=12),
    S("system_config", [("key", "text"), ("value", "text"), ("version", "int")],
      "key",
      lambda g, r, s, i: (f"config.{s}.{i}", g.text(r, r.randint(1, 120)), r.randrange(100)),
      fixed=5),
    S("regions", [("region_id", "text"), ("name", "text"), ("latency_ms", "double"),
                  ("vip", "boolean"), ("deprecated", "boolean"), ("servers", "list<inet>")],
      "region_id",
      lambda g, r, s, i: (
          f"region-{s}-{i}", g.text(r, r.randint(3, 20)), r.uniform(1, 300), r.random() < 0.2,
          r.random() < 0.1, [_ip(r) for _ in range(r.randint(1, 6))]),
      fixed=8),
    S("gifts", [("code", "ascii"), ("sku_id", "bigint"), ("sender_id", "bigint"),
                ("redeemed_by", "bigint"), ("value", "decimal"), ("created_at", "timestamp"),
                ("expires_at", "timestamp"), ("redeemed", "boolean")],
      "code",
      lambda g, r, s, i: (
          f"g{s:x}x{i:x}{r.getrandbits(40):x}", r.randrange(1000), sid(0, r.randrange(10**6), USER0),
          _opt(r, 0.5, lambda: sid(0, r.randrange(10**6), USER0)),
          decimal.Decimal(r.randrange(100, 100000)) / 100, g.ts(r), _opt(r, 0.7, lambda: g.ts(r)),
          r.random() < 0.5),
      weight=0.3),
    S("payments", [("user_id", "bigint"), ("payment_id", "timeuuid"), ("amount", "decimal"),
                   ("currency", "ascii"), ("status", "text"), ("lifetime_cents", "varint"),
                   ("processed_at", "timestamp"), ("metadata", "map<text, text>")],
      "(user_id), payment_id",
      lambda g, r, s, i: (
          sid(s, i // 8, USER0), _timeuuid(r, s, i), decimal.Decimal(r.randrange(99, 99999)) / 100,
          r.choice(["EUR", "USD", "GBP", "JPY"]), r.choice(["paid", "refunded", "pending", "failed"]),
          r.getrandbits(r.randint(8, 90)) - (1 << 20), g.ts(r),
          _opt(r, 0.6, lambda: {"sku": g.word(r), "invoice": f"{r.getrandbits(48):x}"})),
      weight=0.7),
    S("voice_states", [("guild_id", "bigint"), ("user_id", "bigint"), ("channel_id", "bigint"),
                       ("session_id", "uuid"), ("self_mute", "boolean"), ("self_deaf", "boolean"),
                       ("suppress", "boolean"), ("request_to_speak", "timestamp")],
      "(guild_id), user_id",
      lambda g, r, s, i: (
          sid(s, i // 10, GUILD0), sid(s, i, USER0), sid(0, r.randrange(10**6), CHAN0),
          Gen.uuid4(r), r.random() < 0.3, r.random() < 0.1, r.random() < 0.05,
          _opt(r, 0.05, lambda: g.ts(r))),
      weight=0.3),
    S("channel_pins", [("channel_id", "bigint"), ("pinned_at", "timestamp"),
                       ("message_id", "bigint"), ("channel_name", "text static"),
                       ("pinned_by", "bigint"), ("snippet", "text")],
      "(channel_id), pinned_at, message_id",
      lambda g, r, s, i: (
          sid(s, i // 10, CHAN0), g.ts(r), sid(s, i), _pins_static(g, s, i // 10),
          sid(0, r.randrange(10**6), USER0), g.text(r, r.randint(10, 400))),
      weight=1),
    S("presences", [("user_id", "bigint"), ("status", "text"),
                    ("activities", "list<frozen<map<text, text>>>"), ("last_active", "timestamp"),
                    ("client_status", "frozen<map<text, text>>")],
      "user_id",
      lambda g, r, s, i: (
          sid(s, i, USER0), r.choice(["online", "idle", "dnd", "offline"]),
          _opt(r, 0.5, lambda: [{"name": g.text(r, r.randint(3, 30)), "type": str(r.randrange(5)),
                                 "details": g.text(r, r.randint(0, 200))}
                                for _ in range(r.randint(1, 3))]),
          g.ts(r), {"desktop": r.choice(["online", "idle"]), "mobile": r.choice(["online", "offline"])}),
      weight=1),
    S("dm_channels", [("channel_id", "bigint"), ("recipients", "set<bigint>"),
                      ("owner_id", "bigint"), ("name", "text"), ("icon", "blob"),
                      ("last_message_id", "bigint")],
      "channel_id",
      lambda g, r, s, i: (
          sid(s, i, CHAN0) + (1 << 45), {sid(0, r.randrange(10**6), USER0) for _ in range(r.randint(2, 10))},
          _opt(r, 0.3, lambda: sid(0, r.randrange(10**6), USER0)),
          _opt(r, 0.3, lambda: g.text(r, r.randint(3, 40))),
          _opt(r, 0.3, lambda: Gen.blob_log(r, 10, 13)), r.getrandbits(62)),
      weight=2),
    S("reports", [("report_id", "uuid"), ("reporter_id", "bigint"), ("target_type", "text"),
                  ("target_id", "bigint"), ("reason", "text"), ("evidence", "blob"),
                  ("created_at", "timestamp"), ("status", "text")],
      "report_id",
      lambda g, r, s, i: (
          uuid.UUID(int=(s << 96) | (i << 32) | r.getrandbits(32), version=4),
          sid(0, r.randrange(10**6), USER0), r.choice(["message", "user", "guild"]),
          r.getrandbits(62), g.text(r, r.randint(20, 2000)),
          _opt(r, 0.5, lambda: Gen.blob_log(r, 10, 15)), g.ts(r),
          r.choice(["open", "closed", "escalated"])),
      weight=6),
    S("scheduled_events", [("guild_id", "bigint"), ("event_id", "bigint"), ("name", "text"),
                           ("description", "text"), ("start_time", "timestamp"),
                           ("end_time", "timestamp"), ("daily_time", "time"),
                           ("recurrence", "duration"), ("location", "text"),
                           ("entity_type", "tinyint"), ("cover", "blob")],
      "(guild_id), event_id",
      lambda g, r, s, i: (
          sid(s, i // 6, GUILD0), sid(s, i), g.text(r, r.randint(5, 60)),
          _opt(r, 0.7, lambda: g.text(r, r.randint(20, 1000))), g.ts(r), _opt(r, 0.5, lambda: g.ts(r)),
          r.randrange(86400 * 10**9), _duration(r.randrange(3), r.randrange(31), r.randrange(86400) * 10**9),
          _opt(r, 0.4, lambda: g.text(r, r.randint(5, 80))), r.randrange(1, 4),
          _opt(r, 0.4, lambda: Gen.blob_log(r, 12, 15))),
      weight=5),
    S("guild_templates", [("code", "text"), ("name", "text"), ("description", "text"),
                          ("serialized", "blob"), ("usage_count", "int"), ("creator_id", "bigint"),
                          ("updated_at", "timestamp")],
      "code",
      lambda g, r, s, i: (
          f"tpl-{s}-{i}", g.text(r, r.randint(3, 40)), _opt(r, 0.6, lambda: g.text(r, r.randint(10, 300))),
          Gen.blob_log(r, 13, 16), r.randrange(10**5), sid(0, r.randrange(10**6), USER0), g.ts(r)),
      weight=12),
    S("rate_limits", [("bucket", "text"), ("key", "text"), ("remaining", "int"),
                      ("reset_at", "timestamp"), ("window_ms", "bigint"), ("tokens", "double")],
      "(bucket), key",
      lambda g, r, s, i: (
          f"bucket-{s}-{i // 100}", f"{r.choice(['user', 'ip', 'guild'])}:{i}", r.randrange(100),
          g.ts(r), r.choice([1000, 10000, 60000]), r.random() * 50),
      weight=0.3),
]
del S

UDT = "CREATE TYPE IF NOT EXISTS {ks}.connection (type text, name text, verified boolean, visibility tinyint)"
META_CREATE = f"CREATE TABLE IF NOT EXISTS {{ks}}.{META_TABLE} (key text PRIMARY KEY, value text)"


def _date(days):
    from cassandra.util import Date
    return Date(days)


def _duration(months, days, ns):
    from cassandra.util import Duration
    return Duration(months, days, ns)


def _timeuuid(rng, s, i):
    """A version-1 uuid, unique per (s, i), from the generator's rng."""
    t = (0x01B21DD213814000 + (1_500_000_000 + s * 10**6 + i) * 10**7 + rng.randrange(10**7)) & ((1 << 60) - 1)
    node = rng.getrandbits(48) | (1 << 40)
    return uuid.UUID(fields=(t & 0xFFFFFFFF, (t >> 32) & 0xFFFF, ((t >> 48) & 0x0FFF) | 0x1000,
                             0x80 | ((i >> 8) & 0x3F), i & 0xFF, node))


def approx_size(v):
    if v is None:
        return 1
    if isinstance(v, (bytes, str)):
        return len(v) + 4
    if isinstance(v, (list, tuple, set, frozenset)):
        return 4 + sum(approx_size(x) for x in v)
    if isinstance(v, dict):
        return 4 + sum(approx_size(k) + approx_size(x) for k, x in v.items())
    return 8


def small_counts(g, size_bytes):
    """Rows per small table for a data set of size_bytes: a function of the size alone."""
    target = min(size_bytes * SMALL_SHARE, SMALL_CAP)
    total_w = sum(t.weight for t in SMALL_TABLES if t.fixed is None)
    out = {}
    for t in SMALL_TABLES:
        if t.fixed is not None:
            out[t.name] = t.fixed
            continue
        sample = [approx_size(t.row(g, 0, i)) + 12 * len(t.columns) for i in range(64)]
        per_row = sum(sample) / len(sample)
        n = int(round(target * t.weight / total_w / per_row))
        out[t.name] = max(t.minimum, min(SMALL_MAX_ROWS, n))
    return out


# ---- values as read back ------------------------------------------------------------------------

def norm(v):
    """Driver values and generator values -> plain comparable values (ms for timestamps, days for
    dates, ns for times, tuples for UDTs, frozensets and dicts for collections)."""
    if v is None:
        return None
    if isinstance(v, (bytes, str, int, float, bool, uuid.UUID, decimal.Decimal)):
        return v
    if isinstance(v, datetime.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        d = v - EPOCH
        return (d.days * 86400 + d.seconds) * 1000 + round(d.microseconds / 1000)
    name = type(v).__name__
    if name == "Date":
        return ("date", v.days_from_epoch)
    if name == "Time":
        return v.nanosecond_time
    if name == "Duration":
        return ("duration", v.months, v.days, v.nanoseconds)
    if isinstance(v, (set, frozenset)) or name == "SortedSet":
        return frozenset(norm(x) for x in v) or None
    if isinstance(v, dict) or name in ("OrderedMapSerializedKey", "OrderedMap"):
        return {norm(k): norm(x) for k, x in v.items()} or None
    if isinstance(v, list):
        return [norm(x) for x in v] or None
    if isinstance(v, tuple):
        return tuple(norm(x) for x in v)
    if name == "IPv4Address" or name == "IPv6Address":
        return str(v)
    return v


def norm_row(row):
    return tuple(norm(v) for v in row)


def short(v, n=60):
    r = repr(v)
    return r if len(r) <= n else r[:n] + f"...({len(r)} chars)"


# ---- live SSTables on disk --------------------------------------------------------------------

SSTABLE_RE = re.compile(r"^[a-z]{2}-[0-9a-z_]+-(big|bti)-.+")
TXN_ADD_RE = re.compile(r"^(ADD|REMOVE):\[([^,\]]*)")


def _txn_state(path):
    """(added prefixes, removed prefixes, committed?) of one lifecycle transaction log."""
    add, rem, committed = [], [], False
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("COMMIT"):
                    committed = True
                elif line.startswith("ABORT"):
                    committed = None
                m = TXN_ADD_RE.match(line)
                if m:
                    (add if m.group(1) == "ADD" else rem).append(os.path.basename(m.group(2)))
    except FileNotFoundError:
        pass
    return add, rem, committed


def live_sstables(data_dirs, keyspaces=None):
    """{relative path: bytes} of the live SSTable component files (snapshots, backups, transaction
    logs and the outputs of unfinished flushes and compactions left out). Paths are relative to
    the data directory (prefixed with its name when there are several)."""
    out = {}
    for dd in data_dirs:
        prefix = "" if len(data_dirs) == 1 else os.path.basename(dd.rstrip("/")) + "/"
        try:
            kss = sorted(os.listdir(dd))
        except FileNotFoundError:
            continue
        for ks in kss:
            if keyspaces is not None and ks not in keyspaces:
                continue
            ksdir = os.path.join(dd, ks)
            if not os.path.isdir(ksdir):
                continue
            for root, dirs, files in os.walk(ksdir):
                dirs[:] = sorted(d for d in dirs if d not in ("snapshots", "backups"))
                skip = set()
                for f in files:
                    if f.endswith(".log") and "_txn_" in f:
                        add, rem, committed = _txn_state(os.path.join(root, f))
                        skip.update(rem if committed else add)
                        if committed is None:
                            skip.update(add)
                for f in sorted(files):
                    if not SSTABLE_RE.match(f):
                        continue
                    base = f.rsplit("-", 1)[0]
                    if base in skip:
                        continue
                    p = os.path.join(root, f)
                    try:
                        out[prefix + os.path.relpath(p, dd)] = os.stat(p).st_size
                    except FileNotFoundError:
                        pass
    return out


def table_of(rel):
    """'bench_big/messages-<id>/nb-1-big-Data.db' -> ('bench_big', 'messages')."""
    parts = rel.split("/")
    if len(parts) >= 3 and parts[1].rsplit("-", 1)[0] and not parts[0].startswith("data"):
        return parts[0], parts[1].rsplit("-", 1)[0]
    return parts[1], parts[2].rsplit("-", 1)[0]


def disk_summary(files):
    """Per keyspace and table: live bytes, files, SSTables (Data.db count)."""
    ks_out, t_out = {}, {}
    for rel, size in files.items():
        ks, t = table_of(rel)
        k = ks_out.setdefault(ks, {"live_bytes": 0, "files": 0, "sstables": 0})
        tt = t_out.setdefault(f"{ks}.{t}", {"live_bytes": 0, "files": 0, "sstables": 0})
        is_data = rel.endswith("-Data.db")
        for d in (k, tt):
            d["live_bytes"] += size
            d["files"] += 1
            d["sstables"] += int(is_data)
        if is_data and len(rel.split("/")) > 3:     # a secondary index's own SSTable
            tt["sstables"] -= 1
            tt["index_sstables"] = tt.get("index_sstables", 0) + 1
    return ks_out, t_out


# ---- nodes ------------------------------------------------------------------------------------

def proc_cpu(pid):
    """User + system CPU seconds of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def node_env(keep_yaml):
    env = dict(os.environ)
    env["CASSETTE_TEST_CLUSTER"] = CLUSTER_NAME
    env["CASSETTE_TEST_DATA_DIRS"] = "1"
    env.pop("CASSETTE_TEST_NODES", None)
    env.pop("CASSETTE_TEST_DIR", None)
    if not keep_yaml:
        env.pop("CASSETTE_CASSANDRA_YAML", None)
    return env


def csh(base, *args, keep_yaml=True, check=True, quiet=False):
    """Runs tests/env/cassandra.sh --base BASE ARGS; returns its stdout."""
    p = subprocess.run([CASSANDRA_SH, "--base", base, *map(str, args)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, env=node_env(keep_yaml))
    if check and p.returncode != 0:
        err = [l for l in p.stderr.splitlines() if l.strip()]
        if len(err) > 1:
            sys.stderr.write(p.stderr)
        last = err[-1] if err else f"exit status {p.returncode}"
        raise Fail(f"cassandra.sh {args[0]} {args[1] if len(args) > 1 else ''}: {last}".replace("  ", " "))
    if not quiet:
        for l in p.stdout.splitlines():
            if l.strip() and args[0] != "nodetool":
                say(l)
    return p.stdout if check else p


def node_running(base, n):
    return csh(base, "status", n, check=False, quiet=True).returncode == 0


def wait_compactions(base, n, what=""):
    """Polls nodetool compactionstats until no compaction is pending or active (twice in a row)."""
    t0 = time.monotonic()
    quiet, last = 0, -1.0
    while quiet < 2:
        out = csh(base, "nodetool", n, "compactionstats")
        pending = 0
        m = re.search(r"^pending tasks\s*:?\s*(\d+)", out, re.M)
        if m:
            pending = int(m.group(1))
        active = len(re.findall(r"^\s*[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\s",
                                out, re.M))
        if pending == 0 and active == 0:
            quiet += 1
        else:
            quiet = 0
            if time.monotonic() - last > 15:
                say(f"waiting for compactions{what}: {pending} pending, {active} active")
                last = time.monotonic()
        if quiet < 2:
            time.sleep(0.5)
    return time.monotonic() - t0


def connect(host, timeout=120):
    logging.getLogger("cassandra").setLevel(logging.ERROR)
    from cassandra import ConsistencyLevel
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import WhiteListRoundRobinPolicy
    from cassandra.query import tuple_factory
    prof = ExecutionProfile(load_balancing_policy=WhiteListRoundRobinPolicy([host]),
                            request_timeout=timeout, row_factory=tuple_factory,
                            consistency_level=ConsistencyLevel.ONE)
    cluster = Cluster([host], port=9042, protocol_version=5, connect_timeout=30,
                      control_connection_timeout=30,
                      execution_profiles={EXEC_PROFILE_DEFAULT: prof})
    try:
        session = cluster.connect()
    except Exception as e:
        cluster.shutdown()
        raise Fail(f"cannot connect to {host}:9042: {e}")
    return cluster, session


# ---- loading ----------------------------------------------------------------------------------

class Loader:
    """Prepared statements and the concurrent write loop, with counters."""

    def __init__(self, session, g, concurrency=CONCURRENCY):
        self.session = session
        self.g = g
        self.concurrency = concurrency
        self.stmts = {}
        for t in BIG_TABLES:
            self.stmts[t.name] = self._prep(BIG, t.name, t.names)
        for t in SMALL_TABLES:
            self.stmts[t.name] = self._prep(SMALL, t.name, t.names)
        self.rows = collections.Counter()
        self.raw_big = 0
        self.raw_small = 0
        self.retries = 0

    def _prep(self, ks, name, names):
        return self.session.prepare(f"INSERT INTO {ks}.{name} ({', '.join(names)})"
                                    f" VALUES ({', '.join('?' for _ in names)})")

    def batched(self, stmt, rows, pk_idx):
        """(statement, params) items: consecutive rows of one partition go into one unlogged
        single-partition batch (one mutation: far less overhead per row in the driver and in
        Cassandra, and no batch size limit applies), up to BATCH_ROWS rows or BATCH_BYTES."""
        from cassandra.query import UNSET_VALUE, BatchStatement, BatchType
        batch, key, n, size = None, None, 0, 0
        for row, nb in rows:
            k = tuple(row[i] for i in pk_idx)
            # a None is left unset rather than written as null: no cell tombstones, which
            # would make old SSTables candidates for tombstone compaction once gc_grace is over
            row = tuple(UNSET_VALUE if v is None else v for v in row)
            if batch is not None and (k != key or n >= BATCH_ROWS or size >= BATCH_BYTES):
                yield ((batch, None) if n > 1 else (stmt, last)) + (size,)
                batch = None
            if batch is None:
                batch, key, n, size = BatchStatement(batch_type=BatchType.UNLOGGED), k, 0, 0
            batch.add(stmt, row)
            last = row
            n += 1
            size += nb
        if batch is not None:
            yield ((batch, None) if n > 1 else (stmt, last)) + (size,)

    def big_items(self, s, b_start, raw_budget=None, b_stop=None, done=None, tables=None):
        """Items of whole batches from b_start: until raw_budget bytes or up to b_stop."""
        b, raw0 = b_start, self.raw_big
        while (b < b_stop) if b_stop is not None else (self.raw_big - raw0 < raw_budget):
            for t in BIG_TABLES:
                if tables is None or t.name in tables:
                    yield from self.batched(self.stmts[t.name], self._count_big(t.name, s, b),
                                            t.pk_idx)
            b += 1
            if done is not None:
                done[0] = b

    def _count_big(self, name, s, b):
        for row, nb in self.g.big_rows(name, s, b):
            self.rows[name] += 1
            self.raw_big += nb
            yield row, nb

    def small_items(self, s, ranges):
        """Items of rows [lo, hi) of each small table, ranges = {table: (lo, hi)}."""
        for t in SMALL_TABLES:
            lo, hi = ranges.get(t.name, (0, 0))
            if hi > lo:
                yield from self.batched(self.stmts[t.name], self._count_small(t, s, lo, hi), t.pk_idx)

    def _count_small(self, t, s, lo, hi):
        for i in range(lo, hi):
            row = t.row(self.g, s, i)
            self.rows[t.name] += 1
            nb = approx_size(row)
            self.raw_small += nb
            yield row, nb

    def run(self, items):
        """Executes every (statement, params, bytes) item with execute_async, at most
        `concurrency` requests and MAX_INFLIGHT bytes in flight (above Cassandra's per-client
        limit of in-flight request bytes it stops reading the socket and the driver fails
        requests at once with ConnectionBusy). Failed writes are retried after a pause (they are
        idempotent); returns the number of items."""
        from cassandra import InvalidRequest
        from cassandra.protocol import ConfigurationException, SyntaxException
        fatal = (InvalidRequest, SyntaxException, ConfigurationException, TypeError, ValueError)
        cond = threading.Condition()
        st = {"n": 0, "bytes": 0, "err": None, "retries": 0}

        def release(nbytes):
            with cond:
                st["n"] -= 1
                st["bytes"] -= nbytes
                cond.notify_all()

        def submit(stmt, params, nbytes, attempt):
            try:
                fut = self.session.execute_async(stmt, params)
            except Exception as e:          # noqa: BLE001 - handled like an async failure
                failed(e, stmt, params, nbytes, attempt)
                return
            fut.add_callbacks(lambda _r: release(nbytes),
                              lambda e: failed(e, stmt, params, nbytes, attempt))

        def failed(exc, stmt, params, nbytes, attempt):
            if attempt < 10 and not isinstance(exc, fatal):
                with cond:
                    st["retries"] += 1
                t = threading.Timer(min(5.0, 0.05 * 2 ** attempt), submit,
                                    (stmt, params, nbytes, attempt + 1))
                t.daemon = True
                t.start()
                return
            with cond:
                if st["err"] is None:
                    st["err"] = exc
            release(nbytes)

        n = 0
        for stmt, params, nbytes in items:
            with cond:
                while st["err"] is None and st["n"] > 0 and (
                        st["n"] >= self.concurrency or st["bytes"] + nbytes > MAX_INFLIGHT):
                    cond.wait()
                if st["err"] is not None:
                    break
                st["n"] += 1
                st["bytes"] += nbytes
            submit(stmt, params, nbytes, 0)
            n += 1
        with cond:
            while st["n"] > 0:
                cond.wait()
        self.retries += st["retries"]
        if st["err"] is not None:
            e = st["err"]
            raise Fail(f"a write failed: {type(e).__name__}: {str(e)[:300]}")
        return n


def compaction_options(size_bytes):
    """Size-tiered compaction (Cassandra 5.0's default) puts every SSTable under
    min_sstable_size (default 50 MiB) in one bucket and merges them by 4. A data set of a few
    hundred MiB would then be mostly one bucket, merged again by every few flushes (a 5% grow
    would rewrite whole tables). Below 2G the option is scaled to SIZE/40 so that the tables
    get the size tiers a large data set has; from 2G on the tables keep the default schema."""
    m = size_bytes // 40
    if m >= 50 << 20:
        return None
    return {"class": "SizeTieredCompactionStrategy", "min_sstable_size": str(max(1 << 20, m))}


def create_schema(session, size_bytes):
    comp = compaction_options(size_bytes)
    opts = [f"compaction = {json.dumps(comp).replace(chr(34), chr(39))}"] if comp else []
    for ks in KEYSPACES:
        session.execute(f"CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication ="
                        " {'class': 'SimpleStrategy', 'replication_factor': 1}", timeout=120)
    session.execute(UDT.format(ks=SMALL), timeout=120)
    for t in BIG_TABLES:
        session.execute(t.create(BIG, opts), timeout=120)
    for t in SMALL_TABLES:
        session.execute(t.create(SMALL, opts), timeout=120)
        for p in t.post:
            session.execute(p.format(ks=SMALL), timeout=120)
    session.execute(META_CREATE.format(ks=SMALL) + (f" WITH {opts[0]}" if opts else ""), timeout=120)


def chunk_ranges(counts, k, c):
    return {t: (n * c // k, n * (c + 1) // k) for t, n in counts.items()}


# ---- cache ------------------------------------------------------------------------------------

def cache_dir(label):
    return os.path.join(BENCH_CACHE, f"dataset-{label}-v{GENERATOR_VERSION}")


def read_cached(label):
    p = os.path.join(cache_dir(label), "dataset.json")
    try:
        with open(p) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


class Lock:
    def __init__(self, path, what):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.f = open(path, "a+")
        try:
            fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another {what} ({path})")
            fcntl.flock(self.f, fcntl.LOCK_EX)

    def close(self):
        self.f.close()


def tree_files(top):
    """{relative path: [size, mtime_ns]} of every file under top."""
    out = {}
    for root, dirs, files in os.walk(top):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(root, f)
            st = os.lstat(p)
            out[os.path.relpath(p, top)] = [st.st_size, st.st_mtime_ns]
    return out


def move_tree(src, dst):
    try:
        os.rename(src, dst)
    except OSError:
        subprocess.run(["cp", "-a", "--sparse=always", src, dst], check=True)
        shutil.rmtree(src)


# ---- build ------------------------------------------------------------------------------------

def ensure_built(label, size_bytes, node, work, concurrency):
    info = read_cached(label)
    if info is not None:
        return info
    lock = Lock(os.path.join(BENCH_CACHE, f".dataset-{label}-v{GENERATOR_VERSION}.lock"), "build")
    try:
        info = read_cached(label)
        if info is not None:
            return info
        wlock = Lock(os.path.join(work, ".lock"), "build in this work directory")
        try:
            return build(label, size_bytes, node, work, concurrency)
        finally:
            wlock.close()
    finally:
        lock.close()


def build(label, size_bytes, node, work, concurrency):
    final = cache_dir(label)
    host = f"127.0.0.{node}"
    t_build = time.monotonic()
    for d in os.listdir(BENCH_CACHE):
        if d.startswith(f".{os.path.basename(final)}.tmp."):
            shutil.rmtree(os.path.join(BENCH_CACHE, d), ignore_errors=True)
    if node_running(work, node):
        say(f"stopping a node {node} left running in {work} by an interrupted build")
        csh(work, "stop", node, keep_yaml=False)
    node_dir = os.path.join(work, f"node{node}")
    shutil.rmtree(node_dir, ignore_errors=True)

    g = Gen()
    counts = small_counts(g, size_bytes)
    say(f"building the {label} dataset ({size_bytes} bytes) as node {node} in {work}; "
        f"{len(SMALL_TABLES)} small tables, {sum(counts.values())} small rows")
    csh(work, "start", node, keep_yaml=False)
    started = True
    cluster = None
    try:
        cluster, session = connect(host)
        version = session.execute("SELECT release_version FROM system.local").one()[0]
        create_schema(session, size_bytes)
        ld = Loader(session, g, concurrency)
        data_dirs = [os.path.join(node_dir, "data")]

        def measure():
            ks, _ = disk_summary(live_sstables(data_dirs, KEYSPACES))
            return ks.get(BIG, {}).get("live_bytes", 0), ks.get(SMALL, {}).get("live_bytes", 0)

        def flush():
            csh(work, "nodetool", node, "flush")

        done = [0]
        ratio = 1.0                  # on-disk bytes per raw big byte, from the last measurement
        small_per_chunk = min(size_bytes * SMALL_SHARE, SMALL_CAP) / SMALL_CHUNKS
        flusher = None
        jpid = csh(work, "pid", node, quiet=True).strip()
        cpu0 = (proc_cpu(jpid), os.times())
        t0 = time.monotonic()
        r = 0
        measured = 0
        insert_s = 0.0
        while True:
            # Rounds 0..SMALL_CHUNKS-1 load one chunk of every small table and a share of the big
            # rows still needed; later rounds top the big tables up until the measurement says
            # SIZE is reached. Round 0 and the rounds from SMALL_CHUNKS-1 on flush, wait and
            # measure; the ones between start a flush in the background (at most one at a time)
            # and go on loading.
            small_total = small_per_chunk * SMALL_CHUNKS
            need = size_bytes - small_total - ld.raw_big * ratio
            if r == 0:
                budget = min(size_bytes / 8, need)
            elif r < SMALL_CHUNKS:
                budget = need / (SMALL_CHUNKS - r)
            else:
                if measured >= size_bytes:
                    break
                budget = (size_bytes - measured) * 1.01
            chunk = chunk_ranges(counts, SMALL_CHUNKS, r) if r < SMALL_CHUNKS else {}
            b0 = done[0]
            rows0 = sum(ld.rows.values())
            ti = time.monotonic()
            items = ld.small_items(0, chunk)
            if budget > 0:
                items = _chain(items, ld.big_items(0, b0, raw_budget=budget / ratio, done=done))
            ld.run(items)
            n = sum(ld.rows.values()) - rows0
            insert_s += time.monotonic() - ti
            if flusher is not None and flusher.poll() is not None:
                flusher = None
            sync = r == 0 or r >= SMALL_CHUNKS - 1
            if sync:
                if flusher is not None:
                    flusher.wait()
                    flusher = None
                flush()
                big_d, small_d = measure()
                measured = big_d + small_d
                if ld.raw_big:
                    ratio = max(0.2, big_d / ld.raw_big)
                small_per_chunk = small_d / min(r + 1, SMALL_CHUNKS)
                live = measured
            else:
                if flusher is None:         # never more than one flush under way
                    flusher = subprocess.Popen([CASSANDRA_SH, "--base", work, "nodetool",
                                                str(node), "flush"], stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL, env=node_env(False))
                live = ld.raw_big * ratio + small_per_chunk * (r + 1)
            el = time.monotonic() - t0
            say(f"round {r}: +{n} rows (batches {b0}..{done[0] - 1}), "
                f"{'measured' if sync else 'about'} {mib(live):.1f} MiB live "
                f"after {el:.0f} s ({mib(live) / el:.1f} MiB/s)")
            r += 1
        if flusher is not None:
            flusher.wait()
        load_s = time.monotonic() - t0
        t1 = os.times()
        load_cpu = {"cassandra": round(proc_cpu(jpid) - cpu0[0], 1),
                    "loader": round(t1.user + t1.system - cpu0[1].user - cpu0[1].system, 1),
                    "nodetool": round(t1.children_user + t1.children_system
                                      - cpu0[1].children_user - cpu0[1].children_system, 1)}
        loadavg = os.getloadavg()[0]
        base = {"version": GENERATOR_VERSION, "seed": g.seed, "size": label,
                "batches": done[0], "raw_big_bytes": ld.raw_big, "small_rows": counts}
        session.execute(f"INSERT INTO {SMALL}.{META_TABLE} (key, value) VALUES (%s, %s)",
                        ("base", json.dumps(base, sort_keys=True)))
        flush()
        say(f"loaded {sum(ld.rows.values())} rows in {load_s:.1f} s "
            f"({mib(sum(measure())) / load_s:.1f} MiB/s on disk); waiting for compactions")
        cwait = wait_compactions(work, node)
        cwait += tail(ld, work, node, data_dirs, done[0], counts)
        cluster.shutdown()
        cluster = None
        csh(work, "nodetool", node, "drain")
        csh(work, "stop", node, keep_yaml=False)
        started = False

        files = live_sstables(data_dirs, KEYSPACES)
        ks_sum, t_sum = disk_summary(files)
        rows = {f"{BIG}.{t.name}": ld.rows[t.name] for t in BIG_TABLES}
        rows.update({f"{SMALL}.{t.name}": counts[t.name] for t in SMALL_TABLES})
        rows[f"{SMALL}.{META_TABLE}"] = 1
        tables = {}
        for name in rows:
            d = t_sum.get(name, {"live_bytes": 0, "files": 0, "sstables": 0})
            tables[name] = {"rows": rows[name], **d}
            if name.startswith(BIG + "."):
                tables[name]["partitions"] = done[0]
        live_total = sum(v["live_bytes"] for v in ks_sum.values())
        info = {
            "generator": "cassette bench/dataset.py", "generator_version": GENERATOR_VERSION,
            "size": label, "size_bytes": size_bytes, "seed": g.seed, "node": node,
            "cluster_name": CLUSTER_NAME, "cassandra_version": version,
            "compaction": compaction_options(size_bytes) or "default (SizeTieredCompactionStrategy)",
            "compression": "default (LZ4Compressor, 16 KiB chunks)",
            "keyspaces": {k: ks_sum.get(k, {"live_bytes": 0, "files": 0, "sstables": 0})
                          for k in KEYSPACES},
            "tables": tables,
            "live_bytes": live_total, "live_files": sum(v["files"] for v in ks_sum.values()),
            "batches": done[0], "raw_big_bytes": ld.raw_big,
            "load_seconds": round(load_s, 1), "insert_seconds": round(insert_s, 1),
            "load_mib_per_s": round(mib(live_total) / load_s, 1),
            "load_cpu_seconds": load_cpu, "load_average_1m": round(loadavg, 2),
            "compaction_wait_seconds": round(cwait, 1),
            "build_seconds": round(time.monotonic() - t_build, 1),
            "built_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "data_dir_names": ["data"], "meta": base,
            "cache_dir": final,
        }
        tmp = os.path.join(BENCH_CACHE, f".{os.path.basename(final)}.tmp.{os.getpid()}")
        os.makedirs(tmp)
        move_tree(node_dir, os.path.join(tmp, f"node{node}"))
        with open(os.path.join(tmp, "files.json"), "w") as f:
            json.dump(tree_files(os.path.join(tmp, f"node{node}", "data")), f)
        with open(os.path.join(tmp, "dataset.json"), "w") as f:
            json.dump(info, f, indent=1)
            f.write("\n")
        os.rename(tmp, final)
        say(f"cached in {final}: {mib(live_total):.1f} MiB live in {info['live_files']} files")
        return info
    finally:
        if cluster is not None:
            cluster.shutdown()
        if started:
            say(f"stopping the builder's node {node}")
            csh(work, "stop", node, keep_yaml=False, check=False)


def sstable_counts(data_dirs):
    """{ks.table: live SSTables of the table itself (not of its secondary indexes)}."""
    out = collections.Counter()
    for rel in live_sstables(data_dirs, KEYSPACES):
        parts = rel.split("/")
        if len(parts) == 3 and rel.endswith("-Data.db"):
            out[f"{parts[0]}.{parts[1].rsplit('-', 1)[0]}"] += 1
    return out


def tail(ld, work, node, data_dirs, batches, counts):
    """Compaction (size-tiered: every SSTable under 50 MiB in one bucket, merged by 4) can leave a
    table with one or two SSTables. Until every table has MIN_SSTABLES, write a few of its rows
    again (same values: the logical content does not change), flush and let compaction settle.
    Returns the seconds spent waiting for compactions."""
    waited = 0.0
    for step in range(8):
        have = sstable_counts(data_dirs)
        need = [t for t in BIG_TABLES + SMALL_TABLES
                if have[f"{BIG if t in BIG_TABLES else SMALL}.{t.name}"] < MIN_SSTABLES]
        if not need:
            break
        say(f"tail step {step}: {len(need)} tables below {MIN_SSTABLES} SSTables "
            f"({', '.join(t.name for t in need[:6])}{', ...' if len(need) > 6 else ''})")
        items = []
        for t in need:
            if t in BIG_TABLES:
                b = (step * 7919) % batches
                rows = [(r, nb) for r, nb in itertools.islice(ld.g.big_rows(t.name, 0, b), 3)]
            else:
                n = counts[t.name]
                rows = [(t.row(ld.g, 0, i), 0) for i in sorted({(step * 7919 + k) % n for k in range(2)})]
            items.extend(ld.batched(ld.stmts[t.name], iter(rows), t.pk_idx))
        ld.run(iter(items))
        csh(work, "nodetool", node, "flush")
        waited += wait_compactions(work, node)
    else:
        say(f"warning: some tables still have fewer than {MIN_SSTABLES} SSTables")
    return waited


def _chain(*its):
    for it in its:
        yield from it


# ---- provision --------------------------------------------------------------------------------

def provision(info, base, node, force, copy):
    label = info["size"]
    if node != info["node"]:
        raise Fail(f"the {label} dataset was built as node {info['node']} (its system tables hold"
                   f" 127.0.0.{info['node']}); provision it with --node {info['node']}, not {node}")
    src = os.path.join(cache_dir(label), f"node{node}")
    dst = os.path.join(os.path.abspath(base), f"node{node}")
    if os.path.isdir(dst) and os.listdir(dst):
        if not force:
            raise Fail(f"{dst} exists and is not empty (use --force to replace it)")
        if node_running(base, node):
            raise Fail(f"node {node} is running in {base}; stop it before --force replaces it")
        say(f"removing {dst}")
        shutil.rmtree(dst)
    # The data files are hard links to the cache: make sure nothing wrote into them since.
    with open(os.path.join(cache_dir(label), "files.json")) as f:
        expect = json.load(f)
    now = tree_files(os.path.join(src, "data"))
    for rel, (size, mtime) in expect.items():
        got = now.get(rel)
        if got is None or got[0] != size or got[1] != mtime:
            raise Fail(f"cached file {os.path.join(src, 'data', rel)} changed since the build"
                       f" (something wrote through a hard link); remove {cache_dir(label)} and build again")
    os.makedirs(dst, exist_ok=True)
    t0 = time.monotonic()
    for entry in sorted(os.listdir(src)):
        s, d = os.path.join(src, entry), os.path.join(dst, entry)
        if re.fullmatch(r"data\d*", entry) and not copy:
            link_tree(s, d)
        else:
            subprocess.run(["cp", "-a", "--sparse=always", s, d], check=True)
    say(f"laid out {dst} in {time.monotonic() - t0:.1f} s ({'copies' if copy else 'hard links'}"
        " for the data directories)")
    csh(base, "start", node)
    out = dict(info)
    out["base"] = os.path.abspath(base)
    out["node_dir"] = dst
    out["data_dirs"] = [os.path.join(dst, n) for n in info.get("data_dir_names", ["data"])]
    out["host"] = f"127.0.0.{node}"
    return out


def link_tree(src, dst):
    """Hard links for the SSTables (Cassandra never writes one in place), copies of the TOC.txt
    files (Cassandra 5.0 appends to them when it adds a component, e.g. for an SAI index)."""
    for root, dirs, files in os.walk(src):
        rel = os.path.relpath(root, src)
        droot = os.path.join(dst, rel) if rel != "." else dst
        os.makedirs(droot, exist_ok=True)
        shutil.copystat(root, droot)
        for f in files:
            s, d = os.path.join(root, f), os.path.join(droot, f)
            if f.endswith("TOC.txt"):
                shutil.copy2(s, d)
            else:
                os.link(s, d)


# ---- grow -------------------------------------------------------------------------------------

def read_meta(session, ksmap=None):
    ks = (ksmap or {}).get(SMALL, SMALL)
    try:
        rows = session.execute(f"SELECT key, value FROM {ks}.{META_TABLE}", timeout=60)
    except Exception as e:
        raise Fail(f"cannot read {ks}.{META_TABLE}: {e}")
    out = {k: json.loads(v) for k, v in rows}
    return out


def pick_batches(g, s, budget):
    """The number of stream s's batches whose generated bytes come closest to budget."""
    total, b = 0, 0
    while True:
        size = sum(nb for t in BIG_TABLES for _, nb in g.big_rows(t.name, s, b))
        if total + size >= budget:
            return b + 1 if b == 0 or (total + size - budget) < (budget - total) else b
        total += size
        b += 1


def grow(base, node, percent, rnd, concurrency):
    if rnd < 1:
        raise Fail("--round must be 1 or more")
    if not (0 < percent <= 1000):
        raise Fail("--percent must be above 0 (and at most 1000)")
    host = f"127.0.0.{node}"
    node_dir = os.path.join(os.path.abspath(base), f"node{node}")
    data_dirs = sorted(os.path.join(node_dir, d) for d in os.listdir(node_dir) if re.fullmatch(r"data\d*", d))
    if not data_dirs:
        raise Fail(f"no data directory under {node_dir}")
    if not node_running(base, node):
        raise Fail(f"node {node} is not running in {base}")
    cluster, session = connect(host)
    try:
        meta = read_meta(session)
        if "base" not in meta:
            raise Fail(f"{SMALL}.{META_TABLE} has no base record: not a dataset node")
        b = meta["base"]
        if b.get("version") != GENERATOR_VERSION:
            raise Fail(f"the node holds generator version {b.get('version')}, this is {GENERATOR_VERSION}")
        if f"round-{rnd}" in meta:
            raise Fail(f"grow round {rnd} was already applied to this node")
        before = live_sstables(data_dirs)
        g = Gen(b["seed"])
        ld = Loader(session, g, concurrency)
        small = {t: int(round(n * percent / 100)) for t, n in b["small_rows"].items()}
        nb = pick_batches(g, rnd, b["raw_big_bytes"] * percent / 100)
        done = [0]
        t0 = time.monotonic()
        ld.run(_chain(ld.small_items(rnd, {t: (0, n) for t, n in small.items()}),
                      ld.big_items(rnd, 0, b_stop=nb, done=done)))
        rec = {"round": rnd, "percent": percent, "batches": done[0], "raw_big_bytes": ld.raw_big,
               "small_rows": small}
        session.execute(f"INSERT INTO {SMALL}.{META_TABLE} (key, value) VALUES (%s, %s)",
                        (f"round-{rnd}", json.dumps(rec, sort_keys=True)))
        load_s = time.monotonic() - t0
    finally:
        cluster.shutdown()
    csh(base, "nodetool", node, "flush")
    wait_compactions(base, node)
    after = live_sstables(data_dirs)
    new = sorted(set(after) - set(before))
    gone = sorted(set(before) - set(after))
    rows = {f"{BIG}.{t.name}": ld.rows[t.name] for t in BIG_TABLES}
    rows.update({f"{SMALL}.{t}": n for t, n in small.items()})
    rows[f"{SMALL}.{META_TABLE}"] = 1
    by_ks = collections.Counter()
    for f in new:
        by_ks[table_of(f)[0]] += after[f]
    return {"round": rnd, "percent": percent, "seed": g.seed, "batches": done[0],
            "rows": rows, "rows_total": sum(rows.values()),
            "load_seconds": round(load_s, 1),
            "new_bytes": sum(after[f] for f in new), "new_bytes_by_keyspace": dict(by_ks),
            "new_files": new, "removed_files": gone,
            "live_bytes_before": sum(before.values()), "live_bytes_after": sum(after.values())}


# ---- verify -----------------------------------------------------------------------------------

def sampled(seed, s, b, last, pct):
    if b == 0 or b == last or pct >= 100:
        return True
    return zlib.crc32(f"{seed}/{s}/{b}".encode()) % 10000 < pct * 100


class Report:
    def __init__(self):
        self.lines = []
        self.count = 0

    def bad(self, msg):
        self.count += 1
        if len(self.lines) < 10:
            self.lines.append(msg)


def verify(host, size_label, rounds, pct, ksmap):
    from cassandra.query import SimpleStatement
    t0 = time.monotonic()
    big_ks, small_ks = ksmap.get(BIG, BIG), ksmap.get(SMALL, SMALL)
    cluster, session = connect(host)
    rep = Report()
    checked_rows = checked_parts = 0
    try:
        try:
            meta = read_meta(session, ksmap)
        except Fail:
            if size_label is None:
                raise
            meta = None
            rep.bad(f"{small_ks}.{META_TABLE} unreadable")
        base = None
        if size_label is not None:
            info = read_cached(size_label)
            if info is None:
                raise Fail(f"no cached {size_label} dataset (build it first)")
            base = info["meta"]
            if meta is not None and meta.get("base") != base:
                rep.bad(f"{small_ks}.{META_TABLE} 'base': expected {short(base, 200)}, got "
                        f"{short(meta.get('base'), 200)}")
        else:
            base = meta.get("base")
            if base is None:
                raise Fail(f"{small_ks}.{META_TABLE} has no base record; pass --size")
        if base.get("version") != GENERATOR_VERSION:
            raise Fail(f"dataset generator version {base.get('version')}, this is {GENERATOR_VERSION}")
        streams = {0: base}
        for r in range(1, rounds + 1):
            rec = (meta or {}).get(f"round-{r}")
            if rec is None:
                raise Fail(f"grow round {r} is not recorded in {small_ks}.{META_TABLE}")
            streams[r] = rec
        if meta is not None:
            extra = sorted(k for k in meta if k != "base" and k not in {f"round-{r}" for r in streams})
            for k in extra:
                rep.bad(f"{small_ks}.{META_TABLE}: unexpected record '{k}' (more rounds than --rounds {rounds}?)")
        g = Gen(base["seed"])

        # bench_big: every partition key present; every row of the sampled partitions
        for t in BIG_TABLES:
            exp_keys = set()
            for s, rec in streams.items():
                for b in range(rec["batches"]):
                    exp_keys.add(norm_row(g.big_partition_key(t.name, s, b)))
            got_keys = set()
            q = SimpleStatement(f"SELECT DISTINCT {', '.join(t.pk)} FROM {big_ks}.{t.name}", fetch_size=5000)
            try:
                for r in session.execute(q, timeout=300):
                    got_keys.add(norm_row(r))
            except Exception as e:
                rep.bad(f"{big_ks}.{t.name}: cannot read: {e}")
                continue
            if got_keys != exp_keys:
                miss, extra = exp_keys - got_keys, got_keys - exp_keys
                eg = sorted(miss or extra)[0]
                rep.bad(f"{big_ks}.{t.name}: {len(got_keys)} partitions, {len(exp_keys)} expected "
                        f"({len(miss)} missing, {len(extra)} unexpected, e.g. {short(eg)})")
            sel = session.prepare(f"SELECT {', '.join(t.names)} FROM {big_ks}.{t.name} WHERE "
                                  + " AND ".join(f"{c} = ?" for c in t.pk))
            for s, rec in streams.items():
                nb = rec["batches"]
                for b in range(nb):
                    if not sampled(g.seed, s, b, nb - 1, pct):
                        continue
                    key = g.big_partition_key(t.name, s, b)
                    exp = {}
                    for row, _ in g.big_rows(t.name, s, b):
                        row = norm_row(row)
                        exp[tuple(row[i] for i in t.ck_idx)] = row
                    sel.fetch_size = 200
                    where = f"{big_ks}.{t.name} {dict(zip(t.pk, norm_row(key)))}"
                    n = 0
                    for r in session.execute(sel, key, timeout=300):
                        r = norm_row(r)
                        ck = tuple(r[i] for i in t.ck_idx)
                        e = exp.pop(ck, None)
                        n += 1
                        if e is None:
                            rep.bad(f"{where}: unexpected row {dict(zip(t.ck, ck))}")
                        elif e != r:
                            _diff(rep, where, dict(zip(t.ck, ck)), t.names, e, r)
                    for ck in list(exp)[:3]:
                        rep.bad(f"{where}: missing row {dict(zip(t.ck, ck))}")
                    if len(exp) > 3:
                        rep.count += len(exp) - 3
                    checked_rows += n
                    checked_parts += 1

        # bench_small: every row of every table, and the row counts
        for t in SMALL_TABLES:
            exp = {}
            for s, rec in streams.items():
                for i in range(rec["small_rows"].get(t.name, 0)):
                    row = norm_row(t.row(g, s, i))
                    exp[tuple(row[k] for k in t.key_idx)] = row
            where = f"{small_ks}.{t.name}"
            q = SimpleStatement(f"SELECT {', '.join(t.names)} FROM {where}", fetch_size=1000)
            n = 0
            try:
                for r in session.execute(q, timeout=300):
                    r = norm_row(r)
                    k = tuple(r[i] for i in t.key_idx)
                    e = exp.pop(k, None)
                    n += 1
                    if e is None:
                        rep.bad(f"{where}: unexpected row {short(k)}")
                    elif e != r:
                        _diff(rep, where, k, t.names, e, r)
            except Exception as e:
                rep.bad(f"{where}: cannot read: {e}")
                continue
            if exp:
                rep.bad(f"{where}: {n} rows, {n + len(exp)} expected; missing e.g. {short(next(iter(exp)))}")
                rep.count += len(exp) - 1
            checked_rows += n
            checked_parts += 1
        if meta is not None:
            checked_rows += len(meta)
    finally:
        cluster.shutdown()
    return rep, {"ok": rep.count == 0, "host": host, "rounds": rounds, "sample_percent": pct,
                 "tables": len(BIG_TABLES) + len(SMALL_TABLES) + 1,
                 "partitions_checked": checked_parts, "rows_checked": checked_rows,
                 "mismatches": rep.count, "seconds": round(time.monotonic() - t0, 1)}


def _diff(rep, where, key, names, e, r):
    for c, a, b in zip(names, e, r):
        if a != b:
            rep.bad(f"{where} row {short(key)} column {c}: expected {short(a)}, got {short(b)}")


# ---- command line -----------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="bench/dataset", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=__doc__)
    sub = ap.add_subparsers(dest="cmd", metavar="COMMAND")
    sub.required = True

    def common_build(p):
        p.add_argument("--size", default="2G", help="on-disk size of the live SSTables of the bench "
                       "keyspaces, binary units: 64M, 500M, 2G (default), 20G")
        p.add_argument("--work", default="/tmp/cassette-dataset-build",
                       help="base directory of the builder's node (default %(default)s)")
        p.add_argument("--concurrency", type=int, default=CONCURRENCY,
                       help="concurrent writes while loading (default %(default)s)")

    p = sub.add_parser("build", formatter_class=argparse.RawDescriptionHelpFormatter,
                       help="build and cache a dataset (no-op when cached)",
                       description="Ensures $CASSETTE_CACHE/bench/dataset-SIZE-v1/ holds a complete "
                       "dataset and prints its dataset.json.\nOtherwise starts a fresh node N in the "
                       "work base, loads rows in flushed rounds until the live SSTables of bench_big "
                       "and\nbench_small reach SIZE on disk, waits for compactions, drains, stops the "
                       "node and moves its directory\ninto the cache (through a temporary directory, "
                       "renamed into place last).")
    common_build(p)
    p.add_argument("--node", type=int, default=3, help="node number to build as (default 3); the "
                   "cached dataset can only run as this node")

    p = sub.add_parser("provision", formatter_class=argparse.RawDescriptionHelpFormatter,
                       help="lay a cached dataset out as DIR/nodeN and start it",
                       description="Lays the cached dataset out as DIR/nodeN (hard links for the "
                       "SSTables, copies for the rest), starts the node\nwith tests/env/cassandra.sh "
                       "and prints dataset.json plus node_dir, data_dirs and host. Builds the dataset "
                       "first\nwhen it is not cached. Do not let anything write into the hard-linked "
                       "files in place (Cassandra does\nnot; a restore that overwrites existing files "
                       "would): provision checks the cache and refuses if one changed.")
    common_build(p)
    p.add_argument("--base", required=True, help="base directory of the node (cassandra.sh --base)")
    p.add_argument("--node", type=int, default=3, help="node number (must be the one the dataset "
                   "was built as; default 3)")
    p.add_argument("--force", action="store_true", help="remove a non-empty DIR/nodeN first")
    p.add_argument("--copy", action="store_true", help="copy the data files instead of hard-linking")

    p = sub.add_parser("grow", formatter_class=argparse.RawDescriptionHelpFormatter,
                       help="add about P%% more rows to a running dataset node, flush, list new SSTables",
                       description="Inserts round R's rows into the running node: about P% of the base "
                       "dataset (by generated bytes, in the\nsame table proportions), with keys of "
                       "their own; records the round in bench_small.dataset_meta;\nnodetool flush; "
                       "waits for compactions; prints rows added per table and the live SSTable "
                       "files\n(relative to the data dir) that are new since before the grow, with "
                       "new_bytes their total.")
    p.add_argument("--base", required=True, help="base directory of the node")
    p.add_argument("--node", type=int, required=True, help="node number")
    p.add_argument("--percent", type=float, required=True, help="amount to add, in %% of the base data")
    p.add_argument("--round", type=int, default=1, help="round number, 1.. (default 1); each round "
                   "has its own seed and keys")
    p.add_argument("--concurrency", type=int, default=CONCURRENCY, help=argparse.SUPPRESS)

    p = sub.add_parser("verify", formatter_class=argparse.RawDescriptionHelpFormatter,
                       help="read the data back and compare with the generator",
                       description="Reads back and compares with the generator: every partition key "
                       "of the big tables, every row and\ncolumn of a deterministic PCT% sample of "
                       "their partitions, every row of every small table (so their\nrow counts), "
                       "and the dataset_meta records. The counts come from bench_small.dataset_meta, "
                       "checked\nagainst the cached dataset.json when --size is given. Exit 0 with a "
                       "one-line JSON summary, or 1 with\nthe first mismatches on stderr (at most 10 "
                       "lines) and the summary.")
    p.add_argument("--host", required=True, help="CQL address, e.g. 127.0.0.3 (port 9042)")
    p.add_argument("--size", help="the dataset's size label, to check against its cached dataset.json")
    p.add_argument("--rounds", type=int, default=0, help="grow rounds 1..R were applied (default 0)")
    p.add_argument("--sample", type=float, default=2.0, help="percent of the big tables' partitions "
                   "to compare row by row (default 2; 100 = all)")
    p.add_argument("--keyspace-map", action="append", default=[], metavar="OLD=NEW",
                   help="read keyspace OLD under the name NEW (repeatable)")

    a = ap.parse_args(argv)

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    try:
        if a.cmd in ("build", "provision"):
            size_bytes, label = parse_size(a.size)
            if not 1 <= a.node <= 9:
                raise Fail("--node must be 1..9")
            os.makedirs(BENCH_CACHE, exist_ok=True)
            if a.cmd == "provision":
                cached = read_cached(label)
                if cached is not None and cached["node"] != a.node:
                    raise Fail(f"the {label} dataset was built as node {cached['node']}; "
                               f"provision it with --node {cached['node']}")
            info = ensure_built(label, size_bytes, a.node, os.path.abspath(a.work), a.concurrency)
            if info["node"] != a.node and a.cmd == "build":
                say(f"note: the cached {label} dataset was built as node {info['node']}, not {a.node}")
            if a.cmd == "provision":
                info = provision(info, a.base, a.node, a.force, a.copy)
            emit(info)
        elif a.cmd == "grow":
            emit(grow(a.base, a.node, a.percent, a.round, a.concurrency))
        elif a.cmd == "verify":
            ksmap = {}
            for m in a.keyspace_map:
                if "=" not in m:
                    raise Fail(f"bad --keyspace-map '{m}' (want OLD=NEW)")
                o, n = m.split("=", 1)
                ksmap[o.strip()] = n.strip()
            label = parse_size(a.size)[1] if a.size else None
            if not 0 < a.sample <= 100:
                raise Fail("--sample must be in (0, 100]")
            rep, summary = verify(a.host, label, a.rounds, a.sample, ksmap)
            for l in rep.lines:
                say(f"MISMATCH {l}")
            if rep.count > len(rep.lines):
                say(f"... {rep.count - len(rep.lines)} more mismatches")
            print(json.dumps(summary), flush=True)
            return 0 if summary["ok"] else 1
    except Fail as e:
        say(f"error: {e}")
        return 2
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except Exception as e:
        if os.environ.get("DATASET_DEBUG"):
            raise
        say(f"error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            " (DATASET_DEBUG=1 for the traceback)")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

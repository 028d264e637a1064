"""What a long operation shows while it runs, and how it stops (issue 18, the job context).

- Under a pseudo-terminal a backup of the test data set draws one live line (phase, files and
  bytes done of total, rate, ETA), redrawn in place, and ends with its summary on a clean line.
- Without a terminal nothing carries a control character; with -v backup, restore, verify
  --deep and purge print plain progress lines.
- --progress=json prints one JSON event per line and ends with the result document.
- SIGINT during a backup (once its upload is under way: a progress event is the readiness
  signal) stops it within seconds with exit 130 and one clear line; the next backup and a
  restore of it are correct row by row. SIGINT during a restore's download leaves no staging
  behind and the node's rows as they were.

The slow runs go to a bucket of the real S3 server with --rate-limit, so that they last some
seconds whatever the machine; the rest use a local directory."""

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time

import pytest

from conftest import mark_dirty
from s3env import S3Client
from test_exit_codes import _hand_lock

# Part buffers of one part: what is read is at most a part ahead of what is sent.
SLOW = ["--rate-limit", "4M", "--s3-concurrency", "1", "--s3-part-size", "5M"]
SLOWER = ["--rate-limit", "2M", "--s3-concurrency", "1", "--s3-part-size", "5M"]


@pytest.fixture
def s3_loc(s3_server, s3_bucket, cassette):
    """An empty unencrypted repository in a fresh bucket: (location, env)."""
    env = {"AWS_ACCESS_KEY_ID": s3_server.access_key, "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
           "AWS_REGION": s3_server.region, "AWS_ENDPOINT_URL": s3_server.endpoint}
    loc = f"s3://{s3_bucket}/repo"
    cassette("init", "--repo", loc, "--no-encryption", env=env).ok()
    return loc, env


def _env(cassette, extra=None):
    env = cassette.env()
    env.update(extra or {})
    return env


def _cmd(cassette, node, *args):
    return [str(cassette.bin), "--config", str(node.ini), *map(str, args)]


def _run_pty(cmd, env, timeout=600, cols=200):
    """Run cmd with stdout and stderr on a pseudo-terminal of `cols` columns; (rc, bytes)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, cols, 0, 0))
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while True:
            assert time.monotonic() < deadline, f"still running after {timeout} s: {bytes(out[-2000:])!r}"
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer of the terminal is gone
                break
            if not data:
                break
            out += data
        return proc.wait(timeout=60), bytes(out)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def _control_bytes(data):
    """Bytes below 0x20 other than a newline (and DEL)."""
    return sorted({b for b in data if (b < 0x20 and b != 0x0A) or b == 0x7F})


def _events(text):
    """Every line of stdout as JSON (each must parse)."""
    lines = text.splitlines()
    assert lines, "no output"
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError as e:
            raise AssertionError(f"not one JSON document per line ({e}): {line!r}") from None
    return out


def _read_events_until(proc, want, timeout=300):
    """Read JSON events from proc.stdout until want(event) holds; the events read."""
    seen = []
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        ev = json.loads(line)
        seen.append(ev)
        if want(ev):
            return seen
        assert time.monotonic() < deadline, f"not within {timeout} s: {seen[-3:]}"
    raise AssertionError(f"the command ended (exit {proc.wait()}) before: {seen[-5:]}"
                         f" {proc.stderr.read()[-2000:]}")


def _moving(phase):
    return lambda ev: (ev.get("event") == "progress" and ev.get("phase") == phase
                       and ev.get("bytes_done", 0) > 0 and not ev.get("final"))


def _locks(s3_server, bucket):
    with S3Client(s3_server) as client:
        return client.list_keys(bucket, "repo/locks/")


def _staging(node):
    return [p for d in node.data_dirs if d.is_dir() for p in d.iterdir()
            if p.name.startswith(".cassette-staging-")]


def test_live_line_on_a_terminal(cassette, node, big_data, s3_loc):
    loc, env = s3_loc
    rc, raw = _run_pty(_cmd(cassette, node, "backup", "--repo", loc, "--name", "on-a-tty", *SLOW),
                       _env(cassette, env))
    text = raw.decode(errors="replace")
    assert rc == 0, text[-3000:]
    # Each redraw: carriage return, the line, erase to its end.
    drawn = [s[:-len("\x1b[K")] for s in text.split("\r") if s.endswith("\x1b[K")]
    upload = [s for s in drawn if s.startswith("backup: upload ")]
    moving = sorted({s for s in upload if "/s, " in s and "ETA " in s})
    print(f"\n{len(drawn)} redraws, {len(upload)} of the upload, {len(moving)} distinct with rate and ETA;"
          f" e.g. {moving[len(moving) // 2] if moving else None!r}")
    assert len(moving) >= 2, f"no changing line with rate and ETA: {upload[:10]}"
    assert all(len(s) < 200 for s in drawn), "a line wider than the terminal"
    assert any(" files, " in s and "%)" in s for s in moving), moving[:3]
    # The line is cleared before the summary, which ends the output on lines of its own.
    last_clear = text.rindex("\r\x1b[K")
    tail = text[last_clear + len("\r\x1b[K"):]
    assert tail.startswith("backup on-a-tty complete: "), repr(tail[:300])
    assert "\x1b" not in tail and "ETA" not in tail, repr(tail)
    listed = cassette("list", "--repo", loc, "--json", env=env).ok().json()
    assert [e["complete"] for e in listed if e["name"] == "on-a-tty"] == [True], listed

    # Log lines (-v) clear the line first: each starts a line of its own.
    rc, raw = _run_pty(_cmd(cassette, node, "verify", "-v", "--deep", "--repo", loc, "--rate-limit", "8M"),
                       _env(cassette, env))
    text = raw.decode(errors="replace")
    assert rc == 0, text[-3000:]
    starts = [i for i in range(len(text)) if text.startswith("cassette: info: ", i)]
    assert starts, text[-3000:]
    assert all(text[:i].endswith(("\n", "\r\x1b[K")) or i == 0 for i in starts), text[-3000:]
    assert "verify: read " in text, text[-3000:]


def test_no_control_characters_without_a_terminal(cassette, node, session, big_data, tmp_path):
    ds = big_data
    repo = tmp_path / "repo"
    cassette("init", "--repo", repo, "--no-encryption").ok()
    wide = ds.table("wide")
    runs = {
        "backup": ["backup", "-v", "--repo", repo, "--name", "plain-1"],
        "quiet backup": ["backup", "--repo", repo, "--name", "plain-2"],
        "verify": ["verify", "-v", "--deep", "--repo", repo],
        "restore": ["restore", "-v", "--repo", repo, "--backup", "plain-1", "--table", wide.full_name],
        "purge": ["purge", "-v", "--repo", repo, "--keep-last", "1", "--grace", "0"],
        "forced plain": ["verify", "--progress", "plain", "--repo", repo],
    }
    expect = {"backup": "cassette: backup: upload ", "verify": "cassette: verify: read ",
              "restore": "cassette: restore: download ", "purge": "cassette: purge: sweep ",
              "forced plain": "cassette: verify: list "}
    mark_dirty(ds)  # the restore imports the table's rows again (the same rows)
    for what, args in runs.items():
        p = subprocess.run(_cmd(cassette, node, *args), env=cassette.env(), capture_output=True,
                           stdin=subprocess.DEVNULL, timeout=900)
        assert p.returncode == 0, (what, p.stdout[-2000:], p.stderr[-2000:])
        assert _control_bytes(p.stdout) == [] and _control_bytes(p.stderr) == [], \
            (what, _control_bytes(p.stdout), _control_bytes(p.stderr), p.stderr[-2000:])
        err = p.stderr.decode()
        if what in expect:
            assert expect[what] in err, (what, err[-3000:])
        if what == "quiet backup":
            assert "cassette: backup:" not in err, err  # no -v: no progress lines
    assert ds.check(session) == ds.total_rows
    mark_dirty(ds, False)


def test_json_events(cassette, node, big_data, tmp_path):
    repo = tmp_path / "repo"
    cassette("init", "--repo", repo, "--no-encryption").ok()
    res = cassette("backup", "--repo", repo, "--name", "json-1", "--progress=json").ok()
    events = _events(res.out)
    result = events[-1]
    assert "event" not in result, result
    assert result["name"] == "json-1" and result["complete"] is True, result
    assert all("event" in ev for ev in events[:-1]), events[:-1]
    kinds = {ev["event"] for ev in events[:-1]}
    assert kinds == {"phase", "progress"}, kinds
    for ev in events[:-1]:
        if ev["event"] != "log":
            assert ev["op"] == "backup"
            for k in ("phase", "files_done", "files_total", "bytes_done", "bytes_total", "item",
                      "elapsed"):
                assert k in ev, (k, ev)
    phases = [ev["phase"] for ev in events if ev.get("event") == "phase"]
    assert phases.index("snapshot") < phases.index("scan") < phases.index("upload") < \
        phases.index("manifest"), phases
    start = next(ev for ev in events if ev.get("event") == "phase" and ev["phase"] == "upload")
    assert start["files_total"] == result["files_new"] and start["bytes_total"] == result["bytes_read"], \
        (start, result)
    done = next(ev for ev in events if ev.get("final") and ev["phase"] == "upload")
    assert done["files_done"] == done["files_total"] and done["bytes_done"] == done["bytes_total"], done
    # The last line is the document --json prints.
    again = cassette("backup", "--repo", repo, "--name", "json-2", "--json").ok().json()
    assert set(again) == set(result), (again, result)
    # Log lines are events too (-v: the check of the objects to reuse), not lines on stderr.
    res = cassette("backup", "--repo", repo, "--name", "json-3", "--progress=json", "-v").ok()
    logs = [ev for ev in _events(res.out) if ev.get("event") == "log"]
    assert any(ev["level"] == "info" and "objects to reuse" in ev["message"] for ev in logs), logs
    assert "cassette: info:" not in res.err, res.describe()

    res = cassette("verify", "--deep", "--repo", repo, "--progress=json").ok()
    events = _events(res.out)
    read = next(ev for ev in events if ev.get("final") and ev.get("phase") == "read")
    assert read["bytes_total"] > 0 and read["bytes_done"] == read["bytes_total"], read
    assert read["files_done"] == read["files_total"] == events[-1]["objects"], (read, events[-1])
    assert events[-1] == cassette("verify", "--deep", "--repo", repo, "--json").ok().json()

    res = cassette("purge", "--repo", repo, "--keep-last", "1", "--grace", "0", "--progress=json").ok()
    events = _events(res.out)
    sweep = next(ev for ev in events if ev.get("final") and ev.get("phase") == "sweep")
    assert sweep["files_done"] == sweep["files_total"] == events[-1]["objects_deleted"], (sweep, events[-1])
    assert events[-1]["removed"] == 2, events[-1]  # json-1 and json-2

    # A failure ends the stream with an error event.
    res = cassette("verify", "--repo", repo, "--backup", "nothing-such", "--progress=json")
    assert res.rc == 1, res.describe()
    last = _events(res.out)[-1]
    assert last["event"] == "error" and last["exit_code"] == 1 and "nothing-such" in last["message"], last

    res = cassette("verify", "--repo", repo, "--progress=bar")
    assert res.rc == 2 and "--progress must be auto, tty, plain, json or none" in res.err, res.describe()


def test_sigint_during_backup(cassette, node, session, big_data, s3_loc, s3_server, s3_bucket):
    ds = big_data
    loc, env = s3_loc
    proc = subprocess.Popen(_cmd(cassette, node, "backup", "--repo", loc, "--name", "stopped",
                                 "--progress=json", *SLOWER),
                            env=_env(cassette, env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _read_events_until(proc, _moving("upload"))
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        stopped_in = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    print(f"\nSIGINT: stopped in {stopped_in:.2f} s")
    assert proc.returncode == 130, (out[-2000:], err)
    assert err == "cassette: interrupted; run backup again to resume\n", err
    assert stopped_in < 10, f"took {stopped_in:.1f} s to stop"
    last = _events(out)[-1]
    assert last == {"event": "error", "message": "interrupted; run backup again to resume",
                    "exit_code": 130}, last
    assert _locks(s3_server, s3_bucket) == []
    assert not list(node.dir.glob("data/*/*/snapshots/cassette-stopped")), "the snapshot was not cleared"
    stopped = [e for e in cassette("list", "--repo", loc, "--json", env=env).ok().json()
               if e["name"] == "stopped"]
    assert all(e.get("complete") is False for e in stopped), stopped

    summary = cassette("backup", "--repo", loc, "--name", "after", "--json", env=env).ok().json()
    assert summary["complete"] is True, summary
    mark_dirty(ds)
    for t in ds.tables:
        session.execute(f"TRUNCATE {t.full_name}", timeout=120)
    cassette("restore", "--repo", loc, "--backup", "after", env=env).ok()
    assert ds.check(session) == ds.total_rows
    mark_dirty(ds, False)


def test_sigint_during_restore(cassette, node, session, big_data, s3_loc, s3_server, s3_bucket):
    ds = big_data
    loc, env = s3_loc
    cassette("backup", "--repo", loc, "--name", "to-restore", env=env).ok()
    proc = subprocess.Popen(_cmd(cassette, node, "restore", "--repo", loc, "--backup", "to-restore",
                                 "--progress=json", "--rate-limit", "2M"),
                            env=_env(cassette, env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _read_events_until(proc, _moving("download"))
        assert _staging(node), "no staging directory while downloading"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        stopped_in = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    print(f"\nSIGINT: restore stopped in {stopped_in:.2f} s")
    assert proc.returncode == 130, (out[-2000:], err)
    assert err.startswith("cassette: restore to-restore: interrupted; the staged downloads were removed"), err
    assert stopped_in < 10, f"took {stopped_in:.1f} s to stop"
    assert _events(out)[-1]["exit_code"] == 130
    assert _staging(node) == [], "the staging directory outlived the restore"
    assert _locks(s3_server, s3_bucket) == []
    assert ds.check(session) == ds.total_rows  # nothing was imported, nothing lost


def test_lock_wait_says_what_for(cassette, tmp_path):
    """A verify waiting for a lock names the holder (the current item of its progress), and
    SIGINT stops the wait: exit 130, one line."""
    repo = tmp_path / "repo"
    cassette("init", "--repo", repo, "--no-encryption").ok()
    _hand_lock(repo, "exclusive", os.getpid(), "test_progress holder")
    proc = subprocess.Popen([str(cassette.bin), "--config", str(cassette.ini), "verify", "--repo", str(repo),
                             "--lock-wait", "10m", "--progress=json"],
                            env=cassette.env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        seen = _read_events_until(proc, lambda ev: "waiting for lock held by test_progress holder"
                                  in ev.get("item", ""), timeout=60)
        assert seen[-1]["phase"] == "lock", seen[-1]
        assert "verify needs a shared lock" in seen[-1]["item"], seen[-1]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, (out, err)
    assert err == "cassette: verify: interrupted; nothing was changed, run verify again\n", err
    assert _events(out)[-1]["exit_code"] == 130

"""The S3 test environment itself, before cassette's S3 driver uses it: a real versitygw
that checks SigV4 signatures and does multipart uploads, awscli as the independent client,
and faultproxy's modes seen from a retrying client and from raw sockets. No Cassandra."""

import hashlib
import json
import os
import socket
import subprocess
import sys
import time

import urllib.error
import urllib.request

import pytest

import s3env
from s3env import aws, faultproxy, s3_bucket, s3_server, signed_request  # noqa: F401 (fixtures)


def _sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_random(path, size):
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 1 << 20)
            f.write(os.urandom(n))
            left -= n
    return _sha256_file(path)


def _keys(srv, bucket):
    with srv.client() as c:
        return sorted(c.list_keys(bucket))


# ---- the server and awscli -----------------------------------------------------------

def test_s3sh_status_env_and_idempotent_start(s3_server):
    st = s3_server.sh("status")
    assert st.stdout.startswith("versitygw running (pid "), st.stdout
    pid = s3_server.pid()
    assert pid and f"(pid {pid})" in st.stdout
    again = s3_server.start()
    assert "already running" in again and str(pid) in again, again
    env = s3_server.env()
    assert env["AWS_REGION"] == "us-east-1"
    assert env["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{s3_server.port}"
    assert env["AWS_ACCESS_KEY_ID"] and env["AWS_SECRET_ACCESS_KEY"]
    # Bound to loopback only.
    cmdline = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
    assert f"127.0.0.1:{s3_server.port}".encode() in cmdline, cmdline
    # `s3.sh aws` reaches the same server.
    out = s3_server.sh("aws", "s3api", "list-buckets", "--output", "json").stdout
    assert '"Buckets"' in out


def _gone(pid):
    """True when pid has exited (a zombie not yet reaped by init counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_s3sh_second_server_with_sidecar_metadata(s3_server, tmp_path):
    """A second server of its own directory and port, keeping metadata in a sidecar
    directory (what s3.sh falls back to without user xattrs): start, use, refuse a taken
    port, stop by pid."""
    srv = s3env.S3Server(dir=tmp_path / "s3b", port=_free_port(),
                         env={"CASSETTE_S3_META": "sidecar"})
    try:
        out = srv.start()
        assert "metadata: sidecar" in out and f"127.0.0.1:{srv.port}" in out, out
        pid = srv.pid()
        srv.mkbucket("side-bucket")
        with srv.client() as c:
            etag = c.put("side-bucket", "k/v.bin", b"sidecar" * 100)
            assert c.head("side-bucket", "k/v.bin")["etag"] == etag
        assert (srv.dir / "sidecar" / "side-bucket").is_dir()
        assert srv.aws("s3", "ls", "s3://side-bucket/k/").split()[-1] == "v.bin"
        # Its port is taken: a third server there is refused, the second one untouched.
        third = s3env.S3Server(dir=tmp_path / "s3c", port=srv.port)
        p = third.sh("start", check=False)
        assert p.returncode != 0 and "taken" in p.stderr, p.stderr
        assert srv.pid() == pid
    finally:
        srv.stop()
    assert srv.pid() is None and _gone(pid)
    assert srv.sh("status", check=False).returncode == 3


def test_bucket_create_list_delete(s3_server, tmp_path):
    name = s3env.unique_bucket_name("lifecycle")
    aws("s3", "mb", f"s3://{name}")
    try:
        assert name in s3_server.buckets()
        f = tmp_path / "hello.txt"
        f.write_bytes(b"hello, cassette\n")
        aws("s3", "cp", str(f), f"s3://{name}/dir/hello.txt")
        assert _keys(s3_server, name) == ["dir/hello.txt"]
        # What the posix backend stored is the object, byte for byte.
        assert s3_server.object_path(name, "dir/hello.txt").read_bytes() == f.read_bytes()
        got = tmp_path / "got.txt"
        aws("s3", "cp", f"s3://{name}/dir/hello.txt", str(got))
        assert got.read_bytes() == f.read_bytes()
        # A non-empty bucket is not deleted without --force.
        p = s3_server.aws_run("s3api", "delete-bucket", "--bucket", name)
        assert p.returncode != 0 and "BucketNotEmpty" in p.stderr, p.stderr
    finally:
        aws("s3", "rb", f"s3://{name}", "--force")
    assert name not in s3_server.buckets()
    assert not (s3_server.root / name).exists()


def test_s3sh_mkbucket(s3_server):
    name = s3env.unique_bucket_name("mkbucket")
    try:
        assert "created" in s3_server.sh("mkbucket", name).stdout
        assert "exists" in s3_server.sh("mkbucket", name).stdout
        assert name in s3_server.buckets()
    finally:
        s3_server.rmbucket(name)


def test_wrong_secret_is_rejected(s3_server, s3_bucket, tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(b"x" * 1000)
    p = s3_server.aws_run("s3api", "put-object", "--bucket", s3_bucket, "--key", "x.bin",
                          "--body", str(f), env={"AWS_SECRET_ACCESS_KEY": "not-the-secret"})
    assert p.returncode != 0, p.stdout
    assert "SignatureDoesNotMatch" in p.stderr, p.stderr
    # Our own SigV4 signer: the right secret is accepted, a wrong one and no signature are not.
    st, _, body = signed_request(s3_server, "PUT", f"/{s3_bucket}/own.bin", b"own" * 100)
    assert st == 200, body
    st, _, body = signed_request(s3_server, "PUT", f"/{s3_bucket}/bad.bin", b"bad",
                                 secret_key="not-the-secret")
    assert st == 403 and b"<Code>SignatureDoesNotMatch</Code>" in body, body
    # A correct signature over other content is caught by the payload hash.
    url = s3_server.endpoint + f"/{s3_bucket}/tampered.bin"
    h = s3env.sigv4_sign("PUT", url, {}, hashlib.sha256(b"signed").hexdigest(),
                         s3_server.access_key, s3_server.secret_key, s3_server.region)
    st, body = _raw_put(s3_server.port, f"/{s3_bucket}/tampered.bin", h, b"not signed")
    assert st in (400, 403), body
    with socket.create_connection(("127.0.0.1", s3_server.port), timeout=10) as s:
        s.sendall(f"PUT /{s3_bucket}/anon.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  "Content-Length: 4\r\n\r\nanon".encode())
        assert _read_response(s.makefile("rb"))[0] == 403
    assert _keys(s3_server, s3_bucket) == ["own.bin"]


def _raw_put(port, path, headers, body):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        s.sendall(f"PUT {path} HTTP/1.1\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode()
                  + body)
        st, _, data = _read_response(s.makefile("rb"))
        return st, data


def test_multipart_upload_20mib(s3_server, s3_bucket, tmp_path):
    src = tmp_path / "big.bin"
    digest = _write_random(src, 20 << 20)
    cfg = {"multipart_threshold": "5MB", "multipart_chunksize": "5MB"}
    aws("s3", "cp", str(src), f"s3://{s3_bucket}/big.bin", "--no-progress", s3_config=cfg)
    head = s3_server.aws_json("s3api", "head-object", "--bucket", s3_bucket, "--key", "big.bin")
    assert head["ContentLength"] == 20 << 20
    assert head["ETag"].strip('"').endswith("-4"), head  # 4 parts of 5 MiB
    assert _sha256_file(s3_server.object_path(s3_bucket, "big.bin")) == digest
    got = tmp_path / "got.bin"
    aws("s3", "cp", f"s3://{s3_bucket}/big.bin", str(got), "--no-progress", s3_config=cfg)
    assert _sha256_file(got) == digest
    ups = s3_server.aws_json("s3api", "list-multipart-uploads", "--bucket", s3_bucket) or {}
    assert not ups.get("Uploads"), ups


# ---- faultproxy seen by awscli ---------------------------------------------------------

def test_faultproxy_pass(s3_server, s3_bucket, faultproxy, tmp_path):
    src = tmp_path / "a.bin"
    digest = _write_random(src, 300_000)
    aws("s3", "cp", str(src), f"s3://{s3_bucket}/a.bin", endpoint=faultproxy.endpoint)
    got = tmp_path / "got.bin"
    aws("s3", "cp", f"s3://{s3_bucket}/a.bin", str(got), endpoint=faultproxy.endpoint)
    assert _sha256_file(got) == digest
    c = faultproxy.counters()
    assert c["requests"] >= 2 and c["forwarded"] == c["requests"], c
    assert c["faults"] == 0 and c["statuses"].get("200", 0) >= 2, c
    assert c["bytes_in"] > 300_000 and c["bytes_out"] > 300_000, c


def test_faultproxy_503_every_2nd_awscli_retries(s3_server, s3_bucket, faultproxy, tmp_path):
    state = faultproxy.set("503", every=2)
    assert state["mode"] == {"mode": "503", "every": 2, "limit": 0, "status": 503,
                             "code": "SlowDown"}
    digests = {}
    for i in range(3):
        f = tmp_path / f"f{i}.bin"
        digests[f"f{i}.bin"] = _write_random(f, 20_000 + i)
        aws("s3api", "put-object", "--bucket", s3_bucket, "--key", f"f{i}.bin",
            "--body", str(f), endpoint=faultproxy.endpoint)
    c = faultproxy.counters()
    assert c["faults_by_mode"]["503"] >= 2 and c["statuses"]["503"] >= 2, c
    assert c["faults"] == c["faults_by_mode"]["503"], c
    log = faultproxy.log()
    assert [e["fault"] for e in log][:2] == [None, "503"], log
    # Each refused PUT was answered by SlowDown, retried, and stored once.
    faultproxy.passthrough()
    assert _keys(s3_server, s3_bucket) == sorted(digests)
    for k, d in digests.items():
        assert _sha256_file(s3_server.object_path(s3_bucket, k)) == d


def test_faultproxy_reset_request_body_awscli_retries(s3_server, s3_bucket, faultproxy,
                                                      tmp_path):
    faultproxy.set("reset", where="request", after=64 << 10, method="PUT", limit=1)
    src = tmp_path / "r.bin"
    digest = _write_random(src, 1 << 20)
    aws("s3", "cp", str(src), f"s3://{s3_bucket}/r.bin", "--no-progress",
        endpoint=faultproxy.endpoint)
    c = faultproxy.counters()
    assert c["faults_by_mode"]["reset"] == 1, c
    puts = [e for e in faultproxy.log() if e["method"] == "PUT"]
    assert puts[0]["fault"] == "reset" and puts[0]["status"] is None, puts
    assert puts[-1]["status"] == 200, puts
    assert _sha256_file(s3_server.object_path(s3_bucket, "r.bin")) == digest


def test_faultproxy_reset_response_body(s3_server, s3_bucket, faultproxy, tmp_path):
    src = tmp_path / "g.bin"
    digest = _write_random(src, 1 << 20)
    aws("s3", "cp", str(src), f"s3://{s3_bucket}/g.bin", "--no-progress")
    faultproxy.set("reset", after=100_000, method="GET", limit=1)
    got = tmp_path / "got.bin"
    p = s3_server.aws_run("s3api", "get-object", "--bucket", s3_bucket, "--key", "g.bin",
                          str(got), endpoint=faultproxy.endpoint)
    assert p.returncode != 0 and "reset" in p.stderr.lower(), (p.returncode, p.stderr)
    assert faultproxy.counters()["faults_by_mode"]["reset"] == 1
    # The limit is spent: the next download passes untouched.
    aws("s3api", "get-object", "--bucket", s3_bucket, "--key", "g.bin", str(got),
        endpoint=faultproxy.endpoint)
    assert _sha256_file(got) == digest


def test_faultproxy_stall(s3_server, s3_bucket, faultproxy, tmp_path):
    src = tmp_path / "s.bin"
    digest = _write_random(src, 1 << 20)
    aws("s3", "cp", str(src), f"s3://{s3_bucket}/s.bin", "--no-progress")
    got = tmp_path / "got.bin"
    # A stall shorter than the client's read timeout: the download just takes longer.
    faultproxy.set("stall", seconds=1.5, after=64 << 10, method="GET", limit=1)
    t0 = time.monotonic()
    aws("s3", "cp", f"s3://{s3_bucket}/s.bin", str(got), "--no-progress",
        endpoint=faultproxy.endpoint)
    assert time.monotonic() - t0 >= 1.5
    assert _sha256_file(got) == digest
    assert faultproxy.counters()["faults_by_mode"]["stall"] == 1
    # A stall longer than the read timeout: awscli times out, retries, and completes.
    faultproxy.set("stall", seconds=4, after=64 << 10, method="GET", limit=1)
    got.unlink()
    t0 = time.monotonic()
    aws("--cli-read-timeout", "1", "s3", "cp", f"s3://{s3_bucket}/s.bin", str(got),
        "--no-progress", endpoint=faultproxy.endpoint)
    assert time.monotonic() - t0 < 4
    assert _sha256_file(got) == digest
    c = faultproxy.counters()
    assert c["faults_by_mode"]["stall"] == 2, c
    gets = [e for e in faultproxy.log() if e["method"] == "GET"]
    assert len(gets) >= 3, gets


# ---- faultproxy's HTTP framing, from a raw socket ---------------------------------------

def _read_response(f, method="PUT"):
    """(status, head text, body) of one response read from f, a socket's buffered reader
    (Content-Length bodies), skipping 1xx interim answers."""
    while True:
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            line = f.readline(65536)
            if not line:
                raise ConnectionError(f"closed after {head!r}")
            head += line
        text = head.decode("latin-1")
        status = int(text.split(" ", 2)[1])
        if 100 <= status < 200:
            continue
        length = 0
        for line in text.split("\r\n")[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == "content-length":
                length = int(v)
        body = f.read(length) if method != "HEAD" and length else b""
        return status, text, body


def _signed_head(srv, method, path, port, body, extra=""):
    url = f"http://127.0.0.1:{port}{path}"
    h = s3env.sigv4_sign(method, url, {}, hashlib.sha256(body).hexdigest(),
                         srv.access_key, srv.secret_key, srv.region)
    head = "".join(f"{k}: {v}\r\n" for k, v in h.items())
    return (f"{method} {path} HTTP/1.1\r\n{head}Content-Length: {len(body)}\r\n{extra}\r\n"
            .encode())


def _expect_continue_put(sock, f, srv, path, port, body):
    """PUT with Expect: 100-continue, sending the body only after the 100 Continue."""
    sock.sendall(_signed_head(srv, "PUT", path, port, body, "Expect: 100-continue\r\n"))
    line = f.readline(65536)
    assert line.startswith(b"HTTP/1.1 100"), line
    assert f.readline(65536) == b"\r\n"
    sock.sendall(body)
    return _read_response(f)


def test_faultproxy_framing_on_one_connection(s3_server, s3_bucket, faultproxy):
    """Expect: 100-continue (forwarded, and answered by the proxy itself in 503 mode),
    chunked bodies and keep-alive: every request on one client connection."""
    port = faultproxy.port
    body = os.urandom(200_000)
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        f = s.makefile("rb")
        st, _, data = _expect_continue_put(s, f, s3_server, f"/{s3_bucket}/e1", port, body)
        assert st == 200, data
        faultproxy.set("503", every=1, method="PUT")
        st, text, data = _expect_continue_put(s, f, s3_server, f"/{s3_bucket}/e2", port, body)
        assert st == 503 and b"<Code>SlowDown</Code>" in data, (text, data)
        # A chunked request body: versitygw wants a Content-Length (411), but the framing
        # holds and the connection goes on.
        faultproxy.passthrough()
        url = f"http://127.0.0.1:{port}/{s3_bucket}/c1"
        h = s3env.sigv4_sign("PUT", url, {}, "UNSIGNED-PAYLOAD", s3_server.access_key,
                             s3_server.secret_key, s3_server.region)
        head = "".join(f"{k}: {v}\r\n" for k, v in h.items())
        s.sendall(f"PUT /{s3_bucket}/c1 HTTP/1.1\r\n{head}Transfer-Encoding: chunked\r\n\r\n"
                  "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n".encode())
        st, _, data = _read_response(f)
        assert st == 411, data
        # Pipelined: two GETs sent at once, answered in order.
        g1 = _signed_head(s3_server, "GET", f"/{s3_bucket}/e1", port, b"")
        g2 = _signed_head(s3_server, "HEAD", f"/{s3_bucket}/e1", port, b"")
        s.sendall(g1 + g2)
        st, _, data = _read_response(f, "GET")
        assert st == 200 and data == body
        st, text, data = _read_response(f, "HEAD")
        assert st == 200 and data == b"" and "200000" in text
    c = faultproxy.counters()
    assert c["connections"] == 1 and c["requests"] == 5, c
    assert c["faults_by_mode"]["503"] == 1 and c["statuses"] == {
        "200": 3, "503": 1, "411": 1}, c
    assert _keys(s3_server, s3_bucket) == ["e1"]


@pytest.mark.parametrize("how", ["fin", "rst"])
def test_faultproxy_cut_after_k_response_bytes(s3_server, s3_bucket, faultproxy, how):
    body = os.urandom(500_000)
    st, _, _ = signed_request(s3_server, "PUT", f"/{s3_bucket}/k.bin", body)
    assert st == 200
    faultproxy.set("reset", after=123_456, how=how, method="GET")
    port = faultproxy.port
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(_signed_head(s3_server, "GET", f"/{s3_bucket}/k.bin", port, b""))
        f = s.makefile("rb")
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += f.readline(65536)
        assert b" 200 " in head.split(b"\r\n", 1)[0] and b"500000" in head
        got = b""
        err = None
        try:
            while True:
                chunk = f.read1(65536)
                if not chunk:
                    break
                got += chunk
        except ConnectionResetError as e:
            err = e
    assert body.startswith(got)
    if how == "fin":
        assert err is None and len(got) == 123_456
    else:
        # With a reset the kernel may drop what the client had not read yet.
        assert len(got) <= 123_456
    assert faultproxy.counters()["faults_by_mode"]["reset"] == 1


def test_faultproxy_control_interface(faultproxy):
    for bad in ({"mode": "bogus"}, {"mode": "503", "every": 0},
                {"mode": "reset", "where": "sideways"}, {"mode": "pass", "path": "("}):
        req = urllib.request.Request(faultproxy.control + "/mode", method="POST",
                                     data=json.dumps(bad).encode())
        with pytest.raises(urllib.error.HTTPError) as ei:
            urllib.request.urlopen(req, timeout=10)
        assert ei.value.code == 400
    # Query-string form, for shells.
    req = urllib.request.Request(faultproxy.control + "/mode?mode=stall&seconds=2&after=10",
                                 method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert b'"stall"' in r.read()
    st = faultproxy.state()
    assert st["mode"]["mode"] == "stall" and st["mode"]["seconds"] == 2.0
    assert st["mode"]["after"] == 10 and st["mode"]["where"] == "response"
    assert faultproxy.reset()["counters"]["requests"] == 0
    # SIGTERM stops it cleanly (exit 0), and its ports are closed.
    port = faultproxy.port
    assert faultproxy.stop() == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_faultproxy_sigterm_with_open_connections(s3_server, faultproxy):
    """Idle keep-alive connections and a stalled response do not delay the shutdown."""
    faultproxy.set("stall", seconds=600, after=0, method="GET")
    port = faultproxy.port
    idle = socket.create_connection(("127.0.0.1", port), timeout=10)
    busy = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        busy.sendall(_signed_head(s3_server, "GET", "/", port, b""))
        # The stall fires once the response body starts: wait for the counter.
        deadline = time.monotonic() + 20
        while faultproxy.counters()["faults_by_mode"]["stall"] < 1:
            assert time.monotonic() < deadline, faultproxy.counters()
            time.sleep(0.05)
        t0 = time.monotonic()
        assert faultproxy.stop() == 0
        assert time.monotonic() - t0 < 8
    finally:
        idle.close()
        busy.close()


def test_faultproxy_loopback_only():
    """faultproxy refuses to listen anywhere but on loopback."""
    p = subprocess.run([sys.executable, str(s3env.FAULTPROXY_PY), "--upstream",
                        "127.0.0.1:1", "--host", "0.0.0.0"], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 2 and "loopback" in p.stderr

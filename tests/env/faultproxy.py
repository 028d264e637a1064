#!/usr/bin/env python3
"""faultproxy: a small fault-injecting HTTP/1.1 proxy for cassette's S3 tests.

    faultproxy.py --upstream 127.0.0.1:7070 [--port 0] [--control-port 0]
                  [--host 127.0.0.1] [--ready-file F] [--idle-timeout 120]

Listens on HOST:PORT (port 0: any free port) and forwards every request to the upstream
S3 server, byte for byte (headers are not rewritten: SigV4 signatures stay valid), with a
new upstream connection per request; the client's keep-alive connection is kept. Python 3.11
standard library only (asyncio). Frames HTTP/1.1 requests and responses: Content-Length,
chunked (with trailers), Expect: 100-continue and 1xx interim answers, HEAD/204/304,
bodies delimited by close. When ready it prints one JSON line on stdout (and writes it to
--ready-file): {"pid": P, "port": PORT, "control_port": CPORT, "upstream": "H:P"}.
SIGTERM or SIGINT stop it cleanly (listeners closed, connections cancelled, exit 0).

Control interface: HTTP on HOST:CPORT, answers JSON.
    GET  /state           {"mode": {...}, "counters": {...}}
    GET  /counters        the counters alone
    GET  /log             the last 500 requests: [{"n", "method", "target", "status", "fault"}]
    POST /mode            set the mode (JSON body, or the same keys as a query string:
                          POST /mode?mode=503&every=2); answers the new state
    POST /reset           zero the counters and the log (the mode stays)
    GET  /health          {"ok": true}

Modes (the JSON of POST /mode):
    {"mode": "pass"}                                   forward everything
    {"mode": "503", "every": N}                        answer every Nth matching request with
        HTTP 503 and an S3 <Error><Code>SlowDown</Code> body instead of forwarding (the request
        body is read and dropped first; with Expect: 100-continue the proxy sends its own
        100 Continue to get it). Optional "status" (default 503) and "code" (default
        SlowDown) for other S3 errors, e.g. {"mode": "503", "status": 500, "code": "InternalError"}.
    {"mode": "reset", "after": K, "where": "response"|"request", "how": "rst"|"fin"}
        forward the request but cut the connection after K bytes of the response body
        (default) or after K bytes of the request body (bytes as on the wire, chunk framing
        included); "rst" (default) resets the client connection (SO_LINGER 0), "fin" closes
        it normally (a truncated body). A body of K bytes or fewer passes untouched.
    {"mode": "stall", "seconds": S, "after": K, "where": "response"|"request"}
        stop forwarding for S seconds after K bytes (default 0: right after the response
        head) of the response body (default) or of the request body, then go on.
  Common keys: "every" (fault every Nth matching request; default 1), "limit" (at most this
  many faults, then pass; default 0 = no limit), "method" (e.g. "PUT" or "GET,HEAD": only
  these methods match), "path" (a regular expression searched in the request target,
  query string included). Setting a mode restarts its every-Nth count.

Counters: connections, requests (request heads read), matched (requests the mode's filter
took), forwarded, faults (fired), faults_by_mode {"503", "reset", "stall"}, statuses
{"200": n, ...} (answers relayed or made), upstream_errors, client_errors, bytes_in (request
bytes from clients), bytes_out (response bytes to clients).
"""

import argparse
import asyncio
import collections
import fcntl
import json
import os
import re
import signal
import socket
import struct
import sys
import termios
import time
import urllib.parse

MAX_HEAD = 64 * 1024          # request/response head limit
MAX_LINE = 8 * 1024           # chunk-size and trailer line limit
MAX_CONNECTIONS = 512
IO_CHUNK = 64 * 1024
LOG_KEEP = 500
MAX_STALL = 3600.0


def note(msg):
    """One line on stderr (the fixture keeps it in faultproxy.log)."""
    print(f"faultproxy {time.strftime('%H:%M:%S')}: {msg}", file=sys.stderr, flush=True)


class ProtocolError(Exception):
    pass


class Cut(Exception):
    """A 'reset' fault fired: drop the connections."""


# ---- state ------------------------------------------------------------------

class State:
    MODES = ("pass", "503", "reset", "stall")

    def __init__(self):
        self.mode = {"mode": "pass"}
        self.seen = 0          # matching requests since the mode was set
        self.fired = 0         # faults since the mode was set
        self.method = None
        self.path = None
        self.reset_counters()

    def reset_counters(self):
        self.counters = {
            "connections": 0, "requests": 0, "matched": 0, "forwarded": 0, "faults": 0,
            "faults_by_mode": {"503": 0, "reset": 0, "stall": 0}, "statuses": {},
            "upstream_errors": 0, "client_errors": 0, "bytes_in": 0, "bytes_out": 0,
            "active": 0, "max_active": 0,
        }
        self.log = collections.deque(maxlen=LOG_KEEP)

    def set_mode(self, spec):
        if not isinstance(spec, dict):
            raise ValueError("mode must be a JSON object")
        m = str(spec.get("mode", "")).lower()
        if m == "error":
            m = "503"
        if m not in self.MODES:
            raise ValueError(f"mode must be one of {', '.join(self.MODES)}")
        out = {"mode": m}

        def num(key, default, lo, hi, kind=int):
            v = spec.get(key, default)
            try:
                v = kind(v)
            except (TypeError, ValueError):
                raise ValueError(f"{key} must be a number") from None
            if not lo <= v <= hi:
                raise ValueError(f"{key} must be in [{lo}, {hi}]")
            return v

        out["every"] = num("every", 1, 1, 1 << 30)
        out["limit"] = num("limit", 0, 0, 1 << 30)
        if m == "503":
            out["status"] = num("status", 503, 400, 599)
            out["code"] = str(spec.get("code", "SlowDown"))
            if not re.fullmatch(r"[A-Za-z0-9]{1,64}", out["code"]):
                raise ValueError("code must be alphanumeric")
        if m in ("reset", "stall"):
            out["where"] = str(spec.get("where", "response")).lower()
            if out["where"] not in ("response", "request"):
                raise ValueError("where must be response or request")
            out["after"] = num("after", 0, 0, 1 << 62)
        if m == "reset":
            out["how"] = str(spec.get("how", "rst")).lower()
            if out["how"] not in ("rst", "fin"):
                raise ValueError("how must be rst or fin")
        if m == "stall":
            out["seconds"] = num("seconds", 5.0, 0.0, MAX_STALL, float)
        method = spec.get("method")
        path = spec.get("path")
        methods = None
        if method:
            methods = {x.strip().upper() for x in str(method).split(",") if x.strip()}
            out["method"] = ",".join(sorted(methods))
        rx = None
        if path:
            try:
                rx = re.compile(str(path))
            except re.error as e:
                raise ValueError(f"path is not a regular expression: {e}") from None
            out["path"] = str(path)
        self.mode, self.method, self.path = out, methods, rx
        self.seen = 0
        self.fired = 0

    def decide(self, method, target):
        """The fault (a copy of the mode) armed for this request, or None."""
        self.counters["requests"] += 1
        m = self.mode
        if m["mode"] == "pass":
            return None
        if self.method is not None and method.upper() not in self.method:
            return None
        if self.path is not None and not self.path.search(target):
            return None
        self.counters["matched"] += 1
        if m["limit"] and self.fired >= m["limit"]:
            return None
        self.seen += 1
        if self.seen % m["every"]:
            return None
        return dict(m)

    def fire(self, fault):
        """Counts a fault that took effect."""
        self.fired += 1
        self.counters["faults"] += 1
        self.counters["faults_by_mode"][fault["mode"]] += 1

    def status(self, code):
        k = str(code)
        self.counters["statuses"][k] = self.counters["statuses"].get(k, 0) + 1

    def snapshot(self):
        return {"mode": dict(self.mode), "counters": json.loads(json.dumps(self.counters))}


# ---- HTTP framing -----------------------------------------------------------

async def read_head(reader, timeout):
    """Reads an HTTP head up to the blank line; b"" on a clean EOF before any byte."""
    try:
        async with asyncio.timeout(timeout):
            data = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if not e.partial.strip():
            return b""
        raise ProtocolError("connection closed inside a head") from None
    except asyncio.LimitOverrunError:
        raise ProtocolError("head too large") from None
    return data


def parse_headers(lines):
    headers = []
    for line in lines:
        if not line:
            continue
        if line[:1] in (" ", "\t"):
            raise ProtocolError("obsolete header folding")
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise ProtocolError(f"bad header line {line[:80]!r}")
        headers.append((name.lower(), value.strip()))
    return headers


def header(headers, name):
    vals = [v for k, v in headers if k == name]
    return ",".join(vals) if vals else None


def tokens(value):
    return {t.strip().lower() for t in (value or "").split(",") if t.strip()}


class Request:
    def __init__(self, raw):
        text = raw.decode("latin-1")
        lines = text.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise ProtocolError(f"bad request line {lines[0][:120]!r}")
        self.raw = raw
        self.method, self.target, self.version = parts
        self.headers = parse_headers(lines[1:])
        te = tokens(header(self.headers, "transfer-encoding"))
        cl = header(self.headers, "content-length")
        if te:
            if te != {"chunked"}:
                raise ProtocolError(f"unsupported transfer-encoding {te}")
            self.framing = ("chunked", None)
        elif cl is not None:
            if not re.fullmatch(r"\d{1,18}", cl):
                raise ProtocolError(f"bad content-length {cl!r}")
            self.framing = ("length", int(cl))
        else:
            self.framing = ("length", 0)
        conn = tokens(header(self.headers, "connection"))
        if self.version == "HTTP/1.0":
            self.keep_alive = "keep-alive" in conn
        else:
            self.keep_alive = "close" not in conn
        self.expect_continue = "100-continue" in tokens(header(self.headers, "expect"))

    @property
    def has_body(self):
        return self.framing[0] == "chunked" or self.framing[1] > 0


class Response:
    def __init__(self, raw, method):
        text = raw.decode("latin-1")
        lines = text.split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not re.fullmatch(r"\d{3}", parts[1]):
            raise ProtocolError(f"bad status line {lines[0][:120]!r}")
        self.raw = raw
        self.version = parts[0]
        self.status = int(parts[1])
        self.headers = parse_headers(lines[1:])
        te = tokens(header(self.headers, "transfer-encoding"))
        cl = header(self.headers, "content-length")
        if 100 <= self.status < 200 or self.status in (204, 304) or method == "HEAD":
            self.framing = ("length", 0)
        elif te:
            if "chunked" not in te:
                self.framing = ("eof", None)
            else:
                self.framing = ("chunked", None)
        elif cl is not None:
            if not re.fullmatch(r"\d{1,18}", cl):
                raise ProtocolError(f"bad content-length {cl!r}")
            self.framing = ("length", int(cl))
        else:
            self.framing = ("eof", None)
        conn = tokens(header(self.headers, "connection"))
        if self.version == "HTTP/1.0":
            self.keep_alive = "keep-alive" in conn
        else:
            self.keep_alive = "close" not in conn
        if self.framing[0] == "eof":
            self.keep_alive = False


class Sink:
    """Writes a body to a stream, counting its bytes, firing a 'reset' or 'stall' fault
    once more than `after` bytes go through."""

    def __init__(self, writer, state, fault=None, count_key=None, tolerant=False):
        self.writer = writer
        self.state = state
        self.fault = fault
        self.count_key = count_key
        self.tolerant = tolerant
        self.broken = None
        self.sent = 0

    def discard(self):
        """From now on, drop what comes (no fault either)."""
        self.writer = _NullWriter()
        self.fault = None

    async def write(self, data):
        f = self.fault
        if f is not None and self.sent + len(data) > f["after"]:
            k = f["after"] - self.sent
            if k > 0:
                await self._put(data[:k])
            data = data[k:]
            self.fault = None
            self.state.fire(f)
            if f["mode"] == "reset":
                await flush(self.writer)
                raise Cut(f["how"])
            await asyncio.sleep(f["seconds"])
        if data:
            await self._put(data)

    async def _put(self, data):
        self.writer.write(data)
        self.sent += len(data)
        if self.count_key:
            self.state.counters[self.count_key] += len(data)
        try:
            await self.writer.drain()
        except OSError as e:
            if not self.tolerant:
                raise
            self.broken = e
            self.discard()


async def relay_body(reader, sink, framing, timeout):
    """Copies one body framed as ("length", n), ("chunked", None) or ("eof", None)."""
    kind, n = framing
    if kind == "length":
        left = n
        while left > 0:
            async with asyncio.timeout(timeout):
                data = await reader.read(min(left, IO_CHUNK))
            if not data:
                raise ProtocolError("connection closed inside a body")
            left -= len(data)
            await sink.write(data)
    elif kind == "chunked":
        while True:
            line = await read_line(reader, timeout)
            size_s = line.split(b";", 1)[0].strip()
            if not re.fullmatch(rb"[0-9A-Fa-f]{1,15}", size_s):
                raise ProtocolError(f"bad chunk size line {line[:40]!r}")
            size = int(size_s, 16)
            await sink.write(line)
            if size == 0:
                while True:  # trailers, up to the blank line
                    t = await read_line(reader, timeout)
                    await sink.write(t)
                    if t == b"\r\n":
                        return
            left = size + 2
            while left > 0:
                async with asyncio.timeout(timeout):
                    data = await reader.read(min(left, IO_CHUNK))
                if not data:
                    raise ProtocolError("connection closed inside a chunk")
                if left <= 2 and not b"\r\n"[2 - left:].startswith(data):
                    raise ProtocolError("chunk not followed by CRLF")
                left -= len(data)
                await sink.write(data)
    else:
        while True:
            async with asyncio.timeout(timeout):
                data = await reader.read(IO_CHUNK)
            if not data:
                return
            await sink.write(data)


async def read_line(reader, timeout):
    try:
        async with asyncio.timeout(timeout):
            line = await reader.readuntil(b"\r\n")
    except asyncio.IncompleteReadError:
        raise ProtocolError("connection closed inside chunk framing") from None
    except asyncio.LimitOverrunError:
        raise ProtocolError("chunk framing line too long") from None
    if len(line) > MAX_LINE:
        raise ProtocolError("chunk framing line too long")
    return line


class Upstream:
    """Reader and writer over a raw non-blocking socket to the server (loop.sock_*).
    asyncio's streams drop what they had received as soon as a send fails; a server that
    answers early (411, 403...) and closes while the request body still flows would lose its
    answer. Here a failed send leaves the receiving side alone."""

    def __init__(self, sock):
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self.buf = bytearray()
        self.eof = False
        self.pending = []
        self.closed = False

    @classmethod
    async def connect(cls, host, port):
        infos = await asyncio.get_running_loop().getaddrinfo(host, port,
                                                             type=socket.SOCK_STREAM)
        family, type_, proto, _, addr = infos[0]
        sock = socket.socket(family, type_, proto)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, addr)
        except BaseException:
            sock.close()
            raise
        return cls(sock)

    async def _fill(self):
        data = await self.loop.sock_recv(self.sock, IO_CHUNK)
        if data:
            self.buf += data
        else:
            self.eof = True

    async def readuntil(self, sep):
        start = 0
        while True:
            i = self.buf.find(sep, start)
            if i >= 0:
                out = bytes(self.buf[:i + len(sep)])
                del self.buf[:i + len(sep)]
                return out
            if len(self.buf) > MAX_HEAD:
                raise asyncio.LimitOverrunError("separator not found", len(self.buf))
            if self.eof:
                raise asyncio.IncompleteReadError(bytes(self.buf), None)
            start = max(0, len(self.buf) - len(sep) + 1)
            await self._fill()

    async def read(self, n):
        if not self.buf and not self.eof:
            await self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def write(self, data):
        self.pending.append(data)

    async def drain(self):
        while self.pending:
            await self.loop.sock_sendall(self.sock, self.pending.pop(0))

    def abort(self, rst=True):
        if self.closed:
            return
        self.closed = True
        if rst:
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                     struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.sock.close()


async def flush(writer, deadline_s=5.0):
    """Waits until what was written has left asyncio's buffer and the kernel's send queue."""
    if isinstance(writer, Upstream):
        await writer.drain()
        sock = writer.sock
    else:
        writer.transport.set_write_buffer_limits(high=0, low=0)
        try:
            await writer.drain()
        except ConnectionError:
            return
        sock = writer.get_extra_info("socket")
    if sock is None:
        return
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            buf = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
        except OSError:
            return
        if struct.unpack("i", buf)[0] == 0:
            return
        await asyncio.sleep(0.005)


def abort(writer, rst=True):
    if writer is None:
        return
    if isinstance(writer, Upstream):
        writer.abort(rst)
        return
    transport = writer.transport
    if transport.is_closing():
        return
    sock = writer.get_extra_info("socket")
    if rst and sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()


async def close(writer):
    if writer is None or writer.transport.is_closing():
        return
    try:
        writer.close()
        async with asyncio.timeout(5):
            await writer.wait_closed()
    except (OSError, TimeoutError, ConnectionError):
        writer.transport.abort()


def s3_error(status, code, target, n):
    reason = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 429: "Too Many Requests",
              500: "Internal Server Error", 502: "Bad Gateway",
              503: "Service Unavailable"}.get(status, "Error")
    msg = "Please reduce your request rate." if code == "SlowDown" else "Injected by faultproxy."
    rid = f"FAULTPROXY{n:06d}"
    res = target.split("?", 1)[0]
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{msg}</Message>"
            f"<Resource>{xml_escape(res)}</Resource><RequestId>{rid}</RequestId></Error>")
    b = body.encode()
    head = (f"HTTP/1.1 {status} {reason}\r\n"
            f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S GMT', time.gmtime())}\r\n"
            "Server: faultproxy\r\nContent-Type: application/xml\r\n"
            f"Content-Length: {len(b)}\r\nx-amz-request-id: {rid}\r\n\r\n")
    return head.encode() + b


def xml_escape(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ---- the proxy ----------------------------------------------------------------

class Proxy:
    def __init__(self, upstream, idle_timeout):
        self.up_host, self.up_port = upstream
        self.idle = idle_timeout
        self.state = State()
        self.tasks = set()

    async def client(self, creader, cwriter):
        task = asyncio.current_task()
        if len(self.tasks) >= MAX_CONNECTIONS:
            abort(cwriter)
            return
        self.tasks.add(task)
        st = self.state
        st.counters["connections"] += 1
        try:
            while True:
                keep = await self.one_request(creader, cwriter)
                if not keep:
                    break
            await close(cwriter)
        except Cut as e:
            abort(cwriter, rst=(str(e) == "rst"))
        except (ProtocolError, ConnectionError, TimeoutError, OSError,
                asyncio.IncompleteReadError) as e:
            st.counters["client_errors"] += 1
            note(f"connection {st.counters['connections']}: dropped after {e!r}")
            abort(cwriter)
        except asyncio.CancelledError:
            abort(cwriter)
            raise
        finally:
            self.tasks.discard(task)

    async def one_request(self, creader, cwriter):
        """Handles one request of a client connection; True to keep the connection."""
        st = self.state
        try:
            raw = await read_head(creader, self.idle)
        except TimeoutError:
            return False  # an idle keep-alive connection: close it
        if not raw:
            return False
        # Requests being handled at once: shows a client's parallelism.
        st.counters["active"] += 1
        st.counters["max_active"] = max(st.counters["max_active"], st.counters["active"])
        try:
            return await self._handle(raw, creader, cwriter)
        finally:
            st.counters["active"] -= 1

    async def _handle(self, raw, creader, cwriter):
        st = self.state
        st.counters["bytes_in"] += len(raw)
        req = Request(raw)
        fault = st.decide(req.method, req.target)
        n = st.counters["requests"]
        entry = {"n": n, "method": req.method, "target": req.target[:300], "status": None,
                 "fault": fault["mode"] if fault else None}
        st.log.append(entry)

        if fault and fault["mode"] == "503":
            if req.has_body:
                if req.expect_continue:
                    cwriter.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    await cwriter.drain()
                sink = Sink(_NullWriter(), st, count_key="bytes_in")
                await relay_body(creader, sink, req.framing, self.idle)
            st.fire(fault)
            data = s3_error(fault["status"], fault["code"], req.target, n)
            cwriter.write(data)
            st.counters["bytes_out"] += len(data)
            await cwriter.drain()
            st.status(fault["status"])
            entry["status"] = fault["status"]
            return req.keep_alive

        req_fault = fault if fault and fault["where"] == "request" else None
        resp_fault = fault if fault and fault["where"] == "response" else None
        try:
            async with asyncio.timeout(10):
                up = await Upstream.connect(self.up_host, self.up_port)
        except (OSError, TimeoutError):
            st.counters["upstream_errors"] += 1
            data = s3_error(502, "BadGateway", req.target, n)
            cwriter.write(data)
            await cwriter.drain()
            st.status(502)
            entry["status"] = 502
            return False
        st.counters["forwarded"] += 1
        body_task = None
        try:
            up.write(req.raw)
            await up.drain()
            if req.has_body:
                # If the server stops taking the body (it answered early and closed), the
                # rest is read from the client and dropped: its answer still comes through.
                sink = Sink(up, st, req_fault, count_key="bytes_in", tolerant=True)
                body_task = asyncio.create_task(
                    relay_body(creader, sink, req.framing, self.idle))
            keep, status, continued = await self.relay_response(up, cwriter, req,
                                                                resp_fault, body_task)
            entry["status"] = status
            keep = keep and req.keep_alive
            if body_task is not None and not body_task.done():
                # The server answered before the whole request body came through.
                if keep and (continued or not req.expect_continue):
                    # The client sends the rest anyway: read it to its end, for nothing,
                    # and the connection goes on.
                    sink.discard()
                    await body_task
                else:
                    # It may never come (no 100 Continue was given): the framing is lost.
                    body_task.cancel()
                    keep = False
                    try:
                        await body_task
                    except (asyncio.CancelledError, Exception):
                        pass
            elif body_task is not None:
                body_task.result()  # raises what the body relay raised
            return keep
        except Cut:
            abort(up)
            raise
        finally:
            if body_task is not None:
                if not body_task.done():
                    body_task.cancel()
                try:
                    await body_task
                except (asyncio.CancelledError, Exception):
                    pass
            abort(up, rst=False)

    async def relay_response(self, ureader, cwriter, req, fault, body_task):
        """Relays interim and final responses; returns (keep_alive, final status, whether
        a 100 Continue was relayed)."""
        st = self.state
        continued = False
        while True:
            head_task = asyncio.ensure_future(read_head(ureader, self.idle))
            waits = {head_task}
            if body_task is not None and not body_task.done():
                waits.add(body_task)
            while True:
                try:
                    done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                except asyncio.CancelledError:
                    head_task.cancel()
                    raise
                if head_task in done:
                    break
                # The request body relay ended first: a failure (or a Cut) ends the exchange.
                if body_task.exception() is not None:
                    head_task.cancel()
                    try:
                        await head_task
                    except (asyncio.CancelledError, Exception):
                        pass
                    raise body_task.exception()
                waits = {head_task}
            raw = head_task.result()
            if not raw:
                st.counters["upstream_errors"] += 1
                raise ProtocolError("upstream closed without an answer")
            resp = Response(raw, req.method)
            cwriter.write(raw)
            st.counters["bytes_out"] += len(raw)
            await cwriter.drain()
            if 100 <= resp.status < 200:
                if resp.status == 101:
                    raise ProtocolError("protocol switching is not supported")
                continued = continued or resp.status == 100
                continue
            st.status(resp.status)
            sink = Sink(cwriter, st, fault, count_key="bytes_out")
            try:
                await relay_body(ureader, sink, resp.framing, self.idle)
            except ProtocolError:
                st.counters["upstream_errors"] += 1
                raise
            return resp.keep_alive, resp.status, continued


class _NullWriter:
    def write(self, data):
        pass

    async def drain(self):
        pass


# ---- control endpoint ---------------------------------------------------------

class Control:
    def __init__(self, proxy):
        self.proxy = proxy

    async def client(self, reader, writer):
        try:
            async with asyncio.timeout(30):
                raw = await reader.readuntil(b"\r\n\r\n")
                if len(raw) > MAX_HEAD:
                    raise ProtocolError("head too large")
                lines = raw.decode("latin-1").split("\r\n")
                method, target, _ = (lines[0].split(" ") + ["", ""])[:3]
                headers = parse_headers(lines[1:])
                cl = int(header(headers, "content-length") or 0)
                if cl > 65536:
                    raise ProtocolError("body too large")
                body = await reader.readexactly(cl) if cl else b""
            status, obj = self.handle(method.upper(), target, body)
        except (ProtocolError, ValueError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError, TimeoutError, ConnectionError) as e:
            status, obj = 400, {"error": str(e) or type(e).__name__}
        data = json.dumps(obj, sort_keys=True).encode() + b"\n"
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
        try:
            writer.write(f"HTTP/1.1 {status} {reason.get(status, 'Error')}\r\n"
                         "Content-Type: application/json\r\n"
                         f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
                         + data)
            await writer.drain()
        except ConnectionError:
            pass
        await close(writer)

    def handle(self, method, target, body):
        st = self.proxy.state
        url = urllib.parse.urlsplit(target)
        path = url.path.rstrip("/") or "/"
        if path == "/health":
            return 200, {"ok": True}
        if path == "/state" and method == "GET":
            return 200, st.snapshot()
        if path == "/counters" and method == "GET":
            return 200, st.snapshot()["counters"]
        if path == "/log" and method == "GET":
            return 200, list(st.log)
        if path == "/reset" and method == "POST":
            st.reset_counters()
            return 200, st.snapshot()
        if path == "/mode" and method in ("POST", "PUT"):
            spec = dict(urllib.parse.parse_qsl(url.query))
            if body.strip():
                try:
                    spec.update(json.loads(body))
                except (ValueError, TypeError, AttributeError):
                    raise ValueError("body is not a JSON object") from None
            try:
                st.set_mode(spec)
            except ValueError as e:
                return 400, {"error": str(e)}
            return 200, st.snapshot()
        if path in ("/state", "/counters", "/log", "/reset", "/mode"):
            return 405, {"error": f"{method} not allowed on {path}"}
        return 404, {"error": f"no {path}"}


# ---- main -------------------------------------------------------------------------

def host_port(s):
    host, sep, port = s.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {s!r}")
    return host or "127.0.0.1", int(port)


async def main(args):
    proxy = Proxy(args.upstream, args.idle_timeout)
    control = Control(proxy)
    server = await asyncio.start_server(proxy.client, args.host, args.port, limit=MAX_HEAD,
                                        reuse_address=True)
    cserver = await asyncio.start_server(control.client, args.host, args.control_port,
                                         limit=MAX_HEAD, reuse_address=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    info = {"pid": os.getpid(), "port": server.sockets[0].getsockname()[1],
            "control_port": cserver.sockets[0].getsockname()[1],
            "upstream": f"{args.upstream[0]}:{args.upstream[1]}"}
    line = json.dumps(info, sort_keys=True)
    if args.ready_file:
        tmp = f"{args.ready_file}.tmp.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(line + "\n")
        os.replace(tmp, args.ready_file)
    print(line, flush=True)
    await stop.wait()
    server.close()
    cserver.close()
    for t in list(proxy.tasks):
        t.cancel()
    if proxy.tasks:
        await asyncio.wait(list(proxy.tasks), timeout=5)
    try:
        async with asyncio.timeout(5):
            await server.wait_closed()
            await cserver.wait_closed()
    except TimeoutError:
        pass


def parse_args(argv):
    p = argparse.ArgumentParser(description="fault-injecting HTTP/1.1 proxy for S3 tests")
    p.add_argument("--upstream", type=host_port, required=True, help="HOST:PORT of the S3 server")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="proxy port (default 0: any free port)")
    p.add_argument("--control-port", type=int, default=0,
                   help="control port (default 0: any free port)")
    p.add_argument("--ready-file", help="also write the ready line to this file")
    p.add_argument("--idle-timeout", type=float, default=120.0,
                   help="seconds a connection may wait for the next byte (default 120)")
    a = p.parse_args(argv)
    if not (a.host.startswith("127.") or a.host in ("::1", "localhost")):
        p.error("faultproxy listens on loopback only")
    return a


if __name__ == "__main__":
    try:
        asyncio.run(main(parse_args(sys.argv[1:])))
    except KeyboardInterrupt:
        pass
    sys.exit(0)

#!/usr/bin/env python3
"""A small Azure Blob client of our own, signed with Shared Key, for cassette's tests: the
independent side that checks what the C driver stored (as awscli is for S3), and what
tests/env/azurite.sh uses to probe the emulator and make containers. Standard library only.

    azblob.py [--endpoint URL] [--account A] [--key K] COMMAND ...
      ping                      signed List Containers; exit 0 when the signature is accepted
      mkcontainer NAME          create container NAME (fine if it exists)
      rmcontainer NAME          delete container NAME (fine if it is gone)
      list CONTAINER [PREFIX]   "NAME SIZE" per committed blob, in name order
      uncommitted CONTAINER BLOB  the number of uncommitted blocks of BLOB (0 when none)

The endpoint is the Blob service's base URL, account included for the emulator
(http://127.0.0.1:10000/devstoreaccount1) and not for Azure (https://A.blob.core.windows.net).
Defaults: $CASSETTE_AZ_ENDPOINT, $AZURE_STORAGE_ACCOUNT, $AZURE_STORAGE_KEY. Errors: one line
on stderr, exit 1. The key is never printed.
"""

import base64
import datetime
import hashlib
import hmac
import http.client
import os
import sys
import urllib.parse
import xml.etree.ElementTree as ET

API_VERSION = "2021-08-06"

# The string-to-sign's standard headers, in their order (Content-Length handled apart).
_STANDARD = ("content-encoding", "content-language", "content-length", "content-md5", "content-type",
             "date", "if-modified-since", "if-match", "if-none-match", "if-unmodified-since", "range")


class AzError(Exception):
    def __init__(self, status, body, what):
        self.status = status
        self.body = body
        code = ""
        try:
            code = ET.fromstring(body).findtext("Code") or ""
        except ET.ParseError:
            pass
        self.code = code
        super().__init__(f"{what}: HTTP {status} {code}".rstrip())


class Blob:
    """One account on one Blob service endpoint."""

    def __init__(self, endpoint=None, account=None, key=None):
        self.endpoint = (endpoint or os.environ.get("CASSETTE_AZ_ENDPOINT", "")).rstrip("/")
        self.account = account or os.environ.get("AZURE_STORAGE_ACCOUNT", "")
        key = key or os.environ.get("AZURE_STORAGE_KEY", "")
        if not self.endpoint or not self.account or not key:
            raise ValueError("azblob: needs an endpoint, an account and a key")
        self._key = base64.b64decode(key)
        u = urllib.parse.urlsplit(self.endpoint)
        self._https = u.scheme == "https"
        self._netloc = u.netloc
        self._base_path = u.path.rstrip("/")

    def string_to_sign(self, method, path, query, headers):
        """path: the encoded path as sent; query: [(name, value)] unencoded; headers: {lower: v}."""
        lines = [method]
        for h in _STANDARD:
            v = headers.get(h, "")
            if h == "content-length" and v == "0":
                v = ""
            lines.append(v)
        xms = sorted((k, " ".join(v.split())) for k, v in headers.items() if k.startswith("x-ms-"))
        canon_headers = "".join(f"{k}:{v}\n" for k, v in xms)
        grouped = {}
        for k, v in query:
            grouped.setdefault(k.lower(), []).append(v)
        resource = f"/{self.account}{path}"
        for k in sorted(grouped):
            resource += f"\n{k}:{','.join(sorted(grouped[k]))}"
        return "\n".join(lines) + "\n" + canon_headers + resource

    def request(self, method, path, query=(), headers=None, body=b"", ok=(200, 201, 202, 206)):
        """One signed request; path below the endpoint ("/container/blob"), unencoded.
        Returns (status, {lower header: value}, body bytes); raises AzError unless status in ok."""
        full = self._base_path + urllib.parse.quote(path, safe="/-_.~")
        headers = {k.lower(): v for k, v in (headers or {}).items()}
        headers["x-ms-date"] = datetime.datetime.now(datetime.timezone.utc).strftime(
            "%a, %d %b %Y %H:%M:%S GMT")
        headers["x-ms-version"] = API_VERSION
        headers["content-length"] = str(len(body))
        sts = self.string_to_sign(method, full, query, headers)
        sig = base64.b64encode(hmac.new(self._key, sts.encode(), hashlib.sha256).digest()).decode()
        headers["authorization"] = f"SharedKey {self.account}:{sig}"
        url = full + ("?" + urllib.parse.urlencode(list(query), quote_via=urllib.parse.quote)
                      if query else "")
        conn_cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        conn = conn_cls(self._netloc, timeout=30)
        try:
            conn.request(method, url, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            status = resp.status
            rh = {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()
        if status not in ok:
            raise AzError(status, data, f"{method} {path}")
        return status, rh, data

    def ping(self):
        self.request("GET", "/", query=[("comp", "list"), ("maxresults", "1")])

    def mkcontainer(self, name):
        st, _, _ = self.request("PUT", f"/{name}", query=[("restype", "container")], ok=(201, 409))
        return st == 201

    def rmcontainer(self, name):
        st, _, _ = self.request("DELETE", f"/{name}", query=[("restype", "container")], ok=(202, 404))
        return st == 202

    def list(self, container, prefix=""):
        """[(name, size)] of the committed blobs under prefix, in name order."""
        out, marker = [], ""
        while True:
            q = [("restype", "container"), ("comp", "list"), ("prefix", prefix)]
            if marker:
                q.append(("marker", marker))
            _, _, data = self.request("GET", f"/{container}", query=q)
            root = ET.fromstring(data)
            for b in root.iter("Blob"):
                out.append((b.findtext("Name"), int(b.findtext("Properties/Content-Length") or 0)))
            marker = root.findtext("NextMarker") or ""
            if not marker:
                return out

    def get(self, container, blob):
        return self.request("GET", f"/{container}/{blob}")[2]

    def put(self, container, blob, data):
        self.request("PUT", f"/{container}/{blob}", headers={"x-ms-blob-type": "BlockBlob"}, body=data)

    def uncommitted(self, container, blob):
        st, _, data = self.request("GET", f"/{container}/{blob}",
                                   query=[("comp", "blocklist"), ("blocklisttype", "uncommitted")],
                                   ok=(200, 404))
        if st == 404:
            return 0
        return len(ET.fromstring(data).findall("UncommittedBlocks/Block"))


def main(argv):
    args = list(argv)
    opts = {}
    while args and args[0].startswith("--"):
        if len(args) < 2 or args[0] not in ("--endpoint", "--account", "--key"):
            print(__doc__.split("\n\n")[1], file=sys.stderr)
            return 2
        opts[args[0][2:]] = args[1]
        del args[:2]
    usage = {"ping": 0, "mkcontainer": 1, "rmcontainer": 1, "list": (1, 2), "uncommitted": 2}
    if not args or args[0] not in usage:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    cmd, rest = args[0], args[1:]
    want = usage[cmd]
    if (isinstance(want, int) and len(rest) != want) or (
            isinstance(want, tuple) and not want[0] <= len(rest) <= want[1]):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    try:
        b = Blob(**opts)
        if cmd == "ping":
            b.ping()
        elif cmd == "mkcontainer":
            print(f"container {rest[0]} {'created' if b.mkcontainer(rest[0]) else 'exists'}")
        elif cmd == "rmcontainer":
            print(f"container {rest[0]} {'deleted' if b.rmcontainer(rest[0]) else 'absent'}")
        elif cmd == "list":
            for name, size in b.list(*rest):
                print(name, size)
        elif cmd == "uncommitted":
            print(b.uncommitted(*rest))
    except (AzError, ValueError, OSError, http.client.HTTPException) as ex:
        print(f"azblob: {ex}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

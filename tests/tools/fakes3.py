#!/usr/bin/env python3
"""fakes3.py - a small, deliberately misbehaving S3 for tests of the s3
backend's retry policy and its parsing of what a server sends.

    fakes3.py PORTFILE

Listens on 127.0.0.1 (a free port, written to PORTFILE once listening),
path-style, one bucket of any name, objects kept in memory.  It does not
check signatures (radosgw does that, test 030); it checks only that every
request carries x-amz-content-sha256 and, for a PUT whose header is a hex
digest, that it matches the body.

Faults, chosen by the object key's first path component after the
store prefix:
    flaky503/...   the first 2 requests to the key get 503 SlowDown
    throttle429/.. the first request gets 429 SlowDown
    always500/...  every request gets 500 InternalError
    bad400/...     every request gets 400 InvalidArgument
Listings (list-type=2, max-keys other than 1, which open() uses) whose
prefix contains:
    evil-notoken   IsTruncated true without a continuation token
    evil-loop      IsTruncated true with the same token every time
    evil-garbage   a body cut off in the middle of a tag
    evil-entities  keys full of XML entities, good and bad
    evil-badsize   an entry whose Size is not a number
GET /__count/KEYPATH answers the number of requests seen for that path.
"""
import hashlib
import re
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

objects = {}
counts = {}
lock = threading.Lock()

LIST_HEAD = '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult>'


def error(code, status, msg="injected"):
    return status, ('<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code>'
                    '<Message>%s</Message></Error>' % (code, msg)).encode()


def contents(key, size=1):
    return ('<Contents><Key>%s</Key><LastModified>2026-01-02T03:04:05.000Z'
            '</LastModified><Size>%s</Size></Contents>' % (key, size))


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if u.path.startswith("/__count/"):
            return self.reply(200, str(counts.get(u.path[len("/__count"):], 0)).encode())
        sha = self.headers.get("x-amz-content-sha256")
        if sha is None:
            return self.reply(*error("MissingSecurityHeader", 400))
        if re.fullmatch(r"[0-9a-f]{64}", sha) and hashlib.sha256(body).hexdigest() != sha:
            return self.reply(*error("XAmzContentSHA256Mismatch", 400))
        with lock:
            n = counts[u.path] = counts.get(u.path, 0) + 1
        parts = u.path.lstrip("/").split("/", 1)
        key = urllib.parse.unquote(parts[1]) if len(parts) > 1 else ""
        if not key:
            return self.list_bucket(q)
        kind = key.split("/")[1] if "/" in key else ""
        if kind == "flaky503" and n <= 2:
            return self.reply(*error("SlowDown", 503))
        if kind == "throttle429" and n <= 1:
            return self.reply(*error("SlowDown", 429))
        if kind == "always500":
            return self.reply(*error("InternalError", 500, "We encountered an internal error"))
        if kind == "bad400":
            return self.reply(*error("InvalidArgument", 400, "Bad & wrong <arg>".replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")))
        if self.command == "PUT":
            objects[key] = body
            return self.reply(200, b"", [("ETag", '"%s"' % hashlib.md5(body).hexdigest())])
        if self.command in ("GET", "HEAD"):
            if key not in objects:
                return self.reply(*error("NoSuchKey", 404))
            return self.reply(200, objects[key])
        if self.command == "DELETE":
            objects.pop(key, None)
            return self.reply(204)
        return self.reply(*error("NotImplemented", 501))

    def list_bucket(self, q):
        prefix = q.get("prefix", [""])[0]
        if q.get("max-keys", [""])[0] == "1" or "evil" not in prefix:
            keys = sorted(k for k in objects if k.startswith(prefix))
            body = LIST_HEAD + "".join(contents(k, len(objects[k])) for k in keys[:1000])
            return self.reply(200, (body + "<IsTruncated>false</IsTruncated></ListBucketResult>").encode())
        p = prefix
        if "evil-notoken" in p:
            body = LIST_HEAD + contents(p + "a") + "<IsTruncated>true</IsTruncated></ListBucketResult>"
        elif "evil-loop" in p:
            body = (LIST_HEAD + contents(p + "a") + "<IsTruncated>true</IsTruncated>"
                    "<NextContinuationToken>same</NextContinuationToken></ListBucketResult>")
        elif "evil-garbage" in p:
            body = LIST_HEAD + contents(p + "ok") + "<Contents><Key>" + p + "cut<Size>12</Si"
        elif "evil-entities" in p:
            body = (LIST_HEAD
                    + contents(p + "amp&amp;lt&lt;gt&gt;q&quot;a&apos;")
                    + contents(p + "num&#65;&#x42;&#x20AC;")
                    + contents(p + "bad&bogus;&#xZZ;&#0;&#x110000;&#99999999999;&")
                    + contents(p + "long" + "&#x10FFFF;" * 50)
                    + "<IsTruncated>false</IsTruncated></ListBucketResult>")
        elif "evil-badsize" in p:
            body = LIST_HEAD + contents(p + "x", "12abc") + "<IsTruncated>false</IsTruncated></ListBucketResult>"
        else:
            body = LIST_HEAD + "<IsTruncated>false</IsTruncated></ListBucketResult>"
        return self.reply(200, body.encode())

    do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = handle_any


def main():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    srv.daemon_threads = True
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write("%d\n" % srv.server_address[1])
    import os
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    srv.serve_forever()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""fakeetcd.py PORTFILE - an HTTP server that answers every etcd v3
gateway POST with the hostile answer named by the file ./fakeetcd.mode
(read per request), so the etcd registry's checks can be driven from a
shell test.  Writes its port to PORTFILE once listening.

Modes: notjson, notobject, kvs-not-array, kv-not-object, key-not-b64,
value-not-b64, value-bad-padding, revision-not-int, two-kvs, other-key,
record-not-json, http400, http503, huge, truncated.
"""
import base64
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def b64(s):
    return base64.b64encode(s.encode()).decode()


class H(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        sys.stderr.write("fakeetcd: " + (fmt % args) + "\n")

    def reply(self, code, body):
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        req = json.loads(self.rfile.read(n) or b"{}")
        mode = open("fakeetcd.mode").read().strip()
        key = req.get("key", "")
        hdr = {"header": {"revision": "5"}}
        kv = {"key": key, "mod_revision": "4", "version": "1",
              "value": b64("{}")}
        if mode == "notjson":
            return self.reply(200, "<html>hello</html>")
        if mode == "notobject":
            return self.reply(200, [1, 2])
        if mode == "kvs-not-array":
            return self.reply(200, dict(hdr, kvs={"a": 1}))
        if mode == "kv-not-object":
            return self.reply(200, dict(hdr, kvs=["x"]))
        if mode == "key-not-b64":
            return self.reply(200, dict(hdr, kvs=[dict(kv, key="%%%")]))
        if mode == "value-not-b64":
            return self.reply(200, dict(hdr, kvs=[dict(kv, value="a b")]))
        if mode == "value-bad-padding":
            return self.reply(200, dict(hdr, kvs=[dict(kv, value="YQ=a")]))
        if mode == "revision-not-int":
            return self.reply(200, dict(hdr, kvs=[dict(kv, mod_revision="4x")]))
        if mode == "two-kvs":
            return self.reply(200, dict(hdr, kvs=[kv, kv], count="2"))
        if mode == "other-key":
            return self.reply(200, dict(hdr, kvs=[dict(kv, key=b64("/x"))]))
        if mode == "record-not-json":
            return self.reply(200, dict(hdr, kvs=[dict(kv, value=b64("{]"))]))
        if mode == "http400":
            return self.reply(400, {"error": "bad request here", "code": 3})
        if mode == "http503":
            return self.reply(503, {"error": "etcdserver: request timed out",
                                    "code": 14})
        if mode == "huge":
            return self.reply(200, "{\"a\":\"" + "x" * (17 << 20) + "\"}")
        if mode == "truncated":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b'{"kvs":[')
            return
        return self.reply(500, {"error": "unknown mode " + mode})


def main():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    import os
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    srv.serve_forever()


if __name__ == "__main__":
    main()

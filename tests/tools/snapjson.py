#!/usr/bin/env python3
"""snapjson - read what the snapshot verbs print and store, for the
snapshot tests (tests/integration/04x).

    snapjson.py events FILE NAME     check a "snapshot create --json" output;
                                     print its done line (compact JSON)
    snapjson.py done FILE KEY        a field of FILE's done line
    snapjson.py list FILE [NAME [KEY]]
                                     "snapshot list --json" output: the names
                                     (sorted, one a line), or NAME's KEY
    snapjson.py manifest DIR NAME entries|hashes|parent|FIELD
                                     DIR/snapshots/NAME.json (a file:// store):
                                     the number of chunk entries, the unique
                                     chunk hashes (one a line), or a field
    snapjson.py restore STATUSFILE [KEY]
                                     "repvol status --json" output: exit 1 if
                                     it has no "restore" key; else print the
                                     whole restore object or KEY of it

Exit 1, saying why, when the input is not what the contract says.
"""
import json
import sys


def die(msg):
    print("snapjson: " + msg, file=sys.stderr)
    sys.exit(1)


def lines(path):
    out = []
    with open(path) as f:
        for i, ln in enumerate(f, 1):
            if not ln.strip():
                continue
            try:
                ev = json.loads(ln)
            except ValueError as e:
                die("%s line %d is not JSON (%s): %r" % (path, i, e, ln[:200]))
            if not isinstance(ev, dict) or "event" not in ev:
                die("%s line %d has no \"event\": %r" % (path, i, ln[:200]))
            out.append(ev)
    return out


def events(path, name):
    evs = lines(path)
    if not evs:
        die("%s: no output" % path)
    if evs[0]["event"] != "point":
        die("%s: the first line is not the point event: %r" % (path, evs[0]))
    if evs[0].get("name") != name:
        die("%s: point event names %r, not %r" % (path, evs[0].get("name"), name))
    done = evs[-1]
    if done["event"] != "done":
        die("%s: the last line is not the done event: %r" % (path, done))
    for k in ("name", "parent", "chunks_total", "bytes_read", "bytes_uploaded", "seconds"):
        if k not in done:
            die("%s: done event lacks %r: %r" % (path, k, done))
    if done["name"] != name:
        die("%s: done event names %r, not %r" % (path, done["name"], name))
    last = -1
    for ev in evs[1:-1]:
        if ev["event"] != "progress":
            die("%s: unexpected event between point and done: %r" % (path, ev))
        for k in ("chunks_done", "chunks_total", "bytes_read", "bytes_uploaded"):
            if not isinstance(ev.get(k), int) or ev[k] < 0:
                die("%s: progress event with a bad %r: %r" % (path, k, ev))
        if ev["chunks_done"] > ev["chunks_total"]:
            die("%s: chunks_done > chunks_total: %r" % (path, ev))
        if ev["chunks_done"] < last:
            die("%s: chunks_done went backwards: %r" % (path, ev))
        last = ev["chunks_done"]
    print(json.dumps(done, separators=(",", ":")))


def field(obj, key):
    if key not in obj:
        die("no %r in %r" % (key, obj))
    v = obj[key]
    print("" if v is None else (json.dumps(v) if isinstance(v, (dict, list)) else v))


def main(a):
    if len(a) == 4 and a[1] == "events":
        events(a[2], a[3])
    elif len(a) == 4 and a[1] == "done":
        evs = lines(a[2])
        if not evs or evs[-1]["event"] != "done":
            die("%s: no done line" % a[2])
        field(evs[-1], a[3])
    elif len(a) in (3, 4, 5) and a[1] == "list":
        with open(a[2]) as f:
            try:
                arr = json.load(f)
            except ValueError as e:
                die("snapshot list --json is not JSON: %s" % e)
        if not isinstance(arr, list):
            die("snapshot list --json is not an array")
        if len(a) == 3:
            for n in sorted(s["name"] for s in arr):
                print(n)
            return
        m = [s for s in arr if s.get("name") == a[3]]
        if len(m) != 1:
            die("%d entries named %r in the list" % (len(m), a[3]))
        if len(a) == 5:
            field(m[0], a[4])
        else:
            print(json.dumps(m[0]))
    elif len(a) == 5 and a[1] == "manifest":
        with open("%s/snapshots/%s.json" % (a[2], a[3])) as f:
            m = json.load(f)
        if a[4] in ("entries", "hashes"):
            ch = m.get("chunks")
            if not isinstance(ch, list):
                die("manifest has no chunks list")
            if a[4] == "entries":
                print(len(ch))
            else:
                for h in sorted({e[1] for e in ch}):
                    print(h)
        elif a[4] == "index":            # index hash, one a line
            for e in m["chunks"]:
                print(e[0], e[1])
        else:
            field(m, a[4])
    elif len(a) in (3, 4) and a[1] == "restore":
        with open(a[2]) as f:
            v = json.load(f)
        if isinstance(v, list):
            v = v[0]
        if "restore" not in v:
            sys.exit(1)
        if len(a) == 4:
            field(v["restore"], a[3])
        else:
            print(json.dumps(v["restore"]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)

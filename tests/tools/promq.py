#!/usr/bin/env python3
"""promq - a value from a Prometheus text exposition (tests 096, 097).

    promq.py FILE NAME [LABEL=VALUE...]

Prints the sum of the samples of NAME (a family's sample name as
written: foo_total, foo_bucket, foo_count) whose labels include every
LABEL=VALUE given, as an integer when it is one.  Exits 2, saying so,
when no sample matches: a test asking for a series that is not there
fails instead of reading 0.
"""
import re
import sys

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')


def samples(path):
    for line in open(path):
        line = line.rstrip("\n")
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        if not m:
            raise SystemExit("promq: unparsable line: %r" % line)
        labels = {k: re.sub(r'\\(.)', lambda x: {"n": "\n"}.get(x.group(1), x.group(1)), v)
                  for k, v in LABEL.findall(m.group(2) or "")}
        yield m.group(1), labels, float(m.group(3))


def main():
    path, name, want = sys.argv[1], sys.argv[2], sys.argv[3:]
    want = dict(w.split("=", 1) for w in want)
    total, hits = 0.0, 0
    for n, labels, value in samples(path):
        if n == name and all(labels.get(k) == v for k, v in want.items()):
            total += value
            hits += 1
    if not hits:
        print("promq: no sample %s%s in %s" % (name, want, path), file=sys.stderr)
        sys.exit(2)
    print(int(total) if total == int(total) else total)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""helpman - every option a verb's --help names is documented in its man
page, and every option the man page's SYNOPSIS gives a verb is in its
--help.

    helpman.py REPVOL MANDIR         (repvol and MANDIR/repvol*.8)
    helpman.py --daemon BIN MANPAGE  (repvold and man/repvold.8)

For repvol, each verb of "repvol --help" is checked on its own, against
its page MANDIR/repvol-WORD.8 (WORD the verb's first word: "snapshot
create" is in repvol-snapshot.8): the options of "repvol VERB --help"
must appear in the verb's entry of the page (the OPTIONS section of a
page for one verb; in a page with a COMMANDS section, the verb's entry
there, from its ".B VERB" line to the next verb's) or in GLOBAL OPTIONS
of repvol.8, and the options of every SYNOPSIS block of the verb must
appear in its --help.  The overview, repvol.8, must name every verb's
page in its COMMANDS, and "repvol --help"'s own options must be in its
GLOBAL OPTIONS and the options of its SYNOPSIS in "repvol --help".
For a daemon, --help against the whole SYNOPSIS and OPTIONS.  Prints
each mismatch; exits 1 if there is one.
"""
import re
import subprocess
import sys

OPT = re.compile(r"(?<![\w-])--([a-z][a-z0-9-]*)")
COMMON = {"help", "version"}


DEF = re.compile(r"^\s+(?:-\w, )?--([a-z][a-z0-9-]*)")


def help_text(cmd):
    return subprocess.run(cmd, capture_output=True, text=True).stdout


def help_opts(cmd):
    """The options a --help defines (lines "  --opt ..." or "  -o, --opt
    ...") or shows in its usage (the lines before the first blank one);
    prose that mentions an option is not a definition."""
    out = help_text(cmd)
    usage = out.split("\n\n", 1)[0]
    opts = set(OPT.findall(usage))
    for l in out.splitlines():
        m = DEF.match(l)
        if m:
            opts.add(m.group(1))
    return opts


def man_text(lines):
    """troff lines as plain text with \\- as -."""
    return "\n".join(l.replace("\\-", "-").replace("\\fI", "")
                     .replace("\\fB", "").replace("\\fR", "").replace("\\fP", "")
                     for l in lines)


def sections(lines):
    out, name = {}, None
    for l in lines:
        if l.startswith(".SH "):
            name = l[4:].strip().strip('"')
            out[name] = []
        elif name:
            out[name].append(l)
    return out


def synopsis_blocks(syn):
    """(verb words, option set) for each .SY ... .YS block."""
    blocks, cur = [], None
    for l in syn:
        if l.startswith(".SY"):
            cur = []
        elif l.startswith(".YS") and cur is not None:
            words = []
            for b in cur:
                if b.startswith(".B ") and not b.startswith(".B \\-"):
                    words.append(b[3:].strip())
                    break
            blocks.append((" ".join(words), set(OPT.findall(man_text(cur)))))
            cur = None
        elif cur is not None:
            cur.append(l)
    return blocks


def verb_entries(cmds, verbs):
    """verb -> its COMMANDS entry's lines (".TP" then ".B verb ...")."""
    out, cur = {}, None
    for i, l in enumerate(cmds):
        if l.startswith(".B ") and i > 0 and cmds[i - 1].startswith(".TP"):
            head = man_text([l[3:]]).strip()
            v = next((v for v in sorted(verbs, key=len, reverse=True)
                      if head == v or head.startswith(v + " ")), None)
            if v:
                cur = v
                out.setdefault(v, [])
        if cur:
            out[cur].append(l)
    return out


def page_entries(sec, verbs, page):
    """verb -> its entry in one verb page: the OPTIONS section when the
    page is for one verb, else its entry in the page's COMMANDS."""
    if "COMMANDS" in sec:
        return verb_entries(sec["COMMANDS"], verbs)
    if len(verbs) > 1:
        print("%s: a page for %s needs a COMMANDS section" % (page, ", ".join(verbs)))
        return {}
    return {verbs[0]: sec.get("OPTIONS", [])}


def check_overview(repvol, mandir, verbs, pages):
    """repvol.8: its COMMANDS names every page, and its GLOBAL OPTIONS and
    SYNOPSIS agree with "repvol --help"."""
    sec = sections(open("%s/repvol.8" % mandir).read().splitlines())
    bad = 0
    cmds = man_text(sec.get("COMMANDS", []))
    for p in sorted(pages):
        if not re.search(r"^\.BR (\\%%)?%s \(8\)" % re.escape(p), cmds, re.M):
            print("repvol.8: COMMANDS does not name %s(8)" % p)
            bad += 1
    h = help_opts([repvol, "--help"])
    glob = set(OPT.findall(man_text(sec.get("GLOBAL OPTIONS", []))))
    syn = set(OPT.findall(man_text(sec.get("SYNOPSIS", []))))
    for o in sorted(h - glob):
        print("repvol: --%s is in --help but not in repvol.8's GLOBAL OPTIONS" % o)
        bad += 1
    for o in sorted(syn - h):
        print("repvol: --%s is in repvol.8's SYNOPSIS but not in --help" % o)
        bad += 1
    return bad, glob


def check_repvol(repvol, mandir):
    top = subprocess.run([repvol, "--help"], capture_output=True,
                         text=True).stdout
    verbs = sorted(set(re.findall(r"^\s+repvol ((?:replica|snapshot|server) [a-z]+|[a-z]+)",
                                  top, re.M)))
    byp = {}
    for v in verbs:
        byp.setdefault("repvol-" + v.split()[0], []).append(v)
    bad, global_opts = check_overview(repvol, mandir, verbs, byp)
    entries, syn = {}, []
    for p, pverbs in byp.items():
        try:
            lines = open("%s/%s.8" % (mandir, p)).read().splitlines()
        except OSError as e:
            print("%s: no page: %s" % (" | ".join(pverbs), e))
            bad += 1
            continue
        sec = sections(lines)
        entries.update(page_entries(sec, pverbs, p + ".8"))
        syn += synopsis_blocks(sec.get("SYNOPSIS", []))
    # Verbs that share one --help (the snapshot group) are checked as
    # one: their entries and synopses together against that help.
    groups = {}
    for v in verbs:
        groups.setdefault(help_text([repvol] + v.split() + ["--help"]), []).append(v)
    for members in groups.values():
        v = " | ".join(members)
        h = help_opts([repvol] + members[0].split() + ["--help"]) - COMMON
        doc = set()
        for m in members:
            if m not in entries:
                print("%s: no entry in its page" % m)
                bad += 1
            doc |= set(OPT.findall(man_text(entries.get(m, []))))
        for o in sorted(h - doc - global_opts):
            print("%s: --%s is in --help but not in the man page's entry" % (v, o))
            bad += 1
        blocks = [o for w, o in syn if w in members]
        if not blocks:
            print("%s: no SYNOPSIS" % v)
            bad += 1
            continue
        s = set().union(*blocks)
        for o in sorted(s - h - global_opts - COMMON):
            print("%s: --%s is in the man SYNOPSIS but not in --help" % (v, o))
            bad += 1
        for o in sorted(h - s - global_opts):
            print("%s: --%s is in --help but not in the man SYNOPSIS" % (v, o))
            bad += 1
    return bad


def check_daemon(binary, man):
    lines = open(man).read().splitlines()
    sec = sections(lines)
    h = help_opts([binary, "--help"]) - COMMON
    syn = set(OPT.findall(man_text(sec["SYNOPSIS"])))
    opts = set(OPT.findall(man_text(sec["OPTIONS"])))
    bad = 0
    for o in sorted(h - opts):
        print("%s: --%s is in --help but not in OPTIONS" % (binary, o)); bad += 1
    for o in sorted(h - syn):
        print("%s: --%s is in --help but not in SYNOPSIS" % (binary, o)); bad += 1
    for o in sorted(syn - h - COMMON):
        print("%s: --%s is in SYNOPSIS but not in --help" % (binary, o)); bad += 1
    return bad


if __name__ == "__main__":
    if sys.argv[1] == "--daemon":
        n = check_daemon(sys.argv[2], sys.argv[3])
    else:
        n = check_repvol(sys.argv[1], sys.argv[2])
    print("helpman: %d mismatch%s" % (n, "" if n == 1 else "es"))
    sys.exit(1 if n else 0)

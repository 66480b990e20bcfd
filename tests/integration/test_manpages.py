#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The man pages as meson builds them (man/meson.build): they render without groff warnings,
mpopd.conf(5) names every key mpopd --check-config prints, and the paths they give are the
ones this build uses (mpopd --help, mpopdctl --help, the user list default), whatever the
prefix; the installed sample configuration names the same."""
import os
import re
import subprocess
import sys
import tempfile

MPOPD = os.environ["MPOPD"]
MPOPDCTL = os.environ["MPOPDCTL"]
BUILDDIR = os.environ["BUILDDIR"]
PAGES = ["mpopd.8", "mpopd.conf.5", "mpopdctl.8"]

n = 0


def ok(cond, what, detail=""):
    global n
    n += 1
    print(("ok %d - %s" if cond else "not ok %d - %s") % (n, what))
    if not cond and detail:
        for line in str(detail).splitlines()[:40]:
            print("# " + line)
    return cond


def render(page):
    """Plain text, no hyphenation, lines long enough that no key or path is broken."""
    r = subprocess.run(
        ["groff", "-man", "-Tascii", "-rHY=0", "-rLL=250n", "-P-cbou",
         os.path.join(BUILDDIR, "man", page)],
        capture_output=True, text=True, check=True)
    return r.stdout


def warnings(page):
    r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z",
                        os.path.join(BUILDDIR, "man", page)],
                       capture_output=True, text=True)
    return r.returncode, r.stderr


def default_config(prog):
    help_text = subprocess.run([prog, "--help"], capture_output=True, text=True).stdout
    m = re.search(r"\(default (/\S+)\)", help_text)
    return m.group(1) if m else None


def main():
    texts = {}
    for page in PAGES:
        rc, err = warnings(page)
        ok(rc == 0 and err == "", "%s renders without groff warnings" % page, err)
        texts[page] = render(page)

    # Every key of the effective configuration is described in mpopd.conf(5), under its group.
    with tempfile.NamedTemporaryFile("w", suffix=".conf") as empty:
        dump = subprocess.run([MPOPD, "--check-config", "-c", empty.name],
                              capture_output=True, text=True, check=True).stdout
    conf5 = texts["mpopd.conf.5"]
    group, missing, keys = None, [], 0
    for line in dump.splitlines():
        if line.startswith("["):
            group = line
            continue
        if "=" not in line or line.startswith("#") or group == "[user_auth]":
            continue
        key = line.split("=", 1)[0]
        keys += 1
        section = conf5.find("   " + group) if not group.startswith("[host:") else 0
        if section < 0 or not re.search(r"^\s+%s=" % re.escape(key), conf5[section:], re.M):
            missing.append("%s %s" % (group, key))
    ok(keys > 60 and not missing, "mpopd.conf(5) describes all %d keys" % keys,
       "\n".join(missing))

    # The backends the page describes are the ones this build has: [auth] default accepts
    # each (its Type line lists the built-in names, from the same table as the registry).
    src = open(os.path.join(BUILDDIR, "man", "mpopd.conf.5")).read()
    sect = src.split(".SH AUTHENTICATION BACKENDS", 1)[1].split("\n.SH ", 1)[0]
    described = set()
    for m in re.finditer(r"^\.TP\n\.BR? (.*)$", sect, re.M):
        described |= {w for w in re.findall(r"[a-z]+", m.group(1))}
    built = re.search(r"^\s+default=userlist\n(?:.*\n)*?\s+Type: a list of ([a-z, ]+)",
                      conf5, re.M)
    built = set(built.group(1).replace(",", " ").split()) if built else set()
    ok(described and described <= built,
       "the backends mpopd.conf(5) describes (%s) are built in" % " ".join(sorted(described)),
       "not built: %s" % " ".join(sorted(described - built)))

    # The paths follow the build: the same configuration file in --help and the pages.
    conf = default_config(MPOPD)
    ok(conf is not None and conf == default_config(MPOPDCTL),
       "mpopd --help and mpopdctl --help name the same default file (%s)" % conf)
    for page in PAGES:
        ok(conf in texts[page], "%s names %s" % (page, conf))
        others = set(re.findall(r"(/\S*?/mpopd/mpopd\.conf)\b", texts[page])) - {conf}
        ok(not others, "%s names no other mpopd.conf" % page, "\n".join(sorted(others)))
    userlist = re.search(r"^userlist=(.*)$", dump, re.M).group(1)
    ok(os.path.dirname(userlist) == os.path.dirname(conf),
       "the user list default %s is next to %s" % (userlist, conf))
    ok("userlist=" + userlist in conf5.replace(" ", ""),
       "mpopd.conf(5) gives the user list default %s" % userlist)
    ok(userlist in texts["mpopd.8"], "mpopd(8) names %s" % userlist)

    # The sample configuration meson installs lists the same defaults, commented out.
    with open(os.path.join(BUILDDIR, "conf", "mpopd.conf")) as f:
        sample = f.read()
    ok("#userlist=%s\n" % userlist in sample, "the installed sample names %s" % userlist)
    print("1..%d" % n)
    return 0


if __name__ == "__main__":
    sys.exit(main())

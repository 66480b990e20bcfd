#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""getmail6 retrieves every message into a Maildir (bytes compared)."""

import os
import shutil
import subprocess

from mpopdtest import FORMAT, MESSAGES, WAIT, Fixture, PASSWORD, Reporter, Server, lf, need_binaries


def run(t, mode):
    with Fixture() as fx, Server(fx, mode) as srv:
        out = os.path.join(fx.dir, "got")
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(out, sub))
        dest_user = ""
        if os.geteuid() == 0:
            # getmail refuses to deliver as root; its Maildir destination then needs a user.
            dest_user = "user = nobody\n"
            for root, dirs, _ in os.walk(out):
                os.chown(root, 65534, 65534)
        gdir = os.path.join(fx.dir, "getmail")
        os.mkdir(gdir)
        rc = os.path.join(gdir, "getmailrc")
        with open(rc, "w") as f:
            f.write(f"[retriever]\ntype = SimplePOP3Retriever\nserver = 127.0.0.1\n"
                    f"port = {srv.port}\nusername = alice\npassword = {PASSWORD}\n\n"
                    f"[destination]\ntype = Maildir\npath = {out}/\n{dest_user}\n"
                    "[options]\nread_all = true\ndelete = false\ndelivered_to = false\n"
                    "received = false\nmessage_log_syslog = false\nverbose = 0\n")
        r = subprocess.run(["getmail", f"--getmaildir={gdir}", f"--rcfile={rc}"],
                           capture_output=True, timeout=WAIT * 4)
        log = (r.stdout + r.stderr).decode("utf-8", "replace")
        t.check(r.returncode == 0, f"{mode}: getmail exits 0", log)
        got = []
        for n in os.listdir(os.path.join(out, "new")):
            with open(os.path.join(out, "new", n), "rb") as f:
                got.append(strip_return_path(f.read()))
        t.equal(len(got), len(MESSAGES), f"{mode}: getmail delivered every message")
        want = sorted(normalise(r) for _, r in MESSAGES)
        got = sorted(normalise(g) for g in got)
        for i, w in enumerate(want):
            g = got[i] if i < len(got) else b""
            t.check(g == w, f"{mode}: getmail message {i + 1} bytes match",
                    f"got {len(g)} octets {g[:160]!r}\nwant {len(w)} octets {w[:160]!r}")
        t.equal(fx.listing("alice"), sorted(fx.uidls()),
                f"{mode}: delete = false left the maildrop as it was")


def normalise(raw):
    """LF line ends; like fetchmail, getmail ends a header-only message with an empty line."""
    text = lf(raw)
    return text if b"\n\n" in text else text + b"\n"


def strip_return_path(raw):
    """getmail's Maildir destination adds a Return-Path header of its own."""
    if raw.startswith(b"Return-Path:"):
        return raw.split(b"\n", 1)[1]
    return raw


def main():
    need_binaries()
    t = Reporter("getmail" if FORMAT == "maildir" else f"getmail-{FORMAT}")
    if not shutil.which("getmail"):
        t.skip("getmail", "getmail6 not installed")
    else:
        t.run(run, "inetd")
    t.done()


if __name__ == "__main__":
    main()

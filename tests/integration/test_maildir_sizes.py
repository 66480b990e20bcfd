#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Maildir sizes from Dovecot's ,S=/,W= names and the mpopd-sizes cache, through the server:
RETR never sends a count other than LIST's (a wrong claim gets -ERR, or the connection ends
when part of the message has left) and the next session lists the right size; nothing but
the cache is left in the Maildir root, and a read-only root is served."""

import os

from mpopdtest import (TEST_UID, Fixture, Pop, Reporter, Server, crlf, need_binaries,
                       pop_size)

SMALL = b"From: a@example.org\nSubject: small\n\nbody\n"
BIG = b"From: a@example.org\nSubject: big\n\n" + b"".join(
    b"line %06d of a big message\n" % i for i in range(40000))  # over 1 MB


def named(uniq, raw, w=None):
    """A Dovecot name: ,S= the stored size, ,W= the size with CRLF (or the w given)."""
    w = pop_size(raw) if w is None else w
    return f"cur/{uniq},S={len(raw)},W={w}:2,S"


MESSAGES = [
    (named("1700000001.M1P1.h", SMALL), SMALL),                   # right
    (named("1700000002.M2P2.h", SMALL, pop_size(SMALL) + 1), SMALL),  # ,W= one too many
    ("cur/1700000003.M3P3.h:2,S", b"From: a@example.org\n\nno size in the name\n"),
    (named("1700000004.M4P4.h", BIG, pop_size(BIG) - 3), BIG),     # big, ,W= 3 short
]


def listing(p):
    r = p.cmd("LIST")
    return r, {int(n): int(s) for n, s in (line.split() for line in p.multi())}


def retr(p, n):
    """(status line, body bytes with CRLF, dot-unstuffed) or (status, None) on -ERR/EOF."""
    r = p.cmd(f"RETR {n}")
    if not r.startswith(b"+OK"):
        return r, None
    try:
        return r, b"".join(line + b"\r\n" for line in p.multi())
    except ConnectionError:
        return r, None


def root_names(fx):
    return sorted(os.listdir(fx.maildirs["alice"]))


def sessions(t, mode):
    with Fixture(messages=MESSAGES, fmt="maildir") as fx, Server(fx, mode) as srv:
        right = [pop_size(raw) for _, raw in MESSAGES]
        p = Pop(srv.port)
        t.check(p.login()[1].startswith(b"+OK"), f"{mode}: login")
        r, sizes = listing(p)
        t.equal(sizes, {1: right[0], 2: right[1] + 1, 3: right[2], 4: right[3] - 3},
                f"{mode}: LIST gives the names' claims and the measured size")
        for n in (1, 3):
            r, body = retr(p, n)
            t.check(body is not None and len(body) == sizes[n] and body == crlf(MESSAGES[n - 1][1]),
                    f"{mode}: RETR {n} sends what LIST said", r)
        r, body = retr(p, 2)
        t.check(r.startswith(b"-ERR [SYS/TEMP]") and body is None,
                f"{mode}: RETR of a message whose name claims a wrong size: -ERR", r)
        t.check(p.cmd("NOOP").startswith(b"+OK"), f"{mode}: the session goes on")
        r, body = retr(p, 4)
        t.check(r.startswith(b"+OK") and body is None and p.closed(),
                f"{mode}: a wrong size found while a big message is sent ends the connection "
                "without the terminator", r)
        p.close()
        names = root_names(fx)
        t.equal(names, ["cur", "mpopd-sizes", "new", "tmp"],
                f"{mode}: no lock file; the cache holds the measured and corrected sizes")
        st = os.stat(os.path.join(fx.maildirs["alice"], "mpopd-sizes"))
        t.check(st.st_uid == TEST_UID and st.st_mode & 0o777 == 0o600,
                f"{mode}: the cache belongs to the mailbox owner, mode 0600", oct(st.st_mode))

        p = Pop(srv.port)
        p.login()
        r, sizes = listing(p)
        t.equal(sizes, dict(enumerate(right, 1)), f"{mode}: the next session lists every "
                "size right")
        for n in range(1, 5):
            r, body = retr(p, n)
            t.check(body is not None and len(body) == sizes[n],
                    f"{mode}: next session: RETR {n} sends what LIST said", r)
        t.check(p.cmd("QUIT").startswith(b"+OK"), f"{mode}: QUIT")
        p.close()


def readonly_root(t):
    """The owner cannot write the Maildir root (the session runs as the owner, also when the
    tests run as root): no lock file or cache needed."""
    with Fixture(messages=MESSAGES[2:3] + [("new/1700000009.M9P9.h", SMALL)],
                 fmt="maildir") as fx, Server(fx, "inetd") as srv:
        md = fx.maildirs["alice"]
        os.chmod(md, 0o555)
        try:
            p = Pop(srv.port)
            t.check(p.login()[1].startswith(b"+OK"), "read-only root: login")
            r, sizes = listing(p)
            t.equal(sorted(sizes.values()), sorted([pop_size(MESSAGES[2][1]), pop_size(SMALL)]),
                    "read-only root: LIST")
            r, body = retr(p, 2)
            t.check(body is not None and len(body) == sizes[2], "read-only root: RETR", r)
            t.check(p.cmd("DELE 1").startswith(b"+OK"), "read-only root: DELE")
            t.check(p.cmd("QUIT").startswith(b"+OK"), "read-only root: UPDATE succeeds")
            p.close()
            t.equal(sorted(os.listdir(md)), ["cur", "new", "tmp"],
                    "read-only root: nothing was created in it")
            t.equal(len(fx.listing("alice")), 1, "read-only root: the message was deleted")
        finally:
            os.chmod(md, 0o700)


def main():
    need_binaries()
    t = Reporter("maildir-sizes")
    for mode in ("inetd", "daemon"):
        t.run(sessions, mode)
    t.run(readonly_root)
    t.done()


if __name__ == "__main__":
    main()

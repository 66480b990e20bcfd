#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Python's poplib retrieves every fixture message under inetd, fd 3 and legacy daemon modes
(MPOPD_TEST_FORMAT: from maildirs or mbox files)."""

import poplib

from mpopdtest import FORMAT, Fixture, PASSWORD, Reporter, Server, lines_of, need_binaries, pop_size


def session(t, fx, srv, user):
    EXPECT = fx.expect(user)
    p = poplib.POP3("127.0.0.1", srv.port, timeout=15)
    try:
        t.check(p.getwelcome().startswith(b"+OK"), f"{srv.mode}/{user}: greeting")
        p.user(user)
        p.pass_(PASSWORD)
        count, octets = p.stat()
        t.equal((count, octets), (len(EXPECT), sum(pop_size(r) for _, r in EXPECT)),
                f"{srv.mode}/{user}: STAT counts CRLF octets")
        _, listing, _ = p.list()
        t.equal(listing, [b"%d %d" % (i + 1, pop_size(r)) for i, (_, r) in enumerate(EXPECT)],
                f"{srv.mode}/{user}: LIST sizes are the octets sent")
        _, uidls, _ = p.uidl()
        t.equal(uidls, [b"%d %s" % (i + 1, u.encode()) for i, (u, _) in enumerate(EXPECT)],
                f"{srv.mode}/{user}: UIDL is the {fx.format} UIDL source")
        for i, (uidl, raw) in enumerate(EXPECT, 1):
            _, lines, _ = p.retr(i)
            t.check(lines == lines_of(raw), f"{srv.mode}/{user}: RETR {i} ({uidl}) bytes",
                    f"first difference: {first_diff(lines, lines_of(raw))}")
        _, top, _ = p.top(1, 0)
        raw1 = EXPECT[0][1]
        t.equal(top, lines_of(raw1.split(b"\n\n", 1)[0] + b"\n\n"), f"{srv.mode}/{user}: TOP 1 0")
        _, top, _ = p.top(2, 2)
        raw2 = EXPECT[1][1]
        want = lines_of(raw2)
        want = want[: want.index(b"") + 3]
        t.equal(top, want, f"{srv.mode}/{user}: TOP 2 2 (body lines with dots)")
        t.check(p.quit().startswith(b"+OK"), f"{srv.mode}/{user}: QUIT")
    finally:
        p.close()


def first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"line {i}: {x[:80]!r} != {y[:80]!r}"
    return f"lengths {len(a)} != {len(b)}"


def empty(t, srv, user):
    """carol: an empty maildir, or no mbox file at all (an empty maildrop, not an error)."""
    p = poplib.POP3("127.0.0.1", srv.port, timeout=15)
    try:
        p.user(user)
        p.pass_(PASSWORD)
        t.equal(p.stat(), (0, 0), f"{srv.mode}/{user}: empty maildrop STAT 0 0")
        t.equal(p.uidl()[1], [], f"{srv.mode}/{user}: empty UIDL listing")
        t.check(p.quit().startswith(b"+OK"), f"{srv.mode}/{user}: QUIT")
    finally:
        p.close()


def one_mode(t, mode):
    with Fixture() as fx:
        with Server(fx, mode) as srv:
            session(t, fx, srv, "alice")
            session(t, fx, srv, "bob")
            # a second pass sees the same UIDLs (stable across sessions) and nothing deleted
            session(t, fx, srv, "alice")
            empty(t, srv, "carol")
        t.equal(fx.listing("alice"), sorted(fx.uidls("alice")),
                f"{mode}: QUIT without DELE removes nothing")
        t.equal(fx.listing("bob"), sorted(fx.uidls("bob")),
                f"{mode}: bob (mailbox from the user list) untouched too")


def main():
    need_binaries()
    t = Reporter("poplib" if FORMAT == "maildir" else f"poplib-{FORMAT}")
    for mode in ("inetd", "accept", "daemon"):
        t.run(one_mode, mode)
    t.done()


if __name__ == "__main__":
    main()

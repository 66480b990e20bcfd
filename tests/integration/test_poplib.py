#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Python's poplib retrieves every fixture message under inetd, fd 3 and legacy daemon modes."""

import poplib

from mpopdtest import (MESSAGES, Fixture, PASSWORD, Reporter, Server, lines_of, need_binaries,
                       pop_size, uidl_of)

EXPECT = sorted(MESSAGES, key=lambda m: uidl_of(m[0]))


def session(t, fx, srv, user):
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
        t.equal(uidls, [b"%d %s" % (i + 1, uidl_of(n).encode()) for i, (n, _) in enumerate(EXPECT)],
                f"{srv.mode}/{user}: UIDL is the maildir unique name")
        for i, (name, raw) in enumerate(EXPECT, 1):
            _, lines, _ = p.retr(i)
            t.check(lines == lines_of(raw), f"{srv.mode}/{user}: RETR {i} ({uidl_of(name)}) bytes",
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


def one_mode(t, mode):
    with Fixture() as fx:
        with Server(fx, mode) as srv:
            session(t, fx, srv, "alice")
            session(t, fx, srv, "bob")
            # a second pass sees the same UIDLs (stable across sessions) and nothing deleted
            session(t, fx, srv, "alice")
        t.equal(fx.listing("alice"), sorted(uidl_of(n) for n, _ in MESSAGES),
                f"{mode}: QUIT without DELE removes nothing")


def main():
    need_binaries()
    t = Reporter("poplib")
    for mode in ("inetd", "accept", "daemon"):
        t.run(one_mode, mode)
    t.done()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The idle timeout closes a session without UPDATE (RFC 1939 §3)."""

import time

from mpopdtest import MESSAGES, Fixture, Pop, Reporter, Server, need_binaries, uidl_of

IDLE = 10  # the smallest idle_timeout the configuration accepts


def run(t):
    with Fixture({"server.idle_timeout": str(IDLE)}) as fx, Server(fx, "inetd") as srv:
        p = Pop(srv.port)
        _, r = p.login()
        t.check(r.startswith(b"+OK"), "idle: login", r)
        t.check(p.cmd("DELE 1").startswith(b"+OK"), "idle: DELE 1")
        start = time.monotonic()
        closed = p.closed(timeout=IDLE + 20)
        took = time.monotonic() - start
        t.check(closed, "idle: the server closed the idle connection", f"after {took:.1f}s")
        t.check(IDLE - 1 <= took <= IDLE + 10, f"idle: closed after about {IDLE}s",
                f"after {took:.1f}s")
        p.close()
        time.sleep(0.5)
        t.equal(fx.listing(), sorted(uidl_of(n) for n, _ in MESSAGES),
                "idle: the timeout did not UPDATE (message 1 is still there)")


def main():
    need_binaries()
    t = Reporter("idle-timeout")
    t.run(run)
    t.done()


if __name__ == "__main__":
    main()

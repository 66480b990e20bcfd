#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The failure penalty across connections: with one process per connection
(systemd-socket-activate --inetd and --accept, the table in a file) and in the daemon (the table in
memory), failed logins from one address make its next failures wait longer and then get
-ERR [SYS/TEMP] without a password check; another address (127.0.0.2, bound by the client)
is unaffected; a success forgets; failures for one user name from many addresses block that
name; the block ends penalty_period after the last failure.

Timing checks use lower bounds (the server sleeps at least that long) and only generous
upper bounds, so that a loaded machine does not make them fail."""

import os
import stat
import time

from mpopdtest import PASSWORD, Pop, Reporter, Server, need_binaries, wait_for
from test_login_hardening import parallel
from tlsutil import TlsFixture

WRONG = "Wr0ng-Passw0rd-xyzzy"
TEMP = b"-ERR [SYS/TEMP]"
BLOCKED = "blocked by the failure penalty"
TABLE_SIZE = 32 + 32 * 8192
PERIOD = 10  # the smallest penalty_period the configuration accepts

# failure_delay 0.3 s, doubled from the 2nd failure on: 0.3 0.6 1.2 2.4 then 3.0 (the cap)
BASE = 0.3
SETTINGS = {"auth.failure_delay": "300", "auth.penalty_delay_after": "1",
            "auth.penalty_max_delay": "3", "auth.penalty_block_after": "5",
            "auth.penalty_user_block_after": "7", "auth.penalty_period": str(PERIOD)}


def fixture(settings):
    """A fixture whose settings survive the daemon runner's rewrite of [server] listen."""
    return TlsFixture(None, settings, cert=None)


def expected(n):
    """Seconds the n-th recent failure (from 1) is answered after, at least."""
    return min(BASE * 2 ** (n - 1), 3.0)


def attempt(port, user, password, source=None):
    """One connection, one USER/PASS: (PASS reply, seconds from PASS to its reply)."""
    p = Pop(port, source=source)
    try:
        r = p.cmd(f"USER {user}")
        if not r.startswith(b"+OK"):
            return b"USER: " + r, 0.0
        start = time.monotonic()
        r = p.cmd(f"PASS {password}")
        took = time.monotonic() - start
        p.cmd("QUIT")
        return r, took
    finally:
        p.close()


def delays_then_block(t, settings, mode):
    """One address: growing delays, then refusals that check no password, while another
    address logs in; the refusals end penalty_period after the last counted failure."""
    with fixture(settings) as fx, Server(fx, mode) as srv:
        took = []
        for n in range(1, 6):
            r, s = attempt(srv.port, "alice", WRONG)
            t.check(r.startswith(b"-ERR [AUTH]"), f"{mode}: failure {n} is -ERR [AUTH]", r)
            took.append(s)
        for n, s in enumerate(took, 1):
            t.check(s >= expected(n) - 0.05, f"{mode}: failure {n} answered after at least "
                    f"{expected(n):.1f} s", f"{s:.2f} s; all: {took}")
        t.check(took[0] < expected(4) - 0.3 and took[3] > took[0] + 1.0,
                f"{mode}: the delay grows with the failures", took)
        last_failure = time.monotonic() - took[-1]
        # the right password from the blocked address: refused, not checked
        r, s = attempt(srv.port, "alice", PASSWORD)
        t.check(r.startswith(TEMP), f"{mode}: after 5 failures the right password gets "
                "-ERR [SYS/TEMP]", r)
        t.check(s >= expected(6) - 0.05, f"{mode}: the refusal waits like a failure", s)
        r, _ = attempt(srv.port, "bob", PASSWORD)
        t.check(r.startswith(TEMP), f"{mode}: the block is per address (another user too)", r)
        t.check(wait_for(lambda: BLOCKED in fx.stderr_text()),
                f"{mode}: the refusal is logged: {BLOCKED}", fx.stderr_text()[-2000:])
        log = fx.stderr_text()
        t.check(PASSWORD not in log and WRONG not in log, f"{mode}: no password in the log")
        # another address: a failure at the base delay, then a login
        r, s = attempt(srv.port, "bob", WRONG, source="127.0.0.2")
        t.check(r.startswith(b"-ERR [AUTH]") and BASE - 0.05 <= s < expected(4),
                f"{mode}: from 127.0.0.2 a failure costs failure_delay only",
                f"{r!r} after {s:.2f} s")
        r, _ = attempt(srv.port, "carol", PASSWORD, source="127.0.0.2")
        t.check(r.startswith(b"+OK"), f"{mode}: from 127.0.0.2 a login works", r)
        if mode != "daemon":
            st = os.stat(fx.v(os.path.join(fx.dir, "penalty", "state")))
            t.check(stat.S_IMODE(st.st_mode) == 0o600 and st.st_size == TABLE_SIZE,
                    f"{mode}: the table is a 0600 file of {TABLE_SIZE} bytes",
                    f"{oct(st.st_mode)} {st.st_size}")
            dst = os.stat(os.path.join(fx.dir, "penalty"))
            t.check(stat.S_IMODE(dst.st_mode) == 0o700, f"{mode}: its directory is 0700",
                    oct(dst.st_mode))
        # The refusals since did not count: the block ends penalty_period after the last
        # failure (counted when its check began, before its delay).
        time.sleep(max(0.0, last_failure + PERIOD + 1.5 - time.monotonic()))
        r, _ = attempt(srv.port, "alice", PASSWORD)
        t.check(r.startswith(b"+OK"), f"{mode}: after penalty_period the address logs in", r)


def success_resets(t, settings, mode):
    """Failures from an address, a success, and the next failure costs failure_delay again."""
    with fixture(settings) as fx, Server(fx, mode) as srv:
        took = [attempt(srv.port, "carol", WRONG)[1] for _ in range(4)]
        t.check(took[3] >= expected(4) - 0.05, f"{mode}: reset: 4 failures, the 4th delayed",
                took)
        r, _ = attempt(srv.port, "carol", PASSWORD)
        t.check(r.startswith(b"+OK"), f"{mode}: reset: the right password logs in", r)
        r, s = attempt(srv.port, "carol", WRONG)
        t.check(r.startswith(b"-ERR [AUTH]") and s < expected(3),
                f"{mode}: reset: the failure after a success costs failure_delay only",
                f"{r!r} after {s:.2f} s")
        for _ in range(3):
            attempt(srv.port, "carol", WRONG)
        r, _ = attempt(srv.port, "carol", PASSWORD)
        t.check(r.startswith(b"+OK"), f"{mode}: reset: 4 failures after the reset (8 in "
                "all) still allow a login: the count started again", r)


def user_block(t, settings, mode):
    """One user name failed from 7 addresses: its logins are refused from an 8th, other
    names from there are not."""
    with fixture(settings) as fx, Server(fx, mode) as srv:
        for i in range(7):
            r, _ = attempt(srv.port, "Dave", WRONG, source=f"127.0.1.{i + 1}")
            t.check(r.startswith(b"-ERR [AUTH]"), f"{mode}: user: failure {i + 1} for dave", r)
        r, _ = attempt(srv.port, "DAVE", WRONG, source="127.0.1.100")
        t.check(r.startswith(TEMP), f"{mode}: user: the 8th try for dave (any case) is "
                "refused from a new address", r)
        r, _ = attempt(srv.port, "alice", PASSWORD, source="127.0.1.100")
        t.check(r.startswith(b"+OK"), f"{mode}: user: another name logs in from there", r)
        # an e-mail login name counts as one, whichever separator and case the client uses
        for i, name in enumerate(("erin@example.org", "erin%example.org", "ERIN@Example.Org",
                                  "erin%EXAMPLE.org", "erin@example.org", "Erin@example.org",
                                  "erin%example.org")):
            r, _ = attempt(srv.port, name, WRONG, source=f"127.0.2.{i + 1}")
            t.check(r.startswith(b"-ERR [AUTH]"), f"{mode}: user: failure {i + 1} for {name}",
                    r)
        r, _ = attempt(srv.port, "erin@example.org", WRONG, source="127.0.2.100")
        t.check(r.startswith(TEMP), f"{mode}: user: erin@example.org is refused after 7 "
                "failures under 4 spellings", r)


def main():
    need_binaries()
    t = Reporter("penalty")
    jobs = [(f, SETTINGS, mode) for mode in ("inetd", "daemon")
            for f in (delays_then_block, success_resets, user_block)]
    # systemd Accept=yes (the connection on fd 3) opens the same file as inetd
    parallel(t, jobs + [(user_block, SETTINGS, "accept")])
    t.done()


if __name__ == "__main__":
    main()

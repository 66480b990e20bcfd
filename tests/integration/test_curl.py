#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""curl's pop3:// client: RETR every message, LIST, -X UIDL, DELE through -X."""

import shutil
import subprocess

from mpopdtest import (FORMAT, WAIT, Fixture, PASSWORD, Reporter, Server, crlf, need_binaries,
                       pop_size)


def curl(port, path="", user="alice", extra=()):
    url = f"pop3://{user}:{PASSWORD}@127.0.0.1:{port}/{path}"
    r = subprocess.run(["curl", "-sS", "--max-time", "30", *extra, url],
                       capture_output=True, timeout=WAIT * 3)
    return r.returncode, r.stdout, r.stderr.decode("utf-8", "replace")


def one_mode(t, mode):
    with Fixture() as fx, Server(fx, mode) as srv:
        EXPECT = fx.expect()
        for i, (uidl, raw) in enumerate(EXPECT, 1):
            rc, out, err = curl(srv.port, str(i))
            # curl removes the dot-stuffing and the terminator; line ends stay CRLF.
            t.check(rc == 0 and out == crlf(raw), f"{mode}: curl RETR {i} ({uidl})",
                    f"rc {rc} {err}\ngot {len(out)} octets, want {len(crlf(raw))}")
        rc, out, err = curl(srv.port, "")
        want = b"".join(b"%d %d\r\n" % (i, pop_size(r)) for i, (_, r) in enumerate(EXPECT, 1))
        t.check(rc == 0 and out == want, f"{mode}: curl LIST", f"rc {rc} {err}\n{out!r}")
        rc, out, err = curl(srv.port, "", extra=["-X", "UIDL"])
        want = b"".join(b"%d %s\r\n" % (i, u.encode()) for i, (u, _) in enumerate(EXPECT, 1))
        t.check(rc == 0 and out == want, f"{mode}: curl -X UIDL", f"rc {rc} {err}\n{out!r}")
        rc, out, err = curl(srv.port, "1", user="alice", extra=["-X", "DELE", "-I"])
        t.check(rc == 0, f"{mode}: curl -X DELE 1", f"rc {rc} {err}")
        t.equal(fx.listing("alice"), sorted(u for u, _ in EXPECT[1:]),
                f"{mode}: DELE 1 + QUIT removed exactly message 1")
        rc, out, err = curl(srv.port, "1", user="alice", extra=["-u", "alice:wrong"])
        t.check(rc != 0, f"{mode}: curl with a wrong password fails", f"rc {rc}")


def main():
    need_binaries()
    t = Reporter("curl" if FORMAT == "maildir" else f"curl-{FORMAT}")
    if not shutil.which("curl"):
        t.skip("curl", "curl not installed")
    else:
        for mode in ("inetd", "accept"):
            t.run(one_mode, mode)
    t.done()


if __name__ == "__main__":
    main()

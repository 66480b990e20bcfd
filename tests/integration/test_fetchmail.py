#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""fetchmail retrieves every message into an MDA (bytes compared), then fetches and deletes."""

import os
import shutil
import subprocess

from mpopdtest import (FORMAT, MESSAGES, WAIT, Fixture, PASSWORD, Reporter, Server, fetchmail,
                       lf, need_binaries, normalise)


def run(t, mode):
    with Fixture() as fx, Server(fx, mode) as srv:
        rc, got, log = fetchmail(fx, srv.port, "keep", "sslproto ''")
        want = sorted(normalise(r) for _, r in MESSAGES)
        t.check(rc == 0, f"{mode}: fetchmail keep exits 0", log)
        t.equal(len(got), len(MESSAGES), f"{mode}: fetchmail delivered every message")
        got_n = sorted(normalise(g) for g in got)
        for i, w in enumerate(want):
            g = got_n[i] if i < len(got_n) else b""
            t.check(g == w, f"{mode}: fetchmail message {i + 1} bytes match",
                    f"got {len(g)} octets {g[:120]!r}\nwant {len(w)} octets {w[:120]!r}")
        t.equal(fx.listing("alice"), sorted(fx.uidls()),
                f"{mode}: keep left the maildrop as it was")
        rc, got, log = fetchmail(fx, srv.port, "flush", "sslproto ''", keep=False)
        t.check(rc == 0 and len(got) == len(MESSAGES), f"{mode}: fetchmail fetch+delete", log)
        t.equal(fx.listing("alice"), [], f"{mode}: fetchmail's DELEs + QUIT emptied the maildrop")


def main():
    need_binaries()
    t = Reporter("fetchmail" if FORMAT == "maildir" else f"fetchmail-{FORMAT}")
    if not shutil.which("fetchmail"):
        t.skip("fetchmail", "fetchmail not installed")
    else:
        for mode in ("inetd", "accept"):
            t.run(run, mode)
    t.done()


if __name__ == "__main__":
    main()

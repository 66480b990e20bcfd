#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""fetchmail retrieves every message into an MDA (bytes compared), then fetches and deletes."""

import os
import shutil
import subprocess

from mpopdtest import FORMAT, MESSAGES, WAIT, Fixture, PASSWORD, Reporter, Server, lf, need_binaries


def fetch(fx, port, keep, tag):
    out = os.path.join(fx.dir, "fetched-" + tag)
    os.mkdir(out)
    rc = os.path.join(fx.dir, "fetchmailrc-" + tag)
    with open(rc, "w") as f:
        f.write("set no bouncemail\nset no syslog\n")
        f.write(f'poll 127.0.0.1 with proto POP3 service {port} auth password\n')
        f.write(f'  user "alice" there with password "{PASSWORD}" is "alice" here\n')
        # sslproto '': no opportunistic STARTTLS (plain POP3 on 127.0.0.1 here).
        f.write(f"  options {'keep' if keep else 'no keep'} fetchall no rewrite sslproto ''\n")
        # $$ is the pid of each MDA shell: one file per message.
        f.write(f"  mda \"/bin/sh -c 'cat > {out}/msg.$$'\"\n")
    os.chmod(rc, 0o600)
    env = dict(os.environ, HOME=fx.dir, FETCHMAILHOME=fx.dir)
    r = subprocess.run(["fetchmail", "--nodetach", "--invisible", "-f", rc,
                        "--pidfile", os.path.join(fx.dir, "fetchmail.pid"),
                        "-i", os.path.join(fx.dir, "fetchids")],
                       capture_output=True, timeout=WAIT * 4, env=env)
    got = []
    for n in sorted(os.listdir(out)):
        with open(os.path.join(out, n), "rb") as f:
            got.append(f.read())
    return r.returncode, got, (r.stdout + r.stderr).decode("utf-8", "replace")


def normalise(raw):
    """fetchmail delivers LF line ends and ends a header-only message with an empty line."""
    text = lf(raw)
    return text if b"\n\n" in text else text + b"\n"


def run(t, mode):
    with Fixture() as fx, Server(fx, mode) as srv:
        rc, got, log = fetch(fx, srv.port, True, "keep")
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
        rc, got, log = fetch(fx, srv.port, False, "flush")
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

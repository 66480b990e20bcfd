#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""[auth] pam_session through a running mpopd, as root with privilege separation.

pam_wrapper (LD_PRELOAD) points libpam of the server at a private service directory:
pam_matrix for auth and account, and a session stack with pam_exec, whose script appends
"PAM_TYPE PAM_USER PAM_RHOST" to a record file. The user is nobody (from NSS, as the pam
backend wants), with a Maildir of its own. Checked: open_session once when the login
succeeds and nothing more while the session runs; close_session once after it ended,
as root (the script records its uid), in order; with pam_session off the session stack
never runs; a wrong password opens nothing; in the legacy daemon, stopping the daemon
(SIGTERM to each connection's root process) ends a logged-in session and still closes its
PAM session.
"""

import os
import pwd

from mpopdtest import (MESSAGES, PASSWORD, WAIT, Fixture, Pop, Reporter, Server,
                       need_binaries, wait_for)

USER = "nobody"
RHOST = "127.0.0.1"


class PamSetup:
    """The service directory, the pam_exec script and nobody's Maildir in fx's tree."""

    def __init__(self, fx):
        self.fx = fx
        lib = os.environ.get("PAM_WRAPPER_LIB", "")
        modules = os.environ.get("PAM_WRAPPER_MODULES", "")
        self.lib = lib
        self.matrix = os.path.join(modules, "pam_matrix.so")
        self.exec_mod = os.path.join(os.path.dirname(modules), "security", "pam_exec.so")
        self.ok = all(os.path.exists(p) for p in (lib, self.matrix, self.exec_mod))
        self.dir = os.path.join(fx.dir, "pam.d")
        os.mkdir(self.dir)
        self.passdb = os.path.join(fx.dir, "passdb")
        with open(self.passdb, "w") as f:
            f.write(f"{USER}:{PASSWORD}:mpopd\n")
        self.record = os.path.join(fx.dir, "pam-record")
        script = os.path.join(fx.dir, "record.sh")
        with open(script, "w") as f:
            f.write('#!/bin/sh\necho "$PAM_TYPE $PAM_USER $PAM_RHOST uid=$(id -u)" '
                    f'>> {self.record}\n')
        os.chmod(script, 0o700)
        with open(os.path.join(self.dir, "mpopd"), "w") as f:
            f.write(f"auth required {self.matrix} passdb={self.passdb}\n"
                    f"account required {self.matrix} passdb={self.passdb}\n"
                    f"session required {self.exec_mod} {script}\n")
        pw = pwd.getpwnam(USER)
        md = fx.make_maildir(os.path.join(fx.mail, USER, "Maildir"), MESSAGES)
        for root, dirs, files in os.walk(os.path.dirname(md)):
            os.chown(root, pw.pw_uid, pw.pw_gid)
            for n in files:
                os.chown(os.path.join(root, n), pw.pw_uid, pw.pw_gid)

    def env(self):
        env = dict(os.environ)
        env.update({"LD_PRELOAD": self.lib, "PAM_WRAPPER": "1",
                    "PAM_WRAPPER_SERVICE_DIR": self.dir,
                    # pam_wrapper 1.1.4: no RTLD_DEEPBIND (ASan builds refuse it)
                    "UID_WRAPPER_DISABLE_DEEPBIND": "1"})
        return env

    def lines(self):
        try:
            with open(self.record) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def reset(self):
        if os.path.exists(self.record):
            os.unlink(self.record)


OPEN = f"open_session {USER} {RHOST} uid=0"
CLOSE = f"close_session {USER} {RHOST} uid=0"


def one_session(t, srv, ps, tag):
    """Log in, check the record mid-session, QUIT, wait for the close."""
    ps.reset()
    p = Pop(srv.port)
    r1, r2 = p.login(USER, PASSWORD)
    t.check(r2.startswith(b"+OK"), f"{tag}: {USER} logs in through pam_matrix", (r1, r2))
    stat = p.cmd("STAT")
    t.check(stat.startswith(b"+OK %d " % len(MESSAGES)), f"{tag}: STAT in the session", stat)
    t.equal(ps.lines(), [OPEN], f"{tag}: open_session ran once, as root, before the session; "
            "no close while it runs")
    t.check(p.cmd("QUIT").startswith(b"+OK") and p.closed(), f"{tag}: QUIT ends the session")
    p.close()
    wait_for(lambda: len(ps.lines()) >= 2, timeout=WAIT)
    t.equal(ps.lines(), [OPEN, CLOSE], f"{tag}: close_session once, as root, after the session")


def maps_libpam(pid):
    """Whether pid has libpam itself (not pam_wrapper's preload) in its address space."""
    with open(f"/proc/{pid}/maps") as f:
        return any(os.path.basename(line.split()[-1]).startswith("libpam.so")
                   for line in f if "/" in line)


def scenario(t, fx, ps):
    env = ps.env()
    fx.write_config({"auth.default": "pam", "auth.pam_session": "true"})
    with Server(fx, "inetd", env=env) as srv:
        one_session(t, srv, ps, "inetd")
        ps.reset()
        p = Pop(srv.port)
        r1, r2 = p.login(USER, "Wr0ng-" + PASSWORD)
        t.check(r2.startswith(b"-ERR [AUTH]"), "a wrong password: -ERR [AUTH]", r2)
        p.close()
        t.equal(ps.lines(), [], "... and no session stack ran for it")

    fx.write_config({"auth.default": "pam", "auth.pam_session": "false"})
    with Server(fx, "inetd", env=env) as srv:
        ps.reset()
        p = Pop(srv.port)
        r1, r2 = p.login(USER, PASSWORD)
        t.check(r2.startswith(b"+OK") and p.cmd("QUIT").startswith(b"+OK"),
                "pam_session = false: the login works", r2)
        p.closed()
        p.close()
        t.equal(ps.lines(), [], "pam_session = false: the session stack never runs")

    # Server("daemon") rewrites the configuration with its listen address alone: keep ours
    mine = {"auth.default": "pam", "auth.pam_session": "true"}
    fx.write_config = lambda extra: Fixture.write_config(fx, {**mine, **extra})
    srv = Server(fx, "daemon", env=env)
    srv.start()
    try:
        t.check(maps_libpam(srv.proc.pid), "daemon: libpam loaded at start for the pam backend")
        one_session(t, srv, ps, "daemon")
        ps.reset()
        p = Pop(srv.port)
        r1, r2 = p.login(USER, PASSWORD)
        t.check(r2.startswith(b"+OK"), "daemon: a second session logs in", r2)
        wait_for(lambda: ps.lines() == [OPEN], timeout=WAIT)
        srv.stop()  # SIGTERM to the daemon, which ends each session's root process
        t.check(p.closed(), "daemon stopped: the logged-in session ends")
        p.close()
        wait_for(lambda: len(ps.lines()) >= 2, timeout=WAIT)
        t.equal(ps.lines(), [OPEN, CLOSE],
                "daemon stopped mid-session: its PAM session is still closed")
    finally:
        srv.stop()
    text = fx.stderr_text()
    t.check(PASSWORD not in text, "no password in the server's log")

    # No chain names pam: libpam is never loaded (auth-pam.c loads it on demand).
    fx.write_config = lambda extra: Fixture.write_config(fx, extra)
    srv = Server(fx, "daemon")
    srv.start()
    try:
        t.check(not maps_libpam(srv.proc.pid), "daemon without the pam backend: no libpam")
    finally:
        srv.stop()


def main():
    need_binaries()
    t = Reporter("pam-session")
    if os.geteuid() != 0:
        t.skip("pam_session through mpopd", "needs root (privilege separation, PAM sessions)")
        t.done()
    fx = Fixture()
    try:
        ps = PamSetup(fx)
        if not ps.ok:
            t.check(False, "pam_wrapper, pam_matrix and pam_exec installed "
                    "(Debian: libpam-wrapper, libpam-modules)")
        else:
            t.run(scenario, fx, ps)
    finally:
        fx.cleanup()
    t.done()


if __name__ == "__main__":
    main()

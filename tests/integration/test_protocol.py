#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Protocol behaviour through the real binary: long lines, UPDATE semantics, locking, auth
errors, password hygiene in the log, pipelining, strict arguments, legacy daemon pid file.
Run once per MPOPD_TEST_FORMAT (maildir, mbox)."""

import os
import signal
import socket
import subprocess
import time

from mpopdtest import (FORMAT, MESSAGES, MPOPD, WAIT, Fixture, PASSWORD, Pop, Reporter, Server,
                       free_port, need_binaries, run_inetd, wait_for)
WRONG = "Wr0ng-Passw0rd-xyzzy"


def reply_lines(out):
    return out.split(b"\r\n")[:-1] if out.endswith(b"\r\n") else out.split(b"\r\n")


def overlong_line(t, fx):
    # The acceptance item: printf 'USER a\r\nPASS b\r\n%0300d\r\nQUIT\r\n' 0 | mpopd --inetd
    data = b"USER a\r\nPASS b\r\n" + b"0" * 300 + b"\r\nQUIT\r\n"
    rc, out, err = run_inetd(fx, data)
    lines = reply_lines(out)
    t.check(len(lines) == 5, "overlong: exactly five replies (greeting USER PASS long QUIT)",
            f"rc {rc}\n{out!r}\n{err}")
    if len(lines) == 5:
        t.check(lines[0].startswith(b"+OK"), "overlong: greeting")
        t.check(lines[2].startswith(b"-ERR [AUTH]"), "overlong: PASS b gets -ERR [AUTH]", lines[2])
        t.check(lines[3].startswith(b"-ERR"), "overlong: one -ERR for the 300-octet line", lines[3])
        t.check(lines[4].startswith(b"+OK"), "overlong: QUIT still answered in sync", lines[4])
    t.check(b"0" * 40 not in out, "overlong: the long line is not echoed", out)
    t.equal(rc, 0, "overlong: exit status 0 after QUIT")


def pipe_capa(t, fx):
    rc, out, err = run_inetd(fx, b"CAPA\r\nQUIT\r\n")
    lines = reply_lines(out)
    t.check(rc == 0 and lines[0].startswith(b"+OK") and lines[1].startswith(b"+OK")
            and lines[-1].startswith(b"+OK") and b"." in lines, "inetd on a pipe: CAPA + QUIT",
            f"rc {rc} {out!r} {err}")
    caps = {l.split(b" ")[0] for l in lines[2:-2]}
    for cap in (b"TOP", b"UIDL", b"USER", b"RESP-CODES", b"AUTH-RESP-CODE", b"PIPELINING"):
        t.check(cap in caps, f"CAPA lists {cap.decode()}", lines)


def dele_quit(t, fx, srv):
    p = Pop(srv.port)
    r1, r2 = p.login()
    t.check(r2.startswith(b"+OK"), "dele: login", r2)
    t.check(p.cmd("DELE 2").startswith(b"+OK"), "dele: DELE 2")
    t.check(p.cmd("DELE 5").startswith(b"+OK"), "dele: DELE 5")
    t.check(p.cmd("DELE 5").startswith(b"-ERR"), "dele: DELE 5 again is -ERR")
    t.check(p.cmd("RETR 2").startswith(b"-ERR"), "dele: RETR of a deleted message is -ERR")
    t.check(p.cmd("QUIT").startswith(b"+OK"), "dele: QUIT")
    t.check(p.closed(), "dele: connection closed after QUIT")
    p.close()
    want = sorted(u for i, u in enumerate(fx.uidls(), 1) if i not in (2, 5))
    t.equal(fx.listing(), want, "dele: QUIT removed exactly messages 2 and 5")


def login_retry(port, user="alice"):
    """Log in, retrying while the previous session still holds the lock (bounded)."""
    end = time.monotonic() + WAIT
    while True:
        p = Pop(port)
        _, r2 = p.login(user)
        if not r2.startswith(b"-ERR [IN-USE]") or time.monotonic() > end:
            return p, r2
        p.close()
        time.sleep(0.2)


def dele_drop(t, fx, srv):
    p = Pop(srv.port)
    p.login()
    t.check(p.cmd("DELE 1").startswith(b"+OK"), "drop: DELE 1")
    t.check(p.cmd("DELE 3").startswith(b"+OK"), "drop: DELE 3")
    p.sock.shutdown(socket.SHUT_RDWR)
    p.close()
    p, r2 = login_retry(srv.port)
    t.check(r2.startswith(b"+OK"), "drop: next login after the drop succeeds", r2)
    t.check(p.cmd("STAT").startswith(b"+OK %d " % len(MESSAGES)), "drop: STAT still counts all")
    p.cmd("QUIT")
    p.close()
    t.equal(fx.listing(), sorted(fx.uidls()), "drop: a dropped connection removed nothing")


def rset_and_auth_quit(t, fx, srv):
    p = Pop(srv.port)
    p.login()
    p.cmd("DELE 1")
    t.check(p.cmd("RSET").startswith(b"+OK"), "rset: RSET")
    t.check(p.cmd("QUIT").startswith(b"+OK"), "rset: QUIT")
    p.close()
    p = Pop(srv.port)
    p.cmd("USER alice")
    t.check(p.cmd("QUIT").startswith(b"+OK"), "auth-quit: QUIT in AUTHORIZATION")
    p.close()
    wait_for(lambda: False, 0.3)
    t.equal(fx.listing(), sorted(fx.uidls()), "rset: RSET + QUIT removed nothing")


def in_use(t, fx, srv):
    a = Pop(srv.port)
    _, ra = a.login("bob")
    t.check(ra.startswith(b"+OK"), "in-use: first login", ra)
    b = Pop(srv.port)
    _, rb = b.login("bob")
    t.check(rb.startswith(b"-ERR [IN-USE]"), "in-use: second login gets -ERR [IN-USE]", rb)
    b.close()
    a.cmd("QUIT")
    a.close()
    c, rc = login_retry(srv.port, "bob")
    t.check(rc.startswith(b"+OK"), "in-use: lock released after QUIT", rc)
    c.cmd("QUIT")
    c.close()


RELOGIN_ROUNDS = 25


def relogin_after_quit(t, fx, srv, tag):
    """A client that logs in again the moment it reads QUIT's +OK (a fetcher polling, a
    second device) finds the maildrop free: the session lets go of its lock before it
    answers, not when its process ends. No retry here, each login must get in at once."""
    refused = []
    for i in range(RELOGIN_ROUNDS):
        p = Pop(srv.port)
        _, r = p.login("bob")
        if not r.startswith(b"+OK"):
            refused.append((i, r))
            p.close()
            continue
        p.cmd("NOOP")
        q = p.cmd("QUIT")
        p.close()
        if not q.startswith(b"+OK"):
            refused.append((i, q))
    t.equal(refused, [], f"relogin {tag}: {RELOGIN_ROUNDS} logins, each right after the "
            "previous QUIT's +OK, none [IN-USE]")


def lock_released_before_goodbye(t, fx, tag):
    """The same as relogin_after_quit, without depending on timing: under strace, the
    session process lets go of the maildrop's lock (Maildir: closes the directory it holds
    flock() on; mbox: removes its dotlock) before it writes QUIT's +OK."""
    prefix = os.path.join(fx.dir, "strace")
    data = f"USER bob\r\nPASS {PASSWORD}\r\nSTAT\r\nQUIT\r\n".encode()
    # -ff: a file per process, so no call is split into "unfinished" and "resumed" lines
    r = subprocess.run(["strace", "-ff", "-qq", "-s", "4096", "-o", prefix, "-e",
                        "trace=flock,close,link,linkat,unlink,unlinkat,write", MPOPD,
                        "--inetd", "-c", fx.conf], input=data, capture_output=True,
                       timeout=WAIT)
    t.check(b"+OK mpopd signing off" in r.stdout, f"goodbye {tag}: QUIT answered", r.stdout)
    traces = []
    for name in sorted(f for f in os.listdir(fx.dir) if f.startswith("strace.")):
        with open(os.path.join(fx.dir, name)) as f:
            traces.append(f.read().splitlines())
    calls = next((c for c in traces if any("signing off" in ln for ln in c)), [])
    bye = next((i for i, c in enumerate(calls) if "signing off" in c), None)
    t.check(bye is not None, f"goodbye {tag}: the trace shows +OK signing off written",
            [len(c) for c in traces])
    if bye is None:
        return
    take = release = None
    for i, c in enumerate(calls):  # the session process's calls, in order
        if not c.endswith("= 0"):
            continue
        if take is None:
            if FORMAT == "maildir" and c.startswith("flock(") and "LOCK_EX" in c:
                take, fd = i, c[len("flock("):c.index(",")]
            elif FORMAT == "mbox" and c.startswith("link") and '.lock"' in c:
                take, fd = i, None
        elif release is None:
            if (fd is not None and c.startswith(f"close({fd})")) or \
                    (fd is None and c.startswith("unlink") and '.lock"' in c):
                release = i
    context = calls[take or 0:bye + 1]
    t.check(take is not None and take < bye, f"goodbye {tag}: the session locked the maildrop",
            context)
    t.check(release is not None and release < bye, f"goodbye {tag}: the lock is released "
            "before QUIT's +OK is written", context)


def snapshot_concurrent(t, fx, srv):
    """mbox snapshot mode with flock among mbox_locks: the session cannot hold flock() for
    itself (delivery agents would wait for it), so a second session is let in instead of
    RFC 1939 §8's [IN-USE]; what must hold is that neither can lose mail: the one that
    finds the mailbox rewritten by the other gets -ERR [SYS/TEMP] and deletes nothing."""
    a, ra = login_retry(srv.port, "bob")
    b, rb = login_retry(srv.port, "bob")
    t.check(ra.startswith(b"+OK") and rb.startswith(b"+OK"),
            "snapshot: two sessions on one mbox (no session lock in snapshot mode)", (ra, rb))
    t.check(a.cmd("DELE 1").startswith(b"+OK") and a.cmd("QUIT").startswith(b"+OK"),
            "snapshot: the first session deletes message 1")
    a.closed()
    a.close()
    r = b.cmd("RETR 2")
    t.check(r.startswith(b"-ERR [SYS/TEMP]"), "snapshot: the other session sees the rewrite", r)
    b.cmd("DELE 3")
    r = b.cmd("QUIT")
    t.check(r.startswith(b"-ERR [SYS/TEMP]"), "snapshot: its QUIT says nothing was removed", r)
    b.close()
    t.equal(fx.listing("bob"), sorted(fx.uidls("bob")[1:]),
            "snapshot: only the first session's DELE took effect")


def auth_errors(t, fx, srv):
    p = Pop(srv.port)
    _, wrong = p.login("alice", WRONG)
    p.close()
    p = Pop(srv.port)
    _, unknown = p.login("nosuchuser", WRONG)
    p.close()
    t.check(wrong.startswith(b"-ERR [AUTH]"), "auth: wrong password gets -ERR [AUTH]", wrong)
    t.equal(unknown, wrong, "auth: unknown user gets the identical text")
    p = Pop(srv.port)
    p.cmd("USER alice")
    r = p.cmd("PASS " + WRONG)
    t.check(r.startswith(b"-ERR"), "auth: failed PASS", r)
    r = p.cmd("USER alice")
    r = p.cmd("PASS " + PASSWORD)
    t.check(r.startswith(b"+OK"), "auth: a retry after a failure works in the same connection", r)
    p.cmd("QUIT")
    p.close()


def pipelining(t, fx, srv):
    p = Pop(srv.port)
    p.send(f"USER alice\r\nPASS {PASSWORD}\r\nSTAT\r\nLIST 1\r\nNOOP\r\nUIDL 2\r\nQUIT\r\n".encode())
    lines = [p.line() for _ in range(6)]
    t.check(lines[0].startswith(b"+OK") and lines[1].startswith(b"+OK"),
            "pipelining: USER PASS in one packet", lines)
    t.check(lines[2].startswith(b"+OK %d " % len(MESSAGES)), "pipelining: STAT after the hop", lines)
    t.check(lines[3].startswith(b"+OK 1 "), "pipelining: LIST 1", lines)
    t.check(lines[4].startswith(b"+OK"), "pipelining: NOOP", lines)
    t.check(lines[5] == b"+OK 2 " + fx.uidls()[1].encode(), "pipelining: UIDL 2", lines)
    t.check(p.line().startswith(b"+OK"), "pipelining: QUIT")
    p.close()


def strict_args(t, fx, srv):
    p = Pop(srv.port)
    p.login()
    # (a trailing blank is tolerated by design: some clients send one)
    for arg in ("0", "-1", "+1", " 1", "1  2", "1 2", "4294967297", "99", "x", "1x", ""):
        r = p.cmd("RETR " + arg if arg else "RETR")
        t.check(r.startswith(b"-ERR"), f"strict: RETR {arg!r} is -ERR", r)
    r = p.cmd("LIST 1")
    t.check(r.startswith(b"+OK 1 "), "strict: still in sync after the bad ones", r)
    r = p.cmd("NUL\x00CMD")
    t.check(r.startswith(b"-ERR"), "strict: a line with NUL is -ERR", r)
    t.check(b"\x00" not in r, "strict: the NUL is not echoed", r)
    p.send(b"NOOP\n")
    t.check(p.line().startswith(b"+OK"), "strict: bare LF accepted")
    p.cmd("QUIT")
    p.close()


def new_during_session(t, fx, srv):
    p = Pop(srv.port)
    p.login()
    late = fx.deliver(b"Subject: late\nMessage-ID: <late.9@fixture.example.org>\n\nlate\n")
    t.check(p.cmd("STAT").startswith(b"+OK %d " % len(MESSAGES)),
            "late: a message delivered during the session is not shown")
    p.cmd("DELE 1")
    t.check(p.cmd("QUIT").startswith(b"+OK"), "late: QUIT")
    p.close()
    t.check(late in fx.listing(), "late: QUIT did not touch the late message")
    t.equal(fx.listing(), sorted(fx.uidls()[1:] + [late]), "late: only message 1 gone")


def password_not_logged(t, fx):
    # the inetd run above logged at debug level into fx.stderr_path
    text = fx.stderr_text()
    t.check(len(text) > 0, "log: the server wrote a log to stderr")
    t.check(PASSWORD not in text, "log: the right password is never logged")
    t.check(WRONG not in text, "log: a wrong password is never logged")
    rc, out, err = run_inetd(fx, f"USER alice\r\nPASS {WRONG}\r\nUSER alice\r\nPASS {PASSWORD}"
                                 f"\r\nQUIT\r\n".encode())
    t.check(PASSWORD not in err and WRONG not in err, "log: no password on --inetd stderr",
            err[-1000:])
    for word in ("login", "login-failed", "logout"):
        t.check(word in err or word in text, f"log: an event '{word}' is logged", err[-1000:])


def bad_commands(t):
    with Fixture({"server.max_bad_commands": "3"}) as fx:
        rc, out, err = run_inetd(fx, b"BOGUS\r\n" * 10 + b"QUIT\r\n")
        lines = reply_lines(out)
        t.check(all(l.startswith(b"-ERR") for l in lines[1:]) and 2 <= len(lines) - 1 <= 5,
                "bad: the server closes after max_bad_commands", f"{lines} {err}")


def check_config(t):
    with Fixture() as fx:
        r = subprocess.run([MPOPD, "--check-config", "-c", fx.conf], capture_output=True,
                           timeout=WAIT)
        t.check(r.returncode == 0 and b"[server]" in r.stdout, "check-config: valid config",
                r.stderr)
        with open(fx.conf, "a") as f:
            f.write("[server]\nno_such_key=1\n")
        r = subprocess.run([MPOPD, "--check-config", "-c", fx.conf], capture_output=True,
                           timeout=WAIT)
        e = r.stderr.decode("utf-8", "replace")
        t.check(r.returncode != 0 and "no_such_key" in e and fx.conf in e,
                "check-config: unknown key names file and key", e)


def daemon_pid_file(t):
    with Fixture() as fx:
        pidf = os.path.join(fx.dir, "mpopd.pid")
        port = free_port()
        fx.write_config({"server.listen": f"127.0.0.1:{port}", "server.pid_file": pidf})
        # Not a pipe: the background daemon may keep stderr open, which would block run().
        with open(fx.stderr_path, "ab") as errf:
            r = subprocess.run([MPOPD, "-c", fx.conf], stdin=subprocess.DEVNULL,
                               stdout=errf, stderr=errf, timeout=WAIT)
        t.check(r.returncode == 0, "daemon: forks to the background, parent exits 0",
                fx.stderr_text())
        t.check(wait_for(lambda: os.path.exists(pidf) and os.path.getsize(pidf) > 0),
                "daemon: pid file written")
        try:
            with open(pidf) as f:
                parts = f.read().split("\n")
            pid = int(parts[0])
            t.equal(parts[1], str(port), "daemon: pid file has the port on line 2")
            p = Pop(port)
            t.check(p.greeting.startswith(b"+OK"), "daemon: greets")
            _, r2 = p.login()
            t.check(r2.startswith(b"+OK"), "daemon: login")
            p.cmd("QUIT")
            p.close()
            os.kill(pid, signal.SIGTERM)
            t.check(wait_for(lambda: not os.path.exists(f"/proc/{pid}")
                             or open(f"/proc/{pid}/stat").read().split()[2] == "Z"),
                    "daemon: SIGTERM stops it")
        except (OSError, ValueError, IndexError) as e:
            t.check(False, "daemon: pid file readable", e)


def main():
    need_binaries()
    t = Reporter("protocol" if FORMAT == "maildir" else f"protocol-{FORMAT}")
    # mbox snapshot and spool modes hold flock() on the mbox for the session: [IN-USE] too
    exclusive = in_use
    # strict_args sends more bad commands than the default limit of 10
    with Fixture({"server.max_bad_commands": "50"}) as fx:
        t.run(overlong_line, fx)
        t.run(pipe_capa, fx)
        with Server(fx, "inetd") as srv:
            for f in (auth_errors, pipelining, strict_args, exclusive, rset_and_auth_quit,
                      dele_drop, dele_quit):
                t.run(f, fx, srv)
        t.run(password_not_logged, fx)
    with Fixture() as fx, Server(fx, "accept") as srv:
        t.run(new_during_session, fx, srv)
        t.run(exclusive, fx, srv)
        t.run(relogin_after_quit, fx, srv, "accept")
        if FORMAT == "maildir":
            t.run(lock_released_before_goodbye, fx, "maildir")
    for mode, extra in (("inetd", {}), ("daemon", {}), ("daemon", {"server.login_reuse": "8"})):
        with Fixture(extra) as fx, Server(fx, mode) as srv:
            t.run(relogin_after_quit, fx, srv, mode + (" login_reuse" if extra else ""))
    if FORMAT == "mbox":
        # session-lock mode holds the delivery agents' locks: [IN-USE] as for a maildir
        with Fixture({"mailbox.mbox_mode": "session-lock"}) as fx, Server(fx, "inetd") as srv:
            t.run(in_use, fx, srv)
            t.run(relogin_after_quit, fx, srv, "session-lock")
            t.run(lock_released_before_goodbye, fx, "session-lock")
        with Fixture({"mailbox.mbox_mode": "spool", "mailbox.spool_dir": "/tmp"}) as fx, \
                Server(fx, "inetd") as srv:
            t.run(in_use, fx, srv)
        with Fixture({"mailbox.mbox_locks": "dotlock;fcntl;flock"}) as fx, \
                Server(fx, "inetd") as srv:
            t.run(snapshot_concurrent, fx, srv)
    t.run(bad_commands)
    t.run(check_config)
    t.run(daemon_pid_file)
    t.done()


if __name__ == "__main__":
    main()

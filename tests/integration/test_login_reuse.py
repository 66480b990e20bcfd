#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""[server] login_reuse in the daemon: a pre-login process serves that many connections, one
after the other, instead of one forked per connection. Checked: logins (plaintext, a wrong
password then the right one, STLS with the TLS 1.3 hand-over and the TLS 1.2 relay, implicit
TLS) all work and are served by few pre-login processes; each serves at most login_reuse
connections; connections that end before a login, and one the host rules refuse, leave no
busy process behind; a killed pre-login process is replaced; a reload retires the idle ones;
the daemon's stop leaves none; login_reuse = 1 keeps none between connections; the password
never reaches the log."""

import os
import pwd
import signal
import ssl
import subprocess

from mpopdtest import PASSWORD, WAIT, Pop, Reporter, Server, need_binaries, wait_for
from tlsutil import Pki, TlsFixture, TlsPop, TlsServer, client_context

REUSE = 3


def login_uid():
    return pwd.getpwnam("mpopd-login").pw_uid


def prelogin_processes(daemon_pid):
    """The daemon's children running as the login user: its reusable pre-login processes
    (a per-connection one is the child of a connection process, not of the daemon)."""
    out = []
    uid = login_uid()
    for d in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
            with open(f"/proc/{d}/status") as f:
                ruid = next(int(l.split()[1]) for l in f if l.startswith("Uid:"))
        except (OSError, StopIteration):
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if ppid == daemon_pid and ruid == uid:
            out.append(int(d))
    return sorted(out)


def busy(pids):
    """Those of pids that hold a connection: an idle pre-login process has one socket, its
    control socket; one serving a connection also has the client's and its channels."""
    out = []
    for pid in pids:
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        if sum(link.startswith("socket:") for link in links) > 1:
            out.append(pid)
    return out


def one_login(t, port, tag, password=PASSWORD, daemon=None, seen=None):
    """A login, STAT, QUIT. With daemon and seen: the daemon's pre-login processes while
    this connection is in pre-login (the one serving it among them) are added to seen."""
    p = Pop(port)
    try:
        if seen is not None:
            seen.update(prelogin_processes(daemon))
        r1, r2 = p.login("alice", password)
        ok = r2.startswith(b"+OK")
        if ok:
            ok = p.cmd("STAT").startswith(b"+OK") and p.cmd("QUIT").startswith(b"+OK")
            p.closed()
        t.check(ok, f"{tag}: logged in, STAT, QUIT", (p.greeting, r1, r2))
    finally:
        p.close()


def plaintext(t):
    with TlsFixture(None, {"server.login_reuse": str(REUSE)}, cert=None) as fx, \
            Server(fx, "daemon") as srv:
        seen = set()
        for i in range(2 * REUSE + 1):
            one_login(t, srv.port, f"login {i + 1}", daemon=srv.proc.pid, seen=seen)
        t.equal(len(seen), 3, f"{2 * REUSE + 1} logins one after the other, login_reuse = "
                f"{REUSE}: served by 3 pre-login processes, each retired after its third")
        t.check(wait_for(lambda: len(prelogin_processes(srv.proc.pid)) == 1),
                "the one that served the last login waits for the next",
                prelogin_processes(srv.proc.pid))

        # a wrong password, then the right one, in one connection
        p = Pop(srv.port)
        _, r = p.login("alice", "wrong-" + PASSWORD)
        t.check(r.startswith(b"-ERR"), "a wrong password: -ERR", r)
        _, r = p.login("alice", PASSWORD)
        t.check(r.startswith(b"+OK"), "then the right one in the same connection: +OK", r)
        t.check(p.cmd("QUIT").startswith(b"+OK"), "QUIT")
        p.close()

        # connections that end before a login, some after USER: each is served to its end
        # and counts; none leaves a process behind
        for i in range(10):
            p = Pop(srv.port)
            if i % 2:
                p.cmd("USER alice")
            p.close()
        t.check(wait_for(lambda: not busy(prelogin_processes(srv.proc.pid))),
                "10 connections closed before a login: no pre-login process still holds one",
                prelogin_processes(srv.proc.pid))
        t.check(len(prelogin_processes(srv.proc.pid)) <= 3,
                "... and the pool did not grow", prelogin_processes(srv.proc.pid))
        one_login(t, srv.port, "after the aborted connections")

        # several at once: each its own pre-login process, then back to the pool
        conns = [Pop(srv.port) for _ in range(4)]
        t.check(all(c.greeting.startswith(b"+OK") for c in conns), "4 connections at once")
        serving = busy(prelogin_processes(srv.proc.pid))
        t.check(len(serving) == 4, "4 connections in pre-login: 4 pre-login processes serve "
                "them", serving)
        for i, c in enumerate(conns):
            _, r = c.login()
            t.check(r.startswith(b"+OK") and c.cmd("QUIT").startswith(b"+OK"),
                    f"concurrent login {i + 1}", r)
            c.close()

        # a killed pre-login process is replaced
        idle = prelogin_processes(srv.proc.pid)
        for pid in idle:
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not set(idle) & set(prelogin_processes(srv.proc.pid)))
        one_login(t, srv.port, "after the idle pre-login processes were killed")

        # a reload retires the idle ones: the next connection gets a fresh one
        before = set(prelogin_processes(srv.proc.pid))
        since = len(fx.stderr_text())
        os.kill(srv.proc.pid, signal.SIGUSR1)
        t.check(wait_for(lambda: "event=reload " in fx.stderr_text()[since:]), "reload")
        t.check(wait_for(lambda: not before & set(prelogin_processes(srv.proc.pid))),
                "the reload retired the idle pre-login processes",
                (before, prelogin_processes(srv.proc.pid)))
        one_login(t, srv.port, "after the reload")
        text = fx.stderr_text()
        t.check(PASSWORD not in text, "no password in the log")
        t.check("prelogin-died" not in text, "no pre-login process died unexpectedly",
                text[-2000:])
        # the daemon stops while a client sits in pre-login: it does not wait for that
        # client (login_timeout is 60 s here)
        waiting = Pop(srv.port)
        t.check(waiting.greeting.startswith(b"+OK"), "a client in pre-login")
        pool = prelogin_processes(srv.proc.pid)
        os.kill(srv.proc.pid, signal.SIGTERM)
        try:
            srv.proc.wait(timeout=10)
            stopped = True
        except subprocess.TimeoutExpired:
            stopped = False
        t.check(stopped, "SIGTERM: the daemon ends at once, a client in pre-login or not")
        waiting.close()
    t.check(wait_for(lambda: not any(os.path.exists(f"/proc/{p}") for p in pool)),
            "the daemon stopped: no pre-login process left", pool)

    with TlsFixture(None, cert=None) as fx, Server(fx, "daemon") as srv:
        one_login(t, srv.port, "login_reuse = 1")
        t.check(wait_for(lambda: prelogin_processes(srv.proc.pid) == []),
                "login_reuse = 1: no pre-login process kept between connections",
                prelogin_processes(srv.proc.pid))


def refused(t):
    """The host rules refuse a connection in the connection process, before any pre-login
    process is involved: the one the daemon set aside for it is told and stays usable."""
    with TlsFixture(None, {"server.login_reuse": str(REUSE)}, cert=None) as fx:
        rules = os.path.join(fx.dir, "hosts")
        with open(rules, "w") as f:
            f.write("DENY 127.0.0.2\n")
        fx.write_config({"access.hosts_allow_deny": rules})
        with Server(fx, "daemon") as srv:
            for _ in range(3):
                p = Pop(srv.port, source="127.0.0.2")
                t.check(p.greeting.startswith(b"-ERR"), "a refused address gets -ERR",
                        p.greeting)
                p.close()
            one_login(t, srv.port, "after three refused connections")
            t.check(wait_for(lambda: not busy(prelogin_processes(srv.proc.pid))),
                    "refused connections leave no busy pre-login process",
                    prelogin_processes(srv.proc.pid))


def tls(t, pki):
    for name, version in (("TLS 1.3 (hand-over)", ssl.TLSVersion.TLSv1_3),
                          ("TLS 1.2 (relay)", ssl.TLSVersion.TLSv1_2)):
        with TlsFixture(pki, {"server.login_reuse": str(REUSE),
                              "auth.plaintext_auth": "always"}) as fx, \
                TlsServer(fx, "daemon", tls=True) as srv:
            ctx = client_context(pki, max_version=version)
            for i in range(REUSE):
                for implicit in (False, True):
                    tag = f"{name}, {'implicit' if implicit else 'STLS'}, {i + 1}"
                    port = srv.tls_port if implicit else srv.port
                    p = TlsPop(port, ctx, implicit=implicit)
                    try:
                        if not implicit:
                            t.check(p.stls().startswith(b"+OK"), f"{tag}: STLS")
                        _, r = p.login()
                        t.check(r.startswith(b"+OK"), f"{tag}: login", r)
                        r = p.cmd("RETR 1")
                        body = p.multi()
                        t.check(r.startswith(b"+OK") and len(body) > 0, f"{tag}: RETR 1", r)
                        t.check(p.cmd("QUIT").startswith(b"+OK"), f"{tag}: QUIT")
                    finally:
                        p.close()
            # then plaintext logins on the same pool
            one_login(t, srv.port, f"{name}: a plaintext login after the TLS ones")
            t.check(wait_for(lambda: 1 <= len(prelogin_processes(srv.proc.pid)) <= 2),
                    f"{name}: the pool kept its processes",
                    prelogin_processes(srv.proc.pid))
            text = fx.stderr_text()
            t.check(PASSWORD not in text and "prelogin-died" not in text,
                    f"{name}: no password in the log, no pre-login process died", text[-1500:])


def main():
    need_binaries()
    t = Reporter("login-reuse")
    if os.geteuid() != 0:
        t.skip("login_reuse", "needs root (privilege separation)")
        t.done()
    t.run(plaintext)
    t.run(refused)
    with Pki() as pki:
        t.run(tls, pki)
    t.done()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The login path under attack: no password (nor its base64 or hex) in the log at any level,
whatever way it was sent; login_timeout closes a connection that trickles bytes without
logging in, and leaves a logged-in session alone; repeated CAPA before login counts toward
the bad-command limit; records of a session that never logs in reach the log with the
pre-login process chrooted into an empty directory."""

import base64
import os
import socket
import ssl
import threading
import time

from mpopdtest import (PASSWORD, TEST_GID, TEST_UID, WAIT, Reporter, crlf, need_binaries,
                       wait_for)
from tlsutil import (Pki, Ports, TlsFixture, TlsPop, client_context, client_hello, events,
                     peer_records, sasl_plain)

WRONG = "Wr0ng-Passw0rd-xyzzy"
LOGIN_TIMEOUT = 5  # the smallest [server] login_timeout the configuration accepts


def connect(ports, ctx, how):
    if how == "implicit":
        return TlsPop(ports.tls_port, ctx)
    p = TlsPop(ports.port, ctx, implicit=False)
    if how == "stls":
        r = p.stls()
        if not r.startswith(b"+OK"):
            raise AssertionError(f"STLS: {r!r}")
    return p


# ---------------------------------------------------------------- password hygiene


def secrets():
    """Every form of the two passwords a log line must never contain."""
    out = {}
    for pw in (PASSWORD, WRONG):
        b = pw.encode()
        out[f"{pw}"] = pw
        out[f"base64({pw})"] = base64.b64encode(b).decode()
        out[f"base64({pw}) unpadded"] = base64.b64encode(b).decode().rstrip("=")
        out[f"hex({pw})"] = b.hex()
        out[f"HEX({pw})"] = b.hex().upper()
        for user in ("alice", "bob"):
            for authz in ("", user):
                out[f"SASL {authz!r}/{user}/{pw}"] = sasl_plain(user, pw, authz)
        # the password alone as a base64 piece in every alignment inside a longer message
        for pad in (b"\0", b"\0\0"):
            enc = base64.b64encode(pad + b).decode()
            out[f"base64 tail of {pw} ({len(pad)})"] = enc[4:].rstrip("=")
    return out


def login_ways(p, password, way):
    """Log in one way; returns the reply to the step that carries the password."""
    if way == "USER/PASS":
        p.cmd("USER alice")
        return p.cmd(f"PASS {password}")
    if way == "AUTH PLAIN initial":
        return p.cmd("AUTH PLAIN " + sasl_plain("alice", password))
    if way == "AUTH PLAIN continuation":
        r = p.cmd("AUTH PLAIN")
        if r != b"+ ":
            return b"no continuation: " + r
        return p.cmd(sasl_plain("alice", password))
    if way == "AUTH PLAIN continuation authzid":
        r = p.cmd("AUTH PLAIN")
        if r != b"+ ":
            return b"no continuation: " + r
        return p.cmd(sasl_plain("alice", password, authz="alice"))
    raise ValueError(way)


WAYS = ("USER/PASS", "AUTH PLAIN initial", "AUTH PLAIN continuation",
        "AUTH PLAIN continuation authzid")


def hygiene(t, pki, mode, level, users=None):
    tag = f"{mode} level={level}" + (f" users={users}" if users else "")
    extra = {"log.level": level, "auth.plaintext_auth": "always"}
    if users:
        extra["log.users"] = users
    ctx = client_context(pki)
    with TlsFixture(pki, extra) as fx, Ports(fx, mode) as ports:
        sessions = 0
        for how in ("plain", "stls", "implicit"):
            for way in WAYS:
                for pw, good in ((WRONG, False), (PASSWORD, True)):
                    p = connect(ports, ctx, how)
                    r = login_ways(p, pw, way)
                    ok = r.startswith(b"+OK") if good else r.startswith(b"-ERR [AUTH]")
                    t.check(ok, f"{tag}: {how} {way} {'right' if good else 'wrong'} password", r)
                    if good:
                        t.check(p.cmd("STAT").startswith(b"+OK"), f"{tag}: {how} {way}: STAT")
                    p.cmd("QUIT")
                    p.closed()
                    p.close()
                    sessions += 1
        # every session ended: the server wrote what it will write about them (connect and
        # logout are info records: at notice only the failed logins show)
        if level in ("debug", "info"):
            wait_for(lambda: len(events(fx.records(), "connect")) >= sessions
                     and len([r for r in fx.records() if r["event"] in ("disconnect", "logout")])
                     >= sessions, timeout=WAIT)
        else:
            wait_for(lambda: len(events(fx.records(), "login-failed")) >= len(WAYS) * 3,
                     timeout=WAIT)
        time.sleep(0.3)
        text = fx.stderr_text()
        leaked = [name for name, s in secrets().items() if s in text]
        t.equal(leaked, [], f"{tag}: no password, base64 or hex of it anywhere in the log")
        recs = fx.records()
        if level in ("debug", "info"):
            t.equal(len(events(recs, "login")), len(WAYS) * 3,
                    f"{tag}: one login record per successful login (the log is not empty)")
        if level == "debug":
            cmds = [r["rest"] for r in events(recs, "command")]
            t.check(any("AUTH" in c for c in cmds) and any("USER alice" in c for c in cmds),
                    f"{tag}: commands are logged at debug (AUTH and USER seen)", cmds[:20])
        if level == "notice":
            t.check(len(events(recs, "login-failed")) >= len(WAYS) * 3,
                    f"{tag}: failed logins are logged at notice",
                    "\n".join(r["line"] for r in recs[-20:]))


# ---------------------------------------------------------------- login_timeout


def trickle_case(ports, ctx, how, style):
    """A client that keeps sending but never logs in. Returns (closed?, seconds from
    connect to close, client port)."""
    start = time.monotonic()
    if how in ("no ClientHello", "slow ClientHello"):
        sock = socket.create_connection(("127.0.0.1", ports.tls_port), timeout=WAIT)
        cport = sock.getsockname()[1]
        hello = client_hello(ctx) if how == "slow ClientHello" else b""
        closed = False
        for i in range(LOGIN_TIMEOUT + 10):
            if i < len(hello):
                try:
                    sock.sendall(hello[i:i + 1])
                except OSError:
                    closed = True
                    break
            sock.settimeout(max(0.01, start + i + 1 - time.monotonic()))
            try:
                closed = sock.recv(1) == b""
            except socket.timeout:
                continue
            except OSError:
                closed = True
            break
        took = time.monotonic() - start
        sock.close()
        return closed, took, cport
    p = connect(ports, ctx, how)
    cport = p.cport
    # one byte of a line that never ends, or one whole USER line, every second
    data = b"USER alice"
    closed = False
    for i in range(LOGIN_TIMEOUT + 10):
        try:
            p.send(data[i % len(data):i % len(data) + 1] if style == "bytes"
                   else b"USER alice\r\n")
        except (OSError, ssl.SSLError):
            closed = True
            break
        next_send = start + i + 1
        while not closed and time.monotonic() < next_send:
            p.sock.settimeout(max(0.01, next_send - time.monotonic()))
            try:
                closed = p.sock.recv(65536) == b""
            except (socket.timeout, ssl.SSLWantReadError):
                break
            except (OSError, ssl.SSLError):
                closed = True
        if closed:
            break
    took = time.monotonic() - start
    p.close()
    return closed, took, cport


def logged_in_case(ports, ctx, how, late, user, first):
    """Log in (late: after trickling for most of the login timeout), then stay busy for
    longer than login_timeout. Returns a list of (ok, what, detail)."""
    out = []
    p = connect(ports, ctx, how)
    if late:
        line = f"USER {user}\r\n".encode()
        for c in line:
            p.send(bytes([c]))
            time.sleep((LOGIN_TIMEOUT - 2) / len(line))
        p.line()
        r = p.cmd(f"PASS {PASSWORD}")
    else:
        _, r = p.login(user)
    out.append((r.startswith(b"+OK"), "login", r))
    for _ in range(LOGIN_TIMEOUT + 3):
        time.sleep(1)
        r = p.cmd("NOOP")
        if not r.startswith(b"+OK"):
            out.append((False, "NOOP every second past login_timeout", r))
            break
    else:
        out.append((True, "NOOP every second past login_timeout", ""))
    r = p.cmd("RETR 1")
    out.append((r.startswith(b"+OK") and p.multi_raw() == crlf(first),
                "RETR 1 byte-exact after login_timeout", r))
    out.append((p.cmd("QUIT").startswith(b"+OK"), "QUIT", ""))
    p.close()
    return out


def add_users(fx, names):
    """More users like alice, each with a maildir of the fixture's messages."""
    with open(fx.userlist, "a") as f:
        for name in names:
            fx.make_maildir(os.path.join(fx.mail, name, "Maildir"), fx.messages)
            f.write(f"{name}:{fx.hash}:{TEST_UID}:{TEST_GID}\n")


def login_timeout(t, pki, mode):
    ctx = client_context(pki)
    extra = {"server.login_timeout": str(LOGIN_TIMEOUT), "auth.plaintext_auth": "always",
             "server.max_bad_commands": "1000", "server.max_sessions_per_source": "50"}
    with TlsFixture(pki, extra) as fx, Ports(fx, mode) as ports:
        cases = [("trickle", how, style) for how, style in (
            ("plain", "bytes"), ("plain", "lines"), ("stls", "bytes"), ("implicit", "bytes"),
            ("implicit", "lines"), ("no ClientHello", None), ("slow ClientHello", None))]
        # one mailbox per concurrent session (a second login would get [IN-USE])
        users = ("alice", "bob", "dave", "erin")
        add_users(fx, users[2:])
        cases += [("session", how, late, users[2 * i + late])
                  for i, how in enumerate(("plain", "implicit")) for late in (0, 1)]
        results = [None] * len(cases)

        def run(i, case):
            try:
                if case[0] == "trickle":
                    results[i] = trickle_case(ports, ctx, case[1], case[2])
                else:
                    results[i] = logged_in_case(ports, ctx, case[1], case[2], case[3],
                                                 fx.expect()[0][1])
            except Exception as e:  # noqa: BLE001 - reported below
                results[i] = e

        threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(cases)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(LOGIN_TIMEOUT + 40)
        time.sleep(0.5)
        for case, res in zip(cases, results):
            tag = f"{mode}: login_timeout {case[1]} " + (
                f"trickling {case[2] or 'the handshake'}" if case[0] == "trickle" else
                ("late login" if case[2] else "logged-in session"))
            if isinstance(res, Exception) or res is None:
                t.check(False, f"{tag}: ran", repr(res))
                continue
            if case[0] == "session":
                for ok, what, detail in res:
                    t.check(ok, f"{tag}: {what}", detail)
                continue
            closed, took, cport = res
            t.check(closed and LOGIN_TIMEOUT - 0.5 <= took <= LOGIN_TIMEOUT + 4,
                    f"{tag}: closed after about {LOGIN_TIMEOUT}s",
                    f"closed={closed} after {took:.1f}s")
            recs = peer_records(fx, cport)
            t.equal(len([r for r in recs if r["event"] in ("timeout", "tls-failed")]), 1,
                    f"{tag}: one timeout record")
            t.equal(events(recs, "login"), [], f"{tag}: no login")


# ---------------------------------------------------------------- CAPA and the bad-command limit


def capa_limit(t, pki, mode):
    limit = 3
    ctx = client_context(pki)
    with TlsFixture(pki, {"server.max_bad_commands": str(limit)}) as fx, \
            Ports(fx, mode) as ports:
        for how in ("plain", "implicit"):
            p = connect(ports, ctx, how)
            answered, last = 0, b""
            for _ in range(30):
                try:
                    r = p.cmd("CAPA")
                except OSError:
                    break
                last = r
                if not r.startswith(b"+OK"):
                    break
                try:
                    p.multi()
                except (ConnectionError, OSError):
                    break
                answered += 1
            closed = p.eof or p.closed(timeout=3)
            p.close()
            t.check(closed and 1 <= answered <= limit + 1,
                    f"{mode} {how}: repeated CAPA before login hits max_bad_commands={limit}",
                    f"closed={closed}, {answered} CAPA answered, last reply {last!r}")
        # what clients do is fine: CAPA, STLS, CAPA again (RFC 2595 §4), then log in
        p = TlsPop(ports.port, ctx, implicit=False)
        ok = p.capa()[0].startswith(b"+OK") and p.stls().startswith(b"+OK")
        ok = ok and p.capa()[0].startswith(b"+OK")
        _, r = p.login()
        t.check(ok and r.startswith(b"+OK") and p.cmd("STAT").startswith(b"+OK"),
                f"{mode}: CAPA, STLS, CAPA, login stays under the limit", r)
        for _ in range(limit + 2):
            r = p.capa()[0]
        t.check(r.startswith(b"+OK"), f"{mode}: CAPA after login is not limited", r)
        p.cmd("QUIT")
        p.close()


# ---------------------------------------------------------------- pre-login records


def prelogin_records(t, pki, mode):
    ctx = client_context(pki)
    with TlsFixture(pki) as fx:
        root = os.path.join(fx.dir, "empty-root")
        os.mkdir(root)
        os.chown(root, 0, 0)
        os.chmod(root, 0o755)
        fx.write_config({"server.login_chroot": root, "log.level": "debug"})
        with Ports(fx, mode) as ports:
            for how in ("plain", "stls", "implicit"):
                tag = f"{mode} {how}: login_chroot={os.path.basename(root)}"
                p = connect(ports, ctx, how)
                r, caps = p.capa()
                t.check(r.startswith(b"+OK") and caps, f"{tag}: CAPA answered", r)
                r = p.cmd("USER alice")
                t.check(r.startswith(b"+OK") or r.startswith(b"-ERR [AUTH]"),
                        f"{tag}: USER answered", r)
                cport = p.cport
                p.sock.close()  # hang up without QUIT
                wait_for(lambda: events(peer_records(fx, cport), "disconnect"))
                time.sleep(0.3)
                recs = peer_records(fx, cport)
                t.equal(len(events(recs, "connect")), 1, f"{tag}: one connect record")
                cmds = [r["rest"] for r in events(recs, "command")]
                want_cmds = ["CAPA", "USER alice"] if how != "stls" else \
                    ["STLS", "CAPA", "USER alice"]
                t.check(len(cmds) == len(want_cmds)
                        and all(w in c for w, c in zip(want_cmds, cmds)),
                        f"{tag}: the command records of the pre-login process, in order",
                        "\n".join(r["line"] for r in recs))
                t.check(len(events(recs, "disconnect")) == 1, f"{tag}: one disconnect record",
                        "\n".join(r["line"] for r in recs) or fx.stderr_text()[-2000:])
            # a failed login in the chroot too
            p = connect(ports, ctx, "implicit")
            p.login("alice", WRONG)
            cport = p.cport
            p.sock.close()
            wait_for(lambda: events(peer_records(fx, cport), "disconnect"))
            time.sleep(0.3)
            recs = peer_records(fx, cport)
            t.equal(len(events(recs, "login-failed")), 1,
                    f"{mode}: login_chroot: a wrong password leaves one login-failed record")


def not_dumpable(t):
    """The process that will hold passwords may not be dumped nor traced by its own uid:
    started as an ordinary user (one process does everything), its /proc files belong to
    root, which the kernel does only for a process that is not dumpable."""
    import subprocess

    from mpopdtest import MPOPD, Fixture

    if os.geteuid() != 0:
        t.check(False, "not-dumpable: needs root to start mpopd as another user")
        return
    with Fixture() as fx:
        def as_test_user():
            os.setgroups([])
            os.setgid(TEST_GID)
            os.setuid(TEST_UID)

        proc = subprocess.Popen([MPOPD, "--inetd", "-c", fx.conf], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                preexec_fn=as_test_user)
        try:
            greeting = proc.stdout.readline()
            t.check(greeting.startswith(b"+OK"), "not-dumpable: greeting", greeting)
            st = os.stat(f"/proc/{proc.pid}/environ")  # (the directory keeps the euid)
            with open(f"/proc/{proc.pid}/status") as f:
                uids = [line.split()[1:] for line in f if line.startswith("Uid:")][0]
            t.equal(uids[0], str(TEST_UID), "not-dumpable: mpopd runs as the test user")
            t.equal(st.st_uid, 0, "not-dumpable: its /proc files belong to root")
        finally:
            proc.stdin.write(b"QUIT\r\n")
            proc.stdin.close()
            proc.wait(timeout=WAIT)


class Deferred:
    """Collects a job's results in its own thread; replay() reports them in order."""

    def __init__(self):
        self.results = []

    def check(self, cond, what, detail=""):
        self.results.append((bool(cond), what, detail))
        return cond

    def equal(self, got, want, what):
        return self.check(got == want, what, f"got:  {got!r}\nwant: {want!r}")

    def replay(self, t):
        for cond, what, detail in self.results:
            t.check(cond, what, detail)


def parallel(t, jobs):
    """Run (func, *args) jobs side by side (each with its own fixture and servers); report
    their results in the order given. An exception is a failure of that job."""
    outs = [Deferred() for _ in jobs]

    def run(out, func, *args):
        try:
            func(out, *args)
        except Exception as e:  # noqa: BLE001 - reported as a failure
            import traceback

            out.check(False, f"{func.__name__}{args[1:]!r} raised {type(e).__name__}",
                      traceback.format_exc())

    threads = [threading.Thread(target=run, args=(o, *job)) for o, job in zip(outs, jobs)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(240)
    for o, th, job in zip(outs, threads, jobs):
        if th.is_alive():
            o.check(False, f"{job[0].__name__}{job[2:]!r} finished within 240 s")
        o.replay(t)


def main():
    need_binaries()
    t = Reporter("login-hardening")
    with Pki() as pki:
        jobs = [(hygiene, pki, "inetd", level) for level in ("debug", "info", "notice")]
        jobs += [(hygiene, pki, "inetd", "notice", "alice"), (hygiene, pki, "daemon", "debug")]
        jobs += [(capa_limit, pki, mode) for mode in ("inetd", "daemon")]
        jobs += [(prelogin_records, pki, mode) for mode in ("inetd", "accept", "daemon")]
        parallel(t, jobs)
        t.run(not_dumpable)
        # timing-sensitive: alone, after the rest
        for mode in ("inetd", "daemon"):
            t.run(login_timeout, pki, mode)
    t.done()


if __name__ == "__main__":
    main()

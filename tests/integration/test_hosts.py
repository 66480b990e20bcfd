#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Virtual hosts through a running server: one legacy daemon listening on 127.0.0.1 and
127.0.0.2 (Linux routes all of 127/8 on lo) with a [host:a.example] that owns 127.0.0.2. The
local address the client reached picks the host's user list and mailboxes; with TLS, the
server name the client sent (SNI) picks it whatever the address; an e-mail address as login
name picks it by its domain. Host A's user never gets in with the default host's password,
nor the other way round."""

import os
import socket
import subprocess

from mpopdtest import (MPOPD, PASSWORD, TEST_GID, TEST_UID, WAIT, Pop, Reporter, free_port,
                       make_hash, need_binaries, stop_group, wait_for)
from tlsutil import Pki, TlsFixture, TlsPop, client_context

HOST_PW = "Host-A-Passw0rd"
# host A's bob sees only these two messages; the default host's bob has the fixture's eight
HOST_MSGS = [
    ("cur/1710000001.M1P1.hosta:2,S", b"From: x@a.example\nSubject: host a one\n\nfirst\n"),
    ("new/1710000002.M2P2.hosta", b"From: x@a.example\nSubject: host a two\n\nsecond\n"),
]


class HostFixture(TlsFixture):
    """The standard fixture (alice, bob, carol in the default user list, every message) plus
    host a.example: its own user list (bob with HOST_PW) and its own mail root."""

    def __init__(self, pki, backend, tls):
        self.vmail = None
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        port = self.port
        # the tests fail many logins on purpose: no penalty delays or refusals in between
        extra = {"auth.default": backend, "server.listen": f"127.0.0.1:{port};127.0.0.2:{port}",
                 "server.pid_file": "", "auth.penalty_delay_after": "1000",
                 "auth.penalty_block_after": "0", "auth.penalty_user_block_after": "0"}
        if tls:
            extra["server.listen_tls"] = f"127.0.0.1:{self.tls_port}"
        super().__init__(pki, extra, cert=pki.cert if tls else None, key=pki.key if tls else None)

    def write_config(self, extra):
        super().write_config(extra)
        if self.vmail is None:
            self.vmail = os.path.join(self.dir, "vmail")
            self.make_maildir(os.path.join(self.vmail, "a.example", "bob"), HOST_MSGS)
            self.host_users = os.path.join(self.dir, "a.users")
            with open(self.host_users, "w") as f:
                f.write(f"bob:{make_hash(HOST_PW)}:{TEST_UID}:{TEST_GID}\n")
            os.chmod(self.host_users, 0o600)
        with open(self.conf, "a") as f:
            f.write("[host:a.example]\n"
                    "addresses=127.0.0.2\n"
                    "names=mail.a.example\n"
                    f"userlist={self.host_users}\n"
                    f"location={self.vmail}/%d/%n\n")


class Daemon:
    def __init__(self, fx):
        self.fx = fx
        self.proc = None

    def __enter__(self):
        errf = open(self.fx.stderr_path, "ab")
        self.proc = subprocess.Popen([MPOPD, "-F", "-c", self.fx.conf], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=errf,
                                     start_new_session=True)
        errf.close()
        ok = wait_for(lambda: "event=start " in self.fx.stderr_text() or self.proc.poll() is not None)
        if not ok or self.proc.poll() is not None:
            self.__exit__()
            raise RuntimeError(f"daemon did not start: {self.fx.stderr_text()[-2000:]}")
        return self

    def __exit__(self, *exc):
        stop_group(self.proc)


class PopAt(Pop):
    """Pop connected to a given local address of the server."""

    def __init__(self, addr, port, timeout=WAIT):
        self.sock = socket.create_connection((addr, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.eof = False
        self.greeting = self.line()


def stat_after_login(p, user, password):
    """(USER reply, PASS reply, STAT reply or None)."""
    r1, r2 = p.login(user, password)
    r3 = p.cmd("STAT") if r2.startswith(b"+OK") else None
    p.cmd("QUIT")
    p.close()
    return r1, r2, r3


HOST_STAT = b"+OK 2 "


def is_default_stat(r):
    return r is not None and r.startswith(b"+OK 8 ")


def test_local_address(t, pki, backend):
    fx = HostFixture(pki, backend, False)
    port = fx.port
    try:
        with Daemon(fx):
            tag = f"{backend}: local address"
            _, r2, st = stat_after_login(PopAt("127.0.0.2", port), "bob", HOST_PW)
            t.check(r2.startswith(b"+OK") and st is not None and st.startswith(HOST_STAT),
                    f"{tag}: bob on 127.0.0.2 logs in to host a.example's mailbox", (r2, st))
            _, r2, st = stat_after_login(PopAt("127.0.0.1", port), "bob", PASSWORD)
            t.check(r2.startswith(b"+OK") and is_default_stat(st),
                    f"{tag}: bob on 127.0.0.1 is the default host's bob", (r2, st))
            _, r2, _ = stat_after_login(PopAt("127.0.0.2", port), "bob", PASSWORD)
            t.check(r2.startswith(b"-ERR [AUTH]"),
                    f"{tag}: the default host's password does not open host a's bob", r2)
            _, r2, _ = stat_after_login(PopAt("127.0.0.1", port), "bob", HOST_PW)
            t.check(r2.startswith(b"-ERR [AUTH]"),
                    f"{tag}: host a's password does not open the default host's bob", r2)
            _, r2, _ = stat_after_login(PopAt("127.0.0.2", port), "alice", PASSWORD)
            t.check(r2.startswith(b"-ERR [AUTH]"),
                    f"{tag}: a default-host user is unknown on host a's address", r2)
            for raw in (b"bob\x00@a.example", b"bob\r@a.example", b"../a.example/bob"):
                p = PopAt("127.0.0.2", port)
                r1 = p.cmd("USER " + raw.decode("latin-1"))
                r2 = p.cmd(f"PASS {HOST_PW}") if r1.startswith(b"+OK") else r1
                p.close()
                t.check(r2.startswith(b"-ERR"), f"{tag}: USER {raw!r} never logs in", (r1, r2))
            if backend == "email":
                for name in ("bob@a.example", "bob%A.Example", "bob@mail.a.example"):
                    _, r2, st = stat_after_login(PopAt("127.0.0.1", port), name, HOST_PW)
                    t.check(r2.startswith(b"+OK") and st is not None and st.startswith(HOST_STAT),
                            f"{tag}: {name} on 127.0.0.1 logs in to host a.example", (r2, st))
                for name in ("BOB@a.example", "bob@b.example", "bob@..", "@a.example", "bob@"):
                    _, r2, _ = stat_after_login(PopAt("127.0.0.1", port), name, HOST_PW)
                    t.check(r2.startswith(b"-ERR [AUTH]"), f"{tag}: {name} is refused", r2)
    finally:
        fx.cleanup()


def tls_login(port, sni, user, password, ctx):
    raw = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    p = TlsPop.__new__(TlsPop)
    p.ctx = ctx
    p.sock = ctx.wrap_socket(raw, server_hostname=sni)
    p.sock.settimeout(WAIT)
    p.tls = p.sock
    p.buf = b""
    p.eof = False
    p.greeting = p.line()
    return stat_after_login(p, user, password)


def test_sni(t, pki):
    fx = HostFixture(pki, "hostname", True)
    port = fx.port
    # the test certificate names localhost and 127.0.0.1 only: verify the chain, not the name
    ctx = client_context(pki)
    ctx.check_hostname = False
    try:
        with Daemon(fx):
            tls_port = fx.tls_port
            _, r2, st = tls_login(tls_port, "mail.a.example", "bob", HOST_PW, ctx)
            t.check(r2.startswith(b"+OK") and st is not None and st.startswith(HOST_STAT),
                    "sni: mail.a.example on 127.0.0.1 selects host a.example", (r2, st))
            _, r2, st = tls_login(tls_port, "A.EXAMPLE", "bob", HOST_PW, ctx)
            t.check(r2.startswith(b"+OK") and st is not None and st.startswith(HOST_STAT),
                    "sni: the name compares without regard to case", (r2, st))
            _, r2, _ = tls_login(tls_port, "mail.a.example", "bob", PASSWORD, ctx)
            t.check(r2.startswith(b"-ERR [AUTH]"),
                    "sni: host a's bob refuses the default host's password", r2)
            _, r2, st = tls_login(tls_port, "other.example", "bob", PASSWORD, ctx)
            t.check(r2.startswith(b"+OK") and is_default_stat(st),
                    "sni: a name no host has leaves the default host (by address)", (r2, st))
            _, r2, st = tls_login(tls_port, "localhost", "bob", PASSWORD, ctx)
            t.check(r2.startswith(b"+OK") and is_default_stat(st),
                    "sni: localhost is the default host", (r2, st))
            # STLS on the plaintext port: the SNI of the STLS handshake counts as well
            p = PopAt("127.0.0.1", port)
            r = p.cmd("STLS")
            t.check(r.startswith(b"+OK"), "sni: STLS accepted", r)
            p.sock = ctx.wrap_socket(p.sock, server_hostname="mail.a.example")
            tp = TlsPop.__new__(TlsPop)
            tp.ctx, tp.sock, tp.tls, tp.buf, tp.eof = ctx, p.sock, p.sock, b"", False
            _, r2, st = stat_after_login(tp, "bob", HOST_PW)
            t.check(r2.startswith(b"+OK") and st is not None and st.startswith(HOST_STAT),
                    "sni: STLS with mail.a.example selects host a.example", (r2, st))
    finally:
        fx.cleanup()


def main():
    need_binaries()
    t = Reporter("hosts")
    with Pki() as pki:
        t.run(test_local_address, pki, "hostname")
        t.run(test_local_address, pki, "email")
        t.run(test_sni, pki)
    t.done()


if __name__ == "__main__":
    main()

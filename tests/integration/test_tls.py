#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""TLS through real clients: STLS (RFC 2595 §4) and implicit TLS (RFC 8314) under inetd, fd 3
(Accept=yes) and the legacy daemon; openssl s_client, curl, fetchmail and Python's poplib
against a test CA; the STLS injection case (CVE-2011-0411 class); garbage instead of a
ClientHello; the plaintext_auth policy and CAPA; SASL PLAIN inside TLS; an expired
certificate; a reload that swaps the certificate; --check-config on broken key material; the
TLS field of login records."""

import os
import poplib
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time

from mpopdtest import (MPOPD, fetchmail, normalise, PASSWORD, WAIT, Pop, Reporter, crlf, free_port, lf, lines_of,
                       need_binaries, pop_size, wait_for)
from tlsutil import (Pki, Ports, TlsFixture, TlsPop, TlsServer, client_context, client_hello, events,
                     fingerprint_pem, fingerprint_sock, peer_records, sasl_plain, tls_field)

MODES = ("inetd", "accept", "daemon")
REFUSED = b"-ERR [AUTH] Plaintext authentication disallowed on non-secure connections."
WRONG = "Wr0ng-Passw0rd-xyzzy"


def mark(fx):
    """Log offset: records after this belong to what the test does next."""
    return len(fx.stderr_text())


def settle(fx, since, pred, timeout=WAIT):
    """Wait until pred(records since) holds, then a little longer so that a record that
    should not be there has time to show up."""
    ok = wait_for(lambda: pred(fx.records(since)), timeout)
    time.sleep(0.3)
    return ok


def unstuffed(lines):
    return b"".join((l[1:] if l.startswith(b".") else l) + b"\r\n" for l in lines)


def split_replies(data, multi_flags):
    """Cut a server transcript into replies: [(status line, body octets or None)], one per
    flag (True: a +OK answer is multi-line). Missing replies are (None, None)."""
    lines = data.split(b"\r\n")
    i, out = 0, []
    for multi in multi_flags:
        if i >= len(lines) - 1:
            out.append((None, None))
            continue
        status = lines[i]
        i += 1
        body = None
        if multi and status.startswith(b"+OK"):
            try:
                end = lines.index(b".", i)
            except ValueError:
                end = len(lines) - 1
            body = unstuffed(lines[i:end])
            i = end + 1
        out.append((status, body))
    if i < len(lines) - 1 or lines[-1]:
        out.append((b"<extra>", b"\r\n".join(lines[i:])))
    return out


# ---------------------------------------------------------------- openssl s_client


def s_client(t, fx, port, starttls, tag):
    exp = fx.expect()
    cmds = ([("USER alice", False), (f"PASS {PASSWORD}", False), ("STAT", False)]
            + [(f"RETR {i}", True) for i in range(1, len(exp) + 1)]
            + [("UIDL", True), ("QUIT", False)])
    args = ["openssl", "s_client", "-brief", "-ign_eof", "-connect", f"127.0.0.1:{port}",
            "-CAfile", fx.pki.ca, "-verify_return_error", "-verify_ip", "127.0.0.1"]
    if starttls:
        args += ["-starttls", "pop3"]
    since = mark(fx)
    r = subprocess.run(args, input="".join(c + "\r\n" for c, _ in cmds).encode(),
                       capture_output=True, timeout=WAIT * 3)
    err = r.stderr.decode("utf-8", "replace")
    t.check(r.returncode == 0 and "Verification: OK" in err,
            f"{tag}: s_client connects and verifies the chain", f"rc {r.returncode}\n{err}")
    flags = ([] if starttls else [False]) + [m for _, m in cmds]
    replies = split_replies(r.stdout, flags)
    if not starttls:
        greet = replies.pop(0)[0]
        t.check(greet is not None and greet.startswith(b"+OK"), f"{tag}: greeting inside TLS",
                greet)
    t.check(replies[0][0] is not None and replies[0][0].startswith(b"+OK"), f"{tag}: USER",
            replies[0])
    t.check(replies[1][0] is not None and replies[1][0].startswith(b"+OK"), f"{tag}: PASS",
            replies[1])
    t.equal(replies[2][0], b"+OK %d %d" % (len(exp), sum(pop_size(r) for _, r in exp)),
            f"{tag}: STAT")
    for i, (uidl, raw) in enumerate(exp, 1):
        st, body = replies[2 + i]
        t.check(st is not None and st.startswith(b"+OK") and body == crlf(raw),
                f"{tag}: RETR {i} byte-exact", f"status {st!r}\n"
                f"got {len(body or b'')} octets, want {len(crlf(raw))}")
    st, body = replies[3 + len(exp)]
    want = b"".join(b"%d %s\r\n" % (i, u.encode()) for i, (u, _) in enumerate(exp, 1))
    t.check(body == want, f"{tag}: UIDL", f"{st!r} {body!r}")
    st = replies[4 + len(exp)][0]
    t.check(st is not None and st.startswith(b"+OK"), f"{tag}: QUIT", st)
    t.equal(replies[5 + len(exp):], [], f"{tag}: nothing after the QUIT reply")
    proto = re.search(r"Protocol version: (\S+)", err)
    cipher = re.search(r"Ciphersuite: (\S+)", err)
    settle(fx, since, lambda recs: events(recs, "login"))
    logins = events(fx.records(since), "login")
    t.equal(len(logins), 1, f"{tag}: one login record")
    if logins and proto and cipher:
        t.equal(tls_field(logins[0]), (proto.group(1), cipher.group(1)),
                f"{tag}: the login record carries the TLS protocol and cipher")


def s_client_all(t, pki, mode):
    with TlsFixture(pki) as fx, Ports(fx, mode) as ports:
        s_client(t, fx, ports.port, True, f"{mode}: s_client -starttls pop3")
        s_client(t, fx, ports.tls_port, False, f"{mode}: s_client implicit TLS")


# ---------------------------------------------------------------- curl


def curl(url, pki, extra=()):
    r = subprocess.run(["curl", "-sS", "--max-time", "30", "--cacert", pki.ca, *extra, url],
                       capture_output=True, timeout=WAIT * 3)
    return r.returncode, r.stdout, r.stderr.decode("utf-8", "replace")


def curl_all(t, pki, mode):
    with TlsFixture(pki) as fx, Ports(fx, mode) as ports:
        exp = fx.expect()
        for tag, base, extra in (
                ("pop3s://", f"pop3s://alice:{PASSWORD}@127.0.0.1:{ports.tls_port}/", ()),
                ("--ssl-reqd pop3://", f"pop3://alice:{PASSWORD}@127.0.0.1:{ports.port}/",
                 ("--ssl-reqd",))):
            since = mark(fx)
            runs = 0
            for i, (uidl, raw) in enumerate(exp, 1):
                rc, out, err = curl(base + str(i), pki, extra)
                runs += 1
                t.check(rc == 0 and out == crlf(raw), f"{mode}: curl {tag} RETR {i}",
                        f"rc {rc} {err}\ngot {len(out)} octets, want {len(crlf(raw))}")
            rc, out, err = curl(base, pki, extra)
            runs += 1
            want = b"".join(b"%d %d\r\n" % (i, pop_size(r)) for i, (_, r) in enumerate(exp, 1))
            t.check(rc == 0 and out == want, f"{mode}: curl {tag} LIST", f"rc {rc} {err}\n{out!r}")
            rc, out, err = curl(base, pki, ("-X", "UIDL", *extra))
            runs += 1
            want = b"".join(b"%d %s\r\n" % (i, u.encode()) for i, (u, _) in enumerate(exp, 1))
            t.check(rc == 0 and out == want, f"{mode}: curl {tag} -X UIDL",
                    f"rc {rc} {err}\n{out!r}")
            settle(fx, since, lambda recs: len(events(recs, "login")) >= runs)
            logins = events(fx.records(since), "login")
            t.check(len(logins) == runs and all(tls_field(r) for r in logins),
                    f"{mode}: curl {tag}: {runs} login records, each with the TLS field",
                    "\n".join(r["line"] for r in logins))
        # the default policy with a certificate: no login without TLS
        rc, out, err = curl(f"pop3://alice:{PASSWORD}@127.0.0.1:{ports.port}/1", pki)
        t.check(rc != 0 and out == b"", f"{mode}: curl pop3:// without TLS cannot log in",
                f"rc {rc} {out[:200]!r} {err}")


# ---------------------------------------------------------------- fetchmail


def fetchmail_all(t, pki, mode):
    # sslcommonname: fetchmail matches the certificate against DNS names only
    check = f'sslcertck sslcertfile "{pki.ca}" sslcommonname "localhost"'
    with TlsFixture(pki) as fx, Ports(fx, mode) as ports:
        want = sorted(normalise(r) for _, r in fx.expect())
        for tag, port, opts in (("ssl", ports.tls_port, f"ssl {check}"),
                                ("stls", ports.port, f"sslproto 'tls1.2+' {check}")):
            since = mark(fx)
            rc, got, log = fetchmail(fx, port, tag, opts)
            t.check(rc == 0, f"{mode}: fetchmail {tag} exits 0", log)
            t.equal(sorted(normalise(g) for g in got), want,
                    f"{mode}: fetchmail {tag} delivered every message byte-exact")
            settle(fx, since, lambda recs: events(recs, "login"))
            logins = events(fx.records(since), "login")
            t.check(len(logins) == 1 and tls_field(logins[0]),
                    f"{mode}: fetchmail {tag} logged in once, inside TLS",
                    "\n".join(r["line"] for r in logins) or fx.stderr_text()[since:][-2000:])
        # the wrong CA: fetchmail with sslcertck must refuse
        rc, got, log = fetchmail(fx, ports.tls_port, "wrongca",
                                 f'ssl sslcertck sslcertfile "{pki.cert}" '
                                 f'sslcommonname "localhost"')
        t.check(rc != 0 and not got, f"{mode}: fetchmail sslcertck refuses a server its CA "
                "file does not vouch for", f"rc {rc}\n{log}")
        rc, got, log = fetchmail(fx, ports.tls_port, "flush", f"ssl {check}", keep=False)
        t.check(rc == 0 and len(got) == len(want), f"{mode}: fetchmail --ssl fetch+delete", log)
        t.equal(fx.listing("alice"), [], f"{mode}: fetchmail's DELEs over TLS emptied the maildrop")


# ---------------------------------------------------------------- poplib


def poplib_session(t, fx, p, user, tag, dele):
    exp = fx.expect(user)
    p.user(user)
    p.pass_(PASSWORD)
    t.equal(p.stat(), (len(exp), sum(pop_size(r) for _, r in exp)), f"{tag}: STAT")
    _, uidls, _ = p.uidl()
    t.equal(uidls, [b"%d %s" % (i, u.encode()) for i, (u, _) in enumerate(exp, 1)],
            f"{tag}: UIDL")
    for i, (uidl, raw) in enumerate(exp, 1):
        _, lines, octets = p.retr(i)
        t.check(lines == lines_of(raw), f"{tag}: RETR {i} byte-exact", f"{len(lines)} lines")
    for n in dele:
        t.check(p.dele(n).startswith(b"+OK"), f"{tag}: DELE {n}")
    t.check(p.quit().startswith(b"+OK"), f"{tag}: QUIT")
    want = sorted(u for i, (u, _) in enumerate(exp, 1) if i not in dele)
    t.equal(fx.listing(user), want, f"{tag}: DELE + QUIT removed exactly {list(dele)}")


def poplib_all(t, pki, mode):
    ctx = client_context(pki)
    with TlsFixture(pki) as fx, Ports(fx, mode) as ports:
        p = poplib.POP3_SSL("127.0.0.1", ports.tls_port, context=ctx, timeout=WAIT)
        try:
            t.check(p.getwelcome().startswith(b"+OK"), f"{mode}: POP3_SSL greeting")
            caps = p.capa()
            t.check("STLS" not in caps and "USER" in caps and "PLAIN" in caps.get("SASL", []),
                    f"{mode}: POP3_SSL: CAPA offers USER and SASL PLAIN, not STLS", caps)
            poplib_session(t, fx, p, "alice", f"{mode}: POP3_SSL", (1,))
        finally:
            p.close()
        p = poplib.POP3("127.0.0.1", ports.port, timeout=WAIT)
        try:
            caps = p.capa()
            t.check("STLS" in caps and "USER" not in caps and "PLAIN" not in caps.get("SASL", []),
                    f"{mode}: stls: before TLS CAPA offers STLS, neither USER nor SASL PLAIN",
                    caps)
            t.check(p.stls(ctx).startswith(b"+OK"), f"{mode}: stls(): handshake verified")
            caps = p.capa()
            t.check("STLS" not in caps and "USER" in caps and "PLAIN" in caps.get("SASL", []),
                    f"{mode}: stls: after TLS CAPA offers USER and SASL PLAIN, not STLS", caps)
            poplib_session(t, fx, p, "bob", f"{mode}: stls", (2, 8))
        finally:
            p.close()


# ---------------------------------------------------------------- STLS injection


def injection(t, pki, mode):
    ctx = client_context(pki)
    with TlsFixture(pki) as fx, Ports(fx, mode) as ports:
        # pipelined CAPA: executed in plaintext it would break the handshake; kept and run
        # inside TLS it would come before the QUIT reply
        p = TlsPop(ports.port, ctx, implicit=False)
        p.send(b"STLS\r\nCAPA\r\n")
        r = p.line()
        t.check(r.startswith(b"+OK"), f"{mode}: inject CAPA: STLS +OK", r)
        try:
            p.start_tls()
            p.send(b"QUIT\r\n")
            data, closed = p.read_all()
            t.check(closed and data.count(b"\r\n") == 1 and data.startswith(b"+OK")
                    and data.endswith(b"\r\n"),
                    f"{mode}: inject CAPA: after the handshake only the QUIT reply comes",
                    data)
        except ssl.SSLError as e:
            t.check(False, f"{mode}: inject CAPA: handshake after STLS", e)
        p.close()
        # pipelined USER: if it survived into TLS, PASS would log in (the man in the middle
        # chose the user the client's password goes to)
        since = mark(fx)
        p = TlsPop(ports.port, ctx, implicit=False)
        p.send(b"STLS\r\nUSER bob\r\n")
        r = p.line()
        t.check(r.startswith(b"+OK"), f"{mode}: inject USER: STLS +OK", r)
        try:
            p.start_tls()
            r = p.cmd(f"PASS {PASSWORD}")
            t.check(r.startswith(b"-ERR"), f"{mode}: inject USER: the injected USER is gone "
                    "(PASS without USER is refused)", r)
            p.send(b"QUIT\r\n")
            data, closed = p.read_all()
            t.check(closed and data.count(b"\r\n") == 1 and data.startswith(b"+OK"),
                    f"{mode}: inject USER: exactly the QUIT reply follows", data)
        except ssl.SSLError as e:
            t.check(False, f"{mode}: inject USER: handshake after STLS", e)
        p.close()
        settle(fx, since, lambda recs: events(peer_records(fx, p.cport, since), "disconnect")
               or len(events(peer_records(fx, p.cport, since), "command")) >= 3)
        recs = peer_records(fx, p.cport, since)
        t.equal(events(recs, "login"), [], f"{mode}: inject USER: no login record")
        cmds = [r["rest"] for r in events(recs, "command")]
        t.check(any("STLS" in c for c in cmds) and not any("USER" in c for c in cmds),
                f"{mode}: inject USER: the debug log shows STLS, never the injected USER", cmds)


# ---------------------------------------------------------------- garbage handshakes


GARBAGE = [
    ("text", b"GET / HTTP/1.0\r\nHost: example\r\n\r\n"),
    # a handshake record header with a length that does not match, then junk
    ("record", b"\x16\x03\x01\x00\x30\x01\x00\x00\x2c" + bytes(range(7, 47)) + b"\xff" * 40),
    ("zeros", b"\x00" * 600),
]


def child_codes(text):
    return [int(c) for c in re.findall(r"Child \d+ died with code (\d+)", text)]


def garbage(t, pki, mode):
    ctx = client_context(pki)
    with TlsFixture(pki) as fx, Ports(fx, mode) as ports:
        for name, junk in GARBAGE:
            for where in ("implicit", "after STLS"):
                tag = f"{mode}: {name} garbage {where}"
                since = mark(fx)
                if where == "implicit":
                    sock = socket.create_connection(("127.0.0.1", ports.tls_port), timeout=WAIT)
                else:
                    p = Pop(ports.port)
                    r = p.cmd("STLS")
                    sock = p.sock
                    if not t.check(r.startswith(b"+OK") and not p.buf, f"{tag}: STLS +OK", r):
                        sock.close()
                        continue
                cport = sock.getsockname()[1]
                try:
                    sock.sendall(junk)
                except OSError:
                    pass
                closed, got = read_to_eof(sock)
                t.check(closed, f"{tag}: the server closes the connection")
                t.check(b"+OK" not in got and b"-ERR" not in got,
                        f"{tag}: no POP3 reply in the clear", got)
                if where == "after STLS":
                    # STLS after a failed handshake: the connection is gone
                    try:
                        sock.sendall(b"STLS\r\n")
                        sock.settimeout(2)
                        again = sock.recv(512)
                    except OSError:
                        again = b""
                    t.equal(again, b"", f"{tag}: STLS after the failed handshake gets nothing")
                sock.close()
                settle(fx, since, lambda recs: events(peer_records(fx, cport, since),
                                                      "tls-failed"))
                recs = peer_records(fx, cport, since)
                t.equal(len(events(recs, "tls-failed")), 1, f"{tag}: exactly one tls-failed record")
                t.equal([r["rest"] for r in recs if r["event"] == "login" or (
                    r["event"] == "command" and not r["rest"].endswith("STLS"))], [],
                        f"{tag}: no command but STLS, no login on that connection")
        died = events(fx.records(), "prelogin-died")
        t.equal([r["line"] for r in died], [], f"{mode}: no pre-login process crashed")
        codes = child_codes(fx.stderr_text())
        t.check(not [c for c in codes if c in (4, 6, 7, 8, 11, 31)],
                f"{mode}: no session process died of a signal", codes)
        # still serving
        p = TlsPop(ports.tls_port, ctx)
        _, r = p.login()
        t.check(r.startswith(b"+OK"), f"{mode}: after the garbage a TLS login works", r)
        p.cmd("QUIT")
        p.close()
        if mode == "daemon":
            t.check(ports.servers[0].proc.poll() is None, f"{mode}: the daemon is still running")


def read_to_eof(sock, timeout=WAIT):
    """Read until EOF or reset (bounded): (closed?, bytes). A TLS alert before the close is
    fine."""
    sock.settimeout(timeout)
    got = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return True, got
            got += chunk
    except (ConnectionResetError, BrokenPipeError):
        return True, got
    except OSError:
        return False, got


# ---------------------------------------------------------------- policy and CAPA


def capa_set(p):
    r, caps = p.capa()
    return r, set(caps)


def no_plaintext(t, pki, mode):
    """The default policy once a certificate is configured: tls-only, even on loopback."""
    ctx = client_context(pki)
    with TlsFixture(pki, {"server.max_bad_commands": "50"}) as fx, Ports(fx, mode) as ports:
        p = TlsPop(ports.port, ctx, implicit=False)
        r, caps = capa_set(p)
        t.check(r.startswith(b"+OK") and "STLS" in caps and "USER" not in caps
                and not any(c.startswith("SASL") and "PLAIN" in c.split() for c in caps),
                f"{mode}: tls-only: plaintext CAPA has STLS, no USER, no SASL PLAIN", caps)
        t.equal(p.cmd("USER alice"), REFUSED, f"{mode}: tls-only: USER refused")
        t.equal(p.cmd(f"PASS {PASSWORD}"), REFUSED, f"{mode}: tls-only: PASS refused")
        t.equal(p.cmd("AUTH PLAIN " + sasl_plain()), REFUSED,
                f"{mode}: tls-only: AUTH PLAIN with initial response refused")
        t.equal(p.cmd("AUTH PLAIN"), REFUSED, f"{mode}: tls-only: AUTH PLAIN refused before '+ '")
        r = p.cmd("AUTH")
        mechs = p.multi() if r.startswith(b"+OK") else None
        t.check(mechs is not None and b"PLAIN" not in mechs,
                f"{mode}: tls-only: AUTH lists no PLAIN in the clear", (r, mechs))
        t.check(p.cmd("STAT").startswith(b"-ERR"), f"{mode}: tls-only: still not logged in")
        t.check(p.stls().startswith(b"+OK"), f"{mode}: tls-only: STLS")
        r, caps = capa_set(p)
        t.check("STLS" not in caps and "USER" in caps and "SASL PLAIN" in caps,
                f"{mode}: tls-only: CAPA inside TLS has USER and SASL PLAIN, no STLS", caps)
        r = p.cmd("STLS")
        t.check(r.startswith(b"-ERR"), f"{mode}: STLS inside TLS is refused", r)
        r = p.cmd("NOOP")
        t.check(r.startswith(b"-ERR") and not r.startswith(b"-ERR [AUTH] Plain"),
                f"{mode}: ... and the session is still in sync (NOOP before login)", r)
        _, r = p.login()
        t.check(r.startswith(b"+OK"), f"{mode}: tls-only: USER/PASS work inside TLS", r)
        r, caps = capa_set(p)
        t.check(r.startswith(b"+OK") and "STLS" not in caps,
                f"{mode}: CAPA in TRANSACTION has no STLS", caps)
        t.check(p.cmd("STLS").startswith(b"-ERR"), f"{mode}: STLS in TRANSACTION is refused")
        t.check(p.cmd("STAT").startswith(b"+OK"), f"{mode}: STAT after the refused STLS")
        p.cmd("QUIT")
        p.close()
        # implicit TLS: no STLS at all
        p = TlsPop(ports.tls_port, ctx)
        r, caps = capa_set(p)
        t.check("STLS" not in caps and "USER" in caps and "SASL PLAIN" in caps,
                f"{mode}: implicit TLS: CAPA has USER and SASL PLAIN, no STLS", caps)
        t.check(p.cmd("STLS").startswith(b"-ERR"), f"{mode}: implicit TLS: STLS refused")
        _, r = p.login()
        t.check(r.startswith(b"+OK"), f"{mode}: implicit TLS: login after the refused STLS", r)
        p.cmd("QUIT")
        p.close()


def plaintext_allowed(t, pki, policy, with_cert):
    tag = f"plaintext_auth={policy or '(unset)'} {'with' if with_cert else 'without'} certificate"
    extra = {"auth.plaintext_auth": policy} if policy else {}
    kw = {} if with_cert else {"cert": None}
    with TlsFixture(pki, extra, **kw) as fx, TlsServer(fx, "inetd") as srv:
        exp = fx.expect()
        p = TlsPop(srv.port, client_context(pki), implicit=False)
        r, caps = capa_set(p)
        t.check("USER" in caps and "SASL PLAIN" in caps, f"{tag}: CAPA offers USER and SASL PLAIN",
                caps)
        t.equal("STLS" in caps, with_cert, f"{tag}: CAPA offers STLS exactly when a certificate "
                "is configured")
        if not with_cert:
            t.check(p.cmd("STLS").startswith(b"-ERR"), f"{tag}: STLS refused")
        _, r = p.login()
        t.check(r.startswith(b"+OK"), f"{tag}: USER/PASS in the clear from 127.0.0.1", r)
        r = p.cmd("RETR 1")
        t.check(r.startswith(b"+OK") and p.multi_raw() == crlf(exp[0][1]), f"{tag}: RETR 1", r)
        p.cmd("QUIT")
        p.close()
        p = TlsPop(srv.port, client_context(pki), implicit=False)
        r = p.cmd("AUTH PLAIN " + sasl_plain("bob"))
        t.check(r.startswith(b"+OK"), f"{tag}: AUTH PLAIN in the clear", r)
        p.cmd("QUIT")
        p.close()


def policy_check_config(t, pki):
    with TlsFixture(pki, {"auth.plaintext_auth": "tls-only"}, cert=None) as fx:
        r = subprocess.run([MPOPD, "--check-config", "-c", fx.conf], capture_output=True,
                           timeout=WAIT)
        e = r.stderr.decode("utf-8", "replace")
        t.check(r.returncode != 0 and "plaintext_auth" in e,
                "check-config: plaintext_auth=tls-only without a certificate is an error", e)
    for policy in ("tls-only", "loopback", "always"):
        with TlsFixture(pki, {"auth.plaintext_auth": policy}) as fx:
            r = subprocess.run([MPOPD, "--check-config", "-c", fx.conf], capture_output=True,
                               timeout=WAIT)
            t.check(r.returncode == 0, f"check-config: plaintext_auth={policy} with a certificate",
                    r.stderr)


# ---------------------------------------------------------------- SASL PLAIN inside TLS


def sasl_in_tls(t, pki, mode):
    ctx = client_context(pki)
    with TlsFixture(pki) as fx, Ports(fx, mode) as ports:
        exp = fx.expect()
        for how in ("implicit", "STLS"):
            def connect():
                if how == "implicit":
                    return TlsPop(ports.tls_port, ctx)
                q = TlsPop(ports.port, ctx, implicit=False)
                q.stls()
                return q
            tag = f"{mode}: SASL PLAIN ({how})"
            p = connect()
            r = p.cmd("AUTH PLAIN " + sasl_plain())
            t.check(r.startswith(b"+OK"), f"{tag}: initial response", r)
            r = p.cmd("RETR 1")
            t.check(r.startswith(b"+OK") and p.multi_raw() == crlf(exp[0][1]),
                    f"{tag}: RETR 1 after it", r)
            p.cmd("QUIT")
            p.close()
            p = connect()
            r = p.cmd("AUTH PLAIN")
            t.equal(r, b"+ ", f"{tag}: AUTH PLAIN without initial response gets '+ '")
            r = p.cmd(sasl_plain("bob", authz="bob"))
            t.check(r.startswith(b"+OK"), f"{tag}: continuation line (authzid = authcid)", r)
            t.equal(p.cmd("STAT"), b"+OK %d %d" % (len(exp), sum(pop_size(r) for _, r in exp)),
                    f"{tag}: STAT")
            p.cmd("QUIT")
            p.close()
            p = connect()
            p.cmd("AUTH PLAIN")
            r = p.cmd(sasl_plain(password=WRONG))
            t.check(r.startswith(b"-ERR [AUTH]"), f"{tag}: a wrong password gets -ERR [AUTH]", r)
            p.cmd("QUIT")
            p.close()


# ---------------------------------------------------------------- expired certificate


def expired(t, pki):
    with TlsFixture(pki, cert=pki.expired, key=pki.expired_key) as fx, Ports(fx, "inetd") as ports:
        try:
            p = poplib.POP3_SSL("127.0.0.1", ports.tls_port, context=client_context(pki),
                                timeout=WAIT)
            p.close()
            t.check(False, "expired: poplib refuses the expired certificate", "it connected")
        except ssl.SSLCertVerificationError as e:
            t.equal(e.verify_code, 10, "expired: poplib refuses it: X509_V_ERR_CERT_HAS_EXPIRED")
        # what the server sends is the expired certificate (not some other failure)
        p = TlsPop(ports.tls_port, client_context(pki, verify=False))
        t.equal(fingerprint_sock(p.tls), fingerprint_pem(pki.expired),
                "expired: the server presents the configured (expired) certificate")
        p.close()
        rc, out, err = curl(f"pop3s://alice:{PASSWORD}@127.0.0.1:{ports.tls_port}/1", pki)
        t.check(rc == 60 and out == b"", "expired: curl pop3s:// fails certificate verification",
                f"rc {rc} {err}")
        rc, out, err = curl(f"pop3://alice:{PASSWORD}@127.0.0.1:{ports.port}/1", pki,
                            ("--ssl-reqd",))
        t.check(rc == 60 and out == b"", "expired: curl --ssl-reqd (STLS) fails verification",
                f"rc {rc} {err}")
    with TlsFixture(pki) as fx, Ports(fx, "inetd") as ports:
        p = poplib.POP3_SSL("127.0.0.1", ports.tls_port, context=client_context(pki),
                            timeout=WAIT)
        p.user("alice")
        t.check(p.pass_(PASSWORD).startswith(b"+OK"), "expired: the valid certificate works")
        p.quit()
        p.close()


# ---------------------------------------------------------------- reload


def tls_fp(port, pki, stls=False):
    """Fingerprint of the certificate a new connection gets (verified against the CA)."""
    p = TlsPop(port, client_context(pki), implicit=not stls)
    try:
        if stls:
            p.stls()
        return fingerprint_sock(p.tls)
    finally:
        p.close()


def reload_swap(t, pki):
    with TlsFixture(pki) as fx:
        live_cert, live_key = os.path.join(fx.dir, "live.pem"), os.path.join(fx.dir, "live.key")
        shutil.copy(pki.cert, live_cert)
        shutil.copy(pki.key, live_key)
        os.chmod(live_key, 0o600)
        fx.write_config({"tls.certificate": live_cert, "tls.key": live_key})
        fp_a, fp_b = fingerprint_pem(pki.cert), fingerprint_pem(pki.cert2)
        with TlsServer(fx, "daemon", tls=True) as srv:
            t.equal(tls_fp(srv.tls_port, pki), fp_a, "reload: implicit TLS serves cert A")
            t.equal(tls_fp(srv.port, pki, stls=True), fp_a, "reload: STLS serves cert A")
            old = TlsPop(srv.tls_port, client_context(pki))
            _, r = old.login("bob")
            t.check(r.startswith(b"+OK"), "reload: a session opened before the reload", r)

            def usr1(event, what):
                since = mark(fx)
                os.kill(srv.pid, signal.SIGUSR1)
                ok = wait_for(lambda: any(r["event"] in ("reload", "reload-failed")
                                          for r in fx.records(since)))
                recs = [r for r in fx.records(since) if r["event"] in ("reload", "reload-failed")]
                t.check(ok and [r["event"] for r in recs] == [event],
                        f"reload: {what}: one '{event}' record",
                        "\n".join(r["line"] for r in recs) or fx.stderr_text()[since:])
                return recs

            # a renewal in place (certbot's way): same paths, new contents
            shutil.copy(pki.cert2, live_cert)
            shutil.copy(pki.key2, live_key)
            usr1("reload", "renewed files")
            t.equal(tls_fp(srv.tls_port, pki), fp_b, "reload: new implicit-TLS sessions get B")
            t.equal(tls_fp(srv.port, pki, stls=True), fp_b, "reload: new STLS sessions get B")
            # a new path in the configuration
            fx.write_config({"tls.certificate": pki.cert, "tls.key": pki.key})
            usr1("reload", "config names other files")
            t.equal(tls_fp(srv.tls_port, pki), fp_a, "reload: back to A via the config")
            # broken key material: the old certificate stays
            for what, cert, key, named in (
                    ("garbage key", pki.cert, pki.garbage, pki.garbage),
                    ("key of another certificate", pki.cert2, pki.stray_key, None),
                    ("missing key", pki.cert2, fx.dir + "/no-such.key", fx.dir + "/no-such.key"),
                    ("garbage certificate", pki.garbage, pki.key, pki.garbage)):
                fx.write_config({"tls.certificate": cert, "tls.key": key})
                recs = usr1("reload-failed", what)
                if named:
                    t.check(recs and named in recs[0]["line"],
                            f"reload: {what}: the record names the file", recs)
                t.equal(tls_fp(srv.tls_port, pki), fp_a, f"reload: {what}: A is still served")
            t.check(srv.proc.poll() is None, "reload: the daemon survived the failed reloads")
            # the session from before every reload
            t.equal(fingerprint_sock(old.tls), fp_a, "reload: the old session still has A")
            r = old.cmd("RETR 1")
            t.check(r.startswith(b"+OK") and old.multi_raw() == crlf(fx.expect("bob")[0][1]),
                    "reload: the old session keeps working (RETR 1 byte-exact)", r)
            t.check(old.cmd("QUIT").startswith(b"+OK"), "reload: the old session's QUIT")
            old.close()


# ---------------------------------------------------------------- --check-config and start


def check_config(t, pki):
    with TlsFixture(pki) as fx:
        def check(cert, key, extra=None):
            fx.write_config({"tls.certificate": cert, "tls.key": key, "tls.min_protocol": None,
                             "tls.ciphers": None, "tls.ciphersuites": None, **(extra or {})})
            r = subprocess.run([MPOPD, "--check-config", "-c", fx.conf], capture_output=True,
                               timeout=WAIT)
            return r.returncode, r.stderr.decode("utf-8", "replace")

        rc, e = check(pki.cert, pki.key)
        t.check(rc == 0, "check-config: certificate and key", e)
        rc, e = check(pki.cert2, pki.key2)
        t.check(rc == 0, "check-config: chain file and key", e)
        rc, e = check(pki.combined, "")
        t.check(rc == 0, "check-config: key inside the certificate file (key empty)", e)
        keydir = os.path.join(fx.dir, "keydir")
        os.mkdir(keydir)
        missing = os.path.join(fx.dir, "missing.pem")
        for what, cert, key, names in (
                ("missing key", pki.cert, missing, (missing,)),
                ("missing certificate", missing, pki.key, (missing,)),
                ("unreadable key (a directory)", pki.cert, keydir, (keydir,)),
                ("key of another certificate", pki.cert, pki.stray_key, (pki.stray_key, pki.cert)),
                ("garbage certificate", pki.garbage, pki.key, (pki.garbage,)),
                ("garbage key", pki.cert, pki.garbage, (pki.garbage,)),
                ("key empty, none in the certificate file", pki.cert, "", (pki.cert,))):
            rc, e = check(cert, key)
            t.check(rc != 0 and any(n in e for n in names),
                    f"check-config: {what}: an error naming the file", f"rc {rc}\n{e}")
        for extra, ok in (({"tls.min_protocol": "TLSv1.3"}, True),
                          ({"tls.min_protocol": "TLSv1.1"}, False),
                          ({"tls.ciphers": "ECDHE-ECDSA-AES128-GCM-SHA256"}, True),
                          ({"tls.ciphers": "NO-SUCH-CIPHER"}, False),
                          ({"tls.ciphersuites": "TLS_CHACHA20_POLY1305_SHA256"}, True),
                          ({"tls.ciphersuites": "TLS_NO_SUCH_SUITE"}, False)):
            rc, e = check(pki.cert, pki.key, extra)
            k, v = next(iter(extra.items()))
            t.check((rc == 0) == ok, f"check-config: {k}={v} {'accepted' if ok else 'refused'}",
                    f"rc {rc}\n{e}")
        # the legacy daemon refuses to start with a key that does not load
        fx.write_config({"tls.certificate": pki.cert, "tls.key": pki.garbage,
                         "tls.ciphersuites": None,
                         "server.listen": "127.0.0.1:%d" % free_port(),
                         "server.listen_tls": "127.0.0.1:%d" % free_port()})
        proc = subprocess.Popen([MPOPD, "-F", "-c", fx.conf], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        try:
            _, err = proc.communicate(timeout=WAIT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            _, err = proc.communicate(timeout=WAIT)
        e = err.decode("utf-8", "replace")
        t.check(proc.returncode not in (0, -signal.SIGKILL) and pki.garbage in e,
                "start: the daemon refuses a key that does not load, naming the file",
                f"rc {proc.returncode}\n{e}")


def combined_serves(t, pki):
    with TlsFixture(pki, cert=pki.combined, key=None) as fx, \
            TlsServer(fx, "inetd", tls=True) as srv:
        p = TlsPop(srv.tls_port, client_context(pki))
        t.equal(fingerprint_sock(p.tls), fingerprint_pem(pki.cert),
                "combined file: serves the certificate with the key from the same file")
        _, r = p.login()
        t.check(r.startswith(b"+OK"), "combined file: login", r)
        p.cmd("QUIT")
        p.close()


# ---------------------------------------------------------------- protocol versions and records


def versions(t, pki):
    with TlsFixture(pki) as fx, TlsServer(fx, "accept", tls=True) as srv:
        for maxv, want in ((None, "TLSv1.3"), (ssl.TLSVersion.TLSv1_2, "TLSv1.2")):
            since = mark(fx)
            p = TlsPop(srv.tls_port, client_context(pki, max_version=maxv))
            t.equal(p.tls.version(), want, f"records: default min_protocol: client gets {want}")
            _, r = p.login()
            got = (p.tls.version(), p.tls.cipher()[0])
            p.cmd("QUIT")
            p.close()
            settle(fx, since, lambda recs: events(peer_records(fx, p.cport, since), "login"))
            logins = events(peer_records(fx, p.cport, since), "login")
            t.check(len(logins) == 1 and tls_field(logins[0]) == got,
                    f"records: the {want} login record says {got[0]} {got[1]}",
                    "\n".join(r["line"] for r in logins) or fx.stderr_text()[since:])
    with TlsFixture(pki, {"auth.plaintext_auth": "always"}) as fx, \
            TlsServer(fx, "inetd") as srv:
        since = mark(fx)
        p = TlsPop(srv.port, client_context(pki), implicit=False)
        p.login()
        p.cmd("QUIT")
        p.close()
        settle(fx, since, lambda recs: events(peer_records(fx, p.cport, since), "login"))
        logins = events(peer_records(fx, p.cport, since), "login")
        t.check(len(logins) == 1 and tls_field(logins[0]) is None,
                "records: a plaintext login record has no TLS field",
                "\n".join(r["line"] for r in logins))
    with TlsFixture(pki, {"tls.min_protocol": "TLSv1.3"}) as fx, \
            TlsServer(fx, "inetd", tls=True) as srv:
        try:
            p = TlsPop(srv.tls_port, client_context(pki, max_version=ssl.TLSVersion.TLSv1_2))
            p.close()
            t.check(False, "min_protocol=TLSv1.3 refuses a TLS 1.2 client", p.tls.version())
        except (ssl.SSLError, ConnectionResetError) as e:
            t.check(True, f"min_protocol=TLSv1.3 refuses a TLS 1.2 client ({type(e).__name__})")
        p = TlsPop(srv.tls_port, client_context(pki))
        t.equal(p.tls.version(), "TLSv1.3", "min_protocol=TLSv1.3: a TLS 1.3 client gets in")
        p.close()
    with TlsFixture(pki) as fx, TlsServer(fx, "inetd", tls=True) as srv:
        # Default suites: the server's order, AES-128-GCM first, whatever the client's order
        # (OpenSSL's own puts AES-256 first); ChaCha20 for a client that lists it first.
        for offer, want in (
                ("TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256",
                 "TLS_AES_128_GCM_SHA256"),
                ("TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256",
                 "TLS_CHACHA20_POLY1305_SHA256"),
                ("TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384")):
            r = subprocess.run(["openssl", "s_client", "-brief", "-connect",
                                f"127.0.0.1:{srv.tls_port}", "-CAfile", pki.ca,
                                "-ciphersuites", offer], input=b"QUIT\r\n",
                               capture_output=True, timeout=WAIT * 3)
            err = r.stderr.decode("utf-8", "replace")
            got = re.search(r"Ciphersuite: (\S+)", err)
            t.equal(got.group(1) if got else err, want,
                    f"default ciphersuites: a client offering {offer} gets {want}")
    with TlsFixture(pki, {"tls.ciphersuites": "TLS_CHACHA20_POLY1305_SHA256",
                          "tls.ciphers": "ECDHE-ECDSA-AES128-GCM-SHA256"}) as fx, \
            TlsServer(fx, "inetd", tls=True) as srv:
        p = TlsPop(srv.tls_port, client_context(pki))
        t.equal(p.tls.cipher()[0], "TLS_CHACHA20_POLY1305_SHA256", "ciphersuites= is used (1.3)")
        p.close()
        p = TlsPop(srv.tls_port, client_context(pki, max_version=ssl.TLSVersion.TLSv1_2))
        t.equal(p.tls.cipher()[0], "ECDHE-ECDSA-AES128-GCM-SHA256", "ciphers= is used (1.2)")
        p.close()


def busy_tls(t, pki):
    """The legacy daemon's session limit: on the implicit-TLS port the refusal must not be
    POP3 in the clear (a TLS client would read it as a broken record)."""
    with TlsFixture(pki, {"server.max_sessions_per_source": "2"}) as fx, \
            TlsServer(fx, "daemon", tls=True) as srv:
        ctx = client_context(pki)
        held = [TlsPop(srv.tls_port, ctx) for _ in range(2)]
        t.check(all(p.greeting.startswith(b"+OK") for p in held), "busy: two TLS sessions")
        sock = socket.create_connection(("127.0.0.1", srv.tls_port), timeout=WAIT)
        try:
            sock.sendall(client_hello(ctx))
        except OSError:
            pass
        closed, got = read_to_eof(sock)
        sock.close()
        t.check(closed and not got.startswith(b"-ERR") and b"Too many" not in got,
                "busy: the third TLS connection is refused without plaintext POP3", got)
        p = Pop(srv.port)
        t.check(p.greeting.startswith(b"-ERR [SYS/TEMP]"),
                "busy: on the plaintext port the refusal is -ERR [SYS/TEMP]", p.greeting)
        p.close()
        for p in held:
            p.cmd("QUIT")
            p.close()
        since = mark(fx)

        def works():
            try:
                q = TlsPop(srv.tls_port, ctx)
            except (OSError, ssl.SSLError):
                return False
            ok = q.greeting.startswith(b"+OK")
            q.close()
            return ok

        t.check(wait_for(works), "busy: TLS sessions are served again after the others end",
                fx.stderr_text()[since:])


# ---------------------------------------------------------------- the TLS 1.3 hand-over


def session_processes(fx):
    """Non-root mpopd processes of this fixture's config: the session (as the mailbox owner)
    and, while it relays, the pre-login process."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
            with open(f"/proc/{pid}/status") as f:
                uid = next(int(l.split()[1]) for l in f if l.startswith("Uid:"))
        except (OSError, StopIteration):
            continue
        if fx.conf.encode() in args and uid != 0:
            out.append(int(pid))
    return out


def s_client_keyupdate(t, fx, port, tag):
    """openssl s_client's k (KeyUpdate) and K (KeyUpdate, update requested) between commands
    (lowercase: s_client takes a line starting with Q or R as its own command)."""
    exp = fx.expect()
    msgs = os.path.join(fx.dir, "msg.txt")
    proc = subprocess.Popen(["openssl", "s_client", "-quiet", "-no_ign_eof", "-connect",
                             f"127.0.0.1:{port}", "-CAfile", fx.pki.ca, "-msgfile", msgs, "-msg"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    script = ["user alice", f"pass {PASSWORD}", "stat", "k", "stat", "K", "stat", "retr 1",
              "k", "K", "uidl", "quit"]
    for line in script:
        proc.stdin.write((line + "\r\n").encode())
        proc.stdin.flush()
        time.sleep(0.3)
    try:
        out, err = proc.communicate(timeout=WAIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    flags = [False] + [m for c, m in (("user", 0), ("pass", 0), ("stat", 0), ("stat", 0),
                                      ("stat", 0), ("retr", 1), ("uidl", 1), ("quit", 0))]
    replies = split_replies(out, flags)
    stat = b"+OK %d %d" % (len(exp), sum(pop_size(r) for _, r in exp))
    t.check([r[0] for r in replies[3:6]] == [stat] * 3,
            f"{tag}: STAT answered before and after each KeyUpdate", out + err)
    t.check(replies[6][1] == crlf(exp[0][1]), f"{tag}: RETR 1 byte-exact after two key updates",
            replies[6])
    want = b"".join(b"%d %s\r\n" % (i, u.encode()) for i, (u, _) in enumerate(exp, 1))
    t.equal(replies[7][1], want, f"{tag}: UIDL after four key updates")
    t.check(replies[8][0] is not None and replies[8][0].startswith(b"+OK"),
            f"{tag}: QUIT", replies[8:])
    with open(msgs, errors="replace") as f:
        trace = f.read()
    t.equal((trace.count(">>> TLS 1.3, Handshake [length 0005], KeyUpdate"),
             trace.count("<<< TLS 1.3, Handshake [length 0005], KeyUpdate")), (4, 2),
            f"{tag}: the client sent four KeyUpdates, the server answered the two that asked")


class RawTls:
    """A TLS client over memory BIOs: what goes on the wire is in the test's hands."""

    def __init__(self, port, ctx):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.cport = self.sock.getsockname()[1]
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname="127.0.0.1")
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._pump()
        self._flush()
        self.buf = b""

    def _flush(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def _pump(self):
        self._flush()
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.inc.write(data)

    def send(self, data):
        self.obj.write(data)
        self._flush()

    def line(self):
        while b"\r\n" not in self.buf:
            try:
                self.buf += self.obj.read(65536)
            except ssl.SSLWantReadError:
                self._pump()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def raw_to_eof(self):
        """Raw bytes the server sends until it closes (None if it does not within WAIT)."""
        got = b""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return got
                got += data
        except ConnectionResetError:
            return got
        except socket.timeout:
            return None


def handover(t, pki, mode):
    ctx = client_context(pki)
    relay_processes = 2 if os.geteuid() == 0 else 1
    # which TLS connections the session takes over (one process) and which stay with the
    # pre-login process relaying (two)
    for suite, maxv, want in (("TLS_AES_128_GCM_SHA256", None, 1),
                              ("TLS_AES_256_GCM_SHA384", None, 1),
                              ("TLS_CHACHA20_POLY1305_SHA256", None, 1),
                              ("", ssl.TLSVersion.TLSv1_2, relay_processes)):
        with TlsFixture(pki, {"tls.ciphersuites": suite} if suite else {}) as fx, \
                TlsServer(fx, mode, tls=True) as srv:
            exp = fx.expect()
            p = TlsPop(srv.tls_port, client_context(pki, max_version=maxv))
            _, r = p.login()
            name = p.tls.version() + " " + p.tls.cipher()[0]
            t.check(r.startswith(b"+OK"), f"{mode}: {name}: login", r)
            ok = wait_for(lambda: len(session_processes(fx)) == want)
            t.check(ok, f"{mode}: {name}: {want} process(es) serve the logged-in session",
                    session_processes(fx))
            t.equal(p.cmd("STAT"), b"+OK %d %d" % (len(exp), sum(pop_size(x) for _, x in exp)),
                    f"{mode}: {name}: STAT")
            t.check(p.cmd("RETR 2").startswith(b"+OK") and p.multi_raw() == crlf(exp[1][1]),
                    f"{mode}: {name}: RETR 2 byte-exact")
            t.check(p.cmd("QUIT").startswith(b"+OK"), f"{mode}: {name}: QUIT")
            t.check(p.closed(), f"{mode}: {name}: closed after QUIT")
            p.close()
    with TlsFixture(pki) as fx, TlsServer(fx, mode, tls=True) as srv:
        # pipelined commands in the record with PASS, beyond what the pre-login process's
        # line buffer takes (4 KiB): the rest is decrypted in OpenSSL and handed over
        exp = fx.expect()
        raw = RawTls(srv.tls_port, ctx)
        raw.line()
        n = 1500
        raw.send(b"USER alice\r\nPASS " + PASSWORD.encode() + b"\r\n" + b"NOOP\r\n" * n
                 + b"STAT\r\n")
        got = [raw.line() for _ in range(n + 3)]
        t.check(all(g.startswith(b"+OK") for g in got[:n + 2]) and
                got[-1] == b"+OK %d %d" % (len(exp), sum(pop_size(x) for _, x in exp)),
                f"{mode}: {n} NOOPs and STAT pipelined in the PASS record (~9 KiB) all answered",
                got[-3:])
        raw.send(b"QUIT\r\n")
        t.check(raw.line().startswith(b"+OK"), f"{mode}: pipelined: QUIT")
        raw.sock.close()

        # a forged record after the login: the connection ends with an alert, nothing of
        # the session's DELE is applied
        for label, junk, reason in (
                ("a record that fails authentication",
                 b"\x17\x03\x03\x00\x20" + os.urandom(32), "a record failed authentication"),
                ("an unprotected handshake record", b"\x16\x03\x03\x00\x04\x01\x00\x00\x00",
                 "an unprotected record"),
                ("a record over the size limit", b"\x17\x03\x03\x41\x01" + b"\0" * 64,
                 "a record over 2^14 + 256 bytes")):
            since = mark(fx)
            before = fx.listing("alice")
            raw = RawTls(srv.tls_port, ctx)
            raw.line()
            raw.send(b"USER alice\r\nPASS " + PASSWORD.encode() + b"\r\nDELE 1\r\n")
            got = [raw.line() for _ in range(3)]
            raw.sock.sendall(junk)
            rest = raw.raw_to_eof()
            raw.sock.close()
            t.check(got[2].startswith(b"+OK") and rest is not None and
                    rest[:1] == b"\x17" and len(rest) == 5 + 2 + 1 + 16,
                    f"{mode}: {label}: the server sends one alert record and closes",
                    (got, rest))
            settle(fx, since, lambda recs: events(peer_records(fx, raw.cport, since), "logout"))
            recs = peer_records(fx, raw.cport, since)
            t.check(any(reason in r["rest"] for r in events(recs, "tls")),
                    f"{mode}: {label}: logged as such",
                    "\n".join(r["line"] for r in recs))
            t.equal(fx.listing("alice"), before, f"{mode}: {label}: DELE 1 not applied")

        # close_notify instead of QUIT: the session ends, nothing deleted, close_notify back
        before = fx.listing("alice")
        p = TlsPop(srv.tls_port, ctx)
        p.login()
        t.check(p.cmd("DELE 1").startswith(b"+OK"), f"{mode}: close_notify: DELE 1")
        try:
            p.sock = p.tls.unwrap()
            back = True
        except (ssl.SSLError, OSError) as e:
            back = e
        p.sock.close()
        t.check(back is True, f"{mode}: close_notify from the client is answered with one",
                back)
        wait_for(lambda: not session_processes(fx))
        t.equal(fx.listing("alice"), before, f"{mode}: close_notify before QUIT: nothing deleted")

        s_client_keyupdate(t, fx, srv.tls_port, f"{mode}: KeyUpdate")


def main():
    need_binaries()
    t = Reporter("tls")
    with Pki() as pki:
        for mode in MODES:
            t.run(s_client_all, pki, mode)
            t.run(poplib_all, pki, mode)
            t.run(injection, pki, mode)
            t.run(garbage, pki, mode)
            t.run(no_plaintext, pki, mode)
            t.run(sasl_in_tls, pki, mode)
            t.run(handover, pki, mode)
        for mode in ("inetd", "daemon"):
            if shutil.which("curl"):
                t.run(curl_all, pki, mode)
            else:
                t.skip(f"{mode}: curl", "curl not installed")
            if shutil.which("fetchmail"):
                t.run(fetchmail_all, pki, mode)
            else:
                t.skip(f"{mode}: fetchmail", "fetchmail not installed")
        for policy, cert in (("loopback", True), ("always", True), ("", False),
                             ("always", False), ("loopback", False)):
            t.run(plaintext_allowed, pki, policy, cert)
        t.run(policy_check_config, pki)
        t.run(expired, pki)
        t.run(reload_swap, pki)
        t.run(check_config, pki)
        t.run(combined_serves, pki)
        t.run(versions, pki)
        t.run(busy_tls, pki)
    t.done()


if __name__ == "__main__":
    main()

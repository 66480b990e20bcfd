#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""mpopd behind HAProxy: a private haproxy (mode tcp, send-proxy-v2 and send-proxy servers) in
front of two mpopd instances that share one Maildir, a legacy daemon (A, also on an implicit
TLS port) and an inetd-style one under systemd-socket-activate (B). The client connects from
127.0.0.2: mail is fetched through either instance, a second login to the open mailbox
through the other one gets [IN-USE], and A's records name 127.0.0.2 as the peer and
127.0.0.1 as the proxy. Straight to mpopd: a connection from outside proxy_trusted_networks
is closed without a greeting, a garbage header or one that trickles past
proxy_header_timeout is closed, and a header followed at once by a command loses no byte."""

import os
import shutil
import socket
import struct
import subprocess
import time

from mpopdtest import (MPOPD, WAIT, Pop, Reporter, Server, free_port, lines_of, need_binaries,
                       stop_group, wait_for)
from tlsutil import Pki, TlsFixture, client_context

HEADER_TIMEOUT = 2
CLIENT = "127.0.0.2"  # the "real" client; haproxy and the trusted balancer are 127.0.0.1
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
V2_LOCAL = V2_SIG + b"\x20\x00\x00\x00"


def v2_header(src, sport, dst, dport):
    return (V2_SIG + b"\x21\x11\x00\x0c" + socket.inet_aton(src) + socket.inet_aton(dst)
            + struct.pack("!HH", sport, dport))


def port_taken(port):
    """Whether something listens on 127.0.0.1:port (binding it fails)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


HAPROXY_CFG = """\
global
    maxconn 256
    stats socket {dir}/haproxy.sock mode 600 level admin

defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s

# one frontend per instance and header version, so a test knows where it lands
frontend a_v2
    bind 127.0.0.1:{a_v2}
    default_backend a_v2
backend a_v2
    server a 127.0.0.1:{a} send-proxy-v2

frontend b_v2
    bind 127.0.0.1:{b_v2}
    default_backend b_v2
backend b_v2
    server b 127.0.0.1:{b} send-proxy-v2

frontend a_v1
    bind 127.0.0.1:{a_v1}
    default_backend a_v1
backend a_v1
    server a 127.0.0.1:{a} send-proxy

frontend b_v1
    bind 127.0.0.1:{b_v1}
    default_backend b_v1
backend b_v1
    server b 127.0.0.1:{b} send-proxy

# the production shape: both machines, no stickiness
frontend pop3
    bind 127.0.0.1:{rr}
    default_backend pop3
backend pop3
    balance roundrobin
    # health checks carry the header too (a v2 LOCAL one): a server is up when it greets
    option tcp-check
    tcp-check expect rstring ^\\+OK
    server a 127.0.0.1:{a} send-proxy-v2 check inter 1s
    server b 127.0.0.1:{b} send-proxy-v2 check inter 1s

# implicit TLS passes through; mpopd reads the header, then does the handshake
frontend pop3s
    bind 127.0.0.1:{tls}
    default_backend pop3s
backend pop3s
    option tcp-check
    tcp-check connect port {a} send-proxy
    tcp-check expect rstring ^\\+OK
    server a 127.0.0.1:{a_tls} send-proxy-v2 check inter 1s
"""


class Haproxy:
    def __init__(self, dirname, ports):
        self.cfg = os.path.join(dirname, "haproxy.cfg")
        self.log = os.path.join(dirname, "haproxy.log")
        self.ports = ports
        with open(self.cfg, "w") as f:
            f.write(HAPROXY_CFG.format(dir=dirname, **ports))
        self.sock = os.path.join(dirname, "haproxy.sock")
        self.proc = None

    def __enter__(self):
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(["haproxy", "-db", "-f", self.cfg],
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                         start_new_session=True)
        fronts = [p for k, p in self.ports.items() if k in ("a_v2", "b_v2", "a_v1", "b_v1",
                                                            "rr", "tls")]
        if not wait_for(lambda: self.proc.poll() is not None or all(map(port_taken, fronts))) \
                or self.proc.poll() is not None:
            self.__exit__()
            with open(self.log, errors="replace") as f:
                raise RuntimeError(f"haproxy did not start: {f.read()[-2000:]}")
        return self

    def __exit__(self, *exc):
        stop_group(self.proc)


class Daemon:
    """The legacy daemon in the foreground with its own config file and log."""

    def __init__(self, conf, log):
        self.conf, self.log = conf, log
        self.proc = None

    def text(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def __enter__(self):
        with open(self.log, "ab") as errf:
            self.proc = subprocess.Popen([MPOPD, "-F", "-c", self.conf],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=errf, start_new_session=True)
        if not wait_for(lambda: "event=start " in self.text() or self.proc.poll() is not None) \
                or self.proc.poll() is not None:
            self.__exit__()
            raise RuntimeError(f"daemon did not start: {self.text()[-2000:]}")
        return self

    def __exit__(self, *exc):
        stop_group(self.proc)


def records(text, event):
    return [line for line in text.splitlines() if f" event={event} " in line]


def fetch_all(t, fx, port, tag, source=CLIENT):
    """Log in as alice through port from source, check UIDL and every RETR, QUIT. Returns the
    client's own port."""
    p = Pop(port, source=source)
    cport = p.sock.getsockname()[1]
    t.check(p.greeting.startswith(b"+OK"), f"{tag}: greeting", p.greeting)
    _, r2 = p.login()
    t.check(r2.startswith(b"+OK"), f"{tag}: alice logs in", r2)
    r = p.cmd("UIDL")
    uidls = [line.split(b" ", 1)[1].decode() for line in p.multi()] if r.startswith(b"+OK") \
        else None
    t.equal(uidls, fx.uidls(), f"{tag}: UIDL lists the shared Maildir")
    ok = True
    for i, (_, raw) in enumerate(fx.expect(), 1):
        r = p.cmd(f"RETR {i}")
        ok = ok and r.startswith(b"+OK") and p.multi() == lines_of(raw)
    t.check(ok, f"{tag}: every message retrieved intact")
    t.check(p.cmd("QUIT").startswith(b"+OK"), f"{tag}: QUIT")
    p.close()
    return cport


def connect_raw(port, source, send=b""):
    s = socket.create_connection(("127.0.0.1", port), timeout=WAIT,
                                 source_address=(source, 0))
    if send:
        s.sendall(send)
    return s


def read_until_close(s, timeout=WAIT):
    """(bytes received, seconds until the server closed, or None if it did not). A close
    with the client's bytes unread reaches the client as a reset: that is a close too."""
    start = time.monotonic()
    s.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return data, time.monotonic() - start
            data += chunk
    except ConnectionResetError:
        return data, time.monotonic() - start
    except (socket.timeout, OSError):
        return data, None
    finally:
        s.close()


def test_through_haproxy(t, fx, a, ports):
    before = len(records(a.text(), "connect"))
    cport = fetch_all(t, fx, ports["a_v2"], "v2 through haproxy to A")
    fetch_all(t, fx, ports["b_v2"], "v2 through haproxy to B (inetd)")
    cport1 = fetch_all(t, fx, ports["a_v1"], "v1 through haproxy to A")
    fetch_all(t, fx, ports["b_v1"], "v1 through haproxy to B (inetd)")
    ok = wait_for(lambda: len(records(a.text(), "connect")) >= before + 2)
    conns = records(a.text(), "connect")[before:]
    for port, tag in ((cport, "v2"), (cport1, "v1")):
        mine = [r for r in conns if f" peer={CLIENT}:{port} " in r]
        t.check(ok and len(mine) == 1 and " proxy=127.0.0.1 " in mine[0],
                f"{tag}: A's connect record names the client {CLIENT}:{port} and "
                "proxy=127.0.0.1", "\n".join(conns))
    logins = [r for r in a.text().splitlines() if "user=<alice>" in r
              and f" peer={CLIENT}:{cport} " in r]
    t.check(logins and all(" proxy=127.0.0.1 " in r for r in logins),
            "v2: the session's later records (as alice) carry the client and the proxy",
            "\n".join(logins) or a.text()[-2000:])


def test_in_use(t, ports):
    for first, second, tag in (("a_v2", "b_v2", "A then B"), ("b_v2", "a_v2", "B then A")):
        p1 = Pop(ports[first], source=CLIENT)
        _, r1 = p1.login()
        p2 = Pop(ports[second], source=CLIENT)
        _, r2 = p2.login()
        t.check(r1.startswith(b"+OK") and r2.startswith(b"-ERR [IN-USE]"),
                f"{tag}: a second login to the open mailbox through the other instance gets "
                "[IN-USE]", (r1, r2))
        p2.close()
        p1.cmd("QUIT")
        p1.close()
        p3 = Pop(ports[second], source=CLIENT)
        _, r3 = p3.login()
        t.check(r3.startswith(b"+OK"), f"{tag}: once the first session ended it logs in", r3)
        p3.cmd("QUIT")
        p3.close()


def server_states(hp):
    """{"backend/server": status} of pop3 and pop3s from haproxy's stats socket."""
    data = b""
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(WAIT)
            s.connect(hp.sock)
            s.sendall(b"show stat\n")
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return {}  # not there yet
    out = {}
    for line in data.decode().splitlines():
        f = line.split(",")
        if len(f) > 17 and f[0] in ("pop3", "pop3s") and f[1] in ("a", "b"):
            out[f"{f[0]}/{f[1]}"] = f[17]
    return out


def test_health(t, hp, a):
    want = {"pop3/a": "UP", "pop3/b": "UP", "pop3s/a": "UP"}
    ok = wait_for(lambda: server_states(hp) == want, timeout=10)
    t.check(ok, "haproxy's health checks (tcp-check through the PROXY header, the TLS "
            "backend's on the plain port) see both instances UP", server_states(hp))
    checks = [r for r in records(a.text(), "connect") if " peer=127.0.0.1:" in r
              and " proxy=" not in r]
    t.check(len(checks) >= 1, "a health check is a connection of the balancer's own (v2 LOCAL)",
            records(a.text(), "connect")[-5:])


def test_round_robin(t, a, ports):
    before = len(records(a.text(), "login"))
    ok = 0
    for _ in range(4):
        p = Pop(ports["rr"], source=CLIENT)
        _, r = p.login()
        ok += r.startswith(b"+OK") and p.cmd("STAT").startswith(b"+OK 8 ")
        p.cmd("QUIT")
        p.close()
    wait_for(lambda: len(records(a.text(), "login")) >= before + 1, timeout=2)
    on_a = len(records(a.text(), "login")) - before
    t.check(ok == 4 and 1 <= on_a <= 3,
            "round robin without stickiness: four logins succeed, spread over A and B",
            f"ok {ok}, on A {on_a}")


def test_concurrent_through_balancer(t, ports):
    # max_sessions_per_source=2: the balancer's connections are not counted per source
    ps = [Pop(ports["a_v2"], source=CLIENT) for _ in range(4)]
    greetings = [p.greeting for p in ps]
    for p in ps:
        p.close()
    t.check(all(g.startswith(b"+OK") for g in greetings),
            "four concurrent sessions through the balancer (max_sessions_per_source=2)",
            greetings)


def test_tls(t, pki, a, ports):
    raw = connect_raw(ports["tls"], CLIENT)
    cport = raw.getsockname()[1]
    s = client_context(pki).wrap_socket(raw, server_hostname="127.0.0.1")
    f = s.makefile("rwb")
    greeting = f.readline()
    f.write(b"USER alice\r\n")
    f.flush()
    f.readline()
    f.write(b"PASS s3cret-Passw0rd\r\nSTAT\r\nQUIT\r\n")
    f.flush()
    r2, stat = f.readline(), f.readline()
    s.close()
    t.check(greeting.startswith(b"+OK") and r2.startswith(b"+OK") and stat.startswith(b"+OK 8 "),
            "implicit TLS through haproxy: the header comes before the handshake",
            (greeting, r2, stat))
    wait_for(lambda: any(f" peer={CLIENT}:{cport} " in r for r in records(a.text(), "connect")))
    mine = [r for r in records(a.text(), "connect") if f" peer={CLIENT}:{cport} " in r]
    t.check(len(mine) == 1 and "(TLS)" in mine[0] and " proxy=127.0.0.1 " in mine[0],
            "implicit TLS: the connect record names the client and the proxy", mine)


def test_direct(t, a, ports, b_port):
    a_port = ports["a"]
    for port, tag in ((a_port, "A"), (b_port, "B (inetd)")):
        data, closed = read_until_close(connect_raw(port, CLIENT))
        t.check(data == b"" and closed is not None and closed < 1.5,
                f"{tag}: a direct connection from untrusted {CLIENT} is closed without a "
                "greeting", (data, closed))
        hdr = v2_header("192.0.2.7", 4000, "127.0.0.1", port)
        data, closed = read_until_close(connect_raw(port, CLIENT, hdr + b"CAPA\r\n"))
        t.check(data == b"" and closed is not None,
                f"{tag}: a PROXY header from untrusted {CLIENT} is refused", (data, closed))
    t.check(wait_for(lambda: len(records(a.text(), "proxy-refused")) >= 2),
            "A logs event=proxy-refused naming the untrusted peer",
            a.text()[-1500:])
    t.check(all(f" peer={CLIENT}:" in r for r in records(a.text(), "proxy-refused")),
            "the refusal names the connection's own address", records(a.text(), "proxy-refused"))

    for junk, tag in ((b"USER alice\r\n", "a POP3 command"),
                      (b"PROXY TCP4 999.0.2.7 127.0.0.1 1 110\r\n", "a bad v1 address"),
                      (b"PROXY TCP4 192.0.2.7 127.0.0.1 1 110\n", "a v1 line without CR"),
                      (V2_SIG + b"\x21\x11\xff\xff", "an oversized v2 length"),
                      (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", "a TLS ClientHello")):
        data, closed = read_until_close(connect_raw(a_port, "127.0.0.1", junk))
        t.check(data == b"" and closed is not None and closed < 1.5,
                f"garbage header ({tag}) from the trusted balancer: closed at once", (data, closed))
    t.check(wait_for(lambda: len(records(a.text(), "proxy-invalid")) >= 5),
            "garbage headers are logged as event=proxy-invalid", a.text()[-1500:])

    # a header that stops half-way, and one that trickles: the timeout is for the whole header
    data, closed = read_until_close(connect_raw(a_port, "127.0.0.1", b"PROXY TCP4 192.0.2.7"))
    t.check(data == b"" and closed is not None and HEADER_TIMEOUT - 0.3 < closed < HEADER_TIMEOUT + 3,
            f"a header that stops half-way is closed after proxy_header_timeout "
            f"({HEADER_TIMEOUT} s)", (data, closed))
    s = connect_raw(a_port, "127.0.0.1")
    start = time.monotonic()
    line = b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 110\r\n"
    try:
        for i in range(len(line)):
            s.sendall(line[i:i + 1])
            time.sleep(0.25)
    except OSError:
        pass
    data, _ = read_until_close(s)
    elapsed = time.monotonic() - start
    t.check(data == b"" and elapsed < HEADER_TIMEOUT + 3,
            "a header trickled a byte every 0.25 s is closed at the timeout, not served",
            (data, elapsed))
    t.check(wait_for(lambda: len(records(a.text(), "proxy-timeout")) >= 2),
            "slow headers are logged as event=proxy-timeout", a.text()[-1500:])

    # a header and a command in one segment: the command is not lost
    s = connect_raw(a_port, "127.0.0.1", v2_header("192.0.2.7", 40001, "127.0.0.1", a_port)
                    + b"CAPA\r\n")
    s.settimeout(WAIT)
    buf = b""
    while b"\r\n.\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    s.close()
    t.check(buf.startswith(b"+OK") and b"\r\n+OK" in buf and b"USER\r\n" in buf,
            "a command sent with the header in one segment is answered (no byte taken)", buf)
    t.check(wait_for(lambda: any(" peer=192.0.2.7:40001 proxy=127.0.0.1 " in r
                                 for r in records(a.text(), "connect"))),
            "the header's client (192.0.2.7:40001) is the peer", records(a.text(), "connect"))

    # v2 LOCAL (a health check): the connection's own addresses, no proxy field
    s = connect_raw(a_port, "127.0.0.1", V2_LOCAL)
    cport = s.getsockname()[1]
    s.settimeout(WAIT)
    g = s.recv(512)
    s.close()
    t.check(g.startswith(b"+OK"), "v2 LOCAL: served", g)
    t.check(wait_for(lambda: any(f" peer=127.0.0.1:{cport} event=connect" in r
                                 for r in records(a.text(), "connect"))),
            "v2 LOCAL: the peer is the balancer itself, with no proxy field",
            records(a.text(), "connect")[-3:])


def test_direct_listener(t, a, ports):
    """A listen entry with proxy=off serves clients straight, in the same daemon."""
    p = Pop(ports["a_direct"], source=CLIENT)
    cport = p.sock.getsockname()[1]
    _, r2 = p.login()
    st = p.cmd("STAT")
    p.cmd("QUIT")
    p.close()
    t.check(p.greeting.startswith(b"+OK") and r2.startswith(b"+OK") and st.startswith(b"+OK 8 "),
            "listen entry \"... proxy=off\": a direct client from 127.0.0.2 is served",
            (p.greeting, r2, st))
    t.check(wait_for(lambda: any(f" peer={CLIENT}:{cport} event=connect" in r
                                 for r in records(a.text(), "connect"))),
            "proxy=off entry: the connection's own address is the peer, no proxy field",
            records(a.text(), "connect")[-3:])


def test_host_rules(t, a, ports):
    """The host rules judge the client the header names, not the balancer."""
    a_port = ports["a"]
    s = connect_raw(a_port, "127.0.0.1", v2_header("192.0.2.66", 40002, "127.0.0.1", a_port))
    data, closed = read_until_close(s)
    t.check(data.startswith(b"-ERR [SYS/PERM]") and closed is not None,
            "DENY 192.0.2.66: a client the header names 192.0.2.66 is refused", data)
    s = connect_raw(a_port, "127.0.0.1", v2_header("192.0.2.67", 40003, "127.0.0.1", a_port))
    s.settimeout(WAIT)
    g = s.recv(512)
    s.close()
    t.check(g.startswith(b"+OK"), "the same balancer's other client 192.0.2.67 is served", g)
    t.check(wait_for(lambda: any(" peer=192.0.2.66:40002 proxy=127.0.0.1 " in r
                                 for r in records(a.text(), "denied"))),
            "the denial is logged with the client as peer and the balancer as proxy",
            records(a.text(), "denied"))


def test_config(t, fx):
    conf = os.path.join(fx.dir, "bad.conf")
    with open(fx.conf) as f:
        text = f.read()
    with open(conf, "w") as f:
        f.write(text.replace("proxy_trusted_networks=127.0.0.1\n", ""))
    r = subprocess.run([MPOPD, "--check-config", "-c", conf], capture_output=True,
                       timeout=WAIT)
    err = (r.stdout + r.stderr).decode()
    t.check(r.returncode != 0 and "proxy_trusted_networks" in err,
            "--check-config: proxy_protocol without proxy_trusted_networks is an error", err)
    with open(conf, "w") as f:
        f.write(text.replace("proxy_trusted_networks=127.0.0.1\n",
                             "proxy_trusted_networks=127.0.0.1;lb.example.org\n"))
    r = subprocess.run([MPOPD, "--check-config", "-c", conf], capture_output=True,
                       timeout=WAIT)
    err = (r.stdout + r.stderr).decode()
    t.check(r.returncode != 0 and "lb.example.org" in err,
            "--check-config: a host name in proxy_trusted_networks is an error", err)


def test_systemd_ways(t, fx):
    """[server] proxy_protocol=off, yet a connection handed over by systemd or inetd expects a
    header: --proxy-protocol for one connection (inetd, Accept=yes), a socket named
    pop3-proxy (FileDescriptorName=) for the long-running service."""
    fx.write_config({"server.proxy_protocol": "off"})
    r = subprocess.run([MPOPD, "--inetd", "--proxy-protocol=v3", "-c", fx.conf],
                       capture_output=True, timeout=WAIT, stdin=subprocess.DEVNULL)
    t.equal(r.returncode, 2, "--proxy-protocol=v3 is refused")
    ways = (("inetd --proxy-protocol=v2", ["--accept", "--inetd"],
             [MPOPD, "--inetd", "--proxy-protocol=v2", "-c", fx.conf]),
            ("Accept=yes --proxy-protocol=any", ["--accept"],
             [MPOPD, "--proxy-protocol=any", "-c", fx.conf]),
            ("Accept=no, socket named pop3-proxy", ["--fdname=pop3-proxy"],
             [MPOPD, "-c", fx.conf]))
    for tag, act, cmd in ways:
        port = free_port()
        log = os.path.join(fx.dir, f"ways-{port}.log")
        with open(log, "wb") as errf:
            proc = subprocess.Popen(["systemd-socket-activate", *act, "-l",
                                     f"127.0.0.1:{port}", *cmd], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=errf,
                                    start_new_session=True)

        def text(path=log):
            with open(path, errors="replace") as f:
                return f.read()

        try:
            if not wait_for(lambda: "Listening on" in text() or proc.poll() is not None):
                t.check(False, f"{tag}: started", text()[-2000:])
                continue
            s = connect_raw(port, "127.0.0.1", v2_header("192.0.2.9", 5555, "127.0.0.1", port))
            s.settimeout(WAIT)
            greeting = s.recv(512)
            s.sendall(b"QUIT\r\n")
            read_until_close(s)
            t.check(greeting.startswith(b"+OK"), f"{tag}: greeting after the header", greeting)
            t.check(wait_for(lambda: any("peer=192.0.2.9:5555 proxy=127.0.0.1" in r
                                         for r in records(text(), "connect"))),
                    f"{tag}: the header's client is the peer, the balancer the proxy",
                    records(text(), "connect")[-3:])
            data, closed = read_until_close(connect_raw(port, "127.0.0.1", b"CAPA\r\n"))
            t.check(closed is not None and not data.startswith(b"+OK"),
                    f"{tag}: no header, no greeting: closed", (data, closed))
        finally:
            stop_group(proc)


def main():
    need_binaries()
    t = Reporter("proxy")
    if not shutil.which("haproxy"):
        t.check(False, "haproxy is installed (Debian package haproxy)")
        t.done()
    ports = {k: free_port() for k in ("a", "a_direct", "a_tls", "a_v2", "b_v2", "a_v1", "b_v1", "rr",
                                      "tls")}
    with Pki() as pki:
        fx = TlsFixture(pki, {"server.proxy_protocol": "any",
                              "server.proxy_trusted_networks": "127.0.0.1",
                              "server.proxy_header_timeout": str(HEADER_TIMEOUT),
                              "server.max_sessions_per_source": "2",
                              "auth.plaintext_auth": "always",
                              "access.hosts_allow_deny": "/tmp/mpopd-proxy-rules-unset"},
                        fmt="maildir")
        try:
            rules = os.path.join(fx.dir, "hosts.allow-deny")
            with open(rules, "w") as f:
                f.write("DENY 192.0.2.66\n")
            fx.write_config({"access.hosts_allow_deny": rules})
            fx.write_config({"server.listen": f"127.0.0.1:{ports['a']};"
                                              f"127.0.0.1:{ports['a_direct']} proxy=off",
                             "server.listen_tls": f"127.0.0.1:{ports['a_tls']}"})
            a_conf = os.path.join(fx.dir, "a.conf")
            shutil.copy(fx.conf, a_conf)
            b = Server(fx, "inetd")
            with Daemon(a_conf, os.path.join(fx.dir, "a.log")) as a, b:
                ports["b"] = b.port
                with Haproxy(fx.dir, ports) as hp:
                    t.run(test_health, hp, a)
                    t.run(test_through_haproxy, fx, a, ports)
                    t.run(test_in_use, ports)
                    t.run(test_round_robin, a, ports)
                    t.run(test_concurrent_through_balancer, ports)
                    t.run(test_tls, pki, a, ports)
                t.run(test_direct, a, ports, b.port)
                t.run(test_direct_listener, a, ports)
                t.run(test_host_rules, a, ports)
            t.run(test_config, fx)
            t.run(test_systemd_ways, fx)
        finally:
            fx.cleanup()
    t.done()


if __name__ == "__main__":
    main()

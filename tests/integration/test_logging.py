#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Logging in every run mode: nothing but POP3 on the connection, records where [log] target
sends them.

A classic inetd (xinetd, tcpd) hands the connection over on fds 0, 1 and 2: the fake one here
accepts on 127.0.0.1 and starts mpopd --inetd with the accepted socket on all three. The
test's own AF_UNIX datagram socket stands in for /dev/log ([log] syslog_socket).
"""

import os
import re
import signal
import socket
import subprocess
import threading
import time

from mpopdtest import (MPOPD, PASSWORD, WAIT, Fixture, Pop, Reporter, crlf, free_port,
                       need_binaries, wait_for)

JOURNALD = os.path.exists("/run/systemd/journal/socket")
LOG_MAIL = 2

_HEADER = re.compile(r"^<(\d+)>([A-Z][a-z]{2} [ 123]\d \d\d:\d\d:\d\d) ([^\[\s]+)\[(\d+)\]: (.*)$",
                     re.S)
_PAIR = re.compile(r'([a-z0-9_]+)=("(?:[^"\\]|\\.)*"|[^\s"]+)(?: |$)')
_ESC = re.compile(r"\\(x[0-9a-f]{2}|.)")


def unquote(v):
    if not v.startswith('"'):
        return v
    simple = {"r": "\r", "n": "\n", "t": "\t"}
    return _ESC.sub(lambda m: chr(int(m.group(1)[1:], 16)) if m.group(1)[0] == "x"
                    else simple.get(m.group(1), m.group(1)), v[1:-1])


def parse_syslog(data):
    """One datagram as a dict: pri, stamp, ident, pid, body, and the key=value pairs; None
    when it is not an RFC 3164 line of pairs."""
    m = _HEADER.match(data)
    if not m:
        return None
    rec = {"pri": int(m.group(1)), "stamp": m.group(2), "ident": m.group(3),
           "pid": int(m.group(4)), "body": m.group(5), "fields": {}}
    pos = 0
    body = rec["body"]
    while pos < len(body):
        p = _PAIR.match(body, pos)
        if not p:
            return None
        rec["fields"][p.group(1)] = unquote(p.group(2))
        pos = p.end()
    return rec


class Sink:
    """The test's syslog: an AF_UNIX datagram socket in the fixture."""

    def __init__(self, fx):
        self.path = os.path.join(fx.dir, "log.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o666)  # the session process runs as the mailbox owner
        self.sock.setblocking(False)
        self.raw = []
        self.records = []

    def drain(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return self.records
            text = data.decode("utf-8", "replace")
            self.raw.append(text)
            self.records.append(parse_syslog(text))

    def events(self, name, session=None):
        return [r for r in self.drain() if r and r["fields"].get("event") == name
                and (session is None or r["fields"].get("session") == session)]

    def wait_event(self, name, session=None):
        wait_for(lambda: self.events(name, session))
        return self.events(name, session)

    def close(self):
        self.sock.close()


def config(sink, **kw):
    c = {"log.target": "syslog", "log.syslog_socket": sink.path if sink else None,
         "log.level": "info"}
    c.update({k.replace("__", "."): v for k, v in kw.items()})
    return c


def fake_inetd(fx, args=()):
    """Accept one connection on 127.0.0.1 and start mpopd --inetd with it on fds 0, 1, 2.
    Returns (port, a function giving the mpopd process once it runs)."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    procs = []

    def serve():
        conn, _ = ls.accept()
        procs.append(subprocess.Popen([MPOPD, "--inetd", "-c", fx.conf, *args],
                                      stdin=conn, stdout=conn, stderr=conn))
        conn.close()
        ls.close()

    threading.Thread(target=serve, daemon=True).start()

    def proc():
        wait_for(lambda: procs)
        return procs[0]

    return ls.getsockname()[1], proc


class Raw:
    """A POP3 client that keeps every byte the server sent."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.stream = b""
        self.pos = 0
        self.eof = False

    def line(self):
        while b"\r\n" not in self.stream[self.pos:]:
            chunk = self.sock.recv(65536)
            if not chunk:
                self.eof = True
                rest = self.stream[self.pos:]
                self.pos = len(self.stream)
                return rest
            self.stream += chunk
        end = self.stream.index(b"\r\n", self.pos)
        line = self.stream[self.pos:end]
        self.pos = end + 2
        return line

    def cmd(self, text):
        self.sock.sendall(text.encode() + b"\r\n")
        return self.line()

    def multi(self):
        out = []
        while True:
            line = self.line()
            if line == b"." or self.eof:
                return out
            out.append(line[1:] if line.startswith(b".") else line)

    def rest(self):
        """Everything up to the server's close."""
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.stream += chunk
        self.sock.close()
        return self.stream


LOG_TEXT = (b"mpopd[", b"session=", b"event=", b"info:", b"debug:", b"error:")


def clean_stream(t, stream, what):
    t.check(stream.startswith(b"+OK "), f"{what}: the first line is the greeting",
            stream[:200])
    t.check(not any(s in stream for s in LOG_TEXT), f"{what}: no log text in the stream",
            stream[:2000])


def inetd_session(t, fx, what, user="alice"):
    """A full session through the fake inetd. Returns (stream, client port, mpopd pid)."""
    port, proc = fake_inetd(fx)
    c = Raw(port)
    cport = c.sock.getsockname()[1]
    greeting = c.line()
    t.check(greeting.startswith(b"+OK"), f"{what}: greeting", greeting)
    t.check(c.cmd(f"USER {user}").startswith(b"+OK"), f"{what}: USER")
    t.check(c.cmd(f"PASS {PASSWORD}").startswith(b"+OK"), f"{what}: PASS")
    t.check(c.cmd("STAT").startswith(b"+OK 8 "), f"{what}: STAT")
    t.check(c.cmd("LIST").startswith(b"+OK") and len(c.multi()) == 8, f"{what}: LIST")
    r = c.cmd("RETR 1")
    body = c.multi()
    t.equal(b"".join(line + b"\r\n" for line in body) if r.startswith(b"+OK") else r,
            crlf(fx.expect(user)[0][1]), f"{what}: RETR 1 is the message")
    t.check(c.cmd("QUIT").startswith(b"+OK"), f"{what}: QUIT")
    stream = c.rest()
    p = proc()
    try:
        p.wait(timeout=WAIT)
    except subprocess.TimeoutExpired:
        p.kill()
    t.equal(p.returncode, 0, f"{what}: mpopd --inetd exits 0")
    clean_stream(t, stream, what)
    return stream, cport, p.pid


def session_of(sink, cport):
    recs = sink.wait_event("connect")
    mine = [r for r in recs if r["fields"].get("peer") == f"127.0.0.1:{cport}"]
    return mine[0]["fields"]["session"] if mine else None


def test_inetd_syslog(t):
    """Classic inetd: a clean stream; connect, login, logout in syslog; [log] users detail."""
    with Fixture() as fx:
        sink = Sink(fx)
        fx.write_config(config(sink, log__users="alice"))
        _, cport, pid = inetd_session(t, fx, "inetd alice")
        sid = session_of(sink, cport)
        t.check(sid is not None, "inetd: a connect record with the client's address and port",
                "\n".join(sink.raw))
        logout = sink.wait_event("logout", sid)
        connect = sink.events("connect", sid)
        login = sink.events("login", sid)
        t.check(all(r for r in sink.records), "inetd: every datagram is an RFC 3164 line of "
                "key=value pairs", "\n".join(sink.raw))
        t.check(connect and connect[0]["pid"] == pid and connect[0]["ident"] == "mpopd",
                "inetd: ident mpopd with the pid of mpopd", "\n".join(sink.raw))
        t.check(all(r["pri"] >> 3 == LOG_MAIL for r in sink.records if r),
                "inetd: facility mail", "\n".join(sink.raw))
        t.check(connect and connect[0]["pri"] & 7 == 6, "inetd: connect at info")
        t.check(login and login[0]["fields"].get("user") == "alice"
                and login[0]["fields"].get("messages") == "8",
                "inetd: login record with user=alice and the message count",
                "\n".join(sink.raw))
        t.check(logout and logout[0]["fields"].get("user") == "alice"
                and logout[0]["fields"].get("retr", "").startswith("1/")
                and "msg" in logout[0]["fields"],
                "inetd: logout record with user, retr= and msg=", "\n".join(sink.raw))
        cmds = [r for r in sink.events("command", sid)]
        t.check(any(r["fields"].get("msg") == "C: RETR 1" and r["pri"] & 7 == 7 for r in cmds),
                "inetd: [log] users=alice: alice's commands at debug though level is info",
                "\n".join(sink.raw))

        # bob is not in [log] users: no command records for his session
        _, cport, _ = inetd_session(t, fx, "inetd bob", user="bob")
        sid = session_of(sink, cport)
        sink.wait_event("logout", sid)
        t.check(sid is not None and sink.events("login", sid) and not sink.events("command", sid),
                "inetd: bob (not in [log] users) gets no debug records", "\n".join(sink.raw))
        sink.close()


def test_inetd_stderr_is_connection(t):
    """target=stderr or auto with the connection on stderr: never there."""
    for target in ("stderr", "auto"):
        with Fixture() as fx:
            sink = Sink(fx)
            fx.write_config(config(sink, log__target=target))
            _, cport, _ = inetd_session(t, fx, f"inetd target={target}")
            if not JOURNALD:
                # without journald, records go to syslog
                sid = session_of(sink, cport)
                t.check(sid and sink.wait_event("logout", sid),
                        f"inetd target={target}: records in syslog instead",
                        "\n".join(sink.raw))
            sink.close()
    # no syslog and no journal to write to: the records are lost, the stream stays clean
    with Fixture() as fx:
        fx.write_config({"log.target": "auto", "log.level": "debug",
                         "log.syslog_socket": os.path.join(fx.dir, "no-such-socket")})
        inetd_session(t, fx, "inetd, no syslog")
    # an invalid configuration or command line is not reported to the client
    with Fixture() as fx:
        with open(fx.conf, "a") as f:
            f.write("[log]\nno_such_key=1\n")
        for what, args, rc in (("invalid configuration", (), 1),
                               ("unknown option", ("--no-such-option",), 2),
                               ("bad port", ("--inetd", "99999"), 2)):
            port, proc = fake_inetd(fx, args)
            c = Raw(port)
            stream = c.rest()
            p = proc()
            p.wait(timeout=WAIT)
            t.equal(p.returncode, rc, f"inetd, {what}: exit {rc}")
            t.equal(stream, b"", f"inetd, {what}: nothing on the connection")


def start_detached(fx, sink, port, pidfile):
    fx.write_config(config(sink, log__target="auto" if not JOURNALD else "syslog",
                           server__listen=f"127.0.0.1:{port}", server__pid_file=pidfile))
    # stdout and stderr are pipes: run() returns when every holder has let go of them
    return subprocess.run([MPOPD, "-c", fx.conf, str(port)], stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=WAIT)


def test_detached_daemon(t):
    """mpopd PORT: detaches, lets go of its starter's stderr, logs to syslog."""
    with Fixture() as fx:
        sink = Sink(fx)
        port = free_port()
        pidfile = os.path.join(fx.dir, "mpopd.pid")
        r = start_detached(fx, sink, port, pidfile)
        pid = None
        try:
            t.equal(r.returncode, 0, "daemon: the starter exits 0")
            t.equal((r.stdout, r.stderr), (b"", b""), "daemon: nothing on stdout and stderr")
            wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().count("\n") == 2)
            pid = int(open(pidfile).read().split()[0])
            t.check(os.path.exists(f"/proc/{pid}"), "daemon: runs with the pid in its pid file")
            fds = {os.readlink(f"/proc/{pid}/fd/{n}") for n in (0, 1, 2)}
            t.equal(fds, {"/dev/null"}, "daemon: fds 0-2 are /dev/null")
            t.check(sink.wait_event("start"), "daemon: the start record is in syslog",
                    "\n".join(sink.raw))
            p = Pop(port)
            _, ok = p.login()
            t.check(ok.startswith(b"+OK"), "daemon: login", ok)
            t.check(p.cmd("QUIT").startswith(b"+OK"), "daemon: QUIT")
            cport = p.sock.getsockname()[1]
            p.close()
            sid = session_of(sink, cport)
            logout = sink.wait_event("logout", sid)
            t.check(sid and sink.events("login", sid) and logout
                    and logout[0]["fields"].get("user") == "alice",
                    "daemon: connect, login and logout records in syslog", "\n".join(sink.raw))
            # a second daemon with the same pid file says so to whoever started it
            r2 = start_detached(fx, sink, free_port(), pidfile)
            t.check(r2.returncode == 1 and b"already running" in r2.stderr,
                    "daemon: a second one reports \"already running\" on its stderr, exit 1",
                    r2)
            os.kill(pid, signal.SIGTERM)
            t.check(sink.wait_event("stop"), "daemon: the stop record is in syslog")
            t.check(wait_for(lambda: not os.path.exists(f"/proc/{pid}")), "daemon: stopped")
            pid = None
        finally:
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            sink.close()


def run_foreground(fx, sink, target):
    port = free_port()
    fx.write_config(config(sink, log__target=target, server__listen=f"127.0.0.1:{port}",
                           server__pid_file=""))
    errf = open(fx.stderr_path, "wb")
    proc = subprocess.Popen([MPOPD, "-F", "-c", fx.conf], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=errf, start_new_session=True)
    errf.close()
    try:
        wait_for(lambda: "event=start" in fx.stderr_text() or sink.events("start")
                 or proc.poll() is not None)
        p = Pop(port)
        p.login()
        p.cmd("QUIT")
        cport = p.sock.getsockname()[1]
        p.close()
        wait_for(lambda: f"peer=127.0.0.1:{cport} user=<alice> event=logout" in fx.stderr_text()
                 or sink.events("logout"))
        time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=WAIT)
    return cport


def test_foreground(t):
    """-F: stderr for target stderr and auto, syslog for target syslog."""
    for target in ("stderr", "auto"):
        with Fixture() as fx:
            sink = Sink(fx)
            cport = run_foreground(fx, sink, target)
            text = fx.stderr_text()
            t.check(f"peer=127.0.0.1:{cport} event=connect" in text
                    and f"peer=127.0.0.1:{cport} user=<alice> event=logout" in text,
                    f"-F target={target}: records on stderr", text[-2000:])
            t.equal(sink.drain(), [], f"-F target={target}: nothing in syslog")
            sink.close()
    with Fixture() as fx:
        sink = Sink(fx)
        cport = run_foreground(fx, sink, "syslog")
        t.check("event=" not in fx.stderr_text(), "-F target=syslog: no records on stderr",
                fx.stderr_text()[-2000:])
        sid = session_of(sink, cport)
        t.check(sid and sink.events("logout", sid), "-F target=syslog: records in syslog",
                "\n".join(sink.raw))
        sink.close()


def main():
    need_binaries()
    t = Reporter("logging")
    t.run(test_inetd_syslog)
    t.run(test_inetd_stderr_is_connection)
    t.run(test_detached_daemon)
    t.run(test_foreground)
    t.done()


if __name__ == "__main__":
    main()

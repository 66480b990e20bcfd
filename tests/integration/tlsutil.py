# SPDX-License-Identifier: GPL-2.0-or-later
"""TLS helpers for the integration tests: a test PKI made with the openssl command line, a
fixture and a server runner that know about [tls], a raw POP3 client that speaks TLS, and a
parser for the records mpopd writes to stderr.

Python 3 standard library plus the openssl binary; everything on 127.0.0.1, every wait
bounded (mpopdtest.WAIT).
"""

import base64
import hashlib
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile

from mpopdtest import MPOPD, PASSWORD, WAIT, Fixture, Pop, Server, free_port, wait_for

# ---------------------------------------------------------------- test PKI

_CA_CNF = """\
[ca]
default_ca = test
[test]
dir = {dir}
database = {dir}/index.txt
new_certs_dir = {dir}/newcerts
serial = {dir}/serial
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
[anything]
commonName = supplied
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
[intermediate]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
"""


def _openssl(*args, cwd=None):
    r = subprocess.run(["openssl", *args], capture_output=True, timeout=WAIT, cwd=cwd)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {r.stderr.decode(errors='replace')}")
    return r.stdout


def _read(path):
    with open(path, "rb") as f:
        return f.read()


class Pki:
    """A throw-away PKI in a temp dir under /tmp (files readable by root only where keys).

    ca                      the root the clients trust (ca.pem)
    cert, key               server cert for localhost and 127.0.0.1, signed by the root
    cert2, key2             a second server cert, signed by an intermediate; cert2 holds the
                            chain (leaf + intermediate), so a server that sends only the leaf
                            fails verification
    expired, expired_key    a server cert (same names) valid 2020-01-01 .. 2021-01-01
    combined                cert and key in one file (for [tls] key empty)
    garbage                 a file that is no PEM at all
    stray_key               a key that belongs to no certificate
    """

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="mpopd-pki-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        d = self.dir
        os.mkdir(os.path.join(d, "newcerts"))
        with open(os.path.join(d, "index.txt"), "w"):
            pass
        with open(os.path.join(d, "serial"), "w") as f:
            f.write("1000\n")
        self.cnf = self.path("ca.cnf")
        with open(self.cnf, "w") as f:
            f.write(_CA_CNF.format(dir=d))
        self.ca_key = self.path("ca.key")
        self.ca = self.path("ca.pem")
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", self.ca_key, "-out", self.ca, "-days", "3650",
                 "-subj", "/CN=mpopd test root CA", "-addext",
                 "basicConstraints=critical,CA:TRUE", "-addext",
                 "keyUsage=critical,keyCertSign,cRLSign")
        self.inter, self.inter_key = self._issue("intermediate", self.ca, self.ca_key,
                                                 "intermediate", "/CN=mpopd test intermediate")
        self.cert, self.key = self._issue("server", self.ca, self.ca_key, "server")
        leaf2, self.key2 = self._issue("server2", self.inter, self.inter_key, "server")
        self.cert2 = self.path("server2-chain.pem")
        with open(self.cert2, "wb") as f:
            f.write(_read(leaf2) + _read(self.inter))
        self.expired, self.expired_key = self._issue(
            "expired", self.ca, self.ca_key, "server",
            dates=("-startdate", "20200101000000Z", "-enddate", "20210101000000Z"))
        self.combined = self.path("combined.pem")
        with open(self.combined, "wb") as f:
            f.write(_read(self.cert) + _read(self.key))
        os.chmod(self.combined, 0o600)
        self.garbage = self.path("garbage.pem")
        with open(self.garbage, "w") as f:
            f.write("this is not a certificate\n-----BEGIN CERTIFICATE-----\nAAAA\n")
        self.stray_key = self.path("stray.key")
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-out", self.stray_key)
        for name in os.listdir(d):
            if name.endswith(".key"):
                os.chmod(os.path.join(d, name), 0o600)

    def path(self, name):
        return os.path.join(self.dir, name)

    def _issue(self, name, signer, signer_key, ext, subj="/CN=localhost", dates=("-days", "30")):
        key, csr, crt = self.path(name + ".key"), self.path(name + ".csr"), self.path(name + ".pem")
        _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", key, "-out", csr, "-subj", subj)
        _openssl("ca", "-batch", "-config", self.cnf, "-cert", signer, "-keyfile", signer_key,
                 "-extensions", ext, "-notext", "-in", csr, "-out", crt, *dates)
        return crt, key

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()


def fingerprint_pem(path):
    """SHA-256 of the DER form of the first certificate in a PEM file."""
    text = _read(path).decode()
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.S)
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(m.group(0))).hexdigest()


def fingerprint_sock(sock):
    return hashlib.sha256(sock.getpeercert(binary_form=True)).hexdigest()


def client_context(pki, verify=True, max_version=None):
    """A client context that trusts only the test root (hostname 127.0.0.1 checked against
    the IP SAN), or one that verifies nothing (to look at whatever the server sends)."""
    if verify:
        ctx = ssl.create_default_context(cafile=pki.ca)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


def client_hello(ctx):
    """The bytes of a real ClientHello (the first flight of a handshake into memory)."""
    out = ssl.MemoryBIO()
    tls = ctx.wrap_bio(ssl.MemoryBIO(), out, server_hostname="127.0.0.1")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


# ---------------------------------------------------------------- fixture and server


_DEFAULT = object()


class TlsFixture(Fixture):
    """A Fixture whose write_config() merges into the keys given so far instead of starting
    again from the base config (the daemon runner rewrites [server] listen; the [tls] keys
    must survive that). A value of None removes a key.

    cert/key: the [tls] certificate and key (None: no [tls] group, TLS off)."""

    def __init__(self, pki, extra=None, cert=_DEFAULT, key=_DEFAULT, **kw):
        self.pki = pki
        self.extra = {}
        base = {}
        if cert is _DEFAULT:
            cert = pki.cert
            key = pki.key if key is _DEFAULT else key
        if cert is not None:
            base["tls.certificate"] = cert
            if key is not None and key is not _DEFAULT:
                base["tls.key"] = key
        base.update(extra or {})
        super().__init__(base, **kw)

    def write_config(self, extra):
        self.extra.update(extra)
        super().write_config(self.extra)

    def records(self, since=0):
        return parse_records(self.stderr_text()[since:])


class TlsServer(Server):
    """Server with tls=True: inetd/accept run `mpopd --tls` (the connection is implicit TLS,
    port = tls_port); the daemon gets [server] listen_tls = 127.0.0.1:tls_port besides its
    plaintext listen port."""

    def __init__(self, fixture, mode="inetd", tls=False):
        super().__init__(fixture, mode)
        self.tls = tls
        if not tls:
            self.tls_port = None
        elif mode == "daemon":
            self.tls_port = free_port()
        else:
            self.tls_port = self.port

    def start(self):
        errf = open(self.fx.stderr_path, "ab")
        if self.mode in ("inetd", "accept"):
            cmd = ["systemd-socket-activate", "--accept", "-l", f"127.0.0.1:{self.port}"]
            if self.mode == "inetd":
                cmd.insert(2, "--inetd")
            cmd += [MPOPD, "-c", self.fx.conf] + (["--tls"] if self.tls else [])
        elif self.mode == "daemon":
            self.fx.write_config({
                "server.listen": f"127.0.0.1:{self.port}",
                "server.listen_tls": f"127.0.0.1:{self.tls_port}" if self.tls else None})
            cmd = [MPOPD, "-F", "-c", self.fx.conf]
        else:
            raise ValueError(self.mode)
        starts = self.fx.stderr_text().count("event=start ")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=errf, start_new_session=True)
        errf.close()
        if self.mode == "daemon":
            # the start record comes after every listener is bound; no probe connection
            # (one to the TLS port would leave a tls-failed record behind)
            ok = wait_for(lambda: self.fx.stderr_text().count("event=start ") > starts
                          or self.proc.poll() is not None)
        else:
            # the fixture's log may hold another server's line already: wait for this port's
            ok = wait_for(lambda: f"Listening on 127.0.0.1:{self.port} " in self.fx.stderr_text()
                          or self.proc.poll() is not None)
        ok = ok and self.proc.poll() is None
        if not ok:
            self.stop()
            raise RuntimeError(f"{self.mode} server did not start: {self.fx.stderr_text()[-2000:]}")
        return self

    @property
    def pid(self):
        return self.proc.pid


# ---------------------------------------------------------------- raw client


_EOF_ERRORS = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionResetError, BrokenPipeError)


class Ports:
    """The plaintext (STLS) port and the implicit-TLS port of one run mode: two
    systemd-socket-activate runs (inetd, accept: the second with --tls), or one legacy daemon
    with listen and listen_tls."""

    def __init__(self, fx, mode):
        self.mode = mode
        if mode == "daemon":
            self.servers = [TlsServer(fx, mode, tls=True)]
        else:
            self.servers = [TlsServer(fx, mode), TlsServer(fx, mode, tls=True)]

    def __enter__(self):
        try:
            for s in self.servers:
                s.start()
        except Exception:
            self.__exit__()
            raise
        self.port = self.servers[0].port
        self.tls_port = self.servers[-1].tls_port
        return self

    def __exit__(self, *exc):
        for s in self.servers:
            s.stop()


class TlsPop(Pop):
    """Pop over TLS: implicit (handshake right after connect) or plaintext until stls()."""

    def __init__(self, port, ctx=None, implicit=True, timeout=WAIT):
        self.ctx = ctx
        self.tls = None
        if implicit:
            raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            self.cport = raw.getsockname()[1]
            self.sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
            self.sock.settimeout(timeout)
            self.tls = self.sock
            self.buf = b""
            self.eof = False
            self.greeting = self.line()
        else:
            super().__init__(port, timeout)
            self.cport = self.sock.getsockname()[1]

    def stls(self, ctx=None):
        """Send STLS; on +OK do the handshake (raises ssl.SSLError if it fails)."""
        r = self.cmd("STLS")
        if r.startswith(b"+OK"):
            if self.buf:
                raise AssertionError(f"bytes after the STLS reply before TLS: {self.buf!r}")
            self.start_tls(ctx)
        return r

    def start_tls(self, ctx=None):
        self.sock = (ctx or self.ctx).wrap_socket(self.sock, server_hostname="127.0.0.1")
        self.tls = self.sock

    def line(self):
        try:
            return super().line()
        except _EOF_ERRORS:
            self.eof = True
            rest, self.buf = self.buf, b""
            return rest

    def closed(self, timeout=WAIT):
        """True if the server ends the connection (EOF, close_notify, reset) within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except _EOF_ERRORS:
            return True
        except (socket.timeout, OSError):
            return False

    def read_all(self, timeout=WAIT):
        """Everything until the server closes (bounded); (bytes, closed?)."""
        closed = self.closed(timeout)
        data, self.buf = self.buf, b""
        return data, closed

    def multi_raw(self):
        """Body of a multi-line response as the original octets: dot-unstuffed lines, each
        ended by CRLF (what RETR of a message stored with CRLF line ends gives)."""
        return b"".join(line + b"\r\n" for line in self.multi())

    def capa(self):
        r = self.cmd("CAPA")
        if not r.startswith(b"+OK"):
            return r, []
        return r, [l.decode() for l in self.multi()]


def sasl_plain(user="alice", password=PASSWORD, authz=""):
    return base64.b64encode(f"{authz}\0{user}\0{password}".encode()).decode()


# ---------------------------------------------------------------- log records

# stderr form (src/log.c): "mpopd[PID]: LEVEL: [session=S ][peer=P ][user=<U> ][event=E ]MSG F1 F2"
_RECORD = re.compile(r"^(?P<ident>[^\[\s]+)\[(?P<pid>\d+)\]: (?P<level>[a-z]+): "
                     r"(?:session=(?P<session>\S+) )?(?:peer=(?P<peer>\S+) )?"
                     r"(?:user=<(?P<user>[^>]*)> )?(?:event=(?P<event>\S+) )?(?P<rest>.*)$")


def parse_records(text):
    """Every mpopd record in a stderr log as a dict (ident, pid, level, session, peer, user,
    event, rest, line); lines that are no record (systemd-socket-activate's) are skipped."""
    out = []
    for line in text.splitlines():
        m = _RECORD.match(line)
        if m and m.group("ident").startswith("mpopd"):
            d = m.groupdict()
            d["line"] = line
            out.append(d)
    return out


def peer_records(fx, cport, since=0):
    """The records of the connection whose client port is cport."""
    return [r for r in fx.records(since) if r["peer"] == f"127.0.0.1:{cport}"]


def events(recs, name):
    return [r for r in recs if r["event"] == name]


# the TLS field of a login record: MPOPD_TLS=<protocol> <cipher> (stderr " TLS=..." or " tls=...")
_TLS_FIELD = re.compile(r"(?:^|\s)(?i:tls)=(TLSv1(?:\.[0-3])?|SSLv3) (\S+)")


def tls_field(record):
    """(protocol, cipher) of a record's TLS field, or None."""
    m = _TLS_FIELD.search(record["rest"])
    return (m.group(1), m.group(2)) if m else None

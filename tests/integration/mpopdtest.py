# SPDX-License-Identifier: GPL-2.0-or-later
"""Shared helpers for the integration tests: fixtures, server runners, a raw POP3 client.

Everything listens on 127.0.0.1, every wait is bounded, and every fixture lives in a
temporary directory under /tmp that the test removes again.
"""

import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

# One free_port() and wait_for() for the tests, the benchmarks and tools/compare.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from peers import free_port, greets, stop_group, wait_for  # noqa: E402,F401

MPOPD = os.environ.get("MPOPD", "")
MPOPDCTL = os.environ.get("MPOPDCTL", "")
SRCDIR = os.environ.get("SRCDIR", "")
IS_ROOT = os.geteuid() == 0
# As root mpopd drops to the user list entry's uid/gid: an arbitrary unused id is enough
# (no passwd entry needed) and proves the drop happened. Otherwise mpopd serves only
# entries with its own uid.
TEST_UID = 4242 if IS_ROOT else os.getuid()
TEST_GID = 4242 if IS_ROOT else os.getgid()
PASSWORD = "s3cret-Passw0rd"
WAIT = 15.0  # seconds: upper bound for any single wait
# The mailbox format every Fixture uses unless told otherwise: meson registers the
# real-client tests once per format (issue 3: mbox passes the same tables as Maildir).
FORMAT = os.environ.get("MPOPD_TEST_FORMAT", "maildir")


# ---------------------------------------------------------------- TAP-ish reporting


class Reporter:
    """Counts results and prints "ok N - name" / "not ok N - name" lines."""

    def __init__(self, name):
        self.name = name
        self.n = 0
        self.failed = 0

    def check(self, cond, what, detail=""):
        self.n += 1
        if cond:
            print(f"ok {self.n} - {what}", flush=True)
        else:
            self.failed += 1
            print(f"not ok {self.n} - {what}", flush=True)
            if detail:
                for line in str(detail).splitlines()[:40]:
                    print(f"#   {line}", flush=True)
        return cond

    def equal(self, got, want, what):
        return self.check(got == want, what, f"got:  {short(got)}\nwant: {short(want)}")

    def skip(self, what, why):
        self.n += 1
        print(f"ok {self.n} - {what} # SKIP {why}", flush=True)

    def run(self, func, *args):
        """Run one test function; an exception counts as a failure, not a crash."""
        try:
            func(self, *args)
        except Exception as e:  # noqa: BLE001 - any exception is a test failure
            import traceback

            self.check(False, f"{func.__name__}{args!r} raised {type(e).__name__}",
                       traceback.format_exc())

    def done(self):
        print(f"1..{self.n}")
        print(f"# {self.name}: {self.n - self.failed} passed, {self.failed} failed", flush=True)
        sys.exit(1 if self.failed or self.n == 0 else 0)


def short(v, limit=300):
    r = repr(v)
    return r if len(r) <= limit else r[:limit] + f"... ({len(r)} chars)"


def need_binaries():
    if not MPOPD or not os.access(MPOPD, os.X_OK):
        print("Bail out! MPOPD is not set to the built mpopd binary")
        sys.exit(99)


# ---------------------------------------------------------------- fixture messages

BIG = b"".join(b"Line %06d of the big message, padding padding padding padding.\n" % i
               for i in range(16400))  # just over 1 MiB

MESSAGES = [
    # (file name relative to the maildir, raw stored bytes). Most carry a Message-ID (the
    # mbox UIDL source after X-UIDL); two do not, so the mbox runs also use the digest.
    ("cur/1700000001.M1P1.fixture:2,S",
     b"From: Alice <alice@example.org>\nTo: bob@example.org\nSubject: plain\n"
     b"Message-ID: <plain.1@fixture.example.org>\n\n"
     b"Hello Bob,\nthis is a plain message.\n"),
    ("cur/1700000002.M2P2.fixture:2,",
     b"From: a@example.org\nSubject: dots\nMessage-ID: <dots.2@fixture.example.org>\n\n"
     b".leading dot\n..two dots\n.\n. \nend\n"),
    ("cur/1700000003.M3P3.fixture",
     b"From: a@example.org\nSubject: no final newline\n"
     b"Message-ID: <nonl.3@fixture.example.org>\n\nlast line without newline"),
    ("new/1700000004.M4P4.fixture",
     b"From: a@example.org\r\nSubject: crlf\r\nMessage-ID: <crlf.4@fixture.example.org>\r\n"
     b"\r\nCRLF line one\r\n.CRLF dot line\r\n"),
    ("new/1700000005.M5P5.fixture",
     b"From: a@example.org\nSubject: =?ISO-8859-1?Q?8bit?=\nContent-Type: text/plain; "
     b"charset=ISO-8859-1\nContent-Transfer-Encoding: 8bit\n\nGr\xfc\xdfe, "
     b"caf\xc3\xa9, \xff\xfe\x80 high bytes\n"),
    ("new/1700000006.M6P6.fixture",
     b"From: a@example.org\nSubject: big\nMessage-ID: <big.6@fixture.example.org>\n\n" + BIG),
    ("new/1700000007.M7P7.fixture",
     b"From: a@example.org\nSubject: headers only\n"),
    # "From " lines in the body: stored as is in a maildir, mboxrd-quoted in an mbox.
    ("new/1700000008.M8P8.fixture",
     b"From: a@example.org\nSubject: from lines\nMessage-ID: <from.8@fixture.example.org>\n"
     b"\nFrom the start of a line\n>From once quoted\n>>From twice\nFrom\n\nFrom x\n"),
]

MBOX_FROM = b"From test@example.org Mon Jan  1 00:00:00 2024\n"
_FROM_LINE = re.compile(rb"^(>*From )", re.M)


def mboxrd_quote(raw):
    """mboxrd: every line matching ^>*From gets one more '>'."""
    return _FROM_LINE.sub(rb">\1", raw)


def mbox_entry(raw):
    """One message as an mbox holds it: From_ line, quoted bytes, final newline, separator."""
    body = mboxrd_quote(raw)
    if not body.endswith(b"\n"):
        body += b"\n"
    return MBOX_FROM + body + b"\n"


def mbox_split(data):
    """The stored (still quoted) contents of the messages of an mbox file: a message starts
    with a "From " line at the start or after an empty line; the empty line before the next
    one is the separator, not part of the message."""
    starts = [m.start() for m in re.finditer(rb"(?:\A|(?<=\n\n))From ", data)]
    out = []
    for i, st in enumerate(starts):
        end = starts[i + 1] - 1 if i + 1 < len(starts) else len(data)
        body = data[data.index(b"\n", st) + 1 if b"\n" in data[st:] else len(data):end]
        if i + 1 == len(starts) and body.endswith(b"\n\n"):
            body = body[:-1]
        out.append(body)
    return out


def mbox_uidl(stored):
    """The UIDL mpopd announces for a stored mbox message with the default uidl_source
    (x-uidl message-id digest): the header's trimmed, unfolded value if it is a valid UIDL,
    else the first 40 hex digits of the SHA-256 of the header section (RFC 1939 §7 range)."""
    lines = stored.split(b"\n")
    hlen, headers = 0, []
    for i, line in enumerate(lines):
        if line in (b"", b"\r") and i < len(lines) - 1:
            break
        if i == len(lines) - 1:  # no blank line: the whole message is header
            hlen = len(stored)
            break
        hlen += len(line) + 1
        if line[:1] in (b" ", b"\t") and headers:
            headers[-1] += line.rstrip(b"\r")
        else:
            headers.append(line.rstrip(b"\r"))

    def value(name):
        for h in headers:
            k, sep, v = h.partition(b":")
            if sep and k.strip().lower() == name:
                return v.strip(b" \t")
        return None

    def valid(v):
        return v is not None and 1 <= len(v) <= 70 and all(0x21 <= c <= 0x7E for c in v)

    x = value(b"x-uidl")
    if x is not None and x.startswith(b"mpop") and valid(x[4:]):
        return x[4:].decode()
    if valid(x):
        return x.decode()
    m = value(b"message-id")
    if valid(m):
        return m.decode()
    return hashlib.sha256(stored[:hlen]).hexdigest()[:40]


def lines_of(raw):
    """The message as a list of lines without line ends, as RFC 1939 transfers it."""
    text = raw.replace(b"\r\n", b"\n")
    lines = text.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def crlf(raw):
    """What RETR sends (before byte-stuffing): every line ended by CRLF."""
    return b"".join(line + b"\r\n" for line in lines_of(raw))


def lf(raw):
    return b"".join(line + b"\n" for line in lines_of(raw))


def pop_size(raw):
    return len(crlf(raw))


def uidl_of(name):
    return os.path.basename(name).split(":", 1)[0]


# ---------------------------------------------------------------- fixture directory


class Fixture:
    """A temp dir with mailboxes, a user list and a config.

    Users: alice (mailbox from the location pattern), bob (mailbox field in the user list),
    carol (empty maildir; absent mbox). All share PASSWORD. fmt "maildir" or "mbox"
    (default: MPOPD_TEST_FORMAT); for mbox each user has <dir>/mail/<user>.mbox holding the
    messages in the order a maildir lists them, so both formats announce the same table.
    """

    def __init__(self, config_extra=None, messages=None, visible=None, fmt=None):
        self.dir = tempfile.mkdtemp(prefix="mpopd-it-", dir="/tmp")
        # where the server sees self.dir (a container bind mount), for paths in the files
        self.vdir = visible or self.dir
        # [log] target: stderr, the file the runners here give mpopd (auto would choose
        # journald or syslog for these non-interactive ways in; test_logging.py tests the
        # targets); in a container the units' default, auto: the journal.
        self.log_target = None if visible else "stderr"
        os.chmod(self.dir, 0o755)  # the session uid must traverse it
        self.format = fmt or FORMAT
        if self.format not in ("maildir", "mbox"):
            raise ValueError(f"MPOPD_TEST_FORMAT={self.format!r}: maildir or mbox")
        self.messages = MESSAGES if messages is None else messages
        self.mail = os.path.join(self.dir, "mail")
        os.mkdir(self.mail)
        os.chmod(self.mail, 0o755)
        self.maildirs = {}
        self.mboxes = {}
        users = (("alice", self.messages), ("bob", self.messages), ("carol", []))
        for user, msgs in users:
            if self.format == "maildir":
                self.maildirs[user] = self.make_maildir(
                    os.path.join(self.mail, user, "Maildir"), msgs)
            else:
                self.mboxes[user] = self.make_mbox(os.path.join(self.mail, user + ".mbox"),
                                                   msgs if user != "carol" else None)
        if self.format == "mbox" and IS_ROOT:
            # the session (uid 4242) creates <mbox>.lock and renames at UPDATE in here
            os.chown(self.mail, TEST_UID, TEST_GID)
        self.boxes = self.maildirs if self.format == "maildir" else self.mboxes
        self.hash = make_hash(PASSWORD)
        self.userlist = os.path.join(self.dir, "users")
        with open(self.userlist, "w") as f:
            f.write("# test users\n")
            f.write(f"alice:{self.hash}:{TEST_UID}:{TEST_GID}\n")
            f.write(f"bob:{self.hash}:{TEST_UID}:{TEST_GID}:{self.v(self.boxes['bob'])}\n")
            f.write(f"carol:{self.hash}:{TEST_UID}:{TEST_GID}\n")
        os.chmod(self.userlist, 0o600)
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.conf = os.path.join(self.dir, "mpopd.conf")
        self.write_config(config_extra or {})

    def v(self, path):
        """path as the server sees it."""
        return self.vdir + path[len(self.dir):] if path.startswith(self.dir) else path

    def make_maildir(self, path, msgs):
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(path, sub), exist_ok=True)
        for name, raw in msgs:
            with open(os.path.join(path, name), "wb") as f:
                f.write(raw)
        if IS_ROOT:
            top = os.path.dirname(path)
            for root, dirs, files in os.walk(top):
                os.chown(root, TEST_UID, TEST_GID)
                for n in files:
                    os.chown(os.path.join(root, n), TEST_UID, TEST_GID)
            os.chmod(top, 0o700)
        return path

    def make_mbox(self, path, msgs):
        """msgs None: no file (an absent mbox is an empty maildrop)."""
        if msgs is not None:
            with open(path, "wb") as f:
                for _, raw in sorted(msgs, key=lambda m: uidl_of(m[0])):
                    f.write(mbox_entry(raw))
            if IS_ROOT:
                os.chown(path, TEST_UID, TEST_GID)
            os.chmod(path, 0o600)
        return path

    def expect(self, user="alice"):
        """[(uidl, raw)] in the order the server numbers the fixture's messages."""
        msgs = sorted(self.messages if user != "carol" else [], key=lambda m: uidl_of(m[0]))
        if self.format == "maildir":
            return [(uidl_of(n), raw) for n, raw in msgs]
        return [(mbox_uidl(mboxrd_quote(raw) if raw.endswith(b"\n") else
                           mboxrd_quote(raw) + b"\n"), raw) for _, raw in msgs]

    def uidls(self, user="alice"):
        return [u for u, _ in self.expect(user)]

    def deliver(self, raw, user="alice", name="1800000000.M9P9.late"):
        """A message delivered while a session runs (maildir: into new/; mbox: appended).
        Returns its UIDL."""
        if self.format == "maildir":
            path = os.path.join(self.maildirs[user], "new", name)
            with open(path, "wb") as f:
                f.write(raw)
            uidl = uidl_of(name)
        else:
            path = self.mboxes[user]
            with open(path, "ab") as f:
                f.write(mbox_entry(raw))
            uidl = mbox_uidl(mbox_split(mbox_entry(raw))[0])
        if IS_ROOT:
            os.chown(path, TEST_UID, TEST_GID)
        return uidl

    def write_config(self, extra):
        if self.format == "maildir":
            mailbox = {"format": "maildir",
                       "location": self.v(os.path.join(self.mail, "%u", "Maildir"))}
        else:
            # the fixture has no Status:/Content-Length: style bookkeeping headers, so the
            # default show_headers hides nothing the tests compare
            mailbox = {"format": "mbox", "from_quoting": "mboxrd",
                       "location": self.v(os.path.join(self.mail, "%u.mbox"))}
        groups = {
            "server": {"idle_timeout": "60", "pid_file": ""},
            "mailbox": mailbox,
            # The failure penalty's table in the fixture (never the host's /run/mpopd), and
            # no growing delays or blocks: tests that fail logins on purpose would slow
            # down or lock out the ones after them. test_penalty.py turns it on.
            "auth": {"default": "userlist", "userlist": self.v(self.userlist),
                     "penalty_state": self.v(os.path.join(self.dir, "penalty", "state")),
                     "penalty_delay_after": "1000", "penalty_block_after": "0",
                     "penalty_user_block_after": "0"},
            "log": {"level": "debug", "target": self.log_target},
        }
        for key, value in extra.items():
            group, name = key.split(".", 1)
            groups.setdefault(group, {})[name] = value
        with open(self.conf, "w") as f:
            for group, keys in groups.items():
                f.write(f"[{group}]\n")
                for k, v in keys.items():
                    if v is not None:
                        f.write(f"{k}={v}\n")
                f.write("\n")

    def listing(self, user="alice"):
        """Sorted UIDLs of the messages now in the user's mailbox: maildir file names (cur
        and new, unique part) or, for mbox, the UIDLs of the messages the file holds."""
        if self.format == "mbox":
            try:
                with open(self.mboxes[user], "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                return []
            return sorted(mbox_uidl(m) for m in mbox_split(data))
        out = []
        md = self.maildirs[user]
        for sub in ("cur", "new"):
            out += [uidl_of(n) for n in os.listdir(os.path.join(md, sub))]
        return sorted(out)

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()


def make_hash(password):
    """A yescrypt hash from mpopdctl passwd (password on stdin)."""
    r = subprocess.run([MPOPDCTL, "passwd"], input=(password + "\n").encode(),
                       capture_output=True, timeout=WAIT)
    out = r.stdout.decode().strip()
    if r.returncode != 0 or not out.startswith("$"):
        raise RuntimeError(f"mpopdctl passwd failed (rc {r.returncode}): {r.stderr!r} {r.stdout!r}")
    return out.splitlines()[-1]


def fetchmail(fx, port, tag, options, keep=True):
    """fetchmail from 127.0.0.1:port as alice with a private rc file; options is the rest of
    its "options" line (sslproto '' for plain POP3, ssl/sslcertck... for TLS). Returns (rc,
    the messages as delivered, one per MDA run, fetchmail's output)."""
    out = os.path.join(fx.dir, "fetched-" + tag)
    os.mkdir(out)
    rc = os.path.join(fx.dir, "fetchmailrc-" + tag)
    with open(rc, "w") as f:
        f.write("set no bouncemail\nset no syslog\n")
        f.write(f"poll 127.0.0.1 with proto POP3 service {port} auth password\n")
        f.write(f'  user "alice" there with password "{PASSWORD}" is "alice" here\n')
        f.write(f"  options {'keep' if keep else 'no keep'} fetchall no rewrite {options}\n")
        # $$ is the pid of each MDA shell: one file per message.
        f.write(f"  mda \"/bin/sh -c 'cat > {out}/msg.$$'\"\n")
    os.chmod(rc, 0o600)
    env = dict(os.environ, HOME=fx.dir, FETCHMAILHOME=fx.dir)
    r = subprocess.run(["fetchmail", "--nodetach", "--invisible", "-f", rc,
                        "--pidfile", os.path.join(fx.dir, "fetchmail.pid"),
                        "-i", os.path.join(fx.dir, "fetchids-" + tag)],
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


# ---------------------------------------------------------------- servers


class Server:
    """mpopd listening on 127.0.0.1:port in one of three ways:
    "inetd"  - systemd-socket-activate --accept --inetd (connection on stdin/stdout)
    "accept" - systemd-socket-activate --accept (connection on fd 3, LISTEN_FDS=1)
    "daemon" - the legacy daemon binding [server] listen itself, in the foreground
    """

    def __init__(self, fixture, mode="inetd", env=None):
        self.fx = fixture
        self.mode = mode
        self.port = free_port()
        self.proc = None
        self.env = env  # the environment of the server (and its launcher), default ours

    def start(self):
        errf = open(self.fx.stderr_path, "ab")
        if self.mode in ("inetd", "accept"):
            cmd = ["systemd-socket-activate", "--accept", "-l", f"127.0.0.1:{self.port}"]
            if self.mode == "inetd":
                cmd.insert(2, "--inetd")
            # systemd-socket-activate gives mpopd only the variables it is told to
            cmd += [f"-E{k}={v}" for k, v in (self.env or {}).items()
                    if os.environ.get(k) != v]
            cmd += [MPOPD, "-c", self.fx.conf]
        elif self.mode == "daemon":
            self.fx.write_config({"server.listen": f"127.0.0.1:{self.port}"})
            cmd = [MPOPD, "-F", "-c", self.fx.conf]
        else:
            raise ValueError(self.mode)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=errf, start_new_session=True, env=self.env)
        errf.close()
        if self.mode == "daemon":
            ok = wait_for(self._greets)
        else:
            ok = wait_for(lambda: f"Listening on 127.0.0.1:{self.port} " in self.fx.stderr_text()
                          or self.proc.poll() is not None)
            ok = ok and self.proc.poll() is None
        if not ok:
            self.stop()
            raise RuntimeError(f"{self.mode} server did not start: {self.fx.stderr_text()[-2000:]}")
        return self

    def _greets(self):
        return greets(self.port, self.proc)

    def stop(self):
        stop_group(self.proc)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def run_inetd(fixture, data, timeout=WAIT, args=()):
    """mpopd --inetd with data on a pipe as stdin. Returns (rc, stdout bytes, stderr text)."""
    r = subprocess.run([MPOPD, "--inetd", "-c", fixture.conf, *args], input=data,
                       capture_output=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr.decode("utf-8", "replace")


# ---------------------------------------------------------------- raw POP3 client


class Pop:
    """A minimal POP3 client on a raw socket; every read is bounded by a timeout."""

    def __init__(self, port, timeout=WAIT, source=None):
        """source: the local address to connect from (Linux routes all of 127/8 on lo)."""
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.eof = False
        self.greeting = self.line()

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                self.eof = True
                rest, self.buf = self.buf, b""
                return rest  # EOF: b"" or a partial line
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def cmd(self, text):
        self.send(text.encode() + b"\r\n")
        return self.line()

    def multi(self):
        """Body of a multi-line response, dot-unstuffed, lines without CRLF."""
        out = []
        while True:
            line = self.line()
            if line == b".":
                return out
            if self.eof:
                raise ConnectionError("EOF inside a multi-line response")
            out.append(line[1:] if line.startswith(b".") else line)

    def login(self, user="alice", password=PASSWORD):
        r1 = self.cmd(f"USER {user}")
        r2 = self.cmd(f"PASS {password}")
        return r1, r2

    def closed(self, timeout=WAIT):
        """True if the server closes the connection (after any pending data) within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (socket.timeout, OSError):
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

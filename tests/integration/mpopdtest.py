# SPDX-License-Identifier: GPL-2.0-or-later
"""Shared helpers for the integration tests: fixtures, server runners, a raw POP3 client.

Everything listens on 127.0.0.1, every wait is bounded, and every fixture lives in a
temporary directory under /tmp that the test removes again.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

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
    # (file name relative to the maildir, raw stored bytes)
    ("cur/1700000001.M1P1.fixture:2,S",
     b"From: Alice <alice@example.org>\nTo: bob@example.org\nSubject: plain\n\n"
     b"Hello Bob,\nthis is a plain message.\n"),
    ("cur/1700000002.M2P2.fixture:2,",
     b"From: a@example.org\nSubject: dots\n\n.leading dot\n..two dots\n.\n. \nend\n"),
    ("cur/1700000003.M3P3.fixture",
     b"From: a@example.org\nSubject: no final newline\n\nlast line without newline"),
    ("new/1700000004.M4P4.fixture",
     b"From: a@example.org\r\nSubject: crlf\r\n\r\nCRLF line one\r\n.CRLF dot line\r\n"),
    ("new/1700000005.M5P5.fixture",
     b"From: a@example.org\nSubject: =?ISO-8859-1?Q?8bit?=\nContent-Type: text/plain; "
     b"charset=ISO-8859-1\nContent-Transfer-Encoding: 8bit\n\nGr\xfc\xdfe, "
     b"caf\xc3\xa9, \xff\xfe\x80 high bytes\n"),
    ("new/1700000006.M6P6.fixture",
     b"From: a@example.org\nSubject: big\n\n" + BIG),
    ("new/1700000007.M7P7.fixture",
     b"From: a@example.org\nSubject: headers only\n"),
]


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
    """A temp dir with maildirs, a user list and a config.

    Users: alice (mailbox from the location pattern), bob (mailbox field in the user list),
    carol (empty maildir). All share PASSWORD.
    """

    def __init__(self, config_extra=None, messages=None, visible=None):
        self.dir = tempfile.mkdtemp(prefix="mpopd-it-", dir="/tmp")
        # where the server sees self.dir (a container bind mount), for paths in the files
        self.vdir = visible or self.dir
        os.chmod(self.dir, 0o755)  # the session uid must traverse it
        self.messages = MESSAGES if messages is None else messages
        self.mail = os.path.join(self.dir, "mail")
        os.mkdir(self.mail)
        os.chmod(self.mail, 0o755)
        self.maildirs = {}
        for user, msgs in (("alice", self.messages), ("bob", self.messages), ("carol", [])):
            self.maildirs[user] = self.make_maildir(os.path.join(self.mail, user, "Maildir"), msgs)
        self.hash = make_hash(PASSWORD)
        self.userlist = os.path.join(self.dir, "users")
        with open(self.userlist, "w") as f:
            f.write("# test users\n")
            f.write(f"alice:{self.hash}:{TEST_UID}:{TEST_GID}\n")
            f.write(f"bob:{self.hash}:{TEST_UID}:{TEST_GID}:{self.v(self.maildirs['bob'])}\n")
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

    def write_config(self, extra):
        groups = {
            "server": {"idle_timeout": "60", "pid_file": ""},
            "mailbox": {"format": "maildir",
                        "location": self.v(os.path.join(self.mail, "%u", "Maildir"))},
            "auth": {"default": "userlist", "userlist": self.v(self.userlist)},
            "log": {"level": "debug"},
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
        """Sorted file names currently in the user's maildir (cur and new, unique part)."""
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


# ---------------------------------------------------------------- servers


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout=WAIT, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


class Server:
    """mpopd listening on 127.0.0.1:port in one of three ways:
    "inetd"  - systemd-socket-activate --accept --inetd (connection on stdin/stdout)
    "accept" - systemd-socket-activate --accept (connection on fd 3, LISTEN_FDS=1)
    "daemon" - the legacy daemon binding [server] listen itself, in the foreground
    """

    def __init__(self, fixture, mode="inetd"):
        self.fx = fixture
        self.mode = mode
        self.port = free_port()
        self.proc = None

    def start(self):
        errf = open(self.fx.stderr_path, "ab")
        if self.mode in ("inetd", "accept"):
            cmd = ["systemd-socket-activate", "--accept", "-l", f"127.0.0.1:{self.port}"]
            if self.mode == "inetd":
                cmd.insert(2, "--inetd")
            cmd += [MPOPD, "-c", self.fx.conf]
        elif self.mode == "daemon":
            self.fx.write_config({"server.listen": f"127.0.0.1:{self.port}"})
            cmd = [MPOPD, "-F", "-c", self.fx.conf]
        else:
            raise ValueError(self.mode)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=errf, start_new_session=True)
        errf.close()
        if self.mode == "daemon":
            ok = wait_for(self._greets)
        else:
            ok = wait_for(lambda: "Listening on" in self.fx.stderr_text()
                          or self.proc.poll() is not None)
            ok = ok and self.proc.poll() is None
        if not ok:
            self.stop()
            raise RuntimeError(f"{self.mode} server did not start: {self.fx.stderr_text()[-2000:]}")
        return self

    def _greets(self):
        if self.proc.poll() is not None:
            return True
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                s.settimeout(2)
                return s.recv(512).startswith(b"+OK")
        except OSError:
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=WAIT)

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

    def __init__(self, port, timeout=WAIT):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
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

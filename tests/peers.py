# SPDX-License-Identifier: GPL-2.0-or-later
"""Real peer POP3 servers (Dovecot, popa3d) run privately for tests and comparisons.

Neither server is ever started as a system service, nor does anything here change the
host's configuration: each peer gets a temporary directory for its configuration, sockets,
state and logs, listens on 127.0.0.1 only, and is stopped (its whole process group) by
stop(). Everything needs root (both servers drop to the mailbox owner themselves).

API
---
Users are given as a dict ``{name: {...}}`` with these keys:

    password  the clear-text password (required for popa3d; for Dovecot when no hash)
    hash      Dovecot only: the passwd-file password field, e.g. "{PLAIN}pw" or a crypt(3)
              hash "{CRYPT}$y$..." (default: "{PLAIN}" + password)
    uid, gid  numeric ids the server drops to (the mailbox must belong to them)
    home      home directory (Dovecot: expands "~" in mail locations; default the tmp dir)
    mail      Dovecot only: this user's mail location, overriding mail_location, e.g.
              "maildir:/path/Maildir" or "mbox:/path/dir:INBOX=/path/inbox"

ensure_dovecot()
    Installs dovecot-pop3d with apt-get if /usr/sbin/dovecot is missing.

start_dovecot(users, mail_location=None, port=None, login_performance=False,
              uidl_format=None, extra_conf="", tmp=None) -> Peer
    Runs ``dovecot -F -c CONF`` with a private base_dir/state_dir/log under a temporary
    directory (or tmp), users from a passwd-file, POP3 only, no TLS, plain-text logins
    allowed, on 127.0.0.1:port (a free port when None). mail_location is Dovecot's setting
    (e.g. "maildir:~/Maildir", "mbox:~/mail:INBOX=/var/mail/%u"); a user's "mail" key
    overrides it. login_performance=True selects the high-performance login mode
    (``service pop3-login { service_count = 0 }``: one long-lived login process serving
    many connections) instead of the default high-security mode (one process per
    connection). uidl_format sets pop3_uidl_format (default: Dovecot's, %08Xu%08Xv).
    extra_conf is appended to the configuration verbatim. Returns when the server greets.

ensure_popa3d() -> path
    Debian's popa3d binary, unpacked (``apt-get download popa3d`` + ``dpkg -x``; the package
    conflicts with dovecot-pop3d, so it is never installed) into CACHE_DIR/popa3d, reused
    on later calls.

start_popa3d(users, spool, port=None, tmp=None) -> Peer
    Runs popa3d under ``systemd-socket-activate --accept --inetd -l 127.0.0.1:PORT`` in a
    private mount namespace (``unshare -m``) in which /etc/passwd, /etc/shadow and /etc/group
    are the host's plus the given users (SHA-512 crypt hashes of their passwords), /etc/pam.d
    is the host's plus Debian's /etc/pam.d/popa3d, /var/lib holds popa3d's empty chroot
    directory, and the directory spool is mounted on /var/mail: the mailbox of user U is the
    mbox file spool/U, owned by U's uid and mode 0600. Returns when the socket is listening.

Peer (what the start functions return)
    .port   the TCP port on 127.0.0.1
    .proc   the subprocess.Popen of the server (its own process group)
    .dir    the private directory (config, logs); removed by stop() if we created it
    .log()  the server's log text so far (Dovecot's log file; systemd-socket-activate's
            stderr for popa3d, which itself logs to syslog)
    .stop() stops the process group (SIGTERM, then SIGKILL) and cleans up; also a context
            manager (``with start_dovecot(...) as peer:``)

stop(peer)          the same as peer.stop()
uidls(port, user, password) -> [(n, uidl)]
                    logs in with poplib and returns the UIDL listing (then QUIT)
free_port()         a currently free TCP port on 127.0.0.1
"""

import grp
import os
import poplib
import pwd
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time

WAIT = 15.0  # seconds: upper bound for any single wait
DOVECOT = "/usr/sbin/dovecot"
# The unpacked popa3d package; BUILDDIR (set by meson for tests) keeps it with the build.
CACHE_DIR = os.environ.get("MPOPD_PEERS_CACHE") or os.path.join(
    os.environ.get("BUILDDIR") or tempfile.gettempdir(), "peers-cache")


def _ephemeral_ports():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def free_port():
    """A port on 127.0.0.1 that nothing is bound to, outside the kernel's ephemeral range:
    a port from that range (what bind() to port 0 hands out) can become a client's source
    port in a test running alongside before the server binds it, and an established
    connection on it makes the server's bind fail with EADDRINUSE."""
    lo, hi = _ephemeral_ports()
    ranges = [r for r in ((10000, lo - 1), (hi + 1, 65535)) if r[1] - r[0] >= 1000]
    for _ in range(100 if ranges else 0):
        first, last = random.choice(ranges)
        port = random.randint(first, last)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout=WAIT, step=0.05):
    """True once pred() is, False when timeout seconds pass first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def wait_port(port, proc=None, what=None, timeout=WAIT):
    """Until something accepts on 127.0.0.1:port; SystemExit (naming what) when proc ends
    first or timeout seconds pass: for the benchmarks, which stop there."""
    what = what or f"127.0.0.1:{port}"

    def listening():
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"{what} exited with status {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    if not wait_for(listening, timeout, 0.02):
        raise SystemExit(f"{what}: nothing listens on 127.0.0.1:{port}")


def greets(port, proc=None):
    """True once a connection to 127.0.0.1:port gets a +OK greeting, or proc has exited."""
    if proc is not None and proc.poll() is not None:
        return True
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.settimeout(2)
            return s.recv(512).startswith(b"+OK")
    except OSError:
        return False


def stop_group(proc):
    """SIGTERM to a process started with start_new_session=True and its group, SIGKILL if it
    is still there after WAIT seconds; then reaped."""
    if not proc or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=WAIT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=WAIT)


def _apt_install(*packages):
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    r = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *packages],
                       capture_output=True, env=env, timeout=600)
    if r.returncode != 0:
        subprocess.run(["apt-get", "update"], capture_output=True, env=env, timeout=600)
        r = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends",
                            *packages], capture_output=True, env=env, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"apt-get install {' '.join(packages)} failed: "
                           f"{r.stderr.decode(errors='replace')[-1000:]}")


def _need_root(what):
    if os.geteuid() != 0:
        raise RuntimeError(f"{what} needs root (it drops to the mailbox owner itself)")


class Peer:
    """A running peer server; see the module docstring."""

    def __init__(self, name, port, proc, directory, own_dir, logfile):
        self.name = name
        self.port = port
        self.proc = proc
        self.dir = directory
        self._own_dir = own_dir
        self._logfile = logfile

    def log(self):
        try:
            with open(self._logfile, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def greets(self):
        """True once a connection gets a +OK greeting (or the server has exited)."""
        return greets(self.port, self.proc)

    def stop(self):
        stop_group(self.proc)
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self._own_dir = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def stop(peer):
    peer.stop()


def _private_dir(tmp, prefix):
    if tmp:
        os.makedirs(tmp, exist_ok=True)
        return tmp, False
    d = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(d, 0o755)  # the servers' unprivileged processes traverse it
    return d, True


# ---------------------------------------------------------------- Dovecot


def ensure_mpopd_login_user():
    """The pre-login process runs as mpopd-login by default (units/mpopd.sysusers); a fresh
    machine has no such user until the package (or systemd-sysusers) creates it."""
    try:
        pwd.getpwnam("mpopd-login")
        return
    except KeyError:
        pass
    _need_root("creating the mpopd-login user")
    sysusers = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "units", "mpopd.sysusers")
    subprocess.run(["systemd-sysusers", sysusers], check=True)


def ensure_dovecot():
    if not os.access(DOVECOT, os.X_OK) or not os.path.exists("/usr/lib/dovecot/pop3"):
        _need_root("installing dovecot-pop3d")
        _apt_install("dovecot-pop3d")


def _dovecot_conf(d, port, users, mail_location, login_performance, uidl_format, extra):
    passwd = os.path.join(d, "passwd")
    with open(passwd, "w") as f:
        for name, u in users.items():
            pw = u.get("hash") or "{PLAIN}" + u["password"]
            home = u.get("home") or d
            extra_fields = f"userdb_mail={u['mail']}" if u.get("mail") else ""
            f.write(f"{name}:{pw}:{u['uid']}:{u['gid']}::{home}::{extra_fields}\n")
    # Dovecot's auth process runs as its internal user (dovecot), not as root.
    os.chown(passwd, 0, grp.getgrnam("dovecot").gr_gid)
    os.chmod(passwd, 0o640)
    login = "  service_count = 0\n  process_min_avail = 1\n" if login_performance else ""
    lines = [
        f"base_dir = {d}/run",
        f"state_dir = {d}/state",
        f"instance_name = mpopd-peer-{port}",
        "protocols = pop3",
        "listen = 127.0.0.1",
        "ssl = no",
        "disable_plaintext_auth = no",
        "auth_mechanisms = plain",
        f"log_path = {d}/dovecot.log",
        "first_valid_uid = 1",
        "first_valid_gid = 1",
        f"mail_location = {mail_location or ''}",
        f"passdb {{\n  driver = passwd-file\n  args = username_format=%u {passwd}\n}}",
        f"userdb {{\n  driver = passwd-file\n  args = username_format=%u {passwd}\n}}",
        f"service pop3-login {{\n  inet_listener pop3 {{\n    address = 127.0.0.1\n"
        f"    port = {port}\n  }}\n  inet_listener pop3s {{\n    port = 0\n  }}\n{login}}}",
        "service imap-login {\n  inet_listener imap {\n    port = 0\n  }\n"
        "  inet_listener imaps {\n    port = 0\n  }\n}",
    ]
    if uidl_format:
        lines.append(f"pop3_uidl_format = {uidl_format}")
    conf = os.path.join(d, "dovecot.conf")
    with open(conf, "w") as f:
        f.write("\n".join(lines) + "\n" + (extra or "") + "\n")
    return conf


def start_dovecot(users, mail_location=None, port=None, login_performance=False,
                  uidl_format=None, extra_conf="", tmp=None):
    _need_root("Dovecot")
    ensure_dovecot()
    d, own = _private_dir(tmp, "mpopd-dovecot-")
    port = port or free_port()
    for sub in ("run", "state"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    conf = _dovecot_conf(d, port, users, mail_location, login_performance, uidl_format,
                         extra_conf)
    errf = os.path.join(d, "stderr.log")
    with open(errf, "ab") as err:
        proc = subprocess.Popen([DOVECOT, "-F", "-c", conf], stdin=subprocess.DEVNULL,
                                stdout=err, stderr=err, start_new_session=True)
    peer = Peer("dovecot", port, proc, d, own, os.path.join(d, "dovecot.log"))
    if not wait_for(peer.greets) or proc.poll() is not None:
        with open(errf, "rb") as f:
            why = f.read().decode(errors="replace")[-2000:] + peer.log()[-2000:]
        peer.stop()
        raise RuntimeError(f"dovecot did not start: {why}")
    return peer


# ---------------------------------------------------------------- popa3d


def ensure_popa3d():
    """The path of the unpacked popa3d binary (downloaded and unpacked once)."""
    root = os.path.join(CACHE_DIR, "popa3d")
    binary = os.path.join(root, "usr", "sbin", "popa3d")
    if os.access(binary, os.X_OK):
        return binary
    os.makedirs(CACHE_DIR, exist_ok=True)
    dl = tempfile.mkdtemp(prefix="popa3d-dl-", dir=CACHE_DIR)
    try:
        # _apt drops privileges for downloads: let it write here.
        os.chmod(dl, 0o777)
        r = subprocess.run(["apt-get", "download", "popa3d"], cwd=dl, capture_output=True,
                           timeout=300)
        if r.returncode != 0:
            subprocess.run(["apt-get", "update"], capture_output=True, timeout=600)
            r = subprocess.run(["apt-get", "download", "popa3d"], cwd=dl,
                               capture_output=True, timeout=300)
        debs = [n for n in os.listdir(dl) if n.endswith(".deb")]
        if r.returncode != 0 or not debs:
            raise RuntimeError(f"apt-get download popa3d failed: {r.stderr.decode()[-1000:]}")
        unpack = root + ".new"
        shutil.rmtree(unpack, ignore_errors=True)
        subprocess.run(["dpkg", "-x", os.path.join(dl, debs[0]), unpack], check=True,
                       timeout=120)
        shutil.rmtree(root, ignore_errors=True)
        os.rename(unpack, root)
    finally:
        shutil.rmtree(dl, ignore_errors=True)
    return binary


def _sha512_crypt(password):
    r = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password.encode(),
                       capture_output=True, check=True, timeout=WAIT)
    return r.stdout.decode().strip()


def _account_files(d, users):
    """passwd, shadow and group: the host's plus the users (files in d)."""
    with open("/etc/passwd") as f:
        passwd = [ln for ln in f.read().splitlines()
                  if ln.split(":", 1)[0] not in users]
    with open("/etc/shadow") as f:
        shadow = [ln for ln in f.read().splitlines()
                  if ln.split(":", 1)[0] not in users]
    with open("/etc/group") as f:
        group = f.read().splitlines()
    for name, u in users.items():
        home = u.get("home") or d
        passwd.append(f"{name}:x:{u['uid']}:{u['gid']}::{home}:/bin/sh")
        shadow.append(f"{name}:{_sha512_crypt(u['password'])}::0:99999:7:::")
    if not any(ln.startswith("popa3d:") for ln in passwd):
        passwd.append("popa3d:x:64999:64999::/var/lib/popa3d:/usr/sbin/nologin")
    for name, content, mode in (("passwd", passwd, 0o644), ("shadow", shadow, 0o640),
                                ("group", group, 0o644)):
        path = os.path.join(d, name)
        with open(path, "w") as f:
            f.write("\n".join(content) + "\n")
        os.chmod(path, mode)


# Run inside "unshare -m": the mounts are private to popa3d and its launcher.
_POPA3D_NS = r"""
d=$1; spool=$2; port=$3; bin=$4
mount --bind "$d/passwd" /etc/passwd
mount --bind "$d/shadow" /etc/shadow
mount --bind "$d/group" /etc/group
mount --bind "$d/pam.d" /etc/pam.d
mount --bind "$d/varlib" /var/lib
mount --bind "$spool" /var/mail
exec systemd-socket-activate --accept --inetd -l "127.0.0.1:$port" "$bin"
"""


def start_popa3d(users, spool, port=None, tmp=None):
    _need_root("popa3d")
    binary = ensure_popa3d()
    d, own = _private_dir(tmp, "mpopd-popa3d-")
    port = port or free_port()
    _account_files(d, users)
    pam = os.path.join(d, "pam.d")
    shutil.rmtree(pam, ignore_errors=True)
    shutil.copytree("/etc/pam.d", pam, symlinks=True)
    shutil.copy(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(binary))),
                             "etc", "pam.d", "popa3d"), os.path.join(pam, "popa3d"))
    os.makedirs(os.path.join(d, "varlib", "popa3d"), exist_ok=True)  # its chroot, empty
    errf = os.path.join(d, "stderr.log")
    with open(errf, "ab") as err:
        proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-ec",
                                 _POPA3D_NS, "sh", d, os.path.abspath(spool), str(port),
                                 binary], stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                start_new_session=True)
    peer = Peer("popa3d", port, proc, d, own, errf)
    if not wait_for(lambda: f"127.0.0.1:{port}" in peer.log() or proc.poll() is not None) \
            or proc.poll() is not None:
        why = peer.log()[-2000:]
        peer.stop()
        raise RuntimeError(f"popa3d did not start: {why}")
    return peer


# ---------------------------------------------------------------- client


def uidls(port, user, password, timeout=WAIT):
    """[(n, uidl)] as the server at 127.0.0.1:port lists them for user."""
    p = poplib.POP3("127.0.0.1", port, timeout=timeout)
    try:
        p.user(user)
        p.pass_(password)
        _, lines, _ = p.uidl()
        out = []
        for ln in lines:
            n, u = ln.decode().split(" ", 1)
            out.append((int(n), u))
        return out
    finally:
        p.quit()

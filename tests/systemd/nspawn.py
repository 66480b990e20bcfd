# SPDX-License-Identifier: GPL-2.0-or-later
"""A throw-away systemd-nspawn container over the host's root for the systemd suite.

`systemd-nspawn -D / --volatile=yes --private-network -b` boots the host's systemd with only
/usr from the host: / (so /etc and /var) is a fresh tmpfs that systemd-sysusers and
systemd-tmpfiles fill at boot, and the container has its own loopback. The tests install
the units into it the way an admin would and talk to mpopd from inside with nsenter.
Every wait here is bounded, and the container is always powered off (see `booted`).
"""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from mpopdtest import MPOPD, MPOPDCTL, PASSWORD, Fixture, wait_for

SRCDIR = os.environ.get("SRCDIR", "")
BUILDDIR = os.environ.get("BUILDDIR", "")
HERE = os.path.dirname(os.path.abspath(__file__))
BOOT_TIMEOUT = 60.0
POWEROFF_TIMEOUT = 20.0
CMD_TIMEOUT = 30.0
# The mail fixture inside the container: in the units' ReadWritePaths=, so the sandboxed
# service may change maildirs there (ProtectSystem=strict makes the rest read-only).
VMAIL = "/var/vmail"
SKIP = 77
# The environment of commands in the container: not the caller's (a PATH into a pyenv or a
# build tree of the host would mean other programs, or none, in there).
CT_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
          "LANG": "C.UTF-8", "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0"}
# Where the TLS files go in the container: Debian's layout, the key readable by root alone
# (/etc/ssl/private is 0710 there), the CA the clients trust next to them.
CT_CERT = "/etc/ssl/certs/mpopd-test.pem"
CT_KEY = "/etc/ssl/private/mpopd-test.key"
CT_CA = "/etc/ssl/mpopd-test-ca.pem"


def reap(p, timeout):
    """Wait for a background client (pop_background) to end; kill it past timeout."""
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(timeout=10)


def skip_unless_possible():
    """Exit 77 (meson: SKIP) where no container can be booted."""
    why = None
    if os.geteuid() != 0:
        why = "needs root for systemd-nspawn"
    elif not shutil.which("systemd-nspawn"):
        why = "systemd-nspawn not installed (Debian: systemd-container)"
    elif not shutil.which("nsenter"):
        why = "nsenter not installed (util-linux)"
    elif not MPOPD or not os.access(MPOPD, os.X_OK) or not SRCDIR or not BUILDDIR:
        why = "MPOPD, SRCDIR and BUILDDIR must name the build (run through meson test)"
    if why:
        print(f"# SKIP: {why}", flush=True)
        sys.exit(SKIP)


def inside_path(path):
    """Where a host directory is bound in the container: the same path, except below the
    temporary directories, which PrivateTmp= in the units would hide from mpopd."""
    path = os.path.realpath(path)
    if re.match(r"^/(var/)?tmp(/|$)", path):
        return "/opt/mpopd-test" + path
    return path


def default_config_path():
    """The configuration file mpopd reads without -c (sysconfdir of this build)."""
    r = subprocess.run([MPOPDCTL, "-h"], capture_output=True, timeout=CMD_TIMEOUT)
    m = re.search(r"configuration file \(default (\S+)\)", r.stdout.decode())
    if not m:
        raise RuntimeError(f"no default configuration path in mpopdctl -h: {r.stdout!r}")
    return m.group(1)


def pop_request(port, ops, password, user, tls=None, source=None):
    return json.dumps({"port": port, "user": user, "password": password, "ops": ops,
                       "tls": tls, "cafile": CT_CA, "source": source}).encode()


MASKED = ("systemd-networkd-wait-online.service", "haproxy.service", "fail2ban.service",
          "dovecot.service", "dovecot.socket")


class Container:
    """One booted container. `sh()` runs a command inside (all namespaces, via nsenter)."""

    def __init__(self, name, binds_ro=(), binds=()):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="mpopd-nspawn-")
        self.binds_ro = list(binds_ro)
        self.binds = list(binds)
        self.proc = None
        self.pid1 = None
        self.log = None

    def start(self):
        cmd = ["systemd-nspawn", "-q", "-D", "/", "--volatile=yes", "--private-network",
               "--register=no", "--keep-unit", "-M", self.name]
        cmd += [f"--bind-ro={src}:{dst}" for src, dst in self.binds_ro]
        cmd += [f"--bind={src}:{dst}" for src, dst in self.binds]
        # Services of the host's packages (haproxy and fail2ban from tools/test, dovecot for
        # the benchmarks) would start in the container too, and haproxy pulls in
        # network-online.target, whose wait-online job blocks the boot for two minutes on a
        # private network with nothing but lo.
        cmd += ["-b", "--", "systemd.firstboot=off"] + [f"systemd.mask={u}" for u in MASKED]
        self.log = open(os.path.join(self.dir, "console.log"), "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        t0 = time.monotonic()
        if not wait_for(lambda: self._find_pid1() or self.proc.poll() is not None,
                        timeout=BOOT_TIMEOUT, step=0.05) or not self.pid1:
            raise RuntimeError(f"no container PID 1 (nspawn rc {self.proc.poll()}):\n"
                               + self.console())
        state = ""

        def up():
            nonlocal state
            r = self.sh(["systemctl", "is-system-running"], check=False, timeout=10)
            state = r.stdout.decode().strip()
            return state in ("running", "degraded") or self.proc.poll() is not None

        if not wait_for(up, timeout=BOOT_TIMEOUT - (time.monotonic() - t0), step=0.2) \
                or state not in ("running", "degraded"):
            raise RuntimeError(f"container not up (state {state!r}):\n" + self.console())
        self.boot_state = state
        self.boot_seconds = time.monotonic() - t0
        return self

    def _find_pid1(self):
        """The child of systemd-nspawn whose comm is systemd: the container's PID 1."""
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            if ppid == self.proc.pid and comm == "systemd":
                self.pid1 = int(entry)
                return True
        return False

    def sh(self, argv, input=None, check=True, timeout=CMD_TIMEOUT):
        """Run argv inside the container; returns the CompletedProcess."""
        r = subprocess.run(["nsenter", "-t", str(self.pid1), "-a", *argv], input=input,
                           capture_output=True, timeout=timeout, env=CT_ENV)
        if check and r.returncode != 0:
            raise RuntimeError(f"in the container: {' '.join(argv)}: rc {r.returncode}\n"
                               f"{r.stdout.decode(errors='replace')}"
                               f"{r.stderr.decode(errors='replace')}")
        return r

    def systemctl(self, *args, check=True, timeout=CMD_TIMEOUT):
        return self.sh(["systemctl", *args], check=check, timeout=timeout)

    def prop(self, unit, name):
        r = self.systemctl("show", "-P", name, unit)
        return r.stdout.decode().strip()

    def write(self, path, data, mode="0644"):
        """Create a file inside the container (parent directories too)."""
        if isinstance(data, str):
            data = data.encode()
        self.sh(["sh", "-c", 'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"',
                 "sh", path, mode], input=data)

    def replace(self, path, data, mode="0644"):
        """Replace a file inside the container by rename, as certbot and editors do: a
        reader sees the old file or the new one, never half of it."""
        self.write(path + ".new", data, mode)
        self.sh(["mv", "-f", path + ".new", path])

    def journal(self):
        """All records of the container journal as dicts, and the raw JSON bytes."""
        r = self.sh(["journalctl", "-o", "json", "--no-pager"], check=False, timeout=60)
        out = []
        for line in r.stdout.decode("utf-8", "replace").splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out, r.stdout

    def pop(self, port, ops, password=PASSWORD, user="alice", tls=None, source=None):
        """Run popclient.py inside the container: one answer (a dict) per op, or a single
        {"error": ...} when the client could not run at all. tls: None (plain text),
        "implicit" (port 995) or "stls", trusting only the test CA (CT_CA). source: the
        client's local address (127.0.0.0/8), for a second client address."""
        r = self.sh(["python3", inside_path(os.path.join(HERE, "popclient.py"))],
                    input=pop_request(port, ops, password, user, tls, source), check=False,
                    timeout=60)
        try:
            return [json.loads(line) for line in r.stdout.decode().splitlines()]
        except ValueError:
            return [{"error": f"popclient rc {r.returncode}: {r.stdout!r} {r.stderr!r}"}]

    def pop_background(self, port, ops, password=PASSWORD, user="alice", tls=None):
        """popclient.py inside, not waited for: the caller reads its stdout lines."""
        p = subprocess.Popen(["nsenter", "-t", str(self.pid1), "-a", "python3",
                              inside_path(os.path.join(HERE, "popclient.py"))],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, env=CT_ENV)
        p.stdin.write(pop_request(port, ops, password, user, tls))
        p.stdin.close()
        return p

    def console(self):
        try:
            with open(os.path.join(self.dir, "console.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")[-3000:]
        except OSError:
            return ""

    def poweroff(self):
        """systemctl poweroff inside; SIGKILL to nspawn if it has not exited in 20 s."""
        if not self.proc:
            return
        if self.proc.poll() is None and self.pid1:
            with contextlib.suppress(Exception):
                self.sh(["systemctl", "poweroff"], check=False, timeout=10)
        try:
            self.proc.wait(timeout=POWEROFF_TIMEOUT)
        except subprocess.TimeoutExpired:
            print(f"# {self.name}: no exit {POWEROFF_TIMEOUT:.0f} s after poweroff, killing",
                  flush=True)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.log.close()
        # nspawn leaves this directory behind when the host's /run is not a tmpfs
        with contextlib.suppress(OSError):
            os.rmdir(f"/run/systemd/nspawn/propagate/{self.name}")
        shutil.rmtree(self.dir, ignore_errors=True)


class Setup:
    """A mail fixture, the configuration at this build's default path, and the build tree,
    all bound into the container; the units meson generated into the build tree (what
    `meson install` installs), with ExecStart= and ExecReload= pointing at the build tree's
    src/ (the same path inside and out)."""

    def __init__(self, tag):
        self.fx = Fixture(visible=VMAIL)
        self.tag = tag
        self.ct = None
        self.confdir = None
        try:
            self._configure()
        except BaseException:
            self.close()
            raise

    def _configure(self):
        self.conf_default = default_config_path()
        self.confdir = tempfile.mkdtemp(prefix="mpopd-etc-")
        os.chmod(self.confdir, 0o755)
        # The default path lives under the host's read-only /usr in the container
        # (/usr/local/etc for a /usr/local build): bind our own directory over its parent.
        # If that parent is missing on the host (no mount point), use /etc/mpopd-test and -c
        # in drop-ins.
        parent = os.path.dirname(os.path.dirname(self.conf_default))
        self.conf_bind = None
        if re.match(r"^/(etc|run)/", self.conf_default):
            self.conf_inside = self.conf_default
            self.drop_in_config = False
        elif os.path.isdir(parent) and parent not in ("/", "/usr"):
            self.conf_bind = (self.confdir, parent)
            self.conf_inside = self.conf_default
            self.drop_in_config = False
        else:
            self.conf_bind = (self.confdir, "/etc/mpopd-test")
            self.conf_inside = "/etc/mpopd-test/" + os.path.basename(self.conf_default)
            self.drop_in_config = True
        self.conf_host = (os.path.join(self.confdir, os.path.relpath(self.conf_default, parent))
                          if self.conf_bind and not self.drop_in_config else
                          os.path.join(self.confdir, os.path.basename(self.conf_default)))
        os.makedirs(os.path.dirname(self.conf_host), exist_ok=True)
        self.extra = {}
        self.set_config({})
        self.sbindir = inside_path(os.path.dirname(MPOPD))
        self.mpopdctl = inside_path(MPOPDCTL)

    def set_config(self, extra):
        """Write the configuration mpopd reads (the fixture's, plus extra keys)."""
        self.extra.update(extra)
        # The failure penalty's table where the units keep it (/run/mpopd, from tmpfiles.d),
        # not in the fixture's directory.
        self.fx.write_config({"auth.penalty_state": None, **self.extra})
        with open(self.fx.conf) as f:
            text = f.read()
        self.write_config_text(text)

    def write_config_text(self, text):
        tmp = self.conf_host + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.conf_host)  # the daemon never reads half a file
        if self.ct and not self.conf_bind:
            self.ct.write(self.conf_inside, text)

    def boot(self):
        binds_ro = [(os.path.realpath(BUILDDIR), inside_path(BUILDDIR))]
        src = os.path.realpath(SRCDIR)
        if not os.path.realpath(BUILDDIR).startswith(src + "/"):
            binds_ro.append((src, inside_path(src)))
        else:
            binds_ro = [(src, inside_path(src))]
        if self.conf_bind:
            binds_ro.append(self.conf_bind)
        name = f"mpopd-{self.tag}-{os.getpid()}"
        self.ct = Container(name, binds_ro=binds_ro, binds=[(self.fx.dir, VMAIL)])
        self.ct.start()
        if not self.conf_bind:
            with open(self.conf_host) as f:
                self.ct.write(self.conf_inside, f.read())
        return self.ct

    def unit_text(self, name):
        with open(os.path.join(BUILDDIR, "units", name)) as f:
            text = f.read()
        return re.sub(r"^(ExecStart|ExecReload)=\S+/mpopd(?=\s|$)",
                      lambda m: f"{m.group(1)}={self.sbindir}/mpopd", text, flags=re.M)

    def install_units(self, names, unitdir="/run/systemd/system"):
        """Install the units, the sysusers.d and tmpfiles entries as README says, create
        the pre-login user and /var/empty, and daemon-reload."""
        ct = self.ct
        for n in names:
            text = self.unit_text(n)
            ct.write(f"{unitdir}/{n}", text)
            if self.drop_in_config and n.endswith(".service"):
                start = re.search(r"^ExecStart=(.*)$", text, re.M).group(1)
                ct.write(f"{unitdir}/{n}.d/50-config.conf",
                         f"[Service]\nExecStart=\nExecStart={start} -c {self.conf_inside}\n")
        for src, dst in (("mpopd.sysusers", "/etc/sysusers.d/mpopd.conf"),
                         ("mpopd.tmpfiles", "/etc/tmpfiles.d/mpopd.conf")):
            with open(os.path.join(SRCDIR, "units", src)) as f:
                ct.write(dst, f.read())
        ct.sh(["systemd-sysusers", "mpopd.conf"])
        ct.sh(["systemd-tmpfiles", "--create", "mpopd.conf"])
        ct.systemctl("daemon-reload")

    def install_tls(self, cert, key, ca=None):
        """Copy a certificate (chain) and its key, files of the host's test PKI
        (tlsutil.Pki), to where an admin would put them (the key 0600 root in
        /etc/ssl/private, 0710 as on Debian), each replaced by rename; and the CA the
        clients trust (CT_CA). Returns the [tls] keys that name them."""
        ct = self.ct

        def read(path):
            with open(path, "rb") as f:
                return f.read()

        if ca is not None:
            ct.write(CT_CA, read(ca))
        ct.sh(["install", "-d", "-m", "0710", os.path.dirname(CT_KEY)])
        ct.replace(CT_KEY, read(key), mode="0600")
        ct.replace(CT_CERT, read(cert))
        return {"tls.certificate": CT_CERT, "tls.key": CT_KEY}

    def close(self):
        try:
            if self.ct:
                self.ct.poweroff()
        finally:
            self.fx.cleanup()
            if self.confdir:
                shutil.rmtree(self.confdir, ignore_errors=True)


@contextlib.contextmanager
def booted(tag):
    """Setup + booted container; always powered off and cleaned up."""
    s = Setup(tag)
    try:
        s.boot()
        yield s
    finally:
        s.close()


def session_records(entries, client_port):
    """The structured records (MPOPD_EVENT=...) of the session whose client port is
    client_port, found through its connect record's MPOPD_PEER."""
    peer = re.compile(r"^(127\.0\.0\.1|\[::ffff:127\.0\.0\.1\]):%d$" % client_port)
    ids = {e.get("MPOPD_SESSION") for e in entries
           if e.get("MPOPD_EVENT") == "connect" and peer.match(e.get("MPOPD_PEER", ""))}
    ids.discard(None)
    return [e for e in entries if e.get("MPOPD_EVENT") and e.get("MPOPD_SESSION") in ids]


def check_hangup_records(t, ct, port, tls=None, tag=""):
    """A client that sends CAPA and USER alice and hangs up without logging in (default
    login_chroot, [log] level=debug): its connect record, both command records and a
    disconnect record reach the journal, all with the session's MPOPD_SESSION."""
    res = ct.pop(port, [{"op": "hangup"}], tls=tls)[0]
    t.check("error" not in res and res.get("capa", "").startswith("+OK"),
            f"{tag}: a client sends CAPA and USER alice, then hangs up", res)
    recs = []

    def complete():
        nonlocal recs
        recs = session_records(ct.journal()[0], res.get("port", -1))
        return any(e.get("MPOPD_EVENT") == "disconnect" for e in recs)

    wait_for(complete, timeout=10, step=0.3)
    got = [(e.get("MPOPD_EVENT"), e.get("MESSAGE", "")) for e in recs]
    events = [ev for ev, _ in got]
    commands = " | ".join(m for ev, m in got if ev == "command")
    t.check("connect" in events and "disconnect" in events and "CAPA" in commands
            and "USER alice" in commands,
            f"{tag}: journal: connect, command CAPA, command USER alice and disconnect "
            "of a session that never logged in", got or "no record with its MPOPD_PEER")


def mpopd_failures(entries):
    """Journal lines that say an mpopd unit failed or was killed by the sandbox."""
    bad = []
    for e in entries:
        unit = str(e.get("UNIT", "")) + str(e.get("_SYSTEMD_UNIT", ""))
        msg = str(e.get("MESSAGE", ""))
        if "mpopd" in unit and any(s in msg for s in (
                "Failed with result", "status=31/SYS", "code=dumped", "core-dump",
                "SECCOMP", "Main process exited, code=killed")):
            bad.append(f"{unit}: {msg}")
        if e.get("_TRANSPORT") == "audit" and "mpopd" in msg:
            bad.append(f"audit: {msg}")
    return bad


def unit_file_warnings(entries):
    """What PID 1 said about lines of the mpopd unit files or their drop-ins (unknown keys,
    bad values)."""
    where = re.compile(r"mpopd[^ /]*\.(service|socket)(\.d/[^ :]+)?:\d+:")
    return [str(e.get("MESSAGE", "")) for e in entries if where.search(str(e.get("MESSAGE", "")))]


def cgroup_limits(ct, unit):
    """The memory.max and pids.max in force for a unit, or None where the container has
    no cgroup v2 controllers to set them in (a hybrid/v1 host: nspawn hands the container
    read-only v1 hierarchies and an empty unified one)."""
    r = ct.sh(["stat", "-fc", "%T", "/sys/fs/cgroup"], check=False)
    if r.stdout.decode().strip() != "cgroup2fs":
        return None
    cg = "/sys/fs/cgroup" + ct.prop(unit, "ControlGroup")
    r = ct.sh(["cat", f"{cg}/memory.max", f"{cg}/pids.max"], check=False)
    return r.stdout.decode().split()

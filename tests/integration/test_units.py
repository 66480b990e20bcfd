#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The generated systemd units pass systemd-analyze verify and keep their hardening score;
the two per-connection services come from one template and differ only where they must;
the sysusers.d entry parses."""

import os
import re
import shutil
import subprocess
import tempfile

from mpopdtest import MPOPD, Reporter

UNITS = ["mpopd.socket", "mpopd@.service", "mpopd-tls.socket", "mpopd-tls@.service",
         "mpopd-daemon.socket", "mpopd-daemon-tls.socket", "mpopd.service"]
# The most systemd-analyze security --offline=yes may score each service (2.7 each before
# they had a network namespace of their own and lost CAP_CHOWN and CAP_FOWNER).
MAX_EXPOSURE = {"mpopd@.service": 1.5, "mpopd-tls@.service": 1.5, "mpopd.service": 1.5}
# Settings the services must keep: sessions survive a call the filter misses, the network
# stays private and nothing chowns as root.
REQUIRED = ["PrivateNetwork=yes", "IPAddressDeny=any", "RestrictAddressFamilies=AF_UNIX",
            "SystemCallErrorNumber=EPERM", "ProtectHome=tmpfs", "BindPaths=-/home"]


def unit_lines(text):
    """The settings of a unit file, comments left out."""
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def socket_settings(text):
    return dict(line.split("=", 1) for line in unit_lines(text) if "=" in line)


def same_template(t, built):
    """mpopd-tls@.service is mpopd@.service with --tls (the same sandbox); mpopd-tls.socket
    listens on 995 with mpopd.socket's limits; the daemon sockets name their descriptors."""
    with open(os.path.join(built, "mpopd@.service")) as f:
        plain = unit_lines(f.read())
    with open(os.path.join(built, "mpopd-tls@.service")) as f:
        tls = unit_lines(f.read())
    diff = [(a, b) for a, b in zip(plain, tls) if a != b]
    t.check(len(plain) == len(tls) and
            all(a.startswith("Description=") or
                (a.startswith("ExecStart=") and b == a + " --tls") for a, b in diff)
            and any(a.startswith("ExecStart=") for a, _ in diff),
            "mpopd-tls@.service = mpopd@.service + --tls (same sandbox, line for line)", diff)
    socks = {}
    for u in ("mpopd.socket", "mpopd-tls.socket", "mpopd-daemon.socket",
              "mpopd-daemon-tls.socket"):
        with open(os.path.join(built, u)) as f:
            socks[u] = socket_settings(f.read())
    limits = ("Accept", "MaxConnections", "MaxConnectionsPerSource",
              "TriggerLimitIntervalSec", "KeepAlive", "NoDelay")
    t.check(socks["mpopd-tls.socket"].get("ListenStream") == "995" and
            all(socks["mpopd-tls.socket"].get(k) == socks["mpopd.socket"].get(k)
                for k in limits),
            "mpopd-tls.socket: ListenStream=995, Accept= and limits as mpopd.socket",
            socks["mpopd-tls.socket"])
    want = {"mpopd-daemon.socket": ("110", "pop3"), "mpopd-daemon-tls.socket": ("995", "pop3s")}
    got = {u: (socks[u].get("ListenStream"), socks[u].get("FileDescriptorName"))
           for u in want}
    t.equal(got, want, "daemon sockets: 110 named pop3, 995 named pop3s")
    t.check(all(socks[u].get("Service") == "mpopd.service" and socks[u].get("Accept") == "no"
                for u in want), "both daemon sockets activate mpopd.service (Accept=no)")


def sysusers(t):
    """units/mpopd.sysusers parses (systemd-sysusers --dry-run into an empty root)."""
    src = os.path.join(os.environ.get("SRCDIR", ""), "units", "mpopd.sysusers")
    if not shutil.which("systemd-sysusers"):
        t.skip("units/mpopd.sysusers parses", "systemd-sysusers not installed")
        return
    with tempfile.TemporaryDirectory(prefix="mpopd-sysusers-") as root:
        # systemd 252 opens a file given by absolute path only (relative: searched in
        # the sysusers.d directories)
        r = subprocess.run(["systemd-sysusers", "--dry-run", "--root", root,
                            os.path.abspath(src)], capture_output=True, timeout=60)
    out = (r.stdout + r.stderr).decode()
    t.check(r.returncode == 0 and "Creating user 'mpopd-login' (mpopd pre-login process)"
            in out and "mpopd.sysusers:" not in out,
            "units/mpopd.sysusers: systemd-sysusers creates mpopd-login, no warning", out)


def main():
    t = Reporter("units")
    built = os.path.join(os.environ.get("BUILDDIR", ""), "units")
    if not shutil.which("systemd-analyze"):
        t.skip("systemd-analyze verify", "systemd-analyze not installed")
        t.done()
    with tempfile.TemporaryDirectory(prefix="mpopd-units-") as d:
        for u in UNITS:
            with open(os.path.join(built, u)) as f:
                text = f.read()
            # The generated units name the installed path (ExecStart=, ExecReload=); verify
            # checks that it exists, so point them at the binary just built.
            text = re.sub(r"^(ExecStart|ExecReload)=\S+/mpopd", r"\1=" + MPOPD, text, flags=re.M)
            with open(os.path.join(d, u), "w") as f:
                f.write(text)
        # verify also runs man(1) for each Documentation= page: let it find the pages of
        # the source tree (not yet installed) through MANPATH.
        src = os.environ.get("SRCDIR", "")
        for sec in ("5", "8"):
            os.makedirs(os.path.join(d, "man", "man" + sec))
        for page in ("mpopd.8", "mpopd.conf.5"):
            os.symlink(os.path.join(src, "man", page),
                       os.path.join(d, "man", "man" + page[-1], page))
        env = dict(os.environ, MANPATH=os.path.join(d, "man"))
        r = subprocess.run(["systemd-analyze", "verify"] + [os.path.join(d, u) for u in UNITS],
                           capture_output=True, timeout=60, env=env)
        out = (r.stdout + r.stderr).decode()
        t.check(r.returncode == 0 and out.strip() == "", "systemd-analyze verify prints nothing", out)
        for u, most in MAX_EXPOSURE.items():
            r = subprocess.run(["systemd-analyze", "security", "--offline=yes", os.path.join(d, u)],
                               capture_output=True, timeout=60)
            m = re.search(rb"Overall exposure level for \S+: ([0-9.]+)", r.stdout)
            score = float(m.group(1)) if m else 99.0
            print(f"# systemd-analyze security --offline=yes {u}: {score}")
            t.check(score <= most, f"{u}: exposure {score} <= {most}", r.stdout.decode()[-500:])
            with open(os.path.join(d, u)) as f:
                lines = unit_lines(f.read())
            caps = [x for x in lines if x.startswith("CapabilityBoundingSet=")]
            t.check(all(x in lines for x in REQUIRED) and len(caps) == 1
                    and "CAP_CHOWN" not in caps[0] and "CAP_FOWNER" not in caps[0]
                    and any(x.startswith("SystemCallFilter=") and " fchown " in x
                            for x in lines),
                    f"{u}: {', '.join(REQUIRED)}, fchown in the filter, neither CAP_CHOWN "
                    "nor CAP_FOWNER", [x for x in REQUIRED if x not in lines] + caps)
    same_template(t, built)
    sysusers(t)
    t.done()


if __name__ == "__main__":
    main()

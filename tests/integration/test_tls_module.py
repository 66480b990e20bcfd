#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The TLS module (mpopd-tls.so) is loaded only when [tls] is configured: without it no
mpopd process (inetd, Accept=yes, the daemon and its session processes) maps OpenSSL or the
module; with it they do and STLS works. A module mpopd cannot load (a copy of the binary in a
directory without the module, where it looks in the install directory, or beside a library
that is not the module) is an error naming its path at --check-config and at start, and a
configuration without [tls] never looks for it. A daemon started without [tls] loads the
module at the reload that adds it."""

import os
import shutil
import signal
import subprocess
import tempfile

from mpopdtest import MPOPD, WAIT, PASSWORD, Reporter, need_binaries, wait_for
from tlsutil import Pki, TlsFixture, TlsPop, TlsServer, client_context

MODULE = "mpopd-tls.so"
OPENSSL = ("libssl.so", "libcrypto.so", MODULE)


def descendants(root):
    """root and every process below it (by parent pid), those running mpopd."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # the command may contain spaces and parentheses: the ppid follows the last ")"
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            continue
        if os.path.basename(exe) == "mpopd":
            out.append(pid)
    return sorted(out)


def mapped(pid):
    """The OpenSSL objects (and the module) in pid's address space, as base names."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            paths = {line.split()[-1] for line in f if "/" in line}
    except OSError:
        return None
    return sorted({os.path.basename(p) for p in paths
                   if any(os.path.basename(p).startswith(n) for n in OPENSSL)})


def session_maps(t, fx, srv, mode, tls):
    """Log in and stay idle; return {pid: mapped objects} of the server's mpopd processes
    (the exec'd process of an inetd/Accept=yes connection; the daemon and its children)."""
    ctx = client_context(fx.pki) if tls else None
    p = TlsPop(srv.port, ctx, implicit=False)
    try:
        t.check(p.greeting.startswith(b"+OK"), f"{mode}: greeting", p.greeting)
        if tls:
            t.check(p.stls().startswith(b"+OK") and p.tls is not None,
                    f"{mode}: STLS and the handshake")
        r1, r2 = p.login()
        t.check(r2.startswith(b"+OK"), f"{mode}: logged in", r1 + b" " + r2)
        t.check(p.cmd("STAT").startswith(b"+OK"), f"{mode}: STAT")
        # the daemon: itself and the connection's processes; inetd: the exec'd process
        want = 2 if mode == "daemon" else 1
        pids = []

        def enough():
            pids[:] = descendants(srv.proc.pid)
            return len(pids) >= want

        wait_for(enough)
        t.check(len(pids) >= want, f"{mode}: the server's mpopd processes found", str(pids))
        maps = {pid: mapped(pid) for pid in pids}
        t.check(p.cmd("QUIT").startswith(b"+OK"), f"{mode}: QUIT")
        return maps
    finally:
        p.close()


def maps_follow_config(t, pki):
    for mode in ("inetd", "accept", "daemon"):
        with TlsFixture(pki, cert=None) as fx, TlsServer(fx, mode) as srv:
            maps = session_maps(t, fx, srv, mode, tls=False)
            t.check(maps and all(m == [] for m in maps.values()),
                    f"{mode}, no [tls]: no process maps libssl, libcrypto or {MODULE}",
                    str(maps))
        with TlsFixture(pki) as fx, TlsServer(fx, mode) as srv:
            maps = session_maps(t, fx, srv, mode, tls=True)
            t.check(maps and all(m is not None and MODULE in m and
                                 any(n.startswith("libssl.so") for n in m)
                                 for m in maps.values()),
                    f"{mode}, [tls]: every process maps {MODULE} and libssl", str(maps))


def reload_adds_tls(t, pki):
    """A daemon started without [tls] loads the module at the reload that adds it."""
    with TlsFixture(pki, cert=None) as fx, TlsServer(fx, "daemon") as srv:
        t.check(mapped(srv.proc.pid) == [], "reload: the daemon without [tls] maps no OpenSSL",
                str(mapped(srv.proc.pid)))
        since = len(fx.stderr_text())
        fx.write_config({"tls.certificate": pki.cert, "tls.key": pki.key})
        os.kill(srv.proc.pid, signal.SIGUSR1)
        t.check(wait_for(lambda: "event=reload " in fx.stderr_text()[since:]),
                "reload: [tls] added", fx.stderr_text()[since:])
        m = mapped(srv.proc.pid)
        t.check(m is not None and MODULE in m, f"reload: the daemon maps {MODULE} now", str(m))
        p = TlsPop(srv.port, client_context(pki), implicit=False)
        try:
            t.check(p.stls().startswith(b"+OK") and p.tls is not None, "reload: STLS works")
            t.check(p.login()[1].startswith(b"+OK"), "reload: login inside TLS")
        finally:
            p.close()


def copy_into(directory):
    """A copy of mpopd in directory (it looks for the module beside itself first)."""
    exe = os.path.join(directory, "mpopd")
    shutil.copy(MPOPD, exe)
    return exe


def unloadable(t, pki):
    workdir = tempfile.mkdtemp(prefix="mpopd-tlsmod-")
    try:
        empty = os.path.join(workdir, "empty")
        other = os.path.join(workdir, "other")
        os.mkdir(empty)
        os.mkdir(other)
        # a shared object that is not the module: the C library's libcrypt, renamed
        crypt = subprocess.run(["ldd", MPOPD], capture_output=True, text=True).stdout
        libcrypt = next(l.split()[2] for l in crypt.splitlines() if "libcrypt.so" in l)
        shutil.copy(libcrypt, os.path.join(other, MODULE))
        # without one beside it, the copy looks in the install directory (not installed here)
        for what, directory, named, says in (
                ("no module", empty, MODULE, "cannot open shared object file"),
                ("another library as the module", other, os.path.join(other, MODULE),
                 "mpop_tls_module")):
            exe = copy_into(directory)
            with TlsFixture(pki) as fx:
                r = subprocess.run([exe, "--check-config", "-c", fx.conf], capture_output=True,
                                   text=True, timeout=WAIT)
                t.check(r.returncode != 0 and named in r.stderr and says in r.stderr,
                        f"--check-config with [tls], {what}: an error naming {named}",
                        f"rc {r.returncode}\n{r.stderr}")
                r = subprocess.run([exe, "--inetd", "-c", fx.conf], input="QUIT\r\n",
                                   capture_output=True, text=True, timeout=WAIT)
                t.check(r.returncode != 0 and "+OK" not in r.stdout and MODULE in r.stderr,
                        f"--inetd with [tls], {what}: does not start, says why",
                        f"rc {r.returncode}\n{r.stdout}\n{r.stderr}")
            with TlsFixture(pki, cert=None) as fx:
                r = subprocess.run([exe, "--check-config", "-c", fx.conf], capture_output=True,
                                   text=True, timeout=WAIT)
                t.check(r.returncode == 0, f"--check-config without [tls], {what}: fine",
                        r.stderr)
                r = subprocess.run([exe, "--inetd", "-c", fx.conf],
                                   input=f"USER alice\r\nPASS {PASSWORD}\r\nQUIT\r\n",
                                   capture_output=True, text=True, timeout=WAIT)
                t.check(r.returncode == 0 and r.stdout.count("+OK") == 4,
                        f"--inetd without [tls], {what}: a session", r.stdout + r.stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    need_binaries()
    # meson test points LD_LIBRARY_PATH at the build's src/ (the module is a dependency);
    # mpopd must find its module itself, as it does once installed.
    os.environ.pop("LD_LIBRARY_PATH", None)
    t = Reporter("tls-module")
    with Pki() as pki:
        t.run(maps_follow_config, pki)
        t.run(reload_adds_tls, pki)
        t.run(unloadable, pki)
    t.done()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Connect -> first STAT answer on a 50 000-message mbox, against reading the file and
finding its line ends (the reference of build/tests/bench-mbox).

Not a test: it prints figures. Run as root from the source tree after building:
    python3 tests/bench-login.py build/src/mpopd build/src/mpopdctl build/tests/bench-mbox \
        [ROUNDS] [HASH]
HASH is "default" (what `mpopdctl passwd` makes: yescrypt) or "sha512crypt". Each round is
a new connection with no index kept from before, as a client does it: connect, greeting,
USER, PASS, STAT, one command at a time. Two ways of running the server: the long-running
daemon (what mpopd.service and `mpopd [port]` do: fork per connection), and one process
per connection started by systemd-socket-activate --accept --inetd (what mpopd.socket with
Accept=yes does: exec per connection).
"""

import crypt
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port):
    for _ in range(250):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port}")


def login_stat(port):
    t0 = time.monotonic()
    c = socket.create_connection(("127.0.0.1", port))
    f = c.makefile("rb")
    lines = [f.readline()]
    for cmd in (b"USER bench\r\n", b"PASS pw\r\n", b"STAT\r\n"):
        c.sendall(cmd)
        lines.append(f.readline())
    dt = time.monotonic() - t0
    c.sendall(b"QUIT\r\n")
    f.readline()
    c.close()
    if not lines[-1].startswith(b"+OK 50000 "):
        raise SystemExit(f"unexpected answers: {lines!r}")
    return dt, lines[-1].decode().strip()


def rounds_of(port, n):
    login_stat(port)  # page cache and server binary warm, as for the reference
    times = []
    for _ in range(n):
        dt, stat = login_stat(port)
        times.append(dt)
        time.sleep(0.05)  # the previous session's process is gone
    return times, stat


def main():
    mpopd, ctl, bench = sys.argv[1:4]
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 11
    kind = sys.argv[5] if len(sys.argv) > 5 else "default"
    uid = 4242 if os.geteuid() == 0 else os.getuid()
    top = tempfile.mkdtemp(prefix="mpopd-bench-")
    os.chmod(top, 0o755)
    mbox = os.path.join(top, "mbox")
    size = int(subprocess.run([bench, "--generate", mbox], capture_output=True,
                              check=True).stdout)
    if os.geteuid() == 0:
        os.chown(top, uid, uid)
        os.chown(mbox, uid, uid)
    if kind == "sha512crypt":
        h = crypt.crypt("pw", crypt.mksalt(crypt.METHOD_SHA512))
    else:
        h = subprocess.run([ctl, "passwd"], input=b"pw\n", capture_output=True,
                           check=True).stdout.decode().strip()
    t0 = time.monotonic()
    for _ in range(5):
        assert crypt.crypt("pw", h) == h
    hash_ms = (time.monotonic() - t0) / 5 * 1000
    with open(os.path.join(top, "users"), "w") as f:
        f.write(f"bench:{h}:{uid}:{uid}:{mbox}\n")
    port = free_port()
    conf = os.path.join(top, "mpopd.conf")
    with open(conf, "w") as f:
        f.write(f"[server]\nlisten=127.0.0.1:{port}\npid_file=\n"
                f"[auth]\nuserlist={top}/users\n[mailbox]\nformat=mbox\n[log]\nlevel=warning\n")
    base = [float(subprocess.run([bench, "--baseline", mbox], capture_output=True,
                                 check=True).stdout.split()[0]) for _ in range(3)]
    results = {}
    try:
        srv = subprocess.Popen([mpopd, "-F", "-c", conf], stderr=subprocess.DEVNULL)
        try:
            wait_port(port)
            results["daemon (fork per connection)"] = rounds_of(port, n)
        finally:
            srv.terminate()
            srv.wait()
        port2 = free_port()
        act = shutil.which("systemd-socket-activate")
        if act:
            srv = subprocess.Popen([act, "--accept", "--inetd", "-l", f"127.0.0.1:{port2}",
                                    mpopd, "--inetd", "-c", conf],
                                   stderr=subprocess.DEVNULL)
            try:
                wait_port(port2)
                results["inetd (exec per connection)"] = rounds_of(port2, n)
            finally:
                srv.terminate()
                srv.wait()
        base.append(float(subprocess.run([bench, "--baseline", mbox], capture_output=True,
                                         check=True).stdout.split()[0]))
    finally:
        subprocess.run(["rm", "-rf", top])
    b = min(base)
    print(f"mbox: 50000 messages, {size / 1e6:.1f} MB; CPUs {len(os.sched_getaffinity(0))}")
    print(f"reference, read + memchr line scan (best of 7, 4 times): "
          + ", ".join(f"{x * 1000:.1f}" for x in base) + f" ms; best {b * 1000:.1f} ms")
    print(f"password hash ({h[:4]}...): {hash_ms:.1f} ms per check, part of every login")
    for name, (times, stat) in results.items():
        best, med = min(times), statistics.median(times)
        print(f"{name}: connect -> '{stat}' best {best * 1000:.1f} ms, median "
              f"{med * 1000:.1f} ms over {len(times)} logins = {best / b:.2f}x / "
              f"{med / b:.2f}x the reference")


if __name__ == "__main__":
    main()

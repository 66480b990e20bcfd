#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Connect -> first STAT answer on a 50 000-message mbox, against reading the file and
finding its line ends (the reference of build/tests/bench-mbox).

Not a test: it prints figures. Run as root from the source tree after building:
    python3 tests/bench-login.py build/src/mpopd build/src/mpopdctl build/tests/bench-mbox \
        [ROUNDS] [HASH]
HASH is "default" (what `mpopdctl passwd` makes: yescrypt) or "sha512crypt". Each round is
a new connection with no index kept from before, as a client does it: connect, greeting,
USER, PASS, STAT, one command at a time; the peak memory (VmHWM) of the session process
(the one running as the mailbox owner) is read from /proc after STAT. Two ways of running the server: the long-running
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


def status_of(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return dict(line.split(":", 1) for line in f if ":" in line)
    except OSError:
        return {}


def session_hwm(uid):
    """VmHWM of the session process: the one running as the mailbox owner."""
    for pid in os.listdir("/proc"):
        st = status_of(pid) if pid.isdigit() else {}
        if st.get("Name", "").strip() == "mpopd" and st.get("Uid", "").split()[:1] == [str(uid)]:
            return int(st["VmHWM"].split()[0])
    return None


def login_stat(port, hwm=None):
    t0 = time.monotonic()
    c = socket.create_connection(("127.0.0.1", port))
    f = c.makefile("rb")
    lines = [f.readline()]
    for cmd in (b"USER bench\r\n", b"PASS pw\r\n", b"STAT\r\n"):
        c.sendall(cmd)
        lines.append(f.readline())
    dt = time.monotonic() - t0
    if hwm is not None:
        hwm.append(session_hwm(hwm_uid))
    c.sendall(b"QUIT\r\n")
    f.readline()
    c.close()
    if not lines[-1].startswith(b"+OK 50000 "):
        raise SystemExit(f"unexpected answers: {lines!r}")
    return dt, lines[-1].decode().strip()


def reference(bench, mbox, runs=1):
    out = subprocess.run([bench, "--baseline", mbox, str(runs)], capture_output=True,
                         check=True).stdout
    return float(out.split()[0])


hwm_uid = 4242 if os.geteuid() == 0 else os.getuid()


def rounds_of(port, n, bench, mbox):
    """n logins, each after one run of the reference in a fresh process: both see the same
    machine state (page cache, CPU load, a process that starts cold)."""
    login_stat(port)  # page cache and server binary warm, as for the reference
    times, refs, hwm = [], [], []
    for _ in range(n):
        refs.append(reference(bench, mbox))
        dt, stat = login_stat(port, hwm)
        times.append(dt)
        time.sleep(0.05)  # the previous session's process is gone
    return times, refs, stat, [k for k in hwm if k is not None]


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
    modes = [("daemon (fork per connection)", lambda p: [mpopd, "-F", "-c", conf])]
    act = shutil.which("systemd-socket-activate")
    if act:
        modes.append(("inetd (exec per connection)",
                      lambda p: [act, "--accept", "--inetd", "-l", f"127.0.0.1:{p}", mpopd,
                                 "--inetd", "-c", conf]))
    results = {}
    try:
        for name, argv in modes:
            p = port if not results else free_port()
            srv = subprocess.Popen(argv(p), stderr=subprocess.DEVNULL)
            try:
                wait_port(p)
                results[name] = rounds_of(p, n, bench, mbox)
            finally:
                srv.terminate()
                srv.wait()
        warm = reference(bench, mbox, 7)
    finally:
        subprocess.run(["rm", "-rf", top])
    print(f"mbox: 50000 messages, {size / 1e6:.1f} MB; CPUs {len(os.sched_getaffinity(0))}")
    print(f"password hash ({h[:4]}...): {hash_ms:.1f} ms per check, part of every login")
    print(f"reference, read + memchr line scan, best of 7 in one process: {warm * 1000:.1f} ms")
    for name, (times, refs, stat, hwm) in results.items():
        best, med = min(times), statistics.median(times)
        rbest, rmed = min(refs), statistics.median(refs)
        print(f"{name}: connect -> '{stat}' over {len(times)} logins: best {best * 1000:.1f} ms, "
              f"median {med * 1000:.1f} ms; the reference run just before each (a fresh "
              f"process): best {rbest * 1000:.1f} ms, median {rmed * 1000:.1f} ms; ratio of "
              f"the bests {best / rbest:.2f}x, of the medians {med / rmed:.2f}x")
        if hwm:
            print(f"  session process after STAT: VmHWM {min(hwm)}-{max(hwm)} kB")


if __name__ == "__main__":
    main()

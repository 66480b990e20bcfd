#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Connect -> first STAT answer on an mbox (50 000 messages unless --messages says), against
reading the file and finding its line ends (the reference of build/tests/bench-mbox).

Not a test: it prints figures. Run as root from the source tree after building:
    python3 tests/bench-login.py build/src/mpopd build/src/mpopdctl build/tests/bench-mbox \
        [ROUNDS] [HASH] [--messages N] [--lines L] [--clients C]
HASH is "default" (what `mpopdctl passwd` makes: yescrypt) or "sha512crypt". Each round is
a new connection, as a client does it: connect, greeting, USER, PASS, STAT, one command at a
time; the peak memory (VmHWM) of the session process (the one running as the mailbox owner)
is read from /proc after STAT. Two kinds of rounds: "first login" removes the persisted mbox
index before each round (a full scan), "second login" keeps the one the previous session
wrote. --clients C runs C clients at once, each on its own copy of the mailbox (one user
each), and reports every client's time. Two ways of running the server: the long-running
daemon (what mpopd.service and `mpopd [port]` do: fork per connection), and one process
per connection started by systemd-socket-activate --accept --inetd (what mpopd.socket with
Accept=yes does: exec per connection).
"""

import argparse
import concurrent.futures
import crypt
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from peers import free_port, wait_port  # noqa: E402 (tests/peers.py, next to this file)


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


def login_stat(port, hwm=None, user="bench0"):
    t0 = time.monotonic()
    c = socket.create_connection(("127.0.0.1", port))
    f = c.makefile("rb")
    lines = [f.readline()]
    for cmd in (f"USER {user}\r\n".encode(), b"PASS pw\r\n", b"STAT\r\n"):
        c.sendall(cmd)
        lines.append(f.readline())
    dt = time.monotonic() - t0
    if hwm is not None:
        hwm.append(session_hwm(hwm_uid))
    c.sendall(b"QUIT\r\n")
    f.readline()
    c.close()
    if not lines[-1].startswith(f"+OK {n_messages} ".encode()):
        raise SystemExit(f"unexpected answers: {lines!r}")
    return dt, lines[-1].decode().strip()


def reference(bench, mbox, runs=1):
    out = subprocess.run([bench, "--baseline", mbox, str(runs)], capture_output=True,
                         check=True).stdout
    return float(out.split()[0])


hwm_uid = 4242 if os.geteuid() == 0 else os.getuid()
n_messages = 50000


def drop_indexes(mboxes):
    """The persisted index of each mbox (see src/mbox-store.c) is removed: a full scan."""
    for m in mboxes:
        d, b = os.path.split(m)
        try:
            os.unlink(os.path.join(d, f".{b}.mpopd-index"))
        except FileNotFoundError:
            pass


def rounds_of(port, n, bench, mboxes, first):
    """n rounds of len(mboxes) concurrent logins, each round after one run of the reference
    in a fresh process: both see the same machine state (page cache, CPU load, a process that
    starts cold). first: the index is removed before each round."""
    users = [f"bench{i}" for i in range(len(mboxes))]
    pool = concurrent.futures.ThreadPoolExecutor(len(users))
    list(pool.map(lambda u: login_stat(port, None, u), users))  # page cache, server warm
    times, refs, hwm = [], [], []
    for _ in range(n):
        refs.append(reference(bench, mboxes[0]))
        if first:
            drop_indexes(mboxes)
        if len(users) == 1:
            dt, stat = login_stat(port, hwm, users[0])
            times.append(dt)
        else:
            for dt, stat in pool.map(lambda u: login_stat(port, None, u), users):
                times.append(dt)
        time.sleep(0.05)  # the previous session's process is gone
    pool.shutdown()
    return times, refs, stat, [k for k in hwm if k is not None]


def main():
    global n_messages
    ap = argparse.ArgumentParser()
    ap.add_argument("mpopd")
    ap.add_argument("ctl")
    ap.add_argument("bench")
    ap.add_argument("rounds", nargs="?", type=int, default=11)
    ap.add_argument("hash", nargs="?", default="default")
    ap.add_argument("--messages", type=int, default=50000)
    ap.add_argument("--lines", type=int, default=28, help="body lines per message")
    ap.add_argument("--clients", type=int, default=1)
    a = ap.parse_args()
    mpopd, ctl, bench, n, kind = a.mpopd, a.ctl, a.bench, a.rounds, a.hash
    n_messages = a.messages
    uid = 4242 if os.geteuid() == 0 else os.getuid()
    top = tempfile.mkdtemp(prefix="mpopd-bench-")
    os.chmod(top, 0o755)
    mboxes = [os.path.join(top, f"mbox{i}") for i in range(a.clients)]
    size = int(subprocess.run([bench, "--generate", mboxes[0], str(a.messages), str(a.lines)],
                              capture_output=True, check=True).stdout)
    for m in mboxes[1:]:
        shutil.copyfile(mboxes[0], m)
    if os.geteuid() == 0:
        os.chown(top, uid, uid)
        for m in mboxes:
            os.chown(m, uid, uid)
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
        for i, m in enumerate(mboxes):
            f.write(f"bench{i}:{h}:{uid}:{uid}:{m}\n")
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
            p = port if not results else free_port()  # the daemon listens where conf says
            srv = subprocess.Popen(argv(p), stderr=subprocess.DEVNULL if os.environ.get("BENCH_QUIET", "1") == "1" else None)
            try:
                wait_port(p)
                for first in (True, False):
                    label = f"{name}, {'first login (no index)' if first else 'second login'}"
                    results[label] = rounds_of(p, n, bench, mboxes, first)
            finally:
                srv.terminate()
                srv.wait()
        warm = reference(bench, mboxes[0], 7)
    finally:
        subprocess.run(["rm", "-rf", top])
    print(f"mbox: {a.messages} messages, {size / 1e6:.1f} MB; {a.clients} client(s) at once; "
          f"CPUs {len(os.sched_getaffinity(0))}")
    print(f"password hash ({h[:4]}...): {hash_ms:.1f} ms per check, part of every login")
    print(f"reference, read + memchr line scan, best of 7 in one process: {warm * 1000:.1f} ms")
    for name, (times, refs, stat, hwm) in results.items():
        best, med = min(times), statistics.median(times)
        rbest, rmed = min(refs), statistics.median(refs)
        p90 = sorted(times)[int(len(times) * 0.9) - 1] if len(times) >= 10 else max(times)
        print(f"{name}: connect -> '{stat}' over {len(times)} logins: best {best * 1000:.1f} ms, "
              f"median {med * 1000:.1f} ms, p90 {p90 * 1000:.1f} ms; the reference run just "
              f"before each round (a fresh process): best {rbest * 1000:.1f} ms, median "
              f"{rmed * 1000:.1f} ms; ratio of the medians {med / rmed:.2f}x")
        if hwm:
            print(f"  session process after STAT: VmHWM {min(hwm)}-{max(hwm)} kB")


if __name__ == "__main__":
    main()

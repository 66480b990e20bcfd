#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""RETR throughput over loopback: every message of a generated mbox, pipelined.

Not a test: it prints figures. Run as root from the source tree after building:
    BENCH_CLIENT=build/src/mpopd-bench \
        python3 tests/bench-retr.py build/src/mpopd build/src/mpopdctl [MB] [MSG_KB]
It starts the legacy daemon on 127.0.0.1 (a free port), logs in as a user-list user whose
uid owns the mbox, sends RETR 1..N in one go and reads until the QUIT reply.
"""

import os
import random
import socket
import subprocess
import sys
import tempfile
import time

from peers import free_port  # tests/peers.py, next to this file


def main():
    mpopd, ctl = sys.argv[1], sys.argv[2]
    total_mb = int(sys.argv[3]) if len(sys.argv) > 3 else 150
    msg_kb = int(sys.argv[4]) if len(sys.argv) > 4 else 20
    uid = 4242 if os.geteuid() == 0 else os.getuid()
    top = tempfile.mkdtemp(prefix="mpopd-bench-")
    os.chmod(top, 0o755)
    mbox = os.path.join(top, "mbox")
    rnd = random.Random(7)
    words = b"the quick brown fox jumps over the lazy dog while mail servers count octets "
    n = 0
    with open(mbox, "wb") as f:
        while f.tell() < total_mb * 1000 * 1000:
            n += 1
            f.write(b"From bench@example.org Mon Jan  1 00:00:00 2024\nMessage-ID: <%d@b>\n"
                    b"Subject: %d\n\n" % (n, n))
            body = bytearray()
            while len(body) < msg_kb * 1000:
                k = rnd.randint(40, 76)
                o = rnd.randint(0, len(words) - 1)
                body += (words * 2)[o:o + k] + b"\n"
            f.write(bytes(body) + b"\n")
    size = os.path.getsize(mbox)
    if os.geteuid() == 0:
        os.chown(top, uid, uid)
        os.chown(mbox, uid, uid)
    h = subprocess.run([ctl, "passwd"], input=b"pw\n", capture_output=True).stdout.decode().strip()
    with open(os.path.join(top, "users"), "w") as f:
        f.write(f"bench:{h}:{uid}:{uid}:{mbox}\n")
    port = free_port()
    conf = os.path.join(top, "mpopd.conf")
    with open(conf, "w") as f:
        f.write(f"[server]\nlisten=127.0.0.1:{port}\npid_file=\nlogin_chroot=\n"
                f"[auth]\nuserlist={top}/users\n[mailbox]\nformat=mbox\n[log]\nlevel=warning\n")
    srv = subprocess.Popen([mpopd, "-F", "-c", conf], stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                c = socket.create_connection(("127.0.0.1", port))
                break
            except OSError:
                time.sleep(0.02)
        client = os.environ.get("BENCH_CLIENT")
        if client:
            # mpopd-bench instead of this Python loop (it checks every answer, too)
            c.close()
            r = subprocess.run([client, "retrieve", "-p", str(port), "-u", "bench", "-w", "pw",
                                "--pipeline", "64", "-q"], capture_output=True)
            print(f"mbox: {n} messages, {size / 1e6:.1f} MB; RETR 1..{n} pipelined "
                  f"({client}):\n{r.stdout.decode().rstrip()}")
            return
        f = c.makefile("rb")
        f.readline()
        c.sendall(b"USER bench\r\nPASS pw\r\n")
        f.readline()
        t0 = time.monotonic()
        login = f.readline()
        t_login = time.monotonic() - t0
        c.sendall(b"".join(b"RETR %d\r\n" % i for i in range(1, n + 1)) + b"QUIT\r\n")
        got = 0
        tail = b""
        buf = bytearray(4 << 20)
        t0 = time.monotonic()
        while True:
            k = c.recv_into(buf)
            if k == 0:
                break
            got += k
            tail = (tail + bytes(buf[max(0, k - 64):k]))[-64:]
        dt = time.monotonic() - t0
        print(f"mbox: {n} messages, {size / 1e6:.1f} MB; login+index {t_login * 1000:.0f} ms "
              f"({login.decode().strip()})")
        print(f"RETR 1..{n} pipelined: {got / 1e6:.1f} MB in {dt:.3f} s = {got / dt / 1e6:.0f} MB/s"
              f" over loopback; ends {tail[-40:]!r}")
    finally:
        srv.terminate()
        srv.wait()
        subprocess.run(["rm", "-rf", top])


if __name__ == "__main__":
    main()

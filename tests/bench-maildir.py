#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Connect -> first STAT answer on big Maildirs, first login (no size cache) and second login
(cache warm), and the session process's memory per message.

Not a test: it prints figures. Run as root from the source tree after building:
    python3 tests/bench-maildir.py build/src/mpopd [--before OLD_MPOPD] [--rounds N]
        [--big N] [--dir DIR]
--before runs an older mpopd binary on the same Maildirs, interleaved with this one (rounds
alternate), for before/after figures. --big sets the message count of the big Maildir
(default 100000). --dir keeps the generated Maildirs there and reuses them in a later run.

Three Maildirs, owned by uid 4242, all in the page cache (a second run of the reference
reads them from memory; the figures are CPU and syscalls, not disk):
  plain-2000    2 000 messages, about 150 MB, names without sizes (Postfix, procmail):
                the sizes come from reading every message or from the size cache
  dovecot-2000  the same messages with Dovecot's ",S=<size>,W=<size with CRLF>" names
  plain-big     100 000 messages of 0.5-4 KB, names without sizes
A "first" login removes mpopd-sizes before it; a "warm" login follows another login. The
reference reads every message once (Python: open, os.readv into one buffer, close), in the
same rounds. "empty" is a Maildir without messages: what a login costs without the mailbox.
"""

import argparse
import crypt
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from peers import free_port, wait_port  # noqa: E402 (tests/peers.py, next to this file)

UID = 4242


def proc_status(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return dict(line.split(":", 1) for line in f if ":" in line)
    except OSError:
        return {}


def descends(pid, root):
    for _ in range(5):
        pid = proc_status(pid).get("PPid", "0").strip()
        if pid == str(root):
            return True
    return False


def session_memory(server):
    """VmRSS, VmHWM and Pss (kB) and CPU time (s, from schedstat: robust against other load
    on the machine) of the session process: the server's mpopd running as the owner."""
    for pid in os.listdir("/proc"):
        st = proc_status(pid) if pid.isdigit() else {}
        if (st.get("Name", "").strip().startswith("mpopd") and "VmRSS" in st and
                st.get("Uid", "").split()[:1] == [str(UID)] and descends(pid, server)):
            pss = None
            try:
                with open(f"/proc/{pid}/smaps_rollup") as f:
                    for line in f:
                        if line.startswith("Pss:"):
                            pss = int(line.split()[1])
            except OSError:
                pass
            try:
                with open(f"/proc/{pid}/schedstat") as f:
                    cpu = int(f.read().split()[0]) / 1e9
            except OSError:
                cpu = None
            return int(st["VmRSS"].split()[0]), int(st["VmHWM"].split()[0]), pss, cpu
    return None


def login_stat(port, user, want, server=None):
    """connect, USER, PASS, STAT one at a time; returns (seconds, memory after STAT)."""
    for attempt in range(200):
        t0 = time.monotonic()
        c = socket.create_connection(("127.0.0.1", port))
        f = c.makefile("rb")
        lines = [f.readline()]
        for cmd in (f"USER {user}\r\n".encode(), b"PASS pw\r\n", b"STAT\r\n"):
            c.sendall(cmd)
            lines.append(f.readline())
            if lines[-1].startswith(b"-ERR"):
                break
        dt = time.monotonic() - t0
        if b"IN-USE" in lines[-1]:  # the previous session is still on its way out
            c.close()
            time.sleep(0.01)
            continue
        mem = None
        for _ in range(20 if server else 0):
            mem = session_memory(server)
            if mem:
                break
            time.sleep(0.005)
        c.sendall(b"QUIT\r\n")
        f.readline()
        f.read()  # EOF: the session has ended and released the Maildir
        c.close()
        if not lines[-1].startswith(f"+OK {want} ".encode()):
            raise SystemExit(f"unexpected answers for {user}: {lines!r}")
        return dt, mem
    raise SystemExit("the Maildir stayed locked")


# ---- fixtures ----

WORDS = ("the of and to in is you that it he was for on are as with his they at be this "
         "from have or by one had not but what all were when we there can an your which "
         "their said if do will each about how up out them then she many some so these "
         "would other into has more her two like him see time could no make than first "
         "been its who now people my made over did down only way find use may water long "
         "little very after words called just where most know get through back much go "
         "good new write our me man too any day same right look think also around another "
         "came come work three word must because does part even place well such").split()


def text_block(rng, size):
    out, line = [], []
    n = 0
    while n < size:
        w = rng.choice(WORDS)
        line.append(w)
        if sum(len(x) + 1 for x in line) > rng.randint(40, 76):
            s = " ".join(line) + "\n"
            if rng.random() < 0.01:
                s = "." + s  # a line that needs dot-stuffing
            out.append(s)
            n += len(s)
            line = []
    return "".join(out).encode()


def message(rng, block, i, size):
    hdr = (f"Return-Path: <sender{i % 97}@example.org>\n"
           f"Received: from mx.example.org by mail.example.net with ESMTP id {i:08x}\n"
           f"From: Sender {i % 97} <sender{i % 97}@example.org>\n"
           f"To: bench@example.net\nSubject: message {i}\n"
           f"Message-ID: <{i}.bench@example.org>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n\n"
           ).encode()
    body = max(size - len(hdr), 10)
    start = rng.randrange(0, len(block) - body - 400)
    start = block.index(b"\n", start) + 1
    end = block.index(b"\n", start + body) + 1
    return hdr + block[start:end]


def sizes_2000(rng):
    """A mail-like mix averaging ~75 KB (150 MB in all): mostly small, some attachments."""
    out = []
    for _ in range(2000):
        r = rng.random()
        out.append(rng.randint(2_000, 17_000) if r < 0.6 else
                   rng.randint(17_000, 130_000) if r < 0.9 else rng.randint(130_000, 780_000))
    return out


def make_maildir(path, msgs, dovecot):
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)
    for i, data in msgs:
        base = f"{1700000000 + i}.M{i}P{1000 + i % 9000}.bench"
        if dovecot:
            w = len(data) + data.count(b"\n") - data.count(b"\r\n")
            base += f",S={len(data)},W={w}"
        with open(os.path.join(path, "cur", base + ":2,S"), "wb") as f:
            f.write(data)


def generate(top, big):
    rng = random.Random(1939)
    block = text_block(rng, 2_000_000)
    stamp = os.path.join(top, f"generated-{big}")
    if os.path.exists(stamp):
        return
    shutil.rmtree(os.path.join(top, "mail"), ignore_errors=True)
    sizes = sizes_2000(rng)
    msgs = [(i, message(rng, block, i, s)) for i, s in enumerate(sizes)]
    make_maildir(os.path.join(top, "mail", "plain-2000"), msgs, False)
    make_maildir(os.path.join(top, "mail", "dovecot-2000"), msgs, True)
    del msgs
    path = os.path.join(top, "mail", "plain-big")
    for lo in range(0, big, 10000):
        make_maildir(path, ((i, message(rng, block, i, rng.randint(500, 4000)))
                            for i in range(lo, min(big, lo + 10000))), False)
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", f"{UID}:{UID}", os.path.join(top, "mail")], check=True)
    open(stamp, "w").close()


def du(path):
    n, size = 0, 0
    for sub in ("cur", "new"):
        for e in os.scandir(os.path.join(path, sub)):
            n += 1
            size += e.stat().st_size
    return n, size


def reference(path):
    """Read every message once: open, read into one buffer until EOF, close."""
    buf = bytearray(1 << 20)
    t0 = time.monotonic()
    c0 = time.process_time()
    for sub in ("cur", "new"):
        d = os.path.join(path, sub)
        for name in os.listdir(d):
            fd = os.open(os.path.join(d, name), os.O_RDONLY)
            while os.readv(fd, [buf]) > 0:
                pass
            os.close(fd)
    return time.monotonic() - t0, time.process_time() - c0


# ---- runs ----

def start(mpopd, conf, port):
    """The long-running daemon (mpopd.service, `mpopd [port]`): fork per connection."""
    srv = subprocess.Popen([mpopd, "-F", "-c", conf], stderr=subprocess.DEVNULL)
    wait_port(port)
    return srv


def fmt(times):
    return (f"best {min(times) * 1000:8.1f} ms  median {statistics.median(times) * 1000:8.1f} ms")


def cpu_fmt(times):
    return f"median {statistics.median(times) * 1000:.1f} ms"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mpopd")
    ap.add_argument("--before")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--big", type=int, default=100000)
    ap.add_argument("--dir")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (the Maildirs belong to uid 4242)")
    top = a.dir or tempfile.mkdtemp(prefix="mpopd-bench-maildir-")
    os.makedirs(top, exist_ok=True)
    os.chmod(top, 0o755)
    t0 = time.monotonic()
    generate(top, a.big)
    print(f"fixtures ready in {time.monotonic() - t0:.0f} s ({top})", file=sys.stderr)
    boxes = ["empty", "plain-2000", "dovecot-2000", "plain-big"]
    os.makedirs(os.path.join(top, "mail", "empty", "cur"), exist_ok=True)
    os.makedirs(os.path.join(top, "mail", "empty", "new"), exist_ok=True)
    os.chown(os.path.join(top, "mail", "empty"), UID, UID)
    crypt_hash = crypt.crypt("pw", "$1$benchslt$")  # md5-crypt: cheap, as in the issue
    with open(os.path.join(top, "users"), "w") as f:
        for b in boxes:
            f.write(f"{b}:{crypt_hash}:{UID}:{UID}:{top}/mail/{b}\n")
    bins = [("after", a.mpopd)] + ([("before", a.before)] if a.before else [])
    ports = {}
    for name, _ in bins:
        ports[name] = free_port()
        with open(os.path.join(top, f"{name}.conf"), "w") as f:
            f.write(f"[server]\nlisten=127.0.0.1:{ports[name]}\npid_file=\n"
                    f"[auth]\nuserlist={top}/users\n[mailbox]\nformat=maildir\n"
                    f"[log]\nlevel=warning\n")
    facts = {b: du(os.path.join(top, "mail", b)) for b in boxes}
    res = {}
    servers, pids = [], {}
    try:
        for name, binary in bins:
            servers.append(start(binary, os.path.join(top, f"{name}.conf"), ports[name]))
            pids[name] = servers[-1].pid
        for box in boxes:
            path = os.path.join(top, "mail", box)
            cache = os.path.join(path, "mpopd-sizes")
            n = facts[box][0]
            rounds = a.rounds if n <= 10000 else max(2, a.rounds // 2)
            reference(path)  # page cache warm
            for name, _ in bins:
                login_stat(ports[name], box, n)
            # Rounds interleave the binaries and the reference: all see the same load.
            for r in range(rounds):
                wall, cpu = reference(path)
                res.setdefault((box, "ref"), []).append(wall)
                res.setdefault((box, "ref-cpu"), []).append(cpu)
                for name, _ in bins:
                    if os.path.exists(cache):
                        os.unlink(cache)
                    dt, mem = login_stat(ports[name], box, n, pids[name])
                    res.setdefault((box, name, "first"), []).append(dt)
                    res.setdefault((box, name, "first-cpu"), []).append(mem[3])
                    res[(box, name, "mem-first")] = mem
                    dt, mem = login_stat(ports[name], box, n, pids[name])
                    res.setdefault((box, name, "warm"), []).append(dt)
                    res.setdefault((box, name, "warm-cpu"), []).append(mem[3])
                    res[(box, name, "mem")] = mem
                    res[(box, name, "cache")] = (os.path.getsize(cache)
                                                 if os.path.exists(cache) else 0)
    finally:
        for srv in servers:
            srv.terminate()
            srv.wait()
        if not a.dir:
            subprocess.run(["rm", "-rf", top])
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), "?")
    print(f"machine: {os.cpu_count()} CPUs, {cpu}; page cache warm; md5-crypt password")
    for box in boxes:
        n, size = facts[box]
        print(f"\n{box}: {n} messages, {size / 1e6:.1f} MB; reading it once "
              f"(open, read, close each): {fmt(res[(box, 'ref')])}; "
              f"CPU {cpu_fmt(res[(box, 'ref-cpu')])}")
        for name, _ in bins:
            for kind in ("first", "warm"):
                print(f"  {name:6} {kind:5} login, connect -> STAT: {fmt(res[(box, name, kind)])}; "
                      f"session CPU {cpu_fmt(res[(box, name, kind + '-cpu')])}")
            for kind in ("mem-first", "mem"):
                mem = res[(box, name, kind)]
                if mem:
                    print(f"  {name:6} {'first' if kind == 'mem-first' else 'warm':5} session "
                          f"after STAT: VmRSS {mem[0]} kB, VmHWM {mem[1]} kB, Pss {mem[2]} kB")
            print(f"  {name:6} size cache: {res[(box, name, 'cache')]} bytes")
    for name, _ in bins:
        small, big = res.get(("plain-2000", name, "mem")), res.get(("plain-big", name, "mem"))
        if small and big:
            dn = facts["plain-big"][0] - facts["plain-2000"][0]
            print(f"\n{name}: session memory per message (plain-big minus plain-2000): "
                  f"VmRSS {(big[0] - small[0]) * 1024 / dn:.0f} B, "
                  f"VmHWM {(big[1] - small[1]) * 1024 / dn:.0f} B")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""What a HAProxy in front of mpopd costs: logins per second and RETR throughput straight to
mpopd, through haproxy as a plain TCP relay, and through haproxy with send-proxy-v2 to an
mpopd with proxy_protocol = v2.

Not a test: it prints figures (docs/scaling.md quotes them). Run as root from the source tree
after building, with Debian's haproxy installed (the script starts its own private one):
    python3 tests/bench-proxy.py build/src/mpopd build/src/mpopdctl [--runs 3] [--seconds 5]
Everything listens on 127.0.0.1. Two mpopd legacy daemons (the same binary; one with
proxy_protocol off, one with v2 and proxy_trusted_networks = 127.0.0.1) serve the same
Maildirs: one of --messages messages of about --msg-kb KB, read with RETR 1..N one by one and
pipelined, and eight small ones (users s0..s7) for the login rounds (connect, greeting, USER,
PASS, STAT, QUIT from --clients concurrent client processes). The password hash is
sha512crypt (about 1 ms) so that the rounds measure the front door rather than the hash.
The client is mpopd-bench of the same build; runs are interleaved, medians
printed. On loopback the balancer shares the CPUs with mpopd and the client, so the relay's
cost shows in full; between machines it is spent on the balancer instead.
"""

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from peers import free_port  # noqa: E402 (tests/peers.py, next to this file)

UID = 4242
PASSWORD = "bench-pw"


def port_taken(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def wait_bound(port, proc, what):
    for _ in range(500):
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with status {proc.returncode}")
        if port_taken(port):
            return
        time.sleep(0.02)
    raise SystemExit(f"{what}: nothing listens on 127.0.0.1:{port}")


def make_maildir(path, count, size, seed):
    rnd = random.Random(seed)
    words = b"the quick brown fox jumps over the lazy dog while balancers relay octets".split()
    lines, n = [], 0
    while n < size:
        line = b" ".join(rnd.choice(words) for _ in range(rnd.randint(6, 12)))
        lines.append(line)
        n += len(line) + 1
    body = b"\n".join(lines) + b"\n"
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(path, sub))
    for i in range(count):
        head = b"From: bench@example.org\nSubject: message %d\n\n" % i
        with open(os.path.join(path, "cur", f"{1700000000 + i}.M{i}P1.bench:2,S"), "wb") as f:
            f.write(head + body)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), UID, UID)
    os.chown(path, UID, UID)


class Proc:
    def __init__(self, name, argv, port, log):
        self.name, self.argv, self.port, self.log = name, argv, port, log
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log, start_new_session=True)
        wait_bound(self.port, self.proc, self.name)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def mpopd(binary, top, tag, users, proxy):
    port = free_port()
    conf = os.path.join(top, f"{tag}.conf")
    with open(conf, "w") as f:
        f.write(f"[server]\nlisten=127.0.0.1:{port}\npid_file=\nmax_sessions=1000\n"
                f"max_sessions_per_source=1000\n")
        if proxy:
            f.write("proxy_protocol=v2\nproxy_trusted_networks=127.0.0.1\n")
        f.write(f"[auth]\nuserlist={users}\npenalty_delay_after=1000\n"
                f"[mailbox]\nformat=maildir\n[log]\nlevel=notice\n")
    log = open(os.path.join(top, f"{tag}.log"), "ab")
    return Proc(f"mpopd {tag}", [binary, "-F", "-c", conf], port, log)


def haproxy(top, direct_port, proxy_port):
    relay, pp = free_port(), free_port()
    cfg = os.path.join(top, "haproxy.cfg")
    with open(cfg, "w") as f:
        f.write(f"""global
    maxconn 4096
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend relay
    bind 127.0.0.1:{relay}
    default_backend relay
backend relay
    server a 127.0.0.1:{direct_port}
frontend pop3
    bind 127.0.0.1:{pp}
    default_backend pop3
backend pop3
    server a 127.0.0.1:{proxy_port} send-proxy-v2
""")
    log = open(os.path.join(top, "haproxy.log"), "ab")
    p = Proc("haproxy", ["haproxy", "-db", "-f", cfg], pp, log)
    return p, relay, pp


def client(args, mode, port, *rest):
    """mpopd-bench: "retr" of every message of user big, serial or pipelined (64 in flight),
    or "sessions" (users s0..s7, CLIENTS, SECONDS). Figures under this script's names."""
    if mode == "retr":
        argv = ["retrieve", "-u", "big", "--pipeline", 64 if rest[0] == "pipelined" else 1]
    else:
        argv = ["sessions", "-u", "s%d", "-c", rest[0], "-t", rest[1]]
    argv = [str(a) for a in [args.client, *argv, "-w", PASSWORD, "-p", port, "--json", "-q"]]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    try:
        res = json.loads(r.stdout)
    except ValueError:
        res = None
    if res is None or (r.returncode != 0 and not res.get("sessions")):
        raise SystemExit(f"{' '.join(argv)}: {r.stderr.strip()}")
    res.update(mbps=res.get("mb_per_s"), bytes=res.get("wire_bytes"),
               rate=res.get("sessions_per_s"))
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mpopd")
    ap.add_argument("mpopdctl")
    ap.add_argument("--client", default=None, help="mpopd-bench (default: next to mpopd)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--messages", type=int, default=400)
    ap.add_argument("--msg-kb", type=int, default=75)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (the mailboxes belong to uid 4242)")
    if not shutil.which("haproxy"):
        raise SystemExit("haproxy is not installed (apt-get install haproxy)")
    args.client = args.client or os.path.join(os.path.dirname(os.path.abspath(args.mpopd)),
                                              "mpopd-bench")
    top = tempfile.mkdtemp(prefix="mpopd-bench-proxy-", dir="/tmp")
    os.chmod(top, 0o755)
    procs = []
    try:
        make_maildir(os.path.join(top, "big"), args.messages, args.msg_kb * 1024, 1)
        for i in range(8):
            make_maildir(os.path.join(top, f"s{i}"), 10, 4096, 2 + i)
        h = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=PASSWORD.encode(),
                           capture_output=True, check=True).stdout.decode().strip()
        users = os.path.join(top, "users")
        with open(users, "w") as f:
            for name in ["big"] + [f"s{i}" for i in range(8)]:
                f.write(f"{name}:{h}:{UID}:{UID}:{top}/{name}\n")
        os.chmod(users, 0o600)
        direct = mpopd(args.mpopd, top, "direct", users, False)
        behind = mpopd(args.mpopd, top, "proxy-v2", users, True)
        for p in (direct, behind):
            p.start()
            procs.append(p)
        hp, relay_port, pp_port = haproxy(top, direct.port, behind.port)
        hp.start()
        procs.append(hp)
        paths = [("direct", direct.port), ("haproxy relay", relay_port),
                 ("haproxy send-proxy-v2", pp_port)]
        res = {}
        for run in range(args.runs):
            for name, port in paths:
                for mode in ("serial", "pipelined"):
                    r = client(args, "retr", port, mode)
                    res.setdefault((name, mode), []).append(r)
                r = client(args, "sessions", port, args.clients, args.seconds)
                res.setdefault((name, "sessions"), []).append(r)

        def med(key, field):
            return statistics.median(float(r[field]) for r in res[key])

        total_mb = float(res[(paths[0][0], "serial")][0]["bytes"]) / 1e6
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"mpopd behind HAProxy {haproxy_version()} on {os.cpu_count()} CPUs, "
              f"medians of {args.runs} runs (load average at the end: {load})")
        print(f"RETR 1..{args.messages} of one Maildir ({total_mb:.0f} MB on the wire), "
              f"logins: {args.clients} clients for {args.seconds:g} s, sha512crypt")
        print(f"  {'path':<24} {'RETR serial MB/s':>16} {'pipelined MB/s':>15} "
              f"{'logins/s':>9} {'login mean ms':>13}")
        for name, _ in paths:
            print(f"  {name:<24} {med((name, 'serial'), 'mbps'):>16.0f} "
                  f"{med((name, 'pipelined'), 'mbps'):>15.0f} "
                  f"{med((name, 'sessions'), 'rate'):>9.0f} "
                  f"{med((name, 'sessions'), 'mean_ms'):>13.1f}")
        failed = sum(int(r["failed"]) for k, rs in res.items() if k[1] == "sessions" for r in rs)
        if failed:
            print(f"  ({failed} logins failed)")
    finally:
        for p in reversed(procs):
            p.stop()
        if os.environ.get("KEEP"):
            print(f"kept {top}")
        else:
            shutil.rmtree(top, ignore_errors=True)


def haproxy_version():
    r = subprocess.run(["haproxy", "-v"], capture_output=True, text=True)
    first = r.stdout.split("\n", 1)[0].split()
    return first[2] if len(first) > 2 else "?"


if __name__ == "__main__":
    sys.exit(main())

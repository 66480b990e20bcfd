#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""RETR of a whole Maildir and logins per second, over TLS and in plaintext, for mpopd and
for Dovecot side by side.

Not a test: it prints figures. Run as root from the source tree after building, with
Debian's dovecot-pop3d installed (the script starts its own private dovecot):
    python3 tests/bench-tls.py build/src/mpopd build/src/mpopdctl \\
        [--baseline OLD/build/src/mpopd] [--runs 5] [--hash yescrypt|sha512crypt] [--hold S]
(--help lists the rest; the client is mpopd-bench of the same build.)
Everything listens on 127.0.0.1 only. One generated Maildir of --messages messages of about
--msg-kb KB (defaults: 2000 x 75 KB = 150 MB) per server, read with RETR 1..N one by one
(answer, then the next command, as most clients do) and pipelined (a window of 64 commands in
flight); eight small Maildirs (users s0..s7) for the login rounds: connect, TLS handshake
(implicit TLS), greeting, USER, PASS, STAT, QUIT, from --clients concurrent client processes.
Both servers get the same password hash for each user; yescrypt (libxcrypt's default, what
`mpopdctl passwd` makes) costs tens of ms per check, so logins are CPU-bound on the hash;
sha512crypt costs about 1 ms. Server CPU is the CPU time of the server's processes (live ones
and the ones it reaped) during a run, client CPU that of mpopd-bench: on a machine with
few CPUs the client competes with the server, and a TLS session has one process more on each
side (the relay). All servers run at once, idle when not measured; their runs are
interleaved, medians printed.
"""

import argparse
import json
import os
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

from peers import ensure_mpopd_login_user, free_port, wait_port  # noqa: E402 (tests/peers.py, next to this file)

UID = 4242
PASSWORD = "bench-pw"


def make_maildir(path, count, size, seed):
    """count messages of about size bytes in cur/, already seen (":2,S"): the state a
    mailbox is in after its first POP3 session in either server, so no run renames files."""
    rnd = random.Random(seed)
    words = (b"the quick brown fox jumps over the lazy dog while mail servers count "
             b"octets and encrypt them ").split()
    bodies = []
    for _ in range(16):
        lines, n = [], 0
        while n < size:
            line = b" ".join(rnd.choice(words) for _ in range(rnd.randint(6, 12)))
            if rnd.random() < 0.01:
                line = b"." + line  # dot-stuffed on the wire (RFC 1939 section 3)
            lines.append(line)
            n += len(line) + 1
        bodies.append(b"\n".join(lines) + b"\n")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(path, sub))
    for i in range(count):
        head = (b"From: bench@example.org\nTo: user@example.org\nSubject: message %d\n"
                b"Message-ID: <%d.bench@example.org>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n\n"
                % (i, i))
        name = f"{1700000000 + i}.M{i}P1.bench:2,S"
        with open(os.path.join(path, "cur", name), "wb") as f:
            f.write(head + bodies[i % len(bodies)])


def chown_tree(path):
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), UID, UID)
    os.chown(path, UID, UID)


def password_hash(kind, ctl):
    if kind == "sha512crypt":
        out = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=PASSWORD.encode(),
                             capture_output=True, check=True)
    else:
        out = subprocess.run([ctl, "passwd"], input=PASSWORD.encode() + b"\n",
                             capture_output=True, check=True)
    return out.stdout.decode().strip()


def tree_cpu(pid):
    """CPU seconds of pid and its live descendants, with what each has reaped."""
    tick = os.sysconf("SC_CLK_TCK")
    stats = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[1] is ppid; utime, stime, cutime, cstime are fields 14-17 of stat(5)
        stats[int(p)] = (int(fields[1]), sum(int(x) for x in fields[11:15]))
    total, todo = 0, [pid]
    while todo:
        cur = todo.pop()
        total += stats.get(cur, (0, 0))[1]
        todo.extend(p for p, (pp, _) in stats.items() if pp == cur)
    return total / tick


class Server:
    def __init__(self, name, argv, plain_port, tls_port, log):
        self.name, self.argv, self.log = name, argv, log
        self.plain_port, self.tls_port = plain_port, tls_port
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.argv, stdout=self.log, stderr=self.log,
                                     start_new_session=True)
        wait_port(self.plain_port, self.proc, self.name)
        if self.tls_port:
            wait_port(self.tls_port, self.proc, self.name)

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        try:  # leftovers of the process group this script created
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.proc = None


def mpopd_server(name, binary, top, cert, key, users, with_tls):
    plain, tls = free_port(), free_port() if with_tls else None
    tag = name.replace(" ", "-").replace("(", "").replace(")", "")
    conf = os.path.join(top, f"{tag}.conf")
    text = (f"[server]\nlisten=127.0.0.1:{plain}\npid_file=\n"
            f"[auth]\nuserlist={users}\n[mailbox]\nformat=maildir\n")
    if with_tls:
        text = text.replace("pid_file=\n", f"pid_file=\nlisten_tls=127.0.0.1:{tls}\n")
        text = text.replace("[auth]\n", "[auth]\nplaintext_auth=loopback\n")
        text += f"[tls]\ncertificate={cert}\nkey={key}\n"
    with open(conf, "w") as f:
        f.write(text)
    check = subprocess.run([binary, "--check-config", "-q", "-c", conf],
                           capture_output=True, text=True)
    if check.returncode != 0:
        return None, check.stderr.strip()
    log = open(os.path.join(top, f"{tag}.log"), "ab")
    return Server(name, [binary, "-F", "-c", conf], plain, tls, log), None


def dovecot_server(args, top, cert, key, users, mode):
    plain, tls = free_port(), free_port()
    base = os.path.join(top, f"dovecot-{mode}")
    os.makedirs(os.path.join(base, "run"))
    os.makedirs(os.path.join(base, "state"))
    dh = "/usr/share/dovecot/dh.pem"
    login_service = ""
    if mode == "high-performance":
        # doc.dovecot.org "Login processes": high-security mode is the default
        # (service_count=1: one login process per connection); high-performance mode
        # reuses a few long-lived login processes, one per CPU.
        login_service = (f"  service_count = 0\n  process_min_avail = {os.cpu_count()}\n"
                         "  vsz_limit = 1G\n")
    text = f"""# private benchmark instance, written by tests/bench-tls.py
base_dir = {base}/run
state_dir = {base}/state
instance_name = mpopd-bench-{mode}
log_path = {base}/dovecot.log
listen = 127.0.0.1
protocols = pop3
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
{"ssl_dh = <" + dh if os.path.exists(dh) else ""}
auth_mechanisms = plain
passdb {{
  driver = passwd-file
  args = scheme=CRYPT {users}
}}
userdb {{
  driver = passwd-file
  args = {users}
}}
mail_location = maildir:~/Maildir
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {plain}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {tls}
    ssl = yes
  }}
{login_service}}}
"""
    conf = os.path.join(base, "dovecot.conf")
    with open(conf, "w") as f:
        f.write(text)
    log = open(os.path.join(base, "stderr.log"), "ab")
    return Server(f"dovecot ({mode})", [args.dovecot, "-F", "-c", conf], plain, tls, log)


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def bench_argv(mode, transport, port, user, password, *rest):
    """mpopd-bench's command line for "retr ... N serial|pipelined" (every message) or
    "sessions ... CLIENTS MAX_SESSIONS MAX_SECONDS" (users USER0, USER1, ...)."""
    argv = [mode if mode != "retr" else "retrieve", "-p", port, "--json", "-q"]
    argv += ["--tls"] if transport == "tls" else []
    if mode == "retr":
        argv += ["-u", user, "-w", password, "--pipeline", 64 if rest[1] == "pipelined" else 1]
    else:
        argv += ["-u", f"{user}%d", "-w", password, "-c", rest[0], "-n", rest[1],
                 "-t", rest[2]]
    return [str(a) for a in argv]


def client(args, *argv):
    """Runs mpopd-bench; returns its figures under the names this script prints, or (None,
    why). Some failed logins under load still give a rate; none that succeeded do not."""
    before = children_cpu()
    try:
        out = subprocess.run([args.client, *bench_argv(*argv)], capture_output=True, text=True,
                             timeout=args.seconds * 4 + 120)
    except subprocess.TimeoutExpired:
        return None, "client timed out"
    try:
        res = json.loads(out.stdout)
    except ValueError:
        res = None
    if res is None or (out.returncode != 0 and not res.get("sessions")):
        return None, (out.stderr or out.stdout).strip().splitlines()[-1:] or ["failed"]
    for ours, theirs in (("mbps", "mb_per_s"), ("bytes", "wire_bytes"), ("rate", "sessions_per_s")):
        if theirs in res:
            res[ours] = res[theirs]
    res["client_cpu"] = children_cpu() - before
    return res, None


def measure(args, srv, *argv):
    """One client run with the server's CPU time around it."""
    before = tree_cpu(srv.proc.pid)
    res, err = client(args, *argv)
    time.sleep(0.05)  # the session processes are gone and reaped
    if res is not None:
        res["server_cpu"] = tree_cpu(srv.proc.pid) - before
    return res, err


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mpopd")
    ap.add_argument("mpopdctl")
    ap.add_argument("--baseline", metavar="MPOPD", help="another mpopd build (e.g. of an "
                    "older commit) measured in the same run, plaintext unless it has TLS")
    ap.add_argument("--client", default=None, help="mpopd-bench (default: the one next "
                    "to mpopd)")
    ap.add_argument("--dovecot", default=shutil.which("dovecot") or "/usr/sbin/dovecot")
    ap.add_argument("--no-dovecot", action="store_true")
    ap.add_argument("--dovecot-modes", default="default,high-performance",
                    help="login process modes to run: default, high-performance")
    ap.add_argument("--runs", type=int, default=5, help="RETR runs per row (median)")
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--msg-kb", type=int, default=75)
    ap.add_argument("--hash", choices=("yescrypt", "sha512crypt"), default="yescrypt")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--sessions", type=int, default=2000, help="most logins per round")
    ap.add_argument("--seconds", type=float, default=10, help="longest login round")
    ap.add_argument("--session-runs", type=int, default=3, help="login rounds (median)")
    ap.add_argument("--plain-only", action="store_true", help="no TLS rows")
    ap.add_argument("--modes", default="serial,pipelined", help="RETR modes to run")
    ap.add_argument("--hold", type=float, default=0, metavar="SECONDS",
                    help="set up and warm the servers, print their ports, wait, clean up")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the servers drop to the mailbox owner")
    if args.client is None:
        args.client = os.path.join(os.path.dirname(os.path.abspath(args.mpopd)), "mpopd-bench")
    if not os.access(args.client, os.X_OK):
        raise SystemExit(f"no client {args.client}: build src/mpopd-bench")
    if not args.no_dovecot and not os.access(args.dovecot, os.X_OK):
        raise SystemExit("no dovecot: apt-get install dovecot-pop3d, or --no-dovecot")
    args.modes = args.modes.split(",")
    return args


def hash_cost_ms(h):
    """Time of one check of the hash in this process, or None without Python's crypt."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import crypt
    except ImportError:
        return None
    t0 = time.monotonic()
    for _ in range(5):
        crypt.crypt(PASSWORD, h)
    return (time.monotonic() - t0) / 5 * 1000


def make_fixture(args, top):
    """Certificate, users and Maildirs: user "big" with the large Maildir, s0..s7 with ten
    small messages each; one copy for the mpopd builds, one for the dovecot instances."""
    cert, key = os.path.join(top, "cert.pem"), os.path.join(top, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    os.chmod(key, 0o600)
    names = ["big"] + [f"s{i}" for i in range(args.clients)]
    hashes = {n: password_hash(args.hash, args.mpopdctl) for n in names}
    homes = {}
    for kind in ["mpopd"] + ([] if args.no_dovecot else ["dovecot"]):
        for n in names:
            home = homes[kind, n] = os.path.join(top, "home", kind, n)
            if n == "big":
                make_maildir(os.path.join(home, "Maildir"), args.messages, args.msg_kb * 1000, 7)
            else:
                make_maildir(os.path.join(home, "Maildir"), 10, 5000, 8)
            chown_tree(home)
    os.chmod(os.path.join(top, "home"), 0o755)
    users = {"mpopd": os.path.join(top, "mpopd-users"),
             "dovecot": os.path.join(top, "dovecot-users")}
    with open(users["mpopd"], "w") as f:
        for n in names:
            f.write(f"{n}:{hashes[n]}:{UID}:{UID}:{homes['mpopd', n]}/Maildir\n")
    if not args.no_dovecot:
        with open(users["dovecot"], "w") as f:
            for n in names:
                f.write(f"{n}:{{CRYPT}}{hashes[n]}:{UID}:{UID}::{homes['dovecot', n]}::\n")
    cur = os.path.join(homes["mpopd", "big"], "Maildir", "cur")
    size = sum(os.path.getsize(os.path.join(cur, f)) for f in os.listdir(cur))
    return cert, key, users, hashes["big"], size


def make_servers(args, top, cert, key, users):
    servers = []
    builds = [("mpopd", args.mpopd)] + ([("mpopd (baseline)", args.baseline)]
                                        if args.baseline else [])
    for name, binary in builds:
        srv, err = mpopd_server(name, binary, top, cert, key, users["mpopd"],
                                not args.plain_only)
        if srv is None and not args.plain_only:
            print(f"{name}: no TLS in this build ({err}); plaintext rows only")
            srv, err = mpopd_server(name, binary, top, cert, key, users["mpopd"], False)
        if srv is None:
            raise SystemExit(f"{name} --check-config: {err}")
        servers.append(srv)
    if not args.no_dovecot:
        for mode in args.dovecot_modes.split(","):
            servers.append(dovecot_server(args, top, cert, key, users["dovecot"], mode))
    return servers


def start_and_warm(args, s):
    """Page cache, and dovecot's index and cache files (its first session computes every
    message's size as sent). The mpopd builds share their Maildirs, so do the dovecots."""
    s.start()
    res, err = measure(args, s, "retr", "plain", s.plain_port, "big", PASSWORD, args.messages,
                       "pipelined")
    if res is None:
        raise SystemExit(f"{s.name}: warm-up RETR failed: {err}")
    client(args, "sessions", "plain", s.plain_port, "s", PASSWORD, args.clients, args.clients,
           30)


def hold(args, servers):
    for s in servers:
        print(f"{s.name}: pid {s.proc.pid}, plain 127.0.0.1:{s.plain_port}, TLS "
              f"127.0.0.1:{s.tls_port}; users big, s0..s{args.clients - 1}, password "
              f"{PASSWORD}", flush=True)
    print(f"holding {args.hold:g} s (e.g. for perf or strace); SIGTERM ends", flush=True)
    time.sleep(args.hold)


def ports_of(s):
    return [(t, p) for t, p in (("plain", s.plain_port), ("TLS", s.tls_port)) if p]


def run_rounds(args, servers):
    """Every server's rows in each round, so a change in the machine's load spreads over
    all rows instead of biasing one."""
    retr, sess, errors = {}, {}, []
    for _ in range(args.runs):
        for s in servers:
            for t, port in ports_of(s):
                for m in args.modes:
                    res, err = measure(args, s, "retr", t.lower(), port, "big", PASSWORD,
                                       args.messages, m)
                    if res is None:
                        errors.append(f"{s.name} {t} RETR {m}: {err}")
                    else:
                        retr.setdefault((s.name, t, m), []).append(res)
    for _ in range(args.session_runs):
        for s in servers:
            for t, port in ports_of(s):
                res, err = measure(args, s, "sessions", t.lower(), port, "s", PASSWORD,
                                   args.clients, args.sessions, args.seconds)
                if res is None:
                    errors.append(f"{s.name} {t} sessions: {err}")
                else:
                    sess.setdefault((s.name, t), []).append(res)
    return retr, sess, errors


def main():
    args = parse_args()
    ensure_mpopd_login_user()
    top = tempfile.mkdtemp(prefix="mpopd-bench-tls-")
    os.chmod(top, 0o755)
    servers = []

    def on_signal(*_):
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # cleaning up now: not interrupted again
        sys.exit(1)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        cert, key, users, h, size = make_fixture(args, top)
        servers = make_servers(args, top, cert, key, users)
        # All servers run at once, idle when not measured.
        for s in servers:
            start_and_warm(args, s)
        if args.hold:
            hold(args, servers)
            return
        retr, sess, errors = run_rounds(args, servers)
        report(args, retr, sess, errors, size, h, hash_cost_ms(h))
    finally:
        for s in servers:
            s.stop()
        for _ in range(3):
            shutil.rmtree(top, ignore_errors=True)
            if not os.path.exists(top):
                break
            time.sleep(1)


def median_of(values, key):
    return statistics.median(float(v[key]) for v in values) if values else None


def fmt(values, key, spec=".0f"):
    m = median_of(values, key)
    return "-" if m is None else format(m, spec)


def report(args, retr, sess, errors, size, h, hash_ms):
    openssl = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout
    print(f"\nmachine: {len(os.sched_getaffinity(0))} CPUs, load average "
          f"{os.getloadavg()[0]:.2f} at the end; {' '.join(openssl.split()[:2])}; certificate "
          "RSA 2048, self-signed")
    for name in dict.fromkeys(k[0] for k in retr if k[1] == "TLS"):
        tls = next(v[0]["tls"] for k, v in retr.items() if k[:2] == (name, "TLS"))
        print(f"TLS with {name}: {tls} (OpenSSL's defaults on both sides)")
    print(f"\nRETR of every message: {args.messages} messages, {size / 1e6:.1f} MB on disk "
          f"(Maildir, LF line ends); median of {args.runs} runs")
    print("  MB/s: octets of the answers (CRLF, dot-stuffed) over the time from the first RETR "
          "to the end of the last answer")
    print("  login: connect .. +OK to PASS (TLS handshake, mailbox open); CPU: seconds of all "
          "the server's processes (srv) and of the client (cli) for the session; the client "
          "shares the CPUs")
    hdr = f"  {'server':<28} {'transport':<9}"
    for m in args.modes:
        hdr += f" {m + ' MB/s':>15} {'login ms':>9} {'srv CPU':>7} {'cli CPU':>7}"
    print(hdr)
    for name in dict.fromkeys(k[0] for k in retr):
        for t in ("plain", "TLS"):
            if not any((name, t, m) in retr for m in args.modes):
                continue
            row = f"  {name:<28} {t:<9}"
            for m in args.modes:
                v = retr.get((name, t, m), [])
                row += (f" {fmt(v, 'mbps'):>15} {fmt(v, 'login_ms'):>9}"
                        f" {fmt(v, 'server_cpu', '.2f'):>7} {fmt(v, 'client_cpu', '.2f'):>7}")
            print(row)
    scheme = {"$y$": "yescrypt", "$6$": "sha512crypt"}.get(h[:3], h[:4])
    cost = f"{hash_ms:.1f} ms per check in this process" if hash_ms else "cost not measured"
    print(f"\nLogins: {args.clients} concurrent clients, each session connect, [TLS handshake,] "
          f"greeting, USER, PASS, STAT (10 messages), QUIT; at most {args.sessions} sessions or "
          f"{args.seconds:g} s per round, median of {args.session_runs} rounds")
    print(f"  password hash: {scheme} ({h[:7]}...), {cost}; the same hash for both servers")
    print(f"  {'server':<28} {'transport':<9} {'sessions/s':>10} {'mean ms':>8} {'max ms':>8} "
          f"{'CPU ms/session: srv':>20} {'cli':>6}")
    for (name, t), v in sess.items():
        def per_session(key):
            return statistics.median(float(r[key]) / max(1, int(r["sessions"])) * 1e3
                                     for r in v)
        print(f"  {name:<28} {t:<9} {fmt(v, 'rate', '.1f'):>10} {fmt(v, 'mean_ms', '.1f'):>8} "
              f"{fmt(v, 'max_ms', '.1f'):>8} {per_session('server_cpu'):>20.1f} "
              f"{per_session('client_cpu'):>6.1f}")
    print("\nGoals (issue 7):")
    for m in args.modes:
        mt = median_of(retr.get(("mpopd", "TLS", m)), "mbps")
        mp = median_of(retr.get(("mpopd", "plain", m)), "mbps")
        dt = median_of(retr.get(("dovecot (default)", "TLS", m)), "mbps")
        bp = median_of(retr.get(("mpopd (baseline)", "plain", m)), "mbps")
        if mt and dt:
            print(f"  RETR {m}: mpopd TLS / dovecot TLS = {mt / dt:.2f}x (goal >= 1.5x)")
        if mt and mp:
            print(f"  RETR {m}: mpopd TLS / mpopd plain = {mt / mp * 100:.0f} % (goal >= 50 %)")
        if mp and bp:
            print(f"  RETR {m}: mpopd plain / baseline plain = {mp / bp:.2f}x (goal >= 1)")
    sp = median_of(sess.get(("mpopd", "plain")), "rate")
    bp = median_of(sess.get(("mpopd (baseline)", "plain")), "rate")
    if sp and bp:
        print(f"  logins: mpopd plain / baseline plain = {sp / bp:.2f}x (goal >= 1)")
    for e in errors:
        print(f"error: {e}")


if __name__ == "__main__":
    main()

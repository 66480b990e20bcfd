#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""How long a failed login takes to be answered, by the reason it failed.

Not a test: it prints figures. Run as root from the source tree after building:
    python3 tests/bench-auth-timing.py build/src/mpopd build/src/mpopdctl [TRIES] [CONCURRENCY]
CONCURRENCY defaults to 2, the CPUs of the test machine: more queues the hashes.

Four kinds of failure, TRIES each (default 200): an unknown user, a wrong password for a
user-list user with a yescrypt hash, one with a sha512crypt hash (100 000 rounds, what
`mpopdctl passwd --scheme sha512` makes) and one with the libxcrypt default sha512crypt
(5 000 rounds, as in many old lists), and a wrong password for a PAM user (pam_wrapper +
pam_matrix, preloaded into the server). Each try is a new connection: greeting, USER, PASS;
the time from sending PASS to the -ERR line is what an attacker measures. Two runs: with
[auth] failure_delay=0 (the checks' own times, what an attacker would see without the
padding) and with the default failure_delay (every failure answered at the same moment).
The failure penalty is set out of reach: it is not what is measured here.
"""

import concurrent.futures
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
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

PAM_LIB = "/usr/lib/x86_64-linux-gnu/libpam_wrapper.so"
PAM_MODULES = "/usr/lib/x86_64-linux-gnu/pam_wrapper"


def one_try(port, user, password):
    c = socket.create_connection(("127.0.0.1", port), timeout=30)
    f = c.makefile("rb")
    assert f.readline().startswith(b"+OK")
    c.sendall(f"USER {user}\r\n".encode())
    assert f.readline().startswith(b"+OK")
    c.sendall(f"PASS {password}\r\n".encode())
    t0 = time.monotonic()
    reply = f.readline()
    dt = time.monotonic() - t0
    try:
        c.sendall(b"QUIT\r\n")
        f.readline()
    except OSError:
        pass
    c.close()
    if not reply.startswith(b"-ERR [AUTH]"):
        raise SystemExit(f"{user}: unexpected answer {reply!r}")
    return dt


def run(mpopd, conf, env, port, kinds, tries, conc):
    srv = subprocess.Popen([mpopd, "-F", "-c", conf], env=env, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        jobs = [(k, u) for k, u in kinds for _ in range(tries)]
        # Interleaved, so a change of machine load hits every kind alike.
        jobs = [jobs[i * tries + j] for j in range(tries) for i in range(len(kinds))]
        times = {k: [] for k, _ in kinds}
        with concurrent.futures.ThreadPoolExecutor(conc) as ex:
            futs = {ex.submit(one_try, port, u, "wrong-password"): k for k, u in jobs}
            for fut in concurrent.futures.as_completed(futs):
                times[futs[fut]].append(fut.result())
        return times
    finally:
        srv.terminate()
        srv.wait()


def main():
    mpopd, ctl = sys.argv[1:3]
    tries = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    conc = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    if os.geteuid() != 0:
        raise SystemExit("run as root (privilege separation is what is measured)")
    top = tempfile.mkdtemp(prefix="mpopd-authbench-")
    os.chmod(top, 0o755)
    try:
        yes = subprocess.run([ctl, "passwd"], input=b"pw\n", capture_output=True,
                             check=True).stdout.decode().strip()
        sha = subprocess.run([ctl, "passwd", "--scheme", "sha512"], input=b"pw\n",
                             capture_output=True, check=True).stdout.decode().strip()
        sha_old = crypt.crypt("pw", crypt.mksalt(crypt.METHOD_SHA512, rounds=5000))
        with open(os.path.join(top, "users"), "w") as f:
            f.write(f"ybob:{yes}:4242:4242:{top}/mbox\n")
            f.write(f"sbob:{sha}:4243:4243:{top}/mbox\n")
            f.write(f"obob:{sha_old}:4244:4244:{top}/mbox\n")
        pamdir = os.path.join(top, "pam.d")
        os.mkdir(pamdir)
        with open(os.path.join(top, "passdb"), "w") as f:
            f.write("nobody:pampw:mpopd\n")
        matrix = os.path.join(PAM_MODULES, "pam_matrix.so")
        with open(os.path.join(pamdir, "mpopd"), "w") as f:
            f.write(f"auth required {matrix} passdb={top}/passdb\n"
                    f"account required {matrix} passdb={top}/passdb\n")
        env = dict(os.environ, LD_PRELOAD=PAM_LIB, PAM_WRAPPER="1",
                   PAM_WRAPPER_SERVICE_DIR=pamdir)
        kinds = [("unknown user", "nosuchuser"), ("yescrypt, wrong password", "ybob"),
                 ("sha512crypt 100000 rounds, wrong password", "sbob"),
                 ("sha512crypt 5000 rounds, wrong password", "obob"),
                 ("PAM (pam_matrix), wrong password", "nobody")]
        results = {}
        for delay in ("0", "default"):
            port = free_port()
            conf = os.path.join(top, f"mpopd-{delay}.conf")
            with open(conf, "w") as f:
                f.write(f"[server]\nlisten=127.0.0.1:{port}\npid_file=\n"
                        f"max_sessions_per_source=100\nmax_sessions=200\n"
                        f"[auth]\nuserlist={top}/users\n"
                        + (f"failure_delay={delay}\n" if delay != "default" else "")
                        + PENALTY_OFF
                        + "[user_auth]\nnobody=pam\n[log]\nlevel=err\n")
            t0 = time.monotonic()
            results[delay] = (run(mpopd, conf, env, port, kinds, tries, conc),
                              time.monotonic() - t0)
    finally:
        shutil.rmtree(top, ignore_errors=True)
    print(f"{tries} failed logins per kind, {conc} concurrent connections, "
          f"CPUs {len(os.sched_getaffinity(0))}; time from PASS to -ERR, in ms")
    for delay, (times, wall) in results.items():
        label = ("failure_delay=0 (the checks' own times)" if delay == "0"
                 else "failure_delay default (1000 ms)")
        print(f"\n{label}, {wall:.0f} s in all")
        print(f"  {'kind':45} {'median':>8} {'p10':>8} {'p90':>8} {'max':>8}")
        for k, _ in kinds:
            t = sorted(times[k])
            q = statistics.quantiles(t, n=10)
            print(f"  {k:45} {statistics.median(t) * 1000:8.1f} {q[0] * 1000:8.1f} "
                  f"{q[-1] * 1000:8.1f} {t[-1] * 1000:8.1f}")


# The failure penalty (per source and per user) is out of reach here: every try comes from
# 127.0.0.1 and names one of five users.
PENALTY_OFF = "penalty_delay_after=1000\npenalty_block_after=0\npenalty_user_block_after=0\n"

if __name__ == "__main__":
    main()

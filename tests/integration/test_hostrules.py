#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""[access] through a running server, in the legacy daemon, systemd Accept=yes and inetd
(systemd-socket-activate --inetd) modes: the host rules file refuses a client before the
greeting with one -ERR line and a record with event=denied, lets the others in, WARN admits
and logs, DENY ALL leaves only the ALLOW lines, a host name rule matches the forward-confirmed
name (127.0.0.1 is localhost in /etc/hosts), a reload (SIGUSR1) reads the file again, a bad
line fails --check-config and the start naming the file and the line, and trusted_networks
exempt their clients from the failure penalty, from max_sessions_per_source and from
allow_non_fqdn=false, which refuses clients without a forward-confirmed name.

Clients bind 127.0.0.2 and 127.0.0.3 as their source (Linux routes all of 127/8 on lo)."""

import os
import signal
import subprocess

from mpopdtest import MPOPD, PASSWORD, Pop, Reporter, Server, need_binaries, run_inetd, wait_for
from test_login_hardening import parallel
from tlsutil import TlsFixture

DENIED = b"-ERR [SYS/PERM] Access denied."
WRONG = "Wr0ng-Passw0rd-xyzzy"


class RulesFixture(TlsFixture):
    """The standard fixture (no TLS) with a rules file in its directory."""

    def __init__(self, rules, extra=None):
        self.rules_path = None
        super().__init__(None, extra, cert=None)
        self.rules_path = os.path.join(self.dir, "hosts.allow-deny")
        self.set_rules(rules)
        self.write_config({"access.hosts_allow_deny": self.rules_path})

    def set_rules(self, text):
        with open(self.rules_path + ".new", "w") as f:
            f.write(text)
        os.rename(self.rules_path + ".new", self.rules_path)


def greet(port, source=None):
    """(first line, closed right after it) for one connection from source."""
    p = Pop(port, source=source)
    try:
        if p.greeting.startswith(b"+OK"):
            return p.greeting, False
        return p.greeting, p.closed(5)
    finally:
        p.close()


def admitted(t, port, source, what):
    line, _ = greet(port, source)
    t.check(line.startswith(b"+OK"), f"{what}: {source} gets the greeting", line)


def refused(t, fx, port, source, what):
    line, closed = greet(port, source)
    t.check(line == DENIED and closed, f"{what}: {source} gets one -ERR line and the "
            "connection closes", f"{line!r} closed={closed}")
    t.check(wait_for(lambda: any("event=denied" in r and f"peer={source}:" in r
                                 for r in fx.stderr_text().splitlines())),
            f"{what}: the refusal of {source} is logged with event=denied and the peer",
            fx.stderr_text()[-1500:])


def deny_one(t, mode):
    with RulesFixture("# one bad address\nDENY 127.0.0.2\n") as fx, Server(fx, mode) as srv:
        refused(t, fx, srv.port, "127.0.0.2", f"{mode}: DENY 127.0.0.2")
        admitted(t, srv.port, "127.0.0.1", f"{mode}: DENY 127.0.0.2")
        p = Pop(srv.port)
        t.check(p.login()[1].startswith(b"+OK"), f"{mode}: 127.0.0.1 logs in")
        p.close()


def deny_all(t, mode):
    rules = "DENY ALL\nALLOW 127.0.0.1\nWARN 127.0.0.3\n"
    with RulesFixture(rules) as fx, Server(fx, mode) as srv:
        admitted(t, srv.port, "127.0.0.1", f"{mode}: DENY ALL + ALLOW 127.0.0.1")
        refused(t, fx, srv.port, "127.0.0.2", f"{mode}: DENY ALL + ALLOW 127.0.0.1")
        # WARN does not admit past DENY ALL: logged, then refused
        refused(t, fx, srv.port, "127.0.0.3", f"{mode}: DENY ALL + WARN 127.0.0.3")
        t.check("event=warned" in fx.stderr_text(), f"{mode}: the WARN line was logged too")


def warn(t, mode):
    with RulesFixture("WARN 127.0.0.0/8\nDENY 127.0.0.2\n") as fx, Server(fx, mode) as srv:
        admitted(t, srv.port, "127.0.0.3", f"{mode}: WARN 127.0.0.0/8")
        t.check(wait_for(lambda: any("event=warned" in r and "peer=127.0.0.3:" in r and
                                     fx.rules_path + ":1" in r
                                     for r in fx.stderr_text().splitlines())),
                f"{mode}: WARN admits and logs event=warned with the file and line",
                fx.stderr_text()[-1500:])
        refused(t, fx, srv.port, "127.0.0.2", f"{mode}: WARN then DENY")


def host_name(t, mode):
    """localhost: 127.0.0.1's PTR name in /etc/hosts, which resolves back to 127.0.0.1;
    127.0.0.2 has no name (or none that resolves back), so only DENY ALL applies to it."""
    extra = {"access.resolver_timeout": "1"}
    with RulesFixture("ALLOW LocalHost\nDENY ALL\n", extra) as fx, Server(fx, mode) as srv:
        admitted(t, srv.port, "127.0.0.1", f"{mode}: ALLOW localhost")
        refused(t, fx, srv.port, "127.0.0.2", f"{mode}: ALLOW localhost + DENY ALL")
    # the daemon's start is checked with a greeting to 127.0.0.1: refuse it only then
    with RulesFixture("# none yet\n", extra) as fx, Server(fx, mode) as srv:
        apply_rules(t, fx, srv, "DENY .localdomain\nDENY localhost\n")
        line, _ = greet(srv.port, "127.0.0.1")
        t.check(line == DENIED, f"{mode}: DENY localhost refuses 127.0.0.1", line)
        t.check(wait_for(lambda: "(localhost) denied by " + fx.rules_path + ":2"
                         in fx.stderr_text()),
                f"{mode}: the record names the confirmed name and the rule",
                fx.stderr_text()[-1500:])
        admitted(t, srv.port, "127.0.0.2", f"{mode}: DENY localhost")


def apply_rules(t, fx, srv, text):
    """New rules for srv: the daemon reads them at a reload, inetd at the next connection."""
    reloads = fx.stderr_text().count("event=reload ")
    fx.set_rules(text)
    if srv.mode == "daemon":
        os.kill(srv.proc.pid, signal.SIGUSR1)
        t.check(wait_for(lambda: fx.stderr_text().count("event=reload ") > reloads),
                "SIGUSR1 reloads", fx.stderr_text()[-1500:])


def reload(t):
    with RulesFixture("DENY 127.0.0.2\n") as fx, Server(fx, "daemon") as srv:
        refused(t, fx, srv.port, "127.0.0.2", "reload: before")
        apply_rules(t, fx, srv, "DENY 127.0.0.3\n")
        admitted(t, srv.port, "127.0.0.2", "reload: the new file admits 127.0.0.2")
        line, _ = greet(srv.port, "127.0.0.3")
        t.check(line == DENIED, "reload: the new file refuses 127.0.0.3", line)
        # a bad file at a reload keeps the old rules and says where it is wrong
        fx.set_rules("DENY 127.0.0.3\nALLOW 127.0.0\n")
        os.kill(srv.proc.pid, signal.SIGUSR1)
        t.check(wait_for(lambda: "event=reload-failed" in fx.stderr_text()),
                "reload: a bad file fails the reload", fx.stderr_text()[-1500:])
        t.check(f"{fx.rules_path}:2:" in fx.stderr_text(),
                "reload: the failure names the file and the line", fx.stderr_text()[-1500:])
        line, _ = greet(srv.port, "127.0.0.3")
        t.check(line == DENIED, "reload: the old rules still apply", line)


def bad_file(t):
    with RulesFixture("# fine\nDENY 192.0.2.1\nALLOW 10.0.0.1/8\n") as fx:
        r = subprocess.run([MPOPD, "--check-config", "-q", "-c", fx.conf],
                           capture_output=True, text=True, timeout=30)
        t.check(r.returncode == 1 and f"{fx.rules_path}:3:" in r.stderr
                and "10.0.0.1/8" in r.stderr,
                "bad file: --check-config fails naming the file, the line and the value",
                f"rc={r.returncode} {r.stderr}")
        rc, out, err = run_inetd(fx, b"QUIT\r\n")
        t.check(rc != 0 and not out.startswith(b"+OK") and f"{fx.rules_path}:3:" in err,
                "bad file: mpopd --inetd does not serve and names the line",
                f"rc={rc} {out!r} {err[-500:]}")
        r = subprocess.run([MPOPD, "-F", "-c", fx.conf, "1"], capture_output=True, text=True,
                           timeout=30)
        t.check(r.returncode == 1 and f"{fx.rules_path}:3:" in r.stderr,
                "bad file: the daemon does not start", f"rc={r.returncode} {r.stderr[-500:]}")
        fx.set_rules("# fine\nDENY 192.0.2.1\nALLOW 10.0.0.0/8\n")
        r = subprocess.run([MPOPD, "--check-config", "-c", fx.conf], capture_output=True,
                           text=True, timeout=30)
        t.check(r.returncode == 0 and "[access]" in r.stdout and
                f"hosts_allow_deny={fx.rules_path}" in r.stdout,
                "bad file: fixed, --check-config passes and shows [access]",
                f"rc={r.returncode} {r.stderr}")
        os.unlink(fx.rules_path)
        r = subprocess.run([MPOPD, "--check-config", "-q", "-c", fx.conf],
                           capture_output=True, text=True, timeout=30)
        t.check(r.returncode == 1 and fx.rules_path in r.stderr,
                "bad file: a missing rules file is an error", r.stderr)


def non_fqdn(t, mode):
    """allow_non_fqdn=false: only clients with a forward-confirmed name, or trusted ones."""
    extra = {"access.allow_non_fqdn": "false", "access.resolver_timeout": "1",
             "access.trusted_networks": "127.0.0.3"}
    with RulesFixture("# none\n", extra) as fx, Server(fx, mode) as srv:
        admitted(t, srv.port, "127.0.0.1", f"{mode}: allow_non_fqdn=false: localhost")
        refused(t, fx, srv.port, "127.0.0.2", f"{mode}: allow_non_fqdn=false: no name")
        t.check("no forward-confirmed reverse DNS name" in fx.stderr_text(),
                f"{mode}: allow_non_fqdn=false: the record says why")
        admitted(t, srv.port, "127.0.0.3", f"{mode}: allow_non_fqdn=false: trusted")


# the failure penalty of test_penalty.py: a block after 5 failures from one address
PENALTY = {"auth.failure_delay": "300", "auth.penalty_delay_after": "1",
           "auth.penalty_max_delay": "3", "auth.penalty_block_after": "5",
           "auth.penalty_user_block_after": "0", "auth.penalty_period": "60",
           "access.trusted_networks": "127.0.0.1/32;2001:db8::/32"}


def attempt(port, password, source):
    p = Pop(port, source=source)
    try:
        return p.login("alice", password)[1]
    finally:
        p.close()


def trusted_penalty(t, mode):
    with RulesFixture("# no rules\n", PENALTY) as fx, Server(fx, mode) as srv:
        for source in ("127.0.0.1", "127.0.0.2"):
            for _ in range(6):
                attempt(srv.port, WRONG, source)
        r = attempt(srv.port, PASSWORD, "127.0.0.1")
        t.check(r.startswith(b"+OK"), f"{mode}: trusted 127.0.0.1 logs in after 6 failures",
                r)
        r = attempt(srv.port, PASSWORD, "127.0.0.2")
        t.check(r.startswith(b"-ERR [SYS/TEMP]"), f"{mode}: untrusted 127.0.0.2 is blocked "
                "after 6 failures", r)


def trusted_limit(t):
    extra = {"server.max_sessions_per_source": "1",
             "access.trusted_networks": "127.0.0.1"}
    with RulesFixture("ALLOW ALL\n", extra) as fx, Server(fx, "daemon") as srv:
        held = [Pop(srv.port), Pop(srv.port)]
        t.check(all(p.greeting.startswith(b"+OK") for p in held),
                "limit: trusted 127.0.0.1 gets two sessions with max_sessions_per_source=1",
                [p.greeting for p in held])
        held.append(Pop(srv.port, source="127.0.0.2"))
        t.check(held[-1].greeting.startswith(b"+OK"), "limit: 127.0.0.2 gets one")
        p = Pop(srv.port, source="127.0.0.2")
        t.check(p.greeting.startswith(b"-ERR [SYS/TEMP]"),
                "limit: 127.0.0.2's second session is refused", p.greeting)
        for h in held + [p]:
            h.close()


def main():
    need_binaries()
    t = Reporter("hostrules")
    jobs = [(f, mode) for mode in ("daemon", "inetd") for f in (deny_one, deny_all, warn,
                                                                host_name, trusted_penalty,
                                                                non_fqdn)]
    jobs += [(deny_one, "accept"), (trusted_penalty, "accept"), (reload,), (bad_file,),
             (trusted_limit,)]
    parallel(t, jobs)
    t.done()


if __name__ == "__main__":
    main()

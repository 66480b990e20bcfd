#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""System accounts through PAM: mpopd.socket (Accept=yes) + mpopd@.service, shipped sandbox.

In a throw-away container: a system user alice made the way an admin's tools leave it (a
passwd, group and shadow entry, the password hashed with yescrypt by mpopdctl passwd, the
Maildir owned by her), the shipped /etc/pam.d/mpopd with Debian's common-auth and
common-account (pam_unix), [auth] default = pam. mpopd authenticates in the root
connection process of each instance, under the unit's seccomp filter, capability bounding
set and ProtectSystem=strict: every message fetched byte-exact; a wrong password, an
unknown user and an expired account refused with -ERR [AUTH]; the login-failed records in
the journal, with pam_unix's own record naming the client (PAM_RHOST); no password
anywhere. Then the shipped fail2ban filter, installed in the container, run with
fail2ban-regex over this journal: each failed login of a second client address found, the
successful logins and a record forged by an unprivileged local user not. Last, [auth]
pam_session = true with Debian's common-session-noninteractive: pam_unix opens the session
after the login and closes it after the logout, from the root process that stays for it,
also when the instance is stopped mid-session.
"""

import os
import re

from mpopdtest import (MESSAGES, PASSWORD, TEST_GID, TEST_UID, Reporter, lines_of, uidl_of,
                       wait_for)
from nspawn import (VMAIL, booted, mpopd_failures, reap, skip_unless_possible,
                    unit_file_warnings)
from test_socket import instances, unit_processes

PORT = 110
EXPECT = [b"\n".join(lines_of(raw)) for _, raw in sorted(MESSAGES, key=lambda m: uidl_of(m[0]))]
WRONG = "Wr0ng-" + PASSWORD
ATTACKER = "127.0.0.23"  # a second client address on the container's loopback
ATTEMPTS = 3
FORGED = "203.0.113.9"
SRCDIR = os.environ.get("SRCDIR", "")
# Debian's pam-auth-update output for a system with pam_unix only (libpam-runtime), used
# where the host has no /etc/pam.d/common-* of its own.
DEBIAN_COMMON = {
    "common-auth": "auth\t[success=1 default=ignore]\tpam_unix.so nullok\n"
                   "auth\trequisite\t\t\tpam_deny.so\nauth\trequired\t\t\tpam_permit.so\n",
    "common-account": "account\t[success=1 new_authtok_reqd=done default=ignore]\tpam_unix.so\n"
                      "account\trequisite\t\t\tpam_deny.so\n"
                      "account\trequired\t\t\tpam_permit.so\n",
    "common-session-noninteractive": "session\t[default=1]\t\t\tpam_permit.so\n"
                                     "session\trequisite\t\t\tpam_deny.so\n"
                                     "session\trequired\t\t\tpam_permit.so\n"
                                     "session\trequired\tpam_unix.so\n",
}


def read(path):
    with open(path) as f:
        return f.read()


def add_system_users(s):
    """alice (uid TEST_UID, the fixture's mail owner) and dave, whose account expired in
    1970 (shadow field 8): entries appended to the container's passwd, group and shadow,
    which systemd-sysusers made at boot."""
    ct, fx = s.ct, s.fx
    home = f"{VMAIL}/mail/alice"
    ct.sh(["sh", "-c", 'printf "%s\\n" "$1" >> /etc/passwd && printf "%s\\n" "$2" >> /etc/group'
           ' && printf "%s\\n" "$3" >> /etc/shadow', "sh",
           f"alice:x:{TEST_UID}:{TEST_GID}:PAM test user:{home}:/usr/sbin/nologin\n"
           f"dave:x:{TEST_UID + 1}:{TEST_GID}::/nonexistent:/usr/sbin/nologin",
           f"alice:x:{TEST_GID}:",
           f"alice:{fx.hash}:19000:0:99999:7:::\n"
           f"dave:{fx.hash}:19000:0:99999:7::1:"])
    r = ct.sh(["getent", "shadow", "alice"], check=False)
    return r.stdout.decode().startswith("alice:$y$")


def install_pam(s):
    """The shipped PAM service file, and the common-* stacks it includes."""
    ct = s.ct
    ct.write("/etc/pam.d/mpopd", read(os.path.join(SRCDIR, "conf", "pam.d", "mpopd")))
    for name, text in DEBIAN_COMMON.items():
        host = os.path.join("/etc/pam.d", name)
        ct.write(host, read(host) if os.path.exists(host) else text)


def logins(t, s):
    ct = s.ct
    res = ct.pop(PORT, [{"op": "fetch"}, {"op": "wrong", "password": WRONG}])
    res += [{}] * (2 - len(res))
    t.check("error" not in res[0], "PAM (pam_unix): alice logs in with her system password",
            res[0].get("error"))
    msgs = [bytes.fromhex(m) for m in res[0].get("messages", [])]
    t.check(msgs == EXPECT, f"every RETR byte-exact ({len(EXPECT)} messages)",
            [len(m) for m in msgs])
    t.check(res[1].get("reply", "").startswith("-ERR [AUTH]"),
            "a wrong password: -ERR [AUTH]", res[1])
    res = ct.pop(PORT, [{"op": "wrong", "password": PASSWORD}], user="nosuchuser")
    t.check(res[0].get("reply", "").startswith("-ERR [AUTH]"),
            "an unknown user: -ERR [AUTH]", res[0])
    res = ct.pop(PORT, [{"op": "wrong", "password": PASSWORD}], user="dave")
    t.check(res[0].get("reply", "").startswith("-ERR [AUTH]"),
            "an expired account, right password (pam_acct_mgmt): -ERR [AUTH]", res[0])


def journal(t, s):
    ct = s.ct
    entries = []

    def settled():
        nonlocal entries
        entries, _ = ct.journal()
        return (sum(e.get("MPOPD_EVENT") == "login-failed" for e in entries) >= 3
                and any(e.get("MPOPD_EVENT") == "logout" for e in entries))

    wait_for(settled, timeout=10, step=0.3)
    entries, raw = ct.journal()
    failed = [e for e in entries if e.get("MPOPD_EVENT") == "login-failed"]
    users = sorted(e.get("MPOPD_USER", "") for e in failed)
    t.equal(users, ["alice", "dave", "nosuchuser"],
            "journal: one MPOPD_EVENT=login-failed record per refused login, with MPOPD_USER")
    t.check(all(e.get("_SYSTEMD_UNIT", "").startswith("mpopd@") and e.get("_UID") == "0"
                and re.match(r"^127\.0\.0\.1:\d+$", e.get("MPOPD_PEER", "")) for e in failed),
            "journal: written by the root process of an mpopd@ instance, with MPOPD_PEER",
            [(e.get("_SYSTEMD_UNIT"), e.get("_UID"), e.get("MPOPD_PEER")) for e in failed])
    logged_in = [e for e in entries if e.get("MPOPD_EVENT") == "login"]
    t.check(any(e.get("MPOPD_USER") == "alice" for e in logged_in),
            "journal: MPOPD_EVENT=login for alice", logged_in[:1])
    unix = [e.get("MESSAGE", "") for e in entries
            if str(e.get("MESSAGE", "")).startswith("pam_unix(mpopd:auth): authentication failure")]
    t.check(any("rhost=127.0.0.1" in m and "user=alice" in m for m in unix),
            "journal: pam_unix's own record (service mpopd) names the client (PAM_RHOST)",
            unix[:2])
    unix = [e.get("MESSAGE", "") for e in entries
            if str(e.get("MESSAGE", "")).startswith("pam_unix(mpopd:account)")]
    t.check(any("dave" in m and "expired" in m for m in unix),
            "journal: pam_unix refused dave's expired account (account stack)", unix[:2])
    t.check(PASSWORD.encode() not in raw and WRONG.encode() not in raw,
            f"journal: no password in any of {len(entries)} records")
    t.check(not mpopd_failures(entries),
            "journal: no mpopd unit failed (seccomp, capabilities, ProtectSystem= vs. PAM)",
            mpopd_failures(entries))
    t.check(not unit_file_warnings(entries), "journal: no complaint about the unit files",
            unit_file_warnings(entries))


def fail2ban_ips(ct, *extra):
    """The addresses fail2ban-regex finds in the container's journal with the installed
    filter mpopd (one line per failure)."""
    r = ct.sh(["fail2ban-regex", *extra, "--out", "ip", "systemd-journal", "mpopd"],
              check=False, timeout=60)
    if r.returncode != 0:
        return [f"fail2ban-regex rc {r.returncode}: {r.stderr.decode()[-500:]}"]
    return r.stdout.decode().split()


def fail2ban(t, s):
    """The shipped filter installed where fail2ban looks for it, common.conf from the
    fail2ban package next to it: the failures of ATTACKER found once each, nothing else."""
    ct = s.ct
    if not os.path.exists("/etc/fail2ban/filter.d/common.conf"):
        t.check(False, "fail2ban installed on the host (Debian: fail2ban, python3-systemd)")
        return
    ct.write("/etc/fail2ban/filter.d/common.conf",
             read("/etc/fail2ban/filter.d/common.conf"))
    ct.write("/etc/fail2ban/filter.d/mpopd.conf",
             read(os.path.join(SRCDIR, "conf", "fail2ban", "filter.d", "mpopd.conf")))
    before = len([e for e in ct.journal()[0] if e.get("MPOPD_EVENT") == "login-failed"])
    res = ct.pop(PORT, [{"op": "wrong", "password": WRONG}] * ATTEMPTS, source=ATTACKER)
    t.check(len(res) == ATTEMPTS and all(r.get("reply", "").startswith("-ERR [AUTH]")
                                         for r in res),
            f"{ATTEMPTS} wrong passwords from {ATTACKER}", res)
    res = ct.pop(PORT, [{"op": "fetch"}], source=ATTACKER)
    t.check("error" not in res[0], f"then a successful login from {ATTACKER}",
            res[0].get("error"))
    # a local user writes a record that looks like mpopd's, fields and all
    ct.sh(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "logger",
           "--journald"], input=(f"MESSAGE=authentication failed from {FORGED}: forged\n"
                                 "MPOPD_EVENT=login-failed\nSYSLOG_IDENTIFIER=mpopd\n"
                                 "PRIORITY=5\n").encode(), check=False)
    wait_for(lambda: len([e for e in ct.journal()[0]
                          if e.get("MPOPD_EVENT") == "login-failed"]) >= before + ATTEMPTS + 1,
             timeout=10, step=0.3)
    entries = ct.journal()[0]
    t.check(any(e.get("MPOPD_EVENT") == "login-failed" and e.get("_UID") == "65534"
                for e in entries), "a forged login-failed record from uid 65534 is in the journal")
    ips = fail2ban_ips(ct)
    t.equal(sorted(ips), ["127.0.0.1"] * 3 + [ATTACKER] * ATTEMPTS,
            "fail2ban-regex (filter mpopd, its journalmatch): each failed login found with "
            "its client address, the forged record not")
    ips = fail2ban_ips(ct, "--journalmatch", "MPOPD_EVENT=login-failed")
    t.check(FORGED in ips, f"... which only _UID=0 in the journalmatch keeps out (without it "
            f"{FORGED} would be banned)", ips)
    # every record of mpopd, successful logins included, through the same regex
    ips = fail2ban_ips(ct, "--journalmatch", "SYSLOG_IDENTIFIER=mpopd _UID=0")
    t.equal(sorted(ips), ["127.0.0.1"] * 3 + [ATTACKER] * ATTEMPTS,
            "fail2ban-regex over all of mpopd's records: the logins, connects and logouts "
            "match nothing")


def pam_unix_session(entries, what):
    """pam_unix's "session opened/closed for user alice" records, with their times."""
    return [e for e in entries
            if str(e.get("MESSAGE", "")).startswith(
                f"pam_unix(mpopd:session): session {what} for user alice")]


def stamp(e):
    return int(e.get("_SOURCE_REALTIME_TIMESTAMP") or e.get("__REALTIME_TIMESTAMP") or 0)


def sessions(t, s):
    """[auth] pam_session = true: Debian's noninteractive session stack (pam_unix) opened
    after the login and closed after the session, by the root process that stays for it,
    under the shipped sandbox; a stopped instance still closes its PAM session."""
    ct = s.ct
    s.set_config({"auth.pam_session": "true"})
    mark = len(ct.journal()[0])
    res = ct.pop(PORT, [{"op": "fetch"}])[0]
    t.check("error" not in res and len(res.get("messages", [])) == len(EXPECT),
            "pam_session: alice logs in and fetches", res.get("error"))
    entries = []

    def closed(n):
        nonlocal entries
        entries = ct.journal()[0][mark:]
        return len(pam_unix_session(entries, "closed")) >= n

    t.check(wait_for(lambda: closed(1), timeout=10, step=0.3),
            "journal: pam_unix closed the session", pam_unix_session(entries, "opened"))
    opened, shut = pam_unix_session(entries, "opened"), pam_unix_session(entries, "closed")
    logout = [e for e in entries if e.get("MPOPD_EVENT") == "logout"]
    t.check(len(opened) == 1 and len(shut) == 1 and len(logout) == 1
            and stamp(opened[0]) < stamp(logout[0]) < stamp(shut[0]),
            "pam_open_session once before the session, pam_close_session once after its logout",
            [(e.get("MESSAGE"), stamp(e)) for e in opened + logout + shut])
    t.check(all(e.get("_SYSTEMD_UNIT", "").startswith("mpopd@") for e in opened + shut),
            "both from the mpopd@ instance", [e.get("_SYSTEMD_UNIT") for e in opened + shut])

    p = ct.pop_background(PORT, [{"op": "hold", "seconds": 20}])
    try:
        held = p.stdout.readline()
        t.check(b'"held": true' in held, "pam_session: a session stays logged in", held)
        units = instances(ct)
        unit = units[0] if units else "mpopd@none.service"
        procs = unit_processes(ct, unit)
        t.equal(sorted(st.get("Uid") for st in procs.values()), sorted(["0", str(TEST_UID)]),
                "the instance: the root process that holds the PAM handle and the session "
                f"as uid {TEST_UID}")
        t.check(procs and all(st.get("Seccomp") == "2" and st.get("NoNewPrivs") == "1"
                              for st in procs.values())
                and all(st.get("CapEff") == "0000000000000000" for st in procs.values()
                        if st.get("Uid") == str(TEST_UID)),
                "both under the unit's seccomp filter; the session without capabilities",
                procs)
        ct.systemctl("stop", unit, check=False)
        t.check(b'"closed_by_server": true' in p.stdout.readline(),
                "systemctl stop of the instance ends the session")
    finally:
        reap(p, 10)
    t.check(wait_for(lambda: closed(2), timeout=10, step=0.3),
            "journal: the stopped instance still closed its PAM session (SIGTERM passed on "
            "to the session, then pam_close_session)",
            [e.get("MESSAGE") for e in pam_unix_session(entries, "closed")])
    t.check(not mpopd_failures(entries), "journal: no mpopd unit failed with pam_session",
            mpopd_failures(entries))


def scenario(t):
    with booted("pam") as s:
        ct = s.ct
        print(f"# container up ({ct.boot_state}) after {ct.boot_seconds:.1f} s", flush=True)
        t.check(add_system_users(s), "system users alice and dave in passwd, group, shadow "
                "(yescrypt hash from mpopdctl passwd)")
        install_pam(s)
        s.set_config({"auth.default": "pam"})
        s.install_units(["mpopd.socket", "mpopd@.service"])
        r = ct.systemctl("enable", "--now", "mpopd.socket", check=False)
        t.check(r.returncode == 0, "systemctl enable --now mpopd.socket", r.stderr)
        logins(t, s)
        journal(t, s)
        fail2ban(t, s)
        sessions(t, s)


def main():
    skip_unless_possible()
    t = Reporter("systemd-pam")
    t.run(scenario)
    t.done()


if __name__ == "__main__":
    main()

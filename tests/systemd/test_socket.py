#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""mpopd.socket (Accept=yes) + mpopd@.service under a real systemd in systemd-nspawn.

Installed and enabled as an admin would (port 110 of the container's private loopback):
every message fetched byte-exact with poplib, the sandbox really applied to the instance
(seccomp, no_new_privs, uid dropped), structured journal records without the password,
the records of a session that never logs in, and the instances garbage-collected after the
session, a SIGKILLed (failed) one included; then a 20 MB mbox, indexed on two threads
inside the sandbox; then TLS: mpopd-tls.socket + mpopd-tls@.service on port 995 (a
certificate from a test CA, the key 0600 root in /etc/ssl/private) and STLS on port 110,
with the shipped sandbox, and a renewed certificate picked up by the next connection.
"""

import os
import re

from mpopdtest import (MESSAGES, PASSWORD, TEST_GID, TEST_UID, Reporter, lines_of, uidl_of,
                       wait_for)
from nspawn import (VMAIL, booted, cgroup_limits, check_hangup_records, mpopd_failures, reap,
                    skip_unless_possible, unit_file_warnings)
from tlsutil import Pki, fingerprint_pem

PORT = 110  # ListenStream= of the shipped mpopd.socket, unchanged
TLS_PORT = 995  # ListenStream= of the shipped mpopd-tls.socket
EXPECT = [lines_of(raw) for _, raw in sorted(MESSAGES, key=lambda m: uidl_of(m[0]))]
WRONG = "Wr0ng-" + PASSWORD


def instances(ct, pattern="mpopd@*"):
    r = ct.systemctl("list-units", "--all", "--plain", "--no-legend", pattern, check=False)
    return [line.split()[0] for line in r.stdout.decode().splitlines() if line.strip()]


def unit_processes(ct, unit):
    """{pid: {Uid, Seccomp, NoNewPrivs, CapEff}} of the processes in a unit's cgroup."""
    cg = ct.prop(unit, "ControlGroup")
    r = ct.sh(["sh", "-c", 'for root in /sys/fs/cgroup/unified /sys/fs/cgroup/systemd '
               '/sys/fs/cgroup; do f="$root$1/cgroup.procs"; [ -r "$f" ] && '
               'for p in $(cat "$f"); do echo "pid:$p"; cat /proc/$p/status; done && '
               'break; done', "sh", cg], check=False)
    procs, cur = {}, None
    for line in r.stdout.decode().splitlines():
        key, _, value = line.partition(":")
        if key == "pid":
            cur = procs.setdefault(value, {})
        elif cur is not None and key in ("Uid", "Seccomp", "NoNewPrivs", "CapEff"):
            cur[key] = value.split()[0] if value.split() else ""
    return procs


def mount_options(ct, pid):
    """{mount point: options} as the process sees them (the last mount on a point wins)."""
    r = ct.sh(["cat", f"/proc/{pid}/mountinfo"], check=False)
    out = {}
    for line in r.stdout.decode().splitlines():
        f = line.split()
        if len(f) > 5:
            out[f[4]] = f[5].split(",")
    return out


def check_fetch(t, tag, res, count):
    t.check("error" not in res, f"{tag}: login and fetch", res.get("error"))
    msgs = [bytes.fromhex(m) for m in res.get("messages", [])]
    want = [b"\n".join(lines) for lines in EXPECT][len(EXPECT) - count:]
    t.equal(len(msgs), count, f"{tag}: STAT counts {count} messages")
    t.check(msgs == want, f"{tag}: every RETR byte-exact ({sum(map(len, want))} bytes)",
            [i + 1 for i, (a, b) in enumerate(zip(msgs, want)) if a != b])


def fetch(t, s):
    ct = s.ct
    res = ct.pop(PORT, [{"op": "fetch", "dele": [1]}, {"op": "fetch"},
                        {"op": "wrong", "password": WRONG}])
    t.equal(len(res), 3, "poplib inside the container ran three sessions")
    res += [{}] * (3 - len(res))
    t.check(res[0].get("greeting", "").startswith("+OK"), "mpop@.service greets on port 110",
            res[0])
    check_fetch(t, "first session", res[0], len(EXPECT))
    t.check(res[0].get("quit", "").startswith("+OK"), "QUIT after DELE 1 commits", res[0])
    check_fetch(t, "second session", res[1], len(EXPECT) - 1)
    t.check(res[2].get("reply", "").startswith("-ERR [AUTH]"),
            "a wrong password gets -ERR [AUTH]", res[2])


def journal(t, s, held_unit):
    ct = s.ct
    entries = []

    def logged_out():
        nonlocal entries
        entries, _ = ct.journal()
        return sum(e.get("MPOPD_EVENT") == "logout" for e in entries) >= 2

    wait_for(logged_out, timeout=10, step=0.3)
    entries, raw = ct.journal()
    mine = [e for e in entries if e.get("MPOPD_EVENT")]
    for ev in ("login", "logout", "login-failed"):
        recs = [e for e in mine if e.get("MPOPD_EVENT") == ev]
        t.check(any(e.get("MPOPD_SESSION") and e.get("MPOPD_USER") == "alice"
                    and re.match(r"^(127\.0\.0\.1|\[::ffff:127\.0\.0\.1\]):\d+$",
                                 e.get("MPOPD_PEER", ""))
                    and e.get("_SYSTEMD_UNIT", "").startswith("mpopd@") for e in recs),
                f"journal: MPOPD_EVENT={ev} with MPOPD_SESSION, MPOPD_PEER, MPOPD_USER "
                "from an mpopd@ instance", recs[:2] or sorted({e["MPOPD_EVENT"] for e in mine}))
    sessions = {e.get("MPOPD_SESSION") for e in mine if e.get("MPOPD_EVENT") == "login"}
    t.check(len(sessions) >= 2, "journal: each session has its own MPOPD_SESSION", sessions)
    t.check(PASSWORD.encode() not in raw and WRONG.encode() not in raw,
            f"journal: no password in any of {len(entries)} records")
    nopen = [e for e in entries if "without the failure penalty" in str(e.get("MESSAGE", ""))]
    t.check(not nopen, "journal: the instances opened the failure penalty's table", nopen[:2])
    r = ct.sh(["stat", "-c", "%a %U %s", "/run/mpopd/penalty"], check=False)
    t.equal(r.stdout.decode().strip(), "600 root 262176",
            "the failure penalty's table: /run/mpopd/penalty (tmpfiles.d), 0600 root, 256 KiB")
    bad = [b for b in mpopd_failures(entries) if held_unit not in b]
    t.check(not bad, "journal: no mpopd unit failed (sandbox, seccomp, capabilities)", bad)
    warn = unit_file_warnings(entries)
    t.check(not warn, "journal: systemd has no complaint about a line of the unit files", warn)


def check_sandbox(t, ct, unit, tag="the instance", relay=False):
    """The shipped sandbox in force for a running instance with a logged-in session: the
    session process (mailbox owner, no capabilities) and, with TLS, the pre-login process
    left as the TLS relay (login_user in the login_chroot); no process stays root."""
    procs = unit_processes(ct, unit)
    print(f"# {tag}: processes {procs}", flush=True)
    t.check(procs and all(st.get("Seccomp") == "2" and st.get("NoNewPrivs") == "1"
                          for st in procs.values()),
            f"{tag}: every process runs under seccomp and no_new_privs", procs)
    t.check(any(st.get("Uid") == str(TEST_UID) for st in procs.values())
            and all(st.get("CapEff") == "0000000000000000" for st in procs.values()
                    if st.get("Uid") == str(TEST_UID)),
            f"{tag}: the session process dropped to uid {TEST_UID} without capabilities",
            procs)
    login_uid = ct.sh(["id", "-u", "mpopd-login"], check=False).stdout.decode().strip()
    want = {str(TEST_UID), login_uid} if relay else {str(TEST_UID)}
    t.equal({st.get("Uid") for st in procs.values()}, want,
            f"{tag}: no process left as root" +
            (f"; the TLS relay runs as mpopd-login (uid {login_uid})" if relay else ""))
    if relay:
        roots = {pid: ct.sh(["readlink", f"/proc/{pid}/root"], check=False).stdout.decode()
                 .strip() for pid, st in procs.items() if st.get("Uid") == login_uid}
        t.check(roots and all(r == "/var/empty" for r in roots.values())
                and all(procs[pid].get("CapEff") == "0000000000000000" for pid in roots),
                f"{tag}: the TLS relay is chrooted to /var/empty, without capabilities", roots)
    mounts = mount_options(ct, ct.prop(unit, "MainPID"))
    t.check(all("ro" in mounts.get(m, ()) for m in ("/", "/usr"))
            and "rw" in mounts.get(VMAIL, ()),
            f"{tag}: ProtectSystem=strict: / and /usr read-only, {VMAIL} (ReadWritePaths=) "
            "writable", {m: mounts.get(m) for m in ("/", "/usr", VMAIL)})
    limits = cgroup_limits(ct, unit)
    if limits is None:
        # A visible skip, which tools/test accepts only as its ALLOWED_SKIPS says.
        t.skip(f"{tag}: MemoryMax=256M and TasksMax=8 in force",
               "no unified cgroup v2 hierarchy on this host (systemd-nspawn gives the "
               "container read-only cgroup v1 controllers)")
    else:
        t.equal(limits, ["268435456", "8"], f"{tag}: MemoryMax=256M and TasksMax=8 in force")


def sandbox_and_collect(t, s):
    """A held session: the sandbox applied to it; then SIGKILL and CollectMode."""
    ct = s.ct
    t.check(wait_for(lambda: not instances(ct), timeout=10, step=0.2),
            "finished instances are garbage-collected (CollectMode=)", instances(ct))
    p = ct.pop_background(PORT, [{"op": "hold", "seconds": 20}])
    try:
        held = p.stdout.readline()
        t.check(b'"held": true' in held, "a session stays logged in", held)
        units = instances(ct)
        t.equal(len(units), 1, "one mpopd@ instance runs for it")
        unit = units[0] if units else "mpopd@none.service"
        check_sandbox(t, ct, unit)
        ct.systemctl("kill", "-s", "KILL", unit, check=False)
        t.check(wait_for(lambda: not instances(ct), timeout=10, step=0.2),
                "a SIGKILLed (failed) instance is collected too, no unit pile-up",
                instances(ct))
        r = ct.systemctl("list-units", "--failed", "--plain", "--no-legend", check=False)
        t.check("mpopd" not in r.stdout.decode(), "no failed mpopd unit stays listed",
                r.stdout.decode())
        t.check(b'"closed_by_server": true' in p.stdout.readline(),
                "the client sees the connection closed")
    finally:
        reap(p, 10)
    t.equal(ct.prop("mpopd.socket", "ActiveState"), "active", "mpopd.socket still listening")
    return unit


def scenario(t):
    with booted("socket") as s:
        ct = s.ct
        print(f"# container up ({ct.boot_state}) after {ct.boot_seconds:.1f} s", flush=True)
        s.install_units(["mpopd.socket", "mpopd@.service", "mpopd-tls.socket",
                         "mpopd-tls@.service"])
        r = ct.systemctl("enable", "--now", "mpopd.socket", check=False)
        t.check(r.returncode == 0, "systemctl enable --now mpopd.socket", r.stderr)
        t.equal(ct.prop("mpopd.socket", "ActiveState"), "active", "mpopd.socket is active")
        t.check("sockets.target.wants/mpopd.socket" in r.stderr.decode(),
                "enable links it into sockets.target", r.stderr)
        fetch(t, s)
        held_unit = sandbox_and_collect(t, s)
        res = ct.pop(PORT, [{"op": "greeting"}])
        t.check(res[0].get("greeting", "").startswith("+OK"), "new connections still served",
                res)
        check_hangup_records(t, ct, PORT, tag="mpopd.socket")
        journal(t, s, held_unit)
        t.check(int(ct.prop("mpopd.socket", "NAccepted") or 0) >= 5,
                "the socket accepted every connection (NAccepted)")
        big_mbox(t, s)
        tls(t, s)


BIG_MSGS = 9000  # about 20 MB


def big_mbox(t, s):
    """A 20 MB mbox served by the sandboxed instance: exact STAT, UIDL and the first and
    last message byte-exact; the session writes the mbox's index next to it under the
    unit's sandbox, and the next login takes every message from it."""
    ct, fx = s.ct, s.fx
    body = b"".join(b"line %04d of a message that is long enough to count\n" % i
                    for i in range(40))
    bodies = [b"Subject: big %d\nMessage-ID: <big.%d@example.org>\n\n" % (i, i) + body
              for i in range(1, BIG_MSGS + 1)]
    path = os.path.join(fx.mail, "carol.mbox")
    with open(path, "wb") as f:
        for b in bodies:
            f.write(b"From big@example.org Mon Jan  1 00:00:00 2024\n" + b + b"\n")
    size = os.path.getsize(path)
    os.chown(path, TEST_UID, TEST_GID)
    os.chown(fx.mail, TEST_UID, TEST_GID)  # the dotlock is made next to the mbox
    s.set_config({"mailbox.format": "mbox", "mailbox.from_quoting": "mboxrd",
                  "mailbox.location": fx.v(os.path.join(fx.mail, "%u.mbox")),
                  "log.level": "debug"})
    octets = sum(len(b) + b.count(b"\n") for b in bodies)  # CRLF line ends
    for n, what in ((1, "first login"), (2, "second login")):
        res = ct.pop(PORT, [{"op": "stat", "retr": [1, BIG_MSGS]}], user="carol")[0]
        t.check("error" not in res, f"a {size / 1e6:.0f} MB mbox, {what}: login, STAT, UIDL, "
                "RETR", res.get("error"))
        t.equal(res.get("stat"), [BIG_MSGS, octets], f"{what}: STAT, every message, exact octets")
        t.equal(res.get("uidls"), BIG_MSGS, f"{what}: UIDL lists every message")
        msgs = res.get("messages", {})
        t.check(bytes.fromhex(msgs.get("1", "")) == bodies[0].rstrip(b"\n") and
                bytes.fromhex(msgs.get(str(BIG_MSGS), "")) == bodies[-1].rstrip(b"\n"),
                f"{what}: the first and the last message byte-exact")
    entries, _ = ct.journal()
    indexed = [e.get("MESSAGE", "") for e in entries
               if "mbox indexed" in e.get("MESSAGE", "") and "carol" in e.get("MPOPD_USER", "")]
    t.check(len(indexed) >= 2 and f"{BIG_MSGS} messages" in indexed[-2] and
            "0 from the index" in indexed[-2] and
            f"{BIG_MSGS} from the index" in indexed[-1],
            "journal: scanned at the first login, all from the index at the second",
            indexed[-2:])
    index = os.path.join(fx.mail, ".carol.mbox.mpopd-index")
    st = os.stat(index) if os.path.exists(index) else None
    t.check(st is not None and st.st_uid == TEST_UID and (st.st_mode & 0o777) == 0o600,
            "the index is the mailbox owner's, mode 0600, next to the mbox",
            st and (st.st_uid, oct(st.st_mode)))
    bad = mpopd_failures(entries)
    t.check(not any("mpopd@" in b and "SYS" in b for b in bad),
            "no instance killed by the sandbox while indexing", bad)


def tls_login_records(t, ct, unit_prefix, want):
    """The login records of TLS sessions carry MPOPD_TLS=<protocol> <cipher>, as the
    client saw them."""
    recs = [e for e in ct.journal()[0] if e.get("MPOPD_EVENT") == "login"
            and e.get("_SYSTEMD_UNIT", "").startswith(unit_prefix)]
    tls = [e.get("MPOPD_TLS", "") for e in recs]
    t.check(want and any(v.split()[:1] == [want[0]] and want[1] in v for v in tls),
            f"journal: login records from {unit_prefix}* carry MPOPD_TLS={' '.join(want or [])}",
            tls or "no login record from such a unit")


def tls(t, s):
    """Port 995 through mpopd-tls.socket (Accept=yes, mpopd --inetd --tls) and STLS on port
    110 through mpopd.socket, under the shipped sandbox; default plaintext_auth (tls-only
    once a certificate is configured); a renewed certificate without any reload."""
    ct = s.ct
    pki = Pki()
    mark = len(ct.journal()[0])  # the failures counted below are those of this phase
    try:
        fp1 = fingerprint_pem(pki.cert)
        s.extra.clear()  # back to the fixture's Maildirs (big_mbox switched to mbox)
        s.set_config(s.install_tls(pki.cert, pki.key, pki.ca))
        r = ct.systemctl("enable", "--now", "mpopd-tls.socket", check=False)
        t.check(r.returncode == 0 and "sockets.target.wants/mpopd-tls.socket"
                in r.stderr.decode(), "systemctl enable --now mpopd-tls.socket", r.stderr)
        t.equal(ct.prop("mpopd-tls.socket", "ActiveState"), "active",
                "mpopd-tls.socket is active")
        count = len(EXPECT) - 1  # the first session deleted message 1
        res = ct.pop(TLS_PORT, [{"op": "fetch"}, {"op": "cert"}, {"op": "capa"}],
                     tls="implicit")
        res += [{}] * (3 - len(res))
        check_fetch(t, "port 995 (mpopd-tls@.service)", res[0], count)
        seen = res[0].get("tls")
        t.check(seen and seen[0] in ("TLSv1.2", "TLSv1.3"),
                "port 995: TLS from the first byte, certificate verified against the test CA",
                res[0])
        t.equal(res[1].get("sha256"), fp1, "port 995 presents the configured certificate")
        capa = res[2].get("capa", [])
        t.check("USER" in capa and "STLS" not in capa,
                "CAPA over TLS: USER offered, STLS not", capa)
        res = ct.pop(PORT, [{"op": "capa"}, {"op": "user"}])
        res += [{}] * (2 - len(res))
        capa = res[0].get("capa", [])
        t.check("STLS" in capa and "USER" not in capa
                and not any(c.startswith("SASL") and "PLAIN" in c for c in capa),
                "CAPA on port 110 in plain text: STLS, no USER, no SASL PLAIN", capa)
        t.check(res[1].get("reply", "").startswith("-ERR [AUTH]"),
                "USER in plain text refused with -ERR [AUTH] (tls-only by default)", res[1])
        res = ct.pop(PORT, [{"op": "fetch"}, {"op": "cert"}], tls="stls")
        res += [{}] * (2 - len(res))
        check_fetch(t, "port 110 after STLS (mpopd@.service)", res[0], count)
        t.check(res[0].get("tls") and res[1].get("sha256") == fp1,
                "STLS on port 110: TLS with the configured certificate", res)
        tls_login_records(t, ct, "mpopd-tls@", seen)

        # TLS 1.3: the session takes the connection over, the pre-login process ends; TLS 1.2:
        # the pre-login process stays as the relay, in its sandbox
        for mode, relay, tag in (("implicit", False, "mpopd-tls@ (TLS 1.3)"),
                                 ("implicit-1.2", True, "mpopd-tls@ (TLS 1.2 relay)")):
            p = ct.pop_background(TLS_PORT, [{"op": "hold", "seconds": 6}], tls=mode)
            try:
                held = p.stdout.readline()
                t.check(b'"held": true' in held, f"{tag}: a TLS session stays logged in", held)
                units = instances(ct, "mpopd-tls@*")
                t.equal(len(units), 1, f"{tag}: one mpopd-tls@ instance runs for it")
                check_sandbox(t, ct, units[0] if units else "mpopd-tls@none.service", tag,
                              relay=relay)
            finally:
                reap(p, 20)
            wait_for(lambda: not instances(ct, "mpopd-tls@*"), timeout=10, step=0.3)

        check_hangup_records(t, ct, TLS_PORT, tls="implicit", tag="mpopd-tls.socket")

        # the renewed certificate comes with an intermediate (the file holds the chain)
        fp2 = fingerprint_pem(pki.cert2)
        s.install_tls(pki.cert2, pki.key2)
        res = ct.pop(TLS_PORT, [{"op": "cert"}], tls="implicit")[0]
        t.equal(res.get("sha256"), fp2, "certificate and key replaced: the next connection "
                "to port 995 presents the new certificate (Accept=yes: no reload needed)")
        res = ct.pop(PORT, [{"op": "cert"}], tls="stls")[0]
        t.equal(res.get("sha256"), fp2, "... and so does STLS on port 110")

        t.check(wait_for(lambda: not instances(ct, "mpopd-tls@*"), timeout=10, step=0.2),
                "finished mpopd-tls@ instances are garbage-collected",
                instances(ct, "mpopd-tls@*"))
        entries, raw = ct.journal()
        t.check(PASSWORD.encode() not in raw, "journal: no password after the TLS sessions")
        bad = mpopd_failures(entries[mark:])
        t.check(not bad, "journal: no mpopd-tls@ or mpopd@ unit failed over TLS", bad)
        warn = unit_file_warnings(entries)
        t.check(not warn, "journal: no complaint about a line of mpopd-tls.socket or "
                "mpopd-tls@.service", warn)
    finally:
        pki.cleanup()


def main():
    skip_unless_possible()
    t = Reporter("systemd-socket")
    t.run(scenario)
    t.done()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""mpopd-daemon.socket (Accept=no) + mpopd.service (Type=notify) under a real systemd.

Enabled with `systemctl enable --now mpopd.service` (Also= brings the socket): fetch, the
STATUS= text, `systemctl reload` (SIGUSR1; mpopd answers RELOADING=1 ... READY=1) returning
in a few seconds with a changed greeting used by the next connection, a broken file failing
the reload (ExecReload checks it first) and, sent SIGUSR1 directly, keeping the old
configuration with the service active, `systemctl stop` ending it
cleanly, socket activation of the stopped service; then TLS: mpopd-daemon-tls.socket (port
995, FileDescriptorName=pop3s) next to mpopd-daemon.socket (pop3) for the same daemon,
STLS on 110, the records of sessions that never log in, `systemctl reload` swapping the
certificate for new connections and keeping the old one when the new key does not load;
and the journal.
"""

import time
import uuid

from mpopdtest import MESSAGES, PASSWORD, Reporter, lines_of, uidl_of, wait_for
from nspawn import (CT_KEY, booted, check_hangup_records, mpopd_failures,
                    skip_unless_possible, unit_file_warnings)
from tlsutil import Pki, fingerprint_pem

PORT = 110  # ListenStream= of the shipped mpopd-daemon.socket
TLS_PORT = 995  # ListenStream= of the shipped mpopd-daemon-tls.socket
EXPECT = [b"\n".join(lines_of(raw)) for _, raw in sorted(MESSAGES, key=lambda m: uidl_of(m[0]))]
RELOAD_MAX = 5.0  # seconds for systemctl reload / stop to return


def greeting(ct):
    res = ct.pop(PORT, [{"op": "greeting"}])
    return res[0].get("greeting", res[0].get("error", ""))


def start(t, s):
    ct = s.ct
    r = ct.systemctl("enable", "--now", "mpopd.service", check=False)
    t.check(r.returncode == 0, "systemctl enable --now mpopd.service", r.stderr)
    t.check(b"sockets.target.wants/mpopd-daemon.socket" in r.stderr,
            "Also= enables mpopd-daemon.socket with it", r.stderr)
    # The socket's SubState is "running" while its Accept=no service runs.
    for unit, sub in (("mpopd-daemon.socket", "running"), ("mpopd.service", "running")):
        t.equal(ct.prop(unit, "SubState"), sub, f"{unit} is active ({sub})")
    t.equal(ct.prop("mpopd.service", "StatusText"), "Serving 0 session(s)",
            "systemctl show -p StatusText: the STATUS= of mpopd")


def fetch(t, s):
    ct = s.ct
    res = ct.pop(PORT, [{"op": "fetch"}])[0]
    msgs = [bytes.fromhex(m) for m in res.get("messages", [])]
    t.check(res.get("greeting", "").startswith("+OK") and msgs == EXPECT,
            f"poplib fetched all {len(EXPECT)} messages byte-exact", res.get("error", ""))
    p = ct.pop_background(PORT, [{"op": "hold", "seconds": 4}])
    try:
        t.check(b'"held"' in p.stdout.readline(), "a second session logs in and stays")
        t.check(wait_for(lambda: ct.prop("mpopd.service", "StatusText")
                         == "Serving 1 session(s)", timeout=5, step=0.1),
                "StatusText counts the running session",
                ct.prop("mpopd.service", "StatusText"))
    finally:
        p.wait(timeout=20)
    t.check(wait_for(lambda: ct.prop("mpopd.service", "StatusText") == "Serving 0 session(s)",
                     timeout=5, step=0.1), "StatusText back to 0 when it ended")


def timed(ct, *args):
    t0 = time.monotonic()
    r = ct.systemctl(*args, check=False, timeout=30)
    return r, time.monotonic() - t0


def reload(t, s):
    ct = s.ct
    pid = ct.prop("mpopd.service", "MainPID")
    text = "Reloaded-" + uuid.uuid4().hex[:8]
    s.set_config({"server.greeting": text})
    # PID 1 at debug level logs the notifications it receives (the handshake, below).
    ct.sh(["systemd-analyze", "log-level", "debug"], check=False)
    r, took = timed(ct, "reload", "mpopd.service")
    ct.sh(["systemd-analyze", "log-level", "info"], check=False)
    print(f"# systemctl reload took {took:.2f} s", flush=True)
    t.check(r.returncode == 0 and took < RELOAD_MAX,
            f"systemctl reload mpopd.service returns 0 within {RELOAD_MAX:.0f} s "
            f"({took:.2f} s)", r.stderr)
    t.equal(ct.prop("mpopd.service", "MainPID"), pid, "reload keeps the daemon (same MainPID)")
    t.check(text in greeting(ct), "the next connection gets the reloaded greeting",
            greeting(ct))
    notes = []

    def handshake():
        notes[:] = [e.get("MESSAGE", "") for e in ct.journal()[0]
                    if e.get("_PID") == "1" and "mpopd.service" in e.get("MESSAGE", "")
                    and "notification message" in e.get("MESSAGE", "")]
        return any("RELOADING=1" in n for n in notes) and any("READY=1" in n for n in notes
                                                              if "RELOADING" not in n)

    t.check(wait_for(handshake, timeout=5, step=0.3),
            "PID 1 received RELOADING=1 and then READY=1 from mpopd", notes[-6:])
    for n in notes[-4:]:
        print(f"#   {n}", flush=True)

    # A file that does not validate: ExecReload's check fails the reload with the reason (file,
    # group, key) and SIGUSR1 is never sent; the old configuration stays.
    s.write_config_text("[server]\nidle_timeout=banana\n")
    r, took = timed(ct, "reload", "mpopd.service")
    print(f"# systemctl reload (broken file) took {took:.2f} s, rc {r.returncode}", flush=True)
    t.check(took < RELOAD_MAX, "reload with a broken file returns in time", r.stderr)
    t.check(r.returncode != 0, "systemctl reload fails when the file does not validate",
            r.returncode)
    t.check(wait_for(lambda: any("idle_timeout" in e.get("MESSAGE", "") and
                                 "banana" in e.get("MESSAGE", "")
                                 for e in ct.journal()[0]), timeout=5, step=0.3),
            "journal: the check names the key and the bad value")
    t.check(ct.prop("mpopd.service", "ActiveState") == "active"
            and ct.prop("mpopd.service", "MainPID") == pid,
            "a broken file on reload: the service stays active, same daemon")
    t.check(text in greeting(ct), "... and keeps the old configuration (greeting)")
    t.check(not any(e.get("MPOPD_EVENT") == "reload-failed" for e in ct.journal()[0]),
            "... and the daemon was not signalled (no reload-failed from it)")
    # SIGUSR1 without the check (kill, or mpopdctl config on a host without systemd): the
    # daemon's own validation keeps the old configuration and logs why.
    ct.systemctl("kill", "-s", "USR1", "mpopd.service", check=False)
    t.check(wait_for(lambda: any(e.get("MPOPD_EVENT") == "reload-failed"
                                 for e in ct.journal()[0]), timeout=5, step=0.3),
            "SIGUSR1 with a broken file: journal MPOPD_EVENT=reload-failed")
    t.check(ct.prop("mpopd.service", "ActiveState") == "active"
            and ct.prop("mpopd.service", "MainPID") == pid
            and text in greeting(ct),
            "... the service stays active with the old configuration")
    res = ct.pop(PORT, [{"op": "fetch"}])[0]
    t.check(len(res.get("messages", [])) == len(EXPECT), "mail is still served", res)
    s.set_config({})


def stop(t, s):
    ct = s.ct
    r, took = timed(ct, "stop", "mpopd.service")
    print(f"# systemctl stop took {took:.2f} s", flush=True)
    t.check(r.returncode == 0 and took < RELOAD_MAX,
            f"systemctl stop mpopd.service within {RELOAD_MAX:.0f} s", r.stderr)
    got = {k: ct.prop("mpopd.service", k) for k in ("ActiveState", "Result", "ExecMainCode",
                                                     "ExecMainStatus")}
    # ExecMainCode 1 = CLD_EXITED: mpopd exited by itself (status 0) on SIGTERM.
    t.equal(got, {"ActiveState": "inactive", "Result": "success", "ExecMainCode": "1",
                  "ExecMainStatus": "0"}, "mpopd.service stopped cleanly (exit 0)")
    t.check(greeting(ct).startswith("+OK") and wait_for(
        lambda: ct.prop("mpopd.service", "ActiveState") == "active", timeout=5, step=0.1),
            "a connection to the still listening socket activates the service again")
    r = ct.systemctl("stop", "mpopd-daemon.socket", "mpopd.service", check=False)
    t.check(r.returncode == 0 and all(ct.prop(u, "ActiveState") == "inactive"
                                      for u in ("mpopd-daemon.socket", "mpopd.service")),
            "stopping socket and service leaves both inactive", r.stderr)


def tls_fetch(t, ct, tag, port, tls, fp):
    """Every message byte-exact over TLS, with the certificate whose hash is fp."""
    res = ct.pop(port, [{"op": "fetch"}, {"op": "cert"}], tls=tls)
    res += [{}] * (2 - len(res))
    msgs = [bytes.fromhex(m) for m in res[0].get("messages", [])]
    t.check(res[0].get("tls") and msgs == EXPECT,
            f"{tag}: all {len(EXPECT)} messages byte-exact over TLS, certificate verified "
            "against the test CA", res[0].get("error") or res[0].get("tls"))
    t.equal(res[1].get("sha256"), fp, f"{tag}: the configured certificate")
    return res[0].get("tls")


def certificate(ct, port, tls):
    res = ct.pop(port, [{"op": "cert"}], tls=tls)[0]
    return res.get("sha256", res.get("error"))


def tls(t, s):
    """Both daemon sockets for one mpopd.service: pop3 (110, STLS) and pop3s (995)."""
    ct = s.ct
    pki = Pki()
    try:
        fp1 = fingerprint_pem(pki.cert)
        s.set_config(s.install_tls(pki.cert, pki.key, pki.ca))
        r = ct.systemctl("enable", "--now", "mpopd-daemon-tls.socket", "mpopd.service",
                         check=False)
        t.check(r.returncode == 0 and b"sockets.target.wants/mpopd-daemon-tls.socket"
                in r.stderr, "systemctl enable --now mpopd-daemon-tls.socket mpopd.service",
                r.stderr)
        for unit, sub in (("mpopd-daemon.socket", "running"),
                          ("mpopd-daemon-tls.socket", "running"),
                          ("mpopd.service", "running")):
            t.equal(ct.prop(unit, "SubState"), sub, f"{unit} is active ({sub})")
        seen = tls_fetch(t, ct, "port 995 (pop3s) of mpopd.service", TLS_PORT, "implicit", fp1)
        tls_fetch(t, ct, "port 110 (pop3) after STLS", PORT, "stls", fp1)
        res = ct.pop(TLS_PORT, [{"op": "capa"}], tls="implicit")[0]
        t.check("USER" in res.get("capa", []) and "STLS" not in res.get("capa", []),
                "CAPA on port 995: USER offered, STLS not", res)
        res = ct.pop(PORT, [{"op": "capa"}, {"op": "user"}])
        res += [{}] * (2 - len(res))
        t.check("STLS" in res[0].get("capa", []) and "USER" not in res[0].get("capa", []),
                "CAPA on port 110 in plain text: STLS, no USER", res[0])
        t.check(res[1].get("reply", "").startswith("-ERR [AUTH]"),
                "USER in plain text on port 110 refused with -ERR [AUTH] (tls-only)", res[1])
        recs = [e.get("MPOPD_TLS", "") for e in ct.journal()[0]
                if e.get("MPOPD_EVENT") == "login" and e.get("_SYSTEMD_UNIT") == "mpopd.service"]
        t.check(seen and any(v.split()[:1] == [seen[0]] and seen[1] in v for v in recs),
                f"journal: login records carry MPOPD_TLS={' '.join(seen or [])}", recs[-4:])

        check_hangup_records(t, ct, PORT, tag="mpopd-daemon.socket")
        check_hangup_records(t, ct, TLS_PORT, tls="implicit", tag="mpopd-daemon-tls.socket")

        # Renewal: new files, then systemctl reload (ExecReload checks them, then SIGUSR1).
        pid = ct.prop("mpopd.service", "MainPID")
        # the renewed certificate comes with an intermediate (the file holds the chain)
        fp2 = fingerprint_pem(pki.cert2)
        s.install_tls(pki.cert2, pki.key2)
        r, took = timed(ct, "reload", "mpopd.service")
        t.check(r.returncode == 0 and took < RELOAD_MAX,
                f"systemctl reload after renewing the certificate ({took:.2f} s)", r.stderr)
        t.check(ct.prop("mpopd.service", "ActiveState") == "active" and pid != "0"
                and ct.prop("mpopd.service", "MainPID") == pid, "... the same daemon")
        t.equal(certificate(ct, TLS_PORT, "implicit"), fp2,
                "after the reload port 995 presents the new certificate")
        t.equal(certificate(ct, PORT, "stls"), fp2, "... and so does STLS on port 110")
        tls_fetch(t, ct, "port 995 after the reload", TLS_PORT, "implicit", fp2)

        # A key that does not load: the reload fails naming the file, the old one stays.
        mark = len(ct.journal()[0])
        ct.replace(CT_KEY, "this is no key\n", mode="0600")
        r, took = timed(ct, "reload", "mpopd.service")
        t.check(r.returncode != 0 and b"not active" not in r.stderr and took < RELOAD_MAX,
                "systemctl reload fails when the new key does not load", r.stderr)
        t.check(wait_for(lambda: any(CT_KEY in e.get("MESSAGE", "")
                                     for e in ct.journal()[0][mark:]), timeout=5, step=0.3),
                f"journal: the failed reload names {CT_KEY}",
                [e.get("MESSAGE") for e in ct.journal()[0][mark:]][-6:])
        ct.systemctl("kill", "-s", "USR1", "mpopd.service", check=False)
        t.check(wait_for(lambda: any(e.get("MPOPD_EVENT") == "reload-failed"
                                     for e in ct.journal()[0][mark:]), timeout=5, step=0.3),
                "SIGUSR1 with the bad key: MPOPD_EVENT=reload-failed")
        t.check(ct.prop("mpopd.service", "ActiveState") == "active"
                and ct.prop("mpopd.service", "MainPID") == pid,
                "... the daemon stays active")
        t.equal(certificate(ct, TLS_PORT, "implicit"), fp2,
                "... and new connections still get the last good certificate")
        s.install_tls(pki.cert2, pki.key2)
    finally:
        pki.cleanup()


def journal(t, s):
    entries, raw = s.ct.journal()
    mine = [e for e in entries if e.get("MPOPD_EVENT")]
    for ev in ("start", "login", "logout", "reload", "stop"):
        t.check(any(e.get("MPOPD_EVENT") == ev and e.get("_SYSTEMD_UNIT") == "mpopd.service"
                    for e in mine), f"journal: MPOPD_EVENT={ev} from mpopd.service",
                sorted({e["MPOPD_EVENT"] for e in mine}))
    t.check(all(e.get("MPOPD_SESSION") and e.get("MPOPD_PEER") and e.get("MPOPD_USER")
                for e in mine if e.get("MPOPD_EVENT") in ("login", "logout")),
            "journal: login/logout carry MPOPD_SESSION, MPOPD_PEER, MPOPD_USER")
    t.check(PASSWORD.encode() not in raw, f"journal: no password in {len(entries)} records")
    bad = mpopd_failures(entries)
    t.check(not bad, "journal: no mpopd unit failed (sandbox, seccomp, capabilities)", bad)
    warn = unit_file_warnings(entries)
    t.check(not warn, "journal: systemd has no complaint about a line of the unit files", warn)


def scenario(t):
    with booted("daemon") as s:
        print(f"# container up ({s.ct.boot_state}) after {s.ct.boot_seconds:.1f} s", flush=True)
        s.install_units(["mpopd-daemon.socket", "mpopd-daemon-tls.socket", "mpopd.service"])
        start(t, s)
        fetch(t, s)
        reload(t, s)
        stop(t, s)
        tls(t, s)
        journal(t, s)


def main():
    skip_unless_possible()
    t = Reporter("systemd-daemon")
    t.run(scenario)
    t.done()


if __name__ == "__main__":
    main()

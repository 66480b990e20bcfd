#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""mpopdctl under a real systemd: its service verbs map to systemctl on the right units.

All four units installed; first the default setup (mpopd.socket, Accept=yes), then the
daemon setup (mpopd.service enabled, so mpopd-daemon.socket is enabled through Also=). In
both, config re-reads (or says there is nothing to reload) and refresh ends a session that
has DELEs without UPDATE and restarts the socket; -c naming another file is refused.
"""

import json
import uuid

from mpopdtest import Reporter, wait_for
from nspawn import booted, skip_unless_possible

PORT = 110
UNITS = ["mpopd.socket", "mpopd@.service", "mpopd-daemon.socket", "mpopd.service"]


def ctl(s, *args):
    r = s.ct.sh([s.mpopdctl, *args], check=False)
    return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")


def greeting(s):
    res = s.ct.pop(PORT, [{"op": "greeting"}])
    return res[0].get("greeting", res[0].get("error", ""))


def state(s, unit):
    return s.ct.prop(unit, "ActiveState")


def stats_from_journal(t, s):
    """stats reads what the instances wrote to the real journal (the session part as the
    mailbox owner)."""
    res = s.ct.pop(PORT, [{"op": "fetch", "dele": [1]}, {"op": "wrong"}])
    count, octets = res[0].get("stat", [0, 0])
    want = {"sessions": 1, "retrieved": count, "retrieved_octets": octets, "deleted": 1,
            "failed_logins": 1}
    got = {}

    def figures():
        r = s.ct.sh([s.mpopdctl, "stats", "--json", "--user", "alice"], check=False)
        try:
            users = json.loads(r.stdout)["users"]
        except (ValueError, KeyError):
            return False
        got.update({k: users[0].get(k) for k in want} if users else {})
        return got == want

    t.check(count > 0 and wait_for(figures),
            "stats: alice's session, RETRs, DELE and failed login from the journal",
            f"{res} want {want} got {got}")


def held_session(s):
    """A session logged in with DELE 1 and DELE 2 pending, held open in the background."""
    p = s.ct.pop_background(PORT, [{"op": "hold", "seconds": 20, "dele": [1, 2]}])
    first = json.loads(p.stdout.readline() or b"{}")
    return p, first.get("held", False)


def refresh_ends_session(t, s, what):
    """refresh while a session with DELEs runs: it ends, nothing is deleted."""
    count = s.ct.pop(PORT, [{"op": "stat"}])[0].get("stat", [-1])[0]
    p, held = held_session(s)
    t.check(held, f"{what}: a session logged in with DELE 1 and DELE 2")
    rc, out = ctl(s, "refresh")
    t.check(rc == 0 and "without UPDATE" in out, f"{what}: refresh exits 0", out)
    try:
        p.wait(timeout=30)
        done = json.loads(p.stdout.read().decode().strip().splitlines()[-1])
    except Exception as e:  # noqa: BLE001 - reported as a failure below
        done = {"error": repr(e)}
        p.kill()
        p.wait()
    t.check(done.get("closed_by_server") is True,
            f"{what}: the client sees the connection end", done)
    res = s.ct.pop(PORT, [{"op": "stat"}])[0]
    t.check(res.get("stat", [0])[0] == count,
            f"{what}: nothing was deleted ({count} messages)", res)
    t.check(state(s, "mpopd-daemon.socket" if "daemon" in what else "mpopd.socket") == "active",
            f"{what}: the socket is listening again")


def socket_setup(t, s):
    rc, out = ctl(s, "status")
    t.check(rc == 3 and "mpopd.socket" in out,
            "status before start: systemctl status mpopd.socket, LSB 3 (not running)", out)
    rc, out = ctl(s, "start")
    t.check(rc == 0 and state(s, "mpopd.socket") == "active",
            "start: systemctl start mpopd.socket", out)
    t.check(greeting(s).startswith("+OK"), "... and port 110 is served")
    stats_from_journal(t, s)
    rc, out = ctl(s, "status")
    t.check(rc == 0 and "mpopd.socket" in out and "active (listening)" in out,
            "status: systemctl status mpopd.socket, active", out)
    rc, out = ctl(s, "reload")
    t.check(rc == 0 and "nothing to reload" in out,
            "reload with socket activation: nothing to reload (each session reads the file)",
            out)
    rc, out = ctl(s, "config")
    t.check(rc == 0 and "socket-activated instances read the configuration" in out,
            "config with socket activation: the same", out)
    rc, out = ctl(s, "-c", "/etc/mpopd-other.conf", "config")
    t.check(rc == 2 and "does not apply under systemd" in out,
            "config -c ANOTHER-FILE is refused under systemd", out)
    refresh_ends_session(t, s, "socket activation")
    rc, out = ctl(s, "-p", "2110", "start")
    t.check(rc == 2 and "does not apply under systemd" in out and "Failed" not in out,
            "start -p PORT is refused under systemd (the port is in the socket unit): exit 2",
            out)
    conf = [] if s.conf_inside == s.conf_default else ["-c", s.conf_inside]
    rc, out = ctl(s, *conf, "check")
    t.check(rc == 0, "check: the configuration mpopd reads validates", out)
    rc, out = ctl(s, "stop")
    t.check(rc == 0 and state(s, "mpopd.socket") == "inactive",
            "stop: systemctl stop mpopd.socket", out)


def daemon_setup(t, s):
    r = s.ct.systemctl("enable", "mpopd.service", check=False)
    t.check(r.returncode == 0, "systemctl enable mpopd.service (and mpopd-daemon.socket)",
            r.stderr)
    rc, out = ctl(s, "start")
    t.check(rc == 0 and state(s, "mpopd-daemon.socket") == "active"
            and state(s, "mpopd.socket") == "inactive",
            "start with the daemon setup enabled: systemctl start mpopd-daemon.socket", out)
    t.check(greeting(s).startswith("+OK") and state(s, "mpopd.service") == "active",
            "a connection activates mpopd.service")
    # The daemon sends its session count at most once a second: the greeting's session
    # shows as over within that.
    last = {}

    def status_shows_idle():
        last["rc"], last["out"] = ctl(s, "status")
        return "Serving 0 session(s)" in last["out"]

    idle = wait_for(status_shows_idle, timeout=5, step=0.2)
    rc, out = last["rc"], last["out"]
    t.check(idle and rc == 0 and "mpopd-daemon.socket" in out and "mpopd.service" in out,
            "status: systemctl status mpopd-daemon.socket mpopd.service, with STATUS=", out)
    pid = s.ct.prop("mpopd.service", "MainPID")
    text = "Ctl-" + uuid.uuid4().hex[:8]
    s.set_config({"server.greeting": text})
    rc, out = ctl(s, "reload")
    t.check(rc == 0 and s.ct.prop("mpopd.service", "MainPID") == pid,
            "reload: systemctl reload mpopd.service, same daemon", out)
    t.check(text in greeting(s), "... and the next connection has the new greeting")
    text = "Ctl-" + uuid.uuid4().hex[:8]
    s.set_config({"server.greeting": text})
    rc, out = ctl(s, "config")
    t.check(rc == 0 and s.ct.prop("mpopd.service", "MainPID") == pid and text in greeting(s),
            "config: systemctl reload mpopd.service too", out)
    refresh_ends_session(t, s, "daemon")
    t.check(state(s, "mpopd.service") == "active" and
            s.ct.prop("mpopd.service", "MainPID") not in (pid, "0"),
            "refresh: mpopd.service runs again (a new daemon)")
    pid = s.ct.prop("mpopd.service", "MainPID")
    rc, out = ctl(s, "restart")
    new = s.ct.prop("mpopd.service", "MainPID")
    t.check(rc == 0 and new not in (pid, "0") and state(s, "mpopd.service") == "active",
            "restart: systemctl restart mpopd.service (new MainPID)", f"{out} {pid}->{new}")
    rc, out = ctl(s, "stop")
    t.check(rc == 0 and state(s, "mpopd-daemon.socket") == "inactive"
            and state(s, "mpopd.service") == "inactive",
            "stop: systemctl stop mpopd-daemon.socket mpopd.service", out)
    r = s.ct.systemctl("show", "-P", "Result", "mpopd.service")
    t.equal(r.stdout.decode().strip(), "success", "mpopd.service ended with Result=success")


def scenario(t):
    with booted("ctl") as s:
        print(f"# container up ({s.ct.boot_state}) after {s.ct.boot_seconds:.1f} s", flush=True)
        s.install_units(UNITS)
        socket_setup(t, s)
        daemon_setup(t, s)


def main():
    skip_unless_possible()
    t = Reporter("systemd-mpopdctl")
    t.run(scenario)
    t.done()


if __name__ == "__main__":
    main()

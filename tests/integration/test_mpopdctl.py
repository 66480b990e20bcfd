#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""mpopdctl on the legacy path (MPOPDCTL_NO_SYSTEMD=1: the pid file and signals), every verb.

start / status / stop / restart with their exit codes (not running 3, already running 5,
stale pid file 7, permission denied 4, invalid configuration 6 naming file, group and key);
config re-reads the file for new sessions (SIGUSR1) while running sessions go on, -e edits it
first ($VISUAL) and asks; refresh (SIGHUP) ends a session that has DELEs without UPDATE
(nothing deleted, the client sees the connection close) and binds the ports again; a port
changed in the file and `mpopdctl config` is served, named by the pid file and kept by
restart, which pins only a -p given to it.
"""

import os
import re
import subprocess

from mpopdtest import (IS_ROOT, MPOPDCTL, TEST_GID, TEST_UID, WAIT, FORMAT, Fixture, Pop,
                       Reporter, free_port, need_binaries, wait_for)

ENV = dict(os.environ, MPOPDCTL_NO_SYSTEMD="1")
ENV.pop("VISUAL", None)
ENV.pop("EDITOR", None)
VERBS = ["start", "stop", "restart", "refresh", "config", "reload", "status", "show-config",
         "check", "passwd", "stats", "convert-config"]


def ctl(fx, *args, env=None, stdin=None, user=None, cwd=None):
    """mpopdctl -c fx.conf ARGS. Returns (rc, stdout, stderr). The daemon it starts lets go
    of our pipes when it detaches."""
    r = subprocess.run([MPOPDCTL, "-c", fx.conf, *args], env=env or ENV,
                       input=stdin.encode() if stdin is not None else None,
                       stdin=None if stdin is not None else subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=WAIT * 3,
                       user=user, cwd=cwd)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def pid_file(fx):
    try:
        with open(fx.pidf) as f:
            lines = f.read().split("\n")
        return int(lines[0]), lines[1]
    except (OSError, ValueError, IndexError):
        return None, None


def greets(port, text=None):
    try:
        p = Pop(port, timeout=5)
    except OSError:
        return False
    g = p.greeting
    p.cmd("QUIT")
    p.close()
    return g.startswith(b"+OK") and (text is None or text.encode() in g)


def refused(port):
    try:
        Pop(port, timeout=5).close()
        return False
    except OSError:
        return True


def gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] == "Z"
    except OSError:
        return True


def cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return [a.decode() for a in f.read().split(b"\0") if a]


def sockets(pid):
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:"):
            out.add(link)
    return out


def configure(fx, port, greeting, **extra):
    conf = {"server.listen": f"127.0.0.1:{port}", "server.pid_file": fx.pidf,
            "server.greeting": greeting}
    conf.update(extra)
    fx.write_config(conf)


def usage(t, fx):
    rc, out, err = ctl(fx, "--help")
    t.check(rc == 0 and all(re.search(rf"^  {re.escape(v)}\b", out, re.M) for v in VERBS),
            "--help lists every verb", out)
    t.check(all(s in out for s in ("start [-f] [-p port]", "restart [-f] [-p port]",
                                   "config [-e]", "passwd [--scheme")),
            "--help names the flags each verb takes", out)
    t.check(all(n in out for n in ("3 not running", "4 permission denied",
                                         "5 already running", "6 invalid configuration",
                                         "7 stale pid file")),
            "--help names the exit codes", out)
    rc, _, err = ctl(fx, "frobnicate")
    t.check(rc == 2 and "unknown verb" in err, "an unknown verb: exit 2", err)
    rc, _, err = ctl(fx, "-p", "2110", "stop")
    t.check(rc == 2 and "does not apply" in err, "-p with stop: exit 2", err)
    rc, _, err = ctl(fx, "status", "-e")
    t.check(rc == 2 and "does not apply" in err, "-e after the verb is read too: exit 2", err)
    rc, _, err = ctl(fx, "start", "stop")
    t.check(rc == 2 and "one verb" in err, "two verbs: exit 2", err)


def not_running(t, fx):
    rc, out, _ = ctl(fx, "status")
    t.check(rc == 3 and "not running" in out, "status before start: LSB 3, not running", out)
    for verb in ("stop", "refresh", "config", "reload"):
        rc, _, err = ctl(fx, verb)
        t.check(rc == 3 and "not running" in err and fx.pidf in err,
                f"{verb} without a daemon: exit 3, names the pid file", err)


def start(t, fx, port):
    rc, out, err = ctl(fx, "start")
    pid, fport = pid_file(fx)
    t.check(rc == 0 and pid and f"started as pid {pid} on port {port}" in out,
            "start: mpopd started as pid N on port P", out + err + fx.stderr_text()[-800:])
    t.equal(fport, str(port), "start: the pid file names the port")
    t.check(greets(port, "Ctl-one"), "start: the port is served")
    rc, _, err = ctl(fx, "start")
    t.check(rc == 5 and f"already running as pid {pid}" in err,
            "start while running: exit 5, already running", err)
    rc, out, _ = ctl(fx, "status")
    t.check(rc == 0 and f"running as pid {pid} on port {port}" in out,
            "status: running as pid N on port P", out)
    return pid


def config_reload(t, fx, port, pid):
    p = Pop(port)
    _, r = p.login()
    t.check(r.startswith(b"+OK"), "config: a session opened before", r)
    configure(fx, port, "Ctl-two")
    rc, out, err = ctl(fx, "config")
    t.check(rc == 0 and f"pid {pid}" in out and "re-read" in out,
            "config: mpopd signalled to re-read its configuration", out + err)
    t.check(wait_for(lambda: greets(port, "Ctl-two")), "config: new sessions get the new file")
    t.equal(pid_file(fx)[0], pid, "config: the same daemon")
    r = p.cmd("STAT")
    t.check(r.startswith(b"+OK"), "config: the running session goes on", r)
    p.cmd("QUIT")
    p.close()
    rc, out, _ = ctl(fx, "show-config")
    t.check(rc == 0 and "Ctl-two" in out and "[server]" in out,
            "show-config prints the effective configuration", out)
    rc, out, _ = ctl(fx, "check")
    t.check(rc == 0 and "valid" in out, "check: valid", out)
    configure(fx, port, "Ctl-three")
    rc, out, err = ctl(fx, "reload")
    t.check(rc == 0 and wait_for(lambda: greets(port, "Ctl-three")),
            "reload: the same as config", out + err)


def invalid_config(t, fx, port, pid):
    with open(fx.conf) as f:
        good = f.read()
        text = good.replace("idle_timeout=60", "idle_timeout=banana")
    with open(fx.conf, "w") as f:
        f.write(text)
    for verb in ("config", "refresh", "check", "restart"):
        rc, out, err = ctl(fx, verb)
        t.check(rc == 6 and fx.conf in err and "[server] idle_timeout" in err,
                f"{verb} with an invalid file: exit 6, names file, group and key", out + err)
    t.check(pid_file(fx)[0] == pid and not gone(pid) and greets(port, "Ctl-three"),
            "... the daemon goes on with the old configuration")
    with open(fx.conf, "w") as f:
        f.write(good)


def refresh_with_deletions(t, fx, port, pid):
    before = fx.listing()
    socks = sockets(pid)
    p = Pop(port)
    _, r = p.login()
    t.check(r.startswith(b"+OK"), "refresh: a session logged in", r)
    answers = [p.cmd("DELE 1"), p.cmd("DELE 2")]
    t.check(all(a.startswith(b"+OK") for a in answers), "refresh: DELE 1 and DELE 2 accepted",
            answers)
    rc, out, err = ctl(fx, "refresh")
    t.check(rc == 0 and f"pid {pid}" in out and "without UPDATE" in out,
            "refresh: exit 0, sessions end without UPDATE", out + err)
    t.check(p.closed(), "refresh: the client sees the connection end")
    p.close()
    t.equal(fx.listing(), before, "refresh: nothing was deleted")
    t.check(wait_for(lambda: sockets(pid) and not (sockets(pid) & socks)),
            "refresh: the daemon's listening socket is a new one", (socks, sockets(pid)))
    t.check(pid_file(fx)[0] == pid and greets(port), "refresh: the same daemon serves again")
    q = Pop(port)
    q.login()
    r = q.cmd("STAT")
    t.check(r.startswith(b"+OK %d " % len(before)), "refresh: all messages still there", r)
    q.cmd("QUIT")
    q.close()


def update_runs_to_its_end(t, fx, port, pid):
    """A stop or refresh (SIGTERM to the session) that arrives while UPDATE deletes a large
    Maildir's messages takes effect after it: every DELEd message is gone, none half."""
    n = 5000
    cur = os.path.join(fx.maildirs["bob"], "cur")
    for i in range(n):
        path = os.path.join(cur, f"1700000000.M{i}P1.bulk:2,")
        with open(path, "wb") as f:
            f.write(b"Subject: bulk\n\nx\n")
        if IS_ROOT:
            os.chown(path, TEST_UID, TEST_GID)
    def left():
        return len(fx.listing("bob"))

    p = Pop(port)
    p.login(user="bob")
    total = int(p.cmd("STAT").split()[1])
    t.check(total == left() >= n, "update: STAT counts every message", total)
    p.send(b"".join(b"DELE %d\r\n" % i for i in range(1, total + 1)))
    answers = [p.line() for _ in range(total)]
    t.check(all(a.startswith(b"+OK") for a in answers), "update: every DELE accepted")
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        sessions = [int(x) for x in f.read().split()]
    t.check(len(sessions) == 1, "update: the daemon has one session", sessions)
    p.send(b"QUIT\r\n")
    t.check(wait_for(lambda: left() < total, step=0.001), "update: UPDATE began deleting")
    os.kill(sessions[0], 15)
    left_at_kill = left()
    t.check(0 < left_at_kill, "update: the SIGTERM arrived while UPDATE ran",
            f"{left_at_kill} of {total} left")
    t.check(p.closed(), "update: the session ended")
    p.close()
    t.equal(left(), 0, "update: it ran to its end (no message left half-way)")


def port_change(t, fx, port, pid):
    new = free_port()
    configure(fx, new, "Ctl-four")
    rc, out, err = ctl(fx, "config")
    t.check(rc == 0, "port change: mpopdctl config", out + err)
    t.check(wait_for(lambda: greets(new, "Ctl-four")), f"port change: port {new} is served",
            fx.stderr_text()[-800:])
    t.check(refused(port), f"port change: port {port} is closed")
    t.check(wait_for(lambda: pid_file(fx) == (pid, str(new))),
            "port change: the pid file names the new port", pid_file(fx))
    rc, out, _ = ctl(fx, "status")
    t.check(rc == 0 and f"on port {new}" in out, "port change: status says the new port", out)
    rc, out, err = ctl(fx, "restart")
    npid, nport = pid_file(fx)
    t.check(rc == 0 and npid not in (None, pid) and gone(pid),
            "restart: a new daemon after the old one is gone", out + err)
    t.check(nport == str(new) and greets(new, "Ctl-four"),
            "restart: keeps the configuration's port", (nport, new))
    t.check(cmdline(npid)[1:] == ["-c", fx.conf],
            "restart: no port pinned on the new command line", cmdline(npid))
    # a refresh re-reads the file too: the next port
    third = free_port()
    configure(fx, third, "Ctl-five")
    rc, out, err = ctl(fx, "refresh")
    t.check(rc == 0 and wait_for(lambda: greets(third, "Ctl-five")) and refused(new),
            "refresh: binds the port the file now names", out + err)
    t.check(wait_for(lambda: pid_file(fx) == (npid, str(third))),
            "refresh: the pid file names it", pid_file(fx))
    pinned = free_port()
    rc, out, err = ctl(fx, "-p", str(pinned), "restart")
    ppid, pport = pid_file(fx)
    t.check(rc == 0 and pport == str(pinned) and greets(pinned, "Ctl-five")
            and cmdline(ppid)[-1] == str(pinned),
            "restart -p PORT: on that port, passed on the command line", out + err)
    rc, out, err = ctl(fx, "restart")
    rpid, rport = pid_file(fx)
    t.check(rc == 0 and rport == str(third) and greets(third),
            "restart without -p after restart -p: back to the configuration's port",
            (out + err, rport))
    return rpid, third


def editor(t, fx, port, pid):
    env = dict(ENV, VISUAL="sed -i s/greeting=Ctl-five/greeting=Ctl-six/", EDITOR="false")
    rc, out, err = ctl(fx, "-e", "config", env=env, stdin="n\n")
    t.check(rc == 0 and "did not re-read" in out and "Ctl-six" in open(fx.conf).read(),
            "config -e: $VISUAL edits the file; answered n: not signalled", out + err)
    t.check(greets(port, "Ctl-five"), "... and the daemon has the old file")
    env = dict(ENV, EDITOR="sed -i s/greeting=Ctl-six/greeting=Ctl-seven/")
    rc, out, err = ctl(fx, "config", "-e", env=env, stdin="yes\n")
    t.check(rc == 0 and "[y/N]" in out and f"pid {pid}" in out,
            "config -e: $EDITOR without $VISUAL; answered yes: signalled", out + err)
    t.check(wait_for(lambda: greets(port, "Ctl-seven")), "... new sessions get the edit")
    env = dict(ENV, VISUAL="sed -i s/idle_timeout=60/idle_timeout=soon/")
    rc, out, err = ctl(fx, "-e", "config", env=env, stdin="y\n")
    t.check(rc == 6 and "idle_timeout" in err and "not signalled" in err,
            "config -e: an invalid edit is not offered for reload (exit 6)", out + err)
    with open(fx.conf) as f:
        text = f.read().replace("idle_timeout=soon", "idle_timeout=60")
    with open(fx.conf, "w") as f:
        f.write(text)


def permission(t, fx, port, pid):
    if IS_ROOT:
        # nobody may read the file and the pid file but not signal root's daemon
        rc, _, err = ctl(fx, "stop", user=65534)
        t.check(rc == 4 and "permission denied" in err, "stop as another user: exit 4", err)
        rc, _, err = ctl(fx, "refresh", user=65534)
        t.check(rc == 4 and "permission denied" in err, "refresh as another user: exit 4", err)
        os.chmod(fx.conf, 0o600)
        rc, _, err = ctl(fx, "config", user=65534)
        t.check(rc == 4 and "permission denied" in err and fx.conf in err,
                "config with an unreadable file: exit 4", err)
        os.chmod(fx.conf, 0o644)
    else:
        t.check(True, "not root: signalling another user's daemon is not tried")
    t.check(not gone(pid) and greets(port), "... the daemon is untouched")


def start_permission(t):
    """A pid file where we may not write it: start says so (exit 4) before mpopd runs."""
    with Fixture() as fx:
        if IS_ROOT:
            run = os.path.join(fx.dir, "run")  # root's, 0755: closed to nobody
            os.mkdir(run, 0o755)
            fx.pidf, user = os.path.join(run, "mpopd.pid"), 65534
        else:
            fx.pidf, user = "/mpopd-ctl-test.pid", None  # / is root's
        configure(fx, free_port(), "Ctl-perm")
        rc, _, err = ctl(fx, "start", user=user)
        t.check(rc == 4 and "permission denied" in err and fx.pidf in err,
                "start with an unwritable pid file: exit 4, names it", err)


def relative_config(t):
    """-c with a relative path: the detached daemon (cwd /) still finds it at a reload."""
    with Fixture() as fx:
        fx.pidf = os.path.join(fx.dir, "mpopd.pid")
        port = free_port()
        configure(fx, port, "Ctl-rel-one")
        rc, out, err = ctl(fx, "-c", "mpopd.conf", "start", cwd=fx.dir)
        pid, _ = pid_file(fx)
        try:
            t.check(rc == 0 and greets(port, "Ctl-rel-one"), "relative -c: start", out + err)
            configure(fx, port, "Ctl-rel-two")
            rc, out, err = ctl(fx, "-c", "mpopd.conf", "config", cwd=fx.dir)
            t.check(rc == 0 and wait_for(lambda: greets(port, "Ctl-rel-two")),
                    "relative -c: config re-reads the same file", out + err)
        finally:
            if pid:
                ctl(fx, "stop")
                wait_for(lambda: gone(pid))


def stop(t, fx, port, pid):
    rc, out, err = ctl(fx, "stop")
    t.check(rc == 0 and f"pid {pid}" in out and gone(pid) and not os.path.exists(fx.pidf),
            "stop: exit 0, the daemon is gone and so is its pid file", out + err)
    t.check(refused(port), "stop: the port is closed")
    rc, _, err = ctl(fx, "stop")
    t.check(rc == 3, "stop again: exit 3, not running", err)


def stale(t, fx, port):
    with open(fx.pidf, "w") as f:
        f.write(f"{os.getpid()}\n{port}\n")  # alive, but not mpopd
    rc, out, _ = ctl(fx, "status")
    t.check(rc == 1 and "stale" in out, "status with a stale pid file: LSB 1", out)
    for verb in ("start", "restart"):
        rc, _, err = ctl(fx, verb)
        t.check(rc == 7 and "stale pid file" in err and "-f" in err,
                f"{verb} with a stale pid file: exit 7, suggests -f", err)
    rc, _, err = ctl(fx, "stop")
    t.check(rc == 3 and "stale" in err, "stop with a stale pid file: exit 3", err)
    rc, out, err = ctl(fx, "-f", "start")
    pid, _ = pid_file(fx)
    t.check(rc == 0 and pid and pid != os.getpid() and greets(port),
            "start -f replaces the stale pid file", out + err)
    ctl(fx, "stop")


def scenario(t):
    with Fixture() as fx:
        fx.pidf = os.path.join(fx.dir, "mpopd.pid")
        port = free_port()
        configure(fx, port, "Ctl-one")
        try:
            t.run(usage, fx)
            t.run(not_running, fx)
            pid = start(t, fx, port)
            t.run(config_reload, fx, port, pid)
            t.run(invalid_config, fx, port, pid)
            t.run(refresh_with_deletions, fx, port, pid)
            if FORMAT == "maildir":
                t.run(update_runs_to_its_end, fx, port, pid)
            t.run(permission, fx, port, pid)
            pid, port = port_change(t, fx, port, pid)
            t.run(editor, fx, port, pid)
            t.run(stop, fx, port, pid)
            t.run(stale, fx, port)
        finally:
            pid, _ = pid_file(fx)
            if pid and not gone(pid):
                os.kill(pid, 15)
                wait_for(lambda: gone(pid))
    t.run(start_permission)
    t.run(relative_config)


def main():
    need_binaries()
    t = Reporter("mpopdctl" if FORMAT == "maildir" else f"mpopdctl-{FORMAT}")
    t.run(scenario)
    t.done()


if __name__ == "__main__":
    main()

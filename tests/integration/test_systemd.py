#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The shipped units under a real systemd: boot the host's /usr in a systemd-nspawn container
(--volatile=yes, sharing the host network), with the generated units plus drop-ins that only
change the port and point ExecStart at the built binary, and fetch mail from the host.

Scenario "socket":  mpopd.socket (Accept=yes) -> mpopd@.service per connection, sandboxed.
Scenario "daemon":  mpopd-daemon.socket (Accept=no) -> mpopd.service (Type=notify); a unit
inside the container runs `systemctl reload mpopd.service` (RELOADING=1/READY=1 handshake).
Then the container's journal is read: structured fields present, no password, no unit failed.
"""

import json
import os
import poplib
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

from mpopdtest import (MESSAGES, MPOPD, PASSWORD, WAIT, Fixture, Pop, Reporter, free_port,
                       lines_of, need_binaries, uidl_of, wait_for)

EXPECT = sorted(MESSAGES, key=lambda m: uidl_of(m[0]))
BUILDDIR = os.environ.get("BUILDDIR", "")
SRCDIR = os.environ.get("SRCDIR", "")
VISIBLE = "/var/vmail"  # in ReadWritePaths= of the units, so the sandbox may write there
# The build tree inside the container: not under /tmp, which PrivateTmp= hides from the units.
BUILD_IN = "/opt/mpopd-build"
MPOPD_IN = BUILD_IN + "/src/mpopd"
WRONG = "Wr0ng-Passw0rd-systemd"


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


class Container:
    def __init__(self, fx, scenario, port):
        self.fx = fx
        self.scenario = scenario
        self.port = port
        self.dir = tempfile.mkdtemp(prefix="mpopd-nspawn-")
        self.units = os.path.join(self.dir, "units")
        self.out = os.path.join(self.dir, "out")
        self.journal = os.path.join(self.dir, "journal")
        self.tmpfiles = os.path.join(self.dir, "tmpfiles")
        for d in (self.units, self.out, self.journal, self.tmpfiles):
            os.makedirs(d)
        shutil.copy(os.path.join(SRCDIR, "units", "mpopd.tmpfiles"),
                    os.path.join(self.tmpfiles, "mpopd.conf"))
        # Only this scenario's pair: the two pairs conflict with each other.
        pair = (("mpopd.socket", "mpopd@.service") if scenario == "socket"
                else ("mpopd-daemon.socket", "mpopd.service"))
        for u in pair:
            shutil.copy(os.path.join(BUILDDIR, "units", u), os.path.join(self.units, u))
        conf = f"{VISIBLE}/mpopd.conf"
        listen = f"[Socket]\nListenStream=\nListenStream=127.0.0.1:{port}\n"
        if scenario == "socket":
            write(f"{self.units}/mpopd.socket.d/test.conf", listen)
            write(f"{self.units}/mpopd@.service.d/test.conf",
                  f"[Service]\nExecStart=\nExecStart={MPOPD_IN} --inetd -c {conf}\n")
            os.makedirs(f"{self.units}/sockets.target.wants")
            os.symlink("../mpopd.socket", f"{self.units}/sockets.target.wants/mpopd.socket")
        else:
            write(f"{self.units}/mpopd-daemon.socket.d/test.conf", listen)
            write(f"{self.units}/mpopd.service.d/test.conf",
                  f"[Service]\nExecStart=\nExecStart={MPOPD_IN} -c {conf}\n")
            write(f"{self.units}/reload-probe.service",
                  "[Unit]\nAfter=mpopd.service\nRequires=mpopd.service\n[Service]\n"
                  "Type=oneshot\nExecStart=/bin/sh -c 'timeout 30 systemctl reload "
                  "mpopd.service; echo reload=$? > /out/reload.tmp; systemctl show -p "
                  "ActiveState -p StatusText mpopd.service >> /out/reload.tmp; "
                  "mv /out/reload.tmp /out/reload.txt'\n")
            os.makedirs(f"{self.units}/multi-user.target.wants")
            for u in ("mpopd.service", "reload-probe.service"):
                os.symlink(f"../{u}", f"{self.units}/multi-user.target.wants/{u}")
        # A machine id makes this a regular boot: on a first boot systemd would run
        # "preset-all" and enable units in the (writable) unit dir bound from here.
        write(f"{self.dir}/machine-id", uuid.uuid4().hex + "\n")
        self.proc = None

    def start(self):
        cmd = ["systemd-nspawn", "-q", "--volatile=yes", "-D", "/", "--register=no",
               "--keep-unit", f"--machine=mpopd-{self.scenario}-{self.port}",
               f"--bind={self.units}:/etc/systemd/system",
               f"--bind={self.tmpfiles}:/etc/tmpfiles.d",
               f"--bind={self.out}:/out",
               f"--bind={self.journal}:/var/log/journal",
               f"--bind={self.fx.dir}:{VISIBLE}",
               f"--bind-ro={os.path.dirname(os.path.dirname(MPOPD))}:{BUILD_IN}",
               f"--bind-ro={self.dir}/machine-id:/etc/machine-id",
               "--bind-ro=/etc/passwd", "--bind-ro=/etc/group", "--bind-ro=/etc/nsswitch.conf",
               "-b", "--", "systemd.firstboot=off"]
        self.log = open(os.path.join(self.dir, "console.log"), "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def console(self):
        with open(os.path.join(self.dir, "console.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")[-3000:]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # nspawn: halt the container
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=WAIT)
        self.log.close()

    def journal_entries(self):
        r = subprocess.run(["journalctl", "-D", self.journal, "-o", "json", "--no-pager"],
                           capture_output=True, timeout=60)
        out = []
        for line in r.stdout.decode("utf-8", "replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out, r.stdout

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def greets(port):
    try:
        p = Pop(port, timeout=5)
        ok = p.greeting.startswith(b"+OK")
        p.cmd("QUIT")
        p.close()
        return ok
    except OSError:
        return False


def fetch_all(t, tag, port):
    p = poplib.POP3("127.0.0.1", port, timeout=15)
    p.user("alice")
    p.pass_(PASSWORD)
    count, _ = p.stat()
    t.equal(count, len(EXPECT), f"{tag}: STAT")
    for i, (name, raw) in enumerate(EXPECT, 1):
        _, lines, _ = p.retr(i)
        t.check(lines == lines_of(raw), f"{tag}: RETR {i} ({uidl_of(name)}) bytes")
    p.dele(1)
    p.quit()
    # the same user again: the lock was released, message 1 is gone
    p = poplib.POP3("127.0.0.1", port, timeout=15)
    p.user("alice")
    p.pass_(PASSWORD)
    t.equal(p.stat()[0], len(EXPECT) - 1, f"{tag}: DELE 1 + QUIT removed one message")
    p.quit()


def in_use_and_auth(t, tag, port):
    a = Pop(port)
    _, ra = a.login("bob")
    b = Pop(port)
    _, rb = b.login("bob")
    t.check(ra.startswith(b"+OK") and rb.startswith(b"-ERR [IN-USE]"),
            f"{tag}: a second session gets -ERR [IN-USE]", f"{ra!r} {rb!r}")
    a.cmd("QUIT")
    a.close()
    b.close()
    c = Pop(port)
    _, wrong = c.login("alice", WRONG)
    c.close()
    t.check(wrong.startswith(b"-ERR [AUTH]"), f"{tag}: wrong password gets -ERR [AUTH]", wrong)


def check_journal(t, tag, ct, expect_instances):
    entries, raw = ct.journal_entries()
    t.check(len(entries) > 0, f"{tag}: the container journal was readable")
    mine = [e for e in entries if e.get("MPOPD_EVENT")]
    events = {e.get("MPOPD_EVENT") for e in mine}
    for ev in ("connect", "login", "login-failed", "logout"):
        t.check(ev in events, f"{tag}: journal has MPOPD_EVENT={ev}", sorted(events))
    logins = [e for e in mine if e.get("MPOPD_EVENT") == "login"]
    t.check(any(e.get("MPOPD_USER") == "alice" and e.get("MPOPD_SESSION")
                and e.get("MPOPD_PEER", "").startswith("127.0.0.1") for e in logins),
            f"{tag}: login records carry MPOPD_USER, MPOPD_SESSION, MPOPD_PEER",
            logins[:2])
    t.check(PASSWORD.encode() not in raw and WRONG.encode() not in raw,
            f"{tag}: no password anywhere in the journal")
    bad = [e.get("MESSAGE", "") for e in entries
           if "mpopd" in str(e.get("UNIT", "")) + str(e.get("_SYSTEMD_UNIT", ""))
           and any(s in str(e.get("MESSAGE", "")) for s in
                   ("Failed with result", "status=31/SYS", "code=dumped", "core-dump"))]
    t.check(not bad, f"{tag}: no mpopd unit failed (sandbox, seccomp)", bad[:5])
    if expect_instances:
        units = {e.get("_SYSTEMD_UNIT", "") for e in mine}
        t.check(any(u.startswith("mpopd@") for u in units),
                f"{tag}: sessions ran as mpopd@.service instances", sorted(units))


def scenario(t, name):
    with Fixture(visible=VISIBLE) as fx:
        port = free_port()
        ct = Container(fx, name, port)
        try:
            ct.start()
            up = wait_for(lambda: greets(port) or ct.proc.poll() is not None, timeout=60,
                          step=0.3)
            up = up and ct.proc.poll() is None
            if not up:
                ct.stop()
                entries, _ = ct.journal_entries()
                units = [f"{e.get('_SYSTEMD_UNIT', e.get('UNIT', ''))}: {e.get('MESSAGE', '')}"
                         for e in entries
                         if "mpopd" in str(e.get("MESSAGE", "")) + str(e.get("UNIT", ""))]
                t.check(False, f"{name}: the container came up and mpopd greets",
                        "\n".join(units[-30:]) or ct.console())
                return
            t.check(True, f"{name}: the container came up and mpopd greets")
            fetch_all(t, name, port)
            in_use_and_auth(t, name, port)
            if name == "daemon":
                ok = wait_for(lambda: os.path.exists(os.path.join(ct.out, "reload.txt")),
                              timeout=45, step=0.3)
                text = open(os.path.join(ct.out, "reload.txt")).read() if ok else ""
                t.check("reload=0" in text and "ActiveState=active" in text,
                        f"{name}: systemctl reload mpopd.service returns and it stays active",
                        text or ct.console())
                t.check(greets(port), f"{name}: still serving after the reload")
            time.sleep(1)  # let the last instance log its logout
        finally:
            ct.stop()
        check_journal(t, name, ct, name == "socket")
        ct.cleanup()


def main():
    need_binaries()
    t = Reporter("systemd")
    if os.geteuid() != 0:
        t.skip("systemd units in a container", "needs root for systemd-nspawn")
    elif not shutil.which("systemd-nspawn"):
        t.skip("systemd units in a container", "systemd-nspawn not installed (systemd-container)")
    else:
        for name in ("socket", "daemon"):
            t.run(scenario, name)
    t.done()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""mbox with a real delivery agent: procmail delivers in a loop while POP3 sessions RETR and
DELE, then the session is SIGKILLed at random instants during UPDATE while procmail keeps
delivering. Afterwards every delivered message is present exactly once, every deleted one is
gone, and the mailbox always parses."""

import mailbox
import os
import random
import shutil
import signal
import subprocess
import threading
import time

from mpopdtest import (IS_ROOT, PASSWORD, TEST_GID, TEST_UID, WAIT, Fixture, Pop, Reporter,
                       Server, need_binaries)

PROCMAIL = shutil.which("procmail")


def body_of(n):
    return f"body {n}\nFrom inside the body\n.dot line\n"


def raw_of(n):
    return f"Message-ID: <pm-{n}@example.org>\nSubject: {n}\n\n{body_of(n)}".encode()


def mid(n):
    return f"<pm-{n}@example.org>"


class MboxFixture(Fixture):
    """The standard fixture, with alice's mailbox an mbox in a 1777 spool."""

    def __init__(self):
        super().__init__()
        self.spool = os.path.join(self.dir, "spool")
        os.mkdir(self.spool)
        os.chmod(self.spool, 0o1777)
        self.mbox = os.path.join(self.spool, "alice")
        open(self.mbox, "wb").close()
        if IS_ROOT:
            os.chown(self.mbox, TEST_UID, TEST_GID)
        os.chmod(self.mbox, 0o600)
        self.rc = os.path.join(self.dir, "procmailrc")
        open(self.rc, "w").close()
        os.chmod(self.rc, 0o644)
        self.write_config({"mailbox.format": "mbox",
                           "mailbox.location": os.path.join(self.spool, "%u"),
                           "mailbox.lock_wait_ms": "50", "mailbox.lock_retries": "100"})

    def deliver(self, n):
        """procmail as the mailbox owner: dotlock, then fcntl, then append (its own From_)."""
        def demote():
            if IS_ROOT:
                os.setgid(TEST_GID)
                os.setuid(TEST_UID)
        r = subprocess.run([PROCMAIL, "-m", "-f", "sender@example.org", f"DEFAULT={self.mbox}",
                            "LOCKTIMEOUT=10", "LOCKSLEEP=1", self.rc], input=raw_of(n), preexec_fn=demote,
                           capture_output=True, timeout=WAIT)
        return r.returncode == 0

    def ids(self):
        """Message-IDs in the mbox, as Python's mailbox module parses it."""
        box = mailbox.mbox(self.mbox, create=False)
        try:
            return [m["Message-ID"] for m in box]
        finally:
            box.close()


def session(t, srv, delete_pred, check_retr):
    """One POP3 session: UIDL, RETR (checked) and DELE what delete_pred selects, QUIT."""
    p = Pop(srv.port)
    try:
        r1, r2 = p.login()
        if not r2.startswith(b"+OK"):
            return None
        if not p.cmd("UIDL").startswith(b"+OK"):
            return None
        listing = [line.split() for line in p.multi()]
        sizes = {}
        if p.cmd("LIST").startswith(b"+OK"):
            sizes = {int(a): int(b) for a, b in (line.split() for line in p.multi())}
        deleted = []
        for num, uidl in listing:
            n = int(uidl.decode().split("-")[1].split("@")[0])
            if check_retr:
                if not p.cmd(f"RETR {int(num)}").startswith(b"+OK"):
                    t.check(False, f"RETR {int(num)}")
                    continue
                lines = p.multi()
                want = raw_of(n).decode().split("\n")[:-1]
                got = [x.decode() for x in lines]
                if got[-len(want):] != want:
                    t.check(False, f"RETR of {mid(n)} is the delivered message", f"{got}")
                octets = sum(len(x) + 2 for x in lines)
                if octets != sizes.get(int(num)):
                    t.check(False, f"LIST size of {mid(n)} is what RETR sent",
                            f"{octets} != {sizes.get(int(num))}")
            if delete_pred(n):
                if p.cmd(f"DELE {int(num)}").startswith(b"+OK"):
                    deleted.append(n)
        q = p.cmd("QUIT")
        return deleted if q.startswith(b"+OK") else None
    finally:
        p.close()


def test_procmail_interop(t):
    with MboxFixture() as fx, Server(fx, "inetd") as srv:
        delivered = []
        errors = []

        def deliverer():
            for n in range(80):
                if fx.deliver(n):
                    delivered.append(n)
                else:
                    errors.append(n)
                time.sleep(random.uniform(0, 0.02))

        th = threading.Thread(target=deliverer)
        th.start()
        sessions = ok = 0
        while th.is_alive():
            sessions += 1
            if session(t, srv, lambda n: n % 2 == 0, check_retr=True) is not None:
                ok += 1
            time.sleep(0.01)
        th.join()
        session(t, srv, lambda n: n % 2 == 0, check_retr=True)
        t.equal(errors, [], "procmail delivered every message")
        t.check(ok >= 3, f"{ok} of {sessions} POP3 sessions ran while procmail delivered")
        ids = fx.ids()
        t.equal(len(ids), len(set(ids)), "no message is duplicated")
        t.equal(sorted(ids), sorted(mid(n) for n in delivered if n % 2),
                "every odd message present once, every deleted (even) one gone")
        t.check(not os.path.exists(fx.mbox + ".lock"), "no dotlock left behind")


def test_crash_during_update(t):
    """SIGKILL the session at random instants after QUIT while procmail delivers."""
    with MboxFixture() as fx:
        alive = set()
        t.check(fx.deliver(0), "seed delivery by procmail")
        alive.add(mid(0))
        # A few MB more, written as procmail writes them, so UPDATE takes long enough to be
        # hit in the middle.
        with open(fx.mbox, "ab") as f:
            for n in range(1, 3000):
                quoted = raw_of(n).replace(b"\nFrom ", b"\n>From ")
                f.write(b"From sender@example.org  Mon Jan  1 00:00:00 2024\n" + quoted +
                        b"x" * 900 + b"\n\n")
                alive.add(mid(n))
        guard = threading.Lock()
        stop = threading.Event()
        nxt = [100000]
        inflight = [None]

        def deliverer():
            # Not under the checker's lock: procmail must be free to wait for a dotlock
            # left by a killed session until the next session takes it over.
            while not stop.is_set():
                with guard:
                    n = nxt[0]
                    nxt[0] += 1
                    inflight[0] = mid(n)
                ok = fx.deliver(n)
                with guard:
                    if ok:
                        alive.add(mid(n))
                    inflight[0] = None
                time.sleep(random.uniform(0, 0.01))

        th = threading.Thread(target=deliverer)
        th.start()
        rounds = committed = old = bad = 0
        # How long after QUIT the kill may land. UPDATE takes longer on a loaded machine:
        # while no kill has come after a commit, the window doubles every 10 rounds (up to
        # 0.4 s), so both sides of UPDATE get hit however fast the machine is.
        span = 0.012
        end = time.monotonic() + 45
        try:
            while rounds < 100 and time.monotonic() < end:
                rounds += 1
                # Its own process group: the kill below crashes the whole session (after
                # login mpopd serves from a fresh child process), as a crash or
                # systemd's KillMode=control-group would.
                proc = subprocess.Popen([os.environ["MPOPD"], "--inetd", "-c", fx.conf],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
                deleted = set()
                try:
                    proc.stdin.write(f"USER alice\r\nPASS {PASSWORD}\r\nUIDL\r\n".encode())
                    proc.stdin.flush()
                    out = b""
                    while not out.endswith(b"\r\n.\r\n") and b"-ERR" not in out:
                        chunk = proc.stdout.read1(65536)
                        if not chunk:
                            break
                        out += chunk
                    lines = out.split(b"\r\n")
                    cmds = b""
                    for line in lines:
                        parts = line.split()
                        if len(parts) == 2 and parts[0].isdigit() and random.random() < 0.02:
                            cmds += b"DELE " + parts[0] + b"\r\n"
                            deleted.add(parts[1].decode())
                    proc.stdin.write(cmds + b"QUIT\r\n")
                    proc.stdin.flush()
                    if committed == 0 and rounds % 10 == 0:
                        span = min(span * 2, 0.4)
                    time.sleep(random.uniform(0, span))
                finally:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=WAIT)
                    gone = time.monotonic() + WAIT
                    while time.monotonic() < gone:
                        try:
                            os.killpg(proc.pid, 0)
                        except ProcessLookupError:
                            break
                        time.sleep(0.005)
                with guard:
                    before = set(alive)
                ids = fx.ids()
                with guard:
                    allowed = alive | {inflight[0]}
                got = set(ids)
                if len(ids) != len(got):
                    bad += 1
                    import collections
                    t.check(False, f"round {rounds}: duplicated messages",
                            f"{[k for k, v in collections.Counter(ids).items() if v > 1][:5]}")
                elif not got <= allowed:
                    bad += 1
                    t.check(False, f"round {rounds}: unexpected messages", f"{sorted(got - allowed)[:10]}")
                elif before <= got:
                    old += 1
                elif (before - deleted) <= got and not (got & deleted):
                    committed += 1
                    with guard:
                        alive -= deleted
                else:
                    bad += 1
                    t.check(False, f"round {rounds}: neither old nor new content",
                            f"missing {sorted(before - got)[:10]}")
        finally:
            stop.set()
            th.join()
        print(f"# crash injection against mpopd: {rounds} rounds, {committed} committed, "
              f"{old} old content, {bad} bad; {nxt[0] - 100000} deliveries meanwhile", flush=True)
        t.equal(bad, 0, f"{rounds} SIGKILL rounds: the mbox always held old or new content "
                        f"plus every delivery ({committed} committed, {old} old)")
        t.check(committed > 0 and rounds >= 20, "the kills hit both sides of UPDATE")


def main():
    need_binaries()
    t = Reporter("mbox-procmail")
    if not PROCMAIL:
        t.skip("procmail interop", "procmail is not installed")
        t.done()
    t.run(test_procmail_interop)
    t.run(test_crash_during_update)
    t.done()


if __name__ == "__main__":
    main()

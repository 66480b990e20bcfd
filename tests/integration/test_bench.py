#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""mpopd-bench against mpopd and against broken POP3 servers.

The generator is deterministic and writes what it promises (sizes, attachments, dot and
From lines, mboxrd quoting); every mode runs against mpopd on a generated mailbox (Maildir
and mbox) with figures that add up; retrieve's checks catch a server that sends a wrong
octet count, skips byte-stuffing, sends bare LF or hangs up, and mpopd-bench then exits
non-zero. Figures are only checked for sanity, never against a time.
"""

import json
import os
import shutil
import socket
import socketserver
import subprocess
import tempfile
import threading

import mpopdtest as t

BENCH = os.environ.get("MPOPD_BENCH", "")
N = 30  # messages in the generated mailbox


def bench(*args, timeout=120, stdin=subprocess.DEVNULL):
    """Runs mpopd-bench --json; returns (rc, the JSON object or None, stderr)."""
    r = subprocess.run([BENCH, *map(str, args), "--json", "--timeout", "10"], stdin=stdin,
                       capture_output=True, timeout=timeout)
    try:
        out = json.loads(r.stdout.decode())
    except ValueError:
        out = None
    return r.returncode, out, r.stderr.decode("utf-8", "replace")


def maildir_messages(path):
    """[(name relative to the Maildir, bytes)] of cur/ and new/, sorted by name."""
    out = []
    for sub in ("cur", "new"):
        for n in sorted(os.listdir(os.path.join(path, sub))):
            with open(os.path.join(path, sub, n), "rb") as f:
                out.append((f"{sub}/{n}", f.read()))
    return sorted(out, key=lambda m: m[0].split("/", 1)[1])


def unquote_mboxrd(stored):
    return b"".join(line[1:] if line.lstrip(b">").startswith(b"From ") and line.startswith(b">")
                    else line for line in stored.splitlines(keepends=True))


def test_generate(r, tmp):
    a, b, c = (os.path.join(tmp, x) for x in ("a", "b", "c"))
    rc, out, err = bench("generate", "--maildir", a, "--messages", 200, "--seed", 5)
    r.check(rc == 0 and out and out["messages"] == 200, "generate writes a Maildir", err)
    bench("generate", "--maildir", b, "--messages", 200, "--seed", 5)
    bench("generate", "--maildir", c, "--messages", 200, "--seed", 6)
    ma, mb, mc = maildir_messages(a), maildir_messages(b), maildir_messages(c)
    r.equal(ma, mb, "the same seed gives the same messages, names included")
    r.check(ma != mc, "another seed gives other messages")
    sizes = sorted(len(raw) for _, raw in ma)
    r.equal(out["bytes"], sum(sizes), "the report adds up the bytes written")
    r.check(sizes[0] < 6000 and sizes[-1] > 150000 and 20000 < sum(sizes) / len(sizes) < 200000,
            "a size mix from a few KB to attachments of hundreds of KB", sizes)
    r.check(sum(b"Content-Transfer-Encoding: base64\n" in raw for _, raw in ma) >= 10,
            "base64 attachments")
    bodies = [raw.split(b"\n\n", 1)[1] for _, raw in ma]
    r.check(any(b"\n.\n" in x for x in bodies) and any(b"\n..two" in x for x in bodies)
            and any(b"\nFrom " in x for x in bodies) and any(b"\n>From " in x for x in bodies),
            "bodies hold lone dots, dot lines, From and >From lines")
    r.equal(sum(n.startswith("new/") for n, _ in ma), 20, "the newest tenth is in new/")
    r.check(all(n.endswith(":2,S") for n, _ in ma if n.startswith("cur/")),
            "cur/ names carry the seen flag")

    mbox = os.path.join(tmp, "mbox")
    rc, out, err = bench("generate", "--mbox", mbox, "--messages", 200, "--seed", 5)
    with open(mbox, "rb") as f:
        data = f.read()
    stored = t.mbox_split(data)
    r.equal([unquote_mboxrd(s) for s in stored], [raw for _, raw in ma],
            "the mbox holds the same messages, mboxrd-quoted")
    r.check(b"\n>From the desk" in data and b"\n>>From a line quoted once" in data,
            "From lines in an mbox body are quoted once more")
    rc, _, err = bench("generate", "--mbox", mbox, "--messages", 2)
    r.check(rc != 0 and "not empty" in err, "generate leaves an existing mbox alone", err)
    rc, _, err = bench("generate", "--maildir", a, "--messages", 2)
    r.check(rc != 0 and "not empty" in err, "generate leaves a filled Maildir alone", err)

    named = os.path.join(tmp, "named")
    bench("generate", "--maildir", named, "--messages", 20, "--name-sizes")
    ok = True
    for n, raw in maildir_messages(named):
        fields = dict(f.split("=", 1) for f in n.split(":")[0].split(",")[1:])
        ok = ok and int(fields["S"]) == len(raw) and int(fields["W"]) == t.pop_size(raw)
    r.check(ok, "--name-sizes: S= is the stored size and W= the size with CRLF")


def users_file(tmp, names):
    path = os.path.join(tmp, "bench-users")
    with open(path, "w") as f:
        for n in names:
            f.write(f"{n}:{t.PASSWORD}\n")
    return path


def server_tree(pid):
    """pid and every descendant."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return out


def test_modes(r, tmp, fmt, mode):
    gen = os.path.join(tmp, f"gen-{fmt}-{mode}")
    bench("generate", "--maildir", gen, "--messages", N, "--seed", 11)
    msgs = maildir_messages(gen)
    octets = sum(t.pop_size(raw) for _, raw in msgs)
    with t.Fixture(messages=msgs, fmt=fmt) as fx:
        if fmt == "mbox":
            # the generator's own mbox for alice: mpopd must read back what it meant
            os.unlink(fx.mboxes["alice"])
            bench("generate", "--mbox", fx.mboxes["alice"], "--messages", N, "--seed", 11)
            if t.IS_ROOT:
                os.chown(fx.mboxes["alice"], t.TEST_UID, t.TEST_GID)
        tag = f"{fmt}, {mode}"
        with t.Server(fx, mode) as srv:
            port = srv.port
            login = ["-p", port, "-u", "alice", "-w", t.PASSWORD]
            for pipeline in (1, 16):
                rc, out, err = bench("retrieve", *login, "--pipeline", pipeline)
                r.check(rc == 0 and out and out["messages"] == N and out["octets"] == octets
                        and out["errors"] == 0 and out["wire_bytes"] > octets
                        and out["mb_per_s"] > 0 and out["messages_per_s"] > 0,
                        f"{tag}: retrieve --pipeline {pipeline}: every message as LIST said",
                        f"{out}\n{err}")
            rc, out, err = bench("top", *login, "--lines", 3, "--pipeline", 8)
            r.check(rc == 0 and out and out["messages"] == N and out["errors"] == 0
                    and out["octets"] == octets and 0 < out["wire_bytes"] < octets,
                    f"{tag}: top -l 3", f"{out}\n{err}")
            rc, out, err = bench("bigbox", *login, "--repeat", 3)
            r.check(rc == 0 and out and out["messages"] == N and out["logins"] == 3
                    and out["first_stat_ms"] > 0 and out["again_stat_ms"] > 0
                    and out["again_uidl_ms"] > 0 and out["again_list_ms"] > 0,
                    f"{tag}: bigbox", f"{out}\n{err}")
            users = users_file(tmp, ["alice", "bob", "carol"])
            rc, out, err = bench("sessions", "-p", port, "-U", users, "-c", 3, "-n", 30)
            r.check(rc == 0 and out and out["sessions"] == 30 and out["failed"] == 0
                    and out["sessions_per_s"] > 0
                    and 0 < out["p50_ms"] <= out["p99_ms"] <= out["max_ms"],
                    f"{tag}: sessions, 3 clients, 30 sessions", f"{out}\n{err}")
            if mode != "daemon":
                return
            p = subprocess.Popen([BENCH, "memory", "-p", str(port), "-U", users, "-c", "3",
                                  "--json", "-t", "60"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                out = json.loads(p.stdout.readline().decode() or "null")
                procs = len(server_tree(srv.proc.pid))
                p.stdin.close()
                rc = p.wait(timeout=30)
                err = p.stderr.read().decode()
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            r.check(out and out["sessions"] == 3 and out["failed"] == 0,
                    f"{tag}: memory holds 3 sessions logged in", f"{out}\n{err}")
            r.check(procs >= 4, f"{tag}: the daemon has a process per held session ({procs})")
            r.check(rc == 0 and "3 of 3 sessions answered NOOP" in err,
                    f"{tag}: memory ends when stdin closes, every session still there", err)


# ---------------------------------------------------------------- broken servers

GOOD = [b"Subject: one\r\n\r\nfirst line\r\n..stuffed dot line\r\nlast\r\n",
        b"Subject: two\r\n\r\n" + b"x" * 70 + b"\r\n"]


class FakePop(socketserver.StreamRequestHandler):
    """A POP3 server whose RETR answers carry the defect named in self.server.defect."""

    def send(self, data):
        self.wfile.write(data)
        self.wfile.flush()

    def handle(self):
        defect = self.server.defect
        sizes = [len(m.replace(b"\r\n..", b"\r\n.")) for m in GOOD]
        self.send(b"+OK fake\r\n")
        for raw in self.rfile:
            cmd = raw.strip().split()
            verb = cmd[0].upper() if cmd else b""
            if verb == b"PASS" and defect == "no-login":
                self.send(b"-ERR [AUTH] no\r\n")
            elif verb in (b"USER", b"PASS", b"NOOP"):
                self.send(b"+OK\r\n")
            elif verb == b"STAT":
                self.send(b"+OK %d %d\r\n" % (len(GOOD), sum(sizes)))
            elif verb == b"LIST":
                self.send(b"+OK\r\n" + b"".join(b"%d %d\r\n" % (i + 1, s)
                                                for i, s in enumerate(sizes)) + b".\r\n")
            elif verb == b"RETR":
                i = int(cmd[1]) - 1
                body, status = GOOD[i], b"+OK %d octets\r\n" % sizes[i]
                if i == 0:
                    if defect == "short":
                        body = body.replace(b"last\r\n", b"")
                    elif defect == "unstuffed":
                        body = body.replace(b"..stuffed", b".stuffed")
                    elif defect == "lone-dot":
                        body = body.replace(b"last\r\n", b".\r\nlast\r\n")
                    elif defect == "status":
                        status = b"+OK 999 octets\r\n"
                    elif defect == "bare-lf":
                        body = body.replace(b"\r\n", b"\n")
                    elif defect == "hang-up":
                        self.send(status + body[:20])
                        return
                self.send(status + body + b".\r\n")
            elif verb == b"QUIT":
                self.send(b"+OK bye\r\n")
                return
            else:
                self.send(b"-ERR\r\n")


class FakeServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def test_broken(r):
    cases = [("short", "LIST said"), ("unstuffed", "not byte-stuffed"),
             ("lone-dot", "RETR"), ("status", "status line says 999"),
             ("bare-lf", "bare LF"), ("hang-up", "RETR 1")]
    for defect, words in [("none", None)] + cases:
        srv = FakeServer(("127.0.0.1", 0), FakePop)
        srv.defect = defect
        th = threading.Thread(target=srv.serve_forever, daemon=True)
        th.start()
        try:
            for pipeline in (1, 4):
                rc, out, err = bench("retrieve", "-p", srv.server_address[1], "-u", "x",
                                     "-w", "y", "--pipeline", pipeline, timeout=60)
                if words is None:
                    r.check(rc == 0 and out["errors"] == 0 and out["messages"] == 2,
                            f"a correct fake server passes (pipeline {pipeline})", err)
                else:
                    r.check(rc != 0 and words in err,
                            f"retrieve fails on a server with defect {defect} "
                            f"(pipeline {pipeline})", f"rc {rc}\n{out}\n{err}")
        finally:
            srv.shutdown()
            srv.server_close()
    srv = FakeServer(("127.0.0.1", 0), FakePop)
    srv.defect = "no-login"
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        rc, out, err = bench("sessions", "-p", srv.server_address[1], "-u", "x", "-w", "y",
                             "-c", 2, "-n", 6)
        r.check(rc != 0 and out["failed"] == 6 and out["sessions"] == 0 and "-ERR [AUTH]" in err,
                "sessions counts refused logins as failed and exits non-zero", f"{out}\n{err}")
    finally:
        srv.shutdown()
        srv.server_close()


def test_cli(r, tmp):
    rc, out, err = bench("sessions", "-p", 1)
    r.check(rc == 2 and "--user" in err, "a server mode wants a user", err)
    rc, out, err = bench("generate", "--messages", 3)
    r.check(rc == 2 and "--maildir" in err, "generate wants a target", err)
    rc = subprocess.run([BENCH, "nonsense"], capture_output=True).returncode
    r.equal(rc, 2, "an unknown mode is a usage error")
    p = subprocess.run([BENCH, "generate", "--maildir", os.path.join(tmp, "tab"),
                        "--messages", "5"], capture_output=True, text=True)
    rows = p.stdout.splitlines()[1:]
    ends = {len(x.rstrip(" bytes")) for x in rows if x.split()[-1].isdigit()
            or x.endswith(" bytes")}
    r.check(p.returncode == 0 and len(ends) == 1, "the table's numbers line up", p.stdout)


def main():
    t.need_binaries()
    r = t.Reporter("bench")
    if not BENCH or not os.access(BENCH, os.X_OK):
        print("Bail out! MPOPD_BENCH is not set to the built mpopd-bench")
        raise SystemExit(99)
    tmp = tempfile.mkdtemp(prefix="mpopd-bench-it-", dir="/tmp")
    try:
        r.run(test_cli, tmp)
        r.run(test_generate, tmp)
        r.run(test_broken)
        for fmt, mode in (("maildir", "daemon"), ("mbox", "daemon"), ("maildir", "inetd"),
                          ("mbox", "accept")):
            r.run(test_modes, tmp, fmt, mode)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    r.done()


if __name__ == "__main__":
    main()

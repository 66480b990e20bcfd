#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""mpopdctl stats: every figure compared with a model of known records.

The journal: records written in the journal export format, turned into a .journal file by
systemd-journal-remote, read with --file and --directory. Syslog files: the same records as
mpopd's key=value lines in the three time stamp forms, with garbage and other programs'
lines mixed in. A real run: mpopd with [log] target=syslog to the test's datagram socket,
sessions with RETR, DELE, QUIT and without, a failed login and a denied host, the datagrams
written to a file and counted.
"""

import calendar
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

from mpopdtest import (MPOPDCTL, WAIT, Fixture, Pop, Reporter, Server, need_binaries,
                       wait_for)

JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"
T0 = 1800000000  # 2027-01-15T08:00:00Z
BOOT = "0123456789abcdef0123456789abcdef"


def rec(dt, event, user=None, peer=None, comm="mpopd", **fields):
    return {"t": T0 + dt, "event": event, "user": user, "peer": peer, "comm": comm,
            "fields": fields}


# Known records: two sessions of alice (one with QUIT, one without), failed logins and a
# session of bob, a guessed name, carol's logout from an mpopd without the figures,
# denied hosts, and records that must not count (other events, another program).
RECORDS = [
    rec(0, "connect", peer="198.51.100.1:5000"),
    rec(1, "login", "alice", "198.51.100.1:5000", MESSAGES="8", OCTETS="9000"),
    rec(10, "logout", "alice", "198.51.100.1:5000", RETR="3/1234567", TOP="1", DELE="2/2000"),
    rec(100, "login", "alice", "198.51.100.1:5001"),
    rec(110, "logout", "alice", "198.51.100.1:5001", RETR="1/500", TOP="0", DELE="0/0"),
    rec(200, "login-failed", "bob", "198.51.100.2:6000"),
    rec(201, "login-failed", "bob", "198.51.100.2:6001"),
    rec(300, "login", "bob", "198.51.100.2:6002"),
    rec(310, "logout", "bob", "198.51.100.2:6002", RETR="0/0", TOP="2", DELE="0/0"),
    rec(400, "login-failed", "mallory", "203.0.113.9:7000"),
    rec(500, "denied", peer="192.0.2.7:4000"),
    rec(501, "denied", peer="192.0.2.7:4001"),
    rec(502, "denied", peer="[2001:db8::1]:4000"),
    rec(600, "login", "alice", "198.51.100.1:5002", comm="python3"),  # forged
    rec(601, "command", "alice", "198.51.100.1:5002"),
    rec(700, "login", "carol", "198.51.100.3:8000"),
    rec(710, "logout", "carol", "198.51.100.3:8000"),
]


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def model(records, since=None, until=None, user=None):
    """What mpopdctl stats --json must answer for these records."""
    users, hosts = {}, {}
    for r in records:
        if r["comm"] != "mpopd" or r["event"] not in ("login", "logout", "login-failed",
                                                       "denied"):
            continue
        if (since is not None and r["t"] < since) or (until is not None and r["t"] > until):
            continue
        if r["event"] == "denied":
            if user is not None:
                continue
            h = r["peer"].rsplit(":", 1)[0].strip("[]")
            d = hosts.setdefault(h, {"host": h, "connections": 0, "t": []})
            d["connections"] += 1
            d["t"].append(r["t"])
            continue
        if user is not None and r["user"] != user:
            continue
        u = users.setdefault(r["user"], {"user": r["user"], "sessions": 0, "retrieved": 0,
                                         "retrieved_octets": 0, "top": 0, "deleted": 0,
                                         "deleted_octets": 0, "failed_logins": 0, "t": []})
        u["t"].append(r["t"])
        f = r["fields"]
        if r["event"] == "login":
            u["sessions"] += 1
        elif r["event"] == "login-failed":
            u["failed_logins"] += 1
        else:
            for key, n, o in (("RETR", "retrieved", "retrieved_octets"), ("TOP", "top", None),
                              ("DELE", "deleted", "deleted_octets")):
                if key in f:
                    parts = f[key].split("/")
                    u[n] += int(parts[0])
                    if o:
                        u[o] += int(parts[1])
    keys = ("sessions", "retrieved", "retrieved_octets", "top", "deleted", "deleted_octets",
            "failed_logins")
    totals = {"users": len(users), **{k: sum(u[k] for u in users.values()) for k in keys}}
    times = [t for d in list(users.values()) + list(hosts.values()) for t in d["t"]]
    totals["first_seen"] = iso(min(times)) if times else None
    totals["last_seen"] = iso(max(times)) if times else None
    totals["denied_connections"] = sum(h["connections"] for h in hosts.values())
    totals["denied_hosts"] = len(hosts)
    for d in list(users.values()) + list(hosts.values()):
        d["first_seen"], d["last_seen"] = iso(min(d["t"])), iso(max(d["t"]))
        del d["t"]
    return {"users": [users[k] for k in sorted(users)],
            "denied_hosts": [hosts[k] for k in sorted(hosts)], "totals": totals}


def export(records):
    """The records in the journal export format."""
    out = []
    for i, r in enumerate(records):
        fields = {"__REALTIME_TIMESTAMP": str(r["t"] * 1000000),
                  "__MONOTONIC_TIMESTAMP": str((i + 1) * 1000000), "_BOOT_ID": BOOT,
                  "_COMM": r["comm"], "SYSLOG_IDENTIFIER": "mpopd", "PRIORITY": "6",
                  "MESSAGE": f"{r['event']} record", "MPOPD_EVENT": r["event"]}
        if r["user"]:
            fields["MPOPD_USER"] = r["user"]
        if r["peer"]:
            fields["MPOPD_PEER"] = r["peer"]
        fields.update({f"MPOPD_{k}": v for k, v in r["fields"].items()})
        out.append("".join(f"{k}={v}\n" for k, v in fields.items()) + "\n")
    # a record of another program in between
    out.append(f"__REALTIME_TIMESTAMP={(T0 + 5) * 1000000}\n__MONOTONIC_TIMESTAMP=5\n"
               f"_BOOT_ID={BOOT}\n_COMM=cron\nMESSAGE=unrelated\n\n")
    return "".join(out).encode()


def make_journal(d, records):
    path = os.path.join(d, "mpopd.journal")
    r = subprocess.run([JOURNAL_REMOTE, "-o", path, "-"], input=export(records),
                       capture_output=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"systemd-journal-remote: {r.stderr.decode()}")
    return path


def stats(*args):
    r = subprocess.run([MPOPDCTL, "stats", *args], capture_output=True, timeout=60)
    return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")


def stats_json(t, what, *args):
    rc, out, err = stats(*args, "--json")
    t.equal(rc, 0, f"{what}: exit 0 ({err.strip()})")
    try:
        return json.loads(out)
    except ValueError:
        t.check(False, f"{what}: the output is JSON", out)
        return {}


def compare(t, what, got, want):
    """Every figure, each reported on its own so a failure says which."""
    got = dict(got)
    got.pop("input", None)
    t.equal([u.get("user") for u in got.get("users", [])], [u["user"] for u in want["users"]],
            f"{what}: the users")
    for gu, wu in zip(got.get("users", []), want["users"]):
        t.equal(gu, wu, f"{what}: every figure of {wu['user']}")
    t.equal(got.get("denied_hosts"), want["denied_hosts"], f"{what}: denied hosts")
    t.equal(got.get("totals"), want["totals"], f"{what}: totals")


def test_journal(t):
    """A journal file of known records: every figure, the filters, --directory, the table."""
    d = tempfile.mkdtemp(prefix="mpopd-stats-")
    try:
        path = make_journal(d, RECORDS)
        want = model(RECORDS)
        t.equal(want["totals"]["sessions"], 4, "the model: four sessions (the forged one not)")
        got = stats_json(t, "journal", "--file", path)
        compare(t, "journal --file", got, want)
        t.equal(got.get("input"), {"source": "journal", "counted": 14},
                "journal: 14 records counted (not other events, not the forged one)")
        compare(t, "journal --user alice", stats_json(t, "user", "--file", path, "--user",
                                                       "alice"), model(RECORDS, user="alice"))
        compare(t, "journal --user nobody", stats_json(t, "nobody", "--file", path, "--user",
                                                        "nobody"), model([]))
        compare(t, "journal --since/--until @",
                stats_json(t, "since", "--file", path, "--since", f"@{T0 + 100}",
                           "--until", f"@{T0 + 310}"),
                model(RECORDS, since=T0 + 100, until=T0 + 310))
        compare(t, "journal --since ISO 8601 with a zone",
                stats_json(t, "since iso", "--file", path, "--since", "2027-01-15T09:05:00+01:00"),
                model(RECORDS, since=T0 + 300))
        compare(t, "journal --until, local time (TZ=UTC)",
                json.loads(subprocess.run([MPOPDCTL, "stats", "--file", path, "--json",
                                           "--until", "2027-01-15 08:01:40"],
                                          capture_output=True, env={**os.environ, "TZ": "UTC"},
                                          timeout=60).stdout or b"{}"),
                model(RECORDS, until=T0 + 100))
        compare(t, "journal --since and --user",
                stats_json(t, "since user", "--file", path, "--user", "bob", "--since",
                           f"@{T0 + 250}"), model(RECORDS, since=T0 + 250, user="bob"))
        sub = os.path.join(d, "dir")
        os.mkdir(sub)
        shutil.copy(path, sub)
        compare(t, "journal --directory", stats_json(t, "directory", "--directory", sub), want)

        # the table: aligned columns, exact numbers
        rc, out, err = stats("--file", path)
        env_out = subprocess.run([MPOPDCTL, "stats", "--file", path], capture_output=True,
                                 env={**os.environ, "TZ": "UTC"}, timeout=60).stdout.decode()
        t.equal(rc, 0, f"table: exit 0 ({err.strip()})")
        lines = env_out.splitlines()
        users = lines[:lines.index("")] if "" in lines else lines
        t.check(users and users[0].split() == ["USER", "SESSIONS", "RETRIEVED", "OCTETS",
                                               "DELETED", "FAILED", "FIRST", "SEEN", "LAST",
                                               "SEEN"], "table: the header", env_out)
        col = users[0].find("FIRST SEEN") if users else -1
        t.check(col > 0 and all(line[col:col + 4] == "2027" for line in users[1:]),
                "table: every row's first seen starts under its header (aligned)", env_out)
        col = users[0].find("OCTETS") + len("OCTETS") if users else -1
        t.check(all(line[col - 1].isdigit() and line[col] == " " for line in users[1:]),
                "table: the octets right-aligned under their header", env_out)
        alice = [line for line in users if line.startswith("alice ")]
        t.check(alice and alice[0].split()[:6] == ["alice", "2", "4", "1235067", "2", "0"]
                and "2027-01-15 08:00:01" in alice[0] and "2027-01-15 08:01:50" in alice[0],
                "table: alice's figures, exact numbers, first and last seen (TZ=UTC)", env_out)
        total = [line for line in users if line.startswith("total (4 users)")]
        t.check(total and total[0].split()[3:9] == ["4", "4", "1235067", "2", "3",
                                                    "2027-01-15"],
                "table: the total row", env_out)
        t.check("1,235,067" not in env_out and "1,567,234" not in env_out,
                "table: no thousands separators")
        t.check(any(line.split()[:2] == ["192.0.2.7", "2"] for line in lines)
                and any(line.split()[:2] == ["2001:db8::1", "1"] for line in lines)
                and any(line.startswith("total (2 hosts)") and line.split()[3] == "3"
                        for line in lines),
                "table: the denied hosts without ports and their total", env_out)
        rc, out, _ = stats("--file", path, "--user", "alice")
        t.check(rc == 0 and "DENIED HOST" not in out, "table --user: no denied hosts", out)

        # errors
        rc, _, err = stats("--file", os.path.join(d, "missing.journal"))
        t.check(rc == 1 and "cannot open" in err, "a missing journal file: exit 1", err)
        exp = os.path.join(d, "mpopd.export")
        with open(exp, "wb") as f:
            f.write(export(RECORDS))
        rc, _, err = stats("--file", exp)
        t.check(rc == 1 and "systemd-journal-remote" in err,
                "export format given as a journal file: exit 1, how to convert it", err)
        for bad in (("--since", "yesterday-ish"), ("--until", "2027-13-01"),
                    ("--file", path, "--syslog", path), ("--file", path, "--directory", d),
                    ("--no-such-option",), ("extra",)):
            rc, _, err = stats(*bad)
            t.check(rc == 2 and "Usage: mpopdctl stats" in err, f"{bad}: exit 2 with usage",
                    err)
        rc, out, _ = stats("--help")
        t.check(rc == 0 and "--syslog FILE" in out, "--help: exit 0, the options", out)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def kv(key, value):
    if value and all(0x20 < ord(c) < 0x7f and c not in '"\\' for c in value):
        return f"{key}={value}"
    esc = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'{key}="{esc}"'


def syslog_line(r, form):
    """r as mpopd writes it to syslog, as a syslog daemon stores it."""
    pairs = [kv("session", "s1")]
    if r["peer"]:
        pairs.append(kv("peer", r["peer"]))
    if r["user"]:
        pairs.append(kv("user", r["user"]))
    pairs += [kv("event", r["event"]), kv("msg", f"{r['event']} record, \"quoted\"")]
    pairs += [kv(k.lower(), v) for k, v in r["fields"].items()]
    tag = "mpopd[4242]" if r["comm"] == "mpopd" else "logger[1]"
    lt = time.localtime(r["t"])
    bsd = f"{time.strftime('%b', lt)} {lt.tm_mday:2d} {time.strftime('%H:%M:%S', lt)}"
    stamp = {"datagram": f"<22>{bsd}", "bsd": f"{bsd} mail",
             "rfc3339": time.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00 mail",
                                      time.gmtime(r["t"]))}[form]
    return f"{stamp} {tag}: {' '.join(pairs)}"


GARBAGE = ["", "garbage", "Dec 99 00:00:00 mpopd[1]: event=login user=x",
           "Jan  1 00:00:00 mail mpopd[1]: event=login user=\"unterminated",
           "Jan  1 00:00:00 mail mpopd[1]: event=login user=a user=b",
           "\x00\x01\x02 binary", "x" * 70000]
OTHER = ["Jan  1 00:00:00 mail sshd[1]: Accepted publickey for root",
         "2027-01-15T08:00:00+00:00 mail postfix/smtpd[2]: connect from x"]


def test_syslog(t):
    """The same records as syslog lines in three forms, garbage ignored and counted."""
    # RFC 3164 stamps carry no year: records of the last hours, as a live log has them
    base = int(time.time()) - 7200
    records = [dict(r, t=r["t"] - T0 + base) for r in RECORDS]
    want = model(records)
    d = tempfile.mkdtemp(prefix="mpopd-stats-")
    try:
        files = []
        for form in ("datagram", "bsd", "rfc3339"):
            path = os.path.join(d, f"{form}.log")
            lines = [syslog_line(r, form) for r in records]
            lines[3:3] = GARBAGE
            lines[6:6] = OTHER
            lines.insert(9, syslog_line(rec(50, "reload"), form).replace(" event=reload", ""))
            with open(path, "wb") as f:
                f.write("\n".join(lines).encode("latin-1") + b"\n")
            files.append(path)
            got = stats_json(t, form, "--syslog", path)
            compare(t, f"syslog {form}", got, want)
            # the forged one is another program's line here (tag logger)
            t.equal(got.get("input"), {"source": "syslog", "lines": len(lines),
                                       "records": len(records), "other": len(OTHER) + 1,
                                       "malformed": len(GARBAGE), "counted": 14},
                    f"syslog {form}: lines, records, other programs, malformed lines counted")
        got = stats_json(t, "three files", *[a for p in files for a in ("--syslog", p)])
        t.equal(got.get("totals", {}).get("sessions"), 12, "three --syslog files add up")
        compare(t, "syslog --user bob --since",
                stats_json(t, "syslog user", "--syslog", files[0], "--user", "bob",
                           "--since", f"@{base + 250}"),
                model(records, since=base + 250, user="bob"))
        r = subprocess.run([MPOPDCTL, "stats", "--syslog", "-", "--json"],
                           input=open(files[1], "rb").read(), capture_output=True, timeout=60)
        compare(t, "syslog from stdin", json.loads(r.stdout or b"{}"), want)
        rc, out, _ = stats("--syslog", files[2])
        t.check(rc == 0 and f"{len(GARBAGE)} malformed lines ignored" in out,
                "table: the ignored lines are reported", out[-400:])
        rc, _, err = stats("--syslog", os.path.join(d, "missing.log"))
        t.check(rc == 1 and "cannot open" in err, "a missing syslog file: exit 1", err)
    finally:
        shutil.rmtree(d, ignore_errors=True)


class Sink:
    """The test's syslog: an AF_UNIX datagram socket, every datagram kept."""

    def __init__(self, d):
        self.path = os.path.join(d, "log.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o666)  # the session process runs as the mailbox owner
        self.sock.setblocking(False)
        self.data = []

    def drain(self):
        while True:
            try:
                self.data.append(self.sock.recv(65536).decode("utf-8", "replace"))
            except BlockingIOError:
                return self.data

    def count(self, text):
        return sum(text in d for d in self.drain())


def sizes(p):
    r = p.cmd("LIST")
    return {int(n): int(s) for n, s in (line.split() for line in p.multi())} \
        if r.startswith(b"+OK") else {}


def test_real_session(t):
    """mpopd logging to syslog: sessions, deletions, a failed login, a denied host."""
    with Fixture() as fx:
        sink = Sink(fx.dir)
        rules = os.path.join(fx.dir, "hosts.allow-deny")
        with open(rules, "w") as f:
            f.write("DENY 127.0.0.2\n")
        fx.write_config({"log.target": "syslog", "log.syslog_socket": sink.path,
                         "log.level": "info", "access.hosts_allow_deny": rules})
        with Server(fx, "inetd") as srv:
            p = Pop(srv.port)
            p.login()
            size = sizes(p)
            ok = [p.cmd("RETR 1").startswith(b"+OK") and p.multi() is not None,
                  p.cmd("RETR 2").startswith(b"+OK") and p.multi() is not None,
                  p.cmd("DELE 1").startswith(b"+OK"), p.cmd("QUIT").startswith(b"+OK")]
            t.check(all(ok) and len(size) >= 3, "session 1: RETR 1, RETR 2, DELE 1, QUIT", ok)
            p.close()
            # without QUIT: what was sent counts, the DELE does not
            p = Pop(srv.port)
            p.login()
            size2 = sizes(p)  # message 1 is gone: the numbers moved
            ok = [p.cmd("RETR 2").startswith(b"+OK") and p.multi() is not None,
                  p.cmd("DELE 2").startswith(b"+OK")]
            p.close()
            p = Pop(srv.port)
            _, r = p.login("bob", "wrong")
            t.check(r.startswith(b"-ERR"), "bob: wrong password refused", r)
            p.close()
            p = Pop(srv.port, source="127.0.0.2")
            t.check(p.greeting.startswith(b"-ERR"), "127.0.0.2 is denied", p.greeting)
            p.close()
            t.check(wait_for(lambda: sink.count("event=logout") >= 2
                             and sink.count("event=login-failed") >= 1
                             and sink.count("event=denied") >= 1),
                    "the records arrive", "\n".join(sink.drain()))
        path = os.path.join(fx.dir, "mpopd.log")
        with open(path, "w") as f:
            f.write("".join(d.rstrip("\n") + "\n" for d in sink.drain()))
        got = stats_json(t, "real run", "--syslog", path)
        users = {u["user"]: u for u in got.get("users", [])}
        a, b = users.get("alice", {}), users.get("bob", {})
        t.equal({k: a.get(k) for k in ("sessions", "retrieved", "retrieved_octets", "deleted",
                                        "deleted_octets", "failed_logins")},
                {"sessions": 2, "retrieved": 3, "retrieved_octets": size.get(1, 0) + size.get(2, 0) + size2.get(2, 0),
                 "deleted": 1, "deleted_octets": size.get(1, 0), "failed_logins": 0},
                "real run: alice's sessions, retrievals and deletions (none without QUIT)")
        t.equal((b.get("sessions"), b.get("failed_logins")), (0, 1), "real run: bob failed once")
        t.equal([(h["host"], h["connections"]) for h in got.get("denied_hosts", [])],
                [("127.0.0.2", 1)], "real run: the denied host, without its port")
        inp = got.get("input", {})
        t.check(inp.get("malformed") == 0 and inp.get("other") == 0
                and inp.get("records") == inp.get("lines"),
                "real run: every datagram mpopd sent parses", "\n".join(sink.data))
        now = time.time()
        first = a.get("first_seen") or "1970-01-01T00:00:00Z"
        ft = calendar.timegm(time.strptime(first, "%Y-%m-%dT%H:%M:%SZ"))
        t.check(abs(ft - now) < 300, "real run: first seen is now (local time stamps read "
                "back as UTC)", first)
        sink.sock.close()


def main():
    need_binaries()
    t = Reporter("stats")
    if not os.path.exists(JOURNAL_REMOTE):
        t.check(False, f"{JOURNAL_REMOTE} is installed (Debian package systemd-journal-remote)")
    else:
        t.run(test_journal)
    t.run(test_syslog)
    t.run(test_real_session)
    t.done()


if __name__ == "__main__":
    main()

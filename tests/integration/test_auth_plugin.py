#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The plugin auth backend through a running mpopd (root with privsep, or the current user):
tests/plugin-test.c answers from a directory of per-user files; [auth] default is
plugin;userlist, so a user the program does not know (exit 2) falls through to the user
list and a rejected one (exit 1) does not. The program sees the documented environment,
and --check-config refuses a program in a world-writable directory."""

import os
import re
import shutil
import subprocess

from mpopdtest import (MPOPD, PASSWORD, TEST_GID, TEST_UID, WAIT, Fixture, Pop, Reporter,
                       Server, need_binaries, wait_for)

BUILDDIR = os.environ.get("BUILDDIR", "")
PLUGIN = os.path.join(BUILDDIR, "tests", "plugin-test")


class PluginFixture(Fixture):
    """A Fixture whose config keeps the plugin settings when a Server adds its own."""

    plugin = {}

    def write_config(self, extra):
        super().write_config({**self.plugin, **extra})


def make_fixture():
    fx = PluginFixture()
    answers = os.path.join(fx.dir, "answers")
    os.mkdir(answers)
    files = {
        "alice": f"{PASSWORD}\nuid={TEST_UID}\ngid={TEST_GID}\n",
        # a login name the program maps to the canonical "alice"
        "Alice.Smith": f"{PASSWORD}\nuser=alice\nuid={TEST_UID}\ngid={TEST_GID}\n",
        # an explicit mailbox: bob's
        "erin": f"{PASSWORD}\nuid={TEST_UID}\ngid={TEST_GID}\nmailbox={fx.boxes['bob']}\n",
        # carol's user list password is PASSWORD, but the program knows her with another
        "carol": "other-password\nuid=4242\n",
    }
    for name, text in files.items():
        with open(os.path.join(answers, name), "w") as f:
            f.write(text)
    report = os.path.join(fx.dir, "report")
    fx.plugin = {"auth.default": "plugin;userlist", "auth.plugin": PLUGIN,
                 "auth.plugin_args": f"{report};{fx.dir}/pid;{answers}"}
    fx.write_config({})
    return fx, report


def stat_count(p):
    r = p.cmd("STAT")
    m = re.match(rb"\+OK (\d+) \d+$", r)
    return int(m.group(1)) if m else r


def login(port, user, password):
    p = Pop(port)
    p.cmd(f"USER {user}")
    r = p.cmd(f"PASS {password}")
    return p, r


def logins(t, mode):
    fx, report = make_fixture()
    with fx, Server(fx, mode) as srv:
        n_alice = len(fx.expect("alice"))
        for user, password, want, count, what in (
                ("alice", PASSWORD, b"+OK", n_alice, "accepted by the plugin"),
                ("Alice.Smith", PASSWORD, b"+OK", n_alice, "canonical name from the plugin"),
                ("erin", PASSWORD, b"+OK", len(fx.expect("bob")), "mailbox from the plugin"),
                ("bob", PASSWORD, b"+OK", len(fx.expect("bob")),
                 "unknown to the plugin (exit 2): the user list logs in"),
                ("alice", "wrong-password", b"-ERR [AUTH]", None, "rejected (exit 1)"),
                ("carol", PASSWORD, b"-ERR [AUTH]", None,
                 "rejected by the plugin: the user list is not asked"),
                ("temp", PASSWORD, b"-ERR [SYS/TEMP]", None, "temporary failure (exit 111)"),
                ("uid0", PASSWORD, b"-ERR [SYS/TEMP]", None, "uid 0 in the answer"),
                ("garbage", PASSWORD, b"-ERR [SYS/TEMP]", None, "garbage on stdout"),
                ("nobody-at-all", PASSWORD, b"-ERR [AUTH]", None, "unknown to both")):
            p, r = login(srv.port, user, password)
            ok = t.check(r.startswith(want), f"{mode}: {user}: {what}", r)
            if ok and count is not None:
                t.equal(stat_count(p), count, f"{mode}: {user}: STAT counts the right mailbox")
            p.cmd("QUIT")
            p.close()
        with open(report + ".more") as f:
            seen = f.read()
        env = [line[4:] for line in seen.splitlines() if line.startswith("env=")]
        t.equal([e.split("=", 1)[0] for e in env],
                ["PATH", "MPOPD_PEER", "MPOPD_LOCAL", "MPOPD_SESSION"],
                f"{mode}: the program's environment is the documented one")
        t.check("MPOPD_PEER=127.0.0.1" in env and "MPOPD_LOCAL=127.0.0.1" in env
                and any(e.startswith("MPOPD_SESSION=") and len(e) > 14 for e in env),
                f"{mode}: MPOPD_PEER, MPOPD_LOCAL and MPOPD_SESSION name this connection", env)
        with open(report) as f:
            t.equal(f.read(), "fds=0 1 2 3 \n", f"{mode}: the program gets fds 0-3 only")
        t.check("umask=077" in seen and "own_session=1" in seen and "tty=0" in seen,
                f"{mode}: umask 077, a session of its own, no terminal", seen)
        wait_for(lambda: "never as root" in fx.stderr_text(), timeout=WAIT)
        text = fx.stderr_text()
        t.check("plugin: answer names uid 0: never as root" in text
                and "plugin answered garbage" in text and "plugin: rejected" in text,
                f"{mode}: the log says why each login failed", text[-3000:])
        t.check(PASSWORD not in text and "other-password" not in text,
                f"{mode}: no password in the log")


def check_config(t):
    fx, _ = make_fixture()
    with fx:
        r = subprocess.run([MPOPD, "--check-config", "-q", "-c", fx.conf],
                           capture_output=True, timeout=WAIT)
        t.equal(r.returncode, 0, "--check-config accepts the program in the build tree")
        copy = os.path.join(fx.dir, "plugin")
        shutil.copy(PLUGIN, copy)
        fx.write_config({"auth.plugin": copy, "auth.plugin_args": None})
        r = subprocess.run([MPOPD, "--check-config", "-q", "-c", fx.conf],
                           capture_output=True, timeout=WAIT)
        err = r.stderr.decode("utf-8", "replace")
        t.check(r.returncode != 0 and "[auth] plugin:" in err
                and "is writable by group or others" in err,
                "--check-config refuses a program under /tmp (writable by others)", err)


def main():
    need_binaries()
    t = Reporter("auth-plugin")
    if not os.access(PLUGIN, os.X_OK):
        print(f"Bail out! {PLUGIN} is not built")
        raise SystemExit(99)
    for mode in ("inetd", "daemon"):
        t.run(logins, mode)
    t.run(check_config)
    t.done()


if __name__ == "__main__":
    main()

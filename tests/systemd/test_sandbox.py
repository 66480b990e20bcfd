#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The shipped sandbox against the mailboxes it must serve, under a real systemd 252.

In a throw-away container, a system user dan (passwd, group and shadow entries, PAM with
pam_unix as in test_pam.py) whose mail is where admins keep it: an mbox in his home
directory (/home/dan dan:dan 0700, the mbox dan:dan 0600, [mailbox] location = %h/mbox), an
mbox in Debian's root:mail 2775 /var/mail (dan:mail 0660), and a Maildir in his home. With
the shipped units (mpopd.socket + mpopd@.service, then mpopd-daemon.socket + mpopd.service:
PrivateNetwork=yes, RestrictAddressFamilies=AF_UNIX, ProtectHome=read-only with /home in
ReadWritePaths=, no CAP_CHOWN or CAP_FOWNER, mail_privileged_group = mail by default) each
session deletes a message at UPDATE: the message is gone, the mailbox keeps its owner,
group and mode, and no dotlock or temporary file is left next to it. An mbox in a home
directory was killed by the units' seccomp filter at UPDATE (the session had taken group
mail for the new file and then needed fchown()). Last, the [auth] plugin program (execve
under the unit's filter) logs in, systemd-analyze security scores the loaded units, and
the drop-in conf/systemd/network.conf gives the instances the network back.
"""

import os
import re

from mpopdtest import MESSAGES, PASSWORD, Reporter, mbox_entry, uidl_of, wait_for
from nspawn import booted, mpopd_failures, skip_unless_possible, unit_file_warnings
from test_pam import install_pam

PORT = 110
DAN_UID = 4300
MAIL_GID = 8  # Debian's mail group (systemd's sysusers basic.conf)
HOME = "/home/dan"
N = len(MESSAGES)
MBOX = b"".join(mbox_entry(raw) for _, raw in sorted(MESSAGES, key=lambda m: uidl_of(m[0])))
# The goals for the shipped units (systemd-analyze security, lower is better).
GOALS = {"mpopd@.service": 1.5, "mpopd.service": 1.5}
SRCDIR = os.environ.get("SRCDIR", "")


def add_dan(s):
    """dan (uid/gid DAN_UID, home /home/dan 0700) in passwd, group and shadow."""
    ct = s.ct
    ct.sh(["sh", "-c", 'printf "%s\\n" "$1" >> /etc/passwd && printf "%s\\n" "$2" >> /etc/group'
           ' && printf "%s\\n" "$3" >> /etc/shadow && install -d -o dan -g dan -m 0700 "$4"',
           "sh", f"dan:x:{DAN_UID}:{DAN_UID}:home mail:{HOME}:/usr/sbin/nologin",
           f"dan:x:{DAN_UID}:", f"dan:{s.fx.hash}:19000:0:99999:7:::", HOME])


def put(ct, path, data, owner, mode):
    ct.write(path, data, mode=mode)
    ct.sh(["chown", owner, path])


def listing(ct, directory):
    """{name: "user:group mode"} of a directory's entries, as root in the container."""
    r = ct.sh(["sh", "-c", 'cd "$1" && for f in * .[!.]*; do [ -e "$f" ] && '
               'stat -c "%n %U:%G %a" "$f"; done; true', "sh", directory], check=False)
    out = {}
    for line in r.stdout.decode().splitlines():
        name, owner, mode = line.rsplit(" ", 2)
        out[name] = f"{owner} {mode}"
    return out


def mbox_count(ct, path):
    r = ct.sh(["grep", "-c", "^From ", path], check=False)
    return int(r.stdout.decode().strip() or 0)


def update(t, s, tag, config):
    """A session as dan that fetches everything and deletes message 1, then a second
    session that sees one message less. Returns the first session's answer."""
    s.set_config(config)
    res = s.ct.pop(PORT, [{"op": "fetch", "dele": [1]}, {"op": "fetch"}], user="dan")
    res += [{}] * (2 - len(res))
    if any("error" in r for r in res):
        errs = [e.get("MESSAGE") for e in s.ct.journal()[0]
                if e.get("SYSLOG_IDENTIFIER") == "mpopd" and int(e.get("PRIORITY", 6)) <= 4]
        print(f"# {tag}: mpopd's errors in the journal: {errs[-5:]}", flush=True)
    t.check("error" not in res[0] and len(res[0].get("messages", [])) == N
            and res[0].get("quit", "").startswith("+OK"),
            f"{tag}: dan fetches {N} messages, deletes the first, QUIT +OK",
            res[0].get("error") or res[0].get("quit"))
    t.check("error" not in res[1] and len(res[1].get("messages", [])) == N - 1,
            f"{tag}: the next session has {N - 1} messages (UPDATE deleted one)",
            res[1].get("error") or len(res[1].get("messages", [])))
    return res


def home_mbox(t, s, tag):
    ct = s.ct
    put(ct, f"{HOME}/mbox", MBOX, "dan:dan", "0600")
    update(t, s, tag, {"mailbox.format": "mbox", "mailbox.location": "%h/mbox"})
    t.equal(mbox_count(ct, f"{HOME}/mbox"), N - 1, f"{tag}: {N - 1} messages in the file")
    left = {k: v for k, v in listing(ct, HOME).items() if k != "Maildir"}
    t.equal(left, {"mbox": "dan:dan 600", ".mbox.mpopd-index": "dan:dan 600"},
            f"{tag}: the mbox still dan:dan 0600, its index dan's own, no .lock or "
            "temporary file beside it")


def spool_mbox(t, s, tag):
    ct = s.ct
    ct.sh(["install", "-d", "-o", "root", "-g", "mail", "-m", "2775", "/var/mail"])
    put(ct, "/var/mail/dan", MBOX, "dan:mail", "0660")
    update(t, s, tag, {"mailbox.format": "mbox", "mailbox.location": "%s/%u"})
    t.equal(mbox_count(ct, "/var/mail/dan"), N - 1, f"{tag}: {N - 1} messages in the file")
    t.equal(listing(ct, "/var/mail"), {"dan": "dan:mail 660", ".dan.mpopd-index": "dan:mail 600"},
            f"{tag}: /var/mail/dan still dan:mail 0660, its index dan's own, nothing else "
            "in /var/mail")


def home_maildir(t, s):
    ct = s.ct
    md = f"{HOME}/Maildir"
    ct.sh(["install", "-d", "-o", "dan", "-g", "dan", "-m", "0700", md, f"{md}/cur",
           f"{md}/new", f"{md}/tmp"])
    for name, raw in MESSAGES:
        put(ct, f"{md}/{name}", raw, "dan:dan", "0600")  # name: cur/... or new/...
    update(t, s, "Maildir in /home/dan", {"mailbox.format": "maildir",
                                          "mailbox.location": "%h/Maildir"})
    t.equal(len(listing(ct, f"{md}/cur")) + len(listing(ct, f"{md}/new")), N - 1,
            f"Maildir in /home/dan: {N - 1} files left")


def plugin(t, s):
    """[auth] plugin: tests/plugin-test (fork, execve, as root, the unit's filter) says
    dan's password is right."""
    ct = s.ct
    answers = "/run/mpopd-test-answers"
    ct.write(f"{answers}/dan", f"{PASSWORD}\nuid={DAN_UID}\ngid={DAN_UID}\n")
    prog = os.path.join(os.path.dirname(s.mpopdctl), "..", "tests", "plugin-test")
    put(ct, f"{HOME}/mbox", MBOX, "dan:dan", "0600")
    s.set_config({"mailbox.format": "mbox", "mailbox.location": f"{HOME}/mbox",
                  "auth.default": "plugin", "auth.plugin": os.path.normpath(prog),
                  "auth.plugin_args": f"{answers}/report;{answers}/pid;{answers}"})
    res = ct.pop(PORT, [{"op": "fetch"}], user="dan")[0]
    t.check("error" not in res and len(res.get("messages", [])) == N,
            "the [auth] plugin program runs under the unit (execve) and logs dan in",
            res.get("error"))


def scores(t, s):
    """systemd-analyze security on the units as loaded by this systemd."""
    ct = s.ct
    for unit, goal in (("mpopd@x.service", GOALS["mpopd@.service"]),
                       ("mpopd.service", GOALS["mpopd.service"])):
        r = ct.sh(["systemd-analyze", "security", "--no-pager", unit], check=False, timeout=60)
        m = re.search(r"Overall exposure level for \S+: (\d+\.\d)", r.stdout.decode())
        score = float(m.group(1)) if m else 99.0
        t.check(score <= goal, f"systemd-analyze security {unit} (loaded): {score} <= {goal}",
                r.stdout.decode()[-300:] if not m else None)


def network_dropin(t, s):
    """conf/systemd/network.conf as an admin installs it: the instances get the network
    back and still serve the home mbox."""
    ct = s.ct
    with open(os.path.join(SRCDIR, "conf", "systemd", "network.conf")) as f:
        ct.write("/etc/systemd/system/mpopd@.service.d/network.conf", f.read())
    ct.systemctl("daemon-reload")
    families = ct.prop("mpopd@x.service", "RestrictAddressFamilies").split()
    t.check(ct.prop("mpopd@x.service", "PrivateNetwork") == "no"
            and {"AF_INET", "AF_INET6"} <= set(families),
            "network.conf: PrivateNetwork=no, AF_INET and AF_INET6 allowed", families)
    s.set_config({"auth.default": "pam"})
    home_mbox(t, s, "mbox in /home/dan (mpopd@.service + network.conf)")
    ct.sh(["rm", "-r", "/etc/systemd/system/mpopd@.service.d"])
    ct.systemctl("daemon-reload")


def scenario(t):
    with booted("sandbox") as s:
        ct = s.ct
        print(f"# container up ({ct.boot_state}) after {ct.boot_seconds:.1f} s", flush=True)
        add_dan(s)
        install_pam(s)
        s.set_config({"auth.default": "pam"})
        s.install_units(["mpopd.socket", "mpopd@.service", "mpopd-daemon.socket",
                         "mpopd.service"])
        r = ct.systemctl("enable", "--now", "mpopd.socket", check=False)
        t.check(r.returncode == 0, "systemctl enable --now mpopd.socket", r.stderr)
        t.equal(ct.prop("mpopd@x.service", "PrivateNetwork"), "yes",
                "mpopd@.service has a network of its own (PrivateNetwork=yes)")
        home_mbox(t, s, "mbox in /home/dan (mpopd@.service)")
        spool_mbox(t, s, "mbox in /var/mail (mpopd@.service)")
        home_maildir(t, s)
        plugin(t, s)
        scores(t, s)
        network_dropin(t, s)
        ct.systemctl("disable", "--now", "mpopd.socket", check=False)
        s.set_config({"auth.default": "pam"})
        r = ct.systemctl("start", "mpopd.service", check=False)
        t.check(r.returncode == 0 and ct.prop("mpopd.service", "ActiveState") == "active",
                "mpopd.service (Accept=no) runs with PrivateNetwork=yes", r.stderr)
        home_mbox(t, s, "mbox in /home/dan (mpopd.service)")
        entries = []

        def settled():
            nonlocal entries
            entries = ct.journal()[0]
            return sum(e.get("MPOPD_EVENT") == "logout" for e in entries) >= 11

        wait_for(settled, timeout=10, step=0.3)
        t.check(not mpopd_failures(entries),
                "journal: no mpopd unit failed or was killed by its seccomp filter",
                mpopd_failures(entries))
        t.check(not unit_file_warnings(entries), "journal: no complaint about the unit files",
                unit_file_warnings(entries))


def main():
    skip_unless_possible()
    t = Reporter("systemd-sandbox")
    t.run(scenario)
    t.done()


if __name__ == "__main__":
    main()

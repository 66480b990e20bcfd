#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""mbox in a Debian-style spool: root:mail 2775 /var/mail, mailboxes user:mail 0660.

The session runs as the user (not in group mail). mail_privileged_group lets it create
the dotlock and replace the mbox at UPDATE; without it the spool refuses the lock and the
client is told so, with nothing lost.
"""

import grp
import os
import shutil
import stat
import subprocess
import tempfile

import mpopdtest as t

MSG = [
    b"From a@example.org Mon Jan  1 00:00:00 2024\nSubject: one\n\nfirst\n\n",
    b"From b@example.org Mon Jan  1 00:00:01 2024\nSubject: two\n\nsecond\n\n",
]


def setup(priv_group):
    top = tempfile.mkdtemp(prefix="mpopd-spool-")
    os.chmod(top, 0o755)
    mail_gid = grp.getgrnam("mail").gr_gid
    spool = os.path.join(top, "spool")
    os.mkdir(spool)
    os.chown(spool, 0, mail_gid)
    os.chmod(spool, 0o2775)
    mbox = os.path.join(spool, "alice")
    with open(mbox, "wb") as f:
        f.write(b"".join(MSG))
    os.chown(mbox, t.TEST_UID, mail_gid)
    os.chmod(mbox, 0o660)
    users = os.path.join(top, "users")
    with open(users, "w") as f:
        f.write(f"alice:{t.make_hash(t.PASSWORD)}:{t.TEST_UID}:{t.TEST_GID}\n")
    conf = os.path.join(top, "mpopd.conf")
    with open(conf, "w") as f:
        f.write("[server]\nlogin_chroot=\n[auth]\nuserlist=" + users + "\n"
                "penalty_state=" + os.path.join(top, "penalty", "state") + "\n"
                "[mailbox]\nformat=mbox\nmail_spool_dir=" + spool + "\n"
                "lock_retries=0\nmail_privileged_group=" + priv_group + "\n")
    return top, spool, mbox, conf


def session(conf, data):
    r = subprocess.run([t.MPOPD, "--inetd", "-c", conf], input=data, capture_output=True,
                       timeout=t.WAIT)
    return r.stdout.decode("latin-1"), r.stderr.decode("utf-8", "replace")


def test_privileged_group(rep):
    top, spool, mbox, conf = setup("mail")
    try:
        out, err = session(conf, f"USER alice\r\nPASS {t.PASSWORD}\r\nSTAT\r\nDELE 1\r\n"
                           "QUIT\r\n".encode())
        rep.check("+OK 2 " in out, "login and STAT in a root:mail 2775 spool", out + err)
        rep.check("+OK mpopd signing off (1 messages deleted)." in out,
                  "UPDATE replaced the mbox", out + err)
        with open(mbox, "rb") as f:
            rep.equal(f.read(), MSG[1], "exactly the undeleted message is left")
        st = os.stat(mbox)
        rep.equal((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)),
                  (t.TEST_UID, grp.getgrnam("mail").gr_gid, 0o660),
                  "owner, group and mode preserved")
        rep.equal(sorted(os.listdir(spool)), ["alice"], "no lock or temporary file left")
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_without_group(rep):
    top, spool, mbox, conf = setup("")
    try:
        out, err = session(conf, f"USER alice\r\nPASS {t.PASSWORD}\r\nQUIT\r\n".encode())
        rep.check("-ERR [SYS/PERM]" in out or "-ERR [SYS/TEMP]" in out,
                  "without the group the spool refuses the dotlock: -ERR", out + err)
        with open(mbox, "rb") as f:
            rep.equal(f.read(), b"".join(MSG), "mailbox untouched")
    finally:
        shutil.rmtree(top, ignore_errors=True)


def main():
    rep = t.Reporter("mbox-spool")
    t.need_binaries()
    if not t.IS_ROOT:
        rep.skip("Debian-style spool", "needs root to make a root:mail spool")
        rep.done()
    try:
        grp.getgrnam("mail")
    except KeyError:
        rep.skip("Debian-style spool", "no group mail on this host")
        rep.done()
    rep.run(test_privileged_group)
    rep.run(test_without_group)
    rep.done()


if __name__ == "__main__":
    main()

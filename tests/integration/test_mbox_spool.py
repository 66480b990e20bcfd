#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""mbox in a Debian-style spool: root:mail 2775 /var/mail, mailboxes user:mail 0660.

The session runs as the user (not in group mail). mail_privileged_group lets it create
the dotlock and replace the mbox at UPDATE; without it the spool refuses the lock and the
client is told so, with nothing lost. The group is taken only where the directory needs
it: an mbox in a home directory (user:user 0600) is replaced without any chown call, which
mpopd runs under a seccomp filter that kills the process on one (the units' filter did
that to such an UPDATE, leaving the dotlock and a temporary file behind); in a root:mail
0775 spool without the setgid bit the new file gets the user's group back with fchown().
"""

import ctypes
import grp
import os
import platform
import shutil
import signal
import stat
import struct
import subprocess
import tempfile

import mpopdtest as t

# x86_64 numbers of chown, fchown, lchown and fchownat (asm/unistd_64.h)
CHOWN_CALLS = (92, 93, 94, 260)
AUDIT_ARCH_X86_64 = 0xC000003E

MSG = [
    b"From a@example.org Mon Jan  1 00:00:00 2024\nSubject: one\n\nfirst\n\n",
    b"From b@example.org Mon Jan  1 00:00:01 2024\nSubject: two\n\nsecond\n\n",
]


def setup(priv_group, kind="spool"):
    """kind: "spool" (root:mail 2775, alice user:mail 0660), "plain" (root:mail 0775,
    alice user:user 0600) or "home" (user:user 0700, mbox user:user 0600)."""
    top = tempfile.mkdtemp(prefix="mpopd-spool-")
    os.chmod(top, 0o755)
    mail_gid = grp.getgrnam("mail").gr_gid
    spool = os.path.join(top, "spool")
    os.mkdir(spool)
    dir_owner, dir_mode, box_gid, box_mode, name = {
        "spool": ((0, mail_gid), 0o2775, mail_gid, 0o660, "alice"),
        "plain": ((0, mail_gid), 0o775, t.TEST_GID, 0o600, "alice"),
        "home": ((t.TEST_UID, t.TEST_GID), 0o700, t.TEST_GID, 0o600, "mbox"),
    }[kind]
    os.chown(spool, *dir_owner)
    os.chmod(spool, dir_mode)
    mbox = os.path.join(spool, name)
    with open(mbox, "wb") as f:
        f.write(b"".join(MSG))
    os.chown(mbox, t.TEST_UID, box_gid)
    os.chmod(mbox, box_mode)
    users = os.path.join(top, "users")
    with open(users, "w") as f:
        f.write(f"alice:{t.make_hash(t.PASSWORD)}:{t.TEST_UID}:{t.TEST_GID}\n")
    conf = os.path.join(top, "mpopd.conf")
    with open(conf, "w") as f:
        f.write("[server]\nlogin_chroot=\n[auth]\nuserlist=" + users + "\n"
                "penalty_state=" + os.path.join(top, "penalty", "state") + "\n"
                "[mailbox]\nformat=mbox\nmail_spool_dir=" + spool + "\n"
                "lock_retries=0\nmail_privileged_group=" + priv_group + "\n"
                + ("location=" + mbox + "\n" if kind == "home" else ""))
    return top, spool, mbox, conf


def index_name(mbox):
    return "." + os.path.basename(mbox) + ".mpopd-index"


def check_index(rep, mbox, what):
    """The persisted index is the user's own file, private to it."""
    st = os.lstat(os.path.join(os.path.dirname(mbox), index_name(mbox)))
    rep.equal((stat.S_ISREG(st.st_mode), st.st_uid, stat.S_IMODE(st.st_mode)),
              (True, t.TEST_UID, 0o600), f"{what}: the index is the user's, mode 0600")


def kill_chown():
    """In the child before exec: a seccomp filter that kills the process on any chown call
    (mpopd's own filters stack on it)."""
    ins = [(0x20, 0, 0, 4),  # ld seccomp_data.arch
           (0x15, 1, 0, AUDIT_ARCH_X86_64), (0x06, 0, 0, 0x7FFF0000),  # other: allow
           (0x20, 0, 0, 0)]  # ld seccomp_data.nr
    ins += [(0x15, len(CHOWN_CALLS) - i, 0, nr) for i, nr in enumerate(CHOWN_CALLS)]
    ins += [(0x06, 0, 0, 0x7FFF0000), (0x06, 0, 0, 0x80000000)]  # allow / kill process
    code = b"".join(struct.pack("HBBI", *i) for i in ins)
    buf = ctypes.create_string_buffer(code, len(code))
    prog = struct.pack("HxxxxxxP", len(ins), ctypes.addressof(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
    if libc.prctl(22, 2, ctypes.c_char_p(prog), 0, 0) != 0:
        os._exit(99)


def session(conf, data, no_chown=False):
    """One mpopd --inetd session; no_chown: under kill_chown(). Returns (stdout, stderr
    with the exit status when a signal ended it)."""
    r = subprocess.run([t.MPOPD, "--inetd", "-c", conf], input=data, capture_output=True,
                       timeout=t.WAIT, preexec_fn=kill_chown if no_chown else None)
    err = r.stderr.decode("utf-8", "replace")
    if r.returncode < 0:
        err += f"\nkilled by {signal.Signals(-r.returncode).name}"
    return r.stdout.decode("latin-1"), err


def update(rep, kind, no_chown):
    """DELE 1 at UPDATE: the other message left, owner, group and mode as before, nothing
    else in the directory."""
    top, spool, mbox, conf = setup("mail", kind)
    try:
        before = os.stat(mbox)
        out, err = session(conf, f"USER alice\r\nPASS {t.PASSWORD}\r\nSTAT\r\nDELE 1\r\n"
                           "QUIT\r\n".encode(), no_chown)
        what = f"{kind}{' (chown kills)' if no_chown else ''}"
        rep.check("+OK mpopd signing off (1 messages deleted)." in out,
                  f"{what}: UPDATE replaced the mbox", out + err)
        with open(mbox, "rb") as f:
            rep.equal(f.read(), MSG[1], f"{what}: exactly the undeleted message is left")
        st = os.stat(mbox)
        rep.equal((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)),
                  (before.st_uid, before.st_gid, stat.S_IMODE(before.st_mode)),
                  f"{what}: owner, group and mode preserved")
        rep.equal(sorted(os.listdir(spool)), sorted([os.path.basename(mbox), index_name(mbox)]),
                  f"{what}: no lock or temporary file left, the index beside the mbox")
        check_index(rep, mbox, what)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_home_and_spools(rep):
    chown_filter = platform.machine() == "x86_64"
    if not chown_filter:
        rep.skip("UPDATE under a filter that kills chown", "the filter is for x86_64")
    update(rep, "home", chown_filter)
    update(rep, "spool", chown_filter)
    update(rep, "plain", False)


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
        rep.equal(sorted(os.listdir(spool)), [".alice.mpopd-index", "alice"],
                  "no lock or temporary file left, the index beside the mbox")
        check_index(rep, mbox, "spool")
    finally:
        shutil.rmtree(top, ignore_errors=True)


def uidls(out):
    """The unique-id listing of a session's first UIDL answer: {number: uidl}."""
    lines = out.split("\r\n")
    start = next(i for i, line in enumerate(lines) if line.startswith("+OK Unique-ID")) + 1
    end = lines.index(".", start)
    return dict(line.split(" ", 1) for line in lines[start:end])


def test_uidl_persistent(rep):
    """RFC 1939 §7 through the real binary: two messages share a Message-ID; after DELE 1
    and QUIT the survivor keeps the "-2" id it had, and a copy delivered again later gets an
    id never seen before."""
    top, spool, mbox, conf = setup("mail")
    same = [b"From a@x Mon Jan  1 00:00:00 2024\nMessage-ID: <same@example.org>\n\none\n\n",
            b"From b@x Mon Jan  1 00:00:01 2024\nMessage-ID: <same@example.org>\n\ntwo!\n\n",
            b"From c@x Mon Jan  1 00:00:02 2024\nMessage-ID: <c@example.org>\n\nthree\n\n"]
    login = f"USER alice\r\nPASS {t.PASSWORD}\r\n"
    try:
        with open(mbox, "wb") as f:
            f.write(b"".join(same))
        out, err = session(conf, (login + "UIDL\r\nDELE 1\r\nQUIT\r\n").encode())
        rep.equal(uidls(out), {"1": "<same@example.org>", "2": "<same@example.org>-2",
                               "3": "<c@example.org>"}, "first session's UIDLs")
        out, err = session(conf, (login + "UIDL\r\nQUIT\r\n").encode())
        rep.equal(uidls(out), {"1": "<same@example.org>-2", "2": "<c@example.org>"},
                  "after DELE 1 + QUIT the survivor keeps its UIDL")
        with open(mbox, "ab") as f:
            f.write(same[0])
        out, err = session(conf, (login + "UIDL\r\nQUIT\r\n").encode())
        got = uidls(out)
        rep.check(len(got) == 3 and got["3"] not in ("<same@example.org>",
                                                      "<same@example.org>-2"),
                  f"a deleted message delivered again gets a new UIDL ({got.get('3')})",
                  out + err)
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


def test_spool_dir(rep):
    """mbox_mode=spool with the spool_dir that units/mpopd.tmpfiles creates: 1733 root, the
    session (the user) copies the mbox there and leaves nothing behind."""
    top, spool, mbox, conf = setup("mail", "home")
    root = os.path.join(top, "root")
    os.mkdir(root)
    tmpfiles = os.path.join(t.SRCDIR, "units", "mpopd.tmpfiles")
    try:
        r = subprocess.run(["systemd-tmpfiles", "--create", "--root=" + root, tmpfiles],
                           capture_output=True, text=True)
        rep.check(r.returncode == 0, "systemd-tmpfiles --create units/mpopd.tmpfiles", r.stderr)
        spool_dir = os.path.join(root, "var", "spool", "mpopd")
        st = os.stat(spool_dir)
        rep.equal((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)), (0, 0, 0o1733),
                  "/var/spool/mpopd is root:root 1733")
        with open(conf, "a") as f:
            f.write("mbox_mode=spool\nspool_dir=" + spool_dir + "\n")
        out, err = session(conf, f"USER alice\r\nPASS {t.PASSWORD}\r\nSTAT\r\nRETR 2\r\n"
                           "DELE 1\r\nQUIT\r\n".encode())
        rep.check("+OK 2 " in out, "spool mode: login and STAT as the user", out + err)
        rep.check("Subject: two\r\n\r\nsecond\r\n.\r\n" in out, "spool mode: RETR from the copy",
                  out + err)
        rep.check("+OK mpopd signing off (1 messages deleted)." in out,
                  "spool mode: UPDATE", out + err)
        with open(mbox, "rb") as f:
            rep.equal(f.read(), MSG[1], "spool mode: exactly the undeleted message is left")
        rep.equal(os.listdir(spool_dir), [], "spool mode: nothing left in spool_dir")
        # Without the directory the login fails, and says why in the log.
        os.rmdir(spool_dir)
        out, err = session(conf, f"USER alice\r\nPASS {t.PASSWORD}\r\nQUIT\r\n".encode())
        rep.check("-ERR" in out and "spool" in err, "spool mode: a missing spool_dir is an "
                  "error naming it", out + err)
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
    rep.run(test_home_and_spools)
    rep.run(test_spool_dir)
    rep.run(test_uidl_persistent)
    rep.done()


if __name__ == "__main__":
    main()

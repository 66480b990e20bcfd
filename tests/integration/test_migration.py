#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Migration without re-downloads: mpopd answers the UIDLs the previous server answered.

For Dovecot (Maildir and mbox) and popa3d (mbox) the real server serves a fixture mailbox
first (tests/peers.py runs it privately), its UIDL listing is captured, and then mpopd
serves the same files with the setting README.md names for that origin: every message
must keep its id (matched by Subject, as the two servers may number them differently).
The Perl mpopd cannot run here: its mailboxes are built the way it left them (X-UIDL
"mpop..." headers from 2.x, Message-Id from 3.x, Maildir file names) with the ids it
answered, from docs/reference facts.
"""

import os
import poplib
import sys

import mpopdtest as t

sys.path.insert(0, os.path.join(t.SRCDIR or os.path.dirname(__file__) + "/../..", "tests"))
import peers  # noqa: E402

USER = "alice"


def msg(subject, headers=b"", body=b"body\n"):
    return (b"Return-Path: <a@example.org>\n" + headers +
            b"From: a@example.org\nSubject: " + subject + b"\n\n" + body)


# Header lines popa3d hashes and lines it must not: the first Received:, Date: and
# Message-ID: above it, Delivered-To:, X-Delivery-ID: (uppercase X only), folded lines.
MBOX_MESSAGES = [
    msg(b"m1", b"Received: from mx by host; Mon, 1 Jan 2024 00:00:00 +0000\n"
        b"Date: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <m1@example.org>\n"),
    msg(b"m2", b"Delivered-To: alice@example.org\nReceived: from a\n\tby b; folded\n"
        b"Received: from second\nDate: after the first received\n"
        b"Message-ID: <after-received@example.org>\n"),
    msg(b"m3", b"message-id: <lower@example.org>\nDATE: Tue, 2 Jan 2024 00:00:00 +0000\n"),
    msg(b"m4", b"X-Delivery-ID: abc123\nx-delivery-id: lower-not-hashed\n"),
    msg(b"m5", b"Subject-Less: none of the fields\n", b"a body\n>From quoted\n"),
    msg(b"m6", b"Message-ID:\n <folded@example.org>\nReceived: (qmail 1 invoked); x\n"),
    msg(b"m7", b"Delivered-To: x@example.org\nDelivered-To: y@example.org\n"
        b"Date: Wed, 3 Jan 2024 00:00:00 +0000\n", b""),
]

MAILDIR_MESSAGES = [
    ("new/1700000001.M1P1.host", msg(b"d1")),
    # Dovecot's size field: it trusts it, mpopd keeps it in the name
    ("new/1700000002.M2P2.host,S=%d" % len(msg(b"d2")), msg(b"d2")),
    ("cur/1700000003.M3P3.host:2,S", msg(b"d3")),
    ("new/1700000004.M4P4.host", msg(b"d4", body=b"")),
]


def subject_of(lines):
    for ln in lines:
        if ln.lower().startswith(b"subject:"):
            return ln.split(b":", 1)[1].strip().decode()
    return None


def by_subject(port, password=t.PASSWORD, user=USER):
    """{subject: uidl} as the server at port answers, read with TOP n 0."""
    p = poplib.POP3("127.0.0.1", port, timeout=t.WAIT)
    try:
        p.user(user)
        p.pass_(password)
        out = {}
        for ln in p.uidl()[1]:
            n, uidl = ln.decode().split(" ", 1)
            out[subject_of(p.top(int(n), 0)[1])] = uidl
        return out
    finally:
        p.quit()


def peer_users(fx):
    home = os.path.join(fx.dir, "home")
    os.makedirs(home, exist_ok=True)
    os.chown(home, t.TEST_UID, t.TEST_GID)
    return {USER: {"password": t.PASSWORD, "uid": t.TEST_UID, "gid": t.TEST_GID,
                   "home": home}}


def mpopd_answers(fx, extra):
    fx.write_config(extra)
    with t.Server(fx) as srv:
        return by_subject(srv.port)


def deliver_maildir(fx, name, raw):
    path = os.path.join(fx.maildirs[USER], name)
    with open(path, "wb") as f:
        f.write(raw)
    os.chown(path, t.TEST_UID, t.TEST_GID)


def test_dovecot_maildir(r):
    with t.Fixture(messages=MAILDIR_MESSAGES, fmt="maildir") as fx:
        md = fx.maildirs[USER]
        with peers.start_dovecot(peer_users(fx), mail_location="maildir:" + md) as dc:
            before = by_subject(dc.port)
            # Dovecot's UIDL changes nothing a second time (flags, new -> cur)
            again = by_subject(dc.port)
        r.equal(sorted(before), ["d1", "d2", "d3", "d4"], "Dovecot lists the maildir")
        r.equal(again, before, "Dovecot answers the same UIDLs twice")
        r.check(all(len(u) == 16 for u in before.values()),
                "Dovecot's default UIDLs are %08Xu%08Xv", before)
        r.check(os.path.exists(os.path.join(md, "dovecot-uidlist")), "Dovecot left its uidlist")
        plain = mpopd_answers(fx, {})
        r.equal(plain["d1"], "1700000001.M1P1.host",
                "mpopd's default for a maildir is the file name")
        got = mpopd_answers(fx, {"mailbox.maildir_uidl_source": "dovecot;filename"})
        r.equal(got, before, "maildir_uidl_source=dovecot: every message keeps Dovecot's UIDL")
        # Mail delivered after the move: no uidlist record, so its file name.
        deliver_maildir(fx, "new/1800000000.M9P9.late", msg(b"late"))
        got = mpopd_answers(fx, {"mailbox.maildir_uidl_source": "dovecot"})
        r.equal(got.get("late"), "1800000000.M9P9.late", "a message Dovecot never saw: its name")
        r.equal({k: v for k, v in got.items() if k != "late"}, before,
                "the others keep Dovecot's UIDLs after a delivery")
        # And Dovecot, asked once more, still agrees for the messages it knew.
        with peers.start_dovecot(peer_users(fx), mail_location="maildir:" + md) as dc:
            after = by_subject(dc.port)
        r.equal({k: after[k] for k in before}, before, "Dovecot agrees after mpopd served it")


def test_dovecot_maildir_f(r):
    """pop3_uidl_format=%f (the file name) needs no setting in mpopd."""
    with t.Fixture(messages=MAILDIR_MESSAGES, fmt="maildir") as fx:
        md = fx.maildirs[USER]
        with peers.start_dovecot(peer_users(fx), mail_location="maildir:" + md,
                                 uidl_format="%f") as dc:
            before = by_subject(dc.port)
        r.equal(mpopd_answers(fx, {}), before, "Dovecot %f = mpopd's default (file names)")


def test_dovecot_maildir_saved(r):
    """UIDLs Dovecot saved in dovecot-uidlist (pop3_save_uidl) win, as they do for Dovecot."""
    with t.Fixture(messages=MAILDIR_MESSAGES, fmt="maildir") as fx:
        md = fx.maildirs[USER]
        with peers.start_dovecot(peer_users(fx), mail_location="maildir:" + md,
                                 uidl_format="%v.%u", extra_conf="pop3_save_uidl = yes\n") as dc:
            saved = by_subject(dc.port)
        r.check(all("." in u for u in saved.values()), "Dovecot answered %v.%u", saved)
        with peers.start_dovecot(peer_users(fx), mail_location="maildir:" + md) as dc:
            before = by_subject(dc.port)
        r.equal(before, saved, "Dovecot answers the saved UIDLs under its default format")
        got = mpopd_answers(fx, {"mailbox.maildir_uidl_source": "dovecot;filename"})
        r.equal(got, saved, "mpopd answers the UIDLs Dovecot saved")


def make_mbox(fx, messages):
    """The fixture mbox renamed to <mail>/alice (popa3d's /var/mail/alice)."""
    path = os.path.join(fx.mail, USER)
    with open(path, "wb") as f:
        for raw in messages:
            f.write(t.mbox_entry(raw))
    os.chown(path, t.TEST_UID, t.TEST_GID)
    os.chmod(path, 0o600)
    return path


def mbox_conf(fx, source):
    return {"mailbox.location": os.path.join(fx.mail, "%u"), "mailbox.uidl_source": source}


def test_dovecot_mbox(r):
    with t.Fixture(messages=[], fmt="mbox") as fx:
        box = make_mbox(fx, MBOX_MESSAGES)
        loc = f"mbox:{os.path.join(fx.dir, 'home', 'mail')}:INBOX={box}"
        with peers.start_dovecot(peer_users(fx), mail_location=loc) as dc:
            before = by_subject(dc.port)
        r.equal(len(before), len(MBOX_MESSAGES), "Dovecot lists the mbox")
        with open(box, "rb") as f:
            r.check(b"\nX-IMAPbase: " in f.read(), "Dovecot wrote X-IMAPbase and X-UID")
        got = mpopd_answers(fx, mbox_conf(fx, "dovecot;x-uidl;message-id;digest"))
        r.equal(got, before, "uidl_source=dovecot: every message keeps Dovecot's UIDL")
        plain = mpopd_answers(fx, mbox_conf(fx, "x-uidl;message-id;digest"))
        r.equal(plain["m1"], "<m1@example.org>", "without it: the Message-ID")
        # Appended by a delivery agent after the move, with a forged X-UID.
        with open(box, "ab") as f:
            f.write(t.mbox_entry(msg(b"late", b"X-UID: 1\nMessage-ID: <late@example.org>\n")))
            f.write(t.mbox_entry(msg(b"late2", b"X-UID: 99\nMessage-ID: <late2@example.org>\n")))
        got = mpopd_answers(fx, mbox_conf(fx, "dovecot;x-uidl;message-id;digest"))
        r.equal({k: got[k] for k in before}, before, "the others keep theirs after deliveries")
        r.check(got["late"] != before["m1"] and got["late"].startswith(before["m1"]),
                "a copied X-UID: the first holder keeps the id", got)
        r.equal(got["late2"], "<late2@example.org>", "an X-UID above X-IMAPbase: the next source")


def test_popa3d(r):
    with t.Fixture(messages=[], fmt="mbox") as fx:
        make_mbox(fx, MBOX_MESSAGES)
        with peers.start_popa3d(peer_users(fx), fx.mail) as pp:
            before = by_subject(pp.port)
        r.equal(len(before), len(MBOX_MESSAGES), "popa3d lists the mbox")
        r.equal(len(set(before.values())), len(before), "popa3d's UIDLs differ")
        got = mpopd_answers(fx, mbox_conf(fx, "popa3d"))
        r.equal(got, before, "uidl_source=popa3d: every message keeps popa3d's UIDL")
        for subject in sorted(before):
            r.equal(got.get(subject), before[subject], f"popa3d's UIDL of {subject}")


def test_perl_mpopd(r):
    """The Perl mpopd's mailboxes as it left them, with the ids it answered."""
    x_uidl = [
        # 2.x inserted "X-UIDL: mpop<user><time><n><pid>" as the first header and answered
        # the part after "mpop"
        (b"X-UIDL: mpopbob1795734101111794\n" + msg(b"p1"), "bob1795734101111794"),
        (b"X-UIDL: mpopbob1795734101211794\nStatus: O\n" + msg(b"p2"), "bob1795734101211794"),
        # 3.x answered the Message-Id
        (msg(b"p3", b"Message-Id: <3x@example.org>\n"), "<3x@example.org>"),
    ]
    with t.Fixture(messages=[], fmt="mbox") as fx:
        make_mbox(fx, [raw for raw, _ in x_uidl])
        got = mpopd_answers(fx, {"mailbox.location": os.path.join(fx.mail, "%u")})
        r.equal(got, {"p1": x_uidl[0][1], "p2": x_uidl[1][1], "p3": x_uidl[2][1]},
                "Perl mpopd mbox: X-UIDL (2.x) and Message-Id (3.x) kept by default")
    names = [("new/1000000001.M1P1.host", msg(b"n1")), ("new/1000000002.M2P2.host", msg(b"n2"))]
    with t.Fixture(messages=names, fmt="maildir") as fx:
        got = mpopd_answers(fx, {})
        r.equal(got, {"n1": "1000000001.M1P1.host", "n2": "1000000002.M2P2.host"},
                "Perl mpopd maildir: the file names in new/, kept by default")


def main():
    t.need_binaries()
    r = t.Reporter("migration")
    if not t.IS_ROOT:
        print("Bail out! the peer servers need root")
        sys.exit(99)
    for test in (test_perl_mpopd, test_dovecot_maildir, test_dovecot_maildir_f,
                 test_dovecot_maildir_saved, test_dovecot_mbox, test_popa3d):
        r.run(test)
    r.done()


if __name__ == "__main__":
    main()

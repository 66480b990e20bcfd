#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""mpopdctl convert-config against the Perl mpopd configurations in tests/data/convert: each
fixture (2.x statements and 3.x hash, with comments, quoting, lists, hashes and code
references) converts to the checked-in NAME.expected, its report to NAME.report.expected and
its allow/deny file (--hosts) to NAME.hosts.expected, the exit status says whether the report
needs the admin, and mpopd --check-config accepts every converted file. The files the
configurations name (trusted networks, allow/deny rules, virtual domains) are read below
tests/data/convert/root (--root).

MPOPD_CONVERT_REGENERATE=1 writes the expected files instead of comparing (review the diff)."""

import os
import subprocess
import tempfile

from mpopdtest import (IS_ROOT, MPOPD, MPOPDCTL, PASSWORD, SRCDIR, TEST_GID, TEST_UID, Reporter,
                       make_hash, need_binaries, run_inetd)

DATA = os.path.join(SRCDIR, "tests", "data", "convert")
REGENERATE = os.environ.get("MPOPD_CONVERT_REGENERATE") == "1"
# fixture: exit status (3: converted, but the report lists options that need the admin)
FIXTURES = {
    "mpopd-2.22.conf": 3,
    "mpopd-3.x.conf": 3,
    "vdomains-2.x.conf": 3,
    "clean-2.x.conf": 0,
}


def ctl(*args, cwd=DATA):
    return subprocess.run([MPOPDCTL, "convert-config", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=30)


def compare(r, got, name, what):
    path = os.path.join(DATA, name)
    if REGENERATE:
        with open(path, "w") as f:
            f.write(got)
        r.check(True, f"{what}: {name} written")
        return
    with open(path) as f:
        want = f.read()
    detail = ""
    if got != want:
        import difflib
        detail = "".join(difflib.unified_diff(want.splitlines(True), got.splitlines(True),
                                              name, "got"))
    r.check(got == want, f"{what} is {name}", detail)


def check_config(r, path, what):
    p = subprocess.run([MPOPD, "--check-config", "-q", "-c", path], capture_output=True,
                       text=True, timeout=30)
    r.check(p.returncode == 0, f"{what}: mpopd --check-config accepts it", p.stderr)


def fixture(r, name, status):
    base = name[:-len(".conf")]
    with tempfile.TemporaryDirectory() as tmp:
        out, rep, hosts = (os.path.join(tmp, n) for n in ("mpopd.conf", "report", "hosts"))
        p = ctl("--root", "root", "--hosts", hosts, "-o", out, "--report", rep, name)
        r.equal(p.returncode, status, f"{name}: exit status")
        r.equal(p.stdout + p.stderr, "", f"{name}: nothing on stdout or stderr with -o and --report")
        with open(out) as f:
            conf = f.read()
        compare(r, conf.replace(tmp, "@TMPDIR@"), base + ".expected", name)
        with open(rep) as f:
            compare(r, f.read(), base + ".report.expected", f"{name} report")
        if os.path.exists(hosts):
            with open(hosts) as f:
                compare(r, f.read(), base + ".hosts.expected", f"{name} --hosts")
        check_config(r, out, name)
        # Without -o and --report: the configuration on stdout, the report on stderr.
        p2 = ctl("--root", "root", "--hosts", hosts, name)
        r.equal(p2.returncode, status, f"{name}: exit status, standard output")
        r.equal(p2.stdout, conf, f"{name}: the same configuration on stdout")
        with open(rep) as f:
            r.equal(p2.stderr, f.read(), f"{name}: the report on stderr")


def without_hosts(r):
    """Without --hosts the configuration names the old rules file if mpopd reads it as it is,
    else the report says to convert it."""
    p = ctl("--root", "root", "clean-2.x.conf")
    r.check("hosts_allow_deny=/usr/local/mpopd/simple_allow_deny\n" in p.stdout,
            "a rules file mpopd reads is kept by its path", p.stdout)
    p = ctl("--root", "root", "mpopd-2.22.conf")
    r.check("hosts_allow_deny" not in p.stdout, "a rules file mpopd cannot read is not named",
            p.stdout)
    r.check("$hosts_allow_deny: not converted: /usr/local/mpopd/mpopd_allow_deny:11:" in p.stderr
            and "convert the file with --hosts FILE" in p.stderr,
            "the report names the line and the --hosts option", p.stderr)
    # Options after the file name too, as with every other verb.
    q = ctl("clean-2.x.conf", "--root", "root")
    r.check(q.returncode == 0 and q.stdout == ctl("--root", "root", "clean-2.x.conf").stdout,
            "options after the file name are taken", q.stderr)
    # Without --root the files are read where the configuration says: absent here.
    p = ctl("mpopd-2.22.conf")
    r.equal(p.returncode, 3, "files that cannot be read: exit 3")
    r.check("$trusted_networks: not converted: cannot read the file" in p.stderr,
            "an unreadable trusted_networks file is reported", p.stderr)


OLD_MBOX = (b"From someone@example.net  Tue Nov 13 23:38:04 2001\n"
            b"From: someone@example.net\nSubject: one\nMessage-Id: <one@example.net>\n\n"
            b"first body\n\n"
            b"From someone@example.net  Tue Nov 13 23:38:23 2001\n"
            b"From: someone@example.net\nSubject: two\nMessage-Id: <two@example.net>\n\n"
            b"second body\nFrom inside a paragraph stays body text\n\n")


def migration(r):
    """A converted 2.x configuration serves the old virtual domain: auth type 5 (user@domain),
    the user list and the mbox under $host_mail_path, the original's message markers."""
    with tempfile.TemporaryDirectory(prefix="mpopd-convert-", dir="/tmp") as tmp:
        os.chmod(tmp, 0o755)
        domain = os.path.join(tmp, "popmail", "e", "example.org")
        os.makedirs(domain)
        for d in (os.path.join(tmp, "popmail"), os.path.join(tmp, "popmail", "e"), domain):
            os.chmod(d, 0o755)
        with open(os.path.join(domain, ".userlist"), "w") as f:
            f.write(f"bob:{make_hash(PASSWORD)}:{TEST_UID}\n")  # the Perl format: no gid
        mbox = os.path.join(domain, "bob")
        with open(mbox, "wb") as f:
            f.write(OLD_MBOX)
        if IS_ROOT:
            os.chown(domain, TEST_UID, TEST_GID)
            os.chown(mbox, TEST_UID, TEST_GID)
        old = os.path.join(tmp, "mpopd.conf.old")
        with open(old, "w") as f:
            f.write(f"""# a 2.x configuration
$mpopd_conf_version = "2.22";
$timeout = 90;
$auth_type = 5;
$host_mail_path = "{tmp}/popmail";
$userlist = '.userlist';
$switch = 0;
$message_start = "From ";
$message_end = "^\\\\s+\\$";
$allow_non_fqdn = 1;
1;
""")
        conf = os.path.join(tmp, "mpopd.conf")
        p = ctl("-o", conf, old, cwd=tmp)
        r.equal(p.returncode, 0, "migration: the old configuration converts", )
        with open(conf) as f:
            text = f.read()
        r.check("[host:example.org]" in text and "message_end=^\\\\s*$" in text,
                "migration: a [host:example.org] group and the blank-line end marker", text)
        with open(conf, "a") as f:
            f.write("\n[log]\ntarget=stderr\nlevel=debug\n")

        class Conf:
            pass
        fx = Conf()
        fx.conf = conf
        data = (f"USER bob@example.org\r\nPASS {PASSWORD}\r\nSTAT\r\nUIDL\r\nRETR 2\r\n"
                "QUIT\r\n").encode()
        rc, out, err = run_inetd(fx, data)
        lines = out.split(b"\r\n")
        r.check(rc == 0 and lines[2].startswith(b"+OK") and lines[3].startswith(b"+OK 2 "),
                "migration: bob@example.org logs in and finds his two messages", out + err.encode())
        r.check(b"2 <two@example.net>" in out, "migration: the 3.x UIDL (Message-Id) is kept", out)
        r.check(b"From inside a paragraph stays body text" in out,
                "migration: a From line inside a paragraph stays in the message", out)


def auth_type(r):
    """$auth_type unset or out of range refused everyone in 2.x: no [auth] default is written
    and the report says so; %user_auth entries still convert."""
    with tempfile.TemporaryDirectory() as tmp:
        for value, why in (("", "$auth_type: not converted: not set"),
                           ("$auth_type = 9;\n", "$auth_type: not converted: \"9\" is not an "
                                                  "auth type 1 to 7")):
            path = os.path.join(tmp, "old.conf")
            with open(path, "w") as f:
                f.write(value + "$user_auth{alice} = 1;\n$allow_non_fqdn = 1;\n")
            p = ctl(path, cwd=tmp)
            r.check(p.returncode == 3 and why in p.stderr, f"{why}: exit 3 and reported",
                    p.stderr)
            r.check("[auth]" not in p.stdout and "[user_auth]\n# from %user_auth{alice} (line "
                    in p.stdout and "alice=system\n" in p.stdout,
                    f"{why}: no [auth] default, alice keeps her chain", p.stdout)


def errors(r):
    with tempfile.TemporaryDirectory() as tmp:
        cases = [
            ("unterminated.conf", "$a = 'never ends;\n", "unterminated.conf:1: a string"),
            ("heredoc.conf", "$a = <<EOF;\nx\n", "heredoc.conf:1: a here-document never ends"),
            ("empty.conf", "# nothing\n1;\n", "not a Perl mpopd configuration"),
        ]
        for fname, text, why in cases:
            path = os.path.join(tmp, fname)
            with open(path, "w") as f:
                f.write(text)
            p = ctl(path, cwd=tmp)
            r.check(p.returncode == 1 and why in p.stderr and p.stdout == "",
                    f"{fname}: exit 1 with the reason", p.stderr)
        p = ctl(os.path.join(tmp, "missing.conf"))
        r.check(p.returncode == 1 and "missing.conf" in p.stderr, "a missing file: exit 1",
                p.stderr)
        out = os.path.join(tmp, "out.conf")
        p = ctl("-o", out, os.path.join(tmp, "unterminated.conf"))
        r.check(not os.path.exists(out), "nothing is written when the file cannot be read")
    for args in ([], ["a.conf", "b.conf"], ["--bogus", "a.conf"]):
        p = ctl(*args)
        r.check(p.returncode == 2 and "Usage: mpopdctl convert-config" in p.stderr,
                f"usage error {args}: exit 2", p.stderr)
    p = ctl("--help")
    r.check(p.returncode == 0 and "--hosts FILE" in p.stdout, "--help", p.stdout)
    p = subprocess.run([MPOPDCTL, "--help"], capture_output=True, text=True, timeout=30)
    r.check("convert-config" in p.stdout, "mpopdctl --help lists convert-config", p.stdout)


def main():
    need_binaries()
    r = Reporter("convert")
    for name, status in FIXTURES.items():
        r.run(fixture, name, status)
    r.run(without_hosts)
    r.run(migration)
    r.run(auth_type)
    r.run(errors)
    r.done()


if __name__ == "__main__":
    main()

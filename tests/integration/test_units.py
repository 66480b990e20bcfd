#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The generated systemd units pass systemd-analyze verify and keep their hardening score."""

import os
import re
import shutil
import subprocess
import tempfile

from mpopdtest import MPOPD, Reporter

UNITS = ["mpopd.socket", "mpopd@.service", "mpopd-daemon.socket", "mpopd.service"]
MAX_EXPOSURE = 3.0


def main():
    t = Reporter("units")
    built = os.path.join(os.environ.get("BUILDDIR", ""), "units")
    if not shutil.which("systemd-analyze"):
        t.skip("systemd-analyze verify", "systemd-analyze not installed")
        t.done()
    with tempfile.TemporaryDirectory(prefix="mpopd-units-") as d:
        for u in UNITS:
            with open(os.path.join(built, u)) as f:
                text = f.read()
            # The generated units name the installed path (ExecStart=, ExecReload=); verify
            # checks that it exists, so point them at the binary just built.
            text = re.sub(r"^(ExecStart|ExecReload)=\S+/mpopd", r"\1=" + MPOPD, text, flags=re.M)
            with open(os.path.join(d, u), "w") as f:
                f.write(text)
        # verify also runs man(1) for each Documentation= page: let it find the pages of
        # the source tree (not yet installed) through MANPATH.
        src = os.environ.get("SRCDIR", "")
        for sec in ("5", "8"):
            os.makedirs(os.path.join(d, "man", "man" + sec))
        for page in ("mpopd.8", "mpopd.conf.5"):
            os.symlink(os.path.join(src, "man", page),
                       os.path.join(d, "man", "man" + page[-1], page))
        env = dict(os.environ, MANPATH=os.path.join(d, "man"))
        r = subprocess.run(["systemd-analyze", "verify"] + [os.path.join(d, u) for u in UNITS],
                           capture_output=True, timeout=60, env=env)
        out = (r.stdout + r.stderr).decode()
        t.check(r.returncode == 0 and out.strip() == "", "systemd-analyze verify prints nothing", out)
        for u in ("mpopd@.service", "mpopd.service"):
            r = subprocess.run(["systemd-analyze", "security", "--offline=yes", os.path.join(d, u)],
                               capture_output=True, timeout=60)
            m = re.search(rb"Overall exposure level for \S+: ([0-9.]+)", r.stdout)
            score = float(m.group(1)) if m else 99.0
            print(f"# systemd-analyze security --offline=yes {u}: {score}")
            t.check(score <= MAX_EXPOSURE, f"{u}: exposure {score} <= {MAX_EXPOSURE}",
                    r.stdout.decode()[-500:])
    t.done()


if __name__ == "__main__":
    main()

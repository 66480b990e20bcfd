#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""POP3 client run INSIDE the test container (its loopback is private to it).

Reads one JSON request on stdin: {"port", "user", "password", "ops": [...]} and optionally
"tls": "implicit" (port 995 style) or "stls" (STLS right after the greeting) with "cafile",
the only CA trusted (the certificate must name 127.0.0.1), and "source": the local address
to connect from (any of 127.0.0.0/8; default the kernel's choice, 127.0.0.1). Runs the ops
in order and prints
one JSON line per op:
  {"op": "greeting"}            -> {"greeting": "+OK ..."}
  {"op": "fetch", "dele": [n]}  -> {"greeting", "stat": [count, octets],
                                   "messages": [hex of the lines joined by LF], "quit"}
  {"op": "stat", "retr": [n]}   -> {"stat": [count, octets], "uidls": count of UIDL lines,
                                   "messages": {n: hex of the lines joined by LF}, "quit"}
  {"op": "wrong"}               -> {"reply": "-ERR ..."} (USER/PASS with a wrong password)
  {"op": "hold", "seconds": s, "dele": [n]}
                                -> {"held": true} at once (after DELE n), then stays logged in
                                   for s seconds or until the server closes:
                                   {"closed_by_server": bool}
  {"op": "capa"}                -> {"capa": [lines], "tls"} (no login)
  {"op": "user"}                -> {"reply": "+OK/-ERR ..."} to USER (no PASS)
  {"op": "cert"}                -> {"sha256": hex of the server certificate (DER), "tls"}
  {"op": "hangup"}              -> {"port": client port, "capa": reply, "user": reply}:
                                   CAPA and USER, then the client closes (no QUIT, no login)
With TLS, fetch, stat and cert also give "tls": [protocol, cipher].
Errors are reported as {"error": "..."}; every socket operation has a timeout.
"""

import hashlib
import json
import poplib
import socket
import ssl
import sys

TIMEOUT = 15


def context(req):
    ctx = ssl.create_default_context(cafile=req["cafile"])
    if req.get("tls") == "implicit-1.2":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class SourcePOP3(poplib.POP3):
    """POP3 from a chosen local address (a second client address on the loopback)."""

    def __init__(self, host, port, timeout, source):
        self.source = source
        super().__init__(host, port, timeout=timeout)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self.source, 0))


def connect(req):
    tls = req.get("tls")
    if req.get("source"):
        if tls:
            raise ValueError("source is for plain text sessions")
        return SourcePOP3("127.0.0.1", req["port"], TIMEOUT, req["source"])
    if tls in ("implicit", "implicit-1.2"):
        return poplib.POP3_SSL("127.0.0.1", req["port"], timeout=TIMEOUT,
                               context=context(req))
    p = poplib.POP3("127.0.0.1", req["port"], timeout=TIMEOUT)
    if tls == "stls":
        p.stls(context(req))
    return p


def tls_of(p):
    """[protocol, cipher] of a TLS connection, None in plain text."""
    if not isinstance(p.sock, ssl.SSLSocket):
        return None
    return [p.sock.version(), p.sock.cipher()[0]]


def login(req):
    p = connect(req)
    p.user(req["user"])
    p.pass_(req["password"])
    return p


def op_greeting(req, op):
    p = connect(req)
    g = p.getwelcome().decode("latin-1")
    p.quit()
    return {"greeting": g}


def op_fetch(req, op):
    p = login(req)
    out = {"greeting": p.getwelcome().decode("latin-1"), "stat": list(p.stat())}
    out["messages"] = [b"\n".join(p.retr(i)[1]).hex() for i in range(1, out["stat"][0] + 1)]
    out["tls"] = tls_of(p)
    for n in op.get("dele", []):
        p.dele(n)
    out["quit"] = p.quit().decode("latin-1")
    return out


def op_stat(req, op):
    p = login(req)
    out = {"stat": list(p.stat()), "uidls": len(p.uidl()[1])}
    out["messages"] = {str(n): b"\n".join(p.retr(n)[1]).hex() for n in op.get("retr", [])}
    out["tls"] = tls_of(p)
    out["quit"] = p.quit().decode("latin-1")
    return out


def op_wrong(req, op):
    p = connect(req)
    p.user(req["user"])
    try:
        p.pass_(op.get("password", "Wr0ng-" + req["password"]))
        reply = "+OK (unexpected)"
    except poplib.error_proto as e:
        reply = e.args[0].decode("latin-1")
    p.close()
    return {"reply": reply}


def op_hold(req, op):
    """Logged in until the server closes the connection or the time is up."""
    p = login(req)
    for n in op.get("dele", []):
        p.dele(n)
    print(json.dumps({"held": True}), flush=True)
    p.sock.settimeout(op.get("seconds", 10))
    try:
        closed = p.sock.recv(1) == b""
    except socket.timeout:
        closed = False
    except OSError:
        closed = True
    if not closed:
        p.quit()
    return {"closed_by_server": closed}


def op_capa(req, op):
    p = connect(req)
    out = {"capa": [c.decode("latin-1") for c in p._longcmd("CAPA")[1]], "tls": tls_of(p)}
    p.quit()
    return out


def op_user(req, op):
    p = connect(req)
    try:
        reply = p.user(req["user"]).decode("latin-1")
    except poplib.error_proto as e:
        reply = e.args[0].decode("latin-1")
    p.close()
    return {"reply": reply}


def op_cert(req, op):
    p = connect(req)
    out = {"sha256": hashlib.sha256(p.sock.getpeercert(binary_form=True)).hexdigest(),
           "tls": tls_of(p)}
    p.quit()
    return out


def op_hangup(req, op):
    """A session that never logs in: CAPA, USER, then the client hangs up."""
    p = connect(req)
    out = {"port": p.sock.getsockname()[1]}
    out["capa"] = p._shortcmd("CAPA").decode("latin-1")
    if out["capa"].startswith("+OK"):
        while p._getline()[0] != b".":
            pass
    try:
        out["user"] = p._shortcmd("USER " + req["user"]).decode("latin-1")
    except poplib.error_proto as e:
        out["user"] = e.args[0].decode("latin-1")
    p.close()
    return out


OPS = {"greeting": op_greeting, "fetch": op_fetch, "stat": op_stat, "wrong": op_wrong,
       "hold": op_hold, "capa": op_capa, "user": op_user, "cert": op_cert,
       "hangup": op_hangup}


def main():
    req = json.load(sys.stdin)
    for op in req["ops"]:
        try:
            res = OPS[op["op"]](req, op)
        except Exception as e:  # noqa: BLE001 - reported to the test, which fails on it
            res = {"error": f"{type(e).__name__}: {e}"}
        res["op"] = op["op"]
        print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()

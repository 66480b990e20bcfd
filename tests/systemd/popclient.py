#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""POP3 client run INSIDE the test container (its loopback is private to it).

Reads one JSON request on stdin: {"port", "user", "password", "ops": [...]}, runs the ops in
order and prints one JSON line per op:
  {"op": "greeting"}            -> {"greeting": "+OK ..."}
  {"op": "fetch", "dele": [n]}  -> {"greeting", "stat": [count, octets],
                                   "messages": [hex of the lines joined by LF], "quit"}
  {"op": "stat", "retr": [n]}   -> {"stat": [count, octets], "uidls": count of UIDL lines,
                                   "messages": {n: hex of the lines joined by LF}, "quit"}
  {"op": "wrong"}               -> {"reply": "-ERR ..."} (USER/PASS with a wrong password)
  {"op": "hold", "seconds": s}  -> {"held": true} at once, then stays logged in for s seconds
                                   or until the server closes: {"closed_by_server": bool}
Errors are reported as {"error": "..."}; every socket operation has a timeout.
"""

import json
import poplib
import socket
import sys

TIMEOUT = 15


def connect(req):
    return poplib.POP3("127.0.0.1", req["port"], timeout=TIMEOUT)


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
    for n in op.get("dele", []):
        p.dele(n)
    out["quit"] = p.quit().decode("latin-1")
    return out


def op_stat(req, op):
    p = login(req)
    out = {"stat": list(p.stat()), "uidls": len(p.uidl()[1])}
    out["messages"] = {str(n): b"\n".join(p.retr(n)[1]).hex() for n in op.get("retr", [])}
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


OPS = {"greeting": op_greeting, "fetch": op_fetch, "stat": op_stat, "wrong": op_wrong,
       "hold": op_hold}


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

#!/usr/bin/env python3
"""Send one request to a running sim's control socket and print the answer.

  evcli.py --control 127.0.0.1:PORT plug 1 --amps 32
  evcli.py --control ... ev 1 C            (B, C, D, E, diode_fault)
  evcli.py --control ... ev-limit 1 16
  evcli.py --control ... unplug 1
  evcli.py --control ... rfid TAG1
  evcli.py --control ... fault rcd 1 on    (rcd, weld, lock, overtemp, meter; on|off)
  evcli.py --control ... network down      (up|down)
  evcli.py --control ... state
  evcli.py --control ... events [--since N]
  evcli.py --control ... raw '{"cmd": "ping"}'

Exit status 0 when the answer has "ok": true, 1 otherwise.
"""

import argparse
import json
import socket
import sys


def build_request(a):
    if a.what == "plug":
        return {"cmd": "plug", "connector": a.connector, "cable_amps": a.amps}
    if a.what == "ev":
        return {"cmd": "ev", "connector": a.connector, "state": a.state}
    if a.what == "ev-limit":
        amps = int(a.amps) if a.amps.is_integer() else a.amps
        return {"cmd": "ev_limit", "connector": a.connector, "amps": amps}
    if a.what == "unplug":
        return {"cmd": "unplug", "connector": a.connector}
    if a.what == "rfid":
        return {"cmd": "rfid", "id_tag": a.id_tag}
    if a.what == "fault":
        return {"cmd": "fault", "kind": a.kind, "connector": a.connector, "active": a.active == "on"}
    if a.what == "network":
        return {"cmd": "network", "up": a.link == "up"}
    if a.what == "events":
        return {"cmd": "events", "since": a.since}
    if a.what == "raw":
        return json.loads(a.json)
    return {"cmd": a.what}  # state, ping


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n", 2)[2],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--control", required=True, metavar="HOST:PORT")
    ap.add_argument("--timeout", type=float, default=5.0)
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("plug")
    p.add_argument("connector", type=int)
    p.add_argument("--amps", type=int, default=32, choices=(13, 20, 32, 63))
    p = sub.add_parser("ev")
    p.add_argument("connector", type=int)
    p.add_argument("state", choices=("B", "C", "D", "E", "diode_fault"))
    p = sub.add_parser("ev-limit")
    p.add_argument("connector", type=int)
    p.add_argument("amps", type=float)
    p = sub.add_parser("unplug")
    p.add_argument("connector", type=int)
    p = sub.add_parser("rfid")
    p.add_argument("id_tag")
    p = sub.add_parser("fault")
    p.add_argument("kind", choices=("rcd", "weld", "lock", "overtemp", "meter"))
    p.add_argument("connector", type=int)
    p.add_argument("active", choices=("on", "off"))
    p = sub.add_parser("network")
    p.add_argument("link", choices=("up", "down"))
    sub.add_parser("state")
    sub.add_parser("ping")
    p = sub.add_parser("events")
    p.add_argument("--since", type=int, default=0)
    p = sub.add_parser("raw")
    p.add_argument("json")
    return ap.parse_args(argv)


def send(control, request, timeout=5.0):
    host, _, port = control.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(json.dumps(request).encode() + b"\n")
        with s.makefile("rb") as f:
            line = f.readline()
    if not line:
        raise OSError("the sim closed the connection without answering")
    return json.loads(line)


def main(argv=None):
    a = parse_args(argv)
    try:
        request = build_request(a)
    except ValueError as e:
        sys.exit(f"evcli: bad JSON: {e}")
    try:
        answer = send(a.control, request, a.timeout)
    except (OSError, ValueError) as e:
        sys.exit(f"evcli: {e}")
    print(json.dumps(answer, indent=2, sort_keys=True))
    return 0 if answer.get("ok") is True else 1


if __name__ == "__main__":
    sys.exit(main())

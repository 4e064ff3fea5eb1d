"""Line-based console of the CSMS simulator: `python tools/csms.py [options]`.

It serves charge points and reads commands from stdin, one per line (`help` lists them). Frames
are printed as they pass, one line each. Replies to commands start with `OK `, `CALLERROR ` or
`ERROR `. When stdin closes the server keeps running until SIGINT or SIGTERM. The first line
printed is `CSMS READY url=<base URL>` (charge points append /<ChargePointId>).
"""

import argparse
import json
import signal
import sys
import time

import csms_ocppj as ocppj
from csms import NO_REPLY, CallError, CsmsSimulator, Error, NotConnected, ResponseViolation

HELP = """commands:
  status                                  connected charge points and settings
  call <cp> <Action> [json]               send a CALL, print the answer (json defaults to {})
  raw <cp> <text>                         send a frame as it is
  boot <Accepted|Pending|Rejected> [interval]   how to answer BootNotification
  tag <idTag> <status> [expiryDate]       idTagInfo for Authorize/Start/StopTransaction; status -: forget
  reply <Action> default|none|<json>|error <code> [description]   how to answer a charge point action
  disconnect <cp> [code]                  close the websocket (default code 1000)
  hang on|off                             stop/resume reading, answering and pinging
  frames <cp> [n]                         the last n frames (default 20)
  violations [cp]                         recorded protocol violations
  quit                                    stop the server and exit"""


class _Quit(Exception):
    pass


class Console:
    def __init__(self, csms, call_timeout):
        self.csms = csms
        self.call_timeout = call_timeout

    def out(self, text):
        self.csms.output(text)

    def execute(self, line):
        """Run one command line; every failure is printed, never raised (except quit)."""
        line = line.strip()
        if not line or line.startswith("#"):
            return
        name, _, rest = line.partition(" ")
        handler = getattr(self, "cmd_" + name.lower(), None)
        if handler is None:
            self.out(f"ERROR unknown command {name!r} (try help)")
            return
        try:
            handler(rest.strip())
        except _Quit:
            raise
        except (ValueError, KeyError, IndexError) as e:
            self.out(f"ERROR {e}")
        except NotConnected as e:
            self.out(f"ERROR {e}")
        except Exception as e:  # keep the console alive whatever happens
            self.out(f"ERROR {type(e).__name__}: {e}")

    def cmd_help(self, rest):
        self.out(HELP)

    def cmd_quit(self, rest):
        raise _Quit

    cmd_exit = cmd_quit

    def cmd_status(self, rest):
        csms = self.csms
        hang = "on" if csms.hanging else "off"
        unknown = "allowed" if csms.allow_unknown else "refused"
        boot = f"{csms.boot_status}/{csms.boot_interval}s"
        self.out(f"OK {csms.url} boot={boot} hang={hang} unknown_ids={unknown}")
        for cp_id in csms.cp_ids():
            state = "connected" if csms.connected(cp_id) else "disconnected"
            self.out(
                f"  {cp_id}: {state} connections={csms.connection_count(cp_id)} "
                f"frames={len(csms.frame_log(cp_id))} calls={len(csms.received(cp_id))} "
                f"violations={len(csms.violations_for(cp_id))}"
            )

    def cmd_call(self, rest):
        parts = rest.split(None, 2)
        if len(parts) < 2:
            raise ValueError("usage: call <cp> <Action> [json]")
        cp_id, action = parts[0], parts[1]
        known = ocppj.canonical_action(action)
        if known is None:
            raise ValueError(f"unknown action {action!r}")
        payload = _json_object(parts[2]) if len(parts) > 2 else {}
        try:
            reply = self.csms.call(cp_id, known, payload, self.call_timeout)
        except CallError as e:
            self.out(f"CALLERROR {e.code} {json.dumps(e.description)} {json.dumps(e.details)}")
        except ResponseViolation as e:
            self.out(f"ERROR invalid {e.action}.conf ({e.code}: {e.text}): {json.dumps(e.payload)}")
        except TimeoutError as e:
            self.out(f"ERROR {e}")
        else:
            self.out("OK " + json.dumps(reply))

    def cmd_raw(self, rest):
        cp_id, _, text = rest.partition(" ")
        if not cp_id or not text:
            raise ValueError("usage: raw <cp> <text>")
        self.csms.send_raw(cp_id, text)
        self.out("OK sent")

    def cmd_boot(self, rest):
        parts = rest.split()
        if not parts or parts[0] not in ("Accepted", "Pending", "Rejected"):
            raise ValueError("usage: boot <Accepted|Pending|Rejected> [interval]")
        self.csms.boot_status = parts[0]
        if len(parts) > 1:
            self.csms.boot_interval = int(parts[1])
        self.out(f"OK boot={self.csms.boot_status}/{self.csms.boot_interval}s")

    def cmd_tag(self, rest):
        parts = rest.split()
        if len(parts) < 2:
            raise ValueError("usage: tag <idTag> <status> [expiryDate]")
        if parts[1] == "-":
            self.csms.id_tags.pop(parts[0], None)
        else:
            info = {"status": parts[1]}
            if len(parts) > 2:
                info["expiryDate"] = parts[2]
            self.csms.id_tags[parts[0]] = info
        self.out("OK")

    def cmd_reply(self, rest):
        action, _, how = rest.partition(" ")
        known = ocppj.canonical_action(action) if action else None
        if known is None or not how:
            raise ValueError("usage: reply <Action> default|none|<json>|error <code> [description]")
        how = how.strip()
        if how == "default":
            self.csms.set_response(known, None)
        elif how == "none":
            self.csms.set_response(known, NO_REPLY)
        elif how.startswith("error"):
            words = how.split(None, 2)
            if len(words) < 2:
                raise ValueError("usage: reply <Action> error <code> [description]")
            self.csms.set_response(known, Error(words[1], words[2] if len(words) > 2 else ""))
        else:
            self.csms.set_response(known, _json_object(how))
        self.out("OK")

    def cmd_disconnect(self, rest):
        parts = rest.split()
        if not parts:
            raise ValueError("usage: disconnect <cp> [code]")
        self.csms.disconnect(parts[0], int(parts[1]) if len(parts) > 1 else 1000)
        self.out("OK")

    def cmd_hang(self, rest):
        if rest not in ("on", "off"):
            raise ValueError("usage: hang on|off")
        self.csms.hang(rest == "on")
        self.out("OK")

    def cmd_frames(self, rest):
        parts = rest.split()
        if not parts:
            raise ValueError("usage: frames <cp> [n]")
        count = int(parts[1]) if len(parts) > 1 else 20
        for direction, msg in self.csms.frames(parts[0])[-count:]:
            shown = msg if isinstance(msg, str) else ocppj.dumps(msg)
            self.out(f"  {'<-' if direction == 'in' else '->'} {shown}")
        self.out("OK")

    def cmd_violations(self, rest):
        found = self.csms.violations_for(rest) if rest else self.csms.violations
        for v in found:
            self.out(f"  {v.cp_id} {v.kind} {v.action} {v.code}: {v.text}")
        self.out(f"OK {len(found)} violations")


def _json_object(text):
    try:
        value = json.loads(text)
    except ValueError as e:
        raise ValueError(f"bad JSON: {e}") from None
    if not isinstance(value, dict):
        raise ValueError("the payload must be a JSON object")
    return value


def _auth_entry(text, hex_key):
    cp_id, sep, secret = text.partition(":")
    if not sep or not cp_id:
        raise argparse.ArgumentTypeError("expected CP_ID:SECRET")
    if hex_key:
        try:
            return cp_id, bytes.fromhex(secret)
        except ValueError:
            raise argparse.ArgumentTypeError("the key must be hexadecimal") from None
    return cp_id, secret


def parse_args(argv):
    p = argparse.ArgumentParser(prog="csms.py", description="OCPP 1.6-J CSMS simulator with a console.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9000, help="0 picks a free port (see the READY line)")
    p.add_argument("--path", default="/ocpp", help="URL path before the ChargePointId (any path is accepted)")
    p.add_argument("--cert", help="server certificate (PEM): serve wss://")
    p.add_argument("--key", help="server private key (PEM)")
    p.add_argument("--ca", help="CA (PEM) for client certificates: requires them (security profile 3)")
    p.add_argument(
        "--auth",
        action="append",
        default=[],
        type=lambda t: _auth_entry(t, False),
        metavar="CP:PASSWORD",
        help="HTTP Basic password of a charge point (repeatable)",
    )
    p.add_argument(
        "--auth-hex",
        action="append",
        default=[],
        type=lambda t: _auth_entry(t, True),
        metavar="CP:HEXKEY",
        help="like --auth, with the AuthorizationKey in hex (the password is the decoded bytes)",
    )
    p.add_argument("--refuse-unknown", action="store_true", help="refuse ids without --auth (HTTP 404)")
    p.add_argument("--boot-status", default="Accepted", choices=("Accepted", "Pending", "Rejected"))
    p.add_argument("--boot-interval", type=int, default=300)
    p.add_argument("--no-ping", action="store_true", help="no websocket keepalive pings from the server")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the answer to a call")
    p.add_argument("--log", help="append the frame log to this file")
    p.add_argument("--quiet", action="store_true", help="do not print frames on stdout")
    args = p.parse_args(argv)
    if bool(args.cert) != bool(args.key):
        p.error("--cert and --key go together")
    if args.ca and not args.cert:
        p.error("--ca needs --cert and --key")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    csms = CsmsSimulator(
        args.host,
        args.port,
        path=args.path,
        certfile=args.cert,
        keyfile=args.key,
        cafile=args.ca,
        basic_auth=dict(args.auth + args.auth_hex),
        allow_unknown=not args.refuse_unknown,
        ping_interval=None if args.no_ping else 20,
        log_file=args.log,
        echo=True,
        echo_frames=not args.quiet,
    )
    csms.boot_status = args.boot_status
    csms.boot_interval = args.boot_interval

    def on_signal(signum, frame):
        raise _Quit

    try:
        csms.start()
    except OSError as e:  # port in use, unreadable certificate...
        sys.stderr.write(f"csms.py: cannot serve on {args.host}:{args.port}: {e}\n")
        return 2
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    console = Console(csms, args.timeout)
    csms.output(f"CSMS READY url={csms.url}")  # supervisors (tools/run.py) read the URL here
    try:
        for line in sys.stdin:
            console.execute(line)
        while True:  # stdin closed: serve until a signal
            time.sleep(3600)
    except _Quit:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        csms.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Line-based console of the CSMS simulator: `python tools/csms.py [options]`, and the CSMS side of
`make run` (tools/run.py).

It serves charge points and reads commands from stdin, one per line (`help` lists them with an
example each). Frames are printed as they pass, one line each. Each command's result is printed
once, starting with `OK `, `CALLERROR ` or `ERROR ` (a GetConfiguration through `getconf` as a
table under its OK line). No input ends the session but `quit`: unbalanced quotes, bad JSON,
unknown commands, wrong arguments, huge lines and control characters all get a one-line ERROR.
When stdin closes the server keeps running until SIGINT or SIGTERM. The first line printed is
`CSMS READY url=<base URL>` (charge points append /<ChargePointId>).
"""

import argparse
import json
import re
import signal
import sys
import time

import csms_ocppj as ocppj
from csms import NO_REPLY, CallError, CsmsSimulator, Error, NotConnected, ResponseViolation

MAX_LINE = 65536  # characters of one command line; a raw frame over the charger's 10.5 KiB fits
MAX_ERROR = 300  # characters of an error message shown (one line)
LIMIT_PROFILE_ID = 9000  # the chargingProfileId of `limit`: the next `limit` replaces it
TRIGGERS = (
    "BootNotification",
    "DiagnosticsStatusNotification",
    "FirmwareStatusNotification",
    "Heartbeat",
    "MeterValues",
    "StatusNotification",
)

# (syntax, what it does, example), in the order `help` shows them.
COMMANDS = (
    ("status", "connected charge points and settings", "status"),
    ("cp [CP]", "show or choose the charge point the shortcuts below talk to", "cp CP001"),
    ("getconf [KEY..]", "GetConfiguration, answer as a table", "getconf HeartbeatInterval MaxCurrent"),
    ("setconf KEY VALUE", "ChangeConfiguration", "setconf HeartbeatInterval 60"),
    ("start TAG [CONNECTOR]", "RemoteStartTransaction", "start TAG1 1"),
    ("stop [TX]", "RemoteStopTransaction (default: the last running transaction)", "stop 3"),
    ("limit N[A|W]|off", f"TxDefaultProfile on connector 0 (every transaction), id {LIMIT_PROFILE_ID}; "
     "off clears it", "limit 10A"),
    ("reset soft|hard", "Reset", "reset soft"),
    ("trigger MSG [CONNECTOR]", "TriggerMessage: " + ", ".join(TRIGGERS), "trigger StatusNotification"),
    ("avail N on|off", "ChangeAvailability Operative|Inoperative (0: the charge point)", "avail 1 off"),
    ("call CP Action [JSON]", "any CALL (JSON defaults to {})", 'call CP001 Reset {"type":"Soft"}'),
    ("raw CP TEXT", "send a frame as it is", 'raw CP001 [2,"x1","Heartbeat",{}]'),
    ("boot Accepted|Pending|Rejected [INTERVAL]", "how to answer BootNotification", "boot Pending 10"),
    ("tag TAG STATUS|- [EXPIRY]", "idTagInfo for Authorize/Start/StopTransaction (-: forget)",
     "tag TAG2 Blocked"),
    ("reply Action default|none|JSON|error CODE [TEXT]", "how to answer a charge point action",
     "reply Heartbeat error InternalError"),
    ("disconnect CP [CODE]", "close the websocket (default code 1000)", "disconnect CP001"),
    ("hang on|off", "stop/resume reading, answering and pinging", "hang on"),
    ("frames CP [N]", "the last N frames (default 20)", "frames CP001 5"),
    ("violations [CP]", "recorded protocol violations", "violations CP001"),
    ("help", "this list", "help"),
    ("quit", "stop the server and exit", "quit"),
)  # fmt: skip
_HELP_WIDTH = 24
USAGE = {syntax.split()[0]: syntax for syntax, _, _ in COMMANDS}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class _Quit(Exception):
    pass


def _usage(name):
    return ValueError("usage: " + USAGE[name])


def _one_line(text):
    """An error text as one printable line of at most MAX_ERROR characters."""
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))
    return text if len(text) <= MAX_ERROR else text[:MAX_ERROR] + "..."


def _int(text, what):
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{what} must be an integer, not {text!r}") from None


class Console:
    def __init__(self, csms, call_timeout, cp_id=None):
        self.csms = csms
        self.call_timeout = call_timeout
        self.cp_id = cp_id  # the shortcuts' charge point; None: the only one connected

    def out(self, text):
        self.csms.output(text)

    def execute(self, line):
        """Run one command line; every failure is printed as one ERROR line, never raised (except
        quit)."""
        if len(line) > MAX_LINE:
            self.out(f"ERROR line too long ({len(line)} characters, at most {MAX_LINE})")
            return
        line = line.strip()
        if not line or line.startswith("#"):
            return
        name, _, rest = line.replace("\t", " ").partition(" ")
        handler = getattr(self, "cmd_" + name.lower(), None) if name.isidentifier() else None
        if handler is None:
            self.out(f"ERROR unknown command '{_one_line(name[:40])}' (try help)")
            return
        try:
            handler(rest.strip())
        except _Quit:
            raise
        except (ValueError, KeyError, IndexError, NotConnected) as e:
            self.out("ERROR " + _one_line(e))
        except Exception as e:  # keep the console alive whatever happens
            self.out(f"ERROR {type(e).__name__}: {_one_line(e)}")

    def cmd_help(self, rest):
        pad = " " * (_HELP_WIDTH + 4)
        lines = ["commands (CP: a ChargePointId; the shortcuts getconf..avail talk to `cp`):"]
        for syntax, text, example in COMMANDS:
            if len(syntax) > _HELP_WIDTH:
                lines += [f"  {syntax}", f"{pad}{text}"]
            else:
                lines.append(f"  {syntax:<{_HELP_WIDTH}}  {text}")
            lines.append(f"{pad}e.g. {example}")
        self.out("\n".join(lines))

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

    # -- calls ------------------------------------------------------------------------------------

    def _send(self, cp_id, action, payload):
        """The answer's payload, or None once a CALLERROR / violation / timeout is printed."""
        try:
            return self.csms.call(cp_id, action, payload, self.call_timeout)
        except CallError as e:
            self.out(f"CALLERROR {e.code} {json.dumps(e.description)} {json.dumps(e.details)}")
        except ResponseViolation as e:
            self.out(f"ERROR invalid {e.action}.conf ({e.code}: {e.text}): {json.dumps(e.payload)}")
        except TimeoutError as e:
            self.out(f"ERROR {e}")
        return None

    def _shortcut(self, action, payload):
        reply = self._send(self.target(), action, payload)
        if reply is not None:
            self.out(f"OK {action} " + json.dumps(reply))

    def target(self):
        """The charge point the shortcuts talk to: the chosen one, else the only one connected."""
        if self.cp_id:
            return self.cp_id
        ids = self.csms.connected_ids()
        if len(ids) == 1:
            return ids[0]
        if not ids:
            raise ValueError("no charge point connected")
        raise ValueError(f"several charge points connected ({', '.join(ids)}): choose one with cp CP")

    def cmd_cp(self, rest):
        if rest:
            if len(rest.split()) != 1:
                raise _usage("cp")
            self.cp_id = rest
        shown = self.cp_id or "(the only one connected)"
        self.out(f"OK cp {shown}")

    def cmd_call(self, rest):
        parts = rest.split(None, 2)
        if len(parts) < 2:
            raise _usage("call")
        cp_id, action = parts[0], parts[1]
        known = ocppj.canonical_action(action)
        if known is None:
            raise ValueError(f"unknown action {action[:40]!r}")
        payload = _json_object(parts[2]) if len(parts) > 2 else {}
        reply = self._send(cp_id, known, payload)
        if reply is not None:
            self.out("OK " + json.dumps(reply))

    def cmd_getconf(self, rest):
        keys = rest.split()
        reply = self._send(self.target(), "GetConfiguration", {"key": keys} if keys else {})
        if reply is None:
            return
        entries = reply.get("configurationKey", [])
        width = max([len(e["key"]) for e in entries] + [3])
        lines = [f"OK GetConfiguration: {len(entries)} keys"]
        for e in entries:
            access = "R " if e.get("readonly") else "RW"
            value = e.get("value")
            lines.append(f"  {e['key']:<{width}}  {access}  {'(not readable)' if value is None else value}")
        if reply.get("unknownKey"):
            lines.append("  unknown: " + ", ".join(reply["unknownKey"]))
        self.out("\n".join(lines))

    def cmd_setconf(self, rest):
        key, _, value = rest.partition(" ")
        if not key or not value.strip():
            raise _usage("setconf")
        self._shortcut("ChangeConfiguration", {"key": key, "value": value.strip()})

    def cmd_start(self, rest):
        parts = rest.split()
        if not 1 <= len(parts) <= 2:
            raise _usage("start")
        payload = {"idTag": parts[0]}
        if len(parts) == 2:
            payload["connectorId"] = _int(parts[1], "CONNECTOR")
        self._shortcut("RemoteStartTransaction", payload)

    def cmd_stop(self, rest):
        parts = rest.split()
        if len(parts) > 1:
            raise _usage("stop")
        if parts:
            tx = _int(parts[0], "TX")
        else:
            cp_id = self.target()
            with self.csms._cond:  # the server thread adds to it
                known = list(self.csms.transactions.items())
            running = [t for t, r in known if r["cp_id"] == cp_id and not r["stop"]]
            if not running:
                raise ValueError(f"no running transaction of {cp_id} known: stop TX")
            tx = max(running)
        self._shortcut("RemoteStopTransaction", {"transactionId": tx})

    def cmd_limit(self, rest):
        if rest.lower() == "off":
            self._shortcut("ClearChargingProfile", {"id": LIMIT_PROFILE_ID})
            return
        m = re.fullmatch(r"(\d+(?:\.\d)?)\s*([AaWw]?)", rest)
        if not m:
            raise _usage("limit")
        unit = m.group(2).upper() or "A"
        profile = {
            "chargingProfileId": LIMIT_PROFILE_ID,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": {
                "chargingRateUnit": unit,
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": float(m.group(1))}],
            },
        }
        self._shortcut("SetChargingProfile", {"connectorId": 0, "csChargingProfiles": profile})

    def cmd_reset(self, rest):
        if rest.lower() not in ("soft", "hard"):
            raise _usage("reset")
        self._shortcut("Reset", {"type": rest.capitalize()})

    def cmd_trigger(self, rest):
        parts = rest.split()
        if not 1 <= len(parts) <= 2:
            raise _usage("trigger")
        msg = next((m for m in TRIGGERS if m.lower() == parts[0].lower()), None)
        if msg is None:
            raise ValueError(f"MSG is one of {', '.join(TRIGGERS)}")
        payload = {"requestedMessage": msg}
        if len(parts) == 2:
            payload["connectorId"] = _int(parts[1], "CONNECTOR")
        self._shortcut("TriggerMessage", payload)

    def cmd_avail(self, rest):
        parts = rest.split()
        if len(parts) != 2 or parts[1].lower() not in ("on", "off"):
            raise _usage("avail")
        kind = "Operative" if parts[1].lower() == "on" else "Inoperative"
        self._shortcut("ChangeAvailability", {"connectorId": _int(parts[0], "N"), "type": kind})

    # -- the simulator's own settings ----------------------------------------------------------

    def cmd_raw(self, rest):
        cp_id, _, text = rest.partition(" ")
        if not cp_id or not text:
            raise _usage("raw")
        self.csms.send_raw(cp_id, text)
        self.out("OK sent")

    def cmd_boot(self, rest):
        parts = rest.split()
        if not 1 <= len(parts) <= 2 or parts[0] not in ("Accepted", "Pending", "Rejected"):
            raise _usage("boot")
        interval = _int(parts[1], "INTERVAL") if len(parts) > 1 else self.csms.boot_interval
        self.csms.boot_status = parts[0]
        self.csms.boot_interval = interval
        self.out(f"OK boot={self.csms.boot_status}/{self.csms.boot_interval}s")

    def cmd_tag(self, rest):
        parts = rest.split()
        if not 2 <= len(parts) <= 3:
            raise _usage("tag")
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
            raise _usage("reply")
        how = how.strip()
        if how == "default":
            self.csms.set_response(known, None)
        elif how == "none":
            self.csms.set_response(known, NO_REPLY)
        elif how.startswith("error"):
            words = how.split(None, 2)
            if len(words) < 2:
                raise _usage("reply")
            self.csms.set_response(known, Error(words[1], words[2] if len(words) > 2 else ""))
        else:
            self.csms.set_response(known, _json_object(how))
        self.out("OK")

    def cmd_disconnect(self, rest):
        parts = rest.split()
        if not 1 <= len(parts) <= 2:
            raise _usage("disconnect")
        self.csms.disconnect(parts[0], _int(parts[1], "CODE") if len(parts) > 1 else 1000)
        self.out("OK")

    def cmd_hang(self, rest):
        if rest not in ("on", "off"):
            raise _usage("hang")
        self.csms.hang(rest == "on")
        self.out("OK")

    def cmd_frames(self, rest):
        parts = rest.split()
        if not 1 <= len(parts) <= 2:
            raise _usage("frames")
        count = _int(parts[1], "N") if len(parts) > 1 else 20
        lines = []
        for direction, msg in self.csms.frames(parts[0])[-count:] if count > 0 else []:
            shown = msg if isinstance(msg, str) else ocppj.dumps(msg)
            lines.append(f"  {'<-' if direction == 'in' else '->'} {_one_line(shown)}")
        self.out("\n".join(lines + ["OK"]))

    def cmd_violations(self, rest):
        found = self.csms.violations_for(rest) if rest else self.csms.violations
        lines = [f"  {v.cp_id} {v.kind} {v.action} {v.code}: {_one_line(v.text)}" for v in found]
        self.out("\n".join(lines + [f"OK {len(found)} violations"]))


def _json_object(text):
    try:
        value = json.loads(text)
    except ValueError as e:
        raise ValueError(f"bad JSON: {e}") from None
    if not isinstance(value, dict):
        raise ValueError("the payload must be a JSON object")
    return value


def robust_stdin():
    """Bytes that are not UTF-8 must not end the session: they read as U+FFFD."""
    try:
        sys.stdin.reconfigure(errors="replace")
    except (AttributeError, ValueError):
        pass  # not a text stream we can change (a test's replacement): taken as it is


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
    robust_stdin()
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

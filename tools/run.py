"""`make run`: the CSMS simulator and one simulated charger on localhost, with a live log and a
console that drives both.

  make run                                   # local CSMS + charger CP001, a fresh flash
  make run ARGS="--keep"                     # the flash (configuration, journal) of the last run
  make run ARGS="--tls"                      # wss:// with a test PKI, security profile 2
  make run ARGS="--tls --profile 3"          # wss:// with a client certificate
  make run ARGS="--quiet"                    # no Heartbeat / MeterValues in the log
  make run ARGS="--csms ws://host:9000/ocpp"  # the charger against an external CSMS
  make run ARGS="--csms wss://host/ocpp --ca root.pem --profile 2 --auth-key KEY"
  make run ARGS="--id CP7 --connectors 2"

Console lines: EV and hardware commands go to the charger (the same words as tools/evcli.py:
`plug 1 [--amps 32]`, `ev 1 C`, `ev-limit 1 16`, `unplug 1`, `rfid TAG1`, `fault rcd 1 on`,
`network down`, `state`, `events`); `filter on|off` hides or shows Heartbeat and MeterValues;
everything else goes to the CSMS console (`getconf`, `setconf HeartbeatInterval 60`, `start TAG1`,
`stop`, `limit 10A`, `reset soft`, `trigger MSG`, `avail 1 off`, `call CP001 Reset {"type":"Soft"}`,
`boot Pending 10`, `help`, ...). No typo ends the session: every bad line gets one ERROR line.
`quit` or Ctrl-C stops both.

The log: every line starts with the local wall-clock time (HH:MM:SS.mmm) and its source: `csms`
(each OCPP frame at the CSMS simulator), `fw` (the firmware's log; with an external CSMS its
frames too), `hw` (the charger's pins: pilot, PWM and the current it offers, contactor, lock,
status, the charging profiles' limit, transactions by OCPP transactionId), `con` (results of
console commands), `ev` (answers of charger commands), `run`/`sim` (this tool, the sim). Lines
are shown in the order they happened (held back HOLD_S to merge the sources); everything, also
what the filter hides, goes to DATA/run.log. Each run starts with a fresh data directory (flash,
log) unless --keep.
"""

import argparse
import heapq
import json
import re
import secrets
import shlex
import shutil
import socket
import sys
import threading
import time
from pathlib import Path

import evcli
from csms import CsmsSimulator, clock_text
from csms_console import Console, _Quit, robust_stdin
from sim_world import ev_reads_amps
from simctl import SimProcess

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT / "data" / "run"
EV_COMMANDS = {"plug", "ev", "ev-limit", "unplug", "rfid", "fault", "network", "state", "events", "ping"}
HOLD_S = 0.3  # a line waits this long for older lines from the other sources before it is shown
SCREEN_MAX = 2000  # characters of a line on screen; run.log gets all of it
NOISY = ("Heartbeat", "MeterValues")
POLL_S = 0.05  # the firmware log is read this often; the hardware event log every 2 * POLL_S
CALIBRATIONS = 3  # `state` requests that place the hardware event log's clock
SANE_AGE_MS = 600_000  # a firmware tick older than this is not our clock: stamped on arrival
TICKS_PERIOD_32 = 1 << 30  # time.ticks_ms() wraps here on a 32-bit port
PROFILES = {
    0: "no authentication",
    1: "HTTP Basic auth over ws://",
    2: "TLS + HTTP Basic auth",
    3: "TLS + client certificate",
}
DATA_MARKERS = ("sim_args.json", "flash.img", "firmware.log", "run.log")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csms", help="external CSMS URL (ws:// or wss://) instead of the local simulator")
    ap.add_argument("--port", type=int, default=9000, help="local CSMS port (0 = any free port)")
    ap.add_argument("--id", default="CP001", help="ChargePointId")
    ap.add_argument("--connectors", type=int, default=1)
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="the charger's data directory (flash, logs)")
    ap.add_argument(
        "--keep", action="store_true",
        help="reuse the data directory of the last run (its configuration, journal, cache); "
        "default: cleared, so nothing changed at run time carries over",
    )  # fmt: skip
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="configuration key")
    ap.add_argument("--tls", action="store_true", help="serve wss:// with a test PKI (DATA/pki), profile 2")
    ap.add_argument(
        "--profile", type=int, choices=range(4), help="SecurityProfile (0..3; 2 and 3 imply --tls)"
    )
    ap.add_argument(
        "--auth-key", metavar="KEY", help="AuthorizationKey (profiles 1, 2; default: a random one)"
    )
    ap.add_argument("--ca", help="external CSMS: its root certificate (PEM or DER)")
    ap.add_argument("--cert", help="external CSMS, profile 3: the charger's certificate")
    ap.add_argument("--key", help="external CSMS, profile 3: the charger's private key")
    ap.add_argument("--quiet", action="store_true", help="hide Heartbeat and MeterValues (console: filter)")
    a = ap.parse_args(argv)
    for item in a.set:
        if "=" not in item or not item.split("=", 1)[0].strip():
            ap.error(f"--set expects KEY=VALUE, not {item!r}")
    a.sets = dict(item.split("=", 1) for item in a.set)
    try:
        a.plan = security_plan(a)
    except ValueError as e:
        ap.error(str(e))
    return a


# -- security profiles ---------------------------------------------------------------------------


def basic_password(key, as_text=False):
    """The HTTP Basic password the firmware sends for `key` (firmware/cp/link_open.py): a 32-40
    digit hex key as the bytes it encodes, unless AuthorizationKeyAsText."""
    if not as_text and 32 <= len(key) <= 40 and not len(key) % 2:
        try:
            return bytes.fromhex(key)
        except ValueError:
            pass
    return key


def _truthy(text):
    return str(text).strip().lower() in ("1", "true")


def security_plan(a):
    """What the profile needs: {"profile", "tls", "key", "pki"} (pki: make one for the local CSMS).
    Raises ValueError for a combination that cannot connect."""
    key = a.auth_key or a.sets.get("AuthorizationKey")
    if key is not None and not 16 <= len(key) <= 40:
        raise ValueError("an AuthorizationKey has 16..40 characters")
    profile = a.profile
    if profile is None and "SecurityProfile" in a.sets:
        try:
            profile = int(a.sets["SecurityProfile"])
        except ValueError:
            raise ValueError("SecurityProfile must be 0..3") from None
    if profile is not None and profile not in PROFILES:
        raise ValueError("SecurityProfile must be 0..3")
    if a.csms and not re.match(r"wss?://", a.csms):
        raise ValueError("--csms must be a ws:// or wss:// URL")
    if a.csms:
        if a.tls:
            raise ValueError(
                "--tls serves the local CSMS over wss://; an external one: --csms wss://... --ca ROOT"
            )
        tls = a.csms.startswith("wss://")
        if tls and not a.ca:
            raise ValueError("a wss:// CSMS needs --ca (its root certificate, PEM or DER)")
        if profile == 1 and tls or profile in (2, 3) and not tls:
            raise ValueError(f"security profile {profile} does not go with {a.csms.split(':', 1)[0]}://")
        if profile in (1, 2) and key is None:
            raise ValueError(f"security profile {profile} needs the CSMS's key: --auth-key KEY")
        if profile == 3 and not (a.cert and a.key):
            raise ValueError("security profile 3 needs --cert and --key (the charger's certificate and key)")
        return {"profile": profile, "tls": tls, "key": key, "pki": False}
    if a.ca or a.cert or a.key:
        raise ValueError(
            "--ca/--cert/--key are for an external CSMS (--csms wss://...); --tls makes a test PKI"
        )
    if profile is None:
        profile = 2 if a.tls else 0
    if a.tls and profile < 2:
        raise ValueError("--tls is security profile 2 (Basic auth) or 3 (client certificate)")
    if profile in (1, 2) and key is None:
        key = secrets.token_hex(20)  # 40 hex digits: sent as the 20 bytes they encode
    return {
        "profile": profile,
        "tls": profile >= 2,
        "key": key if profile in (1, 2) else None,
        "pki": profile >= 2,
    }


def apply_plan(a, data):
    """(CsmsSimulator keyword arguments, SimProcess keyword arguments, lines to show)."""
    plan = a.plan
    profile, key = plan["profile"], plan["key"]
    sets = dict(a.sets)
    if profile is not None:
        sets["SecurityProfile"] = profile
    if key is not None:
        sets["AuthorizationKey"] = key
    sim_kw = {"sets": sets, "ca": a.ca, "cert": a.cert, "key": a.key}
    csms_kw, lines = {}, []
    if profile is not None:
        lines.append(f"security profile {profile}: {PROFILES[profile]}")
    if plan["pki"]:
        from csms_pki import describe, make_pki

        pki = make_pki(data / "pki", cp_ids=(a.id,))
        csms_kw.update(certfile=pki["server_cert"], keyfile=pki["server_key"])
        sim_kw["ca"] = pki["ca_der"]
        if profile == 3:
            csms_kw["cafile"] = pki["ca"]  # client certificates required
            sim_kw.update(cert=pki["cp"][a.id]["cert_der"], key=pki["cp"][a.id]["key_der"])
        lines.append(f"test PKI in {data / 'pki'} (python tools/csms_pki.py DIR makes one):")
        lines += describe(pki)
    if key is not None:
        as_text = _truthy(sets.get("AuthorizationKeyAsText", "false"))
        if not a.csms:
            csms_kw["basic_auth"] = {a.id: basic_password(key, as_text)}
        how = "as typed" if isinstance(basic_password(key, as_text), str) else "as the bytes its hex encodes"
        sides = "the charger's" if a.csms else "on both sides"
        lines.append(f"AuthorizationKey {key} ({sides}; the Basic password is the key {how})")
    return csms_kw, sim_kw, lines


# -- the data directory --------------------------------------------------------------------------


def prepare_data(path, keep):
    """The data directory, fresh unless `keep`; the logs of a kept one move to *.prev.log.
    A directory with files that are not a charger's is never cleared (ValueError)."""
    path = Path(path)
    if keep:
        path.mkdir(parents=True, exist_ok=True)
        for name in ("firmware.log", "run.log"):
            if (path / name).exists():
                (path / name).replace(path / name.replace(".log", ".prev.log"))
        return path
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"{path} is not a directory")
        entries = list(path.iterdir())
        if entries and not any((path / m).exists() for m in DATA_MARKERS):
            raise ValueError(f"{path} holds files that are not a charger's: not cleared (another --data)")
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


# -- the merged log ------------------------------------------------------------------------------

_CALL = re.compile(r'\[\s*2\s*,\s*"((?:[^"\\]|\\.)*)"\s*,\s*"(\w+)"')
_ANSWER = re.compile(r'\[\s*[34]\s*,\s*"((?:[^"\\]|\\.)*)"')


class NoiseFilter:
    """Which frames are a Heartbeat or MeterValues CALL, or the answer to one."""

    def __init__(self):
        self._open = set()  # (channel, caller, uid) of noisy CALLs not answered yet

    def noisy(self, channel, sender, frame):
        """sender: "cp" or "csms", the side that sent `frame` (text of an OCPP-J array)."""
        m = _CALL.match(frame)
        if m:
            if m.group(2) in NOISY:
                self._open.add((channel, sender, m.group(1)))
                return True
            return False
        m = _ANSWER.match(frame)
        if m:
            caller = "csms" if sender == "cp" else "cp"
            entry = (channel, caller, m.group(1))
            if entry in self._open:
                self._open.discard(entry)
                return True
        return False


class Log:
    """Lines from every source, each with its wall-clock time, shown in time order: a line is held
    HOLD_S so that older lines from slower sources get in before it."""

    def __init__(self, out=None, path=None, quiet=False, rewrite=None, hold=HOLD_S):
        self.out = out or sys.stdout
        self.file = open(path, "a", encoding="utf-8", buffering=1) if path else None
        self.quiet = quiet
        self.rewrite = rewrite  # rewrite(tag, text) at show time (transaction names)
        self.hold = hold
        self.noise = NoiseFilter()
        self._heap = []
        self._seq = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log", daemon=True)
        self._thread.start()

    def add(self, t, tag, text, noisy=False):
        """A line that happened at `t` (time.time()); a noisy one is hidden while the filter is on
        when it arrives."""
        with self._lock:
            self._seq += 1
            heapq.heappush(self._heap, (t, self._seq, tag, text, noisy and self.quiet))

    def now(self, tag, text):
        self.add(time.time(), tag, text)

    def frame(self, t, tag, channel, sender, head, frame):
        """An OCPP frame line: `head` + `frame`, hidden by the filter when noisy."""
        self.add(t, tag, head + frame, self.noise.noisy(channel, sender, frame))

    def _run(self):
        while not self._stop.wait(POLL_S):
            self.flush(time.time() - self.hold)

    def flush(self, until=None):
        while True:
            with self._lock:
                if not self._heap or (until is not None and self._heap[0][0] > until):
                    return
                entry = heapq.heappop(self._heap)
            self._show(*entry)

    def _show(self, t, seq, tag, text, hidden):
        if self.rewrite is not None:
            text = self.rewrite(tag, text)
        stamp = clock_text(t)
        lines = [f"{stamp} {tag:<4} {line}" for line in str(text).split("\n")]
        if self.file is not None:
            self.file.write("\n".join(lines) + "\n")
        if hidden:
            return
        shown = "\n".join(line if len(line) <= SCREEN_MAX else line[:SCREEN_MAX] + " ..." for line in lines)
        try:
            self.out.write(shown + "\n")
            self.out.flush()
        except (OSError, ValueError):
            pass  # nobody reads the screen any more: keep running

    def close(self):
        self._stop.set()
        self._thread.join(5)
        self.flush()
        if self.file is not None:
            self.file.close()
            self.file = None


# -- the sim's clocks ----------------------------------------------------------------------------


class Clock:
    """Wall-clock times of the sim's clocks: the firmware's time.ticks_ms() (CLOCK_MONOTONIC in
    ms on the Unix port, the clock of time.monotonic()) and the hardware event log's t_ms (ms since
    the sim's world began, learnt from a `state` answer)."""

    def __init__(self):
        self.world_t0 = None  # time.monotonic() when the sim's world began

    @staticmethod
    def from_monotonic(mono_s):
        return mono_s + (time.time() - time.monotonic())

    def ticks(self, ticks, arrival):
        age = time.monotonic() * 1000 - ticks
        if not -1000 < age < SANE_AGE_MS:
            age %= TICKS_PERIOD_32
            if age > SANE_AGE_MS:
                return arrival  # another clock (an emulated board): when we saw it
        return time.time() - max(age, 0) / 1000

    def calibrate(self, t_ms, after):
        """A `state` answer's t_ms, taken just before it was sent, and when it arrived: the
        estimate is never earlier than the truth, so the smallest of several is kept."""
        t0 = after - t_ms / 1000 - 0.0005  # t_ms is whole ms: the middle of the one it names
        self.world_t0 = t0 if self.world_t0 is None else min(self.world_t0, t0)

    def event(self, t_ms, arrival):
        if self.world_t0 is None:
            return arrival
        return self.from_monotonic(self.world_t0 + t_ms / 1000)


_FW = re.compile(r"^(\d+) fw (.*)$")


def firmware_lines(path, log, clock, frames_too, stop):
    """Show the charger's log lines (the sim's stderr, written to `path`) as they are written."""
    pos, rest = 0, ""
    while True:
        stopping = stop.is_set()
        try:
            with open(path, errors="replace") as f:
                f.seek(pos)
                chunk = f.read()
                pos = f.tell()
        except OSError:
            chunk = ""
        arrival = time.time()
        *complete, rest = (rest + chunk).split("\n")
        for line in complete:
            show_firmware_line(line.rstrip("\r"), log, clock, frames_too, arrival)
        if stopping:
            return
        stop.wait(POLL_S)


def show_firmware_line(line, log, clock, frames_too, arrival):
    if not line.strip():
        return
    m = _FW.match(line)
    if not m:  # the sim supervisor's own lines, a traceback
        log.add(arrival, "sim", line)
        return
    t = clock.ticks(int(m.group(1)), arrival)
    text = m.group(2)
    if text[:2] in ("< ", "> "):
        if frames_too:
            sender = "cp" if text[0] == ">" else "csms"
            log.frame(t, "fw", "fw", sender, text[:2], text[2:])
        return
    log.add(t, "fw", text.rstrip())


# -- the charger's hardware events ---------------------------------------------------------------


class Control:
    """A connection of our own to the sim's control socket (one per thread)."""

    def __init__(self, port, timeout=5.0):
        self.port = port
        self.timeout = timeout
        self._conn = None

    def request(self, obj):
        try:
            if self._conn is None:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
                self._conn = (s, s.makefile("rb"))
            s, f = self._conn
            s.sendall(json.dumps(obj).encode() + b"\n")
            line = f.readline()
            if not line:
                raise ConnectionError("control socket closed")
            return json.loads(line)
        except (OSError, ValueError):
            self.close()
            raise

    def close(self):
        if self._conn is not None:
            self._conn[0].close()
            self._conn = None


class Transactions:
    """The OCPP transactionId of each transaction the firmware started (its events and log name
    the journal key)."""

    _LINE = re.compile(r"\btransaction (\d+) (started|stopped)")

    def __init__(self):
        self.ids = {}  # journal key -> transactionId
        self.running = {}  # connector -> journal key
        self.pending = {}  # connector -> journal key whose StartTransaction is not answered yet

    def name(self, key):
        tid = self.ids.get(key)
        return "transaction (no transactionId yet)" if tid is None else f"transactionId {tid}"

    def rewrite(self, tag, text):
        if tag != "fw":
            return text
        return self._LINE.sub(lambda m: f"{self.name(int(m.group(1)))} {m.group(2)}", text)


def _amps(value):
    return f"{value:g} A" if isinstance(value, (int, float)) else f"{value} A"


def describe_event(ev, txs):
    """One hw line for a hardware event (None: not shown)."""
    kind, c, v = ev["kind"], ev["connector"], ev["value"]
    where = f"connector {c} " if c else ""
    if kind == "status":
        text = f"status {v}"
    elif kind == "cp":
        text = f"pilot {v}"
    elif kind == "pwm":
        if isinstance(v, (int, float)) and 0 < v < 100:
            text = f"PWM {v:g} %: {_amps(round(ev_reads_amps(round(v * 10)), 1))} offered"
        else:
            text = f"PWM off ({v} %): no current offered"
    elif kind == "relay":
        text = "contactor closed" if v else "contactor open"
    elif kind == "lock":
        text = "cable locked" if v else "cable unlocked"
    elif kind == "plug":
        text = f"cable plugged in (rated {_amps(v)})"
    elif kind == "unplug":
        text = "cable unplugged"
    elif kind == "ev":
        text = f"EV state {v}"
    elif kind == "ev_limit":
        text = f"EV draws at most {_amps(v)}"
    elif kind == "network":
        text = "network up" if v else "network down"
    elif kind == "fault" and isinstance(v, dict):
        text = f"simulated fault {v.get('fault')} {'on' if v.get('active') else 'off'}"
    elif kind == "fault":
        text = f"fault {v} detected"
    elif kind == "fault_clear":
        text = f"fault {v} cleared"
    elif kind == "rfid":
        text = f"card {v} held to the reader"
    elif kind == "card":
        text = f"card {v} read"
    elif kind == "auth":
        text = f"authorization {v}"
    elif kind == "limit":
        text = "charging profile limit: none" if v is None else f"charging profile limit {_amps(v)}"
    elif kind == "boot":
        text = f"firmware started (boot {v})"
    elif kind == "tx_start":
        txs.running[c] = v
        if v not in txs.ids:
            txs.pending[c] = v
            return where + "transaction started, no transactionId yet (StartTransaction not answered)"
        text = f"transaction started: {txs.name(v)}"
    elif kind == "tx_stop":
        key = txs.running.pop(c, None)
        txs.pending.pop(c, None)
        text = f"{txs.name(key)} stopped: {v}"
    else:
        text = f"{kind} {json.dumps(v)}"
    return where + text


def hardware_events(port, log, clock, txs, stop):
    """Show the charger's hardware event log (pins, status, limit, transactions) as it grows."""
    ctl = Control(port)
    seq = calibrations = 0
    while not stop.wait(2 * POLL_S):
        try:
            while calibrations < CALIBRATIONS:
                st = ctl.request({"cmd": "state"})
                clock.calibrate(st["t_ms"], time.monotonic())
                calibrations += 1
            arrival = time.time()
            reply = ctl.request({"cmd": "events", "since": seq})
            for ev in reply.get("events", []):
                seq = ev["seq"]
                starting = ev["kind"] == "tx_start"
                if starting:
                    resolve(ctl, txs, ev["connector"], ev["value"])
                text = describe_event(ev, txs)
                if text is not None:
                    log.add(clock.event(ev["t_ms"], arrival), "hw", text)
            for c, key in list(txs.pending.items()):
                if resolve(ctl, txs, c, key):
                    del txs.pending[c]
                    log.now("hw", f"connector {c} StartTransaction answered: {txs.name(key)}")
        except (OSError, ValueError, KeyError, TypeError):
            ctl.close()  # restarting after a Reset: try again
    ctl.close()


def resolve(ctl, txs, c, key):
    """Learn the transactionId of journal key `key` on connector c from the charger's state."""
    if key in txs.ids:
        return True
    st = ctl.request({"cmd": "state"})
    conn = next((x for x in st.get("connectors", []) if x.get("id") == c), None)
    tid = conn.get("transaction_id") if conn else None
    if tid is None:
        return False
    txs.ids[key] = tid
    return True


# -- console -------------------------------------------------------------------------------------


def ev_command(sim, line):
    try:
        words = shlex.split(line, posix=True)
    except ValueError as e:  # unbalanced quotes
        return f"ERROR {e}"
    try:
        args = evcli.parse_args(["--control", f"127.0.0.1:{sim.port}", *words])
        return json.dumps(sim.request(evcli.build_request(args)))
    except SystemExit:  # argparse has printed why on stderr
        return "ERROR bad command (see tools/evcli.py --help)"
    except (OSError, AssertionError, ValueError) as e:  # the charger restarting, or refusing it
        return f"ERROR {type(e).__name__}: {e}"


def filter_command(log, rest):
    word = rest.strip().lower()
    if word in ("on", "off"):
        log.quiet = word == "on"
    elif word:
        return "ERROR usage: filter on|off (on hides Heartbeat and MeterValues)"
    state = "on: Heartbeat and MeterValues hidden" if log.quiet else "off: every frame shown"
    return f"OK filter {state} (run.log has everything)"


def command(line, sim, console, log):
    """One console line: to the charger, the log filter or the CSMS console. Nothing a person
    types may end the session but quit: every failure is one ERROR line."""
    words = line.split(None, 1)
    if not words:
        return None
    first = words[0].lower()
    if first in ("quit", "exit"):
        return "quit"
    try:
        if first == "help":
            log.now("run", "charger: " + ", ".join(sorted(EV_COMMANDS)) + " (tools/evcli.py --help)")
            log.now("run", "filter on|off: hide or show Heartbeat and MeterValues (e.g. filter on)")
            if console:
                console.execute(line)
        elif first in ("filter", "quiet"):
            log.now("run", filter_command(log, words[1] if len(words) > 1 else ""))
        elif first in EV_COMMANDS:
            log.now("ev", ev_command(sim, line))
        elif console:
            console.execute(line)
        else:
            log.now(
                "run", "ERROR no local CSMS: only charger commands (" + ", ".join(sorted(EV_COMMANDS)) + ")"
            )
    except _Quit:
        return "quit"
    except Exception as e:  # a bug in a command must not take the charger and the CSMS down
        log.now("run", f"ERROR {type(e).__name__}: {e}")
    return None


def csms_sink(log):
    def sink(t, cp_id, text):
        if cp_id is None:  # a console result
            log.add(t, "con", text)
        elif text[:3] in ("<- ", "-> "):
            log.frame(t, "csms", cp_id, "cp" if text[0] == "<" else "csms", f"{cp_id} {text[:3]}", text[3:])
        else:
            log.add(t, "csms", f"{cp_id or '-'} {text}")

    return sink


def main(argv=None):
    a = parse_args(argv)
    try:
        data = prepare_data(a.data, a.keep)
    except (ValueError, OSError) as e:
        sys.stderr.write(f"run: {e}\n")
        return 2
    txs = Transactions()
    log = Log(sys.stdout, data / "run.log", quiet=a.quiet, rewrite=txs.rewrite)
    clock = Clock()
    stop = threading.Event()
    csms = sim = None
    threads = []
    try:
        csms_kw, sim_kw, lines = apply_plan(a, data)
        if not a.csms:
            csms = CsmsSimulator("127.0.0.1", a.port, sink=csms_sink(log), **csms_kw)
            csms.start()
        url = a.csms or csms.url
        kept = (
            "kept from the last run (--keep): its configuration, journal and cache carry over"
            if a.keep
            else "fresh (--keep reuses it next time)"
        )
        log.now(
            "run",
            f"{time.strftime('%Y-%m-%d')}, times are local; data {data}: {kept}; log {data / 'run.log'}",
        )
        for line in lines:
            log.now("run", line)
        log_path = data / "firmware.log"
        sim = SimProcess(data, csms=url, cp_id=a.id, connectors=a.connectors, log_path=log_path, **sim_kw)
        follow = threading.Thread(
            target=firmware_lines, args=(log_path, log, clock, csms is None, stop), daemon=True
        )
        follow.start()
        threads.append(follow)
        sim.start()
        log.now("run", f"charger {a.id} -> {url}/{a.id}; control socket 127.0.0.1:{sim.port}; type help")
        hw = threading.Thread(target=hardware_events, args=(sim.port, log, clock, txs, stop), daemon=True)
        hw.start()
        threads.append(hw)
        console = Console(csms, 30.0, cp_id=a.id) if csms else None
        robust_stdin()
        for line in sys.stdin:
            if command(line, sim, console, log) == "quit":
                break
        else:
            while True:  # stdin closed (not a terminal): keep running until Ctrl-C
                time.sleep(3600)
    except (KeyboardInterrupt, _Quit):
        pass
    except (RuntimeError, TimeoutError, OSError) as e:  # the sim did not start, the port is taken
        log.now("run", f"ERROR {type(e).__name__}: {e}")
        return 1
    finally:
        if sim is not None:
            sim.close()
        stop.set()
        for t in threads:
            t.join(5)
        if csms is not None:
            csms.stop()
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

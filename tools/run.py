"""`make run`: the CSMS simulator and one simulated charger on localhost, with a live log and a
console that drives both.

  make run                                   # local CSMS + charger CP001
  make run ARGS="--csms ws://host:9000/ocpp"  # the charger against an external CSMS
  make run ARGS="--id CP7 --connectors 2"

Console lines: EV and hardware commands go to the charger (the same words as tools/evcli.py:
`plug 1 [--amps 32]`, `ev 1 C`, `ev-limit 1 16`, `unplug 1`, `rfid TAG1`, `fault rcd 1 on`,
`network down`, `state`, `events`); everything else goes to the CSMS console (`getconf`, `setconf
HeartbeatInterval 60`, `start TAG1`, `stop`, `limit 10A`, `reset soft`, `trigger MSG`, `avail 1 off`,
`call CP001 Reset {"type":"Soft"}`, `boot Pending 10`, `help`, ...). No typo ends the session:
every bad line gets one ERROR line. `quit` or Ctrl-C stops both.
The log shows every OCPP frame (from the CSMS, or from the charger with an external CSMS), the
charger's own log lines, and each connector status change seen on the charger's pins.
"""

import argparse
import json
import shlex
import sys
import threading
import time
from pathlib import Path

import evcli
from csms import CsmsSimulator
from csms_console import Console, _Quit, robust_stdin
from simctl import SimProcess

ROOT = Path(__file__).resolve().parent.parent
EV_COMMANDS = {"plug", "ev", "ev-limit", "unplug", "rfid", "fault", "network", "state", "events", "ping"}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csms", help="external CSMS URL instead of the local simulator")
    ap.add_argument("--port", type=int, default=9000, help="local CSMS port (0 = any free port)")
    ap.add_argument("--id", default="CP001", help="ChargePointId")
    ap.add_argument("--connectors", type=int, default=1)
    ap.add_argument(
        "--data", default=str(ROOT / "data" / "run"), help="the charger's flash (kept between runs)"
    )
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="configuration key")
    return ap.parse_args(argv)


class Show:
    """One place that prints, so lines from the threads do not interleave."""

    def __init__(self):
        self.lock = threading.Lock()

    def __call__(self, text):
        with self.lock:
            print(text, flush=True)


def follow_log(sim, show, frames_too, stop):
    """Print the charger's log lines as they are written (`cp |` prefix)."""
    pos = 0
    while not stop.is_set():
        try:
            with open(sim.log_path, errors="replace") as f:
                f.seek(pos)
                for line in f:
                    is_frame = line.split(" ", 3)[2:3] in (["<"], [">"])
                    if frames_too or not is_frame:
                        show("cp   | " + line.rstrip())
                pos = f.tell()
        except OSError:
            pass
        stop.wait(0.2)


def watch_status(sim, show, stop):
    """Print connector status and pilot state changes from the charger's hardware event log."""
    seq = 0
    while not stop.is_set():
        try:
            for ev in sim.events(seq):
                seq = ev["seq"]
                if ev["kind"] in ("status", "cp", "relay", "plug", "unplug", "ev", "network", "fault"):
                    show(f"hw   | connector {ev['connector']} {ev['kind']} = {json.dumps(ev['value'])}")
        except (OSError, AssertionError, ValueError):
            pass  # restarting after a Reset: try again
        stop.wait(0.3)


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


def command(line, sim, console, show):
    """One console line: to the charger or the CSMS console. Nothing a person types may end the
    session but quit: every failure is one ERROR line."""
    words = line.split(None, 1)
    if not words:
        return None
    first = words[0].lower()
    if first in ("quit", "exit"):
        return "quit"
    try:
        if first == "help":
            show("run  | charger: " + ", ".join(sorted(EV_COMMANDS)) + " (tools/evcli.py --help)")
            if console:
                console.execute(line)
        elif first in EV_COMMANDS:
            show("ev   | " + ev_command(sim, line))
        elif console:
            console.execute(line)
        else:
            show("run  | no local CSMS: only charger commands (" + ", ".join(sorted(EV_COMMANDS)) + ")")
    except _Quit:
        return "quit"
    except Exception as e:  # a bug in a command must not take the charger and the CSMS down
        show(f"run  | ERROR {type(e).__name__}: {e}")
    return None


def main(argv=None):
    a = parse_args(argv)
    show = Show()
    csms = None
    if not a.csms:
        csms = CsmsSimulator("127.0.0.1", a.port, echo=True)
        csms.start()
    url = a.csms or csms.url
    sets = dict(s.split("=", 1) for s in a.set)
    Path(a.data).mkdir(parents=True, exist_ok=True)
    sim = SimProcess(a.data, csms=url, cp_id=a.id, connectors=a.connectors, sets=sets,
                     log_path=Path(a.data) / "firmware.log")  # fmt: skip
    stop = threading.Event()
    try:
        sim.start()
        show(f"run  | charger {a.id} -> {url}/{a.id}; control socket 127.0.0.1:{sim.port}; type help")
        threading.Thread(target=follow_log, args=(sim, show, csms is None, stop), daemon=True).start()
        threading.Thread(target=watch_status, args=(sim, show, stop), daemon=True).start()
        console = Console(csms, 30.0, cp_id=a.id) if csms else None
        robust_stdin()
        for line in sys.stdin:
            if command(line, sim, console, show) == "quit":
                break
        else:
            while True:  # stdin closed (not a terminal): keep running until Ctrl-C
                time.sleep(3600)
    except (KeyboardInterrupt, _Quit):
        pass
    finally:
        stop.set()
        sim.close()
        if csms:
            csms.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

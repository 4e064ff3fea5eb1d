"""The CSMS console (tools/csms_console.py) and `make run` (tools/run.py): no input ends the session,
every failure is one ERROR line, and the shortcuts send what they say to a simulated charger."""

import json
import queue
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core import CP, plug, start_charger, wait_status

ROOT = Path(__file__).resolve().parent.parent


class Recorder:
    """A Console whose every printed text is kept (one entry per result)."""

    def __init__(self, csms, cp_id=None):
        from csms_console import Console

        self.printed = []
        self.console = Console(csms, 10.0, cp_id=cp_id)
        self.console.out = self.printed.append

    def run(self, line):
        """The text the line printed (exactly one result)."""
        n = len(self.printed)
        self.console.execute(line)
        new = self.printed[n:]
        assert len(new) == 1, (line, new)
        return new[0]


NASTY = [
    'call CP001 Reset {"type":"Soft}',  # issue 16: the shlex error that ended make run
    "call CP001 Reset {oops",
    'call CP001 Reset "[1,2]"',
    "call",
    "call CP001 NoSuchAction {}",
    "setconf",
    "start",
    "start TAG 1 2 3",
    "start TAG one",
    "stop x y",
    "stop 1.5",
    "limit",
    "limit ten",
    "limit -5A",
    "reset",
    "reset sideways",
    "trigger",
    "trigger Coffee",
    "avail",
    "avail one on",
    "avail 1 maybe",
    "boot Sideways",
    "boot Pending soon",
    "tag onlyone",
    "reply",
    "reply Heartbeat",
    "reply Heartbeat {bad",
    "reply NoSuch default",
    "disconnect",
    "disconnect CP404 x",
    "hang maybe",
    "frames",
    "frames CP001 many",
    "cp two words",
    "frobnicate",
    "'unbalanced",
    '"',
    "\x00\x01\x02",
    "\x1b[A\x1b[B",
    "call\tCP001\tReset\t{}",
    "é" * 10,
    "\udcff",
    "x" * 200000,
    "getconf " + "K" * 100000,
]


def _random_line(rng):
    from csms_console import COMMANDS

    words = [s.split()[0] for s, _, _ in COMMANDS if s.split()[0] != "quit"]
    pieces = [
        '"',
        "'",
        "{",
        "}",
        "[",
        "]",
        "\\",
        "\x00",
        "\x7f",
        "\t",
        "{}",
        '{"a":',
        "0",
        "-1",
        "CP001",
        "Reset",
    ]
    parts = [rng.choice(words)] if rng.random() < 0.8 else []
    for _ in range(rng.randrange(6)):
        if rng.random() < 0.5:
            parts.append(rng.choice(pieces))
        else:
            parts.append("".join(chr(rng.randrange(1, 0x2FF)) for _ in range(rng.randrange(1, 12))))
    return (" " if rng.random() < 0.7 else "").join(parts)


def test_console_fuzz_never_ends_the_session(csms):
    rec = Recorder(csms)
    rng = random.Random(16)
    for line in NASTY + [_random_line(rng) for _ in range(1500)]:
        n = len(rec.printed)
        rec.console.execute(line)  # never raises
        for text in rec.printed[n:]:
            if text.startswith("ERROR"):
                assert "\n" not in text and len(text) < 400, (line[:80], text[:400])
    for line in NASTY:
        assert rec.run(line).startswith("ERROR "), line[:80]
    csms.hang(False)
    csms.boot_status = "Accepted"
    assert rec.run("status").startswith("OK ")
    assert "getconf [KEY..]" in rec.run("help") and "e.g. limit 10A" in rec.run("help")


def test_make_run_survives_every_typo(built, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "tools/run.py", "--port", "0", "--data", str(tmp_path / "data")],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    lines = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(raw.decode(errors="replace")) for raw in proc.stdout], daemon=True
    ).start()

    def expect(*needles, timeout=20):
        end = time.monotonic() + timeout
        seen = []
        while time.monotonic() < end:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            seen.append(line)
            if all(n in line for n in needles):
                return line
        raise AssertionError(f"no line with {needles}; saw:\n" + "".join(seen[-30:]))

    def send(data):
        proc.stdin.write(data if isinstance(data, bytes) else data.encode())
        proc.stdin.flush()

    try:
        expect("CP001 ->", '"Accepted"')
        for bad in ['call CP001 Reset {"type":"Soft}', 'plug "1', "rfid 'TAG", "frobnicate", "avail 1"]:
            send(bad + "\n")
            expect("ERROR")
        send(b"\xff\xfe not utf-8 \x00\x1b[A\n")
        expect("ERROR")
        send("call CP001 DataTransfer " + "x" * 100000 + "\n")
        expect("ERROR line too long")
        send("getconf NumberOfConnectors\n")
        expect("NumberOfConnectors", "R ", "1")
        assert proc.poll() is None, "the session ended"
        send("quit\n")
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_shortcuts_against_the_simulated_charger(csms, make_sim):
    sim = start_charger(csms, make_sim)
    rec = Recorder(csms)  # no cp chosen: the only one connected

    table = rec.run("getconf HeartbeatInterval NumberOfConnectors NoSuchKey")
    assert table.startswith("OK GetConfiguration: 2 keys")
    rows = [line.split() for line in table.splitlines()[1:]]
    assert ["HeartbeatInterval", "RW", "300"] in rows and ["NumberOfConnectors", "R", "1"] in rows
    assert rows[-1] == ["unknown:", "NoSuchKey"]
    whole = rec.run("getconf")
    assert "{" not in whole and len(whole.splitlines()) > 50  # a table, not JSON

    assert rec.run("setconf MeterValueSampleInterval 30") == 'OK ChangeConfiguration {"status": "Accepted"}'
    conf = csms.call(CP, "GetConfiguration", {"key": ["MeterValueSampleInterval"]})
    assert conf["configurationKey"][0]["value"] == "30"

    assert rec.run("start TAG7 1") == 'OK RemoteStartTransaction {"status": "Accepted"}'
    plug(sim)
    start = csms.wait_for_call(CP, "StartTransaction")
    assert start["idTag"] == "TAG7" and start["connectorId"] == 1
    wait_status(csms, 1, "Charging")

    assert rec.run("limit 10A") == 'OK SetChargingProfile {"status": "Accepted"}'
    offered = lambda s: s["connectors"][0]["offered_amps"]  # noqa: E731 (PWM steps: 9.96 A for 10)
    sim.wait_state(lambda s: 9.5 < offered(s) <= 10, what="10 A offered")
    assert rec.run("limit off") == 'OK ClearChargingProfile {"status": "Accepted"}'
    sim.wait_state(lambda s: offered(s) > 30, what="the limit gone")

    assert rec.run("trigger heartbeat").startswith('OK TriggerMessage {"status": "Accepted"}')
    csms.wait_for_call(CP, "Heartbeat")

    assert rec.run("stop") == 'OK RemoteStopTransaction {"status": "Accepted"}'  # the running one
    stop = csms.wait_for_call(CP, "StopTransaction")
    assert stop["transactionId"] == max(csms.transactions) and stop["reason"] == "Remote"
    assert rec.run("stop").startswith("ERROR no running transaction")

    assert rec.run("avail 1 off") == 'OK ChangeAvailability {"status": "Accepted"}'
    wait_status(csms, 1, "Unavailable")
    assert rec.run("avail 1 on") == 'OK ChangeAvailability {"status": "Accepted"}'
    wait_status(csms, 1, "Finishing")  # the cable is still in after the stopped transaction

    assert rec.run("reset soft") == 'OK Reset {"status": "Accepted"}'
    csms.wait_for_call(CP, "BootNotification", timeout=15)
    assert not csms.violations_for(CP)


@pytest.mark.parametrize(
    "line, action, payload",
    [
        ("setconf HeartbeatInterval 60", "ChangeConfiguration", {"key": "HeartbeatInterval", "value": "60"}),
        ("start TAG1", "RemoteStartTransaction", {"idTag": "TAG1"}),
        ("stop 42", "RemoteStopTransaction", {"transactionId": 42}),
        ("reset hard", "Reset", {"type": "Hard"}),
        (
            "trigger statusnotification 1",
            "TriggerMessage",
            {"requestedMessage": "StatusNotification", "connectorId": 1},
        ),
        ("avail 0 off", "ChangeAvailability", {"connectorId": 0, "type": "Inoperative"}),
        (
            "limit 7400W",
            "SetChargingProfile",
            {
                "connectorId": 0,
                "csChargingProfiles": {
                    "chargingProfileId": 9000,
                    "stackLevel": 0,
                    "chargingProfilePurpose": "TxDefaultProfile",
                    "chargingProfileKind": "Relative",
                    "chargingSchedule": {
                        "chargingRateUnit": "W",
                        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 7400.0}],
                    },
                },
            },
        ),
    ],
)
def test_the_call_each_shortcut_sends(csms, line, action, payload):
    from websockets.sync.client import connect

    with connect(csms.cp_url("CP9"), subprotocols=["ocpp1.6"], open_timeout=5) as ws:
        csms.wait_for_connection("CP9")
        rec = Recorder(csms, cp_id="CP9")
        answer = {"status": "Accepted"}
        done = threading.Thread(target=lambda: rec.run(line))
        done.start()
        call = json.loads(ws.recv(timeout=5))
        ws.send(json.dumps([3, call[1], answer]))
        done.join(10)
        assert call[2] == action and call[3] == payload
        assert rec.printed == [f"OK {action} " + json.dumps(answer)]

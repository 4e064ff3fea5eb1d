"""The CSMS simulator (tools/csms.py) against a plain CPython websocket client."""

import base64
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import connect

from csms import NO_REPLY, CallError, CsmsSimulator, Error, ResponseViolation

ROOT = Path(__file__).resolve().parent.parent
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
BOOT = {"chargePointVendor": "Acme", "chargePointModel": "Wallbox"}


@pytest.fixture
def csms():
    with CsmsSimulator(port=0, ping_interval=None) as sim:
        yield sim


class Client:
    """A minimal charge point: sends frames, reads the CSMS's frames."""

    def __init__(self, ws):
        self.ws = ws
        self.n = 0

    def send(self, msg):
        self.ws.send(msg if isinstance(msg, str) else json.dumps(msg))

    def recv(self, timeout=3):
        return json.loads(self.ws.recv(timeout=timeout))

    def call(self, action, payload):
        self.n += 1
        uid = f"m{self.n}"
        self.send([2, uid, action, payload])
        reply = self.recv()
        assert reply[1] == uid
        return reply

    def answer_next(self, make_reply):
        """Answer the CSMS's next CALL in a thread: make_reply(call) -> frame to send back."""

        def run():
            call = self.recv(timeout=5)
            self.send(make_reply(call))

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread


@contextmanager
def charge_point(sim, cp_id="CP001", subprotocols=("ocpp1.6",), **kw):
    with connect(sim.cp_url(cp_id), subprotocols=list(subprotocols), open_timeout=5, **kw) as ws:
        sim.wait_for_connection(cp_id, 5)
        yield Client(ws)


def refused_status(url, **kw):
    with pytest.raises(InvalidStatus) as info:
        with connect(url, open_timeout=5, **kw):
            pass
    return info.value.response.status_code


def test_boot_accepted_with_current_time_and_interval(csms):
    with charge_point(csms) as cp:
        reply = cp.call("BootNotification", BOOT)
        assert reply[0] == 3
        assert reply[2]["status"] == "Accepted"
        assert reply[2]["interval"] == 300
        assert ISO_UTC.match(reply[2]["currentTime"])
        assert csms.wait_for_call("CP001", "BootNotification", 1) == BOOT
        assert ("in", [2, "m1", "BootNotification", BOOT]) in csms.frames("CP001")
        assert csms.frames("CP001")[-1] == ("out", reply)
        heartbeat = cp.call("Heartbeat", {})
        assert ISO_UTC.match(heartbeat[2]["currentTime"])
    info = csms.wait_for_disconnect("CP001", 3)
    assert info["code"] == 1000 and info["by"] == "cp"
    kinds = [e.kind for e in csms.events("CP001")]
    assert kinds == ["connected", "disconnected"]
    assert csms.events("CP001")[0].info["subprotocol"] == "ocpp1.6"
    assert csms.violations == []


def test_configurable_answers_and_transactions(csms):
    csms.boot_status = "Pending"
    csms.boot_interval = 10
    csms.id_tags["BLOCKED"] = {"status": "Blocked"}
    csms.id_tags["OLD"] = {"status": "Expired", "expiryDate": "2020-01-01T00:00:00Z"}
    with charge_point(csms) as cp:
        boot = cp.call("BootNotification", BOOT)[2]
        assert (boot["status"], boot["interval"]) == ("Pending", 10)
        assert cp.call("Authorize", {"idTag": "BLOCKED"})[2] == {"idTagInfo": {"status": "Blocked"}}
        assert cp.call("Authorize", {"idTag": "OLD"})[2]["idTagInfo"]["expiryDate"] == "2020-01-01T00:00:00Z"
        assert cp.call("Authorize", {"idTag": "ANY"})[2] == {"idTagInfo": {"status": "Accepted"}}
        start = {"connectorId": 1, "idTag": "ANY", "meterStart": 0, "timestamp": "2024-05-01T10:00:00Z"}
        first = cp.call("StartTransaction", start)[2]
        second = cp.call("StartTransaction", dict(start, idTag="BLOCKED"))[2]
        assert first == {"transactionId": 1, "idTagInfo": {"status": "Accepted"}}
        assert second == {"transactionId": 2, "idTagInfo": {"status": "Blocked"}}
        stop = {"transactionId": 1, "idTag": "ANY", "meterStop": 1500, "timestamp": "2024-05-01T11:00:00Z"}
        assert cp.call("StopTransaction", stop)[2] == {"idTagInfo": {"status": "Accepted"}}
        assert csms.transactions[1]["stop"]["meterStop"] == 1500
        vendor = cp.call("DataTransfer", {"vendorId": "com.example"})[2]
        assert vendor == {"status": "UnknownVendorId"}
        assert cp.call("SignCertificate", {"csr": "-----BEGIN CERTIFICATE REQUEST-----"})[2] == {
            "status": "Accepted"
        }
        status = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
        assert cp.call("StatusNotification", status)[2] == {}
        assert csms.last_status("CP001", 1) == status
        assert csms.count("CP001", "Authorize") == 3
        assert [p["idTag"] for p in csms.calls("CP001", "Authorize")] == ["BLOCKED", "OLD", "ANY"]
    assert csms.violations == []


METER = {
    "connectorId": 1,
    "meterValue": [{"timestamp": "2024-05-01T10:00:00Z", "sampledValue": [{"value": "7"}]}],
}


def test_response_overrides(csms):
    csms.set_response("Heartbeat", Error("InternalError", "try later"), times=1)
    csms.set_response(
        "DataTransfer", lambda cp_id, p: {"status": "Accepted", "data": cp_id + ":" + p["vendorId"]}
    )
    csms.set_response("MeterValues", NO_REPLY)
    with charge_point(csms) as cp:
        assert cp.call("Heartbeat", {})[2:4] == ["InternalError", "try later"]
        assert cp.call("Heartbeat", {})[0] == 3  # the error was for one call only
        assert cp.call("DataTransfer", {"vendorId": "v"})[2] == {"status": "Accepted", "data": "CP001:v"}
        cp.send([2, "mv", "MeterValues", METER])
        with pytest.raises(TimeoutError):
            cp.recv(timeout=0.3)
        assert csms.wait_for_call("CP001", "MeterValues", 1) == METER
        csms.set_response("MeterValues", None)
        assert cp.call("MeterValues", METER)[2] == {}
    assert csms.violations == []


def test_invalid_frames_get_callerrors_and_are_recorded(csms):
    with charge_point(csms) as cp:
        reply = cp.call("BootNotification", {"chargePointModel": "Wallbox"})
        assert reply[0] == 4 and reply[2] == "OccurenceConstraintViolation"
        assert "chargePointVendor" in reply[3]
        bad_time = {"connectorId": 1, "idTag": "A", "meterStart": 0, "timestamp": "2024-05-01 10:00"}
        assert cp.call("StartTransaction", bad_time)[2] == "PropertyConstraintViolation"
        assert cp.call("Reset", {"type": "Soft"})[2] == "NotSupported"  # a CSMS -> CP action
        assert cp.call("Teleport", {})[2] == "NotImplemented"
        cp.send("not json")
        assert cp.recv() == [4, "-1", "FormationViolation", "not valid JSON", {}]
        cp.send([2, "x", "Heartbeat"])
        assert cp.recv()[:3] == [4, "x", "ProtocolError"]
        cp.send([3, "nobody", {}])  # an answer to nothing: recorded, not answered
        with pytest.raises(TimeoutError):
            cp.recv(timeout=0.3)
    kinds = [(v.kind, v.action, v.code) for v in csms.violations_for("CP001")]
    assert kinds == [
        ("request", "BootNotification", "OccurenceConstraintViolation"),
        ("request", "StartTransaction", "PropertyConstraintViolation"),
        ("unknown_action", "Reset", "NotSupported"),
        ("unknown_action", "Teleport", "NotImplemented"),
        ("frame", "", "FormationViolation"),
        ("frame", "", "ProtocolError"),
        ("unexpected_response", "", "ProtocolError"),
    ]
    # The invalid boot still counts as a received BootNotification, marked invalid.
    assert [r.valid for r in csms.received("CP001", "BootNotification")] == [False]


def test_csms_calls_validate_answers(csms):
    good = {"configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}]}
    with charge_point(csms) as cp:
        thread = cp.answer_next(lambda call: [3, call[1], good])
        assert csms.call("CP001", "GetConfiguration", {"key": ["HeartbeatInterval"]}) == good
        thread.join()
        assert csms.frames("CP001")[0][1][2:] == ["GetConfiguration", {"key": ["HeartbeatInterval"]}]

        cp.answer_next(lambda call: [3, call[1], {"status": "Maybe"}])
        with pytest.raises(ResponseViolation) as bad:
            csms.call("CP001", "Reset", {"type": "Soft"})
        assert bad.value.payload == {"status": "Maybe"}
        assert csms.violations[-1].kind == "response" and csms.violations[-1].action == "Reset"

        cp.answer_next(lambda call: [4, call[1], "NotSupported", "no", {}])
        with pytest.raises(CallError) as err:
            csms.call("CP001", "ClearCache")
        assert err.value.code == "NotSupported"

        cp.answer_next(lambda call: [4, call[1], "FormatViolation", "2.0 name", {}])
        with pytest.raises(CallError):
            csms.call("CP001", "ClearCache")
        assert csms.violations[-1].kind == "callerror"

        with pytest.raises(ValueError):  # the CSMS does not send schema-invalid calls unless told to
            csms.call("CP001", "Reset", {"type": "Sideways"})

        with pytest.raises(TimeoutError):
            csms.call("CP001", "ClearCache", timeout=0.2)
        late = cp.recv()
        cp.send([3, late[1], {"status": "Accepted"}])  # after the timeout: not a violation
        cp.answer_next(lambda call: [3, call[1], {"status": "Accepted"}])
        from ocpp.v16 import call as v16call

        assert csms.call("CP001", v16call.Reset(type="Hard")) == {"status": "Accepted"}
    assert len(csms.violations) == 2


def test_send_raw_and_reply(csms):
    with charge_point(csms) as cp:
        csms.send_raw("CP001", '[2,"r1","Reset",{"type":"Soft"')
        assert cp.ws.recv(timeout=3) == '[2,"r1","Reset",{"type":"Soft"'
        cp.send([4, "-1", "FormationViolation", "not valid JSON", {}])
        assert csms.wait_for_raw_reply("CP001", timeout=3)[2] == "FormationViolation"
    assert csms.violations == []  # the answer to a raw frame is no unexpected response


def test_subprotocol_required(csms):
    assert refused_status(csms.cp_url("CP001")) == 400
    assert refused_status(csms.cp_url("CP001"), subprotocols=["ocpp2.0.1"]) == 400
    event = csms.events("CP001")[-1]
    assert event.kind == "refused" and event.info["status"] == 400 and "ocpp2.0.1" in event.info["reason"]
    assert not csms.connected("CP001")


def test_answer_without_subprotocol_when_configured(csms):
    csms.subprotocol_reply = None
    with charge_point(csms) as cp:
        assert cp.ws.subprotocol is None


def test_basic_auth():
    auth = {"CP001": "s3cret-password16", "CP002": bytes.fromhex("00ff10")}
    with CsmsSimulator(basic_auth=auth, allow_unknown=False, ping_interval=None) as csms:

        def header(user, password):
            token = base64.b64encode(user.encode() + b":" + password).decode()
            return {"Authorization": "Basic " + token}

        with charge_point(csms, "CP001", additional_headers=header("CP001", b"s3cret-password16")):
            pass
        with charge_point(csms, "CP002", additional_headers=header("CP002", b"\x00\xff\x10")):
            pass
        assert refused_status(csms.cp_url("CP001"), subprotocols=["ocpp1.6"]) == 401
        wrong = header("CP001", b"guess")
        assert refused_status(csms.cp_url("CP001"), subprotocols=["ocpp1.6"], additional_headers=wrong) == 401
        other_user = header("CP002", b"s3cret-password16")
        assert (
            refused_status(csms.cp_url("CP001"), subprotocols=["ocpp1.6"], additional_headers=other_user)
            == 401
        )
        assert refused_status(csms.cp_url("CP999"), subprotocols=["ocpp1.6"]) == 404
        assert [e.info["reason"] for e in csms.events("CP001") if e.kind == "refused"] == [
            "Basic credentials required",
            "wrong password",
            "Basic username is not the ChargePointId",
        ]
        assert csms.connection_count("CP001") == 1


def test_restart_on_same_port_and_disconnect(csms):
    port = csms.port
    with charge_point(csms) as cp:
        cp.call("BootNotification", BOOT)
        csms.stop()
        with pytest.raises(ConnectionClosed):
            cp.recv()
        assert cp.ws.close_code == 1001
    csms.start()
    assert csms.port == port
    with charge_point(csms) as cp:
        assert cp.call("Heartbeat", {})[0] == 3
        csms.disconnect("CP001", 4001, "bye")
        with pytest.raises(ConnectionClosed):
            cp.recv()
        assert cp.ws.close_code == 4001
    assert csms.connection_count("CP001") == 2
    assert [d for d, _ in csms.frames("CP001")] == ["in", "out", "in", "out"]  # kept across restarts


def test_hang_stops_answers_and_pongs():
    with CsmsSimulator(ping_interval=None) as csms, charge_point(csms) as cp:
        csms.hang(True)
        cp.send([2, "h1", "Heartbeat", {}])
        pong = cp.ws.ping()
        assert not pong.wait(0.4)
        with pytest.raises(TimeoutError):
            cp.recv(timeout=0.1)
        late = []  # a charge point connecting meanwhile: TCP is accepted, the handshake is held

        def connect_late():
            with connect(csms.cp_url("CP002"), subprotocols=["ocpp1.6"], open_timeout=5) as ws:
                late.append(ws.subprotocol)

        thread = threading.Thread(target=connect_late)
        thread.start()
        time.sleep(0.3)
        assert not csms.connected("CP002") and not late
        csms.hang(False)
        assert cp.recv()[1] == "h1"  # read and answered once the CSMS carries on
        assert pong.wait(2)
        thread.join(5)
        assert late == ["ocpp1.6"]


def test_tls_with_client_certificate(tmp_path):
    from csms_pki import make_pki

    pki = make_pki(tmp_path)
    with CsmsSimulator(
        certfile=pki["server_cert"], keyfile=pki["server_key"], cafile=pki["ca"], ping_interval=None
    ) as csms:
        assert csms.url.startswith("wss://")
        ctx = ssl.create_default_context(cafile=pki["ca"])
        ctx.load_cert_chain(pki["cp"]["CP001"]["cert"], pki["cp"]["CP001"]["key"])
        with charge_point(csms, ssl=ctx) as cp:
            assert cp.call("Heartbeat", {})[0] == 3
        assert csms.events("CP001")[0].info["client_cert"]["commonName"] == "CP001"
        no_cert = ssl.create_default_context(cafile=pki["ca"])
        with pytest.raises((ConnectionClosed, InvalidHandshake, OSError)):
            with connect(csms.cp_url("CP002"), subprotocols=["ocpp1.6"], ssl=no_cert, open_timeout=5) as ws:
                ws.recv(timeout=3)
        assert not csms.events("CP002")


def _read_until(proc, prefix, timeout=10):
    """Lines of the console's stdout up to the first one starting with `prefix`."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line.rstrip("\n"))
        if line.startswith(prefix):
            return line.rstrip("\n"), seen
    raise AssertionError(f"no line starting with {prefix!r} in {seen}")


def test_console():
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tools" / "csms.py"), "--port", "0", "--no-ping", "--timeout", "5"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:
        ready, _ = _read_until(proc, "CSMS READY url=")
        url = ready.split("url=", 1)[1]
        with connect(url + "/CP001", subprotocols=["ocpp1.6"], open_timeout=5) as ws:
            cp = Client(ws)
            _read_until(proc, "")  # the "connected" line
            answer = {"configurationKey": [{"key": "NumberOfConnectors", "readonly": True, "value": "1"}]}
            thread = cp.answer_next(lambda call: [3, call[1], answer])
            proc.stdin.write("call CP001 GetConfiguration {}\n")
            proc.stdin.flush()
            line, seen = _read_until(proc, "OK ")
            thread.join()
            assert json.loads(line[3:]) == answer
            assert any('<- [3,"1",' in s.replace(", ", ",") for s in seen)  # frames are printed too
            for bad in ("frobnicate", "call CP001", "call CP001 Reset {oops", "call CP404 ClearCache {}"):
                proc.stdin.write(bad + "\n")
                proc.stdin.flush()
                _read_until(proc, "ERROR ")
            proc.stdin.write("boot Pending 7\n")
            proc.stdin.flush()
            _read_until(proc, "OK boot=Pending/7s")
            proc.stdin.close()  # no more commands: it keeps serving
            assert cp.call("BootNotification", BOOT)[2]["status"] == "Pending"
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

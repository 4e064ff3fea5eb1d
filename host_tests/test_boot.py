"""Boot, registration and heartbeat of the simulated charger against the CSMS simulator."""

import time
from datetime import UTC, datetime

import pytest

from csms import CallError


def _ts(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_boot_accepted_then_status_of_every_connector(csms, make_sim):
    make_sim(csms=csms.url, cp_id="CP-A+1", connectors=2)
    info = csms.wait_for_connection("CP-A+1")
    assert info["path"] == "/ocpp/CP-A%2B1", "the ChargePointId is the last, percent-encoded path segment"
    assert info["subprotocol"] == "ocpp1.6"
    boot = csms.wait_for_call("CP-A+1", "BootNotification")
    assert boot["chargePointVendor"] and boot["chargePointModel"]
    assert boot["chargePointSerialNumber"] and boot["firmwareVersion"]
    for c in (0, 1, 2):
        sn = csms.wait_for_call(
            "CP-A+1", "StatusNotification", predicate=lambda p, c=c: p["connectorId"] == c
        )
        assert sn["status"] == "Available" and sn["errorCode"] == "NoError"
    assert [m[2] for d, m in csms.frames("CP-A+1") if d == "in" and m[0] == 2][0] == "BootNotification"
    assert csms.violations == []


def test_pending_sends_only_boot_and_answers_calls(csms, make_sim):
    csms.boot_status = "Pending"
    csms.boot_interval = 2
    sim = make_sim(csms=csms.url, cp_id="CP1")
    csms.wait_for_call("CP1", "BootNotification")
    # While Pending the backend's calls are answered ...
    conf = csms.call("CP1", "GetConfiguration", {"key": ["HeartbeatInterval"]})
    assert conf["configurationKey"][0]["key"] == "HeartbeatInterval"
    assert csms.call("CP1", "ChangeConfiguration", {"key": "MessageTimeout", "value": "20"}) == {
        "status": "Accepted"
    }
    # ... and BootNotification is repeated after `interval`, nothing else is sent.
    t0 = time.monotonic()
    csms.wait_for_call("CP1", "BootNotification", timeout=6)
    assert time.monotonic() - t0 > 1.0
    sent = {r.action for r in csms.received("CP1")}
    assert sent == {"BootNotification"}, sent
    assert sim.state()["registration"] == "Pending"
    csms.boot_status = "Accepted"
    csms.wait_for_call("CP1", "BootNotification", timeout=6)
    csms.wait_for_call("CP1", "StatusNotification")
    sim.wait_state(lambda s: s["registration"] == "Accepted")
    assert csms.violations == []


def test_rejected_is_silent_until_interval(csms, make_sim):
    csms.boot_status = "Rejected"
    csms.boot_interval = 3
    make_sim(csms=csms.url, cp_id="CP1")
    csms.wait_for_call("CP1", "BootNotification")
    t0 = time.monotonic()
    # A Rejected charge point does not answer the backend's calls.
    with pytest.raises((TimeoutError, CallError)):
        csms.call("CP1", "GetConfiguration", {}, timeout=1.5)
    csms.boot_status = "Accepted"
    csms.wait_for_call("CP1", "BootNotification", timeout=8)
    assert time.monotonic() - t0 >= 2.5, "BootNotification repeated before the interval"
    assert {r.action for r in csms.received("CP1")} <= {"BootNotification", "StatusNotification"}


def test_heartbeat_interval_and_clock_from_backend(csms, make_sim):
    csms.boot_interval = 2  # Accepted: the interval is the heartbeat interval
    csms.time_offset_s = 3 * 365 * 86400  # the backend's clock is three years ahead
    make_sim(csms=csms.url, cp_id="CP1")
    csms.wait_for_call("CP1", "BootNotification")
    csms.wait_for_call("CP1", "Heartbeat", timeout=6)
    t1 = time.monotonic()
    csms.wait_for_call("CP1", "Heartbeat", timeout=6)
    assert 1.5 < time.monotonic() - t1 < 3.5
    # The clock follows the backend: timestamps are UTC ISO 8601 from currentTime.
    conf = csms.call("CP1", "GetConfiguration", {"key": ["HeartbeatInterval"]})
    assert conf["configurationKey"][0]["value"] == "2"
    csms.call("CP1", "ChangeConfiguration", {"key": "HeartbeatInterval", "value": "1"})
    sn = csms.calls("CP1", "StatusNotification")[-1]
    assert sn["timestamp"].endswith("Z")
    skew = (_ts(sn["timestamp"]) - datetime.now(UTC)).total_seconds()
    assert abs(skew - csms.time_offset_s) < 5, skew
    t2 = time.monotonic()
    csms.wait_for_call("CP1", "Heartbeat", timeout=4)
    csms.wait_for_call("CP1", "Heartbeat", timeout=4)
    assert time.monotonic() - t2 < 3.5, "a changed HeartbeatInterval applies at once"
    assert csms.violations == []


def test_configuration_survives_power_cut(csms, make_sim, tmp_path):
    sim = make_sim(csms=csms.url, cp_id="CP1", data=tmp_path / "flash")
    csms.wait_for_call("CP1", "BootNotification")
    assert csms.call("CP1", "ChangeConfiguration", {"key": "WebSocketPingInterval", "value": "77"}) == {
        "status": "Accepted"
    }
    sim.power_cut()
    csms.wait_for_disconnect("CP1")
    make_sim(csms=csms.url, cp_id="CP1", data=tmp_path / "flash")
    csms.wait_for_call("CP1", "BootNotification")  # a reboot registers again
    conf = csms.call("CP1", "GetConfiguration", {"key": ["WebSocketPingInterval", "Nope"]})
    assert conf["configurationKey"] == [{"key": "WebSocketPingInterval", "readonly": False, "value": "77"}]
    assert conf["unknownKey"] == ["Nope"]


def test_reset_restarts_firmware_on_same_control_port(csms, make_sim):
    sim = make_sim(csms=csms.url, cp_id="CP1")
    csms.wait_for_call("CP1", "BootNotification")
    port = sim.port
    assert csms.call("CP1", "Reset", {"type": "Soft"}) == {"status": "Accepted"}
    sim.wait_ready(15)
    assert sim.port == port
    csms.wait_for_call("CP1", "BootNotification", timeout=15)
    assert csms.connection_count("CP1") == 2

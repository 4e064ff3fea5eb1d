"""Remote Trigger profile end to end (OCPP 1.6 §5.17; OCTT TC_054, TC_055; notes 2.9): TriggerMessage
from the CSMS simulator, the triggered message after the TriggerMessage.conf."""

import time

from core import CP, charge, no_call, start_charger
from csms import Error


def _trigger(csms, message, c=None):
    payload = {"requestedMessage": message}
    if c is not None:
        payload["connectorId"] = c
    return csms.call(CP, "TriggerMessage", payload)["status"]


def _after_conf(csms, action, predicate=lambda p: True):
    """The payload of the first `action` from the charger after the last TriggerMessage, asserting
    that it came after the TriggerMessage.conf (S2 §5.17)."""
    csms.wait_for_call(CP, action, predicate=predicate)
    frames = csms.frames(CP)
    sent = max(i for i, (d, m) in enumerate(frames) if d == "out" and m[0] == 2 and m[2] == "TriggerMessage")
    uid = frames[sent][1][1]
    conf = next(i for i, (d, m) in enumerate(frames) if i > sent and d == "in" and m[0] == 3 and m[1] == uid)
    found = next(
        i
        for i, (d, m) in enumerate(frames)
        if i > sent and d == "in" and m[0] == 2 and m[2] == action and predicate(m[3])
    )
    assert conf < found, frames[sent:]
    return frames[found][1][3]


def test_each_message_is_sent_after_the_conf(csms, make_sim):
    # TC_054: Heartbeat, StatusNotification of a connector, the firmware and diagnostics statuses
    # (Idle: nothing in progress), BootNotification (its interval becomes HeartbeatInterval).
    start_charger(csms, make_sim)
    assert _trigger(csms, "Heartbeat") == "Accepted"
    assert _after_conf(csms, "Heartbeat") == {}
    assert _trigger(csms, "StatusNotification", 1) == "Accepted"
    sn = _after_conf(csms, "StatusNotification")
    assert (sn["connectorId"], sn["status"], sn["errorCode"]) == (1, "Available", "NoError")
    for message in ("DiagnosticsStatusNotification", "FirmwareStatusNotification"):
        assert _trigger(csms, message) == "Accepted"
        assert _after_conf(csms, message) == {"status": "Idle"}
    assert _trigger(csms, "FirmwareStatusNotification", 1) == "Accepted"  # connectorId ignored
    assert _after_conf(csms, "FirmwareStatusNotification") == {"status": "Idle"}
    csms.boot_interval = 77
    assert _trigger(csms, "BootNotification") == "Accepted"
    boot = _after_conf(csms, "BootNotification")
    assert boot["chargePointVendor"] and boot["firmwareVersion"]
    deadline = time.time() + 5
    while True:
        conf = csms.call(CP, "GetConfiguration", {"key": ["HeartbeatInterval"]})
        if conf["configurationKey"][0]["value"] == "77" or time.time() > deadline:
            break
        time.sleep(0.1)
    assert conf["configurationKey"][0]["value"] == "77"


def test_status_notification_for_every_connector_or_one(csms, make_sim):
    start_charger(csms, make_sim, connectors=2)
    n = csms.count(CP, "StatusNotification")
    assert _trigger(csms, "StatusNotification") == "Accepted"
    for c in (0, 1, 2):
        _after_conf(csms, "StatusNotification", lambda p, c=c: p["connectorId"] == c)
    assert _trigger(csms, "StatusNotification", 0) == "Accepted"
    assert _after_conf(csms, "StatusNotification")["connectorId"] == 0
    no_call(csms, "StatusNotification", 0.5)
    assert csms.count(CP, "StatusNotification") == n + 4


def test_meter_values_with_and_without_connector(csms, make_sim):
    # errata 3.46: the MeterValuesSampledData measurands, context Trigger; transactionId while a
    # transaction runs. Not journaled: a refused one is not sent again.
    measurands = "Energy.Active.Import.Register,Current.Offered"
    sets = {
        "MeterValuesSampledData": measurands,
        "MeterValueSampleInterval": 0,
        "TransactionMessageRetryInterval": 1,
    }
    sim = start_charger(csms, make_sim, connectors=2, sets=sets)
    tx = charge(csms, sim, c=1)
    assert _trigger(csms, "MeterValues", 1) == "Accepted"
    mv = _after_conf(csms, "MeterValues")
    assert mv["connectorId"] == 1 and mv["transactionId"] == tx
    values = mv["meterValue"][0]["sampledValue"]
    assert [v["measurand"] for v in values] == measurands.split(",")
    assert {v["context"] for v in values} == {"Trigger"}
    assert _trigger(csms, "MeterValues") == "Accepted"  # every connector
    one = _after_conf(csms, "MeterValues", lambda p: p["connectorId"] == 1)
    two = _after_conf(csms, "MeterValues", lambda p: p["connectorId"] == 2)
    assert one["transactionId"] == tx and "transactionId" not in two
    n = csms.count(CP, "MeterValues")
    csms.set_response("MeterValues", Error("InternalError", "not now"), times=1)
    assert _trigger(csms, "MeterValues", 2) == "Accepted"
    csms.wait_for_call(CP, "MeterValues", predicate=lambda p: p["connectorId"] == 2)
    no_call(csms, "MeterValues", 2.0)  # refused once, not sent again (retry interval 1 s)
    assert csms.count(CP, "MeterValues") == n + 1


def test_out_of_range_connector_is_rejected_and_nothing_sent(csms, make_sim):
    # TC_055.
    start_charger(csms, make_sim)
    for message in ("MeterValues", "StatusNotification"):
        n = csms.count(CP, message)
        assert _trigger(csms, message, 2) == "Rejected"
        no_call(csms, message, 0.5)
        assert csms.count(CP, message) == n
    assert _trigger(csms, "MeterValues", 0) == "Rejected"  # no meter of the whole charge point


def test_boot_notification_while_pending_registers(csms, make_sim):
    # While Pending a trigger is the only way to send; an Accepted answer registers the charger.
    csms.boot_status = "Pending"
    csms.boot_interval = 600
    make_sim(csms=csms.url, cp_id=CP)
    csms.wait_for_call(CP, "BootNotification", timeout=15)
    csms.boot_status = "Accepted"
    assert _trigger(csms, "BootNotification") == "Accepted"
    _after_conf(csms, "BootNotification")
    csms.wait_for_call(CP, "StatusNotification", predicate=lambda p: p["connectorId"] == 1)
    assert csms.count(CP, "BootNotification") == 2

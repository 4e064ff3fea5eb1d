"""The offline journal (OCTT TC_036-TC_039, retry rules X-01): transaction messages are queued on
flash while the backend is unreachable, delivered in order afterwards, retried per
TransactionMessageAttempts, and a StopTransaction carries the id the backend assigns later."""

import time
from datetime import datetime

from core import CP, card, charge, plug, start_charger, wait_charging, wait_status


def _t(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _offline(sim, csms):
    sim.ok({"cmd": "network", "up": False})
    sim.wait_state(lambda s: not s["connected"], timeout=20, what="offline")


def _online(sim, csms):
    sim.ok({"cmd": "network", "up": True})
    sim.wait_state(lambda s: s["connected"], timeout=20, what="online")


def test_meter_values_queued_offline_arrive_in_order(csms, make_sim):
    sets = {"MeterValueSampleInterval": 1, "WebSocketPingInterval": 1, "WebSocketPongTimeout": 1}
    sim = start_charger(csms, make_sim, sets=sets)
    tx = charge(csms, sim)
    csms.wait_for_call(CP, "MeterValues", timeout=5)
    _offline(sim, csms)
    n = csms.count(CP, "MeterValues")
    time.sleep(3)
    card(sim, "TAG1")  # stopped while offline
    time.sleep(0.5)
    _online(sim, csms)
    stop = csms.wait_for_call(CP, "StopTransaction", timeout=15)
    assert stop["transactionId"] == tx and stop["reason"] == "Local"
    mvs = csms.calls(CP, "MeterValues")
    times = [_t(m["meterValue"][0]["timestamp"]) for m in mvs]
    assert len(mvs) >= n + 3
    assert [b - a for a, b in zip(times, times[1:], strict=False)] == [1] * (len(times) - 1), (
        times
    )  # none missing
    order = [r.action for r in csms.received(CP) if r.action in ("MeterValues", "StopTransaction")]
    assert order[-1] == "StopTransaction"
    assert csms.count(CP, "BootNotification") == 1  # a reconnect is not a boot
    assert csms.violations == []


def test_start_and_stop_offline(csms, make_sim):
    sets = {"AllowOfflineTxForUnknownId": "true", "WebSocketPingInterval": 1, "WebSocketPongTimeout": 1}
    sim = start_charger(csms, make_sim, sets=sets)
    _offline(sim, csms)
    plug(sim)
    card(sim, "OFF1")
    wait_charging(sim)
    time.sleep(1)
    card(sim, "OFF1")
    sim.wait_state(lambda s: not s["connectors"][0]["relay"], timeout=10, what="stopped")
    _online(sim, csms)
    start = csms.wait_for_call(CP, "StartTransaction", timeout=15)
    stop = csms.wait_for_call(CP, "StopTransaction", timeout=10)
    assert start["idTag"] == "OFF1"
    assert stop["transactionId"] == max(csms.transactions), "the id from the StartTransaction.conf"
    assert _t(start["timestamp"]) < _t(stop["timestamp"]) < time.time() + 1
    assert stop["meterStop"] >= start["meterStart"]


def test_offline_start_refused_afterwards_stops_with_deauthorized(csms, make_sim):
    csms.id_tags["OFF1"] = "Invalid"
    sets = {"AllowOfflineTxForUnknownId": "true", "WebSocketPingInterval": 1, "WebSocketPongTimeout": 1}
    sim = start_charger(csms, make_sim, sets=sets)
    _offline(sim, csms)
    plug(sim)
    card(sim, "OFF1")
    wait_charging(sim)
    _online(sim, csms)
    csms.wait_for_call(CP, "StartTransaction", timeout=15)
    stop = csms.wait_for_call(CP, "StopTransaction")
    assert stop["reason"] == "DeAuthorized"
    wait_status(csms, 1, "Finishing")


def test_refused_start_suspends_when_not_stopping(csms, make_sim):
    csms.id_tags["TAGX"] = {"status": "Accepted"}
    sim = start_charger(csms, make_sim, sets={"StopTransactionOnInvalidId": "false"})
    plug(sim)
    wait_status(csms, 1, "Preparing")
    csms.set_response("StartTransaction", {"transactionId": 7, "idTagInfo": {"status": "Blocked"}})
    card(sim, "TAGX")
    csms.wait_for_call(CP, "StartTransaction")
    wait_status(csms, 1, "SuspendedEVSE")
    sim.wait_state(lambda s: s["connectors"][0]["pwm_duty"] == 100, what="PWM off")
    assert csms.count(CP, "StopTransaction") == 0


def test_call_errors_are_retried_then_given_up(csms, make_sim):
    sets = {"TransactionMessageAttempts": 3, "TransactionMessageRetryInterval": 1}
    sim = start_charger(csms, make_sim, sets=sets)
    csms.reply_error("StartTransaction", "InternalError", "try later")
    plug(sim)
    card(sim, "TAG1")
    csms.wait_for_call(CP, "StartTransaction")
    t0 = time.monotonic()
    csms.wait_for_call(CP, "StartTransaction", timeout=5)
    t1 = time.monotonic()
    csms.wait_for_call(CP, "StartTransaction", timeout=5)
    t2 = time.monotonic()
    assert 0.7 < t1 - t0 < 1.8 and 1.7 < t2 - t1 < 2.8  # RetryInterval x transmissions so far
    csms.reset_responses()
    card(sim, "TAG1")
    stop = csms.wait_for_call(CP, "StopTransaction", timeout=6)
    assert stop["transactionId"] == -1  # errata 3.18: the Start was never accepted
    assert csms.count(CP, "StartTransaction") == 3

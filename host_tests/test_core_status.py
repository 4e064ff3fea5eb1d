"""Connector status and faults end to end (OCTT TC_041, OCPP 1.6 §4.9 and errata X-12/X-13): what
the CSMS simulator hears and what the simulated hardware does (its event log) when faults, pilot
faults, a paused EV, offline periods and a second connector change a connector's status."""

import time

import pytest

from core import (
    CP,
    card,
    charge,
    events,
    no_call,
    plug,
    start_charger,
    statuses,
    wait_charging,
    wait_event_values,
    wait_status,
)

FAST_OFFLINE = {"WebSocketPingInterval": 1, "WebSocketPongTimeout": 1}
# OCPP 1.6 §7.6: EVCommunicationError is reported with these statuses only.
_EV_COMM_STATUSES = ("Preparing", "SuspendedEV", "SuspendedEVSE", "Finishing")


def _conversation_ok(csms):
    """No protocol violation, and every StatusNotification pairs its status with a fitting error."""
    assert csms.violations == []
    for sn in csms.calls(CP, "StatusNotification"):
        if sn["status"] == "Faulted":
            assert sn["errorCode"] != "NoError", sn
        elif sn["errorCode"] == "EVCommunicationError":
            assert sn["status"] in _EV_COMM_STATUSES, sn
        else:
            assert sn["errorCode"] == "NoError", sn


def _fault(sim, kind, active, c=1):
    sim.ok({"cmd": "fault", "kind": kind, "connector": c, "active": active})


def _injected(sim, kind, c=1):
    """The world's event of the last injection of `kind` (the firmware's own `fault` events carry
    the fault's name as value, the injection a dict)."""
    hits = [
        e
        for e in events(sim, "fault", c)
        if isinstance(e["value"], dict) and e["value"] == {"fault": kind, "active": True}
    ]
    assert hits, events(sim, "fault", c)
    return hits[-1]


def _relay_opened_after(sim, event, c=1, timeout=10):
    """The first `relay` false event of connector c after `event` (waits for it)."""
    end = time.monotonic() + timeout
    while True:
        opened = [e for e in events(sim, "relay", c) if e["seq"] > event["seq"] and e["value"] is False]
        if opened:
            return opened[0]
        assert time.monotonic() < end, f"contactor still closed; log {sim.events(event['seq'] - 1)}"
        time.sleep(0.05)


def _ev(sim, state, c=1):
    sim.ok({"cmd": "ev", "connector": c, "state": state})
    return [e for e in events(sim, "ev", c) if e["value"] == state][-1]


def _status_events(sim, c):
    return [e["value"] for e in events(sim, "status", c)]


# --- faults during a session -------------------------------------------------------------------------

# kind -> (errorCode, how long the contactor may stay closed after the injection, ms): the RCD is
# seen by the next 20 ms iteration (IEC 61851-1: 100 ms), the temperature is read once a second,
# the meter is checked once a second and, being no hazard, ends the session with the PWM-off rule
# (the EV stays in C here: the contactor opens 6 s after the PWM stopped).
FAULTS = {
    "rcd": ("GroundFailure", 100),
    "overtemp": ("HighTemperature", 1100),
    "meter": ("PowerMeterFailure", 7500),
}


@pytest.mark.parametrize("kind", sorted(FAULTS))
def test_fault_while_charging_stops_faults_and_recovers(csms, make_sim, kind):
    error, open_ms = FAULTS[kind]
    sim = start_charger(csms, make_sim)
    tx = charge(csms, sim)
    _fault(sim, kind, True)
    injected = _injected(sim, kind)
    stop = csms.wait_for_call(CP, "StopTransaction")
    assert stop["transactionId"] == tx and stop["reason"] == "Other"
    wait_status(csms, 1, "Faulted", errorCode=error)
    opened = _relay_opened_after(sim, injected)
    assert opened["t_ms"] - injected["t_ms"] <= open_ms, (injected, opened)
    wait_event_values(sim, "fault", 1, [kind], since=injected["seq"])
    wait_event_values(sim, "tx_stop", 1, ["Other"])
    assert sim.connector(1)["relay"] is False
    # Faulted: a card starts nothing.
    card(sim, "TAG2")
    no_call(csms, "StartTransaction", 1)
    _fault(sim, kind, False)
    wait_status(csms, 1, "Finishing", timeout=5)  # the session is over, the cable still in
    wait_event_values(sim, "fault_clear", 1, [kind])
    sim.ok({"cmd": "unplug", "connector": 1})
    wait_status(csms, 1, "Available")
    assert statuses(csms, 1) == ["Available", "Preparing", "Charging", "Faulted", "Finishing", "Available"]
    assert csms.count(CP, "StartTransaction") == 1
    _conversation_ok(csms)


def test_welded_contactor_is_found_when_the_session_stops(csms, make_sim):
    sim = start_charger(csms, make_sim)
    charge(csms, sim)
    _fault(sim, "weld", True)
    time.sleep(0.5)
    assert csms.last_status(CP, 1)["status"] == "Charging", "closed and welded look the same"
    card(sim, "TAG1")
    assert csms.wait_for_call(CP, "StopTransaction")["reason"] == "Local"
    _ev(sim, "B")  # the EV stops drawing once the PWM stops: the contactor opens at once
    sim.wait_state(lambda s: s["connectors"][0]["relay"] is False, what="contactor commanded open")
    wait_status(csms, 1, "Faulted", errorCode="PowerSwitchFailure")
    csms.clear_calls(CP)  # Finishing again below: wait for the new one
    opened = [e for e in events(sim, "relay", 1) if e["value"] is False][-1]
    found = [e for e in events(sim, "fault", 1) if e["value"] == "weld"]
    assert len(found) == 1 and found[0]["seq"] > opened["seq"]
    assert 250 <= found[0]["t_ms"] - opened["t_ms"] <= 600, "auxiliary contact still closed ~300 ms after"
    _fault(sim, "weld", False)
    wait_status(csms, 1, "Finishing")
    sim.ok({"cmd": "unplug", "connector": 1})
    wait_status(csms, 1, "Available")
    assert statuses(csms, 1) == [
        "Available",
        "Preparing",
        "Charging",
        "Finishing",
        "Faulted",
        "Finishing",
        "Available",
    ]
    _conversation_ok(csms)


def test_welded_contactor_keeps_the_cable_locked(csms, make_sim):
    """A welded contactor leaves the socket live: the cable stays locked until the contactor's
    auxiliary contact reads open (evse-hardware.md 1.8: on weld, lock out)."""
    sim = start_charger(csms, make_sim)
    charge(csms, sim)
    _fault(sim, "weld", True)
    card(sim, "TAG1")
    csms.wait_for_call(CP, "StopTransaction")
    _ev(sim, "B")
    wait_status(csms, 1, "Faulted", errorCode="PowerSwitchFailure")
    time.sleep(0.5)
    unlocked = [e for e in events(sim, "lock", 1) if e["value"] is False]
    assert sim.connector(1)["locked"] is True and unlocked == [], "unlocked with the contactor welded"
    _fault(sim, "weld", False)
    sim.wait_state(lambda s: s["connectors"][0]["locked"] is False, timeout=3, what="unlocked once open")
    _conversation_ok(csms)


@pytest.mark.parametrize("kind", ["rcd", "weld", "overtemp", "meter"])
def test_no_transaction_while_faulted(csms, make_sim, kind):
    """TC_041: with a fault active a card and a plug start nothing; once cleared they do."""
    error = FAULTS[kind][0] if kind in FAULTS else "PowerSwitchFailure"
    sim = start_charger(csms, make_sim)
    _fault(sim, kind, True)
    wait_status(csms, 1, "Faulted", errorCode=error)
    card(sim, "TAG1")
    plug(sim)
    no_call(csms, "StartTransaction", 2)
    assert all(e["value"] is False for e in events(sim, "relay", 1)), "the contactor never closed"
    assert sim.connector(1)["pwm_duty"] == 100, "no current offered while faulted"
    assert csms.last_status(CP, 1)["status"] == "Faulted"
    _fault(sim, kind, False)
    wait_status(csms, 1, "Preparing", timeout=5)
    card(sim, "TAG1")
    csms.wait_for_call(CP, "StartTransaction")
    wait_status(csms, 1, "Charging")
    wait_charging(sim)
    _conversation_ok(csms)


def test_fault_without_a_cable_clears_to_available(csms, make_sim):
    sim = start_charger(csms, make_sim)
    _fault(sim, "overtemp", True)
    wait_status(csms, 1, "Faulted", errorCode="HighTemperature")
    _fault(sim, "overtemp", False)
    wait_status(csms, 1, "Available", errorCode="NoError", timeout=5)
    assert statuses(csms, 1) == ["Available", "Faulted", "Available"]
    assert statuses(csms, 0) == ["Available"], "a connector's fault is not the charge point's"
    _conversation_ok(csms)


# --- pilot faults ------------------------------------------------------------------------------------


def test_ev_short_while_preparing_keeps_the_status(csms, make_sim):
    sim = start_charger(csms, make_sim)
    plug(sim, ev="B")
    wait_status(csms, 1, "Preparing", errorCode="NoError")
    _ev(sim, "E")
    wait_status(csms, 1, "Preparing", errorCode="EVCommunicationError")
    st = sim.connector(1)
    assert st["cp"] == "E" and st["relay"] is False and st["pwm_duty"] == 100
    _ev(sim, "B")
    wait_status(csms, 1, "Preparing", errorCode="NoError")
    assert statuses(csms, 1) == ["Available", "Preparing", "Preparing", "Preparing"]
    _conversation_ok(csms)


@pytest.mark.parametrize("fault", ["E", "diode_fault"])
def test_pilot_fault_while_charging_opens_and_reports_ev_communication_error(csms, make_sim, fault):
    sim = start_charger(csms, make_sim)
    tx = charge(csms, sim)
    seen = _ev(sim, fault)
    opened = _relay_opened_after(sim, seen)
    assert opened["t_ms"] - seen["t_ms"] <= 100, (seen, opened)
    sn = wait_status(csms, 1, "SuspendedEVSE", errorCode="EVCommunicationError")
    assert "info" not in sn
    time.sleep(0.5)
    st = sim.connector(1)
    assert st["relay"] is False and st["pwm_duty"] == 100 and st["cp"] in ("E", "F")
    assert csms.call(CP, "RemoteStopTransaction", {"transactionId": tx}) == {"status": "Accepted"}
    assert csms.wait_for_call(CP, "StopTransaction")["reason"] == "Remote"
    wait_status(csms, 1, "Finishing", errorCode="EVCommunicationError")
    sim.ok({"cmd": "unplug", "connector": 1})
    wait_status(csms, 1, "Available", errorCode="NoError")
    assert [e["value"] for e in events(sim, "relay", 1)] == [True, False], "never closed again"
    _conversation_ok(csms)


# --- MinimumStatusDuration (errata X-12) ---------------------------------------------------------------


def test_minimum_status_duration_hides_short_statuses(csms, make_sim):
    sim = start_charger(csms, make_sim, sets={"MinimumStatusDuration": 3})
    plug(sim, ev="B")
    sim.wait_state(lambda s: s["connectors"][0]["status"] == "Preparing", what="Preparing")
    time.sleep(0.3)
    sim.ok({"cmd": "unplug", "connector": 1})
    sim.wait_state(lambda s: s["connectors"][0]["status"] == "Available", what="Available again")
    time.sleep(4)
    assert _status_events(sim, 1)[-2:] == ["Preparing", "Available"]
    assert statuses(csms, 1) == ["Available"], "a Preparing of 0.3 s is not reported"
    # Preparing for under a second, then Charging: only Charging is reported, once it lasted 3 s.
    plug(sim)
    sim.wait_state(lambda s: s["connectors"][0]["status"] == "Preparing", what="Preparing")
    card(sim, "TAG1")
    csms.wait_for_call(CP, "StartTransaction")
    sim.wait_state(lambda s: s["connectors"][0]["status"] == "Charging", what="Charging")
    t_charging = time.monotonic()
    preparing, charging = [e for e in events(sim, "status", 1)][-2:]
    assert (preparing["value"], charging["value"]) == ("Preparing", "Charging")
    assert charging["t_ms"] - preparing["t_ms"] < 2000
    no_call(csms, "StatusNotification", 1.8)
    wait_status(csms, 1, "Charging", timeout=3)
    assert time.monotonic() - t_charging >= 1.8
    assert statuses(csms, 1) == ["Available", "Charging"]
    _conversation_ok(csms)


def test_minimum_status_duration_zero_reports_every_transition(csms, make_sim):
    sim = start_charger(csms, make_sim, sets={"MinimumStatusDuration": 0})
    plug(sim, ev="B")
    sim.wait_state(lambda s: s["connectors"][0]["status"] == "Preparing", what="Preparing")
    time.sleep(0.3)
    sim.ok({"cmd": "unplug", "connector": 1})
    wait_status(csms, 1, "Preparing")
    wait_status(csms, 1, "Available")
    assert statuses(csms, 1) == ["Available", "Preparing", "Available"]
    _conversation_ok(csms)


# --- offline (errata X-13) -------------------------------------------------------------------------------


def test_reconnect_reports_the_current_status_not_the_history(csms, make_sim):
    sim = start_charger(csms, make_sim, sets=FAST_OFFLINE)
    sim.ok({"cmd": "network", "up": False})
    sim.wait_state(lambda s: not s["connected"], timeout=20, what="offline")
    before = len(csms.calls(CP, "StatusNotification"))
    plug(sim, ev="B")
    sim.wait_state(lambda s: s["connectors"][0]["status"] == "Preparing", what="Preparing")
    sim.ok({"cmd": "unplug", "connector": 1})
    sim.wait_state(lambda s: s["connectors"][0]["status"] == "Available", what="Available")
    plug(sim, ev="B")
    sim.wait_state(lambda s: s["connectors"][0]["status"] == "Preparing", what="Preparing again")
    assert _status_events(sim, 1)[-3:] == ["Preparing", "Available", "Preparing"]
    sim.ok({"cmd": "network", "up": True})
    sim.wait_state(lambda s: s["connected"], timeout=20, what="online")
    wait_status(csms, 1, "Preparing")
    time.sleep(1)
    after = csms.calls(CP, "StatusNotification")[before:]
    assert [(p["connectorId"], p["status"]) for p in after] == [(1, "Preparing")]
    assert csms.count(CP, "BootNotification") == 1, "a reconnect is not a boot"
    _conversation_ok(csms)


# --- two connectors ----------------------------------------------------------------------------------------


def test_card_first_starts_on_the_connector_that_gets_plugged(csms, make_sim):
    sim = start_charger(csms, make_sim, connectors=2)
    card(sim, "TAG1")
    csms.wait_for_call(CP, "Authorize")
    plug(sim, 2)
    start = csms.wait_for_call(CP, "StartTransaction")
    assert start["connectorId"] == 2 and start["idTag"] == "TAG1"
    wait_status(csms, 2, "Charging")
    wait_charging(sim, 2)
    time.sleep(0.5)
    assert sim.connector(1)["relay"] is False and sim.connector(1)["transaction_id"] is None
    assert csms.last_status(CP, 1)["status"] == "Available"
    assert [e["connector"] for e in events(sim, "tx_start")] == [2]
    _conversation_ok(csms)


def test_second_connector_charges_while_the_first_does(csms, make_sim):
    sim = start_charger(csms, make_sim, connectors=2)
    tx1 = charge(csms, sim, "TAG1", c=1)
    tx2 = charge(csms, sim, "TAG2", c=2)
    assert tx2 != tx1
    st = sim.state()["connectors"]
    assert [(x["relay"], x["transaction_id"]) for x in st] == [(True, tx1), (True, tx2)]
    card(sim, "TAG2")  # stops the session it started, not the other one
    stop = csms.wait_for_call(CP, "StopTransaction")
    assert stop["transactionId"] == tx2 and stop["reason"] == "Local"
    wait_status(csms, 2, "Finishing")
    time.sleep(0.5)
    assert sim.connector(1)["relay"] is True and csms.last_status(CP, 1)["status"] == "Charging"
    assert csms.count(CP, "StopTransaction") == 1
    _conversation_ok(csms)


def test_remote_start_without_connector_picks_a_free_one(csms, make_sim):
    sim = start_charger(csms, make_sim, connectors=2)
    charge(csms, sim, "TAG1", c=1)
    assert csms.call(CP, "RemoteStartTransaction", {"idTag": "R1"}) == {"status": "Accepted"}
    wait_status(csms, 2, "Preparing")
    plug(sim, 2)
    start = csms.wait_for_call(CP, "StartTransaction", predicate=lambda p: p["idTag"] == "R1")
    assert start["connectorId"] == 2
    wait_status(csms, 2, "Charging")
    wait_charging(sim, 2)
    # Both busy now: nothing left to pick.
    assert csms.call(CP, "RemoteStartTransaction", {"idTag": "R2"}) == {"status": "Rejected"}
    _conversation_ok(csms)


def test_remote_start_without_connector_prefers_the_plugged_one(csms, make_sim):
    sim = start_charger(csms, make_sim, connectors=2)
    plug(sim, 2)
    wait_status(csms, 2, "Preparing")
    assert csms.call(CP, "RemoteStartTransaction", {"idTag": "R1"}) == {"status": "Accepted"}
    start = csms.wait_for_call(CP, "StartTransaction")
    assert start["connectorId"] == 2
    wait_status(csms, 2, "Charging")
    assert statuses(csms, 1) == ["Available"]
    _conversation_ok(csms)


def test_card_does_not_take_over_a_remote_start_waiting_on_its_connector(csms, make_sim):
    """One reader, two connectors: a remote start for connector 1 waits for its plug; another
    driver's card meanwhile must not turn connector 1's session into theirs."""
    sim = start_charger(csms, make_sim, connectors=2)
    conf = csms.call(CP, "RemoteStartTransaction", {"connectorId": 1, "idTag": "R1"})
    assert conf == {"status": "Accepted"}
    wait_status(csms, 1, "Preparing")
    card(sim, "TAG2")
    sim.wait_state(lambda s: any(e["kind"] == "card" for e in sim.events()), what="card read")
    plug(sim, 1)
    start = csms.wait_for_call(CP, "StartTransaction")
    assert (start["connectorId"], start["idTag"]) == (1, "R1")
    _conversation_ok(csms)


def test_charge_point_inoperative_makes_every_connector_unavailable(csms, make_sim):
    sim = start_charger(csms, make_sim, connectors=2)
    conf = csms.call(CP, "ChangeAvailability", {"connectorId": 0, "type": "Inoperative"})
    assert conf == {"status": "Accepted"}
    for c in (0, 1, 2):
        wait_status(csms, c, "Unavailable")
    plug(sim, 2)
    card(sim, "TAG1")
    no_call(csms, "StartTransaction", 1.5)
    assert csms.last_status(CP, 2)["status"] == "Unavailable"
    conf = csms.call(CP, "ChangeAvailability", {"connectorId": 0, "type": "Operative"})
    assert conf == {"status": "Accepted"}
    wait_status(csms, 0, "Available")
    wait_status(csms, 1, "Available")
    wait_status(csms, 2, "Preparing")
    _conversation_ok(csms)


# --- the EV pauses; the PWM-off rule -----------------------------------------------------------------


def test_ev_pause_is_suspended_ev_and_resume_is_charging(csms, make_sim):
    sim = start_charger(csms, make_sim)
    charge(csms, sim)
    paused = _ev(sim, "B")
    opened = _relay_opened_after(sim, paused)
    assert opened["t_ms"] - paused["t_ms"] <= 100, "C->B: open within 100 ms"
    wait_status(csms, 1, "SuspendedEV", errorCode="NoError")
    assert sim.connector(1)["pwm_duty"] == 53.3, "still offering: the EV may resume"
    _ev(sim, "C")
    wait_status(csms, 1, "Charging")
    wait_charging(sim)
    assert [e["value"] for e in events(sim, "relay", 1)] == [True, False, True]
    assert statuses(csms, 1) == ["Available", "Preparing", "Charging", "SuspendedEV", "Charging"]
    assert csms.count(CP, "StopTransaction") == 0
    _conversation_ok(csms)


def test_remote_stop_with_ev_in_c_opens_at_the_latest_6_s_after_pwm_off(csms, make_sim):
    sim = start_charger(csms, make_sim)
    tx = charge(csms, sim)
    assert csms.call(CP, "RemoteStopTransaction", {"transactionId": tx}) == {"status": "Accepted"}
    assert csms.wait_for_call(CP, "StopTransaction")["reason"] == "Remote"
    wait_status(csms, 1, "Finishing")
    pwm_off = [e for e in events(sim, "pwm", 1) if e["value"] == 100][-1]
    opened = _relay_opened_after(sim, pwm_off, timeout=10)
    assert sim.connector(1)["cp"] == "C", "the EV never left C"
    assert opened["t_ms"] - pwm_off["t_ms"] <= 6300, (pwm_off, opened)
    assert [e["value"] for e in events(sim, "relay", 1)] == [True, False]
    sim.ok({"cmd": "unplug", "connector": 1})
    wait_status(csms, 1, "Available")
    _conversation_ok(csms)

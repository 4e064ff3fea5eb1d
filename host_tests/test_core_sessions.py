"""Charging sessions end to end (OCTT TC_003, TC_004, TC_068, TC_069, TC_023, TC_005):
the simulated charger's pilot, contactor and reader against the CSMS simulator."""

from core import CP, card, charge, events, no_call, plug, start_charger, statuses, wait_charging, wait_status


def test_plug_in_first_then_card(csms, make_sim):
    sim = start_charger(csms, make_sim)
    plug(sim)
    wait_status(csms, 1, "Preparing")
    assert sim.connector(1)["relay"] is False, "no contactor before authorization"
    card(sim, "TAG1")
    auth = csms.wait_for_call(CP, "Authorize")
    assert auth == {"idTag": "TAG1"}
    start = csms.wait_for_call(CP, "StartTransaction")
    assert start["connectorId"] == 1 and start["idTag"] == "TAG1"
    assert isinstance(start["meterStart"], int)
    wait_status(csms, 1, "Charging")
    st = wait_charging(sim)
    conn = next(x for x in st["connectors"] if x["id"] == 1)
    assert conn["transaction_id"] == 1
    assert conn["pwm_duty"] == 53.3  # 32 A
    # the same card stops it
    card(sim, "TAG1")
    stop = csms.wait_for_call(CP, "StopTransaction")
    assert stop["transactionId"] == 1 and stop["reason"] == "Local" and stop["idTag"] == "TAG1"
    assert stop["meterStop"] >= start["meterStart"]
    wait_status(csms, 1, "Finishing")
    sim.wait_state(lambda s: s["connectors"][0]["pwm_duty"] == 100, what="PWM off")
    sim.ok({"cmd": "unplug", "connector": 1})
    wait_status(csms, 1, "Available")
    assert statuses(csms, 1) == ["Available", "Preparing", "Charging", "Finishing", "Available"]
    assert csms.violations == []


def test_card_first_then_plug_in(csms, make_sim):
    sim = start_charger(csms, make_sim)
    card(sim, "TAG1")
    csms.wait_for_call(CP, "Authorize")
    wait_status(csms, 1, "Preparing")
    plug(sim)
    csms.wait_for_call(CP, "StartTransaction")
    wait_status(csms, 1, "Charging")
    wait_charging(sim)


def test_connection_timeout_after_identification(csms, make_sim):
    sim = start_charger(csms, make_sim, sets={"ConnectionTimeOut": 2})
    card(sim, "TAG1")
    wait_status(csms, 1, "Preparing")
    wait_status(csms, 1, "Available", timeout=5)
    plug(sim)
    no_call(csms, "StartTransaction", 1.5)


def test_invalid_card_starts_nothing(csms, make_sim):
    csms.id_tags["BAD"] = "Invalid"
    sim = start_charger(csms, make_sim)
    plug(sim)
    wait_status(csms, 1, "Preparing")
    card(sim, "BAD")
    assert csms.wait_for_call(CP, "Authorize")["idTag"] == "BAD"
    no_call(csms, "StartTransaction", 1.5)
    assert sim.connector(1)["relay"] is False


def test_other_card_without_parent_does_not_stop(csms, make_sim):
    sim = start_charger(csms, make_sim)
    charge(csms, sim, "TAG1")
    card(sim, "TAG2")
    no_call(csms, "Authorize", 1.5)  # TC_068: the start tag has no parent, nothing to ask
    assert csms.count(CP, "StopTransaction") == 0
    card(sim, "TAG1")
    assert csms.wait_for_call(CP, "StopTransaction")["reason"] == "Local"


def test_card_with_the_same_parent_stops(csms, make_sim):
    csms.id_tags["TAG1"] = {"status": "Accepted", "parentIdTag": "FLEET"}
    csms.id_tags["TAG2"] = {"status": "Accepted", "parentIdTag": "FLEET"}
    sim = start_charger(csms, make_sim)
    charge(csms, sim, "TAG1")
    card(sim, "TAG2")
    assert csms.wait_for_call(CP, "Authorize", predicate=lambda p: p["idTag"] == "TAG2")
    stop = csms.wait_for_call(CP, "StopTransaction")
    assert stop["idTag"] == "TAG2" and stop["reason"] == "Local"


def test_ev_unplug_stops_and_contactor_opens(csms, make_sim):
    sim = start_charger(csms, make_sim)
    charge(csms, sim)
    sim.ok({"cmd": "unplug", "connector": 1})
    stop = csms.wait_for_call(CP, "StopTransaction")
    assert stop["reason"] == "EVDisconnected"
    wait_status(csms, 1, "Finishing")
    wait_status(csms, 1, "Available")
    assert sim.connector(1)["relay"] is False
    assert [e["value"] for e in events(sim, "tx_stop", 1)] == ["EVDisconnected"]


def test_ev_unplug_keeps_transaction_when_configured(csms, make_sim):
    sim = start_charger(csms, make_sim, sets={"StopTransactionOnEVSideDisconnect": "false"})
    tx = charge(csms, sim)
    sim.ok({"cmd": "unplug", "connector": 1})
    sn = wait_status(csms, 1, "SuspendedEV")
    assert sn["info"] == "EV side disconnected"
    no_call(csms, "StopTransaction", 1)
    assert csms.call(CP, "RemoteStopTransaction", {"transactionId": tx}) == {"status": "Accepted"}
    assert csms.wait_for_call(CP, "StopTransaction")["reason"] == "Remote"


def test_free_charging_needs_no_transaction(csms, make_sim):
    sim = start_charger(csms, make_sim, sets={"FreeCharging": "true"})
    plug(sim)
    wait_status(csms, 1, "Charging")
    st = wait_charging(sim)
    assert next(x for x in st["connectors"] if x["id"] == 1)["locked"] is True
    sim.ok({"cmd": "unplug", "connector": 1})
    wait_status(csms, 1, "Available")
    assert sim.connector(1)["relay"] is False
    assert csms.count(CP, "StartTransaction") == 0 and csms.count(CP, "Authorize") == 0

"""Remote start/stop, reset, unlock, availability and DataTransfer (OCTT TC_010-TC_018, TC_026-TC_031,
TC_034) on the simulated charger against the CSMS simulator."""

import pytest

from core import CP, card, charge, events, no_call, plug, start_charger, wait_charging, wait_status


def test_remote_start_plugged_in_first(csms, make_sim):
    sim = start_charger(csms, make_sim)
    plug(sim)
    wait_status(csms, 1, "Preparing")
    assert csms.call(CP, "RemoteStartTransaction", {"connectorId": 1, "idTag": "R1"}) == {
        "status": "Accepted"
    }
    start = csms.wait_for_call(CP, "StartTransaction")
    assert start["idTag"] == "R1"
    assert csms.count(CP, "Authorize") == 0  # AuthorizeRemoteTxRequests is false
    wait_status(csms, 1, "Charging")
    wait_charging(sim)


def test_remote_start_first_authorizes_when_configured(csms, make_sim):
    sim = start_charger(csms, make_sim, sets={"AuthorizeRemoteTxRequests": "true"})
    assert csms.call(CP, "RemoteStartTransaction", {"idTag": "R1"}) == {"status": "Accepted"}
    assert csms.wait_for_call(CP, "Authorize")["idTag"] == "R1"
    wait_status(csms, 1, "Preparing")
    plug(sim)
    csms.wait_for_call(CP, "StartTransaction")
    wait_status(csms, 1, "Charging")


def test_remote_start_times_out_without_a_plug(csms, make_sim):
    start_charger(csms, make_sim, sets={"ConnectionTimeOut": 2})
    assert csms.call(CP, "RemoteStartTransaction", {"connectorId": 1, "idTag": "R1"}) == {
        "status": "Accepted"
    }
    wait_status(csms, 1, "Preparing")
    wait_status(csms, 1, "Available", timeout=5)
    assert csms.count(CP, "StartTransaction") == 0


@pytest.mark.parametrize("connector", [0, 2])
def test_remote_start_on_connector_0_or_unknown_is_rejected(csms, make_sim, connector):
    start_charger(csms, make_sim)
    conf = csms.call(CP, "RemoteStartTransaction", {"connectorId": connector, "idTag": "R1"})
    assert conf == {"status": "Rejected"}


def test_remote_start_on_a_busy_connector_is_rejected(csms, make_sim):
    sim = start_charger(csms, make_sim)
    charge(csms, sim)
    conf = csms.call(CP, "RemoteStartTransaction", {"connectorId": 1, "idTag": "R2"})
    assert conf == {"status": "Rejected"}


def test_remote_stop_unknown_and_known(csms, make_sim):
    sim = start_charger(csms, make_sim)
    tx = charge(csms, sim)
    assert csms.call(CP, "RemoteStopTransaction", {"transactionId": tx + 100}) == {"status": "Rejected"}
    no_call(csms, "StopTransaction", 1)
    assert sim.connector(1)["relay"] is True
    assert csms.call(CP, "RemoteStopTransaction", {"transactionId": tx}) == {"status": "Accepted"}
    stop = csms.wait_for_call(CP, "StopTransaction")
    assert stop["transactionId"] == tx and stop["reason"] == "Remote"
    wait_status(csms, 1, "Finishing")


@pytest.mark.parametrize("kind", ["Soft", "Hard"])
def test_reset_with_a_transaction_stops_it_first(csms, make_sim, kind):
    sim = start_charger(csms, make_sim)
    tx = charge(csms, sim)
    assert csms.call(CP, "Reset", {"type": kind}) == {"status": "Accepted"}
    stop = csms.wait_for_call(CP, "StopTransaction")
    assert stop["transactionId"] == tx and stop["reason"] == kind + "Reset"
    csms.wait_for_call(CP, "BootNotification", timeout=15)  # the firmware restarted
    sn = csms.wait_for_call(CP, "StatusNotification", predicate=lambda p: p["connectorId"] == 1)
    assert sn["status"] in ("Finishing", "Preparing")  # the cable is still in
    assert csms.count(CP, "StopTransaction") == 1
    sim.wait_state(lambda s: s["boots"] == 2)


def test_unavailable_persists_across_reset(csms, make_sim):
    sim = start_charger(csms, make_sim)
    conf = csms.call(CP, "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
    assert conf == {"status": "Accepted"}
    wait_status(csms, 1, "Unavailable")
    assert csms.call(CP, "Reset", {"type": "Hard"}) == {"status": "Accepted"}
    csms.wait_for_call(CP, "BootNotification", timeout=15)
    wait_status(csms, 1, "Unavailable")
    sim.wait_state(lambda s: s["boots"] == 2)
    card(sim, "TAG1")
    plug(sim)
    no_call(csms, "StartTransaction", 1.5)
    assert csms.call(CP, "ChangeAvailability", {"connectorId": 1, "type": "Operative"}) == {
        "status": "Accepted"
    }
    wait_status(csms, 1, "Preparing")


def test_charge_point_unavailable_is_scheduled_during_a_transaction(csms, make_sim):
    sim = start_charger(csms, make_sim)
    charge(csms, sim)
    conf = csms.call(CP, "ChangeAvailability", {"connectorId": 0, "type": "Inoperative"})
    assert conf == {"status": "Scheduled"}
    wait_status(csms, 0, "Unavailable")
    card(sim, "TAG1")
    csms.wait_for_call(CP, "StopTransaction")
    wait_status(csms, 1, "Unavailable")
    assert csms.call(CP, "ChangeAvailability", {"connectorId": 3, "type": "Operative"}) == {
        "status": "Rejected"
    }


def test_unlock_without_and_with_a_transaction(csms, make_sim):
    sim = start_charger(csms, make_sim)
    assert csms.call(CP, "UnlockConnector", {"connectorId": 1}) == {"status": "Unlocked"}
    assert csms.call(CP, "UnlockConnector", {"connectorId": 5}) == {"status": "NotSupported"}
    charge(csms, sim)
    assert sim.connector(1)["locked"] is True
    assert csms.call(CP, "UnlockConnector", {"connectorId": 1}) == {"status": "Unlocked"}
    assert csms.wait_for_call(CP, "StopTransaction")["reason"] == "UnlockCommand"
    wait_status(csms, 1, "Finishing")
    st = sim.connector(1)
    assert st["relay"] is False and st["locked"] is False


def test_unlock_failure(csms, make_sim):
    sim = start_charger(csms, make_sim)
    plug(sim)
    wait_status(csms, 1, "Preparing")
    card(sim, "TAG1")
    csms.wait_for_call(CP, "StartTransaction")
    sim.ok({"cmd": "fault", "kind": "lock", "connector": 1, "active": True})
    assert csms.call(CP, "UnlockConnector", {"connectorId": 1}) == {"status": "UnlockFailed"}


def test_lock_failure_prevents_the_transaction(csms, make_sim):
    sim = start_charger(csms, make_sim)
    sim.ok({"cmd": "fault", "kind": "lock", "connector": 1, "active": True})
    plug(sim)
    card(sim, "TAG1")
    wait_status(csms, 1, "Faulted", errorCode="ConnectorLockFailure")
    no_call(csms, "StartTransaction", 1)
    assert sim.connector(1)["relay"] is False


def test_data_transfer_answers(csms, make_sim):
    start_charger(csms, make_sim)
    assert csms.call(CP, "DataTransfer", {"vendorId": "Nobody"}) == {"status": "UnknownVendorId"}
    conf = csms.call(CP, "DataTransfer", {"vendorId": "MicroEVSE", "messageId": "Nope"})
    assert conf == {"status": "UnknownMessageId"}


def test_clear_cache_then_authorize_again(csms, make_sim):
    sim = start_charger(csms, make_sim, sets={"LocalPreAuthorize": "true"})
    card(sim, "TAG1")
    csms.wait_for_call(CP, "Authorize")
    wait_status(csms, 1, "Preparing")
    card(sim, "TAG1")  # the same card again: identification withdrawn
    wait_status(csms, 1, "Available")
    card(sim, "TAG1")  # cached and LocalPreAuthorize: no Authorize this time
    wait_status(csms, 1, "Preparing")
    assert csms.count(CP, "Authorize") == 1
    card(sim, "TAG1")
    wait_status(csms, 1, "Available")
    assert csms.call(CP, "ClearCache", {}) == {"status": "Accepted"}
    card(sim, "TAG1")
    csms.wait_for_call(CP, "Authorize")  # the cache is empty: asked again
    assert csms.count(CP, "Authorize") == 2
    assert [e["value"] for e in events(sim, "card")] == ["TAG1"] * 5

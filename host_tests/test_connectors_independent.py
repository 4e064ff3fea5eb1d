"""Connectors never wait on the network for each other: while a backend takes 8 s to answer an
Authorize for a card on connector 1, connector 2's fault stops its transaction and changes its
status at once, stamped with the moment it happened; OCPP-J allows one outstanding CALL, so they
reach the backend right after the Authorize answer. Unplugging during the pending Authorize is
handled at once too."""

import time
from datetime import UTC, datetime

from core import CP, charge, plug, start_charger, wait_status

SLOW_S = 8
ACCEPTED = {"idTagInfo": {"status": "Accepted"}}


def test_a_slow_authorize_on_one_connector_holds_up_nothing_else(csms, make_sim):
    sim = start_charger(csms, make_sim, connectors=2)
    tx2 = charge(csms, sim, tag="TAG2", c=2)  # connector 2 charges: its tag is not asked again
    csms.set_response("Authorize", ACCEPTED, delay=SLOW_S)
    plug(sim, 1)
    wait_status(csms, 1, "Preparing")
    sim.ok({"cmd": "rfid", "id_tag": "SLOW1"})
    csms.wait_for_call(CP, "Authorize", predicate=lambda p: p["idTag"] == "SLOW1")
    assert sim.wait_state(lambda s: s["authorizing"] == "SLOW1", what="authorizing shown")
    fault_at = datetime.now(UTC)
    sim.ok({"cmd": "fault", "kind": "rcd", "connector": 2, "active": True})
    # Handled at once on the charger: the transaction stopped, the status Faulted.
    sim.wait_state(lambda s: s["connectors"][1]["status"] == "Faulted", timeout=2, what="Faulted at once")
    sim.wait_state(lambda s: s["connectors"][1]["transaction_id"] is None, timeout=2, what="stopped at once")
    assert sim.state()["authorizing"] == "SLOW1", "the Authorize is still pending"
    # Delivered once the one outstanding CALL is answered, stamped when it happened.
    sn = wait_status(csms, 2, "Faulted", errorCode="GroundFailure", timeout=SLOW_S + 3)
    stop = csms.wait_for_call(CP, "StopTransaction", timeout=5)
    assert stop["transactionId"] == tx2 and stop["reason"] == "Other"
    for stamp in (sn["timestamp"], stop["timestamp"]):
        late = (datetime.fromisoformat(stamp.replace("Z", "+00:00")) - fault_at).total_seconds()
        assert -1.5 < late < 1.5, f"stamped {late:.1f} s after the fault"
    # The answer came: connector 1 starts as if nothing had happened meanwhile.
    start = csms.wait_for_call(CP, "StartTransaction", timeout=SLOW_S + 5)
    assert start["connectorId"] == 1 and start["idTag"] == "SLOW1"
    wait_status(csms, 1, "Charging")
    assert sim.state()["authorizing"] is None
    assert csms.violations == []


def test_unplug_during_a_pending_authorize_is_reported_at_once(csms, make_sim):
    sim = start_charger(csms, make_sim)
    csms.set_response("Authorize", ACCEPTED, delay=SLOW_S)
    plug(sim, 1)
    wait_status(csms, 1, "Preparing")
    sim.ok({"cmd": "rfid", "id_tag": "SLOW1"})
    csms.wait_for_call(CP, "Authorize")
    sim.ok({"cmd": "unplug", "connector": 1})
    sim.wait_state(lambda s: s["connectors"][0]["status"] == "Available", timeout=2, what="Available at once")
    wait_status(csms, 1, "Available", timeout=SLOW_S + 3)
    # The late acceptance finds no cable: the card waits ConnectionTimeOut for one, no start.
    time.sleep(SLOW_S)
    assert csms.count(CP, "StartTransaction") == 0
    assert csms.violations == []

"""Reservation profile end to end (OCPP 1.6 §5.13, §5.1; OCTT TC_046-TC_053, notes 2.5 X-15-X-19):
ReserveNow and CancelReservation from the CSMS simulator, cards and plugs on the simulated charger."""

from core import CP, card, no_call, plug, start_charger, statuses, wait_status
from csms import utc_now_iso


def _reserve(csms, c, tag="RES", rid=7, seconds=600, parent=None):
    payload = {"connectorId": c, "expiryDate": utc_now_iso(seconds), "idTag": tag, "reservationId": rid}
    if parent:
        payload["parentIdTag"] = parent
    return csms.call(CP, "ReserveNow", payload)["status"]


def _start_after_card(csms, sim, tag, c=1):
    """Present `tag`, see Preparing, plug in: the StartTransaction."""
    card(sim, tag)
    wait_status(csms, c, "Preparing")
    plug(sim, c)
    start = csms.wait_for_call(CP, "StartTransaction")
    assert start["idTag"] == tag and start["connectorId"] == c, start
    wait_status(csms, c, "Charging")
    return start


def test_reserved_connector_takes_only_the_reserved_tag(csms, make_sim):
    # TC_046_1: another card starts nothing; the reserved one starts with the reservationId,
    # which ends the reservation.
    sim = start_charger(csms, make_sim)
    assert _reserve(csms, 1) == "Accepted"
    wait_status(csms, 1, "Reserved")
    card(sim, "OTHER")
    csms.wait_for_call(CP, "Authorize", predicate=lambda p: p["idTag"] == "OTHER")
    no_call(csms, "StartTransaction", 1.0)
    assert statuses(csms, 1)[-1] == "Reserved"
    start = _start_after_card(csms, sim, "RES")
    assert start["reservationId"] == 7
    assert csms.call(CP, "CancelReservation", {"reservationId": 7}) == {"status": "Rejected"}  # used


def test_parent_tag_uses_the_reservation_and_remote_start(csms, make_sim):
    # TC_053 / X-18: a card whose Authorize gives the reservation's parentIdTag may use it, one
    # with another parent may not, even with the EV plugged in first. TC_046_2: a remote start
    # for another idTag is refused, for the reserved one it carries the reservationId.
    csms.id_tags.update(
        {
            "CHILD": {"status": "Accepted", "parentIdTag": "FAMILY"},
            "STRANGER": {"status": "Accepted", "parentIdTag": "OTHERS"},
        }
    )
    sim = start_charger(csms, make_sim, connectors=2)
    assert _reserve(csms, 1, tag="OWNER", parent="FAMILY") == "Accepted"
    assert _reserve(csms, 2, tag="R2", rid=8) == "Accepted"
    wait_status(csms, 1, "Reserved")
    wait_status(csms, 2, "Reserved")
    plug(sim, 1)
    card(sim, "STRANGER")
    csms.wait_for_call(CP, "Authorize", predicate=lambda p: p["idTag"] == "STRANGER")
    no_call(csms, "StartTransaction", 1.0)
    assert statuses(csms, 1)[-1] == "Reserved"  # a foreign EV at the plug does not take it
    card(sim, "CHILD")
    start = csms.wait_for_call(CP, "StartTransaction")
    assert (start["connectorId"], start["idTag"], start["reservationId"]) == (1, "CHILD", 7)
    wait_status(csms, 1, "Charging")

    refused = {"connectorId": 2, "idTag": "OTHER"}
    assert csms.call(CP, "RemoteStartTransaction", refused) == {"status": "Rejected"}
    assert csms.call(CP, "RemoteStartTransaction", {"idTag": "R2"}) == {"status": "Accepted"}
    wait_status(csms, 2, "Preparing")
    plug(sim, 2)
    start = csms.wait_for_call(CP, "StartTransaction")
    assert (start["connectorId"], start["idTag"], start["reservationId"]) == (2, "R2", 8)


def test_expiry_makes_the_connector_available(csms, make_sim):
    # TC_047: SN Available at expiry; another card then charges, without a reservationId.
    sim = start_charger(csms, make_sim)
    assert _reserve(csms, 1, seconds=2) == "Accepted"
    wait_status(csms, 1, "Reserved")
    wait_status(csms, 1, "Available", timeout=6)
    start = _start_after_card(csms, sim, "OTHER")
    assert "reservationId" not in start


def test_cancel_and_replace(csms, make_sim):
    # TC_051/TC_052, X-15: an unknown id is Rejected and cancels nothing; a ReserveNow with the
    # same id moves the reservation; cancelled, the connector is Available and any card starts.
    sim = start_charger(csms, make_sim, connectors=2)
    assert _reserve(csms, 1) == "Accepted"
    wait_status(csms, 1, "Reserved")
    assert csms.call(CP, "CancelReservation", {"reservationId": 99}) == {"status": "Rejected"}
    assert _reserve(csms, 2) == "Accepted"  # same reservationId 7: replaces the one on connector 1
    wait_status(csms, 2, "Reserved")
    wait_status(csms, 1, "Available")
    assert _reserve(csms, 2, tag="SOMEONE", rid=8) == "Occupied"  # reserved already
    assert _reserve(csms, 2, tag="RES2") == "Accepted"  # the same id again: replaced, not Occupied
    assert csms.call(CP, "CancelReservation", {"reservationId": 7}) == {"status": "Accepted"}
    wait_status(csms, 2, "Available")
    assert csms.call(CP, "CancelReservation", {"reservationId": 7}) == {"status": "Rejected"}
    plug(sim, 2)
    wait_status(csms, 2, "Preparing")
    card(sim, "OTHER")
    start = csms.wait_for_call(CP, "StartTransaction")
    assert start["connectorId"] == 2 and "reservationId" not in start


def test_refusals_and_the_end_on_unavailable(csms, make_sim):
    # TC_048_1-3 and X-16, on two connectors.
    sim = start_charger(csms, make_sim, connectors=2)
    sim.ok({"cmd": "fault", "kind": "rcd", "connector": 1, "active": True})
    wait_status(csms, 1, "Faulted")
    assert _reserve(csms, 1) == "Faulted"
    sim.ok({"cmd": "fault", "kind": "rcd", "connector": 1, "active": False})
    wait_status(csms, 1, "Available")
    plug(sim, 1, ev="B")
    wait_status(csms, 1, "Preparing")
    assert _reserve(csms, 1) == "Occupied"
    assert _reserve(csms, 3) == "Rejected"  # no such connector
    assert _reserve(csms, 2, seconds=-60) == "Rejected"  # already expired
    assert _reserve(csms, 2) == "Accepted"
    wait_status(csms, 2, "Reserved")
    # Unavailable ends the reservation; it is not back when the connector is.
    assert (
        csms.call(CP, "ChangeAvailability", {"connectorId": 2, "type": "Inoperative"})["status"] == "Accepted"
    )
    wait_status(csms, 2, "Unavailable")
    assert _reserve(csms, 2, rid=8) == "Unavailable"
    assert csms.call(CP, "CancelReservation", {"reservationId": 7}) == {"status": "Rejected"}
    assert (
        csms.call(CP, "ChangeAvailability", {"connectorId": 2, "type": "Operative"})["status"] == "Accepted"
    )
    wait_status(csms, 2, "Available")
    # While a connector is reserved, a fault there ends the reservation too.
    assert _reserve(csms, 2, rid=9) == "Accepted"
    wait_status(csms, 2, "Reserved")
    sim.ok({"cmd": "fault", "kind": "overtemp", "connector": 2, "active": True})
    wait_status(csms, 2, "Faulted")
    assert csms.call(CP, "CancelReservation", {"reservationId": 9}) == {"status": "Rejected"}
    # TC_050_1/3: connector 0 with every connector faulted or the charge point unavailable.
    sim.ok({"cmd": "fault", "kind": "rcd", "connector": 1, "active": True})
    wait_status(csms, 1, "Faulted")
    assert _reserve(csms, 0) == "Faulted"
    sim.ok({"cmd": "fault", "kind": "rcd", "connector": 1, "active": False})
    sim.ok({"cmd": "fault", "kind": "overtemp", "connector": 2, "active": False})
    assert (
        csms.call(CP, "ChangeAvailability", {"connectorId": 0, "type": "Inoperative"})["status"] == "Accepted"
    )
    wait_status(csms, 0, "Unavailable")
    assert _reserve(csms, 0) == "Unavailable"


def test_connector_zero_keeps_one_connector_for_the_reserved_tag(csms, make_sim):
    # TC_049, TC_050_2: with two free connectors both stay Available; once one is taken the
    # other is Reserved, another card is refused there, the reserved tag starts with the id.
    sim = start_charger(csms, make_sim, connectors=2)
    assert _reserve(csms, 0, tag="ZERO", rid=5) == "Accepted"
    start = _start_after_card(csms, sim, "OTHER", c=1)
    assert "reservationId" not in start
    wait_status(csms, 2, "Reserved")
    assert _reserve(csms, 0, tag="MORE", rid=6) == "Occupied"  # no connector left for a second one
    card(sim, "OTHER2")
    csms.wait_for_call(CP, "Authorize", predicate=lambda p: p["idTag"] == "OTHER2")
    no_call(csms, "StartTransaction", 1.0)
    start = _start_after_card(csms, sim, "ZERO", c=2)
    assert start["reservationId"] == 5
    assert csms.call(CP, "CancelReservation", {"reservationId": 5}) == {"status": "Rejected"}


def test_connector_zero_not_supported_is_rejected(csms, make_sim):
    # TC_050_4 / X-17.
    start_charger(csms, make_sim, sets={"ReserveConnectorZeroSupported": "false"})
    assert _reserve(csms, 0) == "Rejected"
    assert _reserve(csms, 1) == "Accepted"


def test_reservation_survives_a_reset(csms, make_sim):
    # kept on flash; reported Reserved after the boot, used with its id.
    sim = start_charger(csms, make_sim)
    assert _reserve(csms, 1) == "Accepted"
    wait_status(csms, 1, "Reserved")
    assert csms.call(CP, "Reset", {"type": "Hard"}) == {"status": "Accepted"}
    csms.wait_for_call(CP, "BootNotification", timeout=15)
    sim.wait_state(lambda s: s["boots"] == 2)
    wait_status(csms, 1, "Reserved")
    start = _start_after_card(csms, sim, "RES")
    assert start["reservationId"] == 7

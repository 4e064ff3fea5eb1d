"""What independent backends tripped over (issue 16): ChangeAvailability of connector 0, the
AuthorizationKey as bytes or as text, the Reset answer before the close, every status after a
reconnect. Simulated charger against the CSMS simulator."""

import time

import pytest

from core import CP, charge, no_call, plug, start_charger, statuses, wait_status

HEX_KEY = "4F43415F4F4354545F61646D696E5F74657374"  # 38 hex digits: "OCA_OCTT_admin_test"


def _reset(csms, sim, kind="Hard"):
    assert csms.call(CP, "Reset", {"type": kind}) == {"status": "Accepted"}
    csms.wait_for_call(CP, "BootNotification", timeout=15)
    sim.wait_state(lambda s: s["boots"] == 2)


def test_connector_0_operative_makes_every_connector_available_also_after_reset(csms, make_sim):
    sim = start_charger(csms, make_sim, connectors=2)
    assert csms.call(CP, "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"}) == {
        "status": "Accepted"
    }
    wait_status(csms, 1, "Unavailable")
    assert csms.call(CP, "ChangeAvailability", {"connectorId": 0, "type": "Operative"}) == {
        "status": "Accepted"
    }
    wait_status(csms, 1, "Available")
    _reset(csms, sim)
    for c in (0, 1, 2):  # the persisted availability says Operative everywhere
        assert statuses(csms, c)[-1] == "Available", (c, statuses(csms, c))
    plug(sim, 1)
    wait_status(csms, 1, "Preparing")


def test_connector_operative_while_the_charge_point_is_inoperative_stays_unavailable(csms, make_sim):
    sim = start_charger(csms, make_sim, connectors=2)
    assert csms.call(CP, "ChangeAvailability", {"connectorId": 0, "type": "Inoperative"}) == {
        "status": "Accepted"
    }
    for c in (0, 1, 2):
        wait_status(csms, c, "Unavailable")
    # Recorded, but the charge point as a whole is still Inoperative (OCPP 1.6 §4.9).
    assert csms.call(CP, "ChangeAvailability", {"connectorId": 1, "type": "Operative"}) == {
        "status": "Accepted"
    }
    no_call(csms, "StatusNotification", 1)
    assert sim.connector(1)["status"] == "Unavailable"
    assert csms.call(CP, "ChangeAvailability", {"connectorId": 0, "type": "Operative"}) == {
        "status": "Accepted"
    }
    for c in (0, 1, 2):
        wait_status(csms, c, "Available")


@pytest.mark.parametrize(
    "as_text, expected",
    [(False, bytes.fromhex(HEX_KEY)), (True, HEX_KEY)],
    ids=["hex-key-as-bytes", "hex-key-as-text"],
)
def test_authorization_key_as_bytes_or_as_text(built, make_sim, as_text, expected):
    from csms import CsmsSimulator

    sets = {"SecurityProfile": 1, "AuthorizationKey": HEX_KEY}
    if as_text:
        sets["AuthorizationKeyAsText"] = "true"
    with CsmsSimulator(port=0, basic_auth={CP: expected}) as server:
        make_sim(csms=server.url, cp_id=CP, sets=sets)
        server.wait_for_call(CP, "BootNotification")
        assert not [e for e in server.events(CP) if e.kind == "refused"]


def test_authorization_key_as_text_switched_at_run_time_reconnects_with_it(built, make_sim):
    from csms import CsmsSimulator

    with CsmsSimulator(port=0, basic_auth={CP: bytes.fromhex(HEX_KEY)}) as server:
        make_sim(csms=server.url, cp_id=CP, sets={"SecurityProfile": 1, "AuthorizationKey": HEX_KEY})
        server.wait_for_call(CP, "StatusNotification", predicate=lambda p: p["connectorId"] == 1)
        server.basic_auth[CP] = HEX_KEY  # the backend now wants the key as typed
        conf = server.call(CP, "ChangeConfiguration", {"key": "AuthorizationKeyAsText", "value": "true"})
        assert conf == {"status": "Accepted"}
        server.wait_for_event(CP, "connected", since=2, timeout=15)
        assert [e.kind for e in server.events(CP)] == ["connected", "disconnected", "connected"]
        conf = server.call(CP, "GetConfiguration", {"key": ["AuthorizationKeyAsText"]})
        assert conf["configurationKey"] == [
            {"key": "AuthorizationKeyAsText", "readonly": False, "value": "true"}
        ]


def _frame_time(csms, predicate):
    return next(f.t for f in csms.frame_log(CP) if f.msg is not None and predicate(f))


@pytest.mark.parametrize("with_transaction", [False, True], ids=["idle", "charging"])
def test_reset_answer_and_stop_transaction_reach_the_csms_before_a_clean_close(
    csms, make_sim, with_transaction
):
    sim = start_charger(csms, make_sim)
    if with_transaction:
        charge(csms, sim)
    assert csms.call(CP, "Reset", {"type": "Soft"}) == {"status": "Accepted"}
    info = csms.wait_for_disconnect(CP, timeout=15)
    # A close handshake the charger started and the CSMS answered (no timeout, no bare TCP drop).
    assert info == {"code": 1001, "reason": "reset", "by": "cp"}, info
    gone = next(e.t for e in csms.events(CP) if e.kind == "disconnected")
    answered = _frame_time(
        csms, lambda f: f.direction == "in" and f.msg[0] == 3 and f.msg[2] == {"status": "Accepted"}
    )
    # The close follows the answer by a grace (0.5 s) and ends with the CSMS's close frame, not
    # with the handshake's 2 s bound.
    assert 0.45 < gone - answered < 1.9, gone - answered
    if with_transaction:
        stop = _frame_time(
            csms, lambda f: f.direction == "in" and f.msg[0] == 2 and f.msg[2] == "StopTransaction"
        )
        conf = next(
            f.t
            for f in csms.frame_log(CP)
            if f.direction == "out" and f.msg and f.msg[0] == 3 and f.t >= stop and "idTagInfo" in f.msg[2]
        )
        assert answered < stop < conf < gone
    csms.wait_for_call(CP, "BootNotification", timeout=15)
    assert not csms.violations_for(CP)


@pytest.mark.parametrize("on", [False, True], ids=["default", "StatusNotificationOnReconnect"])
def test_every_status_after_a_reconnect_when_asked(csms, make_sim, on):
    sim = start_charger(csms, make_sim, connectors=2, sets={"StatusNotificationOnReconnect": str(on).lower()})
    time.sleep(0.3)  # the last status answer reaches the charger
    before = {c: len(statuses(csms, c)) for c in (0, 1, 2)}
    csms.stop()
    sim.wait_state(lambda s: not s["connected"], what="disconnected")
    csms.start()  # a backend that restarted: it knows no status
    csms.wait_for_connection(CP, timeout=15)
    sim.wait_state(lambda s: s["connected"], what="reconnected")
    if on:
        for c in (0, 1, 2):
            sn = wait_status(csms, c, "Available")
            assert sn["errorCode"] == "NoError"
            assert len(statuses(csms, c)) == before[c] + 1
    else:
        time.sleep(1)
        assert {c: len(statuses(csms, c)) for c in (0, 1, 2)} == before
    assert csms.count(CP, "BootNotification") == 1  # a reconnect, not a reboot

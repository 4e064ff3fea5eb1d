"""The OCPP link end to end: reconnects, liveness, malformed input, size limits, authentication."""

import json
import time

import pytest


def test_reconnects_after_csms_restart_without_new_boot(csms, make_sim):
    sim = make_sim(csms=csms.url, cp_id="CP1")
    csms.wait_for_call("CP1", "BootNotification")
    csms.wait_for_call("CP1", "StatusNotification", predicate=lambda p: p["connectorId"] == 1)
    time.sleep(0.3)  # let the answer reach the charger: an unanswered status is sent again
    csms.stop()
    sim.wait_state(lambda s: not s["connected"], what="disconnected")
    csms.start()  # same port
    csms.wait_for_connection("CP1", timeout=15)
    sim.wait_state(lambda s: s["connected"], what="reconnected")
    time.sleep(0.5)
    # A reconnect is not a reboot: no second BootNotification, no repeated unchanged status.
    assert csms.count("CP1", "BootNotification") == 1
    assert csms.count("CP1", "StatusNotification") == 2


def test_status_changed_while_offline_is_sent_after_reconnect(csms, make_sim):
    sim = make_sim(csms=csms.url, cp_id="CP1")
    csms.wait_for_call("CP1", "StatusNotification", predicate=lambda p: p["connectorId"] == 1)
    csms.stop()
    sim.wait_state(lambda s: not s["connected"], what="disconnected")
    sim.ok({"cmd": "plug", "connector": 1, "cable_amps": 32})
    sim.wait_state(lambda s: s["connectors"][0]["status"] == "Preparing", what="Preparing")
    csms.start()
    sn = csms.wait_for_call(
        "CP1", "StatusNotification", timeout=15, predicate=lambda p: p["connectorId"] == 1
    )
    assert sn["status"] == "Preparing"


def test_network_down_is_offline_at_once_and_recovered(csms, make_sim):
    # The board losing its link (Wi-Fi association lost: board.link_up() false): offline at once,
    # though the websocket ping would only tell after WebSocketPingInterval (60 s) + its timeout.
    sim = make_sim(csms=csms.url, cp_id="CP1")
    csms.wait_for_call("CP1", "StatusNotification")
    sim.ok({"cmd": "network", "up": False})
    t0 = time.monotonic()
    sim.wait_state(lambda s: not s["connected"], timeout=10, what="offline")
    assert time.monotonic() - t0 < 2
    time.sleep(1.5)  # reconnect attempts fail while the network is down
    assert not sim.state()["connected"]
    sim.ok({"cmd": "network", "up": True})
    sim.wait_state(lambda s: s["connected"], timeout=15, what="reconnected")
    assert csms.count("CP1", "BootNotification") == 1


def test_csms_that_stops_answering_is_left_and_retried(csms, make_sim):
    sim = make_sim(csms=csms.url, cp_id="CP1", sets={"WebSocketPingInterval": 1, "WebSocketPongTimeout": 2})
    csms.wait_for_call("CP1", "StatusNotification")
    csms.hang(True)
    sim.wait_state(lambda s: not s["connected"], timeout=10, what="hung backend detected")
    csms.hang(False)
    sim.wait_state(lambda s: s["connected"], timeout=20, what="reconnected")


@pytest.mark.parametrize(
    "raw, code",
    [
        ("this is not json", "FormationViolation"),
        ('[2, "x1", "GetConfiguration"]', "ProtocolError"),
        ('[2, "x2", "FlyToTheMoon", {}]', "NotImplemented"),
        (
            '[2, "x3", "GetDiagnostics", {"location": "ftp://x/"}]',
            "NotSupported",
        ),  # Firmware Management: not yet
        ('[2, "x4", "GetConfiguration", {"key": 5}]', "TypeConstraintViolation"),
        ('[2, "x5", "ChangeConfiguration", {"key": "HeartbeatInterval"}]', "OccurenceConstraintViolation"),
        ('[2, "x6", "Reset", {"type": "Sideways"}]', "PropertyConstraintViolation"),
        ('[2, "x7", "Reset", {"type": "Soft", "extra": 1}]', "FormationViolation"),
    ],
)
def test_malformed_calls_get_the_right_callerror(csms, make_sim, raw, code):
    sim = make_sim(csms=csms.url, cp_id="CP1")
    csms.wait_for_call("CP1", "StatusNotification")
    csms.send_raw("CP1", raw)
    reply = csms.wait_for_raw_reply("CP1", timeout=5)
    assert reply[0] == 4 and reply[2] == code, reply
    # The link survives and still works.
    assert csms.call("CP1", "GetConfiguration", {"key": ["HeartbeatInterval"]})["configurationKey"]
    assert sim.state()["connected"]


def test_oversize_message_closes_1009_and_reconnects(csms, make_sim):
    sim = make_sim(csms=csms.url, cp_id="CP1")
    csms.wait_for_call("CP1", "StatusNotification")
    huge = json.dumps([2, "big", "DataTransfer", {"vendorId": "X", "data": "A" * 40000}])
    csms.send_raw("CP1", huge)
    info = csms.wait_for_disconnect("CP1")
    assert info["code"] == 1009, info
    csms.wait_for_connection("CP1", timeout=15)
    assert sim.state()["heap"]["free"] > 0
    assert csms.count("CP1", "BootNotification") == 1


def test_unanswered_call_times_out_and_link_carries_on(csms, make_sim):
    csms.boot_interval = 1
    csms.no_reply("Heartbeat", times=1)
    make_sim(csms=csms.url, cp_id="CP1", sets={"MessageTimeout": 2})
    csms.wait_for_call("CP1", "Heartbeat", timeout=6)  # never answered
    csms.wait_for_call("CP1", "Heartbeat", timeout=8)  # the next one goes out after the timeout
    assert csms.connection_count("CP1") == 1


KEY = "0123456789abcdef0123"


def test_basic_auth_profile_1(built, tmp_path, make_sim):
    from csms import CsmsSimulator

    with CsmsSimulator(port=0, basic_auth={"CP1": KEY}) as server:
        make_sim(csms=server.url, cp_id="CP1", sets={"SecurityProfile": 1, "AuthorizationKey": KEY})
        info = server.wait_for_connection("CP1")
        assert info["subprotocol"] == "ocpp1.6"
        server.wait_for_call("CP1", "BootNotification")


def test_wrong_key_is_refused_and_retried(built, tmp_path, make_sim):
    from csms import CsmsSimulator

    with CsmsSimulator(port=0, basic_auth={"CP1": KEY}) as server:
        sim = make_sim(
            csms=server.url, cp_id="CP1", sets={"SecurityProfile": 1, "AuthorizationKey": "f" * 20}
        )
        server.wait_for_event("CP1", "refused", timeout=10)
        n = len([e for e in server.events("CP1") if e.kind == "refused"])
        server.wait_for_event("CP1", "refused", timeout=10, since=n)  # it keeps trying, with backoff
        assert not server.connected("CP1")
        assert not sim.state()["connected"]


def test_profile_2_refuses_plain_ws(built, csms, make_sim):
    sim = make_sim(csms=csms.url, cp_id="CP1", sets={"SecurityProfile": 2, "AuthorizationKey": KEY})
    time.sleep(2)
    assert csms.events("CP1") == [], "a TLS profile must never fall back to ws://"
    assert not sim.state()["connected"]


def test_hex_authorization_key_is_sent_as_its_bytes(built, make_sim):
    from csms import CsmsSimulator, key_to_password

    hex_key = "4F43415F4F4354545F61646D696E5F74657374"  # OCTT TC_073's key: "OCA_OCTT_admin_test"
    with CsmsSimulator(port=0, basic_auth={"CP1": key_to_password(hex_key)}) as server:
        make_sim(csms=server.url, cp_id="CP1", sets={"SecurityProfile": 1, "AuthorizationKey": hex_key})
        server.wait_for_call("CP1", "BootNotification")


def test_new_authorization_key_reconnects_with_it(built, make_sim):
    from csms import CsmsSimulator

    new_key = "abcdefghijklmnopqrst"
    with CsmsSimulator(port=0, basic_auth={"CP1": KEY}) as server:
        make_sim(csms=server.url, cp_id="CP1", sets={"SecurityProfile": 1, "AuthorizationKey": KEY})
        server.wait_for_call("CP1", "StatusNotification")
        server.basic_auth["CP1"] = new_key
        reply = server.call("CP1", "ChangeConfiguration", {"key": "AuthorizationKey", "value": new_key})
        assert reply == {"status": "Accepted"}
        server.wait_for_event("CP1", "connected", since=2, timeout=15)
        assert server.connected("CP1") and server.connection_count("CP1") == 2
        assert [e.kind for e in server.events("CP1")] == ["connected", "disconnected", "connected"]
        assert server.count("CP1", "BootNotification") == 1
        conf = server.call("CP1", "GetConfiguration", {"key": ["AuthorizationKey"]})
        assert conf["configurationKey"] == [{"key": "AuthorizationKey", "readonly": False}], "write-only"

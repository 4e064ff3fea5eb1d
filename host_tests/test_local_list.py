"""The Local Authorization List end to end (OCPP 1.6 §3.5.3, §5.10, §5.15; OCTT TC_042, TC_043;
scenarios X-29..X-32 of the reference notes): versions, Full / Differential, VersionMismatch,
limits, the disabled list, offline authorization from the list, its precedence over the cache,
refused entries, parentIdTag stop rights, a power cut in the middle of a 10,000-entry update.
The list on flash is read with the hook of tools/bench_locallist.py (read_flash_list)."""

import random
import threading
import time

from bench_locallist import entries, key_value, read_flash_list, upload
from core import CP, card, plug, start_charger, wait_charging, wait_status

OFFLINE = {"WebSocketPingInterval": 1, "WebSocketPongTimeout": 1}


def send(csms, version, kind, items=None):
    payload = {"listVersion": version, "updateType": kind}
    if items is not None:
        payload["localAuthorizationList"] = items
    return csms.call(CP, "SendLocalList", payload)["status"]


def version(csms):
    return csms.call(CP, "GetLocalListVersion", {})["listVersion"]


def listed(tag, status="Accepted", **info):
    return {"idTag": tag, "idTagInfo": {"status": status, **info}}


def offline(sim):
    sim.ok({"cmd": "network", "up": False})
    sim.wait_state(lambda s: not s["connected"], timeout=20, what="offline")


def refused(sim, tag, seconds=1.5):
    """The card is presented and no charging follows."""
    card(sim, tag)
    time.sleep(seconds)
    c = sim.connector(1)
    return not c["relay"] and c["transaction_id"] is None and c["pwm_duty"] == 100


def stopped(sim):
    sim.wait_state(lambda s: not s["connectors"][0]["relay"], timeout=10, what="stopped")


def test_versions_full_differential_and_version_mismatch(csms, make_sim):
    start_charger(csms, make_sim)
    assert version(csms) == 0
    assert send(csms, 1, "Full") == "Accepted"  # TC_042_2: no list
    assert version(csms) == 0
    assert send(csms, 3, "Full", [listed("A"), listed("B")]) == "Accepted"
    assert version(csms) == 3
    assert send(csms, 4, "Differential", [listed("C"), {"idTag": "a"}]) == "Accepted"
    assert version(csms) == 4
    assert send(csms, 4, "Differential", [listed("D")]) == "VersionMismatch"
    assert send(csms, 2, "Differential", [listed("D")]) == "VersionMismatch"  # TC_043_2
    assert version(csms) == 4
    limit = int(key_value(csms, CP, "SendLocalListMaxLength"))
    assert send(csms, 5, "Full", entries("M", limit + 1)) == "Failed"  # nothing changed
    assert send(csms, 5, "Differential", entries("M", limit + 1)) == "Failed"
    assert send(csms, 5, "Full", [listed("E"), listed("e")]) == "Failed"  # an idTag twice
    assert version(csms) == 4
    assert send(csms, 5, "Full", []) == "Accepted"  # an empty Full list: version 0
    assert version(csms) == 0
    assert csms.violations == []


def test_disabled_list_answers_minus_1_and_not_supported(csms, make_sim):
    start_charger(csms, make_sim)
    assert send(csms, 7, "Full", [listed("A")]) == "Accepted"
    conf = csms.call(CP, "ChangeConfiguration", {"key": "LocalAuthListEnabled", "value": "false"})
    assert conf["status"] == "Accepted"
    assert version(csms) == -1  # TC_042_1
    assert send(csms, 8, "Full", [listed("B")]) == "NotSupported"
    csms.call(CP, "ChangeConfiguration", {"key": "LocalAuthListEnabled", "value": "true"})
    assert version(csms) == 7


def test_offline_authorization_from_the_list(csms, make_sim):
    # Blocked, Expired and past-expiry entries are refused even with AllowOfflineTxForUnknownId
    sets = {**OFFLINE, "AllowOfflineTxForUnknownId": "true", "LocalAuthorizeOffline": "true"}
    sim = start_charger(csms, make_sim, sets=sets)
    past = "2020-06-01T00:00:00Z"
    items = [
        listed("OK1"),
        listed("BLK", "Blocked"),
        listed("OLD", expiryDate=past),
        listed("EXP", "Expired"),
    ]
    assert send(csms, 1, "Full", items) == "Accepted"
    offline(sim)
    plug(sim)
    for tag in ("BLK", "old", "EXP"):
        assert refused(sim, tag), tag
    card(sim, "ok1")  # case-insensitive
    wait_charging(sim)
    card(sim, "OK1")
    stopped(sim)
    assert csms.count(CP, "Authorize") == 0


def test_offline_list_needs_local_authorize_offline(csms, make_sim):
    sim = start_charger(csms, make_sim, sets={**OFFLINE, "LocalAuthorizeOffline": "false"})
    assert send(csms, 1, "Full", [listed("OK1")]) == "Accepted"
    offline(sim)
    plug(sim)
    assert refused(sim, "OK1")  # valid, but unknown without LocalAuthorizeOffline


def test_list_has_precedence_over_the_cache(csms, make_sim):
    sim = start_charger(csms, make_sim, sets=OFFLINE)
    csms.id_tags["TAGC"] = "Accepted"
    plug(sim)
    wait_status(csms, 1, "Preparing")
    card(sim, "TAGC")  # online: Authorize, StartTransaction: TAGC cached as Accepted
    wait_charging(sim)
    card(sim, "TAGC")
    stopped(sim)
    csms.wait_for_call(CP, "StopTransaction")
    assert send(csms, 1, "Full", [listed("TAGC", "Blocked")]) == "Accepted"
    offline(sim)
    sim.ok({"cmd": "unplug", "connector": 1})
    plug(sim)
    assert refused(sim, "TAGC")


def test_parent_id_tag_gives_stop_rights(csms, make_sim):
    sim = start_charger(csms, make_sim, sets=OFFLINE)
    items = [listed("A1", parentIdTag="P1"), listed("A2", parentIdTag="P1"), listed("B1", parentIdTag="P2")]
    assert send(csms, 1, "Full", items) == "Accepted"
    offline(sim)
    plug(sim)
    card(sim, "A1")
    wait_charging(sim)
    card(sim, "B1")  # another parent: no stop
    time.sleep(1.5)
    assert sim.connector(1)["relay"]
    card(sim, "a2")  # same parentIdTag
    stopped(sim)


def test_power_cut_during_a_10000_entry_update_keeps_a_whole_list(csms, make_sim, tmp_path):
    """SIGKILL at random moments of an upload (a Full with the first chunk, then Differentials);
    after each cut the list on flash is the one before the upload or the one of a message, with
    that message's version, and the rebooted charger reports that version."""
    rnd = random.Random()
    seed = rnd.randrange(1 << 30)
    rnd.seed(seed)
    data = tmp_path / "cutdata"
    new = entries("T", 10000)
    sim = start_charger(csms, make_sim, data=data)
    chunk = int(key_value(csms, CP, "SendLocalListMaxLength"))
    old = entries("OLD", 50, "Blocked")
    assert send(csms, 1, "Full", old) == "Accepted"
    before = (1, {e["idTag"]: e["idTagInfo"] for e in old})
    for base in (10, 1000):  # every message of an upload has version base + k
        answered, errors = [], []

        def run(base=base, answered=answered, errors=errors):
            try:
                upload(csms, CP, new, base, chunk, on_answer=answered.append)
            except Exception as problem:  # the cut ends the upload
                errors.append(problem)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        time.sleep(rnd.uniform(0.05, 1.5))
        sim.power_cut()
        t.join(40)
        assert errors, f"the upload finished before the cut (seed {seed})"
        now = read_flash_list(data)
        if now != before:
            k = now[0] - base + 1  # messages applied: at least those answered, at most one more
            assert answered[-1:] <= [k] <= [len(answered) + 1], (seed, now[0], answered)
            assert now[1] == {e["idTag"]: e["idTagInfo"] for e in new[: k * chunk]}, (seed, now[0])
        else:
            assert not answered, seed
        before = now
        sim = make_sim(csms=csms.url, cp_id=CP, data=data)
        csms.wait_for_call(CP, "BootNotification", timeout=15)
        assert version(csms) == now[0], seed
    assert csms.violations == []


def test_backend_answer_against_the_list_is_a_local_list_conflict(csms, make_sim):
    # X-35; needs the report_conflict calls in cp/core/auth.py (Authorize) and cp/charging.py (Start)
    sim = start_charger(csms, make_sim, sets={"LocalPreAuthorize": "false"})
    assert send(csms, 1, "Full", [listed("L1"), listed("L2")]) == "Accepted"
    csms.id_tags["L1"] = "Blocked"
    csms.id_tags["L2"] = "Invalid"
    plug(sim)
    wait_status(csms, 1, "Preparing")
    card(sim, "L1")  # Authorize.conf: Blocked
    wait_status(csms, 0, "Available", errorCode="LocalListConflict")
    conf = csms.call(CP, "ChangeConfiguration", {"key": "LocalPreAuthorize", "value": "true"})
    assert conf["status"] == "Accepted"
    card(sim, "L2")  # started from the list at once; StartTransaction.conf: Invalid
    assert csms.wait_for_call(CP, "StartTransaction")["idTag"] == "L2"
    wait_status(csms, 0, "Available", errorCode="LocalListConflict")
    conflicts = [p for p in csms.calls(CP, "StatusNotification") if p["errorCode"] == "LocalListConflict"]
    assert len(conflicts) == 2 and all(p["connectorId"] == 0 for p in conflicts)
    assert csms.count(CP, "Authorize") == 1
    assert version(csms) == 1  # the list is not changed by the backend's answers

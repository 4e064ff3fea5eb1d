"""Smart charging end to end: charging profiles from the CSMS simulator drive the pilot PWM of the
simulated charger (hardware event log), TxProfile rules, RemoteStartTransaction with a TxProfile,
GetCompositeSchedule and ClearChargingProfile. The schedule arithmetic itself is checked in
host_tests/mp/test_smart.py and against the CPython reference (test_smart_reference.py)."""

import time
from datetime import UTC, datetime, timedelta

from core import CP, card, charge, plug, start_charger, wait_charging, wait_status


def _iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _profile(pid, purpose, periods, start=None, stack=0, kind="Absolute", **extra):
    sched = {
        "chargingRateUnit": "A",
        "chargingSchedulePeriod": [{"startPeriod": s, "limit": a} for s, a in periods],
    }
    if start is not None:
        sched["startSchedule"] = _iso(start)
    return {
        "chargingProfileId": pid,
        "stackLevel": stack,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": sched,
        **extra,
    }


def _pwm(sim, since=0):
    return [(e["t_ms"], e["value"]) for e in sim.events(since) if e["kind"] == "pwm" and e["connector"] == 1]


def test_the_pwm_follows_a_schedule_with_several_periods(csms, make_sim):
    sim = start_charger(csms, make_sim)
    charge(csms, sim)
    assert _pwm(sim)[-1][1] == 53.3  # 32 A: MaxCurrent
    seq = sim.events()[-1]["seq"]
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    profile = _profile(1, "TxDefaultProfile", [(0, 16), (6, 10), (12, 0), (18, 20)], start)
    assert csms.call(CP, "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": profile}) == {
        "status": "Accepted"
    }
    wait_status(csms, 1, "SuspendedEVSE", timeout=20)  # the 0 A period: PWM off, no energy
    sn = wait_status(csms, 1, "Charging", timeout=12)
    assert sn
    deadline = time.monotonic() + 10
    while _pwm(sim, seq)[-1][1] != 33.3:  # 20 A
        assert time.monotonic() < deadline, _pwm(sim, seq)
        time.sleep(0.2)
    values = [v for _, v in _pwm(sim, seq)]
    assert values == [26.6, 16.6, 100, 33.3], values  # 16 A, 10 A, off, 20 A in this order
    times = [t for t, _ in _pwm(sim, seq)]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert all(4500 <= g <= 7500 for g in gaps), gaps  # each period of 6 s, evaluated every >= 5 s
    assert csms.violations == []


def test_tx_profile_needs_its_transaction(csms, make_sim):
    sim = start_charger(csms, make_sim)
    tx_profile = _profile(5, "TxProfile", [(0, 8)])
    conf = csms.call(CP, "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": tx_profile})
    assert conf == {"status": "Rejected"}  # no transaction
    tx = charge(csms, sim)
    wrong = dict(tx_profile, transactionId=tx + 1)
    assert csms.call(CP, "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": wrong}) == {
        "status": "Rejected"
    }
    right = dict(tx_profile, transactionId=tx)
    assert csms.call(CP, "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": right}) == {
        "status": "Accepted"
    }
    sim.wait_state(lambda s: s["connectors"][0]["pwm_duty"] == 13.3, timeout=8, what="8 A offered")
    conf = csms.call(CP, "GetCompositeSchedule", {"connectorId": 1, "duration": 300})
    assert conf["status"] == "Accepted"
    periods = conf["chargingSchedule"]["chargingSchedulePeriod"]
    assert periods[0]["startPeriod"] == 0 and periods[0]["limit"] == 8
    assert csms.call(CP, "ClearChargingProfile", {"id": 5}) == {"status": "Accepted"}
    sim.wait_state(lambda s: s["connectors"][0]["pwm_duty"] == 53.3, timeout=8, what="back to 32 A")
    assert csms.call(CP, "ClearChargingProfile", {"id": 5}) == {"status": "Unknown"}


def test_remote_start_with_a_tx_profile(csms, make_sim):
    sim = start_charger(csms, make_sim)
    plug(sim)
    wait_status(csms, 1, "Preparing")
    bad = _profile(7, "TxDefaultProfile", [(0, 10)])
    conf = csms.call(CP, "RemoteStartTransaction", {"connectorId": 1, "idTag": "R1", "chargingProfile": bad})
    assert conf == {"status": "Rejected"}  # TC_060: only a TxProfile
    good = _profile(7, "TxProfile", [(0, 10)])
    conf = csms.call(CP, "RemoteStartTransaction", {"connectorId": 1, "idTag": "R1", "chargingProfile": good})
    assert conf == {"status": "Accepted"}
    csms.wait_for_call(CP, "StartTransaction")
    wait_charging(sim)
    sim.wait_state(lambda s: s["connectors"][0]["pwm_duty"] == 16.6, timeout=8, what="10 A offered")
    card(sim, "R1")
    csms.wait_for_call(CP, "StopTransaction")
    # the TxProfile ended with its transaction
    conf = csms.call(CP, "ClearChargingProfile", {"id": 7})
    assert conf == {"status": "Unknown"}

# Smart charging (cp/smart/profiles.py, cp/smart/h_smart.py): the OCTT smart charging cases with their exact
# composite schedules (reference notes 1.2 [SC], 2.6), recurrence, units, limits, persistence.
# The clock is pinned so that startPeriods are exact (OCTT's "x" is 0 here).
import os

import mptmp
from cp import clock, config
from cp.smart import h_smart
from cp.smart import profiles as smart
from ocpp.rpc import CallError

FLASH = mptmp.path("mp_test_smart")
T0 = clock.parse_iso("2026-11-24T20:00:00Z")  # a Tuesday
DAY = 86400
KEYS = {
    "NumberOfConnectors": 2,
    "ChargeProfileMaxStackLevel": 16,
    "ChargingScheduleAllowedChargingRateUnit": "Current,Power",
    "ChargingScheduleMaxPeriods": 48,
    "MaxChargingProfilesInstalled": 32,
    "NominalVoltage": 230,
    "SupplyPhases": 3,
}


class Board:
    flash = FLASH


class Tx:
    def __init__(self, key, start_s):
        self.key = key
        self.start_s = start_s


class Charging:
    def __init__(self):
        self.n = 2
        self.tx = [None, None, None]
        self.changes = 0

    def limits_changed(self):  # the pilot re-evaluates the limit (cp/charging.py)
        self.changes += 1


class Queue:
    def __init__(self):
        self.ids = {}

    def tx_id(self, key):
        return self.ids.get(key)


class Cp:
    def __init__(self, **keys):
        self.board = Board()
        fixed = dict(KEYS)
        fixed.update(keys)
        self.config = config.Config(FLASH + "/config.json", fixed)
        self.charging = Charging()
        self.queue = Queue()

    def start_tx(self, c, tx_id, start_s=None):
        self.charging.tx[c] = Tx(100 + c, T0 if start_s is None else start_s)
        self.queue.ids[100 + c] = tx_id


def wipe():
    for d in (FLASH + smart.PROFILE_DIR, FLASH):
        try:
            for name in os.listdir(d):
                os.remove(d + "/" + name)
        except OSError:
            pass


def at(t):
    clock.now = lambda: t


def fresh(**keys):
    wipe()
    at(T0)
    return Cp(**keys)


def profile(pid, purpose, periods, stack=0, kind="Absolute", unit="A", **extra):
    sched = {
        "chargingRateUnit": unit,
        "chargingSchedulePeriod": [{"startPeriod": s, "limit": v} for s, v in periods],
    }
    for k in ("duration", "startSchedule", "minChargingRate"):
        if k in extra:
            sched[k] = extra.pop(k)
    p = {"chargingProfileId": pid, "stackLevel": stack, "chargingProfilePurpose": purpose,
         "chargingProfileKind": kind, "chargingSchedule": sched}  # fmt: skip
    p.update(extra)
    return p


def run(coro):
    try:
        coro.send(None)
    except StopIteration as e:
        return e.value
    raise AssertionError("handler awaited")


def set_profile(cp, c, prof):
    return run(h_smart.set_charging_profile(cp, {"connectorId": c, "csChargingProfiles": prof}))["status"]


def clear(cp, **criteria):
    return run(h_smart.clear_charging_profile(cp, criteria))["status"]


def composite(cp, c, duration, unit=None, full=False):
    req = {"connectorId": c, "duration": duration}
    if unit:
        req["chargingRateUnit"] = unit
    conf = run(h_smart.get_composite_schedule(cp, req))
    if full:
        return conf
    assert conf["status"] == "Accepted"
    assert conf["scheduleStart"] == clock.iso(clock.now())
    assert "startSchedule" not in conf["chargingSchedule"]  # errata 3.57: scheduleStart only
    assert conf["chargingSchedule"]["duration"] == duration
    return [(p["startPeriod"], p["limit"]) for p in conf["chargingSchedule"]["chargingSchedulePeriod"]]


def iso(t):
    return clock.iso(t)


def test_tc056_tx_default_profile_in_a_and_w():
    cp = fresh()
    assert set_profile(cp, 1, profile(1, "TxDefaultProfile", [(0, 6)], duration=300)) == "Accepted"
    assert composite(cp, 1, 300, "A") == [(0, 6)]
    assert composite(cp, 2, 300) == [(0, 32)]  # another connector: only the local limit (MaxCurrent)
    cp = fresh()
    prof = profile(1, "TxDefaultProfile", [(0, 6000)], unit="W", duration=300)
    prof["chargingSchedule"]["chargingSchedulePeriod"][0]["numberPhases"] = 3
    assert set_profile(cp, 1, prof) == "Accepted"
    conf = composite(cp, 1, 300, "W", full=True)
    assert conf["chargingSchedule"]["chargingRateUnit"] == "W"
    assert conf["chargingSchedule"]["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 6000, "numberPhases": 3}
    ]
    assert composite(cp, 1, 300, "A") == [(0, 8.7)]  # 6000 W / (230 V x 3)


def test_tc057_tc082_tx_profile_and_tx_default_during_a_transaction():
    cp = fresh()
    cp.start_tx(1, 42)
    assert set_profile(cp, 0, profile(7, "TxDefaultProfile", [(0, 10)])) == "Accepted"  # TC_082
    assert composite(cp, 1, 300) == [(0, 10)]
    assert set_profile(cp, 1, profile(8, "TxProfile", [(0, 6)], duration=300, transactionId=42)) == "Accepted"
    assert composite(cp, 1, 400) == [(0, 6), (300, 32)]  # the TxProfile overrules TxDefault to the end
    assert composite(cp, 2, 400) == [(0, 10)]  # connector 2 has no transaction: TxDefault


def test_tc058_tx_profile_refused_without_its_transaction():
    cp = fresh()
    tx_profile = profile(3, "TxProfile", [(0, 6)], transactionId=42)
    assert set_profile(cp, 1, tx_profile) == "Rejected"  # TC_058_1: no transaction
    cp.start_tx(1, 43)
    assert set_profile(cp, 1, tx_profile) == "Rejected"  # TC_058_2: another transaction's id
    assert set_profile(cp, 0, tx_profile) == "Rejected"  # a TxProfile needs a connector
    assert set_profile(cp, 1, profile(4, "ChargePointMaxProfile", [(0, 6)])) == "Rejected"  # connector 0 only
    try:
        set_profile(cp, 3, profile(4, "TxDefaultProfile", [(0, 6)]))
        raise AssertionError("connector 3 accepted")
    except CallError as e:
        assert e.code == "PropertyConstraintViolation"
    assert composite(cp, 1, 60) == [(0, 32)]
    assert run(h_smart.get_composite_schedule(cp, {"connectorId": 3, "duration": 60})) == {
        "status": "Rejected"
    }


def test_tc066_composite_of_three_purposes():
    cp = fresh()
    cp.start_tx(1, 42)
    start = iso(T0 - 5)  # startSchedule = now - dev
    until = iso(T0 - 5 + 401)
    p1 = profile(1, "ChargePointMaxProfile", [(0, 10)], duration=86400, startSchedule=start)
    p2 = profile(2, "TxDefaultProfile", [(0, 6), (60, 10), (120, 8), (180, 15), (260, 8)], duration=300,
                 startSchedule=start, validFrom=start, validTo=until)  # fmt: skip
    p3 = profile(3, "TxProfile", [(0, 8), (50, 11), (140, 16), (200, 6), (240, 12)], duration=260,
                 startSchedule=start, validFrom=start, validTo=until, transactionId=42)  # fmt: skip
    assert set_profile(cp, 0, p1) == "Accepted"
    assert set_profile(cp, 1, p2) == "Accepted"
    assert set_profile(cp, 1, p3) == "Accepted"
    at(T0 + 5)  # x = 10 s after the profiles' start
    assert composite(cp, 1, 400) == [(0, 8), (50 - 10, 10), (200 - 10, 6), (240 - 10, 10)]


def test_tc067_clear_charging_profile_sequence():
    cp = fresh()
    until = iso(T0 + 401)
    set_profile(cp, 1, profile(1, "TxDefaultProfile", [(0, 6), (60, 8), (200, 10)], stack=1, duration=400))
    set_profile(cp, 1, profile(2, "TxDefaultProfile", [(0, 7), (100, 9)], duration=400, validTo=until))
    set_profile(cp, 0, profile(3, "ChargePointMaxProfile", [(0, 11), (200, 12)], duration=86400))
    assert composite(cp, 1, 350) == [(0, 6), (60, 8), (200, 10)]
    assert clear(cp, id=1) == "Accepted"
    assert composite(cp, 1, 350) == [(0, 7), (100, 9)]
    assert clear(cp, chargingProfilePurpose="TxDefaultProfile", stackLevel=1) == "Unknown"  # AND of criteria
    assert clear(cp, chargingProfilePurpose="TxDefaultProfile", stackLevel=0) == "Accepted"
    assert composite(cp, 1, 350) == [(0, 11), (200, 12)]
    assert clear(cp, id=99, connectorId=0) == "Unknown"  # with an id the other fields do not count
    assert clear(cp) == "Accepted"
    assert composite(cp, 1, 350) == [(0, 32)]
    assert clear(cp) == "Unknown"


def test_clear_by_connector_and_purpose():
    cp = fresh()
    set_profile(cp, 1, profile(1, "TxDefaultProfile", [(0, 6)]))
    set_profile(cp, 2, profile(2, "TxDefaultProfile", [(0, 7)]))
    set_profile(cp, 0, profile(3, "ChargePointMaxProfile", [(0, 20)]))
    assert clear(cp, connectorId=2) == "Accepted"
    assert composite(cp, 2, 60) == [(0, 20)] and composite(cp, 1, 60) == [(0, 6)]
    assert clear(cp, chargingProfilePurpose="ChargePointMaxProfile", connectorId=1) == "Unknown"
    assert clear(cp, chargingProfilePurpose="ChargePointMaxProfile") == "Accepted"
    assert composite(cp, 2, 60) == [(0, 32)] and composite(cp, 1, 60) == [(0, 6)]


def test_tc072_stacking_falls_back_to_the_lower_level():
    cp = fresh()
    start, until = iso(T0 - 5), iso(T0 - 5 + 401)
    set_profile(cp, 1, profile(1, "TxDefaultProfile", [(0, 6), (100, 8), (200, 10)], duration=400,
                               startSchedule=start, validFrom=start, validTo=until))  # fmt: skip
    set_profile(cp, 1, profile(2, "TxDefaultProfile", [(0, 7), (100, 9)], stack=1, duration=150,
                               startSchedule=start, validFrom=start, validTo=until))  # fmt: skip
    at(T0 - 5)
    assert composite(cp, 1, 350) == [(0, 7), (100, 9), (150, 8), (200, 10)]
    at(T0 + 394)  # the lower level's duration ends at T0 + 395: no limit from then on
    assert composite(cp, 1, 10) == [(0, 10), (1, 32)]


def test_replacement_by_id_and_by_purpose_stack_connector():
    cp = fresh()
    set_profile(cp, 1, profile(1, "TxDefaultProfile", [(0, 6)]))
    set_profile(cp, 1, profile(2, "TxDefaultProfile", [(0, 7)]))  # same purpose, stack, connector
    assert composite(cp, 1, 60) == [(0, 7)]
    assert sorted(e[3] for e in smart.Store(FLASH).entries()) == [2]
    set_profile(cp, 2, profile(2, "TxDefaultProfile", [(0, 8)], stack=3))  # same id elsewhere
    assert composite(cp, 1, 60) == [(0, 32)] and composite(cp, 2, 60) == [(0, 8)]
    set_profile(cp, 0, profile(5, "TxDefaultProfile", [(0, 9)], stack=3))  # connector 0: all connectors
    assert composite(cp, 1, 60) == [(0, 9)]
    assert composite(cp, 2, 60) == [(0, 8)]  # the connector's own profile beats 0's at the same level
    set_profile(cp, 0, profile(6, "TxDefaultProfile", [(0, 5)], stack=4))
    assert composite(cp, 2, 60) == [(0, 5)]  # a higher level of connector 0 wins
    assert len(list(smart.Store(FLASH).entries())) == 3


def test_x24_valid_from_in_the_future_reverts_to_default_until_then():
    cp = fresh()
    set_profile(cp, 1, profile(1, "TxDefaultProfile", [(0, 6)]))
    set_profile(cp, 1, profile(2, "TxDefaultProfile", [(0, 10)], validFrom=iso(T0 + 300)))
    assert composite(cp, 1, 600) == [(0, 32), (300, 10)]


def test_x23_daily_recurrence_higher_level_covers_the_day():
    cp = fresh()
    cp.start_tx(1, 42)
    common = {"startSchedule": iso(T0), "validFrom": iso(T0), "validTo": iso(T0 + 3 * 86400)}
    set_profile(cp, 1, profile(1, "TxDefaultProfile", [(0, 14), (5000, 16), (15000, 20)], kind="Recurring",
                               recurrencyKind="Daily", **common))  # fmt: skip
    set_profile(cp, 1, profile(2, "TxDefaultProfile", [(0, 10), (10000, 22), (20000, 6)], stack=1,
                               kind="Recurring", recurrencyKind="Daily", duration=DAY, **common))  # fmt: skip
    expected = [(0, 10), (10000, 22), (20000, 6), (86400, 10), (96400, 22), (106400, 6)]
    assert composite(cp, 1, 172800) == expected


def test_daily_recurrence_across_midnight():
    cp = fresh()
    # 22:00 -> 10 A, midnight -> 16 A, until 06:00; the day before startSchedule recurs as well
    night = profile(1, "TxDefaultProfile", [(0, 10), (7200, 16)], kind="Recurring", recurrencyKind="Daily",
                    startSchedule="2026-11-25T22:00:00Z", duration=8 * 3600)  # fmt: skip
    assert set_profile(cp, 1, night) == "Accepted"
    at(clock.parse_iso("2026-11-24T23:00:00Z"))
    assert composite(cp, 1, 86400) == [(0, 10), (3600, 16), (7 * 3600, 32), (23 * 3600, 10)]
    at(clock.parse_iso("2026-11-28T05:59:00Z"))
    assert composite(cp, 1, 120) == [(0, 16), (60, 32)]


def test_weekly_recurrence_across_the_week_boundary():
    cp = fresh()
    # Sundays 20:00 -> 8 A, Monday 00:00 -> 20 A, until Monday 06:00
    sunday = "2026-11-22T20:00:00Z"
    week = profile(1, "ChargePointMaxProfile", [(0, 8), (4 * 3600, 20)], kind="Recurring",
                   recurrencyKind="Weekly", startSchedule=sunday, duration=10 * 3600)  # fmt: skip
    assert set_profile(cp, 0, week) == "Accepted"
    at(clock.parse_iso("2026-11-29T23:00:00Z"))  # the next Sunday
    assert composite(cp, 1, 8 * 3600) == [(0, 8), (3600, 20), (7 * 3600, 32)]
    at(clock.parse_iso("2026-12-06T19:00:00Z"))
    assert composite(cp, 1, 2 * 3600) == [(0, 32), (3600, 8)]
    assert composite(cp, 0, 2 * 3600) == [(0, 64), (3600, 8)]  # connector 0: 2 x MaxCurrent locally


def test_relative_profile_follows_the_transaction_start():
    cp = fresh()
    set_profile(cp, 1, profile(1, "TxDefaultProfile", [(0, 6), (600, 12)], kind="Relative", duration=1200))
    assert composite(cp, 1, 1800) == [(0, 6), (600, 12), (1200, 32)]  # no transaction: one starting now
    cp.start_tx(1, 42, T0 - 300)
    assert composite(cp, 1, 1800) == [(0, 6), (300, 12), (900, 32)]


def test_x25_watts_and_amperes():
    cp = fresh()
    prof = profile(1, "TxDefaultProfile", [(0, 11000)], unit="W")
    prof["chargingSchedule"]["chargingSchedulePeriod"][0]["numberPhases"] = 3
    set_profile(cp, 1, prof)
    amps, nxt = smart.limit_at(smart.Store(FLASH), 1, T0, None, 230, 3)
    assert abs(amps - 11000 / 690) < 1e-6 and nxt is None  # 15.9 A per phase
    assert composite(cp, 1, 60, "A") == [(0, 15.9)]
    assert composite(cp, 1, 60, "W") == [(0, 11000)]
    set_profile(cp, 0, profile(2, "ChargePointMaxProfile", [(0, 10), (30, 16)]))  # mixed units
    assert composite(cp, 1, 60, "A") == [(0, 10), (30, 15.9)]
    assert composite(cp, 1, 60, "W") == [(0, 6900), (30, 11000)]
    cp = fresh(SupplyPhases=1, NominalVoltage=230)  # 3 phases asked, one wired: 11000 W on one
    set_profile(cp, 1, prof)
    amps, _ = smart.limit_at(smart.Store(FLASH), 1, T0, None, 230, 1)
    assert abs(amps - 11000 / 230) < 1e-6
    assert composite(cp, 1, 60, "A") == [(0, 32)]  # 47.8 A: the local limit is lower


def test_min_charging_rate_pauses_below_it():
    cp = fresh()
    set_profile(cp, 1, profile(1, "TxDefaultProfile", [(0, 16)], minChargingRate=8))
    set_profile(cp, 0, profile(2, "ChargePointMaxProfile", [(0, 6), (60, 10)]))
    assert composite(cp, 1, 120) == [(0, 0), (60, 10)]
    assert smart.limit_at(smart.Store(FLASH), 1, T0, None) == (0, T0 + 60)
    set_profile(cp, 1, profile(1, "TxDefaultProfile", [(0, 4600)], unit="W", minChargingRate=2300))
    assert composite(cp, 1, 120) == [(0, 6), (60, 6.7)]  # 2300 W = 3.3 A: above it
    set_profile(cp, 1, profile(1, "TxDefaultProfile", [(0, 4600)], unit="W", minChargingRate=4500))
    assert composite(cp, 1, 120) == [(0, 0), (60, 6.7)]  # 4500 W = 6.5 A: 6 A is below it


def test_x27_configured_limits():
    cp = fresh(MaxChargingProfilesInstalled=2, ChargingScheduleMaxPeriods=3, ChargeProfileMaxStackLevel=2,
               ChargingScheduleAllowedChargingRateUnit="Current")  # fmt: skip
    assert set_profile(cp, 1, profile(1, "TxDefaultProfile", [(0, 6)])) == "Accepted"
    assert set_profile(cp, 1, profile(2, "TxDefaultProfile", [(0, 6)], stack=1)) == "Accepted"
    assert set_profile(cp, 1, profile(3, "TxDefaultProfile", [(0, 6)], stack=2)) == "Rejected"  # a third
    assert set_profile(cp, 1, profile(2, "TxDefaultProfile", [(0, 7)], stack=2)) == "Accepted"  # replaces
    assert set_profile(cp, 1, profile(1, "TxDefaultProfile", [(0, 6)], stack=3)) == "Rejected"  # stack level
    assert set_profile(cp, 1, profile(1, "TxDefaultProfile", [(0, 6), (1, 7), (2, 8), (3, 9)])) == "Rejected"
    assert set_profile(cp, 1, profile(1, "TxDefaultProfile", [(0, 6), (1, 7), (2, 8)])) == "Accepted"
    assert set_profile(cp, 1, profile(1, "TxDefaultProfile", [(0, 6000)], unit="W")) == "Rejected"


def test_malformed_schedules_are_rejected():
    cp = fresh()
    bad = [
        profile(1, "TxDefaultProfile", [(10, 6)]),  # first period not at 0
        profile(1, "TxDefaultProfile", [(0, 6), (60, 7), (60, 8)]),  # not ascending
        profile(1, "TxDefaultProfile", [(0, -1)]),
        profile(1, "TxDefaultProfile", [(0, 6)], kind="Recurring", recurrencyKind="Daily"),  # no start
        profile(1, "TxDefaultProfile", [(0, 6)], kind="Recurring", startSchedule=iso(T0)),  # no kind
        profile(1, "TxDefaultProfile", [(0, 6)], validFrom="yesterday"),
    ]
    for prof in bad:
        assert set_profile(cp, 1, prof) == "Rejected", prof
    assert list(smart.Store(FLASH).entries()) == []


def test_x28_profiles_survive_a_reboot():
    cp = fresh()
    set_profile(cp, 0, profile(1, "ChargePointMaxProfile", [(0, 20), (100, 12)], duration=3600))
    set_profile(cp, 2, profile(2, "TxDefaultProfile", [(0, 16)], duration=3600))
    before = composite(cp, 2, 600)
    rebooted = Cp()  # fresh objects over the same flash
    assert composite(rebooted, 2, 600) == before == [(0, 16), (100, 12)]


def test_limit_at_and_next_change_for_the_pilot():
    cp = fresh()
    set_profile(cp, 1, profile(1, "TxDefaultProfile", [(0, 6), (60, 8), (200, 10)], duration=400))
    store = smart.Store(FLASH)
    assert smart.limit_at(store, 1, T0, None) == (6, T0 + 60)
    assert smart.limit_at(store, 1, T0 + 60, None) == (8, T0 + 200)
    assert smart.limit_at(store, 1, T0 + 399, None) == (10, T0 + 400)
    assert smart.limit_at(store, 1, T0 + 400, None) == (None, None)
    cp.start_tx(1, 42)
    set_profile(cp, 1, profile(2, "TxProfile", [(0, 13)]))
    assert smart.limit_at(store, 1, T0 + 10, T0) == (13, None)
    assert smart.limit_at(store, 1, T0 + 10, None) == (6, T0 + 60)  # TxProfiles only count in a transaction
    assert store.tx_ended(1) == 1
    assert smart.limit_at(store, 1, T0 + 10, T0) == (6, T0 + 60)


def test_composite_is_bounded_and_cut_where_it_stops():
    cp = fresh()
    periods = [(i * 1800, 6 + i % 2) for i in range(48)]
    set_profile(cp, 1, profile(1, "TxDefaultProfile", periods, kind="Recurring", recurrencyKind="Daily",
                               startSchedule=iso(T0)))  # fmt: skip
    conf = composite(cp, 1, 7 * 86400, full=True)
    sched = conf["chargingSchedule"]
    assert len(sched["chargingSchedulePeriod"]) == smart.MAX_PIECES
    assert sched["duration"] == smart.MAX_PIECES * 1800  # up to where the answer is complete
    assert sched["chargingSchedulePeriod"][-1] == {"startPeriod": (smart.MAX_PIECES - 1) * 1800, "limit": 7}

# SetChargingProfile, ClearChargingProfile, GetCompositeSchedule (OCPP 1.6 §5.16, §5.5, §5.7;
# the rules in cp/smart/profiles.py). Payloads arrive validated against the schemas (enums, types).
import lazy
from cp import clock
from ocpp.rpc import CallError

_PURPOSE = {"ChargePointMaxProfile": "M", "TxDefaultProfile": "D", "TxProfile": "T"}
_UNIT_KEY = {"A": "Current", "W": "Power"}


def _store(cp):
    return lazy.load("cp.smart.profiles").Store(cp.board.flash)


def _connector(cp, c):
    return 0 <= c <= cp.config.get("NumberOfConnectors")


def _time(sched_or_prof, field):
    """(present, epoch s or None when unparsable) of an optional date-time field."""
    text = sched_or_prof.get(field)
    if text is None:
        return False, None
    return True, clock.parse_iso(text)


def compact(config, prof, now):
    """The profile in cp/smart/profiles.py's compact form, or None when this charge point refuses it
    (limits of the configuration keys, periods not starting at 0 or not ascending, a Recurring
    profile without recurrencyKind or startSchedule, an unreadable date)."""
    smart = lazy.load("cp.smart.profiles")
    sched = prof["chargingSchedule"]
    periods = sched["chargingSchedulePeriod"]
    unit = sched["chargingRateUnit"]
    if _UNIT_KEY[unit] not in config.get("ChargingScheduleAllowedChargingRateUnit").split(","):
        return None
    if not 0 <= prof["stackLevel"] <= config.get("ChargeProfileMaxStackLevel"):
        return None
    if not periods or len(periods) > config.get("ChargingScheduleMaxPeriods"):
        return None
    flat = []
    for p in periods:
        start, limit, phases = p["startPeriod"], p["limit"], p.get("numberPhases", 0)
        if (start <= flat[-3] if flat else start != 0) or limit < 0:
            return None  # the first period starts at 0, the others in ascending order
        if "numberPhases" in p and not 1 <= phases <= 3:
            return None
        flat += (start, limit, phases)
    has_from, valid_from = _time(prof, "validFrom")
    has_to, valid_to = _time(prof, "validTo")
    has_start, start = _time(sched, "startSchedule")
    if (has_from and valid_from is None) or (has_to and valid_to is None) or (has_start and start is None):
        return None
    kind = prof["chargingProfileKind"]
    every = 0
    if kind == "Recurring":
        rec = prof.get("recurrencyKind")
        if rec is None or start is None:
            return None
        every = smart.DAY if rec == "Daily" else smart.WEEK
        kind = smart.RECURRING
    elif kind == "Relative":
        kind, start = smart.RELATIVE, None
    else:
        kind = smart.ABSOLUTE
        if start is None:
            start = now  # no startSchedule: the schedule starts when it is received
    duration = sched.get("duration")
    if duration is not None and duration < 0:
        return None
    min_rate = sched.get("minChargingRate")
    return [kind, every, valid_from, valid_to, start, duration, 1 if unit == "W" else 0, min_rate,
            prof.get("transactionId"), flat]  # fmt: skip


def install(cp, c, prof):
    """Validate and store a profile for connector c (also the TxProfile of a
    RemoteStartTransaction, once its transaction runs). True when installed."""
    purpose = _PURPOSE[prof["chargingProfilePurpose"]]
    if purpose == "M" and c != 0:
        return False  # ChargePointMaxProfile: the whole charge point only
    if purpose == "T":
        tx = cp.charging.tx[c] if c else None
        if tx is None:
            return False  # a TxProfile needs a running transaction on its connector
        wanted = prof.get("transactionId")
        if wanted is not None and wanted != cp.queue.tx_id(tx.key):
            return False
    config = cp.config
    entry = compact(config, prof, clock.now())
    if entry is None:
        return False
    max_n = config.get("MaxChargingProfilesInstalled")
    return _store(cp).add(purpose, c, prof["stackLevel"], prof["chargingProfileId"], entry, max_n)


async def set_charging_profile(cp, payload):
    c = payload["connectorId"]
    if not _connector(cp, c):
        raise CallError("PropertyConstraintViolation", "connectorId")
    ok = install(cp, c, payload["csChargingProfiles"])
    if ok:
        cp.charging.limits_changed()  # the pilot follows at the next tick
    return {"status": "Accepted" if ok else "Rejected"}


async def clear_charging_profile(cp, payload):
    # errata 3.25/3.26: with an id the other fields are ignored; otherwise all given must match
    pid = payload.get("id")
    purpose = payload.get("chargingProfilePurpose")
    if purpose is not None:
        purpose = _PURPOSE[purpose]
    n = _store(cp).clear(pid, payload.get("connectorId"), purpose, payload.get("stackLevel"))
    if n:
        cp.charging.limits_changed()
    return {"status": "Accepted" if n else "Unknown"}


async def get_composite_schedule(cp, payload):
    c = payload["connectorId"]
    duration = payload["duration"]
    if not _connector(cp, c) or duration < 1:
        return {"status": "Rejected"}
    smart = lazy.load("cp.smart.profiles")
    config = cp.config
    unit = payload.get("chargingRateUnit", "A")
    volts, wired = config.get("NominalVoltage"), config.get("SupplyPhases")
    local = config.get("MaxCurrent")
    tx_start = None
    if c:
        tx = cp.charging.tx[c]
        tx_start = tx.start_s if tx is not None else None
    else:
        local *= config.get("NumberOfConnectors")  # connector 0: the whole charge point
    now = clock.now()
    pieces, duration = smart.composite(_store(cp), c, now, duration, tx_start, local, volts, wired)
    unit_w = unit == "W"
    periods = []
    for offset, amps, phases in pieces:
        p = {"startPeriod": offset, "limit": smart.to_unit(amps, phases, unit_w, volts, wired)}
        if phases:
            p["numberPhases"] = phases
        periods.append(p)
    return {
        "status": "Accepted",
        "connectorId": c,
        "scheduleStart": clock.iso(now),
        "chargingSchedule": {
            "duration": duration,
            "chargingRateUnit": unit,
            "chargingSchedulePeriod": periods,
        },
    }

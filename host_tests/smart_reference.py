"""Reference composite schedule of OCPP 1.6 smart charging, in CPython, written from the rules
(OCPP 1.6 §3.13, reference notes 2.6), not from the firmware: the limit is evaluated point by
point ("which profile prevails at instant t, and what does it say") at every instant where
anything could change, instead of the firmware's fill-the-gaps pass over flash files.

Conventions shared with the firmware (they are choices the standard leaves open):
  - limits compare in amperes per phase; W -> A divides by nominal voltage x phases, phases =
    min(numberPhases or 3, phases wired);
  - an Absolute profile without startSchedule starts when it was installed; a Relative one at the
    transaction start, or at the start of the asked window without a transaction; a Recurring one
    repeats forwards and backwards from startSchedule, its duration cut to the recurrence;
  - ChargePointMaxProfile caps every connector; a running transaction with any TxProfile on its
    connector uses TxProfiles only, otherwise TxDefaultProfiles of the connector and of
    connector 0 (the connector's own wins at the same stackLevel); connector 0 = CP max only;
  - the smaller limit wins, on equal limits the first of: local, CP max, Tx(Default) (this decides
    which numberPhases is reported);
  - below the prevailing Tx(Default) schedule's minChargingRate the limit is 0.
"""

from datetime import UTC, datetime

DAY = 86400
WEEK = 7 * DAY


def epoch(text):
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def iso(t):
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Installed:
    def __init__(self, connector, profile, installed_at):
        self.connector = connector
        self.profile = profile
        self.installed_at = installed_at

    @property
    def key(self):
        p = self.profile
        return p["chargingProfilePurpose"], self.connector, p["stackLevel"]


def install(installed, connector, profile, installed_at):
    """The installed list after SetChargingProfile: a profile with the same id, or with the same
    purpose, stackLevel and connector, is replaced."""
    new = Installed(connector, profile, installed_at)
    keep = [
        e
        for e in installed
        if e.profile["chargingProfileId"] != profile["chargingProfileId"] and e.key != new.key
    ]
    return keep + [new]


def _schedule_base(entry, t, tx_start, origin):
    """(start of the schedule cycle that holds t, length of that cycle or None)."""
    p = entry.profile
    sched = p["chargingSchedule"]
    duration = sched.get("duration")
    kind = p["chargingProfileKind"]
    if kind == "Relative":
        return (origin if tx_start is None else tx_start), duration
    if kind == "Recurring":
        every = DAY if p["recurrencyKind"] == "Daily" else WEEK
        first = epoch(sched["startSchedule"])
        cycles = (t - first) // every
        length = every if duration is None else min(duration, every)
        return first + cycles * every, length
    start = sched.get("startSchedule")
    return (entry.installed_at if start is None else epoch(start)), duration


def value_at(entry, t, tx_start, origin, volts, wired):
    """(amps, numberPhases or 0, minimum amps or None) the profile sets at t, or None."""
    p = entry.profile
    if "validFrom" in p and t < epoch(p["validFrom"]):
        return None
    if "validTo" in p and t >= epoch(p["validTo"]):
        return None
    base, length = _schedule_base(entry, t, tx_start, origin)
    offset = t - base
    if offset < 0 or (length is not None and offset >= length):
        return None
    sched = p["chargingSchedule"]
    period = [q for q in sched["chargingSchedulePeriod"] if q["startPeriod"] <= offset][-1]
    phases = period.get("numberPhases", 0)
    limit, minimum = period["limit"], sched.get("minChargingRate")
    if sched["chargingRateUnit"] == "W":
        per_amp = volts * min(phases or 3, wired)
        limit = limit / per_amp
        minimum = None if minimum is None else minimum / per_amp
    return limit, phases, minimum


def _prevailing(pool, t, tx_start, origin, volts, wired):
    ranked = sorted(pool, key=lambda e: (e.profile["stackLevel"], e.connector != 0), reverse=True)
    for e in ranked:
        v = value_at(e, t, tx_start, origin, volts, wired)
        if v is not None:
            return v
    return None


def _pools(installed, c, tx_start):
    purpose = {e: e.profile["chargingProfilePurpose"] for e in installed}
    cap = [e for e in installed if purpose[e] == "ChargePointMaxProfile"]
    if c == 0:
        return cap, []
    tx = (
        [e for e in installed if purpose[e] == "TxProfile" and e.connector == c]
        if tx_start is not None
        else []
    )
    default = [e for e in installed if purpose[e] == "TxDefaultProfile" and e.connector in (0, c)]
    return cap, (tx or default)


def limit_at(installed, c, t, tx_start, origin, local, volts=230, wired=3):
    """(amps, numberPhases or 0) in force on connector c at t."""
    cap, txd = _pools(installed, c, tx_start)
    amps, phases = local, 0
    m = _prevailing(cap, t, tx_start, origin, volts, wired)
    if m is not None and m[0] < amps:
        amps, phases = m[0], m[1]
    d = _prevailing(txd, t, tx_start, origin, volts, wired)
    if d is not None:
        if d[0] < amps:
            amps, phases = d[0], d[1]
        if d[2] is not None and amps < d[2]:
            amps = 0
    return amps, phases


def _instants(installed, start, end, tx_start):
    """Every instant in [start, end) where some profile may start, stop or change."""
    out = {start}
    for e in installed:
        p = e.profile
        sched = p["chargingSchedule"]
        for field in ("validFrom", "validTo"):
            if field in p:
                out.add(epoch(p[field]))
        if p["chargingProfileKind"] == "Recurring":
            every = DAY if p["recurrencyKind"] == "Daily" else WEEK
            first = epoch(sched["startSchedule"])
            bases = [
                first + k * every for k in range((start - first) // every - 1, (end - first) // every + 2)
            ]
        else:
            bases = [_schedule_base(e, start, tx_start, start)[0]]
        for base in bases:
            for q in sched["chargingSchedulePeriod"]:
                out.add(base + q["startPeriod"])
            if sched.get("duration") is not None:
                out.add(base + sched["duration"])
            if p["chargingProfileKind"] == "Recurring":
                out.add(base + (DAY if p["recurrencyKind"] == "Daily" else WEEK))
    return sorted(t for t in out if start <= t < end)


def composite(installed, c, start, duration, tx_start, local, volts=230, wired=3):
    """[(offset_s, amps, numberPhases or 0)] over [start, start + duration), neighbours merged."""
    out = []
    for t in _instants(installed, start, start + duration, tx_start):
        amps, phases = limit_at(installed, c, t, tx_start, start, local, volts, wired)
        if not out or (out[-1][1], out[-1][2]) != (amps, phases):
            out.append((t - start, amps, phases))
    return out

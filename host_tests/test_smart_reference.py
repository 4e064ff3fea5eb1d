"""The firmware's composite schedule (firmware/cp/smart/profiles.py, run inside the MicroPython Unix port)
against the CPython reference (host_tests/smart_reference.py) on many generated profile sets;
the reference itself is first checked on the OCTT vectors."""

import json
import random
import subprocess

import smart_reference as ref
from mp_plugin import MICROPYTHON, ROOT, micropython_env

CASES = 1500
T = 1_790_000_000  # 2026-09-21; any instant will do

# Runs inside micropython: one case per stdin line, one answer per stdout line.
DRIVER = """
import json, os, sys
from cp.smart import h_smart
from cp.smart import profiles as smart

LIMITS = {"ChargingScheduleAllowedChargingRateUnit": "Current,Power", "ChargeProfileMaxStackLevel": 99,
          "ChargingScheduleMaxPeriods": 99}


class Config:
    def get(self, name):
        return LIMITS[name]


FLASH = sys.argv[1]
store = smart.Store(FLASH)
purpose = {"ChargePointMaxProfile": "M", "TxDefaultProfile": "D", "TxProfile": "T"}
for line in sys.stdin:
    case = json.loads(line)
    store.clear()
    for c, prof, installed_at in case["profiles"]:
        entry = h_smart.compact(Config(), prof, installed_at)
        if entry is None:
            raise ValueError("refused: %s" % prof)
        p = purpose[prof["chargingProfilePurpose"]]
        store.add(p, c, prof["stackLevel"], prof["chargingProfileId"], entry, 99)
    pieces, duration = smart.composite(store, case["c"], case["start"], case["duration"], case["tx_start"],
                                       case["local"], case["volts"], case["wired"])
    print(json.dumps([pieces, duration]))
"""


def periods(rng, span):
    starts = sorted(rng.sample(range(1, max(2, span)), rng.randint(0, min(5, max(0, span - 2)))))
    return [0] + starts


def random_profile(rng, start):
    purpose = rng.choice(["ChargePointMaxProfile", "TxDefaultProfile", "TxDefaultProfile", "TxProfile"])
    connector = {"ChargePointMaxProfile": 0, "TxDefaultProfile": rng.randint(0, 2)}.get(
        purpose, rng.randint(1, 2)
    )
    kind = rng.choice(["Absolute", "Absolute", "Recurring", "Relative"])
    sched = {"chargingRateUnit": rng.choice("AW")}
    prof = {"chargingProfileId": rng.randint(1, 16), "stackLevel": rng.randint(0, 3),
            "chargingProfilePurpose": purpose, "chargingProfileKind": kind,
            "chargingSchedule": sched}  # fmt: skip
    span = 20000
    if kind == "Recurring":
        prof["recurrencyKind"] = rng.choice(["Daily", "Weekly"])
        sched["startSchedule"] = ref.iso(start + rng.randint(-9 * ref.DAY, 9 * ref.DAY))
        span = ref.DAY if prof["recurrencyKind"] == "Daily" else ref.WEEK
    elif kind == "Absolute" and rng.random() < 0.7:
        sched["startSchedule"] = ref.iso(start + rng.randint(-5000, 5000))
    if rng.random() < 0.6:
        sched["duration"] = rng.randint(1, span + 5000)
    out = []
    for s in periods(rng, span):
        if sched["chargingRateUnit"] == "A":
            limit = rng.choice([0, 6, 7.5, 8, 10, 13.5, 16, 20, 40])
        else:
            limit = rng.randint(0, 70) * 100
        q = {"startPeriod": s, "limit": limit}
        if rng.random() < 0.4:
            q["numberPhases"] = rng.randint(1, 3)
        out.append(q)
    sched["chargingSchedulePeriod"] = out
    if rng.random() < 0.2:
        sched["minChargingRate"] = rng.choice([6, 8, 2300, 4100])
    for field in ("validFrom", "validTo"):
        if rng.random() < 0.3:
            prof[field] = ref.iso(start + rng.randint(-6000, 6000))
    return connector, prof


def random_case(rng):
    start = T + rng.randint(0, 10**6)
    installed = []
    raw = []
    for _ in range(rng.randint(1, 10)):
        c, prof = random_profile(rng, start)
        at = start - rng.randint(0, 5000)
        installed = ref.install(installed, c, prof, at)
        raw.append((c, prof, at))
    tx_start = None if rng.random() < 0.2 else start - rng.randint(0, 7200)
    case = {"profiles": raw, "c": rng.choice([0, 1, 1, 2]), "start": start,
            "duration": rng.randint(1, 3 * ref.DAY), "tx_start": tx_start, "local": rng.choice([16, 32]),
            "volts": rng.choice([230, 230, 120]),
            "wired": rng.randint(1, 3)}  # fmt: skip
    return case, installed


def run_firmware(cases, tmp_path):
    driver = tmp_path / "smart_driver.py"
    driver.write_text(DRIVER)
    flash = tmp_path / "flash"
    flash.mkdir()
    stdin = "".join(json.dumps(c) + "\n" for c in cases)
    proc = subprocess.run([str(MICROPYTHON), str(driver), str(flash)], input=stdin, capture_output=True,
                          text=True, env=micropython_env(), cwd=ROOT, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines()]


def same(fw, expected):
    if len(fw) != len(expected):
        return False
    return all(
        a[0] == b[0] and abs(a[1] - b[1]) < 1e-6 and a[2] == b[2] for a, b in zip(fw, expected, strict=True)
    )


def test_firmware_composite_matches_the_reference(tmp_path):
    rng = random.Random(1606)
    cases, installed = zip(*(random_case(rng) for _ in range(CASES)), strict=True)
    answers = run_firmware(cases, tmp_path)
    assert len(answers) == CASES
    cut = 0
    for case, inst, (pieces, duration) in zip(cases, installed, answers, strict=True):
        if duration != case["duration"]:
            cut += 1
            assert duration < case["duration"] and len(pieces) == 96
        expected = ref.composite(inst, case["c"], case["start"], duration, case["tx_start"], case["local"],
                                 case["volts"], case["wired"])  # fmt: skip
        assert same(pieces, expected), (case, pieces, expected)
    assert cut < CASES // 10  # the comparison is over the full windows nearly always


def _p(pid, purpose, periods, connector, stack=0, **sched):
    s = {
        "chargingRateUnit": "A",
        "chargingSchedulePeriod": [{"startPeriod": a, "limit": v} for a, v in periods],
    }
    extra = {k: sched.pop(k) for k in ("validFrom", "validTo", "recurrencyKind") if k in sched}
    s.update(sched)
    kind = "Recurring" if "recurrencyKind" in extra else "Absolute"
    p = {"chargingProfileId": pid, "stackLevel": stack, "chargingProfilePurpose": purpose,
         "chargingProfileKind": kind, "chargingSchedule": s}  # fmt: skip
    p.update(extra)
    return connector, p


def _limits(pieces):
    return [(a, v) for a, v, _ in pieces]


def test_reference_reproduces_the_octt_vectors():
    now = T
    start, until = ref.iso(now - 10), ref.iso(now - 10 + 401)
    inst = []
    for c, p in (
        _p(1, "ChargePointMaxProfile", [(0, 10)], 0, duration=86400, startSchedule=start),
        _p(2, "TxDefaultProfile", [(0, 6), (60, 10), (120, 8), (180, 15), (260, 8)], 1, duration=300,
           startSchedule=start, validFrom=start, validTo=until),
        _p(3, "TxProfile", [(0, 8), (50, 11), (140, 16), (200, 6), (240, 12)], 1, duration=260,
           startSchedule=start, validFrom=start, validTo=until),
    ):  # fmt: skip
        inst = ref.install(inst, c, p, now)
    assert _limits(ref.composite(inst, 1, now, 400, now - 60, 32)) == [(0, 8), (40, 10), (190, 6), (230, 10)]
    # TC_072 stacking
    inst = []
    for c, p in (
        _p(1, "TxDefaultProfile", [(0, 6), (100, 8), (200, 10)], 1, duration=400, startSchedule=ref.iso(now)),
        _p(2, "TxDefaultProfile", [(0, 7), (100, 9)], 1, stack=1, duration=150, startSchedule=ref.iso(now)),
    ):
        inst = ref.install(inst, c, p, now)
    assert _limits(ref.composite(inst, 1, now, 350, None, 32)) == [(0, 7), (100, 9), (150, 8), (200, 10)]
    # X-23 daily recurrence
    common = {"startSchedule": ref.iso(now), "validFrom": ref.iso(now), "validTo": ref.iso(now + 3 * ref.DAY)}
    inst = []
    for c, p in (
        _p(1, "TxDefaultProfile", [(0, 14), (5000, 16), (15000, 20)], 1, recurrencyKind="Daily", **common),
        _p(2, "TxDefaultProfile", [(0, 10), (10000, 22), (20000, 6)], 1, stack=1, recurrencyKind="Daily",
           duration=86400, **common),
    ):  # fmt: skip
        inst = ref.install(inst, c, p, now)
    expected = [(0, 10), (10000, 22), (20000, 6), (86400, 10), (96400, 22), (106400, 6)]
    assert _limits(ref.composite(inst, 1, now, 172800, now, 32)) == expected

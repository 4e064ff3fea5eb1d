"""Smart charging figures for `make bench`: the composite schedule with the most profiles and
periods the configuration allows (MaxChargingProfilesInstalled profiles of
ChargingScheduleMaxPeriods periods, every stack level used, recurring so that every profile shows
through somewhere), computed inside the MicroPython Unix port from the .mpy build.

bench_smart() -> {"profiles", "periods", "composite_pieces", "composite_ms", "limit_at_ms",
"import_bytes", "composite_alloc_bytes", "composite_extra_heap_kb"}:
  composite_ms / limit_at_ms: median wall time of smart.composite (connector 1, one day) and of
    smart.limit_at, profiles read from files (host file system, not littlefs);
  import_bytes: heap allocated by importing cp.smart.profiles (it is loaded per use);
  composite_alloc_bytes: heap allocated by one composite with the GC off (an upper bound of its
    peak);
  composite_extra_heap_kb: the smallest -X heapsize that computes the composite, minus the
    smallest that only imports and opens the store (bisected in 1 KiB steps): its real peak.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = Path(sys.executable).parent / "micropython"
PROFILES = 32
PERIODS = 48
MAX_STACK = 16
START = 1_790_000_000

DRIVER = """
import gc, json, sys, time
gc.collect()
before = gc.mem_alloc()
from cp.smart import profiles as smart
import_bytes = gc.mem_alloc() - before
flash, mode, cases, START = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
store = smart.Store(flash)


class Config:
    def get(self, name):
        return "Current,Power" if name == "ChargingScheduleAllowedChargingRateUnit" else 99


def median_ms(fn):
    times = []
    for i in range(7):
        gc.collect()
        t = time.ticks_us()
        fn(i)
        times.append(time.ticks_diff(time.ticks_us(), t))
    return sorted(times)[3] / 1000


if mode == "install":
    from cp.smart import h_smart

    purpose = {"ChargePointMaxProfile": "M", "TxDefaultProfile": "D"}
    for c, prof in json.load(open(cases)):
        entry = h_smart.compact(Config(), prof, START)
        p = purpose[prof["chargingProfilePurpose"]]
        store.add(p, c, prof["stackLevel"], prof["chargingProfileId"], entry, 99)
    print(len(list(store.entries())))
elif mode == "base":
    print("ok")
elif mode == "once":
    pieces, _ = smart.composite(store, 1, START, 86400, START, 32)
    print("ok", len(pieces))
else:
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    pieces, _ = smart.composite(store, 1, START, 86400, START, 32)
    alloc = gc.mem_alloc() - before
    gc.enable()
    figures = {"composite_pieces": len(pieces), "import_bytes": import_bytes, "composite_alloc_bytes": alloc}
    figures["composite_ms"] = median_ms(lambda i: smart.composite(store, 1, START + i, 86400, START, 32))
    figures["limit_at_ms"] = median_ms(lambda i: smart.limit_at(store, 1, START + 600 * i, START))
    print(json.dumps(figures))
"""


def worst_case_profiles():
    """PROFILES daily recurring profiles of PERIODS periods for connector 1: every stack level of
    ChargePointMaxProfile, then TxDefaultProfiles of connector 0 and 1. A higher level covers a
    shorter part of the day, so every level shows through after the ones above it."""
    out = []
    slots = [("ChargePointMaxProfile", 0, s) for s in range(MAX_STACK + 1)]
    slots += [("TxDefaultProfile", 0, s) for s in range(MAX_STACK + 1)]
    slots += [("TxDefaultProfile", 1, s) for s in range(MAX_STACK + 1)]
    for pid, (purpose, c, stack) in enumerate(slots[:PROFILES], 1):
        duration = 86400 * (MAX_STACK + 1 - stack) // (MAX_STACK + 2)
        step = duration // PERIODS
        periods = [{"startPeriod": i * step, "limit": 6 + (i + pid) % 26} for i in range(PERIODS)]
        sched = {"chargingRateUnit": "A", "chargingSchedulePeriod": periods, "duration": duration,
                 "startSchedule": "2026-09-21T00:00:00Z"}  # fmt: skip
        prof = {"chargingProfileId": pid, "stackLevel": stack, "chargingProfilePurpose": purpose,
                "chargingProfileKind": "Recurring", "recurrencyKind": "Daily"}  # fmt: skip
        prof["chargingSchedule"] = sched
        out.append([c, prof])
    return out


def _run(driver, flash, mode, cases, heap="2M", micropython=MICROPYTHON):
    env = {"MICROPYPATH": f"{ROOT / 'build' / 'sim'}:.frozen", "PATH": "/usr/bin:/bin"}
    cmd = [str(micropython), "-X", f"heapsize={heap}", str(driver), str(flash), mode, str(cases), str(START)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)


def _smallest_heap_kb(driver, flash, mode, cases, micropython, lo=4, hi=512):
    while lo < hi:
        mid = (lo + hi) // 2
        ok = _run(driver, flash, mode, cases, f"{mid}K", micropython).stdout.startswith("ok")
        lo, hi = (lo, mid) if ok else (mid + 1, hi)
    return lo


def bench_smart(micropython=MICROPYTHON):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        driver, flash, cases = tmp / "bench_smart_driver.py", tmp / "flash", tmp / "profiles.json"
        driver.write_text(DRIVER)
        flash.mkdir()
        cases.write_text(json.dumps(worst_case_profiles()))
        proc = _run(driver, flash, "install", cases)
        if proc.returncode != 0 or proc.stdout.strip() != str(PROFILES):
            raise RuntimeError(f"installing the profiles failed: {proc.stdout} {proc.stderr[-2000:]}")
        proc = _run(driver, flash, "measure", cases)
        if proc.returncode != 0:
            raise RuntimeError(f"measuring failed: {proc.stderr[-2000:]}")
        figures = {"profiles": PROFILES, "periods": PERIODS, **json.loads(proc.stdout)}
        base = _smallest_heap_kb(driver, flash, "base", cases, micropython)
        once = _smallest_heap_kb(driver, flash, "once", cases, micropython)
        figures["composite_extra_heap_kb"] = once - base
        return figures


if __name__ == "__main__":
    print(json.dumps(bench_smart(), indent=2))

"""`make bench`: heap and latency figures of the simulated charger (not part of `make test`).

Heap figures, for each MicroPython port (the 64-bit Unix port of .venv, and the 32-bit one in
../shared/micropython32/ where it exists: pointers and small ints as on an ESP32 or RP2040) and
each deployment of the app (ROMFS image, as real boards run it; .mpy files, the fallback):
  - a complete charging session (tools/bench_session.py: boot, plug, card, charge with
    MeterValues, GetConfiguration of every key, stop, an offline session replayed on reconnect):
    the smallest --heap at which it passes, by bisection in 2 KiB steps (both ends of the range
    are tried), and the peak GC heap in use during it at 512K (sampled after gc.collect() by the
    sim, docs/SIM.md), split into the sim twin's own share, what every board holds (interpreter,
    asyncio, mounted littlefs) and the firmware;
  - the heap in use once each real board's configuration (ESP32, Pico W; fake hardware modules)
    was accepted by the backend;
  - the peak heap while a 10,000-entry Local Authorization List is uploaded in chunks of
    SendLocalListMaxLength (tools/bench_locallist.py);
  - the extra heap of the composite schedule with the maximum profiles and periods installed
    (tools/bench_smart.py; .mpy on both ports: its figure is data, not code).
On the 64-bit port only (the host is ~125 times faster than an RP2040: these say nothing about a
board's timing): pilot C->B to contactor open while a backend keeps the charger busy; boot,
call round trip, reconnect, plug-in to state B; local-list upload and lookup times; composite
schedule time. The ROMFS image sits in the heap on the Unix port: every heap figure leaves it out.
On emu_pico (tools/bench_emu.py, where the emulator is available): boot, heap, the complete
session's smallest heap, C->B latency under load and the safety loop's timing, in emulated time.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_emu import emu_figures
from bench_locallist import local_list_figures
from bench_session import contactor_latencies, session
from bench_smart import bench_smart
from board_boot import boot
from build import build
from csms import CsmsSimulator
from simctl import SimProcess

ROOT = Path(__file__).resolve().parent.parent
FAST = {"RetryBackOffWaitMinimum": 1, "RetryBackOffRandomRange": 0, "RetryBackOffRepeatTimes": 1}
PORTS = {
    "64-bit": Path(sys.executable).parent / "micropython",
    "32-bit": ROOT.parent / "shared" / "micropython32" / "micropython",
}
APPS = ("romfs", "mpy")
BUDGET_32_ROMFS = {"session_kb": 64, "esp32_at_boot_kb": 40}  # issue "Code in flash"


def scenario(heap, workdir, measure=False):
    """Run boot -> heartbeat -> reconnect -> heartbeat. Returns figures, or None if it failed."""
    figures = {}
    with CsmsSimulator(port=0) as csms:
        csms.boot_interval = 1
        sim = SimProcess(workdir / f"data-{heap}", csms=csms.url, cp_id="BENCH", heap=heap, sets=FAST,
                         log_path=workdir / f"sim-{heap}.log")  # fmt: skip
        try:
            t0 = time.monotonic()
            sim.start(timeout=20)
            csms.wait_for_call("BENCH", "BootNotification", timeout=10)
            figures["boot_to_bootnotification_ms"] = round((time.monotonic() - t0) * 1000)
            csms.wait_for_call("BENCH", "StatusNotification", timeout=10)
            csms.wait_for_call("BENCH", "Heartbeat", timeout=10)
            if measure:
                rtts = []
                for _ in range(50):
                    t = time.monotonic()
                    csms.call("BENCH", "GetConfiguration", {"key": ["HeartbeatInterval"]})
                    rtts.append((time.monotonic() - t) * 1000)
                rtts.sort()
                figures["call_round_trip_ms"] = {
                    "median": round(statistics.median(rtts), 2),
                    "p95": round(rtts[int(len(rtts) * 0.95) - 1], 2),
                }
                sim.ok({"cmd": "plug", "connector": 1, "cable_amps": 32})
                sim.wait_state(lambda s: s["connectors"][0]["cp"] == "B", timeout=5)
                evs = sim.events(0)
                t_plug = next(e["t_ms"] for e in evs if e["kind"] == "plug")
                t_b = next(e["t_ms"] for e in evs if e["kind"] == "cp" and e["value"] == "B")
                figures["plug_to_state_b_ms"] = t_b - t_plug
            csms.stop()
            t1 = time.monotonic()
            sim.wait_state(lambda s: not s["connected"], timeout=10)
            csms.start()
            csms.wait_for_connection("BENCH", timeout=20)
            figures["reconnect_after_csms_restart_ms"] = round((time.monotonic() - t1) * 1000)
            csms.wait_for_call("BENCH", "Heartbeat", timeout=10)
            heap_state = sim.state()["heap"]
            figures["heap"] = heap_state
            if "MemoryError" in sim.log_path.read_text(errors="replace"):
                return None
            if csms.count("BENCH", "BootNotification") != 1 or csms.violations:
                return None
            return figures
        except (TimeoutError, RuntimeError, AssertionError, OSError):
            return None
        finally:
            sim.close()


def _session_passes(heap_kb, workdir, app, micropython):
    try:
        session(
            f"{heap_kb}K",
            workdir,
            log_name=f"s-{app}-{micropython.parent.name}",
            app=app,
            micropython=micropython,
        )
        return True
    except Exception as e:  # a MemoryError shows as anything: a CALLERROR, a timeout, a crash
        print(f"  {heap_kb}K: {type(e).__name__}: {str(e)[:100]}", flush=True)
        return False


def smallest_heap(workdir, lo_kb, hi_kb, app, micropython, step_kb=2):
    """Bisection over --heap (KiB, multiples of step_kb) for the complete session to pass: the
    smallest that passes, or None when even hi_kb fails. lo_kb passing is reported as lo_kb."""
    if not _session_passes(hi_kb, workdir, app, micropython):
        return None
    if _session_passes(lo_kb, workdir, app, micropython):
        return lo_kb
    while hi_kb - lo_kb > step_kb:
        mid = (lo_kb + hi_kb) // 2 // step_kb * step_kb
        ok = _session_passes(mid, workdir, app, micropython)
        print(f"  {app} heap {mid}K: {'passes' if ok else 'fails'}", flush=True)
        if ok:
            hi_kb = mid
        else:
            lo_kb = mid
    return hi_kb


def board_heaps(workdir, app, micropython):
    """Heap the firmware and board code hold at BootNotification, for each real board's
    configuration (fake hardware modules, 512K heap; the interpreter and the fakes subtracted)."""
    heaps = {}
    for name in ("esp32", "pico_w"):
        build(name, quiet=True)
        board_dir = workdir / f"{name}-{app}-{micropython.parent.name}"
        board_dir.mkdir()
        with CsmsSimulator(port=0) as csms:
            _ident, report, _stderr = boot(name, csms.url, board_dir, app=app, micropython=micropython)
        heaps[name] = int(report[0]) - int(report[-1])  # without the interpreter and the fakes
    return heaps


def heap_figures(workdir, port, micropython, app):
    print(f"{port}, app from {app}: complete session ...", flush=True)
    peak = session("512K", workdir, log_name=f"peak-{app}-{port}", app=app, micropython=micropython)["heap"]
    lo, hi = (40, 200) if port == "32-bit" else (60, 300)
    smallest = smallest_heap(workdir, lo, hi, app, micropython)
    print(f"{port}, app from {app}: boards, local list, composite ...", flush=True)
    ll = local_list_figures(workdir, app=app, micropython=micropython)
    return {
        "session_smallest_kb": smallest,
        "session_peak": peak,
        "board_at_boot": board_heaps(workdir, app, micropython),
        "local_list_upload_peak": ll["heap_peak_upload"],
        "local_list": ll,
    }


def kb(n):
    return f"{n / 1000:.1f} KB"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=str(ROOT / "build" / "bench.json"), help="write the figures here")
    args = ap.parse_args(argv)
    build("sim", quiet=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    ports = {k: v for k, v in PORTS.items() if v.exists()}
    if "32-bit" not in ports:
        print(f"no 32-bit port at {PORTS['32-bit']}: 64-bit figures only", flush=True)
    figures = {"heap": {}, "composite_extra_heap_kb": {}}
    for port, mp in ports.items():
        for app in APPS:
            figures["heap"][f"{port} {app}"] = heap_figures(workdir, port, mp, app)
        figures["composite_extra_heap_kb"][port] = bench_smart(mp)["composite_extra_heap_kb"]
    print("timing (64-bit port) ...", flush=True)
    timing = scenario("512K", workdir, measure=True)
    if timing is None:
        raise SystemExit(f"the boot/heartbeat/reconnect scenario failed at 512K: see {workdir}")
    figures["timing"] = timing
    figures["cb_to_contactor_open_ms"] = contactor_latencies(workdir)
    figures["smart"] = bench_smart()
    print("emu_pico: the rp2 port in the RP2040 emulator ...", flush=True)
    figures["emu_pico"] = emu_figures(workdir)

    heap_rows = []
    for name, h in figures["heap"].items():
        p = h["session_peak"]
        smallest = h["session_smallest_kb"]
        firmware = p["peak"] - p["sim"] - p["platform"]
        heap_rows += [
            (
                f"[{name}] complete session: smallest --heap",
                f"{smallest} KiB" if smallest else "fails at the top",
            ),
            (f"[{name}] complete session: peak in use (512K)", kb(p["peak"])),
            (
                f"[{name}]   firmware / sim twin / platform",
                f"{kb(firmware)} / {kb(p['sim'])} / {kb(p['platform'])}",
            ),
            *((f"[{name}] {b} at BootNotification", kb(v)) for b, v in h["board_at_boot"].items()),
            (f"[{name}] 10,000-entry local list upload: peak", kb(h["local_list_upload_peak"])),
        ]
    for port, extra in figures["composite_extra_heap_kb"].items():
        heap_rows.append((f"[{port}] composite schedule 32 x 48: extra heap", f"{extra} KiB"))
    ratios = []
    for app in APPS:
        h64, h32 = figures["heap"].get(f"64-bit {app}"), figures["heap"].get(f"32-bit {app}")
        if h64 and h32:
            ratios += [h32["board_at_boot"][b] / h64["board_at_boot"][b] for b in h64["board_at_boot"]]
            ratios.append(h32["session_peak"]["peak"] / h64["session_peak"]["peak"])
    if ratios:
        figures["ratio_32_64"] = round(statistics.median(ratios), 2)
        heap_rows.append(("32-bit / 64-bit heap (median of the figures above)", f"{figures['ratio_32_64']}"))
    r32 = figures["heap"].get("32-bit romfs")
    if r32:
        b = BUDGET_32_ROMFS
        esp32 = kb(r32["board_at_boot"]["esp32"])
        heap_rows += [
            (
                "budget [32-bit romfs] ESP32 at BootNotification",
                f"{esp32} (budget {b['esp32_at_boot_kb']} KB)",
            ),
            (
                "budget [32-bit romfs] complete session",
                f"{r32['session_smallest_kb']} KiB (budget {b['session_kb']} KiB)",
            ),
        ]
    t = figures["timing"]
    cb = figures["cb_to_contactor_open_ms"]
    ll = figures["heap"]["64-bit romfs"]["local_list"]
    cb_text = "median {median} ms, p99 {p99} ms, max {max} ms ({samples} runs, {backend_calls} backend calls)"
    time_rows = [
        ("pilot C->B -> contactor open, backend busy", cb_text.format(**cb)),
        ("boot -> BootNotification", f"{t['boot_to_bootnotification_ms']} ms"),
        ("backend call round trip", "median {median} ms, p95 {p95} ms".format(**t["call_round_trip_ms"])),
        ("reconnect after CSMS restart", f"{t['reconnect_after_csms_restart_ms']} ms"),
        ("plug-in -> pilot state B detected", f"{t['plug_to_state_b_ms']} ms"),
        *((f"local list: {k}", str(v)) for k, v in ll.items() if not k.startswith("heap")),
        *((f"composite schedule: {k}", str(v)) for k, v in figures["smart"].items()),
    ]  # fmt: skip
    emu = figures["emu_pico"]
    emu_rows = []
    if emu:
        s = emu["session"]
        hb = emu["heap_at_boot"]
        sl = emu["safety_loop"]
        ecb = emu["cb_to_contactor_open_ms"]
        smallest = emu["session_smallest_heap_kb"]
        smallest = f"{smallest} KiB" if smallest else "fails at the top"
        iteration = f"{sl['last_us'] / 1000:.1f} / {sl['max_us'] / 1000:.1f} ms"
        emu_rows = [
            ("boot -> BootNotification (emulated)", f"{emu['boot_to_bootnotification_ms']} ms"),
            ("heap in use once Accepted", f"{kb(hb['used'])} of {kb(hb['size'])}"),
            ("complete session (ws://): peak in use", kb(s["peak"])),
            ("complete session: smallest --heap (8 KiB steps)", smallest),
            ("pilot C->B -> contactor open, backend busy (emulated)", cb_text.format(**ecb)),
            ("safety loop iteration, idle: last / longest", iteration),
            ("safety loop: longest gap between iterations", f"{sl['gap_max_us'] / 1000:.1f} ms"),
        ]  # fmt: skip
    tables = [("heap", heap_rows), ("timing, 64-bit host port", time_rows)]
    if emu_rows:
        tables.append(("emu_pico: MicroPython's rp2 port in the RP2040 emulator, app from ROMFS", emu_rows))
    for title, rows in tables:
        width = max(len(k) for k, _ in rows)
        print(f"\n{title}")
        for k, v in rows:
            print(f"  {k:<{width}}  {v}")
    Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\n(figures also in {args.json})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

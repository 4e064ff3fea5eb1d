"""`make bench`: heap and latency figures of the simulated charger (not part of `make test`).

Reported:
  - a complete charging session (tools/bench_session.py: boot, plug, card, charge with
    MeterValues, stop, an offline session replayed on reconnect): the smallest `-X heapsize`
    (MicroPython GC heap) at which it passes, found by bisection in 4 KiB steps (budget 160K),
    and the peak GC heap in use during it (sampled after gc.collect() by the sim, see
    docs/SIM.md), split into the sim twin's own share, what every board holds (interpreter,
    asyncio, mounted littlefs) and the firmware;
  - pilot C->B to contactor open, from the hardware event log, while the backend reads the
    whole configuration or the link reconnects (budget 100 ms, aim 10 ms);
  - latencies of "boot, heartbeat, reconnect": boot to BootNotification, backend call round
    trip, reconnect after a CSMS restart, plug-in to detected pilot state B;
  - the heap in use once each real board's configuration (ESP32, Pico W; fake hardware modules)
    was accepted by the backend;
  - a 10,000-entry Local Authorization List uploaded in chunks of SendLocalListMaxLength
    (tools/bench_locallist.py): time end to end, lookup time, peak heap;
  - the composite schedule with the maximum profiles and periods installed (tools/bench_smart.py):
    time and extra heap.
Figures are for the 64-bit Unix port: a 32-bit board needs roughly 0.6x the heap.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_locallist import local_list_figures
from bench_session import contactor_latencies, session
from bench_smart import bench_smart
from board_boot import boot
from build import build
from csms import CsmsSimulator
from simctl import SimProcess

ROOT = Path(__file__).resolve().parent.parent
FAST = {"RetryBackOffWaitMinimum": 1, "RetryBackOffRandomRange": 0, "RetryBackOffRepeatTimes": 1}


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


def _session_passes(heap, workdir):
    try:
        session(heap, workdir)
        return True
    except (AssertionError, TimeoutError, RuntimeError, OSError):
        return False


def smallest_heap(workdir, lo_kb, hi_kb):
    """Bisection over the heap size (KiB, multiples of 4) for the complete session to pass."""
    if not _session_passes(f"{hi_kb}K", workdir):
        raise SystemExit(f"the session fails even at {hi_kb}K: see {workdir}")
    while hi_kb - lo_kb > 4:
        mid = (lo_kb + hi_kb) // 2 // 4 * 4
        ok = _session_passes(f"{mid}K", workdir)
        print(f"  heapsize {mid}K: {'passes' if ok else 'fails'}", flush=True)
        if ok:
            hi_kb = mid
        else:
            lo_kb = mid
    return hi_kb


def board_heaps(workdir):
    """Heap the firmware and board code hold at BootNotification, for each real board's
    configuration (fake hardware modules, 512K heap; the interpreter and the fakes subtracted)."""
    heaps = {}
    for name in ("esp32", "pico_w"):
        build(name, quiet=True)
        board_dir = workdir / name
        board_dir.mkdir()
        with CsmsSimulator(port=0) as csms:
            _ident, report, _stderr = boot(name, csms.url, board_dir)
        heaps[name] = int(report[0]) - int(report[-1])  # without the interpreter and the fakes
    return heaps


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=str(ROOT / "build" / "bench.json"), help="write the figures here")
    args = ap.parse_args(argv)
    build("sim", quiet=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    print("measuring at the default heap ...", flush=True)
    figures = scenario("512K", workdir, measure=True)
    if figures is None:
        raise SystemExit(f"the scenario failed at 512K: see {workdir}")
    figures["session_heap"] = session("512K", workdir)["heap"]
    print("contactor latency under load ...", flush=True)
    figures["cb_to_contactor_open_ms"] = contactor_latencies(workdir)
    print("bisecting the smallest heap for a complete session ...", flush=True)
    figures["smallest_heapsize_kb"] = smallest_heap(workdir, 128, 256)
    figures["board_heap_at_boot"] = board_heaps(workdir)
    print("local authorization list ...", flush=True)
    figures["local_list"] = local_list_figures(workdir)
    print("composite schedule ...", flush=True)
    figures["smart"] = bench_smart()
    heap = figures["session_heap"]
    rtt = figures["call_round_trip_ms"]
    cb = figures["cb_to_contactor_open_ms"]
    report = [
        ("complete session: smallest -X heapsize", f"{figures['smallest_heapsize_kb']} KiB (budget 160 KiB)"),
        ("complete session: peak GC heap in use (512K run)", f"{heap['peak']} B"),
        ("  the sim twin", f"{heap['sim']} B"),
        ("  interpreter, asyncio, littlefs mount", f"{heap['platform']} B"),
        ("  firmware", f"{heap['peak'] - heap['sim'] - heap['platform']} B"),
        *(
            (f"{b}: firmware + board code at BootNotification", f"{h} B")
            for b, h in figures["board_heap_at_boot"].items()
        ),
        (
            "pilot C->B -> contactor open, under load",
            "median {median} ms, max {max} ms ({samples} runs)".format(**cb),
        ),
        ("boot -> BootNotification", f"{figures['boot_to_bootnotification_ms']} ms"),
        ("backend call round trip", "median {median} ms, p95 {p95} ms".format(**rtt)),
        ("reconnect after CSMS restart", f"{figures['reconnect_after_csms_restart_ms']} ms"),
        ("plug-in -> pilot state B detected", f"{figures['plug_to_state_b_ms']} ms"),
        *((f"local list: {k}", str(v)) for k, v in figures["local_list"].items()),
        *((f"composite schedule: {k}", str(v)) for k, v in figures["smart"].items()),
    ]
    width = max(len(k) for k, _ in report)
    print()
    for k, v in report:
        print(f"{k:<{width}}  {v}")
    Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\n(figures also in {args.json})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

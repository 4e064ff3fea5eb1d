"""A complete charging session on the simulated charger, as `make bench` and the heap test run it.

boot -> plug -> card (Authorize) -> charge with MeterValues every second, the backend reads every
configuration key -> card stop -> unplug
-> network down -> the same card starts and stops a session offline (cache) -> network up ->
the queued StartTransaction, MeterValues and StopTransaction are delivered, the Stop carrying
the id the backend gave the Start.

`session()` returns the figures, or raises AssertionError / TimeoutError saying what failed.
`contactor_latencies()` measures pilot C->B to contactor open from the hardware event log while
the backend keeps the charger busy.
"""

import statistics
import time

from csms import CsmsSimulator
from simctl import SimProcess

CP = "BENCH"
SETS = {
    "RetryBackOffWaitMinimum": 1,
    "RetryBackOffRandomRange": 0,
    "RetryBackOffRepeatTimes": 1,
    "MeterValueSampleInterval": 1,
    "WebSocketPingInterval": 1,
    "WebSocketPongTimeout": 1,
}


def _conn(state):
    return state["connectors"][0]


def _charge(sim, tag, slow=1):
    sim.ok({"cmd": "plug", "connector": 1, "cable_amps": 32})
    sim.ok({"cmd": "ev", "connector": 1, "state": "C"})
    sim.ok({"cmd": "rfid", "id_tag": tag})
    sim.wait_state(lambda s: _conn(s)["relay"], timeout=10 * slow, what="contactor closed")


def _stop(sim, tag, slow=1):
    sim.ok({"cmd": "rfid", "id_tag": tag})
    sim.wait_state(
        lambda s: _conn(s)["transaction_id"] is None and _conn(s)["pwm_duty"] == 100, 10 * slow, "stopped"
    )
    sim.ok({"cmd": "unplug", "connector": 1})


def session(heap, workdir, log_name="session", app=None, micropython=None, board=None, slow=1):
    """Run the session at `heap` (the app from `app`, "romfs" or "mpy", on the MicroPython
    `micropython`, on `board` "sim" or "emu_pico": tools/sim.py's defaults when None; every wait
    `slow` times as long, for the emulated board); returns {"heap": state.heap, "boot_ms": ...}."""
    with CsmsSimulator(port=0) as csms:
        csms.boot_interval = 2
        sim = SimProcess(workdir / f"data-{log_name}-{heap}", csms=csms.url, cp_id=CP, heap=heap, sets=SETS,
                         log_path=workdir / f"{log_name}-{heap}.log",
                         app=app, micropython=micropython, board=board)  # fmt: skip
        try:
            t0 = time.monotonic()
            sim.start(timeout=20 * slow)
            csms.wait_for_call(CP, "BootNotification", timeout=10 * slow)
            boot_ms = round((time.monotonic() - t0) * 1000)
            csms.wait_for_call(CP, "Heartbeat", timeout=10 * slow)
            # online session
            _charge(sim, "TAG1", slow)
            assert csms.wait_for_call(CP, "Authorize", timeout=10 * slow)["idTag"] == "TAG1"
            csms.wait_for_call(CP, "StartTransaction", timeout=10 * slow)
            for _ in range(2):
                csms.wait_for_call(CP, "MeterValues", timeout=5 * slow)
            # every key, while charging
            keys = csms.call(CP, "GetConfiguration", {}, timeout=30 * slow)["configurationKey"]
            assert len(keys) >= 40, len(keys)
            _stop(sim, "TAG1", slow)
            assert csms.wait_for_call(CP, "StopTransaction", timeout=10 * slow)["transactionId"] == 1
            # offline session, replayed on reconnect
            sim.ok({"cmd": "network", "up": False})
            sim.wait_state(lambda s: not s["connected"], timeout=20 * slow, what="offline")
            _charge(sim, "TAG1", slow)
            time.sleep(2 * slow)  # MeterValues pile up in the journal
            _stop(sim, "TAG1", slow)
            sim.ok({"cmd": "network", "up": True})
            start = csms.wait_for_call(CP, "StartTransaction", timeout=20 * slow)
            # The first Stop may come again: the link went down before its answer was taken in
            # (on the emulated board, slower than the host), and the journal delivers it again.
            stop = csms.wait_for_call(
                CP, "StopTransaction", timeout=20 * slow, predicate=lambda p: p["transactionId"] != 1
            )
            assert start["idTag"] == "TAG1" and stop["transactionId"] == 2, stop
            heap_state = sim.state()["heap"]
            log = sim.log_path.read_text(errors="replace")
            assert "MemoryError" not in log, "MemoryError in the firmware log"
            assert sim.state()["boots"] == 1, "the firmware restarted"
            assert csms.count(CP, "BootNotification") == 1
            assert csms.violations == [], csms.violations
            return {"heap": heap_state, "boot_ms": boot_ms}
        finally:
            sim.close()


def backend_load(csms, step, timeout=30):
    """One unit of the load a backend puts on the charger, by turns: GetConfiguration of every
    key, a 64-entry SendLocalList (a Full list), a 48-period SetChargingProfile (32 A throughout,
    so the offer stays as it is). Returns its name once the charger answered."""
    kind = step % 3
    if kind == 0:
        csms.call(CP, "GetConfiguration", {}, timeout=timeout)
        return "GetConfiguration"
    if kind == 1:
        items = [{"idTag": f"LOAD{i:04d}", "idTagInfo": {"status": "Accepted"}} for i in range(64)]
        payload = {"listVersion": step + 1, "updateType": "Full", "localAuthorizationList": items}
        csms.call(CP, "SendLocalList", payload, timeout=timeout)
        return "SendLocalList"
    periods = [{"startPeriod": 60 * i, "limit": 32.0} for i in range(48)]
    schedule = {
        "chargingRateUnit": "A",
        "startSchedule": "2020-01-01T00:00:00Z",
        "chargingSchedulePeriod": periods,
    }
    profile = {
        "chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute", "chargingSchedule": schedule,
    }  # fmt: skip
    csms.call(CP, "SetChargingProfile", {"connectorId": 0, "csChargingProfiles": profile}, timeout=timeout)
    return "SetChargingProfile"


def contactor_latencies(workdir, cycles=12, board=None, slow=1):
    """Pilot C->B to contactor open (ms, from the hardware event log) while a backend thread keeps
    the charger busy without a pause (backend_load, back to back): every sample is under load."""
    import threading

    with CsmsSimulator(port=0) as csms:
        sets = {**SETS, "FreeCharging": "true"}
        sim = SimProcess(workdir / f"data-latency-{board}", csms=csms.url, cp_id=CP, sets=sets,
                         log_path=workdir / f"latency-{board}.log", board=board)  # fmt: skip
        stop = threading.Event()
        done = []
        failed = []

        def load():
            step = 0
            try:
                while not stop.is_set():
                    done.append(backend_load(csms, step, 30 * slow))
                    step += 1
            except Exception as e:  # reported by the measuring thread
                failed.append(e)

        try:
            sim.start(timeout=20 * slow)
            csms.wait_for_call(CP, "StatusNotification", timeout=10 * slow)
            sim.ok({"cmd": "plug", "connector": 1, "cable_amps": 32})
            loader = threading.Thread(target=load, daemon=True)
            loader.start()
            lat = []
            for _ in range(cycles):
                sim.ok({"cmd": "ev", "connector": 1, "state": "C"})
                sim.wait_state(lambda s: _conn(s)["relay"], timeout=10 * slow, what="contactor closed")
                time.sleep(0.2)
                assert loader.is_alive(), "the backend load stopped"
                since = sim.events(0)[-1]["seq"] if sim.events(0) else 0
                sim.ok({"cmd": "ev", "connector": 1, "state": "B"})
                sim.wait_state(lambda s: not _conn(s)["relay"], timeout=10 * slow, what="contactor open")
                evs = sim.events(since)
                t_b = next(e["t_ms"] for e in evs if e["kind"] == "ev" and e["value"] == "B")
                t_open = next(e["t_ms"] for e in evs if e["kind"] == "relay" and e["value"] is False)
                lat.append(t_open - t_b)
            stop.set()
            loader.join(timeout=60 * slow)
            if failed:
                raise failed[0]
            assert len(done) >= cycles // slow, f"only {len(done)} backend calls during {cycles} samples"
            lat.sort()
            return {"median": statistics.median(lat), "p99": lat[-1 - len(lat) // 100], "max": lat[-1],
                    "samples": len(lat), "backend_calls": len(done)}  # fmt: skip
        finally:
            stop.set()
            sim.close()

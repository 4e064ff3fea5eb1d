"""Figures from the target, for `make bench`: the firmware on MicroPython's rp2 port (board
emu_pico, the app from its ROMFS image) in the RP2040 emulator, through `tools/sim.py --board
emu_pico` (tools/emu_sim.py). Times in the hardware event log are emulated (the CPU's cycles at
125 MHz), not the host's; the emulated board runs slower than real time, so every wait is SLOW
times longer than on the Unix port.

emu_figures() -> None when the emulator is not available, else {
  "boot_to_bootnotification_ms": emulated ms from power-up to the BootNotification leaving,
  "heap_at_boot": state.heap once Accepted (GC heap size, used),
  "session": the complete session of tools/bench_session.py (ws://: TLS over the emulated UART
      is not done yet) at the whole heap: its state.heap (size, used, peak),
  "session_smallest_heap_kb": the smallest --heap (GC heap, 8 KiB steps) at which it passes,
  "cb_to_contactor_open_ms": C->B to contactor open while a backend keeps the charger busy,
  "safety_loop": the safety loop's last and longest iteration and longest gap between two, in
      emulated us, over 5 s of an idle registered charger (state.emu)}.
"""

import re
import tempfile
import time
from pathlib import Path

import emu_boot
from bench_session import contactor_latencies, session
from csms import CsmsSimulator
from simctl import SimProcess

CP = "BENCH"
BOARD = "emu_pico"
SLOW = 4


def _boot(workdir):
    with CsmsSimulator(port=0) as csms:
        sim = SimProcess(workdir / "data-emu-boot", csms=csms.url, cp_id=CP, board=BOARD,
                         log_path=workdir / "emu-boot.log")  # fmt: skip
        try:
            sim.start(timeout=90)
            csms.wait_for_call(CP, "BootNotification", timeout=60)
            st = sim.wait_state(lambda s: s["registration"] == "Accepted", timeout=30, what="Accepted")
            sim.ok({"cmd": "emu_reset_max"})
            time.sleep(5)  # the safety loop's figures over 5 s of an idle charger
            safety = sim.state()["emu"]["safety"]
            log = sim.log_path.read_text(errors="replace")
            m = re.search(r"(\d+) fw > \[2,\"[0-9a-f]+\",\"BootNotification\"", log)
            return {
                "boot_to_bootnotification_ms": int(m.group(1)) if m else None,
                "heap_at_boot": st["heap"],
                "safety_loop": safety,
            }
        finally:
            sim.close()


def _passes(heap_kb, workdir):
    try:
        session(f"{heap_kb}K", workdir, log_name=f"emu-{heap_kb}", board=BOARD, slow=SLOW)
        return True
    except Exception as e:  # a MemoryError shows as anything: a CALLERROR, a timeout, a crash
        print(f"  emu_pico {heap_kb}K: {type(e).__name__}: {str(e)[:100]}", flush=True)
        return False


def emu_figures(workdir=None, lo_kb=64, hi_kb=232, step_kb=8):
    if emu_boot.missing() is not None:
        print(f"emu_pico: not available ({emu_boot.missing()})", flush=True)
        return None
    workdir = Path(workdir or tempfile.mkdtemp(prefix="bench-emu-"))
    figures = _boot(workdir)
    figures["session"] = session("232K", workdir, log_name="emu-full", board=BOARD, slow=SLOW)["heap"]
    smallest = None
    if _passes(hi_kb, workdir):
        if _passes(lo_kb, workdir):
            smallest = lo_kb
        else:
            while hi_kb - lo_kb > step_kb:
                mid = (lo_kb + hi_kb) // 2 // step_kb * step_kb
                ok = _passes(mid, workdir)
                print(f"  emu_pico heap {mid}K: {'passes' if ok else 'fails'}", flush=True)
                lo_kb, hi_kb = (lo_kb, mid) if ok else (mid, hi_kb)
            smallest = hi_kb
    figures["session_smallest_heap_kb"] = smallest
    figures["cb_to_contactor_open_ms"] = contactor_latencies(workdir, cycles=10, board=BOARD, slow=SLOW)
    return figures


if __name__ == "__main__":
    import json

    print(json.dumps(emu_figures(), indent=2))

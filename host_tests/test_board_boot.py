"""Boot smoke test of the real boards' configurations (boards/esp32.py, boards/pico_w.py) on the
MicroPython Unix port, with the fake machine/network modules (host_tests/fakes) standing in for
the hardware: the board is built, its background tasks started, and main.run must reach the CSMS
with a BootNotification carrying the board's identity while the safety loop reads state A."""

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = Path(sys.executable).parent / "micropython"
FAKES = ROOT / "host_tests" / "fakes"

# Runs inside micropython. The fake ADC holds the pilot at a steady +12 V (state A, no EV) and
# PP open (no cable); the fake Wi-Fi associates at once. Once registered it prints the live heap.
SCRIPT = """
import asyncio, gc, sys
import machine, network
import board, main

FLASH, URL = sys.argv[1], sys.argv[2]
b = board.Board({"flash": FLASH, "wifi_ssid": "site", "wifi_password": "pw", "ntp_host": None})
raw = int((12000 - board.PILOT_OFFSET_MV) / board.PILOT_MV_PER_COUNT + 0.5)
machine.set_adc(board.PINS["pilot_adc"], [raw])
machine.set_adc(board.PINS["pp_adc"], [65535])
print("SERIAL", b.serial, b.vendor, b.model)

async def watch():
    while True:
        snap = b.snapshot()
        if snap and snap["registration"] == "Accepted":
            gc.collect()
            print("HEAP", gc.mem_alloc(), b.pilot(1).duty, snap["connectors"][1]["cp"],
                  b.watchdog.feeds, b.watchdog.stopped_by, b.link_up(), ",".join(b.watchdog._names))
            return
        await asyncio.sleep_ms(50)

async def go():
    tasks = b.start()
    asyncio.create_task(watch())
    await main.run(b, {"CentralSystemURL": URL, "ChargePointId": "ESP1"})

asyncio.run(go())
"""


@pytest.fixture(scope="module")
def boards_built():
    sys.path.insert(0, str(ROOT / "tools"))
    from build import build

    for name in ("esp32", "pico_w"):
        build(name, quiet=True)


def _read_line(proc, prefix, deadline):
    buf = b""
    while time.monotonic() < deadline:
        r, _, _ = select.select([proc.stdout], [], [], 0.1)
        if not r:
            continue
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            break
        buf += chunk
        for line in buf.split(b"\n")[:-1]:  # complete lines only: a read may end mid-line
            if line.startswith(prefix.encode()):
                return line.decode(errors="replace").rstrip("\r")
    raise AssertionError(f"no {prefix!r} line; stdout so far: {buf[-2000:]!r}")


@pytest.mark.parametrize("name", ["esp32", "pico_w"])
def test_board_boots_to_boot_notification(name, boards_built, tmp_path):
    sys.path.insert(0, str(ROOT / "tools"))
    from csms import CsmsSimulator

    script = tmp_path / "boot.py"
    script.write_text(SCRIPT)
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join([str(FAKES), str(ROOT / "build" / name), ".frozen"])
    err = open(tmp_path / "stderr.log", "wb")
    with CsmsSimulator(port=0, log_file=str(tmp_path / "csms.log")) as csms:
        proc = subprocess.Popen(
            [str(MICROPYTHON), "-X", "heapsize=512K", str(script), str(tmp_path / "flash"), csms.url],
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
            cwd=tmp_path,
        )
        try:
            deadline = time.monotonic() + 15
            ident = _read_line(proc, "SERIAL", deadline).split()
            boot = csms.wait_for_call("ESP1", "BootNotification", timeout=15)
            heap = _read_line(proc, "HEAP", deadline).split()
        finally:
            proc.kill()
            proc.wait()
            err.close()
        stderr = (tmp_path / "stderr.log").read_text(errors="replace")
        assert csms.violations == []
    _, serial, vendor, model = ident
    assert serial == "FA6E01020304", "serial: machine.unique_id() in hex"
    assert boot["chargePointVendor"] == vendor == "MicroEVSE"
    assert boot["chargePointModel"] == model == {"esp32": "ESP32-AC1", "pico_w": "PICOW-AC1"}[name]
    assert boot["chargePointSerialNumber"] == serial
    _, used, duty, cp, feeds, stopped_by, link, watched = heap
    assert duty == "1000", "the pilot stays at steady +12 V (not offering) in state A"
    assert cp == "A", f"the safety loop classifies the fake +12 V pilot as state A, got {cp}"
    assert int(feeds) >= 1 and stopped_by == "None", "the watchdog is fed while every task is alive"
    assert {"loop", "safety"} <= set(watched.split(",")), "the watchdog watches the safety loop"
    assert link == "True"
    assert "Traceback" not in stderr and "exception" not in stderr.lower(), stderr[-3000:]
    assert (tmp_path / "flash" / "config.json").exists(), "config persisted under board.flash"
    print(f"\n{name}: heap in use at BootNotification (64-bit unix port): {int(used)} bytes")

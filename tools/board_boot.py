"""Boot a real board's configuration (boards/esp32.py, boards/pico_w.py) on the MicroPython Unix
port with the fake machine/network modules of host_tests/fakes standing in for the hardware, and
read what it reports once the backend accepted it. Used by host_tests/test_board_boot.py and
`make bench` (the heap each board's firmware holds at BootNotification)."""

import os
import select
import subprocess
import sys
import time
from pathlib import Path

from build import app_dir, romfs

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = Path(sys.executable).parent / "micropython"
FAKES = ROOT / "host_tests" / "fakes"
CP_ID = "ESP1"

# Runs inside micropython. The fake ADC holds the pilot at a steady +12 V (state A, no EV) and
# PP open (no cable); the fake Wi-Fi associates at once. Once registered it prints the live heap.
# With an image (argv[4]) the app comes from ROMFS, as on the board; its bytes, which a board
# keeps in flash, are left out of the figures.
SCRIPT = """
import asyncio, gc, sys
ROM = 0
if len(sys.argv) > 4:
    import os, vfs
    gc.collect()
    ROM = gc.mem_alloc()
    image = bytearray(os.stat(sys.argv[4])[6])
    ROM = gc.mem_alloc() - ROM
    with open(sys.argv[4], "rb") as f:
        f.readinto(image)
    vfs.mount(vfs.VfsRom(image), "/rom")
    sys.path.insert(0, "/rom")
import machine, network
gc.collect()
BASE = gc.mem_alloc() - ROM  # interpreter + the fake hardware modules, which a board does not carry
import board, main

FLASH, URL, CP = sys.argv[1], sys.argv[2], sys.argv[3]
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
            print("HEAP", gc.mem_alloc() - ROM, b.pilot(1).duty, snap["connectors"][1]["cp"],
                  b.watchdog.feeds, b.watchdog.stopped_by, b.link_up(), ",".join(b.watchdog._names),
                  type(b.pilot(1)).__name__, BASE)
            return
        await asyncio.sleep_ms(50)

async def go():
    tasks = b.start()
    asyncio.create_task(watch())
    await main.run(b, {"CentralSystemURL": URL, "ChargePointId": CP})

asyncio.run(go())
"""


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


def boot(name, csms_url, workdir, heap="512K", timeout_s=15, app="romfs", micropython=MICROPYTHON):
    """Run board `name` (built in build/<name>/; app "romfs": from its ROMFS image, "mpy": from
    the .mpy files of the fallback copy) until it reports being Accepted by the CSMS at csms_url.
    Returns (ident, report, stderr): ident = [serial, vendor, model], report = [heap in use,
    pilot duty, cp state, watchdog feeds, watchdog stopped_by, link up, watched sources, pilot
    driver class, heap of the interpreter and the fake modules before the firmware was imported]."""
    workdir = Path(workdir)
    script = workdir / "boot.py"
    script.write_text(SCRIPT)
    env = dict(os.environ)
    image = []
    path = [str(FAKES), str(ROOT / "build" / name)]  # the fakes, and the boot stub as `main`
    if app == "romfs":
        image = [str(romfs(name, quiet=True))]
    else:
        path.append(str(app_dir(name)))
    env["MICROPYPATH"] = ":".join([*path, ".frozen"])
    err_path = workdir / "stderr.log"
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(
            [
                str(micropython),
                "-X",
                f"heapsize={heap}",
                str(script),
                str(workdir / "flash"),
                csms_url,
                CP_ID,
                *image,
            ],
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
            cwd=workdir,
        )
        try:
            deadline = time.monotonic() + timeout_s
            ident = _read_line(proc, "SERIAL", deadline).split()[1:]
            report = _read_line(proc, "HEAP", deadline).split()[1:]
        finally:
            proc.kill()
            proc.wait()
    return ident, report, err_path.read_text(errors="replace")

# Boot: storage, configuration, safety loop, OCPP link. The same code runs on every board; the
# board object (boards/<board>.py) brings the hardware. `run` returns "reset" when the backend
# asked for a Reset: the caller (the board's boot code, or the sim) restarts the firmware.
import asyncio

from cp.chargepoint import ChargePoint
from cp.config import Config
from cp.link import Link
from evse.safety import SafetyLoop
from log import log
from store import atomic


async def run(board, preset=None):
    flash = board.flash
    atomic.clean_temp(flash)
    config = Config(flash + "/config.json", {"NumberOfConnectors": board.connectors})
    if preset:
        for name in config.preset(preset):
            log("preset refused:", name)
    cp = ChargePoint(board, config)
    safety = SafetyLoop(board, cp.on_pilot)
    cp.safety = safety
    board.publish(cp.snapshot)
    link = Link(cp, board, config)
    cp.link = link
    # The safety loop is started first and never waits for the network or the flash.
    tasks = [asyncio.create_task(safety.run()), asyncio.create_task(link.run())]
    try:
        kind = await cp.wait_reset()
        log("reset:", kind)
    finally:
        # Reset, or an orderly shutdown (the sim cancels us): say goodbye to the backend.
        for t in tasks:
            t.cancel()
        await link.close()
    return "reset"

# Boot: storage, configuration, safety loop, charging, OCPP link. The same code runs on every
# board; the board object (boards/<board>.py) brings the hardware. `run` returns "reset" when the
# backend asked for a Reset: the caller (the board's boot code, or the sim) restarts the firmware.
import asyncio
import os

import lazy
from cp.chargepoint import ChargePoint
from cp.charging import Charging
from cp.config import Config
from cp.link import Link
from cp.txqueue import TxQueue
from evse.safety import SafetyLoop
from log import log
from store import atomic
from store.journal import Journal


class LocalListRef:
    """cp.local_list: the Local Authorization List on flash (cp/localauth/local_list.py, loaded
    for each lookup: resident it is just this). get(id_tag) -> idTagInfo, or None when id_tag is not
    listed or the list is disabled (LocalAuthListEnabled false)."""

    def __init__(self, path, config):
        self.path = path
        self.config = config

    def get(self, id_tag):
        try:
            os.stat(self.path)
        except OSError:
            return None  # no list: the lookup code is not even loaded
        return lazy.load("cp.localauth.local_list").lookup(self, id_tag)


async def run(board, preset=None):
    Link.reserve()  # the largest block the firmware needs, taken first
    flash = board.flash
    atomic.clean_temp(flash)
    config = Config(flash + "/config.json", {"NumberOfConnectors": board.connectors})
    if preset:
        for name in config.preset(preset):
            log("preset refused:", name)
    cp = ChargePoint(board, config)
    cp.local_list = LocalListRef(flash + "/local_list.bin", config)
    cp.queue = queue = TxQueue(Journal(flash + "/journal"), config)
    cp.charging = charging = Charging(cp, board, config, None, queue)
    # max_amps: the most a pilot can offer; the MaxCurrent key and the cable set the real limit.
    safety = SafetyLoop(board, charging.on_pilot, max_amps=80, on_fault=charging.on_fault)
    cp.safety = charging.safety = safety
    queue.on_conf = charging.on_conf
    config.on_change(charging.on_config)
    lazy.load("cp.core.power_loss").recover(charging)  # transactions cut by a power loss: stopped
    board.publish(cp.snapshot)
    link = Link(cp, board, config)
    cp.link = link
    # The safety loop is started first and never waits for the network or the flash.
    tasks = [asyncio.create_task(t) for t in (safety.run(), charging.run(), link.run())]
    try:
        kind = await cp.wait_reset()
        log("reset:", kind)
        # The Reset answer and the StopTransactions are on the wire (cp/core/h_reset.py); the close
        # handshake runs while the link's receive loop still reads, so it ends when the backend's
        # close frame, which comes after everything it received, arrives (bounded: ocpp/ws_rare.py).
        # Cancelling the link first would leave nobody to read that frame.
        await link.close()
    finally:
        # Reset, or an orderly shutdown (the sim cancels us): say goodbye to the backend.
        for t in tasks:
            t.cancel()
        await link.close()
    return "reset"

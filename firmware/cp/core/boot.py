# Registration (OCPP 1.6 §4.2), loaded while the charge point registers and dropped after:
# BootNotification until Accepted. Nothing else is sent before; while Pending the backend's
# calls are answered, while Rejected they are not.
import asyncio

from log import log
from ocpp.rpc import CallError, CallTimeout
from version import VERSION

RETRY_S = 30  # when the backend gives interval 0 for Pending/Rejected: do not flood it


def payload(board):
    return {
        "chargePointVendor": board.vendor,
        "chargePointModel": board.model,
        "chargePointSerialNumber": board.serial,
        "chargeBoxSerialNumber": board.serial,
        "firmwareVersion": VERSION,
    }


async def register(cp, rpc):
    while True:
        try:
            conf = await rpc.call("BootNotification", payload(cp.board), cp.call_timeout())
        except (CallError, CallTimeout) as e:
            log("BootNotification failed:", e)
            await asyncio.sleep(RETRY_S)
            continue
        interval = registered(cp, rpc, conf)
        for _ in range(interval if interval > 0 else RETRY_S):
            if cp.registration == "Accepted":  # a triggered BootNotification may get there first
                return
            await asyncio.sleep(1)


def registered(cp, rpc, conf):
    """Apply a BootNotification.conf (ours, or one the backend triggered): registration, clock,
    HeartbeatInterval. Returns the interval."""
    was = cp.registration
    cp.registration = conf["status"]
    cp.set_clock(conf)
    interval = conf["interval"]
    log("registration", cp.registration, "interval", interval)
    if cp.registration == "Accepted":
        if interval > 0:
            cp.config.change("HeartbeatInterval", str(interval), by_backend=False)
        if was != "Accepted":
            cp.report_all()  # a fresh boot reports every connector
    rpc.answer_calls = cp.registration != "Rejected"
    return interval

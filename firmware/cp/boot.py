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
        cp.registration = conf["status"]
        cp.set_clock(conf)
        interval = conf["interval"]
        log("registration", cp.registration, "interval", interval)
        if cp.registration == "Accepted":
            if interval > 0:
                cp.config.change("HeartbeatInterval", str(interval), by_backend=False)
            cp.report_all()  # a fresh boot reports every connector
            return
        rpc.answer_calls = cp.registration != "Rejected"
        await asyncio.sleep(interval if interval > 0 else RETRY_S)

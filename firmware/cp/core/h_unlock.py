# UnlockConnector (OCPP 1.6 §5.18): a running transaction on the connector is stopped first
# (reason UnlockCommand), then the lock is released and its feedback checked.
import asyncio
import time

UNLOCK_WAIT_MS = 1500


async def unlock_connector(cp, payload):
    ch = cp.charging
    c = payload["connectorId"]
    if c < 1 or c > ch.n or cp.board.fixed_cable:
        return {"status": "NotSupported"}  # errata 3.87: an unknown connector too
    ch.stop(c, "UnlockCommand")
    ch.deauth[c] = None
    s = cp.safety
    deadline = time.ticks_add(time.ticks_ms(), UNLOCK_WAIT_MS)
    while True:
        # The safety loop opens the contactor first, and keeps the lock while the socket may
        # be live (a contactor still releasing, or welded): asked again until it lets go.
        s.lock(c, False)
        if not s.locked(c):
            return {"status": "Unlocked"}
        if time.ticks_diff(time.ticks_ms(), deadline) >= 0:
            return {"status": "UnlockFailed"}
        await asyncio.sleep_ms(50)

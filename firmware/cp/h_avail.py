# ChangeAvailability (OCPP 1.6 §5.2): connector 0 is the whole charge point. Inoperative while a
# transaction runs is Scheduled: the status is derived from both (cp/charging.py status_of), so
# Unavailable shows once the transaction ends. Persisted across reboot.
from store import atomic


async def change_availability(cp, payload):
    ch = cp.charging
    c = payload["connectorId"]
    if c > ch.n:
        return {"status": "Rejected"}
    inoperative = payload["type"] == "Inoperative"
    ch.inoperative[c] = inoperative
    atomic.write_json(ch.avail_path, ch.inoperative)
    if inoperative:  # identifications waiting for a plug there are void
        for i in range(1, ch.n + 1) if c == 0 else (c,):
            ch.pending[i] = None
    ch.publish_status()
    busy = any(ch.tx[1:]) if c == 0 else ch.tx[c] is not None
    return {"status": "Scheduled" if busy and inoperative else "Accepted"}

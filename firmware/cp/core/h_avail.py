# ChangeAvailability (OCPP 1.6 §5.2): connector 0 is the charge point and all its connectors, so
# (0, X) sets every connector to X too: (1, Inoperative) then (0, Operative) makes connector 1
# Available again. A connector is Unavailable while it or the charge point is Inoperative
# (cp/charging.py status_of): (0, Inoperative) then (1, Operative) is Accepted and recorded, but
# connector 1 stays Unavailable until the charge point is made Operative (§4.9: an Unavailable
# charge point makes every connector unavailable). Inoperative while a transaction runs is
# Scheduled: Unavailable shows once the transaction ends. Persisted across reboot.
from store import atomic


async def change_availability(cp, payload):
    ch = cp.charging
    c = payload["connectorId"]
    if c > ch.n:
        return {"status": "Rejected"}
    inoperative = payload["type"] == "Inoperative"
    targets = range(ch.n + 1) if c == 0 else (c,)
    for i in targets:
        ch.inoperative[i] = inoperative
    atomic.write_json(ch.avail_path, ch.inoperative)
    if inoperative:  # identifications waiting for a plug there are void
        for i in targets:
            ch.pending[i] = None
    ch.publish_status()
    busy = any(ch.tx[1:]) if c == 0 else ch.tx[c] is not None
    return {"status": "Scheduled" if busy and inoperative else "Accepted"}

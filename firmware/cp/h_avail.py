# ChangeAvailability (OCPP 1.6 §5.2): connector 0 is the whole charge point. Inoperative while a
# transaction runs is Scheduled: it applies when the transaction ends. Persisted across reboot.


async def change_availability(cp, payload):
    ch = cp.charging
    c = payload["connectorId"]
    if c > ch.n:
        return {"status": "Rejected"}
    return {"status": ch.set_available(c, payload["type"] == "Operative")}

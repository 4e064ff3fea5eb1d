# RemoteStartTransaction / RemoteStopTransaction (OCPP 1.6 §5.11, §5.12). A remote start on a
# reserved connector needs the reservation's idTag (or its parentIdTag, as far as known locally).
import lazy
from cp import clock
from log import log


async def remote_start(cp, payload):
    ch = cp.charging
    cards = lazy.load("cp.core.cards")
    c = payload.get("connectorId")
    profile = payload.get("chargingProfile")
    if cp.registration != "Accepted":
        return {"status": "Rejected"}  # Pending: remote start is not allowed (§4.2)
    if profile is not None and (
        profile.get("chargingProfilePurpose") != "TxProfile"
        or lazy.load("cp.smart.h_smart").compact(cp.config, profile, clock.now()) is None
    ):
        return {"status": "Rejected"}  # TC_060: only a TxProfile this charge point can keep
    if c is None:
        c = cards.pick_connector(ch)
    if c is None or c < 1 or c > ch.n or not ch.free(c) or ch.pending[c] is not None:
        return {"status": "Rejected"}
    tag = payload["idTag"]
    fixed = "connectorId" in payload
    reservation = None
    if ch.reservations is not None:  # a parentIdTag known locally counts for a reservation
        known = cp.auth().local(tag) or {}
        c, reservation, held = ch.reservations.connector_for(
            tag, known.get("parentIdTag"), payload.get("connectorId")
        )
        if c is None:
            return {"status": "Rejected"}  # the connector is reserved for another idTag
        fixed = fixed or held

    async def begin():
        info = {"status": "Accepted"}
        if cp.config.get("AuthorizeRemoteTxRequests"):
            info = await cp.auth().authorize(tag)
            if info.get("status") != "Accepted":
                log("remote start: idTag", tag, info.get("status"))
                return
        if ch.free(c):
            await cards.identified(ch, c, tag, info, fixed, reservation, profile)

    return {"status": "Accepted"}, begin


async def remote_stop(cp, payload):
    ch = cp.charging
    wanted = payload["transactionId"]
    c = 1
    while c <= ch.n and (ch.tx[c] is None or cp.queue.tx_id(ch.tx[c].key) != wanted):
        c += 1
    if c > ch.n:
        return {"status": "Rejected"}  # no running transaction has that id: nothing stops

    async def end():
        ch.stop(c, "Remote")

    return {"status": "Accepted"}, end

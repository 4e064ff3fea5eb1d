# ReserveNow / CancelReservation (OCPP 1.6 §5.13, §5.1); the rules are in cp/reservation/reservations.py.
import lazy
from cp import clock


async def reserve_now(cp, payload):
    ch = cp.charging
    c = payload["connectorId"]
    expiry = clock.parse_iso(payload["expiryDate"])
    if (
        c < 0
        or c > ch.n
        or (c == 0 and not cp.config.get("ReserveConnectorZeroSupported"))
        or expiry is None
        or expiry <= clock.now()  # already over: nothing to hold
    ):
        return {"status": "Rejected"}
    parent = payload.get("parentIdTag")
    rules = lazy.load("cp.reservation.reservations")
    return {"status": rules.reserve(ch, payload["reservationId"], c, payload["idTag"], parent, expiry)}


async def cancel_reservation(cp, payload):
    ch = cp.charging
    r = ch.reservations
    if r is None or not r.end(payload["reservationId"], "cancelled"):
        return {"status": "Rejected"}
    ch.publish_status()
    return {"status": "Accepted"}

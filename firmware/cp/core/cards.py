# Identification (loaded for each card or remote start, then dropped). A card at the reader
# stops the transaction it may stop (the same tag, or one with the same parentIdTag), releases
# a cable held after DeAuthorized, withdraws its own waiting identification, or is authorized
# and starts a transaction: now if a connector is plugged, else when one is (ConnectionTimeOut).
# While connectors are reserved, cp/reservation/reservations.py says which one it may take.
import time

from log import log


async def present(ch, tag):
    for c in range(1, ch.n + 1):  # the common case first: the card that started it stops it
        tx = ch.tx[c]
        if tx is not None and tx.tag.lower() == tag.lower():  # idTags are case-insensitive
            ch.stop(c, "Local", tag)
            return
    auth = ch.cp.auth()  # the parent rules and the backend need the authorization module
    for c in range(1, ch.n + 1):
        held = ch.deauth[c]
        if held is not None and await auth.may_stop(held[0], held[1], tag):
            ch.deauth[c] = None
            ch.safety.lock(c, False)
            return
        tx = ch.tx[c]
        if tx is not None and await auth.may_stop(tx.tag, tx.parent, tag):
            auth = None  # the authorization module may go before the transaction code loads
            ch.stop(c, "Local", tag)
            return
    for c in range(1, ch.n + 1):
        p = ch.pending[c]
        if p is not None and p[0] == tag:  # the same card again: identification withdrawn
            ch.pending[c] = None
            ch.publish_status()
            return
    c = pick_connector(ch)
    if c is None:
        log("card", tag, "ignored: no free connector")
        return
    info = await auth.authorize(tag)
    auth = None  # the authorization module may go before the transaction code loads
    if info.get("status") != "Accepted":
        log("card", tag, info.get("status"))
        ch.board.event("auth", c, info.get("status"))
        return
    reservation = None
    fixed = False
    if ch.reservations is not None:  # the parentIdTag the backend or the cache gave counts too
        c, reservation, fixed = ch.reservations.connector_for(tag, info.get("parentIdTag"))
        if c is None:
            log("card", tag, "refused: the free connectors are reserved")
            ch.board.event("auth", 0, "Reserved")
            return
    await identified(ch, c, tag, info, fixed, reservation)


def pick_connector(ch):
    """A plugged free connector first, else the first free one; None if all are busy. A
    connector where an identification waits for a plug is not free."""
    first = None
    for c in range(1, ch.n + 1):
        if ch.free(c) and ch.pending[c] is None:
            if ch.plugged(c):
                return c
            if first is None:
                first = c
    return first


async def identified(ch, c, tag, info, fixed=False, reservation=None, profile=None):
    """An accepted identification (card, or RemoteStart: `fixed` when it named the connector or
    uses a connector's reservation; `reservation`: the reservationId it uses): start now if
    plugged, else wait ConnectionTimeOut for a plug (on c, or on any free connector when not
    fixed; cp/charging.py waiting_for). `profile`: a RemoteStartTransaction's TxProfile."""
    if ch.plugged(c):
        await ch.start(c, tag, info, reservation, profile)
    else:
        deadline = time.ticks_add(time.ticks_ms(), ch.config.get("ConnectionTimeOut") * 1000)
        ch.pending[c] = [tag, info, deadline, fixed, reservation, profile]
    ch.publish_status()

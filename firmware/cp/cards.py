# A card at the reader (loaded for each card, then dropped): it stops the transaction it may
# stop (the same tag, or one with the same parentIdTag), releases a cable held after
# DeAuthorized, withdraws its own waiting identification, or is authorized and starts a
# transaction (now if a connector is plugged, else when one is: ConnectionTimeOut).
from log import log


async def present(ch, tag):
    auth = ch.cp.auth()
    for c in range(1, ch.n + 1):
        held = ch.deauth[c]
        if held is not None and await auth.may_stop(held[0], held[1], tag):
            ch.deauth[c] = None
            ch.safety.lock(c, False)
            return
        tx = ch.tx[c]
        if tx is not None and await auth.may_stop(tx.tag, tx.parent, tag):
            ch.stop(c, "Local", tag)
            return
    for c in range(1, ch.n + 1):
        p = ch.pending[c]
        if p is not None and p[0] == tag:  # the same card again: identification withdrawn
            ch.pending[c] = None
            ch.publish_status()
            return
    c = ch.pick_connector()
    if c is None:
        log("card", tag, "ignored: no free connector")
        return
    info = await auth.authorize(tag)
    if info.get("status") != "Accepted":
        log("card", tag, info.get("status"))
        ch.board.event("auth", c, info.get("status"))
        return
    await ch.identified(c, tag, info)

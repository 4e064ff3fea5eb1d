# Starting and ending transactions (loaded by cp/charging.py for each start, stop or
# confirmation, then dropped): the lock, meterStart/meterStop, the StartTransaction and
# StopTransaction journaled before anything else happens, the running transaction's file on
# flash, and what the backend's idTagInfo means for a running transaction. A transaction started
# for a reservation ends it.
import asyncio
import time

import lazy
from cp import clock
from cp.charging import Tx
from evse.safety import FAULT_LOCK
from log import log
from store import atomic

LOCK_WAIT_MS = 1500  # the lock's feedback must confirm within this (the safety loop's LOCK_MS + margin)


async def start(ch, c, tag, info, reservation, profile=None):
    s = ch.safety
    s.lock(c, True)
    deadline = time.ticks_add(time.ticks_ms(), LOCK_WAIT_MS)
    while not s.locked(c):
        if s.faults(c) & FAULT_LOCK or time.ticks_diff(time.ticks_ms(), deadline) >= 0:
            log("session: connector", c, "lock failed: no transaction")
            s.lock(c, False)
            return False
        await asyncio.sleep_ms(50)
    wh = ch.energy(c)
    if wh is None:
        log("session: connector", c, "meter unreadable: no transaction")
        s.lock(c, False)
        return False
    now = clock.now()
    payload = {"connectorId": c, "idTag": tag, "meterStart": wh, "timestamp": clock.iso(now)}
    # The transaction ends its reservation (gone already if it expired while the EV came); after
    # the Start is journaled, so that a power cut in between loses neither.
    r = ch.reservations
    if reservation is not None and r is not None and r.find(reservation) is not None:
        payload["reservationId"] = reservation
    key = ch.queue.push("StartTransaction", payload)
    if "reservationId" in payload:
        r.end(reservation, "used")
    tx = Tx(key, tag, info.get("parentIdTag"), now, wh, reservation)
    interval = ch.config.get("MeterValueSampleInterval")
    tx.next_sample = now + interval if interval > 0 else 0
    _keep(ch, tx, c, "Transaction.Begin", now)
    ch.tx[c] = tx
    ch.finishing[c] = False
    ch.ev_gone[c] = False
    ch.save(c)
    if profile is not None:  # a RemoteStartTransaction's TxProfile, for this transaction
        lazy.load("cp.smart.h_smart").install(ch.cp, c, profile)
    if ch.smart_due is not None or profile is not None:
        ch.limits_changed()  # TxProfile, Relative schedules: they depend on this transaction
    s.offer(c, ch.offer_amps(c))
    s.allow(c, True)
    ch.board.event("tx_start", c, key)
    log("session: connector", c, "transaction", key, "started for", tag)
    return True


def stop(ch, c, reason, tag):
    tx = ch.tx[c]
    ch.safety.allow(c, False)
    wh = ch.energy(c)
    if wh is not None and wh >= tx.wh:
        tx.wh = wh
    now = clock.now()
    _keep(ch, tx, c, "Transaction.End", now)
    payload = {"meterStop": tx.wh, "timestamp": clock.iso(now), "reason": reason, "idTag": tag or tx.tag}
    if tx.data:
        payload["transactionData"] = tx.data
    ch.queue.push("StopTransaction", payload, tx.key)
    atomic.remove(ch.tx_path(c))  # only now that the Stop is journaled (cp/core/power_loss.py)
    if ch.smart_due is not None:  # its TxProfiles end with it
        lazy.load("cp.smart.profiles").Store(ch.board.flash).tx_ended(c)
        ch.limits_changed()
    ch.tx[c] = None
    ch.ev_gone[c] = False
    ch.finishing[c] = True  # reported even when the EV is gone; cleared once unplugged
    if reason == "DeAuthorized":
        ch.deauth[c] = (tx.tag, tx.parent)  # the cable stays locked until that card returns
    else:
        ch.unlock_after_stop[c] = True
    ch.board.event("tx_stop", c, reason)
    log("session: connector", c, "transaction", tx.key, "stopped:", reason)


def refused(ch, payload, info):
    """The backend did not accept a StartTransaction's idTag (OCPP 1.6 §5.16, errata 3.17: online
    or offline): the transaction, if it still runs, is stopped (DeAuthorized, after
    MaxEnergyOnInvalidId) or suspended (StopTransactionOnInvalidId false)."""
    tag = payload["idTag"]
    c = payload["connectorId"]
    tx = ch.tx[c] if 1 <= c <= ch.n else None
    if tx is None or tx.tag != tag:
        return
    log("session: connector", c, "backend refused", tag, info.get("status"))
    tx.parent = info.get("parentIdTag", tx.parent)
    tx.invalid = True
    if ch.config.get("StopTransactionOnInvalidId"):
        if ch.config.get("MaxEnergyOnInvalidId") <= tx.wh - tx.wh0:
            stop(ch, c, "DeAuthorized", None)
    else:
        ch.safety.allow(c, False)  # SuspendedEVSE; the transaction stays open
    ch.publish_status()


def _keep(ch, tx, c, context, ts):
    # The Transaction.Begin / Transaction.End entry of transactionData (StopTxnSampledData).
    measurands = ch.config.get("StopTxnSampledData")
    if not measurands:
        return
    try:
        mv = lazy.load("cp.core.metering").meter_value(
            ch.board, c, measurands, context, ch.safety.offered_amps(c), ts
        )
    except OSError:
        return
    ch.add_data(tx, mv)

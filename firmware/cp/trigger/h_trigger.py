# TriggerMessage (OCPP 1.6 §5.17): the requested message is sent after TriggerMessage.conf, on the
# connection that asked (while Pending too: a trigger is the only way to send then). Triggered
# messages are not journaled; a failed send is only logged.
# connectorId: out of range -> Rejected, nothing sent; absent for a per-connector message -> every
# connector (StatusNotification: connector 0 as well). Nothing of Firmware Management runs yet,
# so the firmware and diagnostics statuses are Idle.
import lazy
from cp import clock
from cp.txqueue import NO_ID


async def trigger_message(cp, payload):
    ch = cp.charging
    what = payload["requestedMessage"]
    c = payload.get("connectorId")
    if c is not None and (c < 0 or c > ch.n):
        return {"status": "Rejected"}
    if what == "StatusNotification":
        conns = range(ch.n + 1) if c is None else (c,)
    elif what == "MeterValues":
        if c == 0:
            return {"status": "Rejected"}  # no meter of the whole charge point
        conns = range(1, ch.n + 1) if c is None else (c,)
    rpc = cp.rpc

    async def send():
        if rpc is None:
            return
        if what == "BootNotification":
            boot = lazy.load("cp.core.boot")
            conf = await cp.send(rpc, what, boot.payload(cp.board))
            if conf is not None:
                boot.registered(cp, rpc, conf)
        elif what == "Heartbeat":
            conf = await cp.send(rpc, what, {})
            if conf is not None:
                cp.set_clock(conf)
        elif what in ("DiagnosticsStatusNotification", "FirmwareStatusNotification"):
            await cp.send(rpc, what, {"status": "Idle"})
        elif what == "StatusNotification":
            for i in conns:
                status, error, info = cp.status[i]
                sn = {"connectorId": i, "status": status, "errorCode": error, "timestamp": clock.iso()}
                if info:
                    sn["info"] = info
                await cp.send(rpc, what, sn)
        else:  # MeterValues
            for i in conns:
                mv = _meter_values(cp, i)
                if mv is not None:
                    await cp.send(rpc, what, mv)

    return {"status": "Accepted"}, send


def _meter_values(cp, c):
    # The MeterValuesSampledData measurands now, context Trigger; with the transactionId while a
    # transaction runs (once the backend gave it). None without a readable meter.
    ch = cp.charging
    if cp.board.meter(c) is None:
        return None
    metering = lazy.load("cp.core.metering")  # not resident on every build
    try:
        mv = metering.meter_value(
            cp.board,
            c,
            cp.config.get("MeterValuesSampledData"),
            "Trigger",
            ch.safety.offered_amps(c),
            clock.now(),
        )
    except OSError:
        return None
    payload = {"connectorId": c, "meterValue": [mv]}
    tx = ch.tx[c]
    tx_id = cp.queue.tx_id(tx.key) if tx is not None else None
    if tx_id is not None and tx_id != NO_ID:
        payload["transactionId"] = tx_id
    return payload

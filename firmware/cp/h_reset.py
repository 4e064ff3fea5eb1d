# Reset (OCPP 1.6 §5.14): accepted; once the confirmation is on the wire, running transactions
# are stopped (SoftReset / HardReset), their StopTransaction is given a moment to be delivered
# (it stays in the journal otherwise), then the firmware restarts.
DRAIN_MS = 5000


async def reset(cp, payload):
    kind = payload["type"]

    async def restart():
        ch = cp.charging
        for c in range(1, ch.n + 1):
            ch.stop(c, kind + "Reset")
        await cp.queue.drain(DRAIN_MS)
        cp.request_reset(kind)

    return {"status": "Accepted"}, restart

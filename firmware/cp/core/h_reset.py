# Reset (OCPP 1.6 §5.14): accepted; once the confirmation is on the wire, running transactions
# are stopped (SoftReset / HardReset), their StopTransaction is given a moment to be delivered
# (it stays in the journal otherwise), then the firmware restarts. The close handshake follows
# the confirmation by ANSWER_GRACE_MS: a backend that handles an answer in its own task lost the
# Reset when the close frame came in the same millisecond (issue 16); main.py then closes while
# the receive loop still reads, so the close ends with the backend's close frame.
import asyncio

DRAIN_MS = 5000
ANSWER_GRACE_MS = 500


async def reset(cp, payload):
    kind = payload["type"]

    async def restart():
        ch = cp.charging
        for c in range(1, ch.n + 1):
            ch.stop(c, kind + "Reset")
        await cp.queue.drain(DRAIN_MS)
        await asyncio.sleep_ms(ANSWER_GRACE_MS)
        cp.request_reset(kind)

    return {"status": "Accepted"}, restart

# Reset: accepted, then the firmware restarts once the confirmation is on the wire.
# (Stopping running transactions first arrives with the transaction code.)


async def reset(cp, payload):
    kind = payload["type"]

    async def restart():
        cp.request_reset(kind)

    return {"status": "Accepted"}, restart

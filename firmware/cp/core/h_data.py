# DataTransfer (OCPP 1.6 §4.3, §5.5), both ways. From the backend: our own vendorId (the
# board's vendor) is known but has no message yet (Plug & Charge arrives with the security
# work): UnknownMessageId; any other vendor: UnknownVendorId, without data.


async def data_transfer(cp, payload):
    if payload["vendorId"] != cp.board.vendor:
        return {"status": "UnknownVendorId"}
    return {"status": "UnknownMessageId"}


async def send(cp, vendor_id, message_id=None, data=None):
    """DataTransfer to the backend: its answer, or None when not connected (or it failed)."""
    rpc = cp.online()
    if rpc is None:
        return None
    payload = {"vendorId": vendor_id}
    if message_id is not None:
        payload["messageId"] = message_id
    if data is not None:
        payload["data"] = data
    return await cp.send(rpc, "DataTransfer", payload)

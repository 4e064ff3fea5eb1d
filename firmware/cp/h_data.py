# DataTransfer from the backend (OCPP 1.6 §5.5). Our own vendorId (the board's vendor) is known
# but has no message yet (Plug & Charge arrives with the security work): UnknownMessageId. Any
# other vendor: UnknownVendorId, without data (§4.3).


async def data_transfer(cp, payload):
    if payload["vendorId"] != cp.board.vendor:
        return {"status": "UnknownVendorId"}
    return {"status": "UnknownMessageId"}

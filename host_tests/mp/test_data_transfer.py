# DataTransfer both ways (cp/core/h_data.py): the backend's to us, and ours to the backend.
from cp.core import h_data
from ocpp.rpc import CallError


class Board:
    vendor = "MicroEVSE"


class Rpc:
    def __init__(self, answer):
        self.answer = answer
        self.sent = []

    async def call(self, action, payload, timeout_s=30):
        self.sent.append((action, payload))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


class Cp:
    board = Board()

    def __init__(self, rpc=None):
        self.rpc = rpc

    def online(self):
        return self.rpc

    async def send(self, rpc, action, payload):  # as ChargePoint.send: errors are logged, None
        try:
            return await rpc.call(action, payload)
        except Exception:
            return None


async def test_from_the_backend_unknown_vendor_and_message():
    cp = Cp()
    assert await h_data.data_transfer(cp, {"vendorId": "Other", "messageId": "x"}) == {
        "status": "UnknownVendorId"
    }
    got = await h_data.data_transfer(cp, {"vendorId": "MicroEVSE", "messageId": "Nope", "data": "1"})
    assert got == {"status": "UnknownMessageId"}


async def test_to_the_backend():
    rpc = Rpc({"status": "Accepted", "data": "ok"})
    cp = Cp(rpc)
    assert await h_data.send(cp, "MicroEVSE", "Hello", "{}") == {"status": "Accepted", "data": "ok"}
    assert rpc.sent == [("DataTransfer", {"vendorId": "MicroEVSE", "messageId": "Hello", "data": "{}"})]
    assert await h_data.send(cp, "MicroEVSE") == {"status": "Accepted", "data": "ok"}
    assert rpc.sent[-1] == ("DataTransfer", {"vendorId": "MicroEVSE"})


async def test_to_the_backend_offline_or_refused():
    assert await h_data.send(Cp(None), "MicroEVSE", "Hello") is None
    assert await h_data.send(Cp(Rpc(CallError("NotSupported", "no"))), "MicroEVSE") is None

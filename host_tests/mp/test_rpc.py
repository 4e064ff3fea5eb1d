# OCPP-J RPC: framing, CALLERROR codes for malformed input, one outstanding call, timeouts.
import asyncio
import time

import mptmp
from fakews import FakeWs
from ocpp import rpc

ACTIONS = {
    "GetConfiguration": ("cp.core.h_config", "get_configuration"),
    "ChangeConfiguration": ("cp.core.h_config", "change_configuration"),
    "Reset": ("test_rpc", "broken_handler"),
    "UnlockConnector": ("cp.h_no_such_module", "unlock_connector"),  # a module that fails to load
}


async def broken_handler(cp, payload):
    raise ValueError("handler bug")


class Ctx:
    def __init__(self):
        from cp.config import Config

        self.config = Config(mptmp.path("mp_test_rpc.json"), {"NumberOfConnectors": 1})


async def answer_to(frame):
    ws = FakeWs()
    r = rpc.Rpc(ws, ACTIONS, Ctx())
    task = asyncio.create_task(r.run())
    ws.push(frame)
    try:
        return await ws.next_sent()
    finally:
        task.cancel()


async def expect_error(frame, code, msg_id):
    got = await answer_to(frame)
    assert got[0] == 4 and got[2] == code, (frame, got)
    assert got[1] == msg_id, got
    assert isinstance(got[3], str) and got[4] == {}


async def test_not_json_is_formation_violation():
    await expect_error("[2, 'x'", "FormationViolation", "-1")


async def test_not_an_array():
    await expect_error('{"a": 1}', "FormationViolation", "-1")
    await expect_error("[]", "FormationViolation", "-1")
    await expect_error('[2, 17, "Heartbeat", {}]', "FormationViolation", "-1")


async def test_unknown_message_type():
    await expect_error('[7, "m1", "x"]', "FormationViolation", "m1")


async def test_missing_payload_is_protocol_error():
    await expect_error('[2, "m2", "GetConfiguration"]', "ProtocolError", "m2")


async def test_payload_not_object():
    await expect_error('[2, "m3", "GetConfiguration", [1]]', "FormationViolation", "m3")


async def test_unknown_action_not_implemented():
    await expect_error('[2, "m4", "MakeCoffee", {}]', "NotImplemented", "m4")


async def test_known_action_without_handler_not_supported():
    await expect_error('[2, "m5", "ClearCache", {}]', "NotSupported", "m5")


async def test_type_violation():
    await expect_error(
        '[2, "m6", "GetConfiguration", {"key": "HeartbeatInterval"}]', "TypeConstraintViolation", "m6"
    )


async def test_missing_required_field():
    await expect_error(
        '[2, "m7", "ChangeConfiguration", {"key": "HeartbeatInterval"}]', "OccurenceConstraintViolation", "m7"
    )


async def test_enum_violation():
    await expect_error('[2, "m8", "Reset", {"type": "Medium"}]', "PropertyConstraintViolation", "m8")


async def test_handler_bug_is_internal_error():
    await expect_error('[2, "m9", "Reset", {"type": "Soft"}]', "InternalError", "m9")


async def test_handler_that_fails_to_load_is_internal_error_and_the_link_stays():
    ws = FakeWs()
    r = rpc.Rpc(ws, ACTIONS, Ctx())
    reader = asyncio.create_task(r.run())
    ws.push([2, "u1", "UnlockConnector", {"connectorId": 1}])
    got = await ws.next_sent()
    assert got[:3] == [4, "u1", "InternalError"], got
    ws.push([2, "c1", "ChangeConfiguration", {"key": "HeartbeatInterval", "value": "77"}])
    got = await ws.next_sent()
    assert got == [3, "c1", {"status": "Accepted"}], ("the receive loop ended with the failed load", got)
    assert not reader.done()
    reader.cancel()


def test_every_action_table_entry_resolves():
    from cp.actions import ACTIONS as TABLE
    from ocpp.schema_tables import TABLES

    for action, (module, name) in TABLE.items():
        assert callable(rpc._handler(TABLE, action)), (action, module, name)
        assert "\n" + action + ".req " in TABLES, "no schema for " + action


async def test_valid_call_gets_result():
    got = await answer_to('[2, "ok1", "ChangeConfiguration", {"key": "HeartbeatInterval", "value": "77"}]')
    assert got == [3, "ok1", {"status": "Accepted"}]


async def test_deep_nesting_does_not_crash():
    got = await answer_to('[2, "d1", "GetConfiguration", {"key": ' + "[" * 2000 + "]" * 2000 + "}]")
    assert got[0] == 4 and got[1] == "d1"


async def test_one_outstanding_call_and_results():
    ws = FakeWs()
    r = rpc.Rpc(ws, ACTIONS, Ctx())
    reader = asyncio.create_task(r.run())
    first = asyncio.create_task(r.call("Heartbeat", {}, 5))
    second = asyncio.create_task(r.call("Heartbeat", {}, 5))
    sent1 = await ws.next_sent()
    await asyncio.sleep_ms(50)
    assert len(ws.sent) == 1, "second CALL sent before the first was answered"
    ws.push([3, sent1[1], {"currentTime": "2026-11-24T22:00:00Z"}])
    sent2 = await ws.next_sent()
    assert sent2[1] != sent1[1], "message ids must be unique"
    ws.push([3, sent2[1], {"currentTime": "2026-11-24T22:00:01Z"}])
    assert (await first)["currentTime"] == "2026-11-24T22:00:00Z"
    assert (await second)["currentTime"] == "2026-11-24T22:00:01Z"
    reader.cancel()


async def test_call_timeout_and_late_answer_dropped():
    ws = FakeWs()
    r = rpc.Rpc(ws, ACTIONS, Ctx())
    reader = asyncio.create_task(r.run())
    try:
        await r.call("Heartbeat", {}, 0.2)
        raise AssertionError("no timeout")
    except rpc.CallTimeout:
        pass
    late_id = ws.sent[-1][1]
    call = asyncio.create_task(r.call("Heartbeat", {}, 5))
    sent = await ws.next_sent()
    ws.push([3, late_id, {"currentTime": "2026-11-24T22:00:00Z"}])  # the late answer: ignored
    ws.push([3, sent[1], {"currentTime": "2026-11-24T22:00:09Z"}])
    assert (await call)["currentTime"] == "2026-11-24T22:00:09Z"
    reader.cancel()


async def test_a_call_fails_at_once_when_the_connection_closes():
    from ocpp.ws import ConnectionClosed

    ws = FakeWs()
    r = rpc.Rpc(ws, ACTIONS, Ctx())
    reader = asyncio.create_task(r.run())
    call = asyncio.create_task(r.call("Heartbeat", {}, 30))
    await ws.next_sent()
    t0 = time.ticks_ms()
    ws.push("close")  # FakeWs.recv raises ConnectionClosed for it: the receive loop ends
    try:
        await call
        raise AssertionError("the call did not fail")
    except ConnectionClosed:
        pass
    assert time.ticks_diff(time.ticks_ms(), t0) < 500, "failed at its 30 s timeout, not at the close"
    try:
        await reader
    except ConnectionClosed:
        pass


async def test_callerror_and_invalid_result_raise():
    ws = FakeWs()
    r = rpc.Rpc(ws, ACTIONS, Ctx())
    reader = asyncio.create_task(r.run())
    call = asyncio.create_task(r.call("Heartbeat", {}, 5))
    sent = await ws.next_sent()
    ws.push([4, sent[1], "SecurityError", "not yet", {}])
    try:
        await call
        raise AssertionError("no CallError")
    except rpc.CallError as e:
        assert e.code == "SecurityError"
    call = asyncio.create_task(r.call("Heartbeat", {}, 5))
    sent = await ws.next_sent()
    ws.push([3, sent[1], {"currentTime": 5}])
    try:
        await call
        raise AssertionError("invalid result accepted")
    except rpc.CallError as e:
        assert e.code == "TypeConstraintViolation"
    reader.cancel()


async def test_rejected_charge_point_answers_nothing():
    ws = FakeWs()
    r = rpc.Rpc(ws, ACTIONS, Ctx())
    r.answer_calls = False
    reader = asyncio.create_task(r.run())
    ws.push([2, "r1", "GetConfiguration", {}])
    ws.push("garbage")
    await asyncio.sleep_ms(100)
    assert ws.sent == []
    reader.cancel()

# Delivery of transaction messages from the journal: order, transactionId patching, the OCPP
# retry rules (TransactionMessageAttempts / RetryInterval, transactionId -1), persistence.
import asyncio
import os

import mptmp
from cp import config, txqueue
from cp.txqueue import TxQueue
from ocpp.rpc import CallError, CallTimeout
from ocpp.ws import ConnectionClosed
from store.journal import Journal

DIR = mptmp.path("mp_test_txqueue")
CONFIG = mptmp.path("mp_test_txqueue_config.json")
INTERVAL = 7  # TransactionMessageRetryInterval in these tests (the waits are recorded, not slept)

START = {"connectorId": 1, "idTag": "TAG1", "meterStart": 100, "timestamp": "2026-01-01T00:00:00Z"}
METER = {
    "connectorId": 1,
    "meterValue": [{"timestamp": "2026-01-01T00:01:00Z", "sampledValue": [{"value": "150"}]}],
}
STOP = {"meterStop": 200, "timestamp": "2026-01-01T00:02:00Z", "reason": "Local"}
ACCEPTED = {"idTagInfo": {"status": "Accepted"}}


def start_conf(transaction_id):
    return {"transactionId": transaction_id, "idTagInfo": {"status": "Accepted"}}


def fresh_dir():
    try:
        for name in os.listdir(DIR):
            os.remove(DIR + "/" + name)
    except OSError:
        pass


def make_config(attempts=3):
    try:
        os.remove(CONFIG)
    except OSError:
        pass
    c = config.Config(CONFIG)
    assert c.change("TransactionMessageAttempts", str(attempts)) == "Accepted"
    assert c.change("TransactionMessageRetryInterval", str(INTERVAL)) == "Accepted"
    assert c.change("MessageTimeout", "5") == "Accepted"
    return c


class FakeRpc:
    """rpc.call scripted per call: a dict is the CALLRESULT, an exception is raised, a function
    is called with (action, payload) and its result used the same way."""

    def __init__(self, script):
        self.script = list(script)
        self.sent = []
        self.timeouts = []

    async def call(self, action, payload, timeout_s):
        self.sent.append((action, dict(payload)))
        self.timeouts.append(timeout_s)
        await asyncio.sleep(0)
        step = self.script.pop(0) if self.script else ConnectionClosed(1006)
        if callable(step) and not isinstance(step, Exception):
            step = step(action, payload)
        if isinstance(step, Exception):
            raise step
        return step


class Waits:
    """Replaces txqueue.sleep: records the retry waits instead of sleeping them."""

    def __enter__(self):
        self.seconds = []
        self._real = txqueue.sleep
        txqueue.sleep = self._sleep
        return self

    async def _sleep(self, s):
        self.seconds.append(s)
        await asyncio.sleep(0)

    def __exit__(self, *exc):
        txqueue.sleep = self._real


async def deliver(q, rpc, timeout_ms=2000):
    """Run the queue until it is drained; then end the task."""
    task = asyncio.create_task(q.run(rpc))
    try:
        return await q.drain(timeout_ms)
    finally:
        task.cancel()
        await asyncio.sleep(0)


def new_queue(attempts=3, on_conf=None):
    fresh_dir()
    return TxQueue(Journal(DIR), make_config(attempts), on_conf)


async def test_in_order_and_later_messages_get_the_start_id():
    confs = []
    q = new_queue(on_conf=lambda a, p, c: confs.append((a, p.get("transactionId"), c)))
    key = q.push("StartTransaction", START)
    q.push("MeterValues", METER, key)
    q.push("StopTransaction", STOP, key)
    assert len(q) == 3
    rpc = FakeRpc([start_conf(42), {}, ACCEPTED])
    with Waits() as w:
        assert await deliver(q, rpc)
    assert [a for a, _ in rpc.sent] == ["StartTransaction", "MeterValues", "StopTransaction"]
    assert "transactionId" not in rpc.sent[0][1]
    assert rpc.sent[1][1]["transactionId"] == 42 and rpc.sent[2][1]["transactionId"] == 42
    assert rpc.sent[2][1]["meterStop"] == 200
    assert rpc.timeouts == [5, 5, 5]  # MessageTimeout
    assert w.seconds == []
    assert [(a, t) for a, t, _ in confs] == [
        ("StartTransaction", None),
        ("MeterValues", 42),
        ("StopTransaction", 42),
    ]
    assert confs[0][2]["transactionId"] == 42
    assert len(q) == 0
    assert q.tx_id(key) is None  # forgotten once the StopTransaction is confirmed


async def test_a_failing_on_conf_does_not_stop_delivery():
    def on_conf(action, payload, conf):
        raise KeyError("bug")

    q = new_queue()
    q.on_conf = on_conf  # main.py sets it once charging exists
    key = q.push("StartTransaction", START)
    q.push("StopTransaction", STOP, key)
    rpc = FakeRpc([start_conf(3), ACCEPTED])
    assert await deliver(q, rpc)
    assert [a for a, _ in rpc.sent] == ["StartTransaction", "StopTransaction"]


async def test_retries_after_callerror_with_growing_waits():
    q = new_queue(attempts=3)
    key = q.push("StartTransaction", START)
    rpc = FakeRpc([CallError("InternalError"), CallError("InternalError"), start_conf(7)])
    with Waits() as w:
        assert await deliver(q, rpc)
    assert [a for a, _ in rpc.sent] == ["StartTransaction"] * 3
    assert w.seconds == [INTERVAL, 2 * INTERVAL]  # sends at t0, t0+I, t0+3I
    assert q.tx_id(key) == 7


async def test_start_given_up_after_attempts_then_stop_uses_minus_one():
    q = new_queue(attempts=3)
    key = q.push("StartTransaction", START)
    q.push("StopTransaction", STOP, key)
    seen = []

    def stop_reply(action, payload):
        seen.append(q.tx_id(key))
        return ACCEPTED

    rpc = FakeRpc([CallError("InternalError")] * 3 + [stop_reply])
    with Waits() as w:
        assert await deliver(q, rpc)
    assert [a for a, _ in rpc.sent] == ["StartTransaction"] * 3 + ["StopTransaction"]
    assert w.seconds == [INTERVAL, 2 * INTERVAL]  # no wait after the last failure
    assert seen == [-1]
    assert rpc.sent[3][1]["transactionId"] == -1
    assert len(q) == 0


async def test_given_up_meter_values_do_not_block_the_queue():
    q = new_queue(attempts=1)
    key = q.push("StartTransaction", START)
    q.push("MeterValues", METER, key)
    q.push("StopTransaction", STOP, key)
    rpc = FakeRpc([start_conf(5), CallError("FormationViolation"), ACCEPTED])
    with Waits() as w:
        assert await deliver(q, rpc)
    assert [a for a, _ in rpc.sent] == ["StartTransaction", "MeterValues", "StopTransaction"]
    assert w.seconds == []
    assert rpc.sent[2][1]["transactionId"] == 5


async def test_timeout_resends_after_the_interval_without_counting():
    q = new_queue(attempts=1)  # a single counted failure would give the message up
    key = q.push("StartTransaction", START)
    rpc = FakeRpc([CallTimeout("StartTransaction"), CallTimeout("StartTransaction"), start_conf(9)])
    with Waits() as w:
        assert await deliver(q, rpc)
    assert [a for a, _ in rpc.sent] == ["StartTransaction"] * 3
    assert w.seconds == [INTERVAL, INTERVAL]
    assert q.tx_id(key) == 9


async def test_connection_loss_ends_run_and_keeps_the_message():
    q = new_queue()
    q.push("StartTransaction", START)
    rpc = FakeRpc([ConnectionClosed(1006)])
    try:
        await q.run(rpc)
    except ConnectionClosed:
        pass
    else:
        raise AssertionError("run() did not end with the connection")
    assert len(q) == 1
    assert not await q.drain(20)  # nobody delivers: drain times out


async def test_id_map_survives_a_reboot():
    q = new_queue()
    key = q.push("StartTransaction", START)
    q.push("StopTransaction", STOP, key)
    rpc = FakeRpc([start_conf(77), ConnectionClosed(1006)])
    try:
        await q.run(rpc)
    except ConnectionClosed:
        pass
    assert q.tx_id(key) == 77
    # reboot: new journal and queue objects on the same directory
    q = TxQueue(Journal(DIR), make_config())
    assert q.tx_id(key) == 77 and len(q) == 1
    rpc = FakeRpc([ACCEPTED])
    assert await deliver(q, rpc)
    assert rpc.sent == [("StopTransaction", dict(STOP, transactionId=77))]
    assert TxQueue(Journal(DIR), make_config()).tx_id(key) is None  # forgotten on flash too


async def test_given_up_start_is_minus_one_after_a_reboot():
    q = new_queue(attempts=1)
    key = q.push("StartTransaction", START)
    with Waits():
        assert await deliver(q, FakeRpc([CallError("InternalError")]))
    assert TxQueue(Journal(DIR), make_config()).tx_id(key) == -1


async def test_waits_for_a_push_when_empty():
    q = new_queue()
    rpc = FakeRpc([start_conf(1)])
    task = asyncio.create_task(q.run(rpc))
    for _ in range(5):
        await asyncio.sleep(0)
    assert rpc.sent == []  # nothing to send: waiting, not polling
    q.push("StartTransaction", START)
    assert await q.drain(1000)
    assert [a for a, _ in rpc.sent] == ["StartTransaction"]
    task.cancel()
    await asyncio.sleep(0)


async def test_meter_values_are_thinned_start_and_stop_are_kept():
    fresh_dir()
    q = TxQueue(Journal(DIR, max_bytes=2000), make_config())
    key = q.push("StartTransaction", START)
    for _ in range(40):
        q.push("MeterValues", METER, key)
    q.push("StopTransaction", STOP, key)
    assert q.journal.dropped > 0
    got = [r[1] for r in q.journal.records()]
    assert got[0] == "StartTransaction" and got[-1] == "StopTransaction"
    assert 0 < got.count("MeterValues") < 40


async def test_drain_is_true_at_once_when_empty():
    q = new_queue()
    assert await q.drain(0)


async def test_a_local_failure_while_sending_keeps_the_message_and_retries():
    q = new_queue()
    key = q.push("StartTransaction", START)
    # No memory for this attempt (MemoryError on the charger's side), then the backend answers.
    rpc = FakeRpc([MemoryError("no memory"), start_conf(5)])
    with Waits() as w:
        assert await deliver(q, rpc)
    assert [a for a, _ in rpc.sent] == ["StartTransaction", "StartTransaction"]
    assert w.seconds == [txqueue.RETRY_AFTER_ERROR_S]
    assert q.tx_id(key) == 5 and len(q) == 0

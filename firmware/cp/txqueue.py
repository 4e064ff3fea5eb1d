# Delivery of transaction messages (StartTransaction, StopTransaction, MeterValues) from the
# journal, strictly in order, with the OCPP 1.6 retry rules (section 3.7.1, errata 3.18):
# - a CALLERROR is a failure: after TransactionMessageAttempts transmissions the message is
#   given up; before each retransmission wait TransactionMessageRetryInterval x failures so far;
# - no answer in MessageTimeout is not a failure: resend after TransactionMessageRetryInterval;
# - a StartTransaction's journal seq is its transaction's local key; later messages of the
#   transaction are journaled without "transactionId" and get the backend's id at send time,
#   or -1 when the StartTransaction was given up.
# The key -> transactionId map is a small JSON file next to the journal, so a reboot between
# the StartTransaction.conf and the StopTransaction keeps it.
import asyncio
from asyncio import sleep  # a module global: tests replace it to see the retry waits

from log import log
from ocpp.rpc import CallError, CallTimeout
from ocpp.ws import ConnectionClosed
from store import atomic

NO_ID = -1  # the transactionId of a transaction whose StartTransaction was given up
RETRY_AFTER_ERROR_S = 1  # after a local failure (no memory, flash) while delivering


class TxQueue:
    def __init__(self, journal, config, on_conf=None):
        self.journal = journal
        self._config = config
        self.on_conf = on_conf  # on_conf(action, payload_sent, conf) after a confirmed delivery
        self._ids_path = journal.directory + "/txids.json"
        saved = atomic.read_json(self._ids_path, {})
        self._ids = {int(k): v for k, v in saved.items()} if isinstance(saved, dict) else {}
        self._more = asyncio.Event()  # set by push(): run() has something to send
        self._empty = asyncio.Event()  # set while the journal is empty: drain() waits for it
        if not len(journal):
            self._empty.set()
        self._failing_seq = 0  # the record that got CALLERRORs, and how many
        self._failures = 0

    def __len__(self):
        return len(self.journal)

    def push(self, action, payload, tx=None):
        """Journal a transaction message (on flash when this returns) and return its seq."""
        seq = self.journal.append(action, payload, tx, action == "MeterValues")
        if len(self.journal):
            self._empty.clear()
        self.wake()
        return seq

    def wake(self):
        self._more.set()

    def tx_id(self, tx):
        """The backend's transactionId of local key `tx`, NO_ID once its start was given up, or
        None while its StartTransaction is not confirmed."""
        return self._ids.get(tx)

    async def drain(self, timeout_ms):
        """True once every journaled message is delivered or given up, False after timeout_ms."""
        if not len(self.journal):
            return True
        try:
            await asyncio.wait_for_ms(self._empty.wait(), timeout_ms)
        except asyncio.TimeoutError:
            return False
        return True

    async def run(self, rpc):
        """Deliver journaled messages in order over `rpc` (one task per connection, started after
        BootNotification Accepted). Ends by cancellation or ConnectionClosed from rpc.call."""
        journal = self.journal
        while True:
            try:
                rec = journal.first()
                if rec is None:
                    self._empty.set()
                    self._more.clear()
                    await self._more.wait()
                    continue
                await self._send(rpc, *rec)
            except ConnectionClosed:
                raise
            except Exception as e:  # MemoryError, a flash error: the record stays, try again
                log("txqueue: delivery failed, retrying:", repr(e))
                await sleep(RETRY_AFTER_ERROR_S)

    async def _send(self, rpc, seq, action, payload, tx):
        config = self._config
        if tx is not None:
            tid = self._ids.get(tx)
            payload["transactionId"] = NO_ID if tid is None else tid
        try:
            conf = await rpc.call(action, payload, config.get("MessageTimeout"))
        except CallTimeout:
            await sleep(config.get("TransactionMessageRetryInterval"))
            return
        except CallError as e:
            failures = self._failures + 1 if self._failing_seq == seq else 1
            if failures < config.get("TransactionMessageAttempts"):
                self._failing_seq, self._failures = seq, failures
                log("txqueue:", action, seq, "failed:", e.code, "attempt", failures)
                await sleep(config.get("TransactionMessageRetryInterval") * failures)
                return
            log("txqueue: gave up", action, seq, "after", failures, "attempts:", e.code, e.description)
            self._settle(seq, action, tx, NO_ID)
            return
        self._settle(seq, action, tx, conf.get("transactionId"))
        if self.on_conf is not None:
            try:
                self.on_conf(action, payload, conf)
            except Exception as e:  # a bug there must not stop delivery
                log("txqueue: on_conf", action, "failed:", repr(e))

    def _settle(self, seq, action, tx, transaction_id):
        # The record is delivered or given up. The id map is written before the StartTransaction
        # is marked done (a power cut between them resends the Start rather than losing its id)
        # and after the StopTransaction is (a stale entry rather than a Stop without its id).
        self._failing_seq = self._failures = 0
        if action == "StartTransaction":
            self._ids[seq] = transaction_id
            atomic.write_json(self._ids_path, self._ids)
            self.journal.done(seq)
        else:
            self.journal.done(seq)
            if action == "StopTransaction" and self._ids.pop(tx, None) is not None:
                atomic.write_json(self._ids_path, self._ids)

# The charge point: registration (BootNotification), heartbeat and connector status, over
# whatever OCPP connection the link gives it, and the delivery of the transaction journal once
# registered. It outlives connections: registration and the last status sent survive a
# reconnect, so a reconnect sends no new BootNotification and only the statuses that changed
# meanwhile (their current value), or all of them with StatusNotificationOnReconnect. While
# connected every status change is reported in order, except those that last less than
# MinimumStatusDuration.
import asyncio
import time

import lazy
from cp import charging, clock
from log import log
from ocpp.rpc import CallError, CallTimeout

MAX_TRANSITIONS = 32  # status changes waiting to be sent; beyond, only the current ones go


class ChargePoint:
    def __init__(self, board, config):
        self.board = board
        self.config = config
        # Set by main: they refer to us and to each other.
        self.safety = None  # evse.safety.SafetyLoop
        self.charging = None  # cp.charging.Charging
        self.local_list = None  # the Local Authorization List (a later issue), for Auth
        self.queue = None  # cp.txqueue.TxQueue
        self.link = None  # cp.link.Link: handlers ask it to reconnect
        n = board.connectors
        self.registration = None  # None until the first answer, then Accepted / Pending / Rejected
        self.rpc = None  # the live connection, or None
        # (status, errorCode, info) of each connector; index 0 = the whole charge point
        self.status = [("Available", "NoError", None)] * (n + 1)
        self._sent = [None] * (n + 1)
        self._transitions = []  # (connector, status tuple, ticks_ms) while connected
        self._status_changed = asyncio.Event()
        self._reset = None
        self._reset_event = asyncio.Event()

    # --- status (cp.charging decides it) --------------------------------------------------------
    def set_status(self, connector, status, error="NoError", info=None):
        current = (status, error, info)
        if self.status[connector] == current:
            return
        self.status[connector] = current
        self.board.event("status", connector, status)
        if self.rpc is not None and self.registration == "Accepted":
            t = self._transitions
            if len(t) >= MAX_TRANSITIONS:
                t.clear()  # a storm: the current statuses are sent instead
            t.append((connector, current, time.ticks_ms()))
        self._status_changed.set()

    def auth(self):
        """Authorization (cp/core/auth.py), loaded for this use: cards and remote starts are rare next
        to the RAM the module would hold; the cache lives on flash."""
        return lazy.load("cp.core.auth").Auth(self, self.board.flash + charging.AUTH_CACHE)

    def online(self):
        """The connection to call the backend on, or None (not connected, or not Accepted yet)."""
        return self.rpc if self.registration == "Accepted" else None

    def send_later(self, action, payload):
        """Send a non-transaction message if connected and registered; dropped otherwise."""
        rpc = self.online()
        if rpc is not None:
            asyncio.create_task(self.send(rpc, action, payload))

    async def send(self, rpc, action, payload):
        try:
            return await rpc.call(action, payload, self.call_timeout())
        except Exception as e:  # CallError, CallTimeout, ConnectionClosed: not queued by design
            log(action, "failed:", repr(e))

    # --- reset ---------------------------------------------------------------------------------
    def request_reset(self, kind):
        self._reset = kind
        self._reset_event.set()

    async def wait_reset(self):
        await self._reset_event.wait()
        return self._reset

    # --- state for the sim's control socket and the local UI -----------------------------------
    def snapshot(self):
        conns = {}
        s = self.safety
        ch = self.charging
        for c in range(1, len(self.status)):
            tx = ch.tx[c] if ch else None
            conns[c] = {
                "status": self.status[c][0],
                "error": self.status[c][1],
                "transaction_id": self.queue.tx_id(tx.key) if tx is not None else None,
                "cp": s.state(c) if s else None,
                "offered_amps": s.offered_amps(c) if s else 0,
            }
        return {
            "connected": self.rpc is not None,
            "registration": self.registration,
            "authorizing": ch.authorizing if ch else None,
            "connectors": conns,
        }

    # --- one OCPP connection -------------------------------------------------------------------
    async def session(self, rpc):
        """Runs while the connection is up; the link cancels it when the connection ends."""
        self.rpc = rpc
        try:
            if self.registration != "Accepted":
                await lazy.load("cp.core.boot").register(self, rpc)
            elif self.config.get("StatusNotificationOnReconnect"):
                # A backend that restarted knows no status until one changes: tell it all again.
                self.report_all()
            rpc.answer_calls = True
            self._transitions = []  # after a reconnect only the current statuses are sent
            tasks = [asyncio.create_task(self._send_statuses(rpc)), asyncio.create_task(self._heartbeat(rpc))]
            if self.queue is not None:
                tasks.append(asyncio.create_task(self.queue.run(rpc)))
            try:
                await tasks[0]
            finally:
                for t in tasks:
                    t.cancel()
        finally:
            self.rpc = None

    def report_all(self):
        """Report every connector's status again (after BootNotification Accepted)."""
        self._sent = [None] * len(self._sent)

    def set_clock(self, conf):
        t = clock.parse_iso(conf.get("currentTime", ""))
        if t is not None:
            clock.set_utc(t)

    def call_timeout(self):
        return self.config.get("MessageTimeout")

    async def _send_statuses(self, rpc):
        t = self._transitions
        while True:
            self._status_changed.clear()
            while t:
                c, current, at = t[0]
                hold = self.config.get("MinimumStatusDuration") * 1000
                wait = hold - time.ticks_diff(time.ticks_ms(), at)
                if hold and wait > 0:
                    await asyncio.sleep_ms(wait)
                    continue
                t.pop(0)
                if hold and any(x[0] == c for x in t):
                    continue  # did not last MinimumStatusDuration
                await self._send_status(rpc, c, current)
            for c in range(len(self.status)):  # what changed while not connected or not queued
                await self._send_status(rpc, c, self.status[c])
            if not t:
                await self._status_changed.wait()

    async def _send_status(self, rpc, c, current):
        if self._sent[c] == current:
            return
        payload = {"connectorId": c, "status": current[0], "errorCode": current[1], "timestamp": clock.iso()}
        if current[2]:
            payload["info"] = current[2]
        while True:
            try:
                await rpc.call("StatusNotification", payload, self.call_timeout())
                self._sent[c] = current
                return
            except (CallError, CallTimeout) as e:
                log("StatusNotification failed:", e)
                await asyncio.sleep(5)

    async def _heartbeat(self, rpc):
        # A Heartbeat goes out when no other request was sent for HeartbeatInterval seconds.
        while True:
            interval_ms = self.config.get("HeartbeatInterval") * 1000
            if interval_ms <= 0:
                await asyncio.sleep(5)
                continue
            idle = time.ticks_diff(time.ticks_ms(), rpc.last_call_ms)
            if idle < interval_ms:
                await asyncio.sleep_ms(min(interval_ms - idle, 1000))
                continue
            try:
                self.set_clock(await rpc.call("Heartbeat", {}, self.call_timeout()))
            except (CallError, CallTimeout) as e:
                log("Heartbeat failed:", e)

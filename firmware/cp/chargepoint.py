# The charge point: registration (BootNotification), heartbeat and connector status, over
# whatever OCPP connection the link gives it. It outlives connections: registration and the
# last status sent survive a reconnect, so a reconnect sends no new BootNotification and only
# the statuses that changed meanwhile (their current value).
import asyncio
import time

from cp import clock
from log import log
from ocpp.rpc import CallError, CallTimeout
from version import VERSION

BOOT_RETRY_S = 30  # when the backend gives interval 0 for Pending/Rejected: do not flood it

# IEC 61851 pilot state -> OCPP connector status, until the charging logic owns the status.
_STATUS_OF_PILOT = {"A": "Available", "B": "Preparing", "C": "Preparing", "D": "Preparing"}


class ChargePoint:
    def __init__(self, board, config):
        self.board = board
        self.config = config
        self.safety = None  # set by main (the safety loop reports to us: they refer to each other)
        self.link = None  # set by main: handlers ask it to reconnect
        n = board.connectors
        self.registration = None  # None until the first answer, then Accepted / Pending / Rejected
        self.rpc = None  # the live connection, or None
        self.status = ["Available"] * (n + 1)  # index 0 = the whole charge point
        self.error = ["NoError"] * (n + 1)
        self._sent = [None] * (n + 1)
        self._status_changed = asyncio.Event()
        self._reset = None
        self._reset_event = asyncio.Event()

    # --- hardware side -------------------------------------------------------------------------
    def on_pilot(self, connector, state):
        """The safety loop confirmed a new pilot state on a connector."""
        if state in _STATUS_OF_PILOT:
            self.set_status(connector, _STATUS_OF_PILOT[state])
        else:  # E (short to PE) or F (fault / diode): the EV cannot be charged
            self.set_status(connector, "Faulted", "EVCommunicationError")

    def set_status(self, connector, status, error="NoError"):
        if self.status[connector] == status and self.error[connector] == error:
            return
        self.status[connector] = status
        self.error[connector] = error
        self.board.event("status", connector, status)
        self._status_changed.set()

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
        for c in range(1, len(self.status)):
            s = self.safety
            conns[c] = {
                "status": self.status[c],
                "transaction_id": None,
                "cp": s.state(c) if s else None,
                "offered_amps": s.offered_amps(c) if s else 0,
            }
        return {"connected": self.rpc is not None, "registration": self.registration, "connectors": conns}

    # --- one OCPP connection -------------------------------------------------------------------
    async def session(self, rpc):
        """Runs while the connection is up; the link cancels it when the connection ends."""
        self.rpc = rpc
        try:
            if self.registration != "Accepted":
                await self._register(rpc)
            rpc.answer_calls = True
            tasks = (asyncio.create_task(self._send_statuses(rpc)), asyncio.create_task(self._heartbeat(rpc)))
            try:
                await tasks[0]
            finally:
                for t in tasks:
                    t.cancel()
        finally:
            self.rpc = None

    def _boot_payload(self):
        b = self.board
        return {
            "chargePointVendor": b.vendor,
            "chargePointModel": b.model,
            "chargePointSerialNumber": b.serial,
            "chargeBoxSerialNumber": b.serial,
            "firmwareVersion": VERSION,
        }

    async def _register(self, rpc):
        # Nothing but BootNotification is sent until Accepted. While Pending the backend's calls
        # are answered; while Rejected they are not (OCPP 1.6 section 4.2).
        while True:
            try:
                conf = await rpc.call("BootNotification", self._boot_payload(), self._call_timeout())
            except (CallError, CallTimeout) as e:
                log("BootNotification failed:", e)
                await asyncio.sleep(BOOT_RETRY_S)
                continue
            self.registration = conf["status"]
            self._set_clock(conf)
            interval = conf["interval"]
            log("registration", self.registration, "interval", interval)
            if self.registration == "Accepted":
                if interval > 0:
                    self.config.change("HeartbeatInterval", str(interval), by_backend=False)
                self._sent = [None] * len(self._sent)  # a fresh boot reports every connector
                return
            rpc.answer_calls = self.registration != "Rejected"
            await asyncio.sleep(interval if interval > 0 else BOOT_RETRY_S)

    def _set_clock(self, conf):
        t = clock.parse_iso(conf.get("currentTime", ""))
        if t is not None:
            clock.set_utc(t)

    def _call_timeout(self):
        return self.config.get("MessageTimeout")

    async def _send_statuses(self, rpc):
        while True:
            self._status_changed.clear()
            for c in range(len(self.status)):
                current = (self.status[c], self.error[c])
                if self._sent[c] == current:
                    continue
                payload = {
                    "connectorId": c,
                    "status": current[0],
                    "errorCode": current[1],
                    "timestamp": clock.iso(),
                }
                try:
                    await rpc.call("StatusNotification", payload, self._call_timeout())
                    self._sent[c] = current
                except (CallError, CallTimeout) as e:
                    log("StatusNotification failed:", e)
                    await asyncio.sleep(5)
                    self._status_changed.set()  # try again
            await self._status_changed.wait()

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
                self._set_clock(await rpc.call("Heartbeat", {}, self._call_timeout()))
            except (CallError, CallTimeout) as e:
                log("Heartbeat failed:", e)

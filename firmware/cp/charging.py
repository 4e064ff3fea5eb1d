# Charging sessions: what happens on each connector between the safety loop (pilot, contactor,
# faults) and the backend (transactions, meter values, status). One task runs it all:
#   - the safety loop's callbacks only note what changed (they run inside the 20 ms loop and
#     must not wait for flash or network); this task acts on the notes;
#   - cards from the reader, identification waiting for a plug (ConnectionTimeOut), sampled
#     and clock-aligned meter values, meter health, reservations' expiry, the charging
#     profiles' limit (cp/smart/profiles.py) and the status of every connector.
# Transaction messages go through the journal (cp/txqueue.py) before they are sent; a running
# transaction is mirrored in a small file per connector (TX_DIR) so that after a power cut it is
# stopped with reason PowerLoss and its last known meter reading.
import asyncio
import os
import time

import lazy
from cp import clock
from evse import safety as sl
from log import log
from store import atomic

TICK_MS = 200
TX_DIR = "/tx"
AVAIL_FILE = "/availability.json"
AUTH_CACHE = "/auth_cache.json"  # cp/core/auth_cache.py
RESERVATIONS = "/reservations.json"  # cp/reservation/reservations.py
METER_CHECK_MS = 1000
PROFILE_DIR = "/profiles"  # cp/smart/profiles.py's profile store

# (fault bit, StatusNotification errorCode), the first that is set wins. The safety loop owns the
# first four; the meter is watched here.
FAULT_METER = 16
_ERROR_OF_FAULT = (
    (sl.FAULT_RCD, "GroundFailure"),
    (sl.FAULT_WELD, "PowerSwitchFailure"),
    (sl.FAULT_LOCK, "ConnectorLockFailure"),
    (sl.FAULT_OVERTEMP, "HighTemperature"),
    (FAULT_METER, "PowerMeterFailure"),
)
_PLUGGED = ("B", "C", "D")
_PILOT_FAULT = ("E", "F")


class Tx:
    """A running transaction on one connector (mirrored in TX_DIR/<c>.json)."""

    def __init__(self, key, tag, parent, start_s, wh0, reservation=None):
        # Saved as they are (__dict__) in TX_DIR/<c>.json: cp/core/power_loss.py reads key, tag, wh,
        # t and data.
        self.key = key  # local key: the journal seq of its StartTransaction (cp/txqueue.py)
        self.tag = tag
        self.parent = parent
        self.start_s = start_s
        self.wh0 = wh0
        self.wh = wh0  # last meter reading, for a stop without a meter (power loss, meter fault)
        self.t = start_s  # when wh was read
        self.reservation = reservation
        self.invalid = False  # the backend did not accept the tag: energy suspended
        self.next_sample = 0  # epoch s of the next Sample.Periodic
        self.data = []  # transactionData (StopTxnSampledData / StopTxnAlignedData)


class Charging:
    def __init__(self, cp, board, config, safety, queue):
        self.cp = cp
        self.board = board
        self.config = config
        self.safety = safety
        self.queue = queue
        n = board.connectors
        self.n = n
        flash = board.flash
        self._tx_dir = flash + TX_DIR
        self.avail_path = flash + AVAIL_FILE
        atomic.makedirs(self._tx_dir)
        self.tx = [None] * (n + 1)
        self.finishing = [False] * (n + 1)  # a transaction ended, the cable is still in
        self.unlock_after_stop = [False] * (n + 1)  # unlock once the contactor is open
        self.deauth = [None] * (n + 1)  # DeAuthorized: (tag, parent) whose card unlocks the cable
        # EV unplugged, transaction kept (StopTransactionOnEVSideDisconnect false)
        self.ev_gone = [False] * (n + 1)
        self.meter_fault = [False] * (n + 1)
        self.inoperative = atomic.read_json(self.avail_path, None) or [False] * (n + 1)
        if len(self.inoperative) != n + 1:
            self.inoperative = [False] * (n + 1)
        # Identified, waiting for a plug: [tag, idTagInfo, deadline_ms, fixed, reservationId,
        # TxProfile] per connector; a card's (not fixed) goes to whichever free connector is
        # plugged first.
        self.pending = [None] * (n + 1)
        self.reader_failed = False
        # The card being identified (cp/core/cards.py: Authorize may wait MessageTimeout for the
        # backend) runs as its own task, so the tick goes on for every connector meanwhile; the
        # reader's next card waits for it. `authorizing` is its idTag (the snapshot shows it).
        self._card = None
        self.authorizing = None
        self._notes = []  # (connector, pilot state or None for a fault) from the safety loop
        self._wake = asyncio.Event()
        self._busy = [False] * (n + 1)  # a start is being set up on this connector
        self._next_aligned = None
        self._meter_check_ms = 0
        # Waits for epoch seconds on every tick in ticks, not in heap integers (cp/clock.py):
        # Sample.Periodic per connector, Sample.Clock, the profiles' next evaluation.
        self._sample_wait = [clock.Due() for _ in range(n + 1)]
        self._aligned_wait = clock.Due()
        self._limits_wait = clock.Due()
        # cp/reservation/reservations.py Reservations while something is reserved (kept on flash), else None:
        # the module is not even loaded without reservations.
        items = atomic.read_json(flash + RESERVATIONS, None)
        self.reservations = (
            lazy.load("cp.reservation.reservations").Reservations(self, items) if items else None
        )
        # Smart charging: the profiles' limit per connector (None: no limit) and when to evaluate
        # them next (epoch s; None while no profile is installed).
        self.limit = [None] * (n + 1)
        try:
            self.smart_due = 0 if os.listdir(flash + PROFILE_DIR) else None
        except OSError:
            self.smart_due = None

    # --- from the safety loop (runs inside its iteration: note and return) ----------------------
    def on_pilot(self, c, state):
        self._notes.append((c, state))
        self._wake.set()

    def on_fault(self, c, bit, active):
        self._notes.append((c, None))
        self._wake.set()

    # --- the task -----------------------------------------------------------------------------
    async def run(self):
        self._apply_settings()
        while True:
            try:
                await asyncio.wait_for_ms(self._wake.wait(), TICK_MS)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            try:
                await self._tick()
            except Exception as e:  # one bad tick must not end charging for good
                log("charging: tick failed", repr(e))

    def _apply_settings(self):
        cfg = self.config
        self.safety.set_max(cfg.get("MaxCurrent"))
        self.safety.ventilation = cfg.get("ChargingInStateDAllowed")

    # --- smart charging (cp/smart/profiles.py, loaded for each evaluation) -------------------------------
    def offer_amps(self, c):
        """What connector c may offer: MaxCurrent, or the charging profiles' limit when lower
        (below 6 A the safety loop offers nothing: SuspendedEVSE)."""
        cap = self.config.get("MaxCurrent")
        lim = self.limit[c]
        return cap if lim is None or lim > cap else lim

    def _check_limits(self):
        due = self.smart_due
        if due is not None and self._limits_wait.reached(due) is not None:
            lazy.load("cp.smart.profiles").apply_limits(self)

    def limits_changed(self):
        """Profiles were set or cleared, or a transaction started or ended: evaluate now."""
        self.smart_due = 0

    def on_config(self, name, value):
        if name in ("MaxCurrent", "ChargingInStateDAllowed"):
            self._apply_settings()
        elif name == "ClockAlignedDataInterval":
            self._next_aligned = None

    async def _tick(self):
        notes = self._notes
        while notes:
            c, state = notes.pop(0)
            if state is not None:
                await self._on_pilot(c, state)
        await self._read_card()
        now_ms = time.ticks_ms()
        for c in range(1, self.n + 1):
            p = self.pending[c]
            if p is not None and time.ticks_diff(now_ms, p[2]) >= 0:
                log("charging: ConnectionTimeOut for", p[0])
                self.pending[c] = None
        if time.ticks_diff(now_ms, self._meter_check_ms) >= 0:
            self._meter_check_ms = time.ticks_add(now_ms, METER_CHECK_MS)
            self._check_meters()
        for c in range(1, self.n + 1):
            self._check_faults(c)
            self._after_stop(c)
            tx = self.tx[c]
            if tx is not None:
                self._sample(c, tx)
                self._check_invalid_energy(c, tx)
        self._aligned()
        self._check_limits()
        self.publish_status()

    # --- pilot ----------------------------------------------------------------------------------
    async def _on_pilot(self, c, state):
        tx = self.tx[c]
        if state == "A":
            self.deauth[c] = None
            if tx is not None:
                if self.config.get("StopTransactionOnEVSideDisconnect"):
                    self.stop(c, "EVDisconnected")
                    if not self.config.get("UnlockConnectorOnEVSideDisconnect"):
                        self.unlock_after_stop[c] = False
                else:
                    self.ev_gone[c] = True  # the transaction goes on; the cable stays locked
            else:
                self.finishing[c] = False
                self.unlock_after_stop[c] = True
            if self.config.get("FreeCharging"):
                self.safety.allow(c, False)
        elif state in _PLUGGED:
            if tx is not None:
                self.ev_gone[c] = False
                return
            p = self.waiting_for(c)
            if p is not None:
                await self.start(c, p[0], p[1], p[4], p[5])
            elif self.config.get("FreeCharging") and self.free(c):
                s = self.safety
                s.lock(c, True)
                s.offer(c, self.config.get("MaxCurrent"))
                s.allow(c, True)

    def free(self, c):
        """Connector c may start a transaction now."""
        return (
            self.tx[c] is None
            and not self._busy[c]
            and not self.inoperative[0]
            and not self.inoperative[c]
            and not self.fault_bits(c)
        )

    def waiting_for(self, c):
        """The identification a plug on c takes (its own, else a card's waiting elsewhere), or None."""
        if not self.free(c):
            return None
        pending = self.pending
        i = c
        if pending[c] is None:
            i = 1
            while i <= self.n and (pending[i] is None or pending[i][3] or self.plugged(i)):
                i += 1
            if i > self.n:
                return None
            r = self.reservations
            if r is not None and not r.may_move(pending[i], c):
                return None  # c is held for a reservation this identification does not have
        p = pending[i]
        pending[i] = None
        return p

    def plugged(self, c):
        return self.safety.state(c) in _PLUGGED

    # --- cards ------------------------------------------------------------------------------------
    async def _read_card(self):
        if self._card is not None and not self._card.done():
            return  # one card at a time: the next one stays at the reader
        try:
            tag = self.board.rfid_read()
            self.reader_failed = False
        except Exception as e:
            if not self.reader_failed:
                log("charging: reader failed", repr(e))
            self.reader_failed = True
            return
        if tag:
            self.board.event("card", 0, tag)
            self._card = asyncio.create_task(self._present(tag))

    async def _present(self, tag):
        self.authorizing = tag
        try:
            await lazy.load("cp.core.cards").present(self, tag)
        except Exception as e:  # a failed card must not end the reader for good
            log("charging: card", tag, "failed:", repr(e))
        finally:
            self.authorizing = None
            self.publish_status()

    # --- transactions (cp/core/session.py, loaded for each start and stop) -----------------------------
    async def start(self, c, tag, info, reservation=None, profile=None):
        """Start a transaction on c for an accepted idTag (with a RemoteStartTransaction's
        TxProfile): True once it runs."""
        if not self.free(c):
            return False
        self._busy[c] = True
        try:
            return await lazy.load("cp.core.session").start(self, c, tag, info, reservation, profile)
        finally:
            self._busy[c] = False
            self.publish_status()

    def stop(self, c, reason, tag=None):
        """End connector c's transaction (PWM off, StopTransaction journaled): False if none."""
        if self.tx[c] is None:
            return False
        lazy.load("cp.core.session").stop(self, c, reason, tag)
        self.publish_status()
        return True

    def on_conf(self, action, payload, conf):
        """A transaction message was confirmed (cp/txqueue.py): its idTagInfo goes to the cache;
        a StartTransaction the backend refused is handled by cp/core/session.py."""
        info = conf.get("idTagInfo")
        if info is None:
            return
        tag = payload.get("idTag")
        local_list = self.cp.local_list
        listed = local_list.get(tag) if tag and local_list is not None else None
        if listed is not None and action == "StartTransaction":  # LocalListConflict (§3.5.3)
            lazy.load("cp.localauth.local_list").report_conflict(self.cp, listed, info)
        if tag and self.config.get("AuthorizationCacheEnabled") and listed is None:
            # Only the cache, not the authorization rules: list entries are never cached.
            lazy.load("cp.core.auth_cache").Cache(self.cp.board.flash + AUTH_CACHE).put(tag, info)
        if action == "StartTransaction" and info.get("status") != "Accepted":
            lazy.load("cp.core.session").refused(self, payload, info)

    def _check_invalid_energy(self, c, tx):
        # StopTransactionOnInvalidId with MaxEnergyOnInvalidId: charge up to that energy, then stop.
        if tx.invalid and self.config.get("StopTransactionOnInvalidId"):
            wh = self.energy(c)
            if wh is None or wh - tx.wh0 >= self.config.get("MaxEnergyOnInvalidId"):
                self.stop(c, "DeAuthorized")

    def _after_stop(self, c):
        s = self.safety
        if self.unlock_after_stop[c] and not s.live(c):
            self.unlock_after_stop[c] = False
            s.lock(c, False)
        if self.finishing[c] and not self.plugged(c):
            self.finishing[c] = False

    # --- faults -------------------------------------------------------------------------------------
    def fault_bits(self, c):
        return self.safety.faults(c) | (FAULT_METER if self.meter_fault[c] else 0)

    def _check_meters(self):
        for c in range(1, self.n + 1):
            if self.board.meter(c) is None:
                continue
            bad = self.energy(c) is None
            if bad != self.meter_fault[c]:
                self.meter_fault[c] = bad
                self.board.event("fault" if bad else "fault_clear", c, "meter")

    def _check_faults(self, c):
        if self.fault_bits(c):
            self.pending[c] = None  # it could not start here
            if self.tx[c] is not None:
                self.stop(c, "Other")

    # --- meter values -----------------------------------------------------------------------------
    def add_data(self, tx, mv):
        data = tx.data
        data.append(mv)
        if len(data) > self.config.get("StopTransactionMaxMeterValues"):
            # Thin the middle, keep Transaction.Begin (first) and the newest.
            del data[1 : len(data) - 1 : 2]

    def energy(self, c):
        """The energy register of connector c's meter; 0 on a board without a meter, None when
        the meter does not answer."""
        meter = self.board.meter(c)
        if meter is None:
            return 0
        try:
            return meter.read()["energy_wh"]
        except OSError:
            return None

    def _sample(self, c, tx):
        # Sample.Periodic every MeterValueSampleInterval from the transaction's start.
        interval = self.config.get("MeterValueSampleInterval")
        if interval <= 0:
            tx.next_sample = 0
            return
        if tx.next_sample == 0:
            tx.next_sample = clock.now() + interval
            return
        now = self._sample_wait[c].reached(tx.next_sample)
        if now is None:
            return
        ts = tx.next_sample
        tx.next_sample = ts + interval
        if tx.next_sample <= now:  # fell behind (clock jump): the next one from now
            tx.next_sample = now + interval
        self._measure(c, tx, ts, "Sample.Periodic", "MeterValuesSampledData", "StopTxnSampledData")

    def _aligned(self):
        # Sample.Clock every ClockAlignedDataInterval from midnight, on every connector; without a
        # transaction the values are sent if online, not journaled.
        interval = self.config.get("ClockAlignedDataInterval")
        if interval <= 0:
            self._next_aligned = None
            return
        ts = self._next_aligned
        now = clock.now() if ts is None else self._aligned_wait.reached(ts)
        if now is None:
            return
        self._next_aligned = lazy.load("cp.core.metering").next_aligned(now, interval)
        if ts is None:  # just switched on: the first boundary is ahead
            return
        for c in range(1, self.n + 1):
            self._measure(c, self.tx[c], ts, "Sample.Clock", "MeterValuesAlignedData", "StopTxnAlignedData")

    def _measure(self, c, tx, ts, context, key, stop_key):
        """One meter reading at ts: a MeterValues message of the measurands of `key`, and the
        transactionData entry of those of `stop_key`."""
        meter = self.board.meter(c)
        if meter is None:
            return
        offered = self.safety.offered_amps(c)
        metering = lazy.load("cp.core.metering")  # for this reading only (every sample interval)
        try:
            reading = meter.read()
            mv = metering.meter_value(self.board, c, self.config.get(key), context, offered, ts, reading)
            payload = {"connectorId": c, "meterValue": [mv]}
            if tx is None:
                self.cp.send_later("MeterValues", payload)
                return
            stop_measurands = self.config.get(stop_key)
            if stop_measurands:
                self.add_data(
                    tx, metering.meter_value(self.board, c, stop_measurands, context, offered, ts, reading)
                )
        except OSError:  # the meter did not answer: its fault is reported by _check_meters
            return
        tx.wh = reading["energy_wh"]
        tx.t = ts
        # Saved first: a power cut between the two loses this sample, never dates the
        # PowerLoss StopTransaction before a MeterValues already sent.
        self.save(c)
        self.queue.push("MeterValues", payload, tx.key)

    # --- status -----------------------------------------------------------------------------------
    def status_of(self, c):
        """(status, errorCode, info) of connector c (0: the charge point)."""
        if c == 0:
            error = "ReaderFailure" if self.reader_failed else "NoError"
            return ("Unavailable" if self.inoperative[0] else "Available"), error, None
        bits = self.fault_bits(c)
        if bits:
            for bit, code in _ERROR_OF_FAULT:
                if bits & bit:
                    return "Faulted", code, None
        pilot = self.safety.state(c)
        warn = "EVCommunicationError" if pilot in _PILOT_FAULT else "NoError"
        tx = self.tx[c]
        if tx is not None:
            if self.ev_gone[c] or pilot == "A":
                return "SuspendedEV", "NoError", "EV side disconnected"
            if self.safety.offered_amps(c) == 0:  # refused tag, limit below 6 A, not allowed
                return "SuspendedEVSE", warn, None
            if pilot == "B":  # offered, but the EV does not ask for energy
                return "SuspendedEV", warn, None
            return "Charging", warn, None  # C/D with the PWM on: the contactor closes within ~0.1 s
        if self.inoperative[0] or self.inoperative[c]:
            return "Unavailable", "NoError", None
        if self.finishing[c]:
            return "Finishing", warn, None
        if self.safety.relay_closed(c):  # FreeCharging: energy without a transaction
            return "Charging", warn, None
        if self.pending[c] is not None:  # identified (the reserved idTag too): waiting for a plug
            return "Preparing", warn, None
        r = self.reservations
        if r is not None and r.reserved(c):
            return "Reserved", warn, None
        if pilot in _PLUGGED or pilot in _PILOT_FAULT:
            return "Preparing", warn, None
        return "Available", warn, None

    def publish_status(self):
        if self.reservations is not None:  # first: a reservation ending now is not reported Reserved
            self.reservations.check()
        for c in range(self.n + 1):
            status, error, info = self.status_of(c)
            self.cp.set_status(c, status, error, info)

    # --- persistence ------------------------------------------------------------------------------
    def tx_path(self, c):
        return "%s/%d.json" % (self._tx_dir, c)

    def save(self, c):
        atomic.write_json(self.tx_path(c), self.tx[c].__dict__)  # what cp/core/power_loss.py reads

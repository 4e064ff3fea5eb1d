# The safety loop: samples each connector's control pilot every PERIOD_MS, decodes the IEC state,
# debounces it and reports confirmed changes. It owns the PWM and the contactor: it never waits
# for the network or the flash, and its steady state allocates nothing (preallocated burst
# buffer, integer millivolts, per-connector state in fixed lists), so a GC pause caused by
# others is the only delay it sees.
#
# This version keeps every contactor open; one that someone else closed is opened as soon as
# the EV leaves C/D (at once when the pilot is not in C/D). offer(c, amps) sets the PWM
# (clamped to the cable's PP rating), applied while an EV is connected (B, C, D).
import asyncio
import time
from array import array

from micropython import const

from evse import pilot
from log import log

PERIOD_MS = const(20)
STABLE_MS = const(100)  # a non-urgent change (A->B, B<->C, ...) must hold this long
BURST_SAMPLES = const(100)
_E_LOW_MV = const(-1500)  # a positive plateau above this is a resistor state, not our own -12 V

# Tuples at module level: `x in ("B", "C")` inside a function would build a tuple per call.
_CONNECTED = ("B", "C", "D")
_DRAWING = ("C", "D")
_URGENT = ("A", "E", "F")  # unplug, short, fault: confirmed by an immediate second burst


class SafetyLoop:
    def __init__(self, board, on_change=None, max_amps=32, samples=BURST_SAMPLES):
        n = board.connectors
        self._b = board
        self._n = n
        self._on_change = on_change
        self._max = max_amps
        self._buf = array("h", bytes(2 * samples))
        self._pl = array("i", bytes(8))
        slots = n + 1  # index 0 unused: connectors are numbered from 1
        self._state = [None] * slots  # confirmed state; None until the first reading
        self._cand = [None] * slots  # state seen but not yet confirmed
        self._cand_ms = [0] * slots
        self._duty = [pilot.NOT_OFFERING] * slots
        self._offer = [0] * slots  # amps asked for by offer()
        self._cable = [0] * slots  # PP rating of the plugged cable, 0 = none
        self._diode_bad = [False] * slots  # latched until the EV is unplugged (A) or E
        self._diode_seen_bad = [False] * slots  # the last burst failed the diode check
        self._failing = [False] * slots  # the hardware raised on the last iteration
        self.iterations = 0
        self.last_us = 0  # duration of the last iteration (all connectors)
        self.max_us = 0

    # ---- what the charging logic uses ----

    def state(self, c):
        """Confirmed pilot state "A".."F" of connector c (None before the first reading)."""
        return self._state[c]

    def diode_ok(self, c):
        """False once a diode fault was seen on c; it stays so until the EV is unplugged."""
        return not self._diode_bad[c]

    def cable_amps(self, c):
        return self._cable[c]

    def offer(self, c, amps):
        """Offer up to `amps` on connector c (0 or None: stop offering, PWM steady +12 V).

        The duty is clamped to the cable's PP rating and max_amps; below 6 A nothing is offered.
        """
        if c < 1 or c > self._n:
            raise ValueError("no connector %r" % (c,))
        self._offer[c] = amps or 0
        self._apply(c)

    def offered_amps(self, c):
        """The current the EV reads from the PWM now driven on c (0 = not offering)."""
        return pilot.permille_to_amps(self._duty[c])

    def duty(self, c):
        return self._duty[c]

    # ---- the loop ----

    def start(self):
        """Drive every output to its safe state: not offering, contactor open."""
        c = 1
        while c <= self._n:
            self._duty[c] = pilot.NOT_OFFERING
            self._b.pilot(c).set_duty(pilot.NOT_OFFERING)
            self._b.relay(c).set(False)
            c += 1

    async def run(self):
        self.start()
        # A board with a watchdog feeds it only while this loop checks in (hal/watchdog.py).
        alive = getattr(self._b, "alive", None)
        while True:
            t0 = time.ticks_us()
            self.step()
            if alive is not None:
                alive("safety")
            dt = time.ticks_diff(time.ticks_us(), t0)
            self.last_us = dt
            if dt > self.max_us:
                self.max_us = dt
            wait = PERIOD_MS - dt // 1000
            await asyncio.sleep_ms(wait if wait > 1 else 1)

    def step(self):
        """One iteration over all connectors (the loop body; tests call it directly)."""
        c = 1
        while c <= self._n:
            try:
                self._step(c)
                self._failing[c] = False
            except Exception as e:  # a broken reading must never stop the loop: fail safe
                self._b.relay(c).set(False)
                if not self._failing[c]:  # once per episode, not every 20 ms
                    log("safety: connector", c, "error", e)
                self._failing[c] = True
            c += 1
        self.iterations += 1

    def _read(self, c):
        self._b.pilot(c).burst(self._buf)
        pl = pilot.plateaus(self._buf, self._pl)
        pwm = pilot.pwm_on(self._duty[c])
        raw = pilot.classify(pl[0], pl[1], pwm, self._state[c])
        if pwm:
            self._diode_seen_bad[c] = raw == "F" and pl[0] >= _E_LOW_MV
        elif self._diode_bad[c] and raw in _CONNECTED:
            raw = "F"  # no negative phase to re-check: keep the latched diode fault
        return raw

    def _step(self, c):
        raw = self._read(c)
        cur = self._state[c]
        if cur not in _DRAWING:
            relay = self._b.relay(c)
            if relay.value:  # closed by someone outside C/D: the contactor is ours, open it
                relay.set(False)
        if raw == cur:
            self._cand[c] = None
            return
        now = time.ticks_ms()
        if raw != self._cand[c]:
            self._cand[c] = raw
            self._cand_ms[c] = now
        if cur is None or raw in _URGENT or (cur in _DRAWING and self._b.relay(c).value):
            # Leaving C/D under load or losing the EV: confirm now with a second burst instead
            # of waiting STABLE_MS, so the contactor opens within one loop period.
            if self._read(c) == raw:
                self._confirm(c, raw)
            return
        if time.ticks_diff(now, self._cand_ms[c]) >= STABLE_MS:
            self._confirm(c, raw)

    def _confirm(self, c, new):
        old = self._state[c]
        self._state[c] = new
        self._cand[c] = None
        relay = self._b.relay(c)
        if relay.value and new not in _DRAWING:
            relay.set(False)  # IEC 61851-1 Table A.6: off within 100 ms of leaving C/D
        if new == "A" or new == "E":
            self._diode_bad[c] = False
            self._cable[c] = 0
        elif new == "F":
            if self._diode_seen_bad[c]:
                self._diode_bad[c] = True
        elif old is None or old == "A" or old == "E":
            self._read_cable(c)
        self._apply(c)
        self._b.event("cp", c, new)
        if self._on_change is not None:
            try:
                self._on_change(c, new)
            except Exception as e:
                log("safety: on_change failed", e)

    def _read_cable(self, c):
        if self._b.fixed_cable:
            self._cable[c] = self._max
        else:
            self._cable[c] = pilot.cable_amps(self._b.proximity(c).read_ohms())

    def _apply(self, c):
        want = pilot.NOT_OFFERING
        if self._state[c] in _CONNECTED:
            amps = self._offer[c]
            if amps > self._cable[c]:
                amps = self._cable[c]
            if amps > self._max:
                amps = self._max
            want = pilot.amps_to_permille(amps)
        if want != self._duty[c]:
            self._duty[c] = want
            self._b.pilot(c).set_duty(want)

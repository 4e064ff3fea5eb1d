# The safety loop: samples each connector's control pilot every PERIOD_MS, decodes the IEC state,
# debounces it and reports confirmed changes. It owns the PWM, the contactor and the fault
# monitors (residual current, contactor weld, socket lock, temperature): it never waits for the
# network or the flash, and its steady state allocates nothing (preallocated burst buffer,
# integer millivolts, per-connector state in fixed lists), so a GC pause caused by others is the
# only delay it sees.
#
# The charging logic only gives permission (allow), a current (offer, set_max) and lock commands;
# this loop decides, every iteration, what the PWM and the contactor do (IEC 61851-1 Annex A):
# - PWM offers current only to a connected EV (B, C, D; D only with ventilation), while allowed
#   and free of faults; otherwise steady +12 V (x1).
# - The contactor closes only in C (D with ventilation) with the PWM on, the diode checked on this
#   iteration's burst, no faults and the socket lock confirmed. It opens in the iteration that
#   confirms the EV left C/D, a diode fault or any fault; when only the PWM stopped, the EV gets
#   PWM_OFF_MS to stop drawing (it opens at once when the EV goes to B).
import asyncio
import time
from array import array

from micropython import const

from evse import pilot
from log import log

PERIOD_MS = const(20)
STABLE_MS = const(100)  # a non-urgent change (A->B, B<->C, ...) must hold this long
BURST_SAMPLES = const(100)
PWM_OFF_MS = const(6000)  # Table A.6 seq. 10.2: PWM stopped, EV still in C: open under load after 6 s
WELD_MS = const(300)  # the contactor's auxiliary contact must read open this long after opening
LOCK_MS = const(1000)  # the lock's position switch must follow the command within this
TEMP_PERIOD_MS = const(1000)  # temperature sensors are slow: read once a second
OVERTEMP_C = const(85)
OVERTEMP_CLEAR_C = const(75)
_E_LOW_MV = const(-1500)  # a positive plateau above this is a resistor state, not our own -12 V

# Fault bits (the same as the sim's `f` push).
FAULT_RCD = const(1)
FAULT_WELD = const(2)
FAULT_LOCK = const(4)
FAULT_OVERTEMP = const(8)
_FAULT_NAMES = {FAULT_RCD: "rcd", FAULT_WELD: "weld", FAULT_LOCK: "lock", FAULT_OVERTEMP: "overtemp"}

# Tuples at module level: `x in ("B", "C")` inside a function would build a tuple per call.
_CONNECTED = ("B", "C", "D")
_DRAWING = ("C", "D")
_URGENT = ("A", "E", "F")  # unplug, short, fault: confirmed by an immediate second burst


class SafetyLoop:
    def __init__(self, board, on_change=None, max_amps=32, samples=BURST_SAMPLES, on_fault=None):
        n = board.connectors
        self._b = board
        self._n = n
        self._on_change = on_change
        self._on_fault = on_fault
        self._hw_max = max_amps  # the charger's rating (and a fixed cable's)
        self._max = max_amps  # installation maximum (set_max), never above the rating
        self._temp = getattr(board, "temperature_c", None)
        self._buf = array("h", bytes(2 * samples))
        self._pl = array("i", bytes(8))
        slots = n + 1  # index 0 unused: connectors are numbered from 1
        self._state = [None] * slots  # confirmed state; None until the first reading
        self._cand = [None] * slots  # state seen but not yet confirmed
        self._cand_ms = [0] * slots
        self._duty = [pilot.NOT_OFFERING] * slots
        self._offer = [0] * slots  # amps asked for by offer()
        self._amps = [0] * slots  # the last clamped offer ...
        self._permille = [pilot.NOT_OFFERING] * slots  # ... and its duty
        self._allowed = [False] * slots
        self._cable = [0] * slots  # PP rating of the plugged cable, 0 = none
        self._diode_bad = [False] * slots  # latched until the EV is unplugged (A) or E
        self._diode_seen_bad = [False] * slots  # the last burst failed the diode check
        self._checked = [False] * slots  # the last burst ran with PWM on: the diode was checked
        self._failing = [False] * slots  # the hardware raised on the last iteration
        self._faults = bytearray(slots)
        self._pwm_off_ms = [0] * slots  # when the PWM last stopped
        self._weld_ms = [0] * slots  # last time the contactor was closed or read open
        self._lock_cmd = [False] * slots
        self._lock_ms = [0] * slots  # last time the lock's feedback matched the command
        self._temp_ms = [None] * slots  # last temperature reading, None = never
        self.ventilation = False  # ChargingInStateDAllowed: the site ventilates, D may charge
        self.clock = time.ticks_ms  # ticks_ms-like time source (tests replace it)
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

        The duty is clamped to the cable's PP rating, max_amps and set_max(); below 6 A nothing
        is offered. It is driven only while allowed, an EV is connected and no fault is active.
        """
        self._check(c)
        self._offer[c] = amps or 0
        self._apply(c, self.clock())

    def allow(self, c, on):
        """Charging permission on c (authorized and not suspended, or free charging)."""
        self._check(c)
        self._allowed[c] = bool(on)
        self._apply(c, self.clock())

    def set_max(self, amps):
        """Installation maximum current (MaxCurrent) for every connector; None: the rating."""
        self._max = self._hw_max if amps is None else amps
        c = 1
        while c <= self._n:
            self._apply(c, self.clock())
            c += 1

    def offered_amps(self, c):
        """The current the EV reads from the PWM now driven on c (0 = not offering)."""
        return pilot.permille_to_amps(self._duty[c])

    def duty(self, c):
        return self._duty[c]

    def lock(self, c, on):
        """Lock (True) or release the socket's cable lock; nothing with a fixed cable.
        Releasing it while the contactor is closed opens the contactor first."""
        self._check(c)
        if self._b.fixed_cable:
            return
        on = bool(on)
        if not on:
            self._open(c)
            if self.live(c):
                return  # a welded contactor: the plug stays locked while the socket may be live
        self._b.lock(c).set(on)
        if on != self._lock_cmd[c]:
            self._lock_cmd[c] = on
            self._lock_ms[c] = self.clock()  # the lock gets LOCK_MS from now to get there

    def locked(self, c):
        """The lock's position switch says locked (the command when there is no switch);
        always True with a fixed cable."""
        if self._b.fixed_cable:
            return True
        fb = self._b.lock(c).feedback
        return self._lock_cmd[c] if fb is None else fb

    def relay_closed(self, c):
        """The contactor is commanded closed."""
        return self._b.relay(c).value

    def live(self, c):
        """The socket may carry mains: the contactor is commanded closed, its feedback reads
        closed (still releasing, or welded), or it was found welded."""
        relay = self._b.relay(c)
        return relay.value or relay.feedback is True or self._faults[c] & FAULT_WELD != 0

    def faults(self, c):
        """Active fault bits of c (FAULT_RCD | FAULT_WELD | FAULT_LOCK | FAULT_OVERTEMP)."""
        return self._faults[c]

    def _check(self, c):
        if c < 1 or c > self._n:
            raise ValueError("no connector %r" % (c,))

    # ---- the loop ----

    def start(self):
        """Drive every output to its safe state: not offering, contactor open, socket unlocked."""
        now = self.clock()
        c = 1
        while c <= self._n:
            self._duty[c] = pilot.NOT_OFFERING
            self._b.pilot(c).set_duty(pilot.NOT_OFFERING)
            self._b.relay(c).set(False)
            if not self._b.fixed_cable:
                self._b.lock(c).set(False)
            self._lock_cmd[c] = False
            self._lock_ms[c] = now
            self._weld_ms[c] = now
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
                self._open(c)
                if not self._failing[c]:  # once per episode, not every 20 ms
                    log("safety: connector", c, "error", e)
                self._failing[c] = True
            c += 1
        self.iterations += 1

    def _step(self, c):
        now = self.clock()
        raw = self._read(c)
        if raw is not None:  # None: a burst the loop was held up in decides nothing
            self._debounce(c, raw, now)
        self._monitor(c, now)
        self._apply(c, now)
        self._drive_relay(c, now)

    def _read(self, c):
        """The pilot state one burst shows, or None when the burst was disturbed (hal/pilot.py):
        its samples may lack a whole plateau, so they must not look like E or F."""
        if self._b.pilot(c).burst(self._buf) is False:
            return None
        pl = pilot.plateaus(self._buf, self._pl)
        pwm = pilot.pwm_on(self._duty[c])
        self._checked[c] = pwm
        raw = pilot.classify(pl[0], pl[1], pwm, self._state[c])
        if pwm:
            self._diode_seen_bad[c] = raw == "F" and pl[0] >= _E_LOW_MV
        elif self._diode_bad[c] and raw in _CONNECTED:
            raw = "F"  # no negative phase to re-check: keep the latched diode fault
        return raw

    def _debounce(self, c, raw, now):
        cur = self._state[c]
        if raw == cur:
            self._cand[c] = None
            return
        if raw != self._cand[c]:
            self._cand[c] = raw
            self._cand_ms[c] = now
        if cur is None or raw in _URGENT or (cur in _DRAWING and self._b.relay(c).value):
            # Leaving C/D under load or losing the EV: confirm now with a second burst instead
            # of waiting STABLE_MS, so the contactor opens within one loop period.
            if self._read(c) == raw:
                self._confirm(c, raw, now)
            return
        if time.ticks_diff(now, self._cand_ms[c]) >= STABLE_MS:
            self._confirm(c, raw, now)

    def _confirm(self, c, new, now):
        old = self._state[c]
        self._state[c] = new
        self._cand[c] = None
        if not self._may_draw(new):
            self._open(c)  # IEC 61851-1 Table A.6: off within 100 ms of leaving C/D
        if new == "A" or new == "E":
            self._diode_bad[c] = False
            self._cable[c] = 0
        elif new == "F":
            if self._diode_seen_bad[c]:
                self._diode_bad[c] = True
        elif old is None or old == "A" or old == "E":
            self._read_cable(c)
        self._apply(c, now)
        self._b.event("cp", c, new)
        if self._on_change is not None:
            try:
                self._on_change(c, new)
            except Exception as e:
                log("safety: on_change failed", e)

    def _open(self, c):
        relay = self._b.relay(c)
        if relay.value:
            self._weld_ms[c] = self.clock()  # the weld check counts from the open command
        relay.set(False)

    def _may_draw(self, state):
        return state == "C" or (state == "D" and self.ventilation)

    def _read_cable(self, c):
        if self._b.fixed_cable:
            self._cable[c] = self._hw_max
        else:
            self._cable[c] = pilot.cable_amps(self._b.proximity(c).read_ohms())

    # ---- fault monitors ----

    def _monitor(self, c, now):
        b = self._b
        self._fault(c, FAULT_RCD, b.rcd_tripped(c))
        # Weld: the auxiliary contact reads closed while the contactor is commanded open. The
        # timer restarts whenever it is closed or reads open, so it counts from the open command.
        relay = b.relay(c)
        fb = relay.feedback
        if relay.value or fb is not True:
            self._weld_ms[c] = now
            if fb is False:
                self._fault(c, FAULT_WELD, False)
        elif time.ticks_diff(now, self._weld_ms[c]) >= WELD_MS:
            self._fault(c, FAULT_WELD, True)
        if not b.fixed_cable:
            fb = b.lock(c).feedback
            if fb is None or fb == self._lock_cmd[c]:
                self._lock_ms[c] = now
                self._fault(c, FAULT_LOCK, False)
            elif time.ticks_diff(now, self._lock_ms[c]) >= LOCK_MS:
                self._fault(c, FAULT_LOCK, True)
        t = self._temp_ms[c]
        if self._temp is not None and (t is None or time.ticks_diff(now, t) >= TEMP_PERIOD_MS):
            deg = self._temp(c)
            self._temp_ms[c] = now  # after the read: a sensor that raises is retried every iteration
            if deg is not None:
                if deg >= OVERTEMP_C:
                    self._fault(c, FAULT_OVERTEMP, True)
                elif deg < OVERTEMP_CLEAR_C:
                    self._fault(c, FAULT_OVERTEMP, False)

    def _fault(self, c, bit, active):
        bits = self._faults[c]
        if (bits & bit != 0) == active:
            return
        if active:
            self._faults[c] = bits | bit
            self._open(c)  # at once, before anything is logged or told
            self._apply(c, self.clock())
        else:
            self._faults[c] = bits & ~bit
        name = _FAULT_NAMES[bit]
        self._b.event("fault" if active else "fault_clear", c, name)
        log("safety: connector", c, "fault" if active else "fault cleared", name)
        if self._on_fault is not None:
            try:
                self._on_fault(c, bit, active)
            except Exception as e:
                log("safety: on_fault failed", e)

    # ---- outputs ----

    def _apply(self, c, now):
        want = pilot.NOT_OFFERING
        st = self._state[c]
        if self._allowed[c] and not self._faults[c] and (st == "B" or self._may_draw(st)):
            amps = self._offer[c]
            if amps > self._cable[c]:
                amps = self._cable[c]
            if amps > self._hw_max:
                amps = self._hw_max
            if amps > self._max:
                amps = self._max
            if amps != self._amps[c]:  # the conversion uses floats: only when the amps change
                self._amps[c] = amps
                self._permille[c] = pilot.amps_to_permille(amps)
            want = self._permille[c]
        if want != self._duty[c]:
            if want == pilot.NOT_OFFERING:
                self._pwm_off_ms[c] = now
            self._duty[c] = want
            self._b.pilot(c).set_duty(want)

    def _drive_relay(self, c, now):
        relay = self._b.relay(c)
        pwm = pilot.pwm_on(self._duty[c])
        drawing = self._may_draw(self._state[c]) and not self._faults[c] and not self._diode_bad[c]
        if relay.value:
            # Closed: stays so while the EV may draw; with the PWM stopped the EV has
            # PWM_OFF_MS to stop (it goes to B, confirmed in _debounce) before we cut the load.
            if not drawing or (not pwm and time.ticks_diff(now, self._pwm_off_ms[c]) >= PWM_OFF_MS):
                self._open(c)
        elif drawing and pwm and self._checked[c] and self._cand[c] is None and self.locked(c):
            # The PWM runs only while allowed and fault-free. _checked: this iteration's burst ran
            # with it and passed the diode check; no other pilot state is waiting to be confirmed.
            relay.set(True)

"""The physical world around the simulated charger, in the CPython supervisor (tools/sim.py).

Per connector: the cable (plugged, PP resistor for its current rating), the EV (pilot state
B/C/D/E or a diode fault, its own current limit), the outputs the firmware drives (PWM duty,
contactor, cable lock), injected faults, the current the EV draws and the energy the meter
integrates (3 phases, 230 V). Plus the network link, the cards waiting at the RFID reader, and
the hardware event log the control socket serves.

The board twin in the MicroPython process (boards/sim.py) sees this world through the pushes
listed in docs/SIM.md; `inputs()` says what it is told, `listener` is called on every change it
must hear about. Time comes from `clock` (milliseconds), so tests can step it by hand.
"""

import random
import time
from collections import deque

EV_OHMS = {"B": 2740, "C": 882, "D": 246}  # R2, R2 || 1.3 k, R2 || 270
PP_OHMS = {13: 1500, 20: 680, 32: 220, 63: 100}
EV_STATES = ("B", "C", "D", "E", "diode_fault")
FAULTS = ("rcd", "weld", "lock", "overtemp", "meter")
FAULT_BITS = {"rcd": 1, "weld": 2, "lock": 4, "overtemp": 8, "meter": 16}  # as boards/sim.py reads them
PHASES = 3
PHASE_V = 230
SLEW_A_PER_S = 80  # the EV reaches any new target (0..80 A) within 1 s
MAX_CARDS = 8
POWER_ON_DUTY = 1000  # permille: steady +12 V, not offering


def monotonic_ms():
    return time.monotonic() * 1000.0


def ev_reads_amps(duty):
    """The current an EV reads from a PWM duty in permille (IEC 61851-1 Table A.8)."""
    if duty < 80 or duty > 970:
        return 0.0
    if duty < 100:
        return 6.0
    if duty <= 850:
        return duty * 0.06
    if duty <= 960:
        return (duty - 640) / 4
    return 80.0


def percent(permille):
    """Duty in % as the event log and `state` show it: 53.3, or 100 for whole numbers."""
    return permille // 10 if permille % 10 == 0 else permille / 10


class EventLog:
    """The last `size` hardware events; seq numbers start at 1 and never repeat; times never go
    backwards (an event stamped earlier than the one before it gets that one's time)."""

    def __init__(self, size=4096):
        self.size = size
        self.seq = 0
        self._events = deque(maxlen=size)  # (seq, t_ms, kind, connector, value)
        self._last_t = 0

    def add(self, t_ms, kind, connector, value):
        t_ms = max(int(t_ms), self._last_t)
        self._last_t = t_ms
        self.seq += 1
        self._events.append((self.seq, t_ms, kind, connector, value))
        return self.seq

    def first(self):
        """Oldest seq still held (seq + 1 when the log is empty)."""
        return self._events[0][0] if self._events else self.seq + 1

    def since(self, seq):
        """(events after `seq` as dicts, how many of those were already dropped from the ring)."""
        first = self.first()
        dropped = max(0, first - (seq + 1))
        start = max(seq + 1, first) - first
        out = []
        for i in range(start, len(self._events)):
            s, t, kind, c, value = self._events[i]
            out.append({"seq": s, "t_ms": t, "kind": kind, "connector": c, "value": value})
        return out, dropped


class Connector:
    def __init__(self, cid):
        self.id = cid
        self.plugged = False
        self.cable_amps = 0
        self.ev = "B"  # what the last `ev` command set (B, C, D, E, diode_fault)
        self.resistor = "B"  # the EV's R2/R3 state: B, C or D
        self.diode = True
        self.short = False  # state E: pilot shorted to PE
        self.ev_limit = 32
        self.duty = POWER_ON_DUTY  # permille, as set by the firmware
        self.relay = False
        self.locked = False  # commanded
        self.lock_feedback = False
        self.faults = dict.fromkeys(FAULTS, False)
        self.current_a = 0.0  # what the EV draws now, per phase
        self.energy_mj = 0.0  # meter accumulator (W x ms); energy_wh is derived from it

    def fault(self, kind):
        return self.faults[kind]

    def fault_bits(self):
        return sum(bit for kind, bit in FAULT_BITS.items() if self.faults[kind])

    def contact_closed(self):
        return self.relay or self.faults["weld"]  # a welded contactor conducts while "open"

    def energy_wh(self):
        return int(self.energy_mj // 3_600_000)

    def pilot_circuit(self):
        """(EV ohms, diode) on the pilot line: ohms -1 = nothing connected, 0 = short to PE."""
        if not self.plugged:
            return -1, True
        if self.short:
            return 0, True
        return EV_OHMS[self.resistor], self.diode


class World:
    def __init__(self, connectors=1, seed=1, clock=monotonic_ms, log_size=4096):
        if not 1 <= connectors <= 8:
            raise ValueError("connectors must be 1..8")
        self.n = connectors
        self.conns = [None] + [Connector(c) for c in range(1, connectors + 1)]
        self.clock = clock
        self.t0 = clock()  # event times are ms since the world began
        self._last = self.t0
        self.link_up = True
        self.cards = deque()
        self.log = EventLog(log_size)
        self.rng = random.Random(seed)
        self.listener = None  # listener(kind, c): an input of the board changed ("pilot", ...)

    # ---- helpers ----

    def now_ms(self):
        return int(self.clock() - self.t0)

    def conn(self, c):
        if not isinstance(c, int) or isinstance(c, bool) or not 1 <= c <= self.n:
            raise ValueError(f"connector must be 1..{self.n}")
        return self.conns[c]

    def event(self, kind, c, value, t_ms=None):
        """Log an event now, or at t_ms (ms since the world began) when it happened earlier."""
        now = self.now_ms()
        return self.log.add(now if t_ms is None else min(t_ms, now), kind, c, value)

    def _tell(self, kind, c=0):
        if self.listener is not None:
            self.listener(kind, c)

    # ---- physics over time ----

    def _target(self, k):
        return float(min(ev_reads_amps(k.duty), k.ev_limit, k.cable_amps))

    def update(self):
        """Advance the physics to clock(): EV currents ramp, meters integrate."""
        now = self.clock()
        dt = now - self._last
        if dt <= 0:
            return
        self._last = now
        for k in self.conns[1:]:
            if not k.plugged or k.short or not k.contact_closed() or k.resistor == "B":
                k.current_a = 0.0  # no circuit (or the EV opened S2): the current stops at once
                continue
            target = self._target(k)
            cur = k.current_a
            step = SLEW_A_PER_S * dt / 1000
            new = target if abs(target - cur) <= step else cur + (step if target > cur else -step)
            k.current_a = new
            k.energy_mj += PHASES * PHASE_V * (cur + new) / 2 * dt

    def power_w(self, c):
        return int(PHASES * PHASE_V * self.conns[c].current_a + 0.5)

    def meter_reading(self, c):
        """What the meter reads now: energy_wh, power_w, current_a and voltage_v per phase (with
        +/- 1 V and +/- 20 mA of noise). Raises OSError while the `meter` fault is injected."""
        k = self.conn(c)
        if k.fault("meter"):
            raise OSError(5, "meter not responding")
        self.update()
        volts, amps = [], []
        power = 0.0
        for _ in range(PHASES):
            v = PHASE_V + self.rng.randint(-100, 100) / 100
            a = k.current_a
            if a > 0:
                a = max(0.0, a + self.rng.randint(-20, 20) / 1000)
            volts.append(round(v, 1))
            amps.append(round(a, 2))
            power += v * a
        return {
            "energy_wh": k.energy_wh(),
            "power_w": int(power + 0.5),
            "current_a": amps,
            "voltage_v": volts,
        }

    # ---- what the firmware drives (reported by the board twin) ----

    def set_duty(self, c, permille, t_ms=None):
        k = self.conn(c)
        if not isinstance(permille, int) or not 0 <= permille <= 1000:
            raise ValueError("duty must be 0..1000 permille")
        if permille == k.duty:
            return
        self.update()
        k.duty = permille
        self.event("pwm", c, percent(permille), t_ms)

    def set_relay(self, c, on, t_ms=None):
        k = self.conn(c)
        on = bool(on)
        if on == k.relay:
            return
        self.update()
        k.relay = on
        self.event("relay", c, on, t_ms)
        self._tell("meter", c)  # the current starts or stops: the meter's registers change

    def set_lock(self, c, locked, t_ms=None):
        k = self.conn(c)
        locked = bool(locked)
        if locked == k.locked:
            return
        k.locked = locked
        if not k.fault("lock"):  # a failed actuator does not move
            k.lock_feedback = locked
        self.event("lock", c, locked, t_ms)

    def power_off(self):
        """The controller lost power or reset: its outputs fall back to their power-on state."""
        for c in range(1, self.n + 1):
            self.set_relay(c, False)
            self.set_duty(c, POWER_ON_DUTY)
            self.set_lock(c, False)

    # ---- what the control socket drives ----

    def plug(self, c, cable_amps=32):
        if cable_amps not in PP_OHMS or isinstance(cable_amps, bool):
            raise ValueError("cable_amps must be 13, 20, 32 or 63")
        k = self.conn(c)
        self.update()
        k.plugged = True
        k.cable_amps = cable_amps
        k.ev = k.resistor = "B"
        k.diode = True
        k.short = False
        self.event("plug", c, cable_amps)
        self._tell("pilot", c)

    def unplug(self, c):
        k = self.conn(c)
        self.update()
        k.plugged = False
        k.cable_amps = 0
        k.short = False
        k.diode = True
        k.ev = k.resistor = "B"
        self.event("unplug", c, None)
        self._tell("pilot", c)

    def set_ev(self, c, state):
        if state not in EV_STATES:
            raise ValueError("state must be one of B, C, D, E, diode_fault")
        k = self.conn(c)
        if not k.plugged:
            raise ValueError(f"connector {c} is not plugged")
        self.update()
        k.ev = state
        if state == "E":
            k.short = True
        elif state == "diode_fault":
            k.short = False
            k.diode = False  # the resistor state stays as it was
        else:
            k.short = False
            k.diode = True
            k.resistor = state
        self.event("ev", c, state)
        self._tell("pilot", c)

    def set_ev_limit(self, c, amps):
        if isinstance(amps, bool) or not isinstance(amps, (int, float)) or not 0 <= amps <= 80:
            raise ValueError("amps must be 0..80")
        k = self.conn(c)
        self.update()
        k.ev_limit = amps
        self.event("ev_limit", c, amps)

    def set_fault(self, kind, c, active):
        if kind not in FAULTS:
            raise ValueError("kind must be one of " + ", ".join(FAULTS))
        k = self.conn(c)
        self.update()
        k.faults[kind] = bool(active)
        if kind == "lock" and not active:
            k.lock_feedback = k.locked  # the actuator catches up once repaired
        self.event("fault", c, {"fault": kind, "active": bool(active)})
        self._tell("fault", c)

    def set_link(self, up):
        self.link_up = bool(up)
        self.event("network", 0, self.link_up)
        self._tell("network")

    def present_card(self, id_tag):
        if len(self.cards) >= MAX_CARDS:
            raise ValueError(f"reader queue full ({MAX_CARDS} cards)")
        self.cards.append(id_tag)
        self.event("rfid", 0, id_tag)
        self._tell("card")

    def take_card(self):
        """The reader handed the oldest card to the firmware."""
        return self.cards.popleft() if self.cards else None

# The physical world around the simulated board: cable and EV per connector (pilot circuit,
# PP resistor, current draw), the energy the meter integrates, injected faults, the network
# link, cards at the RFID reader, and the hardware event log the control socket serves.
# Everything is deterministic for a given seed and clock, so tests can step time by hand.
import time
from array import array

from micropython import const

_T0 = time.ticks_ms()  # event times are ms since the process started

R1_OHMS = const(1000)  # EVSE side series resistor
DIODE_MV = const(700)
GEN_MV = const(12000)  # pilot generator: +/-12 V
EV_OHMS = {"B": 2740, "C": 882, "D": 246}  # R2, R2 || 1.3 k, R2 || 270
PP_OHMS = {13: 1500, 20: 680, 32: 220, 63: 100}
EV_STATES = ("B", "C", "D", "E", "diode_fault")
FAULTS = ("rcd", "weld", "lock", "overtemp", "meter")
PHASES = const(3)
PHASE_V = const(230)
SLEW_A_PER_S = const(80)  # the EV reaches any new target (0..80 A) within 1 s
MAX_CARDS = const(8)

_PERIOD = const(10000)  # PWM period (1 kHz) in units of 0.1 us
_EDGE = const(50)  # 5 us pilot rise/fall: samples that fall on an edge read in-between values
_MASK32 = const(0xFFFFFFFF)


def now_ms():
    return time.ticks_diff(time.ticks_ms(), _T0)


class EventLog:
    """Ring of the last `size` hardware events; seq numbers start at 1 and never repeat.

    Stored column-wise to keep the sim's own heap use small (~14 bytes per slot): times in an
    int32 array, connector and kind (an index into `kinds`) in bytearrays, values in a list.
    """

    def __init__(self, size=1024):
        self.size = size
        self.seq = 0
        self.kinds = []
        self._t = array("i", bytes(4 * size))
        self._c = bytearray(size)
        self._k = bytearray(size)
        self._v = [None] * size

    def _kind_index(self, kind):
        kinds = self.kinds
        i = 0
        n = len(kinds)
        while i < n:
            if kinds[i] == kind:
                return i
            i += 1
        if n >= 255:
            kind = "other"
            if kind in kinds:
                return kinds.index(kind)
        kinds.append(kind)
        return n

    def add(self, kind, connector, value):
        i = self.seq % self.size
        self.seq += 1
        self._t[i] = now_ms()
        self._c[i] = connector & 0xFF
        self._k[i] = self._kind_index(kind)
        self._v[i] = value
        return self.seq

    def first(self):
        """Oldest seq still held (seq + 1 when the log is empty)."""
        first = self.seq - self.size + 1
        return first if first > 1 else 1

    def get(self, seq):
        """(t_ms, kind, connector, value) of event `seq` (must be held)."""
        i = (seq - 1) % self.size
        return self._t[i], self.kinds[self._k[i]], self._c[i], self._v[i]


class Connector:
    def __init__(self, cid):
        self.id = cid
        self.plugged = False
        self.cable_amps = 0
        self.ev = "B"  # what the last `ev` command set (B, C, D, E, diode_fault)
        self.resistor = "B"  # EV's R2/R3 state: B, C or D
        self.diode = True
        self.short = False  # state E: pilot shorted to PE
        self.ev_limit = 32
        self.duty = 1000  # permille, as set by the firmware
        self.relay = False
        self.locked = False  # commanded
        self.lock_feedback = False
        self.faults = {}
        self.current_a = 0.0  # what the EV draws now, per phase
        self.energy_mj = 0.0  # meter accumulator (W x ms); energy_wh is derived from it
        self.hi_mv = GEN_MV  # plateaus of the pilot line, recomputed on every change
        self.lo_mv = -GEN_MV

    def fault(self, kind):
        return self.faults.get(kind, False)

    def contact_closed(self):
        return self.relay or self.fault("weld")  # a welded contactor conducts while "open"

    def energy_wh(self):
        return int(self.energy_mj // 3600000)


class World:
    def __init__(self, connectors=1, seed=1, noise_mv=150, clock=None, log_size=1024):
        self.n = connectors
        self.conns = [None] + [Connector(c) for c in range(1, connectors + 1)]
        self.noise_mv = noise_mv  # peak ADC noise on the pilot samples
        self.link_up = True
        self.cards = []
        self.log = EventLog(log_size)
        self.clock = clock or time.ticks_ms
        self._last = self.clock()
        self._rng = (seed * 2654435761) & _MASK32 or 1

    # ---- helpers ----

    def conn(self, c):
        if not isinstance(c, int) or isinstance(c, bool) or c < 1 or c > self.n:
            raise ValueError("connector must be 1..%d" % self.n)
        return self.conns[c]

    def _rand(self):
        x = self._rng  # xorshift32: stays a small int on the host, no allocation
        x ^= (x << 13) & _MASK32
        x ^= x >> 17
        x ^= (x << 5) & _MASK32
        self._rng = x
        return x

    def _levels(self, k):
        if not k.plugged:
            hi, lo = GEN_MV, -GEN_MV  # nothing on the line: the generator itself
        elif k.short:
            hi, lo = 0, 0
        else:
            r = EV_OHMS[k.resistor]
            if k.diode:
                # Positive half: the diode conducts, divider R1 / R2 after a diode drop.
                hi = DIODE_MV + (GEN_MV - DIODE_MV) * r // (r + R1_OHMS)
                lo = -GEN_MV  # negative half: diode blocks, the line stays at -12 V
            else:
                hi = GEN_MV * r // (r + R1_OHMS)  # shorted diode: the divider works both ways
                lo = -hi
        k.hi_mv = hi
        k.lo_mv = lo

    # ---- physics over time ----

    def ev_reads_amps(self, duty):
        """What the simulated EV understands from the PWM (IEC 61851-1 Table A.8)."""
        if duty < 80 or duty > 970:
            return 0.0
        if duty < 100:
            return 6.0
        if duty <= 850:
            return duty * 0.06
        if duty <= 960:
            return (duty - 640) / 4
        return 80.0

    def _target(self, k):
        a = self.ev_reads_amps(k.duty)
        if a > k.ev_limit:
            a = k.ev_limit
        if a > k.cable_amps:
            a = k.cable_amps
        return float(a)

    def update(self):
        """Advance the physics to clock(): EV currents ramp, meters integrate."""
        now = self.clock()
        dt = time.ticks_diff(now, self._last)
        if dt <= 0:
            return
        self._last = now
        for c in range(1, self.n + 1):
            k = self.conns[c]
            if not k.plugged or k.short or not k.contact_closed() or k.resistor == "B":
                k.current_a = 0.0  # no circuit (or the EV opened S2): the current stops at once
                continue
            target = self._target(k)
            cur = k.current_a
            step = SLEW_A_PER_S * dt / 1000
            if abs(target - cur) <= step:
                new = target
            elif target > cur:
                new = cur + step
            else:
                new = cur - step
            k.current_a = new
            k.energy_mj += PHASES * PHASE_V * (cur + new) / 2 * dt

    # ---- what the firmware drives ----

    def set_duty(self, c, permille):
        k = self.conn(c)
        if permille == k.duty:
            return
        self.update()
        k.duty = permille
        self.log.add("pwm", c, permille // 10 if permille % 10 == 0 else permille / 10)

    def set_relay(self, c, on):
        k = self.conn(c)
        if on == k.relay:
            return
        self.update()
        k.relay = on
        self.log.add("relay", c, on)

    def set_lock(self, c, locked):
        k = self.conn(c)
        if locked == k.locked:
            return
        k.locked = locked
        if not k.fault("lock"):  # a failed actuator does not move
            k.lock_feedback = locked
        self.log.add("lock", c, locked)

    def burst(self, c, buf):
        """Fill `buf` (array of int16) with pilot samples in mV across one PWM period.

        Samples start at a random phase; those on an edge read between the plateaus; each has
        triangular-ish noise of +/- noise_mv (sum of three uniform draws). No allocation.
        """
        k = self.conns[c]
        n = len(buf)
        if n == 0:
            return
        hi = k.hi_mv
        lo = k.lo_mv
        duty = k.duty
        high_t = duty * 10  # permille -> 0.1 us of high time in the 1000 us period
        step = _PERIOD // n
        t = self._rand() % _PERIOD
        amp = self.noise_mv
        i = 0
        while i < n:
            if duty >= 1000:
                v = hi
            elif duty <= 0:
                v = lo
            elif t < high_t:
                v = hi if t >= _EDGE else lo + (hi - lo) * t // _EDGE
            else:
                e = t - high_t
                v = lo if e >= _EDGE else hi + (lo - hi) * e // _EDGE
            x = self._rand()
            v += ((x & 1023) + ((x >> 10) & 1023) + ((x >> 20) & 1023) - 1534) * amp // 1535
            if v > 32767:
                v = 32767
            elif v < -32768:
                v = -32768
            buf[i] = v
            t += step
            if t >= _PERIOD:
                t -= _PERIOD
            i += 1

    def pp_ohms(self, c):
        k = self.conn(c)
        if not k.plugged:
            return None
        r = PP_OHMS[k.cable_amps]
        return r + (self._rand() % 21 - 10) * r // 1000  # +/- 1 % resistor tolerance

    def meter_reading(self, c):
        k = self.conn(c)
        if k.fault("meter"):
            raise OSError(5, "meter not responding")  # EIO, like a Modbus timeout
        self.update()
        volts = []
        amps = []
        power = 0.0
        for _ in range(PHASES):
            v = PHASE_V + (self._rand() % 201 - 100) / 100  # +/- 1 V
            a = k.current_a
            if a > 0:
                a += (self._rand() % 41 - 20) / 1000  # +/- 20 mA
                if a < 0:
                    a = 0.0
            volts.append(round(v, 1))
            amps.append(round(a, 2))
            power += v * a
        return {
            "energy_wh": k.energy_wh(),
            "power_w": int(power + 0.5),
            "current_a": amps,
            "voltage_v": volts,
        }

    def temperature_c(self, c):
        k = self.conn(c)
        return (92 if k.fault("overtemp") else 31) + self._rand() % 3

    # ---- what the control socket drives ----

    def plug(self, c, cable_amps=32):
        if cable_amps not in PP_OHMS:
            raise ValueError("cable_amps must be 13, 20, 32 or 63")
        k = self.conn(c)
        self.update()
        k.plugged = True
        k.cable_amps = cable_amps
        k.ev = k.resistor = "B"
        k.diode = True
        k.short = False
        self._levels(k)
        self.log.add("plug", c, cable_amps)

    def unplug(self, c):
        k = self.conn(c)
        self.update()
        k.plugged = False
        k.cable_amps = 0
        k.short = False
        k.diode = True
        k.ev = k.resistor = "B"
        self._levels(k)
        self.log.add("unplug", c, None)

    def set_ev(self, c, state):
        if state not in EV_STATES:
            raise ValueError("state must be one of B, C, D, E, diode_fault")
        k = self.conn(c)
        if not k.plugged:
            raise ValueError("connector %d is not plugged" % c)
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
        self._levels(k)
        self.log.add("ev", c, state)

    def set_ev_limit(self, c, amps):
        if amps < 0 or amps > 80:
            raise ValueError("amps must be 0..80")
        k = self.conn(c)
        self.update()
        k.ev_limit = amps
        self.log.add("ev_limit", c, amps)

    def set_fault(self, kind, c, active):
        if kind not in FAULTS:
            raise ValueError("kind must be one of rcd, weld, lock, overtemp, meter")
        k = self.conn(c)
        self.update()
        k.faults[kind] = active
        if kind == "lock" and not active:
            k.lock_feedback = k.locked  # the actuator catches up once repaired
        self.log.add("fault", c, {"fault": kind, "active": active})

    def set_link(self, up):
        self.link_up = up
        self.log.add("network", 0, up)

    def present_card(self, id_tag):
        if len(self.cards) >= MAX_CARDS:
            raise ValueError("reader queue full (%d cards)" % MAX_CARDS)
        self.cards.append(id_tag)
        self.log.add("rfid", 0, id_tag)

    def take_card(self):
        return self.cards.pop(0) if self.cards else None

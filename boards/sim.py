# The simulated board (imported as `board`): a thin twin of the hardware. The physical world (EV,
# cable, faults, meter physics, network link, card reader), the hardware event log and the
# control socket live in the CPython supervisor (tools/sim.py). This process keeps only the last
# values the supervisor pushed over the hardware bus (stdin, `feed`) and reports what the
# firmware drives (duty, relay, lock, events) on stdout. docs/SIM.md describes the bus.
#
# The pilot is synthesised here from the pushed EV resistance and diode and the duty the firmware
# set, with the circuit formulas and noise of a real CP line, so the firmware's real detection
# code runs on physical values. The code is kept small on purpose (it is resident in the same
# heap as the firmware): state in flat arrays, one small port class, no per-sample allocation.
import gc
import json
import time
from array import array

from micropython import const

import sim_net

NAME = "sim"
MAX_CONNECTORS = 8

_R1_OHMS = const(1000)  # EVSE side series resistor
_DIODE_MV = const(700)
_GEN_MV = const(12000)  # pilot generator: +/-12 V
_PERIOD = const(10000)  # PWM period (1 kHz) in units of 0.1 us
_EDGE = const(50)  # 5 us rise/fall: samples that fall on an edge read in-between values
_MASK30 = const(0x3FFFFFFF)
_MAX_CARDS = const(8)

# Fault bits of the `f` push (tools/sim_world.py FAULT_BITS).
_RCD = const(1)
_WELD = const(2)
_LOCK = const(4)
_HOT = const(8)
_METER = const(16)


_rng = 1  # xorshift state, 30 bits (one board per process)


def _rand():
    """0 < x < 2**30, period 2**30 - 1: a xorshift on 30 bits (shifts 13, 19, 11), masked before
    each left shift so that every value stays a small int on 32-bit ports too: no allocation."""
    global _rng
    x = _rng
    x ^= (x & (_MASK30 >> 13)) << 13
    x ^= x >> 19
    x ^= (x & (_MASK30 >> 11)) << 11
    _rng = x
    return x


# Per-connector state, flat: _st (array 'h') and _fl (bytearray) hold _W slots per connector.
_M = const(8)  # meter registers per connector: Wh, W, 3 x current (cA), 3 x voltage (dV)
_W = const(4)
_DUTY = const(0)  # _st: duty permille as set by the firmware
_HI = const(1)  # _st: pilot plateaus (mV) for the pushed EV
_LO = const(2)
_PP = const(3)  # _st: PP ohms, 0 = no cable
_FAULT = const(0)  # _fl: pushed fault bits
_RELAY = const(1)  # _fl: contactor as commanded
_LOCKED = const(2)  # _fl: lock as commanded
_LOCKFB = const(3)  # _fl: lock position switch


class _Port:
    """One object per connector and kind. Kind 0 is the pilot (PWM out, ADC in), proximity and
    meter: b.pilot(c), b.proximity(c) and b.meter(c). Kind 1 the main contactor (`feedback`:
    auxiliary contact, a weld shows closed while open), kind 2 the cable lock (`feedback`:
    position switch, a `lock` fault leaves it where it was)."""

    def __init__(self, b, c, kind):
        self._b = b
        self._i = c * _W
        self._k = kind

    def set_duty(self, permille):
        """1000 = steady +12 V (not offering), 0 = steady -12 V (state F), else 1 kHz PWM."""
        if not isinstance(permille, int) or permille < 0 or permille > 1000:
            raise ValueError("duty must be 0..1000 permille")
        st = self._b._st
        if st[self._i] != permille:
            st[self._i] = permille
            self._b._out(b"\x1ed %d %d %d\n" % (time.ticks_ms(), self._i // _W, permille))

    @property
    def duty(self):
        return self._b._st[self._i]

    def burst(self, buf):
        """Fill the preallocated array('h') with pilot samples in mV across one PWM period.

        Samples start at a random phase; those on an edge read between the plateaus; each has
        triangular-ish noise of +/- noise_mv (sum of three uniform draws). No allocation. The
        twin is never disturbed: returns True (hal/pilot.py's Pilot.burst can return False)."""
        global _rng
        amp = self._b.noise_mv
        st = self._b._st
        i = self._i
        n = len(buf)
        if n == 0:
            return True
        duty = st[i]
        hi = st[i + _HI]
        lo = st[i + _LO]
        high_t = duty * 10  # permille -> 0.1 us of high time in the 1000 us period
        step = _PERIOD // n
        t = _rand() % _PERIOD
        x = _rng
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
            x ^= (x & (_MASK30 >> 13)) << 13  # _rand(), inlined
            x ^= x >> 19
            x ^= (x & (_MASK30 >> 11)) << 11
            buf[i] = v + ((x & 1023) + ((x >> 10) & 1023) + ((x >> 20) & 1023) - 1534) * amp // 1535
            t += step
            if t >= _PERIOD:
                t -= _PERIOD
            i += 1
        _rng = x
        return True

    def read_ohms(self):
        """PP resistor to PE in ohms; None when no cable is in the socket (open)."""
        r = self._b._st[self._i + _PP]
        if r <= 0:
            return None
        return r + (_rand() % 21 - 10) * r // 1000  # +/- 1 % resistor tolerance

    def read(self):
        """{"energy_wh": int, "power_w": int, "current_a": [3], "voltage_v": [3]}.
        Raises OSError while the `meter` fault is injected (or before the first reading)."""
        m = self._b._mtr
        k = self._i // _W * _M
        if m[k] < 0 or self._b._fl[self._i] & _METER:
            raise OSError(5, "meter not responding")  # EIO, like a Modbus timeout
        return {
            "energy_wh": m[k],
            "power_w": m[k + 1],
            "current_a": [m[k + 2] / 100, m[k + 3] / 100, m[k + 4] / 100],
            "voltage_v": [m[k + 5] / 10, m[k + 6] / 10, m[k + 7] / 10],
        }

    def set(self, on):
        """Relay or lock: drive the actuator."""
        fl = self._b._fl
        i = self._i
        on = 1 if on else 0
        if self._k == 2 and not fl[i] & _LOCK:
            fl[i + _LOCKFB] = on
        j = i + self._k  # _RELAY or _LOCKED
        if fl[j] != on:
            fl[j] = on
            self._b._out(b"\x1e%s %d %d %d\n" % (b"rl"[self._k - 1 : self._k], time.ticks_ms(), i // _W, on))

    @property
    def value(self):
        return self._b._fl[self._i + self._k] == 1

    @property
    def feedback(self):
        fl = self._b._fl
        i = self._i
        if self._k == 2:
            return fl[i + _LOCKFB] == 1
        return fl[i + _RELAY] == 1 or fl[i] & _WELD != 0


class Board:
    name = NAME
    fixed_cable = False
    vendor = "MicroEVSE"
    model = "SIM-AC3"
    flash = "/flash"

    def __init__(self, args=None, out=None):
        global _rng
        args = args or {}
        n = args.get("connectors", 1)
        if not isinstance(n, int) or n < 1 or n > MAX_CONNECTORS:
            raise ValueError("connectors must be 1..%d" % MAX_CONNECTORS)
        self.connectors = n
        self.serial = ("SIM-" + (args.get("id") or "SIM"))[:25]  # OCPP: at most 25 chars
        _rng = (args.get("seed", 1) * 2654435761) & _MASK30 or 1
        s = n + 1  # index 0 unused: connectors are numbered from 1
        self._st = array("h", (1000, _GEN_MV, -_GEN_MV, 0) * s)  # power-on: steady +12 V, no EV
        self._fl = bytearray(_W * s)  # no faults; relay and lock open
        self._mtr = array("i", [-1] * (_M * s))  # meter registers as pushed (-1: no reading yet)
        self._cards = []
        # Pilots, relays, locks, each group led by None: a connector number out of range gets None
        # (or IndexError), never another connector's port. A loop: a comprehension is a function.
        self._ports = p = []
        for i in range(3 * s):
            p.append(_Port(self, i % s, i // s) if i % s else None)
        self._publish = None
        # The bus towards the supervisor: out(data) writes bytes or str to stdout, a line in one or
        # more pieces. Every line starts with \x1e (RS), so stray prints on stdout cannot pass for
        # bus lines. Without a bus (tests) `len` swallows them. A write error means the
        # supervisor is gone, and PR_SET_PDEATHSIG takes this process down with it.
        self._out = out or len
        self.link = True
        self.noise_mv = 150  # peak ADC noise on the pilot samples (tests set 0)
        self.heap_peak = 0  # the highest sample_heap() seen
        self.heap_hidden = 0  # heap a board does not spend: the app's ROMFS image (sim_boot)

    # ---- hardware, as on every board (connectors are numbered from 1) ----

    def pilot(self, c):
        return self._ports[c]

    proximity = meter = pilot

    def relay(self, c):
        return self._ports[self.connectors + 1 + c]

    def lock(self, c):
        return self._ports[2 * self.connectors + 2 + c]

    def rcd_tripped(self, c):
        """Residual-current monitor output (30 mA AC / 6 mA DC)."""
        return self._fl[c * _W] & _RCD != 0

    def temperature_c(self, c):
        return (92 if self._fl[c * _W] & _HOT else 31) + _rand() % 3

    def rfid_read(self):
        """Next id tag presented at the reader, or None."""
        if not self._cards:
            return None
        self._out(b"\x1ek\n")  # taken: the supervisor's reader queue drops it too
        return self._cards.pop(0)

    def link_up(self):
        """Network link state (Wi-Fi associated / Ethernet carrier)."""
        return self.link

    # the websocket client's opener: new connections fail and streams stall while the link is down
    open_connection = sim_net.open_connection

    def event(self, kind, connector, value):
        """Append to the hardware event log (kept by the supervisor, served on `events`)."""
        try:
            data = json.dumps((kind, connector, value))
        except Exception:  # a value JSON cannot carry: its repr
            data = json.dumps((str(kind), connector, repr(value)))
        self._line(b"\x1ee %d " % time.ticks_ms(), data)

    def publish(self, fn):
        """fn() -> {"connected", "registration", "connectors": {c: {...}}}, read on `state`."""
        self._publish = fn

    # ---- sim-only: the bus (sim_boot) and tests ----
    def sample_heap(self):
        """The live heap: gc.mem_alloc() right after a collection; tracks the peak."""
        gc.collect()
        used = gc.mem_alloc() - self.heap_hidden
        if used > self.heap_peak:
            self.heap_peak = used
        return used

    def _line(self, head, data):
        # head + data (a str) + newline, written in pieces: no copy of `data` is made, which
        # matters when the heap is nearly full (the firmware's snapshot, big event values).
        self._out(head)
        self._out(data)
        self._out(b"\n")

    def feed(self, line):
        """Apply one line the supervisor pushed: a JSON array [op, ...] (docs/SIM.md).
        False if not understood; bad JSON or arguments raise (ValueError, TypeError, ...)."""
        v = json.loads(line)
        op = v[0]
        if op == "s":  # ["s", ID]: snapshot request
            used = self.sample_heap()
            free = gc.mem_free()
            fn = self._publish
            if fn is None:
                data = "null"
            else:
                try:
                    snap = fn()
                    data = json.dumps(snap if isinstance(snap, dict) else {"error": "snapshot: not a dict"})
                except Exception as e:  # a broken snapshot must not take the bus down
                    data = json.dumps({"error": repr(e)})
            self._line(b"\x1eS %d %d %d %d " % (v[1], free, used, self.heap_peak), data)
        elif op == "h":  # ["h"]: sample the heap (the supervisor's 100 ms tick)
            self.sample_heap()
        elif op == "n":  # ["n", UP]: network link
            self.link = v[1] is True
        elif op == "c":  # ["c", TAG]: a card at the reader
            if len(self._cards) >= _MAX_CARDS or not isinstance(v[1], str):
                return False
            self._cards.append(v[1])
        else:
            c = v[1] if len(v) > 1 else 0
            if not isinstance(c, int) or c < 1 or c > self.connectors:
                return False
            i = c * _W
            if op == "p":  # ["p", C, EV_OHMS, DIODE, PP_OHMS]: what is on the pilot line
                # EV_OHMS < 0: nothing (open), 0: a short to PE (state E), else the EV's R2 (|| R3)
                # behind its diode (DIODE false: shorted or missing). PP_OHMS 0: no cable.
                r = v[2]
                if r < 0:
                    hi, lo = _GEN_MV, -_GEN_MV  # nothing on the line: the generator itself
                elif r == 0:
                    hi, lo = 0, 0
                elif v[3]:
                    # Positive half: the diode conducts, divider R1 / R2 after a diode drop.
                    hi = _DIODE_MV + (_GEN_MV - _DIODE_MV) * r // (r + _R1_OHMS)
                    lo = -_GEN_MV  # negative half: the diode blocks, the line stays at -12 V
                else:
                    hi = _GEN_MV * r // (r + _R1_OHMS)  # no diode: the divider works both ways
                    lo = -hi
                st = self._st
                st[i + _HI] = hi
                st[i + _LO] = lo
                st[i + _PP] = v[4]
            elif op == "f":  # ["f", C, FAULT_BITS]
                fl = self._fl
                if fl[i] & _LOCK and not v[2] & _LOCK:
                    fl[i + _LOCKFB] = fl[i + _LOCKED]  # the actuator catches up once repaired
                fl[i] = v[2]
            elif op == "m":  # ["m", C, WH, W, cA, cA, cA, dV, dV, dV]: the meter's registers
                m = self._mtr
                k = 0
                while k < _M:
                    m[c * _M + k] = v[2 + k]
                    k += 1
            else:
                return False
        return True

# The simulated board (imported as `board`): the same interface as a real board file, backed by
# the physical model in sim_world. Firmware code cannot tell it from hardware except through
# the sim-only extras at the end (world, snapshot, heap figures) that the sim's tools use.
import gc

import sim_net
import sim_world

NAME = "sim"
MAX_CONNECTORS = 8


class Pilot:
    """CP output (PWM generator) and input (ADC) of one connector."""

    def __init__(self, world, c):
        self._w = world
        self._c = c

    def set_duty(self, permille):
        """1000 = steady +12 V (not offering), 0 = steady -12 V (state F), else 1 kHz PWM."""
        if not isinstance(permille, int) or permille < 0 or permille > 1000:
            raise ValueError("duty must be 0..1000 permille")
        self._w.set_duty(self._c, permille)

    @property
    def duty(self):
        return self._w.conns[self._c].duty

    def burst(self, buf):
        """Fill the preallocated array('h') with pilot samples in mV across ~1 PWM period."""
        self._w.burst(self._c, buf)


class Proximity:
    def __init__(self, world, c):
        self._w = world
        self._c = c

    def read_ohms(self):
        """PP resistor to PE in ohms; None when no cable is in the socket (open)."""
        return self._w.pp_ohms(self._c)


class Relay:
    """Main contactor. `feedback` is the auxiliary contact (a weld shows closed while open)."""

    def __init__(self, world, c):
        self._w = world
        self._c = c

    def set(self, on):
        self._w.set_relay(self._c, bool(on))

    @property
    def value(self):
        return self._w.conns[self._c].relay

    @property
    def feedback(self):
        return self._w.conns[self._c].contact_closed()


class Lock:
    """Socket cable lock actuator; `feedback` is its position switch (a `lock` fault: stuck)."""

    def __init__(self, world, c):
        self._w = world
        self._c = c

    def set(self, locked):
        self._w.set_lock(self._c, bool(locked))

    @property
    def value(self):
        return self._w.conns[self._c].locked

    @property
    def feedback(self):
        return self._w.conns[self._c].lock_feedback


class Meter:
    def __init__(self, world, c):
        self._w = world
        self._c = c

    def read(self):
        """{"energy_wh": int, "power_w": int, "current_a": [3], "voltage_v": [3]}.
        Raises OSError while the `meter` fault is injected."""
        return self._w.meter_reading(self._c)


def _per_connector(cls, world, n):
    return [None] + [cls(world, c) for c in range(1, n + 1)]


class Board:
    name = NAME
    fixed_cable = False
    vendor = "MicroEVSE"
    model = "SIM-AC3"
    flash = "/flash"

    def __init__(self, args=None):
        args = args or {}
        n = args.get("connectors", 1)
        if not isinstance(n, int) or n < 1 or n > MAX_CONNECTORS:
            raise ValueError("connectors must be 1..%d" % MAX_CONNECTORS)
        self.connectors = n
        cp_id = args.get("id") or "SIM"
        self.serial = ("SIM-" + cp_id)[:25]  # chargePointSerialNumber is at most 25 chars
        self.world = sim_world.World(n, seed=args.get("seed", 1))
        w = self.world
        self._pilots = _per_connector(Pilot, w, n)
        self._pp = _per_connector(Proximity, w, n)
        self._relays = _per_connector(Relay, w, n)
        self._locks = _per_connector(Lock, w, n)
        self._meters = _per_connector(Meter, w, n)
        self._publish = None
        self._last_cp = [None] * (n + 1)
        self.boots = 0
        self.heap_peak = 0
        self.heap_sim = 0  # live heap before the firmware was imported (world, control, log)

    # ---- hardware, as on every board (connectors are numbered from 1) ----

    def pilot(self, c):
        return self._pilots[c]

    def proximity(self, c):
        return self._pp[c]

    def relay(self, c):
        return self._relays[c]

    def lock(self, c):
        return self._locks[c]

    def meter(self, c):
        return self._meters[c]

    def rcd_tripped(self, c):
        """Residual-current monitor output (30 mA AC / 6 mA DC)."""
        return self.world.conn(c).fault("rcd")

    def temperature_c(self, c):
        return self.world.temperature_c(c)

    def rfid_read(self):
        """Next id tag presented at the reader, or None."""
        return self.world.take_card()

    def link_up(self):
        """Network link state (Wi-Fi associated / Ethernet carrier)."""
        return self.world.link_up

    async def open_connection(self, host, port, ssl_ctx=None, server_hostname=None):
        return await sim_net.open_connection(self.world, host, port, ssl_ctx, server_hostname)

    def event(self, kind, connector, value):
        """Append to the hardware event log (served by the control socket's `events`)."""
        if kind == "cp" and 0 < connector <= self.connectors:
            self._last_cp[connector] = value
        self.world.log.add(kind, connector, value)

    def publish(self, fn):
        """fn() -> {"connected", "registration", "connectors": {c: {...}}}, read on `state`."""
        self._publish = fn

    # ---- sim-only: used by sim_boot and sim_control ----

    def power_on(self):
        """A (re)boot: outputs return to their power-on state, the firmware's hooks are gone."""
        self._publish = None
        for c in range(1, self.connectors + 1):
            self.world.set_relay(c, False)
            self.world.set_duty(c, 1000)
            self.world.set_lock(c, False)
            self._last_cp[c] = None
        self.boots += 1
        self.world.log.add("boot", 0, self.boots)

    def snapshot(self):
        """The firmware's published state, None before it publishes."""
        fn = self._publish
        if fn is None:
            return None
        try:
            snap = fn()
        except Exception as e:  # a broken snapshot must not take the control socket down
            return {"error": repr(e)}
        return snap if isinstance(snap, dict) else {"error": "snapshot is not a dict"}

    def last_cp(self, c):
        return self._last_cp[c]

    def sample_heap(self):
        """Record the live heap: gc.mem_alloc() right after a collection (see docs)."""
        gc.collect()
        used = gc.mem_alloc()
        if used > self.heap_peak:
            self.heap_peak = used
        return used

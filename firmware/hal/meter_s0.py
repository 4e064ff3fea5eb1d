# S0 pulse energy meter (DIN 43864 / IEC 62053-31): an opto-isolated open-collector output that
# pulls the input low for >= 30 ms per energy quantum. Counted with Pin.irq; power from the
# interval between the last two pulses. Board meter interface: read() -> {"energy_wh",
# "power_w", "current_a", "voltage_v"}; an S0 meter measures neither current nor voltage, so
# those lists hold None.
import time

from machine import Pin

_MAX_PULSE_RATE_MS = 20  # edges closer than this are contact bounce (S0 pulses last >= 30 ms)


class S0Meter:
    """S0Meter(pin, pulses_per_kwh=1000, energy_wh=0, hard=False)

    pin: the S0 input (pull-up, counted on the falling edge). energy_wh: the count to start from
    (restored from flash by the caller). hard: request a hard IRQ (RP2040; ESP32 has soft only).
    .pulses, read()."""

    def __init__(self, pin, pulses_per_kwh=1000, energy_wh=0, hard=False):
        if not 1 <= pulses_per_kwh <= 100000:
            raise ValueError("pulses_per_kwh must be 1..100000")
        self._ppk = pulses_per_kwh
        self._base_wh = energy_wh
        self.pulses = 0
        self._last = 0  # ticks_ms of the last counted pulse
        self._interval = 0  # ms between the last two pulses; 0 = fewer than two pulses yet
        self._pin = Pin(pin, Pin.IN, Pin.PULL_UP) if isinstance(pin, int) else pin
        if hard:
            self._pin.irq(self._edge, Pin.IRQ_FALLING, hard=True)
        else:
            self._pin.irq(self._edge, Pin.IRQ_FALLING)

    def _edge(self, _pin):
        # IRQ handler: small ints and attribute stores only, so it is safe as a hard IRQ (no
        # allocation). A bounce within _MAX_PULSE_RATE_MS of the last pulse is not a pulse.
        now = time.ticks_ms()
        if self.pulses:
            d = time.ticks_diff(now, self._last)
            if d < _MAX_PULSE_RATE_MS:
                return
            self._interval = d
        self._last = now
        self.pulses += 1

    def energy_wh(self):
        return self._base_wh + self.pulses * 1000 // self._ppk

    def power_w(self):
        """3.6e9 / (pulses_per_kwh * interval_ms). While no pulse comes, the time since the last
        one bounds the power from above, so it falls towards 0 when the load stops."""
        iv = self._interval
        if iv == 0:
            return 0
        since = time.ticks_diff(time.ticks_ms(), self._last)
        if since > iv:
            iv = since
        return int(3600000000 // (self._ppk * iv))

    def read(self):
        return {
            "energy_wh": self.energy_wh(),
            "power_w": self.power_w(),
            "current_a": [None, None, None],
            "voltage_v": [None, None, None],
        }

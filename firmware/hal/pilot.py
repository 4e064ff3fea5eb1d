# Control pilot on a real board: 1 kHz PWM out (machine.PWM), pilot voltage in (machine.ADC).
# Same interface as the sim twin's pilot port (boards/sim.py): set_duty(), .duty, burst(buf).
#
# burst() runs in the safety loop every 20 ms per connector, so it allocates nothing: the raw ->
# millivolt mapping is precomputed as an integer fixed-point scale (a float multiply would box a
# float per sample on ESP32/RP2040), the timing uses time.ticks_us() small ints, and the loop
# indexes the caller's preallocated array('h').
#
# Sampling: stock MicroPython has no PWM-synchronous ADC trigger on ESP32 (soft IRQs only,
# evse-hardware.md 3.3), so the burst spreads the buffer's samples evenly over `span_us` (at least
# one PWM period): sample i is taken at i * span_us / n after the start, or as soon as the
# previous read is done when read_u16() is slower than that spacing (ESP32: ~35 us per read).
# evse.pilot.plateaus() then takes the top/bottom plateaus of the burst. The default span is two
# periods: each phase is sampled twice, so one interruption (an ISR, or the OS on the host) that
# delays the loop past the 100 us high phase at 10 % duty cannot hide that plateau.
import time

from machine import ADC, PWM, Pin
from micropython import const

PWM_HZ = const(1000)
_FULL = const(65535)
GAP_US = const(80)  # a pause this long in a burst may hide the 100 us high phase of 10 % duty
TRIES = const(3)
_LIMIT = const((1 << 30) - (1 << 17))  # raw * scale + rounding stays a small int on 32-bit ports


def _pin(p, mode=None):
    if isinstance(p, int):
        return Pin(p) if mode is None else Pin(p, mode)
    return p


def fixed_point(mv_per_count):
    """(scale, shift) with raw * scale >> shift ~= raw * mv_per_count for raw in 0..65535, the
    largest shift whose product still fits a small int."""
    m = abs(mv_per_count)
    if m == 0 or m * _FULL >= _LIMIT:
        raise ValueError("mv_per_count out of range")
    shift = 16
    while shift > 0 and m * (1 << shift) * _FULL >= _LIMIT:
        shift -= 1
    return int(round(mv_per_count * (1 << shift))), shift  # rounding term: 1 << (shift - 1)


class Pilot:
    """Pilot(pwm_pin, adc_pin, mv_per_count, offset_mv, span_us=2000, invert=False, atten=None)

    v_pilot_mv = raw_u16 * mv_per_count + offset_mv (the board's divider calibration).
    `invert`: the +-12 V output stage inverts (duty_u16 is then 65535 - duty).
    `atten`: passed to machine.ADC (ESP32: ADC.ATTN_11DB for the 0.15..2.45 V range)."""

    def __init__(self, pwm_pin, adc_pin, mv_per_count, offset_mv, span_us=2000, invert=False, atten=None):
        if span_us < 1000000 // PWM_HZ:
            raise ValueError("span_us must cover one PWM period")
        self._scale, self._shift = fixed_point(mv_per_count)
        self._offset = int(offset_mv)
        self._span = span_us
        self._invert = invert
        self._duty = 1000
        # Safe level before anything else: steady +12 V (not offering), as on power-up.
        self._pwm = PWM(_pin(pwm_pin), freq=PWM_HZ, duty_u16=0 if invert else _FULL)
        self._adc = ADC(_pin(adc_pin)) if atten is None else ADC(_pin(adc_pin), atten=atten)
        self.last_burst_us = 0  # duration of the last burst (diagnostics, bench figures)
        self.disturbed = 0  # bursts taken again because the loop was held up

    def set_duty(self, permille):
        """1000 = steady +12 V (not offering), 0 = steady -12 V (state F), else 1 kHz PWM."""
        if not isinstance(permille, int) or permille < 0 or permille > 1000:
            raise ValueError("duty must be 0..1000 permille")
        if permille == self._duty:
            return
        d = (permille * _FULL + 500) // 1000
        self._pwm.duty_u16(_FULL - d if self._invert else d)
        self._duty = permille

    @property
    def duty(self):
        return self._duty

    def burst(self, buf):
        """Fill the preallocated array('h') with pilot millivolts spread over span_us. No allocation.

        A burst in which two consecutive reads lie more than GAP_US apart (an interrupt or, on the
        host, the OS stopped the loop: a whole plateau may be missing) is taken again, at most
        TRIES times in all; .disturbed counts such bursts. Returns False when even the last try
        was disturbed: its samples decide nothing (evse/safety.py keeps the state it had)."""
        n = len(buf)
        if n == 0:
            return True
        tries = TRIES
        while tries:
            tries -= 1
            if self._once(buf, n):
                return True
            self.disturbed += 1
        return False

    def _once(self, buf, n):
        adc = self._adc
        scale = self._scale
        shift = self._shift
        half = (1 << shift) >> 1
        off = self._offset
        span = self._span
        ticks = time.ticks_us
        diff = time.ticks_diff
        gap = span // n + GAP_US  # longest allowed time between two reads
        ok = True
        t0 = ticks()
        prev = 0
        i = 0
        while i < n:
            due = i * span // n
            t = diff(ticks(), t0)
            while t < due:
                t = diff(ticks(), t0)
            if t - prev > gap:
                ok = False
            prev = t
            v = ((adc.read_u16() * scale + half) >> shift) + off
            if v > 32767:  # array('h') would wrap silently: clamp a mis-calibrated reading
                v = 32767
            elif v < -32768:
                v = -32768
            buf[i] = v
            i += 1
        self.last_burst_us = diff(ticks(), t0)
        return ok

    def deinit(self):
        """Leave the pilot at steady +12 V (not offering); the PWM keeps driving that level."""
        self.set_duty(1000)
